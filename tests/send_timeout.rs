//! `send_timeout`: a sender never waits past its deadline on a peer that stopped reading, and
//! a message is either not sent at all (`Timeout`) or delivered whole, in order, even when it
//! had to be finished later by `flush_timeout` or the next send. For every transport.

mod common;

use std::time::Duration;

use common::{payload, with_deadline};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use switchboard::{Error, Kind, Options, Transport, pair};

const LIMIT: Duration = Duration::from_secs(60);

fn configs() -> Vec<(String, Kind, Options)> {
    common::transport_configs(&Options::new().ring_capacity(1 << 16).max_message_size(32 << 20))
}

fn readable(t: &dyn Transport, ms: u16) -> bool {
    let mut fds = [PollFd::new(t.ready_fd().unwrap(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).unwrap() > 0
}

#[test]
fn a_full_peer_gives_timeouts_and_loses_nothing() {
    with_deadline(LIMIT, || {
        for (label, kind, options) in configs() {
            let (mut a, mut b) = pair(kind, &options).unwrap();
            // The peer does not read: accept messages until one times out at once.
            let mut accepted = 0u64;
            loop {
                match a.send_timeout(&payload(accepted, 1000), Duration::ZERO) {
                    Ok(()) => accepted += 1,
                    Err(Error::Timeout) => break,
                    Err(e) => panic!("{label}: {e:?}"),
                }
                assert!(accepted < 1_000_000, "{label}: never filled up");
            }
            // A timed-out message was not sent; a waiting tail is finished by flush.
            let mut buf = Vec::new();
            let mut got = 0u64;
            while got < accepted {
                match b.recv_timeout(&mut buf, Duration::from_millis(50)) {
                    Ok(_) => {
                        assert!(buf == payload(got, 1000), "{label}: message {got} damaged");
                        got += 1;
                    }
                    Err(Error::Timeout) => {
                        a.flush_timeout(Duration::ZERO)
                            .or_else(|e| if matches!(e, Error::Timeout) { Ok(()) } else { Err(e) })
                            .unwrap();
                    }
                    Err(e) => panic!("{label}: {e:?}"),
                }
            }
            assert_eq!(a.pending_send(), 0, "{label}");
            assert!(
                matches!(b.recv_timeout(&mut buf, Duration::from_millis(20)), Err(Error::Timeout)),
                "{label}: more arrived than was accepted"
            );
            // Still usable both ways.
            a.send_timeout(b"after", LIMIT).unwrap();
            b.recv(&mut buf).unwrap();
            assert_eq!(buf, b"after", "{label}");
        }
    });
}

#[test]
fn a_big_message_finished_later_arrives_whole_and_in_order() {
    with_deadline(LIMIT, || {
        for (label, kind, options) in configs() {
            let (mut a, mut b) = pair(kind, &options).unwrap();
            a.ready_fd().unwrap();
            let big = payload(1, 24 << 20);
            match a.send_timeout(&big, Duration::ZERO) {
                Ok(()) => {}
                Err(Error::Timeout) => panic!("{label}: an empty pipe, socket or ring must take the first bytes"),
                Err(e) => panic!("{label}: {e:?}"),
            }
            let pending = a.pending_send();
            assert!(pending > 0, "{label}: 24 MiB cannot all fit at once");
            // The next message waits behind it; a zero-timeout send says so.
            assert!(matches!(a.send_timeout(b"next", Duration::ZERO), Err(Error::Timeout)), "{label}");
            // The receiver reads, and the sender, woken by its descriptor, flushes.
            let receiver = std::thread::spawn(move || {
                let mut buf = Vec::new();
                b.recv(&mut buf).unwrap();
                let first = buf.clone();
                b.recv(&mut buf).unwrap();
                (first, buf)
            });
            while a.pending_send() > 0 {
                assert!(readable(a.as_ref(), 10_000), "{label}: room to write never made the descriptor readable");
                match a.flush_timeout(Duration::ZERO) {
                    Ok(()) | Err(Error::Timeout) => {}
                    Err(e) => panic!("{label}: {e:?}"),
                }
            }
            a.send(b"next").unwrap();
            let (first, second) = receiver.join().unwrap();
            assert!(first == big, "{label}: the big message came out damaged");
            assert_eq!(second, b"next", "{label}");
        }
    });
}

#[test]
fn after_a_timed_out_send_the_descriptor_goes_quiet_once_sends_succeed() {
    with_deadline(LIMIT, || {
        for (label, kind, options) in configs() {
            let (mut a, mut b) = pair(kind, &options).unwrap();
            a.ready_fd().unwrap();
            // Fill until a send times out before its first byte: the descriptor now waits for
            // room to write.
            let mut accepted = 0u64;
            while a.send_timeout(&payload(accepted, 1000), Duration::ZERO).is_ok() {
                accepted += 1;
                assert!(accepted < 1_000_000, "{label}: never filled up");
            }
            let mut buf = Vec::new();
            let mut got = 0;
            while got < accepted {
                match b.recv_timeout(&mut buf, Duration::from_millis(50)) {
                    Ok(_) => got += 1,
                    Err(Error::Timeout) => {
                        let _ = a.flush_timeout(Duration::ZERO);
                    }
                    Err(e) => panic!("{label}: {e:?}"),
                }
            }
            // Sends succeed again. With nothing to receive and nothing waiting to be written,
            // once a receive has said `Timeout` (readiness is a hint: see `ready_fd`), the
            // descriptor must not poll readable, or an event loop would spin on it.
            a.send(b"after").unwrap();
            b.recv(&mut buf).unwrap();
            assert_eq!(a.pending_send(), 0, "{label}");
            assert!(matches!(a.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)), "{label}");
            assert!(!readable(a.as_ref(), 0), "{label}: readable with nothing to receive or write");
        }
    });
}
