//! Peers that speak garbage: every transport's receiver gets a typed error or a valid
//! message, never a panic, a hang, or an allocation above the maximum message size.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::with_deadline;
use switchboard::{Error, Options, PipeTransport, Transport, UnixTransport};

const LIMIT: Duration = Duration::from_secs(60);

/// A transport whose peer is a raw socket we can write anything into.
fn raw_peer(max: usize) -> (UnixTransport, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    (UnixTransport::from_std(ours, &Options::new().max_message_size(max)).unwrap(), theirs)
}

#[test]
fn huge_length_prefixes_are_refused_without_allocating() {
    with_deadline(LIMIT, || {
        for prefix in [
            [0xff; 8].to_vec(),
            u32::MAX.to_le_bytes().to_vec(),
            (1u32 << 31).to_le_bytes().to_vec(),
            1025u32.to_le_bytes().to_vec(),
        ] {
            let (mut t, mut raw) = raw_peer(1024);
            raw.write_all(&prefix).unwrap();
            let mut buf = Vec::new();
            let err = t.recv(&mut buf).unwrap_err();
            assert!(matches!(err, Error::FrameTooLarge { max: 1024, .. }), "{prefix:?}: {err:?}");
            assert!(buf.capacity() <= 1024, "allocated {} bytes for a refused frame", buf.capacity());
            // The connection is finished, as documented.
            assert!(matches!(t.recv(&mut buf), Err(Error::Disconnected)));
            assert!(matches!(t.send(b"x"), Err(Error::Disconnected)));
        }
    });
}

#[test]
fn frames_cut_short_are_truncated() {
    with_deadline(LIMIT, || {
        let mut frame = 10u32.to_le_bytes().to_vec();
        frame.extend_from_slice(b"0123456789");
        for cut in 1..frame.len() {
            let (mut t, mut raw) = raw_peer(1024);
            raw.write_all(&frame[..cut]).unwrap();
            drop(raw);
            let err = t.recv(&mut Vec::new()).unwrap_err();
            assert!(matches!(err, Error::Truncated { received, .. } if received == cut), "cut at {cut}: {err:?}");
        }
        // A frame cut short over a pipe, too.
        let (r, mut w) = std::io::pipe().unwrap();
        let (_r2, w2) = std::io::pipe().unwrap();
        let mut t = PipeTransport::from_pipes(r, w2, &Options::new()).unwrap();
        w.write_all(&frame[..7]).unwrap();
        drop(w);
        assert!(matches!(t.recv(&mut Vec::new()), Err(Error::Truncated { expected: 14, received: 7 })));
    });
}

#[test]
fn random_garbage_gives_messages_or_typed_errors() {
    with_deadline(LIMIT, || {
        let mut rng = common::Rng(0x1234_5678_9abc_def0);
        let mut next = move || rng.next();
        for trial in 0..300 {
            let (mut t, mut raw) = raw_peer(4096);
            let len = (next() % 10_000) as usize;
            let mut junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half the trials: plausible small prefixes, so frames decode for a while.
            if trial % 2 == 0 {
                let mut at = 0;
                while at + 4 <= junk.len() {
                    let l = (next() % 300) as u32;
                    junk[at..at + 4].copy_from_slice(&l.to_le_bytes());
                    at += 4 + l as usize;
                }
            }
            raw.write_all(&junk).unwrap();
            drop(raw);
            let mut buf = Vec::new();
            let mut received = 0usize;
            loop {
                match t.recv_timeout(&mut buf, LIMIT) {
                    Ok(n) => {
                        assert!(n <= 4096);
                        received += 4 + n;
                        assert!(received <= junk.len());
                    }
                    Err(Error::Disconnected | Error::Truncated { .. } | Error::FrameTooLarge { .. }) => break,
                    Err(e) => panic!("trial {trial}: unexpected {e:?}"),
                }
            }
        }
    });
}
