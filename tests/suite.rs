//! The generic suite, in one process: every transport (and every shm wait strategy) through
//! `pair()`, each endpoint on its own thread where the test needs a live peer.

mod common;

use std::thread;
use std::time::Duration;

use common::{MAX, check_sequenced, expect_disconnected, payload, send_until_disconnected, sequenced, with_deadline};
use switchboard::{Error, Kind, Options, Transport, WaitStrategy, pair};

const LIMIT: Duration = Duration::from_secs(60);

fn endpoints(kind: Kind, options: &Options) -> (Box<dyn Transport>, Box<dyn Transport>) {
    pair(kind, options).unwrap_or_else(|e| panic!("pair({kind}): {e}"))
}

/// Echoes every message back until the peer disconnects.
fn echo(mut t: Box<dyn Transport>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        loop {
            match t.recv(&mut buf) {
                Ok(_) => t.send(&buf).expect("echo send"),
                Err(Error::Disconnected) => return,
                Err(e) => panic!("echo recv: {e}"),
            }
        }
    })
}

fn round_trips(kind: Kind, options: Options) {
    let (mut a, b) = endpoints(kind, &options);
    let echoer = echo(b);
    let mut buf = Vec::new();
    for (i, len) in [0, 1, 2, 63, 64, 65, 4095, 65_536, 65_537, 1 << 20, 8 << 20, MAX].into_iter().enumerate() {
        let msg = payload(i as u64, len);
        a.send(&msg).unwrap();
        assert_eq!(a.recv(&mut buf).unwrap(), len);
        assert!(buf == msg, "{kind}: {len}-byte message came back different");
    }
    drop(a);
    echoer.join().unwrap();
}

fn max_plus_one_is_refused(kind: Kind, options: Options) {
    let (mut a, b) = endpoints(kind, &options);
    let echoer = echo(b);
    let err = a.send(&vec![1; MAX + 1]).unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge { len, max } if len == MAX + 1 && max == MAX), "{err:?}");
    let mut buf = Vec::new();
    a.send(b"still works").unwrap();
    a.recv(&mut buf).unwrap();
    assert_eq!(buf, b"still works");
    drop(a);
    echoer.join().unwrap();
}

fn ten_thousand_in_order(kind: Kind, options: Options) {
    let (mut a, mut b) = endpoints(kind, &options);
    let sender = thread::spawn(move || {
        for seq in 0..10_000u64 {
            a.send(&sequenced(seq, (seq % 300) as usize)).unwrap();
        }
        a
    });
    let mut buf = Vec::new();
    for expected in 0..10_000u64 {
        b.recv(&mut buf).unwrap();
        assert_eq!(check_sequenced(&buf).unwrap(), expected);
    }
    drop(sender.join().unwrap());
    expect_disconnected(b.as_mut(), LIMIT);
}

fn both_send_at_once(kind: Kind, options: Options) {
    let (a, b) = endpoints(kind, &options);
    // Each side sends 8 MiB before reading anything: more than a pipe, a Unix socket or the
    // test's shm ring holds, so this deadlocks unless a blocked send keeps reading (it may
    // buffer up to the maximum message size, 9 MiB here).
    let run = |mut t: Box<dyn Transport>| thread::spawn(move || common::flood(t.as_mut()));
    let (x, y) = (run(a), run(b));
    x.join().unwrap();
    y.join().unwrap();
}

fn drop_gives_disconnected(kind: Kind, options: Options) {
    let (mut a, mut b) = endpoints(kind, &options);
    b.send(b"last words").unwrap();
    drop(b);
    let mut buf = Vec::new();
    a.recv(&mut buf).unwrap();
    assert_eq!(buf, b"last words", "messages sent before the drop arrive first");
    expect_disconnected(a.as_mut(), LIMIT);
    expect_disconnected(a.as_mut(), LIMIT);
    send_until_disconnected(a.as_mut(), LIMIT);
}

fn timeout_then_delivered(kind: Kind, options: Options) {
    let (mut a, mut b) = endpoints(kind, &options);
    let mut buf = Vec::new();
    assert!(matches!(a.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)));
    assert!(matches!(a.recv_timeout(&mut buf, Duration::from_millis(20)), Err(Error::Timeout)));
    b.send(b"late").unwrap();
    assert_eq!(a.recv_timeout(&mut buf, LIMIT).unwrap(), 4);
    assert_eq!(buf, b"late");
    // A large message that is still arriving when the timeout fires is not lost.
    let big = payload(7, 4 << 20);
    let expected = big.clone();
    let sender = thread::spawn(move || {
        b.send(&big).unwrap();
        b
    });
    let mut timeouts = 0;
    loop {
        match a.recv_timeout(&mut buf, Duration::from_micros(50)) {
            Ok(n) => {
                assert_eq!(n, expected.len());
                assert!(buf == expected, "message reassembled across timeouts differs");
                break;
            }
            Err(Error::Timeout) => timeouts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let _ = timeouts;
    drop(sender.join().unwrap());
    assert_eq!(a.kind(), kind);
    assert_eq!(a.max_message_size(), MAX);
}

/// A batch arrives as its messages, in order, while the peer reads on another thread (the
/// batch is bigger than any buffer); a batch with one message above the maximum sends nothing.
fn batch_arrives_as_its_messages(kind: Kind, options: Options) {
    let (mut a, mut b) = endpoints(kind, &options);
    let msgs: Vec<Vec<u8>> = (0..3000u64).map(|i| sequenced(i, [0, 9, 48, 5000][i as usize % 4])).collect();
    let reader = thread::spawn(move || {
        let mut buf = Vec::new();
        for expected in 0..3000u64 {
            b.recv(&mut buf).unwrap();
            assert_eq!(check_sequenced(&buf).unwrap(), expected);
        }
        b
    });
    let batch: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    a.send_batch(&batch).unwrap();
    let mut b = reader.join().unwrap();
    let too_big = vec![0u8; MAX + 1];
    assert!(matches!(a.send_batch(&[b"fits", &too_big]), Err(Error::MessageTooLarge { .. })));
    let mut buf = Vec::new();
    assert!(
        matches!(b.recv_timeout(&mut buf, Duration::from_millis(50)), Err(Error::Timeout)),
        "{kind}: part of a refused batch arrived"
    );
    a.send_batch(&[]).unwrap();
    a.send_batch(&[b"after"]).unwrap();
    b.recv(&mut buf).unwrap();
    assert_eq!(buf, b"after");
}

macro_rules! suite {
    ($($name:ident: $kind:expr, $options:expr;)*) => {$(
        mod $name {
            use super::*;
            #[test] fn round_trips() { with_deadline(LIMIT, || super::round_trips($kind, $options)) }
            #[test] fn max_plus_one_is_refused() { with_deadline(LIMIT, || super::max_plus_one_is_refused($kind, $options)) }
            #[test] fn ten_thousand_in_order() { with_deadline(LIMIT, || super::ten_thousand_in_order($kind, $options)) }
            #[test] fn both_send_at_once() { with_deadline(LIMIT, || super::both_send_at_once($kind, $options)) }
            #[test] fn drop_gives_disconnected() { with_deadline(LIMIT, || super::drop_gives_disconnected($kind, $options)) }
            #[test] fn timeout_then_delivered() { with_deadline(LIMIT, || super::timeout_then_delivered($kind, $options)) }
            #[test] fn batch_arrives_as_its_messages() { with_deadline(LIMIT, || super::batch_arrives_as_its_messages($kind, $options)) }
        }
    )*};
}

suite! {
    tcp: Kind::Tcp, common::options();
    unix: Kind::Unix, common::options();
    pipe: Kind::Pipe, common::options();
    seqpacket: Kind::Seqpacket, common::options();
    fifo: Kind::Fifo, common::options();
    shm_spin: Kind::Shm, common::options().wait_strategy(WaitStrategy::Spin).ring_capacity(1 << 20);
    shm_block: Kind::Shm, common::options().wait_strategy(WaitStrategy::Block).ring_capacity(1 << 20);
    shm_adaptive: Kind::Shm, common::options().wait_strategy(WaitStrategy::Adaptive).ring_capacity(1 << 20);
}

#[cfg(feature = "zmq")]
suite! {
    zmq: Kind::Zmq, common::options();
}
