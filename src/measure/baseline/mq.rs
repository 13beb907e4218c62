//! The POSIX message-queue baseline: one queue per direction (`mq_overview(7)`), each message
//! one `mq_timedsend(3)` and one `mq_timedreceive(3)`.
//!
//! The parent creates both queues under unique names and unlinks them at once; the child
//! inherits them as stdin (parent to child) and stdout (child to parent). That works because
//! on Linux a queue descriptor is a file descriptor (`mq_overview(7)`, "Linux
//! implementation"), which `dup2` and `exec` keep. A queue never reports a departed peer, so
//! every send and receive has a deadline ([`PEER_LIMIT`]).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::mqueue::{MQ_OFlag, MqAttr, mq_open, mq_unlink};
use nix::sys::stat::Mode;
use nix::time::{ClockId, clock_gettime};

use super::PEER_LIMIT;
use crate::error::{Error, Result};
use crate::measure::link::{Link, REPORT_LEN};

/// The default of `/proc/sys/fs/mqueue/msgsize_max`.
const DEFAULT_MSGSIZE_MAX: usize = 8192;

/// The largest message an unprivileged process may ask a queue to hold.
pub(super) fn max_message_size() -> usize {
    read_proc("msgsize_max").unwrap_or(DEFAULT_MSGSIZE_MAX)
}

fn read_proc(name: &str) -> Option<usize> {
    std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{name}")).ok()?.trim().parse().ok()
}

/// Queue depth: 10, the default of `/proc/sys/fs/mqueue/msg_max`, or less where that is lower.
fn depth() -> usize {
    read_proc("msg_max").unwrap_or(10).clamp(1, 10)
}

/// A queue's message size: the message, or the 16-byte report if that is larger.
fn msgsize(size: usize) -> usize {
    size.max(REPORT_LEN)
}

static QUEUES: AtomicU64 = AtomicU64::new(0);

/// Creates a queue under a unique name, unlinks the name and returns the descriptor.
fn create(size: usize) -> Result<OwnedFd> {
    let name = format!("/switchboard-{}-{}", std::process::id(), QUEUES.fetch_add(1, Ordering::Relaxed));
    let attr = MqAttr::new(0, depth() as _, msgsize(size) as _, 0);
    let flags = MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR | MQ_OFlag::O_CLOEXEC;
    let mqd = mq_open(name.as_str(), flags, Mode::S_IRUSR | Mode::S_IWUSR, Some(&attr))
        .map_err(|e| Error::Config(format!("mq_open {name}: {e}")))?;
    let raw = mqd.into_raw_fd();
    // SAFETY: on Linux an mqd_t is a file descriptor, just opened and owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    mq_unlink(name.as_str()).map_err(|e| Error::Config(format!("mq_unlink {name}: {e}")))?;
    Ok(fd)
}

/// The two queues of one side: `send` on one, `recv` on the other.
struct MqLink {
    send: OwnedFd,
    recv: OwnedFd,
    msgsize: usize,
}

/// An absolute `CLOCK_REALTIME` deadline `after` from now, as the timed calls want.
fn deadline(after: Duration) -> Result<libc::timespec> {
    let now = clock_gettime(ClockId::CLOCK_REALTIME)?;
    let ns = now.tv_nsec() as u64 + u64::from(after.subsec_nanos());
    let secs = (after.as_secs() + ns / 1_000_000_000).min(i32::MAX as u64);
    Ok(libc::timespec {
        tv_sec: now.tv_sec().saturating_add(secs as libc::time_t),
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    })
}

fn gone(e: Errno) -> Error {
    match e {
        Errno::ETIMEDOUT => Error::Timeout,
        e => Error::Io(e.into()),
    }
}

impl Link for MqLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let at = deadline(PEER_LIMIT)?;
        // SAFETY: the descriptor is an open queue; `msg` is valid for `msg.len()` bytes and
        // `at` for the call.
        let r = unsafe { libc::mq_timedsend(self.send.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0, &at) };
        Errno::result(r).map_err(gone)?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        self.recv_timeout(buf, len, PEER_LIMIT)
    }

    fn recv_timeout(&mut self, buf: &mut Vec<u8>, len: usize, timeout: Duration) -> Result<()> {
        // mq_receive refuses a buffer smaller than the queue's message size.
        buf.resize(self.msgsize, 0);
        let at = deadline(timeout)?;
        // SAFETY: the descriptor is an open queue; `buf` is valid for writes of its length,
        // and the priority pointer may be null.
        let r = unsafe {
            libc::mq_timedreceive(self.recv.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), std::ptr::null_mut(), &at)
        };
        let got = Errno::result(r).map_err(gone)? as usize;
        if got != len {
            return Err(Error::Protocol(format!("expected a {len}-byte message on the queue, got {got} bytes")));
        }
        buf.truncate(len);
        Ok(())
    }
}

/// Creates both queues and starts the child with them as stdin and stdout.
pub(super) fn spawn(size: usize, command: &mut Command) -> Result<(Child, Box<dyn Link>)> {
    let to_child = create(size)?;
    let from_child = create(size)?;
    let child = command
        .stdin(Stdio::from(to_child.as_fd().try_clone_to_owned()?))
        .stdout(Stdio::from(from_child.as_fd().try_clone_to_owned()?))
        .spawn()?;
    Ok((child, Box::new(MqLink { send: to_child, recv: from_child, msgsize: msgsize(size) })))
}

/// The child's side: the queues it inherited as stdin and stdout.
pub(super) fn child_link(size: usize) -> Result<Box<dyn Link>> {
    let recv = std::io::stdin().as_fd().try_clone_to_owned()?;
    let send = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok(Box::new(MqLink { send, recv, msgsize: msgsize(size) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_carry_messages_and_leave_no_name() {
        let a = create(64).unwrap();
        let b = create(64).unwrap();
        let mut parent = MqLink { send: a.try_clone().unwrap(), recv: b.try_clone().unwrap(), msgsize: 64 };
        let mut child = MqLink { send: b, recv: a, msgsize: 64 };
        let echo = std::thread::spawn(move || {
            let mut buf = Vec::new();
            for _ in 0..100 {
                child.recv(&mut buf, 64)?;
                child.send(&buf)?;
            }
            Ok::<_, Error>(())
        });
        let mut buf = Vec::new();
        for i in 0..100u8 {
            parent.send(&[i; 64]).unwrap();
            parent.recv(&mut buf, 64).unwrap();
            assert_eq!(buf, [i; 64]);
        }
        echo.join().unwrap().unwrap();
        // A message of the wrong length is an error, not a short read.
        parent.send(&[1; 10]).unwrap();
        let mut other =
            MqLink { send: parent.recv.try_clone().unwrap(), recv: parent.send.try_clone().unwrap(), msgsize: 64 };
        assert!(matches!(other.recv(&mut buf, 64), Err(Error::Protocol(_))));
        assert!(matches!(other.recv_timeout(&mut buf, 64, Duration::from_millis(1)), Err(Error::Timeout)));
        let pid = std::process::id();
        let left = std::fs::read_dir("/dev/mqueue").into_iter().flatten().flatten();
        assert!(left.filter(|e| e.file_name().to_string_lossy().contains(&format!("switchboard-{pid}-"))).count() == 0);
    }

    #[test]
    fn sizes_above_the_limit_are_refused_before_any_queue() {
        let too_big = max_message_size() + 1;
        let err = super::super::check_size(super::super::Baseline::Mq, too_big).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }
}
