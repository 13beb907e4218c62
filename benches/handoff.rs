//! What typed messages and descriptor passing cost, in one process (a thread per side):
//!
//! - `typed round trip`: a `Typed` round trip against the same bytes sent raw, at 64 B and
//!   64 KiB payloads, over unix and shm (adaptive).
//! - `hand over`: a payload of 1, 16 or 64 MiB moved one way over a unix socket and read once
//!   by the receiver, copied through the socket against handed over as a sealed memfd
//!   (written in place by the sender, or copied into the memfd first).
//!
//! `cargo bench --features serde --bench handoff` (all), `... -- 'hand over'` (one group).

use std::hint::black_box;
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use switchboard::{Kind, Options, SealedMemfd, Transport, Typed, UnixTransport, pair};

#[derive(Serialize, Deserialize, Clone)]
struct Sample {
    id: u64,
    tags: Vec<u16>,
    /// Encoded as one byte string, as `serde_bytes` does: serde's default for `Vec<u8>` is a
    /// sequence of `u8`, one call per byte (measured as `typed (seq)`).
    #[serde(with = "byte_string")]
    body: Vec<u8>,
}

/// The same message with the body left to serde's default (a sequence).
#[derive(Serialize, Deserialize, Clone)]
struct SeqSample {
    id: u64,
    tags: Vec<u16>,
    body: Vec<u8>,
}

mod byte_string {
    pub(crate) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(V)
    }
}

fn sample(payload: usize) -> Sample {
    // About `payload` bytes encoded: a few fields, mostly the body.
    Sample { id: 42, tags: vec![1, 2, 3, 4], body: vec![7; payload.saturating_sub(16)] }
}

fn typed_group(c: &mut Criterion) {
    for size in [64usize, 64 << 10] {
        let mut g = c.benchmark_group(format!(
            "typed round trip {}",
            if size < 1024 { "64 B".into() } else { "64 KiB".to_string() }
        ));
        g.throughput(Throughput::Bytes(2 * size as u64));
        for kind in [Kind::Unix, Kind::Shm] {
            let msg = sample(size);
            let bytes = postcard_len_bytes(&msg);
            g.bench_function(BenchmarkId::new("bytes", kind), |b| {
                let (mut a, mut peer) = pair(kind, &Options::new()).unwrap();
                let echo = std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    while peer.recv(&mut buf).is_ok() {
                        if peer.send(&buf).is_err() {
                            break;
                        }
                    }
                });
                let mut buf = Vec::new();
                b.iter(|| {
                    a.send(&bytes).unwrap();
                    a.recv(&mut buf).unwrap();
                    black_box(&buf);
                });
                drop(a);
                echo.join().unwrap();
            });
            g.bench_function(BenchmarkId::new("typed", kind), |b| typed_echo(b, kind, msg.clone()));
            let seq = SeqSample { id: msg.id, tags: msg.tags.clone(), body: msg.body.clone() };
            g.bench_function(BenchmarkId::new("typed (seq)", kind), |b| typed_echo(b, kind, seq.clone()));
        }
        g.finish();
    }
}

/// Round trips of `msg` through a `Typed` echo.
fn typed_echo<T>(b: &mut criterion::Bencher<'_>, kind: Kind, msg: T)
where
    T: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let (a, peer) = pair(kind, &Options::new()).unwrap();
    let echo = std::thread::spawn(move || {
        let mut peer = Typed::<T>::new(peer);
        while let Ok(s) = peer.recv() {
            if peer.send(&s).is_err() {
                break;
            }
        }
    });
    let mut a = Typed::<T>::new(a);
    b.iter(|| {
        a.send(&msg).unwrap();
        black_box(a.recv().unwrap());
    });
    drop(a);
    echo.join().unwrap();
}

fn postcard_len_bytes(msg: &Sample) -> Vec<u8> {
    // The bytes-only baseline sends as many bytes as the typed encoding.
    let (a, b) = pair(Kind::Pipe, &Options::new()).unwrap();
    let mut t = Typed::<Sample, ()>::new(a);
    t.send(msg).unwrap();
    let mut b = b;
    let mut buf = Vec::new();
    b.recv(&mut buf).unwrap();
    buf
}

/// Reads every byte once, as a receiver that uses the payload would.
fn consume(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).fold(0, u64::wrapping_add)
}

#[derive(Clone, Copy)]
enum Way {
    Copy,
    MemfdInPlace,
    MemfdCopied,
}

fn hand_over_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("hand over");
    g.sample_size(10).measurement_time(Duration::from_secs(2));
    for mib in [1usize, 16, 64] {
        let len = mib << 20;
        g.throughput(Throughput::Bytes(len as u64));
        for (name, way) in
            [("copy", Way::Copy), ("memfd in place", Way::MemfdInPlace), ("memfd copied", Way::MemfdCopied)]
        {
            g.bench_function(BenchmarkId::new(name, format!("{mib} MiB")), |b| {
                b.iter_custom(|iters| hand_over(way, len, iters));
            });
        }
    }
    g.finish();
}

/// Moves `iters` payloads of `len` bytes from one thread to another; each is acknowledged
/// once the receiver has read it.
fn hand_over(way: Way, len: usize, iters: u64) -> Duration {
    let options = Options::new().max_message_size(len + 64);
    let (mut tx, mut rx) = UnixTransport::pair(&options).unwrap();
    let (ack_tx, ack_rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        let (mut buf, mut fds) = (Vec::new(), Vec::new());
        for _ in 0..iters {
            fds.clear();
            rx.recv_with_fds(&mut buf, &mut fds).unwrap();
            let sum = match fds.pop() {
                Some(fd) => consume(&SealedMemfd::from_fd(fd).unwrap()),
                None => consume(&buf),
            };
            ack_tx.send(sum).unwrap();
        }
    });
    let source = vec![3u8; len];
    let started = Instant::now();
    for _ in 0..iters {
        match way {
            Way::Copy => tx.send(&source).unwrap(),
            Way::MemfdInPlace => {
                let payload = SealedMemfd::with_len(len, |b| b.fill(3)).unwrap();
                tx.send_with_fds(b"", &[payload.as_fd()]).unwrap();
            }
            Way::MemfdCopied => {
                let payload = SealedMemfd::copy_from(&source).unwrap();
                tx.send_with_fds(b"", &[payload.as_fd()]).unwrap();
            }
        }
        black_box(ack_rx.recv().unwrap());
    }
    let took = started.elapsed();
    receiver.join().unwrap();
    took
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    typed_group(&mut c);
    hand_over_group(&mut c);
    c.final_summary();
}
