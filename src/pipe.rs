//! The `pipe` transport: framed messages over two anonymous pipes, one per direction
//! (`pipe(7)`).
//!
//! Pipes have no address, so only a parent and the child that inherits one end of each can
//! use them. The pipes are created close-on-exec (`std::io::pipe` uses `pipe2(O_CLOEXEC)`), so
//! a process spawned by another thread never inherits them; [`spawn_child`](crate::spawn_child)
//! clears the flag on exactly the child's two ends, in the child, and the parent closes its
//! copies, so that each side sees end-of-file when the other goes away.

use std::os::fd::{BorrowedFd, OwnedFd};

use std::time::Instant;

use crate::error::Result;
use crate::frame::Framed;
use crate::handshake::{self, Token};
use crate::stream::FdStream;
use crate::transport::{Kind, Options};

/// One end of a pair of pipes.
///
/// Obtained from [`spawn_child`](crate::spawn_child) with [`Kind::Pipe`], in the child from
/// [`connect_to_parent`](crate::connect_to_parent), or in one process from
/// [`PipeTransport::pair`]. Dropping it closes both pipe ends: the peer receives what was
/// sent, then [`Error::Disconnected`](crate::Error::Disconnected).
///
/// # Platform-specific behavior
/// A write to a pipe whose reader is gone raises SIGPIPE, which by default kills the process.
/// Rust programs ignore SIGPIPE from `main`; if the process still has the default disposition
/// when the first pipe transport is made, switchboard sets it to ignore, so that the write
/// returns [`Error::Disconnected`](crate::Error::Disconnected). A handler the program
/// installed is left in place.
///
/// # Examples
/// ```
/// use switchboard::{Options, PipeTransport, Transport};
///
/// let (mut a, mut b) = PipeTransport::pair(&Options::new())?;
/// a.send(b"over the pipe")?;
/// let mut buf = Vec::new();
/// assert_eq!(b.recv(&mut buf)?, 13);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct PipeTransport {
    framed: Framed<FdStream>,
}

impl PipeTransport {
    /// Two connected endpoints in this process.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the pipes cannot be created.
    pub fn pair(options: &Options) -> Result<(Self, Self)> {
        let (r1, w1) = std::io::pipe()?;
        let (r2, w2) = std::io::pipe()?;
        Ok((Self::from_fds(r1.into(), w2.into(), options)?, Self::from_fds(r2.into(), w1.into(), options)?))
    }

    /// An endpoint from the read end of one pipe and the write end of another, whose other
    /// ends belong to a peer speaking switchboard frames.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the descriptors' flags cannot be set.
    pub fn from_pipes(read: std::io::PipeReader, write: std::io::PipeWriter, options: &Options) -> Result<Self> {
        Self::from_fds(read.into(), write.into(), options)
    }

    /// Splits into a sending half (the write end) and a receiving half (the read end) for two
    /// threads, as [`Transport::split`](crate::Transport::split).
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if a descriptor cannot be duplicated.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Error, Options, PipeTransport, Transport};
    ///
    /// let (a, mut b) = PipeTransport::pair(&Options::new())?;
    /// let (tx, mut rx) = a.split()?;
    /// b.send(b"to the read end")?;
    /// let mut buf = Vec::new();
    /// rx.recv(&mut buf)?;
    /// assert_eq!(buf, b"to the read end");
    /// drop(tx); // closes the write end: the peer sees the end
    /// assert!(matches!(b.recv(&mut buf), Err(Error::Disconnected)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn split(self) -> Result<(crate::SendHalf, crate::RecvHalf)> {
        crate::split::framed(self.framed, Kind::Pipe)
    }

    /// An endpoint from the read end of one pipe and the write end of the other.
    pub(crate) fn from_fds(read: OwnedFd, write: OwnedFd, options: &Options) -> Result<Self> {
        options.check()?;
        Ok(PipeTransport { framed: Framed::new(FdStream::pipes(read, write)?, options.max_message_size) })
    }

    /// The child's side of the spawn handshake: a hello frame with the parent's token.
    pub(crate) fn send_hello(&mut self, token: &Token) -> Result<()> {
        self.framed.send_frame(&handshake::encode_hello(Some(token)))
    }

    /// The parent's side: the child's hello, checked, by `deadline` (`Ok(false)` if not yet).
    pub(crate) fn expect_hello(&mut self, token: &Token, deadline: Option<Instant>) -> Result<bool> {
        handshake::expect_hello(&mut self.framed, token, deadline)
    }

    /// The read end's fd (for `poll`).
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.framed.get_ref().read_fd()
    }

    /// The write end's fd.
    pub fn write_fd(&self) -> BorrowedFd<'_> {
        self.framed.get_ref().write_fd()
    }
}

crate::frame::impl_transport!(PipeTransport, Kind::Pipe);
