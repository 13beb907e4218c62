//! Parent and child: the parent maps a sealed memfd that the child inherits, and the child
//! confirms itself by claiming the segment (its pid in the header, `attached` set and woken),
//! which is also how a named segment's creator learns that its peer arrived.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::shm::layout::{self, HEADER_SIZE, Header};
use crate::shm::ready::{self, Doorbells};
use crate::shm::region::Region;
use crate::shm::wait::{self, CHECK_EVERY, PeerWatch};
use crate::shm::{ShmTransport, header};
use crate::transport::Options;

impl ShmTransport {
    /// The parent's side, before the child exists, and the memfd to hand to the child (with
    /// [`doorbell_fds`](Self::doorbell_fds)).
    pub(crate) fn for_child(options: &Options) -> Result<(Self, OwnedFd)> {
        options.check()?;
        let (region, fd) = Region::memfd(layout::total_size(options.ring_capacity))?;
        header(&region).init(options.ring_capacity, std::process::id());
        let bells = Doorbells::for_side(0, ready::eventfd_pair()?);
        Ok((Self::new(region, 0, options, PeerWatch::none(), Some(bells))?, fd))
    }

    /// The creator's and the attacher's eventfds, for the attacher to inherit or receive.
    pub(crate) fn doorbell_fds(&self) -> Option<[BorrowedFd<'_>; 2]> {
        self.doorbells.as_ref().map(Doorbells::fds)
    }

    /// Starts watching the child once it runs.
    pub(crate) fn watch_peer(&mut self, pid: u32) {
        self.set_peer(PeerWatch::pid(pid as i32));
    }

    /// Waits until `deadline` for the child `pid` to attach: `Ok(false)` if it has not yet.
    ///
    /// # Errors
    /// [`Error::Handshake`] if another process attached instead.
    pub(crate) fn await_attached(&self, pid: u32, deadline: Option<Instant>) -> Result<bool> {
        let h = header(&self.region);
        if !wait_attached(h, deadline) {
            return Ok(false);
        }
        match h.attacher_pid.load(Ordering::Acquire) {
            who if who == pid => Ok(true),
            who => Err(Error::Handshake(format!("process {who} attached to the segment instead of the child {pid}"))),
        }
    }

    /// The child's side, from the memfd and the two eventfds (creator's, attacher's) it
    /// inherited.
    pub(crate) fn from_parent(memfd: OwnedFd, events: [OwnedFd; 2], options: &Options) -> Result<Self> {
        let ppid = nix::unistd::getppid().as_raw();
        let peer = PeerWatch::pid(ppid);
        if nix::unistd::getppid().as_raw() != ppid {
            return Err(Error::Disconnected);
        }
        Self::attach(memfd, events, options, peer, Some(ppid))
    }

    /// The server's side of a `shm:` connection, made by [`for_child`](Self::for_child),
    /// watches the client through the socket the segment went over.
    pub(crate) fn watch_socket(&mut self, socket: OwnedFd) {
        self.set_peer(PeerWatch::socket(socket));
    }

    /// The client's side of a `shm:` connection: the memfd the server passed over `socket`,
    /// which is kept to watch the server.
    pub(crate) fn from_socket_peer(
        memfd: OwnedFd,
        events: [OwnedFd; 2],
        options: &Options,
        socket: OwnedFd,
    ) -> Result<Self> {
        Self::attach(memfd, events, options, PeerWatch::socket(socket), None)
    }

    /// Maps a segment someone else created, checks it (and its creator, if known) and claims
    /// it as the one attacher.
    fn attach(
        memfd: OwnedFd,
        events: [OwnedFd; 2],
        options: &Options,
        peer: PeerWatch,
        creator: Option<i32>,
    ) -> Result<Self> {
        options.check()?;
        let region = Region::attach_memfd(&memfd, HEADER_SIZE)?;
        drop(memfd);
        let h = header(&region);
        h.validate(region.len())?;
        if creator.is_some_and(|pid| h.creator_pid.load(Ordering::Relaxed) as i32 != pid) {
            return Err(Error::Handshake("the shared segment was not created by our parent".into()));
        }
        claim(h)?;
        Self::new(region, 1, options, peer, Some(Doorbells::for_side(1, events)))
    }
}

/// Marks an attached segment as taken by this process, refusing a second attacher, and wakes
/// the creator if it waits for us.
pub(super) fn claim(h: &Header) -> Result<()> {
    let me = std::process::id();
    if h.attacher_pid.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return Err(Error::Handshake("the shared segment already has a peer".into()));
    }
    h.attached.store(1, Ordering::Release);
    wait::futex_wake(&h.attached);
    Ok(())
}

/// Waits until a peer has attached to the segment, or `deadline`; whether it has.
pub(super) fn wait_attached(h: &Header, deadline: Option<Instant>) -> bool {
    loop {
        if h.attached.load(Ordering::Acquire) != 0 {
            return true;
        }
        let now = Instant::now();
        let slice = match deadline {
            Some(d) if now >= d => return false,
            Some(d) => (d - now).min(CHECK_EVERY),
            None => CHECK_EVERY,
        };
        // A futex that cannot be waited on (it should not happen) degrades to polling.
        if wait::futex_wait(&h.attached, 0, Some(slice)).is_err() {
            std::thread::sleep(slice.min(Duration::from_millis(1)));
        }
    }
}
