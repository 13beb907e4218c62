//! Where a listener listens and a client connects: `tcp:HOST:PORT`, `unix:PATH` or
//! `unix:@NAME` (an abstract Unix socket, `unix(7)`), `shm:`, `seqpacket:PATH` or
//! `seqpacket:@NAME`, `fifo:PATH`, `zmq:ENDPOINT` (feature `zmq`), and `connect`, which dials
//! one.

use std::fmt;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::fifo::FifoTransport;
use crate::handshake::Token;
use crate::seqpacket::SeqpacketTransport;
use crate::shm::ShmTransport;
use crate::tcp::TcpTransport;
use crate::transport::{Options, Transport};
use crate::unix::UnixTransport;
#[cfg(feature = "zmq")]
use crate::zmq::{self, ZmqTransport};

/// Where a [`Listener`](crate::Listener) listens: `tcp:HOST:PORT`, `unix:PATH`, or
/// `unix:@NAME` for a Linux abstract socket (no file; what
/// [`Listener::bind_unix_private`](crate::Listener::bind_unix_private) uses); `shm:PATH` or
/// `shm:@NAME` for shared memory between unrelated processes, met through a Unix socket;
/// `seqpacket:PATH` or `seqpacket:@NAME` for a Unix `SOCK_SEQPACKET` socket; `fifo:PATH` for
/// a pair of named pipes (one peer, no listener); `zmq:ENDPOINT` (feature `zmq`) for a ZeroMQ
/// PAIR peer.
///
/// # Examples
/// ```
/// use switchboard::Address;
///
/// let addr: Address = "tcp:127.0.0.1:4000".parse()?;
/// assert_eq!(addr.to_string(), "tcp:127.0.0.1:4000");
/// let addr: Address = "unix:/run/user/1000/app.sock".parse()?;
/// assert!(matches!(addr, Address::Unix(_)));
/// let addr: Address = "unix:@my-service".parse()?;
/// assert_eq!(addr, Address::UnixAbstract("my-service".into()));
/// let addr: Address = "seqpacket:@my-service".parse()?;
/// assert_eq!(addr, Address::SeqpacketAbstract("my-service".into()));
/// let addr: Address = "fifo:/run/user/1000/app".parse()?;
/// assert_eq!(addr.to_string(), "fifo:/run/user/1000/app");
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Address {
    /// A TCP socket address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
    /// A name in Linux's abstract Unix socket namespace (`unix(7)`): no file exists, so nothing
    /// is left behind when the listener dies. Written `unix:@NAME`.
    UnixAbstract(String),
    /// Shared memory for unrelated processes, met at a Unix socket path: the listener checks
    /// the client like any unix listener, creates a sealed memfd for it and passes it over
    /// the socket (`SCM_RIGHTS`). Nothing is named in `/dev/shm`, so nothing can leak, and
    /// the socket stays open to tell each side when the other is gone. Written `shm:PATH`.
    Shm(PathBuf),
    /// As [`Shm`](Address::Shm), met at an abstract Unix socket name. Written `shm:@NAME`.
    ShmAbstract(String),
    /// A Unix `SOCK_SEQPACKET` socket path: a [`Listener`](crate::Listener) there hands out
    /// [`SeqpacketTransport`](crate::SeqpacketTransport)s after the unix handshake. Written
    /// `seqpacket:PATH`.
    Seqpacket(PathBuf),
    /// As [`Seqpacket`](Address::Seqpacket), at a name in the abstract namespace. Written
    /// `seqpacket:@NAME`.
    SeqpacketAbstract(String),
    /// Two named pipes, `PATH.to-server` and `PATH.to-client`, that one server
    /// ([`FifoTransport::create`](crate::FifoTransport::create)) makes and one client
    /// ([`connect`], [`FifoTransport::open`](crate::FifoTransport::open)) opens: one peer per
    /// path, so [`Listener`](crate::Listener) refuses it. Written `fifo:PATH`.
    Fifo(PathBuf),
    /// A ZeroMQ endpoint (feature `zmq`): `zmq:tcp://127.0.0.1:5555`, `zmq:ipc:///run/app.sock`,
    /// `zmq:ipc://@name`. [`connect`] connects a [`ZmqTransport`](crate::ZmqTransport) there;
    /// [`ZmqTransport::bind`](crate::ZmqTransport::bind) is the other side (a PAIR socket
    /// takes one peer, so [`Listener`](crate::Listener) refuses these addresses).
    #[cfg(feature = "zmq")]
    Zmq(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "tcp:{addr}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::UnixAbstract(name) => write!(f, "unix:@{name}"),
            Address::Shm(path) => write!(f, "shm:{}", path.display()),
            Address::ShmAbstract(name) => write!(f, "shm:@{name}"),
            Address::Seqpacket(path) => write!(f, "seqpacket:{}", path.display()),
            Address::SeqpacketAbstract(name) => write!(f, "seqpacket:@{name}"),
            Address::Fifo(path) => write!(f, "fifo:{}", path.display()),
            #[cfg(feature = "zmq")]
            Address::Zmq(endpoint) => write!(f, "zmq:{endpoint}"),
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let abstract_name = |name: &str| {
            if name.is_empty() || name.len() > 100 {
                return Err(Error::Config(format!("abstract socket name {name:?} must be 1 to 100 bytes")));
            }
            Ok(name.to_owned())
        };
        if let Some(addr) = s.strip_prefix("tcp:") {
            let addr = addr.parse().map_err(|_| Error::Config(format!("{addr:?} is not a socket address")))?;
            Ok(Address::Tcp(addr))
        } else if let Some(name) = s.strip_prefix("unix:@") {
            Ok(Address::UnixAbstract(abstract_name(name)?))
        } else if let Some(path) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            Ok(Address::Unix(PathBuf::from(path)))
        } else if let Some(name) = s.strip_prefix("shm:@") {
            Ok(Address::ShmAbstract(abstract_name(name)?))
        } else if let Some(path) = s.strip_prefix("shm:").filter(|p| !p.is_empty()) {
            Ok(Address::Shm(PathBuf::from(path)))
        } else if let Some(name) = s.strip_prefix("seqpacket:@") {
            Ok(Address::SeqpacketAbstract(abstract_name(name)?))
        } else if let Some(path) = s.strip_prefix("seqpacket:").filter(|p| !p.is_empty()) {
            Ok(Address::Seqpacket(PathBuf::from(path)))
        } else if let Some(path) = s.strip_prefix("fifo:").filter(|p| !p.is_empty()) {
            Ok(Address::Fifo(PathBuf::from(path)))
        } else if let Some(endpoint) = s.strip_prefix("zmq:") {
            #[cfg(feature = "zmq")]
            return zmq::check_endpoint(endpoint).map(|()| Address::Zmq(endpoint.to_owned()));
            #[cfg(not(feature = "zmq"))]
            Err(Error::Config(format!("{endpoint:?}: zmq: addresses need switchboard's feature zmq")))
        } else {
            Err(Error::Config(format!("address {s:?} must start with tcp:, unix:, shm:, seqpacket: or fifo:")))
        }
    }
}

/// Connects to a switchboard [`Listener`](crate::Listener) at `addr` and performs the handshake
/// (or, at a `zmq:` address, to a ZeroMQ PAIR peer: see `ZmqTransport::connect`, feature
/// `zmq`).
///
/// # Errors
/// As [`TcpTransport::connect`], [`UnixTransport::connect`],
/// [`SeqpacketTransport::connect`], [`FifoTransport::open`] and `ZmqTransport::connect`.
///
/// # Examples
/// ```
/// use switchboard::{Listener, Options, Transport, connect};
///
/// let options = Options::new();
/// let listener = Listener::bind_tcp(&options)?;
/// let addr = listener.local_addr().clone();
/// let client = std::thread::spawn(move || -> switchboard::Result<Vec<u8>> {
///     let mut conn = connect(&addr, &Options::new())?;
///     conn.send(b"hi")?;
///     let mut buf = Vec::new();
///     conn.recv(&mut buf)?;
///     Ok(buf)
/// });
/// let mut server_side = listener.accept()?;
/// let mut buf = Vec::new();
/// server_side.recv(&mut buf)?;
/// server_side.send(&buf)?;
/// assert_eq!(client.join().unwrap()?, b"hi");
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn connect(addr: &Address, options: &Options) -> Result<Box<dyn Transport>> {
    connect_with(addr, options, None)
}

impl Address {
    /// The Unix socket address of a `unix:` or `shm:` address.
    pub(crate) fn unix_socket_addr(&self) -> Result<UnixSocketAddr> {
        let result = match self {
            Address::Unix(path) | Address::Shm(path) => UnixSocketAddr::from_pathname(path),
            Address::UnixAbstract(name) | Address::ShmAbstract(name) => UnixSocketAddr::from_abstract_name(name),
            #[cfg(feature = "zmq")]
            Address::Zmq(_) => return Err(Error::Config(format!("{self} is not a unix socket address"))),
            Address::Tcp(_) | Address::Seqpacket(_) | Address::SeqpacketAbstract(_) | Address::Fifo(_) => {
                return Err(Error::Config(format!("{self} is not a unix stream socket address")));
            }
        };
        result.map_err(|e| Error::about(e, self))
    }
}

/// [`connect`], presenting `token` in the hello (a spawned child connecting to its parent).
pub(crate) fn connect_with(addr: &Address, options: &Options, token: Option<&Token>) -> Result<Box<dyn Transport>> {
    Ok(match addr {
        Address::Tcp(addr) => Box::new(TcpTransport::connect_with(*addr, options, token)?),
        Address::Unix(_) | Address::UnixAbstract(_) => {
            Box::new(UnixTransport::connect_with(&addr.unix_socket_addr()?, addr, options, token)?)
        }
        Address::Shm(_) | Address::ShmAbstract(_) => {
            let unix = UnixTransport::connect_with(&addr.unix_socket_addr()?, addr, options, token)?;
            let ([memfd, e0, e1], socket) = unix.take_segment(options.handshake_timeout)?;
            Box::new(ShmTransport::from_socket_peer(memfd, [e0, e1], options, socket)?)
        }
        Address::Seqpacket(_) | Address::SeqpacketAbstract(_) => {
            Box::new(SeqpacketTransport::connect_with(addr, options, token)?)
        }
        Address::Fifo(path) => Box::new(FifoTransport::open_with(path, options, token)?),
        #[cfg(feature = "zmq")]
        Address::Zmq(endpoint) => {
            let mut transport = ZmqTransport::connect(endpoint, options)?;
            if let Some(token) = token {
                transport.send_hello(token)?;
            }
            Box::new(transport)
        }
    })
}
