//! The comparison's results: every trial as measured, then each figure's median and min-max
//! spread over the trials of one mechanism at one size, as a table and as JSON.

use std::fmt::Write as _;

use serde::Serialize;
use switchboard::measure::{Settings, Trial as Measured, cpu_count, cpu_model, human_size};

/// One measurement of one mechanism at one size, or why it failed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Trial {
    /// 1-based: the round of the interleaving.
    pub(crate) trial: usize,
    pub(crate) mechanism: String,
    pub(crate) size: usize,
    pub(crate) measurement: Option<Measured>,
    pub(crate) error: Option<String>,
}

/// The median of some trials' values of one figure, and their range.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Spread {
    /// The spread of `values`, `None` if there are none. An even count's median is the mean
    /// of the middle two.
    pub(crate) fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Spread { median, min: values[0], max: values[n - 1] })
    }
}

/// The figures of one mechanism at one size over its trials.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) mechanism: String,
    pub(crate) size: usize,
    /// Trials that measured.
    pub(crate) trials: usize,
    pub(crate) figures: Option<Figures>,
    /// Why this mechanism stopped being measured at this size, if it did.
    pub(crate) error: Option<String>,
}

/// Each figure's median and spread; round trips in µs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Figures {
    pub(crate) rtt_p50_us: Spread,
    pub(crate) rtt_p99_us: Spread,
    pub(crate) rtt_p999_us: Spread,
    pub(crate) cpu_per_round_trip_us: Spread,
    pub(crate) msgs_per_s: Spread,
    pub(crate) mb_per_s: Spread,
}

impl Figures {
    fn of(ms: &[&Measured]) -> Option<Figures> {
        let pick = |f: fn(&Measured) -> f64| Spread::of(ms.iter().map(|m| f(m)).collect());
        Some(Figures {
            rtt_p50_us: pick(|m| m.latency.p50_ns as f64 / 1e3)?,
            rtt_p99_us: pick(|m| m.latency.p99_ns as f64 / 1e3)?,
            rtt_p999_us: pick(|m| m.latency.p999_ns as f64 / 1e3)?,
            cpu_per_round_trip_us: pick(|m| m.latency.cpu_ns_per_round_trip / 1e3)?,
            msgs_per_s: pick(|m| m.throughput.msgs_per_s)?,
            mb_per_s: pick(|m| m.throughput.mb_per_s)?,
        })
    }
}

/// A whole run: where, how, what each row measures, and every trial.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Results {
    pub(crate) cpu_model: String,
    pub(crate) cpus: usize,
    pub(crate) placement: String,
    pub(crate) settings: Settings,
    /// Interleaved rounds: every mechanism once per round.
    pub(crate) rounds: usize,
    /// (mechanism, what its row measures), in row order.
    pub(crate) mechanisms: Vec<(String, String)>,
    pub(crate) sizes: Vec<usize>,
    pub(crate) rows: Vec<Row>,
    pub(crate) trials: Vec<Trial>,
}

impl Results {
    /// An empty run of `rounds` rounds over `mechanisms` at `sizes`.
    pub(crate) fn new(settings: Settings, rounds: usize, mechanisms: Vec<(String, String)>, sizes: Vec<usize>) -> Self {
        let placement = match settings.pin {
            Some((p, c)) => format!("pinned parent=cpu{p} child=cpu{c}"),
            None => "unpinned".into(),
        };
        Results {
            cpu_model: cpu_model(),
            cpus: cpu_count(),
            placement,
            settings,
            rounds,
            mechanisms,
            sizes,
            rows: Vec::new(),
            trials: Vec::new(),
        }
    }

    /// Fills in [`Results::rows`] from the trials.
    pub(crate) fn summarize(&mut self) {
        let mut rows = Vec::new();
        for &size in &self.sizes {
            for (name, _) in &self.mechanisms {
                let mine: Vec<&Trial> = self.trials.iter().filter(|t| t.size == size && t.mechanism == *name).collect();
                let measured: Vec<&Measured> = mine.iter().filter_map(|t| t.measurement.as_ref()).collect();
                let error = mine.iter().find_map(|t| t.error.as_ref().map(|e| format!("trial {}: {e}", t.trial)));
                rows.push(Row {
                    mechanism: name.clone(),
                    size,
                    trials: measured.len(),
                    figures: Figures::of(&measured),
                    error,
                });
            }
        }
        self.rows = rows;
    }

    /// The table: one row per mechanism and size, each figure as `median lo-hi`; then what
    /// each row measures.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "switchboard and its peers: {} ({} CPUs, {}), {} interleaved trials per figure",
            self.cpu_model, self.cpus, self.placement, self.rounds
        );
        let _ = writeln!(
            out,
            "each figure: the median, then the min-max over the trials; RTT = round trip (parent -> child -> parent), µs; \
             msgs/s and MB/s = one-way stream (child -> parent); CPU/RT = both processes' CPU time per round trip, µs"
        );
        let _ = writeln!(
            out,
            "{:<13} {:>7} {:>8} {:<15} {:>8} {:<15} {:>9} {:<17} {:>10} {:<19} {:>8} {:<15} {:>7}",
            "mechanism", "size", "RTT p50", "", "RTT p99", "", "RTT p99.9", "", "msgs/s", "", "MB/s", "", "CPU/RT"
        );
        for size in &self.sizes {
            for row in self.rows.iter().filter(|r| r.size == *size) {
                let label = format!("{:<13} {:>7}", row.mechanism, human_size(row.size));
                match (&row.figures, &row.error) {
                    (Some(f), error) => {
                        let _ = write!(
                            out,
                            "{label} {} {} {} {} {} {:>7}",
                            cell(f.rtt_p50_us, 8, 15, sig),
                            cell(f.rtt_p99_us, 8, 15, sig),
                            cell(f.rtt_p999_us, 9, 17, sig),
                            cell(f.msgs_per_s, 10, 19, whole),
                            cell(f.mb_per_s, 8, 15, sig),
                            sig(f.cpu_per_round_trip_us.median),
                        );
                        if row.trials < self.rounds {
                            let _ = write!(out, "  ({} of {} trials)", row.trials, self.rounds);
                        }
                        if let Some(e) = error {
                            let _ = write!(out, "  then failed, {e}");
                        }
                        out.push('\n');
                    }
                    (None, Some(e)) => {
                        let _ = writeln!(out, "{label} failed, {e}");
                    }
                    (None, None) => {
                        let _ = writeln!(out, "{label} not measured");
                    }
                }
            }
        }
        let _ = writeln!(out, "\nwhat each row measures:");
        for (name, what) in &self.mechanisms {
            let _ = writeln!(out, "  {name:<13} {what}");
        }
        out
    }

    /// The whole run, every trial included, as pretty JSON.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results always serialize")
    }
}

/// `median lo-hi`, the median right-aligned in `width` and the range left-aligned in
/// `spread_width`.
fn cell(s: Spread, width: usize, spread_width: usize, format: fn(f64) -> String) -> String {
    let range = format!("{}-{}", format(s.min), format(s.max));
    format!("{:>width$} {:<spread_width$}", format(s.median), range)
}

/// About three significant digits: 0.523, 5.23, 52.3, 523.
fn sig(v: f64) -> String {
    match v.abs() {
        a if a < 1.0 => format!("{v:.3}"),
        a if a < 10.0 => format!("{v:.2}"),
        a if a < 100.0 => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    }
}

fn whole(v: f64) -> String {
    format!("{v:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle_and_the_ends() {
        let s = Spread::of(vec![5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        assert_eq!(Spread::of(vec![4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Spread::of(Vec::new()).is_none());
    }

    #[test]
    fn sig_keeps_about_three_digits() {
        assert_eq!(sig(0.5234), "0.523");
        assert_eq!(sig(5.234), "5.23");
        assert_eq!(sig(52.34), "52.3");
        assert_eq!(sig(523.4), "523");
    }
}
