//! Abuse and overload, each scenario against a real server process: peers that announce huge
//! frames and send little, a server out of file descriptors or address space, idle-connection
//! and connect-and-close floods, children that never connect, processes killed before they
//! clean up. Servers run as children of this binary (it re-runs itself in a role) so that their
//! resource limits, memory and CPU time are their own and can be measured from outside.
//!
//! Sized for 2 cores: every flood, count and wait is bounded. Runs without libtest
//! (`harness = false`), one scenario at a time, and prints `N passed, N failed`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{ChildGuard, ROLE_ENV, RawConn, child_command};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use switchboard::{Address, Error, Kind, Listener, Options, ShmTransport, Transport, connect};

const CHILD_LIMIT: Duration = Duration::from_secs(120);

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    // Orphans of the killed spawner are re-parented to us, so we can reap them.
    nix::sys::prctl::set_child_subreaper(true).expect("become a subreaper");
    raise_fd_limit(4096);
    let tests: Vec<common::NamedTest> = vec![
        ("memory_follows_bytes_received_not_announced".into(), Box::new(slow_loris_memory)),
        ("huge_prefixes_under_an_address_space_limit".into(), Box::new(huge_prefixes_under_as_limit)),
        ("out_of_fds_backs_off_and_serves_when_fds_free".into(), Box::new(out_of_fds)),
        ("idle_connections_do_not_starve_clients".into(), Box::new(idle_flood)),
        ("connect_flood_does_not_starve_clients".into(), Box::new(connect_flood)),
        ("spawn_child_notices_children_that_never_connect".into(), Box::new(children_that_never_connect)),
        ("huge_timeouts_and_bad_options_never_panic".into(), Box::new(huge_timeouts_and_bad_options)),
        ("a_killed_server_does_not_block_the_next".into(), Box::new(killed_server_socket_file)),
        ("a_killed_parent_leaves_no_socket_behind".into(), Box::new(killed_parent_private_socket)),
        ("a_dead_creators_segment_is_reclaimed".into(), Box::new(dead_creator_segment)),
    ];
    common::run_tests(tests, Duration::from_secs(300), || {
        common::zombies().into_iter().map(|pid| format!("zombie child {pid}")).collect()
    });
}

// ---- child roles ----------------------------------------------------------------------------

fn child(role: &str) {
    match role {
        "echo-server" => echo_server(),
        "spawner" => {
            let (_child, mut conn) =
                switchboard::spawn_child(Kind::Unix, &mut child_command("wait-for-parent")).expect("spawn grandchild");
            conn.send(b"hello").unwrap();
            println!("ready");
            // Killed here by the test.
            let mut buf = Vec::new();
            let _ = conn.recv(&mut buf);
        }
        "wait-for-parent" => {
            let mut parent = switchboard::connect_to_parent().expect("connect to parent");
            let mut buf = Vec::new();
            while parent.recv(&mut buf).is_ok() {}
        }
        "connect-then-exit" => {
            let _parent = switchboard::connect_to_parent().expect("connect to parent");
        }
        "bind-path" => {
            let path = std::env::var("SWITCHBOARD_TEST_PATH").unwrap();
            let _listener = Listener::bind(&Address::Unix(path.into()), &Options::new()).unwrap();
            println!("ready");
            let _ = std::io::stdin().read(&mut [0]);
        }
        "create-named" => {
            let name = std::env::var("SWITCHBOARD_TEST_PATH").unwrap();
            let _segment = ShmTransport::create_named(&name, &Options::new().ring_capacity(1 << 16)).unwrap();
            println!("ready");
            let _ = std::io::stdin().read(&mut [0]);
        }
        other => panic!("unknown role {other}"),
    }
}

/// A server written the way README shows it: `let mut conn = conn?` in an `incoming()` loop,
/// a thread per client. Configured by the environment: `SB_NOFILE` (soft fd limit), `SB_AS`
/// (address-space limit in MiB), `SB_MAX` (max message size), `SB_FILL_FDS` (use up every
/// descriptor before serving), `SB_UNIX` (listen on an abstract unix socket, not tcp). Prints
/// its address, then a line for every connection that ended in an error other than
/// `Disconnected`. Stdin: "free" releases the filler descriptors; end of input ends the process.
fn echo_server() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = env("SB_NOFILE") {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, n, hard).unwrap();
    }
    if let Some(mib) = env("SB_AS") {
        setrlimit(Resource::RLIMIT_AS, mib << 20, mib << 20).unwrap();
    }
    let mut options = Options::new().handshake_timeout(Duration::from_secs(30));
    if let Some(max) = env("SB_MAX") {
        options = options.max_message_size(max as usize);
    }
    let listener =
        if env("SB_UNIX").is_some() { Listener::bind_unix_private(&options) } else { Listener::bind_tcp(&options) };
    let listener = listener.unwrap();
    println!("{}", listener.local_addr());
    let mut fillers = Vec::new();
    if env("SB_FILL_FDS").is_some() {
        while let Ok(f) = std::fs::File::open("/dev/null") {
            fillers.push(f);
        }
    }
    let fillers = Arc::new(std::sync::Mutex::new(fillers));
    let fillers2 = fillers.clone();
    thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.trim() == "free" {
                fillers2.lock().unwrap().clear();
            }
            line.clear();
        }
        std::process::exit(0);
    });
    let result = (|| -> switchboard::Result<()> {
        for conn in listener.incoming() {
            let mut conn = conn?;
            thread::spawn(move || {
                let mut buf = Vec::new();
                loop {
                    match conn.recv(&mut buf) {
                        Ok(_) => {
                            if conn.send(&buf).is_err() {
                                return;
                            }
                        }
                        Err(Error::Disconnected) => return,
                        Err(e) => {
                            println!("connection error: {e}");
                            return;
                        }
                    }
                }
            });
        }
        Ok(())
    })();
    println!("accept loop ended: {result:?}");
    std::process::exit(1);
}

// ---- helpers ----------------------------------------------------------------------------------

/// An echo server child and the address it listens on.
struct Server {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    addr: Address,
    pid: u32,
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Server {
        let mut cmd = child_command("echo-server");
        cmd.envs(env.iter().copied()).env("MALLOC_ARENA_MAX", "2").stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn server");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let pid = child.id();
        let child = ChildGuard::new(child, CHILD_LIMIT);
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line.trim().parse().unwrap_or_else(|e| panic!("server said {line:?}: {e}"));
        Server { child, stdin, stdout, addr, pid }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    fn rss_kib(&self) -> u64 {
        proc_status_field(self.pid, "VmRSS:")
    }

    /// User + system CPU time of the server, in clock ticks (1/100 s).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        let rest = stat.rsplit_once(')').unwrap().1;
        let f: Vec<u64> = rest.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
        f[10] + f[11]
    }

    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
    }

    /// Ends the server (closing its stdin) and returns everything it printed.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).unwrap();
        let status = self.child.wait();
        assert!(status.success(), "server exited with {status}; it printed:\n{out}");
        out
    }
}

fn proc_status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn raise_fd_limit(want: u64) {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < want {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
    }
}

/// A raw client that has passed the handshake, so the server reads frames from it.
fn raw_client(addr: &Address) -> RawConn {
    let mut s = RawConn::connect(addr).unwrap();
    let mut hello = 8u32.to_le_bytes().to_vec();
    hello.extend_from_slice(b"SWBH");
    hello.extend_from_slice(&switchboard::PROTOCOL_VERSION.to_le_bytes());
    hello.extend_from_slice(&0u16.to_le_bytes());
    s.write_all(&hello).unwrap();
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    assert_eq!((&reply[4..8], reply[10]), (&b"SWBR"[..], 0), "handshake refused");
    s
}

/// One switchboard round trip; how long connect + echo took.
fn round_trip(addr: &Address, timeout: Duration) -> switchboard::Result<Duration> {
    let started = Instant::now();
    let mut conn = connect(addr, &Options::new().handshake_timeout(timeout))?;
    conn.send(b"legit")?;
    let mut buf = Vec::new();
    conn.recv_timeout(&mut buf, timeout)?;
    assert_eq!(buf, b"legit");
    Ok(started.elapsed())
}

/// Reaps exited children; whether none is left.
fn orphans_reaped() -> bool {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return false,
            Ok(_) => continue,
            Err(_) => return true,
        }
    }
}

// ---- scenarios -------------------------------------------------------------------------------

/// 100 clients announce 60 MiB frames and send 10 bytes each: the server's memory must follow
/// the ~1 KB that arrived, not the 6 GB announced.
fn slow_loris_memory() {
    let server = Server::start(&[]);
    let before = server.rss_kib();
    let mut clients: Vec<RawConn> = (0..100).map(|_| raw_client(&server.addr)).collect();
    for c in &mut clients {
        c.write_all(&(60u32 << 20).to_le_bytes()).unwrap();
        c.write_all(&[7; 10]).unwrap();
    }
    // The server answers a real client only after its accept loop ran past all of them.
    round_trip(&server.addr, Duration::from_secs(20)).unwrap();
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(server.rss_kib());
        thread::sleep(Duration::from_millis(50));
    }
    let grew_mib = peak.saturating_sub(before) / 1024;
    println!("    RSS {} MiB -> peak {} MiB for 100 clients x 60 MiB announced", before / 1024, peak / 1024);
    assert!(grew_mib < 64, "server grew by {grew_mib} MiB for 1 KB received");
    drop(clients);
    let out = server.finish();
    assert!(!out.contains("accept loop ended"), "{out}");
}

/// Under a 1 GiB address-space limit with a 1.5 GiB maximum: four clients announce 1.4 GiB and
/// send little (nothing may be allocated for them), then one really sends more than the
/// limit allows: that connection gets OutOfMemory, and the server goes on serving.
fn huge_prefixes_under_as_limit() {
    let max = (1536u64 << 20).to_string();
    let server = Server::start(&[("SB_AS", "1024"), ("SB_MAX", &max)]);
    let mut idle: Vec<RawConn> = (0..4).map(|_| raw_client(&server.addr)).collect();
    for c in &mut idle {
        c.write_all(&(1400u32 << 20).to_le_bytes()).unwrap();
        c.write_all(&[1; 100]).unwrap();
    }
    round_trip(&server.addr, Duration::from_secs(20)).expect("served beside four huge announcements");
    // Now a client that really sends 1.4 GiB: the server cannot hold it under 1 GiB.
    let mut greedy = raw_client(&server.addr);
    greedy.write_all(&(1400u32 << 20).to_le_bytes()).unwrap();
    let chunk = vec![9u8; 1 << 20];
    let mut sent = 0usize;
    while sent < 1400 << 20 {
        if greedy.write_all(&chunk).is_err() {
            break; // the server dropped the connection: expected
        }
        sent += chunk.len();
    }
    drop(greedy);
    round_trip(&server.addr, Duration::from_secs(20)).expect("served after a connection ran out of memory");
    assert!(server.alive(), "the server died");
    drop(idle);
    let out = server.finish();
    println!("    greedy client got {} MiB in before the server gave up", sent >> 20);
    assert!(out.contains("out of memory"), "the greedy connection should end in OutOfMemory: {out}");
}

/// Every descriptor in use: `accept` fails with EMFILE. The server must not spin, must not
/// end its README-style accept loop, and must serve the waiting clients once fds free.
fn out_of_fds() {
    let mut server = Server::start(&[("SB_NOFILE", "128"), ("SB_FILL_FDS", "1")]);
    let addr = server.addr.clone();
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            thread::spawn(move || round_trip(&addr, Duration::from_secs(30)))
        })
        .collect();
    // While they wait in the backlog, the server must be nearly idle.
    let (t0, c0) = (Instant::now(), server.cpu_ticks());
    thread::sleep(Duration::from_secs(1));
    let busy = (server.cpu_ticks() - c0) as f64 / (t0.elapsed().as_secs_f64() * 100.0);
    println!("    server CPU while out of fds: {:.0}%", busy * 100.0);
    assert!(busy < 0.25, "the server spins while out of descriptors: {:.0}% CPU", busy * 100.0);
    assert!(server.alive(), "the accept loop ended");
    server.say("free");
    let started = Instant::now();
    for c in clients {
        c.join().unwrap().expect("a client waiting during fd exhaustion is served once fds free");
    }
    println!("    20 waiting clients served {:?} after fds freed", started.elapsed());
    let out = server.finish();
    assert!(!out.contains("accept loop ended"), "{out}");
}

/// Another process holds 1,100 idle connections (more than the server's 1,024 fds): clients
/// that say hello are still served, promptly, and the server does not spin.
fn idle_flood() {
    let server = Server::start(&[("SB_NOFILE", "1024")]);
    let idle: Vec<RawConn> = (0..1100).filter_map(|_| RawConn::connect(&server.addr).ok()).collect();
    assert!(idle.len() >= 1000, "could open only {} idle connections", idle.len());
    let mut served_fast = 0;
    for _ in 0..10 {
        if round_trip(&server.addr, Duration::from_secs(5)).is_ok_and(|t| t < Duration::from_secs(2)) {
            served_fast += 1;
        }
    }
    // Then, with the idle connections still open, the server must be nearly idle too.
    let (t0, c0) = (Instant::now(), server.cpu_ticks());
    thread::sleep(Duration::from_secs(1));
    let busy = (server.cpu_ticks() - c0) as f64 / (t0.elapsed().as_secs_f64() * 100.0);
    println!(
        "    {served_fast}/10 clients served within 2 s beside {} idle connections, server CPU {:.0}%",
        idle.len(),
        busy * 100.0
    );
    assert_eq!(served_fast, 10, "clients starved by idle connections");
    assert!(busy < 0.5, "server spins beside idle connections: {:.0}%", busy * 100.0);
    drop(idle);
    let out = server.finish();
    assert!(!out.contains("accept loop ended"), "{out}");
}

/// One process connects and closes as fast as it can against a unix listener; at least 90%
/// of clients that say hello at once complete the handshake within 1 s.
fn connect_flood() {
    let server = Server::start(&[("SB_UNIX", "1")]);
    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (addr, stop, flooded) = (server.addr.clone(), stop.clone(), flooded.clone());
        thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                if RawConn::connect(&addr).is_ok() {
                    flooded.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    while flooded.load(Ordering::Relaxed) < 1000 {
        thread::yield_now();
    }
    let mut ok = 0;
    for _ in 0..20 {
        if round_trip(&server.addr, Duration::from_secs(3)).is_ok_and(|t| t <= Duration::from_secs(1)) {
            ok += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    println!("    {ok}/20 clients served within 1 s during a flood of {} connects", flooded.load(Ordering::Relaxed));
    assert!(ok >= 18, "only {ok} of 20 clients completed the handshake within 1 s");
    let out = server.finish();
    assert!(!out.contains("accept loop ended"), "{out}");
}

/// A child that exits or never calls `connect_to_parent` is an error from `spawn_child` on
/// every transport; a child that connects and dies is `Disconnected` on a plain `recv`.
fn children_that_never_connect() {
    let options = Options::new().handshake_timeout(Duration::from_millis(700));
    for kind in Kind::ALL {
        let started = Instant::now();
        let err = options.spawn_child(kind, &mut Command::new("true")).map(|_| ()).unwrap_err();
        assert!(matches!(err, Error::Handshake(_)), "{kind}: `true` gave {err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{kind}: noticed only after {:?}", started.elapsed());

        let started = Instant::now();
        let err = options.spawn_child(kind, Command::new("sleep").arg("30")).map(|_| ()).unwrap_err();
        assert!(matches!(err, Error::Handshake(_)), "{kind}: `sleep 30` gave {err:?}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(600) && took < Duration::from_secs(10), "{kind}: {took:?}");

        let (child, mut conn) = options.spawn_child(kind, &mut child_command("connect-then-exit")).unwrap();
        let child = ChildGuard::new(child, CHILD_LIMIT);
        let mut buf = Vec::new();
        common::with_deadline(Duration::from_secs(20), move || {
            assert!(matches!(conn.recv(&mut buf), Err(Error::Disconnected)), "{kind}");
        });
        assert!(child.wait().success());
        println!("    {kind}: refused `true` and `sleep 30`; saw the exited child as Disconnected");
    }
}

/// `Duration::MAX` everywhere a timeout goes, and out-of-range option values: results, never
/// panics.
fn huge_timeouts_and_bad_options() {
    let forever = Options::new().handshake_timeout(Duration::MAX);
    for kind in Kind::ALL {
        let (mut a, mut b) = switchboard::pair(kind, &forever).unwrap();
        a.send(b"x").unwrap();
        let mut buf = Vec::new();
        b.recv_timeout(&mut buf, Duration::MAX).unwrap();
        let (child, mut conn) = forever.spawn_child(kind, &mut child_command("wait-for-parent")).unwrap();
        let guard = ChildGuard::new(child, CHILD_LIMIT);
        conn.send(b"hi").unwrap();
        drop(conn);
        assert!(guard.wait().success());
    }
    let listener = Listener::bind_tcp(&forever).unwrap();
    let addr = listener.local_addr().clone();
    let client = thread::spawn(move || connect(&addr, &Options::new().handshake_timeout(Duration::MAX)).map(|_| ()));
    listener.accept_timeout(Duration::MAX).unwrap();
    client.join().unwrap().unwrap();

    let name = format!("switchboard-abuse-max-{}", std::process::id());
    let segment = ShmTransport::create_named(&name, &Options::new()).unwrap();
    let name2 = name.clone();
    let peer = thread::spawn(move || ShmTransport::open_named(&name2, &Options::new()).map(|_| ()));
    segment.accept(Duration::MAX).unwrap();
    peer.join().unwrap().unwrap();

    for bad in [
        Options::new().max_message_size(usize::MAX),
        Options::new().ring_capacity(3),
        Options::new().ring_capacity(1 << 40),
        Options::new().handshake_timeout(Duration::ZERO),
    ] {
        for kind in Kind::ALL {
            assert!(matches!(switchboard::pair(kind, &bad).map(|_| ()), Err(Error::Config(_))), "{kind} {bad:?}");
        }
        assert!(matches!(Listener::bind_tcp(&bad).map(|_| ()), Err(Error::Config(_))));
        assert!(matches!(bad.spawn_child(Kind::Pipe, &mut Command::new("true")).map(|_| ()), Err(Error::Config(_))));
    }
}

/// A unix server killed by SIGTERM leaves its socket file: the next `bind` reclaims it.
fn killed_server_socket_file() {
    let dir = common::TempDir::new("abuse-killed");
    let path = dir.path().join("server.sock");
    let mut cmd = child_command("bind-path");
    cmd.env("SWITCHBOARD_TEST_PATH", &path).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let _stdin = child.stdin.take();
    let guard = ChildGuard::new(child, CHILD_LIMIT);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(guard.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(!guard.wait().success());
    assert!(path.exists(), "a SIGTERMed server leaves its socket file (that is the point of this test)");
    let listener = Listener::bind(&Address::Unix(path.clone()), &Options::new()).expect("restart on the same path");
    let addr = listener.local_addr().clone();
    let client = thread::spawn(move || round_trip(&addr, Duration::from_secs(20)));
    let mut conn = listener.accept_timeout(Duration::from_secs(20)).unwrap();
    let mut buf = Vec::new();
    conn.recv(&mut buf).unwrap();
    conn.send(&buf).unwrap();
    client.join().unwrap().unwrap();
}

/// A parent SIGKILLed while its unix child is connected leaves no socket or directory, and
/// the child sees the parent gone.
fn killed_parent_private_socket() {
    let mut cmd = child_command("spawner");
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let guard = ChildGuard::new(child, CHILD_LIMIT);
    let pid = guard.id();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let mut guard = guard;
    guard.kill();
    let _ = guard.wait();
    let prefix = format!("switchboard-{pid}-");
    let mut bases = vec![std::env::temp_dir()];
    bases.extend(std::env::var_os("XDG_RUNTIME_DIR").map(Into::into));
    for base in bases {
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(&prefix), "{name} left behind in {}", base.display());
        }
    }
    let sockets = std::fs::read_to_string("/proc/net/unix").unwrap();
    assert!(!sockets.contains(&format!("@{prefix}")), "the killed parent's listener still exists");
    // The orphaned grandchild sees its parent gone and exits; reap it (we are its subreaper).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !orphans_reaped() {
        assert!(Instant::now() < deadline, "the orphaned child did not exit after its parent was killed");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A named segment whose creator was killed before anyone attached: `open_named` refuses it
/// (and removes it), `create_named` reuses the name.
fn dead_creator_segment() {
    let name = format!("switchboard-abuse-dead-{}", std::process::id());
    let kill_creator = || {
        let mut cmd = child_command("create-named");
        cmd.env("SWITCHBOARD_TEST_PATH", &name).stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut guard = ChildGuard::new(child, CHILD_LIMIT);
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        guard.kill();
        let _ = guard.wait();
        assert!(common::shm_entries().contains(&name), "the killed creator left {name} (the point of this test)");
    };
    kill_creator();
    let err = ShmTransport::open_named(&name, &Options::new()).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains(&name), "the error names the segment: {err}");
    assert!(!common::shm_entries().contains(&name), "open_named should remove the abandoned segment");
    kill_creator();
    let segment = ShmTransport::create_named(&name, &Options::new()).expect("the name of a dead creator is reused");
    drop(segment);
    assert!(!common::shm_entries().contains(&name));
    let missing = ShmTransport::open_named(&name, &Options::new()).map(|_| ()).unwrap_err();
    assert!(matches!(&missing, Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound), "{missing:?}");
    assert!(missing.to_string().contains(&name), "{missing}");
}
