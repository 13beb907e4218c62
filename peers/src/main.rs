//! switchboard beside its peers: ipc-channel, iceoryx2 and interprocess measured with
//! switchboard's harness and its conventions, in one run and one table with switchboard's own
//! transports.
//!
//! ```text
//! cargo run --release -p switchboard-peers                  # the default run, about a minute
//! cargo run --release -p switchboard-peers -- --quick       # a smoke run, well under a minute
//! cargo run --release -p switchboard-peers -- --mechanisms shm-spin,iceoryx2 --sizes 64,1K --json peers.json
//! ```
//!
//! Every mechanism runs between this process and a child (this program started again): round
//! trips at each size into an HdrHistogram (p50, p99, p99.9), then a one-way stream
//! (messages/s, MB/s). The mechanisms take turns, A, B, C, ... then again, for `--trials`
//! rounds (at least 5); the table gives each figure's median and min-max over the rounds.

mod iceoryx2;
mod ipc_channel;
mod local_socket;
mod peer;
mod summary;

use std::error::Error;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use switchboard::measure::{self, Mechanism, Settings, Trial as Measured, human_size};

use peer::Peer;
use summary::{Results, Trial};

/// Measure ipc-channel, iceoryx2 and interprocess beside switchboard's transports.
///
/// Round-trip latency (p50, p99, p99.9) and one-way throughput of each mechanism at each
/// message size, between this process and a fresh child each time, over interleaved trials;
/// prints each figure's median and min-max spread.
#[derive(Parser, Debug)]
#[command(name = "switchboard-peers", version)]
struct Args {
    /// Comma-separated mechanisms: switchboard's tcp, unix, pipe, shm-spin, shm-block,
    /// shm-adaptive, and the peers ipc-channel, iceoryx2, interprocess
    /// [default: unix,shm-spin,shm-adaptive,ipc-channel,iceoryx2,interprocess]
    #[arg(long, value_delimiter = ',', value_parser = parse_contender)]
    mechanisms: Vec<Contender>,

    /// Comma-separated message sizes, with optional K or M suffix (KiB, MiB), up to 64M
    /// [default: 64,64K]
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sizes: Vec<usize>,

    /// Interleaved trials per figure, at least 5
    #[arg(long, default_value_t = 5, value_parser = parse_trials)]
    trials: usize,

    /// Measured round trips per trial, at most [default: 20000; --quick: 2000]
    #[arg(long, value_parser = parse_count)]
    iterations: Option<usize>,

    /// Time budget of each round-trip run in seconds [default: 0.3; --quick: 0.04]
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Pin parent and child to two cores, e.g. 0,1
    #[arg(long, value_parser = parse_pin)]
    pin: Option<(usize, usize)>,

    /// Write every trial and the summary as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,

    /// A fast smoke run: a tenth of the round trips, 4 MiB streams
    #[arg(long)]
    quick: bool,
}

/// A row of the table: one of switchboard's transports, or a peer library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    /// Measured by `switchboard::measure::measure`, as the `compare` example does.
    Switchboard(Mechanism),
    /// Measured by `switchboard::measure::measure_link` over the library's own channel.
    Peer(Peer),
}

impl Contender {
    /// The default rows: switchboard's socket and shared memory, then the peers.
    fn defaults() -> Vec<Contender> {
        let mut out: Vec<Contender> = ["unix", "shm-spin", "shm-adaptive"]
            .iter()
            .map(|name| Contender::Switchboard(name.parse().expect("switchboard's own names parse")))
            .collect();
        out.extend(Peer::ALL.map(Contender::Peer));
        out
    }

    fn measure(self, size: usize, settings: &Settings) -> switchboard::Result<Measured> {
        match self {
            Contender::Switchboard(m) => measure::measure(m, size, settings),
            Contender::Peer(p) => p.measure(size, settings),
        }
    }

    /// What the row measures.
    fn what(self) -> String {
        match self {
            Contender::Switchboard(m) => {
                let how = match m.to_string().as_str() {
                    "shm-spin" => "shared-memory rings, busy-spinning",
                    "shm-adaptive" => {
                        "shared-memory rings, spinning (a learned budget, at most 50 µs) then a futex sleep"
                    }
                    "shm-block" => "shared-memory rings, futex sleep at once",
                    "unix" => "a Unix stream socket, u32 length prefix",
                    "tcp" => "TCP on 127.0.0.1 with TCP_NODELAY, u32 length prefix",
                    "pipe" => "two pipes, u32 length prefix",
                    _ => "a switchboard transport",
                };
                format!("switchboard: Box<dyn Transport> send/recv, {how}")
            }
            Contender::Peer(p) => p.what().to_string(),
        }
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contender::Switchboard(m) => m.fmt(f),
            Contender::Peer(p) => f.pad(p.name()),
        }
    }
}

fn parse_contender(s: &str) -> Result<Contender, String> {
    if let Some(p) = Peer::from_name(s.trim()) {
        return Ok(Contender::Peer(p));
    }
    match measure::parse_transport(s.trim()) {
        Ok(m) => Ok(Contender::Switchboard(m)),
        Err(_) => {
            let peers: Vec<&str> = Peer::ALL.iter().map(|p| p.name()).collect();
            let ours: Vec<String> = Mechanism::all_transports().iter().map(ToString::to_string).collect();
            Err(format!("expected one of {}, {}", ours.join(", "), peers.join(", ")))
        }
    }
}

fn reason(e: switchboard::Error) -> String {
    match e {
        switchboard::Error::Config(why) => why,
        other => other.to_string(),
    }
}

/// A size to measure: at most 64 MiB, switchboard's default message limit.
fn parse_size(s: &str) -> Result<usize, String> {
    let size = measure::parse_size(s).map_err(reason)?;
    if size > 64 << 20 {
        return Err(format!("{size} bytes is above 64 MiB, the largest size compared"));
    }
    Ok(size)
}

fn parse_count(s: &str) -> Result<usize, String> {
    measure::parse_count(s).map_err(reason)
}

/// At least 5 trials, so that a median and a spread mean something; at most 1,000.
fn parse_trials(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (5..=1000).contains(&n) => Ok(n),
        Ok(_) => Err("must be between 5 and 1000".into()),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    measure::parse_seconds(s).map_err(reason)
}

fn parse_pin(s: &str) -> Result<(usize, usize), String> {
    measure::parse_pin(s).map_err(reason)
}

fn main() -> ExitCode {
    // This binary is also every measurement's child: switchboard's, then the peers'.
    measure::serve_if_child();
    peer::serve_if_child();
    let args = Args::parse();
    if let Some(path) = &args.json {
        // Fail now, not after minutes of measuring, and as a bad argument (exit status 2).
        if let Err(e) = check_writable(path) {
            Args::command()
                .error(clap::error::ErrorKind::ValueValidation, format!("--json {}: {e}", path.display()))
                .exit();
        }
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let mut settings =
        if args.quick { Settings { stream_bytes: 4 << 20, ..Settings::quick() } } else { Settings::default() };
    if let Some(n) = args.iterations {
        settings.iterations = n;
    }
    if let Some(d) = args.duration {
        settings.duration = d;
    }
    settings.pin = args.pin;
    let mut contenders = Vec::new();
    // Each once, in the order given: a repeated name would mix its trials into two rows.
    for c in if args.mechanisms.is_empty() { Contender::defaults() } else { args.mechanisms } {
        if !contenders.contains(&c) {
            contenders.push(c);
        }
    }
    let sizes = if args.sizes.is_empty() { vec![64, 64 << 10] } else { args.sizes };

    let started = Instant::now();
    let names = contenders.iter().map(|c| (c.to_string(), c.what())).collect();
    let mut results = Results::new(settings.clone(), args.trials, names, sizes.clone());
    let progress = Progress::new(contenders.len() * sizes.len() * args.trials);
    for &size in &sizes {
        // A mechanism that failed at this size is not tried again at it.
        let mut failed = vec![false; contenders.len()];
        for trial in 1..=args.trials {
            for (i, &c) in contenders.iter().enumerate() {
                progress.step(&format!("{c} {} trial {trial}", human_size(size)));
                if failed[i] {
                    continue;
                }
                let (measurement, error) = match c.measure(size, &settings) {
                    Ok(m) => (Some(m), None),
                    Err(e) => {
                        failed[i] = true;
                        (None, Some(e.to_string()))
                    }
                };
                results.trials.push(Trial { trial, mechanism: c.to_string(), size, measurement, error });
            }
        }
    }
    progress.finish();
    if contenders.contains(&Contender::Peer(Peer::Iceoryx2)) {
        iceoryx2::cleanup();
    }
    results.summarize();

    // Stdout may be closed (`| head`), but the file is the result: write it regardless.
    let printed = write!(io::stdout().lock(), "{}", results.table());
    if let Some(path) = &args.json {
        std::fs::write(path, results.to_json()).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    printed?;
    let wrote = args.json.as_ref().map_or(String::new(), |p| format!("; wrote {}", p.display()));
    writeln!(io::stdout().lock(), "\nfinished in {:.1} s{wrote}", started.elapsed().as_secs_f64())?;
    Ok(())
}

/// Checks that `path` can be written, leaving no file behind that was not there.
fn check_writable(path: &Path) -> io::Result<()> {
    let existed = path.exists();
    std::fs::OpenOptions::new().append(true).create(true).open(path)?;
    if !existed {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

/// `[12/60] iceoryx2 64 B trial 2` on stderr, overwritten in place, when stderr is a terminal.
struct Progress {
    total: usize,
    done: std::cell::Cell<usize>,
    shown: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress { total, done: std::cell::Cell::new(0), shown: io::stderr().is_terminal() }
    }

    fn step(&self, what: &str) {
        self.done.set(self.done.get() + 1);
        if self.shown {
            let _ = write!(io::stderr(), "\r\x1b[K[{}/{}] {what}", self.done.get(), self.total);
        }
    }

    fn finish(&self) {
        if self.shown {
            let _ = write!(io::stderr(), "\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contenders_parse_by_their_table_names() {
        for c in Contender::defaults() {
            assert_eq!(parse_contender(&c.to_string()), Ok(c));
        }
        assert_eq!(parse_contender("shm"), Ok(Contender::Switchboard("shm-adaptive".parse().unwrap())));
        let refused = parse_contender("zeromq").unwrap_err();
        assert!(refused.contains("iceoryx2") && refused.contains("shm-spin"), "{refused}");
        assert!(parse_contender("raw-unix").is_err());
    }

    #[test]
    fn arguments_out_of_range_are_refused() {
        assert!(parse_trials("4").is_err() && parse_trials("x").is_err());
        assert_eq!(parse_trials("5"), Ok(5));
        assert!(parse_size("65M").is_err() && parse_size("0").is_err());
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert!(parse_duration("NaN").is_err() && parse_duration("0").is_err());
    }

    #[test]
    fn bad_arguments_exit_with_status_2() {
        let e = Args::try_parse_from(["switchboard-peers", "--mechanisms", "zeromq"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
