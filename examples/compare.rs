//! The side-by-side comparison: every transport (shm in each wait strategy), the raw
//! mechanism under it and baselines of other mechanisms, at each message size, each in a
//! real child process.
//!
//! ```text
//! cargo run --release --features measure --example compare                 # the default run, a few minutes on 2 vCPUs
//! cargo run --release --features measure --example compare -- --quick      # a smoke test, seconds
//! cargo run --release --features measure --example compare -- --transports unix,shm-spin --sizes 64,64K --pin 0,1
//! cargo run --release --features measure --example compare -- --transports mq,udp,eventfd-shm --sizes 64
//! cargo run --release --features measure --example compare -- --quick --open-loop 10k,100k
//! cargo run --release --features measure --example compare -- --baseline earlier/compare.json
//! cargo run --release --features measure --example compare -- --transports pipe,shm-block,shm-adaptive --sizes 64 --load 8
//! ```
//! Every figure is the median of 5 or more interleaved trials, shown with its range. Prints
//! the physical floors, a table, the distance of each row from its floor, what unpaced UDP
//! loses, one verdict per size, with `--open-loop` a latency section per offered rate, and
//! with `--baseline` the change of every figure since an earlier run; writes
//! `compare.json`, `compare.csv`, `compare.svg` and `compare-extras.json` (floors, open loop,
//! UDP loss) to `--out` (default `target/switchboard/`).

mod chart;
mod common;

use std::error::Error;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use switchboard::measure::{
    self, Baseline, Floors, MIN_TRIALS, Mechanism, OpenLoop, Report, Role, Settings, Spread, UdpLoss, human_size,
};

/// Compare switchboard's transports side by side, each against its raw mechanism.
///
/// Measures round-trip latency and one-way throughput of each transport (shm in each wait
/// strategy), of the raw mechanism under it (plain syscalls, no framing) and of baselines of
/// other mechanisms (mq, udp, eventfd-shm), at each message size, each time with a fresh
/// child process, in 5 or more interleaved trials (each mechanism once, then again); and
/// the machine's floors first. Prints each figure's median and range over the trials, the
/// floors and each row's distance from its floor, and one verdict per size, and writes
/// compare.json, compare.csv, compare.svg and compare-extras.json to --out.
#[derive(Parser, Debug)]
#[command(name = "compare", version)]
struct Args {
    /// Comma-separated transports: tcp, unix, pipe, shm, shm-spin, shm-block, shm-adaptive,
    /// and with the feature zmq zmq-ipc, zmq-tcp (each is measured beside its raw baseline;
    /// zmq's are the sockets under it, raw-unix and raw-tcp); and baselines of other
    /// mechanisms: mq, udp, eventfd-shm [default: all of them]
    #[arg(long, value_delimiter = ',', value_parser = parse_transport)]
    transports: Vec<Mechanism>,

    /// Comma-separated message sizes, with optional K or M suffix (KiB, MiB), up to 64M
    /// [default: 8,64,1K,16K,64K,1M; with --quick: 64,64K]
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sizes: Vec<usize>,

    /// Measured round trips per transport, size and trial, at most [default: 20000; --quick: 2000]
    #[arg(long, value_parser = parse_count)]
    iterations: Option<usize>,

    /// Time budget of each latency measurement in seconds, per trial [default: 0.1; --quick: 0.01]
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Pin parent and child to two cores, e.g. 0,1 (records the placement in the results)
    #[arg(long, value_parser = parse_pin)]
    pin: Option<(usize, usize)>,

    /// Folder for compare.json, compare.csv, compare.svg and compare-extras.json
    #[arg(long, default_value = "target/switchboard")]
    out: PathBuf,

    /// Trials of every mechanism at every size, interleaved; at least 5, fewer only with
    /// --quick [default: 5]
    #[arg(long, value_parser = parse_trials)]
    trials: Option<usize>,

    /// An earlier run's compare.json: print the change of every figure since then, marking
    /// changes beyond both runs' spreads
    #[arg(long, value_name = "JSON")]
    baseline: Option<PathBuf>,

    /// A fast smoke run (two sizes, a tenth of the work per trial)
    #[arg(long)]
    quick: bool,

    /// Measure on a busy machine: N background processes that each compute 3 ms, then sleep
    /// 0.5 ms, like the jobs of a parallel build (0: none)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    load: u16,

    /// Also measure open-loop latency at these offered rates, messages/s, e.g. 10k,100k
    /// (64-byte messages, every mechanism compared) [default: off]
    #[arg(long, value_delimiter = ',', value_parser = parse_rate)]
    open_loop: Vec<u64>,

    /// Seconds of each open-loop run [default: 1; --quick: 0.2]
    #[arg(long, value_parser = parse_duration)]
    open_loop_duration: Option<Duration>,
}

fn parse_transport(s: &str) -> Result<Mechanism, String> {
    measure::parse_transport(s).map_err(common::reason)
}

fn parse_rate(s: &str) -> Result<u64, String> {
    measure::parse_rate(s).map_err(common::reason)
}

fn parse_count(s: &str) -> Result<usize, String> {
    measure::parse_count(s).map_err(common::reason)
}

/// A size the comparison measures: at most 64 MiB, the transports' default message limit.
fn parse_size(s: &str) -> Result<usize, String> {
    let size = measure::parse_size(s).map_err(common::reason)?;
    if size > 64 << 20 {
        return Err(format!("{size} bytes is above 64 MiB, the largest size compared"));
    }
    Ok(size)
}

fn parse_trials(s: &str) -> Result<usize, String> {
    let n = measure::parse_count(s).map_err(common::reason)?;
    if n > 1000 {
        return Err("at most 1000".into());
    }
    Ok(n)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    measure::parse_seconds(s).map_err(common::reason)
}

fn parse_pin(s: &str) -> Result<(usize, usize), String> {
    measure::parse_pin(s).map_err(common::reason)
}

fn main() -> ExitCode {
    // This binary is also the measurement child.
    measure::serve_if_child();
    let args = Args::parse();
    // Read the earlier run before minutes of measuring; a bad file is a usage error.
    let baseline = match args.baseline.as_deref().map(read_baseline).transpose() {
        Ok(baseline) => baseline,
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {e}");
            return ExitCode::from(2);
        }
    };
    common::exit_code(run(args, baseline))
}

fn read_baseline(path: &Path) -> Result<Report, String> {
    let json = std::fs::read_to_string(path).map_err(|e| format!("--baseline {}: {e}", path.display()))?;
    Report::from_json(&json).map_err(|e| format!("--baseline {}: {}", path.display(), common::reason(e)))
}

fn run(args: Args, baseline: Option<Report>) -> Result<(), Box<dyn Error>> {
    let mut settings = if args.quick { Settings::quick() } else { Settings::default() };
    if let Some(n) = args.iterations {
        settings.iterations = n;
    }
    if let Some(d) = args.duration {
        settings.duration = d;
    }
    if let Some(n) = args.trials {
        if n < MIN_TRIALS && !args.quick {
            return Err(format!(
                "--trials {n}: at least {MIN_TRIALS}, the fewest whose range means something (--quick allows fewer)"
            )
            .into());
        }
        settings.trials = n;
    }
    settings.pin = args.pin;
    settings.load = usize::from(args.load);
    // Fail now, not after minutes of measuring, if the results cannot be written.
    check_writable(&args.out)?;
    let transports = if args.transports.is_empty() {
        [Mechanism::all_transports(), Mechanism::all_baselines()].concat()
    } else {
        args.transports
    };
    let sizes = if !args.sizes.is_empty() {
        args.sizes
    } else if args.quick {
        vec![64, 64 << 10]
    } else {
        vec![8, 64, 1 << 10, 16 << 10, 64 << 10, 1 << 20]
    };

    // Each transport and, once per kind, its raw baseline right after it: the two runs of a
    // trial whose ratio is taken are moments apart.
    let mechanisms = Mechanism::with_baselines(&transports);

    // Started after the arguments are checked, stopped (killed) when `run` returns.
    let load = measure::Load::start(settings.load)?;
    if !load.is_empty() {
        eprintln!(
            "under load: {} background processes, each computing {:?} then sleeping {:?}",
            load.len(),
            measure::LOAD_BUSY,
            measure::LOAD_SLEEP
        );
    }
    let started = Instant::now();
    // The floors first, while no child runs.
    let floors = Floors::measure(&sizes, settings.duration)?;
    let mut skipped = Vec::new();
    let bar = ProgressBar::new((mechanisms.len() * sizes.len() * settings.trials) as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed}]").expect("valid template"));
    let mut report = Report::new(settings.clone());
    for &size in &sizes {
        let mut here = Vec::new();
        for &m in &mechanisms {
            match m.max_message_size().filter(|&max| size > max) {
                Some(max) => {
                    skipped
                        .push(format!("{m} {}: skipped, it carries at most {max} bytes a message", human_size(size)));
                    bar.inc(settings.trials as u64);
                }
                None => here.push(m),
            }
        }
        let mut current = None;
        let measured = measure::measure_trials(&here, size, &settings, |m, trial| {
            if current.is_some() {
                bar.inc(1);
            }
            current = Some((m, trial));
            bar.set_message(format!("{m} {} trial {trial}/{}", human_size(size), settings.trials));
        });
        let measured = measured.map_err(|e| match current {
            Some((m, trial)) => format!("{m} at {size} B, trial {trial}: {e}"),
            None => format!("at {size} B: {e}"),
        })?;
        if current.is_some() {
            bar.inc(1);
        }
        for m in measured {
            report.push(m);
        }
        report.memcpy_mb_per_s.push((size, measure::memcpy_mb_per_s(size, settings.duration / 3)));
    }
    bar.finish_and_clear();
    let open_loop_duration =
        args.open_loop_duration.unwrap_or(if args.quick { Duration::from_millis(200) } else { Duration::from_secs(1) });
    let extras = measure_extras(&args.open_loop, open_loop_duration, &mechanisms, &sizes, &settings, floors, skipped)?;

    // Stdout may be closed (`| head`), but the files are the results: write them regardless.
    let mut out = io::stdout().lock();
    let printed = print_results(&mut out, &report, baseline.as_ref().map(|b| (b, args.baseline.as_deref())))
        .and_then(|()| extras.print(&mut out, &report));
    let json = args.out.join("compare.json");
    let csv = args.out.join("compare.csv");
    let svg = args.out.join("compare.svg");
    let extras_json = args.out.join("compare-extras.json");
    std::fs::write(&extras_json, extras.to_json()).map_err(|e| format!("writing {}: {e}", extras_json.display()))?;
    std::fs::write(&json, report.to_json()).map_err(|e| format!("writing {}: {e}", json.display()))?;
    std::fs::write(&csv, report.to_csv()).map_err(|e| format!("writing {}: {e}", csv.display()))?;
    chart::draw(&report, &svg).map_err(|e| format!("drawing {}: {e}", svg.display()))?;
    printed?;
    writeln!(
        out,
        "\nfinished in {:.1} s; wrote {}, {}, {}",
        started.elapsed().as_secs_f64(),
        json.display(),
        csv.display(),
        svg.display()
    )?;
    Ok(())
}

/// The table, then one verdict per size, then the changes since the baseline run if there
/// is one.
fn print_results(out: &mut impl Write, report: &Report, baseline: Option<(&Report, Option<&Path>)>) -> io::Result<()> {
    writeln!(out, "{}", report.table())?;
    for line in report.verdicts() {
        writeln!(out, "{line}")?;
    }
    if let Some((earlier, path)) = baseline {
        let source = path.map_or("the baseline".to_string(), |p| p.display().to_string());
        writeln!(out, "\n{}", report.changes_since(earlier, &source))?;
    }
    Ok(())
}

/// What the comparison measures beside the table: floors, open loop, UDP's loss.
#[derive(serde::Serialize)]
struct Extras {
    floors: Floors,
    /// An empty timed interval, ns: inside every round trip of the table (`timer_ns`).
    timer_ns: f64,
    /// Mechanism and size pairs not measured, and why.
    skipped: Vec<String>,
    udp_loss: Vec<UdpLoss>,
    udp_resends: u64,
    open_loop: Vec<OpenLoop>,
    batch: Vec<BatchRow>,
}

/// One transport's batched stream at one size against its raw mechanism's one syscall per
/// message, over interleaved trials.
#[derive(serde::Serialize)]
struct BatchRow {
    mechanism: String,
    size: usize,
    /// Messages/s of each trial, batched and raw.
    batched_msgs_per_s: Vec<f64>,
    raw_msgs_per_s: Vec<f64>,
    /// The median of the trial-by-trial ratios, and their range.
    x_raw: Spread,
}

/// Streams of up to 64-byte messages sent with `send_batch` (64 per call) by every kernel
/// transport compared, against its raw mechanism's stream (one syscall per message), trial by
/// trial.
fn measure_batches(
    mechanisms: &[Mechanism],
    sizes: &[usize],
    settings: &Settings,
) -> Result<Vec<BatchRow>, Box<dyn Error>> {
    let mut rows = Vec::new();
    let batched: Vec<Mechanism> = mechanisms
        .iter()
        .copied()
        .filter(|m| matches!(m, Mechanism::Transport { kind, .. } if kind.name() != "shm"))
        .collect();
    let bar = ProgressBar::new((batched.len() * sizes.iter().filter(|&&s| s <= 64).count() * settings.trials) as u64);
    for &size in sizes.iter().filter(|&&s| s <= 64) {
        for &m in &batched {
            let (mut ours, mut raw) = (Vec::new(), Vec::new());
            for trial in 1..=settings.trials {
                bar.set_message(format!("batched {m} {} trial {trial}", human_size(size)));
                let run = |m: Mechanism| {
                    measure::measure_batch(m, size, settings).map_err(|e| format!("batched {m} at {size} B: {e}"))
                };
                ours.push(run(m)?.msgs_per_s);
                raw.push(run(m.raw())?.msgs_per_s);
                bar.inc(1);
            }
            let ratios: Vec<f64> = ours.iter().zip(&raw).map(|(a, b)| a / b).collect();
            let x_raw = Spread::of(&ratios).ok_or("no trials")?;
            rows.push(BatchRow {
                mechanism: m.to_string(),
                size,
                batched_msgs_per_s: ours,
                raw_msgs_per_s: raw,
                x_raw,
            });
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// Runs the UDP loss probe (if udp is compared) and the open-loop runs.
fn measure_extras(
    rates: &[u64],
    duration: Duration,
    mechanisms: &[Mechanism],
    sizes: &[usize],
    settings: &Settings,
    floors: Floors,
    skipped: Vec<String>,
) -> Result<Extras, Box<dyn Error>> {
    let mut udp_loss = Vec::new();
    if mechanisms.contains(&Mechanism::Baseline(Baseline::Udp)) {
        for &size in sizes.iter().filter(|&&s| Mechanism::Baseline(Baseline::Udp).max_message_size() >= Some(s)) {
            let count = (settings.stream_bytes / size).clamp(1000, 100_000) as u64;
            udp_loss.push(measure::udp_stream_loss(size, count)?);
        }
    }
    let mut open_loop = Vec::new();
    let bar = ProgressBar::new((rates.len() * mechanisms.len()) as u64);
    for &rate in rates {
        for &m in mechanisms {
            bar.set_message(format!("open loop {m} {rate}/s"));
            let run = measure::open_loop(m, 64, rate, duration, settings)
                .map_err(|e| format!("{m} open loop at {rate}/s: {e}"))?;
            open_loop.push(run);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let batch = measure_batches(mechanisms, sizes, settings)?;
    let timer_ns = measure::timer_ns(settings.duration);
    Ok(Extras { floors, timer_ns, skipped, udp_loss, udp_resends: measure::udp_resends(), open_loop, batch })
}

impl Extras {
    /// Printed after the table: which row is which, what was skipped, the floors and each
    /// row's distance from its floor, UDP's loss, and the open-loop sections.
    fn print(&self, out: &mut impl Write, report: &Report) -> io::Result<()> {
        let mechanisms: Vec<Mechanism> = {
            let mut seen = Vec::new();
            for m in &report.measurements {
                if let Ok(m) = m.mechanism.parse::<Mechanism>()
                    && !seen.contains(&m)
                {
                    seen.push(m);
                }
            }
            seen
        };
        writeln!(out, "\nrows:")?;
        for line in Role::legend(&mechanisms) {
            writeln!(out, "  {line}")?;
        }
        if !self.skipped.is_empty() {
            writeln!(out, "not measured:")?;
        }
        for line in &self.skipped {
            writeln!(out, "  {line}")?;
        }
        write!(out, "\n{}", self.floors.table())?;
        // Not a floor: the cost of timing each round trip, which the table's figures include and
        // the floors (timed in batches) do not.
        writeln!(
            out,
            "  {:<24} {:>9.3} µs   two clock reads back to back: inside every round trip timed above\n",
            "timer",
            self.timer_ns / 1e3
        )?;
        writeln!(out, "{}", self.floors.distances(&report.measurements))?;
        if !self.udp_loss.is_empty() {
            writeln!(
                out,
                "udp: measured rows are paced by a credit window (nothing lost); {} round-trip resends. Unpaced, as fast as one thread sends:",
                self.udp_resends
            )?;
            for l in &self.udp_loss {
                writeln!(
                    out,
                    "  {:>8}: sent {}, received {} ({:.1}% lost; receive buffer {} B)",
                    human_size(l.size),
                    l.sent,
                    l.received,
                    l.lost_fraction() * 100.0,
                    l.rcvbuf
                )?;
            }
            writeln!(out)?;
        }
        let mut rates: Vec<f64> = self.open_loop.iter().map(|r| r.offered_per_s).collect();
        rates.dedup();
        for rate in rates {
            writeln!(
                out,
                "open loop at {rate:.0} messages/s, 64 B: µs from the due send time to the echo (corrected for coordinated omission, as wrk2); closed = from the actual send"
            )?;
            writeln!(
                out,
                "{:<13} {:>11} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11} {:>10}  kept up",
                "mechanism", "achieved/s", "p50", "p99", "p99.9", "max", "closed p50", "closed p99", "lag p99",
            )?;
            for r in self.open_loop.iter().filter(|r| r.offered_per_s == rate) {
                let us = |ns: u64| ns as f64 / 1e3;
                writeln!(
                    out,
                    "{:<13} {:>11.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11.2} {:>11.2} {:>10.2}  {}",
                    r.mechanism,
                    r.achieved_per_s,
                    us(r.p50_ns),
                    us(r.p99_ns),
                    us(r.p999_ns),
                    us(r.max_ns),
                    us(r.uncorrected_p50_ns),
                    us(r.uncorrected_p99_ns),
                    us(r.send_lag_p99_ns),
                    if r.kept_up() { "yes" } else { "NO: achieved < offered" }
                )?;
            }
            writeln!(out)?;
        }
        if !self.batch.is_empty() {
            writeln!(
                out,
                "batched sends: send_batch of {} messages per call, against the raw mechanism's one syscall per message (messages/s, median of {} trials, ratio trial by trial)",
                measure::BATCH_MESSAGES,
                self.batch.first().map_or(0, |r| r.raw_msgs_per_s.len())
            )?;
            writeln!(out, "{:<13} {:>6} {:>12} {:>12}  x raw (min-max)", "mechanism", "size", "batched/s", "raw/s")?;
            for r in &self.batch {
                let median = |v: &[f64]| Spread::of(v).map_or(0.0, |s| s.median);
                writeln!(
                    out,
                    "{:<13} {:>6} {:>12.0} {:>12.0}  {:.2} ({:.2}-{:.2})",
                    r.mechanism,
                    human_size(r.size),
                    median(&r.batched_msgs_per_s),
                    median(&r.raw_msgs_per_s),
                    r.x_raw.median,
                    r.x_raw.min,
                    r.x_raw.max
                )?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the extras always serialize")
    }
}

/// Creates `dir` if needed and checks that a file can be written in it.
fn check_writable(dir: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("--out {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".switchboard-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
