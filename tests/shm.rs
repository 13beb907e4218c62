//! The shared-memory transport's own features: named segments, zero-copy slots, tiny rings,
//! and a segment scribbled on while in use.
#![allow(unsafe_code)] // the corruption test scribbles on the live segment through raw pointers

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::{payload, shm_entries, with_deadline};
use switchboard::{Error, Options, ShmTransport, Transport, WaitStrategy};

const LIMIT: Duration = Duration::from_secs(60);

fn unique_name(what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("switchboard-test-{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[test]
fn named_segment_connects_and_leaves_no_name() {
    with_deadline(LIMIT, || {
        let name = unique_name("named");
        let server = ShmTransport::create_named(&name, &Options::new().ring_capacity(1 << 16)).unwrap();
        assert!(shm_entries().contains(&name), "the name exists until a peer attaches");
        let opener = {
            let name = name.clone();
            thread::spawn(move || ShmTransport::open_named(&name, &Options::new()).unwrap())
        };
        let mut server = server.accept(LIMIT).unwrap();
        let mut client = opener.join().unwrap();
        assert!(!shm_entries().contains(&name), "accept must remove the name");
        client.send(b"over a named segment").unwrap();
        let mut buf = Vec::new();
        server.recv(&mut buf).unwrap();
        assert_eq!(buf, b"over a named segment");
        drop(client);
        assert!(matches!(server.recv(&mut buf), Err(Error::Disconnected)));
    });
}

#[test]
fn named_segment_refuses_a_second_peer_and_unlinks_on_drop() {
    let name = unique_name("second");
    let server = ShmTransport::create_named(&name, &Options::new()).unwrap();
    let _first = ShmTransport::open_named(&name, &Options::new()).unwrap();
    assert!(matches!(ShmTransport::open_named(&name, &Options::new()), Err(Error::Handshake(_))));
    drop(server);
    assert!(!shm_entries().contains(&name), "dropping before accept must remove the name");
    assert!(ShmTransport::open_named(&name, &Options::new()).is_err());

    let name = unique_name("timeout");
    let server = ShmTransport::create_named(&name, &Options::new()).unwrap();
    assert!(ShmTransport::create_named(&name, &Options::new()).is_err(), "an existing name is not reused");
    assert!(matches!(server.accept(Duration::from_millis(20)), Err(Error::Timeout)));
    assert!(!shm_entries().contains(&name));
    assert!(matches!(ShmTransport::create_named("a/b", &Options::new()), Err(Error::Config(_))));
}

#[test]
fn a_segment_that_is_not_ours_is_incompatible() {
    let name = unique_name("garbage");
    let path = format!("/dev/shm/{name}");
    std::fs::write(&path, vec![0xAB; 8192]).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let result = ShmTransport::open_named(&name, &Options::new());
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(result, Err(Error::IncompatibleSegment(_))), "{result:?}");
}

#[test]
fn zero_copy_slots() {
    with_deadline(LIMIT, || {
        let (mut a, mut b) = ShmTransport::pair(&Options::new().ring_capacity(1 << 16)).unwrap();
        assert_eq!(a.max_in_place(), (1 << 16) / 4 - 16);
        assert!(matches!(a.reserve(a.max_in_place() + 1), Err(Error::MessageTooLarge { .. })));
        // An abandoned slot sends nothing.
        {
            let _abandoned = a.reserve(100).unwrap();
        }
        let mut slot = a.reserve(5).unwrap();
        slot.copy_from_slice(b"12345");
        assert_eq!(&*slot, b"12345");
        slot.commit();
        a.send(b"copied").unwrap();
        {
            let msg = b.recv_in_place().unwrap();
            assert_eq!(&*msg, b"12345");
        }
        let mut buf = Vec::new();
        b.recv(&mut buf).unwrap();
        assert_eq!(buf, b"copied");
        // A fragmented message (bigger than the ring) comes through the in-place API too,
        // reassembled; the sender needs its own thread, since it waits for room.
        let big = payload(3, 100_000);
        let sender = thread::spawn(move || {
            a.send(&payload(3, 100_000)).unwrap();
            a
        });
        let msg = b.recv_in_place_timeout(LIMIT).unwrap();
        assert!(*msg == big[..]);
        drop(msg);
        let mut a = sender.join().unwrap();
        assert!(matches!(b.recv_in_place_timeout(Duration::ZERO), Err(Error::Timeout)));
        // Thousands of slots wrap the ring many times.
        for i in 0..5000u32 {
            let len = (i % 700) as usize;
            let mut slot = a.reserve(len).unwrap();
            slot.fill(i as u8);
            slot.commit();
            let msg = b.recv_in_place().unwrap();
            assert!(msg.len() == len && msg.iter().all(|&x| x == i as u8));
        }
    });
}

#[test]
fn slots_that_wait_for_their_message_get_it_whole_and_in_order() {
    // A ping-pong in place between two threads: most receives find nothing yet and wait, so
    // each message is taken by the path that follows a wait; the echo sends every one back.
    for wait in WaitStrategy::ALL {
        with_deadline(LIMIT, move || {
            let (mut a, mut b) = ShmTransport::pair(&Options::new().wait_strategy(wait)).unwrap();
            let echo = thread::spawn(move || {
                let mut copy = Vec::new();
                loop {
                    {
                        let msg = b.recv_in_place().unwrap();
                        copy.clear();
                        copy.extend_from_slice(&msg);
                    }
                    if copy.is_empty() {
                        return;
                    }
                    let mut slot = b.reserve(copy.len()).unwrap();
                    slot.copy_from_slice(&copy);
                    slot.commit();
                }
            });
            for i in 0..2000u64 {
                let want = payload(i, 1 + (i * 37 % 300) as usize);
                let mut slot = a.reserve(want.len()).unwrap();
                slot.copy_from_slice(&want);
                slot.commit();
                let got = a.recv_in_place().unwrap();
                assert!(*got == want[..], "reply {i} ({wait})");
            }
            a.reserve(0).unwrap().commit();
            echo.join().unwrap();
        });
    }
}

#[test]
fn tiny_ring_fragments_large_messages() {
    for wait in WaitStrategy::ALL {
        with_deadline(LIMIT, move || {
            let options = Options::new().ring_capacity(4096).wait_strategy(wait);
            let (mut a, mut b) = ShmTransport::pair(&options).unwrap();
            let sender = thread::spawn(move || {
                for i in 0..200u64 {
                    a.send(&payload(i, (i * 997 % 50_000) as usize)).unwrap();
                }
            });
            let mut buf = Vec::new();
            for i in 0..200u64 {
                b.recv(&mut buf).unwrap();
                assert!(buf == payload(i, (i * 997 % 50_000) as usize), "message {i} ({wait})");
            }
            sender.join().unwrap();
            assert!(matches!(b.recv(&mut buf), Err(Error::Disconnected)));
        });
    }
}

#[test]
fn scribbling_on_a_live_segment_gives_errors_not_ub() {
    with_deadline(LIMIT, || {
        let mut rng = common::Rng(7);
        let mut next = move || rng.next();
        let mut errors = 0;
        for trial in 0..200 {
            // Kept alive by the pair: the ring the test keeps only one of at a time.
            let options = Options::new().ring_capacity(1 << 16).max_message_size(1 << 16);
            let (mut a, mut b) = ShmTransport::pair(&options).unwrap();
            // This pair's own mapping: other tests map segments at the same time.
            let (addr, len) = switchboard::fuzzing::shm_mapping(&a);
            let ptr = addr as *mut u8;
            // At most 40 KB: fits the 64 KiB ring, so no send waits for a reader.
            for i in 0..(next() % 20) {
                a.send(&payload(i, (next() % 2000) as usize)).unwrap();
            }
            // Scribble: a header field, a ring index, a record header, or random bytes.
            // SAFETY: ptr..ptr+len is a live shared mapping of the segment (the pair keeps it
            // mapped until dropped below); the transports only ever read it through atomics,
            // volatile reads and copies, and check what they read.
            unsafe {
                match trial % 4 {
                    0 => std::ptr::write_volatile(ptr.add((next() % 64) as usize & !7).cast::<u64>(), next()),
                    1 => std::ptr::write_volatile(
                        ptr.add(128 + 128 * (next() % 4) as usize).cast::<u64>(),
                        next() % 300_000,
                    ),
                    2 => std::ptr::write_volatile(ptr.add(4096 + 16 * (next() % 256) as usize).cast::<u64>(), next()),
                    _ => {
                        for _ in 0..64 {
                            let at = (next() as usize) % len;
                            std::ptr::write_volatile(ptr.add(at), next() as u8);
                        }
                    }
                }
            }
            let mut buf = Vec::new();
            for _ in 0..25 {
                match b.recv_timeout(&mut buf, Duration::from_millis(1)) {
                    Ok(n) => assert!(n <= 1 << 16),
                    Err(Error::Timeout) => break,
                    Err(Error::CorruptSegment(_) | Error::FrameTooLarge { .. } | Error::Disconnected) => {
                        errors += 1;
                        assert!(matches!(b.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Disconnected)));
                        break;
                    }
                    Err(e) => panic!("trial {trial}: unexpected {e:?}"),
                }
            }
            // (No send after the scribble: a corrupt head that still looks plausible reads as a
            // full ring, that is, as a peer that stopped reading, and a send would wait, as it
            // would for a slow peer.)
            drop((a, b));
        }
        assert!(errors > 20, "scribbles should be noticed often, saw {errors}");
    });
}
