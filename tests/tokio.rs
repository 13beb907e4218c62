//! Async endpoints (feature `tokio`) for every transport, under the current-thread and the
//! multi-thread runtime: echo of every size, receives cancelled at random moments that lose
//! nothing, listeners and connects, and children spawned from async code.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ROLE_ENV, payload};
use switchboard::{AsyncListener, AsyncTransport, Error, Kind, Listener, Options, Transport, pair};

const LIMIT: Duration = Duration::from_secs(60);

fn configs() -> Vec<(String, Kind, Options)> {
    common::transport_configs(&Options::new().ring_capacity(1 << 16).max_message_size(4 << 20))
}

fn runtimes() -> Vec<(&'static str, tokio::runtime::Runtime)> {
    vec![
        ("current-thread", tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()),
        ("multi-thread", tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()),
    ]
}

const SIZES: [usize; 6] = [0, 1, 100, 70_000, 1 << 20, 3 << 20];

#[test]
fn async_echo_of_every_size_on_both_runtimes() {
    for (rt_name, rt) in runtimes() {
        rt.block_on(async {
            tokio::time::timeout(LIMIT, async {
                for (label, kind, options) in configs() {
                    let (a, b) = pair(kind, &options).unwrap();
                    let (mut a, mut b) = (AsyncTransport::new(a).unwrap(), AsyncTransport::new(b).unwrap());
                    let echo = tokio::spawn(async move {
                        let mut buf = Vec::new();
                        while b.recv(&mut buf).await.is_ok() {
                            b.send(&buf).await.unwrap();
                        }
                    });
                    let mut buf = Vec::new();
                    for (i, &len) in SIZES.iter().enumerate() {
                        let msg = payload(i as u64, len);
                        a.send(&msg).await.unwrap();
                        a.recv(&mut buf).await.unwrap();
                        assert!(buf == msg, "{rt_name} {label}: echo of {len} bytes differs");
                    }
                    drop(a);
                    echo.await.unwrap();
                }
            })
            .await
            .expect("async echo hung");
        });
    }
}

#[test]
fn cancelled_receives_lose_nothing() {
    for (rt_name, rt) in runtimes() {
        rt.block_on(async {
            tokio::time::timeout(LIMIT, async {
                for (label, kind, options) in configs() {
                    let (mut writer, b) = pair(kind, &options).unwrap();
                    let mut reader = AsyncTransport::new(b).unwrap();
                    // A plain thread writes big and small messages as fast as the reader lets it.
                    let sender = std::thread::spawn(move || {
                        for i in 0..45u64 {
                            writer.send(&payload(i, [10, 100_000, 400_000][i as usize % 3])).unwrap();
                        }
                    });
                    let (mut got, mut cancelled) = (0u64, 0u64);
                    let mut buf = Vec::new();
                    while got < 45 {
                        // Give up on each receive after a moment, often in the middle of a message.
                        match tokio::time::timeout(Duration::from_micros(300), reader.recv(&mut buf)).await {
                            Ok(Ok(_)) => {
                                let want = payload(got, [10, 100_000, 400_000][got as usize % 3]);
                                assert!(
                                    buf == want,
                                    "{rt_name} {label}: message {got} damaged after {cancelled} cancels"
                                );
                                got += 1;
                            }
                            Ok(Err(e)) => panic!("{rt_name} {label}: {e:?}"),
                            Err(_) => cancelled += 1,
                        }
                    }
                    sender.join().unwrap();
                    assert!(matches!(reader.recv(&mut buf).await, Err(Error::Disconnected)), "{rt_name} {label}");
                }
            })
            .await
            .expect("cancelled receives hung");
        });
    }
}

#[test]
fn async_accept_and_connect_over_tcp_unix_shm_and_seqpacket() {
    for (rt_name, rt) in runtimes() {
        rt.block_on(async {
            tokio::time::timeout(LIMIT, async {
                let shm: switchboard::Address =
                    format!("shm:@switchboard-test-tokio-{}-{rt_name}", std::process::id()).parse().unwrap();
                for listener in [
                    Listener::bind_tcp(&Options::new()).unwrap(),
                    Listener::bind_unix_private(&Options::new()).unwrap(),
                    Listener::bind(&shm, &Options::new()).unwrap(),
                    Listener::bind_seqpacket_private(&Options::new()).unwrap(),
                ] {
                    let listener = AsyncListener::new(listener).unwrap();
                    let addr = listener.local_addr().clone();
                    let clients: Vec<_> = (0..8u64)
                        .map(|c| {
                            let addr = addr.clone();
                            tokio::spawn(async move {
                                let mut conn = AsyncTransport::connect(&addr, &Options::new()).await.unwrap();
                                conn.send(&payload(c, 5000)).await.unwrap();
                                let mut buf = Vec::new();
                                conn.recv(&mut buf).await.unwrap();
                                assert_eq!(buf, payload(c, 5000));
                            })
                        })
                        .collect();
                    for _ in 0..8 {
                        let mut conn = listener.accept().await.unwrap();
                        tokio::spawn(async move {
                            let mut buf = Vec::new();
                            while conn.recv(&mut buf).await.is_ok() {
                                conn.send(&buf).await.unwrap();
                            }
                        });
                    }
                    for c in clients {
                        c.await.unwrap();
                    }
                }
            })
            .await
            .expect("async accept/connect hung");
        });
    }
}

#[test]
fn children_spawned_from_async_code() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        if role == "tokio-echo" {
            let mut parent = switchboard::connect_to_parent().unwrap();
            let mut buf = Vec::new();
            while parent.recv(&mut buf).is_ok() {
                parent.send(&buf).unwrap();
            }
        }
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for (label, kind, options) in configs() {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", "children_spawned_from_async_code"]).env(ROLE_ENV, "tokio-echo");
            cmd.stdout(std::process::Stdio::null());
            let (child, mut conn) = AsyncTransport::spawn_child(kind, cmd, &options).await.unwrap();
            let guard = common::ChildGuard::new(child, LIMIT);
            let mut buf = Vec::new();
            for (i, &len) in SIZES.iter().enumerate() {
                conn.send(&payload(i as u64, len)).await.unwrap();
                conn.recv(&mut buf).await.unwrap();
                assert!(buf == payload(i as u64, len), "{label}");
            }
            assert_eq!(conn.kind(), kind);
            drop(conn);
            assert!(guard.wait().success(), "{label}");
        }
    });
}

#[test]
fn without_a_runtime_it_is_an_error() {
    let (a, _b) = pair(Kind::Unix, &Options::new()).unwrap();
    assert!(matches!(AsyncTransport::new(a), Err(Error::Io(_))));
    let _ = <dyn Transport>::is::<switchboard::UnixTransport>;
}
