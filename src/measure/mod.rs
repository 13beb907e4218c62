//! The benchmark harness: round-trip latency, one-way throughput and CPU cost of each
//! transport between a parent and a real child process, beside a raw baseline of the same
//! mechanism measured in the same run.
//!
//! Round trips are recorded one by one in an HDR histogram (Gil Tene's HdrHistogram, via the
//! `hdrhistogram` crate) and reported as round trips, never halved into "one-way latency".
//! Throughput counts only messages whose length and sequence stamps checked out. CPU time is
//! `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` of the measuring thread in each process (see
//! `sys.rs` for why not `getrusage(2)`), so that a spinning transport shows
//! what its low latency costs.
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
//! let m = measure::measure(Mechanism::transport(Kind::Unix), 64, &settings)?;
//! println!("unix 64 B: p50 round trip {} ns", m.latency.p50_ns);
//! # Ok::<(), switchboard::Error>(())
//! ```

mod link;
mod mechanism;
mod peer;
#[allow(unsafe_code)] // the raw shared-memory baseline maps memory itself
mod raw;
mod raw_ipc;
mod report;
mod sys;

use std::process::{Child, Command};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::process::ChildGuard;
use crate::transport::{DEFAULT_RING_CAPACITY, Options, Transport};
use link::Link;

pub use mechanism::{Mechanism, parse_count, parse_size, parse_transport};
pub use peer::BenchPeer;
pub use report::{Report, human_size};
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
/// assert_eq!(settings.ring_capacity, switchboard::DEFAULT_RING_CAPACITY);
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Unmeasured round trips (and streamed messages) first.
    pub warmup: usize,
    /// Measured round trips at most.
    pub iterations: usize,
    /// Time budget of each latency measurement (it stops at `iterations` or here, whichever
    /// comes first, after at least 100 round trips).
    pub duration: Duration,
    /// Bytes streamed in each throughput measurement (between 200 and 200,000 messages).
    pub stream_bytes: usize,
    /// Cores for (parent, child), or `None` to let the scheduler place them.
    pub pin: Option<(usize, usize)>,
    /// Ring capacity for shm.
    pub ring_capacity: usize,
}

impl Default for Settings {
    /// 20,000 round trips or 0.3 s, 256 MiB streams, 4 MiB rings, not pinned.
    fn default() -> Self {
        Settings {
            warmup: 1000,
            iterations: 20_000,
            duration: Duration::from_millis(300),
            stream_bytes: 256 << 20,
            pin: None,
            ring_capacity: DEFAULT_RING_CAPACITY,
        }
    }
}

impl Settings {
    /// A smoke-test setting: about a tenth of the default work (2,000 round trips or 40 ms,
    /// 16 MiB streams).
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::Settings;
    ///
    /// let (quick, full) = (Settings::quick(), Settings::default());
    /// assert_eq!(quick.iterations * 10, full.iterations);
    /// assert_eq!(quick.stream_bytes * 16, full.stream_bytes);
    /// ```
    pub fn quick() -> Self {
        Settings {
            warmup: 200,
            iterations: 2000,
            duration: Duration::from_millis(40),
            stream_bytes: 16 << 20,
            ..Settings::default()
        }
    }

    fn stream_count(&self, size: usize) -> usize {
        (self.stream_bytes / size.max(1)).clamp(200, 200_000)
    }
}

/// Round-trip latency of one mechanism at one size.
///
/// Every figure is a whole round trip (parent to child and back), never halved into a
/// one-way latency.
///
/// # Examples
/// [`measure`] fills it in; here it is written by hand.
/// ```
/// use switchboard::measure::Latency;
///
/// let latency = Latency {
///     round_trips: 2000,
///     min_ns: 610,
///     p50_ns: 700,
///     p90_ns: 820,
///     p99_ns: 14_900,
///     p999_ns: 40_000,
///     max_ns: 90_000,
///     cpu_ns_per_round_trip: 2_100.0,
/// };
/// let tail = latency.p99_ns as f64 / latency.p50_ns as f64;
/// println!("median {:.2} µs, p99 {tail:.0}x the median", latency.p50_ns as f64 / 1e3);
/// // 2.1 µs of CPU per 0.7 µs round trip: both processes were busy all the time (spinning).
/// assert!(latency.cpu_ns_per_round_trip > 2.0 * latency.p50_ns as f64);
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Measured round trips.
    pub round_trips: u64,
    /// Fastest round trip, ns.
    pub min_ns: u64,
    /// Median round trip, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Slowest round trip, ns.
    pub max_ns: u64,
    /// CPU time of both processes per round trip, ns.
    pub cpu_ns_per_round_trip: f64,
}

/// One-way throughput of one mechanism at one size.
///
/// # Examples
/// [`measure`] fills it in; here it is written by hand, for 64-byte messages.
/// ```
/// use switchboard::measure::Throughput;
///
/// let throughput = Throughput {
///     messages: 200_000,
///     seconds: 0.5,
///     mb_per_s: 25.6,
///     msgs_per_s: 400_000.0,
///     cpu_ns_per_message: 2_300.0,
/// };
/// assert_eq!(throughput.msgs_per_s, throughput.messages as f64 / throughput.seconds);
/// assert_eq!(throughput.mb_per_s, throughput.msgs_per_s * 64.0 / 1e6);
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Messages received and checked.
    pub messages: u64,
    /// Seconds the measured part took.
    pub seconds: f64,
    /// Payload megabytes (10^6) per second.
    pub mb_per_s: f64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// CPU time of both processes per message, ns.
    pub cpu_ns_per_message: f64,
}

/// Everything measured for one mechanism at one size.
///
/// # Examples
/// [`measure`] returns one; here it is written by hand and given to a [`Report`].
/// ```
/// use switchboard::measure::{Latency, Measurement, Report, Settings, Throughput};
///
/// let latency = Latency {
///     round_trips: 2000,
///     min_ns: 610,
///     p50_ns: 700,
///     p90_ns: 820,
///     p99_ns: 14_900,
///     p999_ns: 40_000,
///     max_ns: 90_000,
///     cpu_ns_per_round_trip: 2_100.0,
/// };
/// let throughput = Throughput {
///     messages: 200_000,
///     seconds: 0.5,
///     mb_per_s: 25.6,
///     msgs_per_s: 400_000.0,
///     cpu_ns_per_message: 2_300.0,
/// };
/// let m = Measurement { mechanism: "pipe".into(), kind: "pipe".into(), raw: false, size: 64, latency, throughput };
/// let mut report = Report::new(Settings::quick());
/// report.measurements.push(m);
/// assert_eq!(report.to_csv().lines().count(), 2); // the header and one row
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// `tcp`, `shm-spin`, `raw-pipe`, ...
    pub mechanism: String,
    /// The transport kind underneath.
    pub kind: String,
    /// Whether this is a raw baseline.
    pub raw: bool,
    /// Message size in bytes.
    pub size: usize,
    /// Round trips.
    pub latency: Latency,
    /// One-way stream.
    pub throughput: Throughput,
}

/// Measures `mechanism` at `size` bytes: a round-trip run and a stream run, each with a fresh
/// child process (this executable, which must call [`serve_if_child`]).
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
///     let m = measure::measure(mechanism, 1024, &settings)?;
///     println!("{:<9} p50 {} ns, {:.0} MB/s", m.mechanism, m.latency.p50_ns, m.throughput.mb_per_s);
/// }
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn measure(mechanism: Mechanism, size: usize, settings: &Settings) -> Result<Measurement> {
    assert!(size > 0, "the harness needs messages of at least one byte");
    if let Some((parent, _)) = settings.pin {
        sys::pin(parent)?;
    }
    let result = measure_pinned(mechanism, size, settings);
    if settings.pin.is_some() {
        sys::unpin()?;
    }
    result
}

fn measure_pinned(mechanism: Mechanism, size: usize, settings: &Settings) -> Result<Measurement> {
    let (child, mut link) = spawn(mechanism, "latency", size, settings.warmup, settings.iterations, settings)?;
    let child = ChildGuard::with_deadline(child, MEASUREMENT_LIMIT + settings.duration);
    let ping = link::ping(link.as_mut(), size, settings.warmup, settings.iterations, settings.duration);
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

    let count = settings.stream_count(size);
    let warmup = (settings.warmup / 10).clamp(1, count);
    let (child, mut link) = spawn(mechanism, "throughput", size, warmup, count, settings)?;
    let child = ChildGuard::with_deadline(child, MEASUREMENT_LIMIT);
    let stream = link::drain(link.as_mut(), size, warmup, count);
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
    Ok(Measurement {
        mechanism: mechanism.to_string(),
        kind: mechanism.kind().to_string(),
        raw: mechanism.is_raw(),
        size,
        latency,
        throughput,
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
    let code = match serve(&spec) {
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
        Mechanism::Transport { .. } => Box::new(crate::spawn::connect_to_parent()?),
        #[cfg(feature = "zmq")]
        Mechanism::Zmq { .. } => Box::new(crate::spawn::connect_to_parent()?),
    };
    match mode {
        "latency" => link::echo(link.as_mut(), size, warmup),
        "throughput" => link::stream(link.as_mut(), size, warmup, count),
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
