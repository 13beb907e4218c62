//! The `unix` transport: framed messages over a Unix domain stream socket (`unix(7)`).
//!
//! Built on `std::os::unix::net` plus nix for `SO_PEERCRED`: std gives the fd and the
//! socket-pair constructor, nix reads the peer's credentials, which interprocess's portable
//! local sockets do not expose.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt};

use crate::address::Address;
use crate::deadline;
use crate::error::{Error, Result};
use crate::frame::Framed;
use crate::handshake::{self, Token};
use crate::stream::FdStream;
use crate::transport::{Kind, Options};

/// The message that carries a `shm:` connection's segment.
const SEGMENT_MAGIC: [u8; 4] = *b"SWBS";

/// The process on the other end of a Unix socket, as the kernel recorded it at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process id.
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// A connected Unix-socket endpoint.
///
/// Obtained from [`UnixTransport::connect`], a unix [`Listener`](crate::Listener),
/// [`UnixTransport::pair`], or [`spawn_child`](crate::spawn_child) with [`Kind::Unix`].
/// Dropping it closes the socket: the peer receives what was sent, then
/// [`Error::Disconnected`](crate::Error::Disconnected).
///
/// # Examples
/// ```
/// use switchboard::{Options, Transport, UnixTransport};
///
/// let (mut a, mut b) = UnixTransport::pair(&Options::new())?;
/// a.send(b"ping")?;
/// let mut buf = Vec::new();
/// b.recv(&mut buf)?;
/// assert_eq!(buf, b"ping");
/// assert_eq!(b.peer_credentials()?.pid, std::process::id() as i32);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixTransport {
    framed: Framed<FdStream>,
}

impl UnixTransport {
    /// Connects to a switchboard unix [`Listener`](crate::Listener) at `path` and performs the
    /// handshake.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if nothing listens there, or
    /// [`Error::Handshake`](crate::Error::Handshake) if the server refuses the connection
    /// (for example because it only accepts its own user).
    pub fn connect(path: impl AsRef<Path>, options: &Options) -> Result<Self> {
        let address = Address::Unix(path.as_ref().to_owned());
        let sockaddr = SocketAddr::from_pathname(path).map_err(|e| Error::about(e, &address))?;
        Self::connect_with(&sockaddr, &address, options, None)
    }

    /// Connects to `sockaddr` (a path or an abstract name; `address` names it in errors).
    pub(crate) fn connect_with(
        sockaddr: &SocketAddr,
        address: &Address,
        options: &Options,
        token: Option<&Token>,
    ) -> Result<Self> {
        options.check()?;
        let stream = UnixStream::connect_addr(sockaddr).map_err(|e| Error::about(e, address))?;
        let mut conn = Self::from_stream(stream, options)?;
        handshake::client(&mut conn.framed, token, options.handshake_timeout)?;
        Ok(conn)
    }

    /// Two connected endpoints in this process (`socketpair(2)`), without a handshake.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the sockets cannot be created.
    pub fn pair(options: &Options) -> Result<(Self, Self)> {
        let (a, b) = UnixStream::pair()?;
        Ok((Self::from_stream(a, options)?, Self::from_stream(b, options)?))
    }

    /// Wraps a Unix stream that is already connected to a peer speaking switchboard frames,
    /// without a handshake (the other end must do the same).
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the socket options cannot be set.
    pub fn from_std(stream: UnixStream, options: &Options) -> Result<Self> {
        Self::from_stream(stream, options)
    }

    pub(crate) fn from_stream(stream: UnixStream, options: &Options) -> Result<Self> {
        options.check()?;
        let framed = Framed::new(FdStream::unix_socket(OwnedFd::from(stream))?, options.max_message_size);
        Ok(UnixTransport { framed })
    }

    /// Sends one message with file descriptors attached (`SCM_RIGHTS`, `unix(7)`): the peer
    /// receives its own duplicates of `fds` with [`recv_with_fds`](UnixTransport::recv_with_fds),
    /// together with the message. Ours stay open.
    ///
    /// # Errors
    /// [`Error::FdPassing`] for more than [`MAX_FDS_PER_MESSAGE`](crate::MAX_FDS_PER_MESSAGE)
    /// descriptors (nothing is sent); otherwise as [`Transport::send`](crate::Transport::send).
    ///
    /// # Examples
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsFd;
    /// use switchboard::{Options, UnixTransport};
    ///
    /// let (mut a, mut b) = UnixTransport::pair(&Options::new())?;
    /// let (mut reader, writer) = std::io::pipe()?;
    /// a.send_with_fds(b"here is a pipe", &[writer.as_fd()])?;
    /// drop(writer); // the peer has its own copy
    /// let (mut msg, mut fds) = (Vec::new(), Vec::new());
    /// b.recv_with_fds(&mut msg, &mut fds)?;
    /// assert_eq!((msg.as_slice(), fds.len()), (&b"here is a pipe"[..], 1));
    /// std::fs::File::from(fds.pop().unwrap()).write_all(b"hi")?;
    /// let mut got = String::new();
    /// reader.read_to_string(&mut got)?;
    /// assert_eq!(got, "hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_with_fds(&mut self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        self.framed.send_with_fds(msg, &raw)
    }

    /// Receives the next message like [`Transport::recv`](crate::Transport::recv) and appends
    /// the descriptors that came with it to `fds` (none for a message sent without). Received
    /// descriptors are close-on-exec. A plain `recv` closes the descriptors of the message it
    /// returns, so nothing leaks either way.
    ///
    /// # Errors
    /// As [`Transport::recv`](crate::Transport::recv); [`Error::FdPassing`] (and the
    /// connection is finished) if the peer sends descriptors its messages do not account for.
    pub fn recv_with_fds(&mut self, buf: &mut Vec<u8>, fds: &mut Vec<OwnedFd>) -> Result<usize> {
        self.framed.recv(buf, Some(fds), None)
    }

    /// Like [`recv_with_fds`](UnixTransport::recv_with_fds), but gives up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if no whole message arrived in time; otherwise as
    /// [`recv_with_fds`](UnixTransport::recv_with_fds).
    pub fn recv_with_fds_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        fds: &mut Vec<OwnedFd>,
        timeout: Duration,
    ) -> Result<usize> {
        self.framed.recv(buf, Some(fds), deadline::after(timeout))
    }

    /// Hands the shared segment of a `shm:` connection (its memfd and the two eventfds) to
    /// the client (server side) and returns the socket, which then only watches the peer.
    pub(crate) fn hand_over_segment(mut self, fds: [BorrowedFd<'_>; 3]) -> Result<OwnedFd> {
        self.framed.send_with_fds(&SEGMENT_MAGIC, &fds.map(|fd| fd.as_raw_fd()))?;
        Ok(self.framed.into_inner().into_read_fd())
    }

    /// Takes the shared segment of a `shm:` connection (client side, after the handshake),
    /// waiting at most `timeout`; returns its memfd and eventfds, and the socket, which then
    /// only watches the peer.
    pub(crate) fn take_segment(mut self, timeout: Duration) -> Result<([OwnedFd; 3], OwnedFd)> {
        let (mut msg, mut fds) = (Vec::new(), Vec::new());
        match self.framed.recv(&mut msg, Some(&mut fds), deadline::after(timeout)) {
            Ok(_) => {}
            Err(Error::Timeout) => {
                return Err(Error::Handshake(format!("no shared segment from the server within {timeout:?}")));
            }
            Err(Error::Disconnected) => {
                return Err(Error::Handshake("the server closed the connection before sending the segment".into()));
            }
            Err(e) => return Err(e),
        }
        let segment: [OwnedFd; 3] = match fds.try_into() {
            Ok(segment) if msg == SEGMENT_MAGIC => segment,
            _ => return Err(Error::Handshake("the server did not send a shared segment".into())),
        };
        Ok((segment, self.framed.into_inner().into_read_fd()))
    }

    /// Splits into a sending half and a receiving half for two threads, as
    /// [`Transport::split`](crate::Transport::split); both halves keep descriptor passing.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the socket cannot be duplicated.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, UnixTransport};
    ///
    /// let (a, b) = UnixTransport::pair(&Options::new())?;
    /// let (mut tx, _rx) = a.split()?;
    /// let (_b_tx, mut b_rx) = b.split()?;
    /// let (_reader, writer) = std::io::pipe()?;
    /// tx.send_with_fds(b"a pipe", &[std::os::fd::AsFd::as_fd(&writer)])?;
    /// let (mut buf, mut fds) = (Vec::new(), Vec::new());
    /// b_rx.recv_with_fds(&mut buf, &mut fds)?;
    /// assert_eq!((buf.as_slice(), fds.len()), (&b"a pipe"[..], 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn split(self) -> Result<(crate::SendHalf, crate::RecvHalf)> {
        crate::split::framed(self.framed, Kind::Unix)
    }

    /// The peer's pid, uid and gid (`SO_PEERCRED`).
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the kernel refuses the query.
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        peer_credentials(self.framed.get_ref().read_fd())
    }
}

pub(crate) fn peer_credentials(fd: BorrowedFd<'_>) -> Result<PeerCredentials> {
    let cred = getsockopt(&fd, sockopt::PeerCredentials)?;
    Ok(PeerCredentials { pid: cred.pid(), uid: cred.uid(), gid: cred.gid() })
}

impl UnixTransport {
    /// Sends a handshake frame, which no maximum message size applies to.
    pub(crate) fn send_handshake_frame(&mut self, frame: &[u8]) -> Result<()> {
        self.framed.send_frame(frame)
    }
}

crate::frame::impl_transport!(UnixTransport, Kind::Unix);
