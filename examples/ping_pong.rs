//! Parent and child exchanging messages over any transport: the parent starts this very
//! program again as its child through `spawn_child`, the child finds its end with
//! `connect_to_parent`, and they play ping-pong.
//!
//! ```text
//! cargo run --release --example ping_pong -- --transport unix
//! cargo run --release --example ping_pong -- --transport shm --wait spin --count 100000 --size 64
//! ```
//! It prints the median and 99th-percentile round trip, and the same figures for the raw
//! mechanism (plain syscalls, no framing) measured right after, in the same run.

use std::error::Error;
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use switchboard::measure::{self, Mechanism, Settings};
use switchboard::{Kind, Options, Transport, WaitStrategy};

/// Ping-pong between this process and a child copy of it.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// tcp, unix, pipe or shm
    #[arg(long, default_value = "unix")]
    transport: Kind,
    /// Wait strategy for shm: spin, block or adaptive
    #[arg(long, default_value = "adaptive")]
    wait: WaitStrategy,
    /// Round trips to time (after 1,000 warm-up ones)
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Message size in bytes (at least 8)
    #[arg(long, default_value_t = 64)]
    size: usize,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
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
    if args.size < 8 {
        eprintln!("error: --size must be at least 8 (each message carries its sequence number)");
        std::process::exit(2);
    }
    let options = Options::new().wait_strategy(args.wait).max_message_size(args.size.max(1 << 20));
    let (mut child, mut conn) = options.spawn_child(args.transport, &mut Command::new(std::env::current_exe()?))?;

    // Each ping carries its sequence number; the pong must come back identical.
    let mut ping = vec![0u8; args.size];
    let mut pong = Vec::with_capacity(args.size);
    let mut rtts = Vec::with_capacity(args.count);
    for seq in 0..(1000 + args.count) as u64 {
        ping[..8].copy_from_slice(&seq.to_le_bytes());
        let t0 = Instant::now();
        conn.send(&ping)?;
        conn.recv(&mut pong)?;
        let rtt = t0.elapsed();
        if pong != ping {
            return Err(format!("round trip {seq} came back different").into());
        }
        if seq >= 1000 {
            rtts.push(rtt);
        }
    }
    // Hanging up tells the child to exit; its exit status must be clean.
    drop(conn);
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }

    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)].as_secs_f64() * 1e6;
    let label = if args.transport == Kind::Shm { format!("shm-{}", args.wait) } else { args.transport.to_string() };
    println!(
        "{label:<14} {} B x {}: round trip median {:8.2} µs, p99 {:8.2} µs",
        args.size,
        args.count,
        pct(0.5),
        pct(0.99)
    );

    // The raw mechanism, same size and count, same machine, a moment later.
    let settings =
        Settings { iterations: args.count, duration: std::time::Duration::from_secs(3600), ..Settings::default() };
    let raw = measure::measure(Mechanism::Raw(args.transport), args.size, &settings)?;
    // The raw shared-memory baseline spins, so only shm-spin is compared like with like.
    let comparable = args.transport != Kind::Shm || args.wait == WaitStrategy::Spin;
    let note = if comparable {
        format!("no framing; ratio {:.2}x", pct(0.5) * 1e3 / raw.latency.p50_ns as f64)
    } else {
        "no framing, and it spins: compare with --wait spin".to_string()
    };
    println!(
        "{:<14} {} B x {}: round trip median {:8.2} µs, p99 {:8.2} µs  ({note})",
        format!("raw-{}", args.transport),
        args.size,
        raw.latency.round_trips,
        raw.latency.p50_ns as f64 / 1e3,
        raw.latency.p99_ns as f64 / 1e3,
    );
    Ok(())
}
