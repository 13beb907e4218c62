//! The `zmq` transport: one ZeroMQ `PAIR` socket per endpoint, so that any ZeroMQ PAIR peer,
//! in any language, talks to it (libzmq, through the `zmq` crate; feature `zmq`).
//!
//! One switchboard message is one ZeroMQ message, with no framing of ours: the wire format is
//! ZeroMQ's own, ZMTP 3.1 (<https://rfc.zeromq.org/spec/37/>). Each endpoint has a context of
//! its own, whose I/O thread moves the bytes: `send` queues a message there and returns, and
//! dropping the endpoint waits (up to [`ZmqTransport::LINGER`]) until what was queued has gone
//! out, as `zmq_ctx_term(3)` does.
//!
//! ZeroMQ reconnects silently and a PAIR socket has no "peer closed", so liveness comes from
//! a socket monitor (`zmq_socket_monitor(3)`, see `monitor.rs`) read inside every call, and
//! ZMTP heartbeats (`ZMQ_HEARTBEAT_IVL`, `ZMQ_HEARTBEAT_TIMEOUT`) turn a peer that went silent
//! into a lost connection. Once the peer is gone the socket is closed, after taking out what
//! the peer had sent, so that libzmq neither reconnects to nor accepts a new peer that this
//! endpoint would never serve.

mod monitor;
mod socket;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::deadline;
use crate::error::{Error, Result};
use crate::handshake::{self, Token};
use crate::transport::{Kind, Options, Transport};
use monitor::PeerWatch;
use socket::Direction;
pub(crate) use socket::check_endpoint;

/// An endpoint of a ZeroMQ `PAIR` connection (feature `zmq`).
///
/// Obtained from [`ZmqTransport::bind`] (the endpoint a peer connects to),
/// [`ZmqTransport::connect`], [`connect`](crate::connect) with a `zmq:` [`Address`](crate::Address),
/// [`pair`](crate::pair) and [`spawn_child`](crate::spawn_child) with [`Kind::Zmq`]. The peer
/// can be any ZeroMQ `PAIR` socket (libzmq 4.2 or later answers heartbeats); each switchboard
/// message is one ZeroMQ message.
///
/// - **Peer death**: a peer that closes its socket or whose process dies is noticed as soon
///   as its kernel closes the connection; a peer that goes silent without closing (a frozen
///   process, a host that lost power, a cut network) within [`HEARTBEAT_INTERVAL`] +
///   [`HEARTBEAT_TIMEOUT`] (1.1 s). Then `recv` returns what the peer sent before, followed by
///   [`Error::Disconnected`](crate::Error::Disconnected), and `send` returns `Disconnected`.
///   Connecting again takes a new endpoint: this one never pairs with another peer. The
///   other side of that bound: a peer whose libzmq thread cannot run for a second (a badly
///   overloaded host) counts as gone too.
/// - **Sending** queues the message for the context's I/O thread and returns; it waits only
///   while no peer is connected yet or libzmq's queue is full (`ZMQ_SNDHWM`, 1,000
///   messages). Dropping the endpoint waits until the queue has been written out, up to
///   [`LINGER`]; the peer receives every message, then `Disconnected`. A process that exits
///   without dropping its endpoints (`std::process::exit`) loses what was still queued.
/// - **Maximum size**: `send` refuses a message above [`Options::max_message_size`] with
///   [`Error::MessageTooLarge`](crate::Error::MessageTooLarge). On receive libzmq enforces it
///   (`ZMQ_MAXMSGSIZE`): it closes the connection as soon as it reads a larger length, having
///   allocated nothing for it, and does not tell why, so this endpoint sees the peer leave:
///   `Disconnected`. Below the maximum, libzmq allocates a message's announced length when its
///   header arrives, so a peer can cost one maximum message of memory before sending it.
/// - **Multipart** ZeroMQ messages (`ZMQ_SNDMORE`) are not switchboard messages: `recv`
///   consumes all their parts and returns [`Error::Protocol`](crate::Error::Protocol); the
///   connection stays usable.
/// - [`Transport::ready_fd`] is not offered (an [`Error::Config`](crate::Error::Config)):
///   libzmq's `ZMQ_FD` is edge-triggered and says nothing about the monitor.
///
/// [`HEARTBEAT_INTERVAL`]: ZmqTransport::HEARTBEAT_INTERVAL
/// [`HEARTBEAT_TIMEOUT`]: ZmqTransport::HEARTBEAT_TIMEOUT
/// [`LINGER`]: ZmqTransport::LINGER
///
/// # Examples
/// ```
/// use switchboard::{Options, Transport, ZmqTransport};
///
/// let options = Options::new();
/// // Port 0 in ZeroMQ's spelling is `*`; `endpoint()` says which port was picked.
/// let mut server = ZmqTransport::bind("tcp://127.0.0.1:*", &options)?;
/// let mut client = ZmqTransport::connect(server.endpoint(), &options)?;
/// client.send(b"hello")?;
/// let mut buf = Vec::new();
/// server.recv(&mut buf)?;
/// assert_eq!(buf, b"hello");
/// # Ok::<(), switchboard::Error>(())
/// ```
pub struct ZmqTransport {
    /// The PAIR socket; `None` once the peer is gone (its messages moved to `backlog`) or the
    /// connection is finished.
    socket: Option<::zmq::Socket>,
    /// Receives the data socket's monitor events over `inproc://`.
    monitor: ::zmq::Socket,
    watch: PeerWatch,
    /// As bound (`ZMQ_LAST_ENDPOINT`, with the port picked) or as connected to.
    endpoint: String,
    max: usize,
    /// What the peer sent before it left, taken out of the socket before closing it.
    backlog: VecDeque<Result<Vec<u8>>>,
}

impl ZmqTransport {
    /// How often a PING goes to the peer (`ZMQ_HEARTBEAT_IVL`).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use switchboard::ZmqTransport;
    ///
    /// // The longest a silent peer goes unnoticed:
    /// let bound = ZmqTransport::HEARTBEAT_INTERVAL + ZmqTransport::HEARTBEAT_TIMEOUT;
    /// assert_eq!(bound, Duration::from_millis(1100));
    /// ```
    pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

    /// How long after an unanswered PING the connection counts as lost
    /// (`ZMQ_HEARTBEAT_TIMEOUT`; also sent to the peer as `ZMQ_HEARTBEAT_TTL`, so that a
    /// peer that does not ping itself drops a silent connection to us in the same time).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use switchboard::ZmqTransport;
    ///
    /// assert_eq!(ZmqTransport::HEARTBEAT_TIMEOUT, Duration::from_secs(1));
    /// ```
    pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);

    /// How long dropping an endpoint waits for queued messages to go out (`ZMQ_LINGER`).
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, Transport, ZmqTransport};
    ///
    /// let (mut a, mut b) = ZmqTransport::pair(&Options::new())?;
    /// a.send(b"last words")?;
    /// drop(a); // waits (at most LINGER) until "last words" has been written
    /// let mut buf = Vec::new();
    /// b.recv(&mut buf)?;
    /// assert_eq!(buf, b"last words");
    /// assert!(matches!(b.recv(&mut buf), Err(switchboard::Error::Disconnected)));
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub const LINGER: Duration = Duration::from_secs(5);

    /// Binds a PAIR socket to a ZeroMQ `endpoint` (`tcp://127.0.0.1:*`, `tcp://10.0.0.1:5555`,
    /// `ipc:///run/app.sock`, `ipc://@name` for an abstract Unix socket) and returns at once;
    /// the first ZeroMQ peer to connect and complete the handshake becomes its peer.
    ///
    /// Until then `recv` and `send` wait for one (see [`wait_for_peer`](Self::wait_for_peer)).
    /// A PAIR socket takes one peer: later ones are left connected but unused by libzmq, and
    /// after the peer is gone the socket is closed. So there is no
    /// [`Listener`](crate::Listener) for `zmq:` addresses.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for an endpoint that is not
    /// `transport://address`, for `inproc://` (each endpoint has its own context, so two
    /// endpoints never share one) or invalid options; [`Error::Io`](crate::Error::Io) naming
    /// the endpoint if libzmq refuses it (`AddrInUse`, an unknown transport).
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, ZmqTransport};
    ///
    /// let server = ZmqTransport::bind("tcp://127.0.0.1:*", &Options::new())?;
    /// assert!(server.endpoint().starts_with("tcp://127.0.0.1:"));
    /// assert!(!server.endpoint().ends_with('*'));
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn bind(endpoint: &str, options: &Options) -> Result<Self> {
        let mut transport = Self::open(endpoint, options)?;
        let socket = transport.socket.as_ref().ok_or(Error::Disconnected)?;
        if let Some(resolved) = socket::bind(socket, endpoint)? {
            transport.endpoint = resolved;
        }
        Ok(transport)
    }

    /// Connects a PAIR socket to a ZeroMQ `endpoint` and waits until a peer there completed
    /// the ZeroMQ handshake, at most [`Options::handshake_timeout`].
    ///
    /// Nobody need listen yet: libzmq retries every 100 ms until the timeout, so either side
    /// may start first.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) of kind `TimedOut`, naming the endpoint, if no peer
    /// completed the handshake in time; otherwise as [`bind`](Self::bind).
    ///
    /// # Examples
    /// ```no_run
    /// use switchboard::{Options, Transport, ZmqTransport};
    ///
    /// let mut conn = ZmqTransport::connect("tcp://10.0.0.1:5555", &Options::new())?;
    /// conn.send(b"hello")?;
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn connect(endpoint: &str, options: &Options) -> Result<Self> {
        let mut transport = Self::open(endpoint, options)?;
        let socket = transport.socket.as_ref().ok_or(Error::Disconnected)?;
        socket::connect(socket, endpoint)?;
        match transport.wait_for_peer(options.handshake_timeout) {
            Err(Error::Timeout) => {
                let failures = match transport.watch.failed_handshakes() {
                    0 => String::new(),
                    n => format!(" ({n} handshakes failed: is it a ZeroMQ PAIR socket?)"),
                };
                let why =
                    format!("no ZeroMQ peer completed a handshake within {:?}{failures}", options.handshake_timeout);
                Err(Error::about(io::Error::new(io::ErrorKind::TimedOut, why), format_args!("zmq:{endpoint}")))
            }
            Err(e) => Err(e),
            Ok(()) => Ok(transport),
        }
    }

    /// Two connected endpoints in this process, over an abstract Unix socket
    /// (`ipc://@switchboard-PID-N-RANDOM`).
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if libzmq cannot create the sockets or threads, or the
    /// two do not connect within [`Options::handshake_timeout`].
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, Transport, ZmqTransport};
    ///
    /// let (mut a, mut b) = ZmqTransport::pair(&Options::new())?;
    /// a.send(b"")?; // empty messages are messages too
    /// let mut buf = vec![1, 2, 3];
    /// assert_eq!(b.recv(&mut buf)?, 0);
    /// assert!(buf.is_empty());
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn pair(options: &Options) -> Result<(Self, Self)> {
        let mut server = Self::bind_private(options)?;
        let client = Self::connect(&server.endpoint, options)?;
        match server.wait_for_peer(options.handshake_timeout) {
            Err(Error::Timeout) => Err(Error::about(
                io::Error::new(io::ErrorKind::TimedOut, "the bound side saw no handshake"),
                format_args!("zmq:{}", server.endpoint),
            )),
            other => other.map(|()| (server, client)),
        }
    }

    /// Binds a fresh, unguessable abstract Unix socket (`ipc://@switchboard-PID-N-RANDOM`):
    /// no file, so nothing is left behind if the process dies.
    pub(crate) fn bind_private(options: &Options) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut nonce = [0u8; 8];
        handshake::random_bytes(&mut nonce)?;
        let endpoint = format!(
            "ipc://@switchboard-{}-{}-{:016x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            u64::from_ne_bytes(nonce)
        );
        Self::bind(&endpoint, options)
    }

    /// The endpoint: as bound (with the port that `*` picked, from `ZMQ_LAST_ENDPOINT`), or as
    /// connected to. Give it to the peer, prefixed with `zmq:` where an
    /// [`Address`](crate::Address) is expected.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Address, Options, ZmqTransport};
    ///
    /// let server = ZmqTransport::bind("ipc://@my-service", &Options::new())?;
    /// assert_eq!(server.endpoint(), "ipc://@my-service");
    /// let addr: Address = format!("zmq:{}", server.endpoint()).parse()?;
    /// assert_eq!(addr, Address::Zmq("ipc://@my-service".into()));
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Waits until a peer has completed the ZeroMQ handshake (at once if one did already,
    /// even if it left since). `Duration::MAX` waits forever.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout) if none did in time; nothing is lost and the
    /// endpoint stays usable.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Error, Options, ZmqTransport};
    ///
    /// let mut server = ZmqTransport::bind("tcp://127.0.0.1:*", &Options::new())?;
    /// assert!(matches!(server.wait_for_peer(Duration::from_millis(10)), Err(Error::Timeout)));
    /// let _client = ZmqTransport::connect(server.endpoint(), &Options::new())?;
    /// server.wait_for_peer(Duration::from_secs(10))?;
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn wait_for_peer(&mut self, timeout: Duration) -> Result<()> {
        let deadline = deadline::after(timeout);
        loop {
            self.read_events()?;
            if self.watch.had_peer() {
                return Ok(());
            }
            if deadline::passed(deadline) {
                return Err(Error::Timeout);
            }
            socket::wait(None, Direction::Read, &self.monitor, deadline, &self.endpoint)?;
        }
    }

    /// The child's side of the spawn handshake: a hello message with the parent's token.
    pub(crate) fn send_hello(&mut self, token: &Token) -> Result<()> {
        self.send_until(&handshake::encode_hello(Some(token)), None)
    }

    /// The parent's side: the child's hello, checked, by `deadline` (`Ok(false)` if not yet).
    pub(crate) fn expect_hello(&mut self, token: &Token, deadline: Option<Instant>) -> Result<bool> {
        let mut hello = Vec::with_capacity(handshake::HELLO_MAX);
        match self.recv_until(&mut hello, deadline, handshake::HELLO_MAX) {
            Ok(_) => handshake::check_child_hello(&hello, token).map(|()| true),
            Err(Error::Timeout) => Ok(false),
            Err(Error::Disconnected) => {
                Err(Error::Handshake("the child closed its connection before saying hello".into()))
            }
            Err(Error::FrameTooLarge { .. } | Error::Protocol(_)) => {
                Err(Error::Handshake("the child's hello is not a switchboard hello".into()))
            }
            Err(e) => Err(e),
        }
    }
}

impl ZmqTransport {
    /// A PAIR socket with switchboard's options and its monitor, neither bound nor connected.
    fn open(endpoint: &str, options: &Options) -> Result<Self> {
        options.check()?;
        check_endpoint(endpoint)?;
        let (socket, monitor) = socket::open(endpoint, options)?;
        Ok(ZmqTransport {
            socket: Some(socket),
            monitor,
            watch: PeerWatch::default(),
            endpoint: endpoint.to_owned(),
            max: options.max_message_size,
            backlog: VecDeque::new(),
        })
    }

    /// Applies the monitor's pending events; closes the socket if they say the peer is gone.
    fn read_events(&mut self) -> Result<()> {
        let watch = &mut self.watch;
        socket::read_events(&self.monitor, &self.endpoint, |event| watch.on(event))?;
        if self.watch.is_gone() && self.socket.is_some() {
            self.retire()?;
        }
        Ok(())
    }

    /// The peer is gone: takes out what it sent and closes the socket, so that libzmq neither
    /// reconnects nor accepts a new peer that nobody would serve.
    fn retire(&mut self) -> Result<()> {
        let Some(socket) = self.socket.take() else { return Ok(()) };
        loop {
            let mut buf = Vec::new();
            match socket::take(&socket, &mut buf, self.max, &self.endpoint) {
                Ok(Some(_)) => self.backlog.push_back(Ok(buf)),
                Ok(None) => break,
                Err(e @ Error::Protocol(_)) => self.backlog.push_back(Err(e)),
                Err(e) => {
                    self.backlog.push_back(Err(e));
                    break;
                }
            }
        }
        // Nothing can reach a peer that is gone.
        socket::abandon(&socket);
        Ok(())
    }

    /// Receives with `limit` as the maximum (the user's, or a hello's).
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>, limit: usize) -> Result<usize> {
        loop {
            if let Some(taken) = self.backlog.pop_front() {
                return match taken {
                    Ok(msg) => {
                        *buf = msg;
                        Ok(buf.len())
                    }
                    Err(e) => {
                        self.finish_if_fatal(&e);
                        Err(e)
                    }
                };
            }
            let Some(socket) = &self.socket else { return Err(Error::Disconnected) };
            match socket::take(socket, buf, limit, &self.endpoint) {
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(e) => {
                    self.finish_if_fatal(&e);
                    return Err(e);
                }
            }
            self.read_events()?;
            let Some(socket) = &self.socket else { continue };
            if deadline::passed(deadline) {
                return Err(Error::Timeout);
            }
            socket::wait(Some(socket), Direction::Read, &self.monitor, deadline, &self.endpoint)?;
        }
    }

    /// Sends without checking the size (a hello), waiting at most until `deadline`.
    fn send_until(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<()> {
        loop {
            self.read_events()?;
            let Some(socket) = &self.socket else { return Err(Error::Disconnected) };
            // libzmq takes a message whole or not at all: nothing is ever half-sent.
            if socket::try_send(socket, msg, &self.endpoint)? {
                return Ok(());
            }
            if deadline::passed(deadline) {
                return Err(Error::Timeout);
            }
            // No peer yet, or libzmq's queue is full.
            socket::wait(Some(socket), Direction::Write, &self.monitor, deadline, &self.endpoint)?;
        }
    }

    /// After an error that ends the connection, every later call returns `Disconnected`.
    fn finish_if_fatal(&mut self, err: &Error) {
        if !matches!(err, Error::Protocol(_) | Error::Timeout) {
            if let Some(socket) = self.socket.take() {
                socket::abandon(&socket);
            }
            self.backlog.clear();
        }
    }
}

impl Transport for ZmqTransport {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge { len: msg.len(), max: self.max });
        }
        self.send_until(msg, None)
    }

    /// Queues the message if libzmq takes it by `timeout`: a message is taken whole or not at
    /// all, so [`pending_send`](Transport::pending_send) is always 0 and there is nothing to
    /// flush (what libzmq queued goes out on its I/O thread).
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge { len: msg.len(), max: self.max });
        }
        self.send_until(msg, deadline::after(timeout))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_until(buf, None, self.max)
    }

    fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.recv_until(buf, deadline::after(timeout), self.max)
    }

    fn kind(&self) -> Kind {
        Kind::Zmq
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl Drop for ZmqTransport {
    /// Closes the socket; the context's termination (when the last socket goes) then waits
    /// up to [`ZmqTransport::LINGER`] for queued messages, unless no peer ever came.
    fn drop(&mut self) {
        if let Some(socket) = &self.socket
            && !self.watch.had_peer()
        {
            socket::abandon(socket);
        }
    }
}

impl fmt::Debug for ZmqTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZmqTransport")
            .field("endpoint", &self.endpoint)
            .field("max_message_size", &self.max)
            .field("peer", &self.watch)
            .field("open", &self.socket.is_some())
            .finish_non_exhaustive()
    }
}
