//! Readiness for shared memory: a descriptor that polls readable whenever a `recv` would not
//! wait, for event loops (`poll(2)`, `epoll(7)`, mio, tokio).
//!
//! Each endpoint has an eventfd (`eventfd(2)`) that its peer can write, and a `polled` flag
//! beside its futex word. Like the futex protocol in `wait.rs`, the waiter announces itself
//! and looks again before it waits: a `recv` that is about to time out clears its eventfd,
//! sets `polled`, fences, and checks the ring once more. A sender writes the eventfd only
//! when it finds `polled` set (and clears it), so a busy stream, whose receiver never times
//! out, makes no syscalls. The descriptor handed out is an epoll set over the eventfd and the
//! peer-death descriptor (a pidfd, or the socket a `shm:` connection was made over), so a
//! dead peer polls readable too.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::error::Result;
use crate::shm::wait::PeerWatch;
use crate::shm::{ShmTransport, Want};

/// The two eventfds of a connection: index 0 is the creator's, 1 the attacher's.
pub(crate) fn eventfd_pair() -> Result<[OwnedFd; 2]> {
    let make = || -> Result<OwnedFd> {
        Ok(EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?.into())
    };
    Ok([make()?, make()?])
}

/// One endpoint's eventfd and its peer's.
#[derive(Debug)]
pub(crate) struct Doorbells {
    mine: OwnedFd,
    peer: OwnedFd,
}

impl Doorbells {
    /// Side `side`'s view of a connection's two eventfds.
    pub(crate) fn for_side(side: usize, [creator, attacher]: [OwnedFd; 2]) -> Self {
        if side == 0 {
            Doorbells { mine: creator, peer: attacher }
        } else {
            Doorbells { mine: attacher, peer: creator }
        }
    }

    /// An endpoint's eventfd and its peer's.
    pub(crate) fn from_fds(mine: OwnedFd, peer: OwnedFd) -> Self {
        Doorbells { mine, peer }
    }

    /// Both eventfds as the creator sees them (mine, the attacher's), to hand to the attacher.
    pub(crate) fn fds(&self) -> [BorrowedFd<'_>; 2] {
        [self.mine.as_fd(), self.peer.as_fd()]
    }
}

/// Writes 1 to an eventfd (it is non-blocking; a full counter is as good as a write).
fn raise(fd: &OwnedFd) {
    let _ = nix::unistd::write(fd, &1u64.to_ne_bytes());
}

/// Empties an eventfd (non-blocking: nothing to read is fine).
fn drain(fd: &OwnedFd) {
    let _ = nix::unistd::read(fd, &mut [0u8; 8]);
}

impl ShmTransport {
    /// Rings the peer's bell after publishing or freeing space, and writes its eventfd if it
    /// waits in `poll`.
    #[inline]
    pub(crate) fn ring_peer(&self) {
        if self.peer_bell.ring()
            && let Some(bells) = &self.doorbells
        {
            raise(&bells.peer);
        }
    }

    /// Like [`ring_peer`](Self::ring_peer) after freeing space: the futex wake only for a
    /// peer that waits for space.
    #[inline]
    pub(crate) fn ring_peer_space(&self) {
        if self.peer_bell.ring_space()
            && let Some(bells) = &self.doorbells
        {
            raise(&bells.peer);
        }
    }

    /// Called when a `recv` is about to time out, if someone polls this endpoint: clears the
    /// eventfd, announces `polled`, and says whether something to receive (or the peer's
    /// departure) is visible already, in which case the `recv` should look again.
    ///
    /// The same flag serves a `send` that times out for lack of room: the peer rings this
    /// endpoint's bell whenever it frees space, so the descriptor then polls readable too.
    pub(super) fn arm_readiness(&mut self, want: Want) -> Result<bool> {
        let Some(bells) = &self.doorbells else { return Ok(false) };
        if !self.ready_used.load(Ordering::Relaxed) {
            return Ok(false);
        }
        drain(&bells.mine);
        self.my_bell.arm_poll();
        let peer_done = match want {
            Want::Data => self.peer_done_sending(),
            Want::Space(_) => self.peer_closed(),
        };
        if peer_done || !self.peer.alive() {
            return Ok(true);
        }
        Ok(match want {
            Want::Data => !self.inbox.is_empty() || self.consumer.has_data()?,
            Want::Space(len) => self.producer.try_reserve(len)?.is_some(),
        })
    }

    /// Watches `peer` from now on, its death descriptor in the readiness set too.
    pub(crate) fn set_peer(&mut self, peer: PeerWatch) {
        if let Some(fd) = peer.fd() {
            // Best effort: without it a dead peer is still noticed by the next `recv`.
            let _ = self.ready.add(fd, EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, 1));
        }
        self.peer = peer;
        // A registration with the watcher was for the peer watched before.
        self.watch = None;
    }

    /// The readiness descriptor; see `Transport::ready_fd`.
    pub(crate) fn readiness_fd(&self) -> BorrowedFd<'_> {
        if !self.ready_used.swap(true, Ordering::Relaxed)
            && let Some(bells) = &self.doorbells
        {
            // Readable until the first `recv` that times out arms it: at worst one spurious
            // wake-up, never a missed one (something may be in the ring already).
            raise(&bells.mine);
        }
        self.ready.0.as_fd()
    }
}

/// The epoll set an endpoint hands out: its eventfd and the peer-death descriptor; for a
/// named segment (no eventfds), an eventfd that is always readable.
pub(crate) fn readiness_set(bells: Option<&Doorbells>, peer: &PeerWatch) -> Result<Epoll> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    match bells {
        Some(bells) => epoll.add(bells.mine.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))?,
        None => {
            // The peer has no way to reach an eventfd of ours: always readable. An event loop
            // then polls it like a spinner would, but never misses a message; `shm:`
            // addresses get a real one. The epoll set keeps the eventfd's file alive after
            // our descriptor for it is closed here.
            let always = EventFd::from_value_and_flags(1, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
            epoll.add(always.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        }
    }
    if let Some(fd) = peer.fd() {
        epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, 1))?;
    }
    Ok(epoll)
}
