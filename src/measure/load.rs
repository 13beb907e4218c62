//! Background load, to measure the transports on a busy machine (`compare --load N`).
//!
//! Each load process is this executable started again (like the measurement child): it
//! computes for 3 ms, sleeps 0.5 ms, and again, as the jobs of a parallel build do. That
//! pattern is what hurts a spinning waiter most: a job always wants the CPU back soon, so a
//! process that spins holds a CPU its peer may need. The processes exit when the [`Load`]
//! is dropped, and on their own within one cycle if the parent dies.

use std::process::Command;
use std::time::{Duration, Instant};

use super::ENV_MEASURE;
use crate::error::{Error, Result};
use crate::process::ChildGuard;

/// How long a load process computes, then sleeps, per cycle.
pub const LOAD_BUSY: Duration = Duration::from_millis(3);
/// See [`LOAD_BUSY`].
pub const LOAD_SLEEP: Duration = Duration::from_micros(500);

/// The mode word in [`ENV_MEASURE`] that makes the child a load process.
pub(crate) const LOAD_MODE: &str = "load";

/// Processes that keep the machine busy while they live.
///
/// # Examples
/// Not run as a doctest: the load processes are this program started again.
/// ```no_run
/// use switchboard::Kind;
/// use switchboard::measure::{self, Load, Mechanism, Settings};
///
/// measure::serve_if_child();
/// let load = Load::start(8)?;
/// let busy = measure::measure(Mechanism::transport(Kind::Shm), 64, &Settings::quick())?;
/// drop(load);
/// println!("shm 64 B under load: p50 {} ns", busy.latency.p50_ns);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct Load {
    processes: Vec<ChildGuard>,
}

impl Load {
    /// Starts `n` load processes (none for 0). The executable must call
    /// [`serve_if_child`](super::serve_if_child) first thing in `main`.
    ///
    /// # Errors
    /// [`Error::Io`] if a process cannot be started (those already started are stopped).
    pub fn start(n: usize) -> Result<Load> {
        let exe = std::env::current_exe().map_err(|e| Error::about(e, "the current executable"))?;
        let mut processes = Vec::with_capacity(n);
        for _ in 0..n {
            let child = Command::new(&exe)
                .env(ENV_MEASURE, format!("{LOAD_MODE};{}", std::process::id()))
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|e| Error::about(e, exe.display()))?;
            processes.push(ChildGuard::new(child));
        }
        Ok(Load { processes })
    }

    /// How many load processes run.
    pub fn len(&self) -> usize {
        self.processes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }
}

/// The load process's loop (`spec` is what follows the mode word: the parent's pid). Returns
/// once the parent is gone.
pub(crate) fn run(spec: &str) -> Result<()> {
    let parent: u32 = spec.parse().map_err(|_| Error::Config(format!("{ENV_MEASURE}: bad load parent {spec:?}")))?;
    let mut x = 1u64;
    while std::os::unix::process::parent_id() == parent {
        let start = Instant::now();
        while start.elapsed() < LOAD_BUSY {
            for _ in 0..1000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            }
            std::hint::black_box(x);
        }
        std::thread::sleep(LOAD_SLEEP);
    }
    Ok(())
}
