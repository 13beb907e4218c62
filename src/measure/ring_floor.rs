//! The data-ring floor: what a 64-byte round trip costs through two bare single-producer
//! rings of the shm transport's design, with none of its code around them.
//!
//! Each direction is a ring of 4 KiB (small enough to stay in cache, as shm's replies do) and
//! two index lines: the producer writes a record (an 8-byte length, then the payload) and
//! publishes it by storing its tail index; the consumer spins on that index, copies the record
//! out and stores its head index, which the producer reads only when its cached copy says the
//! ring is full. So a message moves at least two cache lines one way (the index and the
//! record), against one for the cache-line round trip: the ratio of the two floors is what a
//! ring that carries data pays on this machine before any code. No framing, checks, wake-up
//! flags or closed flags. The records are plain memory, copied whole, as shm copies; the
//! indices' `Release`/`Acquire` order every access to them (the one unsafe piece of the
//! harness outside `raw.rs`: the compiler cannot see that protocol).

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::floors::{CACHE_LINE_BATCH, FLOOR_LIMIT, median, on_two_cores};
use crate::error::{Error, Result};

/// The payload of the floor's messages, bytes.
pub(super) const RING_FLOOR_SIZE: usize = 64;
const PAYLOAD_WORDS: usize = RING_FLOOR_SIZE / 8;
/// A record: a 16-byte header (the length word and padding, as shm's) and the payload.
const RECORD_WORDS: usize = 2 + PAYLOAD_WORDS;
/// Each ring: 4 KiB, holding 51 packed records of 80 bytes (and 16 spare bytes), so records
/// share lines as shm's do and none wraps.
const RING_WORDS: usize = 512;
const RING_RECORDS: u64 = (RING_WORDS / RECORD_WORDS) as u64;

#[repr(align(128))]
struct Index(AtomicU64);

#[repr(align(64))]
struct Words(UnsafeCell<[u64; RING_WORDS]>);

/// One direction.
struct Ring {
    tail: Index,
    head: Index,
    words: Box<Words>,
}

impl Ring {
    fn new() -> Ring {
        let words = Box::new(Words(UnsafeCell::new([0; RING_WORDS])));
        Ring { tail: Index(AtomicU64::new(0)), head: Index(AtomicU64::new(0)), words }
    }

    /// The words of the record at `pos` (a record count).
    fn record(&self, pos: u64) -> *mut [u64; RECORD_WORDS] {
        let start = (pos % RING_RECORDS) as usize * RECORD_WORDS;
        // In bounds: RING_RECORDS records of RECORD_WORDS fit in RING_WORDS.
        self.words.0.get().cast::<u64>().wrapping_add(start).cast()
    }
}

// SAFETY: each record is written only by the one producer while its position lies between
// the head it loaded (`Acquire`) and the tail it has not yet published, and read only by the
// one consumer between the tail it loaded (`Acquire`) and the head it has not yet published
// (`Release` on both sides): no record is accessed by both threads without a happens-before
// edge between them.
unsafe impl Sync for Ring {}

/// One end of a ring: its position (in records) and its cached copy of the other end's index.
struct End {
    ring: Arc<Ring>,
    pos: u64,
    cached: u64,
}

impl End {
    /// Writes a record: `msg`, or with `None` a length of 0, which closes the ring.
    fn send(&mut self, msg: Option<&[u64; PAYLOAD_WORDS]>) -> Result<()> {
        if self.pos - self.cached == RING_RECORDS {
            let (ring, pos) = (&self.ring, self.pos);
            self.cached = spin_until(|| Some(ring.head.0.load(Ordering::Acquire)).filter(|&h| pos - h < RING_RECORDS))?;
        }
        // SAFETY: the record at `pos` is free (checked against the head above, see `Ring`'s
        // Sync), so only this thread accesses it until the tail below publishes it.
        let record = unsafe { &mut *self.ring.record(self.pos) };
        record[0] = msg.map_or(0, |_| RING_FLOOR_SIZE as u64);
        if let Some(msg) = msg {
            record[2..].copy_from_slice(msg);
        }
        self.pos += 1;
        self.ring.tail.0.store(self.pos, Ordering::Release);
        Ok(())
    }

    /// The next record's payload; `Ok(None)` when the sender closed (a length of 0).
    fn recv(&mut self, out: &mut [u64; PAYLOAD_WORDS]) -> Result<Option<()>> {
        if self.cached == self.pos {
            let (ring, pos) = (&self.ring, self.pos);
            self.cached = spin_until(|| Some(ring.tail.0.load(Ordering::Acquire)).filter(|&t| t != pos))?;
        }
        // SAFETY: the record at `pos` is published (its tail was loaded above) and not yet
        // released (the head below), so the producer does not touch it meanwhile.
        let record = unsafe { &*self.ring.record(self.pos) };
        if record[0] == 0 {
            return Ok(None);
        }
        out.copy_from_slice(&record[2..]);
        self.pos += 1;
        self.ring.head.0.store(self.pos, Ordering::Release);
        Ok(Some(()))
    }
}

/// Spins until `ready` returns a value, for at most [`FLOOR_LIMIT`].
fn spin_until<T>(mut ready: impl FnMut() -> Option<T>) -> Result<T> {
    let mut rounds = 0u32;
    let mut since: Option<Instant> = None;
    loop {
        if let Some(v) = ready() {
            return Ok(v);
        }
        std::hint::spin_loop();
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(4096) && since.get_or_insert_with(Instant::now).elapsed() > FLOOR_LIMIT {
            return Err(Error::Timeout);
        }
    }
}

/// Median round trip of a [`RING_FLOOR_SIZE`]-byte message through two bare rings between
/// two threads pinned to `cores`, ns, timed in batches for about `budget`. The last reply of
/// each batch is checked against its request.
///
/// # Errors
/// [`Error::Timeout`] if a thread stopped answering, [`Error::Protocol`] if a reply came back
/// different (a bug in the ring above).
pub(super) fn data_ring_rt(cores: (usize, usize), budget: Duration) -> Result<f64> {
    let (there, back) = (Arc::new(Ring::new()), Arc::new(Ring::new()));
    let mut out = End { ring: there.clone(), pos: 0, cached: 0 };
    let mut replies = End { ring: back.clone(), pos: 0, cached: 0 };
    let mut requests = End { ring: there, pos: 0, cached: 0 };
    let mut answers = End { ring: back, pos: 0, cached: 0 };
    on_two_cores(
        Some(cores),
        move || {
            let mut batches = Vec::new();
            let (mut msg, mut reply) = ([0u64; PAYLOAD_WORDS], [0u64; PAYLOAD_WORDS]);
            let start = Instant::now();
            let mut n = 0u64;
            let result = (|| {
                // 20 batches to warm up (caches, branch predictors, the vCPUs' clocks),
                // then 20 or more timed.
                let mut warm = 20;
                while batches.len() < 20 || start.elapsed() < budget {
                    let t0 = Instant::now();
                    for _ in 0..CACHE_LINE_BATCH {
                        n += 1;
                        msg[0] = n;
                        msg[PAYLOAD_WORDS - 1] = !n;
                        out.send(Some(&msg))?;
                        replies.recv(&mut reply)?.ok_or(Error::Protocol("the ring floor's echo closed".into()))?;
                    }
                    let elapsed = t0.elapsed();
                    // Checked once a batch and after the clock, as the comparison checks each
                    // reply after taking its time.
                    if reply != msg {
                        return Err(Error::Protocol(format!("ring floor: reply {n} differs from its request")));
                    }
                    if warm > 0 {
                        warm -= 1;
                        continue;
                    }
                    batches.push(elapsed.as_nanos() as f64 / f64::from(CACHE_LINE_BATCH));
                }
                Ok(median(&mut batches))
            })();
            out.send(None)?;
            result
        },
        move || {
            let mut msg = [0u64; PAYLOAD_WORDS];
            while requests.recv(&mut msg)?.is_some() {
                answers.send(Some(&msg))?;
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_wrap_around_the_ring_intact_and_close() {
        // Bursts of 1 to 51 records (a full ring), so that the producer meets its cached head
        // and both ends wrap many times.
        let ring = Arc::new(Ring::new());
        let (mut tx, mut rx) = (End { ring: ring.clone(), pos: 0, cached: 0 }, End { ring, pos: 0, cached: 0 });
        let (mut sent, mut received) = (0u64, 0u64);
        let mut got = [0u64; PAYLOAD_WORDS];
        for burst in (1..=51).chain((1..=51).rev()).cycle().take(400) {
            for _ in 0..burst {
                tx.send(Some(&std::array::from_fn(|k| sent * 100 + k as u64))).unwrap();
                sent += 1;
            }
            for _ in 0..burst {
                assert_eq!(rx.recv(&mut got).unwrap(), Some(()));
                assert_eq!(got, std::array::from_fn(|k| received * 100 + k as u64), "record {received}");
                received += 1;
            }
        }
        assert!(sent > 100 * RING_RECORDS, "the ring wrapped many times");
        tx.send(None).unwrap();
        assert_eq!(rx.recv(&mut got).unwrap(), None);
    }
}
