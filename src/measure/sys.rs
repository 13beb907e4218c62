//! Process facts the harness records: CPU time (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)` per
//! thread, `getrusage(2)` per process), pinning
//! (`sched_setaffinity(2)`) and the CPU model; and the one wait the raw links share, a
//! `ppoll(2)` with a nanosecond timeout.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;

use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::resource::{UsageWho, getrusage};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;

use crate::error::Result;

/// User + system CPU time of the calling thread, so that helper threads such as a progress
/// bar do not count.
///
/// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` rather than `getrusage(RUSAGE_THREAD)`: both count
/// user and system time, but getrusage's figures move in scheduler ticks (up to 4 ms), too
/// coarse for a 40 ms measurement, while the clock reads the scheduler's nanosecond runtime.
pub(crate) fn thread_cpu() -> Result<Duration> {
    let ts = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)?;
    Ok(Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32))
}

/// User and system CPU time of this whole process so far (`getrusage(RUSAGE_SELF)`).
///
/// The figures move in scheduler ticks (up to 4 ms), so compare them over runs longer than
/// that.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if `getrusage(2)` fails.
///
/// # Examples
/// ```
/// use switchboard::measure::process_cpu;
///
/// let (user, sys) = process_cpu()?;
/// let busy: u64 = (0..1_000_000u64).map(std::hint::black_box).sum();
/// let (user_after, sys_after) = process_cpu()?;
/// assert!(user_after >= user && sys_after >= sys);
/// println!("summing to {busy} took {:?} of user time", user_after - user);
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn process_cpu() -> Result<(Duration, Duration)> {
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    Ok((tv(usage.user_time()), tv(usage.system_time())))
}

/// Whether `fd` polls readable within `timeout`: `ppoll(2)`, whose timeout is in
/// nanoseconds (`poll(2)` rounds to milliseconds, and `SO_RCVTIMEO` to scheduler ticks, both
/// far too coarse for an open loop's waits of microseconds).
pub(crate) fn readable_within(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool> {
    let deadline = crate::deadline::after(timeout);
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        let left = deadline.map(|d| TimeSpec::from_duration(d.saturating_duration_since(Instant::now())));
        match ppoll(&mut fds, left, None) {
            Ok(n) => return Ok(n > 0),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Pins the calling thread to `core`.
pub(crate) fn pin(core: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(core)?;
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// Undoes [`pin`]: every core the process may use.
pub(crate) fn unpin() -> Result<()> {
    let mut set = CpuSet::new();
    let n = std::thread::available_parallelism().map_or(1, |n| n.get()).max(num_cpus_online());
    for core in 0..n.min(CpuSet::count()) {
        set.set(core)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

fn num_cpus_online() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| s.trim().rsplit(['-', ',']).next().and_then(|n| n.parse::<usize>().ok()))
        .map_or(1, |last| last + 1)
}

/// The CPU model from `/proc/cpuinfo`, or `unknown` where it names none.
///
/// # Examples
/// ```
/// let model = switchboard::measure::cpu_model();
/// assert!(!model.is_empty());
/// println!("measured on {model}");
/// ```
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Online CPUs, from `/sys/devices/system/cpu/online` (1 if it cannot be read).
///
/// # Examples
/// ```
/// use switchboard::measure::cpu_count;
///
/// // Parent and child each get a core of their own only with two or more.
/// let pin = (cpu_count() >= 2).then_some((0, 1));
/// assert!(cpu_count() >= 1);
/// println!("pinning: {pin:?}");
/// ```
pub fn cpu_count() -> usize {
    num_cpus_online()
}

/// This machine's host name, from `/proc/sys/kernel/hostname` (empty if it cannot be read).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
}
