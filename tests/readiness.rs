//! The readiness contract, for every transport (shm in every wait strategy): the descriptor
//! from `Transport::ready_fd` (and `AsFd` on the concrete types) polls readable whenever
//! `recv_timeout(Duration::ZERO)` would return something other than `Timeout`: messages the
//! library already buffered, the peer's departure, a protocol error. In one process and with
//! a child process that is then SIGKILLed.

mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;

use common::{ChildGuard, ROLE_ENV, with_deadline};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use switchboard::{Error, Kind, Options, Transport, UnixTransport, pair};

const LIMIT: Duration = Duration::from_secs(60);

fn configs() -> Vec<(String, Kind, Options)> {
    common::transport_configs(&Options::new())
}

/// Whether `t`'s descriptor polls readable within `ms` milliseconds.
fn readable(t: &dyn Transport, ms: u16) -> bool {
    let mut fds = [PollFd::new(t.ready_fd().expect("a readiness descriptor"), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).expect("poll") > 0
}

/// Makes the descriptor, then receives with `Duration::ZERO` until `Timeout`, so that it is
/// armed and quiet (a new descriptor may start readable: a spurious wake-up is allowed, a
/// missed one is not).
fn drain(t: &mut dyn Transport) -> usize {
    t.ready_fd().expect("a readiness descriptor");
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        match t.recv_timeout(&mut buf, Duration::ZERO) {
            Ok(_) => n += 1,
            Err(Error::Timeout) => return n,
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[test]
fn buffered_messages_keep_the_descriptor_readable() {
    with_deadline(LIMIT, || {
        for (label, kind, options) in configs() {
            let (mut a, mut b) = pair(kind, &options).unwrap();
            drain(b.as_mut());
            assert!(!readable(b.as_ref(), 0), "{label}: readable with nothing to receive");
            for i in 0..3u8 {
                a.send(&[i; 100]).unwrap();
            }
            assert!(readable(b.as_ref(), 5000), "{label}: three messages sent, not readable");
            let mut buf = Vec::new();
            for i in 0..3u8 {
                // Before each receive the descriptor must say so: the library may hold the
                // rest in its buffer, where the kernel cannot see them.
                assert!(readable(b.as_ref(), 0), "{label}: message {i} waits, not readable");
                b.recv_timeout(&mut buf, Duration::ZERO).unwrap();
                assert_eq!(buf, [i; 100]);
            }
            assert!(matches!(b.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)));
            assert!(!readable(b.as_ref(), 0), "{label}: readable after everything was received");
        }
    });
}

#[test]
fn a_departed_peer_makes_it_readable() {
    with_deadline(LIMIT, || {
        for (label, kind, options) in configs() {
            let (mut a, mut b) = pair(kind, &options).unwrap();
            drain(b.as_mut());
            a.send(b"last words").unwrap();
            drop(a);
            assert!(readable(b.as_ref(), 5000), "{label}");
            let mut buf = Vec::new();
            b.recv_timeout(&mut buf, Duration::ZERO).unwrap();
            assert!(readable(b.as_ref(), 5000), "{label}: the departure must stay readable");
            assert!(matches!(b.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Disconnected)), "{label}");
        }
    });
}

#[test]
fn a_protocol_error_makes_it_readable() {
    with_deadline(LIMIT, || {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut t = UnixTransport::from_std(ours, &Options::new().max_message_size(16)).unwrap();
        let _ = t.as_fd(); // AsFd hands out the same readiness descriptor
        drain(&mut t);
        theirs.write_all(&1000u32.to_le_bytes()).unwrap();
        assert!(readable(&t, 5000));
        let mut buf = Vec::new();
        assert!(matches!(t.recv_timeout(&mut buf, Duration::ZERO), Err(Error::FrameTooLarge { .. })));
        assert!(readable(&t, 0), "the finished connection stays readable");
    });
}

#[test]
fn a_child_that_bursts_then_dies_is_followed_by_poll_alone() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        if role == "burst" {
            let mut parent = switchboard::connect_to_parent().unwrap();
            let mut buf = Vec::new();
            parent.recv(&mut buf).unwrap();
            for i in 0..500u32 {
                parent.send(&i.to_le_bytes()).unwrap();
            }
            // Wait to be killed.
            let _ = parent.recv(&mut buf);
        }
        return;
    }
    with_deadline(LIMIT, || {
        for (label, kind, options) in configs() {
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", "a_child_that_bursts_then_dies_is_followed_by_poll_alone"]);
            cmd.env(ROLE_ENV, "burst").stdout(std::process::Stdio::null());
            let (child, mut conn) = options.spawn_child(kind, &mut cmd).unwrap();
            let mut child = ChildGuard::new(child, LIMIT);
            drain(conn.as_mut());
            conn.send(b"go").unwrap();
            let mut got = 0u32;
            let mut buf = Vec::new();
            while got < 500 {
                assert!(readable(conn.as_ref(), 10_000), "{label}: stalled at {got} of 500");
                loop {
                    match conn.recv_timeout(&mut buf, Duration::ZERO) {
                        Ok(_) => {
                            assert_eq!(buf, got.to_le_bytes(), "{label}");
                            got += 1;
                        }
                        Err(Error::Timeout) => break,
                        Err(e) => panic!("{label}: {e:?}"),
                    }
                }
            }
            child.kill();
            let _ = child.wait();
            assert!(readable(conn.as_ref(), 10_000), "{label}: a killed child must make it readable");
            assert!(matches!(conn.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Disconnected)), "{label}");
        }
    });
}

#[test]
fn a_listener_is_readable_when_a_client_waits() {
    with_deadline(LIMIT, || {
        use switchboard::{Address, Listener, connect};
        for tcp in [true, false] {
            let options = Options::new();
            let listener = if tcp { Listener::bind_tcp(&options) } else { Listener::bind_unix_private(&options) };
            let listener = listener.unwrap();
            let fd_ready = |ms: u16| {
                let mut fds = [PollFd::new(listener.ready_fd().unwrap(), PollFlags::POLLIN)];
                poll(&mut fds, PollTimeout::from(ms)).unwrap() > 0
            };
            assert!(!fd_ready(0), "nobody there yet");
            // A raw client connects and says nothing: the listener takes it into its
            // handshakes; then the descriptor is quiet until the client speaks.
            let addr: Address = listener.local_addr().clone();
            let mut raw = common::RawConn::connect(&addr).unwrap();
            assert!(fd_ready(5000), "a connection in the backlog");
            assert!(matches!(listener.accept_timeout(Duration::ZERO).map(|_| ()), Err(Error::Timeout)));
            assert!(!fd_ready(0), "a silent client is no reason to wake up");
            let mut hello = 8u32.to_le_bytes().to_vec();
            hello.extend_from_slice(b"SWBH");
            hello.extend_from_slice(&switchboard::PROTOCOL_VERSION.to_le_bytes());
            hello.extend_from_slice(&0u16.to_le_bytes());
            raw.write_all(&hello).unwrap();
            assert!(fd_ready(5000), "its hello arrived");
            let conn = listener.accept_timeout(Duration::ZERO).unwrap();
            assert!(!fd_ready(0), "the accepted connection left the listener's set");
            // A real client, through poll alone.
            let addr2 = addr.clone();
            let client = std::thread::spawn(move || connect(&addr2, &Options::new()).map(|_| ()));
            let second = loop {
                assert!(fd_ready(10_000), "the second client never made it readable");
                match listener.accept_timeout(Duration::ZERO) {
                    Ok(c) => break c,
                    Err(Error::Timeout) => continue,
                    Err(e) => panic!("{e:?}"),
                }
            };
            client.join().unwrap().unwrap();
            drop((conn, second, raw));
        }
    });
}
