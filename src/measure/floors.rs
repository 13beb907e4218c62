//! The physical floors, measured in the same run as the comparison: what no transport on
//! this machine can beat, and each measured round trip's distance from its floor.
//!
//! - **Cache-line round trip**: two threads on two CPUs (pinned with `sched_setaffinity(2)`
//!   to the first two CPUs this process may use) ping-pong one atomic in one cache line. The
//!   median of batches of 100 round trips: the floor of a spinning shared-memory round trip.
//! - **Cross-core wake-up**: the same two threads ping-pong through two eventfds
//!   (`eventfd(2)`), each sleeping in a blocking `read(2)`. Half the median round trip is one
//!   wake-up; a blocking round trip pays two. Measured again with both threads on one CPU
//!   (**same-core wake-up**), because an unpinned comparison may place its two processes
//!   there, where a wake-up is a context switch without an inter-processor interrupt and
//!   often cheaper.
//! - **Syscall**: `getppid(2)` (no work, never cached by libc), median of batches of 1,000.
//! - **memcpy**: single-core copies through a 4 MiB buffer at each size (`raw.rs`), the best
//!   of three tries (a floor takes the fastest copy the machine showed).
//!
//! The floor of a round trip of `size` bytes ([`Floors::floor_ns`]) is the cache-line round
//! trip for mechanisms that spin (shm-spin, shm-adaptive, whose 50 µs spin covers a
//! ping-pong, and raw-shm), two wake-ups for every other one (they sleep in the kernel; the
//! cheaper of the cross-core and same-core wake-up, since either placement may occur), plus
//! for both two copies of the message at memcpy speed (the bytes must move at least once
//! each way; a channel that copies in and out pays four, but copies that stay in cache beat
//! the 4 MiB memcpy, so four would not be a floor). "x floor" is the median round trip
//! divided by it.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use serde::Serialize;

use super::report::human_size;
use super::{Measurement, Mechanism, raw, sys};
use crate::error::{Error, Result};
use crate::transport::{Kind, WaitStrategy};

/// The floors measured on this machine in this run.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use switchboard::measure::Floors;
///
/// let floors = Floors::measure(&[64], Duration::from_millis(5))?;
/// assert!(floors.syscall_ns > 0.0 && floors.wake_up_ns > 0.0);
/// print!("{}", floors.table());
/// // A blocking round trip can do no better than two wake-ups.
/// let pipe_floor = floors.floor_ns("pipe".parse()?, 64).unwrap();
/// assert!(pipe_floor >= 2.0 * floors.wake_up_ns.min(floors.same_core_wake_up_ns));
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Floors {
    /// Median cache-line round trip between two CPUs, ns; `None` with one CPU.
    pub cache_line_rt_ns: Option<f64>,
    /// One cross-core wake-up (half an eventfd round trip), ns.
    pub wake_up_ns: f64,
    /// One wake-up with both threads on one CPU, ns.
    pub same_core_wake_up_ns: f64,
    /// One `getppid(2)`, ns.
    pub syscall_ns: f64,
    /// Single-core memcpy bandwidth per message size, MB/s.
    pub memcpy_mb_per_s: Vec<(usize, f64)>,
    /// Where the two threads ran: `pinned to cpu0 and cpu1`, or why not.
    pub placement: String,
}

/// Round trips between two threads, for a budget, timed in batches.
const CACHE_LINE_BATCH: u32 = 100;
const SYSCALL_BATCH: u32 = 1000;

/// How long one side of a floor measurement waits for the other before giving up.
const FLOOR_LIMIT: Duration = Duration::from_secs(10);

#[repr(align(128))]
struct Line(AtomicU64);

impl Floors {
    /// Measures every floor, spending about `budget` on each (and `budget / 3` on memcpy at
    /// each of `sizes`).
    ///
    /// # Errors
    /// Whatever creating the threads or eventfds returns, or [`Error::Timeout`] if a
    /// measuring thread stopped answering.
    pub fn measure(sizes: &[usize], budget: Duration) -> Result<Floors> {
        let cores = two_cores();
        let placement = match cores {
            Some((a, b)) => format!("pinned to cpu{a} and cpu{b}"),
            None => "one CPU: not pinned, no cache-line floor".into(),
        };
        let cache_line_rt_ns = match cores {
            Some(cores) => Some(cache_line_rt(cores, budget)?),
            None => None,
        };
        let wake_up_ns = wake_rt(cores, budget)? / 2.0;
        let same_core_wake_up_ns = wake_rt(cores.map(|(a, _)| (a, a)), budget)? / 2.0;
        let syscall_ns = syscall(budget);
        let best_copy = |s| (0..3).map(|_| raw::memcpy_bandwidth(s, budget / 3) / 1e6).fold(0.0, f64::max);
        let memcpy_mb_per_s = sizes.iter().map(|&s| (s, best_copy(s))).collect();
        Ok(Floors { cache_line_rt_ns, wake_up_ns, same_core_wake_up_ns, syscall_ns, memcpy_mb_per_s, placement })
    }

    /// The floor of a `size`-byte round trip over `mechanism`, ns (see the module docs):
    /// `None` for a spinning mechanism without a cache-line floor (one CPU).
    pub fn floor_ns(&self, mechanism: Mechanism, size: usize) -> Option<f64> {
        let base = if spins(mechanism) {
            self.cache_line_rt_ns?
        } else {
            2.0 * self.wake_up_ns.min(self.same_core_wake_up_ns)
        };
        let copies = match self.memcpy_mb_per_s.iter().find(|(s, _)| *s == size) {
            Some(&(_, mbs)) if mbs > 0.0 => 2.0 * size as f64 / (mbs * 1e6) * 1e9,
            _ => 0.0,
        };
        Some(base + copies)
    }

    /// A measurement's median round trip divided by its floor: the "x floor" column. `None`
    /// for a name this build does not know or a missing floor.
    ///
    /// # Examples
    /// ```
    /// use switchboard::measure::{Floors, Latency, Measurement, Throughput};
    ///
    /// let floors = Floors {
    ///     cache_line_rt_ns: Some(100.0),
    ///     wake_up_ns: 5_000.0,
    ///     same_core_wake_up_ns: 6_000.0,
    ///     syscall_ns: 250.0,
    ///     memcpy_mb_per_s: vec![],
    ///     placement: "by hand".into(),
    /// };
    /// let latency = Latency { round_trips: 1, min_ns: 1, p50_ns: 700, p90_ns: 1, p99_ns: 1, p999_ns: 1, max_ns: 1, cpu_ns_per_round_trip: 0.0 };
    /// let throughput = Throughput { messages: 1, seconds: 1.0, mb_per_s: 0.0, msgs_per_s: 1.0, cpu_ns_per_message: 0.0 };
    /// let m = Measurement {
    ///     mechanism: "shm-spin".into(),
    ///     kind: "shm".into(),
    ///     raw: false,
    ///     size: 64,
    ///     latency,
    ///     throughput,
    ///     spread: Default::default(),
    ///     trials: Vec::new(),
    /// };
    /// assert_eq!(floors.x_floor(&m), Some(7.0));
    /// ```
    pub fn x_floor(&self, m: &Measurement) -> Option<f64> {
        let mechanism = m.mechanism.parse::<Mechanism>().ok()?;
        Some(m.latency.p50_ns as f64 / self.floor_ns(mechanism, m.size)?)
    }

    /// The floors section: one line per floor.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "floors, measured in this run (two threads {}):", self.placement);
        let cache_line = self.cache_line_rt_ns.map_or("-".to_string(), |ns| format!("{:.3}", ns / 1e3));
        let _ = writeln!(
            out,
            "  {:<24} {:>9} µs   one atomic ping-ponged between two CPUs: the floor of spinning shm",
            "cache-line round trip", cache_line
        );
        let _ = writeln!(
            out,
            "  {:<24} {:>9.3} µs   half an eventfd ping-pong between two CPUs: a blocking round trip pays two",
            "cross-core wake-up",
            self.wake_up_ns / 1e3
        );
        let _ = writeln!(
            out,
            "  {:<24} {:>9.3} µs   the same with both threads on one CPU (an unpinned run may land there)",
            "same-core wake-up",
            self.same_core_wake_up_ns / 1e3
        );
        let _ = writeln!(out, "  {:<24} {:>9.3} µs   getppid(2)", "syscall", self.syscall_ns / 1e3);
        for (size, mbs) in &self.memcpy_mb_per_s {
            let _ =
                writeln!(out, "  {:<24} {:>9.0} MB/s single-core copy", format!("memcpy {}", human_size(*size)), mbs);
        }
        out
    }

    /// The distance section: each measurement's median round trip, its floor and "x floor".
    pub fn distances(&self, measurements: &[Measurement]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "distance from the floor: x floor = RTT p50 / floor; floor = cache-line round trip (spinning) or two of the cheaper wake-up (blocking), plus 2 copies at memcpy speed"
        );
        let _ = writeln!(out, "{:<13} {:>8} {:>9} {:>9} {:>8}", "mechanism", "size", "RTT p50", "floor", "x floor");
        for m in measurements {
            let floor = m.mechanism.parse::<Mechanism>().ok().and_then(|x| self.floor_ns(x, m.size));
            let _ = writeln!(
                out,
                "{:<13} {:>8} {:>9.2} {:>9} {:>8}",
                m.mechanism,
                human_size(m.size),
                m.latency.p50_ns as f64 / 1e3,
                floor.map_or("-".into(), |f| format!("{:.2}", f / 1e3)),
                self.x_floor(m).map_or("-".into(), |x| format!("{x:.1}")),
            );
        }
        out
    }
}

/// Whether a mechanism's round trip spins rather than sleeps.
fn spins(m: Mechanism) -> bool {
    matches!(
        m,
        Mechanism::Raw(Kind::Shm)
            | Mechanism::Transport { kind: Kind::Shm, wait: WaitStrategy::Spin | WaitStrategy::Adaptive }
    )
}

/// The first two CPUs this process may run on, or `None` if it may use only one.
fn two_cores() -> Option<(usize, usize)> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let mut allowed = (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false));
    Some((allowed.next()?, allowed.next()?))
}

/// Runs `a` and `b` on two threads pinned to `cores` (unpinned without them).
fn on_two_cores<A, B>(cores: Option<(usize, usize)>, a: A, b: B) -> Result<f64>
where
    A: FnOnce() -> Result<f64> + Send + 'static,
    B: FnOnce() -> Result<()> + Send + 'static,
{
    let pinned = |core: Option<usize>| move || core.map_or(Ok(()), sys::pin);
    let (pin_a, pin_b) = (pinned(cores.map(|c| c.0)), pinned(cores.map(|c| c.1)));
    let other = std::thread::spawn(move || pin_b().and_then(|()| b()));
    let result = std::thread::spawn(move || pin_a().and_then(|()| a()))
        .join()
        .map_err(|_| Error::Protocol("a floor thread panicked".into()))?;
    let other = other.join().map_err(|_| Error::Protocol("a floor thread panicked".into()))?;
    let value = result?;
    other?;
    Ok(value)
}

/// Spins until `line` holds `want` (or `stop`), for at most [`FLOOR_LIMIT`].
fn spin_for(line: &Line, want: u64) -> Result<u64> {
    let mut rounds = 0u32;
    let mut since: Option<Instant> = None;
    loop {
        let v = line.0.load(Ordering::Acquire);
        if v == want || v == u64::MAX {
            return Ok(v);
        }
        std::hint::spin_loop();
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(4096) && since.get_or_insert_with(Instant::now).elapsed() > FLOOR_LIMIT {
            return Err(Error::Timeout);
        }
    }
}

fn cache_line_rt(cores: (usize, usize), budget: Duration) -> Result<f64> {
    let line = Arc::new(Line(AtomicU64::new(0)));
    let theirs = line.clone();
    on_two_cores(
        Some(cores),
        move || {
            let mut batches = Vec::new();
            let mut v = 0u64;
            let start = Instant::now();
            let result = (|| {
                while batches.len() < 20 || start.elapsed() < budget {
                    let t0 = Instant::now();
                    for _ in 0..CACHE_LINE_BATCH {
                        line.0.store(v + 1, Ordering::Release);
                        v = spin_for(&line, v + 2)?;
                    }
                    batches.push(t0.elapsed().as_nanos() as f64 / f64::from(CACHE_LINE_BATCH));
                }
                Ok(median(&mut batches))
            })();
            line.0.store(u64::MAX, Ordering::Release);
            result
        },
        move || {
            let mut v = 1u64;
            loop {
                match spin_for(&theirs, v)? {
                    u64::MAX => return Ok(()),
                    _ => theirs.0.store(v + 1, Ordering::Release),
                }
                v += 2;
            }
        },
    )
}

fn eventfd() -> Result<File> {
    Ok(File::from(OwnedFd::from(EventFd::from_flags(EfdFlags::EFD_CLOEXEC)?)))
}

/// Median eventfd round trip between two threads, ns. A 1 wakes the other side, a 2 stops it.
fn wake_rt(cores: Option<(usize, usize)>, budget: Duration) -> Result<f64> {
    let (ping, pong) = (eventfd()?, eventfd()?);
    let (their_ping, their_pong) = (ping.try_clone()?, pong.try_clone()?);
    on_two_cores(
        cores,
        move || {
            let mut samples = Vec::new();
            let start = Instant::now();
            let mut count = [0u8; 8];
            let result = (|| {
                while samples.len() < 100 || (start.elapsed() < budget && samples.len() < 100_000) {
                    let t0 = Instant::now();
                    (&ping).write_all(&1u64.to_ne_bytes())?;
                    (&pong).read_exact(&mut count)?;
                    samples.push(t0.elapsed().as_nanos() as f64);
                }
                Ok(median(&mut samples))
            })();
            (&ping).write_all(&2u64.to_ne_bytes())?;
            result
        },
        move || {
            let mut count = [0u8; 8];
            loop {
                (&their_ping).read_exact(&mut count)?;
                if u64::from_ne_bytes(count) != 1 {
                    return Ok(());
                }
                (&their_pong).write_all(&1u64.to_ne_bytes())?;
            }
        },
    )
}

/// The timer's own share of a timed round trip, ns: the median of empty timed intervals (two
/// `Instant::now()` back to back), at least 1,000 and at most 100,000 of them or a tenth of
/// `budget`, whichever ends first (100,000 take about 3 ms here). The comparison times each
/// round trip on its own (for its percentiles), so each includes this; the floors are timed
/// in batches and do not. On the 2-vCPU KVM test machine a clock read costs about 23 ns and an
/// empty interval measures 20 (the clock moves in 10 ns steps there), a tenth of a spinning
/// 64-byte round trip.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let ns = switchboard::measure::timer_ns(Duration::from_millis(1));
/// assert!(ns < 1_000_000.0);
/// ```
pub fn timer_ns(budget: Duration) -> f64 {
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 1000 || (start.elapsed() < budget / 10 && samples.len() < 100_000) {
        let t0 = Instant::now();
        samples.push(t0.elapsed().as_nanos() as f64);
    }
    median(&mut samples)
}

fn syscall(budget: Duration) -> f64 {
    let mut batches = Vec::new();
    let start = Instant::now();
    while batches.len() < 20 || start.elapsed() < budget {
        let t0 = Instant::now();
        for _ in 0..SYSCALL_BATCH {
            std::hint::black_box(nix::unistd::getppid());
        }
        batches.push(t0.elapsed().as_nanos() as f64 / f64::from(SYSCALL_BATCH));
    }
    median(&mut batches)
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floors() -> Floors {
        Floors {
            cache_line_rt_ns: Some(100.0),
            wake_up_ns: 5_000.0,
            same_core_wake_up_ns: 7_000.0,
            syscall_ns: 250.0,
            memcpy_mb_per_s: vec![(1000, 10_000.0)],
            placement: "test".into(),
        }
    }

    #[test]
    fn spinning_and_blocking_mechanisms_get_their_floor() {
        let f = floors();
        let floor = |name: &str, size| f.floor_ns(name.parse().unwrap(), size).unwrap();
        for spin in ["shm-spin", "shm-adaptive", "raw-shm"] {
            assert_eq!(floor(spin, 64), 100.0, "{spin}");
        }
        for block in ["shm-block", "pipe", "raw-tcp", "mq", "udp", "eventfd-shm"] {
            assert_eq!(floor(block, 64), 10_000.0, "{block}");
        }
        // 2 copies of 1000 bytes at 10 GB/s: 200 ns.
        assert_eq!(floor("shm-spin", 1000), 300.0);
        let none = Floors { cache_line_rt_ns: None, ..floors() };
        assert_eq!(none.floor_ns("shm-spin".parse().unwrap(), 64), None);
    }

    #[test]
    fn measured_floors_are_positive_and_finish() {
        let f = Floors::measure(&[64], Duration::from_millis(2)).unwrap();
        assert!(f.wake_up_ns > 0.0 && f.syscall_ns > 0.0);
        assert!(f.cache_line_rt_ns.is_none_or(|ns| ns > 0.0));
        assert!(f.table().contains("cross-core wake-up"));
    }

    #[test]
    fn the_timer_takes_its_median() {
        let ns = timer_ns(Duration::from_millis(1));
        // Two clock reads: never negative, and far below a millisecond on any machine that
        // runs these tests.
        assert!((0.0..1_000_000.0).contains(&ns), "{ns}");
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(median(&mut []), 0.0);
    }
}
