//! Across hosts: two network namespaces joined by a veth pair stand for two machines. A server
//! runs in one (bound to its veth address with `Options::tcp_bind_ip`), a client in the other;
//! they exchange messages of every size, the client times 64-byte round trips, checks the
//! handshake (a wrong protocol version is refused across the link), and then the server dies
//! and the client must be told. With the feature zmq, the same over a ZeroMQ PAIR on
//! `tcp://`, where the server is frozen (SIGSTOP) instead, so that only heartbeats can tell.
//!
//! Needs root (`ip netns add`); without it, or without iproute2's `ip`, it says why and
//! passes. Namespaces are named `swb-test-PID-N-a`/`-b`, created with the veth ends already
//! inside them (nothing touches the host's own network), and deleted by a guard even when a
//! test fails; leftovers of a killed run are swept at the next start. Traffic stays on the
//! veth pair. Re-runs itself as the children (`harness = false`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::process::{ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ChildGuard, MAX, ROLE_ENV, payload};
use switchboard::{Address, Error, Listener, TcpTransport, Transport, connect};

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const ENV_ADDR: &str = "SWITCHBOARD_TEST_ADDR";
const PREFIX: &str = "swb-test";
const CHILD_LIMIT: Duration = Duration::from_secs(90);
const TEST_LIMIT: Duration = Duration::from_secs(120);
/// Sizes sent across: edges of the read buffer and of the kernel's segments, up to the maximum.
const SIZES: [usize; 15] = [0, 1, 2, 63, 64, 65, 1000, 4095, 4096, 65_535, 65_536, 65_537, 1 << 20, 8 << 20, MAX];

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    if let Some(why) = cannot_run() {
        println!("cross_host: skipped: {why}");
        println!("\n0 passed, 0 failed");
        return;
    }
    sweep_stale();
    #[cfg_attr(not(feature = "zmq"), allow(unused_mut))]
    let mut tests: Vec<common::NamedTest> = vec![("tcp::sizes_handshake_and_peer_death".into(), Box::new(tcp))];
    #[cfg(feature = "zmq")]
    tests.push(("zmq::sizes_and_frozen_peer".into(), Box::new(zmq)));
    common::run_tests(tests, TEST_LIMIT, || {
        let left = our_namespaces();
        for name in &left {
            let _ = ip(&["netns", "del", name]);
        }
        if left.is_empty() { vec![] } else { vec![format!("namespaces left behind (now deleted): {left:?}")] }
    });
}

/// Why this machine cannot run the test, if it cannot.
fn cannot_run() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("creating network namespaces needs root (CI runs as root)".into());
    }
    if Command::new("ip").arg("-V").stdout(Stdio::null()).status().is_err() {
        return Some("iproute2's `ip` is not installed (.ci/run installs it)".into());
    }
    match Hosts::new() {
        Ok(_) => None,
        Err(e) if e.contains("Operation not permitted") => Some(format!("no network namespaces here: {e}")),
        Err(_) => None, // let the test fail with the message
    }
}

/// Runs `ip ARGS`; the error carries its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn list_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    // Lines are "NAME" or "NAME (id: N)".
    String::from_utf8_lossy(&out).lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect()
}

fn our_namespaces() -> Vec<String> {
    let ours = format!("{PREFIX}-{}-", std::process::id());
    list_namespaces().into_iter().filter(|n| n.starts_with(&ours)).collect()
}

/// Deletes namespaces of earlier runs whose process is gone (killed before its guards ran).
fn sweep_stale() {
    for name in list_namespaces() {
        let Some(pid) = name.strip_prefix(&format!("{PREFIX}-")).and_then(|r| r.split('-').next()) else { continue };
        if pid.parse::<u32>().is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// Two namespaces, `a` (the server, SERVER_IP) and `b` (the client, CLIENT_IP), joined by a
/// veth pair; deleted on drop, whatever happened.
struct Hosts {
    names: Vec<String>,
}

impl Hosts {
    fn new() -> Result<Hosts, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let mut hosts = Hosts { names: Vec::new() };
        for side in ["a", "b"] {
            let name = format!("{PREFIX}-{}-{n}-{side}", std::process::id());
            ip(&["netns", "add", &name])?;
            hosts.names.push(name);
        }
        let (a, b) = (hosts.names[0].clone(), hosts.names[1].clone());
        // Both ends are created inside their namespaces: the host's own network never sees them.
        ip(&["link", "add", "veth-a", "netns", &a, "type", "veth", "peer", "name", "veth-b", "netns", &b])?;
        for (ns, dev, addr) in [(&a, "veth-a", SERVER_IP), (&b, "veth-b", CLIENT_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// Runs this binary in namespace `host` (0: server, 1: client) in `role`.
    fn spawn(&self, host: usize, role: &str, addr: Option<&str>) -> (ChildGuard, BufReader<ChildStdout>) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[host]])
            .arg(std::env::current_exe().unwrap())
            .env(ROLE_ENV, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(addr) = addr {
            cmd.env(ENV_ADDR, addr);
        }
        // `ip netns exec` execs the command in place: the pid is the test binary's.
        let mut child = cmd.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        (ChildGuard::new(child, CHILD_LIMIT), out)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("cross_host: {e}");
            }
        }
    }
}

/// The next line of a child's output; fails if it ended first.
fn line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "the child ended before saying what was expected");
    line.trim_end().to_owned()
}

/// Relays the client's report until it says READY.
fn until_ready(out: &mut BufReader<ChildStdout>) {
    loop {
        match line(out).as_str() {
            "READY" => return,
            other => println!("    {other}"),
        }
    }
}

/// Does `stop` to the server once the client is ready; returns how long the client took to
/// report the server gone.
fn stop_server_and_time(
    server: &ChildGuard,
    client_out: &mut BufReader<ChildStdout>,
    signal: nix::sys::signal::Signal,
) -> Duration {
    until_ready(client_out);
    let pid = nix::unistd::Pid::from_raw(server.id() as i32);
    let started = Instant::now();
    nix::sys::signal::kill(pid, signal).unwrap();
    assert_eq!(line(client_out), "GONE");
    started.elapsed()
}

fn tcp() {
    let hosts = Hosts::new().unwrap();
    let (mut server, mut server_out) = hosts.spawn(0, "tcp_server", None);
    let addr = line(&mut server_out).strip_prefix("ADDR ").expect("the server says ADDR first").to_owned();
    let (client, mut client_out) = hosts.spawn(1, "tcp_client", Some(&addr));
    let took = stop_server_and_time(&server, &mut client_out, nix::sys::signal::Signal::SIGKILL);
    println!("    tcp: killed server reported Disconnected across the link after {took:.2?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    client.wait_success();
    server.kill();
    drop(hosts);
}

#[cfg(feature = "zmq")]
fn zmq() {
    let hosts = Hosts::new().unwrap();
    let (mut server, mut server_out) = hosts.spawn(0, "zmq_server", None);
    let addr = line(&mut server_out).strip_prefix("ADDR ").expect("the server says ADDR first").to_owned();
    let (client, mut client_out) = hosts.spawn(1, "zmq_client", Some(&addr));
    let took = stop_server_and_time(&server, &mut client_out, nix::sys::signal::Signal::SIGSTOP);
    let bound = switchboard::ZmqTransport::HEARTBEAT_INTERVAL + switchboard::ZmqTransport::HEARTBEAT_TIMEOUT;
    println!("    zmq: frozen server reported Disconnected across the link after {took:.2?} (bound {bound:?})");
    assert!(took < bound + Duration::from_millis(700), "{took:?}");
    client.wait_success();
    server.kill();
    drop(hosts);
}

// ---- the children ----

fn child(role: &str) {
    let options = common::options().tcp_bind_ip(IpAddr::V4(SERVER_IP));
    match role {
        "tcp_server" => {
            let listener = Listener::bind_tcp(&options).unwrap();
            say(&format!("ADDR {}", listener.local_addr()));
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                std::thread::spawn(move || echo(conn.as_mut()));
            }
        }
        "tcp_client" => {
            let addr: Address = std::env::var(ENV_ADDR).unwrap().parse().unwrap();
            let Address::Tcp(sock) = addr else { panic!("not a tcp address") };
            refused_across_the_link(sock);
            let mut t = connect(&addr, &common::options()).unwrap();
            let seen = t.downcast_ref::<TcpTransport>().unwrap().peer_addr();
            assert_eq!(seen.ip(), IpAddr::V4(SERVER_IP), "connected through the veth link");
            exchange(t.as_mut(), "tcp");
        }
        #[cfg(feature = "zmq")]
        "zmq_server" => {
            let mut t = switchboard::ZmqTransport::bind(&format!("tcp://{SERVER_IP}:*"), &options).unwrap();
            say(&format!("ADDR zmq:{}", t.endpoint()));
            echo(&mut t);
        }
        #[cfg(feature = "zmq")]
        "zmq_client" => {
            let addr: Address = std::env::var(ENV_ADDR).unwrap().parse().unwrap();
            // Nothing listens on port 1: no ZeroMQ handshake across the link, a timeout.
            let quick = common::options().handshake_timeout(Duration::from_millis(300));
            let err = connect(&format!("zmq:tcp://{SERVER_IP}:1").parse().unwrap(), &quick).map(|_| ()).unwrap_err();
            assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut), "{err:?}");
            let mut t = connect(&addr, &common::options()).unwrap();
            exchange(t.as_mut(), "zmq");
        }
        other => panic!("unknown role {other}"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn echo(t: &mut dyn Transport) {
    let mut buf = Vec::new();
    while t.recv(&mut buf).is_ok() {
        if t.send(&buf).is_err() {
            break;
        }
    }
}

/// A hello of another protocol version, by hand: the server answers "wrong version" (status
/// 1) and closes.
fn refused_across_the_link(server: std::net::SocketAddr) {
    let mut s = TcpStream::connect(server).unwrap();
    let mut hello = 8u32.to_le_bytes().to_vec();
    hello.extend_from_slice(b"SWBH");
    hello.extend_from_slice(&(switchboard::PROTOCOL_VERSION + 1).to_le_bytes());
    hello.extend_from_slice(&0u16.to_le_bytes());
    s.write_all(&hello).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    assert_eq!(reply.len(), 12, "{reply:?}");
    assert_eq!(&reply[4..8], b"SWBR");
    assert_eq!(reply[10], 1, "status 1: wrong version");
    say("handshake: a wrong protocol version was refused across the link");
}

/// Every size there and back, then 64-byte round trips timed; then READY, and the server's
/// end must arrive as Disconnected.
fn exchange(t: &mut dyn Transport, label: &str) {
    let mut buf = Vec::new();
    for (i, &len) in SIZES.iter().enumerate() {
        let msg = payload(i as u64, len);
        t.send(&msg).unwrap();
        assert_eq!(t.recv(&mut buf).unwrap(), len);
        assert!(buf == msg, "{label}: {len}-byte message came back different");
    }
    say(&format!("{label}: {} sizes from 0 B to {MAX} B echoed intact", SIZES.len()));
    let msg = payload(99, 64);
    let mut times = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let started = Instant::now();
        t.send(&msg).unwrap();
        t.recv(&mut buf).unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    say(&format!(
        "{label}: 64 B round trip across the veth link: median {:.1} µs, p99 {:.1} µs ({} round trips)",
        times[times.len() / 2].as_secs_f64() * 1e6,
        times[times.len() * 99 / 100].as_secs_f64() * 1e6,
        times.len()
    ));
    say("READY");
    match t.recv_timeout(&mut buf, CHILD_LIMIT) {
        Err(Error::Disconnected) => say("GONE"),
        other => panic!("{label}: expected Disconnected, got {other:?}"),
    }
}
