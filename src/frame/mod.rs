//! Length-prefixed framing over a byte stream, shared by tcp, unix, pipe and fifo.
//!
//! Wire format: each message is a `u32` little-endian length, then that many bytes (see the
//! README). A stream's `send` and `recv` may move fewer bytes than asked (the socket HOWTO's
//! lesson), so the writer loops over partial writes and the reader reassembles frames from a
//! buffer. The sender makes one write per message: a frame of up to 4 KiB is copied into
//! one buffer and written plainly (`write`/`send`), a larger one is a gather write of prefix
//! and body (`writev`/`sendmsg`), with no copy; the receiver reads into a 64 KiB buffer and
//! serves every frame in it before reading again. A pipe's receiver paces its reads instead
//! (`pacing.rs`): the rest of its frame and the next prefix, or a backlog but for a few
//! frames, so that it never empties a pipe that still has frames coming (a write into an
//! empty pipe costs the writer). Frames too big for that buffer are read straight into a
//! body buffer that is handed to the caller by swapping `Vec`s, so no message is copied
//! twice and warm buffers are never reallocated.
//!
//! Memory follows the bytes that arrived, never the length a peer announces: the body buffer
//! starts at 64 KiB and doubles only as it fills, up to the announced length, so a peer that
//! announces 60 MiB and sends ten bytes costs 64 KiB, and a frame of `n` bytes costs at most
//! `2n`. Every growth is a `try_reserve`, so running out of memory is
//! [`Error::OutOfMemory`] for that connection, not an abort.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::mem;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::error::{Error, Result, try_resize};
use pacing::Pacing;

/// What [`Stream::wait`] found ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

/// The most file descriptors one message may carry (`SCM_RIGHTS`; the kernel's own limit is
/// 253).
pub const MAX_FDS_PER_MESSAGE: usize = 64;

/// The operations the framing layer needs from a byte stream (`stream.rs` implements it
/// over sockets and pipes; the tests over memory).
pub(crate) trait Stream {
    /// Reads at least one byte, blocking until there is one; `Ok(0)` at end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what fits now; `ErrorKind::WouldBlock` when nothing fits.
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Like [`try_write_vectored`](Stream::try_write_vectored), but never waits at all (a
    /// socket's write may otherwise block for a short slice).
    fn try_write_now(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.try_write_vectored(bufs)
    }
    /// Tells the stream whether an accepted message still has bytes to write, so that its
    /// readiness descriptor, if it has one, also polls readable when the stream can take them.
    fn set_write_interest(&self, on: bool) {
        let _ = on;
    }
    /// Reads like [`read`](Stream::read), appending the descriptors that came with the bytes
    /// to `fds` (a stream that cannot carry descriptors never adds any).
    fn read_fds(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        let _ = fds;
        self.read(buf)
    }
    /// Writes like [`try_write_vectored`](Stream::try_write_vectored), with `fds` attached to
    /// the first byte written (a stream that cannot carry descriptors refuses any).
    fn try_write_fds(&mut self, bufs: &[IoSlice<'_>], fds: &[RawFd]) -> io::Result<usize> {
        if fds.is_empty() { self.try_write_vectored(bufs) } else { Err(io::ErrorKind::Unsupported.into()) }
    }
    /// Waits until the stream is readable (if `read`) or writable (if `write`), or until
    /// `deadline`; returns what is ready (nothing at the deadline).
    fn wait(&mut self, read: bool, write: bool, deadline: Option<Instant>) -> io::Result<Ready>;
    /// Tells the stream whether a whole message (or the end) waits in the framing layer's
    /// buffer, so that its readiness descriptor, if it has one, polls readable.
    fn set_buffered(&self, ready: bool) {
        let _ = ready;
    }
    /// The descriptor that polls readable when the stream is readable or `buffered` (as last
    /// set by [`set_buffered`](Stream::set_buffered)) is true.
    fn ready_fd(&self, buffered: bool) -> io::Result<BorrowedFd<'_>> {
        let _ = buffered;
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Whether reads should be paced (a pipe: see [`pacing`]).
    fn paced(&self) -> bool {
        false
    }
    /// How many bytes wait unread in the kernel, for a paced stream (`None` if unknown).
    fn unread(&self) -> Option<usize> {
        None
    }
}

/// Frames per gather write in [`Framed::send_batch`]: two slices each, within `IOV_MAX`
/// (1024 on Linux).
pub(crate) const BATCH_PER_WRITE: usize = 512;

/// Frames up to this size (prefix included) are copied into one buffer and written with one
/// plain slice rather than a two-slice gather write.
///
/// Up to a page, the copy costs less than the kernel's import of a two-entry iovec, and a
/// pipe's writer that is slower than its reader lets the reader catch up and empty the pipe
/// (see `pacing.rs`): with 512 here, 1 KiB pipe streams ran at 0.60-0.70x the raw pipe's
/// rate, with 4 KiB at 0.86-0.93x (unix 0.91-0.97x against 1.09-1.16x), in interleaved runs.
const SMALL_FRAME: usize = 4096;

/// Bytes in the length prefix.
pub(crate) const PREFIX_LEN: usize = 4;

/// The length prefix of a frame of `len` bytes (`len` is at most `u32::MAX`).
pub(crate) fn encode_prefix(len: usize) -> [u8; PREFIX_LEN] {
    debug_assert!(len <= u32::MAX as usize);
    (len as u32).to_le_bytes()
}

/// The length a prefix announces.
pub(crate) fn decode_prefix(prefix: [u8; PREFIX_LEN]) -> usize {
    u32::from_le_bytes(prefix) as usize
}

/// The receive buffer's resting size.
const READ_BUF: usize = 64 * 1024;

/// Decodes and encodes frames over a [`Stream`].
#[derive(Debug)]
pub(crate) struct Framed<S> {
    io: S,
    max: usize,
    /// Received bytes; `rbuf[start..end]` are not yet consumed. Grows past `READ_BUF` only
    /// while `send` absorbs incoming data, and shrinks back once drained.
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    /// A frame too big for `rbuf` whose body is being read into `body[..len]`.
    large: Option<Large>,
    /// Body buffer for large frames; its length is a high-water mark, so it is only zeroed
    /// when it must grow, and it grows only as bytes arrive (see [`Framed::body_room`]).
    body: Vec<u8>,
    /// The peer closed its sending side (seen while absorbing during `send`).
    read_eof: bool,
    /// A protocol error ended the connection: every call is `Disconnected`.
    broken: bool,
    /// A write failed: sends are `Disconnected`, but what the peer sent can still be read
    /// (it may have closed only its reading side).
    send_broken: bool,
    /// Bytes read from the stream since the start: the stream offset of `rbuf[end]` (or of
    /// the large body's fill point).
    rpos: u64,
    /// The unwritten tail of a message that `send_until` accepted: `outbox[outbox_at..]`.
    outbox: Vec<u8>,
    outbox_at: usize,
    /// Where a small frame is put together for one plain write (no zeroing per send).
    small: Vec<u8>,
    /// Descriptors received and not yet delivered with their frame, oldest first.
    fds: VecDeque<fds::FdBatch>,
    /// How many descriptors `fds` holds.
    queued_fds: usize,
    /// Where one read puts the descriptors that came with it.
    incoming: Vec<OwnedFd>,
    /// How much a read may take, for a paced stream (a pipe).
    pacing: Option<Pacing>,
}

/// Where [`Framed::read_some`] reads: a large frame's body between two offsets, or the
/// buffer's tail, at most so many bytes.
#[derive(Debug, Clone, Copy)]
enum Read {
    Body(usize, usize),
    Buffer(usize),
}

#[derive(Debug, Clone, Copy)]
struct Large {
    len: usize,
    filled: usize,
    /// The stream offset of the frame's prefix.
    at: u64,
}

impl<S: Stream> Framed<S> {
    pub(crate) fn new(io: S, max: usize) -> Self {
        Framed {
            pacing: io.paced().then(|| Pacing::new(READ_BUF)),
            io,
            max,
            rbuf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            large: None,
            body: Vec::new(),
            read_eof: false,
            broken: false,
            send_broken: false,
            rpos: 0,
            outbox: Vec::new(),
            outbox_at: 0,
            small: Vec::new(),
            fds: VecDeque::new(),
            queued_fds: 0,
            incoming: Vec::new(),
        }
    }

    /// A framer that only sends: it never reads while it waits for room (another thread owns
    /// the incoming direction), so it has no receive buffer.
    fn send_only(io: S, max: usize) -> Self {
        let mut framed = Framed::new(io, max);
        framed.rbuf = Vec::new();
        framed.read_eof = true;
        framed
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream, for a connection whose framed part is over (nothing may be buffered).
    pub(crate) fn into_inner(self) -> S {
        debug_assert!(self.start == self.end && self.large.is_none());
        self.io
    }

    pub(crate) fn max_message_size(&self) -> usize {
        self.max
    }

    /// Sends one frame with a single gather write when the stream has room.
    pub(crate) fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge { len: msg.len(), max: self.max });
        }
        self.send_frame(msg)
    }

    /// Changes the maximum frame size (the handshake's frames must pass whatever the
    /// user's maximum is).
    pub(crate) fn set_max_message_size(&mut self, max: usize) {
        self.max = max;
    }

    /// Sends `msgs` in order, [`BATCH_PER_WRITE`] frames per gather write: for small messages
    /// one syscall carries hundreds of them. Nothing is sent if any message is too large.
    pub(crate) fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<()> {
        if let Some(m) = msgs.iter().find(|m| m.len() > self.max) {
            return Err(Error::MessageTooLarge { len: m.len(), max: self.max });
        }
        let result = self.send_batch_inner(msgs);
        // Waiting for room may have read whole messages into the buffer.
        self.io.set_buffered(self.buffered_ready());
        result
    }

    fn send_batch_inner(&mut self, msgs: &[&[u8]]) -> Result<()> {
        if self.broken || self.send_broken {
            return Err(Error::Disconnected);
        }
        self.flush_until(None)?;
        let prefixes: Vec<[u8; PREFIX_LEN]> = msgs.iter().map(|m| encode_prefix(m.len())).collect();
        let mut slices = Vec::with_capacity(2 * BATCH_PER_WRITE.min(msgs.len()));
        for (chunk, prefixes) in msgs.chunks(BATCH_PER_WRITE).zip(prefixes.chunks(BATCH_PER_WRITE)) {
            slices.clear();
            for (prefix, msg) in prefixes.iter().zip(chunk) {
                slices.push(IoSlice::new(prefix));
                slices.push(IoSlice::new(msg));
            }
            self.write_slices(&mut slices)?;
        }
        Ok(())
    }

    /// Sends one frame with `fds` attached (`SCM_RIGHTS`), in one `sendmsg` when there is
    /// room.
    pub(crate) fn send_with_fds(&mut self, msg: &[u8], fds: &[RawFd]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::MessageTooLarge { len: msg.len(), max: self.max });
        }
        if fds.len() > MAX_FDS_PER_MESSAGE {
            return Err(Error::FdPassing(format!(
                "{} descriptors in one message, above the limit of {MAX_FDS_PER_MESSAGE}",
                fds.len()
            )));
        }
        self.write_frame(&encode_prefix(msg.len()), msg, fds)
    }

    /// Sends a frame of at most `u32::MAX` bytes whatever the maximum (handshake frames).
    pub(crate) fn send_frame(&mut self, msg: &[u8]) -> Result<()> {
        self.write_frame(&encode_prefix(msg.len()), msg, &[])
    }

    /// Writes `header` and `msg` over as many writes as it takes, `fds` riding with the first.
    fn write_frame(&mut self, header: &[u8], msg: &[u8], fds: &[RawFd]) -> Result<()> {
        let result = self.write_frame_inner(header, msg, fds);
        // Waiting for room may have read whole messages into the buffer.
        self.io.set_buffered(self.buffered_ready());
        result
    }

    fn write_frame_inner(&mut self, header: &[u8], msg: &[u8], fds: &[RawFd]) -> Result<()> {
        debug_assert!(msg.len() <= u32::MAX as usize);
        if self.broken || self.send_broken {
            return Err(Error::Disconnected);
        }
        // A message accepted earlier goes out whole first.
        self.flush_until(None)?;
        let total = header.len() + msg.len();
        if fds.is_empty() && total <= SMALL_FRAME {
            let mut frame = mem::take(&mut self.small);
            frame.clear();
            frame.extend_from_slice(header);
            frame.extend_from_slice(msg);
            let result = self.write_slices(&mut [IoSlice::new(&frame)]);
            self.small = frame;
            return result;
        }
        let mut slices = [IoSlice::new(header), IoSlice::new(msg)];
        let mut left = &mut slices[..];
        // Descriptors go with the first byte; once any byte is out, they are out.
        while !fds.is_empty() {
            match self.io.try_write_fds(left, fds) {
                Ok(n) => {
                    IoSlice::advance_slices(&mut left, n);
                    break;
                }
                Err(e) => self.write_failed(e)?,
            }
        }
        self.write_slices(left)
    }

    /// Writes all of `slices` over as many writes as it takes, waiting for room (and reading
    /// meanwhile) when the stream is full.
    fn write_slices(&mut self, mut left: &mut [IoSlice<'_>]) -> Result<()> {
        while !left.is_empty() {
            match self.io.try_write_vectored(left) {
                Ok(n) => IoSlice::advance_slices(&mut left, n),
                Err(e) => self.write_failed(e)?,
            }
        }
        Ok(())
    }

    /// After a failed write: `Ok` to try again (interrupted, or room came), else the error,
    /// and no more sends (the peer cannot read, and part of a frame may be out).
    fn write_failed(&mut self, e: io::Error) -> Result<()> {
        match e.kind() {
            io::ErrorKind::Interrupted => Ok(()),
            io::ErrorKind::WouldBlock => self.wait_writable(None).map(drop),
            _ => {
                self.send_broken = true;
                Err(e.into())
            }
        }
    }

    /// Waits for room to write, reading incoming data meanwhile (up to a bound) so that a peer
    /// blocked in its own `send` can finish and start reading.
    ///
    /// Returns `false` if `deadline` passed first.
    fn wait_writable(&mut self, deadline: Option<Instant>) -> Result<bool> {
        loop {
            let absorb = !self.read_eof && self.absorb_room();
            let ready = self.io.wait(absorb, true, deadline)?;
            if ready.readable {
                self.absorb()?;
            }
            if ready.writable {
                return Ok(true);
            }
            if crate::deadline::passed(deadline) {
                return Ok(false);
            }
        }
    }

    /// Whether `absorb` may take more bytes: up to one maximum message beyond the buffer.
    fn absorb_room(&self) -> bool {
        match self.large {
            Some(large) if large.filled < large.len => true,
            _ => self.end < self.rbuf.len() || self.rbuf.len() < self.max.saturating_add(PREFIX_LEN).max(READ_BUF),
        }
    }

    /// Reads what is available (the caller saw the stream readable) into the right buffer.
    fn absorb(&mut self) -> Result<()> {
        let result = match &mut self.large {
            Some(large) if large.filled < large.len => {
                let Large { len, filled, .. } = *large;
                let end = match body_room(&mut self.body, len, filled, 0) {
                    Ok(end) => end,
                    Err(e) => return Err(self.fail(e)),
                };
                let r = self.io.read_fds(&mut self.body[filled..end], &mut self.incoming);
                if let (Ok(n), Some(large)) = (&r, &mut self.large) {
                    large.filled += n;
                }
                r
            }
            _ => {
                if self.end == self.rbuf.len() {
                    self.compact();
                }
                if self.end == self.rbuf.len() {
                    let cap = self.max.saturating_add(PREFIX_LEN).max(READ_BUF);
                    let grown = (self.rbuf.len() * 2).min(cap);
                    if let Err(e) = try_resize(&mut self.rbuf, grown) {
                        return Err(self.fail(e));
                    }
                }
                let r = self.io.read_fds(&mut self.rbuf[self.end..], &mut self.incoming);
                if let Ok(n) = r {
                    self.end += n;
                }
                r
            }
        };
        if let Err(e) = self.account(result.as_ref().map_or(0, |&n| n)) {
            return Err(self.fail(e));
        }
        match result {
            Ok(0) => self.read_eof = true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {}
            // A reset or other read error: recv will report it; the send may still finish.
            Err(_) => self.read_eof = true,
        }
        Ok(())
    }

    /// Receives the next frame into `buf`, and the descriptors that came with it into `fds`
    /// (closed when `None`). With a deadline, waits in `ppoll` before each read and returns
    /// `Timeout` at the deadline, keeping any partial frame for the next call.
    pub(crate) fn recv(
        &mut self,
        buf: &mut Vec<u8>,
        fds: Option<&mut Vec<OwnedFd>>,
        deadline: Option<Instant>,
    ) -> Result<usize> {
        let result = self.recv_inner(buf, fds, deadline);
        self.io.set_buffered(self.buffered_ready());
        result
    }

    /// The readiness descriptor: polls readable whenever `recv` would return without waiting.
    pub(crate) fn ready_fd(&self) -> io::Result<BorrowedFd<'_>> {
        self.io.ready_fd(self.buffered_ready())
    }

    /// Whether a `recv` would return without reading: a whole message is buffered, or the
    /// stream's end or a protocol error is known (the readiness contract: see `stream.rs`).
    pub(crate) fn buffered_ready(&self) -> bool {
        if self.broken || self.read_eof {
            return true;
        }
        if let Some(large) = self.large {
            return large.filled == large.len;
        }
        let avail = self.end - self.start;
        if avail < PREFIX_LEN {
            return false;
        }
        let mut prefix = [0; PREFIX_LEN];
        prefix.copy_from_slice(&self.rbuf[self.start..self.start + PREFIX_LEN]);
        let len = decode_prefix(prefix);
        len > self.max || avail >= PREFIX_LEN + len
    }

    fn recv_inner(
        &mut self,
        buf: &mut Vec<u8>,
        mut fds: Option<&mut Vec<OwnedFd>>,
        deadline: Option<Instant>,
    ) -> Result<usize> {
        if self.broken {
            return Err(Error::Disconnected);
        }
        loop {
            if let Some(Large { len, mut filled, at }) = self.large {
                // Bytes that arrived together with the prefix go first.
                let n = (self.end - self.start).min(len - filled);
                if let Err(e) = body_room(&mut self.body, len, filled, n) {
                    return Err(self.fail(e));
                }
                self.body[filled..filled + n].copy_from_slice(&self.rbuf[self.start..self.start + n]);
                self.start += n;
                filled += n;
                self.large = Some(Large { len, filled, at });
                if filled == len {
                    self.large = None;
                    self.paced_delivery(len);
                    self.deliver_fds(at, PREFIX_LEN + len, fds.as_deref_mut());
                    mem::swap(buf, &mut self.body);
                    buf.truncate(len);
                    self.reset_if_drained();
                    return Ok(len);
                }
                let end = match body_room(&mut self.body, len, filled, 0) {
                    Ok(end) => end,
                    Err(e) => return Err(self.fail(e)),
                };
                let n = self.read_some(deadline, Read::Body(filled, end))?;
                if n == 0 {
                    return Err(
                        self.fail(Error::Truncated { expected: PREFIX_LEN + len, received: PREFIX_LEN + filled })
                    );
                }
                if let Some(large) = &mut self.large {
                    large.filled += n;
                }
                continue;
            }

            let avail = self.end - self.start;
            let mut need = PREFIX_LEN;
            let mut known = None;
            if avail >= PREFIX_LEN {
                let mut prefix = [0; PREFIX_LEN];
                prefix.copy_from_slice(&self.rbuf[self.start..self.start + PREFIX_LEN]);
                let len = decode_prefix(prefix);
                if len > self.max {
                    return Err(self.fail(Error::FrameTooLarge { len: len as u64, max: self.max }));
                }
                let at = self.rpos - avail as u64;
                if avail >= PREFIX_LEN + len {
                    self.paced_delivery(len);
                    self.deliver_fds(at, PREFIX_LEN + len, fds.as_deref_mut());
                    let body = self.start + PREFIX_LEN;
                    buf.clear();
                    buf.extend_from_slice(&self.rbuf[body..body + len]);
                    self.start = body + len;
                    self.reset_if_drained();
                    return Ok(len);
                }
                if PREFIX_LEN + len > READ_BUF {
                    // Nothing is allocated for the announced length: see `body_room`.
                    self.start += PREFIX_LEN;
                    self.large = Some(Large { len, filled: 0, at });
                    continue;
                }
                need = PREFIX_LEN + len;
                known = Some(len);
            }
            if self.start + need > self.rbuf.len() {
                self.compact();
            }
            let limit = self.read_limit(avail, known, deadline.is_none());
            if self.read_some(deadline, Read::Buffer(limit))? == 0 {
                return Err(if avail == 0 {
                    // A clean end: every later `recv` says so again, but sends go on while the
                    // peer still reads (it may have shut down, or dropped, only its sending half).
                    Error::Disconnected
                } else {
                    self.fail(Error::Truncated { expected: need, received: avail })
                });
            }
        }
    }

    /// How many bytes the next read into the buffer may take: all the room, or for a paced
    /// stream read `blocking` (with no deadline) what [`Pacing::limit`] allows. `buffered`
    /// bytes of the next frame are in the buffer, and `len` is its length if its prefix is
    /// among them.
    ///
    /// A read with a deadline (`recv_timeout`, and the async endpoints' zero-timeout tries)
    /// is not paced: it costs a `ppoll` as well, and one frame per read would double its
    /// syscalls per frame.
    ///
    /// A paced read moves the unconsumed bytes (part of one frame) to the buffer's start when
    /// the read would not fit after them: the buffer is never drained, so its tail would
    /// otherwise shrink read by read.
    fn read_limit(&mut self, buffered: usize, len: Option<usize>, blocking: bool) -> usize {
        let Some(pacing) = self.pacing.as_mut().filter(|_| blocking) else {
            return self.rbuf.len() - self.end;
        };
        let io = &self.io;
        let limit = pacing.limit(buffered, len, self.rbuf.len() - (self.end - self.start), || io.unread());
        if self.end + limit > self.rbuf.len() {
            self.compact();
        }
        limit
    }

    fn paced_delivery(&mut self, len: usize) {
        if let Some(pacing) = &mut self.pacing {
            pacing.delivered(len);
        }
    }

    /// One read into the large body or the buffer's tail; 0 at EOF.
    fn read_some(&mut self, deadline: Option<Instant>, into: Read) -> Result<usize> {
        loop {
            if self.read_eof {
                return Ok(0);
            }
            if let Some(deadline) = deadline
                && !self.io.wait(true, false, Some(deadline))?.readable
            {
                return Err(Error::Timeout);
            }
            let result = match into {
                Read::Body(from, to) => self.io.read_fds(&mut self.body[from..to], &mut self.incoming),
                Read::Buffer(limit) => {
                    let to = self.end + limit.min(self.rbuf.len() - self.end);
                    self.io.read_fds(&mut self.rbuf[self.end..to], &mut self.incoming)
                }
            };
            if let Err(e) = self.account(result.as_ref().map_or(0, |&n| n)) {
                return Err(self.fail(e));
            }
            match result {
                Ok(n) => {
                    if let Read::Buffer(_) = into {
                        self.end += n;
                    }
                    if n == 0 {
                        self.read_eof = true;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(e.into())),
            }
        }
    }

    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        self.rbuf.capacity() + self.body.capacity()
    }

    fn compact(&mut self) {
        self.rbuf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// After a delivery: an empty buffer starts again at its beginning, and a buffer that
    /// `absorb` grew shrinks back to `READ_BUF` as soon as what it holds fits there (a paced
    /// buffer is seldom empty: it keeps the next frame's prefix).
    fn reset_if_drained(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.rbuf.len() > READ_BUF && self.end - self.start <= READ_BUF {
            self.compact();
            self.rbuf.truncate(READ_BUF);
            self.rbuf.shrink_to_fit();
        }
    }

    /// Ends the connection after a protocol or I/O error; later calls are `Disconnected`.
    fn fail(&mut self, err: Error) -> Error {
        self.broken = true;
        err
    }
}

/// Makes room in a large frame's body buffer for `more` bytes after the `filled` that arrived,
/// and returns where the next read may end.
///
/// The buffer grows with what arrived (doubling from `READ_BUF`), capped at the announced
/// `len`: its size is never more than about twice the bytes received plus a constant, whatever
/// the peer announced.
fn body_room(body: &mut Vec<u8>, len: usize, filled: usize, more: usize) -> Result<usize> {
    let want = len.min((filled + more).max(filled.saturating_mul(2)).max(READ_BUF));
    if body.len() < want {
        body.try_reserve_exact(want - body.len()).map_err(|_| Error::OutOfMemory { bytes: want })?;
        body.resize(want, 0);
    }
    Ok(body.len().min(len))
}

impl Framed<crate::stream::FdStream> {
    /// Splits into a framer that only sends, over the stream's writing side, and `self`, which
    /// keeps receiving (with whatever it had buffered). The tail of an accepted message moves
    /// to the sending side.
    pub(crate) fn split(mut self) -> io::Result<(Self, Self)> {
        let writer = self.io.split_writer()?;
        let mut send = Framed::send_only(writer, self.max);
        send.outbox = mem::take(&mut self.outbox);
        send.outbox_at = mem::replace(&mut self.outbox_at, 0);
        send.send_broken = self.send_broken || self.broken;
        send.io.set_write_interest(send.pending_send() > 0);
        self.send_broken = true;
        self.io.set_write_interest(false);
        Ok((send, self))
    }
}

/// Implements [`Transport`](crate::Transport) for a backend whose `framed` field is a
/// `Framed`: the three kernel transports differ only in how they connect.
macro_rules! impl_transport {
    ($ty:ty, $kind:expr) => {
        impl $crate::transport::Transport for $ty {
            fn send(&mut self, msg: &[u8]) -> $crate::error::Result<()> {
                self.framed.send(msg)
            }
            fn recv(&mut self, buf: &mut Vec<u8>) -> $crate::error::Result<usize> {
                self.framed.recv(buf, None, None)
            }
            fn recv_timeout(
                &mut self,
                buf: &mut Vec<u8>,
                timeout: std::time::Duration,
            ) -> $crate::error::Result<usize> {
                self.framed.recv(buf, None, $crate::deadline::after(timeout))
            }
            fn kind(&self) -> $crate::transport::Kind {
                $kind
            }
            fn max_message_size(&self) -> usize {
                self.framed.max_message_size()
            }
            fn ready_fd(&self) -> $crate::error::Result<std::os::fd::BorrowedFd<'_>> {
                Ok(self.framed.ready_fd()?)
            }
            fn send_timeout(&mut self, msg: &[u8], timeout: std::time::Duration) -> $crate::error::Result<()> {
                self.framed.send_until(msg, $crate::deadline::after(timeout))
            }
            fn flush_timeout(&mut self, timeout: std::time::Duration) -> $crate::error::Result<()> {
                if self.framed.flush_until($crate::deadline::after(timeout))? {
                    Ok(())
                } else {
                    Err($crate::error::Error::Timeout)
                }
            }
            fn pending_send(&self) -> usize {
                self.framed.pending_send()
            }
            fn send_batch(&mut self, msgs: &[&[u8]]) -> $crate::error::Result<()> {
                self.framed.send_batch(msgs)
            }
            fn split(self: Box<Self>) -> $crate::error::Result<($crate::split::SendHalf, $crate::split::RecvHalf)> {
                $crate::split::framed(self.framed, $kind)
            }
        }

        impl std::os::fd::AsFd for $ty {
            /// The readiness descriptor ([`Transport::ready_fd`](crate::Transport::ready_fd)):
            /// it polls readable whenever `recv_timeout(Duration::ZERO)` would not time out,
            /// messages already buffered included. If it cannot be made (no descriptors
            /// left), this is the socket or pipe itself, which misses buffered messages.
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.framed.ready_fd().unwrap_or_else(|_| self.framed.get_ref().read_fd())
            }
        }
    };
}
pub(crate) use impl_transport;

mod bounded;
mod fds;
mod pacing;
#[cfg(test)]
mod tests;
