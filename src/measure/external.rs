//! Measuring another library's channel with the harness: [`measure_link`] in the parent and
//! [`Job`] in the child, around the same round-trip and stream loops (`link.rs`) that time
//! switchboard's own mechanisms, so that the figures compare like with like.
//!
//! The child is this executable started again, with [`ENV_MEASURE_LINK`] saying what to do
//! (and [`ENV_MEASURE_PIN`] where to run). How it reaches its parent is the caller's
//! business: `measure_link`'s `connect` closure adds what its library needs to the command (a
//! socket name, a service name), starts the child, and returns the parent's end of the link.

use std::fmt;
use std::process::{Child, Command};

use super::link::{self, Link};
use super::{ENV_MEASURE_PIN, Settings, Trial, sys};
use crate::error::{Error, Result};

/// What a child started by [`measure_link`] should do, in the environment:
/// `latency|throughput;SIZE;WARMUP;COUNT`. [`Job::from_env`] reads it.
///
/// # Examples
/// ```
/// use switchboard::measure::{ENV_MEASURE_LINK, Job};
///
/// // Not a measurement child here.
/// assert_eq!(ENV_MEASURE_LINK, "SWITCHBOARD_MEASURE_LINK");
/// assert!(Job::from_env().is_none());
/// ```
pub const ENV_MEASURE_LINK: &str = "SWITCHBOARD_MEASURE_LINK";

/// The two runs of a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// Round trips: the parent pings, the child echoes.
    Latency,
    /// A one-way stream: the child sends, the parent checks and counts.
    Throughput,
    /// The same stream, the child sending with `send_batch` (`measure_batch`; switchboard's
    /// mechanisms only).
    Batch,
}

impl Run {
    /// The name in the child's environment.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Run::Latency => "latency",
            Run::Throughput => "throughput",
            Run::Batch => "batch",
        }
    }
}

/// The child's half of one run started by [`measure_link`]: echo round trips, or send a
/// stream, over a [`Link`] the child builds to its parent.
///
/// # Examples
/// Not run as a doctest: it is the child side of a program that measures a library of its
/// own; `connect_to_my_parent` stands for that library's setup.
/// ```no_run
/// use switchboard::measure::{Job, Link};
///
/// # fn connect_to_my_parent() -> switchboard::Result<Box<dyn Link>> { unimplemented!() }
/// if let Some(job) = Job::from_env() {
///     let code = match job.and_then(|job| job.serve(connect_to_my_parent()?.as_mut())) {
///         Ok(()) => 0,
///         Err(e) => {
///             eprintln!("measurement child: {e}");
///             1
///         }
///     };
///     std::process::exit(code);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    run: Run,
    size: usize,
    warmup: usize,
    count: usize,
}

impl Job {
    /// The job of this process if [`measure_link`] started it, `None` otherwise. A child
    /// asked to run on a core ([`ENV_MEASURE_PIN`]) is pinned to it first.
    ///
    /// # Errors
    /// [`Error::Config`] if [`ENV_MEASURE_LINK`] is malformed; whatever pinning returns.
    pub fn from_env() -> Option<Result<Job>> {
        let spec = std::env::var(ENV_MEASURE_LINK).ok()?;
        Some(spec.parse::<Job>().and_then(|job| {
            if let Some(core) = std::env::var(ENV_MEASURE_PIN).ok().and_then(|c| c.parse().ok()) {
                sys::pin(core)?;
            }
            Ok(job)
        }))
    }

    /// The message size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs the child's side over `link`: echoes every ping until the parent's last, or
    /// sends the stream; then reports its CPU time and count to the parent.
    ///
    /// # Errors
    /// Whatever the link returns; [`Error::Protocol`] for a message of the wrong length.
    pub fn serve(&self, link: &mut dyn Link) -> Result<()> {
        match self.run {
            Run::Latency => link::echo(link, self.size, self.warmup),
            Run::Throughput | Run::Batch => link::stream(link, self.size, self.warmup, self.count),
        }
    }
}

impl fmt::Display for Job {
    /// `latency;64;200;2000`: what [`ENV_MEASURE_LINK`] holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};{};{};{}", self.run.name(), self.size, self.warmup, self.count)
    }
}

impl std::str::FromStr for Job {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Job> {
        let bad = || Error::Config(format!("{ENV_MEASURE_LINK}={spec:?} is malformed"));
        let parts: Vec<&str> = spec.split(';').collect();
        let [run, size, warmup, count] = parts[..] else { return Err(bad()) };
        let run = match run {
            "latency" => Run::Latency,
            "throughput" => Run::Throughput,
            _ => return Err(bad()),
        };
        let number = |s: &str| s.parse::<usize>().map_err(|_| bad());
        let (size, warmup, count) = (number(size)?, number(warmup)?, number(count)?);
        if size == 0 {
            return Err(bad());
        }
        Ok(Job { run, size, warmup, count })
    }
}

/// Measures another library's channel at `size` bytes exactly as [`measure`](super::measure())
/// measures a switchboard transport: a round-trip run and a stream run, each with a fresh
/// child process (this executable), timed by the same loops, each child killed at a deadline.
///
/// For each run, `connect` gets a command for this executable with [`ENV_MEASURE_LINK`] set;
/// it adds what its library needs, starts the child, and returns it with the parent's end of
/// the link. The child calls [`Job::from_env`] and [`Job::serve`] over its end. The caller
/// labels the [`Trial`] it gets (its number is 1).
///
/// # Errors
/// Whatever `connect` or the exchange returns; [`Error::Protocol`] if a message arrived damaged
/// or out of order, or the child failed or hung.
///
/// # Panics
/// If `size` is 0 (the harness stamps every message).
///
/// # Examples
/// Not run as a doctest: the measurement starts this program again as its child, and
/// `MyLink` stands for a library's channel.
/// ```no_run
/// use std::process::Command;
/// use switchboard::measure::{self, Link, Settings};
///
/// # struct MyLink;
/// # impl Link for MyLink {
/// #     fn send(&mut self, _: &[u8]) -> switchboard::Result<()> { Ok(()) }
/// #     fn recv(&mut self, _: &mut Vec<u8>, _: usize) -> switchboard::Result<()> { Ok(()) }
/// # }
/// # impl MyLink { fn accept(_: &mut std::process::Child) -> switchboard::Result<MyLink> { Ok(MyLink) } }
/// let settings = Settings::quick();
/// let m = measure::measure_link(64, &settings, |command: &mut Command| {
///     command.env("MY_CHANNEL_NAME", "my-channel-1");
///     let mut child = command.spawn()?;
///     let link = MyLink::accept(&mut child)?;
///     Ok((child, Box::new(link) as Box<dyn Link>))
/// })?;
/// println!("p50 round trip {} ns", m.latency.p50_ns);
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn measure_link<F>(size: usize, settings: &Settings, mut connect: F) -> Result<Trial>
where
    F: FnMut(&mut Command) -> Result<(Child, Box<dyn Link>)>,
{
    assert!(size > 0, "the harness needs messages of at least one byte");
    super::pinned(settings, || {
        super::time_runs(size, settings, &mut |run, warmup, count| {
            let job = Job { run, size, warmup, count };
            let mut command = Command::new(std::env::current_exe()?);
            command.env(ENV_MEASURE_LINK, job.to_string());
            if let Some((_, core)) = settings.pin {
                command.env(ENV_MEASURE_PIN, core.to_string());
            }
            connect(&mut command)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_through_their_spec() {
        for job in [
            Job { run: Run::Latency, size: 64, warmup: 200, count: 2000 },
            Job { run: Run::Throughput, size: 1 << 20, warmup: 1, count: 256 },
        ] {
            assert_eq!(job.to_string().parse::<Job>().unwrap(), job);
        }
        for bad in ["", "latency;64;1", "echo;64;1;2", "latency;0;1;2", "latency;x;1;2", "latency;64;1;2;3"] {
            assert!(matches!(bad.parse::<Job>(), Err(Error::Config(_))), "{bad:?}");
        }
    }
}
