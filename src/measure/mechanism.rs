//! What can be measured: each switchboard transport (shm once per wait strategy) and the raw
//! mechanism under it, by the names the reports and command lines use; and the parsers the
//! examples share for their options.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::transport::{Kind, WaitStrategy};

/// A thing to measure: a switchboard transport (shm with a wait strategy) or the raw
/// mechanism under it.
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
/// assert!(spin.raw().is_raw() && spin.raw().kind() == Kind::Shm);
/// assert_eq!(Mechanism::transport(Kind::Shm).to_string(), "shm-adaptive");
///
/// let names: Vec<String> = Mechanism::all_transports().iter().map(|m| m.to_string()).collect();
/// assert_eq!(names[..8], ["tcp", "unix", "pipe", "shm-spin", "shm-block", "shm-adaptive", "seqpacket", "fifo"]);
/// // With the feature zmq, then "zmq-ipc" and "zmq-tcp".
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
            _ => Mechanism::Raw(self.kind()),
        }
    }

    /// The underlying kind.
    ///
    /// # Examples
    /// ```
    /// use switchboard::Kind;
    /// use switchboard::measure::Mechanism;
    ///
    /// assert_eq!("raw-unix".parse::<Mechanism>()?.kind(), Kind::Unix);
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn kind(self) -> Kind {
        match self {
            Mechanism::Transport { kind, .. } | Mechanism::Raw(kind) => kind,
            #[cfg(feature = "zmq")]
            Mechanism::Zmq { .. } => Kind::Zmq,
        }
    }

    /// Whether this is a raw baseline.
    ///
    /// # Examples
    /// ```
    /// use switchboard::Kind;
    /// use switchboard::measure::Mechanism;
    ///
    /// assert!(Mechanism::Raw(Kind::Pipe).is_raw());
    /// assert!(!Mechanism::transport(Kind::Pipe).is_raw());
    /// ```
    pub fn is_raw(self) -> bool {
        matches!(self, Mechanism::Raw(_))
    }
}

impl fmt::Display for Mechanism {
    /// `tcp`, `shm-spin`, `raw-pipe`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Mechanism::Transport { kind: Kind::Shm, wait } => format!("shm-{wait}"),
            Mechanism::Transport { kind, .. } => kind.to_string(),
            Mechanism::Raw(kind) => format!("raw-{kind}"),
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
/// `shm-spin`, `shm-block`, `shm-adaptive`, `seqpacket` or `fifo`; raw baselines are refused (they are measured
/// beside each transport). What the `compare` and `ping_pong` examples accept.
///
/// # Errors
/// [`Error::Config`] listing the names, or saying that raw baselines come by themselves.
///
/// # Examples
/// ```
/// use switchboard::measure::{Mechanism, parse_transport};
///
/// assert_eq!(parse_transport("shm")?, Mechanism::transport(switchboard::Kind::Shm));
/// assert!(parse_transport("raw-pipe").is_err() && parse_transport("udp").is_err());
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn parse_transport(s: &str) -> Result<Mechanism> {
    let Ok(m) = s.parse::<Mechanism>() else {
        let names: Vec<String> = Mechanism::all_transports().iter().map(ToString::to_string).collect();
        return Err(Error::Config(format!("expected one of {}, or shm (adaptive)", names.join(", "))));
    };
    if m.is_raw() {
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
