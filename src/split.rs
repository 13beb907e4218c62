//! An endpoint split into a sending half and a receiving half, for full duplex from two
//! threads without a proxy thread.
//!
//! - **tcp, unix**: the receiving half keeps the socket and everything already buffered; the
//!   sending half writes through a duplicate of it (`dup(2)`). Dropping the sending half shuts
//!   the socket down for writing (`shutdown(SHUT_WR)`), so the peer's `recv` returns what was
//!   sent, then `Disconnected`, even while the receiving half goes on.
//! - **seqpacket**: as tcp and unix (the sending half a duplicate of the socket).
//! - **pipe, fifo**: the two pipes are already one per direction; each half takes its end.
//!   Dropping the sending half closes the write end, with the same effect.
//! - **shm**: each half takes its ring. Both halves may sleep on the endpoint's one doorbell
//!   at once, so a waker wakes every sleeper (one wake-up syscall either way). Dropping the
//!   sending half marks the endpoint as done sending; the peer's `recv` returns what is in the
//!   ring, then `Disconnected`. The endpoint counts as closed once both halves are dropped.
//! - **zmq**: a ZeroMQ socket may not be used from two threads; `split` is refused with
//!   [`Error::Unsupported`].
//!
//! A whole endpoint reads what arrives while it waits to send, so that two peers that send
//! at once cannot deadlock. A sending half cannot do that (the receiving half owns the
//! incoming direction, in another thread): a program that splits must keep receiving, as it
//! would with two threads on one socket.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::deadline;
use crate::error::{Error, Result};
use crate::frame::Framed;
use crate::seqpacket::SeqpacketTransport;
use crate::shm::ShmTransport;
use crate::stream::FdStream;
use crate::transport::{Kind, Transport};

/// The sending half of a split endpoint: [`send`](SendHalf::send),
/// [`send_timeout`](SendHalf::send_timeout) and [`flush_timeout`](SendHalf::flush_timeout),
/// with the same meaning as on the whole endpoint ([`Transport`]).
///
/// Obtained with [`RecvHalf`] from [`Transport::split`] or the transports' own `split`. It
/// can move to another thread than its receiving half. See the module notes on what dropping
/// it tells the peer.
///
/// # Examples
/// ```
/// use switchboard::{Kind, Options, pair};
///
/// let (a, b) = pair(Kind::Unix, &Options::new())?;
/// let (mut tx, mut rx) = a.split()?;
/// let (mut b_tx, mut b_rx) = b.split()?;
/// // Full duplex: one thread sends while this one receives.
/// let sender = std::thread::spawn(move || -> switchboard::Result<()> {
///     for i in 0..100u32 {
///         tx.send(&i.to_le_bytes())?;
///     }
///     Ok(())
/// });
/// let mut buf = Vec::new();
/// for i in 0..100u32 {
///     b_tx.send(b"ack")?;
///     b_rx.recv(&mut buf)?;
///     assert_eq!(buf, i.to_le_bytes());
///     rx.recv(&mut buf)?;
///     assert_eq!(buf, b"ack");
/// }
/// sender.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SendHalf {
    inner: SendInner,
    kind: Kind,
}

#[derive(Debug)]
enum SendInner {
    /// `socket`: shut down for writing on drop.
    Framed {
        framed: Framed<FdStream>,
        socket: bool,
    },
    Shm(ShmTransport),
    Seqpacket(SeqpacketTransport),
}

/// The receiving half of a split endpoint: [`recv`](RecvHalf::recv),
/// [`recv_timeout`](RecvHalf::recv_timeout) and the readiness descriptor
/// ([`ready_fd`](RecvHalf::ready_fd), also [`AsFd`]), with the same meaning as on the whole
/// endpoint ([`Transport`]). Messages the endpoint had buffered before the split are received
/// here first.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use switchboard::{Error, Kind, Options, pair};
///
/// let (a, b) = pair(Kind::Shm, &Options::new())?;
/// let (tx, mut rx) = a.split()?;
/// let (mut b_tx, _b_rx) = b.split()?;
/// b_tx.send(b"to the receiving half")?;
/// let mut buf = Vec::new();
/// rx.recv_timeout(&mut buf, Duration::from_secs(5))?;
/// assert_eq!(buf, b"to the receiving half");
/// // Dropping a sending half ends that direction: the peer's receiver sees it.
/// drop(b_tx);
/// assert!(matches!(rx.recv(&mut buf), Err(Error::Disconnected)));
/// drop(tx);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RecvHalf {
    inner: RecvInner,
    kind: Kind,
}

#[derive(Debug)]
enum RecvInner {
    Framed(Framed<FdStream>),
    Shm(ShmTransport),
    Seqpacket(SeqpacketTransport),
}

/// Splits a framed endpoint (tcp, unix, pipe, fifo).
pub(crate) fn framed(framed: Framed<FdStream>, kind: Kind) -> Result<(SendHalf, RecvHalf)> {
    let socket = matches!(kind, Kind::Tcp | Kind::Unix);
    let (send, recv) = framed.split()?;
    Ok((
        SendHalf { inner: SendInner::Framed { framed: send, socket }, kind },
        RecvHalf { inner: RecvInner::Framed(recv), kind },
    ))
}

/// Splits a seqpacket endpoint.
pub(crate) fn seqpacket(transport: SeqpacketTransport) -> Result<(SendHalf, RecvHalf)> {
    let (send, recv) = transport.split_halves()?;
    Ok((
        SendHalf { inner: SendInner::Seqpacket(send), kind: Kind::Seqpacket },
        RecvHalf { inner: RecvInner::Seqpacket(recv), kind: Kind::Seqpacket },
    ))
}

/// Splits a shared-memory endpoint.
pub(crate) fn shm(transport: ShmTransport) -> Result<(SendHalf, RecvHalf)> {
    let (send, recv) = transport.split_halves()?;
    Ok((
        SendHalf { inner: SendInner::Shm(send), kind: Kind::Shm },
        RecvHalf { inner: RecvInner::Shm(recv), kind: Kind::Shm },
    ))
}

impl SendHalf {
    /// Sends one message, as [`Transport::send`].
    ///
    /// # Errors
    /// As [`Transport::send`].
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        match &mut self.inner {
            SendInner::Framed { framed, .. } => framed.send(msg),
            SendInner::Shm(t) => t.send(msg),
            SendInner::Seqpacket(t) => t.send(msg),
        }
    }

    /// Sends one message unless the peer cannot take its first byte within `timeout`, as
    /// [`Transport::send_timeout`] (what happens to a half-written message is described there).
    ///
    /// # Errors
    /// As [`Transport::send_timeout`].
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        match &mut self.inner {
            SendInner::Framed { framed, .. } => framed.send_until(msg, deadline::after(timeout)),
            SendInner::Shm(t) => t.send_timeout(msg, timeout),
            SendInner::Seqpacket(t) => t.send_timeout(msg, timeout),
        }
    }

    /// Sends every message of `msgs` in as few syscalls as the transport allows, as
    /// [`Transport::send_batch`].
    ///
    /// # Errors
    /// As [`Transport::send_batch`].
    pub fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<()> {
        match &mut self.inner {
            SendInner::Framed { framed, .. } => framed.send_batch(msgs),
            SendInner::Shm(t) => t.send_batch(msgs),
            SendInner::Seqpacket(t) => t.send_batch(msgs),
        }
    }

    /// Writes the rest of an accepted message, as [`Transport::flush_timeout`].
    ///
    /// # Errors
    /// As [`Transport::flush_timeout`].
    pub fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        match &mut self.inner {
            SendInner::Framed { framed, .. } => {
                if framed.flush_until(deadline::after(timeout))? {
                    Ok(())
                } else {
                    Err(Error::Timeout)
                }
            }
            SendInner::Shm(t) => t.flush_timeout(timeout),
            SendInner::Seqpacket(t) => t.flush_timeout(timeout),
        }
    }

    /// Bytes of an accepted message still to be written, as [`Transport::pending_send`].
    pub fn pending_send(&self) -> usize {
        match &self.inner {
            SendInner::Framed { framed, .. } => framed.pending_send(),
            SendInner::Shm(t) => t.pending_send(),
            SendInner::Seqpacket(t) => t.pending_send(),
        }
    }

    /// Sends one message with descriptors attached, as
    /// [`UnixTransport::send_with_fds`](crate::UnixTransport::send_with_fds).
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a half of another transport than unix (nothing is sent);
    /// otherwise as `UnixTransport::send_with_fds`.
    pub fn send_with_fds(&mut self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        match &mut self.inner {
            SendInner::Framed { framed, .. } if self.kind == Kind::Unix => {
                let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
                framed.send_with_fds(msg, &raw)
            }
            _ => Err(Error::Unsupported(format!("the {} transport cannot pass file descriptors", self.kind))),
        }
    }

    /// The transport this half belongs to.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The largest message this half sends.
    pub fn max_message_size(&self) -> usize {
        match &self.inner {
            SendInner::Framed { framed, .. } => framed.max_message_size(),
            SendInner::Shm(t) => t.max_message_size(),
            SendInner::Seqpacket(t) => t.max_message_size(),
        }
    }
}

impl Drop for SendHalf {
    fn drop(&mut self) {
        // The receiving half holds the socket open; the peer must still learn that no more
        // messages come. A socket already gone has nothing to shut down.
        let socket = match &self.inner {
            SendInner::Framed { framed, socket: true } => framed.get_ref().write_fd(),
            SendInner::Seqpacket(t) => t.socket(),
            _ => return,
        };
        let _ = nix::sys::socket::shutdown(socket.as_raw_fd(), nix::sys::socket::Shutdown::Write);
    }
}

impl RecvHalf {
    /// Receives the next message, as [`Transport::recv`].
    ///
    /// # Errors
    /// As [`Transport::recv`].
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        match &mut self.inner {
            RecvInner::Framed(framed) => framed.recv(buf, None, None),
            RecvInner::Shm(t) => t.recv(buf),
            RecvInner::Seqpacket(t) => t.recv(buf),
        }
    }

    /// Receives the next message, waiting at most `timeout`, as [`Transport::recv_timeout`]
    /// (cancellation-safe in the same way: a timeout loses nothing).
    ///
    /// # Errors
    /// As [`Transport::recv_timeout`].
    pub fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        match &mut self.inner {
            RecvInner::Framed(framed) => framed.recv(buf, None, deadline::after(timeout)),
            RecvInner::Shm(t) => t.recv_timeout(buf, timeout),
            RecvInner::Seqpacket(t) => t.recv_timeout(buf, timeout),
        }
    }

    /// Receives the next message and the descriptors that came with it, as
    /// [`UnixTransport::recv_with_fds`](crate::UnixTransport::recv_with_fds).
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a half of another transport than unix (nothing is
    /// received); otherwise as `UnixTransport::recv_with_fds`.
    pub fn recv_with_fds(&mut self, buf: &mut Vec<u8>, fds: &mut Vec<OwnedFd>) -> Result<usize> {
        match &mut self.inner {
            RecvInner::Framed(framed) if self.kind == Kind::Unix => framed.recv(buf, Some(fds), None),
            _ => Err(Error::Unsupported(format!("the {} transport cannot pass file descriptors", self.kind))),
        }
    }

    /// The readiness descriptor, as [`Transport::ready_fd`]: it polls readable whenever
    /// `recv_timeout(Duration::ZERO)` would not time out.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be made (no descriptors left).
    pub fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        match &self.inner {
            RecvInner::Framed(framed) => Ok(framed.ready_fd()?),
            RecvInner::Shm(t) => t.ready_fd(),
            RecvInner::Seqpacket(t) => t.ready_fd(),
        }
    }

    /// The transport this half belongs to.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The largest message this half accepts.
    pub fn max_message_size(&self) -> usize {
        match &self.inner {
            RecvInner::Framed(framed) => framed.max_message_size(),
            RecvInner::Shm(t) => t.max_message_size(),
            RecvInner::Seqpacket(t) => t.max_message_size(),
        }
    }
}

impl AsFd for RecvHalf {
    /// The readiness descriptor ([`RecvHalf::ready_fd`]); for a socket or pipe that cannot
    /// make one (no descriptors left), the socket or pipe itself.
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            RecvInner::Framed(framed) => framed.ready_fd().unwrap_or_else(|_| framed.get_ref().read_fd()),
            RecvInner::Shm(t) => t.as_fd(),
            RecvInner::Seqpacket(t) => t.as_fd(),
        }
    }
}
