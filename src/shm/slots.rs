//! Zero-copy messages: a slot in the outgoing ring to fill in place, and a received message
//! lent in place until the slot is dropped.

use std::mem;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use crate::deadline;
use crate::error::{Error, Result};
use crate::shm::ring::{Record, Reservation, Tag};
use crate::shm::{Got, Incoming, ShmTransport, Want};

impl ShmTransport {
    /// The largest message [`reserve`](ShmTransport::reserve) can place in one record: a
    /// quarter of the ring, minus a 16-byte header.
    pub fn max_in_place(&self) -> usize {
        self.producer.max_record().min(self.max)
    }

    /// Reserves `len` bytes in the outgoing ring to fill in place, waiting for room; the
    /// message is sent when the slot is [`commit`](ShmSendSlot::commit)ted and discarded if the
    /// slot is dropped.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] if `len` is above [`max_in_place`](ShmTransport::max_in_place)
    /// (use `send` for those); [`Error::Disconnected`] if the peer is gone.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, ShmTransport, Transport};
    ///
    /// let (mut a, mut b) = ShmTransport::pair(&Options::new())?;
    /// let mut slot = a.reserve(5)?;
    /// slot.copy_from_slice(b"fills");
    /// slot.commit();
    /// let msg = b.recv_in_place()?;
    /// assert_eq!(&*msg, b"fills");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn reserve(&mut self, len: usize) -> Result<ShmSendSlot<'_>> {
        let max = self.max_in_place();
        if len > max {
            return Err(Error::MessageTooLarge { len, max });
        }
        if let Some(res) = self.quick_space(len)? {
            return Ok(ShmSendSlot { transport: self, res });
        }
        if self.broken || self.send_broken {
            return Err(Error::Disconnected);
        }
        // A message accepted by send_timeout goes out whole first.
        self.flush_until(None)?;
        let Got::Space(res) = self.wait(Want::Space(len), None)? else { unreachable!("space wait") };
        Ok(ShmSendSlot { transport: self, res })
    }

    /// Receives the next message without copying it out of the ring: the slot borrows the
    /// bytes and frees their space when dropped. (A message that arrived in fragments, or
    /// was read ahead while a `send` waited, is served from a private buffer instead.)
    ///
    /// # Errors
    /// As [`Transport::recv`](crate::Transport::recv).
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, ShmTransport, Transport};
    ///
    /// let (mut a, mut b) = ShmTransport::pair(&Options::new())?;
    /// a.send(b"read me where I lie")?;
    /// {
    ///     let msg = b.recv_in_place()?;
    ///     assert!(msg.starts_with(b"read me"));
    /// } // dropping the slot frees its space in the ring
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn recv_in_place(&mut self) -> Result<ShmRecvSlot<'_>> {
        self.recv_slot(None)
    }

    /// Like [`recv_in_place`](ShmTransport::recv_in_place), with a timeout.
    ///
    /// # Errors
    /// As [`Transport::recv_timeout`](crate::Transport::recv_timeout).
    pub fn recv_in_place_timeout(&mut self, timeout: Duration) -> Result<ShmRecvSlot<'_>> {
        self.recv_slot(deadline::after(timeout))
    }

    fn recv_slot(&mut self, deadline: Option<Instant>) -> Result<ShmRecvSlot<'_>> {
        if let Some(rec) = self.quick_whole() {
            return Ok(ShmRecvSlot { transport: self, inner: Slot::Ring(rec) });
        }
        if let Some(rec) = self.wait_for_whole(deadline)? {
            return Ok(ShmRecvSlot { transport: self, inner: Slot::Ring(rec) });
        }
        let inner = match self.next_message(deadline)? {
            Incoming::Ring(rec) => Slot::Ring(rec),
            Incoming::Owned(msg) => Slot::Owned(msg),
            Incoming::Reassembled => Slot::Owned(mem::take(&mut self.partial)),
        };
        Ok(ShmRecvSlot { transport: self, inner })
    }
}

/// A message being written in place; see [`ShmTransport::reserve`].
///
/// It borrows the transport until it is committed or dropped. A slot dropped without
/// [`commit`](ShmSendSlot::commit) sends nothing: the peer never sees its bytes.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use switchboard::{Error, Options, ShmTransport, Transport};
///
/// let (mut a, mut b) = ShmTransport::pair(&Options::new())?;
/// let abandoned = a.reserve(4)?;
/// drop(abandoned); // discarded, never sent
///
/// let mut slot = a.reserve(4)?;
/// slot.copy_from_slice(&7u32.to_le_bytes());
/// slot.commit();
///
/// let mut buf = Vec::new();
/// b.recv(&mut buf)?;
/// assert_eq!(buf, 7u32.to_le_bytes());
/// assert!(matches!(b.recv_timeout(&mut buf, Duration::ZERO), Err(Error::Timeout)));
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct ShmSendSlot<'a> {
    transport: &'a mut ShmTransport,
    res: Reservation,
}

impl ShmSendSlot<'_> {
    /// Publishes the message to the peer.
    pub fn commit(self) {
        let len = self.len() as u64;
        self.transport.producer.commit(self.res, Tag::Whole, len);
        // Also writes the peer's eventfd if it waits in `poll`.
        self.transport.ring_peer();
    }
}

impl Deref for ShmSendSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.transport.producer.payload(&self.res)
    }
}

impl DerefMut for ShmSendSlot<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let res = self.res;
        self.transport.producer.payload_mut(&res)
    }
}

/// A received message read in place; see [`ShmTransport::recv_in_place`].
///
/// The bytes of a slot over the ring live in memory the peer maps: a peer that follows the
/// protocol never writes them before the slot is dropped, but a hostile or broken one could,
/// so copy them (or use `recv`) before acting on them if you do not trust the peer.
///
/// # Examples
/// ```
/// use switchboard::{Options, ShmTransport, Transport};
///
/// let (mut a, mut b) = ShmTransport::pair(&Options::new())?;
/// a.send(b"twelve bytes")?;
/// let slot = b.recv_in_place()?;
/// let copy = slot.to_vec(); // our own copy, which the peer cannot change under us
/// drop(slot); // frees the space in the ring, and `b` can be used again
/// assert_eq!(copy, b"twelve bytes");
/// b.send(b"thanks")?;
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct ShmRecvSlot<'a> {
    transport: &'a mut ShmTransport,
    inner: Slot,
}

#[derive(Debug)]
enum Slot {
    Ring(Record),
    Owned(Vec<u8>),
}

impl Deref for ShmRecvSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            Slot::Ring(rec) => self.transport.consumer.payload(rec),
            Slot::Owned(msg) => msg,
        }
    }
}

impl Drop for ShmRecvSlot<'_> {
    fn drop(&mut self) {
        if let Slot::Ring(rec) = &self.inner {
            let rec = *rec;
            self.transport.release(&rec);
        }
    }
}
