//! Waiting on many endpoints at once: the socket HOWTO's third server model (non-blocking
//! sockets multiplexed with `select`), over every transport and listener.
//!
//! Built on `epoll(7)` through nix's safe wrapper, level-triggered: each endpoint's readiness
//! descriptor (`Transport::ready_fd`, `Listener::ready_fd`) polls readable while a `recv`
//! (or an `accept`) would not wait, so a key is reported by every `wait` until its endpoint
//! has been drained with `Duration::ZERO` calls down to `Timeout`. mio was not used: it is
//! edge-triggered, which fits descriptors that the library does not already keep level; the
//! polling crate's registration is `unsafe` (it must outlive the registration), while an
//! epoll set simply forgets a descriptor once it is closed, so a dropped endpoint leaves the
//! selector by itself.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::deadline;
use crate::error::{Error, Result};
use crate::listener::Listener;
use crate::transport::Transport;

/// Something a [`Selector`] can wait on: every transport and a [`Listener`].
pub trait Pollable {
    /// The descriptor that polls readable when the source has something for its owner.
    ///
    /// # Errors
    /// As [`Transport::ready_fd`] and [`Listener::ready_fd`].
    fn ready_fd(&self) -> Result<BorrowedFd<'_>>;
}

impl<T: Transport + ?Sized> Pollable for T {
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Transport::ready_fd(self)
    }
}

impl Pollable for Listener {
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Listener::ready_fd(self)
    }
}

/// Waits on many endpoints and listeners at once and says which are ready, by the keys they
/// were added with.
///
/// The selector does not own what it watches: dropping an endpoint removes it. A key is
/// reported as long as its source has something (level-triggered): receive (or accept) with
/// `Duration::ZERO` until `Timeout`, then wait again.
///
/// # Examples
/// One thread serving several connections:
/// ```
/// use std::time::Duration;
/// use switchboard::{Error, Kind, Options, Selector, Transport, pair};
///
/// let mut conns = Vec::new();
/// let mut peers = Vec::new();
/// for kind in [Kind::Unix, Kind::Pipe, Kind::Shm] {
///     let (ours, theirs) = pair(kind, &Options::new())?;
///     conns.push(ours);
///     peers.push(theirs);
/// }
/// let mut selector = Selector::new()?;
/// for (key, conn) in conns.iter().enumerate() {
///     selector.add(conn.as_ref(), key as u64)?;
/// }
/// peers[2].send(b"from shm")?;
/// let mut ready = Vec::new();
/// selector.wait(&mut ready, Some(Duration::from_secs(5)))?;
/// assert_eq!(ready, [2]);
/// let mut buf = Vec::new();
/// while let Ok(_) = conns[2].recv_timeout(&mut buf, Duration::ZERO) {
///     assert_eq!(buf, b"from shm");
/// }
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct Selector {
    epoll: Epoll,
    events: Vec<EpollEvent>,
}

impl Selector {
    /// An empty selector.
    ///
    /// # Errors
    /// [`Error::Io`] if the epoll set cannot be made.
    pub fn new() -> Result<Self> {
        Ok(Selector { epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?, events: vec![EpollEvent::empty(); 256] })
    }

    /// Watches `source` under `key`.
    ///
    /// # Errors
    /// [`Error::Io`] if its readiness descriptor cannot be made, or if it is watched already
    /// (`AlreadyExists`); [`Error::Config`] for a source without one.
    pub fn add(&self, source: &(impl Pollable + ?Sized), key: u64) -> Result<()> {
        self.epoll.add(source.ready_fd()?, EpollEvent::new(EpollFlags::EPOLLIN, key))?;
        Ok(())
    }

    /// Stops watching `source`. (Dropping it has the same effect.)
    ///
    /// # Errors
    /// [`Error::Io`] if it was not watched (`NotFound`).
    pub fn remove(&self, source: &(impl Pollable + ?Sized)) -> Result<()> {
        self.epoll.delete(source.ready_fd()?)?;
        Ok(())
    }

    /// Waits until at least one source is ready or `timeout` passes (`None`: no limit), and
    /// replaces the contents of `ready` with the keys of the ready sources. Returns how many.
    ///
    /// # Errors
    /// [`Error::Io`] if waiting fails. A timeout is `Ok(0)`, not an error.
    pub fn wait(&mut self, ready: &mut Vec<u64>, timeout: Option<Duration>) -> Result<usize> {
        ready.clear();
        let deadline = timeout.and_then(deadline::after);
        loop {
            // No deadline (none given, or too far to represent): wait without a limit.
            let left = deadline.map_or(EpollTimeout::NONE, epoll_timeout);
            match self.epoll.wait(&mut self.events, left) {
                Ok(n) => {
                    ready.extend(self.events[..n].iter().map(EpollEvent::data));
                    if n == self.events.len() {
                        // More may be ready than fit: grow for the next call.
                        self.events.resize(2 * n, EpollEvent::empty());
                    }
                    return Ok(n);
                }
                Err(Errno::EINTR) if !deadline::passed(deadline) => {}
                Err(Errno::EINTR) => return Ok(0),
                Err(e) => return Err(Error::from(e)),
            }
        }
    }
}

/// The time left until `deadline`, in whole milliseconds rounded up (so that a wait never
/// returns just before its deadline), capped at what epoll takes.
fn epoll_timeout(deadline: Instant) -> EpollTimeout {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::NONE)
}
