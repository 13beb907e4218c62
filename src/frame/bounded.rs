//! Sends that give up at a deadline, so that one thread serving many peers never waits on a
//! slow one.
//!
//! A frame is never left half-written on the wire for the peer to choke on: `send_until`
//! either writes nothing (and says `Timeout`: the message was not sent), or, once the first
//! byte is out, accepts the message and keeps the rest in an outbox that the next send, or
//! `flush_until`, writes before anything else. The outbox holds at most one message's tail,
//! and the readiness descriptor polls readable when the stream can take more of it.

use std::io::{self, IoSlice};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::frame::{Framed, PREFIX_LEN, Stream, encode_prefix};

impl<S: Stream> Framed<S> {
    /// Bytes of an accepted message still to be written.
    pub(crate) fn pending_send(&self) -> usize {
        self.outbox.len() - self.outbox_at
    }

    /// Writes the tail of an accepted message until `deadline`; whether it is all out.
    #[inline]
    pub(crate) fn flush_until(&mut self, deadline: Option<Instant>) -> Result<bool> {
        // Almost always there is nothing to write: no call. (A send that timed out before
        // its first byte left the write interest on, with an empty outbox: off now.)
        if self.outbox_at == self.outbox.len() && !self.broken && !self.send_broken {
            self.io.set_write_interest(false);
            return Ok(true);
        }
        self.flush_outbox(deadline)
    }

    fn flush_outbox(&mut self, deadline: Option<Instant>) -> Result<bool> {
        if self.broken || self.send_broken {
            return if self.pending_send() == 0 { Ok(true) } else { Err(Error::Disconnected) };
        }
        while self.outbox_at < self.outbox.len() {
            match self.io.try_write_now(&[IoSlice::new(&self.outbox[self.outbox_at..])]) {
                Ok(n) => self.outbox_at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.wait_writable(deadline)? {
                        return Ok(false);
                    }
                }
                Err(e) => {
                    self.send_broken = true;
                    return Err(e.into());
                }
            }
        }
        self.outbox.clear();
        self.outbox_at = 0;
        self.io.set_write_interest(false);
        Ok(true)
    }

    /// Sends one message, giving up at `deadline` if the stream cannot take its first byte
    /// (`Timeout`: nothing was sent). A message partly written by then is accepted: its tail
    /// waits in the outbox for the next send or flush.
    pub(crate) fn send_until(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<()> {
        let result = self.send_until_inner(msg, deadline);
        self.io.set_buffered(self.buffered_ready());
        result
    }

    fn send_until_inner(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge { len: msg.len(), max: self.max });
        }
        if self.broken || self.send_broken {
            return Err(Error::Disconnected);
        }
        if !self.flush_until(deadline)? {
            return Err(Error::Timeout);
        }
        let prefix = encode_prefix(msg.len());
        let total = PREFIX_LEN + msg.len();
        let mut done = 0;
        while done < total {
            let result = if done < PREFIX_LEN {
                self.io.try_write_now(&[IoSlice::new(&prefix[done..]), IoSlice::new(msg)])
            } else {
                self.io.try_write_now(&[IoSlice::new(&msg[done - PREFIX_LEN..])])
            };
            match result {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.wait_writable(deadline)? {
                        continue;
                    }
                    if done == 0 {
                        // The caller will want to know when there is room.
                        self.io.set_write_interest(true);
                        return Err(Error::Timeout);
                    }
                    // Accepted: the rest goes out with the next send or flush.
                    let rest = total - done;
                    self.outbox.try_reserve(rest).map_err(|_| Error::OutOfMemory { bytes: rest })?;
                    if done < PREFIX_LEN {
                        self.outbox.extend_from_slice(&prefix[done..]);
                        self.outbox.extend_from_slice(msg);
                    } else {
                        self.outbox.extend_from_slice(&msg[done - PREFIX_LEN..]);
                    }
                    self.io.set_write_interest(true);
                    return Ok(());
                }
                Err(e) => {
                    self.send_broken = true;
                    return Err(e.into());
                }
            }
        }
        self.io.set_write_interest(false);
        Ok(())
    }
}
