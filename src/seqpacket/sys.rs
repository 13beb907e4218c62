//! The system calls under the seqpacket transport: `socket(2)`/`socketpair(2)` with
//! `SOCK_SEQPACKET`, one record per `send(2)` or `sendmsg(2)` and per `recv(2)`, and the send
//! buffer's size.
//!
//! Every call goes through nix's safe wrappers; accepting connections goes through std's
//! `UnixListener`, which calls `accept4(2)` on any Unix socket, seqpacket included, and hands
//! back an owned descriptor.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr, bind, connect, getsockopt, listen, recv, send,
    sendmsg, setsockopt, socket, socketpair, sockopt,
};
use nix::sys::time::TimeVal;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::frame::Ready;
use crate::seqpacket::record::{RECORD_MAX, RECORD_MIN};
use crate::stream::SOCKET_SEND_SLICE;

/// What one `recv` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// A record of this many bytes (zero: the end, or an empty record).
    Record(usize),
    /// A record longer than the buffer: the kernel cut it (`MSG_TRUNC`).
    Cut,
}

/// Two connected seqpacket sockets, close-on-exec.
pub(crate) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?)
}

/// The socket address of a `seqpacket:` address.
pub(crate) fn unix_addr(address: &Address) -> Result<UnixAddr> {
    let addr = match address {
        Address::Seqpacket(path) => UnixAddr::new(path.as_path()),
        Address::SeqpacketAbstract(name) => UnixAddr::new_abstract(name.as_bytes()),
        other => return Err(Error::Config(format!("{other} is not a seqpacket address"))),
    };
    addr.map_err(|e| Error::about(e, address))
}

/// A blocking seqpacket socket connected to `address`.
pub(crate) fn connect_to(address: &Address) -> Result<OwnedFd> {
    let addr = unix_addr(address)?;
    let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Error::about(e, address))?;
    loop {
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(fd),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::about(e, address)),
        }
    }
}

/// A non-blocking listening seqpacket socket bound to `address`, wrapped in std's
/// `UnixListener` for `accept`.
pub(crate) fn listen_at(address: &Address) -> Result<UnixListener> {
    let addr = unix_addr(address)?;
    let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)
        .map_err(|e| Error::about(e, address))?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| Error::about(e, address))?;
    listen(&fd, Backlog::MAXCONN).map_err(|e| Error::about(e, address))?;
    Ok(UnixListener::from(fd))
}

/// Whether `fd` is a seqpacket socket.
pub(crate) fn is_seqpacket(fd: BorrowedFd<'_>) -> bool {
    getsockopt(&fd, sockopt::SockType).is_ok_and(|t| t == SockType::SeqPacket)
}

/// Makes a connected socket blocking with sends that block at most [`SOCKET_SEND_SLICE`],
/// asks for a send buffer that holds a few of the largest records (best effort: the kernel
/// caps it at `net.core.wmem_max`), and returns the largest record it can send: the kernel
/// refuses a record above the send buffer less 32 bytes (`EMSGSIZE`).
pub(crate) fn configure(fd: BorrowedFd<'_>) -> io::Result<usize> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    if flags.contains(OFlag::O_NONBLOCK) {
        fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    }
    setsockopt(&fd, sockopt::SendTimeout, &TimeVal::new(0, SOCKET_SEND_SLICE.as_micros() as _))?;
    let _ = setsockopt(&fd, sockopt::SndBuf, &(4 * RECORD_MAX));
    let sndbuf = getsockopt(&fd, sockopt::SndBuf)?;
    // 32 bytes the kernel keeps back, and as much again of margin.
    Ok(sndbuf.saturating_sub(64).clamp(RECORD_MIN, RECORD_MAX))
}

/// Sends one record, `header` then `payload`, in one `sendmsg`: all of it or nothing. With
/// `wait`, blocks up to [`SOCKET_SEND_SLICE`] for room, else not at all (`WouldBlock`).
pub(crate) fn send_record(fd: BorrowedFd<'_>, header: &[u8], payload: &[u8], wait: bool) -> io::Result<()> {
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if !wait {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let len = header.len() + payload.len();
    if len <= SMALL_RECORD {
        // A small record is copied together and sent with send(2): sendmsg(2) first copies in
        // a message header and an iovec array, about a tenth of a 64-byte stream's time.
        let mut record = [0u8; SMALL_RECORD];
        record[..header.len()].copy_from_slice(header);
        record[header.len()..len].copy_from_slice(payload);
        send(fd.as_raw_fd(), &record[..len], flags)?;
        return Ok(());
    }
    let iov = [IoSlice::new(header), IoSlice::new(payload)];
    sendmsg::<()>(fd.as_raw_fd(), &iov, &[], flags, None)?;
    Ok(())
}

/// Records up to this size are copied into one buffer and sent with a plain `send(2)`.
const SMALL_RECORD: usize = 256;

/// Receives one record into `buf`. With `wait`, blocks until one arrives, else not at all
/// (`WouldBlock`). Descriptors a peer attached are closed by the kernel (no control buffer).
pub(crate) fn recv_record(fd: BorrowedFd<'_>, buf: &mut [u8], wait: bool) -> io::Result<Received> {
    // recv(2) rather than recvmsg(2), which copies in a message header and an iovec array.
    // With MSG_TRUNC a Unix socket returns the record's whole length, cut or not.
    let mut flags = MsgFlags::MSG_TRUNC;
    if !wait {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let n = recv(fd.as_raw_fd(), buf, flags)?;
    if n > buf.len() {
        return Ok(Received::Cut);
    }
    Ok(Received::Record(n))
}

/// Whether the peer has closed its sending side (a read of zero bytes then means the end,
/// not an empty record).
pub(crate) fn hung_up(fd: BorrowedFd<'_>) -> bool {
    // nix names no POLLRDHUP (and its `revents` refuses the bit), so ask for nothing else:
    // the descriptor counts as ready only for it, POLLHUP or POLLERR, each an end.
    let mut fds = [PollFd::new(fd, PollFlags::from_bits_retain(libc::POLLRDHUP))];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

/// Waits until the socket is readable (if `read`) or writable (if `write`), or `deadline`.
pub(crate) fn wait(fd: BorrowedFd<'_>, read: bool, write: bool, deadline: Option<Instant>) -> io::Result<Ready> {
    crate::stream::wait_fds(fd.as_fd(), read, fd, write, deadline)
}
