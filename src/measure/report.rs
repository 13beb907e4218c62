//! The comparison report: where and when a run was made, its measurements with their
//! trial-by-trial ratios, and JSON (the text forms are in `table.rs`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Settings;
use super::placement::Cores;
use super::results::{Figure, Measurement};
use super::stats::{Spread, paired_ratios};
use crate::error::{Error, Result};

/// A whole comparison run: where and when it ran, how, and every measurement.
///
/// # Examples
/// In a real run the measurements come from [`measure_trials`](super::measure_trials()),
/// which needs child processes; here two are written by hand.
/// ```
/// use switchboard::measure::{Figure, Latency, Measurement, Mechanism, Report, Settings, Throughput, Trial};
///
/// let trial = |trial, p50_ns, mb_per_s| Trial {
///     trial,
///     latency: Latency { p50_ns, p99_ns: 2 * p50_ns, ..Latency::default() },
///     throughput: Throughput { mb_per_s, ..Throughput::default() },
///     placement: Default::default(),
/// };
/// let pipe = (1..=5).map(|i| trial(i, 80_000 + 1000 * i as u64, 100.0)).collect();
/// let raw = (1..=5).map(|i| trial(i, 76_000 + 1000 * i as u64, 125.0)).collect();
/// let mut report = Report::new(Settings::quick());
/// report.push(Measurement::from_trials("pipe".parse::<Mechanism>()?, 64, pipe));
/// report.push(Measurement::from_trials("raw-pipe".parse::<Mechanism>()?, 64, raw));
/// report.memcpy_mb_per_s.push((64, 9_000.0));
///
/// print!("{}", report.table());
/// let ratio = report.measurements[0].figure(Figure::MbPerSXRaw).unwrap();
/// assert_eq!(ratio.median, 0.8);
/// assert!(report.verdicts()[0].starts_with("    64 B: lowest round trip pipe (83.00 µs)"));
/// assert!(report.to_csv().starts_with("mechanism,kind,raw,size,"));
/// assert!(report.to_json().contains(r#""placement": "unpinned""#));
/// assert_eq!(Report::from_json(&report.to_json())?, report);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// This machine's host name.
    #[serde(default)]
    pub hostname: String,
    /// When the run started, `YYYY-MM-DD HH:MM UTC`.
    #[serde(default)]
    pub date: String,
    /// `pinned parent=cpu0 child=cpu1` or `unpinned`.
    pub placement: String,
    /// What was asked for.
    pub settings: Settings,
    /// Every measurement, transports and raw baselines.
    pub measurements: Vec<Measurement>,
    /// Single-core memcpy bandwidth per size, MB/s (the shared-memory ceiling).
    pub memcpy_mb_per_s: Vec<(usize, f64)>,
}

impl Report {
    /// An empty report for a run with `settings` on this machine, starting now.
    pub fn new(settings: Settings) -> Self {
        let mut placement = match settings.pin {
            Some((p, c)) => format!("pinned parent=cpu{p} child=cpu{c}"),
            None => "unpinned".into(),
        };
        if settings.load > 0 {
            placement.push_str(&format!(", under load of {} processes", settings.load));
        }
        Report {
            cpu_model: super::cpu_model(),
            cpus: super::cpu_count(),
            hostname: super::sys::hostname(),
            date: utc_now(),
            placement,
            settings,
            measurements: Vec::new(),
            memcpy_mb_per_s: Vec::new(),
        }
    }

    /// Adds a measurement, and fills in the trial-by-trial ratios of every transport whose
    /// raw baseline is now in the report.
    pub fn push(&mut self, m: Measurement) {
        self.measurements.push(m);
        self.pair_ratios();
    }

    /// Reads a report that [`to_json`](Report::to_json) wrote, also one from before trials
    /// were repeated (each figure then has one value and a spread of no width).
    ///
    /// # Errors
    /// [`Error::Config`] if `json` is not such a report.
    pub fn from_json(json: &str) -> Result<Report> {
        let mut report: Report =
            serde_json::from_str(json).map_err(|e| Error::Config(format!("not a comparison report: {e}")))?;
        report.pair_ratios();
        Ok(report)
    }

    /// For every transport with a raw baseline in the report, its RTT and MB/s over the
    /// baseline's: per trial where both have trials, else the ratio of the medians.
    fn pair_ratios(&mut self) {
        for i in 0..self.measurements.len() {
            let Some(raw) = self.raw_for(&self.measurements[i]).cloned() else { continue };
            let m = &mut self.measurements[i];
            let ratio = |figure: Figure, m: &Measurement| {
                if m.trials.is_empty() || raw.trials.is_empty() {
                    let (a, b) = (m.figure(figure)?.median, raw.figure(figure)?.median);
                    (b != 0.0).then(|| Spread::point(a / b))
                } else {
                    Spread::of(&paired_ratios(&m.by_trial(figure), &raw.by_trial(figure)))
                }
            };
            m.spread.rtt_p50_x_raw = ratio(Figure::RttP50, m);
            m.spread.mb_per_s_x_raw = ratio(Figure::MbPerS, m);
        }
    }

    /// The raw baseline measured beside `m` (none for a raw baseline itself): its
    /// mechanism's [`raw`](super::Mechanism::raw) (zmq-ipc's is raw-unix), or for a name this
    /// build does not know, the raw one of the same kind.
    fn raw_for(&self, m: &Measurement) -> Option<&Measurement> {
        if m.raw {
            return None;
        }
        let raw = m.mechanism.parse::<super::Mechanism>().ok().map(|x| x.raw().to_string());
        self.measurements
            .iter()
            .find(|r| r.raw && r.size == m.size && raw.as_ref().map_or(r.kind == m.kind, |name| r.mechanism == *name))
    }

    pub(super) fn sizes(&self) -> BTreeSet<usize> {
        self.measurements.iter().map(|m| m.size).collect()
    }

    /// The trials per figure: the most any measurement has (1 for a report from before
    /// trials were repeated).
    pub fn trials(&self) -> usize {
        self.measurements.iter().map(|m| m.trials.len()).max().unwrap_or(0).max(1)
    }

    /// The first line of the table and the chart's title: the machine, the date and the
    /// pinning.
    pub fn title(&self) -> String {
        let host = if self.hostname.is_empty() { String::new() } else { format!(" on {}", self.hostname) };
        let date = if self.date.is_empty() { String::new() } else { format!(", {}", self.date) };
        format!("{} ({} CPUs){host}{date}, {}", self.cpu_model, self.cpus, self.placement)
    }

    /// How many runs (two per trial: round trips and stream) ran on one core, on two, or
    /// moved: `on two cores 40, on one core 10, moved 2`.
    pub fn placement_summary(&self) -> String {
        let mut counts = [0usize; 4];
        for t in self.measurements.iter().flat_map(|m| &m.trials) {
            for p in [&t.placement.latency, &t.placement.throughput] {
                counts[p.cores() as usize] += 1;
            }
        }
        let names = [Cores::One, Cores::Two, Cores::Moved, Cores::Unknown];
        let mut parts: Vec<String> = Vec::new();
        for (i, cores) in names.iter().enumerate() {
            if counts[i] > 0 {
                parts.push(format!("{cores} {}", counts[i]));
            }
        }
        if parts.is_empty() { "not recorded".into() } else { parts.join(", ") }
    }

    /// The report as pretty JSON: the medians where they always were (`latency`,
    /// `throughput`), the spreads under `spread`, every trial under `trials`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }
}

/// Now as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    utc_date(secs)
}

/// Seconds since 1970 as `YYYY-MM-DD HH:MM UTC` (Howard Hinnant's `civil_from_days`).
fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// `64 B`, `16 KiB`, `1 MiB`: the largest binary unit that divides `size` exactly.
///
/// # Examples
/// ```
/// use switchboard::measure::human_size;
///
/// assert_eq!(human_size(64), "64 B");
/// assert_eq!(human_size(16 * 1024), "16 KiB");
/// assert_eq!(human_size(1 << 20), "1 MiB");
/// assert_eq!(human_size(1536), "1536 B"); // not a whole number of KiB
/// ```
pub fn human_size(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::measure::mechanism::Mechanism;
    use crate::measure::placement::Placement;
    use crate::measure::results::{Latency, Throughput, Trial, TrialPlacement};

    fn placed(same: bool) -> Placement {
        Placement { samples: 10, same_core: if same { 10 } else { 0 }, ..Placement::default() }
    }

    pub(in crate::measure) fn trial(trial: usize, p50_ns: u64, mb_per_s: f64, same_core: bool) -> Trial {
        Trial {
            trial,
            latency: Latency { p50_ns, p99_ns: 3 * p50_ns, ..Latency::default() },
            throughput: Throughput { mb_per_s, ..Throughput::default() },
            placement: TrialPlacement { latency: placed(same_core), throughput: placed(same_core) },
        }
    }

    pub(in crate::measure) fn measurement(name: &str, size: usize, trials: Vec<Trial>) -> Measurement {
        Measurement::from_trials(name.parse::<Mechanism>().unwrap(), size, trials)
    }

    #[test]
    fn ratios_are_paired_by_trial_so_host_drift_cancels() {
        // The host got 10x slower in trial 3 for both: the ratio stays 2.
        let t = vec![trial(1, 200, 10.0, false), trial(2, 220, 11.0, false), trial(3, 2000, 1.0, false)];
        let r = vec![trial(3, 1000, 2.0, false), trial(1, 100, 20.0, false), trial(2, 110, 22.0, false)];
        let mut report = Report::new(Settings::quick());
        report.push(measurement("unix", 64, t));
        report.push(measurement("raw-unix", 64, r));
        let m = &report.measurements[0];
        assert_eq!(m.figure(Figure::RttP50XRaw), Some(Spread::point(2.0)));
        assert_eq!(m.figure(Figure::MbPerSXRaw), Some(Spread::point(0.5)));
        assert!(m.figure(Figure::RttP50).unwrap().is_noisy());
        assert!(!m.noisy().contains(&Figure::RttP50XRaw));
        // The median of the paired ratios, not the ratio of the medians (200 / 150).
        let t = vec![trial(1, 100, 1.0, false), trial(2, 300, 1.0, false), trial(3, 200, 1.0, false)];
        let r = vec![trial(1, 100, 1.0, false), trial(2, 150, 1.0, false), trial(3, 400, 1.0, false)];
        let mut other = Report::new(Settings::quick());
        other.push(measurement("pipe", 8, t));
        other.push(measurement("raw-pipe", 8, r));
        let ratio = other.measurements[0].figure(Figure::RttP50XRaw);
        assert_eq!(ratio, Some(Spread { median: 1.0, min: 0.5, max: 2.0 }));
        // A raw baseline has no ratio of its own.
        assert_eq!(report.measurements[1].figure(Figure::RttP50XRaw), None);
    }

    #[test]
    fn json_round_trip_keeps_every_trial() {
        let mut report = Report::new(Settings::default());
        report.push(measurement("pipe", 8, (1..=5).map(|i| trial(i, 1000 + i as u64, 5.0, i % 2 == 0)).collect()));
        report.push(measurement("raw-pipe", 8, (1..=5).map(|i| trial(i, 900, 6.0, false)).collect()));
        report.memcpy_mb_per_s.push((8, 1234.5));
        let json = report.to_json();
        assert!(json.contains("\"trials\": ["));
        let back = Report::from_json(&json).unwrap();
        assert_eq!(back, report);
        assert_eq!(back.measurements[0].trials.len(), 5);
        assert_eq!(back.settings.trials, 5);
        assert!(Report::from_json("{\"cpu_model\": 1}").is_err());
    }

    #[test]
    fn reads_a_report_from_before_trials() {
        let json = r#"{"cpu_model":"x","cpus":2,"placement":"unpinned",
            "settings":{"warmup":1,"iterations":2,"duration":{"secs":0,"nanos":300000000},"stream_bytes":4,"pin":null,"ring_capacity":8},
            "measurements":[
              {"mechanism":"tcp","kind":"tcp","raw":false,"size":64,
               "latency":{"round_trips":1,"min_ns":1,"p50_ns":200,"p90_ns":1,"p99_ns":400,"p999_ns":1,"max_ns":1,"cpu_ns_per_round_trip":1.0},
               "throughput":{"messages":1,"seconds":1.0,"mb_per_s":30.0,"msgs_per_s":1.0,"cpu_ns_per_message":1.0}},
              {"mechanism":"raw-tcp","kind":"tcp","raw":true,"size":64,
               "latency":{"round_trips":1,"min_ns":1,"p50_ns":100,"p90_ns":1,"p99_ns":300,"p999_ns":1,"max_ns":1,"cpu_ns_per_round_trip":1.0},
               "throughput":{"messages":1,"seconds":1.0,"mb_per_s":60.0,"msgs_per_s":1.0,"cpu_ns_per_message":1.0}}],
            "memcpy_mb_per_s":[]}"#;
        let report = Report::from_json(json).unwrap();
        assert_eq!(report.settings.trials, 1);
        assert_eq!(report.trials(), 1);
        let tcp = &report.measurements[0];
        assert_eq!(tcp.figure(Figure::RttP99), Some(Spread::point(400.0)));
        assert_eq!(tcp.figure(Figure::RttP50XRaw), Some(Spread::point(2.0)));
        assert_eq!(tcp.figure(Figure::MbPerSXRaw), Some(Spread::point(0.5)));
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_795_890_600), "2026-11-28 18:30 UTC");
    }
}
