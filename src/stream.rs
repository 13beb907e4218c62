//! The byte-stream endpoint under tcp, unix, pipe and fifo: blocking reads, non-blocking gather
//! writes, and `ppoll(2)` with a deadline.
//!
//! Reads block in `read(2)` so that a blocking `recv` costs exactly one syscall, like the raw
//! mechanism. Writes never block for long: a socket write blocks at most
//! [`SOCKET_SEND_SLICE`] (`SO_SNDTIMEO`), the pipe's write end is `O_NONBLOCK`. When the peer
//! is full, the framing layer waits in `ppoll` for room *or* for incoming data, which it reads
//! so that two peers sending at once cannot deadlock.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg, setsockopt, sockopt};
use nix::sys::time::{TimeSpec, TimeVal};

use crate::error::TooManyFds;
use crate::frame::{MAX_FDS_PER_MESSAGE, Ready, Stream};

/// How long a socket write may block in the kernel before it returns to let the framing layer
/// read incoming data (`SO_SNDTIMEO`).
///
/// A blocking write is woken as soon as any room frees; `poll` reports a Unix socket writable
/// only once three quarters of its buffer have drained, and with wake-ups costing tens of
/// microseconds here, polling made 64 KiB streams three times slower than a plain blocking
/// `write`. Blocking with a timeout keeps that speed and still lets two endpoints that send
/// at once make progress: each returns after at most this long and reads what the other sent.
pub(crate) const SOCKET_SEND_SLICE: Duration = Duration::from_millis(2);

/// The most descriptors one `sendmsg` can carry (`SCM_MAX_FD` in the kernel).
const SCM_MAX_FD: usize = 253;

/// The pipe buffer switchboard asks for: 1 MiB instead of the default 64 KiB, so that a 64 KiB
/// message plus its 4-byte prefix fits in one write (with the default, every such message
/// took two writes and an extra wake-up: 2.6x the raw round trip), and large messages move
/// in fewer, bigger steps.
pub(crate) const PIPE_SIZE: usize = 1 << 20;

/// A connected socket (one fd both ways) or a pair of pipe ends.
#[derive(Debug)]
pub(crate) struct FdStream {
    read: OwnedFd,
    /// `None` for a socket, whose one fd is `read`.
    write: Option<OwnedFd>,
    /// For a Unix socket: the control buffer that receives passed descriptors. Every read of
    /// a Unix socket goes through `recvmsg` with it, so descriptors are never dropped unseen.
    cmsg: Option<Vec<u8>>,
    /// The readiness descriptor, made the first time someone asks for it.
    ready: OnceLock<ReadyFd>,
    /// An accepted message waits to be written: the readiness descriptor also watches for
    /// room to write.
    write_interest: AtomicBool,
    /// A pipe's read end: the framing layer paces its reads (see `frame/pacing.rs`).
    paced: bool,
}

impl FdStream {
    /// Wraps a connected stream socket, making it blocking with a send timeout of
    /// [`SOCKET_SEND_SLICE`].
    pub(crate) fn socket(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_fd(), false)?;
        setsockopt(&fd, sockopt::SendTimeout, &TimeVal::new(0, SOCKET_SEND_SLICE.as_micros() as _))?;
        Ok(FdStream {
            read: fd,
            write: None,
            cmsg: None,
            ready: OnceLock::new(),
            write_interest: AtomicBool::new(false),
            paced: false,
        })
    }

    /// Wraps a connected Unix stream socket, which can also carry file descriptors.
    pub(crate) fn unix_socket(fd: OwnedFd) -> io::Result<Self> {
        let mut stream = Self::socket(fd)?;
        stream.cmsg = Some(nix::cmsg_space!([RawFd; SCM_MAX_FD]));
        Ok(stream)
    }

    /// Wraps the read end and write end of two pipes, growing the write end's pipe to
    /// [`PIPE_SIZE`] where the system allows.
    pub(crate) fn pipes(read: OwnedFd, write: OwnedFd) -> io::Result<Self> {
        ignore_sigpipe();
        // Best effort: the limit is /proc/sys/fs/pipe-max-size (1 MiB by default) and the
        // per-user pipe quota; a smaller pipe only costs speed.
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32));
        set_nonblocking(read.as_fd(), false)?;
        set_nonblocking(write.as_fd(), true)?;
        Ok(FdStream {
            read,
            write: Some(write),
            cmsg: None,
            ready: OnceLock::new(),
            write_interest: AtomicBool::new(false),
            paced: true,
        })
    }

    /// The socket (or the read end), for a stream whose framing is done.
    pub(crate) fn into_read_fd(self) -> OwnedFd {
        self.read
    }

    /// Splits off a stream that only writes, for another thread: a duplicate of the socket,
    /// or the pipes' write end. `self` keeps reading (a socket's writes must no longer go
    /// through it).
    pub(crate) fn split_writer(&mut self) -> io::Result<FdStream> {
        let (read, write) = match self.write.take() {
            // The writing stream never reads; its `read` is a duplicate of the write end only
            // because every stream has one.
            Some(write) => (write.try_clone()?, Some(write)),
            None => (self.read.try_clone()?, None),
        };
        // A Unix socket's writer may send descriptors (`try_write_fds` asks for `cmsg`); it
        // never reads, so it needs no receive buffer.
        let cmsg = self.cmsg.as_ref().map(|_| Vec::new());
        Ok(FdStream { read, write, cmsg, ready: OnceLock::new(), write_interest: AtomicBool::new(false), paced: false })
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
        // One slice (a small frame) takes the plain call, which imports no iovec.
        if let [buf] = bufs {
            return match &self.write {
                None => Ok(nix::sys::socket::send(self.read.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL)?),
                Some(write) => Ok(nix::unistd::write(write, buf)?),
            };
        }
        match &self.write {
            // MSG_NOSIGNAL: a closed peer is EPIPE, never SIGPIPE. Blocks up to
            // SOCKET_SEND_SLICE, then reports EAGAIN (or a partial write).
            None => Ok(sendmsg::<()>(self.read.as_raw_fd(), bufs, &[], MsgFlags::MSG_NOSIGNAL, None)?),
            Some(write) => Ok(nix::sys::uio::writev(write, bufs)?),
        }
    }

    fn try_write_now(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.write {
            None => {
                let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
                Ok(sendmsg::<()>(self.read.as_raw_fd(), bufs, &[], flags, None)?)
            }
            // The pipe's write end is non-blocking already.
            Some(write) => Ok(nix::sys::uio::writev(write, bufs)?),
        }
    }

    fn set_write_interest(&self, on: bool) {
        // A plain load first: every send turns the interest off, and it is almost always off.
        if self.write_interest.load(Ordering::Relaxed) != on
            && self.write_interest.swap(on, Ordering::Relaxed) != on
            && let Some(r) = self.ready.get()
        {
            r.watch_write(self.read.as_fd(), self.write_fd(), on);
        }
    }

    fn paced(&self) -> bool {
        self.paced
    }

    #[allow(unsafe_code)] // FIONREAD has no safe wrapper
    fn unread(&self) -> Option<usize> {
        let mut waiting: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer, which points at a live local;
        // the descriptor is owned by `self` and open.
        let r = unsafe { libc::ioctl(self.read.as_raw_fd(), libc::FIONREAD, &mut waiting) };
        (r == 0).then_some(waiting.max(0) as usize)
    }

    #[allow(unsafe_code)] // adopting the descriptors the kernel just installed
    fn read_fds(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        let Some(cmsg) = &mut self.cmsg else {
            return self.read(buf);
        };
        let mut iov = [IoSliceMut::new(buf)];
        // MSG_CMSG_CLOEXEC: received descriptors are close-on-exec from their first instant.
        let msg = recvmsg::<()>(self.read.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
        // The buffer holds SCM_MAX_FD descriptors, the most one sendmsg can carry, and one
        // read returns the descriptors of one sendmsg at most (the kernel ends the read
        // there), so nothing is ever truncated: nix refuses to parse a truncated buffer, and
        // the descriptors in it could not be closed.
        let first = fds.len();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: SCM_RIGHTS descriptors are new in this process and owned by no one
                    // else; wrapping each once makes sure it is closed exactly once.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        if fds.len() - first > MAX_FDS_PER_MESSAGE {
            fds.truncate(first); // closes them
            return Err(io::Error::other(TooManyFds));
        }
        Ok(msg.bytes)
    }

    fn try_write_fds(&mut self, bufs: &[IoSlice<'_>], fds: &[RawFd]) -> io::Result<usize> {
        if fds.is_empty() {
            return self.try_write_vectored(bufs);
        }
        if self.cmsg.is_none() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let rights = [ControlMessage::ScmRights(fds)];
        Ok(sendmsg::<()>(self.read.as_raw_fd(), bufs, &rights, MsgFlags::MSG_NOSIGNAL, None)?)
    }

    fn set_buffered(&self, ready: bool) {
        if let Some(r) = self.ready.get() {
            r.set(ready);
        }
    }

    /// Made on first use (two more descriptors: an epoll set and an eventfd).
    fn ready_fd(&self, buffered: bool) -> io::Result<BorrowedFd<'_>> {
        if let Some(ready) = self.ready.get() {
            return Ok(ready.as_fd());
        }
        let made = ReadyFd::new(self.read.as_fd(), buffered)?;
        if self.write_interest.load(Ordering::Relaxed) {
            made.watch_write(self.read.as_fd(), self.write_fd(), true);
        }
        // Only `&mut` methods change what is buffered, so no one raced us; if two threads
        // made one at once through `&self`, either is right.
        Ok(self.ready.get_or_init(|| made).as_fd())
    }

    fn wait(&mut self, read: bool, write: bool, deadline: Option<Instant>) -> io::Result<Ready> {
        wait_fds(self.read.as_fd(), read, self.write_fd(), write, deadline)
    }
}

/// `ppoll` on a read fd and a write fd (possibly the same one) until `deadline` (also the
/// seqpacket transport's wait).
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
    let wflags = if write && !same { PollFlags::POLLOUT } else { PollFlags::empty() };
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

fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let wanted = if on { flags | OFlag::O_NONBLOCK } else { flags - OFlag::O_NONBLOCK };
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

/// A descriptor that polls readable when a stream is readable or when a flag is raised: an
/// epoll set (`epoll(7)`) over the stream's read fd and an eventfd (`eventfd(2)`).
///
/// The framing layer buffers what it reads, so a whole message can wait in its buffer while
/// the socket itself has nothing more: polling the socket would then miss it. The framing
/// layer raises the flag whenever such a message (or the end of the stream) is buffered, and
/// lowers it once the buffer holds nothing whole; the kernel does the rest. Raising and
/// lowering cost a syscall each, and only at those transitions.
#[derive(Debug)]
pub(crate) struct ReadyFd {
    epoll: Epoll,
    flag: EventFd,
    raised: AtomicBool,
}

impl ReadyFd {
    /// An epoll set over `read` and a fresh flag, raised if `raised`.
    pub(crate) fn new(read: BorrowedFd<'_>, raised: bool) -> io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let flag = EventFd::from_value_and_flags(u32::from(raised), EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(read, EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, 0))?;
        epoll.add(flag.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 1))?;
        Ok(ReadyFd { epoll, flag, raised: AtomicBool::new(raised) })
    }

    /// Raises or lowers the flag (a syscall only when it changes).
    pub(crate) fn set(&self, raised: bool) {
        if self.raised.swap(raised, Ordering::Relaxed) == raised {
            return;
        }
        // The eventfd is non-blocking: writing 1 to a counter far below its limit and
        // reading a non-zero counter cannot fail, and if they did, the worst case is a
        // spurious or a missed wake-up of a poller, never a lost message.
        let _ = if raised { self.flag.write(1).map(drop) } else { self.flag.read().map(drop) };
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.0.as_fd()
    }

    /// Also polls readable when `write` (the socket itself, or a pipe's write end) has room,
    /// or stops doing so.
    pub(crate) fn watch_write(&self, read: BorrowedFd<'_>, write: BorrowedFd<'_>, on: bool) {
        // Failures here cost at most a missed "room to write" wake-up, which the next send
        // or flush, with its own deadline, makes up for.
        if read.as_raw_fd() == write.as_raw_fd() {
            let mut events = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
            if on {
                events |= EpollFlags::EPOLLOUT;
            }
            let _ = self.epoll.modify(read, &mut EpollEvent::new(events, 0));
        } else if on {
            let _ = self.epoll.add(write, EpollEvent::new(EpollFlags::EPOLLOUT, 2));
        } else {
            let _ = self.epoll.delete(write);
        }
    }
}
