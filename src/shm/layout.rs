//! The shared segment's layout: a `#[repr(C)]` header page, then two rings.
//!
//! ```text
//! 0      Header: magic, version, sizes, pids, then one RingCtl per direction
//! 4096   ring 0 data (creator -> attacher), `capacity` bytes
//! 4096+C ring 1 data (attacher -> creator), `capacity` bytes
//! ```
//! Every field the other process writes is read through atomics and checked before use:
//! [`Header::validate`] on attach, the ring checks on every operation.

use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::error::{Error, Result};

/// "SWBDSHM1" as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SWBDSHM1");
/// Bumped on any change to this layout or the record format.
pub(crate) const VERSION: u32 = 4;
/// Bytes before the first ring: one page, so that rings start page-aligned.
pub(crate) const HEADER_SIZE: usize = 4096;
/// Smallest and largest ring capacities accepted.
pub(crate) const MIN_CAPACITY: usize = 4096;
pub(crate) const MAX_CAPACITY: usize = 1 << 30;

/// Space between fields written by different sides, so they never share a cache line (128
/// covers the adjacent-line prefetcher on x86, as crossbeam's `CachePadded` does).
const LINE: usize = 128;

/// One cache line holding one side's index of a ring.
#[repr(C, align(128))]
pub(crate) struct IndexLine {
    /// Bytes written (producer's line) or read (consumer's line) since creation, modulo 2^64:
    /// positions wrap (with wrapping arithmetic, see `ring.rs`), records never do.
    pub(crate) pos: AtomicU64,
}

/// One cache line of facts about an endpoint that rarely change: its "closed" flag and the
/// CPUs it may run on. The peer checks them on every send at the cost of a cache hit (sharing
/// a line with an index that moves on every message would cost a miss per message instead).
#[repr(C, align(128))]
pub(crate) struct EndpointLine {
    /// Non-zero once that endpoint has been dropped (both halves, if it was split).
    pub(crate) closed: AtomicU32,
    /// Non-zero once that endpoint will send nothing more: the sending half of a split
    /// endpoint was dropped. Its peer receives what is in the ring, then `Disconnected`.
    pub(crate) done_sending: AtomicU32,
    /// Bit i set: the endpoint may run on CPU i (0 if unknown or beyond 64 CPUs).
    pub(crate) cpus: AtomicU64,
}

/// One cache line with a futex word and the number of threads asleep on it (one, or two for
/// the halves of a split endpoint).
#[repr(C, align(128))]
pub(crate) struct WakeLine {
    /// Futex word: bumped by the waker before `FUTEX_WAKE`.
    pub(crate) seq: AtomicU32,
    /// Raised by each waiter before it sleeps and lowered after, so that the waker makes a
    /// syscall only when someone sleeps.
    pub(crate) sleeping: AtomicU32,
    /// Of those, how many wait for space (a send), rather than only for data: the peer rings
    /// after freeing space only for them, so a receiver's every release does not wake a
    /// sender that waits for the reply (on a busy machine that spurious wake-up could take
    /// the CPU from the very process about to send it).
    pub(crate) space_sleeping: AtomicU32,
    /// Set by an endpoint whose owner waits in `poll`/`epoll` on its readiness descriptor:
    /// the waker then writes that endpoint's eventfd (once: it clears the flag).
    pub(crate) polled: AtomicU32,
    /// Raised by each waiter before it sleeps; the waker takes it down with the wake-up, so
    /// that a sleeper costs its peer one `FUTEX_WAKE`, not one per message published while
    /// it wakes.
    pub(crate) armed: AtomicU32,
}

/// The control block of one ring.
#[repr(C)]
pub(crate) struct RingCtl {
    /// Written by the producer: `pos` is the tail.
    pub(crate) producer: IndexLine,
    /// Written by the consumer: `pos` is the head.
    pub(crate) consumer: IndexLine,
}

/// The segment header.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) header_size: AtomicU32,
    pub(crate) capacity: AtomicU64,
    pub(crate) total_size: AtomicU64,
    /// The creating process.
    pub(crate) creator_pid: AtomicU32,
    /// The attaching process, written when it attaches.
    pub(crate) attacher_pid: AtomicU32,
    /// 0 until the attacher has attached, then 1 (a futex word, named mode waits on it).
    pub(crate) attached: AtomicU32,
    _pad: [u8; LINE - 44],
    /// Ring 0 carries creator -> attacher, ring 1 attacher -> creator.
    pub(crate) rings: [RingCtl; 2],
    /// Each endpoint's doorbell (0: creator, 1: attacher). An endpoint sleeps on its own bell
    /// whether it waits for data or for space, so the peer rings it after publishing a record
    /// and after freeing space, and a blocked `send` is also woken by incoming data.
    pub(crate) bells: [WakeLine; 2],
    /// Each endpoint's flags (0: creator, 1: attacher).
    pub(crate) endpoints: [EndpointLine; 2],
}

const _: () = assert!(size_of::<IndexLine>() == LINE);
const _: () = assert!(size_of::<WakeLine>() == LINE);
const _: () = assert!(size_of::<RingCtl>() == 2 * LINE);
const _: () = assert!(size_of::<EndpointLine>() == LINE);
const _: () = assert!(size_of::<Header>() == LINE + 4 * LINE + 2 * LINE + 2 * LINE);
const _: () = assert!(size_of::<Header>() <= HEADER_SIZE);
const _: () = assert!(std::mem::offset_of!(Header, rings) == LINE);

/// The segment size for a ring capacity.
pub(crate) fn total_size(capacity: usize) -> usize {
    HEADER_SIZE + 2 * capacity
}

impl Header {
    /// Fills in a fresh header (the creator, before anyone else can see the segment).
    pub(crate) fn init(&self, capacity: usize, creator_pid: u32) {
        use std::sync::atomic::Ordering::Relaxed;
        self.version.store(VERSION, Relaxed);
        self.header_size.store(HEADER_SIZE as u32, Relaxed);
        self.capacity.store(capacity as u64, Relaxed);
        self.total_size.store(total_size(capacity) as u64, Relaxed);
        self.creator_pid.store(creator_pid, Relaxed);
        self.attacher_pid.store(0, Relaxed);
        self.attached.store(0, Relaxed);
        for ring in &self.rings {
            ring.producer.pos.store(0, Relaxed);
            ring.consumer.pos.store(0, Relaxed);
        }
        for line in &self.endpoints {
            line.closed.store(0, Relaxed);
            line.done_sending.store(0, Relaxed);
            line.cpus.store(0, Relaxed);
        }
        for bell in &self.bells {
            bell.seq.store(0, Relaxed);
            bell.sleeping.store(0, Relaxed);
            bell.space_sleeping.store(0, Relaxed);
            bell.polled.store(0, Relaxed);
            bell.armed.store(0, Relaxed);
        }
        // Magic last, with release: a reader that sees it sees the rest.
        self.magic.store(MAGIC, std::sync::atomic::Ordering::Release);
    }

    /// Checks a header written by another process against the mapping's real size; returns
    /// the ring capacity.
    pub(crate) fn validate(&self, mapped_len: usize) -> Result<usize> {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        let bad = |what: String| Err(Error::IncompatibleSegment(what));
        let magic = self.magic.load(Acquire);
        if magic != MAGIC {
            return bad(format!("magic {magic:#018x} is not a switchboard segment"));
        }
        let version = self.version.load(Relaxed);
        if version != VERSION {
            return bad(format!("layout version {version}, this build speaks {VERSION}"));
        }
        let header_size = self.header_size.load(Relaxed) as usize;
        if header_size != HEADER_SIZE {
            return bad(format!("header size {header_size}, expected {HEADER_SIZE}"));
        }
        let capacity = self.capacity.load(Relaxed);
        if !capacity.is_power_of_two() || !(MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&capacity) {
            return bad(format!("ring capacity {capacity} is not a power of two in 4 KiB..=1 GiB"));
        }
        let capacity = capacity as usize;
        let total = self.total_size.load(Relaxed);
        if total != total_size(capacity) as u64 || total as usize > mapped_len {
            return bad(format!("segment size {total} does not match capacity {capacity} and mapping {mapped_len}"));
        }
        Ok(capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn fresh() -> Box<Header> {
        // SAFETY: Header is atomics and padding bytes, for which all-zero is a valid value.
        let h: Box<Header> = Box::new(unsafe { std::mem::zeroed() });
        h.init(1 << 16, 42);
        h
    }

    #[test]
    fn a_fresh_header_validates() {
        let h = fresh();
        assert_eq!(h.validate(total_size(1 << 16)).unwrap(), 1 << 16);
        assert_eq!(h.creator_pid.load(Relaxed), 42);
    }

    #[test]
    fn every_corrupted_field_is_incompatible() {
        let len = total_size(1 << 16);
        type Corruption = fn(&Header);
        let cases: [(&str, Corruption); 9] = [
            ("magic", |h| h.magic.store(0x1234, Relaxed)),
            ("version", |h| h.version.store(VERSION + 1, Relaxed)),
            ("header size", |h| h.header_size.store(64, Relaxed)),
            ("capacity not a power of two", |h| h.capacity.store((1 << 16) + 16, Relaxed)),
            ("capacity too small", |h| h.capacity.store(1024, Relaxed)),
            ("capacity too large", |h| h.capacity.store(1 << 40, Relaxed)),
            ("capacity zero", |h| h.capacity.store(0, Relaxed)),
            ("total size", |h| h.total_size.store(u64::MAX, Relaxed)),
            ("capacity beyond the mapping", |h| {
                h.capacity.store(1 << 20, Relaxed);
                h.total_size.store(total_size(1 << 20) as u64, Relaxed);
            }),
        ];
        for (what, corrupt) in cases {
            let h = fresh();
            corrupt(&h);
            assert!(matches!(h.validate(len), Err(Error::IncompatibleSegment(_))), "{what} was accepted");
        }
        // A mapping shorter than the header says.
        assert!(matches!(fresh().validate(len - 1), Err(Error::IncompatibleSegment(_))));
    }
}
