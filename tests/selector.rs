//! One thread, many connections: a selector over 100 endpoints of every kind plus a listener,
//! echoing every message, with clients that come and go.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{payload, with_deadline};
use switchboard::{Error, Kind, Listener, Options, Selector, Transport, connect, pair};

const LIMIT: Duration = Duration::from_secs(120);
const LISTENER: u64 = u64::MAX;

fn options() -> Options {
    // Small rings: 25 shm pairs must not map gigabytes.
    Options::new().ring_capacity(1 << 16).handshake_timeout(Duration::from_secs(30))
}

#[test]
fn one_thread_serves_100_endpoints_of_every_kind_and_a_listener() {
    with_deadline(LIMIT, || {
        let mut servers: HashMap<u64, Box<dyn Transport>> = HashMap::new();
        let mut clients = Vec::new();
        for i in 0..100u64 {
            let kind = Kind::ALL[i as usize % Kind::ALL.len()];
            let (server, client) = pair(kind, &options()).unwrap();
            servers.insert(i, server);
            clients.push(client);
        }
        let listener = Listener::bind_unix_private(&options()).unwrap();
        let addr = listener.local_addr().clone();
        let rounds = 5u64;
        let late_clients = 10u64;

        let client_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            for round in 0..rounds {
                for (c, client) in clients.iter_mut().enumerate() {
                    client.send(&payload(round * 1000 + c as u64, 10 + c * 37)).unwrap();
                }
                for (c, client) in clients.iter_mut().enumerate() {
                    client.recv(&mut buf).unwrap();
                    assert!(buf == payload(round * 1000 + c as u64, 10 + c * 37), "client {c} round {round}");
                }
            }
            // Newcomers through the listener, each with one echo, then gone.
            for n in 0..late_clients {
                let mut conn = connect(&addr, &options()).unwrap();
                conn.send(&payload(n, 100)).unwrap();
                conn.recv(&mut buf).unwrap();
                assert_eq!(buf, payload(n, 100));
            }
            drop(clients);
        });

        let mut selector = Selector::new().unwrap();
        for (&key, server) in &servers {
            selector.add(server.as_ref(), key).unwrap();
        }
        selector.add(&listener, LISTENER).unwrap();
        let (mut echoed, mut accepted, mut gone) = (0u64, 0u64, 0u64);
        let mut next_key = 100u64;
        let mut ready = Vec::new();
        let mut buf = Vec::new();
        while gone < 100 + late_clients {
            selector.wait(&mut ready, Some(Duration::from_secs(30))).unwrap();
            assert!(!ready.is_empty(), "nothing ready for 30 s: {echoed} echoed, {gone} gone");
            for &key in &ready {
                if key == LISTENER {
                    while let Ok(conn) = listener.accept_timeout(Duration::ZERO) {
                        selector.add(conn.as_ref(), next_key).unwrap();
                        servers.insert(next_key, conn);
                        next_key += 1;
                        accepted += 1;
                    }
                    continue;
                }
                let conn = servers.get_mut(&key).expect("a known key");
                loop {
                    match conn.recv_timeout(&mut buf, Duration::ZERO) {
                        Ok(_) => {
                            conn.send(&buf).unwrap();
                            echoed += 1;
                        }
                        Err(Error::Timeout) => break,
                        Err(Error::Disconnected) => {
                            // Dropping the endpoint takes it out of the selector.
                            servers.remove(&key);
                            gone += 1;
                            break;
                        }
                        Err(e) => panic!("key {key}: {e:?}"),
                    }
                }
            }
        }
        client_thread.join().unwrap();
        assert_eq!((echoed, accepted), (100 * rounds + late_clients, late_clients));
        assert!(servers.is_empty());
        assert_eq!(selector.wait(&mut ready, Some(Duration::ZERO)).unwrap(), 0, "dropped endpoints left the selector");
    });
}

#[test]
fn wait_times_out_and_keys_repeat_until_drained() {
    with_deadline(LIMIT, || {
        let (mut a, b) = pair(Kind::Unix, &Options::new()).unwrap();
        let mut selector = Selector::new().unwrap();
        selector.add(b.as_ref(), 7).unwrap();
        let mut ready = vec![99];
        assert_eq!(selector.wait(&mut ready, Some(Duration::from_millis(20))).unwrap(), 0);
        assert!(ready.is_empty());
        a.send(b"x").unwrap();
        for _ in 0..3 {
            selector.wait(&mut ready, Some(Duration::from_secs(5))).unwrap();
            assert_eq!(ready, [7], "level-triggered: reported until received");
        }
        assert!(matches!(selector.add(b.as_ref(), 8), Err(Error::Io(_))), "added twice");
        selector.remove(b.as_ref()).unwrap();
        assert_eq!(selector.wait(&mut ready, Some(Duration::ZERO)).unwrap(), 0);
    });
}
