//! Faults across real processes, for every transport (shm in every wait strategy): children
//! SIGKILLed at random moments of a checked stream, killed while the survivor is blocked in
//! `recv` or in `send`, a parent that dies first, a child that closes only its reading side;
//! and afterwards no leaked fds, /dev/shm entries, socket directories or zombies.
//!
//! `SWITCHBOARD_CRASH_TRIALS` (default 30) sets the crash trials per transport.
#![allow(unsafe_code)] // the half-close child closes a descriptor by number

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{ChildGuard, ROLE_ENV, check_sequenced, child_command, sequenced};
use switchboard::{Error, Kind, Options, Transport, WaitStrategy};

const CHILD_LIMIT: Duration = Duration::from_secs(60);
/// How long the survivor may take to report a dead peer. The design target is 10-20 ms for
/// shm and immediate for the kernel transports; this bound only catches hangs.
const DETECT_LIMIT: Duration = Duration::from_secs(5);

/// A test body for one configuration (the second argument is the crash-trial count).
type Scenario = fn(&Config, u64);

/// One transport configuration under test.
#[derive(Clone)]
struct Config {
    kind: Kind,
    wait: WaitStrategy,
    options: Options,
}

impl Config {
    fn label(&self) -> String {
        if self.kind == Kind::Shm { format!("shm-{}", self.wait) } else { self.kind.to_string() }
    }
}

fn options_for(wait: WaitStrategy) -> Options {
    // A 64 KiB ring for shm: messages above 16 KiB travel in fragments, so kills land between
    // fragments too.
    Options::new()
        .max_message_size(1 << 20)
        .handshake_timeout(Duration::from_secs(20))
        .wait_strategy(wait)
        .ring_capacity(1 << 16)
}

fn configs() -> Vec<Config> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let waits: &[WaitStrategy] = if kind == Kind::Shm { &WaitStrategy::ALL } else { &[WaitStrategy::Adaptive] };
        for &wait in waits {
            out.push(Config { kind, wait, options: options_for(wait) });
        }
    }
    out
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    // Orphans of the "parent dies first" test are re-parented to us, so we can reap them.
    nix::sys::prctl::set_child_subreaper(true).expect("become a subreaper");
    let trials: u64 = std::env::var("SWITCHBOARD_CRASH_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(30);
    let fds_before = common::fd_count();
    let shm_before = common::shm_entries();
    let mut tests: Vec<common::NamedTest> = Vec::new();
    for config in configs() {
        let label = config.label();
        let scenarios: [(&str, Scenario); 4] = [
            ("crash_at_random_points", crash_trials),
            ("kill_while_blocked_in_recv", |c, _| kill_blocked_recv(c)),
            ("kill_while_blocked_in_send", |c, _| kill_blocked_send(c)),
            ("parent_dies_first", |c, _| parent_dies_first(c)),
        ];
        for (name, f) in scenarios {
            let c = config.clone();
            tests.push((format!("{label}::{name}"), Box::new(move || f(&c, trials))));
        }
        if matches!(config.kind, Kind::Pipe | Kind::Unix | Kind::Seqpacket | Kind::Fifo) {
            let c = config.clone();
            tests.push((format!("{label}::child_closes_only_its_reading_side"), Box::new(move || half_close(&c))));
        }
    }
    common::run_tests(tests, Duration::from_secs(300), move || {
        let mut problems = Vec::new();
        let fds_after = common::fd_count();
        if fds_after != fds_before {
            problems.push(format!("open fds went from {fds_before} to {fds_after}"));
        }
        let shm_after = common::shm_entries();
        if shm_after.len() > shm_before.len() {
            problems.push(format!("new /dev/shm entries: {shm_after:?}"));
        }
        if !common::socket_dirs().is_empty() {
            problems.push(format!("socket directories left: {:?}", common::socket_dirs()));
        }
        if !common::zombies().is_empty() {
            problems.push(format!("zombie children: {:?}", common::zombies()));
        }
        problems
    });
}

fn spawn(c: &Config, role: &str) -> (ChildGuard, Box<dyn Transport>) {
    let mut cmd = child_command(role);
    cmd.stdin(Stdio::piped());
    let (child, t) =
        c.options.spawn_child(c.kind, &mut cmd).unwrap_or_else(|e| panic!("spawn_child({}): {e}", c.label()));
    (ChildGuard::new(child, CHILD_LIMIT), t)
}

/// Whether thread `tid` (of any process) is asleep (state S) right now.
fn sleeping(pid: i32, tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('S')))
        .unwrap_or(false)
}

/// Message sizes of the crash stream: mostly small, some large enough to fragment.
fn size_of(seq: u64) -> usize {
    match seq % 7 {
        0 => 40_000 + (seq as usize * 7919) % 60_000,
        1 | 2 => (seq as usize * 131) % 4000,
        _ => (seq as usize * 17) % 300,
    }
}

/// Kills a streaming child at a random point (after a random number of received messages;
/// in odd trials the survivor first stops reading and waits until the child is asleep in a
/// full `send`), then checks that what arrives is a gapless prefix of the stream, each message
/// whole and intact, and that the end is reported in bounded time.
fn crash_trials(c: &Config, trials: u64) {
    let mut seed = 0x5eed_0000 + c.kind as u64 * 8 + c.wait as u64;
    let mut worst = Duration::ZERO;
    let mut received = 0u64;
    let mut truncated = 0u64;
    for trial in 0..trials {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = seed % 400;
        let (mut child, mut t) = spawn(c, "stream_forever");
        let mut buf = Vec::new();
        let mut next = 0u64;
        while next < kill_after {
            t.recv(&mut buf).unwrap();
            assert_eq!(check_sequenced(&buf).unwrap(), next, "trial {trial}");
            next += 1;
        }
        // A spinning child never sleeps; any other is asleep once every buffer is full.
        if trial % 2 == 1 && c.wait != WaitStrategy::Spin {
            let pid = child.id() as i32;
            while !sleeping(pid, pid) {
                thread::yield_now();
            }
        }
        child.kill();
        let killed = Instant::now();
        loop {
            match t.recv_timeout(&mut buf, DETECT_LIMIT) {
                Ok(_) => {
                    let seq = check_sequenced(&buf).unwrap_or_else(|e| panic!("trial {trial}: {e}"));
                    assert_eq!(seq, next, "trial {trial}: messages must arrive as a gapless prefix");
                    next += 1;
                }
                Err(Error::Timeout) => panic!("trial {trial}: no end of stream within {DETECT_LIMIT:?} after SIGKILL"),
                Err(Error::Disconnected) => break,
                Err(Error::Truncated { .. }) => {
                    truncated += 1;
                    break;
                }
                Err(e) => panic!("trial {trial}: unexpected {e:?}"),
            }
        }
        worst = worst.max(killed.elapsed());
        received += next;
        assert!(matches!(t.recv(&mut buf), Err(Error::Disconnected)), "trial {trial}: later calls are Disconnected");
        drop(t);
        let _ = child.wait();
    }
    println!(
        "    {}: {trials} kills, {received} messages received whole and in order, {truncated} ended by a truncated frame, slowest end-of-stream {worst:?}",
        c.label()
    );
}

/// The survivor is blocked in recv when the peer is SIGKILLed.
fn kill_blocked_recv(c: &Config) {
    let kind = c.label();
    let (child, mut t) = spawn(c, "idle");
    let mut buf = Vec::new();
    t.recv(&mut buf).unwrap();
    assert_eq!(buf, b"ready");
    let killed_at = Arc::new(Mutex::new(None));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let k = killed_at.clone();
    let killer = thread::spawn(move || {
        *k.lock().unwrap() = Some(Instant::now());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    });
    let started = Instant::now();
    let result = t.recv_timeout(&mut buf, DETECT_LIMIT);
    killer.join().unwrap();
    let detect = killed_at.lock().unwrap().map_or(started.elapsed(), |k| k.elapsed());
    assert!(matches!(result, Err(Error::Disconnected)), "{kind}: blocked recv got {result:?}");
    println!("    {kind}: blocked recv saw the SIGKILL after {detect:?}");
    let _ = child.wait();
}

/// The survivor is blocked in send (the child never reads) when the child is SIGKILLed.
fn kill_blocked_send(c: &Config) {
    let kind = c.label();
    let (child, mut t) = spawn(c, "idle");
    let mut buf = Vec::new();
    t.recv(&mut buf).unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let s = sent.clone();
    let killed_at = Arc::new(Mutex::new(None));
    let k = killed_at.clone();
    // Kills once the sending thread is asleep in the kernel with the buffers full (state S
    // in /proc), or, for a spinning shm sender that never sleeps, once it has sent more than
    // the ring holds.
    let (me, tid) = (std::process::id() as i32, nix::unistd::gettid().as_raw());
    let spinning = c.wait == WaitStrategy::Spin && c.kind == Kind::Shm;
    let killer = thread::spawn(move || {
        loop {
            let sent = s.load(Ordering::SeqCst);
            if sent >= 64 << 10 && (spinning || sleeping(me, tid)) {
                break;
            }
            thread::yield_now();
        }
        *k.lock().unwrap() = Some(Instant::now());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    });
    let msg = vec![0u8; 64 << 10];
    let result = loop {
        sent.fetch_add(msg.len() as u64, Ordering::SeqCst);
        if let Err(e) = t.send(&msg) {
            break e;
        }
    };
    killer.join().unwrap();
    let detect = killed_at.lock().unwrap().expect("killed").elapsed();
    assert!(matches!(result, Error::Disconnected), "{kind}: blocked send got {result:?}");
    assert!(detect < DETECT_LIMIT);
    println!("    {kind}: blocked send saw the SIGKILL after {detect:?}");
    let _ = child.wait();
}

/// A middle process spawns a grandchild, then SIGKILLs itself; the grandchild's recv must
/// return Disconnected and let it exit cleanly.
fn parent_dies_first(c: &Config) {
    let kind = c.label();
    let mut cmd = child_command("middle");
    cmd.env("SWITCHBOARD_TEST_KIND", c.kind.to_string());
    cmd.env("SWITCHBOARD_TEST_WAIT", c.wait.to_string());
    cmd.stdout(Stdio::piped());
    let mut middle = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(middle.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let orphan: i32 = line.trim().parse().unwrap_or_else(|_| panic!("middle said {line:?}"));
    let status = middle.wait().unwrap();
    assert!(!status.success(), "the middle process kills itself");
    // The orphan is now our child (we are a subreaper): wait for it, with a deadline.
    let pid = nix::unistd::Pid::from_raw(orphan);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        if rx.recv_timeout(CHILD_LIMIT).is_err() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    let status = nix::sys::wait::waitpid(pid, None).unwrap();
    drop(tx);
    watchdog.join().unwrap();
    assert!(
        matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
        "{kind}: orphan should see Disconnected and exit 0, got {status:?}"
    );
}

/// The child closes its reading side only; the parent's sends must fail with Disconnected.
fn half_close(c: &Config) {
    let (child, mut t) = spawn(c, "close_read");
    let mut buf = Vec::new();
    t.recv(&mut buf).unwrap();
    assert_eq!(buf, b"closed");
    common::send_until_disconnected(t.as_mut(), DETECT_LIMIT);
    // The child can still talk to us: the other direction is intact.
    t.recv(&mut buf).unwrap();
    assert_eq!(buf, b"still here");
    drop(t);
    drop(child);
}

// ---- the child side ----

fn child(role: &str) {
    if role == "middle" {
        middle();
        return;
    }
    let mut t = switchboard::connect_to_parent().unwrap_or_else(|e| panic!("child {role}: {e}"));
    match role {
        "stream_forever" => {
            let mut seq = 0u64;
            while t.send(&sequenced(seq, size_of(seq))).is_ok() {
                seq += 1;
            }
        }
        "idle" => {
            t.send(b"ready").unwrap();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
        "orphan" => {
            let mut buf = Vec::new();
            t.recv(&mut buf).unwrap();
            t.send(&buf).unwrap();
            let started = Instant::now();
            let code = match t.recv_timeout(&mut buf, DETECT_LIMIT) {
                Err(Error::Disconnected) => 0,
                other => {
                    eprintln!("orphan: expected Disconnected, got {other:?} after {:?}", started.elapsed());
                    1
                }
            };
            std::process::exit(code);
        }
        "close_read" => {
            close_reading_side();
            t.send(b"closed").unwrap();
            t.send(b"still here").unwrap();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            // Exit without dropping: the read descriptor is already closed.
            std::process::exit(0);
        }
        other => panic!("unknown role {other}"),
    }
}

/// Spawns the orphan, checks one round trip, reports its pid, and dies by SIGKILL.
fn middle() {
    let kind: Kind = std::env::var("SWITCHBOARD_TEST_KIND").unwrap().parse().unwrap();
    let wait: WaitStrategy = std::env::var("SWITCHBOARD_TEST_WAIT").unwrap().parse().unwrap();
    let options = options_for(wait);
    let mut cmd = child_command("orphan");
    let (child, mut t) = options.spawn_child(kind, &mut cmd).unwrap();
    t.send(b"hello").unwrap();
    let mut buf = Vec::new();
    t.recv(&mut buf).unwrap();
    println!("{}", child.id());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::mem::forget(t);
    std::mem::forget(child);
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
}

/// Closes this child's reading side: the pipe's read end, or `shutdown(SHUT_RD)` on the socket.
fn close_reading_side() {
    let spec = std::env::var(switchboard::ENV_CONNECT).unwrap();
    if let Some(fds) = spec.strip_prefix("pipe:") {
        let read: i32 = fds.split(',').next().unwrap().parse().unwrap();
        // SAFETY: closes the transport's read end behind its back; this process never uses
        // the transport for reading again and exits without dropping it.
        unsafe { libc::close(read) };
        return;
    }
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy().contains("fifo.to-client") {
            let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
            // SAFETY: as for the pipe above: the fifo transport's read end, never used again.
            unsafe { libc::close(fd) };
            return;
        }
        if target.to_string_lossy().starts_with("socket:") {
            let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
            // SAFETY: shutdown has no memory arguments; the fd is the transport's socket.
            unsafe { libc::shutdown(fd, libc::SHUT_RD) };
        }
    }
}
