//! A bounded soak: 64 clients on a tcp and on a unix listener, 10,000 echoed messages each of
//! mixed sizes, every echo verified; open fds return to their count and resident memory does
//! not grow from one round to the next.
//!
//! `SWITCHBOARD_SOAK_MESSAGES` sets the messages per client (default 10,000).

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{payload, with_deadline};
use switchboard::{Listener, Options, Transport, connect};

const CLIENTS: usize = 64;

fn messages() -> usize {
    std::env::var("SWITCHBOARD_SOAK_MESSAGES").ok().and_then(|m| m.parse().ok()).unwrap_or(10_000)
}

/// Mostly small messages, some of a few KiB, a few of 64 KiB.
fn size_of(client: usize, i: usize) -> usize {
    match (client * 7 + i) % 50 {
        0 => 64 << 10,
        1..=9 => (i * 37) % 4096,
        _ => (i * 13) % 256,
    }
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One round: a listener, CLIENTS client threads and a server thread per client.
fn round(tcp: bool, count: usize) -> u64 {
    let options = Options::new().max_message_size(1 << 20);
    let listener =
        Arc::new(if tcp { Listener::bind_tcp(&options) } else { Listener::bind_unix_private(&options) }.unwrap());
    let addr = listener.local_addr().clone();
    let server = {
        let listener = listener.clone();
        thread::spawn(move || {
            let workers: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let mut conn = listener.accept().unwrap();
                    thread::spawn(move || {
                        let mut buf = Vec::new();
                        let mut n = 0u64;
                        while conn.recv(&mut buf).is_ok() {
                            conn.send(&buf).unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let addr = addr.clone();
            thread::spawn(move || {
                let mut conn = connect(&addr, &Options::new().max_message_size(1 << 20)).unwrap();
                let mut buf = Vec::new();
                for i in 0..count {
                    let msg = payload((c * count + i) as u64, size_of(c, i));
                    conn.send(&msg).unwrap();
                    conn.recv(&mut buf).unwrap();
                    assert!(buf == msg, "client {c}, message {i}: echo differs");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let echoed = server.join().unwrap();
    assert_eq!(listener.refused(), 0);
    echoed
}

fn soak(tcp: bool) {
    let count = messages();
    let fds = common::fd_count();
    // A short first round warms the allocator's per-thread arenas; the second must not grow.
    round(tcp, (count / 5).max(1));
    let rss_warm = rss_kib();
    let started = Instant::now();
    let echoed = round(tcp, count);
    let rss_after = rss_kib();
    assert_eq!(echoed, (CLIENTS * count) as u64);
    assert_eq!(common::fd_count(), fds, "open fds must return to their count");
    let growth = rss_after.saturating_sub(rss_warm);
    println!(
        "{}: {echoed} echoes verified in {:.1} s; RSS {rss_warm} KiB -> {rss_after} KiB",
        if tcp { "tcp" } else { "unix" },
        started.elapsed().as_secs_f64()
    );
    assert!(growth < 32 << 10, "resident memory grew by {growth} KiB from one round to the next");
}

/// The fd and memory checks are process-wide: the two soaks must not overlap.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn tcp_64_clients_soak() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    with_deadline(Duration::from_secs(600), || soak(true));
}

#[test]
fn unix_64_clients_soak() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    with_deadline(Duration::from_secs(600), || soak(false));
}
