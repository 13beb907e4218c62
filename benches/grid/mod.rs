//! The grid both benches run: every transport and raw baseline at six sizes, each with one
//! child process kept alive across criterion's timed batches.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use switchboard::measure::{self, BenchPeer, Mechanism, Settings, human_size};

/// Runs `group` (e.g. "round trip") over the grid; `bytes_per_iter` is how many payload bytes
/// one iteration moves per byte of message, `time` times `iters` iterations on a peer.
pub(crate) fn run(group: &str, bytes_per_iter: u64, time: fn(&mut BenchPeer, u64) -> Duration) {
    // This binary is also the measurement child.
    measure::serve_if_child();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .nresamples(10_000)
        .configure_from_args();
    for size in [8usize, 64, 1 << 10, 16 << 10, 64 << 10, 1 << 20] {
        let mut g = c.benchmark_group(format!("{group} {}", human_size(size)));
        g.throughput(Throughput::Bytes(bytes_per_iter * size as u64));
        for m in Mechanism::with_baselines(&Mechanism::all_transports()) {
            // Spawned only if criterion's filter selects this benchmark.
            let mut peer: Option<BenchPeer> = None;
            g.bench_function(BenchmarkId::from_parameter(m), |b| {
                let p =
                    peer.get_or_insert_with(|| BenchPeer::spawn(m, size, &Settings::default()).expect("spawn peer"));
                b.iter_custom(|iters| time(p, iters));
            });
            if let Some(p) = peer {
                p.finish().expect("peer exits cleanly");
            }
        }
        g.finish();
    }
    c.final_summary();
}
