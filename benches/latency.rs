//! Round-trip latency, transport x size, each beside its raw baseline; the child is spawned
//! once per benchmark and timed with `iter_custom`.
//!
//! `cargo bench --bench latency` (all), `cargo bench --bench latency -- '64 B'` (one group),
//! `cargo bench --bench latency -- 'shm-spin'` (one transport everywhere).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use switchboard::measure::{self, BenchPeer, Mechanism, Settings, human_size};

fn main() {
    // This binary is also the measurement child.
    measure::serve_if_child();
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(700))
        .configure_from_args();
    for size in [8usize, 64, 1 << 10, 16 << 10, 64 << 10, 1 << 20] {
        let mut group = c.benchmark_group(format!("round trip {}", human_size(size)));
        group.throughput(Throughput::Bytes(2 * size as u64));
        let mut mechanisms = Vec::new();
        for t in Mechanism::all_transports() {
            mechanisms.push(t);
            if !mechanisms.contains(&t.raw()) {
                mechanisms.push(t.raw());
            }
        }
        for m in mechanisms {
            let id = BenchmarkId::from_parameter(m);
            // Spawn only if criterion's filter selects this benchmark.
            let mut peer: Option<BenchPeer> = None;
            group.bench_function(id, |b| {
                let p =
                    peer.get_or_insert_with(|| BenchPeer::spawn(m, size, &Settings::default()).expect("spawn peer"));
                b.iter_custom(|iters| p.round_trips(iters).expect("round trips"));
            });
            if let Some(p) = peer {
                p.finish().expect("peer exits cleanly");
            }
        }
        group.finish();
    }
    c.final_summary();
}
