//! What UDP does when a sender outruns its receiver on loopback: one thread sends datagrams as
//! fast as it can, another receives them, and the difference between sent and received is what
//! the kernel dropped when the receive buffer was full (`udp(7)`, `SO_RCVBUF`). The measured
//! `udp` rows avoid this with a credit window (`udp.rs`); this probe shows why they need one.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::socket::sockopt;

use super::PEER_LIMIT;
use super::udp::{MAX_DATAGRAM, pair, timed_out};
use crate::error::{Error, Result};

/// What an unpaced UDP stream lost on loopback.
///
/// # Examples
/// ```
/// use switchboard::measure::udp_stream_loss;
///
/// let loss = udp_stream_loss(64, 1000)?;
/// assert_eq!(loss.sent, 1000);
/// assert!(loss.received <= loss.sent);
/// println!("{:.0}% lost", loss.lost_fraction() * 100.0);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct UdpLoss {
    /// Datagram payload, bytes.
    pub size: usize,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams received.
    pub received: u64,
    /// The receiver's `SO_RCVBUF` as the kernel reports it (twice what was asked).
    pub rcvbuf: usize,
}

impl UdpLoss {
    /// The share of datagrams lost, 0 to 1.
    pub fn lost_fraction(&self) -> f64 {
        1.0 - self.received as f64 / self.sent.max(1) as f64
    }
}

/// Sends `count` datagrams of `size` bytes as fast as one thread can to another thread that
/// receives them, both on loopback with default buffers, and counts what arrived: what UDP
/// does when a sender outruns its receiver. The receiver stops 200 ms after the last
/// datagram it saw (or after 10 s without any).
///
/// # Errors
/// [`Error::Config`] above 65,507 bytes; whatever the sockets return.
pub fn udp_stream_loss(size: usize, count: u64) -> Result<UdpLoss> {
    if size == 0 || size > MAX_DATAGRAM {
        return Err(Error::Config(format!("a UDP datagram carries 1 to {MAX_DATAGRAM} bytes")));
    }
    let (tx, rx) = pair()?;
    let rcvbuf = nix::sys::socket::getsockopt(&rx.as_fd(), sockopt::RcvBuf)?;
    // Up to 10 s for the first datagram (the sender may start late on a loaded machine),
    // then 200 ms of silence ends the stream.
    rx.set_read_timeout(Some(PEER_LIMIT))?;
    let receiver = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut buf = vec![0u8; size + 1];
        let mut received = 0u64;
        let start = Instant::now();
        loop {
            match rx.recv(&mut buf) {
                Ok(_) => {
                    if received == 0 {
                        rx.set_read_timeout(Some(Duration::from_millis(200)))?;
                    }
                    received += 1;
                }
                Err(e) if timed_out(&e) => return Ok(received),
                Err(e) => return Err(e),
            }
            if start.elapsed() > PEER_LIMIT {
                return Ok(received);
            }
        }
    });
    let msg = vec![0x55u8; size];
    let mut sent = 0;
    for _ in 0..count {
        match tx.send(&msg) {
            Ok(_) => sent += 1,
            // The receiver's ICMP or buffer errors: the datagram is lost, and counted so.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::ECONNREFUSED)) => sent += 1,
            Err(e) => return Err(e.into()),
        }
    }
    let received = receiver.join().map_err(|_| Error::Protocol("the UDP receiver thread panicked".into()))??;
    Ok(UdpLoss { size, sent, received, rcvbuf })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_streams_are_refused() {
        assert!(udp_stream_loss(MAX_DATAGRAM + 1, 1).is_err());
        assert!(udp_stream_loss(0, 1).is_err());
    }

    #[test]
    fn what_is_received_is_at_most_what_was_sent() {
        let loss = udp_stream_loss(1024, 2000).unwrap();
        assert_eq!(loss.sent, 2000);
        assert!(loss.received <= loss.sent && loss.rcvbuf > 0);
        assert!((0.0..=1.0).contains(&loss.lost_fraction()));
    }
}
