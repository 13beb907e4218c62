//! The `shm` transport: two single-producer/single-consumer byte rings in one shared mapping,
//! one per direction, with spin, block or adaptive waiting.
//!
//! Parent and child share an anonymous sealed memfd (nothing to leak, ever); unrelated
//! processes meet through a `shm_open` name that the creator removes as soon as the peer has
//! attached. Messages up to a quarter of the ring travel as one record; larger ones in
//! fragments, reassembled on the other side, so the API and maximum message size are those of
//! every other transport. See `ring.rs` for the record format and `wait.rs` for waiting and
//! peer-death detection.

mod bounded;
mod child;
mod layout;
mod named;
mod ready;
mod region;
mod ring;
mod sealed;
mod slots;
mod split;
mod wait;
mod watch;

pub use named::NamedShm;
pub use sealed::SealedMemfd;
pub use slots::{ShmRecvSlot, ShmSendSlot};

pub(crate) use ring::fuzz_reader;

use std::collections::VecDeque;
use std::mem;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use layout::{HEADER_SIZE, Header};
use nix::sys::epoll::Epoll;
use ready::Doorbells;
use region::Region;
use ring::{Consumer, Producer, Record, Reservation, Tag};
use wait::{Bell, CHECK_EVERY, PeerWatch, Spin, SpinBudget, SpinStep};
use watch::Watch;

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
    /// The adaptive strategy's learned spin budget (at most `spin`).
    budget: SpinBudget,
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
    /// The fragments of an accepted message still to be written (see `bounded.rs`).
    outbox: Option<bounded::Outbox>,
    /// This endpoint's eventfd and its peer's (none for named segments); see `ready.rs`.
    doorbells: Option<Doorbells>,
    /// The readiness descriptor (an epoll set), and whether anyone asked for it: only then
    /// does a `recv` that times out arm it (see `ready.rs`).
    ready: Epoll,
    ready_used: AtomicBool,
    /// Whole endpoint, or one half of a split one (see `split.rs`).
    role: Role,
    /// For the halves of a split endpoint: how many are alive (the last one to go marks the
    /// endpoint closed).
    halves: Option<Arc<AtomicUsize>>,
    /// The watcher's registration for this endpoint's peer: `None` until the first sleep,
    /// then `Some(None)` if the peer cannot be watched (see `watch.rs`). Dropped before
    /// `region`.
    watch: Option<Option<Watch>>,
    /// Last field: dropped after everything that points into it (shared by split halves).
    region: Arc<Region>,
}

/// Which directions an endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Both,
    /// The sending half of a split endpoint: never reads ahead while waiting for space.
    Send,
    /// The receiving half of a split endpoint.
    Recv,
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

/// A message ready for the caller; see [`ShmTransport::next_message`].
enum Incoming {
    /// A whole-message record in the ring, not yet released.
    Ring(Record),
    /// A message read ahead while a `send` waited.
    Owned(Vec<u8>),
    /// A fragmented message just completed in `partial`.
    Reassembled,
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
        let [e0, e1] = ready::eventfd_pair()?;
        let (e0_dup, e1_dup) = (e0.try_clone()?, e1.try_clone()?);
        Ok((
            Self::new(region, 0, options, PeerWatch::in_process(), Some(Doorbells::for_side(0, [e0, e1])))?,
            Self::new(other, 1, options, PeerWatch::in_process(), Some(Doorbells::for_side(1, [e0_dup, e1_dup])))?,
        ))
    }

    /// The mapping's address and length, for tests that scribble on a live segment.
    pub(crate) fn mapping(&self) -> (usize, usize) {
        (self.region.ptr().as_ptr() as usize, self.region.len())
    }

    /// Builds side `side` (0: creator, 1: attacher) over a validated or fresh region.
    fn new(
        region: Region,
        side: usize,
        options: &Options,
        peer: PeerWatch,
        doorbells: Option<Doorbells>,
    ) -> Result<Self> {
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
        let ready = ready::readiness_set(doorbells.as_ref(), &peer)?;
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
            budget: SpinBudget::new(options.spin_duration),
            my_cpus,
            machine_has_one: wait::online_cpus() == 1,
            partial: Vec::new(),
            partial_total: None,
            inbox: VecDeque::new(),
            inbox_cost: 0,
            broken: false,
            send_broken: false,
            ready,
            ready_used: AtomicBool::new(false),
            outbox: None,
            doorbells,
            role: Role::Both,
            halves: None,
            watch: None,
            region: Arc::new(region),
        })
    }

    /// Splits into a sending half (the outgoing ring) and a receiving half (the incoming ring)
    /// for two threads, as [`Transport::split`].
    ///
    /// # Errors
    /// [`Error::Io`] if a descriptor cannot be duplicated.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, ShmTransport, Transport};
    ///
    /// let (a, mut b) = ShmTransport::pair(&Options::new())?;
    /// let (mut tx, mut rx) = a.split()?;
    /// let echo = std::thread::spawn(move || -> switchboard::Result<()> {
    ///     let mut buf = Vec::new();
    ///     for _ in 0..1000 {
    ///         b.recv(&mut buf)?;
    ///         b.send(&buf)?;
    ///     }
    ///     Ok(())
    /// });
    /// let reader = std::thread::spawn(move || -> switchboard::Result<u64> {
    ///     let (mut buf, mut sum) = (Vec::new(), 0);
    ///     for _ in 0..1000 {
    ///         rx.recv(&mut buf)?;
    ///         sum += u64::from(buf[0]);
    ///     }
    ///     Ok(sum)
    /// });
    /// for i in 0..1000u32 {
    ///     tx.send(&[(i % 256) as u8])?;
    /// }
    /// echo.join().unwrap()?;
    /// assert_eq!(reader.join().unwrap()?, (0..1000u64).map(|i| i % 256).sum::<u64>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn split(self) -> Result<(crate::SendHalf, crate::RecvHalf)> {
        crate::split::shm(self)
    }

    /// The wait strategy in use.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// The next message, waiting until `deadline`: from the inbox, whole in the ring (not yet
    /// released), or just reassembled from fragments in `partial`. The one receive loop behind
    /// `recv`, `recv_timeout` and `recv_in_place`.
    fn next_message(&mut self, deadline: Option<Instant>) -> Result<Incoming> {
        loop {
            if let Some(msg) = self.inbox.pop_front() {
                self.inbox_cost -= msg.len() + INBOX_OVERHEAD;
                return Ok(Incoming::Owned(msg));
            }
            if self.broken {
                return Err(Error::Disconnected);
            }
            match self.advance()? {
                Some(Next::Whole(rec)) => return Ok(Incoming::Ring(rec)),
                Some(Next::Message) => return Ok(Incoming::Reassembled),
                None => {
                    self.wait(Want::Data, deadline)?;
                }
            }
        }
    }

    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<usize> {
        if let Some(rec) = self.quick_whole() {
            return self.take_whole(&rec, buf);
        }
        self.recv_waiting(buf, deadline)
    }

    /// The common case of a receive, in few instructions: a whole message waiting in the
    /// ring, checked as `advance` checks it (at 64 bytes the layered path cost about 280
    /// instructions a call). `None` for anything else (nothing yet, fragments, padding,
    /// read-ahead, an error): the full path then looks again.
    #[inline(always)]
    fn quick_whole(&mut self) -> Option<Record> {
        if self.inbox.is_empty()
            && self.partial_total.is_none()
            && !self.broken
            && let Ok(Some(rec)) = self.consumer.peek()
            && rec.tag == Tag::Whole
            && rec.total == rec.len as u64
            && rec.len <= self.max
        {
            return Some(rec);
        }
        None
    }

    /// Copies a whole-message record into `buf` and releases it.
    #[inline]
    fn take_whole(&mut self, rec: &Record, buf: &mut Vec<u8>) -> Result<usize> {
        buf.clear();
        let read = self.consumer.read_into(rec, buf);
        self.release(rec);
        if let Err(e) = read {
            self.broken = true;
            return Err(e);
        }
        Ok(rec.len)
    }

    /// For a receive that found no whole message ready: if nothing at all has arrived (no
    /// message read ahead, no fragment pending, an empty ring), waits, then takes the message
    /// that ended the wait by the quick path if it is a whole one. `Ok(None)`: the caller goes
    /// the full way (`next_message`), which handles everything else. Spinning 64-byte round
    /// trips between two threads, builds interleaved: medians 142-152 ns in four builds with
    /// this against 159 in two without (the same source built twice differed by up to 10 ns).
    ///
    /// # Errors
    /// As `wait`; an impossible published tail breaks the connection, as `advance` would.
    #[inline]
    fn wait_for_whole(&mut self, deadline: Option<Instant>) -> Result<Option<Record>> {
        if !self.inbox.is_empty() || self.partial_total.is_some() || self.broken {
            return Ok(None);
        }
        if self.consumer.has_data().inspect_err(|_| self.broken = true)? {
            return Ok(None);
        }
        self.wait(Want::Data, deadline)?;
        Ok(self.quick_whole())
    }

    /// [`recv_until`](Self::recv_until) when no whole message is ready in the ring.
    #[inline(never)]
    fn recv_waiting(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<usize> {
        if let Some(rec) = self.wait_for_whole(deadline)? {
            return self.take_whole(&rec, buf);
        }
        match self.next_message(deadline)? {
            Incoming::Ring(rec) => self.take_whole(&rec, buf),
            Incoming::Owned(msg) => {
                *buf = msg;
                Ok(buf.len())
            }
            Incoming::Reassembled => {
                // The caller's old buffer becomes the next reassembly buffer.
                mem::swap(buf, &mut self.partial);
                self.partial.clear();
                Ok(buf.len())
            }
        }
    }

    fn release(&mut self, rec: &Record) {
        self.consumer.release(rec);
        self.producer.received();
        self.ring_peer_space();
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
                // A sending half has no incoming direction: its receiving half reads.
                let limit = if self.role == Role::Both { self.max.max(self.producer.max_record()) } else { 0 };
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
                if self.peer_done_sending() {
                    if self.consumer.has_data()? {
                        return Ok(Some(Got::Data));
                    }
                    if !self.peer_closed() && self.partial_total.is_none() {
                        // Only its sending half is gone: the peer still reads what we send.
                        return Err(Error::Disconnected);
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

    /// Whether the peer will send nothing more: it was dropped, or its sending half was
    /// (acquire, as [`peer_closed`](Self::peer_closed)).
    fn peer_done_sending(&self) -> bool {
        let line = &header(&self.region).endpoints[1 - self.side];
        line.closed.load(Ordering::Acquire) != 0 || line.done_sending.load(Ordering::Acquire) != 0
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
        let adaptive = self.strategy == WaitStrategy::Adaptive;
        // When spinning has not been paying (the budget is low: the machine is busy), adaptive
        // does not spin for a peer that is asleep (or woken but not yet on a CPU): it answers
        // no sooner than a wake-up, and it may need the very CPU a spinner would hold. On a
        // quiet machine the budget stays high and the spin covers the peer's wake-up.
        if adaptive && self.budget.low() && self.peer_bell.owner_asleep() {
            return self.sleep_until(want, deadline);
        }
        let budget = if adaptive { self.budget.get() } else { self.spin };
        let mut one_cpu = wait::one_cpu_for_both(self.machine_has_one, self.my_cpus, peer_cpus);
        if one_cpu && !self.machine_has_one && self.strategy != WaitStrategy::Block {
            // Masks are read when endpoints are made; threads are often pinned afterwards
            // (a pair made in one thread, each end then pinned to its own core). Spinning by
            // yielding when we need not costs 3x at 64 bytes, so look again first: a syscall
            // only in the case that would yield or sleep anyway.
            one_cpu = self.refresh_cpus(peer_cpus);
        }
        let mut spin = Spin::new(self.strategy, budget, one_cpu);
        loop {
            match spin.step(deadline) {
                SpinStep::Again => {}
                SpinStep::Check => {
                    if !self.peer.alive() {
                        return self.last_look(want);
                    }
                    // A long spin looks again too, in case both ends now share one CPU.
                    if !self.machine_has_one {
                        let peer_cpus = header(&self.region).endpoints[1 - self.side].cpus.load(Ordering::Relaxed);
                        spin.set_one_cpu(self.refresh_cpus(peer_cpus));
                    }
                }
                SpinStep::Sleep => break,
            }
            if let Some(got) = self.poll(want)? {
                if adaptive {
                    self.budget.learn(&spin, true, true);
                }
                return Ok(got);
            }
        }
        if adaptive {
            self.budget.learn(&spin, false, !self.peer_bell.owner_asleep());
        }
        self.sleep_until(want, deadline)
    }

    /// Reads this thread's CPUs again and publishes them if they changed; whether this end and
    /// the peer (by the mask it published) can run only on the same one CPU.
    fn refresh_cpus(&mut self, peer_cpus: u64) -> bool {
        let mine = wait::allowed_cpus();
        if mine != self.my_cpus {
            self.my_cpus = mine;
            header(&self.region).endpoints[self.side].cpus.store(mine, Ordering::Relaxed);
        }
        wait::one_cpu_for_both(self.machine_has_one, mine, peer_cpus)
    }

    /// The sleeping phase of [`wait`](Self::wait): on the bell, in slices of at most
    /// [`CHECK_EVERY`], checking the peer's liveness after each.
    fn sleep_until(&mut self, want: Want, deadline: Option<Instant>) -> Result<Got> {
        loop {
            let sleep = self.my_bell.prepare(matches!(want, Want::Space(_)));
            if let Some(got) = self.poll(want)? {
                return Ok(got);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                // Someone polls this endpoint: arm its eventfd, and look once more.
                if self.arm_readiness(want)? {
                    if !self.peer.alive() {
                        return self.last_look(want);
                    }
                    continue;
                }
                return Err(Error::Timeout);
            }
            // A peer that the watcher watches (or one in this process) rings us when it is
            // gone: the sleep lasts until the deadline, and with none it needs no timeout
            // (see `watch.rs`). Otherwise slices of `CHECK_EVERY` bound the time to notice.
            if self.watched_peer_gone() && !self.peer.alive() {
                // Reported while we were awake: no sleep at all.
                return self.last_look(want);
            }
            let timeout = match (deadline, self.watched()) {
                (None, true) => None,
                (None, false) => Some(CHECK_EVERY),
                (Some(d), true) => Some(d - now),
                (Some(d), false) => Some((d - now).min(CHECK_EVERY)),
            };
            // A ring says the peer ran just now: ask the kernel about it only after a silence
            // (a syscall per wake-up otherwise), or when the watcher says it is gone.
            let rung = sleep.sleep(timeout)?;
            if (!rung || self.watched_peer_gone()) && !self.peer.alive() {
                return self.last_look(want);
            }
        }
    }

    /// Whether the peer rings us when it is gone, so that a sleep needs no timeout to notice:
    /// it is in this process (its drop rings), or the watcher watches it (registered here the
    /// first time). Not once the watcher has reported the peer gone: it watches it no more.
    fn watched(&mut self) -> bool {
        if self.peer.is_in_process() {
            return true;
        }
        if self.watch.is_none() {
            let registered = self.peer.gone_fd().and_then(|fd| Watch::register(fd, self.my_bell, &self.region));
            if registered.is_some() || !Watch::worth_retrying() {
                self.watch = Some(registered);
            }
        }
        matches!(&self.watch, Some(Some(w)) if w.usable() && !w.peer_gone())
    }

    /// Whether the watcher saw the peer's descriptor poll readable.
    fn watched_peer_gone(&self) -> bool {
        matches!(&self.watch, Some(Some(w)) if w.peer_gone())
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

/// The header at the start of a region.
fn header(region: &Region) -> &Header {
    // SAFETY: every region is at least HEADER_SIZE bytes (checked when mapped), page-aligned
    // by mmap, and Header is all atomics and padding, valid for any bytes.
    unsafe { region.ptr().cast::<Header>().as_ref() }
}

impl Transport for ShmTransport {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, None)
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_until(msg, deadline::after(timeout))
    }

    fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        if self.flush_until(deadline::after(timeout))? { Ok(()) } else { Err(Error::Timeout) }
    }

    fn pending_send(&self) -> usize {
        self.pending_bytes()
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_until(buf, None)
    }

    fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.recv_until(buf, deadline::after(timeout))
    }

    fn kind(&self) -> Kind {
        Kind::Shm
    }

    fn max_message_size(&self) -> usize {
        self.max
    }

    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.readiness_fd())
    }

    fn split(self: Box<Self>) -> Result<(crate::SendHalf, crate::RecvHalf)> {
        crate::split::shm(*self)
    }
}

impl AsFd for ShmTransport {
    /// The readiness descriptor ([`Transport::ready_fd`]). Endpoints of a named segment
    /// cannot be woken by their peer: theirs always polls readable.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.readiness_fd()
    }
}

impl Drop for ShmTransport {
    fn drop(&mut self) {
        let line = &header(&self.region).endpoints[self.side];
        if self.role == Role::Send {
            line.done_sending.store(1, Ordering::Release);
        }
        // The last half of a split endpoint closes it.
        if self.halves.as_ref().is_none_or(|alive| alive.fetch_sub(1, Ordering::AcqRel) == 1) {
            line.closed.store(1, Ordering::Release);
        }
        // The peer may sleep waiting for data (from us) or for space (that we will never
        // free): one bell covers both.
        self.ring_peer();
    }
}

#[cfg(test)]
mod tests {
    use super::bounded::FRAGMENT;
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

    /// Publishes one record as a (possibly broken) peer would.
    fn put(t: &mut ShmTransport, tag: Tag, bytes: &[u8], total: u64) {
        let res = t.producer.try_reserve(bytes.len()).unwrap().unwrap();
        t.producer.write(&res, bytes);
        t.producer.commit(res, tag, total);
    }

    #[test]
    fn records_the_quick_receive_cannot_take_get_the_full_checks() {
        type Check = fn(&Error) -> bool;
        type Case = (&'static str, &'static [(Tag, usize, u64)], Check);
        let corrupt: Check = |e| matches!(e, Error::CorruptSegment(_));
        let too_large: Check = |e| matches!(e, Error::FrameTooLarge { len: 2000, max: 1024 });
        let cases: [Case; 4] = [
            ("a whole record whose total is not its length", &[(Tag::Whole, 8, 9)], corrupt),
            ("a whole record above the maximum", &[(Tag::Whole, 2000, 2000)], too_large),
            ("a last fragment with no first", &[(Tag::Last, 8, 8)], corrupt),
            ("a whole record inside a fragmented message", &[(Tag::First, 8, 16), (Tag::Whole, 8, 8)], corrupt),
        ];
        // Each case twice: through the copying receive, then through the in-place one.
        for ((what, records, check), in_place) in cases.iter().flat_map(|case| [(case, false), (case, true)]) {
            let options = Options::new().ring_capacity(1 << 16).max_message_size(1024);
            let (mut a, mut b) = ShmTransport::pair(&options).unwrap();
            a.send(b"before").unwrap();
            for &(tag, len, total) in *records {
                put(&mut a, tag, &vec![3; len], total);
            }
            let mut buf = Vec::new();
            let err = if in_place {
                assert_eq!(b.recv_in_place_timeout(Duration::ZERO).unwrap().len(), 6, "{what}: the message before");
                b.recv_in_place_timeout(Duration::ZERO).unwrap_err()
            } else {
                assert_eq!(b.recv_timeout(&mut buf, Duration::ZERO).unwrap(), 6, "{what}: the message before");
                b.recv_timeout(&mut buf, Duration::ZERO).unwrap_err()
            };
            assert!(check(&err), "{what} (in place: {in_place}): {err:?}");
            assert!(matches!(b.recv(&mut buf), Err(Error::Disconnected)), "{what}: the connection is over");
        }
    }

    #[test]
    fn the_quick_send_and_reserve_still_see_a_peer_gone() {
        let (mut a, b) = ShmTransport::pair(&Options::new()).unwrap();
        a.send(b"while it lives").unwrap();
        drop(b);
        assert!(matches!(a.send(b"after"), Err(Error::Disconnected)));
        assert!(matches!(a.reserve(5), Err(Error::Disconnected)));
    }

    #[test]
    fn a_sleep_with_no_deadline_ends_when_the_watcher_sees_the_peer_gone() {
        // A pair in this process stands in for two: `a` watches a socket for its peer, as
        // after a spawn, and the test closes the other end as a dying peer's kernel would.
        let options = Options::new().wait_strategy(WaitStrategy::Block);
        let (mut a, b) = ShmTransport::pair(&options).unwrap();
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_peer(PeerWatch::socket(std::os::fd::OwnedFd::from(ours)));
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let got = a.recv(&mut buf);
            let _ = done.send((got, a.watched_peer_gone(), a.watch.is_some()));
        });
        drop(theirs);
        let (got, gone, registered) = result.recv_timeout(Duration::from_secs(30)).expect("recv never returned");
        assert!(matches!(got, Err(Error::Disconnected)), "{got:?}");
        assert!(registered && gone, "the watcher, not a timeout, ended the sleep");
        drop(b);
    }

    /// Sets this thread's CPUs to the bit mask `mask`.
    fn set_cpus(mask: u64) {
        let mut set = nix::sched::CpuSet::new();
        for cpu in (0..64).filter(|c| mask & (1 << c) != 0) {
            set.set(cpu).unwrap();
        }
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
    }

    #[test]
    fn a_pair_made_on_one_cpu_and_then_spread_does_not_yield() {
        let all = wait::allowed_cpus();
        if all.count_ones() < 2 {
            eprintln!("skipped: this thread may run on {} CPU(s); the test needs two", all.count_ones());
            return;
        }
        // Both ends are made while this thread may run on one CPU only: both publish it.
        set_cpus(all & all.wrapping_neg());
        let options = Options::new().wait_strategy(WaitStrategy::Spin);
        let (mut a, b) = ShmTransport::pair(&options).unwrap();
        set_cpus(all);
        let published = |t: &ShmTransport| header(&t.region).endpoints[t.side].cpus.load(Ordering::Relaxed);
        assert_eq!(published(&a).count_ones(), 1, "made on one CPU");
        // The first wait that would yield looks at the CPUs again.
        let mut buf = Vec::new();
        assert!(matches!(a.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)));
        assert_eq!(published(&a), all, "a wait publishes the CPUs the thread may use now");
        assert!(!wait::one_cpu_for_both(a.machine_has_one, a.my_cpus, published(&b)));
    }

    /// The records waiting in `t`'s incoming ring, as (tag, length), consumed.
    fn records(t: &mut ShmTransport) -> Vec<(Tag, usize)> {
        let mut seen = Vec::new();
        while let Some(rec) = t.consumer.peek().unwrap() {
            seen.push((rec.tag, rec.len));
            t.consumer.release(&rec);
        }
        seen
    }

    #[test]
    fn a_waiting_peer_gets_small_fragments_and_a_busy_one_whole_records() {
        let options = Options::new().ring_capacity(4 << 20);
        let (mut a, mut b) = ShmTransport::pair(&options).unwrap();
        let big = vec![7u8; 200_000];
        // `b` has read everything: the message goes in fragments it can copy out one by one.
        a.send(&big).unwrap();
        let tail = 200_000 - 3 * FRAGMENT;
        let expected = [(Tag::First, FRAGMENT), (Tag::Middle, FRAGMENT), (Tag::Middle, FRAGMENT), (Tag::Last, tail)];
        assert_eq!(records(&mut b), expected);
        // `b` has not read the message before: the next goes whole, in the fewest records.
        a.send(b"unread").unwrap();
        a.send(&big).unwrap();
        assert_eq!(records(&mut b), [(Tag::Whole, 6), (Tag::Whole, 200_000)]);
        // Above a quarter of the ring, a busy peer gets quarter-ring fragments.
        a.send(b"unread").unwrap();
        a.send(&vec![1u8; 1 << 20]).unwrap();
        let quarter = a.producer.max_record();
        let last = (1 << 20) - quarter;
        assert_eq!(records(&mut b), [(Tag::Whole, 6), (Tag::First, quarter), (Tag::Last, last)]);
    }
}
