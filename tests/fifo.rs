//! The fifo transport by address: a server makes two fifos (0600) that one client opens, the
//! names go as soon as both hold them, stale fifos are taken over, and a path that is not a
//! fifo, a fifo in use, a missing server or a silent client are typed errors that leave
//! nothing behind.

mod common;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::{TempDir, with_deadline};
use switchboard::{Address, Error, FifoTransport, Kind, Listener, Options, Transport, connect};

const LIMIT: Duration = Duration::from_secs(60);

fn names(base: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", base.display()));
    [with(".to-server"), with(".to-client")]
}

fn short() -> Options {
    Options::new().handshake_timeout(Duration::from_millis(300))
}

/// Polls (with a deadline, no sleeping) until `path` exists.
fn wait_for(path: &Path) {
    let end = Instant::now() + LIMIT;
    while !path.exists() {
        assert!(Instant::now() < end, "{} never appeared", path.display());
        thread::yield_now();
    }
}

#[test]
fn a_server_and_a_client_meet_at_a_path_that_then_disappears() {
    with_deadline(LIMIT, || {
        let dir = TempDir::new("fifo");
        let base = dir.path().join("app");
        let server = {
            let base = base.clone();
            thread::spawn(move || FifoTransport::create(&base, &Options::new()))
        };
        let [up, down] = names(&base);
        wait_for(&down);
        for name in [&up, &down] {
            let meta = std::fs::metadata(name).unwrap();
            assert!(meta.file_type().is_fifo());
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", name.display());
        }
        let mut client = connect(&Address::Fifo(base.clone()), &Options::new()).unwrap();
        let mut server = server.join().unwrap().unwrap();
        assert_eq!((client.kind(), server.kind()), (Kind::Fifo, Kind::Fifo));
        assert!(!up.exists() && !down.exists(), "the names go once both sides hold them");
        // More than the pipe holds: the client sends from a thread while the server reads.
        let sender = thread::spawn(move || {
            client.send(&vec![3; 3 << 20]).unwrap();
            client
        });
        let mut buf = Vec::new();
        server.recv(&mut buf).unwrap();
        assert_eq!(buf.len(), 3 << 20);
        let mut client = sender.join().unwrap();
        server.send(b"back").unwrap();
        client.recv(&mut buf).unwrap();
        assert_eq!(buf, b"back");
        // Peer gone: both directions see it.
        drop(client);
        common::expect_disconnected(&mut server, LIMIT);
        common::send_until_disconnected(&mut server, LIMIT);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left in the directory");
    });
}

#[test]
fn a_stale_fifo_is_taken_over_and_a_live_one_refused() {
    with_deadline(LIMIT, || {
        let dir = TempDir::new("fifo-stale");
        let base = dir.path().join("app");
        let [up, down] = names(&base);
        // A server that died before anyone came: its fifos, nobody reading them.
        for name in [&up, &down] {
            nix::unistd::mkfifo(name, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }
        let err = FifoTransport::open(&base, &short()).unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused), "{err:?}");
        let server = {
            let base = base.clone();
            thread::spawn(move || FifoTransport::create(&base, &Options::new()))
        };
        // Wait until the new server reads its fifo (a writer can open it without waiting),
        // then a second server is refused. Both checks open the fifo and close it again,
        // which the first server must shrug off.
        loop {
            match std::fs::OpenOptions::new().write(true).custom_flags_nonblock().open(&up) {
                Ok(_) => break,
                Err(_) => thread::yield_now(),
            }
        }
        let second = FifoTransport::create(&base, &short()).unwrap_err();
        assert!(matches!(&second, Error::Io(e) if e.kind() == std::io::ErrorKind::AddrInUse), "{second:?}");
        assert!(second.to_string().contains("app.to-server"), "{second}");
        let mut client = FifoTransport::open(&base, &Options::new()).unwrap();
        let mut server = server.join().unwrap().unwrap();
        client.send(b"after a takeover").unwrap();
        let mut buf = Vec::new();
        server.recv(&mut buf).unwrap();
        assert_eq!(buf, b"after a takeover");
    });
}

#[test]
fn a_path_that_is_not_a_fifo_is_refused_and_left_alone() {
    with_deadline(LIMIT, || {
        let dir = TempDir::new("fifo-file");
        let base = dir.path().join("app");
        let [up, down] = names(&base);
        std::fs::write(&up, b"precious").unwrap();
        let err = FifoTransport::create(&base, &short()).unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::AlreadyExists), "{err:?}");
        assert!(err.to_string().contains("not a fifo"), "{err}");
        assert_eq!(std::fs::read(&up).unwrap(), b"precious");
        assert!(!down.exists());
        let err = FifoTransport::open(&base, &short()).unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput), "{err:?}");
        assert_eq!(std::fs::read(&up).unwrap(), b"precious", "the client wrote nothing into it");
    });
}

#[test]
fn no_client_or_no_server_is_a_timely_error_and_leaves_nothing() {
    with_deadline(LIMIT, || {
        let dir = TempDir::new("fifo-alone");
        let base = dir.path().join("app");
        let started = Instant::now();
        let err = FifoTransport::create(&base, &short()).unwrap_err();
        assert!(matches!(err, Error::Handshake(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the fifos go with a failed server");
        let err = FifoTransport::open(&base, &short()).unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound), "{err:?}");
        assert!(err.to_string().contains("app.to-server"), "{err}");
        assert!(matches!(Listener::bind(&Address::Fifo(base), &Options::new()), Err(Error::Config(_))));
    });
}

#[test]
fn a_client_that_writes_garbage_is_a_handshake_error_for_the_server() {
    with_deadline(LIMIT, || {
        let dir = TempDir::new("fifo-garbage");
        let base = dir.path().join("app");
        let server = {
            let base = base.clone();
            thread::spawn(move || FifoTransport::create(&base, &Options::new()))
        };
        let [up, _] = names(&base);
        wait_for(&up);
        // Open for writing once the server reads (ENXIO before), then say something else.
        let mut raw = loop {
            match std::fs::OpenOptions::new().write(true).custom_flags_nonblock().open(&up) {
                Ok(f) => break f,
                Err(_) => thread::yield_now(),
            }
        };
        raw.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let err = server.join().unwrap().unwrap_err();
        assert!(matches!(err, Error::Handshake(_)), "{err:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    });
}

/// `O_NONBLOCK` for the raw writer, so that opening a fifo nobody reads yet fails instead of
/// blocking.
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}
