//! The seqpacket transport's own promises: one record per message where it fits, big messages
//! as checked fragments up to the maximum, hostile raw peers refused with typed errors, and a
//! listener at a path or an abstract name with the unix handshake.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::thread;
use std::time::Duration;

use common::{TempDir, with_deadline};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect as raw_connect, recv, send, sendmsg,
    socket, socketpair,
};
use switchboard::{
    Address, DEFAULT_MAX_MESSAGE_SIZE, Error, Kind, Listener, Options, SeqpacketTransport, Transport, connect,
};

const LIMIT: Duration = Duration::from_secs(60);

/// A transport whose peer is a raw seqpacket socket we can write any record into.
fn raw_peer(options: &Options) -> (SeqpacketTransport, OwnedFd) {
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap();
    (SeqpacketTransport::from_fd(ours, options).unwrap(), theirs)
}

fn send_raw(fd: &OwnedFd, record: &[u8]) {
    send(fd.as_raw_fd(), record, MsgFlags::MSG_NOSIGNAL).unwrap();
}

fn first(total: u32, chunk: &[u8]) -> Vec<u8> {
    let mut r = vec![2];
    r.extend_from_slice(&total.to_le_bytes());
    r.extend_from_slice(chunk);
    r
}

fn readable(t: &dyn Transport) -> bool {
    let mut fds = [PollFd::new(t.ready_fd().unwrap(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).unwrap() > 0
}

#[test]
fn small_messages_are_one_record_each_and_big_ones_fragments() {
    with_deadline(LIMIT, || {
        let (mut t, raw) = raw_peer(&Options::new());
        let mut record = vec![0u8; 256 << 10];
        for msg in [&b""[..], b"x", &[9; 1000]] {
            t.send(msg).unwrap();
            let n = recv(raw.as_raw_fd(), &mut record, MsgFlags::empty()).unwrap();
            assert_eq!(&record[..n], [&[1u8][..], msg].concat(), "a whole record: tag 1, then the message");
        }
        // 64 KiB still fits one record; 1 MiB is a first record with the total, then more.
        t.send(&vec![5; 64 << 10]).unwrap();
        assert_eq!(recv(raw.as_raw_fd(), &mut record, MsgFlags::empty()).unwrap(), 1 + (64 << 10));
        let big = common::payload(3, 1 << 20);
        let sender = {
            let big = big.clone();
            thread::spawn(move || {
                t.send(&big).unwrap();
                t
            })
        };
        let (mut got, mut records) = (Vec::new(), 0);
        loop {
            let n = recv(raw.as_raw_fd(), &mut record, MsgFlags::empty()).unwrap();
            assert!(n <= 128 << 10, "records are at most 128 KiB, got {n}");
            records += 1;
            match record[0] {
                2 => {
                    assert_eq!(records, 1);
                    assert_eq!(u32::from_le_bytes(record[1..5].try_into().unwrap()), 1 << 20);
                    got.extend_from_slice(&record[5..n]);
                }
                3 => got.extend_from_slice(&record[1..n]),
                4 => {
                    got.extend_from_slice(&record[1..n]);
                    break;
                }
                other => panic!("unexpected tag {other}"),
            }
        }
        assert!(records >= 8, "1 MiB in {records} records");
        assert!(got == big, "the fragments put together differ");
        drop(sender.join().unwrap());
    });
}

#[test]
fn a_batch_is_one_record_per_small_message_in_order_around_fragmented_ones() {
    with_deadline(LIMIT, || {
        let (mut t, raw) = raw_peer(&Options::new());
        let big = common::payload(7, 300 << 10);
        let mut expected: Vec<Vec<u8>> = (0..150u64).map(|i| common::payload(i, (i as usize * 7) % 300)).collect();
        expected.insert(100, big);
        // More than the socket buffer holds: the sender must wait for the reader.
        let sender = {
            let msgs = expected.clone();
            thread::spawn(move || {
                let batch: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
                t.send_batch(&batch).unwrap();
                t
            })
        };
        let mut record = vec![0u8; 256 << 10];
        let mut got = Vec::new();
        let mut partial = Vec::new();
        while got.len() < expected.len() {
            let n = recv(raw.as_raw_fd(), &mut record, MsgFlags::empty()).unwrap();
            match record[0] {
                1 => got.push(record[1..n].to_vec()),
                2 => partial = record[5..n].to_vec(),
                3 => partial.extend_from_slice(&record[1..n]),
                4 => {
                    partial.extend_from_slice(&record[1..n]);
                    got.push(std::mem::take(&mut partial));
                }
                other => panic!("unexpected tag {other} after {} messages", got.len()),
            }
        }
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(g == e, "message {i} of the batch ({} bytes) arrived as {} bytes or changed", e.len(), g.len());
        }
        drop(sender.join().unwrap());
    });
}

#[test]
fn batches_sent_both_ways_at_once_wait_for_room_and_read_ahead() {
    with_deadline(LIMIT, || {
        // 20,000 messages each way, about 2.4 MB: far more than both socket buffers, so each
        // side's batch waits for room while its peer's batch fills its own socket.
        const COUNT: u64 = 20_000;
        let (a, b) = switchboard::pair(Kind::Seqpacket, &Options::new()).unwrap();
        let side = |mut t: Box<dyn Transport>| {
            thread::spawn(move || {
                let msgs: Vec<Vec<u8>> = (0..COUNT).map(|i| common::sequenced(i, 100)).collect();
                let batch: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
                t.send_batch(&batch).unwrap();
                let mut buf = Vec::new();
                for i in 0..COUNT {
                    t.recv(&mut buf).unwrap();
                    assert_eq!(common::check_sequenced(&buf), Ok(i));
                }
            })
        };
        let (x, y) = (side(a), side(b));
        x.join().unwrap();
        y.join().unwrap();
    });
}

#[test]
fn the_default_maximum_goes_through_and_one_more_byte_is_refused() {
    with_deadline(LIMIT, || {
        let (mut a, mut b) = SeqpacketTransport::pair(&Options::new()).unwrap();
        let mut msg = vec![0xA5; DEFAULT_MAX_MESSAGE_SIZE];
        msg[0] = 1;
        msg[DEFAULT_MAX_MESSAGE_SIZE - 1] = 2;
        let err = a.send(&vec![0; DEFAULT_MAX_MESSAGE_SIZE + 1]).unwrap_err();
        assert!(matches!(err, Error::MessageTooLarge { .. }), "{err:?}");
        let expected = msg.clone();
        let sender = thread::spawn(move || {
            a.send(&msg).unwrap();
            a.send(b"after").unwrap();
            a
        });
        let mut buf = Vec::new();
        assert_eq!(b.recv(&mut buf).unwrap(), DEFAULT_MAX_MESSAGE_SIZE);
        assert!(buf == expected);
        b.recv(&mut buf).unwrap();
        assert_eq!(buf, b"after");
        drop(sender.join().unwrap());
    });
}

#[test]
fn hostile_records_get_typed_errors_and_finish_the_connection() {
    with_deadline(LIMIT, || {
        let options = Options::new().max_message_size(64 << 10);
        type Check = fn(&Error) -> bool;
        let malformed: Check = |e| matches!(e, Error::Malformed(_));
        let too_large: Check = |e| matches!(e, Error::FrameTooLarge { .. });
        let cases: Vec<(&str, Vec<Vec<u8>>, Check)> = vec![
            ("unknown tag", vec![vec![9, 1, 2, 3]], malformed),
            ("tag 0", vec![vec![0]], malformed),
            ("middle without first", vec![vec![3, 1]], malformed),
            ("last without first", vec![vec![4, 1]], malformed),
            ("first without its total", vec![vec![2, 1]], malformed),
            ("first holding everything", vec![first(3, b"abc")], malformed),
            ("whole inside a message", vec![first(10, b"abc"), vec![1, 1]], malformed),
            ("overrun", vec![first(10, b"abc"), vec![4; 9]], malformed),
            ("short last", vec![first(10, b"abc"), vec![4, 1]], malformed),
            ("empty middle", vec![first(10, b"abc"), vec![3]], malformed),
            ("empty record", vec![vec![]], malformed),
            ("whole above the maximum", vec![[&[1u8][..], &vec![0; (64 << 10) + 1]].concat()], too_large),
            ("total above the maximum", vec![first(u32::MAX, b"abc")], too_large),
            ("record above 128 KiB", vec![vec![1; 150 << 10]], malformed),
        ];
        for (name, records, check) in cases {
            let (mut t, raw) = raw_peer(&options);
            t.ready_fd().unwrap();
            for r in &records {
                send_raw(&raw, r);
            }
            let mut buf = Vec::new();
            let err = t.recv_timeout(&mut buf, LIMIT).unwrap_err();
            assert!(check(&err), "{name}: {err:?}");
            assert!(readable(&t), "{name}: the finished connection stays readable");
            assert!(matches!(t.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Disconnected)), "{name}");
            assert!(matches!(t.send(b"x"), Err(Error::Disconnected)), "{name}");
        }
    });
}

#[test]
fn a_peer_that_closes_inside_a_message_gives_truncated() {
    with_deadline(LIMIT, || {
        let (mut t, raw) = raw_peer(&Options::new());
        send_raw(&raw, &[1, b'o', b'k']);
        // Announces 60 MiB, sends three bytes and goes: nothing near 60 MiB is held.
        send_raw(&raw, &first(60 << 20, b"abc"));
        drop(raw);
        let mut buf = Vec::new();
        t.recv(&mut buf).unwrap();
        assert_eq!(buf, b"ok");
        let err = t.recv(&mut buf).unwrap_err();
        assert!(matches!(err, Error::Truncated { expected, received: 3 } if expected == 60 << 20), "{err:?}");
        assert!(matches!(t.recv(&mut buf), Err(Error::Disconnected)));
    });
}

#[test]
fn descriptors_a_peer_attaches_are_closed_not_leaked() {
    with_deadline(LIMIT, || {
        let (mut t, raw) = raw_peer(&Options::new());
        let (r, w) = std::io::pipe().unwrap();
        for _ in 0..100 {
            let fds = [w.as_raw_fd()];
            let cmsg = [ControlMessage::ScmRights(&fds)];
            let iov = [std::io::IoSlice::new(&[1, b'f'])];
            sendmsg::<()>(raw.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None).unwrap();
        }
        drop(w);
        let mut buf = Vec::new();
        for _ in 0..100 {
            t.recv(&mut buf).unwrap();
            assert_eq!(buf, b"f");
        }
        // Every copy of the write end that travelled was closed: the pipe has no writer left
        // (the process's descriptor count would not do: other tests run beside this one).
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&r), PollFlags::POLLIN)];
        assert!(poll(&mut fds, PollTimeout::from(5000u16)).unwrap() > 0, "a passed descriptor was leaked");
        assert!(fds[0].revents().unwrap().contains(PollFlags::POLLHUP));
    });
}

#[test]
fn a_listener_at_a_path_serves_clients_and_removes_its_file() {
    with_deadline(LIMIT, || {
        let dir = TempDir::new("seqpacket");
        let path = dir.path().join("server.seq");
        let addr = Address::Seqpacket(path.clone());
        assert_eq!(addr.to_string().parse::<Address>().unwrap(), addr);
        let listener = Listener::bind(&addr, &Options::new()).unwrap();
        assert!(path.exists());
        // A second server on a live path is refused; a stale file would be taken over.
        let err = Listener::bind(&addr, &Options::new()).unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::AddrInUse), "{err:?}");
        let clients: Vec<_> = (0..4u8)
            .map(|i| {
                let addr = addr.clone();
                thread::spawn(move || {
                    let mut conn = connect(&addr, &Options::new()).unwrap();
                    assert_eq!(conn.kind(), Kind::Seqpacket);
                    conn.send(&[i; 300_000]).unwrap();
                    let mut buf = Vec::new();
                    conn.recv(&mut buf).unwrap();
                    assert_eq!(buf, [i; 300_000]);
                })
            })
            .collect();
        for _ in 0..4 {
            let mut conn = listener.accept_timeout(LIMIT).unwrap();
            let creds = conn.downcast_ref::<SeqpacketTransport>().unwrap().peer_credentials().unwrap();
            assert_eq!(creds.pid, std::process::id() as i32);
            let mut buf = Vec::new();
            conn.recv(&mut buf).unwrap();
            conn.send(&buf).unwrap();
        }
        for c in clients {
            c.join().unwrap();
        }
        drop(listener);
        assert!(!path.exists(), "the socket file goes with the listener");
        // Stale: a socket file nobody listens on is taken over.
        let stale = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).unwrap();
        nix::sys::socket::bind(stale.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        drop(stale);
        Listener::bind(&addr, &Options::new()).unwrap();
        // Not a socket: refused, and left alone.
        std::fs::write(&path, b"data").unwrap();
        assert!(Listener::bind(&addr, &Options::new()).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    });
}

#[test]
fn garbage_and_silent_clients_are_refused_while_real_ones_are_served() {
    with_deadline(LIMIT, || {
        let listener =
            Listener::bind_seqpacket_private(&Options::new().handshake_timeout(Duration::from_secs(5))).unwrap();
        let Address::SeqpacketAbstract(name) = listener.local_addr().clone() else { panic!("an abstract address") };
        let raw = || {
            let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).unwrap();
            raw_connect(fd.as_raw_fd(), &UnixAddr::new_abstract(name.as_bytes()).unwrap()).unwrap();
            fd
        };
        let ready = |ms: u16| {
            let mut fds = [PollFd::new(listener.ready_fd().unwrap(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(ms)).unwrap() > 0
        };
        assert!(!ready(0));
        let silent = raw();
        assert!(ready(5000), "a connection in the backlog");
        assert!(matches!(listener.accept_timeout(Duration::ZERO).map(|_| ()), Err(Error::Timeout)));
        assert!(!ready(0), "a silent client is no reason to wake up");
        // Garbage: a huge record, a hello without the tag, a framed (stream-style) hello.
        let mut stream_hello = 8u32.to_le_bytes().to_vec();
        stream_hello.extend_from_slice(b"SWBH\x01\x00\x00\x00");
        let garbage = [vec![1; 100_000], b"SWBH\x01\x00\x00\x00".to_vec(), stream_hello];
        let bad: Vec<OwnedFd> = garbage
            .iter()
            .map(|g| {
                let fd = raw();
                send_raw(&fd, g);
                fd
            })
            .collect();
        let addr = listener.local_addr().clone();
        let client = thread::spawn(move || connect(&addr, &Options::new()));
        let mut served = listener.accept_timeout(LIMIT).unwrap();
        let mut client = client.join().unwrap().unwrap();
        // The listener reads handshakes inside accept: go on accepting until all three were
        // refused (the test's deadline bounds this).
        while listener.refused() < 3 {
            assert!(matches!(listener.accept_timeout(Duration::from_millis(10)).map(|_| ()), Err(Error::Timeout)));
        }
        for fd in &bad {
            // Each was answered with a refusal record (tag 1, "SWBR", version, status 3).
            let mut reply = [0u8; 64];
            let n = recv(fd.as_raw_fd(), &mut reply, MsgFlags::empty()).unwrap();
            assert_eq!(&reply[..5], b"\x01SWBR", "{:?}", &reply[..n]);
            assert_eq!(reply[7], 3, "malformed");
        }
        served.send(b"served").unwrap();
        let mut buf = Vec::new();
        client.recv(&mut buf).unwrap();
        assert_eq!(buf, b"served");
        drop((silent, bad));
    });
}

#[test]
fn connecting_where_nothing_listens_names_the_address() {
    let dir = TempDir::new("seqpacket-none");
    let path = dir.path().join("nobody");
    let err = SeqpacketTransport::connect(&path, &Options::new()).unwrap_err();
    assert!(err.to_string().contains("nobody"), "{err}");
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = SeqpacketTransport::from_fd(OwnedFd::from(a), &Options::new()).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "a stream socket is not a seqpacket socket: {err:?}");
}
