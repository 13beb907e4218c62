//! What can be measured: each switchboard transport (shm once per wait strategy), the raw
//! mechanism under it, and baselines of mechanisms switchboard has no transport for (POSIX
//! message queues, UDP, eventfd-signalled shared memory: see `baseline/`), by the names the
//! reports and command lines use; and the parsers the examples share for their options.

use std::fmt;
use std::str::FromStr;

use super::baseline::Baseline;
use crate::error::{Error, Result};
use crate::transport::{Kind, WaitStrategy};

/// A thing to measure: a switchboard transport (shm with a wait strategy), the raw
/// mechanism under it, or a baseline of another mechanism.
///
/// Its name (`Display` and `FromStr`) is the one the reports and the `compare` example's
/// `--transports` option use.
///
/// # Examples
/// ```
/// use switchboard::measure::Mechanism;
/// use switchboard::{Kind, WaitStrategy};
///
/// let spin: Mechanism = "shm-spin".parse()?;
/// assert_eq!(spin, Mechanism::Transport { kind: Kind::Shm, wait: WaitStrategy::Spin });
/// assert_eq!(spin.raw().to_string(), "raw-shm");
/// assert!(spin.raw().is_raw() && spin.raw().kind() == Some(Kind::Shm));
/// assert_eq!(Mechanism::transport(Kind::Shm).to_string(), "shm-adaptive");
///
/// let names: Vec<String> = Mechanism::all_transports().iter().map(|m| m.to_string()).collect();
/// assert_eq!(names[..8], ["tcp", "unix", "pipe", "shm-spin", "shm-block", "shm-adaptive", "seqpacket", "fifo"]);
/// // With the feature zmq, then "zmq-ipc" and "zmq-tcp".
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// A switchboard transport.
    Transport {
        /// Which transport.
        kind: Kind,
        /// The wait strategy (shm only; ignored otherwise).
        wait: WaitStrategy,
    },
    /// The same exchange over plain syscalls: pipes, a socketpair, TCP with `TCP_NODELAY`,
    /// shared memory spinning on an atomic, seqpacket records, or two fifos.
    Raw(Kind),
    /// A mechanism switchboard has no transport for, driven with plain syscalls like
    /// [`Raw`](Mechanism::Raw): `mq`, `udp`, `eventfd-shm`. It has no raw pair (its
    /// [`raw`](Mechanism::raw) is itself) and no "x raw" ratio.
    Baseline(Baseline),
    /// A ZeroMQ PAIR endpoint (feature `zmq`) over `ipc://` (an abstract Unix socket) or
    /// `tcp://127.0.0.1`: `zmq-ipc`, `zmq-tcp`. ZeroMQ has no raw baseline of its own; its
    /// [`raw`](Mechanism::raw) is the socket under it, raw-unix or raw-tcp.
    #[cfg(feature = "zmq")]
    Zmq {
        /// Over `tcp://` rather than `ipc://`.
        tcp: bool,
    },
}

impl Mechanism {
    /// A transport with the default wait strategy.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Mechanism;
    /// use switchboard::{Kind, WaitStrategy};
    ///
    /// let shm = Mechanism::transport(Kind::Shm);
    /// assert_eq!(shm, Mechanism::Transport { kind: Kind::Shm, wait: WaitStrategy::Adaptive });
    /// ```
    pub fn transport(kind: Kind) -> Self {
        #[cfg(feature = "zmq")]
        if kind == Kind::Zmq {
            return Mechanism::Zmq { tcp: false };
        }
        Mechanism::Transport { kind, wait: WaitStrategy::default() }
    }

    /// Every transport (shm in each wait strategy), in report order.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Mechanism;
    ///
    /// // Each transport and, once per kind, its raw baseline: what the `compare` example measures.
    /// let mut mechanisms = Vec::new();
    /// for m in Mechanism::all_transports() {
    ///     mechanisms.push(m);
    ///     if !mechanisms.contains(&m.raw()) {
    ///         mechanisms.push(m.raw());
    ///     }
    /// }
    /// // 8 transports and 6 raw baselines; with the feature zmq, zmq-ipc and zmq-tcp too, whose
    /// // baselines (raw-unix, raw-tcp) are there already.
    /// assert_eq!(mechanisms.len(), if cfg!(feature = "zmq") { 16 } else { 14 });
    /// ```
    pub fn all_transports() -> Vec<Mechanism> {
        let mut out = Vec::new();
        for kind in Kind::ALL {
            if kind == Kind::Shm {
                out.extend(WaitStrategy::ALL.map(|wait| Mechanism::Transport { kind, wait }));
            } else {
                out.push(Mechanism::transport(kind));
            }
        }
        #[cfg(feature = "zmq")]
        out.extend([Mechanism::Zmq { tcp: false }, Mechanism::Zmq { tcp: true }]);
        out
    }

    /// `transports`, each followed by its kind's raw baseline the first time that kind
    /// appears: the list a comparison measures, in report order.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Mechanism;
    ///
    /// let list = Mechanism::with_baselines(&["unix".parse()?, "shm-spin".parse()?, "shm-block".parse()?]);
    /// let names: Vec<String> = list.iter().map(|m| m.to_string()).collect();
    /// assert_eq!(names, ["unix", "raw-unix", "shm-spin", "raw-shm", "shm-block"]);
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn with_baselines(transports: &[Mechanism]) -> Vec<Mechanism> {
        let mut out = Vec::new();
        for &t in transports {
            out.push(t);
            if !out.contains(&t.raw()) {
                out.push(t.raw());
            }
        }
        out
    }

    /// The raw baseline of this mechanism's kind.
    ///
    /// # Examples
    /// ```
    /// use switchboard::Kind;
    /// use switchboard::measure::Mechanism;
    ///
    /// assert_eq!("shm-block".parse::<Mechanism>()?.raw(), Mechanism::Raw(Kind::Shm));
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn raw(self) -> Mechanism {
        match self {
            #[cfg(feature = "zmq")]
            Mechanism::Zmq { tcp } => Mechanism::Raw(if tcp { Kind::Tcp } else { Kind::Unix }),
            Mechanism::Transport { kind, .. } => Mechanism::Raw(kind),
            Mechanism::Raw(_) | Mechanism::Baseline(_) => self,
        }
    }

    /// The switchboard transport kind underneath, or `None` for a baseline of another
    /// mechanism (it has none).
    ///
    /// # Examples
    /// ```
    /// use switchboard::Kind;
    /// use switchboard::measure::Mechanism;
    ///
    /// assert_eq!("raw-unix".parse::<Mechanism>()?.kind(), Some(Kind::Unix));
    /// assert_eq!("udp".parse::<Mechanism>()?.kind(), None);
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn kind(self) -> Option<Kind> {
        match self {
            Mechanism::Transport { kind, .. } | Mechanism::Raw(kind) => Some(kind),
            Mechanism::Baseline(_) => None,
            #[cfg(feature = "zmq")]
            Mechanism::Zmq { .. } => Some(Kind::Zmq),
        }
    }

    /// What the reports put in their `kind` column: the transport kind, or for a baseline of
    /// another mechanism its own name.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Mechanism;
    ///
    /// assert_eq!("shm-spin".parse::<Mechanism>()?.kind_name(), "shm");
    /// assert_eq!("eventfd-shm".parse::<Mechanism>()?.kind_name(), "eventfd-shm");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn kind_name(self) -> String {
        self.kind().map_or_else(|| self.to_string(), |k| k.to_string())
    }

    /// Whether this is a raw baseline: the raw mechanism under a transport, or a baseline of
    /// another mechanism (both are plain syscalls without framing).
    ///
    /// # Examples
    /// ```
    /// use switchboard::Kind;
    /// use switchboard::measure::Mechanism;
    ///
    /// assert!(Mechanism::Raw(Kind::Pipe).is_raw());
    /// assert!("mq".parse::<Mechanism>()?.is_raw());
    /// assert!(!Mechanism::transport(Kind::Pipe).is_raw());
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn is_raw(self) -> bool {
        matches!(self, Mechanism::Raw(_) | Mechanism::Baseline(_))
    }

    /// Which kind of row this is in a comparison: a switchboard transport, the raw
    /// mechanism under one, or a baseline of another mechanism.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::{Mechanism, Role};
    ///
    /// assert_eq!("unix".parse::<Mechanism>()?.role(), Role::Transport);
    /// assert_eq!("raw-unix".parse::<Mechanism>()?.role(), Role::Raw);
    /// assert_eq!("mq".parse::<Mechanism>()?.role().to_string(), "baseline");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn role(self) -> Role {
        match self {
            Mechanism::Raw(_) => Role::Raw,
            Mechanism::Baseline(_) => Role::Baseline,
            _ => Role::Transport,
        }
    }

    /// The largest message this mechanism can carry in a comparison, or `None` for no limit
    /// below the harness's own (POSIX queues stop at `/proc/sys/fs/mqueue/msgsize_max`, UDP
    /// datagrams at 65,507 bytes). A comparison skips the sizes above it and says so.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Mechanism;
    ///
    /// assert_eq!("udp".parse::<Mechanism>()?.max_message_size(), Some(65_507));
    /// assert_eq!("pipe".parse::<Mechanism>()?.max_message_size(), None);
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn max_message_size(self) -> Option<usize> {
        match self {
            Mechanism::Baseline(b) => b.max_message_size(),
            _ => None,
        }
    }

    /// The baselines of other mechanisms, in report order: `mq`, `udp`, `eventfd-shm`.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Mechanism;
    ///
    /// let names: Vec<String> = Mechanism::all_baselines().iter().map(|m| m.to_string()).collect();
    /// assert_eq!(names, ["mq", "udp", "eventfd-shm"]);
    /// ```
    pub fn all_baselines() -> Vec<Mechanism> {
        Baseline::ALL.map(Mechanism::Baseline).to_vec()
    }
}

/// Which kind of row a [`Mechanism`] is in a comparison.
///
/// # Examples
/// ```
/// use switchboard::measure::{Mechanism, Role};
///
/// let rows: Vec<Role> = ["tcp", "raw-tcp", "udp"].iter().map(|n| n.parse::<Mechanism>().map(|m| m.role())).collect::<Result<_, _>>()?;
/// assert_eq!(rows, [Role::Transport, Role::Raw, Role::Baseline]);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// A switchboard transport.
    Transport,
    /// The raw mechanism under a transport: the same syscalls without framing.
    Raw,
    /// A mechanism switchboard has no transport for, as plain syscalls.
    Baseline,
}

impl Role {
    /// `transport`, `raw`, `baseline`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Transport => "transport",
            Role::Raw => "raw",
            Role::Baseline => "baseline",
        }
    }

    /// One line per role present in `mechanisms`, naming its rows and what the role means:
    /// the legend a comparison table prints so that each row says which kind it is.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::{Mechanism, Role};
    ///
    /// let legend = Role::legend(&["unix".parse()?, "raw-unix".parse()?, "mq".parse()?]);
    /// assert_eq!(legend.len(), 3);
    /// assert!(legend[2].starts_with("baseline") && legend[2].contains("mq"));
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn legend(mechanisms: &[Mechanism]) -> Vec<String> {
        let mut out = Vec::new();
        for role in [Role::Transport, Role::Raw, Role::Baseline] {
            let names: Vec<String> = mechanisms.iter().filter(|m| m.role() == role).map(ToString::to_string).collect();
            if names.is_empty() {
                continue;
            }
            let meaning = match role {
                Role::Transport => "switchboard transports",
                Role::Raw => "the raw mechanism under a transport: same syscalls, no framing (x raw divides by it)",
                Role::Baseline => "other mechanisms as plain syscalls, no switchboard transport (no x raw)",
            };
            out.push(format!("{:<9} {}: {meaning}", role.name(), names.join(", ")));
        }
        out
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl fmt::Display for Mechanism {
    /// `tcp`, `shm-spin`, `raw-pipe`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Mechanism::Transport { kind: Kind::Shm, wait } => format!("shm-{wait}"),
            Mechanism::Transport { kind, .. } => kind.to_string(),
            Mechanism::Raw(kind) => format!("raw-{kind}"),
            Mechanism::Baseline(b) => b.name().to_owned(),
            #[cfg(feature = "zmq")]
            Mechanism::Zmq { tcp } => format!("zmq-{}", if *tcp { "tcp" } else { "ipc" }),
        };
        f.pad(&s)
    }
}

impl FromStr for Mechanism {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(kind) = s.strip_prefix("raw-") {
            return Ok(Mechanism::Raw(kind.parse()?));
        }
        if let Some(b) = Baseline::ALL.into_iter().find(|b| b.name() == s) {
            return Ok(Mechanism::Baseline(b));
        }
        if let Some(wait) = s.strip_prefix("shm-") {
            return Ok(Mechanism::Transport { kind: Kind::Shm, wait: wait.parse()? });
        }
        #[cfg(feature = "zmq")]
        match s {
            "zmq-ipc" => return Ok(Mechanism::Zmq { tcp: false }),
            "zmq-tcp" => return Ok(Mechanism::Zmq { tcp: true }),
            _ => {}
        }
        Ok(Mechanism::transport(s.parse()?))
    }
}

/// Parses a switchboard transport to measure: `tcp`, `unix`, `pipe`, `shm` (adaptive),
/// `shm-spin`, `shm-block`, `shm-adaptive`, `seqpacket` or `fifo`, or a baseline of another
/// mechanism: `mq`, `udp`, `eventfd-shm`; raw baselines (`raw-pipe`) are refused (they are
/// measured beside each transport). What the `compare` and `ping_pong` examples accept.
///
/// # Errors
/// [`Error::Config`] listing the names, or saying that raw baselines come by themselves.
///
/// # Examples
/// ```
/// use switchboard::measure::{Mechanism, parse_transport};
///
/// assert_eq!(parse_transport("shm")?, Mechanism::transport(switchboard::Kind::Shm));
/// assert_eq!(parse_transport("udp")?.to_string(), "udp");
/// assert!(parse_transport("raw-pipe").is_err() && parse_transport("sctp").is_err());
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn parse_transport(s: &str) -> Result<Mechanism> {
    let Ok(m) = s.parse::<Mechanism>() else {
        let all = [Mechanism::all_transports(), Mechanism::all_baselines()].concat();
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        return Err(Error::Config(format!("expected one of {}, or shm (adaptive)", names.join(", "))));
    };
    if m.role() == Role::Raw {
        return Err(Error::Config("raw baselines are measured beside each transport; name the transport".into()));
    }
    Ok(m)
}

/// Parses a message size in bytes, with an optional `K` or `M` suffix (KiB, MiB): `64`,
/// `16K`, `1M`. What the `compare` and `ping_pong` examples accept.
///
/// # Errors
/// [`Error::Config`] for anything else, zero, or a size that overflows.
///
/// # Examples
/// ```
/// use switchboard::measure::parse_size;
///
/// assert_eq!(parse_size("64")?, 64);
/// assert_eq!(parse_size("16K")?, 16 << 10);
/// assert_eq!(parse_size("1m")?, 1 << 20);
/// assert!(parse_size("0").is_err() && parse_size("1G").is_err());
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn parse_size(s: &str) -> Result<usize> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    let n: usize = digits.parse().map_err(|_| Error::Config(format!("{s:?} is not a size like 64, 16K or 1M")))?;
    match n.checked_mul(mult) {
        Some(0) => Err(Error::Config("a message has at least 1 byte".into())),
        Some(size) => Ok(size),
        None => Err(Error::Config(format!("{s} bytes is more than this machine can address"))),
    }
}

/// Parses a number of round trips or iterations: at least 1 (a run of none has no
/// percentiles) and at most a billion (minutes even at 0.1 µs a round trip).
///
/// # Errors
/// [`Error::Config`] outside that range or for anything but a whole number.
///
/// # Examples
/// ```
/// use switchboard::measure::parse_count;
///
/// assert_eq!(parse_count("2000")?, 2000);
/// assert!(parse_count("0").is_err());
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn parse_count(s: &str) -> Result<usize> {
    const MAX_COUNT: usize = 1_000_000_000;
    match s.trim().parse::<usize>() {
        Ok(0) => Err(Error::Config("must be at least 1".into())),
        Ok(n) if n > MAX_COUNT => Err(Error::Config(format!("must be at most {MAX_COUNT}"))),
        Ok(n) => Ok(n),
        Err(_) => Err(Error::Config(format!("{s:?} is not a whole number"))),
    }
}

/// Parses a time budget in seconds for a command-line flag (`--duration 0.1`): above 0 and
/// below an hour.
///
/// # Errors
/// [`Error::Config`] naming what is wrong with `s`.
pub fn parse_seconds(s: &str) -> Result<std::time::Duration> {
    let seconds: f64 = s.trim().parse().map_err(|_| Error::Config(format!("{s:?} is not a number of seconds")))?;
    // Written so that NaN fails too.
    if !(seconds > 0.0 && seconds < 3600.0) {
        return Err(Error::Config("must be above 0 and below 3600 seconds".into()));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// Parses two cores of this machine for a command-line flag (`--pin 0,1`).
///
/// # Errors
/// [`Error::Config`] naming what is wrong with `s`.
pub fn parse_pin(s: &str) -> Result<(usize, usize)> {
    let cpus = super::sys::cpu_count();
    let (a, b) = s.split_once(',').ok_or_else(|| Error::Config("--pin takes two cores, e.g. 0,1".into()))?;
    let parse = |c: &str| c.trim().parse::<usize>().map_err(|_| Error::Config(format!("{c:?} is not a core number")));
    let (a, b) = (parse(a)?, parse(b)?);
    if a >= cpus || b >= cpus {
        return Err(Error::Config(format!("this machine has cores 0..{}", cpus - 1)));
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_pins_parse_or_say_why_not() {
        assert_eq!(parse_seconds(" 0.25 ").unwrap(), std::time::Duration::from_millis(250));
        for bad in ["0", "-1", "nan", "3600", "soon"] {
            assert!(matches!(parse_seconds(bad), Err(Error::Config(_))), "{bad:?} was accepted");
        }
        assert_eq!(parse_pin("0, 0").unwrap(), (0, 0));
        for bad in ["0", "a,0", "0,b", "0,100000"] {
            assert!(matches!(parse_pin(bad), Err(Error::Config(_))), "{bad:?} was accepted");
        }
    }
}
