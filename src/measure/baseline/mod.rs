//! Baselines of mechanisms switchboard has no transport for, measured as rows of the
//! comparison in the same two processes and through the same loop (`link.rs`) as the
//! transports and their raw baselines.
//!
//! - `mq`: two POSIX message queues (`mq_overview(7)`), one per direction. Each queue is
//!   created under a unique name (pid and counter), unlinked at once, and handed to the child
//!   as its stdin or stdout: on Linux a queue descriptor is a file descriptor, so nothing is
//!   left in `/dev/mqueue` even if a process is killed. Messages are limited to
//!   `/proc/sys/fs/mqueue/msgsize_max` (8192 by default) and a queue holds
//!   `/proc/sys/fs/mqueue/msg_max` (10) of them.
//! - `udp`: two connected UDP sockets on 127.0.0.1 (`udp(7)`), up to 65,507 bytes a
//!   datagram. Loopback UDP drops a datagram when the receive buffer is full, silently: see
//!   `udp.rs` for the credit window that keeps the measured runs lossless, the resend on a
//!   lost round trip, and `udp_loss.rs` for the unpaced probe that reports the loss
//!   ([`udp_stream_loss`]).
//! - `eventfd-shm`: the raw shared-memory rings (`raw.rs`) with blocking wake-ups through two
//!   eventfds (`eventfd(2)`) instead of spinning: what a blocking shared-memory transport
//!   costs at best.
//!
//! Each is plain syscalls without framing, like a raw baseline, but has no switchboard
//! transport beside it, so its rows have no "x raw" ratio.
//!
//! Like `raw.rs`, these bypass the library on purpose, so `mq.rs` and `eventfd_shm.rs` hold
//! unsafe code of their own (each block with its `SAFETY` line); `udp.rs` has none.

#[allow(unsafe_code)] // copies in and out of the shared rings, descriptors from SCM_RIGHTS
mod eventfd_shm;
#[allow(unsafe_code)] // the timed queue calls nix lacks, and a queue descriptor's ownership
mod mq;
mod udp;
mod udp_loss;

use std::fmt;
use std::process::{Child, Command};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::measure::link::Link;

pub use udp::udp_resends;
pub use udp_loss::{UdpLoss, udp_stream_loss};

/// How long a baseline waits for its peer in one call before it declares it gone.
const PEER_LIMIT: Duration = Duration::from_secs(10);

/// A mechanism switchboard has no transport for, measured as a baseline
/// ([`Mechanism::Baseline`](super::Mechanism::Baseline)).
///
/// # Examples
/// ```
/// use switchboard::measure::{Baseline, Mechanism};
///
/// let udp: Mechanism = "udp".parse()?;
/// assert_eq!(udp, Mechanism::Baseline(Baseline::Udp));
/// assert_eq!(Baseline::EventfdShm.to_string(), "eventfd-shm");
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Baseline {
    /// Two POSIX message queues.
    Mq,
    /// Two connected UDP sockets on loopback.
    Udp,
    /// Shared-memory rings with eventfd wake-ups.
    EventfdShm,
}

impl Baseline {
    /// Every baseline, in report order.
    pub const ALL: [Baseline; 3] = [Baseline::Mq, Baseline::Udp, Baseline::EventfdShm];

    /// `mq`, `udp`, `eventfd-shm`.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Mq => "mq",
            Baseline::Udp => "udp",
            Baseline::EventfdShm => "eventfd-shm",
        }
    }

    /// The largest message it carries, or `None` for no limit of its own.
    ///
    /// # Platform-specific behavior
    /// For `mq`, `/proc/sys/fs/mqueue/msgsize_max` (8192 if it cannot be read): the most an
    /// unprivileged process may ask of a queue.
    pub fn max_message_size(self) -> Option<usize> {
        match self {
            Baseline::Mq => Some(mq::max_message_size()),
            Baseline::Udp => Some(udp::MAX_DATAGRAM),
            Baseline::EventfdShm => None,
        }
    }
}

impl fmt::Display for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The parent's and child's part in one measurement, from the mode the child is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Sends a ping and waits for its echo (the parent of a latency run).
    Pinger,
    /// Echoes each ping (the child of a latency run).
    Echoer,
    /// Anything else: streams, and the bench peer's commands.
    Other,
}

fn part(mode: &str, parent: bool) -> Part {
    match (mode, parent) {
        ("latency", true) => Part::Pinger,
        ("latency", false) => Part::Echoer,
        _ => Part::Other,
    }
}

fn check_size(baseline: Baseline, size: usize) -> Result<()> {
    match baseline.max_message_size() {
        Some(max) if size > max => Err(Error::Config(format!("{baseline} carries at most {max} bytes a message"))),
        _ => Ok(()),
    }
}

/// Spawns `command` as the child for `baseline` in `mode` and returns the parent's link.
pub(crate) fn spawn(
    baseline: Baseline,
    mode: &str,
    size: usize,
    command: &mut Command,
) -> Result<(Child, Box<dyn Link>)> {
    check_size(baseline, size)?;
    let part = part(mode, true);
    match baseline {
        Baseline::Mq => mq::spawn(size, command),
        Baseline::Udp => udp::spawn(size, part, command),
        Baseline::EventfdShm => eventfd_shm::spawn(size, command),
    }
}

/// The child's link for `baseline` in `mode`, from what [`spawn`] left it.
pub(crate) fn child_link(baseline: Baseline, mode: &str, size: usize) -> Result<Box<dyn Link>> {
    check_size(baseline, size)?;
    let part = part(mode, false);
    match baseline {
        Baseline::Mq => mq::child_link(size),
        Baseline::Udp => udp::child_link(size, part),
        Baseline::EventfdShm => eventfd_shm::child_link(size),
    }
}
