//! The UDP baseline: two connected datagram sockets on 127.0.0.1 (`udp(7)`), one datagram
//! per message, and what loopback does when a receiver falls behind: it drops.
//!
//! A datagram that finds the receive buffer full is dropped without a word to the sender.
//! Three answers to that, each named in the report:
//! - **Round trips** have one datagram in flight, which never overflows a buffer; still, the
//!   pinger waits at most [`RESEND_AFTER`] for its echo and then sends the ping again (the
//!   echoer answers a repeated ping again without counting it, and the pinger drops stale
//!   echoes). [`udp_resends`] counts the resends of this process. One-byte pings carry no
//!   sequence number (only the last flag), so they are neither resent nor deduplicated.
//! - **Measured streams** are paced by a credit window: the receiver returns a cumulative
//!   count on a second socket pair every half window, and a sender with a full window waits
//!   for it. The window holds what fits twice over in the receive buffer (raised to 4 MiB where
//!   `net.core.rmem_max` allows), counting a kilobyte of kernel overhead per datagram, so a
//!   measured stream loses nothing; if it ever did, the sequence check fails the run instead
//!   of hiding it. The credits cost one small datagram each way per half window.
//! - **Unpaced**, a sender outruns its receiver and the difference is lost:
//!   [`udp_stream_loss`](super::udp_stream_loss) (`udp_loss.rs`) sends as fast as it can and
//!   reports sent against received.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv, setsockopt, sockopt};

use super::{PEER_LIMIT, Part};
use crate::error::{Error, Result};
use crate::measure::link::Link;
use crate::measure::sys::readable_within;

/// The largest UDP payload over IPv4: 65,535 less the IP and UDP headers.
pub(super) const MAX_DATAGRAM: usize = 65_507;

/// How long a pinger waits for an echo before it sends the ping again.
const RESEND_AFTER: Duration = Duration::from_millis(200);

/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max` and doubles it).
const RCVBUF: usize = 4 << 20;

/// Kernel bookkeeping counted per datagram when sizing the window (an skb's truesize is
/// the payload plus several hundred bytes).
const OVERHEAD: usize = 1024;

static RESENDS: AtomicU64 = AtomicU64::new(0);

/// Pings this process sent again because no echo came within 200 ms (the UDP baseline's
/// round trips); 0 on a healthy loopback.
///
/// # Examples
/// ```
/// // Nothing was measured in this process.
/// assert_eq!(switchboard::measure::udp_resends(), 0);
/// ```
pub fn udp_resends() -> u64 {
    RESENDS.load(Ordering::Relaxed)
}

/// A connected pair on 127.0.0.1.
pub(super) fn pair() -> Result<(UdpSocket, UdpSocket)> {
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    a.connect(b.local_addr()?)?;
    b.connect(a.local_addr()?)?;
    Ok((a, b))
}

/// The window: how many datagrams of `size` bytes may be unacknowledged.
fn window(rcvbuf: usize, size: usize) -> u64 {
    (rcvbuf / (size + OVERHEAD) / 2).clamp(1, 256) as u64
}

struct UdpLink {
    data: UdpSocket,
    credit: UdpSocket,
    part: Part,
    window: u64,
    sent: u64,
    /// The receiver's count, as its last credit said.
    credited: u64,
    received: u64,
    /// The pinger's last ping (to resend it); the echoer's last ping header (to spot repeats).
    last: Vec<u8>,
    /// A datagram one byte larger than expected shows up as too long instead of truncated.
    scratch: Vec<u8>,
    /// The data socket's read timeout now.
    read_limit: Duration,
}

/// The part of a message the harness stamps (the last flag and sequence number, `link.rs`):
/// equal headers mean the same ping.
fn header(msg: &[u8]) -> &[u8] {
    &msg[..msg.len().min(9)]
}

/// Whether pings of this length carry a sequence number (at least its low byte, which
/// differs between consecutive pings): 1-byte pings carry only the last flag, so they are
/// neither resent nor deduplicated, and a lost one ends the run with `Timeout`.
fn numbered(len: usize) -> bool {
    len >= 2
}

impl UdpLink {
    fn new(data: UdpSocket, credit: UdpSocket, size: usize, part: Part) -> Result<Self> {
        let rcvbuf = nix::sys::socket::getsockopt(&data.as_fd(), sockopt::RcvBuf)?;
        let read_limit = if part == Part::Pinger { RESEND_AFTER } else { PEER_LIMIT };
        data.set_read_timeout(Some(read_limit))?;
        credit.set_read_timeout(Some(PEER_LIMIT))?;
        Ok(UdpLink {
            data,
            credit,
            part,
            window: window(rcvbuf, size),
            sent: 0,
            credited: 0,
            received: 0,
            last: Vec::new(),
            scratch: Vec::new(),
            read_limit,
        })
    }

    /// Reads the credits that arrived, without waiting; or, with `wait`, waits for one first.
    fn take_credits(&mut self, wait: bool) -> Result<()> {
        let mut b = [0u8; 8];
        if wait {
            match self.credit.recv(&mut b) {
                Ok(8) => self.credited = self.credited.max(u64::from_le_bytes(b)),
                Ok(n) => return Err(Error::Protocol(format!("udp: a {n}-byte credit"))),
                Err(e) if timed_out(&e) => return Err(Error::Timeout),
                Err(e) => return Err(e.into()),
            }
        }
        // MSG_DONTWAIT rather than toggling O_NONBLOCK: one syscall per credit, not three.
        loop {
            match recv(self.credit.as_raw_fd(), &mut b, MsgFlags::MSG_DONTWAIT) {
                Ok(8) => self.credited = self.credited.max(u64::from_le_bytes(b)),
                Ok(_) => {}
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One datagram into `buf`, counted, and a credit every half window.
    fn recv_datagram(&mut self, buf: &mut Vec<u8>, len: usize) -> std::io::Result<()> {
        self.scratch.resize(len + 1, 0);
        let got = self.data.recv(&mut self.scratch)?;
        if got != len {
            return Err(std::io::Error::other(format!("udp: expected a {len}-byte datagram, got {got} bytes")));
        }
        buf.clear();
        buf.extend_from_slice(&self.scratch[..len]);
        self.received += 1;
        if self.received.is_multiple_of((self.window / 2).max(1)) {
            self.credit.send(&self.received.to_le_bytes())?;
        }
        Ok(())
    }
}

pub(super) fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl Link for UdpLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if self.sent - self.credited >= self.window {
            self.take_credits(false)?;
            while self.sent - self.credited >= self.window {
                self.take_credits(true)?;
            }
        } else if self.sent.is_multiple_of((self.window / 2).max(1)) {
            // Keep the credit socket drained, so that it never fills and drops the newest.
            self.take_credits(false)?;
        }
        let n = self.data.send(msg)?;
        if n != msg.len() {
            return Err(Error::Protocol(format!("udp: sent {n} of {} bytes", msg.len())));
        }
        self.sent += 1;
        if self.part == Part::Pinger {
            self.last.clear();
            self.last.extend_from_slice(msg);
        }
        Ok(())
    }

    fn recv_timeout(&mut self, buf: &mut Vec<u8>, len: usize, timeout: Duration) -> Result<()> {
        if self.part == Part::Pinger {
            return Err(Error::Config("udp resends a lost ping, so its pinger cannot stop waiting early".into()));
        }
        // Not SO_RCVTIMEO: the kernel rounds it up to a scheduler tick (4 ms).
        if !readable_within(self.data.as_fd(), timeout)? {
            return Err(Error::Timeout);
        }
        self.recv(buf, len)
    }

    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        self.set_read_limit(if self.part == Part::Pinger { RESEND_AFTER } else { PEER_LIMIT })?;
        self.recv_datagrams(buf, len)
    }
}

impl UdpLink {
    fn set_read_limit(&mut self, limit: Duration) -> Result<()> {
        if limit != self.read_limit {
            self.data.set_read_timeout(Some(limit))?;
            self.read_limit = limit;
        }
        Ok(())
    }

    /// Receives until a datagram for the caller arrives: resends a ping whose echo is late,
    /// skips stale echoes and repeated pings (see the module docs).
    fn recv_datagrams(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        let mut waited = Duration::ZERO;
        loop {
            match self.recv_datagram(buf, len) {
                Ok(()) => {}
                // The pinger's read limit is the resend interval: wait on (up to the peer
                // limit), sending a numbered ping again each time.
                Err(e) if timed_out(&e) && self.part == Part::Pinger => {
                    waited += RESEND_AFTER;
                    if waited >= PEER_LIMIT {
                        return Err(Error::Timeout);
                    }
                    if numbered(self.last.len()) {
                        RESENDS.fetch_add(1, Ordering::Relaxed);
                        let last = std::mem::take(&mut self.last);
                        let sent = self.data.send(&last);
                        self.last = last;
                        self.sent += 1;
                        sent?;
                    }
                    continue;
                }
                Err(e) if timed_out(&e) => return Err(Error::Timeout),
                Err(e) if e.kind() == ErrorKind::Other => return Err(Error::Protocol(e.to_string())),
                Err(e) => return Err(e.into()),
            }
            match self.part {
                // A stale echo of a ping sent twice: the answer to this one is still coming.
                Part::Pinger if numbered(self.last.len()) && header(buf) != header(&self.last) => continue,
                // The echo of the last ping (its first byte says so, `link.rs`): what follows
                // is the child's report, not an echo.
                Part::Pinger if buf.first().is_some_and(|&flag| flag != 0) => self.last.clear(),
                Part::Echoer if numbered(buf.len()) && header(buf) == self.last => {
                    // The pinger sent this ping again: its echo was lost or late. Answer again,
                    // without handing the repeat to the echo loop.
                    let n = self.data.send(buf)?;
                    self.sent += 1;
                    debug_assert_eq!(n, buf.len());
                    continue;
                }
                Part::Echoer => {
                    self.last.clear();
                    self.last.extend_from_slice(header(buf));
                }
                _ => {}
            }
            return Ok(());
        }
    }
}

/// Makes both pairs, gives the child its ends as stdin (data) and stdout (credits).
pub(super) fn spawn(size: usize, part: Part, command: &mut Command) -> Result<(Child, Box<dyn Link>)> {
    let (data, child_data) = pair()?;
    let (credit, child_credit) = pair()?;
    for s in [&data, &child_data] {
        // Best effort: without it the window is smaller, nothing else changes.
        let _ = setsockopt(s, sockopt::RcvBuf, &RCVBUF);
    }
    let child = command
        .stdin(Stdio::from(OwnedFd::from(child_data)))
        .stdout(Stdio::from(OwnedFd::from(child_credit)))
        .spawn()?;
    Ok((child, Box::new(UdpLink::new(data, credit, size, part)?)))
}

/// The child's side, from its stdin and stdout.
pub(super) fn child_link(size: usize, part: Part) -> Result<Box<dyn Link>> {
    let data = UdpSocket::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let credit = UdpSocket::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    Ok(Box::new(UdpLink::new(data, credit, size, part)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_fits_the_buffer_twice() {
        assert_eq!(window(212_992, 64), 97);
        assert_eq!(window(212_992, 65_507), 1);
        assert_eq!(window(8 << 20, 64), 256);
        assert_eq!(window(0, 64), 1);
    }

    /// A pinger and an echoer in two threads, then a paced stream of more than the buffer
    /// holds: nothing lost, credits flow.
    #[test]
    fn echo_and_paced_stream_lose_nothing() {
        let (a, b) = pair().unwrap();
        let (ca, cb) = pair().unwrap();
        let mut pinger = UdpLink::new(a, ca, 64, Part::Pinger).unwrap();
        let mut echoer = UdpLink::new(b, cb, 64, Part::Echoer).unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = Vec::new();
            for _ in 0..200 {
                echoer.recv(&mut buf, 64)?;
                echoer.send(&buf)?;
            }
            Ok::<_, Error>(())
        });
        let mut buf = Vec::new();
        for i in 0..200u64 {
            let mut msg = [0u8; 64];
            msg[1..9].copy_from_slice(&i.to_le_bytes());
            pinger.send(&msg).unwrap();
            pinger.recv(&mut buf, 64).unwrap();
            assert_eq!(buf, msg);
        }
        echo.join().unwrap().unwrap();

        let (a, b) = pair().unwrap();
        let (ca, cb) = pair().unwrap();
        let mut sender = UdpLink::new(a, ca, 1024, Part::Other).unwrap();
        let mut receiver = UdpLink::new(b, cb, 1024, Part::Other).unwrap();
        let count = 20_000u64; // 20 MB: far more than a default receive buffer
        let stream = std::thread::spawn(move || {
            for i in 0..count {
                sender.send(&[(i % 251) as u8; 1024])?;
            }
            Ok::<_, Error>(())
        });
        for i in 0..count {
            receiver.recv(&mut buf, 1024).unwrap();
            assert_eq!(buf[0], (i % 251) as u8, "datagram {i}");
        }
        stream.join().unwrap().unwrap();
    }

    #[test]
    fn a_repeated_ping_is_answered_again_but_not_passed_on() {
        let (a, b) = pair().unwrap();
        let (ca, cb) = pair().unwrap();
        let mut echoer = UdpLink::new(b, cb, 16, Part::Echoer).unwrap();
        let mut ping = [0u8; 16];
        ping[1] = 1;
        a.send(&ping).unwrap();
        a.send(&ping).unwrap(); // the same ping again
        ping[1] = 2;
        a.send(&ping).unwrap();
        let mut buf = Vec::new();
        echoer.recv(&mut buf, 16).unwrap();
        assert_eq!(buf[1], 1);
        echoer.recv(&mut buf, 16).unwrap();
        assert_eq!(buf[1], 2, "the repeat was skipped");
        let mut echo = [0u8; 17];
        assert_eq!(a.recv(&mut echo).unwrap(), 16, "the repeat was answered");
        drop(ca);
    }
}
