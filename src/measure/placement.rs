//! Where the two processes ran during a measurement: one core or two.
//!
//! A sampler thread in the parent reads, every few milliseconds, the CPU that the measuring
//! thread and the child last ran on: field 39 (`processor`) of `/proc/thread-self`'s and
//! `/proc/<child>/stat` (proc(5)). Unpinned, the scheduler may put both processes on one core
//! (they take turns: blocking round trips get cheaper, streams of large messages several
//! times slower) or on two; results split by that are bimodal, and the report says which
//! trials ran where. The thread sleeps between samples, so it costs the measurement a few
//! microseconds every few milliseconds.
//!
//! Each sample is weighed by the messages the measuring loop got through since the one before
//! (a counter the loop stores to): on a busy machine a spinning pair may spend most of a run
//! queued on one core, making almost no progress there, and make nearly all its round trips
//! in the moments it has two. Where the work was done is what the figures reflect.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Time from the start to the first sample, and between samples; one more sample is taken
/// when the measurement ends.
const FIRST: Duration = Duration::from_millis(1);
const EVERY: Duration = Duration::from_millis(4);

/// Where a measurement's parent and child ran, from the samples taken during it.
///
/// # Examples
/// ```
/// use switchboard::measure::{Cores, Placement};
///
/// let p = Placement { samples: 20, same_core: 19, parent_cpus: vec![0], child_cpus: vec![0, 1], ..Placement::default() };
/// assert_eq!(p.cores(), Cores::One);
/// // Weighed by progress: the one sample on two cores saw nearly all the messages.
/// let p = Placement { progress: 1000, same_core_progress: 10, ..p };
/// assert_eq!(p.cores(), Cores::Two);
/// assert_eq!(Placement::default().cores(), Cores::Unknown);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Samples taken.
    pub samples: u32,
    /// Samples that found both processes on the same CPU.
    pub same_core: u32,
    /// Every CPU the parent's measuring thread was seen on.
    pub parent_cpus: Vec<usize>,
    /// Every CPU the child was seen on.
    pub child_cpus: Vec<usize>,
    /// Messages (round trips, or streamed messages) the measuring loop got through, summed
    /// over the samples that saw them: each sample counts those since the one before.
    #[serde(default)]
    pub progress: u64,
    /// The part of `progress` seen by samples that found both on the same CPU.
    #[serde(default)]
    pub same_core_progress: u64,
}

/// One core, two cores, or some of each: the class of a [`Placement`].
///
/// # Examples
/// ```
/// use switchboard::measure::Cores;
///
/// assert_eq!(Cores::Two.symbol(), '2');
/// assert_eq!(Cores::Moved.to_string(), "moved between one and two cores");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cores {
    /// Both processes on one core for at least 80% of the work (of the samples, where no
    /// work was counted).
    One,
    /// On different cores for at least 80% of the work.
    Two,
    /// In between: the scheduler moved them during the measurement.
    Moved,
    /// No samples (a report from before placement was recorded).
    Unknown,
}

impl Cores {
    /// `1`, `2`, `m` or `?`: one character per trial in the table.
    pub fn symbol(self) -> char {
        match self {
            Cores::One => '1',
            Cores::Two => '2',
            Cores::Moved => 'm',
            Cores::Unknown => '?',
        }
    }
}

impl std::fmt::Display for Cores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Cores::One => "on one core",
            Cores::Two => "on two cores",
            Cores::Moved => "moved between one and two cores",
            Cores::Unknown => "placement unknown",
        })
    }
}

impl Placement {
    /// The class of this placement: where 80% of the work or more was done (of the
    /// samples, if no work was counted).
    pub fn cores(&self) -> Cores {
        let (n, same) = if self.progress > 0 {
            (self.progress, self.same_core_progress)
        } else {
            (u64::from(self.samples), u64::from(self.same_core))
        };
        if n == 0 {
            Cores::Unknown
        } else if same * 5 >= n * 4 {
            Cores::One
        } else if same * 5 <= n {
            Cores::Two
        } else {
            Cores::Moved
        }
    }

    fn record(&mut self, parent: usize, child: usize, progress: u64) {
        self.samples += 1;
        self.same_core += u32::from(parent == child);
        self.progress += progress;
        if parent == child {
            self.same_core_progress += progress;
        }
        for (cpus, cpu) in [(&mut self.parent_cpus, parent), (&mut self.child_cpus, child)] {
            if let Err(at) = cpus.binary_search(&cpu) {
                cpus.insert(at, cpu);
            }
        }
    }
}

/// Samples the placement of the calling thread and `child` until [`finish`](Sampler::finish).
pub(crate) struct Sampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Placement>,
    progress: Arc<AtomicU64>,
}

impl Sampler {
    /// Starts sampling the calling thread (the one that measures) and process `child`.
    pub(crate) fn start(child: u32) -> Sampler {
        let parent = format!("/proc/self/task/{}/stat", nix::unistd::gettid());
        let child = format!("/proc/{child}/stat");
        let (stop, stopped) = mpsc::channel::<()>();
        let progress = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&progress);
        let thread = std::thread::spawn(move || {
            let mut placement = Placement::default();
            let mut seen = 0;
            // Not at once: a child that has just been exec'd still sits on its parent's core
            // until the scheduler balances it, which would make every short run "one core".
            let mut wait = FIRST;
            loop {
                let stopping = !matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
                wait = EVERY;
                // A process that has been reaped has no stat file: that sample is skipped.
                if let (Some(p), Some(c)) = (last_cpu(&parent), last_cpu(&child)) {
                    let now = counter.load(Ordering::Relaxed);
                    placement.record(p, c, now.saturating_sub(seen));
                    seen = now;
                }
                if stopping {
                    return placement;
                }
            }
        });
        Sampler { stop, thread, progress }
    }

    /// The counter the measuring loop stores its message count to.
    pub(crate) fn progress(&self) -> &AtomicU64 {
        &self.progress
    }

    /// Stops sampling and returns what it saw (nothing, if the sampler thread died).
    pub(crate) fn finish(self) -> Placement {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

/// Field 39 of a `stat` file: the CPU the thread last ran on.
fn last_cpu(path: &str) -> Option<usize> {
    parse_last_cpu(&std::fs::read_to_string(path).ok()?)
}

/// The command name (field 2) is in parentheses and may hold spaces or parentheses itself,
/// so fields are counted from the last `)`: field 3 is the first after it.
fn parse_last_cpu(stat: &str) -> Option<usize> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(39 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_field_39_past_a_command_name_with_spaces() {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[39 - 3] = "7".into();
        let stat = format!("1234 (a (b) c) {}", fields.join(" "));
        assert_eq!(parse_last_cpu(&stat), Some(7));
        assert_eq!(parse_last_cpu("1234 (x) S 1 2"), None);
    }

    #[test]
    fn reads_this_threads_cpu() {
        let cpu = last_cpu(&format!("/proc/self/task/{}/stat", nix::unistd::gettid()));
        assert!(cpu.is_some_and(|c| c < 4096));
    }

    #[test]
    fn classes_follow_the_share_of_same_core_samples() {
        let with = |samples, same_core| Placement { samples, same_core, ..Placement::default() };
        // Work decides over samples where it was counted.
        let busy_apart = Placement { progress: 100, same_core_progress: 1, ..with(10, 9) };
        assert_eq!(busy_apart.cores(), Cores::Two);
        assert_eq!(with(10, 10).cores(), Cores::One);
        assert_eq!(with(10, 8).cores(), Cores::One);
        assert_eq!(with(10, 7).cores(), Cores::Moved);
        assert_eq!(with(10, 3).cores(), Cores::Moved);
        assert_eq!(with(10, 2).cores(), Cores::Two);
        assert_eq!(with(10, 0).cores(), Cores::Two);
        assert_eq!(with(0, 0).cores(), Cores::Unknown);
    }

    #[test]
    fn record_keeps_cpu_lists_sorted_and_unique() {
        let mut p = Placement::default();
        for (a, b) in [(1, 0), (0, 0), (1, 1), (1, 0)] {
            p.record(a, b, 10 + a as u64);
        }
        assert_eq!((p.samples, p.same_core), (4, 2));
        assert_eq!((p.progress, p.same_core_progress), (43, 21));
        assert_eq!((p.parent_cpus, p.child_cpus), (vec![0, 1], vec![0, 1]));
    }
}
