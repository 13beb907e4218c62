//! The `Transport` trait, the `Kind` of each transport, and the options they share.
//!
//! A transport moves whole messages between two endpoints; how it does so (a socket, two
//! pipes, two rings in shared memory) is its own business. See the README for when to pick
//! which.

use std::any::Any;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::BorrowedFd;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::split::{RecvHalf, SendHalf};

/// One end of a connection that exchanges whole messages with a peer.
///
/// Messages are delivered whole, in order, exactly once, or an error says why not. The trait
/// is object-safe: `Box<dyn Transport>` is what [`spawn_child`](crate::spawn_child),
/// [`connect_to_parent`](crate::connect_to_parent) and [`Listener`](crate::Listener) hand out.
///
/// Dropping an endpoint closes it: the peer's `recv` returns the messages already sent, then
/// [`Error::Disconnected`]; the peer's `send` returns `Disconnected`.
///
/// # Examples
/// Code written against the trait works over every transport:
/// ```
/// use std::time::Duration;
/// use switchboard::{Error, Kind, Options, Transport, pair};
///
/// fn echo_once(conn: &mut dyn Transport) -> switchboard::Result<()> {
///     let mut buf = Vec::new();
///     conn.recv(&mut buf)?;
///     conn.send(&buf)
/// }
///
/// for kind in Kind::ALL {
///     let (mut a, mut b) = pair(kind, &Options::new())?;
///     a.send(b"ping")?;
///     echo_once(b.as_mut())?;
///     let mut reply = Vec::new();
///     assert_eq!(a.recv_timeout(&mut reply, Duration::from_secs(5))?, 4);
///     assert!(matches!(a.recv_timeout(&mut reply, Duration::ZERO), Err(Error::Timeout)));
///     drop(b);
///     assert!(matches!(a.recv(&mut reply), Err(Error::Disconnected)));
/// }
/// # Ok::<(), switchboard::Error>(())
/// ```
pub trait Transport: Send + Any {
    /// Sends one whole message, blocking until it has been handed to the transport.
    ///
    /// If the peer is not reading and the transport is full, `send` waits; meanwhile it keeps
    /// reading what the peer sends (up to the maximum message size) so that two endpoints
    /// sending at once do not deadlock. Two endpoints that each send more than that before
    /// reading anything still wait for each other forever: read between sends, or use a
    /// thread per direction.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] if `msg` is above the endpoint's maximum (nothing is sent and
    /// the connection stays usable), [`Error::Disconnected`] if the peer is gone.
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Like [`send`](Transport::send), but gives up after `timeout` if the transport cannot
    /// take the message: one thread serving many peers never waits long on a slow one.
    /// `Duration::ZERO` tries once.
    ///
    /// A message is never left half-written for the peer. Either nothing of it was sent
    /// (`Timeout`), or it is accepted (`Ok`): written whole, or, if the peer stopped reading in
    /// its middle, partly written with the rest kept by this endpoint (at most one message),
    /// which the next send, or [`flush_timeout`](Transport::flush_timeout), writes before
    /// anything else; [`pending_send`](Transport::pending_send) says how many bytes wait, and
    /// the readiness descriptor polls readable when there is room for them. Dropping the
    /// endpoint with bytes pending cuts that message short: the peer gets
    /// [`Error::Truncated`].
    ///
    /// The default, for transports outside this crate, is [`send`](Transport::send), which
    /// may wait without limit.
    ///
    /// # Errors
    /// [`Error::Timeout`] if no byte of the message could be written in time (or an earlier
    /// message's rest could not be flushed first): nothing was sent and the connection is
    /// usable. Otherwise as [`send`](Transport::send).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Error, Kind, Options, Transport, pair};
    ///
    /// let (mut a, mut b) = pair(Kind::Shm, &Options::new().ring_capacity(1 << 16))?;
    /// // Nobody reads b: sooner or later the ring is full and a send times out at once.
    /// let msg = [7u8; 1000];
    /// let mut sent = 0;
    /// loop {
    ///     match a.send_timeout(&msg, Duration::ZERO) {
    ///         Ok(()) => sent += 1,
    ///         Err(Error::Timeout) => break,
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// assert_eq!(a.pending_send(), 0, "whole records: nothing half-sent");
    /// let mut buf = Vec::new();
    /// for _ in 0..sent {
    ///     b.recv(&mut buf)?;
    /// }
    /// a.send_timeout(&msg, Duration::from_secs(5))?; // room again
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        let _ = timeout;
        self.send(msg)
    }

    /// Writes what an earlier [`send_timeout`](Transport::send_timeout) accepted but could not
    /// write yet, waiting at most `timeout`. Nothing pending: returns at once.
    ///
    /// # Errors
    /// [`Error::Timeout`] if bytes are still pending at the deadline; [`Error::Disconnected`]
    /// if the peer is gone.
    fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// How many bytes of an accepted message this endpoint still has to write (see
    /// [`send_timeout`](Transport::send_timeout)).
    fn pending_send(&self) -> usize {
        0
    }

    /// Clears `buf`, receives the next whole message into it and returns its length.
    ///
    /// Blocks until a message arrives or the connection fails.
    ///
    /// # Errors
    /// [`Error::Disconnected`] once the peer is gone and every message it sent was received;
    /// [`Error::Truncated`], [`Error::FrameTooLarge`], [`Error::Malformed`] or
    /// [`Error::CorruptSegment`] when the peer broke the protocol.
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize>;

    /// Like [`recv`](Transport::recv), but gives up after `timeout`.
    ///
    /// `Duration::ZERO` polls: it returns a message that has fully arrived, or `Timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no whole message arrived in time. Nothing is lost: a message
    /// that was partly received stays buffered, and a later call returns it whole. Otherwise
    /// as [`recv`](Transport::recv).
    fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize>;

    /// Which transport this is.
    fn kind(&self) -> Kind;

    /// The largest message this endpoint sends or accepts, in bytes.
    fn max_message_size(&self) -> usize;

    /// A descriptor to wait on with `poll`, `epoll` or an event loop: it polls readable
    /// whenever [`recv_timeout`](Transport::recv_timeout) with `Duration::ZERO` would return
    /// something other than [`Error::Timeout`] (a whole message, whether or not the library
    /// already buffered it; the peer's departure; a protocol error). It may also poll
    /// readable when a `recv` would still time out (a partial message arrived): treat it as
    /// a hint and receive with `Duration::ZERO` until `Timeout`.
    ///
    /// The concrete transports implement [`AsFd`](std::os::fd::AsFd) with the same
    /// descriptor.
    ///
    /// # Errors
    /// [`Error::Io`] if the descriptor cannot be made (it is made on first use and may take
    /// one or two descriptors); [`Error::Config`] for a transport without one (the default).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    /// use switchboard::{Error, Kind, Options, Transport, pair};
    ///
    /// let (mut a, mut b) = pair(Kind::Unix, &Options::new())?;
    /// let readable = |t: &dyn Transport| -> switchboard::Result<bool> {
    ///     let mut fds = [PollFd::new(t.ready_fd()?, PollFlags::POLLIN)];
    ///     Ok(poll(&mut fds, PollTimeout::ZERO)? > 0)
    /// };
    /// assert!(!readable(b.as_ref())?);
    /// a.send(b"one")?;
    /// a.send(b"two")?;
    /// assert!(readable(b.as_ref())?);
    /// let mut buf = Vec::new();
    /// b.recv(&mut buf)?; // reads both into the buffer, returns "one"
    /// assert!(readable(b.as_ref())?, "\"two\" is buffered: still readable");
    /// b.recv_timeout(&mut buf, Duration::ZERO)?;
    /// assert!(!readable(b.as_ref())?);
    /// assert!(matches!(b.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)));
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Err(Error::Config(format!("the {} transport has no readiness descriptor", self.kind())))
    }

    /// Sends every message of `msgs`, in order, each as its own message (the peer receives
    /// them one by one), in as few syscalls as the transport allows: tcp, unix and pipe
    /// gather up to 512 messages into one `writev`, so small messages cost a fraction of a
    /// syscall each; shm's sends make no syscall anyway (one record each); zmq sends them one
    /// at a time. Blocks like [`send`](Transport::send).
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] if any message is, and then nothing is sent; otherwise as
    /// `send`, after which a prefix of `msgs` may have been sent, as with a loop of `send`.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Kind, Options, pair};
    ///
    /// let (mut a, mut b) = pair(Kind::Pipe, &Options::new())?;
    /// let ticks: Vec<[u8; 8]> = (0..100u64).map(u64::to_le_bytes).collect();
    /// let batch: Vec<&[u8]> = ticks.iter().map(|t| &t[..]).collect();
    /// a.send_batch(&batch)?; // one writev for all hundred
    /// let mut buf = Vec::new();
    /// for i in 0..100u64 {
    ///     b.recv(&mut buf)?;
    ///     assert_eq!(buf, i.to_le_bytes());
    /// }
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<()> {
        if let Some(m) = msgs.iter().find(|m| m.len() > self.max_message_size()) {
            return Err(Error::MessageTooLarge { len: m.len(), max: self.max_message_size() });
        }
        msgs.iter().try_for_each(|msg| self.send(msg))
    }

    /// Splits the endpoint into a sending half and a receiving half that can be used from two
    /// threads at once (full duplex without a proxy thread). Messages already buffered are
    /// received by the receiving half; the tail of a message accepted by `send_timeout` is
    /// written by the sending half. What dropping each half tells the peer is described in
    /// [`SendHalf`]'s module notes: in short, dropping the sending half ends that direction.
    ///
    /// tcp, unix, seqpacket, pipe, fifo and shm split; zmq does not (a ZeroMQ socket is not
    /// thread-safe).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a transport that cannot split (the endpoint is dropped);
    /// [`Error::Io`] if the socket cannot be duplicated (no descriptors left).
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Kind, Options, pair};
    ///
    /// let (a, mut b) = pair(Kind::Pipe, &Options::new())?;
    /// let (mut tx, mut rx) = a.split()?;
    /// let reader = std::thread::spawn(move || {
    ///     let mut buf = Vec::new();
    ///     rx.recv(&mut buf).map(|_| buf)
    /// });
    /// tx.send(b"ping")?;
    /// let mut buf = Vec::new();
    /// b.recv(&mut buf)?;
    /// b.send(b"pong")?;
    /// assert_eq!(reader.join().unwrap()?, b"pong");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn split(self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        Err(Error::Unsupported(format!("the {} transport cannot be split into two halves", self.kind())))
    }
}

/// Reaching the concrete transport behind a `Box<dyn Transport>` (from [`spawn_child`],
/// [`Listener::accept`], [`connect`] or [`pair`]), for what only it offers: its fd,
/// [`UnixTransport::peer_credentials`], [`TcpTransport::peer_addr`],
/// [`ShmTransport::reserve`], descriptor passing.
///
/// [`spawn_child`]: crate::spawn_child
/// [`Listener::accept`]: crate::Listener::accept
/// [`connect`]: crate::connect
/// [`pair`]: crate::pair
/// [`UnixTransport::peer_credentials`]: crate::UnixTransport::peer_credentials
/// [`TcpTransport::peer_addr`]: crate::TcpTransport::peer_addr
/// [`ShmTransport::reserve`]: crate::ShmTransport::reserve
///
/// # Examples
/// ```
/// use switchboard::{Kind, Options, Transport, UnixTransport, pair};
///
/// let (a, b) = pair(Kind::Unix, &Options::new())?;
/// let creds = b.downcast_ref::<UnixTransport>().expect("a unix pair").peer_credentials()?;
/// assert_eq!(creds.pid, std::process::id() as i32);
/// let a: Box<UnixTransport> = a.downcast().map_err(|_| "not unix")?;
/// assert_eq!(a.kind(), Kind::Unix);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl dyn Transport {
    /// Whether the transport is a `T`.
    pub fn is<T: Transport>(&self) -> bool {
        (self as &dyn Any).is::<T>()
    }

    /// The transport as a `T`, if it is one.
    pub fn downcast_ref<T: Transport>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref()
    }

    /// The transport as a mutable `T`, if it is one.
    pub fn downcast_mut<T: Transport>(&mut self) -> Option<&mut T> {
        (self as &mut dyn Any).downcast_mut()
    }

    /// The boxed transport as a `T`; the box back if it is not one.
    ///
    /// # Errors
    /// The unchanged box if the transport is not a `T`.
    pub fn downcast<T: Transport>(self: Box<Self>) -> std::result::Result<Box<T>, Box<Self>> {
        if self.is::<T>() {
            let any: Box<dyn Any> = self;
            Ok(any.downcast().unwrap_or_else(|_| unreachable!("checked by is::<T>()")))
        } else {
            Err(self)
        }
    }
}

impl fmt::Debug for dyn Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport").field("kind", &self.kind()).finish_non_exhaustive()
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        (**self).send(msg)
    }
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        (**self).recv(buf)
    }
    fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        (**self).recv_timeout(buf, timeout)
    }
    fn kind(&self) -> Kind {
        (**self).kind()
    }
    fn max_message_size(&self) -> usize {
        (**self).max_message_size()
    }
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        (**self).ready_fd()
    }
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        (**self).send_timeout(msg, timeout)
    }
    fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        (**self).flush_timeout(timeout)
    }
    fn pending_send(&self) -> usize {
        (**self).pending_send()
    }
    fn split(self: Box<Self>) -> Result<(SendHalf, RecvHalf)> {
        (*self).split()
    }
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<()> {
        (**self).send_batch(msgs)
    }
}

/// The transports. More will come (the enum is `#[non_exhaustive]`): match with a `_` arm.
///
/// # Examples
/// ```
/// use switchboard::Kind;
///
/// let kind: Kind = "shm".parse()?;
/// assert_eq!(kind, Kind::Shm);
/// assert_eq!(kind.to_string(), "shm");
/// assert!(Kind::ALL.contains(&kind));
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// TCP over loopback (or any address), `TCP_NODELAY` on. Reaches other hosts too.
    Tcp,
    /// A Unix domain stream socket. Any local process.
    Unix,
    /// Two anonymous pipes. Parent and child only.
    Pipe,
    /// Two single-producer/single-consumer byte rings in shared memory.
    Shm,
    /// A Unix domain `SOCK_SEQPACKET` socket: the kernel keeps message boundaries, so a
    /// message that fits in one record travels without a length prefix. Any local process.
    Seqpacket,
    /// Two named pipes (`mkfifo(3)`): unrelated local processes meet at a path, without
    /// sockets.
    Fifo,
    /// A ZeroMQ `PAIR` socket (feature `zmq`): talks to any ZeroMQ PAIR peer, over `tcp://`
    /// to other hosts or `ipc://` on this one. Not in [`Kind::ALL`]: it exists only with the
    /// feature, and a feature must not change `ALL`'s type.
    #[cfg(feature = "zmq")]
    Zmq,
}

impl Kind {
    /// Every transport of every build, in the order the README and reports list them (not
    /// `Zmq`, which only the feature `zmq` has).
    pub const ALL: [Kind; 6] = [Kind::Tcp, Kind::Unix, Kind::Pipe, Kind::Shm, Kind::Seqpacket, Kind::Fifo];

    /// The name used by `Display`, `FromStr`, command-line options and the environment.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Unix => "unix",
            Kind::Pipe => "pipe",
            Kind::Shm => "shm",
            Kind::Seqpacket => "seqpacket",
            Kind::Fifo => "fifo",
            #[cfg(feature = "zmq")]
            Kind::Zmq => "zmq",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        #[cfg(feature = "zmq")]
        if s == Kind::Zmq.name() {
            return Ok(Kind::Zmq);
        }
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names = if cfg!(feature = "zmq") {
                "tcp, unix, pipe, shm, seqpacket, fifo or zmq"
            } else {
                "tcp, unix, pipe, shm, seqpacket or fifo"
            };
            Error::Config(format!("unknown transport {s:?}: expected {names}"))
        })
    }
}

/// How a shared-memory endpoint waits for its peer.
///
/// Only [`Kind::Shm`] uses it; the kernel transports always sleep in the kernel.
///
/// # Examples
/// ```
/// use switchboard::{Options, ShmTransport, WaitStrategy};
///
/// // Lowest latency, one core busy on each side while waiting:
/// let (a, _b) = ShmTransport::pair(&Options::new().wait_strategy(WaitStrategy::Spin))?;
/// assert_eq!(a.wait_strategy(), WaitStrategy::Spin);
/// assert_eq!("block".parse::<WaitStrategy>()?, WaitStrategy::Block);
/// assert_eq!(WaitStrategy::default(), WaitStrategy::Adaptive);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WaitStrategy {
    /// Busy-poll: lowest latency, one CPU core busy on each side while waiting.
    Spin,
    /// Sleep on a futex at once: no CPU while waiting, a kernel wake-up per message.
    Block,
    /// Spin for a learned, bounded time, then sleep (the default). A busy stream makes no
    /// syscalls. The spin budget (at most [`Options::spin_duration`]) grows while spins pay
    /// and halves when they run out or the spinner is descheduled; while it is low (a busy
    /// machine), an endpoint whose peer is asleep sleeps at once instead of holding a CPU the
    /// peer may need.
    #[default]
    Adaptive,
}

impl WaitStrategy {
    /// Every strategy, in report order.
    pub const ALL: [WaitStrategy; 3] = [WaitStrategy::Spin, WaitStrategy::Block, WaitStrategy::Adaptive];

    /// The name used by `Display`, `FromStr` and the environment.
    pub fn name(self) -> &'static str {
        match self {
            WaitStrategy::Spin => "spin",
            WaitStrategy::Block => "block",
            WaitStrategy::Adaptive => "adaptive",
        }
    }
}

impl fmt::Display for WaitStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for WaitStrategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        WaitStrategy::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| Error::Config(format!("unknown wait strategy {s:?}: expected spin, block or adaptive")))
    }
}

/// The default maximum message size: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// The largest maximum message size a frame prefix (`u32`) can express: 4 GiB - 1.
pub const MAX_MESSAGE_SIZE_LIMIT: usize = u32::MAX as usize;

/// The default capacity of each shared-memory ring: 4 MiB.
pub const DEFAULT_RING_CAPACITY: usize = 4 << 20;

/// Options shared by every transport: a builder, used by [`spawn_child`](Options::spawn_child),
/// [`connect_to_parent`](Options::connect_to_parent), [`Listener::bind`](crate::Listener::bind),
/// [`connect`](crate::connect) and [`pair`](crate::pair).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use switchboard::{Options, WaitStrategy};
///
/// let options = Options::new()
///     .max_message_size(1 << 20)
///     .handshake_timeout(Duration::from_secs(2))
///     .wait_strategy(WaitStrategy::Spin);
/// assert_eq!(options.max_message_size_value(), 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) max_message_size: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) ring_capacity: usize,
    pub(crate) wait_strategy: WaitStrategy,
    pub(crate) spin_duration: Duration,
    pub(crate) tcp_bind_ip: IpAddr,
    pub(crate) allow_other_users: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            handshake_timeout: Duration::from_secs(10),
            ring_capacity: DEFAULT_RING_CAPACITY,
            wait_strategy: WaitStrategy::Adaptive,
            spin_duration: DEFAULT_SPIN,
            tcp_bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            allow_other_users: false,
        }
    }
}

/// The most [`WaitStrategy::Adaptive`] spins before it sleeps: 50 µs (it learns to spin less
/// when spinning does not pay).
///
/// Long enough to cover a 64 KiB copy and a peer's reply on another core (a 5 µs budget made
/// 64 KiB streams pay a wake-up per message on the 2-vCPU VMs this was tuned on), short enough that an idle
/// endpoint goes to sleep at once in human terms.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

impl Options {
    /// The defaults: 64 MiB messages, 10 s handshake, 4 MiB rings, adaptive waiting, TCP on
    /// 127.0.0.1, Unix peers of the same user only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the largest message this endpoint sends or accepts (at most
    /// [`MAX_MESSAGE_SIZE_LIMIT`]).
    ///
    /// Both ends should agree; a child started by [`spawn_child`](Options::spawn_child)
    /// inherits the parent's value. The value is checked where the options are used: every
    /// constructor that takes these options returns [`Error::Config`] for a value above the
    /// limit.
    pub fn max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max;
        self
    }

    /// The configured maximum message size.
    pub fn max_message_size_value(&self) -> usize {
        self.max_message_size
    }

    /// Sets how long a connection handshake (and a spawned child's connection) may take.
    /// `Duration::MAX` waits forever; zero is refused with [`Error::Config`] where the options
    /// are used.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the capacity of each shared-memory ring in bytes (shm only): a power of two
    /// between 4 KiB and 1 GiB.
    ///
    /// The value is checked where it is used: creating a shared-memory endpoint with any other
    /// value returns [`Error::Config`].
    pub fn ring_capacity(mut self, bytes: usize) -> Self {
        self.ring_capacity = bytes;
        self
    }

    /// Sets how a shared-memory endpoint waits (shm only).
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait_strategy = wait;
        self
    }

    /// Sets the most [`WaitStrategy::Adaptive`] spins before it sleeps (default
    /// [`DEFAULT_SPIN`]); it starts there and learns to spin less. On a machine with one CPU
    /// it never spins.
    pub fn spin_duration(mut self, spin: Duration) -> Self {
        self.spin_duration = spin;
        self
    }

    /// Sets the address TCP listeners bind to (default 127.0.0.1). Use a routable address only
    /// on a trusted network: switchboard neither encrypts nor authenticates TCP clients.
    pub fn tcp_bind_ip(mut self, ip: IpAddr) -> Self {
        self.tcp_bind_ip = ip;
        self
    }

    /// Lets Unix-socket listeners accept peers of other users (default: only the same uid,
    /// checked with `SO_PEERCRED`).
    pub fn allow_other_users(mut self, allow: bool) -> Self {
        self.allow_other_users = allow;
        self
    }
}

impl Options {
    /// Checks every value against its documented range; constructors call this before they
    /// use the options, so a bad value is an error and never a panic.
    pub(crate) fn check(&self) -> Result<&Self> {
        if self.max_message_size > MAX_MESSAGE_SIZE_LIMIT {
            return Err(Error::Config(format!(
                "max_message_size {} is above the frame limit of {MAX_MESSAGE_SIZE_LIMIT} bytes",
                self.max_message_size
            )));
        }
        if !(self.ring_capacity.is_power_of_two() && (4096..=1 << 30).contains(&self.ring_capacity)) {
            return Err(Error::Config(format!(
                "ring_capacity {} must be a power of two between 4 KiB and 1 GiB",
                self.ring_capacity
            )));
        }
        if self.handshake_timeout.is_zero() {
            return Err(Error::Config("handshake_timeout must be above zero".into()));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_option_values_are_errors_not_panics() {
        assert!(Options::new().check().is_ok());
        for bad in [
            Options::new().max_message_size(usize::MAX),
            Options::new().ring_capacity(3000),
            Options::new().ring_capacity(1 << 31),
            Options::new().handshake_timeout(Duration::ZERO),
        ] {
            assert!(matches!(bad.check(), Err(Error::Config(_))), "{bad:?}");
        }
        assert!(Options::new().handshake_timeout(Duration::MAX).check().is_ok());
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(kind.to_string().parse::<Kind>().unwrap(), kind);
        }
        assert!(matches!("udp".parse::<Kind>(), Err(Error::Config(_))));
        for wait in WaitStrategy::ALL {
            assert_eq!(wait.to_string().parse::<WaitStrategy>().unwrap(), wait);
        }
    }
}
