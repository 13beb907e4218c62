//! Where a listener listens and a client connects: `tcp:HOST:PORT`, `unix:PATH` or
//! `unix:@NAME` (an abstract Unix socket, `unix(7)`), and `connect`, which dials one.

use std::fmt;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::handshake::Token;
use crate::tcp::TcpTransport;
use crate::transport::{Options, Transport};
use crate::unix::UnixTransport;

/// Where a [`Listener`](crate::Listener) listens: `tcp:HOST:PORT`, `unix:PATH`, or
/// `unix:@NAME` for a Linux abstract socket (no file; what
/// [`Listener::bind_unix_private`](crate::Listener::bind_unix_private) uses).
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
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "tcp:{addr}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::UnixAbstract(name) => write!(f, "unix:@{name}"),
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(addr) = s.strip_prefix("tcp:") {
            let addr = addr.parse().map_err(|_| Error::Config(format!("{addr:?} is not a socket address")))?;
            Ok(Address::Tcp(addr))
        } else if let Some(name) = s.strip_prefix("unix:@") {
            if name.is_empty() || name.len() > 100 {
                return Err(Error::Config(format!("abstract socket name {name:?} must be 1 to 100 bytes")));
            }
            Ok(Address::UnixAbstract(name.to_owned()))
        } else if let Some(path) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            Ok(Address::Unix(PathBuf::from(path)))
        } else {
            Err(Error::Config(format!("address {s:?} must start with tcp: or unix:")))
        }
    }
}

/// Connects to a switchboard [`Listener`](crate::Listener) at `addr` and performs the handshake.
///
/// # Errors
/// As [`TcpTransport::connect`] and [`UnixTransport::connect`].
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

/// [`connect`], presenting `token` in the hello (a spawned child connecting to its parent).
pub(crate) fn connect_with(addr: &Address, options: &Options, token: Option<&Token>) -> Result<Box<dyn Transport>> {
    Ok(match addr {
        Address::Tcp(addr) => Box::new(TcpTransport::connect_with(*addr, options, token)?),
        Address::Unix(path) => {
            let sockaddr = UnixSocketAddr::from_pathname(path).map_err(|e| Error::about(e, addr))?;
            Box::new(UnixTransport::connect_with(&sockaddr, addr, options, token)?)
        }
        Address::UnixAbstract(name) => {
            let sockaddr = UnixSocketAddr::from_abstract_name(name).map_err(|e| Error::about(e, addr))?;
            Box::new(UnixTransport::connect_with(&sockaddr, addr, options, token)?)
        }
    })
}
