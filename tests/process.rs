//! The generic suite across real processes: this binary re-runs itself as the child (the
//! role is in `SWITCHBOARD_TEST_ROLE`), connected through `spawn_child`/`connect_to_parent`,
//! for every transport and every shm wait strategy. A hung child is killed at its deadline and
//! the test fails. Runs without libtest (`harness = false`) so that the child can be this very
//! binary with its own `main`; it prints `N passed, N failed` and exits non-zero on failure.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::{
    ChildGuard, MAX, ROLE_ENV, check_sequenced, child_command, expect_disconnected, payload, send_until_disconnected,
    sequenced,
};
use switchboard::{Address, ENV_CONNECT, Error, Kind, Options, Transport, WaitStrategy};

/// A parent-side test body for one transport configuration.
type Scenario = fn(Kind, Options);

const CHILD_LIMIT: Duration = Duration::from_secs(60);
const TEST_LIMIT: Duration = Duration::from_secs(90);

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    let mut tests: Vec<common::NamedTest> = Vec::new();
    for (label, kind, options) in configs() {
        let scenarios: [(&str, Scenario); 6] = [
            ("echo_sizes", echo_sizes),
            ("ten_thousand_in_order", ten_thousand_in_order),
            ("both_send_at_once", both_send_at_once),
            ("peer_exit", peer_exit),
            ("peer_drop", peer_drop),
            ("timeout_then_delivered", timeout_then_delivered),
        ];
        for (name, f) in scenarios {
            let options = options.clone();
            tests.push((format!("{label}::{name}"), Box::new(move || f(kind, options.clone()))));
        }
    }
    for kind in [Kind::Tcp, Kind::Unix] {
        tests.push((format!("{kind}::impostor_is_refused"), Box::new(move || impostor_is_refused(kind))));
    }
    tests.push(("shm::no_dev_shm_entries".into(), Box::new(no_dev_shm_entries)));

    let shm_before = common::shm_entries();
    common::run_tests(tests, TEST_LIMIT, move || {
        let shm_after = common::shm_entries();
        if shm_after.len() > shm_before.len() { vec![format!("new /dev/shm entries: {shm_after:?}")] } else { vec![] }
    });
}

/// Every transport, shm in every wait strategy.
fn configs() -> Vec<(String, Kind, Options)> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        if kind == Kind::Shm {
            for wait in WaitStrategy::ALL {
                out.push((format!("shm-{wait}"), kind, common::options().wait_strategy(wait).ring_capacity(1 << 20)));
            }
        } else {
            out.push((kind.to_string(), kind, common::options()));
        }
    }
    #[cfg(feature = "zmq")]
    out.push(("zmq".into(), Kind::Zmq, common::options()));
    out
}

/// Whether `t` queues what it sends in a thread of its own (ZeroMQ's I/O thread), so that a
/// process that exits without dropping it loses what was still queued.
fn queues_in_a_thread(t: &dyn Transport) -> bool {
    t.kind().name() == "zmq"
}

fn spawn(kind: Kind, options: &Options, role: &str) -> (ChildGuard, Box<dyn Transport>) {
    let mut cmd = child_command(role);
    spawn_cmd(kind, options, &mut cmd)
}

fn spawn_cmd(kind: Kind, options: &Options, cmd: &mut std::process::Command) -> (ChildGuard, Box<dyn Transport>) {
    let (child, t) = options.spawn_child(kind, cmd).unwrap_or_else(|e| panic!("spawn_child({kind}): {e}"));
    assert_eq!(t.kind(), kind);
    (ChildGuard::new(child, CHILD_LIMIT), t)
}

fn echo_sizes(kind: Kind, options: Options) {
    let (child, mut t) = spawn(kind, &options, "echo");
    let mut buf = Vec::new();
    for (i, len) in [0, 1, 64, 100_000, 8 << 20, MAX].into_iter().enumerate() {
        let msg = payload(i as u64, len);
        t.send(&msg).unwrap();
        assert_eq!(t.recv(&mut buf).unwrap(), len);
        assert!(buf == msg, "{len}-byte message came back different");
    }
    assert!(matches!(t.send(&vec![0; MAX + 1]), Err(Error::MessageTooLarge { .. })));
    t.send(b"after max+1").unwrap();
    t.recv(&mut buf).unwrap();
    assert_eq!(buf, b"after max+1");
    drop(t);
    child.wait_success();
}

fn ten_thousand_in_order(kind: Kind, options: Options) {
    let (child, mut t) = spawn(kind, &options, "stream");
    let mut buf = Vec::new();
    for expected in 0..10_000u64 {
        t.recv(&mut buf).unwrap();
        assert_eq!(check_sequenced(&buf).unwrap(), expected);
    }
    t.send(b"done").unwrap();
    expect_disconnected(t.as_mut(), CHILD_LIMIT);
    child.wait_success();
}

fn both_send_at_once(kind: Kind, options: Options) {
    let (child, mut t) = spawn(kind, &options, "flood");
    common::flood(t.as_mut());
    drop(t);
    child.wait_success();
}

fn peer_exit(kind: Kind, options: Options) {
    let (child, mut t) = spawn(kind, &options, "exit_now");
    let mut buf = Vec::new();
    t.recv(&mut buf).unwrap();
    assert_eq!(buf, b"bye");
    if queues_in_a_thread(t.as_ref()) {
        t.send(b"got it").unwrap();
    }
    expect_disconnected(t.as_mut(), CHILD_LIMIT);
    send_until_disconnected(t.as_mut(), CHILD_LIMIT);
    child.wait_success();
}

fn peer_drop(kind: Kind, options: Options) {
    let mut cmd = child_command("drop_then_wait");
    cmd.stdin(Stdio::piped());
    let (child, t) = options.spawn_child(kind, &mut cmd).unwrap();
    let mut child = child;
    let stdin = child.stdin.take().unwrap();
    let mut child = ChildGuard::new(child, CHILD_LIMIT);
    let mut t = t;
    expect_disconnected(t.as_mut(), CHILD_LIMIT);
    send_until_disconnected(t.as_mut(), CHILD_LIMIT);
    let _ = &mut child;
    // The child is still alive (blocked on its stdin): the drop alone said "closed".
    drop(stdin);
    child.wait_success();
}

fn timeout_then_delivered(kind: Kind, options: Options) {
    let (child, mut t) = spawn(kind, &options, "late_reply");
    let mut buf = Vec::new();
    assert!(matches!(t.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)));
    assert!(matches!(t.recv_timeout(&mut buf, Duration::from_millis(30)), Err(Error::Timeout)));
    t.send(b"go").unwrap();
    assert_eq!(t.recv_timeout(&mut buf, CHILD_LIMIT).unwrap(), 5);
    assert_eq!(buf, b"reply");
    drop(t);
    child.wait_success();
}

/// The child first plays an impostor on its own address with a wrong token, checks that it is
/// refused, then connects for real; the parent must end up with the real child.
fn impostor_is_refused(kind: Kind) {
    let (child, mut t) = spawn(kind, &common::options(), "impostor_then_echo");
    let mut buf = Vec::new();
    t.send(b"who are you").unwrap();
    t.recv(&mut buf).unwrap();
    assert_eq!(buf, b"who are you");
    drop(t);
    child.wait_success();
}

fn no_dev_shm_entries() {
    let before = common::shm_entries();
    let (child, mut t) = spawn(Kind::Shm, &common::options(), "echo");
    t.send(b"x").unwrap();
    t.recv(&mut Vec::new()).unwrap();
    assert_eq!(common::shm_entries(), before, "a parent/child shm connection must not create a /dev/shm name");
    drop(t);
    child.wait_success();
}

// ---- the child side ----

fn child(role: &str) {
    if role == "impostor_then_echo" {
        impostor();
    }
    let mut t = switchboard::connect_to_parent().unwrap_or_else(|e| panic!("child {role}: connect_to_parent: {e}"));
    let mut buf = Vec::new();
    match role {
        "echo" | "impostor_then_echo" => loop {
            match t.recv(&mut buf) {
                Ok(_) => t.send(&buf).unwrap(),
                Err(Error::Disconnected) => break,
                Err(e) => panic!("child echo: {e}"),
            }
        },
        "stream" => {
            for seq in 0..10_000u64 {
                t.send(&sequenced(seq, (seq % 300) as usize)).unwrap();
            }
            t.recv(&mut buf).unwrap();
        }
        "flood" => common::flood(t.as_mut()),
        "exit_now" => {
            t.send(b"bye").unwrap();
            if queues_in_a_thread(t.as_ref()) {
                // "bye" is out once the parent answered.
                t.recv(&mut buf).unwrap();
            }
            // Exit without running destructors: the peer must notice the death itself.
            std::process::exit(0);
        }
        "drop_then_wait" => {
            drop(t);
            let _ = std::io::stdin().read_to_end(&mut buf);
        }
        "late_reply" => {
            t.recv(&mut buf).unwrap();
            assert_eq!(buf, b"go");
            t.send(b"reply").unwrap();
            expect_disconnected(t.as_mut(), CHILD_LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

/// Connects to the parent's address with a wrong token, as another local process could, and
/// checks that the parent refuses it.
fn impostor() {
    let addr: Address = std::env::var(ENV_CONNECT).unwrap().parse().unwrap();
    // The wire format from the README: u32 LE length, then "SWBH", version, flags, token.
    let mut hello = Vec::new();
    hello.extend_from_slice(&40u32.to_le_bytes());
    hello.extend_from_slice(b"SWBH");
    hello.extend_from_slice(&switchboard::PROTOCOL_VERSION.to_le_bytes());
    hello.extend_from_slice(&1u16.to_le_bytes());
    hello.extend_from_slice(&[0x55; 32]);
    let mut reply = Vec::new();
    let mut s = common::RawConn::connect(&addr).unwrap();
    s.write_all(&hello).unwrap();
    s.read_to_end(&mut reply).unwrap();
    // A refusal frame (status 2: bad token), then the server closed the connection.
    assert_eq!(reply.len(), 12, "impostor got {reply:?}");
    assert_eq!(&reply[4..8], b"SWBR");
    assert_eq!(reply[10], 2, "status should be 'bad token'");
}
