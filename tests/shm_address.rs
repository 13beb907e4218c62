//! Shared memory by address for unrelated processes (`shm:PATH`, `shm:@NAME`): the listener
//! hands each client a sealed memfd over a Unix socket. In one process and across processes,
//! with both sides SIGKILLed (nothing may appear in /dev/shm, the path must be reusable) and a
//! peer killed while the other waits. Runs without libtest so the /dev/shm audit is exact.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{ChildGuard, ROLE_ENV, child_command, payload};
use switchboard::{Address, Error, Kind, Listener, Options, ShmTransport, Transport, connect};

const LIMIT: Duration = Duration::from_secs(60);

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child(&role);
        return;
    }
    let shm_before = common::shm_entries();
    let tests: Vec<common::NamedTest> = vec![
        ("echo_in_one_process_every_size".into(), Box::new(echo_in_one_process)),
        ("both_processes_killed_leave_nothing".into(), Box::new(both_killed)),
        ("a_killed_client_is_noticed_by_the_server".into(), Box::new(killed_client_noticed)),
        ("two_clients_get_segments_of_their_own".into(), Box::new(two_clients)),
    ];
    common::run_tests(tests, LIMIT, move || {
        let after = common::shm_entries();
        if after.iter().any(|e| !shm_before.contains(e)) {
            vec![format!("/dev/shm gained entries: {after:?}")]
        } else {
            Vec::new()
        }
    });
}

fn options() -> Options {
    // A small ring, so larger messages travel in fragments.
    Options::new().ring_capacity(1 << 16).max_message_size(9 << 20).handshake_timeout(Duration::from_secs(20))
}

fn child(role: &str) {
    let addr: Address = std::env::var("SWITCHBOARD_TEST_ADDR").unwrap().parse().unwrap();
    match role {
        "shm-server" => {
            let listener = Listener::bind(&addr, &options()).unwrap();
            println!("ready");
            let mut conn = listener.accept().unwrap();
            let mut buf = Vec::new();
            while conn.recv(&mut buf).is_ok() {
                if conn.send(&buf).is_err() {
                    break;
                }
            }
        }
        "shm-client" => {
            let mut conn = connect(&addr, &options()).unwrap();
            assert_eq!(conn.kind(), Kind::Shm);
            println!("connected");
            let mut buf = Vec::new();
            for i in 0.. {
                conn.send(&payload(i, (i % 5000) as usize)).unwrap();
                conn.recv(&mut buf).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn unique(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("switchboard-test-{what}-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn echo_in_one_process() {
    for addr in [Address::ShmAbstract(unique("echo")), {
        let dir = std::env::temp_dir().join(unique("echo-path"));
        Address::Shm(dir)
    }] {
        assert_eq!(addr.to_string().parse::<Address>().unwrap(), addr);
        let listener = Listener::bind(&addr, &options()).unwrap();
        let addr2 = addr.clone();
        let client = std::thread::spawn(move || {
            let mut conn = connect(&addr2, &options()).unwrap();
            assert_eq!(conn.kind(), Kind::Shm);
            assert!(conn.downcast_ref::<ShmTransport>().is_some());
            let mut buf = Vec::new();
            for (i, len) in [0usize, 1, 100, 16_000, 70_000, 1 << 20, 8 << 20].into_iter().enumerate() {
                let msg = payload(i as u64, len);
                conn.send(&msg).unwrap();
                conn.recv(&mut buf).unwrap();
                assert!(buf == msg, "echo of {len} bytes differs");
            }
        });
        let mut server = listener.accept_timeout(LIMIT).unwrap();
        assert_eq!(server.kind(), Kind::Shm);
        let mut buf = Vec::new();
        while server.recv(&mut buf).is_ok() {
            server.send(&buf).unwrap();
        }
        client.join().unwrap();
        drop(listener);
        if let Address::Shm(path) = &addr {
            assert!(!path.exists(), "the socket file goes with the listener");
        }
    }
}

fn spawn(role: &str, addr: &Address) -> (ChildGuard, BufReader<std::process::ChildStdout>) {
    let mut cmd = child_command(role);
    cmd.env("SWITCHBOARD_TEST_ADDR", addr.to_string()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (ChildGuard::new(child, LIMIT), out)
}

fn expect_line(out: &mut BufReader<std::process::ChildStdout>, want: &str) {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), want);
}

fn both_killed() {
    let before = common::shm_entries();
    let path = std::env::temp_dir().join(unique("killed"));
    let addr = Address::Shm(path.clone());
    let (mut server, mut server_out) = spawn("shm-server", &addr);
    expect_line(&mut server_out, "ready");
    let (mut client, mut client_out) = spawn("shm-client", &addr);
    expect_line(&mut client_out, "connected");
    client.kill();
    server.kill();
    let _ = (client.wait(), server.wait());
    assert_eq!(common::shm_entries(), before, "SIGKILLed shm peers left something in /dev/shm");
    // The socket file is left by the killed server; the next bind takes it over.
    let listener = Listener::bind(&addr, &options()).expect("a dead server's path is reusable");
    drop(listener);
    assert!(!path.exists());
}

fn killed_client_noticed() {
    let addr = Address::ShmAbstract(unique("noticed"));
    let listener = Listener::bind(&addr, &options()).unwrap();
    let (mut client, mut client_out) = spawn("shm-client", &addr);
    let mut conn = listener.accept_timeout(LIMIT).unwrap();
    expect_line(&mut client_out, "connected");
    let mut buf = Vec::new();
    conn.recv_timeout(&mut buf, LIMIT).unwrap();
    client.kill();
    let _ = client.wait();
    let started = Instant::now();
    loop {
        match conn.recv_timeout(&mut buf, LIMIT) {
            Ok(_) => continue,
            Err(Error::Disconnected) => break,
            Err(e) => panic!("expected Disconnected, got {e:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    println!("    a SIGKILLed client noticed after {:?}", started.elapsed());
}

fn two_clients() {
    let addr = Address::ShmAbstract(unique("two"));
    let listener = Listener::bind(&addr, &options()).unwrap();
    let clients: Vec<_> = (0..2u8)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut conn = connect(&addr, &options()).unwrap();
                conn.send(&[c; 10]).unwrap();
                let mut buf = Vec::new();
                conn.recv(&mut buf).unwrap();
                assert_eq!(buf, [c; 10], "client {c} got another's reply");
            })
        })
        .collect();
    let mut conns: Vec<_> = (0..2).map(|_| listener.accept_timeout(LIMIT).unwrap()).collect();
    let mut buf = Vec::new();
    for conn in &mut conns {
        conn.recv(&mut buf).unwrap();
        conn.send(&buf).unwrap();
    }
    for c in clients {
        c.join().unwrap();
    }
}
