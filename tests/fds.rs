//! File descriptors over unix connections (`SCM_RIGHTS`) and sealed-memfd payloads: in one
//! process and across processes, with the fd count checked after every scenario, and peers
//! that attach descriptors where no message accounts for them. Runs without libtest
//! (`harness = false`) so that each scenario has the process's descriptor table to itself.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::{ChildGuard, ROLE_ENV, child_command};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use switchboard::{Error, Kind, MAX_FDS_PER_MESSAGE, Options, SealedMemfd, Transport, UnixTransport};

const LIMIT: Duration = Duration::from_secs(60);

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    let tests: Vec<common::NamedTest> = vec![
        ("a_pipe_end_travels_with_its_message".into(), Box::new(pipe_end_travels)),
        ("descriptors_stay_with_their_own_messages".into(), Box::new(fds_stay_with_their_messages)),
        ("plain_recv_closes_what_it_does_not_take".into(), Box::new(plain_recv_closes_fds)),
        ("too_many_descriptors_are_refused_before_sending".into(), Box::new(too_many_on_send)),
        ("too_many_received_descriptors_are_an_error_and_leak_nothing".into(), Box::new(too_many_received)),
        ("descriptors_in_the_middle_of_a_frame_are_closed".into(), Box::new(fds_mid_frame)),
        ("descriptors_without_messages_are_bounded".into(), Box::new(fds_without_messages)),
        ("sealed_payloads_across_processes".into(), Box::new(sealed_payload_across_processes)),
    ];
    common::run_tests(tests, LIMIT, Vec::new);
}

fn child(role: &str) {
    if role == "payload-checker" {
        // Receives payloads and answers with their length and checksum, through the pipe end
        // that came with the first message and through the connection.
        let conn = switchboard::connect_to_parent().unwrap();
        let mut conn = *conn.downcast::<UnixTransport>().map_err(|_| "not unix").unwrap();
        let (mut msg, mut fds) = (Vec::new(), Vec::new());
        conn.recv_with_fds(&mut msg, &mut fds).unwrap();
        let mut side = std::fs::File::from(fds.pop().expect("a pipe end"));
        loop {
            fds.clear();
            match conn.recv_with_fds(&mut msg, &mut fds) {
                Ok(_) => {}
                Err(Error::Disconnected) => return,
                Err(e) => panic!("{e}"),
            }
            let payload = SealedMemfd::from_fd(fds.pop().expect("a payload")).unwrap();
            let sum = common::fnv(&payload);
            writeln!(side, "{} {sum:x}", payload.len()).unwrap();
            conn.send(format!("{} {sum:x}", payload.len()).as_bytes()).unwrap();
        }
    }
}

/// Every scenario must leave the descriptor table as it found it.
fn no_leak(f: impl FnOnce()) {
    let before = common::fd_count();
    f();
    let after = common::fd_count();
    assert_eq!(after, before, "descriptors leaked: {before} before, {after} after");
}

fn pair() -> (UnixTransport, UnixTransport) {
    UnixTransport::pair(&Options::new()).unwrap()
}

fn pipe_end_travels() {
    no_leak(|| {
        let (mut a, mut b) = pair();
        let (mut reader, writer) = std::io::pipe().unwrap();
        a.send_with_fds(b"take this", &[writer.as_fd()]).unwrap();
        drop(writer);
        let (mut msg, mut fds) = (Vec::new(), Vec::new());
        b.recv_with_fds(&mut msg, &mut fds).unwrap();
        assert_eq!((msg.as_slice(), fds.len()), (&b"take this"[..], 1));
        let flags = nix::fcntl::fcntl(&fds[0], nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert!(flags & libc::FD_CLOEXEC != 0, "received descriptors must be close-on-exec");
        std::fs::File::from(fds.pop().unwrap()).write_all(b"through").unwrap();
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through");
    });
}

/// Small and large frames, with and without descriptors, sent back to back so that the
/// receiver reads several in one go: each message gets exactly its own descriptors.
fn fds_stay_with_their_messages() {
    no_leak(|| {
        let (mut a, mut b) = pair();
        let mut readers = Vec::new();
        let plan: Vec<(usize, usize)> =
            vec![(10, 0), (10, 1), (10, 0), (300_000, 2), (0, 3), (5, 0), (70_000, 0), (1, 1)];
        let mut tag = 0u8;
        let mut batches = Vec::new();
        for &(len, nfds) in &plan {
            let mut ends = Vec::new();
            for _ in 0..nfds {
                let (r, w) = std::io::pipe().unwrap();
                readers.push((tag, r));
                ends.push(OwnedFd::from(w));
                tag += 1;
            }
            batches.push((len, ends));
        }
        // From another thread: the large messages do not fit in the socket buffer.
        let sender = std::thread::spawn(move || {
            for (len, ends) in batches {
                let borrowed: Vec<_> = ends.iter().map(|e| e.as_fd()).collect();
                a.send_with_fds(&vec![len as u8; len], &borrowed).unwrap();
            }
            a
        });
        let mut next = 0u8;
        let (mut msg, mut fds) = (Vec::new(), Vec::new());
        for (i, &(len, nfds)) in plan.iter().enumerate() {
            fds.clear();
            b.recv_with_fds_timeout(&mut msg, &mut fds, LIMIT).unwrap();
            assert_eq!((msg.len(), fds.len()), (len, nfds), "message {i}");
            for fd in fds.drain(..) {
                std::fs::File::from(fd).write_all(&[next]).unwrap();
                next += 1;
            }
        }
        drop(sender.join().unwrap());
        // Each pipe got the tag of the descriptor sent in its place: none swapped.
        for (tag, mut r) in readers {
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            assert_eq!(got, [tag]);
        }
    });
}

fn plain_recv_closes_fds() {
    no_leak(|| {
        let (mut a, mut b) = pair();
        let (_r, w) = std::io::pipe().unwrap();
        let before = common::fd_count();
        a.send_with_fds(b"x", &[w.as_fd(), w.as_fd(), w.as_fd()]).unwrap();
        let mut buf = Vec::new();
        b.recv(&mut buf).unwrap();
        assert_eq!(buf, b"x");
        assert_eq!(common::fd_count(), before, "a plain recv must close the descriptors it drops");
    });
}

fn too_many_on_send() {
    no_leak(|| {
        let (mut a, mut b) = pair();
        let (_r, w) = std::io::pipe().unwrap();
        let many = vec![w.as_fd(); MAX_FDS_PER_MESSAGE + 1];
        assert!(matches!(a.send_with_fds(b"x", &many), Err(Error::FdPassing(_))));
        let mut buf = Vec::new();
        assert!(matches!(b.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)), "nothing was sent");
        a.send_with_fds(b"ok", &many[..MAX_FDS_PER_MESSAGE]).unwrap();
        let mut fds = Vec::new();
        b.recv_with_fds(&mut buf, &mut fds).unwrap();
        assert_eq!(fds.len(), MAX_FDS_PER_MESSAGE);
    });
}

/// A raw peer: our transport on one end, a plain socket to misbehave with on the other.
fn raw_peer() -> (UnixTransport, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    (UnixTransport::from_std(ours, &Options::new()).unwrap(), theirs)
}

fn send_raw(sock: &UnixStream, bytes: &[u8], fds: &[RawFd]) {
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    let n = sendmsg::<()>(sock.as_raw_fd(), &[std::io::IoSlice::new(bytes)], cmsgs, MsgFlags::empty(), None).unwrap();
    assert_eq!(n, bytes.len());
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn too_many_received() {
    no_leak(|| {
        let (mut t, raw) = raw_peer();
        let (_r, w) = std::io::pipe().unwrap();
        let many = vec![w.as_raw_fd(); 200];
        send_raw(&raw, &frame(b"flood"), &many);
        let (mut buf, mut fds) = (Vec::new(), Vec::new());
        let err = t.recv_with_fds(&mut buf, &mut fds).unwrap_err();
        assert!(matches!(err, Error::FdPassing(_)), "{err:?}");
        assert!(fds.is_empty());
        assert!(matches!(t.recv(&mut buf), Err(Error::Disconnected)), "the connection is finished");
    });
}

fn fds_mid_frame() {
    no_leak(|| {
        let (mut t, raw) = raw_peer();
        let (_r, w) = std::io::pipe().unwrap();
        let whole = frame(b"0123456789");
        send_raw(&raw, &whole[..7], &[]);
        send_raw(&raw, &whole[7..], &[w.as_raw_fd()]); // descriptors in the middle of a frame
        send_raw(&raw, &frame(b"next"), &[]);
        let (mut buf, mut fds) = (Vec::new(), Vec::new());
        t.recv_with_fds(&mut buf, &mut fds).unwrap();
        // The kernel may hand them over with the frame's first bytes (one read glues both
        // writes): then they go with that frame; otherwise they are closed. Never with the next.
        assert_eq!(buf, b"0123456789");
        assert!(fds.len() <= 1);
        fds.clear();
        t.recv_with_fds(&mut buf, &mut fds).unwrap();
        assert_eq!((buf.as_slice(), fds.len()), (&b"next"[..], 0));
    });
}

fn fds_without_messages() {
    no_leak(|| {
        let (mut t, raw) = raw_peer();
        let (_r, w) = std::io::pipe().unwrap();
        // One frame dribbled out a byte at a time, each byte carrying 60 descriptors: far more
        // than any message accounts for, and the connection must say so rather than hoard them.
        let big = frame(&[1; 64]);
        let fds = vec![w.as_raw_fd(); 60];
        let writer = std::thread::spawn(move || {
            for b in &big {
                send_raw(&raw, std::slice::from_ref(b), &fds);
            }
            raw
        });
        let (mut buf, mut got) = (Vec::new(), Vec::new());
        let result = t.recv_with_fds_timeout(&mut buf, &mut got, LIMIT);
        drop(writer.join().unwrap());
        match result {
            Err(Error::FdPassing(_)) => {}
            // Or every batch but the first was attached mid-frame and closed as it came.
            Ok(_) => assert!(got.len() <= MAX_FDS_PER_MESSAGE, "{} descriptors for one message", got.len()),
            Err(e) => panic!("{e:?}"),
        }
        drop(got);
    });
}

fn sealed_payload_across_processes() {
    no_leak(|| {
        let (child, conn) = switchboard::spawn_child(Kind::Unix, &mut child_command("payload-checker")).unwrap();
        let guard = ChildGuard::new(child, LIMIT);
        let mut conn = *conn.downcast::<UnixTransport>().map_err(|_| "spawn_child(Unix) is a UnixTransport").unwrap();
        let (mut side_r, side_w) = std::io::pipe().unwrap();
        conn.send_with_fds(b"report here", &[side_w.as_fd()]).unwrap();
        drop(side_w);
        let mut reply = Vec::new();
        for len in [0usize, 1, 4096, 1 << 20, 16 << 20] {
            let payload =
                SealedMemfd::with_len(len, |b| b.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8)).unwrap();
            let sum = common::fnv(&payload);
            conn.send_with_fds(b"payload", &[payload.as_fd()]).unwrap();
            drop(payload);
            conn.recv_timeout(&mut reply, LIMIT).unwrap();
            assert_eq!(String::from_utf8_lossy(&reply), format!("{len} {sum:x}"));
        }
        drop(conn);
        assert!(guard.wait().success());
        let mut side = String::new();
        side_r.read_to_string(&mut side).unwrap();
        assert_eq!(side.lines().count(), 5, "{side}");
        let _ = Command::new("true");
    });
}
