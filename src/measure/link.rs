//! The exchange both a transport and a raw baseline go through, so that they are timed by
//! the same loop: round trips (parent pings, child echoes) and one-way streams (child sends,
//! parent checks and counts).
//!
//! Every ping's first byte says whether it is the last one, so the parent alone decides when
//! to stop (after its iteration count or its time budget). At the end the child sends a
//! 16-byte report: its CPU time during the measured part, and how many messages it handled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::{Error, Result};
use crate::measure::sys::thread_cpu;
use crate::transport::Transport;

/// One end of a message exchange that the harness times: whole messages whose length both
/// ends know in advance.
///
/// A switchboard transport is one (`Box<dyn Transport>`); so are the raw baselines, which
/// know the size instead of framing; and so is any other library's channel, which
/// [`measure_link`](super::measure_link) times with the same loops as switchboard's own.
///
/// # Examples
/// A link over an in-process channel, timed by hand (a real measurement runs each end in its
/// own process; see [`measure_link`](super::measure_link)).
/// ```
/// use std::sync::mpsc::{Receiver, Sender, channel};
/// use switchboard::Error;
/// use switchboard::measure::Link;
///
/// struct Channel(Sender<Vec<u8>>, Receiver<Vec<u8>>);
///
/// impl Link for Channel {
///     fn send(&mut self, msg: &[u8]) -> switchboard::Result<()> {
///         self.0.send(msg.to_vec()).map_err(|_| Error::Disconnected)
///     }
///     fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> switchboard::Result<()> {
///         *buf = self.1.recv().map_err(|_| Error::Disconnected)?;
///         if buf.len() != len {
///             return Err(Error::Protocol(format!("expected {len} bytes, got {}", buf.len())));
///         }
///         Ok(())
///     }
/// }
///
/// let (tx, rx) = channel();
/// let mut link = Channel(tx, rx); // talks to itself
/// link.send(b"ping")?;
/// let mut buf = Vec::new();
/// link.recv(&mut buf, 4)?;
/// assert_eq!(buf, b"ping");
/// # Ok::<(), switchboard::Error>(())
/// ```
pub trait Link {
    /// Sends one whole message.
    ///
    /// # Errors
    /// [`Error::Disconnected`] when the other end is gone; whatever else the link reports.
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Sends several whole messages, in order; by default one [`send`](Link::send) each.
    ///
    /// # Errors
    /// As [`send`](Link::send).
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<()> {
        msgs.iter().try_for_each(|msg| self.send(msg))
    }

    /// Receives one whole message, which must be `len` bytes long, into `buf` (replacing what
    /// it held).
    ///
    /// # Errors
    /// [`Error::Protocol`] for a message of another length; [`Error::Disconnected`] when the
    /// other end is gone; whatever else the link reports.
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()>;
    /// Like `recv`, but gives up after `timeout` with [`Error::Timeout`] (the open loop
    /// waits for echoes only until its next send is due). Links without it say so.
    fn recv_timeout(&mut self, buf: &mut Vec<u8>, len: usize, timeout: Duration) -> Result<()> {
        let _ = (buf, len, timeout);
        Err(Error::Config("this mechanism cannot receive with a timeout".into()))
    }
}

impl Link for Box<dyn Transport> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Transport::send(self, msg)
    }
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<()> {
        Transport::send_batch(self, msgs)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        let got = Transport::recv(self, buf)?;
        if got != len {
            return Err(Error::Protocol(format!("expected a {len}-byte message, got {got} bytes")));
        }
        Ok(())
    }
    fn recv_timeout(&mut self, buf: &mut Vec<u8>, len: usize, timeout: Duration) -> Result<()> {
        let got = Transport::recv_timeout(self, buf, timeout)?;
        if got != len {
            return Err(Error::Protocol(format!("expected a {len}-byte message, got {got} bytes")));
        }
        Ok(())
    }
}

pub(crate) const REPORT_LEN: usize = 16;

/// What the child reports at the end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildReport {
    pub(crate) cpu: Duration,
    pub(crate) count: u64,
}

fn send_report(link: &mut dyn Link, cpu: Duration, count: u64) -> Result<()> {
    let mut report = [0u8; REPORT_LEN];
    report[..8].copy_from_slice(&(cpu.as_nanos() as u64).to_le_bytes());
    report[8..].copy_from_slice(&count.to_le_bytes());
    link.send(&report)
}

pub(super) fn recv_report(link: &mut dyn Link, buf: &mut Vec<u8>) -> Result<ChildReport> {
    link.recv(buf, REPORT_LEN)?;
    let cpu = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
    let count = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    Ok(ChildReport { cpu: Duration::from_nanos(cpu), count })
}

/// Stamps `seq` into a message: the first byte is the "last" flag, then the sequence number
/// as far as it fits, and again at the end for messages of 16 bytes or more.
pub(super) fn stamp(msg: &mut [u8], seq: u64, last: bool) {
    msg[0] = last as u8;
    let bytes = seq.to_le_bytes();
    let n = (msg.len() - 1).min(8);
    msg[1..1 + n].copy_from_slice(&bytes[..n]);
    if msg.len() >= 17 {
        let end = msg.len();
        msg[end - 8..].copy_from_slice(&bytes);
    }
}

pub(super) fn check_stamp(msg: &[u8], seq: u64) -> Result<()> {
    let bytes = seq.to_le_bytes();
    let n = (msg.len() - 1).min(8);
    let head_ok = msg[1..1 + n] == bytes[..n];
    let tail_ok = msg.len() < 17 || msg[msg.len() - 8..] == bytes;
    if !head_ok || !tail_ok {
        return Err(Error::Protocol(format!("message {seq} arrived out of order or damaged")));
    }
    Ok(())
}

/// Result of the parent's side of a round-trip run.
pub(crate) struct PingResult {
    pub(crate) histogram: Histogram<u64>,
    pub(crate) parent_cpu: Duration,
    pub(crate) child: ChildReport,
}

/// Pings `warmup` times unmeasured, then up to `iterations` times measured, stopping early
/// once `budget` has passed (but never before 100 measured round trips). `progress` counts
/// the round trips made, for the placement sampler (a plain store: no locked instruction in
/// the loop).
pub(crate) fn ping(
    link: &mut dyn Link,
    size: usize,
    warmup: usize,
    iterations: usize,
    budget: Duration,
    progress: &AtomicU64,
) -> Result<PingResult> {
    assert!(size >= 1, "the harness needs messages of at least 1 byte");
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds");
    let mut msg = vec![0xA5u8; size];
    let mut buf = Vec::with_capacity(size);
    let mut cpu0 = thread_cpu()?;
    let mut started = Instant::now();
    // When the last round trip ended: the budget is checked against it, so that a round trip
    // costs two clock reads, not three (a read is about 24 ns here, a spinning round trip 250).
    let mut ended = started;
    let mut seq = 0u64;
    loop {
        let measured = seq as usize >= warmup;
        let done = seq as usize + 1 >= warmup + iterations.max(1);
        let out_of_time = measured && histogram.len() >= 100 && ended.duration_since(started) >= budget;
        let last = done || out_of_time;
        stamp(&mut msg, seq, last);
        let t0 = Instant::now();
        link.send(&msg)?;
        link.recv(&mut buf, size)?;
        ended = Instant::now();
        let dt = ended.duration_since(t0);
        check_stamp(&buf, seq)?;
        if measured {
            histogram.saturating_record(dt.as_nanos().max(1) as u64);
        }
        seq += 1;
        progress.store(seq, Ordering::Relaxed);
        if seq as usize == warmup {
            cpu0 = thread_cpu()?;
            started = Instant::now();
        }
        if last {
            break;
        }
    }
    let parent_cpu = thread_cpu()? - cpu0;
    let child = recv_report(link, &mut buf)?;
    Ok(PingResult { histogram, parent_cpu, child })
}

/// The child's side of [`ping`]: echoes until the last ping, then reports.
pub(crate) fn echo(link: &mut dyn Link, size: usize, warmup: usize) -> Result<()> {
    let mut buf = Vec::with_capacity(size);
    let mut cpu0 = thread_cpu()?;
    let mut count = 0u64;
    loop {
        link.recv(&mut buf, size)?;
        if count as usize == warmup {
            cpu0 = thread_cpu()?;
        }
        let last = buf[0] != 0;
        link.send(&buf)?;
        count += 1;
        if last {
            break;
        }
    }
    send_report(link, thread_cpu()? - cpu0, count.saturating_sub(warmup as u64))
}

/// Result of the parent's side of a stream.
pub(crate) struct StreamResult {
    pub(crate) elapsed: Duration,
    pub(crate) messages: u64,
    pub(crate) parent_cpu: Duration,
    pub(crate) child: ChildReport,
}

/// Receives `warmup + count` messages, checking each, timing the last `count`; `progress`
/// counts them as [`ping`]'s does.
pub(crate) fn drain(
    link: &mut dyn Link,
    size: usize,
    warmup: usize,
    count: usize,
    progress: &AtomicU64,
) -> Result<StreamResult> {
    let mut buf = Vec::with_capacity(size);
    let mut cpu0 = thread_cpu()?;
    let mut t0 = Instant::now();
    for seq in 0..(warmup + count) as u64 {
        if seq as usize == warmup {
            cpu0 = thread_cpu()?;
            t0 = Instant::now();
        }
        link.recv(&mut buf, size)?;
        check_stamp(&buf, seq)?;
        progress.store(seq + 1, Ordering::Relaxed);
    }
    let elapsed = t0.elapsed();
    let parent_cpu = thread_cpu()? - cpu0;
    let child = recv_report(link, &mut buf)?;
    Ok(StreamResult { elapsed, messages: count as u64, parent_cpu, child })
}

/// The child's side of [`drain`] for a batch run: sends the stream `batch` messages per
/// [`Link::send_batch`] call, then reports.
pub(crate) fn stream_batched(
    link: &mut dyn Link,
    size: usize,
    warmup: usize,
    count: usize,
    batch: usize,
) -> Result<()> {
    let total = (warmup + count) as u64;
    let mut msgs = vec![vec![0x5Au8; size]; batch.max(1)];
    let mut cpu0 = thread_cpu()?;
    let mut seq = 0u64;
    // The warm-up goes first, on its own, so that the measured part starts on time.
    for end in [warmup as u64, total] {
        if end == total {
            cpu0 = thread_cpu()?;
        }
        while seq < end {
            let n = (end - seq).min(msgs.len() as u64) as usize;
            for (i, msg) in msgs[..n].iter_mut().enumerate() {
                stamp(msg, seq + i as u64, false);
            }
            let slices: Vec<&[u8]> = msgs[..n].iter().map(Vec::as_slice).collect();
            link.send_batch(&slices)?;
            seq += n as u64;
        }
    }
    send_report(link, thread_cpu()? - cpu0, count as u64)
}

/// The child's side of [`drain`]: sends the stream, then reports.
pub(crate) fn stream(link: &mut dyn Link, size: usize, warmup: usize, count: usize) -> Result<()> {
    let mut msg = vec![0x5Au8; size];
    let mut cpu0 = thread_cpu()?;
    for seq in 0..(warmup + count) as u64 {
        if seq as usize == warmup {
            cpu0 = thread_cpu()?;
        }
        stamp(&mut msg, seq, false);
        link.send(&msg)?;
    }
    send_report(link, thread_cpu()? - cpu0, count as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_check_and_catch_damage() {
        for len in [1, 2, 8, 9, 16, 17, 64, 4096] {
            let mut msg = vec![0u8; len];
            stamp(&mut msg, 0x0102_0304_0506_0708, false);
            check_stamp(&msg, 0x0102_0304_0506_0708).unwrap();
            if len >= 2 {
                assert!(check_stamp(&msg, 0x0102_0304_0506_0709).is_err(), "len {len}");
            }
            if len >= 17 {
                msg[len - 1] ^= 1;
                assert!(check_stamp(&msg, 0x0102_0304_0506_0708).is_err());
            }
        }
    }
}
