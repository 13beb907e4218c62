//! This run against an earlier one (`compare --baseline earlier.json`): the change of every
//! figure, and whether it lies beyond the noise of both runs.
//!
//! A change counts as real when the two runs' ranges (min to max over their trials) do not
//! overlap: every trial of one run beat every trial of the other. With 5 trials each, two runs
//! of the same distribution do that by chance with probability 2 / C(10, 5) = 0.8%, for each
//! figure. A report from before trials were repeated has ranges of no width, so against it
//! only this run's range counts.

use std::fmt::Write as _;

use super::report::{Report, human_size};
use super::results::Figure;
use super::stats::Spread;

/// One figure of one mechanism at one size, in an earlier run and in this one.
///
/// # Examples
/// ```
/// use switchboard::measure::{Change, Figure, Spread};
///
/// let change = Change {
///     mechanism: "unix".into(),
///     size: 64,
///     figure: Figure::RttP50,
///     before: Spread { median: 100.0, min: 95.0, max: 110.0 },
///     now: Spread { median: 104.0, min: 99.0, max: 120.0 },
/// };
/// assert_eq!(change.percent().round(), 4.0);
/// assert!(!change.beyond_spread()); // the ranges overlap: within the noise
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `tcp`, `shm-spin`, `raw-pipe`, ...
    pub mechanism: String,
    /// Message size in bytes.
    pub size: usize,
    /// Which figure.
    pub figure: Figure,
    /// In the earlier run.
    pub before: Spread,
    /// In this run.
    pub now: Spread,
}

impl Change {
    /// The change of the median in percent: now / before - 1 (positive: the figure grew; a
    /// slower round trip, or more MB/s).
    pub fn percent(&self) -> f64 {
        if self.before.median == 0.0 { f64::INFINITY } else { (self.now.median / self.before.median - 1.0) * 100.0 }
    }

    /// Whether the change lies outside both runs' spreads: their ranges do not overlap.
    pub fn beyond_spread(&self) -> bool {
        !self.before.overlaps(&self.now)
    }
}

/// Every figure that both runs have, matched by mechanism and size, in this run's order.
///
/// # Examples
/// ```
/// use switchboard::measure::{Figure, Latency, Measurement, Mechanism, Report, Settings, Throughput, Trial, compare_runs};
///
/// let run = |p50_ns: u64| {
///     let trials = (1..=5)
///         .map(|trial| Trial {
///             trial,
///             latency: Latency { p50_ns: p50_ns + trial as u64, ..Latency::default() },
///             throughput: Throughput { mb_per_s: 100.0, ..Throughput::default() },
///             placement: Default::default(),
///         })
///         .collect();
///     let mut report = Report::new(Settings::default());
///     report.push(Measurement::from_trials("pipe".parse::<Mechanism>().unwrap(), 64, trials));
///     report
/// };
/// let changes = compare_runs(&run(1000), &run(2000));
/// let rtt = changes.iter().find(|c| c.figure == Figure::RttP50).unwrap();
/// assert!(rtt.beyond_spread() && rtt.percent() > 99.0);
/// ```
pub fn compare_runs(earlier: &Report, now: &Report) -> Vec<Change> {
    let mut out = Vec::new();
    for m in &now.measurements {
        let Some(e) = earlier.measurements.iter().find(|e| e.mechanism == m.mechanism && e.size == m.size) else {
            continue;
        };
        for figure in Figure::ALL {
            if let (Some(before), Some(now)) = (e.figure(figure), m.figure(figure)) {
                out.push(Change { mechanism: m.mechanism.clone(), size: m.size, figure, before, now });
            }
        }
    }
    out
}

impl Report {
    /// The change of every figure against `earlier` (read from `source`, named in the
    /// heading): one row per mechanism and size, `!` after a change beyond both runs'
    /// spreads, then rows that only one run has.
    pub fn changes_since(&self, earlier: &Report, source: &str) -> String {
        let changes = compare_runs(earlier, self);
        let mut out = String::new();
        let _ = writeln!(out, "change against {source} ({}):", earlier.title());
        let _ = writeln!(
            out,
            "median now / median then - 1; ! = beyond both runs' spreads (their min-max ranges do not overlap)"
        );
        let _ = write!(out, "{:<13} {:>7}", "mechanism", "size");
        for f in Figure::ALL {
            let _ = write!(out, " {f:>10}");
        }
        let _ = writeln!(out);
        let mut beyond = 0;
        for m in &self.measurements {
            let row: Vec<&Change> = changes.iter().filter(|c| c.mechanism == m.mechanism && c.size == m.size).collect();
            if row.is_empty() {
                continue;
            }
            let _ = write!(out, "{:<13} {:>7}", m.mechanism, human_size(m.size));
            for f in Figure::ALL {
                let cell = match row.iter().find(|c| c.figure == f) {
                    Some(c) => {
                        beyond += usize::from(c.beyond_spread());
                        format!("{:+.1}%{}", c.percent(), if c.beyond_spread() { "!" } else { " " })
                    }
                    None => "- ".into(),
                };
                let _ = write!(out, " {cell:>10}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{beyond} of {} figures changed beyond the spread", changes.len());
        let key = |m: &super::Measurement| format!("{} {}", m.mechanism, human_size(m.size));
        let only = |a: &Report, b: &Report| -> Vec<String> {
            a.measurements
                .iter()
                .filter(|m| !b.measurements.iter().any(|o| o.mechanism == m.mechanism && o.size == m.size))
                .map(key)
                .collect()
        };
        for (label, rows) in
            [("only in this run", only(self, earlier)), ("only in the earlier run", only(earlier, self))]
        {
            // A run of a few transports against a full one leaves many rows out: name a few.
            const NAMED: usize = 8;
            match rows.len() {
                0 => {}
                n if n <= NAMED => {
                    let _ = writeln!(out, "{label}: {}", rows.join(", "));
                }
                n => {
                    let _ = writeln!(out, "{label}: {}, and {} more", rows[..NAMED].join(", "), n - NAMED);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Settings;
    use crate::measure::mechanism::Mechanism;
    use crate::measure::results::{Latency, Measurement, Throughput, Trial};

    fn report(rows: &[(&str, usize, [f64; 5])]) -> Report {
        let mut r = Report::new(Settings::default());
        for (name, size, mbs) in rows {
            let trials = mbs
                .iter()
                .enumerate()
                .map(|(i, &mb_per_s)| Trial {
                    trial: i + 1,
                    latency: Latency { p50_ns: 1000, p99_ns: 2000, ..Latency::default() },
                    throughput: Throughput { mb_per_s, ..Throughput::default() },
                    placement: Default::default(),
                })
                .collect();
            r.push(Measurement::from_trials(name.parse::<Mechanism>().unwrap(), *size, trials));
        }
        r
    }

    fn mb_change(earlier: &Report, now: &Report) -> Change {
        compare_runs(earlier, now).into_iter().find(|c| c.figure == Figure::MbPerS).unwrap()
    }

    #[test]
    fn a_change_within_the_spread_is_not_flagged() {
        let earlier = report(&[("unix", 64, [90.0, 100.0, 110.0, 95.0, 105.0])]);
        let now = report(&[("unix", 64, [100.0, 108.0, 120.0, 104.0, 112.0])]);
        let c = mb_change(&earlier, &now);
        assert!((c.percent() - 8.0).abs() < 1e-9);
        assert!(!c.beyond_spread());
        assert!(!now.changes_since(&earlier, "e.json").contains("%!"));
    }

    #[test]
    fn a_change_beyond_both_spreads_is_flagged() {
        let earlier = report(&[("unix", 64, [90.0, 100.0, 110.0, 95.0, 105.0])]);
        let now = report(&[("unix", 64, [130.0, 140.0, 150.0, 135.0, 145.0])]);
        let c = mb_change(&earlier, &now);
        assert!((c.percent() - 40.0).abs() < 1e-9);
        assert!(c.beyond_spread());
        let text = now.changes_since(&earlier, "e.json");
        assert!(text.contains("+40.0%!"), "{text}");
        assert!(text.contains("1 of 3 figures changed beyond the spread"), "{text}");
    }

    #[test]
    fn a_slowdown_is_flagged_too() {
        let earlier = report(&[("pipe", 8, [100.0; 5])]);
        let now = report(&[("pipe", 8, [50.0, 51.0, 52.0, 49.0, 50.0])]);
        assert!(mb_change(&earlier, &now).beyond_spread());
        assert!(mb_change(&earlier, &now).percent() < -49.0);
    }

    #[test]
    fn rows_are_matched_by_mechanism_and_size() {
        let earlier = report(&[("unix", 64, [100.0; 5]), ("pipe", 64, [100.0; 5])]);
        let now = report(&[("pipe", 64, [100.0; 5]), ("unix", 1024, [100.0; 5])]);
        let changes = compare_runs(&earlier, &now);
        assert!(changes.iter().all(|c| c.mechanism == "pipe" && c.size == 64));
        let text = now.changes_since(&earlier, "e.json");
        assert!(text.contains("only in this run: unix 1 KiB"), "{text}");
        assert!(text.contains("only in the earlier run: unix 64 B"), "{text}");
    }

    #[test]
    fn ratios_are_compared_when_both_runs_have_baselines() {
        let earlier = report(&[("unix", 64, [100.0; 5]), ("raw-unix", 64, [100.0; 5])]);
        let now = report(&[("unix", 64, [50.0; 5]), ("raw-unix", 64, [100.0; 5])]);
        let c = compare_runs(&earlier, &now).into_iter().find(|c| c.figure == Figure::MbPerSXRaw).unwrap();
        assert_eq!((c.before.median, c.now.median), (1.0, 0.5));
        assert!(c.beyond_spread());
    }
}
