//! Split endpoints: a sending half and a receiving half used from two threads at once, for
//! every transport that splits, in one process and across processes (this binary re-runs
//! itself as the child: `harness = false`). Each test runs under a deadline.

mod common;

use std::os::fd::AsFd;
use std::thread;
use std::time::Duration;

use common::{ChildGuard, ROLE_ENV, check_sequenced, child_command, sequenced};
use switchboard::{Error, Kind, Options, RecvHalf, SendHalf, Transport, WaitStrategy, pair};

const CHILD_LIMIT: Duration = Duration::from_secs(60);
const TEST_LIMIT: Duration = Duration::from_secs(90);
/// Long enough for any healthy exchange on a loaded machine, short enough to fail a hang.
const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    let mut tests: Vec<common::NamedTest> = Vec::new();
    for (label, kind, options) in configs() {
        type Scenario = fn(Kind, Options);
        let scenarios: [(&str, Scenario); 7] = [
            ("full_duplex_in_process", full_duplex_in_process),
            ("full_duplex_with_a_child", full_duplex_with_a_child),
            ("buffered_messages_go_to_the_receiving_half", buffered_messages_go_to_the_receiving_half),
            ("dropping_the_sending_half_ends_that_direction", dropping_the_sending_half_ends_that_direction),
            ("peer_gone_reaches_both_halves", peer_gone_reaches_both_halves),
            ("receiving_half_is_pollable", receiving_half_is_pollable),
            ("both_halves_asleep_at_once", both_halves_asleep_at_once),
        ];
        for (name, f) in scenarios {
            let options = options.clone();
            tests.push((format!("{label}::{name}"), Box::new(move || f(kind, options.clone()))));
        }
    }
    #[cfg(feature = "zmq")]
    tests.push(("zmq::split_is_unsupported".into(), Box::new(zmq_split_is_unsupported)));
    common::run_tests(tests, TEST_LIMIT, Vec::new);
}

/// Every transport that splits, shm in every wait strategy, with a small shm ring so that
/// big messages fragment and senders wait for space.
fn configs() -> Vec<(String, Kind, Options)> {
    common::transport_configs(&common::options().ring_capacity(1 << 16))
        .into_iter()
        .filter(|(_, kind, _)| kind.name() != "zmq")
        .collect()
}

fn split(t: Box<dyn Transport>) -> (SendHalf, RecvHalf) {
    let kind = t.kind();
    t.split().unwrap_or_else(|e| panic!("split({kind}): {e}"))
}

/// Sizes that cross every internal boundary: empty, tiny, above a pipe's or shm ring's
/// record, above a socket buffer.
const SIZES: [usize; 5] = [0, 7, 5000, 70_000, 600_000];

/// The sending half streams sequenced messages while the receiving half, on another thread,
/// reads their echoes: neither waits for the other, and big messages fill both directions at
/// once (a sending half cannot read ahead, so this deadlocks unless the halves really run
/// concurrently).
fn stream_through_echo(tx: SendHalf, rx: RecvHalf, count: u64) {
    let reader = thread::spawn(move || {
        let mut rx = rx;
        let mut buf = Vec::new();
        for expected in 0..count {
            rx.recv_timeout(&mut buf, PATIENCE).unwrap_or_else(|e| panic!("echo {expected}: {e}"));
            assert_eq!(check_sequenced(&buf).unwrap(), expected);
            assert_eq!(buf.len(), 16 + SIZES[expected as usize % SIZES.len()]);
        }
        rx
    });
    let mut tx = tx;
    for seq in 0..count {
        tx.send(&sequenced(seq, SIZES[seq as usize % SIZES.len()])).unwrap();
    }
    reader.join().expect("the receiving thread panicked");
}

fn echo_loop(mut t: Box<dyn Transport>) {
    let mut buf = Vec::new();
    while t.recv(&mut buf).is_ok() {
        if t.send(&buf).is_err() {
            break;
        }
    }
}

fn full_duplex_in_process(kind: Kind, options: Options) {
    let (a, b) = pair(kind, &options).unwrap();
    let echo = thread::spawn(move || echo_loop(b));
    let (tx, rx) = split(a);
    stream_through_echo(tx, rx, 60);
    echo.join().unwrap();
}

fn full_duplex_with_a_child(kind: Kind, options: Options) {
    let (child, t) = spawn(kind, &options, "echo");
    let (tx, rx) = split(t);
    stream_through_echo(tx, rx, 60);
    child.wait_success();
}

fn spawn(kind: Kind, options: &Options, role: &str) -> (ChildGuard, Box<dyn Transport>) {
    let mut cmd = child_command(role);
    let (child, t) = options.spawn_child(kind, &mut cmd).unwrap_or_else(|e| panic!("spawn_child({kind}): {e}"));
    (ChildGuard::new(child, CHILD_LIMIT), t)
}

fn child(role: &str) {
    let t = switchboard::connect_to_parent().expect("connect_to_parent");
    match role {
        "echo" => echo_loop(t),
        // Splits its own end too: its receiving thread forwards to its sending thread.
        "split_echo" => {
            let (mut tx, mut rx) = t.split().expect("split in the child");
            let (fwd, inbox) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let reader = thread::spawn(move || {
                let mut buf = Vec::new();
                while rx.recv(&mut buf).is_ok() {
                    if fwd.send(std::mem::take(&mut buf)).is_err() {
                        break;
                    }
                }
            });
            for msg in inbox {
                if tx.send(&msg).is_err() {
                    break;
                }
            }
            reader.join().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Two messages arrive in one read before the split: the one still buffered is the
/// receiving half's first.
fn buffered_messages_go_to_the_receiving_half(kind: Kind, options: Options) {
    let (mut a, mut b) = pair(kind, &options).unwrap();
    b.send(b"first").unwrap();
    b.send(b"second").unwrap();
    let mut buf = Vec::new();
    a.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"first");
    let (mut tx, mut rx) = split(a);
    rx.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"second");
    tx.send(b"after the split").unwrap();
    b.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"after the split");
}

/// The peer's receive sees everything sent, then `Disconnected`, once the sending half is
/// dropped, while the receiving half still works; the whole endpoint closes with the last
/// half. Tried with a child that splits its own end.
fn dropping_the_sending_half_ends_that_direction(kind: Kind, options: Options) {
    let (mut a, b) = pair(kind, &options).unwrap();
    let (mut tx, mut rx) = split(b);
    tx.send(b"last words").unwrap();
    drop(tx);
    let mut buf = Vec::new();
    a.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"last words");
    let end = a.recv_timeout(&mut buf, PATIENCE);
    assert!(matches!(end, Err(Error::Disconnected)), "{kind}: after the sending half's drop: {end:?}");
    // The other direction still works.
    a.send(b"still listening?").unwrap();
    rx.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"still listening?");
    drop(rx);

    // Across processes: the child forwards from its receiving half to its sending half.
    let (child, t) = spawn(kind, &options, "split_echo");
    let (mut tx, mut rx) = split(t);
    let reader = thread::spawn(move || {
        let mut buf = Vec::new();
        for i in 0..100u64 {
            rx.recv_timeout(&mut buf, PATIENCE).unwrap();
            assert_eq!(check_sequenced(&buf).unwrap(), i);
        }
        rx.recv_timeout(&mut buf, PATIENCE)
    });
    for i in 0..100u64 {
        tx.send(&sequenced(i, 3000)).unwrap();
    }
    drop(tx); // the child's receiving half ends, so it drops its sending half: we see the end
    let end = reader.join().expect("the receiving thread panicked");
    assert!(matches!(end, Err(Error::Disconnected)), "{kind}: child's end: {end:?}");
    child.wait_success();
}

/// A peer that goes away: the receiving half gets `Disconnected`, and the sending half's
/// sends fail once nothing can take them (not necessarily the first: buffers take some).
fn peer_gone_reaches_both_halves(kind: Kind, options: Options) {
    let (a, b) = pair(kind, &options).unwrap();
    let (mut tx, mut rx) = split(a);
    drop(b);
    let mut buf = Vec::new();
    let end = rx.recv_timeout(&mut buf, PATIENCE);
    assert!(matches!(end, Err(Error::Disconnected)), "{kind}: receiving half after the peer's drop: {end:?}");
    let chunk = vec![1u8; 64 << 10];
    let failed = (0..1000).map(|_| tx.send_timeout(&chunk, PATIENCE)).find(|r| r.is_err());
    assert!(matches!(failed, Some(Err(Error::Disconnected))), "{kind}: sending half after the peer's drop: {failed:?}");
}

/// The receiving half has the readiness descriptor: readable exactly when a receive would
/// not wait.
fn receiving_half_is_pollable(kind: Kind, options: Options) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let readable = |rx: &RecvHalf, wait: PollTimeout| {
        let mut fds = [PollFd::new(rx.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, wait).unwrap() > 0
    };
    let (a, mut b) = pair(kind, &options).unwrap();
    let (_tx, mut rx) = split(a);
    let mut buf = Vec::new();
    // The first use may poll readable once, spuriously (shm: until a receive times out).
    let _ = readable(&rx, PollTimeout::ZERO);
    assert!(matches!(rx.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)));
    assert!(!readable(&rx, PollTimeout::ZERO), "{kind}: readable with nothing sent");
    b.send(b"one").unwrap();
    b.send(b"two").unwrap();
    assert!(readable(&rx, PollTimeout::try_from(PATIENCE).unwrap()), "{kind}: not readable after a send");
    rx.recv_timeout(&mut buf, Duration::ZERO).unwrap();
    assert!(readable(&rx, PollTimeout::ZERO), "{kind}: \"two\" waits but the half is not readable");
    rx.recv_timeout(&mut buf, Duration::ZERO).unwrap();
    assert_eq!(buf, b"two");
    assert!(matches!(rx.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)));
}

/// The receiving half waits for data while the sending half waits for room, both on the same
/// endpoint (for shm: the same doorbell). The peer first drains (which must wake the
/// sender), then sends (which must wake the receiver).
fn both_halves_asleep_at_once(kind: Kind, options: Options) {
    let options = if kind == Kind::Shm { options.wait_strategy(WaitStrategy::Block) } else { options };
    let (a, mut b) = pair(kind, &options).unwrap();
    let (mut tx, mut rx) = split(a);
    let receiver = thread::spawn(move || {
        let mut buf = Vec::new();
        rx.recv_timeout(&mut buf, PATIENCE).map(|_| buf)
    });
    // More than any ring, pipe or socket buffer holds: the sender must wait for the peer.
    let big = vec![7u8; 4 << 20];
    let sender = thread::spawn(move || tx.send_timeout(&big, PATIENCE));
    let mut buf = Vec::new();
    b.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf.len(), 4 << 20, "{kind}: the big message");
    sender.join().unwrap().unwrap_or_else(|e| panic!("{kind}: sending half: {e}"));
    b.send(b"wake the receiver").unwrap();
    let got = receiver.join().unwrap().unwrap_or_else(|e| panic!("{kind}: receiving half: {e}"));
    assert_eq!(got, b"wake the receiver");
}

#[cfg(feature = "zmq")]
fn zmq_split_is_unsupported() {
    let (a, _b) = pair(Kind::Zmq, &common::options()).unwrap();
    assert!(matches!(a.split(), Err(Error::Unsupported(_))));
}
