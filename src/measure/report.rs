//! The comparison report: a text table, one verdict per size, JSON and CSV.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Measurement, Settings};

/// A whole comparison run: where it ran, how, and every measurement.
///
/// # Examples
/// In a real run the measurements come from [`measure`](super::measure()), which needs a
/// child process; here one is written by hand.
/// ```
/// use switchboard::measure::{Latency, Measurement, Report, Settings, Throughput};
///
/// let mut report = Report::new(Settings::quick());
/// report.measurements.push(Measurement {
///     mechanism: "pipe".into(),
///     kind: "pipe".into(),
///     raw: false,
///     size: 64,
///     latency: Latency {
///         round_trips: 2000,
///         min_ns: 61_000,
///         p50_ns: 80_000,
///         p90_ns: 95_000,
///         p99_ns: 130_000,
///         p999_ns: 190_000,
///         max_ns: 250_000,
///         cpu_ns_per_round_trip: 60_000.0,
///     },
///     throughput: Throughput {
///         messages: 200_000,
///         seconds: 0.5,
///         mb_per_s: 25.6,
///         msgs_per_s: 400_000.0,
///         cpu_ns_per_message: 2_300.0,
///     },
/// });
/// report.memcpy_mb_per_s.push((64, 9_000.0));
///
/// print!("{}", report.table());
/// assert_eq!(report.verdicts(), ["    64 B: lowest round trip pipe (80.00 µs); highest throughput pipe (26 MB/s)"]);
/// assert!(report.to_csv().starts_with("mechanism,kind,raw,size,"));
/// assert!(report.to_json().contains(r#""placement": "unpinned""#));
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// `pinned parent=0 child=1` or `unpinned`.
    pub placement: String,
    /// What was asked for.
    pub settings: Settings,
    /// Every measurement, transports and raw baselines.
    pub measurements: Vec<Measurement>,
    /// Single-core memcpy bandwidth per size, MB/s (the shared-memory ceiling).
    pub memcpy_mb_per_s: Vec<(usize, f64)>,
}

impl Report {
    /// An empty report for a run with `settings` on this machine.
    pub fn new(settings: Settings) -> Self {
        let placement = match settings.pin {
            Some((p, c)) => format!("pinned parent=cpu{p} child=cpu{c}"),
            None => "unpinned".into(),
        };
        Report {
            cpu_model: super::cpu_model(),
            cpus: super::cpu_count(),
            placement,
            settings,
            measurements: Vec::new(),
            memcpy_mb_per_s: Vec::new(),
        }
    }

    /// The raw baseline measured beside `m`: its mechanism's [`raw`](super::Mechanism::raw)
    /// (zmq-ipc's is raw-unix), or for a name this build does not know, the raw one of the
    /// same kind.
    fn raw_for(&self, m: &Measurement) -> Option<&Measurement> {
        let raw = m.mechanism.parse::<super::Mechanism>().ok().map(|x| x.raw().to_string());
        self.measurements
            .iter()
            .find(|r| r.raw && r.size == m.size && raw.as_ref().map_or(r.kind == m.kind, |name| r.mechanism == *name))
    }

    fn sizes(&self) -> BTreeSet<usize> {
        self.measurements.iter().map(|m| m.size).collect()
    }

    /// The readable table: one row per mechanism and size.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "switchboard comparison: {} ({} CPUs, {})", self.cpu_model, self.cpus, self.placement);
        let _ = writeln!(
            out,
            "RTT = round trip (parent -> child -> parent), µs; CPU = both processes' user+sys time per message; x raw = this / raw baseline of the same mechanism"
        );
        let _ = writeln!(
            out,
            "{:<13} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>11} {:>9} {:>8} {:>8}",
            "mechanism",
            "size",
            "RTT p50",
            "RTT p99",
            "RTT p99.9",
            "CPU/RT",
            "MB/s",
            "msgs/s",
            "CPU/msg",
            "RTT xraw",
            "MB/s xraw"
        );
        for size in self.sizes() {
            for m in self.measurements.iter().filter(|m| m.size == size) {
                let raw = self.raw_for(m).filter(|_| !m.raw);
                let rtt_ratio = raw.map_or("-".to_string(), |r| {
                    format!("{:.2}", m.latency.p50_ns as f64 / r.latency.p50_ns.max(1) as f64)
                });
                let tp_ratio = raw.map_or("-".to_string(), |r| {
                    format!("{:.2}", m.throughput.mb_per_s / r.throughput.mb_per_s.max(1e-9))
                });
                let _ = writeln!(
                    out,
                    "{:<13} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>11.0} {:>9.3} {:>8} {:>8}",
                    m.mechanism,
                    human_size(size),
                    m.latency.p50_ns as f64 / 1e3,
                    m.latency.p99_ns as f64 / 1e3,
                    m.latency.p999_ns as f64 / 1e3,
                    m.latency.cpu_ns_per_round_trip / 1e3,
                    m.throughput.mb_per_s,
                    m.throughput.msgs_per_s,
                    m.throughput.cpu_ns_per_message / 1e3,
                    rtt_ratio,
                    tp_ratio,
                );
            }
            if let Some((_, mbs)) = self.memcpy_mb_per_s.iter().find(|(s, _)| *s == size) {
                let _ =
                    writeln!(out, "{:<13} {:>8} {:>50.1}  (single-core copy ceiling)", "memcpy", human_size(size), mbs);
            }
        }
        out
    }

    /// One line per size: the fastest transport by median round trip and by throughput, and
    /// by how much it beats the runner-up.
    pub fn verdicts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for size in self.sizes() {
            let mut transports: Vec<&Measurement> =
                self.measurements.iter().filter(|m| m.size == size && !m.raw).collect();
            if transports.is_empty() {
                continue;
            }
            transports.sort_by_key(|m| m.latency.p50_ns);
            let mut line = format!(
                "{:>8}: lowest round trip {} ({:.2} µs)",
                human_size(size),
                transports[0].mechanism,
                transports[0].latency.p50_ns as f64 / 1e3
            );
            if let Some(second) = transports.get(1) {
                let _ = write!(
                    line,
                    ", {:.1}x faster than {}",
                    second.latency.p50_ns as f64 / transports[0].latency.p50_ns.max(1) as f64,
                    second.mechanism
                );
            }
            transports.sort_by(|a, b| b.throughput.mb_per_s.total_cmp(&a.throughput.mb_per_s));
            let _ = write!(
                line,
                "; highest throughput {} ({:.0} MB/s)",
                transports[0].mechanism, transports[0].throughput.mb_per_s
            );
            if let Some(second) = transports.get(1) {
                let _ = write!(
                    line,
                    ", {:.1}x {}",
                    transports[0].throughput.mb_per_s / second.throughput.mb_per_s.max(1e-9),
                    second.mechanism
                );
            }
            out.push(line);
        }
        out
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// One CSV row per measurement, with a header row.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "mechanism,kind,raw,size,round_trips,rtt_min_ns,rtt_p50_ns,rtt_p90_ns,rtt_p99_ns,rtt_p999_ns,rtt_max_ns,cpu_ns_per_round_trip,messages,seconds,mb_per_s,msgs_per_s,cpu_ns_per_message,rtt_p50_x_raw,mb_per_s_x_raw\n",
        );
        for m in &self.measurements {
            let raw = self.raw_for(m).filter(|_| !m.raw);
            let l = &m.latency;
            let t = &m.throughput;
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{:.1},{},{:.6},{:.3},{:.1},{:.1},{},{}",
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
                raw.map_or(String::new(), |r| format!("{:.3}", l.p50_ns as f64 / r.latency.p50_ns.max(1) as f64)),
                raw.map_or(String::new(), |r| format!("{:.3}", t.mb_per_s / r.throughput.mb_per_s.max(1e-9))),
            );
        }
        out
    }
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
