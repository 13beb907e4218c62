//! Typed messages over every transport, in one process and across processes: round trips of
//! a rich type, a message that does not decode (the connection stays usable), borrowed
//! decoding, and values too large for the maximum.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{ChildGuard, ROLE_ENV};
use serde::{Deserialize, Serialize};
use switchboard::{Error, Kind, Options, Transport, Typed, pair};

const LIMIT: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Job {
    Resize { width: u32, height: u32, name: String },
    Batch(Vec<u64>),
    Meta(BTreeMap<String, Option<f64>>),
    Stop,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Reply {
    Done { id: u64, took_us: u32 },
    Failed(String),
}

fn jobs() -> Vec<Job> {
    vec![
        Job::Resize { width: 640, height: 480, name: "cat.png".into() },
        Job::Batch((0..10_000).collect()),
        Job::Meta([("gamma".to_string(), Some(2.2)), ("none".to_string(), None)].into_iter().collect()),
        Job::Batch(Vec::new()),
        Job::Stop,
    ]
}

fn serve(conn: Box<dyn Transport>) {
    let mut worker = Typed::<Reply, Job>::new(conn);
    let mut id = 0;
    loop {
        match worker.recv() {
            Ok(Job::Stop) => return,
            Ok(_) => {
                id += 1;
                worker.send(&Reply::Done { id, took_us: 7 }).unwrap();
            }
            Err(Error::Decode { len, .. }) => worker.send(&Reply::Failed(format!("{len} bytes undecodable"))).unwrap(),
            Err(Error::Disconnected) => return,
            Err(e) => panic!("worker: {e}"),
        }
    }
}

fn drive(conn: Box<dyn Transport>) {
    let mut boss = Typed::<Job, Reply>::new(conn);
    for (expected, job) in (1..).zip(jobs()) {
        let stop = job == Job::Stop;
        boss.send(&job).unwrap();
        if stop {
            break;
        }
        assert_eq!(boss.recv_timeout(LIMIT).unwrap(), Reply::Done { id: expected, took_us: 7 });
        // Garbage in between: the worker reports it and carries on.
        boss.get_mut().send(&[0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(boss.recv_timeout(LIMIT).unwrap(), Reply::Failed("5 bytes undecodable".into()));
    }
}

#[test]
fn typed_round_trips_in_one_process() {
    for kind in Kind::ALL {
        let (a, b) = pair(kind, &Options::new()).unwrap();
        let worker = std::thread::spawn(move || serve(b));
        common::with_deadline(LIMIT, move || drive(a));
        worker.join().unwrap();
    }
}

#[test]
fn typed_round_trips_across_processes() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        if role == "typed-worker" {
            serve(switchboard::connect_to_parent().unwrap());
        }
        return;
    }
    for kind in Kind::ALL {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "typed_round_trips_across_processes"]).env(ROLE_ENV, "typed-worker");
        cmd.stdout(std::process::Stdio::null());
        let (child, conn) = switchboard::spawn_child(kind, &mut cmd).unwrap();
        let guard = ChildGuard::new(child, LIMIT);
        common::with_deadline(LIMIT, move || drive(conn));
        assert!(guard.wait().success(), "{kind} worker failed");
    }
}

#[test]
fn a_bad_message_leaves_the_connection_usable() {
    for kind in Kind::ALL {
        let (a, b) = pair(kind, &Options::new()).unwrap();
        let mut tx = Typed::<(u32, String)>::new(a);
        let mut rx = Typed::<(), (u32, String)>::new(b);
        tx.get_mut().send(&[1, 200]).unwrap(); // a string that claims 200 bytes and has none
        tx.get_mut().send(&[1, 0, 9]).unwrap(); // a valid value and a stray byte
        tx.send(&(7, "fine".into())).unwrap();
        assert!(matches!(rx.recv(), Err(Error::Decode { len: 2, .. })), "{kind}");
        assert!(matches!(rx.recv(), Err(Error::Decode { len: 3, .. })), "{kind}");
        assert_eq!(rx.recv().unwrap(), (7, "fine".to_string()), "{kind}");
        assert!(matches!(rx.recv_timeout(Duration::ZERO), Err(Error::Timeout)));
    }
}

#[test]
fn borrowed_decoding_and_the_size_limit() {
    #[derive(Serialize, Deserialize)]
    struct Frame<'a> {
        seq: u64,
        #[serde(with = "serde_bytes_compat")]
        data: &'a [u8],
    }
    mod serde_bytes_compat {
        pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
        pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
            serde::Deserialize::deserialize(d)
        }
    }
    let options = Options::new().max_message_size(1024);
    let (a, b) = pair(Kind::Shm, &options).unwrap();
    let mut tx = Typed::<Frame<'static>>::new(a);
    let mut rx = Typed::<(), ()>::new(b);
    tx.send(&Frame { seq: 9, data: b"zero copy" }).unwrap();
    let frame: Frame<'_> = rx.recv_borrowed().unwrap();
    assert_eq!((frame.seq, frame.data), (9, &b"zero copy"[..]));
    let big = vec![1u8; 2000].leak();
    assert!(matches!(tx.send(&Frame { seq: 1, data: big }), Err(Error::MessageTooLarge { .. })));
    tx.send(&Frame { seq: 10, data: b"after" }).unwrap();
    let frame: Frame<'_> = rx.recv_borrowed().unwrap();
    assert_eq!(frame.seq, 10);
}
