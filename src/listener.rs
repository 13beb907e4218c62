//! The server side of tcp and unix: a listening socket that only produces connected client
//! endpoints, as the socket HOWTO puts it, and the client-side `connect`.
//!
//! Handshakes run inside `accept` as a small `ppoll(2)` loop over the listening socket and
//! every connection still handshaking, each with its own deadline: a client that sends
//! garbage or nothing at all is refused or timed out without delaying anyone else.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;

use crate::frame::PREFIX_LEN;
use crate::handshake::{self, HELLO_MAX, Status, Token};
use crate::{Error, Options, Result, TcpTransport, Transport, UnixTransport};

/// Where a [`Listener`] listens: `tcp:HOST:PORT` or `unix:PATH`.
///
/// # Examples
/// ```
/// use switchboard::Address;
///
/// let addr: Address = "tcp:127.0.0.1:4000".parse()?;
/// assert_eq!(addr.to_string(), "tcp:127.0.0.1:4000");
/// let addr: Address = "unix:/run/user/1000/app.sock".parse()?;
/// assert!(matches!(addr, Address::Unix(_)));
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A TCP socket address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "tcp:{addr}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(addr) = s.strip_prefix("tcp:") {
            let addr = addr.parse().map_err(|_| Error::Config(format!("{addr:?} is not a socket address")))?;
            Ok(Address::Tcp(addr))
        } else if let Some(path) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            Ok(Address::Unix(PathBuf::from(path)))
        } else {
            Err(Error::Config(format!("address {s:?} must start with tcp: or unix:")))
        }
    }
}

/// Connects to a switchboard [`Listener`] at `addr` and performs the handshake.
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
    Ok(match addr {
        Address::Tcp(addr) => Box::new(TcpTransport::connect(*addr, options)?),
        Address::Unix(path) => Box::new(UnixTransport::connect(path, options)?),
    })
}

/// A listening tcp or unix socket that accepts any number of clients.
///
/// Each accepted connection has passed the handshake (protocol version, and for unix the
/// peer's uid, see [`Options::allow_other_users`]). Clients that fail it are answered with a
/// refusal, closed and counted in [`refused`](Listener::refused); they never surface as
/// errors from `accept`, so one bad client cannot stop a server loop.
///
/// Dropping a unix listener removes its socket file (and the private directory of
/// [`bind_unix_private`](Listener::bind_unix_private)). Connections already accepted live on.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    /// Held for its `Drop`, which removes the unix socket file.
    _socket_file: Option<SocketFile>,
    address: Address,
    options: Options,
    token: Option<Token>,
    pending: Mutex<Vec<Pending>>,
    refused: AtomicU64,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A connection whose hello has not fully arrived.
#[derive(Debug)]
struct Pending {
    conn: Conn,
    hello: Vec<u8>,
    deadline: Instant,
}

#[derive(Debug)]
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }

    /// Best effort: the socket is new and non-blocking, so 12 bytes fit or the peer is gone.
    fn refuse(mut self, status: Status) {
        let mut frame = [0u8; PREFIX_LEN + handshake::REPLY_LEN];
        frame[..PREFIX_LEN].copy_from_slice(&(handshake::REPLY_LEN as u32).to_le_bytes());
        frame[PREFIX_LEN..].copy_from_slice(&handshake::encode_reply(status));
        let _ = match &mut self {
            Conn::Tcp(s) => s.write(&frame),
            Conn::Unix(s) => s.write(&frame),
        };
    }
}

/// What reading a pending connection produced.
enum Progress {
    More,
    Hello(Option<[u8; handshake::TOKEN_LEN]>),
    Refuse(Status),
}

impl Listener {
    /// Binds to `addr`: a TCP address (port 0 picks a free port) or a Unix socket path, which
    /// must not exist yet.
    ///
    /// # Errors
    /// [`Error::Io`] if the address is taken or not allowed.
    pub fn bind(addr: &Address, options: &Options) -> Result<Self> {
        match addr {
            Address::Tcp(addr) => Self::from_tcp(TcpListener::bind(addr)?, options),
            Address::Unix(path) => Self::bind_unix_at(path.clone(), None, options),
        }
    }

    /// Binds TCP on [`Options::tcp_bind_ip`] (127.0.0.1 unless changed), on a free port.
    ///
    /// # Errors
    /// [`Error::Io`] if no socket can be bound.
    pub fn bind_tcp(options: &Options) -> Result<Self> {
        Self::from_tcp(TcpListener::bind(SocketAddr::new(options.tcp_bind_ip, 0))?, options)
    }

    /// Binds a Unix socket inside a new private directory (mode 0700) under
    /// `$XDG_RUNTIME_DIR` or the temporary directory, named after this process and a counter.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory or socket cannot be created.
    pub fn bind_unix_private(options: &Options) -> Result<Self> {
        let dir = private_dir()?;
        let path = dir.join("sock");
        Self::bind_unix_at(path, Some(dir), options)
    }

    fn from_tcp(listener: TcpListener, options: &Options) -> Result<Self> {
        listener.set_nonblocking(true)?;
        let address = Address::Tcp(listener.local_addr()?);
        Ok(Self::new(Socket::Tcp(listener), None, address, options))
    }

    fn bind_unix_at(path: PathBuf, dir: Option<PathBuf>, options: &Options) -> Result<Self> {
        let cleanup_dir = |e: io::Error| {
            if let Some(dir) = &dir {
                let _ = std::fs::remove_dir(dir);
            }
            Error::from(e)
        };
        let listener = UnixListener::bind(&path).map_err(cleanup_dir)?;
        let meta = std::fs::symlink_metadata(&path)?;
        let file = SocketFile { path: path.clone(), dev: meta.dev(), ino: meta.ino(), dir };
        listener.set_nonblocking(true)?;
        Ok(Self::new(Socket::Unix(listener), Some(file), Address::Unix(path), options))
    }

    fn new(socket: Socket, socket_file: Option<SocketFile>, address: Address, options: &Options) -> Self {
        Listener {
            socket,
            _socket_file: socket_file,
            address,
            options: options.clone(),
            token: None,
            pending: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
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
    /// [`Error::Io`] if the listening socket fails (for example, out of file descriptors).
    /// Clients that fail the handshake are not errors; see [`refused`](Listener::refused).
    pub fn accept(&self) -> Result<Box<dyn Transport>> {
        self.accept_until(None)
    }

    /// Like [`accept`](Listener::accept), but gives up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if no client completed the handshake in time, otherwise as
    /// [`accept`](Listener::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Box<dyn Transport>> {
        self.accept_until(Instant::now().checked_add(timeout))
    }

    /// An endless iterator over [`accept`](Listener::accept).
    pub fn incoming(&self) -> impl Iterator<Item = Result<Box<dyn Transport>>> + '_ {
        std::iter::repeat_with(|| self.accept())
    }

    pub(crate) fn accept_until(&self, deadline: Option<Instant>) -> Result<Box<dyn Transport>> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            let before = pending.len();
            pending.retain(|p| p.deadline > now);
            self.refused.fetch_add((before - pending.len()) as u64, Ordering::Relaxed);

            let wake = pending.iter().map(|p| p.deadline).chain(deadline).min();
            let (listen_ready, ready) = self.poll(&pending, wake)?;

            for i in (0..pending.len()).rev() {
                if !ready.get(i).copied().unwrap_or(false) {
                    continue;
                }
                match read_hello(&mut pending[i]) {
                    Progress::More => {}
                    Progress::Refuse(status) => self.refuse(pending.swap_remove(i).conn, status),
                    Progress::Hello(token) => {
                        let conn = pending.swap_remove(i).conn;
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

            if listen_ready {
                self.accept_new(&mut pending)?;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
        }
    }

    fn poll(&self, pending: &[Pending], wake: Option<Instant>) -> Result<(bool, Vec<bool>)> {
        let listen_fd = match &self.socket {
            Socket::Tcp(l) => l.as_fd(),
            Socket::Unix(l) => l.as_fd(),
        };
        let mut fds: Vec<PollFd<'_>> = std::iter::once(listen_fd)
            .chain(pending.iter().map(|p| p.conn.fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let timeout = wake.map(|w| TimeSpec::from_duration(w.saturating_duration_since(Instant::now())));
        match ppoll(&mut fds, timeout, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.revents().is_some_and(|r| !r.is_empty())).collect();
        Ok((ready[0], ready[1..].to_vec()))
    }

    /// Takes every connection waiting in the backlog into the pending set.
    fn accept_new(&self, pending: &mut Vec<Pending>) -> Result<()> {
        /// Beyond this many half-open handshakes the oldest are dropped.
        const MAX_PENDING: usize = 1024;
        loop {
            let conn = match &self.socket {
                Socket::Tcp(l) => l.accept().map(|(s, _)| Conn::Tcp(s)),
                Socket::Unix(l) => l.accept().map(|(s, _)| Conn::Unix(s)),
            };
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // The client gave up before we accepted it.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) => continue,
                Err(e) => return Err(e.into()),
            };
            let nonblocking = match &conn {
                Conn::Tcp(s) => s.set_nonblocking(true),
                Conn::Unix(s) => s.set_nonblocking(true),
            };
            if nonblocking.is_err() {
                continue;
            }
            if let Conn::Unix(stream) = &conn
                && !self.options.allow_other_users
            {
                let ours = nix::unistd::geteuid().as_raw();
                if !crate::unix::peer_credentials(stream.as_fd()).is_ok_and(|c| c.uid == ours) {
                    self.refuse(conn, Status::Forbidden);
                    continue;
                }
            }
            if pending.len() >= MAX_PENDING {
                pending.remove(0);
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            let deadline = Instant::now() + self.options.handshake_timeout;
            pending.push(Pending { conn, hello: Vec::with_capacity(PREFIX_LEN + HELLO_MAX), deadline });
        }
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
            Conn::Unix(s) => {
                let mut t = UnixTransport::from_stream(s, &self.options)?;
                t.send_handshake_frame(&reply)?;
                Box::new(t)
            }
        })
    }
}

/// Reads what has arrived of a hello frame, never past its end.
fn read_hello(p: &mut Pending) -> Progress {
    let want = if p.hello.len() < PREFIX_LEN {
        PREFIX_LEN
    } else {
        let len = u32::from_le_bytes(p.hello[..PREFIX_LEN].try_into().expect("4 bytes")) as usize;
        if !handshake::hello_len_ok(len) {
            return Progress::Refuse(Status::Malformed);
        }
        PREFIX_LEN + len
    };
    let mut chunk = [0u8; PREFIX_LEN + HELLO_MAX];
    let have = p.hello.len();
    match p.conn.read(&mut chunk[..want - have]) {
        Ok(0) => return Progress::Refuse(Status::Malformed),
        Ok(n) => p.hello.extend_from_slice(&chunk[..n]),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => return Progress::More,
        Err(_) => return Progress::Refuse(Status::Malformed),
    }
    if p.hello.len() < want || want == PREFIX_LEN {
        // Either more of this part is due, or the prefix just completed: check it next round
        // (the socket may well be readable again at once).
        return if p.hello.len() == PREFIX_LEN { read_hello(p) } else { Progress::More };
    }
    match handshake::parse_hello(&p.hello[PREFIX_LEN..]) {
        Ok(hello) => Progress::Hello(hello.token),
        Err(status) => Progress::Refuse(status),
    }
}

/// The socket file of a unix listener, removed on drop if it is still the one we bound.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    dir: Option<PathBuf>,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Creates a fresh owner-only directory; `create` fails rather than reuse an existing one.
fn private_dir() -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let mut nonce = [0u8; 4];
    handshake::random_bytes(&mut nonce)?;
    let name = format!(
        "switchboard-{}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u32::from_ne_bytes(nonce)
    );
    let dir = base.join(name);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}
