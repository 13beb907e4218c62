//! The server side: many clients at once, and clients that are not switchboard clients.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{payload, with_deadline};
use switchboard::{Address, Error, Listener, Options, Transport, connect};

const LIMIT: Duration = Duration::from_secs(60);

fn bind(tcp: bool) -> Arc<Listener> {
    let options = common::options();
    Arc::new(if tcp { Listener::bind_tcp(&options) } else { Listener::bind_unix_private(&options) }.unwrap())
}

/// Serves `clients` connections, one thread per client as in the HOWTO, echoing each message.
fn serve(listener: Arc<Listener>, clients: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                let mut conn = listener.accept().unwrap();
                thread::spawn(move || {
                    let mut buf = Vec::new();
                    while conn.recv(&mut buf).is_ok() {
                        conn.send(&buf).unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    })
}

fn many_clients(tcp: bool) {
    let listener = bind(tcp);
    let addr = listener.local_addr().clone();
    let server = serve(listener, 32);
    let clients: Vec<_> = (0..32u64)
        .map(|c| {
            let addr = addr.clone();
            thread::spawn(move || {
                let mut conn = connect(&addr, &common::options()).unwrap();
                let mut buf = Vec::new();
                for i in 0..1000u64 {
                    let msg = payload(c * 1000 + i, (i % 2000) as usize);
                    conn.send(&msg).unwrap();
                    conn.recv(&mut buf).unwrap();
                    assert!(buf == msg, "client {c} message {i} came back different");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
}

#[test]
fn tcp_32_clients_echo_1000_messages() {
    with_deadline(LIMIT, || many_clients(true));
}

#[test]
fn unix_32_clients_echo_1000_messages() {
    with_deadline(LIMIT, || many_clients(false));
}

/// Raw connections that misbehave, then a real client that must still be served.
fn garbage_is_refused(tcp: bool) {
    let listener = bind(tcp);
    let addr = listener.local_addr().clone();
    let raw = |bytes: &[u8]| -> Vec<u8> {
        let mut reply = Vec::new();
        let mut s = common::RawConn::connect(&addr).unwrap();
        s.write_all(bytes).unwrap();
        s.shutdown_write().unwrap();
        let _ = s.read_to_end(&mut reply);
        reply
    };
    let server = serve(listener.clone(), 1);
    // A silent client that never sends anything must not hold up the others.
    let silent = common::RawConn::connect(&addr).unwrap();
    let mut wrong_version = vec![8, 0, 0, 0];
    wrong_version.extend_from_slice(b"SWBH\x63\x00\x00\x00");
    let cases: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\n\r\n",
        &[0xff, 0xff, 0xff, 0xff],
        &[8, 0, 0, 0, b'S', b'W'],
        &wrong_version,
        &[40, 0, 0, 0, b'S', b'W', b'B', b'H', 1, 0, 0, 0],
    ];
    for case in cases {
        let reply = raw(case);
        // Either an explicit refusal frame or a plain close; never an acceptance.
        assert!(reply.is_empty() || (reply.len() == 12 && reply[10] != 0), "{case:?} got {reply:?}");
    }
    let mut conn = connect(&addr, &common::options()).unwrap();
    conn.send(b"served").unwrap();
    let mut buf = Vec::new();
    conn.recv(&mut buf).unwrap();
    assert_eq!(buf, b"served");
    drop(conn);
    server.join().unwrap();
    assert!(listener.refused() >= 4, "refused {}", listener.refused());
    drop(silent);
}

#[test]
fn tcp_garbage_is_refused_and_others_served() {
    with_deadline(LIMIT, || garbage_is_refused(true));
}

#[test]
fn unix_garbage_is_refused_and_others_served() {
    with_deadline(LIMIT, || garbage_is_refused(false));
}

#[test]
fn wrong_version_gives_a_handshake_error_to_the_client() {
    with_deadline(LIMIT, || {
        // A server that answers every hello with "bad version", as a newer switchboard would.
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut hello = [0u8; 12];
            s.read_exact(&mut hello).unwrap();
            s.write_all(&[8, 0, 0, 0, b'S', b'W', b'B', b'R', 2, 0, 1, 0]).unwrap();
        });
        let err = connect(&Address::Tcp(addr), &Options::new()).expect_err("must fail");
        assert!(matches!(err, Error::Handshake(_)), "{err:?}");
        t.join().unwrap();
    });
}

#[test]
fn not_a_switchboard_server_is_a_handshake_error() {
    with_deadline(LIMIT, || {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
        });
        let options = Options::new().handshake_timeout(Duration::from_secs(5));
        let err = connect(&Address::Tcp(addr), &options).expect_err("must fail");
        assert!(matches!(err, Error::Handshake(_)), "{err:?}");
        t.join().unwrap();
    });
}

#[test]
fn private_unix_listener_has_no_file_and_goes_with_its_socket() {
    let listener = Listener::bind_unix_private(&Options::new()).unwrap();
    let addr = listener.local_addr().clone();
    let Address::UnixAbstract(name) = &addr else { panic!("private listeners are abstract: {addr}") };
    assert!(name.starts_with(&format!("switchboard-{}-", std::process::id())));
    assert_eq!(addr.to_string().parse::<Address>().unwrap(), addr, "the address round-trips through text");
    let addr2 = addr.clone();
    let client = thread::spawn(move || connect(&addr2, &Options::new()).unwrap());
    let mut server = listener.accept_timeout(Duration::from_secs(20)).unwrap();
    let mut client = client.join().unwrap();
    client.send(b"abstract").unwrap();
    let mut buf = Vec::new();
    server.recv(&mut buf).unwrap();
    assert_eq!(buf, b"abstract");
    drop(listener);
    assert!(common::RawConn::connect(&addr).is_err(), "the name must vanish with the listener");
}

#[test]
fn unix_listener_at_a_path_removes_its_file() {
    let dir = common::TempDir::new("listener-path");
    let path = dir.path().join("sock");
    let listener = Listener::bind(&Address::Unix(path.clone()), &Options::new()).unwrap();
    assert!(path.exists());
    drop(listener);
    assert!(!path.exists(), "socket {path:?} left behind");
}

#[test]
fn bind_reclaims_a_stale_socket_file_and_refuses_a_live_one() {
    let dir = common::TempDir::new("listener-stale");
    let path = dir.path().join("sock");
    // A socket file nobody listens on any more, as a server killed by SIGTERM leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let addr = Address::Unix(path.clone());
    let listener = Listener::bind(&addr, &Options::new()).expect("a stale socket file is reclaimed");
    // A live listener is not taken over, and the error names the path.
    let err = Listener::bind(&addr, &Options::new()).unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::AddrInUse), "{err:?}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    let addr2 = addr.clone();
    let client = thread::spawn(move || connect(&addr2, &Options::new()).unwrap());
    let mut server = listener.accept_timeout(Duration::from_secs(20)).unwrap();
    let mut client = client.join().unwrap();
    client.send(b"still served").unwrap();
    let mut buf = Vec::new();
    server.recv(&mut buf).unwrap();
    assert_eq!(buf, b"still served");
    // A file that is not a socket is never removed.
    drop(listener);
    std::fs::write(&path, b"precious").unwrap();
    assert!(Listener::bind(&addr, &Options::new()).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn accept_timeout_times_out() {
    let listener = Listener::bind_tcp(&Options::new()).unwrap();
    assert!(matches!(listener.accept_timeout(Duration::from_millis(10)), Err(Error::Timeout)));
}

#[test]
fn connect_to_parent_outside_a_child_is_a_config_error() {
    // This test binary was not started by spawn_child.
    if std::env::var_os(switchboard::ENV_CONNECT).is_none() {
        assert!(matches!(switchboard::connect_to_parent(), Err(Error::Config(_))));
    }
}

#[test]
fn tcp_binds_loopback_by_default() {
    let listener = Listener::bind_tcp(&Options::new()).unwrap();
    let Address::Tcp(addr) = listener.local_addr() else { panic!("tcp") };
    assert!(addr.ip().is_loopback());
    let listener6 = Listener::bind_tcp(&Options::new().tcp_bind_ip("::1".parse().unwrap()));
    if let Ok(l) = listener6 {
        let Address::Tcp(addr) = l.local_addr() else { panic!("tcp") };
        assert!(addr.ip().is_loopback());
    }
}
