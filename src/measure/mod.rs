//! The benchmark harness: round-trip latency, one-way throughput and CPU cost of each
//! transport between a parent and a real child process, beside a raw baseline of the same
//! mechanism measured in the same run, in repeated interleaved trials.
//!
//! Round trips are recorded one by one in an HDR histogram (Gil Tene's HdrHistogram, via the
//! `hdrhistogram` crate) and reported as round trips, never halved into "one-way latency".
//! Throughput counts only messages whose length and sequence stamps checked out. CPU time is
//! `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` of the measuring thread in each process (see
//! `sys.rs` for why not `getrusage(2)`), so that a spinning transport shows
//! what its low latency costs.
//!
//! One trial is noise; [`measure_trials`] repeats each mechanism [`Settings::trials`] times,
//! interleaved (every mechanism once, then again), so that a slow minute of the host hits
//! every mechanism alike, and reports the median and the spread of each figure. A transport's
//! ratio to its raw baseline is taken trial by trial ([`paired_ratios`]) before the median.
//! Each run records where the two processes ran (`placement.rs`): one core or two is the
//! usual reason for trials that disagree.
//!
//! The binary that runs the harness is also the child: call [`serve_if_child`] first thing in
//! `main`.
//!
//! # Examples
//! Not run as a doctest: [`measure`] starts this program again as its child process.
//! ```no_run
//! use switchboard::measure::{self, Mechanism, Settings};
//! use switchboard::Kind;
//!
//! measure::serve_if_child(); // in the child, this serves and exits
//! let settings = Settings::quick();
//! let t = measure::measure(Mechanism::transport(Kind::Unix), 64, &settings)?;
//! println!("unix 64 B: p50 round trip {} ns", t.latency.p50_ns);
//! # Ok::<(), switchboard::Error>(())
//! ```

mod baseline;
mod external;
mod floors;
mod link;
mod load;
mod mechanism;
mod open_loop;
mod peer;
mod placement;
#[allow(unsafe_code)] // the raw shared-memory baseline maps memory itself
mod raw;
mod raw_ipc;
mod regression;
mod report;
mod results;
mod stats;
mod sys;
mod table;

use std::process::{Child, Command};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::process::ChildGuard;
use crate::transport::{DEFAULT_RING_CAPACITY, Options, Transport};
use external::Run;

pub use baseline::{Baseline, UdpLoss, udp_resends, udp_stream_loss};
pub use external::{ENV_MEASURE_LINK, Job, measure_link};
pub use floors::{Floors, timer_ns};
pub use link::Link;
pub use load::{LOAD_BUSY, LOAD_SLEEP, Load};
pub use mechanism::{Mechanism, Role, parse_count, parse_pin, parse_seconds, parse_size, parse_transport};
pub use open_loop::{OpenLoop, open_loop, parse_rate};
pub use peer::BenchPeer;
pub use placement::{Cores, Placement};
pub use regression::{Change, compare_runs};
pub use report::{Report, human_size};
pub use results::{Figure, Latency, Measurement, Spreads, Throughput, Trial, TrialPlacement};
pub use stats::{NOISY_SPREAD, Spread, paired_ratios};
pub use sys::{cpu_count, cpu_model, process_cpu};

/// What the child should do, in the environment: `latency|throughput;MECHANISM;SIZE;WARMUP;COUNT`.
///
/// [`measure`] sets it for the child it starts (for example `latency;shm-spin;64;200;2000`);
/// [`serve_if_child`] reads it.
///
/// # Examples
/// ```
/// use switchboard::measure::{self, ENV_MEASURE};
///
/// // Not a measurement child, so this returns at once instead of serving and exiting.
/// assert!(std::env::var_os(ENV_MEASURE).is_none());
/// measure::serve_if_child();
/// ```
pub const ENV_MEASURE: &str = "SWITCHBOARD_MEASURE";
/// The core the child pins itself to.
///
/// [`measure`] sets it from the second core of [`Settings::pin`].
///
/// # Examples
/// ```
/// use switchboard::measure::{ENV_MEASURE_PIN, Settings};
///
/// // With these settings the child is started with SWITCHBOARD_MEASURE_PIN=1.
/// let settings = Settings { pin: Some((0, 1)), ..Settings::quick() };
/// assert_eq!(ENV_MEASURE_PIN, "SWITCHBOARD_MEASURE_PIN");
/// assert_eq!(settings.pin.map(|(_, child)| child), Some(1));
/// ```
pub const ENV_MEASURE_PIN: &str = "SWITCHBOARD_MEASURE_PIN";

/// The fewest trials a comparison reports a spread for: the range of 5 trials is a 94%
/// confidence interval for the median (see [`Spread`]).
pub const MIN_TRIALS: usize = 5;

/// How much to measure.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use switchboard::measure::Settings;
///
/// // The quick settings, with parent and child pinned to cores 0 and 1 and a 10 ms budget
/// // for each latency run.
/// let settings = Settings { pin: Some((0, 1)), duration: Duration::from_millis(10), ..Settings::quick() };
/// assert_eq!(settings.iterations, 2000);
/// assert_eq!(settings.trials, 5);
/// assert_eq!(settings.ring_capacity, switchboard::DEFAULT_RING_CAPACITY);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Unmeasured round trips (and streamed messages) first.
    pub warmup: usize,
    /// Measured round trips at most.
    pub iterations: usize,
    /// Time budget of each latency measurement (it stops at `iterations` or here, whichever
    /// comes first, after at least 100 round trips).
    pub duration: Duration,
    /// Bytes streamed in each throughput measurement (between 64 and 50,000 messages).
    pub stream_bytes: usize,
    /// Cores for (parent, child), or `None` to let the scheduler place them.
    pub pin: Option<(usize, usize)>,
    /// Ring capacity for shm.
    pub ring_capacity: usize,
    /// Trials of each mechanism at each size in [`measure_trials`] (a report written before
    /// trials were repeated reads as 1).
    #[serde(default = "one")]
    pub trials: usize,
    /// Background load processes running meanwhile ([`Load`]; the caller starts them, this
    /// records it).
    #[serde(default)]
    pub load: usize,
}

fn one() -> usize {
    1
}

impl Default for Settings {
    /// Per trial 20,000 round trips or 0.1 s, 64 MiB streams; 5 trials, 4 MiB rings, not
    /// pinned: the default comparison (10 mechanisms, 6 sizes) takes 3-4 minutes on 2 vCPUs.
    fn default() -> Self {
        Settings {
            warmup: 1000,
            iterations: 20_000,
            duration: Duration::from_millis(100),
            stream_bytes: 64 << 20,
            pin: None,
            ring_capacity: DEFAULT_RING_CAPACITY,
            trials: MIN_TRIALS,
            load: 0,
        }
    }
}

impl Settings {
    /// A smoke-test setting: still 5 trials, each about a tenth of the default work (2,000
    /// round trips or 10 ms, 1 MiB streams).
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Settings;
    ///
    /// let (quick, full) = (Settings::quick(), Settings::default());
    /// assert_eq!(quick.iterations * 10, full.iterations);
    /// assert_eq!(quick.stream_bytes * 64, full.stream_bytes);
    /// assert_eq!(quick.trials, full.trials);
    /// ```
    pub fn quick() -> Self {
        Settings {
            warmup: 200,
            iterations: 2000,
            duration: Duration::from_millis(10),
            stream_bytes: 1 << 20,
            ..Settings::default()
        }
    }

    fn stream_count(&self, size: usize) -> usize {
        (self.stream_bytes / size.max(1)).clamp(64, 50_000)
    }
}

/// Measures `mechanisms` at `size` bytes, [`Settings::trials`] times each, interleaved: trial
/// 1 of every mechanism in order, then trial 2, and so on, each run with a fresh child
/// process. `progress` is called before each run with the mechanism and the trial number.
///
/// Pass each transport followed by its raw baseline
/// ([`Mechanism::with_baselines`]) so that the two runs of one trial are moments apart.
///
/// # Errors
/// The first error of any run, as [`measure`] returns it.
///
/// # Panics
/// If `size` is 0.
///
/// # Examples
/// Not run as a doctest: each run starts this program again as its child process.
/// ```no_run
/// use switchboard::Kind;
/// use switchboard::measure::{self, Mechanism, Report, Settings};
///
/// measure::serve_if_child();
/// let settings = Settings::quick();
/// let mechanisms = Mechanism::with_baselines(&[Mechanism::transport(Kind::Pipe)]);
/// let mut report = Report::new(settings.clone());
/// for m in measure::measure_trials(&mechanisms, 1024, &settings, |m, trial| eprintln!("{m} #{trial}"))? {
///     report.push(m);
/// }
/// print!("{}", report.table());
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn measure_trials(
    mechanisms: &[Mechanism],
    size: usize,
    settings: &Settings,
    mut progress: impl FnMut(Mechanism, usize),
) -> Result<Vec<Measurement>> {
    let trials = interleaved(mechanisms, settings.trials, |m, trial| {
        progress(m, trial);
        let mut t = measure(m, size, settings)?;
        t.trial = trial;
        Ok(t)
    })?;
    Ok(mechanisms.iter().zip(trials).map(|(&m, t)| Measurement::from_trials(m, size, t)).collect())
}

/// Runs `run(item, trial)` for trial 1 of every item in order, then trial 2, ... (at least
/// one trial); returns each item's results in trial order.
fn interleaved<M: Copy, T>(
    items: &[M],
    trials: usize,
    mut run: impl FnMut(M, usize) -> Result<T>,
) -> Result<Vec<Vec<T>>> {
    let mut out: Vec<Vec<T>> = items.iter().map(|_| Vec::new()).collect();
    for trial in 1..=trials.max(1) {
        for (i, &item) in items.iter().enumerate() {
            out[i].push(run(item, trial)?);
        }
    }
    Ok(out)
}

/// Measures one trial of `mechanism` at `size` bytes: a round-trip run and a stream run,
/// each with a fresh child process (this executable, which must call [`serve_if_child`]),
/// recording where the two processes ran. The trial is numbered 1.
///
/// # Errors
/// Whatever spawning or the exchange returns; [`Error::Protocol`] if a message arrived damaged
/// or out of order.
///
/// # Panics
/// If `size` is 0 (the harness stamps every message).
///
/// # Examples
/// Not run as a doctest: the measurement starts this program again as its child process,
/// which [`serve_if_child`] turns into the echoing peer.
/// ```no_run
/// use switchboard::Kind;
/// use switchboard::measure::{self, Mechanism, Settings};
///
/// measure::serve_if_child();
/// let settings = Settings::quick();
/// for mechanism in [Mechanism::transport(Kind::Pipe), Mechanism::Raw(Kind::Pipe)] {
///     let t = measure::measure(mechanism, 1024, &settings)?;
///     println!("{mechanism:<9} p50 {} ns, {:.0} MB/s", t.latency.p50_ns, t.throughput.mb_per_s);
/// }
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn measure(mechanism: Mechanism, size: usize, settings: &Settings) -> Result<Trial> {
    assert!(size > 0, "the harness needs messages of at least one byte");
    pinned(settings, || measure_pinned(mechanism, size, settings))
}

/// Runs `f` with this thread on the parent's core of [`Settings::pin`], if any.
fn pinned<T>(settings: &Settings, f: impl FnOnce() -> Result<T>) -> Result<T> {
    if let Some((parent, _)) = settings.pin {
        sys::pin(parent)?;
    }
    let result = f();
    if settings.pin.is_some() {
        sys::unpin()?;
    }
    result
}

fn measure_pinned(mechanism: Mechanism, size: usize, settings: &Settings) -> Result<Trial> {
    time_runs(size, settings, &mut |run, warmup, count| spawn(mechanism, run.name(), size, warmup, count, settings))
}

/// Starts the child of one run (`warmup` unmeasured and at most `count` measured messages)
/// and connects to it.
type SpawnRun<'a> = dyn FnMut(Run, usize, usize) -> Result<(Child, Box<dyn Link>)> + 'a;

/// The round-trip run and the stream run, each with a fresh child from `spawn`, and where
/// the two processes ran: the one timing code for switchboard's mechanisms and for
/// [`measure_link`]'s. The trial is numbered 1.
fn time_runs(size: usize, settings: &Settings, spawn: &mut SpawnRun<'_>) -> Result<Trial> {
    let (child, mut link) = spawn(Run::Latency, settings.warmup, settings.iterations)?;
    let sampler = placement::Sampler::start(child.id());
    let child = ChildGuard::with_deadline(child, MEASUREMENT_LIMIT + settings.duration);
    let ping =
        link::ping(link.as_mut(), size, settings.warmup, settings.iterations, settings.duration, sampler.progress());
    let latency_placement = sampler.finish();
    drop(link);
    reap(child)?;
    let ping = ping?;
    let h = &ping.histogram;
    if ping.child.count != h.len() {
        return Err(Error::Protocol(format!(
            "the child echoed {} round trips, the parent timed {}",
            ping.child.count,
            h.len()
        )));
    }
    let latency = Latency {
        round_trips: h.len(),
        min_ns: h.min(),
        p50_ns: h.value_at_quantile(0.5),
        p90_ns: h.value_at_quantile(0.9),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
        cpu_ns_per_round_trip: (ping.parent_cpu + ping.child.cpu).as_nanos() as f64 / h.len().max(1) as f64,
    };

    let (throughput, throughput_placement) = stream_run(Run::Throughput, size, settings, spawn)?;
    Ok(Trial {
        trial: 1,
        latency,
        throughput,
        placement: TrialPlacement { latency: latency_placement, throughput: throughput_placement },
    })
}

/// One stream run (`Run::Throughput`, or `Run::Batch`: the child sends with `send_batch`)
/// with a fresh child from `spawn`.
fn stream_run(run: Run, size: usize, settings: &Settings, spawn: &mut SpawnRun<'_>) -> Result<(Throughput, Placement)> {
    let count = settings.stream_count(size);
    let warmup = (settings.warmup / 10).clamp(1, count);
    let (child, mut link) = spawn(run, warmup, count)?;
    let sampler = placement::Sampler::start(child.id());
    let child = ChildGuard::with_deadline(child, MEASUREMENT_LIMIT);
    let stream = link::drain(link.as_mut(), size, warmup, count, sampler.progress());
    let throughput_placement = sampler.finish();
    drop(link);
    reap(child)?;
    let stream = stream?;
    if stream.child.count != stream.messages {
        return Err(Error::Protocol(format!(
            "the child sent {} messages, the parent counted {}",
            stream.child.count, stream.messages
        )));
    }
    let seconds = stream.elapsed.as_secs_f64().max(1e-9);
    let throughput = Throughput {
        messages: stream.messages,
        seconds,
        mb_per_s: (stream.messages as f64 * size as f64) / seconds / 1e6,
        msgs_per_s: stream.messages as f64 / seconds,
        cpu_ns_per_message: (stream.parent_cpu + stream.child.cpu).as_nanos() as f64 / stream.messages.max(1) as f64,
    };
    Ok((throughput, throughput_placement))
}

/// Messages per [`Transport::send_batch`] call in [`measure_batch`].
pub const BATCH_MESSAGES: usize = 64;

/// One-way throughput of `mechanism` at `size` bytes when the sender hands over
/// [`BATCH_MESSAGES`] messages per [`Transport::send_batch`] call, in a fresh child process
/// (which must call [`serve_if_child`]). A raw baseline sends one message per syscall
/// whatever the batch: the figure to compare a transport's batches with.
///
/// # Errors
/// As [`measure`].
///
/// # Panics
/// If `size` is 0.
///
/// # Examples
/// Not run as a doctest: the measurement starts this program again as its child process.
/// ```no_run
/// use switchboard::Kind;
/// use switchboard::measure::{self, Mechanism, Settings};
///
/// measure::serve_if_child();
/// let settings = Settings::quick();
/// let batched = measure::measure_batch(Mechanism::transport(Kind::Unix), 64, &settings)?;
/// let raw = measure::measure_batch(Mechanism::Raw(Kind::Unix), 64, &settings)?;
/// println!("unix 64 B batched: {:.1}x raw", batched.msgs_per_s / raw.msgs_per_s);
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn measure_batch(mechanism: Mechanism, size: usize, settings: &Settings) -> Result<Throughput> {
    assert!(size > 0, "the harness needs messages of at least one byte");
    pinned(settings, || {
        let mut spawn = |run: Run, warmup, count| spawn(mechanism, run.name(), size, warmup, count, settings);
        stream_run(Run::Batch, size, settings, &mut spawn).map(|(throughput, _)| throughput)
    })
}

/// Single-core memcpy bandwidth in MB/s for `size`-byte copies through a 4 MiB buffer: the
/// ceiling for a shared-memory ring.
///
/// It copies for `budget` (and at least 16 times), so the figure is steadier the longer the
/// budget.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use switchboard::measure::memcpy_mb_per_s;
///
/// let ceiling = memcpy_mb_per_s(64 * 1024, Duration::from_millis(5));
/// assert!(ceiling > 0.0);
/// println!("64 KiB copies: {ceiling:.0} MB/s");
/// ```
pub fn memcpy_mb_per_s(size: usize, budget: Duration) -> f64 {
    raw::memcpy_bandwidth(size, budget) / 1e6
}

fn spawn(
    mechanism: Mechanism,
    mode: &str,
    size: usize,
    warmup: usize,
    count: usize,
    settings: &Settings,
) -> Result<(Child, Box<dyn Link>)> {
    let mut command = Command::new(std::env::current_exe()?);
    command.env(ENV_MEASURE, format!("{mode};{mechanism};{size};{warmup};{count}"));
    if let Some((_, core)) = settings.pin {
        command.env(ENV_MEASURE_PIN, core.to_string());
    }
    let options = |wait| {
        Options::new()
            .wait_strategy(wait)
            .ring_capacity(settings.ring_capacity)
            .max_message_size(size.max(link::REPORT_LEN))
            .handshake_timeout(Duration::from_secs(30))
    };
    let (child, transport) = match mechanism {
        Mechanism::Raw(kind) => return raw::spawn(kind, size, &mut command),
        Mechanism::Baseline(b) => return baseline::spawn(b, mode, size, &mut command),
        Mechanism::Transport { kind, wait } => options(wait).spawn_child(kind, &mut command)?,
        #[cfg(feature = "zmq")]
        Mechanism::Zmq { tcp: false } => {
            options(Default::default()).spawn_child(crate::transport::Kind::Zmq, &mut command)?
        }
        #[cfg(feature = "zmq")]
        Mechanism::Zmq { tcp: true } => {
            options(Default::default()).spawn_child_zmq("tcp://127.0.0.1:*", &mut command)?
        }
    };
    Ok((child, Box::new(transport) as Box<dyn Link>))
}

/// A measurement that takes longer than this is declared hung.
const MEASUREMENT_LIMIT: Duration = Duration::from_secs(120);

/// Waits for a measurement child; a hung one (killed at its deadline) or one that failed is
/// an error.
fn reap(child: ChildGuard) -> Result<()> {
    let status = match child.wait() {
        Err(Error::Timeout) => return Err(Error::Protocol("the measurement child hung and was killed".into())),
        other => other?,
    };
    if !status.success() {
        return Err(Error::Protocol(format!("the measurement child failed: {status}")));
    }
    Ok(())
}

/// In a child started by [`measure`], runs its side of the measurement and exits the process;
/// anywhere else returns at once. Call it first thing in `main` of any binary that measures.
///
/// # Examples
/// Not run as a doctest: the program starts a copy of itself as the measurement child.
/// ```no_run
/// use switchboard::Kind;
/// use switchboard::measure::{self, Mechanism, Settings};
///
/// fn main() -> Result<(), switchboard::Error> {
///     // In the child this serves the measurement and exits; in the parent it returns at once.
///     measure::serve_if_child();
///     let m = measure::measure(Mechanism::transport(Kind::Unix), 64, &Settings::quick())?;
///     println!("unix 64 B: p99 round trip {} ns", m.latency.p99_ns);
///     Ok(())
/// }
/// ```
pub fn serve_if_child() {
    let Ok(spec) = std::env::var(ENV_MEASURE) else { return };
    let result = match spec.split_once(';') {
        Some((load::LOAD_MODE, parent)) => load::run(parent),
        _ => serve(&spec),
    };
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("switchboard measurement child: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn serve(spec: &str) -> Result<()> {
    let bad = || Error::Config(format!("{ENV_MEASURE}={spec:?} is malformed"));
    let parts: Vec<&str> = spec.split(';').collect();
    let [mode, mechanism, size, warmup, count] = parts[..] else {
        return Err(bad());
    };
    let mechanism: Mechanism = mechanism.parse()?;
    let size: usize = size.parse().map_err(|_| bad())?;
    let warmup: usize = warmup.parse().map_err(|_| bad())?;
    let count: usize = count.parse().map_err(|_| bad())?;
    if let Some(core) = std::env::var(ENV_MEASURE_PIN).ok().and_then(|c| c.parse().ok()) {
        sys::pin(core)?;
    }
    let mut link: Box<dyn Link> = match mechanism {
        Mechanism::Raw(kind) => raw::child_link(kind, size)?,
        Mechanism::Baseline(b) => baseline::child_link(b, mode, size)?,
        Mechanism::Transport { .. } => Box::new(crate::spawn::connect_to_parent()?),
        #[cfg(feature = "zmq")]
        Mechanism::Zmq { .. } => Box::new(crate::spawn::connect_to_parent()?),
    };
    match mode {
        // "open": the open loop's child (open_loop.rs), an echo like "latency"'s.
        "latency" | "open" => link::echo(link.as_mut(), size, warmup),
        "throughput" => link::stream(link.as_mut(), size, warmup, count),
        "batch" => link::stream_batched(link.as_mut(), size, warmup, count, BATCH_MESSAGES),
        "bench" => peer::serve(link.as_mut(), size),
        _ => Err(bad()),
    }
}

/// Round trips over a transport you built yourself, against a peer that echoes (run
/// [`echo_until_disconnected`] on the other end). Returns the median and 99th percentile.
///
/// # Errors
/// Whatever the transport returns.
///
/// # Examples
/// ```
/// use switchboard::measure::{echo_until_disconnected, round_trip_percentiles};
/// use switchboard::{Kind, Options, pair};
///
/// let (mut client, mut server) = pair(Kind::Shm, &Options::new())?;
/// let echo = std::thread::spawn(move || echo_until_disconnected(&mut *server));
/// let (p50, p99) = round_trip_percentiles(&mut *client, 64, 100)?;
/// assert!(p50 <= p99);
/// drop(client); // the echo thread sees Disconnected and returns Ok
/// echo.join().expect("the echo thread panicked")?;
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn round_trip_percentiles(t: &mut dyn Transport, size: usize, count: usize) -> Result<(Duration, Duration)> {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds");
    let msg = vec![0x42u8; size];
    let mut buf = Vec::with_capacity(size);
    for _ in 0..count {
        let t0 = std::time::Instant::now();
        t.send(&msg)?;
        t.recv(&mut buf)?;
        h.saturating_record(t0.elapsed().as_nanos().max(1) as u64);
    }
    Ok((Duration::from_nanos(h.value_at_quantile(0.5)), Duration::from_nanos(h.value_at_quantile(0.99))))
}

/// Echoes every message back until the peer disconnects.
///
/// # Errors
/// Any error other than [`Error::Disconnected`].
///
/// # Examples
/// ```
/// use switchboard::measure::echo_until_disconnected;
/// use switchboard::{Kind, Options, Transport, pair};
///
/// let (mut a, mut b) = pair(Kind::Pipe, &Options::new())?;
/// let echo = std::thread::spawn(move || echo_until_disconnected(&mut *b));
/// a.send(b"ping")?;
/// let mut buf = Vec::new();
/// a.recv(&mut buf)?;
/// assert_eq!(buf, b"ping");
/// drop(a); // a disconnect is the normal end: the echo returns Ok
/// echo.join().expect("the echo thread panicked")?;
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn echo_until_disconnected(t: &mut dyn Transport) -> Result<()> {
    let mut buf = Vec::new();
    loop {
        match t.recv(&mut buf) {
            Ok(_) => t.send(&buf)?,
            Err(Error::Disconnected) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_interleave_every_mechanism_before_the_next_trial() {
        let mut order = Vec::new();
        let results = interleaved(&["tcp", "raw-tcp", "pipe"], 2, |m, trial| {
            order.push(format!("{m}#{trial}"));
            Ok(trial * 10)
        })
        .unwrap();
        assert_eq!(order, ["tcp#1", "raw-tcp#1", "pipe#1", "tcp#2", "raw-tcp#2", "pipe#2"]);
        assert_eq!(results, [[10, 20], [10, 20], [10, 20]]);
    }

    #[test]
    fn the_first_error_stops_the_run() {
        let mut runs = 0;
        let result = interleaved(&[1, 2], 5, |m, trial| {
            runs += 1;
            if m == 2 && trial == 2 { Err(Error::Timeout) } else { Ok(()) }
        });
        assert!(matches!(result, Err(Error::Timeout)));
        assert_eq!(runs, 4);
    }
}
