//! The `seqpacket` transport: messages as records of a Unix `SOCK_SEQPACKET` socket
//! (`unix(7)`, `socket(2)`), whose boundaries the kernel keeps.
//!
//! A message that fits in one record travels as that record with a one-byte tag in front and
//! no length prefix; a larger one (up to the maximum message size, 64 MiB by default) travels
//! as a first record that carries its total length, middle records, and a last one. Records
//! are at most 128 KiB, or what the socket's send buffer allows. `record.rs` has the tags and
//! the checks every received record passes; a record the kernel had to cut, a tag out of
//! place or fragments that do not add up are [`Error::Malformed`], a total above the maximum
//! is [`Error::FrameTooLarge`] (nothing allocated for it), and the end of the connection in
//! the middle of a message is [`Error::Truncated`].
//!
//! Sends block at most 2 ms in the kernel at a time (`SO_SNDTIMEO`), and while waiting for
//! room they read what the peer sends (up to one maximum message), as the stream transports
//! do, so two endpoints that send at once do not deadlock. Connections by address go through
//! a [`Listener`](crate::Listener) at `seqpacket:PATH` or `seqpacket:@NAME` with the unix
//! listener's handshake, each frame of it one record; descriptors cannot be passed (the
//! stream transports' descriptor bookkeeping is per stream offset, not per record).
//!
//! # Examples
//! ```
//! use switchboard::{Kind, Options, Transport, pair};
//!
//! let (mut a, mut b) = pair(Kind::Seqpacket, &Options::new())?;
//! // More than the socket holds: send from a thread while this one receives.
//! let sender = std::thread::spawn(move || -> switchboard::Result<()> {
//!     a.send(b"one record")?;
//!     a.send(&vec![7; 1 << 20]) // nine records, reassembled
//! });
//! let mut buf = Vec::new();
//! assert_eq!(b.recv(&mut buf)?, 10);
//! assert_eq!(b.recv(&mut buf)?, 1 << 20);
//! sender.join().expect("the sender thread panicked")?;
//! # Ok::<(), switchboard::Error>(())
//! ```

use std::collections::VecDeque;
use std::mem;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::address::Address;
use crate::deadline;
use crate::error::{Error, Result};
use crate::handshake::{self, Token};
use crate::stream::ReadyFd;
use crate::transport::{Kind, Options, Transport};
use crate::unix::PeerCredentials;

mod accept;
pub(crate) mod record;
mod send;
mod sys;

pub(crate) use accept::HelloRecords;
use record::{Assembler, Header, RECORD_MAX, WHOLE};
use sys::Received;
pub(crate) use sys::listen_at;
#[cfg(feature = "measure")]
pub(crate) use sys::pair as socket_pair;

/// A connected `SOCK_SEQPACKET` endpoint.
///
/// Obtained from [`SeqpacketTransport::pair`], [`SeqpacketTransport::connect`], a
/// [`Listener`](crate::Listener) bound to a `seqpacket:` address, or
/// [`spawn_child`](crate::spawn_child) with [`Kind::Seqpacket`]. Dropping it closes the
/// socket: the peer receives what was sent, then [`Error::Disconnected`].
///
/// # Examples
/// ```
/// use switchboard::{Options, SeqpacketTransport, Transport};
///
/// let (mut a, mut b) = SeqpacketTransport::pair(&Options::new())?;
/// a.send(b"")?; // empty messages are records too
/// let mut buf = vec![1, 2, 3];
/// assert_eq!(b.recv(&mut buf)?, 0);
/// assert_eq!(b.peer_credentials()?.pid, std::process::id() as i32);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct SeqpacketTransport {
    fd: OwnedFd,
    /// The largest record this endpoint sends, header included.
    record: usize,
    asm: Assembler,
    /// Where one record is received: [`RECORD_MAX`] bytes, made on first use.
    rbuf: Vec<u8>,
    /// Whole messages read while a send waited for room, oldest first, and their bytes.
    inbox: VecDeque<Vec<u8>>,
    inbox_bytes: usize,
    /// An error met while a send read ahead: returned once the inbox is drained.
    failed: Option<Error>,
    /// The peer closed its sending side (seen while a send read ahead).
    read_eof: bool,
    /// A receive failed or the end was reported: every call is `Disconnected`.
    broken: bool,
    /// A send failed: sends are `Disconnected`, receives go on.
    send_broken: bool,
    /// The rest of a message that `send_timeout` accepted: its bytes and its records to go.
    outbox: Vec<u8>,
    outbox_records: VecDeque<(Header, usize, usize)>,
    ready: OnceLock<ReadyFd>,
    write_interest: AtomicBool,
}

impl SeqpacketTransport {
    /// Two connected endpoints in this process (`socketpair(2)`), without a handshake.
    ///
    /// # Errors
    /// [`Error::Io`] if the sockets cannot be created; [`Error::Config`] for invalid options.
    pub fn pair(options: &Options) -> Result<(Self, Self)> {
        options.check()?;
        let (a, b) = sys::pair()?;
        Ok((Self::from_socket(a, options)?, Self::from_socket(b, options)?))
    }

    /// Connects to a switchboard [`Listener`](crate::Listener) bound to `seqpacket:PATH` and
    /// performs the handshake.
    ///
    /// # Errors
    /// [`Error::Io`] naming the address if nothing listens there; [`Error::Handshake`] if the
    /// server refuses the connection or does not answer within the handshake timeout.
    ///
    /// # Examples
    /// ```no_run
    /// use switchboard::{Options, SeqpacketTransport, Transport};
    ///
    /// let mut conn = SeqpacketTransport::connect("/run/user/1000/app.seq", &Options::new())?;
    /// conn.send(b"hello")?;
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn connect(path: impl AsRef<Path>, options: &Options) -> Result<Self> {
        Self::connect_with(&Address::Seqpacket(path.as_ref().to_owned()), options, None)
    }

    /// Connects to a `seqpacket:` address, presenting `token` in the hello if given.
    pub(crate) fn connect_with(address: &Address, options: &Options, token: Option<&Token>) -> Result<Self> {
        options.check()?;
        let mut conn = Self::from_socket(sys::connect_to(address)?, options)?;
        conn.client_handshake(token, options.handshake_timeout)?;
        Ok(conn)
    }

    /// Wraps a connected `SOCK_SEQPACKET` socket whose peer speaks switchboard records,
    /// without a handshake (the other end must do the same).
    ///
    /// # Errors
    /// [`Error::Config`] if `fd` is not a seqpacket socket; [`Error::Io`] if its options
    /// cannot be set.
    ///
    /// # Examples
    /// ```
    /// use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    /// use switchboard::{Options, SeqpacketTransport, Transport};
    ///
    /// let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    /// let mut t = SeqpacketTransport::from_fd(ours, &Options::new())?;
    /// nix::unistd::write(&theirs, b"\x01raw record")?; // tag 1: a whole message
    /// let mut buf = Vec::new();
    /// t.recv(&mut buf)?;
    /// assert_eq!(buf, b"raw record");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: OwnedFd, options: &Options) -> Result<Self> {
        options.check()?;
        if !sys::is_seqpacket(fd.as_fd()) {
            return Err(Error::Config("SeqpacketTransport::from_fd needs a SOCK_SEQPACKET socket".into()));
        }
        Self::from_socket(fd, options)
    }

    pub(crate) fn from_socket(fd: OwnedFd, options: &Options) -> Result<Self> {
        let record = sys::configure(fd.as_fd())?;
        Ok(SeqpacketTransport {
            fd,
            record,
            asm: Assembler::new(options.max_message_size),
            rbuf: Vec::new(),
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            failed: None,
            read_eof: false,
            broken: false,
            send_broken: false,
            outbox: Vec::new(),
            outbox_records: VecDeque::new(),
            ready: OnceLock::new(),
            write_interest: AtomicBool::new(false),
        })
    }

    /// Splits into a sending half and a receiving half for two threads, as
    /// [`Transport::split`]: the sending half writes through a duplicate of the socket (and
    /// shuts it down for writing when dropped), the receiving half keeps the socket and what
    /// was read ahead.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be duplicated.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, SeqpacketTransport, Transport};
    ///
    /// let (a, mut b) = SeqpacketTransport::pair(&Options::new())?;
    /// let (mut tx, mut rx) = a.split()?;
    /// tx.send(b"one record")?;
    /// let mut buf = Vec::new();
    /// b.recv(&mut buf)?;
    /// b.send(&buf)?;
    /// rx.recv(&mut buf)?;
    /// assert_eq!(buf, b"one record");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn split(self) -> Result<(crate::SendHalf, crate::RecvHalf)> {
        crate::split::seqpacket(self)
    }

    /// The sending half (it never reads ahead: another thread receives) and the receiving
    /// half, which keeps what was read ahead.
    pub(crate) fn split_halves(mut self) -> Result<(SeqpacketTransport, SeqpacketTransport)> {
        let send = SeqpacketTransport {
            fd: self.fd.try_clone()?,
            record: self.record,
            asm: Assembler::new(self.asm.max()),
            rbuf: Vec::new(),
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            failed: None,
            // Never read ahead while waiting for room: the receiving half owns that direction.
            read_eof: true,
            broken: false,
            send_broken: self.send_broken || self.broken,
            outbox: mem::take(&mut self.outbox),
            outbox_records: mem::take(&mut self.outbox_records),
            ready: OnceLock::new(),
            write_interest: AtomicBool::new(false),
        };
        self.send_broken = true;
        self.write_interest.store(false, Ordering::Relaxed);
        self.update_ready();
        Ok((send, self))
    }

    /// The socket itself.
    pub(crate) fn socket(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The peer's pid, uid and gid (`SO_PEERCRED`), as the kernel recorded them at connect
    /// time.
    ///
    /// # Errors
    /// [`Error::Io`] if the kernel refuses the query.
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        crate::unix::peer_credentials(self.fd.as_fd())
    }

    /// The client's handshake: a hello record, then the server's reply record.
    fn client_handshake(&mut self, token: Option<&Token>, timeout: Duration) -> Result<()> {
        self.send_handshake(&handshake::encode_hello(token))?;
        let user = mem::replace(&mut self.asm, Assembler::new(handshake::REPLY_LEN));
        let mut reply = Vec::new();
        let result = self.recv_inner(&mut reply, deadline::after(timeout));
        self.asm = user;
        match result {
            Ok(_) => handshake::parse_reply(&reply),
            Err(Error::Disconnected) => {
                Err(Error::Handshake("the server closed the connection during the handshake".into()))
            }
            Err(Error::Timeout) => Err(Error::Handshake(format!("no reply from the server within {timeout:?}"))),
            Err(Error::FrameTooLarge { .. } | Error::Malformed(_) | Error::Truncated { .. }) => {
                Err(Error::Handshake("the server's reply is not a switchboard reply".into()))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends a handshake payload as one whole record, whatever the maximum message size.
    pub(crate) fn send_handshake(&mut self, payload: &[u8]) -> Result<()> {
        let deadline = deadline::after(Duration::from_secs(5));
        loop {
            match sys::send_record(self.fd.as_fd(), &[WHOLE], payload, true) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && !deadline::passed(deadline) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives the next message; see [`Transport::recv_timeout`].
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<usize> {
        let result = self.recv_inner(buf, deadline);
        self.update_ready();
        result
    }

    fn recv_inner(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<usize> {
        if let Some(msg) = self.inbox.pop_front() {
            self.inbox_bytes -= msg.len();
            *buf = msg;
            return Ok(buf.len());
        }
        if let Some(err) = self.failed.take() {
            self.broken = true;
            return Err(err);
        }
        if self.broken {
            return Err(Error::Disconnected);
        }
        if self.read_eof {
            let end = self.asm.end();
            return Err(self.ended(end));
        }
        loop {
            if deadline.is_some() && !sys::wait(self.fd.as_fd(), true, false, deadline)?.readable {
                return Err(Error::Timeout);
            }
            match self.read_record(deadline.is_none()) {
                Ok(Some(n)) => match self.asm.push(&self.rbuf[..n], buf) {
                    Ok(true) => return Ok(buf.len()),
                    Ok(false) => {}
                    Err(e) => return Err(self.fail(e)),
                },
                Ok(None) => {}
                Err(e) => return Err(self.ended(e)),
            }
        }
    }

    /// A receive error: a clean end (`Disconnected`) is reported again by every later
    /// receive, while sends go on as long as the peer reads (it may have shut down, or dropped,
    /// only its sending half); anything else ends the connection.
    fn ended(&mut self, err: Error) -> Error {
        if matches!(err, Error::Disconnected) {
            self.read_eof = true;
            err
        } else {
            self.fail(err)
        }
    }

    /// Reads one record into `rbuf`: `Some(len)`, or `None` if there was none after all.
    /// The end of the connection is the assembler's verdict (`Disconnected` or `Truncated`).
    fn read_record(&mut self, wait: bool) -> Result<Option<usize>> {
        if self.rbuf.is_empty() {
            crate::error::try_resize(&mut self.rbuf, RECORD_MAX)?;
        }
        match sys::recv_record(self.fd.as_fd(), &mut self.rbuf, wait) {
            Ok(Received::Record(0)) if sys::hung_up(self.fd.as_fd()) => Err(self.asm.end()),
            Ok(Received::Record(0)) => Err(Error::Malformed("an empty record (every record carries its tag)".into())),
            Ok(Received::Record(n)) => Ok(Some(n)),
            Ok(Received::Cut) => Err(Error::Malformed(format!("a record above {RECORD_MAX} bytes"))),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends the connection after a receive error; later calls are `Disconnected`.
    fn fail(&mut self, err: Error) -> Error {
        self.broken = true;
        err
    }

    /// Whether a receive would return without waiting on the socket.
    fn buffered_ready(&self) -> bool {
        !self.inbox.is_empty() || self.failed.is_some() || self.read_eof || self.broken
    }

    /// Raises or lowers the readiness flag to match what is buffered.
    fn update_ready(&self) {
        if let Some(r) = self.ready.get() {
            r.set(self.buffered_ready());
        }
    }

    /// The readiness descriptor, made on first use: an epoll set over the socket and a flag
    /// raised while a message, the end or an error waits in this endpoint.
    fn readiness(&self) -> std::io::Result<BorrowedFd<'_>> {
        if let Some(r) = self.ready.get() {
            return Ok(r.as_fd());
        }
        let made = ReadyFd::new(self.fd.as_fd(), self.buffered_ready())?;
        if self.write_interest.load(Ordering::Relaxed) {
            made.watch_write(self.fd.as_fd(), self.fd.as_fd(), true);
        }
        Ok(self.ready.get_or_init(|| made).as_fd())
    }

    /// Tells the readiness descriptor whether to watch for room to write.
    fn set_write_interest(&self, on: bool) {
        // A plain load first: every send turns the interest off, and it is almost always off.
        if self.write_interest.load(Ordering::Relaxed) != on
            && self.write_interest.swap(on, Ordering::Relaxed) != on
            && let Some(r) = self.ready.get()
        {
            r.watch_write(self.fd.as_fd(), self.fd.as_fd(), on);
        }
    }
}

impl Transport for SeqpacketTransport {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let result = self.send_until(msg, None);
        self.update_ready();
        result
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        let result = self.send_until(msg, deadline::after(timeout));
        self.update_ready();
        result
    }

    fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        let result = self.flush_until(deadline::after(timeout));
        self.update_ready();
        if result? { Ok(()) } else { Err(Error::Timeout) }
    }

    fn pending_send(&self) -> usize {
        self.outbox_records.iter().map(|(h, from, to)| h.as_bytes().len() + to - from).sum()
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_until(buf, None)
    }

    fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        // A timeout too large to represent waits forever, like `recv`.
        self.recv_until(buf, deadline::after(timeout))
    }

    fn kind(&self) -> Kind {
        Kind::Seqpacket
    }

    fn max_message_size(&self) -> usize {
        self.asm.max()
    }

    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.readiness()?)
    }

    fn split(self: Box<Self>) -> Result<(crate::SendHalf, crate::RecvHalf)> {
        crate::split::seqpacket(*self)
    }
}

impl AsFd for SeqpacketTransport {
    /// The readiness descriptor ([`Transport::ready_fd`]): it polls readable whenever
    /// `recv_timeout(Duration::ZERO)` would not time out. If it cannot be made (no
    /// descriptors left), this is the socket itself, which misses messages read ahead.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.readiness().unwrap_or_else(|_| self.fd.as_fd())
    }
}
