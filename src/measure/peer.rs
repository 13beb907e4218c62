//! A measurement child kept alive across many timed batches, for criterion's `iter_custom`.
//!
//! The child reads messages forever and acts on the first byte: 0 absorb, 1 echo, 2 answer
//! with a 16-byte ack (the end of a streamed batch), 3 exit.

use std::time::{Duration, Instant};

use super::link::{Link, REPORT_LEN};
use super::{Mechanism, Settings, reap, spawn};
use crate::error::{Error, Result};
use crate::process::ChildGuard;

const ABSORB: u8 = 0;
const ECHO: u8 = 1;
const ACK: u8 = 2;
const EXIT: u8 = 3;

/// A child process connected by one mechanism, ready for timed batches.
///
/// # Examples
/// Not run as a doctest: the peer is this program started again as a child process.
/// ```no_run
/// use switchboard::measure::{self, BenchPeer, Mechanism, Settings};
/// use switchboard::Kind;
///
/// measure::serve_if_child();
/// let mut peer = BenchPeer::spawn(Mechanism::transport(Kind::Pipe), 64, &Settings::default())?;
/// let elapsed = peer.round_trips(10_000)?;
/// println!("{:?} per round trip", elapsed / 10_000);
/// peer.finish()?;
/// # Ok::<(), switchboard::Error>(())
/// ```
pub struct BenchPeer {
    /// Killed and reaped if the peer is dropped without `finish`, or after an hour.
    child: Option<ChildGuard>,
    link: Box<dyn Link>,
    msg: Vec<u8>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for BenchPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchPeer").field("size", &self.msg.len()).finish_non_exhaustive()
    }
}

impl BenchPeer {
    /// Starts the child (this executable, which must call
    /// [`serve_if_child`](super::serve_if_child)) and checks one echo and one ack before any
    /// timing.
    ///
    /// # Errors
    /// Whatever spawning returns, or [`Error::Protocol`] if the check fails.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn spawn(mechanism: Mechanism, size: usize, settings: &Settings) -> Result<Self> {
        assert!(size > 0, "messages must have at least one byte");
        let (child, link) = spawn(mechanism, "bench", size, 0, 0, settings)?;
        let mut peer = BenchPeer {
            child: Some(ChildGuard::with_deadline(child, Duration::from_secs(3600))),
            link,
            msg: vec![0x77; size],
            buf: Vec::with_capacity(size),
        };
        peer.msg[size - 1] = 0x11;
        peer.round_trips(1)?;
        if peer.buf != peer.msg {
            return Err(Error::Protocol("the bench peer's echo differs".into()));
        }
        peer.stream(1)?;
        Ok(peer)
    }

    /// Times `n` round trips.
    ///
    /// # Errors
    /// Whatever the exchange returns.
    pub fn round_trips(&mut self, n: u64) -> Result<Duration> {
        self.msg[0] = ECHO;
        let size = self.msg.len();
        let start = Instant::now();
        for _ in 0..n {
            self.link.send(&self.msg)?;
            self.link.recv(&mut self.buf, size)?;
        }
        Ok(start.elapsed())
    }

    /// Times sending `n` messages to the child and its acknowledgement of the last one.
    ///
    /// # Errors
    /// Whatever the exchange returns.
    pub fn stream(&mut self, n: u64) -> Result<Duration> {
        let start = Instant::now();
        self.msg[0] = ABSORB;
        for _ in 1..n.max(1) {
            self.link.send(&self.msg)?;
        }
        self.msg[0] = ACK;
        self.link.send(&self.msg)?;
        self.link.recv(&mut self.buf, REPORT_LEN)?;
        Ok(start.elapsed())
    }

    /// Tells the child to exit and checks that it did so cleanly.
    ///
    /// # Errors
    /// [`Error::Protocol`] if the child failed.
    pub fn finish(mut self) -> Result<()> {
        self.msg[0] = EXIT;
        self.link.send(&self.msg)?;
        reap(self.child.take().expect("child present until finished"))
    }
}

/// The child's side.
pub(crate) fn serve(link: &mut dyn Link, size: usize) -> Result<()> {
    let mut buf = Vec::with_capacity(size);
    let ack = [0u8; REPORT_LEN];
    loop {
        link.recv(&mut buf, size)?;
        match buf[0] {
            ABSORB => {}
            ECHO => link.send(&buf)?,
            ACK => link.send(&ack)?,
            EXIT => return Ok(()),
            other => return Err(Error::Config(format!("unknown bench command {other}"))),
        }
    }
}
