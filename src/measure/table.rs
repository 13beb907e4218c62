//! The report as text: the table with each figure's median and range, the notes on
//! placement, one verdict per size, and CSV.

use std::fmt::Write as _;

use super::MIN_TRIALS;
use super::placement::Cores;
use super::report::{Report, human_size};
use super::results::{Figure, Measurement};
use super::stats::{NOISY_SPREAD, Spread};

impl Report {
    /// The readable table: one row per mechanism and size, each figure as its median and, in
    /// brackets, the smallest and largest trial; then what the marks mean and which noisy
    /// figures split by placement.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let trials = self.trials();
        let _ = writeln!(out, "switchboard comparison: {}", self.title());
        let interval = match trials {
            1 => "one trial: no spread".to_string(),
            n if n < MIN_TRIALS => format!(
                "only {n} trials, fewer than {MIN_TRIALS}: the range holds the true median just {:.0}% of the time",
                interval_confidence(n) * 100.0
            ),
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

    /// One CSV row per measurement, with a header row: the medians in the columns of earlier
    /// versions, then the number of trials, the min and max of each figure, the noisy
    /// figures (their keys, `;`-separated) and the placement of each trial.
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
            let noisy: Vec<&str> = m.noisy().iter().map(|f| f.key()).collect();
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
                noisy.join(";"),
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
fn sig(v: f64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Settings;
    use crate::measure::report::tests::{measurement, trial};

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
        assert_eq!(col("noisy"), "rtt_p50_ns;rtt_p99_ns");
    }

    #[test]
    fn confidence_of_the_range() {
        assert_eq!(interval_confidence(5), 0.9375);
        assert!(interval_confidence(1) == 0.0);
    }
}
