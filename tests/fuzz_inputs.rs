//! The fuzz targets' entry points on seeded inputs, so that CI exercises them on stable Rust
//! (the coverage-guided runs are `cargo fuzz run frames|handshake|ring|records`, see the README).

mod common;

use common::Rng;
use switchboard::fuzzing;

#[test]
fn frames_on_random_and_mutated_streams() {
    let mut rng = Rng(0xF00D);
    for _ in 0..3000 {
        let n = (rng.next() % 600) as usize;
        fuzzing::frames(&rng.bytes(n));
        // A valid stream of small frames, then damaged.
        let mut data = vec![(rng.next() % 16) as u8];
        for _ in 0..rng.next() % 8 {
            let len = (rng.next() % 200) as usize;
            data.extend_from_slice(&(len as u32).to_le_bytes());
            data.extend(rng.bytes(len));
        }
        fuzzing::frames(&data);
        rng.mutate(&mut data[1..]);
        fuzzing::frames(&data);
        data.truncate((rng.next() as usize) % data.len().max(1));
        fuzzing::frames(&data);
    }
    fuzzing::frames(&[0, 0xff, 0xff, 0xff, 0xff]);
}

#[test]
fn handshake_on_random_and_mutated_hellos() {
    let mut rng = Rng(0xBEEF);
    for _ in 0..5000 {
        let n = (rng.next() % 64) as usize;
        fuzzing::handshake(&rng.bytes(n));
        let mut hello = b"SWBH\x01\x00\x01\x00".to_vec();
        hello.extend(rng.bytes(32));
        fuzzing::handshake(&hello);
        rng.mutate(&mut hello);
        fuzzing::handshake(&hello);
        let mut reply = b"SWBR\x01\x00\x00\x00".to_vec();
        rng.mutate(&mut reply);
        fuzzing::handshake(&reply);
    }
}

#[test]
fn ring_reader_on_random_and_plausible_rings() {
    let mut rng = Rng(0xCAFE);
    for _ in 0..3000 {
        let n = (rng.next() % 5000) as usize;
        fuzzing::ring(&rng.bytes(n));
        // A plausible ring: head 0, records with valid headers, then damaged.
        let mut ring = vec![0u8; 16 + 4096];
        let mut at = 0usize;
        while at + 16 <= 4096 && !rng.next().is_multiple_of(8) {
            let len = (rng.next() % 300) as usize;
            let size = 16 + len.next_multiple_of(16);
            if at + size > 4096 {
                break;
            }
            let rec = &mut ring[16 + at..16 + at + 16];
            rec[..4].copy_from_slice(&(len as u32).to_le_bytes());
            rec[4..8].copy_from_slice(&1u32.to_le_bytes());
            rec[8..16].copy_from_slice(&(len as u64).to_le_bytes());
            at += size;
        }
        ring[..8].copy_from_slice(&(at as u64).to_le_bytes());
        ring[0] &= !1; // even first byte: the tail is taken as given (mod a ring)
        fuzzing::ring(&ring);
        rng.mutate(&mut ring[16..]);
        fuzzing::ring(&ring);
    }
}

#[test]
fn seqpacket_records_on_random_and_mutated_sequences() {
    let mut rng = Rng(0x5EC0);
    let record = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    for _ in 0..3000 {
        let n = (rng.next() % 600) as usize;
        fuzzing::records(&rng.bytes(n));
        // Plausible sequences: whole records and first/middle/last runs, then damaged.
        let mut data = Vec::new();
        for _ in 0..rng.next() % 6 {
            if rng.next().is_multiple_of(2) {
                let len = (rng.next() % 300) as usize;
                record(&mut data, &[&[1u8][..], &rng.bytes(len)].concat());
            } else {
                let total = 2 + (rng.next() % 5000) as u32;
                let first = 1 + (rng.next() % total.min(1000) as u64) as usize;
                let mut r = vec![2u8];
                r.extend_from_slice(&total.to_le_bytes());
                r.extend(rng.bytes(first.min(total as usize - 1)));
                record(&mut data, &r);
                let mut left = total as usize - first.min(total as usize - 1);
                while left > 0 {
                    let take = (1 + (rng.next() % 1500) as usize).min(left);
                    left -= take;
                    let tag = if left == 0 { 4u8 } else { 3 };
                    record(&mut data, &[&[tag][..], &rng.bytes(take)].concat());
                }
            }
        }
        fuzzing::records(&data);
        if !data.is_empty() {
            rng.mutate(&mut data);
            fuzzing::records(&data);
            data.truncate((rng.next() as usize) % data.len());
            fuzzing::records(&data);
        }
    }
}
