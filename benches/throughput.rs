//! One-way throughput (parent -> child, acknowledged at the end of each batch), transport x
//! size, each beside its raw baseline; the child is spawned once per benchmark and timed with
//! `iter_custom`.
//!
//! `cargo bench --bench throughput` (all), `cargo bench --bench throughput -- '64 KiB'` (one
//! group), `cargo bench --bench throughput -- 'shm-spin'` (one transport everywhere).

mod grid;

fn main() {
    grid::run("throughput", 1, |peer, iters| peer.stream(iters).expect("stream"));
}
