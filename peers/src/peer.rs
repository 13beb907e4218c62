//! The peer libraries measured beside switchboard, and what their processes share: the child's
//! entry point, the environment that tells it which library and where its parent waits, and
//! the checks that keep either process from waiting on the other forever.
//!
//! Each library's exchange runs between two real processes through
//! [`switchboard::measure::measure_link`], so that it is timed by the very loops that time
//! switchboard's transports. The parent sets up its end (a one-shot server, a listening
//! socket, two publish-subscribe services), starts this program again with the library's name
//! and rendezvous in [`ENV_LIBRARY`] and [`ENV_ADDRESS`], and waits a bounded time for the child
//! to join. The child dies with its parent (`PR_SET_PDEATHSIG`, prctl(2)), and a spinning end
//! checks every 10 ms that the other process still lives (waitid(2) with `WNOWAIT`, which looks
//! at a child without reaping it, or getppid(2)).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::{Pid, getppid};
use switchboard::measure::{self, Job, Link, Settings, Trial as Measured};
use switchboard::{ChildGuard, Error, Result};

use crate::{iceoryx2, ipc_channel, local_socket};

/// Which library the child speaks: a [`Peer::name`].
pub(crate) const ENV_LIBRARY: &str = "SWITCHBOARD_PEERS_LIBRARY";
/// Where the child finds its parent: a one-shot server's name, a socket name or a service
/// name prefix, by library.
pub(crate) const ENV_ADDRESS: &str = "SWITCHBOARD_PEERS_ADDRESS";
/// The parent's pid, so that a child whose parent died before it could arm
/// `PR_SET_PDEATHSIG` notices at once.
const ENV_PARENT: &str = "SWITCHBOARD_PEERS_PARENT";

/// How long a child may take to start and join its parent.
pub(crate) const JOIN_LIMIT: Duration = Duration::from_secs(30);

/// A messaging library measured beside switchboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Servo's ipc-channel: `IpcBytesSender`/`IpcBytesReceiver`.
    IpcChannel,
    /// Eclipse iceoryx2: zero-copy publish-subscribe in shared memory, busy-spin polling.
    Iceoryx2,
    /// interprocess: a local socket stream, framed with a length prefix.
    Interprocess,
}

impl Peer {
    /// Every peer, in report order.
    pub(crate) const ALL: [Peer; 3] = [Peer::IpcChannel, Peer::Iceoryx2, Peer::Interprocess];

    /// The name in the table, on the command line and in the child's environment.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Peer::IpcChannel => "ipc-channel",
            Peer::Iceoryx2 => "iceoryx2",
            Peer::Interprocess => "interprocess",
        }
    }

    /// What the row measures: the API and the mode.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Peer::IpcChannel => ipc_channel::WHAT,
            Peer::Iceoryx2 => iceoryx2::WHAT,
            Peer::Interprocess => local_socket::WHAT,
        }
    }

    /// The peer named `s`, if any.
    pub(crate) fn from_name(s: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Measures this library at `size` bytes: round trips and a one-way stream, each between
    /// this process and a fresh child.
    ///
    /// # Errors
    /// Whatever setting up the library, starting the child or the exchange returns.
    pub(crate) fn measure(self, size: usize, settings: &Settings) -> Result<Measured> {
        // A library that panics where it could have returned an error (ipc-channel asserts on
        // some socket errors) costs its row, not the run. Unwinding drops the child's guard,
        // which kills the child.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.measure_unguarded(size, settings)))
            .unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                Err(failed(&format!("{} panicked", self.name()), why))
            })
    }

    fn measure_unguarded(self, size: usize, settings: &Settings) -> Result<Measured> {
        measure::measure_link(size, settings, |command| {
            command.env(ENV_LIBRARY, self.name()).env(ENV_PARENT, std::process::id().to_string());
            match self {
                Peer::IpcChannel => ipc_channel::connect(command),
                Peer::Iceoryx2 => iceoryx2::connect(command, size, settings),
                Peer::Interprocess => local_socket::connect(command),
            }
        })
    }
}

/// In a child started by [`Peer::measure`], joins the parent, serves the measurement and exits
/// the process; anywhere else returns at once. Call it first thing in `main`.
pub(crate) fn serve_if_child() {
    let Some(job) = Job::from_env() else { return };
    let code = match job.and_then(serve) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("switchboard-peers child: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn serve(job: Job) -> Result<()> {
    let parent = die_with_parent()?;
    let env = |name: &str| std::env::var(name).map_err(|_| Error::Config(format!("{name} is not set")));
    let library = env(ENV_LIBRARY)?;
    let address = env(ENV_ADDRESS)?;
    match Peer::from_name(&library) {
        Some(Peer::IpcChannel) => job.serve(ipc_channel::join(&address)?.as_mut()),
        Some(Peer::Interprocess) => job.serve(local_socket::join(&address)?.as_mut()),
        // iceoryx2 keeps its ports until the parent is done with them (see `iceoryx2::serve`).
        Some(Peer::Iceoryx2) => iceoryx2::serve(&job, &address, parent),
        None => Err(Error::Config(format!("{ENV_LIBRARY}={library:?} names no peer library"))),
    }
}

/// Arms `PR_SET_PDEATHSIG` so that this child is killed when its parent dies, and returns the
/// parent's pid.
///
/// # Errors
/// [`Error::Disconnected`] if the parent is already gone; [`Error::Io`] if prctl fails.
fn die_with_parent() -> Result<Pid> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
    let parent = std::env::var(ENV_PARENT).ok().and_then(|p| p.parse::<i32>().ok()).map(Pid::from_raw);
    // The parent may have died between our fork and the prctl: then we were reparented.
    if parent.is_some_and(|p| p != getppid()) {
        return Err(Error::Disconnected);
    }
    Ok(getppid())
}

/// The other process of an exchange, watched while waiting on it without a kernel object to
/// tell us it left (a spinning iceoryx2 subscriber, a half-done handshake).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Other {
    /// Our child: gone once it has exited, even before anyone reaps it.
    Child(Pid),
    /// Our parent: gone once we have been reparented.
    Parent(Pid),
}

impl Other {
    /// Whether the other process has exited.
    pub(crate) fn gone(self) -> bool {
        match self {
            Other::Child(pid) => {
                let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
                // An error (ECHILD) means someone reaped it already.
                !matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::StillAlive))
            }
            Other::Parent(pid) => getppid() != pid,
        }
    }
}

/// Busy-polls `poll` until it yields something, checking every 10 ms that `other` still lives.
///
/// # Errors
/// [`Error::Disconnected`] once `other` is gone; whatever `poll` returns.
pub(crate) fn spin_until<T>(other: Other, mut poll: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    const CHECK_EVERY: Duration = Duration::from_millis(10);
    let mut polls = 0u32;
    let mut checked = None::<Instant>;
    loop {
        if let Some(x) = poll()? {
            return Ok(x);
        }
        polls = polls.wrapping_add(1);
        // Reading the clock costs more than a poll: look at it every 1,024 empty polls.
        if polls.is_multiple_of(1024) {
            let now = Instant::now();
            match checked {
                None => checked = Some(now),
                Some(t) if now.duration_since(t) >= CHECK_EVERY => {
                    if other.gone() {
                        return Err(Error::Disconnected);
                    }
                    checked = Some(now);
                }
                Some(_) => {}
            }
        }
        std::hint::spin_loop();
    }
}

/// Polls `ready` every millisecond until it is true, for setting up: fails if `child` exits or
/// [`JOIN_LIMIT`] passes first. `what` names the wait in the error.
///
/// # Errors
/// [`Error::Handshake`] naming `what` if the child exited or the limit passed; whatever `ready`
/// returns.
pub(crate) fn wait_for_child(
    child: &mut ChildGuard,
    what: &str,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let started = Instant::now();
    loop {
        if ready()? {
            return Ok(());
        }
        if let Some(status) = child.get_mut().try_wait()? {
            return Err(Error::Handshake(format!("the child exited ({status}) before {what}")));
        }
        if started.elapsed() >= JOIN_LIMIT {
            return Err(Error::Handshake(format!("the child did not {what} within {} s", JOIN_LIMIT.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts `command` guarded: killed if setting up fails or takes longer than [`JOIN_LIMIT`].
/// Release it with [`ChildGuard::into_inner`] once joined, and the measurement guards it.
///
/// # Errors
/// [`Error::Io`] if the program cannot be started.
pub(crate) fn spawn_guarded(command: &mut Command) -> Result<ChildGuard> {
    Ok(ChildGuard::with_deadline(command.spawn()?, JOIN_LIMIT))
}

/// A unique name for this process's `n`th rendezvous: `switchboard-peers-PID-N`.
pub(crate) fn unique_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("switchboard-peers-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The child joined: release it from the setup guard, for the measurement's own.
pub(crate) fn joined(child: ChildGuard, link: Box<dyn Link>) -> (Child, Box<dyn Link>) {
    (child.into_inner(), link)
}

/// An error from a peer library, with what we were doing: `iceoryx2: loan a sample: ...`.
pub(crate) fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("{what}: {e}")))
}
