//! Round-trip latency, transport x size, each beside its raw baseline; the child is spawned
//! once per benchmark and timed with `iter_custom`.
//!
//! `cargo bench --bench latency` (all), `cargo bench --bench latency -- '64 B'` (one group),
//! `cargo bench --bench latency -- 'shm-spin'` (one transport everywhere).

mod grid;

fn main() {
    grid::run("round trip", 2, |peer, iters| peer.round_trips(iters).expect("round trips"));
}
