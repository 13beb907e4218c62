//! The `shm` transport: two single-producer/single-consumer byte rings in one shared mapping,
//! one per direction, with spin, block or adaptive waiting.
//!
//! Parent and child share an anonymous sealed memfd (nothing to leak, ever); unrelated
//! processes meet through a `shm_open` name that the creator removes as soon as the peer has
//! attached. Messages up to a quarter of the ring travel as one record; larger ones in
//! fragments, reassembled on the other side, so the API and maximum message size are those of
//! every other transport. See `ring.rs` for the record format and `wait.rs` for waiting and
//! peer-death detection.

mod layout;
mod region;
mod ring;
mod wait;

pub(crate) use ring::fuzz_reader;

use std::collections::VecDeque;
use std::mem;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use layout::{HEADER_SIZE, Header};
use region::Region;
use ring::{Consumer, Producer, Record, Reservation, Tag};
use wait::{Bell, CHECK_EVERY, PeerWatch, Spin, SpinStep};

use crate::deadline;
use crate::error::{Error, Result};
use crate::transport::{Kind, Options, Transport, WaitStrategy};

/// One end of a shared-memory connection.
///
/// Obtained from [`spawn_child`](crate::spawn_child) with [`Kind::Shm`], in the child from
/// [`connect_to_parent`](crate::connect_to_parent), from [`ShmTransport::pair`] in one
/// process, or by name from [`ShmTransport::create_named`] and [`ShmTransport::open_named`].
///
/// Dropping it marks its side closed and wakes the peer: the peer's `recv` returns the
/// messages already in the ring, then [`Error::Disconnected`]; its `send` returns
/// `Disconnected`. If the peer process dies without dropping (SIGKILL), a blocked `recv` or
/// `send` notices within about 10 ms (it checks the peer's pidfd whenever it has waited that
/// long) and returns `Disconnected`, or [`Error::Truncated`] if a fragmented message was cut
/// off. A `send` that finds room in the ring succeeds even if the peer has just died, as a
/// socket's would.
///
/// Besides the copying `send`/`recv`, [`reserve`](ShmTransport::reserve) writes a message in
/// place and [`recv_in_place`](ShmTransport::recv_in_place) reads one in place.
///
/// # Examples
/// ```
/// use switchboard::{Options, ShmTransport, Transport, WaitStrategy};
///
/// let options = Options::new().wait_strategy(WaitStrategy::Block).ring_capacity(1 << 16);
/// let (mut a, mut b) = ShmTransport::pair(&options)?;
/// a.send(b"through shared memory")?;
/// let mut buf = Vec::new();
/// b.recv(&mut buf)?;
/// assert_eq!(buf, b"through shared memory");
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct ShmTransport {
    producer: Producer,
    consumer: Consumer,
    my_bell: Bell,
    peer_bell: Bell,
    /// 0: creator, 1: attacher (indexes the header's per-endpoint fields).
    side: usize,
    peer: PeerWatch,
    max: usize,
    strategy: WaitStrategy,
    spin: Duration,
    /// The CPUs this endpoint may run on (bit mask, 0 if unknown).
    my_cpus: u64,
    /// The machine has a single CPU online.
    machine_has_one: bool,
    /// Fragments of the message being reassembled, and its announced total.
    partial: Vec<u8>,
    partial_total: Option<u64>,
    /// Whole messages read while a `send` waited for space (so two senders cannot deadlock).
    inbox: VecDeque<Vec<u8>>,
    /// What the inbox costs: payload bytes plus [`INBOX_OVERHEAD`] per message.
    inbox_cost: usize,
    broken: bool,
    /// A fragmented send failed halfway: no more sends (receiving goes on).
    send_broken: bool,
    /// Last field: dropped after everything that points into it.
    region: Region,
}

/// What a wait is for.
#[derive(Debug, Clone, Copy)]
enum Want {
    Space(usize),
    Data,
}

/// What the rings offered.
enum Got {
    Space(Reservation),
    Data,
}

/// The next thing the incoming ring holds.
enum Next {
    /// A whole-message record, not yet released.
    Whole(Record),
    /// A fragmented message just completed in `partial`.
    Message,
}

impl ShmTransport {
    /// Two connected endpoints in this process, over one memfd mapped twice.
    ///
    /// # Errors
    /// [`Error::Io`] if the memfd cannot be created or mapped.
    pub fn pair(options: &Options) -> Result<(Self, Self)> {
        options.check()?;
        let (region, fd) = Region::memfd(layout::total_size(options.ring_capacity))?;
        header(&region).init(options.ring_capacity, std::process::id());
        let other = Region::attach_memfd(&fd, HEADER_SIZE)?;
        header(&other).attached.store(1, Ordering::Release);
        Ok((Self::new(region, 0, options, PeerWatch::none())?, Self::new(other, 1, options, PeerWatch::none())?))
    }

    /// The parent's side, before the child exists, and the memfd to hand to the child.
    pub(crate) fn for_child(options: &Options) -> Result<(Self, OwnedFd)> {
        options.check()?;
        let (region, fd) = Region::memfd(layout::total_size(options.ring_capacity))?;
        header(&region).init(options.ring_capacity, std::process::id());
        Ok((Self::new(region, 0, options, PeerWatch::none())?, fd))
    }

    /// Starts watching the child once it runs.
    pub(crate) fn watch_peer(&mut self, pid: u32) {
        self.peer = PeerWatch::pid(pid as i32);
    }

    /// Waits until `deadline` for the child `pid` to attach: `Ok(false)` if it has not yet.
    ///
    /// # Errors
    /// [`Error::Handshake`] if another process attached instead.
    pub(crate) fn await_attached(&self, pid: u32, deadline: Option<Instant>) -> Result<bool> {
        let h = header(&self.region);
        if !wait_attached(h, deadline) {
            return Ok(false);
        }
        match h.attacher_pid.load(Ordering::Acquire) {
            who if who == pid => Ok(true),
            who => Err(Error::Handshake(format!("process {who} attached to the segment instead of the child {pid}"))),
        }
    }

    /// The mapping's address and length, for tests that scribble on a live segment.
    pub(crate) fn mapping(&self) -> (usize, usize) {
        (self.region.ptr().as_ptr() as usize, self.region.len())
    }

    /// The child's side, from the memfd it inherited.
    pub(crate) fn from_parent(memfd: OwnedFd, options: &Options) -> Result<Self> {
        let region = Region::attach_memfd(&memfd, HEADER_SIZE)?;
        drop(memfd);
        let h = header(&region);
        h.validate(region.len())?;
        let ppid = nix::unistd::getppid().as_raw();
        if h.creator_pid.load(Ordering::Relaxed) as i32 != ppid {
            return Err(Error::Handshake("the shared segment was not created by our parent".into()));
        }
        let peer = PeerWatch::pid(ppid);
        if nix::unistd::getppid().as_raw() != ppid {
            return Err(Error::Disconnected);
        }
        claim(h)?;
        Self::new(region, 1, options, peer)
    }

    /// Creates a named segment (`shm_open`, owner-only) for an unrelated process to open with
    /// [`open_named`](ShmTransport::open_named). The name exists until the peer attaches (then
    /// [`NamedShm::accept`] removes it) or the `NamedShm` is dropped.
    ///
    /// A segment left under `name` by a creator that died before anyone attached (a
    /// switchboard segment of this user, never attached, whose creator process is gone) is
    /// removed and the name reused.
    ///
    /// # Errors
    /// [`Error::Io`] naming the segment if the name is in use or the segment cannot be made;
    /// [`Error::Config`] for a name with `/` or NUL in it, or invalid options.
    ///
    /// # Platform-specific behavior
    /// If this process is killed before a peer attaches, the name stays in `/dev/shm` until
    /// the next `create_named` of that name, [`remove_named`](ShmTransport::remove_named), or
    /// an `open_named`, each of which removes it. After attach nothing can leak. Named segments cannot be sealed: a peer of the
    /// same user could truncate it and make the next access raise SIGBUS (see the README's
    /// threat model); parent and child connections use a sealed memfd instead.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Options, ShmTransport, Transport};
    ///
    /// let name = format!("switchboard-doc-{}", std::process::id());
    /// let server = ShmTransport::create_named(&name, &Options::new())?;
    /// let mut client = ShmTransport::open_named(&name, &Options::new())?;
    /// let mut server = server.accept(Duration::from_secs(5))?;
    /// client.send(b"hello")?;
    /// let mut buf = Vec::new();
    /// server.recv(&mut buf)?;
    /// assert_eq!(buf, b"hello");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn create_named(name: &str, options: &Options) -> Result<NamedShm> {
        options.check()?;
        let size = layout::total_size(options.ring_capacity);
        let region = match Region::create_named(name, size) {
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists && reclaim_abandoned(name) => {
                Region::create_named(name, size)
            }
            other => other,
        }?;
        header(&region).init(options.ring_capacity, std::process::id());
        Ok(NamedShm { name: name.to_owned(), region: Some(region), options: options.clone() })
    }

    /// Opens a segment made by [`create_named`](ShmTransport::create_named) in another
    /// process. Its ring capacity comes from the segment.
    ///
    /// # Errors
    /// [`Error::Io`] naming the segment if no such name exists (`NotFound`);
    /// [`Error::IncompatibleSegment`] if it is not a switchboard segment of this version, or
    /// not owner-only and ours; [`Error::Handshake`] if another process attached first, or
    /// if its creator is gone (the abandoned segment is then removed).
    pub fn open_named(name: &str, options: &Options) -> Result<Self> {
        options.check()?;
        let region = Region::open_named(name, HEADER_SIZE)?;
        let h = header(&region);
        h.validate(region.len())?;
        let creator = h.creator_pid.load(Ordering::Relaxed);
        let peer = PeerWatch::pid(creator as i32);
        if !peer.alive() {
            reclaim_abandoned(name);
            return Err(Error::Handshake(format!(
                "the creator of shared-memory segment {name:?} (pid {creator}) is gone; the segment was removed"
            )));
        }
        claim(h)?;
        Self::new(region, 1, options, peer)
    }

    /// Removes the name of a segment made by [`create_named`](ShmTransport::create_named), as
    /// `shm_unlink(3)` does: connected endpoints keep working. Returns whether the name
    /// existed.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid name; [`Error::Io`] naming the segment if it cannot be
    /// removed (for example, another user's).
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, ShmTransport};
    ///
    /// let name = format!("switchboard-doc-remove-{}", std::process::id());
    /// let segment = ShmTransport::create_named(&name, &Options::new())?;
    /// std::mem::forget(segment); // as if the creator had been killed
    /// assert!(ShmTransport::remove_named(&name)?);
    /// assert!(!ShmTransport::remove_named(&name)?);
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn remove_named(name: &str) -> Result<bool> {
        region::remove_named(name)
    }

    /// Builds side `side` (0: creator, 1: attacher) over a validated or fresh region.
    fn new(region: Region, side: usize, options: &Options, peer: PeerWatch) -> Result<Self> {
        let h = header(&region);
        let capacity = h.validate(region.len())?;
        let base = region.ptr();
        let ring_ptr = |i: usize| {
            let ctl = NonNull::from(&h.rings[i]);
            // SAFETY: validate checked the mapping holds HEADER_SIZE + 2 * capacity bytes.
            let data = unsafe { base.add(HEADER_SIZE + i * capacity) };
            (ctl, data)
        };
        let (out_ctl, out_data) = ring_ptr(side);
        let (in_ctl, in_data) = ring_ptr(1 - side);
        // SAFETY: both rings lie inside `region`, which the transport owns and drops last;
        // side 0 produces on ring 0 and consumes ring 1, side 1 the reverse, so each ring has
        // one producer and one consumer.
        let (producer, consumer) =
            unsafe { (Producer::new(out_ctl, out_data, capacity)?, Consumer::new(in_ctl, in_data, capacity)?) };
        // SAFETY: the bells live in the header of `region`, which outlives the transport's use.
        let (my_bell, peer_bell) =
            unsafe { (Bell::new(NonNull::from(&h.bells[side])), Bell::new(NonNull::from(&h.bells[1 - side]))) };
        let my_cpus = wait::allowed_cpus();
        h.endpoints[side].cpus.store(my_cpus, Ordering::Relaxed);
        Ok(ShmTransport {
            producer,
            consumer,
            my_bell,
            peer_bell,
            side,
            peer,
            max: options.max_message_size,
            strategy: options.wait_strategy,
            spin: options.spin_duration,
            my_cpus,
            machine_has_one: wait::online_cpus() == 1,
            partial: Vec::new(),
            partial_total: None,
            inbox: VecDeque::new(),
            inbox_cost: 0,
            broken: false,
            send_broken: false,
            region,
        })
    }

    /// The wait strategy in use.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// The largest message [`reserve`](ShmTransport::reserve) can place in one record: a
    /// quarter of the ring, minus a 16-byte header.
    pub fn max_in_place(&self) -> usize {
        self.producer.max_record().min(self.max)
    }

    /// Reserves `len` bytes in the outgoing ring to fill in place, waiting for room; the
    /// message is sent when the slot is [`commit`](ShmSendSlot::commit)ted and discarded if the
    /// slot is dropped.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] if `len` is above [`max_in_place`](ShmTransport::max_in_place)
    /// (use `send` for those); [`Error::Disconnected`] if the peer is gone.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, ShmTransport, Transport};
    ///
    /// let (mut a, mut b) = ShmTransport::pair(&Options::new())?;
    /// let mut slot = a.reserve(5)?;
    /// slot.copy_from_slice(b"fills");
    /// slot.commit();
    /// let msg = b.recv_in_place()?;
    /// assert_eq!(&*msg, b"fills");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn reserve(&mut self, len: usize) -> Result<ShmSendSlot<'_>> {
        let max = self.max_in_place();
        if len > max {
            return Err(Error::MessageTooLarge { len, max });
        }
        if self.broken || self.send_broken {
            return Err(Error::Disconnected);
        }
        let Got::Space(res) = self.wait(Want::Space(len), None)? else { unreachable!("space wait") };
        Ok(ShmSendSlot { transport: self, res })
    }

    /// Receives the next message without copying it out of the ring: the slot borrows the
    /// bytes and frees their space when dropped. (A message that arrived in fragments, or
    /// was read ahead while a `send` waited, is served from a private buffer instead.)
    ///
    /// # Errors
    /// As [`Transport::recv`].
    pub fn recv_in_place(&mut self) -> Result<ShmRecvSlot<'_>> {
        self.recv_slot(None)
    }

    /// Like [`recv_in_place`](ShmTransport::recv_in_place), with a timeout.
    ///
    /// # Errors
    /// As [`Transport::recv_timeout`].
    pub fn recv_in_place_timeout(&mut self, timeout: Duration) -> Result<ShmRecvSlot<'_>> {
        self.recv_slot(Instant::now().checked_add(timeout))
    }

    fn recv_slot(&mut self, deadline: Option<Instant>) -> Result<ShmRecvSlot<'_>> {
        loop {
            if let Some(msg) = self.inbox.pop_front() {
                self.inbox_cost -= msg.len() + INBOX_OVERHEAD;
                return Ok(ShmRecvSlot { transport: self, inner: Slot::Owned(msg) });
            }
            if self.broken {
                return Err(Error::Disconnected);
            }
            match self.advance()? {
                Some(Next::Whole(rec)) => {
                    return Ok(ShmRecvSlot { transport: self, inner: Slot::Ring(rec) });
                }
                Some(Next::Message) => {
                    let msg = mem::take(&mut self.partial);
                    return Ok(ShmRecvSlot { transport: self, inner: Slot::Owned(msg) });
                }
                None => {
                    self.wait(Want::Data, deadline)?;
                }
            }
        }
    }

    fn send_record(&mut self, tag: Tag, bytes: &[u8], total: u64) -> Result<()> {
        let Got::Space(res) = self.wait(Want::Space(bytes.len()), None)? else { unreachable!("space wait") };
        self.producer.write(&res, bytes);
        self.producer.commit(res, tag, total);
        self.peer_bell.ring();
        Ok(())
    }

    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<usize> {
        loop {
            if let Some(msg) = self.inbox.pop_front() {
                self.inbox_cost -= msg.len() + INBOX_OVERHEAD;
                *buf = msg;
                return Ok(buf.len());
            }
            if self.broken {
                return Err(Error::Disconnected);
            }
            match self.advance()? {
                Some(Next::Whole(rec)) => {
                    buf.clear();
                    let read = self.consumer.read_into(&rec, buf);
                    self.release(&rec);
                    if let Err(e) = read {
                        self.broken = true;
                        return Err(e);
                    }
                    return Ok(rec.len);
                }
                Some(Next::Message) => {
                    mem::swap(buf, &mut self.partial);
                    self.partial.clear();
                    return Ok(buf.len());
                }
                None => {
                    self.wait(Want::Data, deadline)?;
                }
            }
        }
    }

    fn release(&mut self, rec: &Record) {
        self.consumer.release(rec);
        self.peer_bell.ring();
    }

    /// Consumes fragments until a whole record or a completed message is next, or the ring is
    /// empty. Every inconsistency is an error that ends the connection.
    fn advance(&mut self) -> Result<Option<Next>> {
        let result = self.advance_inner();
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    fn advance_inner(&mut self) -> Result<Option<Next>> {
        loop {
            let Some(rec) = self.consumer.peek()? else {
                return Ok(None);
            };
            let len = rec.len as u64;
            match rec.tag {
                Tag::Whole => {
                    if self.partial_total.is_some() {
                        return Err(Error::CorruptSegment("a whole message inside a fragmented one"));
                    }
                    if rec.total != len {
                        return Err(Error::CorruptSegment("a whole record whose total differs from its length"));
                    }
                    if rec.len > self.max {
                        return Err(Error::FrameTooLarge { len, max: self.max });
                    }
                    return Ok(Some(Next::Whole(rec)));
                }
                Tag::First => {
                    if self.partial_total.is_some() {
                        return Err(Error::CorruptSegment("a first fragment inside a fragmented message"));
                    }
                    if rec.total > self.max as u64 {
                        return Err(Error::FrameTooLarge { len: rec.total, max: self.max });
                    }
                    if len >= rec.total {
                        return Err(Error::CorruptSegment("a first fragment as long as its whole message"));
                    }
                    // Nothing is reserved for the announced total: the buffer grows with the
                    // fragments that arrive.
                    self.partial.clear();
                    self.partial_total = Some(rec.total);
                }
                Tag::Middle | Tag::Last => {
                    let Some(total) = self.partial_total else {
                        return Err(Error::CorruptSegment("a fragment without a first fragment"));
                    };
                    let after = self.partial.len() as u64 + len;
                    let last = rec.tag == Tag::Last;
                    if rec.total != total || (last && after != total) || (!last && after >= total) {
                        return Err(Error::CorruptSegment("fragment lengths do not add up to the message"));
                    }
                }
                Tag::Pad => unreachable!("peek skips padding"),
            }
            self.consumer.read_into(&rec, &mut self.partial)?;
            self.release(&rec);
            if rec.tag == Tag::Last {
                self.partial_total = None;
                return Ok(Some(Next::Message));
            }
        }
    }

    /// One look at the rings for `want`. While waiting for space, reads incoming messages
    /// ahead so that a peer blocked in its own `send` can finish: at most one maximum message
    /// (or one record, if larger), counting [`INBOX_OVERHEAD`] for every message besides its
    /// payload, so a peer that streams empty messages cannot make the inbox grow without bound.
    fn poll(&mut self, want: Want) -> Result<Option<Got>> {
        match want {
            Want::Space(len) => {
                if self.peer_closed() {
                    return Err(Error::Disconnected);
                }
                if let Some(res) = self.producer.try_reserve(len)? {
                    return Ok(Some(Got::Space(res)));
                }
                let limit = self.max.max(self.producer.max_record());
                while self.inbox_cost < limit && !self.broken {
                    match self.advance()? {
                        Some(Next::Whole(rec)) => {
                            let mut msg = Vec::new();
                            let read = self.consumer.read_into(&rec, &mut msg);
                            self.release(&rec);
                            if let Err(e) = read {
                                self.broken = true;
                                return Err(e);
                            }
                            self.inbox_cost += msg.len() + INBOX_OVERHEAD;
                            self.inbox.push_back(msg);
                        }
                        Some(Next::Message) => {
                            let msg = mem::take(&mut self.partial);
                            self.inbox_cost += msg.len() + INBOX_OVERHEAD;
                            self.inbox.push_back(msg);
                        }
                        None => break,
                    }
                }
                Ok(None)
            }
            Want::Data => {
                if !self.inbox.is_empty() || self.consumer.has_data()? {
                    return Ok(Some(Got::Data));
                }
                // Closed is read before the final emptiness check: records published before
                // the close are seen.
                if self.peer_closed() {
                    if self.consumer.has_data()? {
                        return Ok(Some(Got::Data));
                    }
                    return Err(self.peer_gone());
                }
                Ok(None)
            }
        }
    }

    /// Whether the peer dropped its endpoint (read with acquire: everything it published
    /// before is visible after).
    fn peer_closed(&self) -> bool {
        header(&self.region).endpoints[1 - self.side].closed.load(Ordering::Acquire) != 0
    }

    /// The error for a peer that is gone with nothing left to read.
    fn peer_gone(&mut self) -> Error {
        self.broken = true;
        match self.partial_total {
            Some(total) => Error::Truncated { expected: total as usize, received: self.partial.len() },
            None => Error::Disconnected,
        }
    }

    /// Waits for `want` by the endpoint's strategy, checking the peer's liveness.
    fn wait(&mut self, want: Want, deadline: Option<Instant>) -> Result<Got> {
        if let Some(got) = self.poll(want)? {
            return Ok(got);
        }
        let peer_cpus = header(&self.region).endpoints[1 - self.side].cpus.load(Ordering::Relaxed);
        let mut spin =
            Spin::new(self.strategy, self.spin, wait::one_cpu_for_both(self.machine_has_one, self.my_cpus, peer_cpus));
        loop {
            match spin.step(deadline) {
                SpinStep::Again => {}
                SpinStep::Check => {
                    if !self.peer.alive() {
                        return self.last_look(want);
                    }
                }
                SpinStep::Sleep => break,
            }
            if let Some(got) = self.poll(want)? {
                return Ok(got);
            }
        }
        loop {
            let sleep = self.my_bell.prepare();
            if let Some(got) = self.poll(want)? {
                return Ok(got);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::Timeout);
            }
            let slice = deadline.map_or(CHECK_EVERY, |d| (d - now).min(CHECK_EVERY));
            sleep.sleep(slice);
            if !self.peer.alive() {
                return self.last_look(want);
            }
        }
    }

    /// The peer process is dead: whatever it published is still ours, then it is gone.
    fn last_look(&mut self, want: Want) -> Result<Got> {
        if let Want::Data = want
            && let Some(got) = self.poll(want)?
        {
            return Ok(got);
        }
        Err(self.peer_gone())
    }
}

/// What one message read ahead costs besides its payload, for the read-ahead bound: its slot
/// in the inbox queue and the allocator's bookkeeping, rounded up.
const INBOX_OVERHEAD: usize = 64;

/// Marks an attached segment as taken by this process, refusing a second attacher, and wakes
/// the creator if it waits for us.
fn claim(h: &Header) -> Result<()> {
    let me = std::process::id();
    if h.attacher_pid.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return Err(Error::Handshake("the shared segment already has a peer".into()));
    }
    h.attached.store(1, Ordering::Release);
    wait::futex_wake(&h.attached);
    Ok(())
}

/// Waits until a peer has attached to the segment, or `deadline`; whether it has.
fn wait_attached(h: &Header, deadline: Option<Instant>) -> bool {
    loop {
        if h.attached.load(Ordering::Acquire) != 0 {
            return true;
        }
        let now = Instant::now();
        let slice = match deadline {
            Some(d) if now >= d => return false,
            Some(d) => (d - now).min(CHECK_EVERY),
            None => CHECK_EVERY,
        };
        wait::futex_wait(&h.attached, 0, slice);
    }
}

/// Removes the named segment `name` if it was abandoned: a valid switchboard segment of this
/// user that nobody attached to and whose creator process is gone. Whether it did.
///
/// A creator whose pid was reused by another process looks alive, so such a segment stays
/// (a leftover, never a wrong removal).
fn reclaim_abandoned(name: &str) -> bool {
    let Ok(region) = Region::open_named(name, HEADER_SIZE) else {
        return false;
    };
    let h = header(&region);
    if h.validate(region.len()).is_err() || h.attached.load(Ordering::Acquire) != 0 {
        return false;
    }
    if PeerWatch::pid(h.creator_pid.load(Ordering::Relaxed) as i32).alive() {
        return false;
    }
    region::unlink_named(name);
    true
}

/// The header at the start of a region.
fn header(region: &Region) -> &Header {
    // SAFETY: every region is at least HEADER_SIZE bytes (checked when mapped), page-aligned
    // by mmap, and Header is all atomics and padding, valid for any bytes.
    unsafe { region.ptr().cast::<Header>().as_ref() }
}

impl Transport for ShmTransport {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge { len: msg.len(), max: self.max });
        }
        if self.broken || self.send_broken {
            return Err(Error::Disconnected);
        }
        let total = msg.len() as u64;
        let chunk = self.producer.max_record();
        if msg.len() <= chunk {
            return self.send_record(Tag::Whole, msg, total);
        }
        let mut chunks = msg.chunks(chunk).peekable();
        let mut tag = Tag::First;
        while let Some(part) = chunks.next() {
            if chunks.peek().is_none() {
                tag = Tag::Last;
            }
            if let Err(e) = self.send_record(tag, part, total) {
                // Part of the message is out: the peer could never make sense of more.
                self.send_broken = true;
                return Err(e);
            }
            tag = Tag::Middle;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_until(buf, None)
    }

    fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.recv_until(buf, Instant::now().checked_add(timeout))
    }

    fn kind(&self) -> Kind {
        Kind::Shm
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl Drop for ShmTransport {
    fn drop(&mut self) {
        header(&self.region).endpoints[self.side].closed.store(1, Ordering::Release);
        // The peer may sleep waiting for data (from us) or for space (that we will never
        // free): one bell covers both.
        self.peer_bell.ring();
    }
}

/// A message being written in place; see [`ShmTransport::reserve`].
#[derive(Debug)]
pub struct ShmSendSlot<'a> {
    transport: &'a mut ShmTransport,
    res: Reservation,
}

impl ShmSendSlot<'_> {
    /// Publishes the message to the peer.
    pub fn commit(self) {
        let len = self.len() as u64;
        self.transport.producer.commit(self.res, Tag::Whole, len);
        self.transport.peer_bell.ring();
    }
}

impl Deref for ShmSendSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.transport.producer.payload(&self.res)
    }
}

impl DerefMut for ShmSendSlot<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let res = self.res;
        self.transport.producer.payload_mut(&res)
    }
}

/// A received message read in place; see [`ShmTransport::recv_in_place`].
///
/// The bytes of a slot over the ring live in memory the peer maps: a peer that follows the
/// protocol never writes them before the slot is dropped, but a hostile or broken one could,
/// so copy them (or use `recv`) before acting on them if you do not trust the peer.
#[derive(Debug)]
pub struct ShmRecvSlot<'a> {
    transport: &'a mut ShmTransport,
    inner: Slot,
}

#[derive(Debug)]
enum Slot {
    Ring(Record),
    Owned(Vec<u8>),
}

impl Deref for ShmRecvSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            Slot::Ring(rec) => self.transport.consumer.payload(rec),
            Slot::Owned(msg) => msg,
        }
    }
}

impl Drop for ShmRecvSlot<'_> {
    fn drop(&mut self) {
        if let Slot::Ring(rec) = &self.inner {
            let rec = *rec;
            self.transport.release(&rec);
        }
    }
}

/// A named segment waiting for its peer; see [`ShmTransport::create_named`]. Dropping it
/// before a peer attached removes the name.
#[derive(Debug)]
pub struct NamedShm {
    name: String,
    region: Option<Region>,
    options: Options,
}

impl NamedShm {
    /// The segment's name, to pass to [`ShmTransport::open_named`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to `timeout` for a peer to attach, then removes the name and returns the
    /// connected endpoint.
    ///
    /// # Errors
    /// [`Error::Timeout`] if no peer attached in time. `accept` takes the `NamedShm`, so
    /// after a timeout it has been dropped and its name removed: create a new segment to wait
    /// again.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Error, Options, ShmTransport};
    ///
    /// let name = format!("switchboard-doc-accept-{}", std::process::id());
    /// let lonely = ShmTransport::create_named(&name, &Options::new())?;
    /// assert!(matches!(lonely.accept(Duration::from_millis(1)), Err(Error::Timeout)));
    /// assert!(!ShmTransport::remove_named(&name)?, "the name went with the NamedShm");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn accept(mut self, timeout: Duration) -> Result<ShmTransport> {
        let Some(region) = self.region.take() else {
            return Err(Error::Disconnected);
        };
        let h = header(&region);
        if !wait_attached(h, deadline::after(timeout)) {
            region::unlink_named(&self.name);
            return Err(Error::Timeout);
        }
        let peer = PeerWatch::pid(h.attacher_pid.load(Ordering::Acquire) as i32);
        region::unlink_named(&self.name);
        ShmTransport::new(region, 0, &self.options, peer)
    }
}

impl Drop for NamedShm {
    fn drop(&mut self) {
        if self.region.is_some() {
            region::unlink_named(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills `t`'s outgoing ring with empty messages until no more fit (nobody reads it).
    fn fill(t: &mut ShmTransport) {
        while let Some(res) = t.producer.try_reserve(0).unwrap() {
            t.producer.commit(res, Tag::Whole, 0);
        }
    }

    #[test]
    fn read_ahead_of_a_blocked_send_counts_every_message() {
        let options = Options::new().ring_capacity(1 << 16).max_message_size(1 << 12);
        let (mut a, mut b) = ShmTransport::pair(&options).unwrap();
        fill(&mut a);
        // The peer streams empty messages while `a` waits for room: 4,096 fit in its ring.
        fill(&mut b);
        for _ in 0..4 {
            assert!(a.poll(Want::Space(16)).unwrap().is_none(), "a's ring is full");
            fill(&mut b);
        }
        let limit = a.max.max(a.producer.max_record());
        assert!(a.inbox_cost <= limit + INBOX_OVERHEAD, "inbox cost {} above {limit}", a.inbox_cost);
        assert!(a.inbox.len() <= limit / INBOX_OVERHEAD + 1, "{} messages read ahead", a.inbox.len());
        assert!(!a.inbox.is_empty(), "reading ahead is what keeps two senders from deadlocking");
        // Every message read ahead is still delivered, in order, and the cost drains with them.
        let mut buf = vec![1];
        let queued = a.inbox.len();
        for _ in 0..queued {
            assert_eq!(a.recv_timeout(&mut buf, Duration::ZERO).unwrap(), 0);
        }
        assert_eq!(a.inbox_cost, 0);
    }
}
