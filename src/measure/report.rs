//! The comparison report: a text table with the median and spread of every figure, notes on
//! where the trials ran, one verdict per size, JSON and CSV.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::placement::Cores;
use super::results::{Figure, Measurement};
use super::stats::{NOISY_SPREAD, Spread, paired_ratios};
use super::{MIN_TRIALS, Settings};
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
        let placement = match settings.pin {
            Some((p, c)) => format!("pinned parent=cpu{p} child=cpu{c}"),
            None => "unpinned".into(),
        };
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

    fn sizes(&self) -> BTreeSet<usize> {
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

    /// The readable table: one row per mechanism and size, each figure as its median and, in
    /// brackets, the smallest and largest trial; then what the marks mean and which noisy
    /// figures split by placement.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let trials = self.trials();
        let _ = writeln!(out, "switchboard comparison: {}", self.title());
        let interval = match trials {
            1 => "one trial: no spread".to_string(),
            n if n < MIN_TRIALS => format!("{n} trials, fewer than {MIN_TRIALS}: the range says little"),
            n => format!(
                "{n} trials, interleaved; with {n} the range holds the true median {:.0}% of the time",
                interval_confidence(n) * 100.0
            ),
        };
        let _ = writeln!(out, "each figure: median of the trials (min-max); {interval}");
        let _ = writeln!(
            out,
            "RTT = round trip (parent -> child -> parent), µs; CPU = both processes' CPU time per round trip or message, µs; xraw = this / its raw baseline, trial by trial"
        );
        let _ = writeln!(
            out,
            "{:<13} {:>7}  {:<22} {:<22} {:>7}  {:<24} {:>8}  {:<21} {:<21} cores RTT/MB/s",
            "mechanism", "size", "RTT p50", "RTT p99", "CPU/RT", "MB/s", "CPU/msg", "RTT xraw", "MB/s xraw",
        );
        for size in self.sizes() {
            for m in self.measurements.iter().filter(|m| m.size == size) {
                let cell = |f: Figure, scale: f64| m.figure(f).map_or("-".to_string(), |s| spread_cell(s, scale));
                let (rtt_cores, mbs_cores) = m.placement_symbols();
                let _ = writeln!(
                    out,
                    "{:<13} {:>7}  {:<22} {:<22} {:>7}  {:<24} {:>8}  {:<21} {:<21} {}/{}",
                    m.mechanism,
                    human_size(size),
                    cell(Figure::RttP50, 1e-3),
                    cell(Figure::RttP99, 1e-3),
                    sig(m.latency.cpu_ns_per_round_trip / 1e3),
                    cell(Figure::MbPerS, 1.0),
                    sig(m.throughput.cpu_ns_per_message / 1e3),
                    cell(Figure::RttP50XRaw, 1.0),
                    cell(Figure::MbPerSXRaw, 1.0),
                    rtt_cores,
                    mbs_cores,
                );
            }
            if let Some((_, mbs)) = self.memcpy_mb_per_s.iter().find(|(s, _)| *s == size) {
                // Under the MB/s column: past mechanism, size, two RTT cells and CPU/RT.
                let gap = " ".repeat(22 + 1 + 22 + 1 + 7 + 2);
                let _ = writeln!(
                    out,
                    "{:<13} {:>7}  {gap}{:<24} (single-core copy ceiling)",
                    "memcpy",
                    human_size(size),
                    sig(*mbs)
                );
            }
        }
        let _ = writeln!(
            out,
            "~ = the trials of this figure disagree by more than {:.0}% of its median: trust the range, not the median",
            NOISY_SPREAD * 100.0
        );
        let _ = writeln!(
            out,
            "cores: one character per trial, round trips / streams: 1 = both processes on one core, 2 = on two cores, m = moved"
        );
        let _ = writeln!(out, "runs: {} ({})", self.placement_summary(), self.placement);
        let notes = self.placement_notes();
        if !notes.is_empty() {
            let _ =
                writeln!(out, "noisy figures explained by placement (median of the trials on one core and on two):");
            for line in notes {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }

    /// For each noisy absolute figure whose trials on one core and on two cores differ by
    /// more than [`NOISY_SPREAD`], the median of each group: `unix 64 KiB MB/s: 605 on one
    /// core (2), 8537 on two cores (3)`. Trials that moved between the two are left out.
    pub fn placement_notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.measurements {
            for f in m.noisy().into_iter().filter(|f| !f.is_ratio()) {
                let groups: Vec<(Cores, Vec<f64>, Spread)> = m
                    .by_placement(f)
                    .into_iter()
                    .filter(|(cores, _)| matches!(cores, Cores::One | Cores::Two))
                    .filter_map(|(cores, vs)| Spread::of(&vs).map(|s| (cores, vs, s)))
                    .collect();
                let [(_, one, a), (_, two, b)] = &groups[..] else { continue };
                let (lo, hi) = (a.median.min(b.median), a.median.max(b.median));
                if hi <= lo * (1.0 + NOISY_SPREAD) {
                    continue;
                }
                let (scale, unit) = if f == Figure::MbPerS { (1.0, "") } else { (1e-3, " µs") };
                out.push(format!(
                    "{} {} {f}{unit}: {} {} ({}), {} {} ({})",
                    m.mechanism,
                    human_size(m.size),
                    sig(a.median * scale),
                    Cores::One,
                    one.len(),
                    sig(b.median * scale),
                    Cores::Two,
                    two.len()
                ));
            }
        }
        out
    }

    /// One line per size: the fastest transport by median round trip and by throughput, and
    /// by how much it beats the runner-up; `~` after a figure whose trials disagree.
    pub fn verdicts(&self) -> Vec<String> {
        let mark = |m: &Measurement, f: Figure| if m.figure(f).is_some_and(|s| s.is_noisy()) { "~" } else { "" };
        let mut out = Vec::new();
        for size in self.sizes() {
            let mut transports: Vec<&Measurement> =
                self.measurements.iter().filter(|m| m.size == size && !m.raw).collect();
            if transports.is_empty() {
                continue;
            }
            transports.sort_by_key(|m| m.latency.p50_ns);
            let best = transports[0];
            let mut line = format!(
                "{:>8}: lowest round trip {} ({:.2} µs{})",
                human_size(size),
                best.mechanism,
                best.latency.p50_ns as f64 / 1e3,
                mark(best, Figure::RttP50)
            );
            if let Some(second) = transports.get(1) {
                let _ = write!(
                    line,
                    ", {:.1}x faster than {}",
                    second.latency.p50_ns as f64 / best.latency.p50_ns.max(1) as f64,
                    second.mechanism
                );
            }
            transports.sort_by(|a, b| b.throughput.mb_per_s.total_cmp(&a.throughput.mb_per_s));
            let best = transports[0];
            let _ = write!(
                line,
                "; highest throughput {} ({:.0} MB/s{})",
                best.mechanism,
                best.throughput.mb_per_s,
                mark(best, Figure::MbPerS)
            );
            if let Some(second) = transports.get(1) {
                let _ = write!(
                    line,
                    ", {:.1}x {}",
                    best.throughput.mb_per_s / second.throughput.mb_per_s.max(1e-9),
                    second.mechanism
                );
            }
            out.push(line);
        }
        out
    }

    /// The report as pretty JSON: the medians where they always were (`latency`,
    /// `throughput`), the spreads under `spread`, every trial under `trials`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// One CSV row per measurement, with a header row: the medians in the columns of earlier
    /// versions, then the number of trials, the min and max of each figure, the noisy
    /// figures and the placement of each trial.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "mechanism,kind,raw,size,round_trips,rtt_min_ns,rtt_p50_ns,rtt_p90_ns,rtt_p99_ns,rtt_p999_ns,rtt_max_ns,cpu_ns_per_round_trip,messages,seconds,mb_per_s,msgs_per_s,cpu_ns_per_message,rtt_p50_x_raw,mb_per_s_x_raw,\
             trials,rtt_p50_min_ns,rtt_p50_max_ns,rtt_p99_min_ns,rtt_p99_max_ns,mb_per_s_min,mb_per_s_max,rtt_p50_x_raw_min,rtt_p50_x_raw_max,mb_per_s_x_raw_min,mb_per_s_x_raw_max,noisy,cores_rtt,cores_stream\n",
        );
        for m in &self.measurements {
            let l = &m.latency;
            let t = &m.throughput;
            let get = |f: Figure, pick: fn(&Spread) -> f64, digits: usize| {
                m.figure(f).map_or(String::new(), |s| format!("{:.*}", digits, pick(&s)))
            };
            let noisy: Vec<String> = m.noisy().iter().map(|f| f.to_string()).collect();
            let (rtt_cores, stream_cores) = m.placement_symbols();
            let _ = write!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{:.1},{},{:.6},{:.3},{:.1},{:.1},{},{},",
                m.mechanism,
                m.kind,
                m.raw,
                m.size,
                l.round_trips,
                l.min_ns,
                l.p50_ns,
                l.p90_ns,
                l.p99_ns,
                l.p999_ns,
                l.max_ns,
                l.cpu_ns_per_round_trip,
                t.messages,
                t.seconds,
                t.mb_per_s,
                t.msgs_per_s,
                t.cpu_ns_per_message,
                get(Figure::RttP50XRaw, |s| s.median, 3),
                get(Figure::MbPerSXRaw, |s| s.median, 3),
            );
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                m.trials.len(),
                get(Figure::RttP50, |s| s.min, 0),
                get(Figure::RttP50, |s| s.max, 0),
                get(Figure::RttP99, |s| s.min, 0),
                get(Figure::RttP99, |s| s.max, 0),
                get(Figure::MbPerS, |s| s.min, 3),
                get(Figure::MbPerS, |s| s.max, 3),
                get(Figure::RttP50XRaw, |s| s.min, 3),
                get(Figure::RttP50XRaw, |s| s.max, 3),
                get(Figure::MbPerSXRaw, |s| s.min, 3),
                get(Figure::MbPerSXRaw, |s| s.max, 3),
                noisy.join(" "),
                rtt_cores,
                stream_cores,
            );
        }
        out
    }
}

/// The chance that the range of `n` trials holds the true median: 1 - 2 / 2^n.
fn interval_confidence(n: usize) -> f64 {
    1.0 - 2.0 * 0.5f64.powi(n.min(64) as i32)
}

/// About three significant digits, no exponent: `0.72`, `17.3`, `106`, `17726`.
pub(crate) fn sig(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 0.995 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// `median (min-max)` scaled, with `~` after a noisy figure; just the value when the trials
/// agree exactly (one trial).
fn spread_cell(s: Spread, scale: f64) -> String {
    let mark = if s.is_noisy() { "~" } else { "" };
    if s.min == s.max {
        return format!("{}{mark}", sig(s.median * scale));
    }
    format!("{} ({}-{}){mark}", sig(s.median * scale), sig(s.min * scale), sig(s.max * scale))
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
mod tests {
    use super::*;
    use crate::measure::mechanism::Mechanism;
    use crate::measure::placement::Placement;
    use crate::measure::results::{Latency, Throughput, Trial, TrialPlacement};

    fn placed(same: bool) -> Placement {
        Placement { samples: 10, same_core: if same { 10 } else { 0 }, parent_cpus: vec![0], child_cpus: vec![0] }
    }

    pub(crate) fn trial(trial: usize, p50_ns: u64, mb_per_s: f64, same_core: bool) -> Trial {
        Trial {
            trial,
            latency: Latency { p50_ns, p99_ns: 3 * p50_ns, ..Latency::default() },
            throughput: Throughput { mb_per_s, ..Throughput::default() },
            placement: TrialPlacement { latency: placed(same_core), throughput: placed(same_core) },
        }
    }

    fn measurement(name: &str, size: usize, trials: Vec<Trial>) -> Measurement {
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
    fn table_marks_noisy_figures_and_names_the_placement_split() {
        let mut report = Report::new(Settings::default());
        // Two trials on one core stream at a tenth of the rate.
        let trials =
            (1..=5).map(|i| trial(i, 50_000, if i <= 2 { 600.0 } else { 8500.0 + i as f64 }, i <= 2)).collect();
        report.push(measurement("unix", 64 << 10, trials));
        let table = report.table();
        assert!(table.contains("8503 (600-8505)~"), "{table}");
        assert!(table.contains("11222/11222"), "{table}");
        let notes = report.placement_notes();
        assert_eq!(notes, ["unix 64 KiB MB/s: 600 on one core (2), 8504 on two cores (3)"]);
        assert!(report.placement_summary().contains("on one core 4, on two cores 6"));
    }

    #[test]
    fn csv_has_median_min_and_max_columns() {
        let mut report = Report::new(Settings::default());
        report.push(measurement("pipe", 64, (1..=5).map(|i| trial(i, 1000 * i as u64, 10.0, false)).collect()));
        let csv = report.to_csv();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header.len(), row.len());
        let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!((col("rtt_p50_ns"), col("rtt_p50_min_ns"), col("rtt_p50_max_ns")), ("3000", "1000", "5000"));
        assert_eq!(col("trials"), "5");
        assert_eq!(col("noisy"), "RTT p50 RTT p99");
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_795_890_600), "2026-11-28 18:30 UTC");
    }

    #[test]
    fn confidence_of_the_range() {
        assert_eq!(interval_confidence(5), 0.9375);
        assert!(interval_confidence(1) == 0.0);
    }
}
