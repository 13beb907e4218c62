//! The `tcp` transport: framed messages over a TCP stream with `TCP_NODELAY` on.
//!
//! TCP is the only transport that also reaches other hosts; on one machine it pays for the
//! full network stack (the slowest round trip of the four: 26-29 µs against 15-19 µs for
//! pipes and Unix sockets on the 2-vCPU VMs this was measured on). Nagle's algorithm is off so
//! that a small message leaves at once instead of waiting for the previous one's ACK (`tcp(7)`).

use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::frame::Framed;
use crate::handshake::{self, Token};
use crate::stream::FdStream;
use crate::transport::{Kind, Options};

/// A connected TCP endpoint.
///
/// Obtained from [`TcpTransport::connect`], a tcp [`Listener`](crate::Listener), or
/// [`spawn_child`](crate::spawn_child) with [`Kind::Tcp`]. Dropping it closes the socket: the
/// peer receives what was sent, then [`Error::Disconnected`](crate::Error::Disconnected).
///
/// # Examples
/// ```no_run
/// use switchboard::{Options, TcpTransport, Transport};
///
/// let mut conn = TcpTransport::connect("127.0.0.1:4000".parse().unwrap(), &Options::new())?;
/// conn.send(b"hello")?;
/// let mut reply = Vec::new();
/// conn.recv(&mut reply)?;
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpTransport {
    framed: Framed<FdStream>,
    peer: SocketAddr,
}

impl TcpTransport {
    /// Connects to a switchboard tcp [`Listener`](crate::Listener) and performs the handshake.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the connection fails, or
    /// [`Error::Handshake`](crate::Error::Handshake) if the server refuses it or is not a
    /// switchboard listener (within the handshake timeout).
    pub fn connect(addr: SocketAddr, options: &Options) -> Result<Self> {
        Self::connect_with(addr, options, None)
    }

    pub(crate) fn connect_with(addr: SocketAddr, options: &Options, token: Option<&Token>) -> Result<Self> {
        options.check()?;
        let stream = TcpStream::connect_timeout(&addr, options.handshake_timeout)
            .map_err(|e| Error::about(e, Address::Tcp(addr)))?;
        let mut conn = Self::from_stream(stream, options)?;
        handshake::client(&mut conn.framed, token, options.handshake_timeout)?;
        Ok(conn)
    }

    /// Wraps a TCP stream that is already connected to a peer speaking switchboard frames,
    /// without a handshake (the other end must do the same).
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the socket options cannot be set.
    pub fn from_std(stream: TcpStream, options: &Options) -> Result<Self> {
        Self::from_stream(stream, options)
    }

    /// Wraps a connected stream whose handshake is done (or not wanted).
    pub(crate) fn from_stream(stream: TcpStream, options: &Options) -> Result<Self> {
        options.check()?;
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let framed = Framed::new(FdStream::socket(OwnedFd::from(stream))?, options.max_message_size);
        Ok(TcpTransport { framed, peer })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Splits into a sending half and a receiving half for two threads, as
    /// [`Transport::split`](crate::Transport::split).
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the socket cannot be duplicated.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Address, Listener, Options, TcpTransport};
    ///
    /// let listener = Listener::bind_tcp(&Options::new())?;
    /// let Address::Tcp(addr) = *listener.local_addr() else { unreachable!() };
    /// let client = std::thread::spawn(move || TcpTransport::connect(addr, &Options::new()));
    /// let mut server = listener.accept()?;
    /// let (mut tx, mut rx) = client.join().unwrap()?.split()?;
    /// tx.send(b"from the sending half")?;
    /// let mut buf = Vec::new();
    /// server.recv(&mut buf)?;
    /// server.send(&buf)?;
    /// rx.recv(&mut buf)?;
    /// assert_eq!(buf, b"from the sending half");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn split(self) -> Result<(crate::SendHalf, crate::RecvHalf)> {
        crate::split::framed(self.framed, Kind::Tcp)
    }
}

impl TcpTransport {
    /// Sends a handshake frame, which no maximum message size applies to.
    pub(crate) fn send_handshake_frame(&mut self, frame: &[u8]) -> Result<()> {
        self.framed.send_frame(frame)
    }
}

crate::frame::impl_transport!(TcpTransport, Kind::Tcp);
