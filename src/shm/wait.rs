//! How a shared-memory endpoint waits: spinning, futex sleep, peer-death checks.
//!
//! Sleeping uses `futex(2)` on a word inside the shared mapping, without
//! `FUTEX_PRIVATE_FLAG` (a private futex is keyed by the address space and would never see a
//! wake from the other process). nix has no futex wrapper, so this is a two-call `libc::syscall`
//! wrapper. The waiter announces itself in a `sleeping` word before it sleeps, so the waker
//! makes the wake syscall only when someone sleeps: a busy stream makes no syscalls.
//!
//! A peer that dies without dropping its endpoint never rings the bell, so every sleep is
//! bounded by [`CHECK_EVERY`], after which the waiter asks the kernel whether the peer process
//! still exists: through a pidfd (`pidfd_open(2)`, readable once the process has exited, immune
//! to pid reuse), or `kill(pid, 0)` on kernels without it.

use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::shm::layout::WakeLine;
use crate::transport::WaitStrategy;

/// How often a waiter checks that the peer process is alive (bounds death detection).
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(10);

/// Sleeps while `word` holds `expected`, at most `timeout`.
///
/// # Errors
/// Any error but the three that mean "go and look again" (`EINTR`, `EAGAIN`: the word had
/// changed, `ETIMEDOUT`), which are `Ok`.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> std::io::Result<()> {
    let ts = timeout.map(|timeout| libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 in a shared mapping; FUTEX_WAIT only reads it and
    // `ts` (or null: no timeout) outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, ts_ptr) };
    if ret == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINTR | libc::EAGAIN | libc::ETIMEDOUT) => Ok(()),
        _ => Err(err),
    }
}

/// Wakes every waiter on `word`, in whichever process they are: the two halves of a split
/// endpoint may both sleep on its bell, one for data and one for space, and waking only one
/// could pick the wrong one.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access memory through it.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// An endpoint's doorbell in the shared header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bell(NonNull<WakeLine>);

// SAFETY: points into a shared mapping with no thread affinity, kept alive by the transport.
unsafe impl Send for Bell {}

impl Bell {
    /// # Safety
    /// `line` must point to a `WakeLine` in a mapping that outlives every use of the bell.
    pub(crate) unsafe fn new(line: NonNull<WakeLine>) -> Self {
        Bell(line)
    }

    fn line(&self) -> &WakeLine {
        // SAFETY: `new`'s contract: aligned, live, and all atomics.
        unsafe { self.0.as_ref() }
    }

    /// Rings the bell if its owner said it sleeps. Call after publishing: the fence orders
    /// the publication before the read of `sleeping`, pairing with the fence in
    /// [`prepare`](Bell::prepare). Returns whether the owner polls its readiness descriptor
    /// (the flag is taken: the caller must write the owner's eventfd).
    #[inline]
    pub(crate) fn ring(&self) -> bool {
        self.ring_if(|line| line.sleeping.load(Ordering::Relaxed) != 0)
    }

    /// Like [`ring`](Bell::ring), after freeing space: wakes only an owner that waits for
    /// space.
    #[inline]
    pub(crate) fn ring_space(&self) -> bool {
        self.ring_if(|line| line.space_sleeping.load(Ordering::Relaxed) != 0)
    }

    /// One `FUTEX_WAKE` per sleep: the first ring after the owner armed the bell takes the
    /// flag and wakes every sleeper; later rings, until the owner arms it again (it sleeps
    /// again), find it down and make no syscall. Without this a sender streaming to a
    /// receiver that had caught up paid a wake-up for every message published during the
    /// receiver's wake-up, which kept it slow enough for the receiver to catch up again
    /// (500,000 messages to a blocking receiver: 118,000-150,000 sleeps before, 57,000-78,000
    /// with this).
    #[inline]
    fn ring_if(&self, asleep: impl FnOnce(&WakeLine) -> bool) -> bool {
        fence(Ordering::SeqCst);
        let line = self.line();
        if asleep(line) && line.armed.load(Ordering::Relaxed) != 0 && line.armed.swap(0, Ordering::Relaxed) != 0 {
            line.seq.fetch_add(1, Ordering::Release);
            futex_wake(&line.seq);
        }
        line.polled.load(Ordering::Relaxed) != 0 && line.polled.swap(0, Ordering::Relaxed) != 0
    }

    /// Wakes the bell's owner whether or not it announced a sleep (the watcher, when the
    /// owner's peer died: see `watch.rs`).
    pub(crate) fn wake(&self) {
        let line = self.line();
        line.seq.fetch_add(1, Ordering::Release);
        futex_wake(&line.seq);
    }

    /// Whether the bell's owner is asleep on it, or woken but not yet running again (it
    /// lowers the count itself once it runs).
    #[inline]
    pub(crate) fn owner_asleep(&self) -> bool {
        self.line().sleeping.load(Ordering::Relaxed) != 0
    }

    /// Announces that our owner will wait in `poll` on its readiness descriptor. As with
    /// [`prepare`](Bell::prepare), the caller must then look at the rings once more: whatever
    /// the peer published before it saw the flag is visible to that look.
    pub(crate) fn arm_poll(&self) {
        self.line().polled.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Announces that we are about to sleep on our own bell. The caller must then look at
    /// the rings once more before [`Sleep::sleep`]: whatever the peer published before it saw
    /// our announcement is visible to that look (both sides fence between store and load).
    /// `for_space`: the owner waits for room to send (and for data too: a whole endpoint
    /// reads ahead while it waits to send).
    pub(crate) fn prepare(&self, for_space: bool) -> Sleep {
        let line = self.line();
        let seq = line.seq.load(Ordering::Acquire);
        line.sleeping.fetch_add(1, Ordering::Relaxed);
        if for_space {
            line.space_sleeping.fetch_add(1, Ordering::Relaxed);
        }
        line.armed.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Sleep { bell: *self, seq, for_space }
    }
}

/// The sleeping half of the doorbell protocol; clears the announcement on drop.
pub(crate) struct Sleep {
    bell: Bell,
    seq: u32,
    for_space: bool,
}

impl Sleep {
    /// Sleeps until rung or `timeout` (`None`: until rung); whether the bell was rung (since
    /// [`Bell::prepare`]).
    ///
    /// # Errors
    /// As [`futex_wait`].
    pub(crate) fn sleep(self, timeout: Option<Duration>) -> std::io::Result<bool> {
        let word = &self.bell.line().seq;
        futex_wait(word, self.seq, timeout)?;
        // Acquire: whoever rang published what it did before (the watcher's verdict).
        Ok(word.load(Ordering::Acquire) != self.seq)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // A counter, not a flag: the other half of a split endpoint may still sleep. The peer
        // can scribble on it; the worst is a missed or needless wake-up, which `CHECK_EVERY`
        // bounds.
        let line = self.bell.line();
        line.sleeping.fetch_sub(1, Ordering::Relaxed);
        if self.for_space {
            line.space_sleeping.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The spinning phase of a wait. Reads the clock only every 64 rounds, starting with the 64th,
/// so a wait that ends within a few hundred nanoseconds never pays for a clock read.
pub(crate) struct Spin {
    strategy: WaitStrategy,
    budget: Duration,
    yield_cpu: bool,
    /// When spinning stops (None: never), set at the first clock read.
    until: Option<Option<Instant>>,
    next_check: Option<Instant>,
    rounds: u32,
    /// The last clock read, to notice that the thread was taken off its CPU meanwhile.
    last_read: Option<Instant>,
    /// The spin ended because its budget ran out (not the caller's deadline).
    exhausted: bool,
    /// Two clock reads 64 rounds apart were [`PREEMPTED_GAP`] apart or more: the scheduler
    /// ran something else on this CPU while we spun.
    preempted: bool,
}

/// A gap between two clock reads of a spin (64 rounds, normally a microsecond or two) that
/// means the spinner was descheduled: the machine has more runnable threads than CPUs.
const PREEMPTED_GAP: Duration = Duration::from_micros(20);

/// The adaptive strategy's spin budget, learned from recent waits (as glibc's adaptive
/// mutexes and parking_lot learn theirs).
///
/// Spinning pays when the peer answers while it runs on another CPU; it hurts when the peer
/// waits for a CPU, because the spinner holds one (on a busy 2-CPU machine the peer's reply
/// then waits for the spin to run out, every round trip). So: a spin that succeeds adds
/// [`SpinBudget::STEP`] to the budget (up to the configured maximum); a spin that runs out,
/// or during which the spinner was descheduled (the machine is oversubscribed), halves it.
/// On a quiet machine successes dominate and the budget stays at the maximum; on a busy one
/// it falls to [`SpinBudget::FLOOR`], and while it is [`low`](SpinBudget::low) the endpoint
/// does not spin at all for a peer that is asleep (see `ShmTransport::wait`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpinBudget {
    current: Duration,
    max: Duration,
}

impl SpinBudget {
    /// The least budget: enough for a round trip between two running cores (about 0.3 µs
    /// here), so that the budget can learn to grow again.
    pub(crate) const FLOOR: Duration = Duration::from_micros(1);
    /// What each successful spin adds.
    pub(crate) const STEP: Duration = Duration::from_nanos(500);
    /// Below this the budget is low: recent spins did not pay.
    pub(crate) const LOW: Duration = Duration::from_micros(4);

    pub(crate) fn new(max: Duration) -> Self {
        SpinBudget { current: max, max }
    }

    /// The budget for the next spin.
    pub(crate) fn get(&self) -> Duration {
        self.current
    }

    /// Whether recent spins failed, so that the budget is near its floor.
    pub(crate) fn low(&self) -> bool {
        self.current < Self::LOW.min(self.max)
    }

    /// Learns from a spin that ended: `succeeded` if what it waited for came while spinning.
    ///
    /// A spin that ran out while the peer was awake (not asleep on its bell) and this spinner
    /// kept its CPU is a peer busy on another CPU (a large copy, say): the next wait may well
    /// end within the budget, so that costs only [`STEP`](SpinBudget::STEP). A spin that ran
    /// out while the peer slept, or that was descheduled, halves the budget.
    pub(crate) fn learn(&mut self, spin: &Spin, succeeded: bool, peer_awake: bool) {
        let floor = Self::FLOOR.min(self.max);
        if succeeded && !spin.preempted {
            self.current = (self.current + Self::STEP).min(self.max);
        } else if spin.preempted || (spin.exhausted && !peer_awake) {
            self.current = (self.current / 2).max(floor);
        } else if spin.exhausted {
            self.current = self.current.saturating_sub(Self::STEP).max(floor);
        }
    }
}

/// What the spinner says after a round.
pub(crate) enum SpinStep {
    /// Keep polling.
    Again,
    /// Time to check the peer's liveness, then keep polling.
    Check,
    /// The spin budget is spent: sleep.
    Sleep,
}

impl Spin {
    pub(crate) fn new(strategy: WaitStrategy, budget: Duration, single_cpu: bool) -> Self {
        Spin {
            strategy,
            budget,
            yield_cpu: single_cpu,
            until: None,
            next_check: None,
            rounds: 0,
            last_read: None,
            exhausted: false,
            preempted: false,
        }
    }

    /// Whether the two ends share one CPU (learned during the spin): then each round yields,
    /// and the adaptive strategy stops spinning.
    pub(crate) fn set_one_cpu(&mut self, one_cpu: bool) {
        self.yield_cpu = one_cpu;
    }

    /// One spin round.
    #[inline]
    pub(crate) fn step(&mut self, deadline: Option<Instant>) -> SpinStep {
        // Block never spins; Adaptive does not spin on one CPU, where the peer cannot run
        // while we do.
        if self.strategy == WaitStrategy::Block || (self.strategy == WaitStrategy::Adaptive && self.yield_cpu) {
            return SpinStep::Sleep;
        }
        if self.yield_cpu {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
        self.rounds = self.rounds.wrapping_add(1);
        if !self.rounds.is_multiple_of(64) {
            return SpinStep::Again;
        }
        let now = Instant::now();
        if let Some(last) = self.last_read.replace(now)
            && now.saturating_duration_since(last) >= PREEMPTED_GAP
        {
            self.preempted = true;
            if self.strategy == WaitStrategy::Adaptive {
                // Someone else needed this CPU (perhaps the peer): give it up.
                self.exhausted = true;
                return SpinStep::Sleep;
            }
        }
        let until = *self.until.get_or_insert_with(|| match self.strategy {
            WaitStrategy::Spin => None,
            _ => Some(now.checked_add(self.budget).unwrap_or(now)),
        });
        if deadline.is_some_and(|d| now >= d) {
            return SpinStep::Sleep;
        }
        if until.is_some_and(|u| now >= u) {
            self.exhausted = true;
            return SpinStep::Sleep;
        }
        let next_check = *self.next_check.get_or_insert(now + CHECK_EVERY);
        if now >= next_check {
            self.next_check = Some(now + CHECK_EVERY);
            return SpinStep::Check;
        }
        SpinStep::Again
    }
}

/// The CPUs this thread may run on, as a bit mask of the first 64 (0 if it cannot be read or
/// the machine has more).
pub(crate) fn allowed_cpus() -> u64 {
    let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return 0;
    };
    let mut mask = 0u64;
    for cpu in 0..nix::sched::CpuSet::count() {
        if set.is_set(cpu).unwrap_or(false) {
            if cpu >= 64 {
                return 0;
            }
            mask |= 1 << cpu;
        }
    }
    mask
}

/// Whether spinning is futile because both endpoints can only run on the same single CPU (or
/// the machine has one): the spinner would keep the peer off the CPU it waits for.
///
/// Each endpoint publishes its affinity mask in the header; `0` (unknown, or a peer that has
/// not attached yet) counts as "anywhere". Our own affinity alone says nothing: two endpoints
/// pinned to two different cores spin very well.
pub(crate) fn one_cpu_for_both(machine_has_one: bool, mine: u64, peer: u64) -> bool {
    machine_has_one || (mine.count_ones() == 1 && peer == mine)
}

/// CPUs online on this machine.
pub(crate) fn online_cpus() -> usize {
    // SAFETY: sysconf has no memory arguments.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 { n as usize } else { 1 }
}

/// Whether the peer process still runs.
#[derive(Debug, Default)]
pub(crate) struct PeerWatch {
    /// A pidfd, or a Unix socket to the peer that carries nothing more: either becomes
    /// readable when the peer is gone (the kernel closes a dead process's sockets).
    readable_when_gone: Option<OwnedFd>,
    pid: Option<i32>,
    /// The peer is in this process: it rings our bell when it is dropped.
    in_process: bool,
}

impl PeerWatch {
    /// Watches nothing yet (the peer process is still to be started).
    pub(crate) fn none() -> Self {
        PeerWatch::default()
    }

    /// Watches nothing: the peer is in this process (`pair`) and its drop is the only signal.
    pub(crate) fn in_process() -> Self {
        PeerWatch { in_process: true, ..PeerWatch::default() }
    }

    /// Whether the peer is in this process, so that a sleep needs no timeout to notice that
    /// it is gone (its drop rings the bell).
    pub(crate) fn is_in_process(&self) -> bool {
        self.in_process
    }

    /// The descriptor that polls readable once the peer is gone, owned, for the watcher to
    /// duplicate (see `watch.rs`).
    pub(crate) fn gone_fd(&self) -> Option<&OwnedFd> {
        self.readable_when_gone.as_ref()
    }

    /// Watches process `pid`.
    pub(crate) fn pid(pid: i32) -> Self {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is
        // passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let pidfd = (fd >= 0).then(|| {
            // SAFETY: the kernel just returned this fd to us; nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(fd as i32) }
        });
        PeerWatch { readable_when_gone: pidfd, pid: Some(pid), in_process: false }
    }

    /// Watches the process at the other end of `socket`, a connected Unix socket on which
    /// nothing more will be sent: it reads end-of-file once that process closed it or died.
    /// No pid is involved, so pid reuse cannot fool it.
    pub(crate) fn socket(socket: OwnedFd) -> Self {
        PeerWatch { readable_when_gone: Some(socket), pid: None, in_process: false }
    }

    /// A second watch of the same peer (a duplicate descriptor), for the other half of a
    /// split endpoint.
    pub(crate) fn try_clone(&self) -> std::io::Result<Self> {
        let readable_when_gone = match &self.readable_when_gone {
            Some(fd) => Some(fd.try_clone()?),
            None => None,
        };
        Ok(PeerWatch { readable_when_gone, pid: self.pid, in_process: self.in_process })
    }

    /// The descriptor that polls readable once the peer is gone, if there is one.
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.readable_when_gone.as_ref().map(std::os::fd::AsFd::as_fd)
    }

    /// False once the peer process has exited (or been killed).
    pub(crate) fn alive(&self) -> bool {
        if let Some(fd) = &self.readable_when_gone {
            let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(fd), PollFlags::POLLIN)];
            return !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0);
        }
        match self.pid {
            Some(pid) => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(nix::errno::Errno::ESRCH),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both halves of a split endpoint sleep on one bell: the second announcement must not
    /// be erased by the first sleeper's wake-up, or the peer would stop ringing for the other.
    #[test]
    fn two_sleepers_on_one_bell_are_both_counted() {
        let line = line();
        // SAFETY: `line` outlives the bell, which is dropped at the end of this test first.
        let bell = unsafe { Bell::new(NonNull::from(&*line)) };
        let first = bell.prepare(false);
        let second = bell.prepare(true);
        assert_eq!(line.sleeping.load(Ordering::Relaxed), 2);
        drop(first);
        assert_eq!(line.sleeping.load(Ordering::Relaxed), 1, "the second sleeper is no longer announced");
        let before = line.seq.load(Ordering::Relaxed);
        bell.ring();
        assert_ne!(line.seq.load(Ordering::Relaxed), before, "a sleeper was announced but the bell did not ring");
        // Its wait returns at once: the word moved since it announced itself.
        assert!(second.sleep(Some(Duration::from_secs(30))).unwrap(), "the ring is not seen");
        assert_eq!(line.sleeping.load(Ordering::Relaxed), 0);
    }

    fn line() -> Box<WakeLine> {
        Box::new(WakeLine {
            seq: AtomicU32::new(0),
            sleeping: AtomicU32::new(0),
            space_sleeping: AtomicU32::new(0),
            polled: AtomicU32::new(0),
            armed: AtomicU32::new(0),
        })
    }

    /// A sleeper costs its peer one wake-up, not one per ring while it has yet to run: the
    /// first ring takes the bell down, later ones make no syscall and leave the word alone
    /// (the sleeper's wait returns anyway: the word moved since it announced itself), and
    /// the next sleep arms the bell again.
    #[test]
    fn one_wake_up_per_sleep() {
        let line = line();
        // SAFETY: `line` outlives the bell.
        let bell = unsafe { Bell::new(NonNull::from(&*line)) };
        let sleeper = bell.prepare(false);
        bell.ring();
        assert_eq!(line.seq.load(Ordering::Relaxed), 1, "the sleeper was not woken");
        bell.ring();
        bell.ring();
        assert_eq!(line.seq.load(Ordering::Relaxed), 1, "rings before the sleeper ran woke it again");
        assert!(sleeper.sleep(Some(Duration::from_secs(30))).unwrap(), "the first ring is not seen");
        let again = bell.prepare(false);
        bell.ring();
        assert_eq!(line.seq.load(Ordering::Relaxed), 2, "a new sleep was not woken");
        assert!(again.sleep(Some(Duration::from_secs(30))).unwrap());
        // A sleeper that arms the bell after a ring took it down for another is woken by the
        // next ring (here one for space).
        let first = bell.prepare(false);
        bell.ring();
        let second = bell.prepare(true);
        bell.ring_space();
        assert_eq!(line.seq.load(Ordering::Relaxed), 4, "the second sleeper was not woken");
        assert!(first.sleep(Some(Duration::from_secs(30))).unwrap());
        assert!(second.sleep(Some(Duration::from_secs(30))).unwrap());
    }

    /// Freeing space wakes a sender waiting for room, not a receiver waiting for data (whose
    /// spurious wake-up would cost a context switch per message on a busy machine); a new
    /// record wakes both.
    #[test]
    fn freed_space_rings_only_for_a_sender() {
        let line = line();
        // SAFETY: `line` outlives the bell.
        let bell = unsafe { Bell::new(NonNull::from(&*line)) };
        let receiver = bell.prepare(false);
        bell.ring_space();
        assert_eq!(line.seq.load(Ordering::Relaxed), 0, "a receiver was woken for space");
        bell.ring();
        assert_eq!(line.seq.load(Ordering::Relaxed), 1, "a receiver was not woken for data");
        drop(receiver);
        let sender = bell.prepare(true);
        bell.ring_space();
        assert_eq!(line.seq.load(Ordering::Relaxed), 2, "a sender was not woken for space");
        drop(sender);
        assert_eq!((line.sleeping.load(Ordering::Relaxed), line.space_sleeping.load(Ordering::Relaxed)), (0, 0));
    }

    /// The adaptive budget: successes grow it to the maximum, runs-out and preemptions halve it
    /// down to the floor, and only a budget near the floor counts as low.
    #[test]
    fn the_spin_budget_learns_from_outcomes() {
        let max = Duration::from_micros(50);
        let mut budget = SpinBudget::new(max);
        let spin = |exhausted, preempted| {
            let mut s = Spin::new(WaitStrategy::Adaptive, max, false);
            s.exhausted = exhausted;
            s.preempted = preempted;
            s
        };
        let success = spin(false, false);
        budget.learn(&success, true, true);
        assert_eq!(budget.get(), max, "a success grew the budget past the maximum");
        budget.learn(&spin(true, false), false, true);
        assert_eq!(budget.get(), max - SpinBudget::STEP, "a busy, awake peer costs one step");
        budget.learn(&spin(true, false), false, false);
        assert_eq!(budget.get(), (max - SpinBudget::STEP) / 2, "a sleeping peer halves the budget");
        let before = budget.get();
        budget.learn(&spin(false, true), false, true);
        assert_eq!(budget.get(), before / 2, "a preempted spin must halve the budget");
        budget.learn(&spin(false, true), true, true);
        assert_eq!(budget.get(), before / 4, "a success after a preemption is no evidence for spinning");
        assert!(!budget.low());
        for _ in 0..10 {
            budget.learn(&spin(true, false), false, false);
        }
        assert_eq!(budget.get(), SpinBudget::FLOOR);
        assert!(budget.low());
        // A wait that ended by the caller's deadline (not exhausted) teaches nothing.
        budget.learn(&spin(false, false), false, false);
        assert_eq!(budget.get(), SpinBudget::FLOOR);
        for _ in 0..6 {
            budget.learn(&success, true, true);
        }
        assert_eq!(budget.get(), SpinBudget::FLOOR + 6 * SpinBudget::STEP);
        assert!(!budget.low());
    }
}
