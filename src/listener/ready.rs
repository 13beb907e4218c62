//! The listener's readiness descriptor: an epoll set over the listening socket and every
//! connection still handshaking, and a timerfd that ends an out-of-descriptors back-off, so an
//! event loop can wait on a listener as on any endpoint.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::error::Result;
use crate::listener::{Accepting, BACKOFF_MIN, Listener, Socket};

/// An epoll set over the listening socket, every connection still handshaking, and a timer
/// that ends a back-off: readable whenever `accept` could make progress.
#[derive(Debug)]
pub(super) struct Readiness {
    pub(super) epoll: Epoll,
    timer: TimerFd,
}

impl Listener {
    /// A descriptor to wait on with `poll`, `epoll` or an event loop: it polls readable
    /// whenever [`accept_timeout`](Listener::accept_timeout) with `Duration::ZERO` could make
    /// progress (a client in the backlog, or bytes from a client still handshaking). It may
    /// poll readable when that `accept` still times out (a hello only partly arrived, a
    /// client refused): call it and wait again on `Timeout`. While the listener backs off
    /// for lack of descriptors, the listening socket leaves the set until the back-off ends.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the descriptor (an epoll set and a timerfd, made on first use) cannot
    /// be made.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    /// use switchboard::{Error, Listener, Options, connect};
    ///
    /// let listener = Listener::bind_unix_private(&Options::new())?;
    /// let addr = listener.local_addr().clone();
    /// let client = std::thread::spawn(move || connect(&addr, &Options::new()));
    /// let server_side = loop {
    ///     let mut fds = [PollFd::new(listener.ready_fd()?, PollFlags::POLLIN)];
    ///     poll(&mut fds, PollTimeout::from(5000u16))?;
    ///     match listener.accept_timeout(Duration::ZERO) {
    ///         Ok(conn) => break conn,
    ///         Err(Error::Timeout) => continue,
    ///         Err(e) => return Err(e),
    ///     }
    /// };
    /// client.join().expect("client thread")?;
    /// # drop(server_side);
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        if let Some(r) = self.ready.get() {
            return Ok(r.epoll.0.as_fd());
        }
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK)?;
        epoll.add(timer.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for p in &state.pending {
            epoll.add(p.conn.fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
        }
        match state.backoff_until {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
                timer.set(Expiration::OneShot(TimeSpec::from_duration(left)), TimerSetTimeFlags::empty())?;
            }
            None => {
                epoll.add(self.listen_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
                state.listen_watched = true;
            }
        }
        Ok(self.ready.get_or_init(|| Readiness { epoll, timer }).epoll.0.as_fd())
    }

    pub(super) fn listen_fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Socket::Tcp(l) => l.as_fd(),
            Socket::Unix(l) | Socket::Seqpacket(l) => l.as_fd(),
        }
    }

    /// Keeps the readiness set (if there is one) in step: the listening socket in it unless
    /// backing off, the timer armed while backing off. Connections leave it by themselves
    /// when closed (epoll drops closed files); one that becomes a transport is taken out.
    pub(super) fn sync_readiness(&self, state: &mut Accepting) {
        let Some(r) = self.ready.get() else { return };
        let backing_off = state.backoff_until.is_some_and(|t| Instant::now() < t);
        if backing_off && state.listen_watched {
            let _ = r.epoll.delete(self.listen_fd());
            state.listen_watched = false;
            let left = state.backoff_until.map_or(BACKOFF_MIN, |t| t.saturating_duration_since(Instant::now()));
            let _ = r.timer.set(
                Expiration::OneShot(TimeSpec::from_duration(left.max(Duration::from_millis(1)))),
                TimerSetTimeFlags::empty(),
            );
        } else if !backing_off && !state.listen_watched {
            let _ = r.timer.unset();
            let _ = nix::unistd::read(&r.timer, &mut [0u8; 8]);
            state.listen_watched = r.epoll.add(self.listen_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0)).is_ok();
        }
    }
}

impl AsFd for Listener {
    /// The readiness descriptor ([`Listener::ready_fd`]). If it cannot be made (no
    /// descriptors left), the listening socket itself, which misses clients that are still
    /// handshaking: call [`Listener::ready_fd`] to see the error instead.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ready_fd().unwrap_or_else(|_| self.listen_fd())
    }
}
