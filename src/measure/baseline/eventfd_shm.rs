//! The eventfd-shm baseline: the raw shared-memory rings of `raw.rs` (a memfd, fixed-size
//! slots, head and tail counters), but a side with nothing to do sleeps on an eventfd
//! (`eventfd(2)`) instead of spinning: what a blocking shared-memory transport costs at best.
//!
//! Each side sleeps on its own eventfd and wakes the other's. A sender publishes a message
//! and always writes the receiver's eventfd (one syscall); a receiver that finds its ring
//! empty waits on its eventfd, whose counter keeps a wake-up written before the wait, so none
//! is lost. A receiver that frees a slot in a full ring wakes the sender; both sides store
//! their counter and then load the other's with `SeqCst`, so that one of them always sees
//! the other (the full-ring check and the wake-up cannot both miss). Before each blocking
//! read a `ppoll(2)` with a 10 s limit (or the open loop's wait) notices a peer that died:
//! one extra syscall per wait.
//!
//! The child gets the memfd and both eventfds over a Unix socket on its stdin
//! (`SCM_RIGHTS`, `unix(7)`).

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use super::PEER_LIMIT;
use crate::error::{Error, Result};
use crate::measure::link::Link;
use crate::measure::raw::RawShm;
use crate::measure::sys::readable_within;

/// One side: sends on ring `side`, receives on ring `1 - side`, sleeps on `wake[side]`.
struct EventfdShm {
    map: RawShm,
    side: usize,
    sent: u64,
    received: u64,
    wake: [File; 2],
}

impl EventfdShm {
    /// Sleeps until the peer writes our eventfd (at once if it already did), for at most
    /// `limit`.
    fn wait(&mut self, limit: Duration) -> Result<()> {
        if !readable_within(self.wake[self.side].as_fd(), limit)? {
            return Err(Error::Timeout);
        }
        let mut count = [0u8; 8];
        (&self.wake[self.side]).read_exact(&mut count)?;
        Ok(())
    }

    fn wake_peer(&self) -> Result<()> {
        (&self.wake[1 - self.side]).write_all(&1u64.to_ne_bytes())?;
        Ok(())
    }
}

impl Link for EventfdShm {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let r = self.side;
        while self.sent - self.map.counter(r, 1).load(Ordering::SeqCst) >= self.map.slots as u64 {
            self.wait(PEER_LIMIT)?;
        }
        // SAFETY: the slot is free (the consumer's head passed it) and msg fits in a slot
        // (both sides sized the slots from the same message size).
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.map.slot(r, self.sent), msg.len()) };
        self.sent += 1;
        self.map.counter(r, 0).store(self.sent, Ordering::SeqCst);
        self.wake_peer()
    }

    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        self.recv_timeout(buf, len, PEER_LIMIT)
    }

    fn recv_timeout(&mut self, buf: &mut Vec<u8>, len: usize, timeout: Duration) -> Result<()> {
        let r = 1 - self.side;
        let deadline = crate::deadline::after(timeout);
        while self.map.counter(r, 0).load(Ordering::SeqCst) == self.received {
            let left = deadline.map_or(PEER_LIMIT, |d| d.saturating_duration_since(Instant::now()));
            self.wait(left)?;
        }
        buf.resize(len, 0);
        // SAFETY: the producer published this slot (its tail passed it) and len fits a slot.
        unsafe { std::ptr::copy_nonoverlapping(self.map.slot(r, self.received), buf.as_mut_ptr(), len) };
        let was = self.received;
        self.received += 1;
        self.map.counter(r, 1).store(self.received, Ordering::SeqCst);
        // The ring was full before this slot was freed: the sender may be asleep.
        if self.map.counter(r, 0).load(Ordering::SeqCst) - was >= self.map.slots as u64 {
            self.wake_peer()?;
        }
        Ok(())
    }
}

fn eventfd() -> Result<File> {
    Ok(File::from(OwnedFd::from(EventFd::from_flags(EfdFlags::EFD_CLOEXEC)?)))
}

/// Makes the rings and eventfds, starts the child with a socket as stdin and sends it
/// the memfd and both eventfds.
pub(super) fn spawn(size: usize, command: &mut Command) -> Result<(Child, Box<dyn Link>)> {
    let (map, memfd) = RawShm::create(size)?;
    let wake = [eventfd()?, eventfd()?];
    let (ours, theirs) = UnixStream::pair()?;
    let child = command.stdin(Stdio::from(OwnedFd::from(theirs))).spawn()?;
    let fds: [RawFd; 3] = [memfd.as_raw_fd(), wake[0].as_raw_fd(), wake[1].as_raw_fd()];
    sendmsg::<()>(
        ours.as_raw_fd(),
        &[IoSlice::new(b"e")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok((child, Box::new(EventfdShm { map, side: 0, sent: 0, received: 0, wake })))
}

/// The child's side: receives the memfd and eventfds on stdin and maps the rings.
pub(super) fn child_link(size: usize) -> Result<Box<dyn Link>> {
    let socket = std::io::stdin().as_fd().try_clone_to_owned()?;
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: SCM_RIGHTS descriptors are new in this process and owned by no one
                // else; wrapping each once closes it exactly once.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let Ok([memfd, e0, e1]) = <[OwnedFd; 3]>::try_from(fds) else {
        return Err(Error::Protocol("eventfd-shm: the parent did not send a memfd and two eventfds".into()));
    };
    let map = RawShm::attach(memfd, size)?;
    Ok(Box::new(EventfdShm { map, side: 1, sent: 0, received: 0, wake: [File::from(e0), File::from(e1)] }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of 2 slots (1 MiB messages) streamed through, so that the sender sleeps on a
    /// full ring and is woken, then round trips.
    #[test]
    fn full_rings_and_round_trips_wake_both_sides() {
        let size = 2 << 20;
        let (map, memfd) = RawShm::create(size).unwrap();
        assert_eq!(map.slots, 2);
        let wake = [eventfd().unwrap(), eventfd().unwrap()];
        let other = [wake[0].try_clone().unwrap(), wake[1].try_clone().unwrap()];
        let mut a = EventfdShm { map, side: 0, sent: 0, received: 0, wake };
        let mut b =
            EventfdShm { map: RawShm::attach(memfd, size).unwrap(), side: 1, sent: 0, received: 0, wake: other };
        let peer = std::thread::spawn(move || {
            let mut buf = Vec::new();
            for i in 0..20u8 {
                b.recv(&mut buf, size)?;
                assert_eq!((buf[0], buf[size - 1]), (i, i));
            }
            for _ in 0..50 {
                b.recv(&mut buf, 64)?;
                b.send(&buf)?;
            }
            Ok::<_, Error>(())
        });
        for i in 0..20u8 {
            a.send(&vec![i; size]).unwrap();
        }
        let mut buf = Vec::new();
        for i in 0..50u8 {
            a.send(&[i; 64]).unwrap();
            a.recv(&mut buf, 64).unwrap();
            assert_eq!(buf, [i; 64]);
        }
        peer.join().unwrap().unwrap();
    }
}
