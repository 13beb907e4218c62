//! The baselines of other mechanisms (mq, udp, eventfd-shm) and the open loop across real
//! processes: this test binary runs itself again as the measurement child, so the descriptor
//! handoff (queues and sockets as stdin and stdout, the memfd and eventfds over `SCM_RIGHTS`)
//! is what a comparison uses. The open loop runs over transports, raw and other baselines. No timing is asserted; every child has the harness's deadline.

use std::process::ExitCode;
use std::time::Duration;

use switchboard::Error;
use switchboard::measure::{self, Mechanism, Settings};

fn main() -> ExitCode {
    // In the child this serves the measurement and exits.
    measure::serve_if_child();
    let settings = Settings {
        warmup: 10,
        iterations: 200,
        duration: Duration::from_millis(20),
        stream_bytes: 1 << 20,
        ..Settings::quick()
    };
    let mut results: Vec<(String, Result<(), String>)> = Vec::new();
    for m in Mechanism::all_baselines() {
        for size in [1, 64, 8192] {
            let r = measure::measure(m, size, &settings).map_err(|e| e.to_string()).and_then(|x| {
                if x.latency.round_trips >= 100
                    && x.throughput.messages >= 64
                    && m.is_raw()
                    && m.kind_name() == m.to_string()
                {
                    Ok(())
                } else {
                    Err(format!("implausible measurement {x:?}"))
                }
            });
            results.push((format!("{m} {size} B round trips and stream"), r));
        }
        // A size above the mechanism's limit is refused at once, never a hang or a crash.
        if let Some(max) = m.max_message_size() {
            let r = match measure::measure(m, max + 1, &settings) {
                Err(Error::Config(why)) if why.contains("at most") => Ok(()),
                other => Err(format!("expected a size refusal, got {other:?}")),
            };
            results.push((format!("{m} refuses {} B", max + 1), r));
        }
    }
    let open: Vec<Mechanism> = ["unix", "raw-pipe", "raw-shm", "shm-block", "mq", "udp", "eventfd-shm"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    for m in open {
        let r =
            measure::open_loop(m, 64, 2000, Duration::from_millis(100), &settings).map_err(|e| e.to_string()).and_then(
                |run| if run.messages > 0 && run.p50_ns <= run.max_ns { Ok(()) } else { Err(format!("{run:?}")) },
            );
        results.push((format!("{m} open loop at 2000/s"), r));
    }

    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (name, r) in &results {
        match r {
            Ok(()) => println!("ok     {name}"),
            Err(e) => println!("FAILED {name}: {e}"),
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
