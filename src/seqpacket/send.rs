//! Sending records: one `send` (or `sendmsg`, above 256 bytes) per record, reading ahead while
//! the socket has no room, and the outbox that holds the rest of a message `send_timeout`
//! accepted half-sent.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::time::Instant;

use crate::deadline;
use crate::error::{Error, Result};
use crate::seqpacket::record::{self, RECORD_MAX, RECORD_MIN};
use crate::seqpacket::{SeqpacketTransport, sys};
use crate::stream::SOCKET_SEND_SLICE;

/// What a message read ahead costs besides its bytes, so that a peer streaming empty messages
/// cannot grow the inbox without bound.
const INBOX_OVERHEAD: usize = 64;

impl SeqpacketTransport {
    /// Sends `msg` record by record until `deadline` (`None`: without limit). Nothing sent by
    /// then is `Timeout`; a message partly sent is accepted and its rest kept in the outbox.
    pub(super) fn send_until(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<()> {
        let max = self.asm.max();
        if msg.len() > max {
            return Err(Error::MessageTooLarge { len: msg.len(), max });
        }
        if self.broken || self.send_broken {
            return Err(Error::Disconnected);
        }
        if !self.flush_until(deadline)? {
            return Err(Error::Timeout);
        }
        if msg.len() < self.record {
            // One whole record, the common case, without the list of records below. What did
            // not go out (no room yet, a signal, a smaller send buffer) is tried again there.
            match sys::send_record(self.fd.as_fd(), record::Header::whole().as_bytes(), msg, deadline.is_none()) {
                Ok(()) => return Ok(()),
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock)
                        || e.raw_os_error() == Some(libc::EMSGSIZE) => {}
                Err(e) => {
                    self.send_broken = true;
                    return Err(e.into());
                }
            }
        }
        let mut records: VecDeque<_> = record::split(msg, self.record).into();
        let mut sent_any = false;
        while let Some(&(header, from, to)) = records.front() {
            match sys::send_record(self.fd.as_fd(), header.as_bytes(), &msg[from..to], deadline.is_none()) {
                Ok(()) => {
                    records.pop_front();
                    sent_any = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) && !sent_any && self.record > RECORD_MIN => {
                    // The send buffer shrank below what it was when we sized our records.
                    self.record = (self.record / 2).max(RECORD_MIN);
                    records = record::split(msg, self.record).into();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.wait_writable(deadline)? {
                        continue;
                    }
                    self.set_write_interest(true);
                    if !sent_any {
                        return Err(Error::Timeout);
                    }
                    // Accepted: the rest goes out with the next send or flush.
                    self.outbox.clear();
                    self.outbox.try_reserve(msg.len()).map_err(|_| Error::OutOfMemory { bytes: msg.len() })?;
                    self.outbox.extend_from_slice(msg);
                    self.outbox_records = records;
                    return Ok(());
                }
                Err(e) => {
                    // Half a message may be out, or the peer is gone: no more sends.
                    self.send_broken = sent_any || e.raw_os_error() != Some(libc::EMSGSIZE);
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Sends the rest of an accepted message until `deadline`; whether it is all out.
    pub(super) fn flush_until(&mut self, deadline: Option<Instant>) -> Result<bool> {
        if self.outbox_records.is_empty() {
            // A send that timed out before its first record left the interest on: off now.
            self.set_write_interest(false);
            return Ok(true);
        }
        if self.broken || self.send_broken {
            return Err(Error::Disconnected);
        }
        while let Some(&(header, from, to)) = self.outbox_records.front() {
            match sys::send_record(self.fd.as_fd(), header.as_bytes(), &self.outbox[from..to], deadline.is_none()) {
                Ok(()) => {
                    self.outbox_records.pop_front();
                }
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
        self.set_write_interest(false);
        Ok(true)
    }

    /// Waits a little for room to write, reading what the peer sends meanwhile (up to a
    /// bound) so that a peer blocked in its own send can finish and start reading. Returns
    /// `false` once `deadline` has passed.
    ///
    /// The wait is cut into slices of [`SOCKET_SEND_SLICE`]: a seqpacket socket polls
    /// writable only when three quarters of its send buffer are free, while a send succeeds
    /// as soon as one record fits, so the caller tries again after each slice.
    fn wait_writable(&mut self, deadline: Option<Instant>) -> Result<bool> {
        let slice = deadline::earliest(deadline, deadline::after(SOCKET_SEND_SLICE));
        let absorb = self.absorb_room();
        let ready = sys::wait(self.fd.as_fd(), absorb, true, slice)?;
        if ready.readable && absorb {
            self.absorb();
        }
        Ok(!deadline::passed(deadline))
    }

    /// Whether a blocked send may read ahead: up to one maximum message (or one record).
    fn absorb_room(&self) -> bool {
        let held = self.inbox_bytes + INBOX_OVERHEAD * self.inbox.len();
        !self.read_eof && !self.broken && self.failed.is_none() && held < self.asm.max().max(RECORD_MAX)
    }

    /// Reads the records that are there, without waiting, into whole messages in the inbox.
    /// The end or an error is kept for `recv` to report after the messages before it.
    fn absorb(&mut self) {
        while self.absorb_room() {
            let n = match self.read_record(false) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(Error::Disconnected) => {
                    self.read_eof = true;
                    return;
                }
                Err(e) => {
                    self.failed = Some(e);
                    return;
                }
            };
            let mut msg = Vec::new();
            match self.asm.push(&self.rbuf[..n], &mut msg) {
                Ok(true) => {
                    self.inbox_bytes += msg.len();
                    self.inbox.push_back(msg);
                }
                Ok(false) => {}
                Err(e) => {
                    self.failed = Some(e);
                    return;
                }
            }
        }
    }
}
