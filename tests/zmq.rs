//! The zmq transport's own behaviour (feature `zmq`): what the generic suites cannot ask of
//! every transport. A peer that dies or freezes (SIGKILL, SIGSTOP) must be reported as
//! `Disconnected` within the documented time, a second ZeroMQ peer must not pass for the first,
//! a message above the maximum from the peer ends the connection, and the addresses, the
//! listener and `connect` behave as documented. Like tests/process.rs it re-runs itself as the
//! child (`harness = false`) and prints `N passed, N failed`.

mod common;

use std::time::{Duration, Instant};

use common::{ChildGuard, MAX, ROLE_ENV, child_command, expect_disconnected, payload};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use switchboard::{Address, ENV_CONNECT, Error, Kind, Listener, Options, Transport, ZmqTransport, connect};

const CHILD_LIMIT: Duration = Duration::from_secs(60);
const TEST_LIMIT: Duration = Duration::from_secs(90);
/// Where the child connects, for the tests that bind themselves.
const ENV_ENDPOINT: &str = "SWITCHBOARD_TEST_ZMQ_ENDPOINT";
/// Scheduling slack on top of the documented detection time, for a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(700);

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    let mut tests: Vec<common::NamedTest> = Vec::new();
    for endpoint in ["tcp://127.0.0.1:*", "ipc://@switchboard-test-zmq-{pid}-{n}"] {
        let scheme = &endpoint[..3];
        tests.push((format!("{scheme}::frozen_peer_is_found_by_heartbeats"), Box::new(move || frozen_peer(endpoint))));
        tests.push((format!("{scheme}::killed_peer_is_found_at_once"), Box::new(move || killed_peer(endpoint))));
    }
    tests.push(("spawn_child_echoes_0_to_3_mib".into(), Box::new(spawn_child_echoes)));
    tests.push(("impostor_makes_spawn_fail".into(), Box::new(impostor_makes_spawn_fail)));
    tests.push(("second_peer_is_not_the_peer".into(), Box::new(second_peer_is_not_the_peer)));
    tests.push(("oversized_message_from_peer_ends_connection".into(), Box::new(oversized_from_peer)));
    tests.push(("multipart_is_a_protocol_error".into(), Box::new(multipart_is_a_protocol_error)));
    tests.push(("connect_before_bind".into(), Box::new(connect_before_bind)));
    tests.push(("send_timeout_without_a_peer".into(), Box::new(send_timeout_without_a_peer)));
    tests.push(("connect_to_nobody_times_out".into(), Box::new(connect_to_nobody_times_out)));
    tests.push(("addresses_and_listener".into(), Box::new(addresses_and_listener)));
    common::run_tests(tests, TEST_LIMIT, Vec::new);
}

/// `endpoint` with `{pid}` and `{n}` filled in, so that no two runs or tests share a name.
fn fresh(endpoint: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    endpoint.replace("{pid}", &std::process::id().to_string()).replace("{n}", &n.to_string())
}

/// Binds at `endpoint`, starts a child in `role` that connects there, and checks one echo.
fn bind_and_spawn(endpoint: &str, role: &str) -> (ChildGuard, ZmqTransport) {
    let mut server = ZmqTransport::bind(&fresh(endpoint), &common::options()).unwrap();
    let mut cmd = child_command(role);
    cmd.env(ENV_ENDPOINT, server.endpoint());
    let child = ChildGuard::new(cmd.spawn().unwrap(), CHILD_LIMIT);
    server.send(b"ping").unwrap();
    let mut buf = Vec::new();
    assert_eq!(server.recv_timeout(&mut buf, CHILD_LIMIT).unwrap(), 4);
    assert_eq!(buf, b"ping");
    (child, server)
}

/// Times how long `recv` takes to say `Disconnected` after `stop` was done to the child.
fn time_to_disconnected(server: &mut ZmqTransport, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = Vec::new();
    match server.recv_timeout(&mut buf, limit) {
        Err(Error::Disconnected) => started.elapsed(),
        other => panic!("expected Disconnected within {limit:?}, got {other:?} after {:?}", started.elapsed()),
    }
}

/// SIGSTOP: the peer's socket stays open but nothing answers the PINGs.
fn frozen_peer(endpoint: &str) {
    let (mut child, mut server) = bind_and_spawn(endpoint, "echo");
    let bound = ZmqTransport::HEARTBEAT_INTERVAL + ZmqTransport::HEARTBEAT_TIMEOUT;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGSTOP).unwrap();
    let took = time_to_disconnected(&mut server, bound + SLACK);
    println!(
        "    {}: frozen peer reported Disconnected after {took:.2?} (documented bound {bound:?})",
        server.endpoint()
    );
    assert!(took >= ZmqTransport::HEARTBEAT_TIMEOUT / 2, "{took:?}: too early for a heartbeat timeout");
    assert!(matches!(server.send(b"x"), Err(Error::Disconnected)));
    child.kill();
    let _ = child.wait();
}

/// SIGKILL: the kernel closes the peer's socket, which libzmq sees at once.
fn killed_peer(endpoint: &str) {
    let (mut child, mut server) = bind_and_spawn(endpoint, "echo");
    child.kill();
    let took = time_to_disconnected(&mut server, SLACK);
    println!("    {}: killed peer reported Disconnected after {took:.2?}", server.endpoint());
    let _ = child.wait();
}

fn spawn_child_echoes() {
    let (child, mut t) = common::options().spawn_child(Kind::Zmq, &mut child_command("parent_echo")).unwrap();
    let child = ChildGuard::new(child, CHILD_LIMIT);
    assert_eq!(t.kind(), Kind::Zmq);
    let mut buf = Vec::new();
    for (i, len) in [0, 1, 1000, 65_536, 1 << 20, 3 << 20].into_iter().enumerate() {
        let msg = payload(i as u64, len);
        t.send(&msg).unwrap();
        assert_eq!(t.recv(&mut buf).unwrap(), len);
        assert!(buf == msg, "{len}-byte message came back different");
    }
    drop(t);
    child.wait_success();
}

fn impostor_makes_spawn_fail() {
    let err = common::options().spawn_child(Kind::Zmq, &mut child_command("impostor")).map(|_| ()).unwrap_err();
    assert!(matches!(&err, Error::Handshake(m) if m.contains("wrong token")), "{err:?}");
}

/// A PAIR socket ignores a second peer: its coming and going must not pass for the first's.
fn second_peer_is_not_the_peer() {
    let options = common::options();
    let mut server = ZmqTransport::bind("tcp://127.0.0.1:*", &options).unwrap();
    let mut first = ZmqTransport::connect(server.endpoint(), &options).unwrap();
    server.wait_for_peer(CHILD_LIMIT).unwrap();
    let second = ZmqTransport::connect(server.endpoint(), &options).unwrap();
    drop(second);
    let mut buf = Vec::new();
    first.send(b"still here").unwrap();
    assert_eq!(server.recv_timeout(&mut buf, CHILD_LIMIT).unwrap(), 10);
    // Long enough for the second peer's DISCONNECTED to have been read.
    assert!(matches!(server.recv_timeout(&mut buf, Duration::from_millis(300)), Err(Error::Timeout)));
    server.send(b"to the first").unwrap();
    first.recv_timeout(&mut buf, CHILD_LIMIT).unwrap();
    assert_eq!(buf, b"to the first");
    drop(first);
    expect_disconnected(&mut server, CHILD_LIMIT);
}

/// libzmq drops a connection whose message is above `ZMQ_MAXMSGSIZE` on reading its length;
/// the receiver sees its peer leave.
fn oversized_from_peer() {
    let small = common::options().max_message_size(1 << 20);
    let mut receiver = ZmqTransport::bind("tcp://127.0.0.1:*", &small).unwrap();
    let mut sender = ZmqTransport::connect(receiver.endpoint(), &common::options()).unwrap();
    sender.send(b"fits").unwrap();
    let mut buf = Vec::new();
    receiver.recv_timeout(&mut buf, CHILD_LIMIT).unwrap();
    sender.send(&vec![7; 2 << 20]).unwrap();
    expect_disconnected(&mut receiver, CHILD_LIMIT);
    assert!(matches!(receiver.send(b"x"), Err(Error::Disconnected)));
}

/// A peer that is a plain ZeroMQ socket sends a two-part message: refused, the next one comes.
fn multipart_is_a_protocol_error() {
    let mut ours = ZmqTransport::bind("tcp://127.0.0.1:*", &common::options()).unwrap();
    let context = zmq::Context::new();
    let theirs = context.socket(zmq::PAIR).unwrap();
    theirs.set_linger(1000).unwrap();
    theirs.connect(ours.endpoint()).unwrap();
    theirs.send_multipart([&b"one"[..], &b"two"[..]], 0).unwrap();
    theirs.send(&b"single"[..], 0).unwrap();
    let mut buf = Vec::new();
    let err = ours.recv_timeout(&mut buf, CHILD_LIMIT).unwrap_err();
    assert!(matches!(&err, Error::Protocol(m) if m.contains("2 parts")), "{err:?}");
    assert_eq!(ours.recv_timeout(&mut buf, CHILD_LIMIT).unwrap(), 6);
    assert_eq!(buf, b"single");
    ours.send(b"back").unwrap();
    assert_eq!(theirs.recv_bytes(0).unwrap(), b"back");
}

/// ZeroMQ's habit: the connecting side may start first, within the handshake timeout.
fn connect_before_bind() {
    let endpoint = fresh("ipc://@switchboard-test-zmq-late-{pid}-{n}");
    let target = endpoint.clone();
    let client = std::thread::spawn(move || ZmqTransport::connect(&target, &common::options()));
    let mut server = ZmqTransport::bind(&endpoint, &common::options()).unwrap();
    let mut client = client.join().unwrap().unwrap();
    client.send(b"late but fine").unwrap();
    let mut buf = Vec::new();
    server.recv_timeout(&mut buf, CHILD_LIMIT).unwrap();
    assert_eq!(buf, b"late but fine");
}

/// A bound endpoint with no peer yet cannot take a message: `send_timeout` gives up in time,
/// sends nothing, and the endpoint stays usable.
fn send_timeout_without_a_peer() {
    let mut server = ZmqTransport::bind("tcp://127.0.0.1:*", &common::options()).unwrap();
    assert!(matches!(server.send_timeout(b"x", Duration::ZERO), Err(Error::Timeout)));
    let started = Instant::now();
    assert!(matches!(server.send_timeout(b"x", Duration::from_millis(50)), Err(Error::Timeout)));
    assert!(started.elapsed() >= Duration::from_millis(50), "{:?}", started.elapsed());
    assert!(matches!(server.send_timeout(&vec![0; MAX + 1], Duration::ZERO), Err(Error::MessageTooLarge { .. })));
    let mut client = ZmqTransport::connect(server.endpoint(), &common::options()).unwrap();
    server.wait_for_peer(CHILD_LIMIT).unwrap();
    server.send_timeout(b"now", CHILD_LIMIT).unwrap();
    assert_eq!(server.pending_send(), 0);
    server.flush_timeout(Duration::ZERO).unwrap();
    let mut buf = Vec::new();
    assert_eq!(client.recv_timeout(&mut buf, CHILD_LIMIT).unwrap(), 3);
    assert_eq!(buf, b"now", "the timed-out sends sent nothing");
}

fn connect_to_nobody_times_out() {
    let options = common::options().handshake_timeout(Duration::from_millis(300));
    let endpoint = fresh("ipc://@switchboard-test-zmq-nobody-{pid}-{n}");
    let started = Instant::now();
    let err = ZmqTransport::connect(&endpoint, &options).unwrap_err();
    let Error::Io(io) = &err else { panic!("{err:?}") };
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(err.to_string().matches(&endpoint).count(), 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

fn addresses_and_listener() {
    let addr: Address = "zmq:tcp://127.0.0.1:5555".parse().unwrap();
    assert_eq!(addr, Address::Zmq("tcp://127.0.0.1:5555".into()));
    assert_eq!(addr.to_string(), "zmq:tcp://127.0.0.1:5555");
    for bad in ["zmq:", "zmq:127.0.0.1:5555", "zmq:inproc://x"] {
        assert!(matches!(bad.parse::<Address>(), Err(Error::Config(_))), "{bad}");
    }
    assert!(matches!(Listener::bind(&addr, &Options::new()), Err(Error::Config(_))));
    assert_eq!("zmq".parse::<Kind>().unwrap(), Kind::Zmq);
    assert!(!Kind::ALL.contains(&Kind::Zmq));
    // connect() at a zmq: address gives a Kind::Zmq endpoint.
    let mut server = ZmqTransport::bind("tcp://127.0.0.1:*", &Options::new()).unwrap();
    let mut client = connect(&format!("zmq:{}", server.endpoint()).parse().unwrap(), &Options::new()).unwrap();
    assert_eq!(client.kind(), Kind::Zmq);
    assert!(client.downcast_ref::<ZmqTransport>().is_some());
    client.send(b"via connect").unwrap();
    let mut buf = Vec::new();
    server.recv_timeout(&mut buf, CHILD_LIMIT).unwrap();
    assert_eq!(buf, b"via connect");
    assert!(matches!(client.ready_fd(), Err(Error::Config(_))));
}

// ---- the child side ----

fn child(role: &str) {
    match role {
        "echo" => {
            let endpoint = std::env::var(ENV_ENDPOINT).unwrap();
            let mut t = ZmqTransport::connect(&endpoint, &common::options()).unwrap();
            echo(&mut t);
        }
        "parent_echo" => echo(switchboard::connect_to_parent().unwrap().as_mut()),
        "impostor" => {
            // Another process that found the parent's address, without the token.
            let Ok(Address::Zmq(endpoint)) = std::env::var(ENV_CONNECT).unwrap().parse() else {
                panic!("not a zmq: address")
            };
            let mut t = ZmqTransport::connect(&endpoint, &Options::new()).unwrap();
            let mut hello = b"SWBH".to_vec();
            hello.extend_from_slice(&switchboard::PROTOCOL_VERSION.to_le_bytes());
            hello.extend_from_slice(&1u16.to_le_bytes());
            hello.extend_from_slice(&[0x55; 32]);
            t.send(&hello).unwrap();
            let _ = t.recv_timeout(&mut Vec::new(), CHILD_LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

fn echo(t: &mut dyn Transport) {
    let mut buf = Vec::new();
    loop {
        match t.recv(&mut buf) {
            Ok(_) => t.send(&buf).unwrap(),
            Err(Error::Disconnected) => return,
            Err(e) => panic!("child echo: {e}"),
        }
    }
}
