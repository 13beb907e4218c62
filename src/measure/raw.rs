//! Raw baselines: the same exchange over plain syscalls, with no framing and no trait, so
//! that each transport's overhead can be stated as a ratio in the same run.
//!
//! pipe: two pipes (the child's stdin and stdout); unix: `socketpair(2)`; tcp: loopback with
//! `TCP_NODELAY`; shm: two rings of fixed-size slots in a memfd, each side spinning on an
//! atomic counter; seqpacket and fifo: `raw_ipc.rs`. Messages have a size both sides know, so a read is `read_exact`.
//!
//! This file bypasses the library on purpose, so it holds unsafe code of its own outside
//! `shm/` and `spawn.rs`: the raw shared-memory mapping (`stream.rs` has the other piece, the
//! SIGPIPE disposition).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use crate::error::{Error, Result};
use crate::measure::link::Link;
use crate::transport::Kind;

/// Where the child finds the raw tcp listener.
pub(crate) const ENV_RAW_ADDR: &str = "SWITCHBOARD_MEASURE_RAW_ADDR";

/// A byte stream read and written with exact sizes.
struct RawStream<R, W> {
    read: R,
    write: W,
}

impl<R: Read + AsFd, W: Write> Link for RawStream<R, W> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.write.write_all(msg)?;
        Ok(())
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        buf.resize(len, 0);
        self.read.read_exact(buf)?;
        Ok(())
    }
    /// Waits in `ppoll` for the first byte, then reads the message whole (its rest follows
    /// at once).
    fn recv_timeout(&mut self, buf: &mut Vec<u8>, len: usize, timeout: Duration) -> Result<()> {
        if !crate::measure::sys::readable_within(self.read.as_fd(), timeout)? {
            return Err(Error::Timeout);
        }
        self.recv(buf, len)
    }
}

/// Spawns `command` as the raw child for `kind` and returns the parent's link.
pub(crate) fn spawn(kind: Kind, size: usize, command: &mut Command) -> Result<(Child, Box<dyn Link>)> {
    match kind {
        Kind::Pipe => {
            let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
            let write: ChildStdin = child.stdin.take().expect("piped stdin");
            let read: ChildStdout = child.stdout.take().expect("piped stdout");
            Ok((child, Box::new(RawStream { read, write })))
        }
        Kind::Unix => {
            let (ours, theirs) = UnixStream::pair()?;
            let child = command.stdin(Stdio::from(OwnedFd::from(theirs))).spawn()?;
            let write = ours.try_clone()?;
            Ok((child, Box::new(RawStream { read: ours, write })))
        }
        Kind::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            command.env(ENV_RAW_ADDR, listener.local_addr()?.to_string());
            let child = command.spawn()?;
            listener.set_nonblocking(true)?;
            let deadline = crate::deadline::after(Duration::from_secs(10));
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && !crate::deadline::passed(deadline) => {
                        let fd = listener.as_fd();
                        let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
                        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            stream.set_nonblocking(false)?;
            stream.set_nodelay(true)?;
            let write = stream.try_clone()?;
            Ok((child, Box::new(RawStream { read: stream, write })))
        }
        Kind::Shm => {
            let (map, fd) = RawShm::create(size)?;
            let child = command.stdin(Stdio::from(fd)).spawn()?;
            Ok((child, Box::new(map.side(0))))
        }
        Kind::Seqpacket | Kind::Fifo => super::raw_ipc::spawn(kind, command),
        #[cfg(feature = "zmq")]
        Kind::Zmq => Err(no_raw_zmq()),
    }
}

/// ZeroMQ is measured against the sockets under it (raw-unix for ipc, raw-tcp for tcp).
#[cfg(feature = "zmq")]
fn no_raw_zmq() -> Error {
    Error::Config("zmq has no raw baseline of its own: compare zmq-ipc with raw-unix, zmq-tcp with raw-tcp".into())
}

/// The child's link for `kind`, from what [`spawn`] left it.
pub(crate) fn child_link(kind: Kind, size: usize) -> Result<Box<dyn Link>> {
    let stdin = || std::io::stdin().as_fd().try_clone_to_owned();
    Ok(match kind {
        // Through Files on the raw fds: std's Stdin and Stdout buffer.
        Kind::Pipe => Box::new(RawStream {
            read: std::fs::File::from(stdin()?),
            write: std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?),
        }),
        Kind::Unix => {
            let s = UnixStream::from(stdin()?);
            let write = s.try_clone()?;
            Box::new(RawStream { read: s, write })
        }
        Kind::Tcp => {
            let addr = std::env::var(ENV_RAW_ADDR).map_err(|_| Error::Config(format!("{ENV_RAW_ADDR} is not set")))?;
            let s = TcpStream::connect(addr.as_str())?;
            s.set_nodelay(true)?;
            let write = s.try_clone()?;
            Box::new(RawStream { read: s, write })
        }
        Kind::Shm => Box::new(RawShm::attach(stdin()?, size)?.side(1)),
        Kind::Seqpacket | Kind::Fifo => super::raw_ipc::child_link(kind)?,
        #[cfg(feature = "zmq")]
        Kind::Zmq => return Err(no_raw_zmq()),
    })
}

/// Two rings of fixed-size slots in a shared memfd, one per direction (the eventfd-shm
/// baseline reuses them with blocking wake-ups).
pub(super) struct RawShm {
    ptr: NonNull<u8>,
    len: usize,
    pub(super) slots: usize,
    slot_size: usize,
}

// SAFETY: plain shared memory, accessed through atomics and copies only.
unsafe impl Send for RawShm {}

/// Byte offsets of a ring's counters and slots in the mapping.
const RING_BYTES_TARGET: usize = 4 << 20;
const CTL: usize = 4096;

impl RawShm {
    fn geometry(size: usize) -> (usize, usize, usize) {
        let slot_size = size.max(super::link::REPORT_LEN).next_multiple_of(64);
        let slots = (RING_BYTES_TARGET / slot_size).clamp(2, 1024);
        (slot_size, slots, CTL + 2 * slots * slot_size)
    }

    pub(super) fn create(size: usize) -> Result<(Self, OwnedFd)> {
        let (slot_size, slots, len) = Self::geometry(size);
        let fd = memfd_create(c"switchboard-raw", MFdFlags::MFD_CLOEXEC)?;
        nix::unistd::ftruncate(&fd, len as i64)?;
        Ok((Self::map(&fd, len, slots, slot_size)?, fd))
    }

    pub(super) fn attach(fd: OwnedFd, size: usize) -> Result<Self> {
        let (slot_size, slots, len) = Self::geometry(size);
        if nix::sys::stat::fstat(&fd)?.st_size as usize != len {
            return Err(Error::IncompatibleSegment("raw baseline segment has the wrong size".into()));
        }
        Self::map(&fd, len, slots, slot_size)
    }

    fn map(fd: &OwnedFd, len: usize, slots: usize, slot_size: usize) -> Result<Self> {
        let size = NonZeroUsize::new(len).expect("non-empty");
        // SAFETY: a fresh shared mapping of a file of exactly `len` bytes, placed by the
        // kernel; unmapped in Drop.
        let ptr =
            unsafe { mmap(None, size, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED, fd, 0) }?;
        Ok(RawShm { ptr: ptr.cast(), len, slots, slot_size })
    }

    fn side(self, side: usize) -> RawShmSide {
        RawShmSide { map: self, side, sent: 0, received: 0 }
    }

    /// The counter: ring `r`'s tail (`which` 0) or head (`which` 1), each on its own line.
    pub(super) fn counter(&self, r: usize, which: usize) -> &AtomicU64 {
        // SAFETY: CTL bytes are reserved for four counters 256 bytes apart, 8-aligned in a
        // page-aligned mapping; AtomicU64 is valid for any bytes and lives as long as `self`.
        unsafe { &*self.ptr.as_ptr().add(r * 512 + which * 256).cast::<AtomicU64>() }
    }

    pub(super) fn slot(&self, r: usize, i: u64) -> *mut u8 {
        let index = (i % self.slots as u64) as usize;
        // SAFETY: r < 2 and index < slots, so the slot lies inside the mapping.
        unsafe { self.ptr.as_ptr().add(CTL + (r * self.slots + index) * self.slot_size) }
    }
}

impl Drop for RawShm {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, no longer referenced.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// One side: sends on ring `side`, receives on ring `1 - side`, spinning while full or empty.
struct RawShmSide {
    map: RawShm,
    side: usize,
    sent: u64,
    received: u64,
}

/// Spins until `ready`; gives up after [`RAW_SPIN_LIMIT`] so that a dead peer cannot hang us.
fn spin_until(mut ready: impl FnMut() -> bool) -> Result<()> {
    let mut rounds = 0u32;
    let mut since: Option<Instant> = None;
    while !ready() {
        std::hint::spin_loop();
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(4096) {
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() > RAW_SPIN_LIMIT {
                return Err(Error::Timeout);
            }
        }
    }
    Ok(())
}

/// How long a raw spinner waits for its peer before it declares it gone.
const RAW_SPIN_LIMIT: Duration = Duration::from_secs(10);

impl Link for RawShmSide {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let r = self.side;
        let (map, sent) = (&self.map, self.sent);
        spin_until(|| sent - map.counter(r, 1).load(Ordering::Acquire) < map.slots as u64)?;
        // SAFETY: the slot is free (the consumer's head passed it) and msg fits in a slot.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.map.slot(r, self.sent), msg.len()) };
        self.sent += 1;
        self.map.counter(r, 0).store(self.sent, Ordering::Release);
        Ok(())
    }

    /// Spins until a message is published or `timeout` passes, reading the clock on every
    /// round: the open loop's waits are microseconds.
    fn recv_timeout(&mut self, buf: &mut Vec<u8>, len: usize, timeout: Duration) -> Result<()> {
        let deadline = crate::deadline::after(timeout);
        while self.map.counter(1 - self.side, 0).load(Ordering::Acquire) == self.received {
            if crate::deadline::passed(deadline) {
                return Err(Error::Timeout);
            }
            std::hint::spin_loop();
        }
        self.recv(buf, len)
    }

    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        let r = 1 - self.side;
        let (map, received) = (&self.map, self.received);
        spin_until(|| map.counter(r, 0).load(Ordering::Acquire) != received)?;
        buf.resize(len, 0);
        // SAFETY: the producer published this slot (tail passed it) and len <= slot size.
        unsafe { std::ptr::copy_nonoverlapping(self.map.slot(r, self.received), buf.as_mut_ptr(), len) };
        self.received += 1;
        self.map.counter(r, 1).store(self.received, Ordering::Release);
        Ok(())
    }
}

/// Single-core memcpy bandwidth in bytes per second: `size`-byte copies through a 4 MiB
/// buffer (the ceiling for a shared-memory ring of that size).
pub(crate) fn memcpy_bandwidth(size: usize, budget: Duration) -> f64 {
    let src = vec![0x3Cu8; size];
    let mut dst = vec![0u8; (4 << 20).max(size)];
    let slots = dst.len() / size;
    let mut copies = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget || copies < 16 {
        for _ in 0..16 {
            let at = (copies as usize % slots) * size;
            dst[at..at + size].copy_from_slice(&src);
            copies += 1;
        }
        std::hint::black_box(&mut dst);
    }
    (copies * size as u64) as f64 / start.elapsed().as_secs_f64()
}
