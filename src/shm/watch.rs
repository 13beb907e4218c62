//! One thread per process that wakes the endpoints whose peer process died, so that a sleep
//! needs no timeout to notice.
//!
//! A `FUTEX_WAIT` with a timeout arms and cancels a kernel timer on every sleep: under load
//! that was 10-15% of a blocking round trip (`compare --load 8`, 64 B: shm-block 8.94-8.97 µs
//! with a 10 ms timeout on each wait, 8.04-8.06 without, pipe 7.90-8.07). The timeout was
//! there only to notice a dead peer. Instead, an endpoint that is about to sleep registers its
//! peer's descriptor (a pidfd, or a Unix socket that reads end-of-file when the peer is gone)
//! with the watcher, once; the watcher blocks in `epoll_wait` on all of them, and when one
//! polls readable it marks that endpoint's peer gone and rings the endpoint's own bell, which
//! ends its sleep.
//!
//! The thread starts with the first registration and stops, closing its two descriptors,
//! when the last one is dropped, so a process that is done with shared memory holds nothing
//! of it. Where the watcher cannot run (no thread, no epoll, or in the child of a `fork`,
//! which has no copy of the thread), sleeps keep their timeout.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::shm::region::Region;
use crate::shm::wait::Bell;

/// An endpoint's registration; unregisters on drop.
#[derive(Debug)]
pub(crate) struct Watch {
    id: u64,
    gone: Arc<AtomicBool>,
}

impl Watch {
    /// Registers `peer_fd` (which polls readable once the peer is gone); the watcher rings
    /// `bell` then. `region` keeps the bell's mapping alive while the watcher may ring it.
    /// `None` if the watcher cannot run in this process.
    pub(crate) fn register(peer_fd: &OwnedFd, bell: Bell, region: &Arc<Region>) -> Option<Watch> {
        // The fork handler goes in before the state is ever locked: a fork while another
        // thread holds the lock then always marks the child, which never takes it.
        if FORKED.load(Ordering::Relaxed) || !fork_handler_installed() {
            return None;
        }
        let fd = peer_fd.try_clone().ok()?;
        let mut state = lock(&STATE);
        if state.running.is_none() {
            state.running = Some(Running::start()?);
        }
        let id = state.next;
        state.next += 1;
        let running = state.running.as_ref()?;
        let gone = Arc::new(AtomicBool::new(false));
        let mut watched = lock(&running.shared.watched);
        let event = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, id);
        if running.shared.epoll.add(fd.as_fd(), event).is_err() {
            let idle = watched.is_empty();
            drop(watched);
            if idle && let Some(running) = state.running.take() {
                running.stop();
            }
            return None;
        }
        watched.insert(id, Watched { fd, bell, _region: region.clone(), gone: gone.clone() });
        Some(Watch { id, gone })
    }

    /// Whether a failed [`register`](Watch::register) may succeed if tried again: another
    /// thread was installing the fork handler at that moment.
    pub(crate) fn worth_retrying() -> bool {
        HANDLER.load(Ordering::Acquire) == INSTALLING && !FORKED.load(Ordering::Relaxed)
    }

    /// Whether the watcher still watches for this peer: it runs, in this process.
    pub(crate) fn usable(&self) -> bool {
        !FORKED.load(Ordering::Relaxed) && !FAILED.load(Ordering::Relaxed)
    }

    /// The watcher saw the peer's descriptor poll readable (ordered before the ring that
    /// followed: a sleeper that sees the bell's new count sees this too).
    pub(crate) fn peer_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if FORKED.load(Ordering::Relaxed) {
            // The state is the parent's copy, and so are its eventfd and epoll set: leave
            // them alone. But close our duplicate of the peer's descriptor, or a peer socket
            // kept open here would hide the peer's death from the other side. (Never block:
            // a lock held by another thread at the fork stays held in this copy.)
            if let Ok(state) = STATE.try_lock()
                && let Some(running) = &state.running
                && let Ok(mut watched) = running.shared.watched.try_lock()
            {
                watched.remove(&self.id);
            }
            return;
        }
        let mut state = lock(&STATE);
        let Some(running) = &state.running else { return };
        let empty = {
            let mut watched = lock(&running.shared.watched);
            if let Some(w) = watched.remove(&self.id) {
                // Already out of the set if the watcher reported the peer gone.
                let _ = running.shared.epoll.delete(w.fd.as_fd());
            }
            watched.is_empty()
        };
        if empty && let Some(running) = state.running.take() {
            running.stop();
        }
    }
}

/// What the watcher keeps for one registration.
struct Watched {
    fd: OwnedFd,
    bell: Bell,
    /// Keeps the mapping of `bell` alive.
    _region: Arc<Region>,
    gone: Arc<AtomicBool>,
}

/// What the watcher thread and the registrations share.
struct Shared {
    epoll: Epoll,
    /// Written to stop the thread (its token is [`STOP`]).
    stop: EventFd,
    watched: Mutex<HashMap<u64, Watched>>,
}

/// The epoll token of the stop eventfd.
const STOP: u64 = u64::MAX;

/// The thread and what it shares, while anything is registered.
struct Running {
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
}

impl Running {
    fn start() -> Option<Running> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ok()?;
        let stop = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).ok()?;
        epoll.add(stop.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, STOP)).ok()?;
        let shared = Arc::new(Shared { epoll, stop, watched: Mutex::new(HashMap::new()) });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new().name("switchboard-watch".into()).spawn(move || run(&theirs)).ok()?;
        Some(Running { shared, thread })
    }

    /// Stops the thread and waits for it; the descriptors close with the last `Shared`.
    fn stop(self) {
        if self.shared.stop.write(1).is_ok() {
            let _ = self.thread.join();
        }
    }
}

struct State {
    running: Option<Running>,
    next: u64,
}

static STATE: Mutex<State> = Mutex::new(State { running: None, next: 0 });
/// Set in the child of a `fork`: the watcher thread was not copied.
static FORKED: AtomicBool = AtomicBool::new(false);
/// The watcher cannot be trusted in this process (its thread met an error, or no fork
/// handler could be registered): every sleep keeps its timeout.
static FAILED: AtomicBool = AtomicBool::new(false);

extern "C" fn after_fork_in_child() {
    FORKED.store(true, Ordering::Relaxed);
}

/// Where the installation of the fork handler stands.
static HANDLER: AtomicU8 = AtomicU8::new(NOT);
const NOT: u8 = 0;
const INSTALLING: u8 = 1;
const IN: u8 = 2;
const FAILED_TO: u8 = 3;

/// Installs [`after_fork_in_child`] once; whether it is in. Never blocks: a thread that finds
/// another installing it gets `false` (its endpoint sleeps timed this time and asks again at
/// its next sleep), and so does the child of a fork made meanwhile, for good.
fn fork_handler_installed() -> bool {
    match HANDLER.compare_exchange(NOT, INSTALLING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            // SAFETY: registers a handler that only stores to an atomic, which is
            // async-signal-safe, as a handler run in the child of a fork must be.
            let ok = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) } == 0;
            HANDLER.store(if ok { IN } else { FAILED_TO }, Ordering::Release);
            ok
        }
        Err(state) => state == IN,
    }
}

/// A lock that a panic elsewhere does not poison for good (the maps stay consistent: every
/// change is one insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The watcher thread: rings the bell of every endpoint whose peer's descriptor polls readable,
/// until told to stop.
fn run(shared: &Shared) {
    /// If the loop below ever panicked, sleepers must not wait for it: back to timed waits,
    /// and every registered sleeper rung once.
    struct Unwinding<'a>(&'a Shared);
    impl Drop for Unwinding<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                FAILED.store(true, Ordering::Relaxed);
                if let Ok(watched) = self.0.watched.try_lock() {
                    watched.values().for_each(|w| w.bell.wake());
                }
            }
        }
    }
    let _unwinding = Unwinding(shared);
    let mut events = [EpollEvent::empty(); 16];
    loop {
        let n = match shared.epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => {
                // Sleepers go back to timed waits. Ring every registered bell so that those
                // asleep without a timeout wake and look at their peer themselves.
                FAILED.store(true, Ordering::Relaxed);
                lock(&shared.watched).values().for_each(|w| w.bell.wake());
                return;
            }
        };
        let watched = lock(&shared.watched);
        for event in &events[..n] {
            if event.data() == STOP {
                return;
            }
            if let Some(w) = watched.get(&event.data()) {
                w.gone.store(true, Ordering::Release);
                let _ = shared.epoll.delete(w.fd.as_fd());
                w.bell.wake();
            }
        }
    }
}
