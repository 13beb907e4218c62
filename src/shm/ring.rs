//! A single-producer/single-consumer byte ring of variable-length records in shared memory.
//! All the ring's unsafe code lives here.
//!
//! Records are 16-byte aligned: a 16-byte header (`len: u32`, `tag: u32`, `total: u64`), then
//! `len` payload bytes, padded to 16. A record never wraps: if it does not fit before the end
//! of the buffer, a padding record fills the rest and the record starts at offset 0. Head and
//! tail are byte counters that only grow (`pos & (capacity - 1)` is the offset); each side
//! keeps its own index privately and a cached copy of the other's, and publishes its index
//! with release ordering after the bytes it covers (the Lamport queue, as in rtrb).
//!
//! The peer can write anything anywhere: the consumer checks every header against the
//! published tail and the buffer end before touching a payload byte, and both sides check
//! the other's index before trusting it. Payload bytes move only by `copy_nonoverlapping`.

use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::shm::layout::RingCtl;

/// Bytes in a record header; also the record alignment.
pub(crate) const RECORD_HEADER: usize = 16;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Tag {
    /// A whole message.
    Whole = 1,
    /// The first fragment of a message of `total` bytes.
    First = 2,
    /// A middle fragment.
    Middle = 3,
    /// The last fragment.
    Last = 4,
    /// Filler up to the end of the buffer.
    Pad = 5,
}

impl Tag {
    fn from_u32(v: u32) -> Option<Tag> {
        Some(match v {
            1 => Tag::Whole,
            2 => Tag::First,
            3 => Tag::Middle,
            4 => Tag::Last,
            5 => Tag::Pad,
            _ => return None,
        })
    }
}

fn record_size(len: usize) -> usize {
    RECORD_HEADER + len.next_multiple_of(RECORD_HEADER)
}

/// Pointers to one ring inside a mapping.
#[derive(Debug)]
struct Ring {
    ctl: NonNull<RingCtl>,
    data: NonNull<u8>,
    capacity: usize,
}

// SAFETY: the pointers are into a shared mapping that is not tied to a thread; the owning
// transport keeps the mapping alive for as long as the ring exists.
unsafe impl Send for Ring {}

impl Ring {
    fn ctl(&self) -> &RingCtl {
        // SAFETY: `ctl` points to an aligned RingCtl inside the live mapping (see `new`); it
        // holds only atomics, so shared access from both processes is sound.
        unsafe { self.ctl.as_ref() }
    }

    fn mask(&self) -> u64 {
        self.capacity as u64 - 1
    }

    /// Pointer to byte `offset` of the buffer; `offset < capacity` is the caller's invariant.
    fn at(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset < self.capacity);
        // SAFETY: offset < capacity, so the result stays inside the ring's buffer.
        unsafe { self.data.as_ptr().add(offset) }
    }
}

/// How far into the buffer a reply must be (and at least its own record size) before the
/// producer looks whether the consumer has read everything, and if so starts again at offset
/// 0; also the least distance between two looks (see [`Producer::hot_restart`]).
const HOT_SPAN: usize = 4096;

/// The largest record (header included) with which a reply starts again at offset 0: 8 KiB
/// of payload.
const HOT_RECORD_MAX: usize = 8192 + RECORD_HEADER;

/// The writing side of a ring.
#[derive(Debug)]
pub(crate) struct Producer {
    ring: Ring,
    tail: u64,
    head_cache: u64,
    /// The position from which the next look for an empty ring is due.
    hot_check: u64,
    /// This endpoint received a message since its last send: the next one is a reply.
    replying: bool,
}

/// Room for one record, obtained by [`Producer::try_reserve`] and published by
/// [`Producer::commit`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reservation {
    offset: usize,
    len: usize,
    /// Padding written before the record (at the buffer end), published with it.
    pad: usize,
}

impl Producer {
    /// # Safety
    /// `ctl` must point to a `RingCtl` and `data` to `capacity` bytes (a power of two, at
    /// least 4 KiB), both inside a shared mapping that outlives the producer and is not used
    /// by another producer for this ring.
    ///
    /// # Errors
    /// [`Error::CorruptSegment`] if the published tail is not record-aligned (positions wrap
    /// at 2^64, so any aligned value is usable).
    pub(crate) unsafe fn new(ctl: NonNull<RingCtl>, data: NonNull<u8>, capacity: usize) -> Result<Self> {
        let ring = Ring { ctl, data, capacity };
        let tail = ring.ctl().producer.pos.load(Ordering::Acquire);
        if !tail.is_multiple_of(RECORD_HEADER as u64) {
            return Err(Error::CorruptSegment("the ring's tail is not record-aligned"));
        }
        // The head may be anywhere; the first reservation that needs it checks it.
        Ok(Producer { ring, tail, head_cache: tail.wrapping_sub(capacity as u64), hot_check: tail, replying: false })
    }

    /// A copy sharing the ring, for the half of a split endpoint that never produces.
    ///
    /// # Safety
    /// From now on only one of `self` and the copy may be used.
    pub(crate) unsafe fn alias(&self) -> Self {
        let Ring { ctl, data, capacity } = self.ring;
        Producer {
            ring: Ring { ctl, data, capacity },
            tail: self.tail,
            head_cache: self.head_cache,
            hot_check: self.hot_check,
            replying: false,
        }
    }

    /// Whether the consumer has read everything published, going by its head as last
    /// published: a hint for how to send, never trusted as an index.
    pub(crate) fn drained(&self) -> bool {
        self.ring.ctl().consumer.pos.load(Ordering::Relaxed) == self.tail
    }

    /// The largest payload of one record: a quarter of the ring, so that a writer never waits
    /// for the reader to drain everything.
    pub(crate) fn max_record(&self) -> usize {
        self.ring.capacity / 4 - RECORD_HEADER
    }

    /// Notes that the endpoint received a message: its next send is a reply.
    #[inline]
    pub(crate) fn received(&mut self) {
        self.replying = true;
    }

    /// Finds room for a record of `len <= max_record()` payload bytes, or `None` if the ring
    /// is too full now.
    ///
    /// A reply (see [`hot_restart`](Producer::hot_restart)) may start again at offset 0.
    ///
    /// # Errors
    /// [`Error::CorruptSegment`] if the consumer's published head is impossible.
    ///
    /// # Panics
    /// If `len > max_record()` (callers split messages into records first).
    #[inline(always)]
    pub(crate) fn try_reserve(&mut self, len: usize) -> Result<Option<Reservation>> {
        assert!(len <= self.max_record(), "record of {len} bytes is above the ring's record limit");
        let capacity = self.ring.capacity;
        let size = record_size(len);
        let offset = (self.tail & self.ring.mask()) as usize;
        let to_end = capacity - offset;
        let mut pad = if size <= to_end { 0 } else { to_end };
        // The cheap conditions inline; the rest (size against offset, the look at the
        // consumer) out of line, so that this function stays small enough to inline.
        if size <= HOT_RECORD_MAX
            && self.replying
            && offset >= HOT_SPAN
            && pad == 0
            && self.hot_restart(offset, size)?
        {
            pad = to_end;
        }
        let need = (pad + size) as u64;
        if capacity as u64 - self.tail.wrapping_sub(self.head_cache) < need {
            let head = self.load_head()?;
            if capacity as u64 - self.tail.wrapping_sub(head) < need {
                return Ok(None);
            }
        }
        if pad > 0 {
            self.write_header(offset, (pad - RECORD_HEADER) as u32, Tag::Pad, 0);
        }
        Ok(Some(Reservation { offset: if pad > 0 { 0 } else { offset }, len, pad }))
    }

    /// For a reply of up to 8 KiB ([`HOT_RECORD_MAX`]) at least [`HOT_SPAN`] bytes into the
    /// buffer, which the caller checks: whether it should start again at offset 0, behind a
    /// padding record to the buffer end (which the consumer accepts like any other). It should
    /// when it fits before its offset and the consumer has read everything. Request and
    /// response then reuse a few cache lines instead of walking the whole buffer (4 MiB by
    /// default), whose lines are cold: spinning round trips on the 2-vCPU test machine,
    /// interleaved runs, 64 B 0.20-0.22 against 0.25-0.27 µs, 1 KiB 0.35-0.39 against
    /// 0.55-0.57, 4 KiB 0.97-1.01 against 1.31-1.32, 8 KiB 1.62-1.71 against 1.90-1.93. Not for
    /// streams (a producer that rewrote lines the consumer had just read slowed 1 KiB streams
    /// to a quarter) or larger replies (16 KiB round trips took twice as long: 4.6 against 2.3
    /// µs). Looks at the consumer's head at most once per `HOT_SPAN` bytes: a look, whatever
    /// it finds, puts off the next by `HOT_SPAN`.
    ///
    /// # Errors
    /// [`Error::CorruptSegment`] if the consumer's published head is impossible.
    #[inline(never)]
    fn hot_restart(&mut self, offset: usize, size: usize) -> Result<bool> {
        // The reply goes at 0 and the padding takes the rest: it must fit before `offset`.
        if offset < size || (self.tail.wrapping_sub(self.hot_check) as i64) < 0 {
            return Ok(false);
        }
        self.hot_check = self.tail.wrapping_add(HOT_SPAN as u64);
        Ok(self.load_head()? == self.tail)
    }

    /// The consumer's published head, checked, into `head_cache`.
    #[inline(never)]
    fn load_head(&mut self) -> Result<u64> {
        let head = self.ring.ctl().consumer.pos.load(Ordering::Acquire);
        if self.tail.wrapping_sub(head) > self.ring.capacity as u64 {
            return Err(Error::CorruptSegment("the consumer's head is outside the ring"));
        }
        self.head_cache = head;
        Ok(head)
    }

    /// The reserved payload bytes, to be filled in place before [`commit`](Producer::commit).
    ///
    /// The protocol gives the producer sole ownership of unpublished space: a correct
    /// consumer never reads or writes it, so the slice is ours for as long as the
    /// reservation is unpublished (the borrow of `self` keeps it so).
    pub(crate) fn payload(&self, res: &Reservation) -> &[u8] {
        let start = res.offset + RECORD_HEADER;
        debug_assert!(start + res.len <= self.ring.capacity);
        // SAFETY: as payload_mut; a shared borrow of the producer excludes the mutable one.
        unsafe { std::slice::from_raw_parts(self.ring.data.as_ptr().add(start), res.len) }
    }

    /// Mutable view of the reserved payload bytes.
    pub(crate) fn payload_mut(&mut self, res: &Reservation) -> &mut [u8] {
        let start = res.offset + RECORD_HEADER;
        debug_assert!(start + res.len <= self.ring.capacity);
        // SAFETY: try_reserve placed [start, start + len) inside the buffer, in space the
        // consumer has released and will not read before we publish it; the mapping outlives
        // `self`, and `&mut self` prevents a second slice or a commit while this one lives.
        unsafe { std::slice::from_raw_parts_mut(self.ring.data.as_ptr().add(start), res.len) }
    }

    /// Copies `bytes` into a reservation made for exactly `bytes.len()`.
    pub(crate) fn write(&self, res: &Reservation, bytes: &[u8]) {
        assert_eq!(bytes.len(), res.len);
        if bytes.is_empty() {
            return;
        }
        // SAFETY: the reservation lies within [tail, head + capacity), which the consumer does
        // not read until we publish it, and fits before the buffer end (try_reserve checked);
        // `bytes` is our own memory, so the two cannot overlap.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), self.ring.at(res.offset + RECORD_HEADER), bytes.len()) };
    }

    /// Publishes a reserved record (and its padding).
    #[inline]
    pub(crate) fn commit(&mut self, res: Reservation, tag: Tag, total: u64) {
        self.write_header(res.offset, res.len as u32, tag, total);
        self.replying = false;
        self.tail = self.tail.wrapping_add((res.pad + record_size(res.len)) as u64);
        self.ring.ctl().producer.pos.store(self.tail, Ordering::Release);
    }

    fn write_header(&self, offset: usize, len: u32, tag: Tag, total: u64) {
        let p = self.ring.at(offset);
        // SAFETY: `offset` is 16-aligned and at least 16 bytes before the buffer end (records
        // and the buffer are 16-aligned), inside the region we own until we publish it.
        unsafe {
            ptr::write_volatile(p.cast::<u32>(), len);
        }
        // SAFETY: as above, 4 bytes further.
        unsafe {
            ptr::write_volatile(p.add(4).cast::<u32>(), tag as u32);
        }
        // SAFETY: as above, 8 bytes further, 8-aligned.
        unsafe {
            ptr::write_volatile(p.add(8).cast::<u64>(), total);
        }
    }
}

/// The reading side of a ring.
#[derive(Debug)]
pub(crate) struct Consumer {
    ring: Ring,
    head: u64,
    tail_cache: u64,
}

/// A record that passed every check, ready to be read and released.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub(crate) tag: Tag,
    pub(crate) len: usize,
    pub(crate) total: u64,
    offset: usize,
}

impl Consumer {
    /// # Safety
    /// As [`Producer::new`], for the one consumer of this ring.
    ///
    /// # Errors
    /// [`Error::CorruptSegment`] if the published head is not record-aligned.
    pub(crate) unsafe fn new(ctl: NonNull<RingCtl>, data: NonNull<u8>, capacity: usize) -> Result<Self> {
        let ring = Ring { ctl, data, capacity };
        let head = ring.ctl().consumer.pos.load(Ordering::Acquire);
        if !head.is_multiple_of(RECORD_HEADER as u64) {
            return Err(Error::CorruptSegment("the ring's head is not record-aligned"));
        }
        Ok(Consumer { ring, head, tail_cache: head })
    }

    /// A copy sharing the ring, for the half of a split endpoint that never consumes.
    ///
    /// # Safety
    /// From now on only one of `self` and the copy may be used.
    pub(crate) unsafe fn alias(&self) -> Self {
        let Ring { ctl, data, capacity } = self.ring;
        Consumer { ring: Ring { ctl, data, capacity }, head: self.head, tail_cache: self.tail_cache }
    }

    /// Whether a record has been published that we have not read (reloads the tail).
    pub(crate) fn has_data(&mut self) -> Result<bool> {
        Ok(self.head != self.tail_cache || self.load_tail()? != self.head)
    }

    #[inline]
    fn load_tail(&mut self) -> Result<u64> {
        let tail = self.ring.ctl().producer.pos.load(Ordering::Acquire);
        if tail.wrapping_sub(self.head) > self.ring.capacity as u64 {
            return Err(Error::CorruptSegment("the producer's tail is outside the ring"));
        }
        self.tail_cache = tail;
        Ok(tail)
    }

    /// The next record, checked, or `None` if the ring is empty. Skips padding.
    ///
    /// # Errors
    /// [`Error::CorruptSegment`] for any header that cannot have been written by a correct
    /// producer.
    #[inline]
    pub(crate) fn peek(&mut self) -> Result<Option<Record>> {
        loop {
            if self.head == self.tail_cache && self.load_tail()? == self.head {
                return Ok(None);
            }
            let avail = self.tail_cache.wrapping_sub(self.head) as usize;
            let offset = (self.head & self.ring.mask()) as usize;
            let to_end = self.ring.capacity - offset;
            if !offset.is_multiple_of(RECORD_HEADER) || avail < RECORD_HEADER {
                return Err(Error::CorruptSegment("a published record is shorter than its header"));
            }
            let p = self.ring.at(offset);
            // SAFETY: offset is 16-aligned and < capacity, so 16 header bytes fit before the
            // buffer end; the producer published them (avail >= 16). Volatile reads take one
            // snapshot that the checks below apply to, whatever the peer writes afterwards.
            let (len, tag, total) = unsafe {
                (
                    ptr::read_volatile(p.cast::<u32>()) as usize,
                    ptr::read_volatile(p.add(4).cast::<u32>()),
                    ptr::read_volatile(p.add(8).cast::<u64>()),
                )
            };
            // Not `ok_or`: that builds (and drops) the error for every good record.
            let Some(tag) = Tag::from_u32(tag) else {
                return Err(Error::CorruptSegment("unknown record tag"));
            };
            if tag == Tag::Pad {
                if len != to_end - RECORD_HEADER || avail < to_end {
                    return Err(Error::CorruptSegment("padding record does not end at the buffer end"));
                }
                self.head = self.head.wrapping_add(to_end as u64);
                self.ring.ctl().consumer.pos.store(self.head, Ordering::Release);
                continue;
            }
            let size = record_size(len);
            if len > to_end || size > to_end || size > avail {
                return Err(Error::CorruptSegment("record length runs past the published data or the buffer end"));
            }
            return Ok(Some(Record { tag, len, total, offset }));
        }
    }

    /// Appends the record's payload to `out`.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if `out` cannot grow by the record's length.
    #[inline]
    pub(crate) fn read_into(&self, rec: &Record, out: &mut Vec<u8>) -> Result<()> {
        out.try_reserve(rec.len).map_err(|_| Error::OutOfMemory { bytes: out.len().saturating_add(rec.len) })?;
        let start = out.len();
        // SAFETY: peek checked that the payload lies inside published data before the buffer
        // end; `out` has room for `len` more bytes (reserved above) and is our own memory. The
        // bytes are copied, never borrowed, so a peer writing them concurrently can only give
        // us wrong bytes, not undefined behaviour in our memory.
        unsafe {
            ptr::copy_nonoverlapping(self.ring.at(rec.offset).add(RECORD_HEADER), out.as_mut_ptr().add(start), rec.len);
            out.set_len(start + rec.len);
        }
        Ok(())
    }

    /// The payload in place, for the zero-copy read slot.
    ///
    /// The bytes are published and, by the protocol, not written again until we release the
    /// record; a producer that breaks the protocol can change them under the slice (it
    /// cannot make us read outside the buffer). See `ShmRecvSlot` for what that means to the
    /// caller.
    pub(crate) fn payload(&self, rec: &Record) -> &[u8] {
        let start = rec.offset + RECORD_HEADER;
        debug_assert!(start + rec.len <= self.ring.capacity);
        // SAFETY: peek checked [start, start + len) lies inside the buffer and inside published
        // data; the mapping outlives `self`, and the record is not released while `&self` is
        // borrowed (release takes `&mut self`).
        unsafe { std::slice::from_raw_parts(self.ring.data.as_ptr().add(start), rec.len) }
    }

    /// Frees the record's space and publishes the new head.
    #[inline]
    pub(crate) fn release(&mut self, rec: &Record) {
        self.head = self.head.wrapping_add(record_size(rec.len) as u64);
        self.ring.ctl().consumer.pos.store(self.head, Ordering::Release);
    }
}

/// Fuzzing entry point: reads records from a 4 KiB ring whose bytes and indices come from
/// `data`, as a consumer facing a hostile producer would. Must never panic or read out of
/// bounds, whatever `data` holds.
pub(crate) fn fuzz_reader(data: &[u8]) {
    const CAPACITY: usize = 4096;
    let word = |i: usize| data.get(i * 8..i * 8 + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    // Half the inputs get a plausible tail (within a ring of the head), so that the fuzzer
    // reaches the record checks instead of stopping at the index check.
    let head = word(1);
    let tail = if data.first().is_some_and(|b| b % 2 == 0) {
        head.wrapping_add(word(0) % (CAPACITY as u64 + 1))
    } else {
        word(0)
    };
    let ctl = Box::new(RingCtl {
        producer: crate::shm::layout::IndexLine { pos: std::sync::atomic::AtomicU64::new(tail) },
        consumer: crate::shm::layout::IndexLine { pos: std::sync::atomic::AtomicU64::new(head) },
    });
    let mut buffer = vec![0u128; CAPACITY / 16];
    let rest = data.get(16..).unwrap_or_default();
    for (i, b) in rest.iter().take(CAPACITY).enumerate() {
        buffer[i / 16] |= (*b as u128) << (8 * (i % 16));
    }
    let data_ptr = NonNull::new(buffer.as_mut_ptr().cast::<u8>()).expect("vec pointer");
    // SAFETY: ctl and buffer live until the end of this function, which outlives `consumer`;
    // the buffer is CAPACITY bytes, 16-aligned (u128), and there is no other consumer.
    let Ok(mut consumer) = (unsafe { Consumer::new(NonNull::from(&*ctl), data_ptr, CAPACITY) }) else { return };
    let mut out = Vec::new();
    for _ in 0..64 {
        match consumer.peek() {
            Ok(Some(rec)) => {
                out.clear();
                if consumer.read_into(&rec, &mut out).is_err() {
                    break;
                }
                assert_eq!(out.len(), rec.len);
                assert_eq!(consumer.payload(&rec).len(), rec.len);
                consumer.release(&rec);
            }
            Ok(None) | Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A ring on the heap: a zeroed RingCtl plus a buffer, 16-aligned.
    struct HeapRing {
        ctl: Box<RingCtl>,
        data: Vec<u128>,
    }

    impl HeapRing {
        fn new(capacity: usize) -> Self {
            // SAFETY: RingCtl is all atomics, for which zero bytes are valid values.
            let ctl: Box<RingCtl> = Box::new(unsafe { std::mem::zeroed() });
            HeapRing { ctl, data: vec![0u128; capacity / 16] }
        }

        fn ends(&mut self) -> (Producer, Consumer) {
            let capacity = self.data.len() * 16;
            let ctl = NonNull::from(&*self.ctl);
            let data = NonNull::new(self.data.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: both point into `self`, which outlives the ends in every test.
            unsafe { (Producer::new(ctl, data, capacity).unwrap(), Consumer::new(ctl, data, capacity).unwrap()) }
        }

        fn consumer(&mut self) -> Option<Consumer> {
            let capacity = self.data.len() * 16;
            let data = NonNull::new(self.data.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: as in `ends`.
            unsafe { Consumer::new(NonNull::from(&*self.ctl), data, capacity) }.ok()
        }

        fn bytes(&mut self) -> &mut [u8] {
            // SAFETY: the Vec<u128> is plain memory of len*16 bytes.
            unsafe { std::slice::from_raw_parts_mut(self.data.as_mut_ptr().cast::<u8>(), self.data.len() * 16) }
        }
    }

    fn put(p: &mut Producer, msg: &[u8]) -> bool {
        match p.try_reserve(msg.len()).unwrap() {
            Some(res) => {
                p.write(&res, msg);
                p.commit(res, Tag::Whole, msg.len() as u64);
                true
            }
            None => false,
        }
    }

    fn take(c: &mut Consumer) -> Option<Vec<u8>> {
        let rec = c.peek().unwrap()?;
        let mut out = Vec::new();
        c.read_into(&rec, &mut out).unwrap();
        c.release(&rec);
        Some(out)
    }

    #[test]
    fn wraps_around_at_every_offset() {
        for capacity in [4096usize, 8192] {
            for len in [0usize, 1, 15, 16, 17, 100, 1000] {
                let mut heap = HeapRing::new(capacity);
                let (mut p, mut c) = heap.ends();
                // Walk the tail over every 16-byte offset several times.
                for i in 0..(3 * capacity / 16) {
                    let msg: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
                    assert!(put(&mut p, &msg), "cap {capacity} len {len} step {i}: ring should have room");
                    assert_eq!(take(&mut c).unwrap(), msg);
                    assert!(take(&mut c).is_none());
                }
            }
        }
    }

    #[test]
    fn full_and_empty() {
        let mut heap = HeapRing::new(4096);
        let (mut p, mut c) = heap.ends();
        assert!(take(&mut c).is_none());
        let mut n = 0;
        while put(&mut p, &[7; 100]) {
            n += 1;
        }
        assert_eq!(n, 4096 / record_size(100), "full after exactly capacity / record size");
        assert!(take(&mut c).is_some());
        assert!(put(&mut p, &[8; 100]), "one record freed makes room for one");
        assert!(!put(&mut p, &[8; 100]));
        for _ in 0..n {
            assert!(take(&mut c).is_some());
        }
        assert!(take(&mut c).is_none());
    }

    #[test]
    fn padding_record_at_the_end() {
        let mut heap = HeapRing::new(4096);
        let (mut p, mut c) = heap.ends();
        // Three 1024-byte records and one of 816 leave 208 bytes before the end.
        for _ in 0..3 {
            assert!(put(&mut p, &[1; 1008]));
            assert_eq!(take(&mut c).unwrap().len(), 1008);
        }
        assert!(put(&mut p, &[1; 800]));
        assert_eq!(take(&mut c).unwrap().len(), 800);
        assert_eq!(p.tail, 3888);
        assert!(put(&mut p, &[2; 300]), "a record that does not fit at the end wraps behind padding");
        assert_eq!(p.tail, 4096 + 320, "208 bytes of padding, then the 320-byte record at 0");
        assert_eq!(take(&mut c).unwrap(), vec![2; 300]);
        assert_eq!(c.head, 4096 + 320);
    }

    #[test]
    fn a_reply_to_an_emptied_ring_starts_again_at_offset_0() {
        for len in [0, 64, 1000, 8192] {
            let mut heap = HeapRing::new(1 << 16);
            let (mut p, mut c) = heap.ends();
            let size = record_size(len);
            for i in 0..500u32 {
                let msg = vec![i as u8; len];
                p.received();
                assert!(put(&mut p, &msg));
                let offset = (p.tail & p.ring.mask()) as usize;
                assert!(offset <= HOT_SPAN + size, "{len} bytes, step {i}: a reply walked on to offset {offset}");
                assert_eq!(take(&mut c).unwrap(), msg, "{len} bytes, step {i}");
            }
        }
    }

    #[test]
    fn a_reply_restarts_only_from_its_own_size_on() {
        // An 8 KiB reply (a record of 8,208 bytes) into an emptied ring: 4,112 bytes in, or 16
        // bytes short of its size, it does not fit before its offset and walks on (trying to
        // start again at 0 would make the empty ring seem full); at its size it starts again.
        for (before, restarts) in [(vec![4096], false), (vec![4080, 4080], false), (vec![8192], true)] {
            let mut heap = HeapRing::new(1 << 16);
            let (mut p, mut c) = heap.ends();
            for len in before {
                assert!(put(&mut p, &vec![1; len]));
                assert_eq!(take(&mut c).unwrap().len(), len);
            }
            let offset = p.tail;
            p.received();
            assert!(put(&mut p, &[2; 8192]), "an empty ring refused an 8 KiB reply at offset {offset}");
            let expected = if restarts { (1 << 16) + 8208 } else { offset + 8208 };
            assert_eq!(p.tail, expected, "a reply at offset {offset}");
            assert_eq!(take(&mut c).unwrap(), vec![2; 8192]);
        }
    }

    #[test]
    fn only_the_first_send_after_a_receive_is_a_reply() {
        let mut heap = HeapRing::new(1 << 16);
        let (mut p, mut c) = heap.ends();
        // A reply below HOT_SPAN walks on.
        assert!(put(&mut p, &[1; 64]));
        assert_eq!(take(&mut c).unwrap().len(), 64);
        p.received();
        assert!(put(&mut p, &[1; 64]));
        assert_eq!(p.tail, 160, "a reply 80 bytes in started again");
        assert_eq!(take(&mut c).unwrap().len(), 64);
        // Past HOT_SPAN, a reply to the emptied ring starts again at 0 ...
        assert!(put(&mut p, &[1; 4096]));
        assert_eq!(take(&mut c).unwrap().len(), 4096);
        p.received();
        assert!(put(&mut p, &[2; 64]));
        assert_eq!(p.tail & p.ring.mask(), 80, "the reply did not start again at 0");
        assert_eq!(take(&mut c).unwrap().len(), 64);
        // ... and the sends after it, with nothing received, walk on.
        for i in 0..200 {
            assert!(put(&mut p, &[3; 64]));
            assert_eq!(take(&mut c).unwrap().len(), 64, "send {i}");
        }
        assert_eq!(p.tail & p.ring.mask(), 80 + 200 * 80, "a send that was no reply started again");
    }

    #[test]
    fn a_look_at_an_unread_ring_puts_off_the_next_by_hot_span() {
        let mut heap = HeapRing::new(1 << 16);
        let (mut p, mut c) = heap.ends();
        assert!(put(&mut p, &[1; 4096]));
        // The consumer has not read it: the reply looks, finds data, and walks on.
        p.received();
        assert!(put(&mut p, &[2; 64]));
        assert_eq!(p.tail, 4112 + 80);
        assert_eq!(take(&mut c).unwrap().len(), 4096);
        assert_eq!(take(&mut c).unwrap().len(), 64);
        // The ring is empty now, but the next look is due only HOT_SPAN bytes after the last.
        p.received();
        assert!(put(&mut p, &[3; 64]));
        assert_eq!(p.tail, 4112 + 160, "a reply looked again within HOT_SPAN bytes");
        assert_eq!(take(&mut c).unwrap().len(), 64);
    }

    #[test]
    fn streams_large_replies_and_an_unread_ring_walk_on() {
        // (received before each put, record payload, read each before the next put, puts)
        for (reply, len, read, puts) in [(false, 1000, true, 40), (true, 8200, true, 20), (true, 1000, false, 40)] {
            let mut heap = HeapRing::new(1 << 16);
            let (mut p, mut c) = heap.ends();
            let mut furthest = 0;
            // Half the 64 KiB ring: a restart (at most 4 KiB plus one record in) never gets there.
            const WALKED: usize = 1 << 15;
            for i in 0..puts {
                if reply {
                    p.received();
                }
                assert!(put(&mut p, &vec![i as u8; len]));
                furthest = furthest.max((p.tail & p.ring.mask()) as usize);
                if read {
                    assert_eq!(take(&mut c).unwrap(), vec![i as u8; len]);
                }
            }
            assert!(furthest > WALKED, "reply {reply}, {len} bytes, read {read}: went back to 0 (got to {furthest})");
        }
    }

    #[test]
    fn matches_a_vecdeque_model() {
        let mut seed = 12345u64;
        let mut rnd = move |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        // 64 KiB: records up to 16 KiB, so replies above and below the 8 KiB restart limit.
        for capacity in [4096usize, 16384, 1 << 16] {
            let mut heap = HeapRing::new(capacity);
            let (mut p, mut c) = heap.ends();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for step in 0..20_000 {
                if rnd(4) == 0 {
                    // A reply may start again at offset 0 (an emptied ring only, so `fits` holds).
                    p.received();
                }
                if rnd(2) == 0 {
                    let len = rnd((p.max_record() + 1) as u64) as usize;
                    let msg: Vec<u8> = (0..len).map(|_| rnd(256) as u8).collect();
                    let used = (p.tail - c.head) as usize;
                    let to_end = capacity - (p.tail as usize % capacity);
                    let need = record_size(len) + if record_size(len) > to_end { to_end } else { 0 };
                    let fits = capacity - used >= need;
                    assert_eq!(put(&mut p, &msg), fits, "step {step}: used {used}, need {need}");
                    if fits {
                        model.push_back(msg);
                    }
                } else {
                    assert_eq!(take(&mut c), model.pop_front(), "step {step}");
                }
            }
        }
    }

    #[test]
    fn corrupt_headers_and_indices_are_errors() {
        let mut heap = HeapRing::new(4096);
        let (mut p, mut c) = heap.ends();
        assert!(put(&mut p, &[1; 64]));
        // Each header field, scribbled.
        for (at, bytes) in [
            (0usize, 5000u32.to_le_bytes()),
            (0, 80u32.to_le_bytes()),
            (4, 9u32.to_le_bytes()),
            (4, 0u32.to_le_bytes()),
        ] {
            let saved: Vec<u8> = heap.bytes()[..16].to_vec();
            heap.bytes()[at..at + 4].copy_from_slice(&bytes);
            let (_, mut c2) = heap.ends();
            assert!(matches!(c2.peek(), Err(Error::CorruptSegment(_))), "field at {at} = {bytes:?}");
            heap.bytes()[..16].copy_from_slice(&saved);
        }
        // Padding that does not end at the buffer end.
        heap.bytes()[4..8].copy_from_slice(&5u32.to_le_bytes());
        assert!(matches!(c.peek(), Err(Error::CorruptSegment(_))));
        heap.bytes()[4..8].copy_from_slice(&1u32.to_le_bytes());
        // Impossible indices.
        heap.ctl.producer.pos.store(1 << 40, Ordering::Relaxed);
        let (_, mut c3) = heap.ends();
        assert!(matches!(c3.peek(), Err(Error::CorruptSegment(_))));
        heap.ctl.producer.pos.store(80, Ordering::Relaxed);
        heap.ctl.consumer.pos.store(1 << 40, Ordering::Relaxed);
        let (mut p4, _) = heap.ends();
        p4.tail = 4000;
        p4.head_cache = 0;
        assert!(matches!(p4.try_reserve(1000), Err(Error::CorruptSegment(_))));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 99u64;
        for _ in 0..2000 {
            let mut heap = HeapRing::new(4096);
            for b in heap.bytes().iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            heap.ctl.producer.pos.store(seed % 8192, Ordering::Relaxed);
            let Some(mut c) = heap.consumer() else { continue };
            for _ in 0..8 {
                match c.peek() {
                    Ok(Some(rec)) => {
                        let mut out = Vec::new();
                        c.read_into(&rec, &mut out).unwrap();
                        assert_eq!(out.len(), rec.len);
                        c.release(&rec);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
