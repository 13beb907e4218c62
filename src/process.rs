//! A child process that cannot outlive its welcome: killed and reaped when its guard is
//! dropped, and, with a deadline, killed when the deadline passes (a watchdog thread).
//!
//! The watchdog signals through a pidfd (`pidfd_open(2)`, `pidfd_send_signal(2)`), never a
//! bare pid: once the child has been reaped its pid may belong to another process, but its
//! pidfd still names the dead child, so a late watchdog can never kill a stranger.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{Error, Result};

/// A child process that is killed and reaped when the guard is dropped, unless it was
/// waited for or released with [`into_inner`](ChildGuard::into_inner); with
/// [`with_deadline`](ChildGuard::with_deadline), killed when the deadline passes.
///
/// [`spawn_child`](crate::spawn_child) hands out a plain [`Child`]; wrap it when a panic or an
/// early return must not leave the worker running.
///
/// # Examples
/// ```
/// use std::process::Command;
/// use std::time::Duration;
/// use switchboard::{ChildGuard, Error};
///
/// // A child that would run for a minute is killed after 50 ms.
/// let guard = ChildGuard::with_deadline(Command::new("sleep").arg("60").spawn()?, Duration::from_millis(50));
/// assert!(matches!(guard.wait(), Err(Error::Timeout)));
///
/// // One that finishes in time gives its exit status.
/// let guard = ChildGuard::with_deadline(Command::new("true").spawn()?, Duration::from_secs(60));
/// assert!(guard.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    /// Dropping the sender stops the watchdog; joining it makes sure its pidfd is closed.
    watchdog: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
    timed_out: Arc<AtomicBool>,
}

impl ChildGuard {
    /// Guards `child` without a deadline.
    pub fn new(child: Child) -> Self {
        ChildGuard { child: Some(child), watchdog: None, timed_out: Arc::new(AtomicBool::new(false)) }
    }

    /// Guards `child` and kills it (SIGKILL) if it still runs after `limit`.
    ///
    /// # Platform-specific behavior
    /// Needs `pidfd_open(2)` (Linux 5.3) and a thread for the watchdog; without either, the
    /// child is only killed on drop.
    pub fn with_deadline(child: Child, limit: Duration) -> Self {
        let mut guard = Self::new(child);
        let Some(pidfd) = guard.child.as_ref().and_then(|c| pidfd_open(c.id())) else { return guard };
        let (tx, rx) = mpsc::channel::<()>();
        let flag = guard.timed_out.clone();
        let spawned = std::thread::Builder::new().name("switchboard-watchdog".into()).spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                flag.store(true, Ordering::SeqCst);
                pidfd_kill(&pidfd);
            }
        });
        if let Ok(handle) = spawned {
            guard.watchdog = Some((tx, handle));
        }
        guard
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child, for its pipes or `try_wait`.
    pub fn get_mut(&mut self) -> &mut Child {
        self.child.as_mut().unwrap_or_else(|| unreachable!("present until consumed"))
    }

    /// Kills the child now (SIGKILL); it is reaped by [`wait`](ChildGuard::wait) or on drop.
    ///
    /// # Errors
    /// [`Error::Io`] if the signal cannot be sent (not if the child already exited).
    pub fn kill(&mut self) -> Result<()> {
        Ok(self.get_mut().kill()?)
    }

    /// Whether the deadline passed and the watchdog killed the child.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::SeqCst)
    }

    /// Waits for the child to exit and returns its status.
    ///
    /// # Errors
    /// [`Error::Timeout`] if the watchdog had to kill it; [`Error::Io`] if waiting fails.
    pub fn wait(mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().unwrap_or_else(|| unreachable!("present until consumed"));
        let status = child.wait()?;
        self.stop_watchdog();
        if self.timed_out() {
            return Err(Error::Timeout);
        }
        Ok(status)
    }

    /// Gives the child back, unguarded: no kill on drop, no watchdog.
    pub fn into_inner(mut self) -> Child {
        self.stop_watchdog();
        self.child.take().unwrap_or_else(|| unreachable!("present until consumed"))
    }

    /// Stops the watchdog and waits for its thread (it wakes at once), so that its pidfd is
    /// closed when this returns.
    fn stop_watchdog(&mut self) {
        if let Some((tx, handle)) = self.watchdog.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop_watchdog();
    }
}

#[allow(unsafe_code)] // two syscalls std and nix do not wrap
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no memory
    // is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[allow(unsafe_code)]
fn pidfd_kill(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal takes a live descriptor, a signal number, a null siginfo and
    // zero flags; it reads no memory of ours.
    unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<()>(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn drop_kills_and_reaps() {
        let guard = ChildGuard::new(Command::new("sleep").arg("60").spawn().unwrap());
        let pid = guard.id();
        drop(guard);
        // Reaped, not a zombie: the pid's /proc entry is gone.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn into_inner_disarms_the_watchdog() {
        let guard =
            ChildGuard::with_deadline(Command::new("sleep").arg("0.5").spawn().unwrap(), Duration::from_millis(200));
        let mut child = guard.into_inner();
        assert!(child.wait().unwrap().success(), "the watchdog must not kill a released child");
    }
}
