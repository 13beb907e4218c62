//! Starting a child process with a connected transport, and picking it up in the child.
//!
//! The parent puts what the child needs in the environment (never argv, which other users can
//! read in `/proc`): `SWITCHBOARD_CONNECT` says which transport and where, `SWITCHBOARD_TOKEN`
//! carries 256 random bits that the child presents in its hello (every transport but shm), so
//! another local process that connects first is refused. Pipes and shared memory travel as inherited file
//! descriptors: created close-on-exec, with the flag cleared only in the child, between
//! `fork` and `exec` (`Command::pre_exec`), so that no other child ever inherits them.
//!
//! Every transport confirms the child: tcp, unix, seqpacket and fifo by the handshake (fifo's
//! two fifos wait in a private directory whose path is in `SWITCHBOARD_CONNECT`), pipe by a
//! hello frame (with the token) that the child writes first, shm by the child marking the
//! segment attached. `spawn_child` returns only once that happened, so a child that exits or never
//! calls `connect_to_parent` is an error from `spawn_child`, never a `recv` that hangs.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::stat::{SFlag, fstat};

use crate::address::{self, Address};
use crate::deadline;
use crate::error::{Error, Result};
use crate::fifo::FifoServer;
use crate::handshake::Token;
use crate::listener::Listener;
use crate::pipe::PipeTransport;
use crate::process::ChildGuard;
use crate::shm::ShmTransport;
use crate::transport::{Kind, MAX_MESSAGE_SIZE_LIMIT, Options, Transport};
#[cfg(feature = "zmq")]
use crate::zmq::ZmqTransport;

/// Names the transport and where to find it, for the child.
pub const ENV_CONNECT: &str = "SWITCHBOARD_CONNECT";
/// The spawn token, 64 hex digits.
pub const ENV_TOKEN: &str = "SWITCHBOARD_TOKEN";
/// The parent's maximum message size, which the child adopts.
pub const ENV_MAX_MESSAGE_SIZE: &str = "SWITCHBOARD_MAX_MESSAGE_SIZE";
/// The parent's shared-memory wait strategy, which the child adopts.
pub const ENV_WAIT: &str = "SWITCHBOARD_WAIT";

/// Starts `command` as a child process connected to this one by a `kind` transport, with the
/// default [`Options`]. See [`Options::spawn_child`].
///
/// # Errors
/// As [`Options::spawn_child`].
///
/// # Examples
/// ```no_run
/// use std::process::Command;
/// use switchboard::{Kind, Transport, spawn_child};
///
/// let (mut child, mut conn) = spawn_child(Kind::Pipe, &mut Command::new("./worker"))?;
/// conn.send(b"job")?;
/// let mut reply = Vec::new();
/// conn.recv(&mut reply)?;
/// drop(conn); // the worker's recv returns Disconnected, and it exits
/// child.wait()?;
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn spawn_child(kind: Kind, command: &mut Command) -> Result<(Child, Box<dyn Transport>)> {
    Options::default().spawn_child(kind, command)
}

/// In a process started by [`spawn_child`], connects to the parent, with the parent's maximum
/// message size and wait strategy. See [`Options::connect_to_parent`].
///
/// # Errors
/// As [`Options::connect_to_parent`].
///
/// # Examples
/// ```no_run
/// use switchboard::{Error, Transport, connect_to_parent};
///
/// let mut parent = connect_to_parent()?;
/// let mut job = Vec::new();
/// loop {
///     match parent.recv(&mut job) {
///         Ok(_) => parent.send(&job)?,
///         Err(Error::Disconnected) => break, // the parent is done, or gone
///         Err(e) => return Err(e),
///     }
/// }
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn connect_to_parent() -> Result<Box<dyn Transport>> {
    let mut options = Options::default();
    if let Some(max) = std::env::var_os(ENV_MAX_MESSAGE_SIZE) {
        let max = max
            .to_str()
            .and_then(|m| m.parse::<usize>().ok())
            .filter(|&m| m <= MAX_MESSAGE_SIZE_LIMIT)
            .ok_or_else(|| Error::Config(format!("{ENV_MAX_MESSAGE_SIZE} is not a valid size")))?;
        options = options.max_message_size(max);
    }
    if let Ok(wait) = std::env::var(ENV_WAIT) {
        options = options.wait_strategy(wait.parse()?);
    }
    options.connect_to_parent()
}

/// Whether this process has already taken its connection to the parent.
static CONNECTED: AtomicBool = AtomicBool::new(false);

impl Options {
    /// Starts `command` as a child process connected to this one by a `kind` transport.
    ///
    /// The child calls [`connect_to_parent`]. For tcp, unix and seqpacket the parent listens
    /// on a fresh address (127.0.0.1 port 0, or an abstract Unix socket) and accepts only the
    /// client that presents the token; impostors are refused and it keeps waiting, up to the
    /// handshake timeout. For fifo the parent makes two fifos in a private directory (0700)
    /// whose path the child gets in the environment; the child's hello must carry the token. For pipe the child's first frame is a hello with the token; for shm
    /// the child marks the segment attached. For zmq (feature `zmq`) the parent binds a PAIR
    /// socket on a fresh abstract Unix socket (`ipc://@switchboard-PID-N-RANDOM`) and the
    /// child's first message is the hello with the token; a PAIR socket takes one peer, so a
    /// process that connects first with a wrong token makes this fail (it cannot take the
    /// child's place). On every transport this returns only once the
    /// child has connected, and at once (with an error) if the child exits before that.
    ///
    /// # Errors
    /// [`Error::Io`] if the command cannot be started; [`Error::Handshake`] if the child
    /// exits or does not connect within [`Options::handshake_timeout`] (the child is then
    /// killed and reaped); [`Error::Config`] for invalid options.
    ///
    /// # Platform-specific behavior
    /// The command gets environment variables and, for pipe and shm, a `pre_exec` hook that
    /// lets the child inherit its descriptors. Spawn a fresh `Command` for each child: spawning
    /// this one again yourself does not give a connected child.
    pub fn spawn_child(&self, kind: Kind, command: &mut Command) -> Result<(Child, Box<dyn Transport>)> {
        self.check()?;
        command.env(ENV_MAX_MESSAGE_SIZE, self.max_message_size.to_string());
        let token = Token::random()?;
        command.env(ENV_TOKEN, token.to_hex());
        match kind {
            Kind::Tcp => self.spawn_listening(Listener::bind_tcp(self)?, token, command),
            Kind::Unix => self.spawn_listening(Listener::bind_unix_private(self)?, token, command),
            Kind::Seqpacket => self.spawn_listening(Listener::bind_seqpacket_private(self)?, token, command),
            Kind::Fifo => {
                // Two fifos in a private directory; the child opens them by path and says
                // hello with the token. The names go as soon as it has.
                let (mut server, base) = FifoServer::private()?;
                command.env(ENV_CONNECT, Address::Fifo(base).to_string());
                let mut child = spawn_guarded(command)?;
                let mut transport = None;
                self.await_child(&mut child, |slice| {
                    transport = server.accept_until(Some(&token), self, slice)?;
                    Ok(transport.is_some())
                })?;
                let transport = transport.ok_or_else(|| Error::Handshake("the child did not connect".into()))?;
                Ok((child.into_inner(), Box::new(transport)))
            }
            Kind::Pipe => {
                let (parent_read, child_write) = std::io::pipe()?;
                let (child_read, parent_write) = std::io::pipe()?;
                let (child_read, child_write) = (OwnedFd::from(child_read), OwnedFd::from(child_write));
                command.env(ENV_CONNECT, format!("pipe:{},{}", child_read.as_raw_fd(), child_write.as_raw_fd()));
                inherit(command, [child_read.as_raw_fd(), child_write.as_raw_fd()]);
                let mut transport = PipeTransport::from_fds(parent_read.into(), parent_write.into(), self)?;
                let mut child = spawn_guarded(command)?;
                // Our copies of the child's ends must go, or we would never see EOF.
                drop((child_read, child_write));
                self.await_child(&mut child, |slice| transport.expect_hello(&token, slice))?;
                Ok((child.into_inner(), Box::new(transport)))
            }
            Kind::Shm => {
                let (mut transport, memfd) = ShmTransport::for_child(self)?;
                let [e0, e1] = transport
                    .doorbell_fds()
                    .map(|[a, b]| [a.as_raw_fd(), b.as_raw_fd()])
                    .ok_or_else(|| Error::Config("a parent's segment has doorbells".into()))?;
                command.env(ENV_CONNECT, format!("shm:{},{e0},{e1}", memfd.as_raw_fd()));
                command.env(ENV_WAIT, self.wait_strategy.name());
                inherit(command, [memfd.as_raw_fd(), e0, e1]);
                let mut child = spawn_guarded(command)?;
                drop(memfd);
                let pid = child.id();
                transport.watch_peer(pid);
                self.await_child(&mut child, |slice| transport.await_attached(pid, slice))?;
                Ok((child.into_inner(), Box::new(transport)))
            }
            #[cfg(feature = "zmq")]
            Kind::Zmq => self.spawn_zmq(ZmqTransport::bind_private(self)?, token, command),
        }
    }

    /// [`spawn_child`](Options::spawn_child) over zmq with the parent bound at `endpoint`
    /// (`tcp://127.0.0.1:*`, say) instead of a private abstract socket.
    #[cfg(all(feature = "zmq", feature = "measure"))]
    pub(crate) fn spawn_child_zmq(&self, endpoint: &str, command: &mut Command) -> Result<(Child, Box<dyn Transport>)> {
        self.check()?;
        command.env(ENV_MAX_MESSAGE_SIZE, self.max_message_size.to_string());
        let token = Token::random()?;
        command.env(ENV_TOKEN, token.to_hex());
        self.spawn_zmq(ZmqTransport::bind(endpoint, self)?, token, command)
    }

    #[cfg(feature = "zmq")]
    fn spawn_zmq(
        &self,
        mut transport: ZmqTransport,
        token: Token,
        command: &mut Command,
    ) -> Result<(Child, Box<dyn Transport>)> {
        command.env(ENV_CONNECT, Address::Zmq(transport.endpoint().to_owned()).to_string());
        let mut child = spawn_guarded(command)?;
        self.await_child(&mut child, |slice| transport.expect_hello(&token, slice))?;
        Ok((child.into_inner(), Box::new(transport)))
    }

    fn spawn_listening(
        &self,
        listener: Listener,
        token: Token,
        command: &mut Command,
    ) -> Result<(Child, Box<dyn Transport>)> {
        let listener = listener.require_token(token);
        command.env(ENV_CONNECT, listener.local_addr().to_string());
        let mut child = spawn_guarded(command)?;
        let mut transport = None;
        self.await_child(&mut child, |slice| match listener.accept_until(slice) {
            Ok(t) => {
                transport = Some(t);
                Ok(true)
            }
            Err(Error::Timeout) => Ok(false),
            Err(e) => Err(e),
        })?;
        let transport = transport.ok_or_else(|| Error::Handshake("the child did not connect".into()))?;
        Ok((child.into_inner(), transport))
    }

    /// Waits until `connected` (called with the end of each 50 ms slice) says the child is
    /// connected, checking between slices that the child still runs.
    fn await_child(
        &self,
        child: &mut ChildGuard,
        mut connected: impl FnMut(Option<Instant>) -> Result<bool>,
    ) -> Result<()> {
        let deadline = deadline::after(self.handshake_timeout);
        loop {
            let slice = deadline::earliest(deadline::after(Duration::from_millis(50)), deadline);
            let result = connected(slice);
            if let Ok(true) = result {
                return Ok(());
            }
            if let Some(status) = child.get_mut().try_wait()? {
                return Err(Error::Handshake(format!("the child exited ({status}) before connecting")));
            }
            result?;
            if deadline::passed(deadline) {
                return Err(Error::Handshake(format!("the child did not connect within {:?}", self.handshake_timeout)));
            }
        }
    }

    /// In a process started by [`spawn_child`], connects to the parent with these options
    /// (the parent's maximum message size is not adopted; both sides should agree).
    ///
    /// # Errors
    /// [`Error::Config`] if this process was not started by `spawn_child`, the environment is
    /// malformed, or the connection was already taken; [`Error::Handshake`] or [`Error::Io`]
    /// if connecting fails.
    pub fn connect_to_parent(&self) -> Result<Box<dyn Transport>> {
        self.check()?;
        let spec = std::env::var(ENV_CONNECT).map_err(|_| {
            Error::Config(format!("{ENV_CONNECT} is not set: this process was not started by spawn_child"))
        })?;
        if CONNECTED.swap(true, Ordering::SeqCst) {
            return Err(Error::Config("connect_to_parent was already called in this process".into()));
        }
        let token = || {
            let hex = std::env::var(ENV_TOKEN).map_err(|_| Error::Config(format!("{ENV_TOKEN} is not set")))?;
            Token::from_hex(&hex)
        };
        if let Some(fds) = spec.strip_prefix("pipe:") {
            let [read, write] = adopt_fds(fds, [Some(SFlag::S_IFIFO); 2])?;
            let mut transport = PipeTransport::from_fds(read, write, self)?;
            transport.send_hello(&token()?)?;
            return Ok(Box::new(transport));
        }
        if let Some(fds) = spec.strip_prefix("shm:") {
            // The memfd, then the parent's and our eventfds (anonymous inodes: no file type).
            let [memfd, e0, e1] = adopt_fds(fds, [Some(SFlag::S_IFREG), None, None])?;
            return Ok(Box::new(ShmTransport::from_parent(memfd, [e0, e1], self)?));
        }
        address::connect_with(&spec.parse::<Address>()?, self, Some(&token()?))
    }
}

/// Lets the child inherit `fds`: they stay close-on-exec in this process, and the flag is
/// cleared in the forked child just before `exec`.
fn inherit<const N: usize>(command: &mut Command, fds: [RawFd; N]) {
    let hook = move || {
        for fd in fds {
            // SAFETY: fcntl is async-signal-safe, as the code between fork and exec must be;
            // `fd` is open in the child because it is open in the parent at spawn time.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook only calls fcntl, touches no locks and allocates nothing.
    unsafe { command.pre_exec(hook) };
}

/// Takes ownership of the inherited descriptors named in `list` ("3,4"), after checking that
/// each is open and of the expected type (`None`: any), and makes them close-on-exec again so
/// that the child's own children do not inherit them.
fn adopt_fds<const N: usize>(list: &str, kinds: [Option<SFlag>; N]) -> Result<[OwnedFd; N]> {
    let bad = |why: &str| Error::Config(format!("{ENV_CONNECT} names descriptors {list:?}: {why}"));
    let raw: Vec<RawFd> =
        list.split(',').map(|s| s.parse::<RawFd>()).collect::<Result<_, _>>().map_err(|_| bad("not numbers"))?;
    let distinct = raw.iter().enumerate().all(|(i, fd)| !raw[..i].contains(fd));
    if raw.len() != N || raw.iter().any(|&fd| fd <= 2) || !distinct {
        return Err(bad("wrong count, a standard stream, or one named twice"));
    }
    for (&fd, kind) in raw.iter().zip(kinds) {
        // SAFETY: the borrow lives only for this fstat call; an fd number that is not open
        // makes fstat fail with EBADF, which we report.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let stat = fstat(borrowed).map_err(|_| bad("not open"))?;
        if kind.is_some_and(|kind| SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != kind) {
            return Err(bad("not the expected file type"));
        }
    }
    let owned: Vec<OwnedFd> = raw
        .into_iter()
        // SAFETY: each fd is open (checked above), was left to this process by the parent for
        // this purpose, and CONNECTED guarantees we adopt it only once.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    for fd in &owned {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok(owned.try_into().unwrap_or_else(|_| unreachable!("length checked")))
}

/// Spawns `command`, guarded: killed and reaped if `spawn_child` fails after this.
fn spawn_guarded(command: &mut Command) -> Result<ChildGuard> {
    let program = command.get_program().to_string_lossy().into_owned();
    Ok(ChildGuard::new(command.spawn().map_err(|e| Error::about(e, format!("spawning {program:?}")))?))
}
