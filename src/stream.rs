//! The byte-stream endpoint under tcp, unix and pipe: blocking reads, non-blocking gather
//! writes, and `ppoll(2)` with a deadline.
//!
//! Reads block in `read(2)` so that a blocking `recv` costs exactly one syscall, like the raw
//! mechanism. Writes never block in the kernel (`MSG_DONTWAIT` on sockets, `O_NONBLOCK` on the
//! pipe's write end): when the peer is full, the framing layer waits in `ppoll` for room *or*
//! for incoming data, which it reads so that two peers sending at once cannot deadlock.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Once;
use std::time::Instant;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::socket::{MsgFlags, sendmsg};
use nix::sys::time::TimeSpec;

/// What [`Stream::wait`] found ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

/// The operations the framing layer needs from a byte stream.
pub(crate) trait Stream {
    /// Reads at least one byte, blocking until there is one; `Ok(0)` at end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what fits now; `ErrorKind::WouldBlock` when nothing fits.
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Waits until the stream is readable (if `read`) or writable (if `write`), or until
    /// `deadline`; returns what is ready (nothing at the deadline).
    fn wait(&mut self, read: bool, write: bool, deadline: Option<Instant>) -> io::Result<Ready>;
}

/// A connected socket (one fd both ways) or a pair of pipe ends.
#[derive(Debug)]
pub(crate) struct FdStream {
    read: OwnedFd,
    /// `None` for a socket, whose one fd is `read`.
    write: Option<OwnedFd>,
}

impl FdStream {
    /// Wraps a connected stream socket, making it blocking (writes pass `MSG_DONTWAIT`).
    pub(crate) fn socket(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_fd(), false)?;
        Ok(FdStream { read: fd, write: None })
    }

    /// Wraps the read end and write end of two pipes.
    pub(crate) fn pipes(read: OwnedFd, write: OwnedFd) -> io::Result<Self> {
        ignore_sigpipe();
        set_nonblocking(read.as_fd(), false)?;
        set_nonblocking(write.as_fd(), true)?;
        Ok(FdStream {
            read,
            write: Some(write),
        })
    }

    pub(crate) fn read_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    pub(crate) fn write_fd(&self) -> BorrowedFd<'_> {
        self.write.as_ref().unwrap_or(&self.read).as_fd()
    }
}

impl Stream for FdStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(nix::unistd::read(&self.read, buf)?)
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.write {
            // MSG_NOSIGNAL: a closed peer is EPIPE, never SIGPIPE.
            None => Ok(sendmsg::<()>(
                self.read.as_raw_fd(),
                bufs,
                &[],
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                None,
            )?),
            Some(write) => Ok(nix::sys::uio::writev(write, bufs)?),
        }
    }

    fn wait(&mut self, read: bool, write: bool, deadline: Option<Instant>) -> io::Result<Ready> {
        wait_fds(self.read.as_fd(), read, self.write_fd(), write, deadline)
    }
}

/// `ppoll` on a read fd and a write fd (possibly the same one) until `deadline`.
pub(crate) fn wait_fds(
    rfd: BorrowedFd<'_>,
    read: bool,
    wfd: BorrowedFd<'_>,
    write: bool,
    deadline: Option<Instant>,
) -> io::Result<Ready> {
    let same = rfd.as_raw_fd() == wfd.as_raw_fd();
    let mut rflags = PollFlags::empty();
    if read {
        rflags |= PollFlags::POLLIN;
    }
    if write && same {
        rflags |= PollFlags::POLLOUT;
    }
    let wflags = if write && !same {
        PollFlags::POLLOUT
    } else {
        PollFlags::empty()
    };
    let mut fds = [PollFd::new(rfd, rflags), PollFd::new(wfd, wflags)];
    let nfds = if wflags.is_empty() { 1 } else { 2 };
    loop {
        let timeout = deadline.map(|d| TimeSpec::from_duration(d.saturating_duration_since(Instant::now())));
        match ppoll(&mut fds[..nfds], timeout, None) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let got = |fd: &PollFd<'_>| fd.revents().unwrap_or(PollFlags::empty());
    // Hang-up and error count as ready: the next read or write reports what happened.
    let bad = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
    let r = got(&fds[0]);
    let w = if nfds == 2 { got(&fds[1]) } else { r };
    Ok(Ready {
        readable: read && r.intersects(PollFlags::POLLIN | bad),
        writable: write && w.intersects(PollFlags::POLLOUT | bad),
    })
}

pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let wanted = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    if wanted != flags {
        fcntl(fd, FcntlArg::F_SETFL(wanted))?;
    }
    Ok(())
}

/// Makes sure a write to a closed pipe returns EPIPE instead of killing the process.
///
/// Sockets pass `MSG_NOSIGNAL`, but `write(2)` on a pipe has no such flag. Rust's runtime
/// already ignores SIGPIPE in `main`; this covers a process whose SIGPIPE disposition is still
/// the default (a C host, `-Zon-broken-pipe=kill`). A handler the program installed is left
/// alone: it does not kill the process.
#[allow(unsafe_code)]
fn ignore_sigpipe() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing SIG_IGN runs no code in signal context; we read the old
        // disposition and put it back unless it was the default (which kills).
        let Ok(old) = (unsafe { sigaction(Signal::SIGPIPE, &ignore) }) else {
            return;
        };
        if old.handler() != SigHandler::SigDfl {
            // SAFETY: restores exactly the disposition the program had installed.
            let _ = unsafe { sigaction(Signal::SIGPIPE, &old) };
        }
    });
}
