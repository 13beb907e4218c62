//! Parent and child exchanging messages over any transport: the parent starts this very
//! program again as its child through `spawn_child`, the child finds its end with
//! `connect_to_parent`, and they play ping-pong.
//!
//! ```text
//! cargo run --release --features measure --example ping_pong -- --transport unix
//! cargo run --release --features measure --example ping_pong -- --transport shm-spin --count 100000 --size 1K
//! ```
//! It prints the median and 99th-percentile round trip, and the same figures for the raw
//! mechanism (plain syscalls, no framing) measured right after, in the same run.

mod common;

use std::error::Error;
use std::io::{self, Write};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use switchboard::measure::{self, Mechanism, Settings, human_size};
use switchboard::{Kind, MAX_MESSAGE_SIZE_LIMIT, Options, Transport, WaitStrategy};

/// The warm-up moves at most this many bytes each way: at 64 B that is the full 1,000 round
/// trips, at 100 MB the minimum of 3 instead of 84 seconds of unreported work.
const WARMUP_BYTES: usize = 64 << 20;
const WARMUP_MIN: usize = 3;
const WARMUP_MAX: usize = 1000;

/// A run that has taken this long, with at least as long still to go, says on stderr what it
/// is doing rather than stay silent.
const ANNOUNCE_AFTER: Duration = Duration::from_secs(1);

/// Time round trips between this process and a child copy of it, beside the raw mechanism.
///
/// The parent starts this program again as its child over the chosen transport, sends
/// numbered messages that the child echoes back, checks every echo, and prints the median
/// and 99th-percentile round trip. Then it measures the raw mechanism under the transport
/// (plain syscalls, no framing) at the same size and count, for comparison.
#[derive(Parser, Debug)]
#[command(name = "ping_pong")]
struct Args {
    /// tcp, unix, pipe, shm, or shm with its wait strategy: shm-spin, shm-block, shm-adaptive
    #[arg(long, default_value = "unix", value_parser = parse_transport)]
    transport: TransportArg,
    /// Wait strategy for shm: spin, block or adaptive, unless --transport names one
    /// [default: adaptive]
    #[arg(long)]
    wait: Option<WaitStrategy>,
    /// Round trips to time, after a warm-up of up to 1,000 (fewer for large messages)
    #[arg(long, default_value_t = 20_000, value_parser = parse_count)]
    count: usize,
    /// Message size in bytes, with optional K or M suffix (KiB, MiB); at least 8
    #[arg(long, default_value = "64", value_parser = parse_size)]
    size: usize,
}

/// `--transport` as given: the kind, its wait strategy, and whether the spelling named one
/// (`shm-spin`) or left it to `--wait` (`shm`).
#[derive(Debug, Clone, Copy)]
struct TransportArg {
    kind: Kind,
    wait: WaitStrategy,
    names_wait: bool,
}

/// The same spellings as `compare` (the parsers live in `switchboard::measure`).
fn parse_count(s: &str) -> Result<usize, String> {
    measure::parse_count(s).map_err(common::reason)
}

fn parse_transport(s: &str) -> Result<TransportArg, String> {
    match measure::parse_transport(s).map_err(common::reason)? {
        Mechanism::Transport { kind, wait } => Ok(TransportArg { kind, wait, names_wait: s.starts_with("shm-") }),
        other => Err(format!("{other} is not a transport")),
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let size = measure::parse_size(s).map_err(common::reason)?;
    if size < 8 {
        return Err("at least 8 bytes: each message carries its sequence number".into());
    }
    if size > MAX_MESSAGE_SIZE_LIMIT {
        return Err(format!("at most {MAX_MESSAGE_SIZE_LIMIT} bytes, the largest message a frame can carry"));
    }
    Ok(size)
}

/// The kind and wait strategy that `--transport` and `--wait` ask for together. Exits with a
/// usage error (status 2) where they contradict each other, rather than ignore one of them.
fn transport_and_wait(args: &Args) -> (Kind, WaitStrategy) {
    let TransportArg { kind, wait, names_wait } = args.transport;
    match args.wait {
        None => (kind, wait),
        Some(_) if kind != Kind::Shm => usage_error(format!(
            "--wait applies only to shm; {kind} always waits in the kernel (drop --wait, or use --transport shm)"
        )),
        Some(asked) if names_wait && asked != wait => usage_error(format!(
            "--transport shm-{wait} already chooses the wait strategy; --wait {asked} contradicts it"
        )),
        Some(asked) => (kind, asked),
    }
}

/// Prints `message` the way clap prints a bad option, with the usage line, and exits with 2.
fn usage_error(message: String) -> ! {
    Args::command().error(ErrorKind::ArgumentConflict, message).exit()
}

fn main() -> ExitCode {
    common::exit_code(run())
}

fn run() -> Result<(), Box<dyn Error>> {
    // The raw-baseline child of the harness is this program too.
    measure::serve_if_child();

    // Started by spawn_child? Then we are the child: echo until the parent hangs up.
    if std::env::var_os(switchboard::ENV_CONNECT).is_some() {
        let mut parent = switchboard::connect_to_parent()?;
        measure::echo_until_disconnected(parent.as_mut())?;
        return Ok(());
    }

    let args = Args::parse();
    let (kind, wait) = transport_and_wait(&args);
    let (size, count) = (args.size, args.count);
    let warmup = (WARMUP_BYTES / size).clamp(WARMUP_MIN, WARMUP_MAX);
    let options = Options::new().wait_strategy(wait).max_message_size(size.max(1 << 20));
    let (mut child, mut conn) = options.spawn_child(kind, &mut Command::new(std::env::current_exe()?))?;
    let label = if kind == Kind::Shm { format!("shm-{wait}") } else { kind.to_string() };

    // Each ping carries its sequence number; the pong must come back identical.
    let mut ping = vec![0u8; size];
    let mut pong = Vec::with_capacity(size);
    // Reserve for a typical run only; a huge --count grows the vector as round trips arrive.
    let mut rtts = Vec::with_capacity(count.min(1 << 20));
    let mut spent = Duration::ZERO;
    let mut announced = false;
    for seq in 0..(warmup + count) as u64 {
        ping[..8].copy_from_slice(&seq.to_le_bytes());
        let t0 = Instant::now();
        conn.send(&ping)?;
        conn.recv(&mut pong)?;
        let rtt = t0.elapsed();
        if pong != ping {
            return Err(format!("round trip {seq} came back different").into());
        }
        spent += rtt;
        if !announced && spent > ANNOUNCE_AFTER {
            announced = true;
            announce(&label, size, warmup, count, seq as usize + 1, spent);
        }
        if seq >= warmup as u64 {
            rtts.push(rtt);
        }
    }
    // Hanging up tells the child to exit; its exit status must be clean.
    drop(conn);
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }

    // `count` is at least 1, so every percentile has a round trip to point at.
    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)].as_secs_f64() * 1e6;
    let mut out = io::stdout().lock();
    writeln!(out, "{label:<14} {size} B x {count}: round trip median {:8.2} µs, p99 {:8.2} µs", pct(0.5), pct(0.99))?;

    // The raw mechanism, same size, warm-up and count, same machine, a moment later.
    let settings = Settings {
        warmup,
        iterations: count,
        duration: Duration::from_secs(3600),
        // Only the raw round trips are reported: stream the harness's minimum.
        stream_bytes: 0,
        ..Settings::default()
    };
    // As many round trips again, and the harness's stream of 200 messages one way.
    let expected = spent.as_secs_f64() + 100.0 * pct(0.5) / 1e6;
    if expected > ANNOUNCE_AFTER.as_secs_f64() {
        let _ = writeln!(io::stderr(), "raw-{kind}: measuring the raw mechanism, about {expected:.0} s");
    }
    let raw = measure::measure(Mechanism::Raw(kind), size, &settings)?;
    // The raw shared-memory baseline spins, so only shm-spin is compared like with like.
    let comparable = kind != Kind::Shm || wait == WaitStrategy::Spin;
    let note = if comparable {
        format!("no framing; ratio {:.2}x", pct(0.5) * 1e3 / raw.latency.p50_ns as f64)
    } else {
        "no framing, and it spins: compare with --transport shm-spin".to_string()
    };
    writeln!(
        out,
        "{:<14} {size} B x {}: round trip median {:8.2} µs, p99 {:8.2} µs  ({note})",
        format!("raw-{kind}"),
        raw.latency.round_trips,
        raw.latency.p50_ns as f64 / 1e3,
        raw.latency.p99_ns as f64 / 1e3,
    )?;
    Ok(())
}

/// Tells the user on stderr how far a long run has got and how long the rest should take,
/// unless it is nearly done.
fn announce(label: &str, size: usize, warmup: usize, count: usize, done: usize, spent: Duration) {
    let total = warmup + count;
    let left = spent.as_secs_f64() / done as f64 * (total - done) as f64;
    if left < ANNOUNCE_AFTER.as_secs_f64() {
        return;
    }
    let _ = writeln!(
        io::stderr(),
        "{label}: {done} of {total} round trips of {} ({warmup} to warm up) in {:.1} s; \
         about {left:.0} s to go, then the raw mechanism the same way",
        human_size(size),
        spent.as_secs_f64()
    );
}
