//! Open-loop latency: the parent sends at a fixed offered rate whatever the replies do, the
//! child echoes, and each message's latency is counted from the moment it was *meant* to be
//! sent: the correction for coordinated omission that wrk2 makes (Gil Tene, "How NOT to
//! Measure Latency"), recorded in an HDR histogram.
//!
//! A closed-loop ping-pong sends the next message only after the last reply, so a stall
//! delays the measurements that would have seen it, and queueing never shows. Here message
//! `i` is due at `t0 + i / rate`. The parent is one thread running an event loop, as wrk2's
//! are: when a send is due it sends (and then takes, without waiting, any echo that has
//! arrived); otherwise it waits for an echo with `recv_timeout` only until the next send is
//! due. It never waits for a reply before sending, so the load does not slow down when the
//! mechanism does. If a send blocks (the mechanism is full), the messages due meanwhile go
//! out late, and their latency still counts from their due time; the send lag (actual minus
//! due send time) is reported apart, so that a late sender is visible as such. Latencies
//! from the actual send time (what a closed loop would record) are kept for comparison.
//!
//! The parent's timer slack is set to 1 ns (`PR_SET_TIMERSLACK`, `prctl(2)`) for the run, so
//! that a wait of a few microseconds does not oversleep by the default 50 µs.
//!
//! After each send the parent takes every echo that has arrived, not just one, so that the
//! echoes never pile up while it is behind: a mechanism whose sends block when full (a raw
//! pipe, a message queue) then cannot deadlock, since the child, blocked on a full echo
//! direction, is always drained before the parent sends again. Works for every mechanism
//! that can receive with a timeout: every transport, raw baseline and other baseline.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::link::{self, Link};
use super::{MEASUREMENT_LIMIT, Mechanism, Settings, reap, spawn, sys};
use crate::error::{Error, Result};
use crate::process::ChildGuard;

/// How long the parent waits for an echo once everything is sent.
const ECHO_LIMIT: Duration = Duration::from_secs(10);

/// The share of the offered rate below which a run is reported as not keeping up.
const KEEPS_UP: f64 = 0.97;

/// Latency of one mechanism under a fixed offered load.
///
/// # Examples
/// [`open_loop`] fills it in; here it is written by hand.
/// ```
/// use switchboard::measure::OpenLoop;
///
/// let run = OpenLoop {
///     mechanism: "pipe".into(),
///     size: 64,
///     offered_per_s: 100_000.0,
///     achieved_per_s: 61_000.0,
///     messages: 100_000,
///     p50_ns: 2_000_000,
///     p99_ns: 9_000_000,
///     p999_ns: 9_500_000,
///     max_ns: 9_800_000,
///     uncorrected_p50_ns: 40_000,
///     uncorrected_p99_ns: 90_000,
///     send_lag_p99_ns: 8_000_000,
/// };
/// assert!(!run.kept_up()); // 61% of the offered rate: messages queued up
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoop {
    /// `tcp`, `shm-spin`, `udp`, ...
    pub mechanism: String,
    /// Message size, bytes.
    pub size: usize,
    /// Messages per second asked for.
    pub offered_per_s: f64,
    /// Messages per second echoed: all messages over the time from the first due send to
    /// the last echo.
    pub achieved_per_s: f64,
    /// Messages measured.
    pub messages: u64,
    /// Median latency from the due send time to the echo, ns.
    pub p50_ns: u64,
    /// 99th percentile of the same, ns.
    pub p99_ns: u64,
    /// 99.9th percentile of the same, ns.
    pub p999_ns: u64,
    /// Slowest, ns.
    pub max_ns: u64,
    /// Median from the actual send time (what a closed loop records), ns.
    pub uncorrected_p50_ns: u64,
    /// 99th percentile from the actual send time, ns.
    pub uncorrected_p99_ns: u64,
    /// 99th percentile of how late sends went out, ns.
    pub send_lag_p99_ns: u64,
}

impl OpenLoop {
    /// Whether the mechanism kept up: echoed at least 97% of the offered rate.
    pub fn kept_up(&self) -> bool {
        self.achieved_per_s >= KEEPS_UP * self.offered_per_s
    }
}

/// Parses an offered rate in messages per second: `5000`, `10k`, `100k`, `1m`.
///
/// # Errors
/// [`Error::Config`] for anything else, zero, or more than 100 million a second.
///
/// # Examples
/// ```
/// use switchboard::measure::parse_rate;
///
/// assert_eq!(parse_rate("10k")?, 10_000);
/// assert_eq!(parse_rate("1M")?, 1_000_000);
/// assert_eq!(parse_rate("2500")?, 2500);
/// assert!(parse_rate("0").is_err() && parse_rate("fast").is_err() && parse_rate("1G").is_err());
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn parse_rate(s: &str) -> Result<u64> {
    const MAX_RATE: u64 = 100_000_000;
    let s = s.trim();
    let (digits, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    let n: u64 =
        digits.parse().map_err(|_| Error::Config(format!("{s:?} is not a rate like 10k or 100k messages/s")))?;
    match n.checked_mul(mult) {
        Some(0) => Err(Error::Config("a rate is at least 1 message/s".into())),
        Some(rate) if rate <= MAX_RATE => Ok(rate),
        _ => Err(Error::Config(format!("at most {MAX_RATE} messages/s"))),
    }
}

/// When message `i` is due, as an offset from the start: `i / rate` seconds, computed from
/// `i` each time so that rounding never accumulates.
fn due(i: u64, rate: u64) -> Duration {
    let ns = u128::from(i) * 1_000_000_000 / u128::from(rate);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// The three histograms of a run.
struct Recorder {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    send_lag: Histogram<u64>,
}

impl Recorder {
    fn new() -> Self {
        let h = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds");
        Recorder { corrected: h(), uncorrected: h(), send_lag: h() }
    }

    /// One echo, received at `now`, of a message due at `due` and sent at `sent`.
    fn record(&mut self, due: Instant, sent: Instant, now: Instant) {
        let ns = |d: Duration| (d.as_nanos().max(1)).min(u128::from(u64::MAX)) as u64;
        self.corrected.saturating_record(ns(now.saturating_duration_since(due)));
        self.uncorrected.saturating_record(ns(now.saturating_duration_since(sent)));
        self.send_lag.saturating_record(ns(sent.saturating_duration_since(due)));
    }
}

/// Runs `mechanism` open loop at `rate` messages/s of `size` bytes for `duration` (at least
/// 100 messages), against a fresh child process (this executable, which must call
/// [`serve_if_child`](super::serve_if_child)). The first `settings.warmup` messages (at most
/// a tenth) go out on schedule but are not recorded.
///
/// # Errors
/// [`Error::Config`] for a mechanism that cannot receive with a timeout (none in this
/// crate); whatever spawning or the exchange returns; [`Error::Protocol`] if an echo arrived damaged
/// or out of order; [`Error::Timeout`] if no echo came for 10 s.
///
/// # Panics
/// If `size` is 0 or `rate` is 0.
///
/// # Examples
/// Not run as a doctest: the child is this program started again.
/// ```no_run
/// use std::time::Duration;
/// use switchboard::measure::{self, Mechanism, Settings};
///
/// measure::serve_if_child();
/// let run = measure::open_loop("unix".parse()?, 64, 10_000, Duration::from_secs(1), &Settings::quick())?;
/// println!("at 10k/s: p99 {} µs, kept up: {}", run.p99_ns / 1000, run.kept_up());
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn open_loop(
    mechanism: Mechanism,
    size: usize,
    rate: u64,
    duration: Duration,
    settings: &Settings,
) -> Result<OpenLoop> {
    assert!(size > 0 && rate > 0, "open loop needs messages of at least one byte and a rate");
    let total = ((rate as f64 * duration.as_secs_f64()).ceil() as u64).max(100);
    let warmup = (settings.warmup as u64).min(total / 10);
    if let Some((parent, _)) = settings.pin {
        sys::pin(parent)?;
    }
    let slack = nix::sys::prctl::get_timerslack().ok();
    let _ = nix::sys::prctl::set_timerslack(1);
    let result = (|| {
        let (child, mut link) = spawn(mechanism, "open", size, 0, total as usize, settings)?;
        let child = ChildGuard::with_deadline(child, MEASUREMENT_LIMIT + duration);
        let run = drive(link.as_mut(), size, rate, total, warmup);
        drop(link);
        reap(child)?;
        run
    })();
    if let Some(ns) = slack.and_then(|ns| u64::try_from(ns).ok()) {
        let _ = nix::sys::prctl::set_timerslack(ns);
    }
    if settings.pin.is_some() {
        sys::unpin()?;
    }
    let (recorder, elapsed) = result?;
    let measured = recorder.corrected.len();
    let h = &recorder.corrected;
    Ok(OpenLoop {
        mechanism: mechanism.to_string(),
        size,
        offered_per_s: rate as f64,
        achieved_per_s: total as f64 / elapsed.as_secs_f64().max(1e-9),
        messages: measured,
        p50_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
        uncorrected_p50_ns: recorder.uncorrected.value_at_quantile(0.5),
        uncorrected_p99_ns: recorder.uncorrected.value_at_quantile(0.99),
        send_lag_p99_ns: recorder.send_lag.value_at_quantile(0.99),
    })
}

/// The parent's event loop (see the module docs). Returns the histograms and the time from
/// the first due send to the last echo.
fn drive(link: &mut dyn Link, size: usize, rate: u64, total: u64, warmup: u64) -> Result<(Recorder, Duration)> {
    let mut recorder = Recorder::new();
    let mut msg = vec![0xA5u8; size];
    let mut buf = Vec::with_capacity(size);
    // Due and actual send time of each message not yet echoed, oldest first.
    let mut in_flight: VecDeque<(Instant, Instant)> = VecDeque::new();
    let mut next = 0u64;
    let mut echoed = 0u64;
    let mut last_echo = Instant::now();
    let t0 = Instant::now();
    while echoed < total {
        let now = Instant::now();
        let next_due = (next < total).then(|| t0 + due(next, rate));
        let mut wait = match next_due {
            Some(at) if at <= now => {
                link::stamp(&mut msg, next, next + 1 == total);
                let sent = Instant::now();
                link.send(&msg)?;
                in_flight.push_back((at, sent));
                next += 1;
                Duration::ZERO
            }
            Some(at) => at - now,
            None => {
                if last_echo.elapsed() > ECHO_LIMIT {
                    return Err(Error::Timeout);
                }
                Duration::from_millis(100)
            }
        };
        // After a send, take everything that has arrived without waiting; otherwise wait
        // until the next send is due.
        loop {
            match link.recv_timeout(&mut buf, size, wait) {
                Ok(()) => {
                    let now = Instant::now();
                    link::check_stamp(&buf, echoed)?;
                    let (due_at, sent) = in_flight
                        .pop_front()
                        .ok_or_else(|| Error::Protocol("an echo of a message never sent".into()))?;
                    if echoed >= warmup {
                        recorder.record(due_at, sent, now);
                    }
                    echoed += 1;
                    last_echo = now;
                    if in_flight.is_empty() {
                        break;
                    }
                    wait = Duration::ZERO;
                }
                Err(Error::Timeout) => break,
                Err(e) => return Err(e),
            }
        }
    }
    let elapsed = last_echo.saturating_duration_since(t0);
    let report = link::recv_report(link, &mut buf)?;
    if report.count != total {
        return Err(Error::Protocol(format!("the child echoed {} messages, the parent sent {total}", report.count)));
    }
    Ok((recorder, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_exact_and_does_not_drift() {
        assert_eq!(due(0, 10_000), Duration::ZERO);
        assert_eq!(due(1, 10_000), Duration::from_micros(100));
        assert_eq!(due(10_000, 10_000), Duration::from_secs(1));
        // 3 a second: a third of a second each, rounded down once, not once per message.
        assert_eq!(due(3_000_000, 3), Duration::from_secs(1_000_000));
        assert_eq!(due(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(due(u64::MAX, 1), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn latency_counts_from_the_due_time() {
        let mut r = Recorder::new();
        let t0 = Instant::now();
        // Due at t0, sent 1 ms late (the sender was blocked), echoed 10 µs after the send.
        r.record(t0, t0 + Duration::from_millis(1), t0 + Duration::from_micros(1010));
        let near = |h: &Histogram<u64>, ns: u64| h.equivalent(h.value_at_quantile(0.5), ns);
        assert!(near(&r.corrected, 1_010_000));
        assert!(near(&r.uncorrected, 10_000));
        assert!(near(&r.send_lag, 1_000_000));
    }

    #[test]
    fn kept_up_is_a_share_of_the_offered_rate() {
        let mut run = OpenLoop {
            mechanism: "x".into(),
            size: 1,
            offered_per_s: 1000.0,
            achieved_per_s: 980.0,
            messages: 1,
            p50_ns: 1,
            p99_ns: 1,
            p999_ns: 1,
            max_ns: 1,
            uncorrected_p50_ns: 1,
            uncorrected_p99_ns: 1,
            send_lag_p99_ns: 1,
        };
        assert!(run.kept_up());
        run.achieved_per_s = 900.0;
        assert!(!run.kept_up());
    }

    /// The whole loop over a pair of transports in one process, with an echo thread.
    #[test]
    fn drives_an_echoing_peer_at_a_rate() {
        use crate::transport::{Kind, Options};
        let (a, b) = crate::pair::pair(Kind::Unix, &Options::new()).unwrap();
        let mut parent: Box<dyn crate::transport::Transport> = a;
        let mut child: Box<dyn crate::transport::Transport> = b;
        let echo = std::thread::spawn(move || link::echo(&mut child, 64, 0));
        let (recorder, elapsed) = drive(&mut parent, 64, 20_000, 400, 40).unwrap();
        echo.join().unwrap().unwrap();
        assert_eq!(recorder.corrected.len(), 360);
        // 400 messages at 20k/s take at least the 20 ms of the schedule.
        assert!(elapsed >= due(399, 20_000));
    }
}
