//! The server side of tcp, unix and seqpacket: a listening socket that only produces connected client
//! endpoints, as the socket HOWTO puts it, and the client-side `connect`.
//!
//! Handshakes run inside `accept` as a small `ppoll(2)` loop over the listening socket and
//! every connection still handshaking, each with its own deadline: a client that sends
//! garbage or nothing at all is refused or timed out without delaying anyone else.
//!
//! Overload is part of the design. Half-open connections are capped well below the file
//! descriptor limit (`getrlimit(RLIMIT_NOFILE)`); past the cap, a connection that has sent
//! nothing is shed first, so a flood of idle or connect-and-close clients cannot crowd out
//! clients that say hello at once (every new connection is read as soon as it is accepted).
//! When `accept(2)` fails for lack of descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`,
//! `ENOMEM`), the listener sheds a silent connection if it has one, and otherwise stops
//! polling the listening socket for a few milliseconds (backing off up to 200 ms) instead of
//! spinning on a socket that stays readable; those errors never end an `accept` loop.

use std::io::{self, Read, Write};
use std::mem;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::time::TimeSpec;

mod ready;

use ready::Readiness;

use crate::address::Address;
use crate::deadline;
use crate::error::{Error, Result};
use crate::handshake::{self, HelloReader, Progress, Status, Token};
use crate::seqpacket::{self, HelloRecords, SeqpacketTransport};
use crate::shm::ShmTransport;
use crate::tcp::TcpTransport;
use crate::transport::{Options, Transport};
use crate::unix::UnixTransport;

/// A listening tcp, unix or seqpacket socket that accepts any number of clients.
///
/// Each accepted connection has passed the handshake (protocol version, and for unix the
/// peer's uid, see [`Options::allow_other_users`]). Clients that fail it are answered with a
/// refusal, closed and counted in [`refused`](Listener::refused); they never surface as
/// errors from `accept`, so one bad client cannot stop a server loop.
///
/// Under overload (a flood of connections, idle clients, no file descriptors left) it sheds
/// connections that have not said anything and backs off rather than spin; see the module
/// docs. `accept` returns an error only if the listening socket itself fails, so a loop over
/// [`incoming`](Listener::incoming) that stops at the first error is safe.
///
/// Dropping a unix listener removes its socket file. A listener from
/// [`bind_unix_private`](Listener::bind_unix_private) has no file at all, so nothing is left
/// behind even if the process is killed. Connections already accepted live on.
///
/// # Examples
/// ```
/// use switchboard::{Listener, Options, Transport, connect};
///
/// let listener = Listener::bind_unix_private(&Options::new())?;
/// let addr = listener.local_addr().clone();
/// // connect waits for the server's answer: run it beside accept.
/// let client = std::thread::spawn(move || connect(&addr, &Options::new()));
/// let mut server_side = listener.accept()?;
/// let mut client = client.join().expect("client thread")?;
/// client.send(b"hello")?;
/// let mut buf = Vec::new();
/// server_side.recv(&mut buf)?;
/// assert_eq!(buf, b"hello");
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    /// Held for its `Drop`, which removes the unix socket file.
    _socket_file: Option<SocketFile>,
    address: Address,
    options: Options,
    token: Option<Token>,
    state: Mutex<Accepting>,
    refused: AtomicU64,
    /// The readiness descriptor, made on first use: see [`Listener::ready_fd`].
    ready: OnceLock<Readiness>,
}

/// The handshakes in progress and the back-off state, shared by concurrent `accept` calls.
#[derive(Debug, Default)]
struct Accepting {
    /// Oldest first.
    pending: Vec<Pending>,
    /// While set and in the future, the listening socket is not polled (out of descriptors).
    backoff_until: Option<Instant>,
    backoff: Duration,
    /// Whether the listening socket is in the readiness set (it leaves during a back-off).
    listen_watched: bool,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
    /// A `SOCK_SEQPACKET` socket: std's `UnixListener` accepts on any Unix socket type.
    Seqpacket(UnixListener),
}

/// A connection whose hello has not fully arrived.
#[derive(Debug)]
struct Pending {
    conn: Conn,
    /// The hello frame so far; empty while the client has said nothing.
    hello: HelloReader,
    deadline: Option<Instant>,
    /// To be read in this round: `poll` said so, or it was just accepted (a client that sent
    /// its hello with its connect is served at once, one that closed is gone at once).
    readable: bool,
}

/// The first pause after `accept` failed for lack of resources; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// At most this many connections are taken from the backlog per round, so that a flood
/// cannot keep the loop from reading the hellos it already has.
const ACCEPT_BATCH: usize = 64;

#[derive(Debug)]
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Seqpacket(HelloRecords),
}

impl Conn {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
            Conn::Seqpacket(s) => s.fd(),
        }
    }

    /// Best effort: the socket is new and non-blocking, so 12 bytes fit or the peer is gone.
    fn refuse(mut self, status: Status) {
        let frame = handshake::reply_frame(status);
        let _ = match &mut self {
            Conn::Tcp(s) => s.write(&frame),
            Conn::Unix(s) => s.write(&frame),
            Conn::Seqpacket(s) => {
                s.refuse(&handshake::encode_reply(status));
                Ok(0)
            }
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
            Conn::Seqpacket(s) => s.read(buf),
        }
    }
}

impl Listener {
    /// Binds to `addr`: a TCP address (port 0 picks a free port), a Unix socket path or an
    /// abstract Unix name (`unix:`, `shm:`, `seqpacket:`).
    ///
    /// A socket file left at `path` by a server that died (nobody accepts connections on it
    /// any more) is removed and the path reused; a path where a server still listens, or
    /// that is not a socket, is refused.
    ///
    /// # Errors
    /// [`Error::Io`] naming the address if it is taken (`AddrInUse`) or not allowed;
    /// [`Error::Config`] for invalid options, for a `fifo:` address (a pair of fifos takes one
    /// peer: make one with [`FifoTransport::create`](crate::FifoTransport::create)) and for a
    /// `zmq:` address (a ZeroMQ PAIR socket takes one peer: bind one with
    /// `ZmqTransport::bind`).
    pub fn bind(addr: &Address, options: &Options) -> Result<Self> {
        options.check()?;
        match addr {
            Address::Tcp(sock) => Self::from_tcp(TcpListener::bind(sock).map_err(|e| Error::about(e, addr))?, options),
            Address::Unix(path) | Address::Shm(path) => Self::bind_unix_path(path, addr, options),
            Address::UnixAbstract(_) | Address::ShmAbstract(_) => Self::bind_abstract(addr, options),
            Address::Seqpacket(path) => Self::bind_seqpacket_path(path, addr, options),
            Address::SeqpacketAbstract(_) => Self::from_seqpacket(seqpacket::listen_at(addr)?, None, addr, options),
            Address::Fifo(_) => Err(Error::Config(format!(
                "{addr}: a pair of fifos takes one peer, so it has no listener: use FifoTransport::create"
            ))),
            #[cfg(feature = "zmq")]
            Address::Zmq(_) => Err(Error::Config(format!(
                "{addr}: a ZeroMQ PAIR socket takes one peer, so it has no listener: use ZmqTransport::bind"
            ))),
        }
    }

    /// Binds TCP on [`Options::tcp_bind_ip`] (127.0.0.1 unless changed), on a free port.
    ///
    /// # Errors
    /// [`Error::Io`] if no socket can be bound.
    pub fn bind_tcp(options: &Options) -> Result<Self> {
        options.check()?;
        let addr = SocketAddr::new(options.tcp_bind_ip, 0);
        Self::from_tcp(TcpListener::bind(addr).map_err(|e| Error::about(e, Address::Tcp(addr)))?, options)
    }

    /// Binds a Unix socket under a fresh, unguessable name in Linux's abstract namespace
    /// (`unix:@switchboard-PID-N-RANDOM`).
    ///
    /// An abstract socket has no file: it disappears with the listening socket, so a server
    /// that is killed leaves nothing behind. Access is checked on every connection instead
    /// of by directory permissions: peers of other users are refused (`SO_PEERCRED`) unless
    /// [`Options::allow_other_users`] is set.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be created.
    ///
    /// # Platform-specific behavior
    /// Abstract sockets exist on Linux only, and are scoped to the network namespace.
    pub fn bind_unix_private(options: &Options) -> Result<Self> {
        options.check()?;
        Self::bind_abstract(&Address::UnixAbstract(private_name()?), options)
    }

    /// Binds a seqpacket socket under a fresh, unguessable abstract name
    /// (`seqpacket:@switchboard-PID-N-RANDOM`), as
    /// [`bind_unix_private`](Listener::bind_unix_private) does for stream sockets.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be created.
    ///
    /// # Platform-specific behavior
    /// Abstract sockets exist on Linux only, and are scoped to the network namespace.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Kind, Listener, Options, Transport, connect};
    ///
    /// let listener = Listener::bind_seqpacket_private(&Options::new())?;
    /// let addr = listener.local_addr().clone();
    /// let client = std::thread::spawn(move || connect(&addr, &Options::new()));
    /// let server_side = listener.accept()?;
    /// let mut client = client.join().expect("client thread")?;
    /// assert_eq!((client.kind(), server_side.kind()), (Kind::Seqpacket, Kind::Seqpacket));
    /// client.send(b"one record")?;
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn bind_seqpacket_private(options: &Options) -> Result<Self> {
        options.check()?;
        let address = Address::SeqpacketAbstract(private_name()?);
        Self::from_seqpacket(seqpacket::listen_at(&address)?, None, &address, options)
    }

    /// Binds `address`, a `seqpacket:` address at `path`, taking over a stale socket file.
    fn bind_seqpacket_path(path: &Path, address: &Address, options: &Options) -> Result<Self> {
        let listener = match seqpacket::listen_at(address) {
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::AddrInUse && reclaim_stale_socket(path) => {
                seqpacket::listen_at(address)
            }
            other => other,
        }?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::about(e, address))?;
        let file = SocketFile { path: path.to_owned(), dev: meta.dev(), ino: meta.ino() };
        Self::from_seqpacket(listener, Some(file), address, options)
    }

    fn from_seqpacket(
        listener: UnixListener,
        file: Option<SocketFile>,
        address: &Address,
        options: &Options,
    ) -> Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Self::new(Socket::Seqpacket(listener), file, address.clone(), options))
    }

    fn from_tcp(listener: TcpListener, options: &Options) -> Result<Self> {
        listener.set_nonblocking(true)?;
        let address = Address::Tcp(listener.local_addr()?);
        Ok(Self::new(Socket::Tcp(listener), None, address, options))
    }

    /// Binds `address`, a `unix:@` or `shm:@` abstract name.
    fn bind_abstract(address: &Address, options: &Options) -> Result<Self> {
        let listener = UnixListener::bind_addr(&address.unix_socket_addr()?).map_err(|e| Error::about(e, address))?;
        listener.set_nonblocking(true)?;
        Ok(Self::new(Socket::Unix(listener), None, address.clone(), options))
    }

    /// Binds `address`, a `unix:` or `shm:` address at `path`.
    fn bind_unix_path(path: &Path, address: &Address, options: &Options) -> Result<Self> {
        let address = address.clone();
        let listener = match UnixListener::bind(path) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && reclaim_stale_socket(path) => UnixListener::bind(path),
            other => other,
        }
        .map_err(|e| Error::about(e, &address))?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::about(e, &address))?;
        let file = SocketFile { path: path.to_owned(), dev: meta.dev(), ino: meta.ino() };
        listener.set_nonblocking(true)?;
        Ok(Self::new(Socket::Unix(listener), Some(file), address, options))
    }

    fn new(socket: Socket, socket_file: Option<SocketFile>, address: Address, options: &Options) -> Self {
        Listener {
            socket,
            _socket_file: socket_file,
            address,
            options: options.clone(),
            token: None,
            state: Mutex::new(Accepting::default()),
            refused: AtomicU64::new(0),
            ready: OnceLock::new(),
        }
    }

    /// Accept only clients whose hello carries this token (a spawned child).
    pub(crate) fn require_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// The address clients connect to (with the real port when bound to port 0).
    pub fn local_addr(&self) -> &Address {
        &self.address
    }

    /// How many connections were refused or timed out during their handshake so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Waits for the next client that completes the handshake.
    ///
    /// # Errors
    /// [`Error::Io`] if the listening socket itself fails. Clients that fail the handshake
    /// are not errors (see [`refused`](Listener::refused)), and neither is running out of
    /// file descriptors or memory: the listener sheds idle connections, backs off, and goes on
    /// serving as soon as resources free.
    pub fn accept(&self) -> Result<Box<dyn Transport>> {
        self.accept_until(None)
    }

    /// Like [`accept`](Listener::accept), but gives up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if no client completed the handshake in time, otherwise as
    /// [`accept`](Listener::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Box<dyn Transport>> {
        self.accept_until(deadline::after(timeout))
    }

    /// An endless iterator over [`accept`](Listener::accept).
    pub fn incoming(&self) -> impl Iterator<Item = Result<Box<dyn Transport>>> + '_ {
        std::iter::repeat_with(|| self.accept())
    }

    pub(crate) fn accept_until(&self, deadline: Option<Instant>) -> Result<Box<dyn Transport>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *state;
        loop {
            let now = Instant::now();
            let before = state.pending.len();
            state.pending.retain(|p| p.deadline.is_none_or(|d| d > now));
            self.refused.fetch_add((before - state.pending.len()) as u64, Ordering::Relaxed);
            let listen = state.backoff_until.is_none_or(|t| now >= t);

            let wake = state.pending.iter().filter_map(|p| p.deadline).min();
            let wake = deadline::earliest(deadline::earliest(wake, deadline), state.backoff_until.filter(|_| !listen));
            let (listen_ready, ready) = self.poll(listen, &state.pending, wake)?;
            for (p, ready) in state.pending.iter_mut().zip(ready) {
                p.readable = ready;
            }
            if listen_ready {
                self.accept_new(state)?;
            }

            for i in (0..state.pending.len()).rev() {
                if !mem::take(&mut state.pending[i].readable) {
                    continue;
                }
                let Pending { conn, hello, .. } = &mut state.pending[i];
                match hello.read_from(conn) {
                    Progress::More => {}
                    Progress::Gone => {
                        state.pending.remove(i);
                        self.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Progress::Refuse(status) => self.refuse(state.pending.remove(i).conn, status),
                    Progress::Hello(token) => {
                        let conn = state.pending.remove(i).conn;
                        if let Some(r) = self.ready.get() {
                            // It lives on as a transport: out of the listener's set.
                            let _ = r.epoll.delete(conn.fd());
                        }
                        if let Some(expected) = &self.token
                            && !token.is_some_and(|t| expected.ct_eq(&t))
                        {
                            self.refuse(conn, Status::BadToken);
                            continue;
                        }
                        match self.finish(conn) {
                            Ok(transport) => return Ok(transport),
                            // The client vanished between hello and reply: its problem.
                            Err(_) => self.refused.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                }
            }

            self.sync_readiness(state);
            if deadline::passed(deadline) {
                return Err(Error::Timeout);
            }
        }
    }

    /// Polls the listening socket (if `listen`) and every pending connection until `wake`.
    fn poll(&self, listen: bool, pending: &[Pending], wake: Option<Instant>) -> Result<(bool, Vec<bool>)> {
        let listen_fd = self.listen_fd();
        let listen_flags = if listen { PollFlags::POLLIN } else { PollFlags::empty() };
        let mut fds: Vec<PollFd<'_>> = std::iter::once(PollFd::new(listen_fd, listen_flags))
            .chain(pending.iter().map(|p| PollFd::new(p.conn.fd(), PollFlags::POLLIN)))
            .collect();
        let timeout = wake.map(|w| TimeSpec::from_duration(w.saturating_duration_since(Instant::now())));
        match ppoll(&mut fds, timeout, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.revents().is_some_and(|r| !r.is_empty())).collect();
        Ok((ready[0], ready[1..].to_vec()))
    }

    /// Takes up to [`ACCEPT_BATCH`] connections from the backlog into the pending set,
    /// shedding silent connections past the cap or when descriptors run out.
    fn accept_new(&self, state: &mut Accepting) -> Result<()> {
        let cap = max_pending();
        for _ in 0..ACCEPT_BATCH {
            let conn = match &self.socket {
                Socket::Tcp(l) => l.accept().map(|(s, _)| Conn::Tcp(s)),
                Socket::Unix(l) => l.accept().map(|(s, _)| Conn::Unix(s)),
                Socket::Seqpacket(l) => l.accept().map(|(s, _)| Conn::Seqpacket(HelloRecords::new(OwnedFd::from(s)))),
            };
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => match classify_accept_error(&e) {
                    AcceptError::Retry => continue,
                    AcceptError::Exhausted => {
                        // Free a descriptor held by a client that said nothing, and try
                        // again; with none to shed, stop polling the listener for a while
                        // rather than spin on it (it stays readable until we accept).
                        if self.shed_one(state) {
                            continue;
                        }
                        state.backoff = (state.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                        state.backoff_until = deadline::after(state.backoff);
                        return Ok(());
                    }
                    AcceptError::Fatal => return Err(Error::about(e, &self.address)),
                },
            };
            state.backoff = Duration::ZERO;
            state.backoff_until = None;
            let nonblocking = match &conn {
                Conn::Tcp(s) => s.set_nonblocking(true),
                Conn::Unix(s) => s.set_nonblocking(true),
                Conn::Seqpacket(s) => set_nonblocking(s.fd()),
            };
            if nonblocking.is_err() {
                continue;
            }
            if matches!(conn, Conn::Unix(_) | Conn::Seqpacket(_)) && !self.options.allow_other_users {
                let ours = nix::unistd::geteuid().as_raw();
                if !crate::unix::peer_credentials(conn.fd()).is_ok_and(|c| c.uid == ours) {
                    self.refuse(conn, Status::Forbidden);
                    continue;
                }
            }
            if state.pending.len() >= cap {
                self.shed_one(state);
            }
            let deadline = deadline::after(self.options.handshake_timeout);
            if let Some(r) = self.ready.get() {
                let _ = r.epoll.add(conn.fd(), EpollEvent::new(EpollFlags::EPOLLIN, 0));
            }
            state.pending.push(Pending { conn, hello: HelloReader::default(), deadline, readable: true });
        }
        Ok(())
    }

    /// Drops one half-open connection to make room: the oldest that has sent nothing, else
    /// the oldest. Returns whether there was one.
    fn shed_one(&self, state: &mut Accepting) -> bool {
        if state.pending.is_empty() {
            return false;
        }
        let victim = state.pending.iter().position(|p| p.hello.is_silent()).unwrap_or(0);
        state.pending.remove(victim);
        self.refused.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn refuse(&self, conn: Conn, status: Status) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        conn.refuse(status);
    }

    /// Turns a connection whose hello was good into a transport and sends the acceptance.
    fn finish(&self, conn: Conn) -> Result<Box<dyn Transport>> {
        let reply = handshake::encode_reply(Status::Accepted);
        Ok(match conn {
            Conn::Tcp(s) => {
                let mut t = TcpTransport::from_stream(s, &self.options)?;
                t.send_handshake_frame(&reply)?;
                Box::new(t)
            }
            Conn::Seqpacket(s) => {
                let mut t = SeqpacketTransport::from_socket(s.into_fd(), &self.options)?;
                t.send_handshake(&reply)?;
                Box::new(t)
            }
            Conn::Unix(s) => {
                let mut t = UnixTransport::from_stream(s, &self.options)?;
                t.send_handshake_frame(&reply)?;
                if !matches!(self.address, Address::Shm(_) | Address::ShmAbstract(_)) {
                    return Ok(Box::new(t));
                }
                // Shared memory by address: a sealed segment of its own for this client, handed
                // over the socket, which then only watches the client.
                let (mut shm, memfd) = ShmTransport::for_child(&self.options)?;
                let [e0, e1] =
                    shm.doorbell_fds().ok_or_else(|| Error::Config("a server's segment has doorbells".into()))?;
                let socket = t.hand_over_segment([memfd.as_fd(), e0, e1])?;
                shm.watch_socket(socket);
                Box::new(shm)
            }
        })
    }
}

/// A fresh, unguessable abstract socket name: `switchboard-PID-N-RANDOM`.
fn private_name() -> Result<String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut nonce = [0u8; 8];
    handshake::random_bytes(&mut nonce)?;
    Ok(format!(
        "switchboard-{}-{}-{:016x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u64::from_ne_bytes(nonce)
    ))
}

/// Makes an accepted seqpacket socket non-blocking for its handshake.
fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// How `accept(2)` failed.
enum AcceptError {
    /// This connection failed (the client gave up, or a network error was passed on): try
    /// the next one (`accept(2)`: "treat them like EAGAIN by retrying").
    Retry,
    /// Out of file descriptors or kernel memory: shed or back off.
    Exhausted,
    /// The listening socket itself is broken.
    Fatal,
}

fn classify_accept_error(err: &io::Error) -> AcceptError {
    let errno = err.raw_os_error().map(Errno::from_raw);
    match errno {
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM) => AcceptError::Exhausted,
        Some(
            Errno::EINTR
            | Errno::ECONNABORTED
            | Errno::EPROTO
            | Errno::EPERM
            | Errno::ENETDOWN
            | Errno::ENOPROTOOPT
            | Errno::EHOSTDOWN
            | Errno::ENONET
            | Errno::EHOSTUNREACH
            | Errno::EOPNOTSUPP
            | Errno::ENETUNREACH
            | Errno::ETIMEDOUT,
        ) => AcceptError::Retry,
        _ => AcceptError::Fatal,
    }
}

/// How many connections may be handshaking at once: a quarter of the soft file descriptor
/// limit, between 16 and 1024, so that half-open connections alone never exhaust the
/// process's descriptors.
fn max_pending() -> usize {
    let soft =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 4).unwrap_or(usize::MAX).clamp(16, 1024)
}

/// Whether the socket file at `path` is stale (a socket nobody accepts on: connecting is
/// refused) and was removed. A live socket, a file that is not a socket, or any doubt: false.
fn reclaim_stale_socket(path: &Path) -> bool {
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if !is_socket {
        return false;
    }
    match UnixStream::connect(path) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path).is_ok(),
        _ => false,
    }
}

/// The socket file of a unix listener, removed on drop if it is still the one we bound.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
