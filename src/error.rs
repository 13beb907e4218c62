//! The one error type of switchboard, shared by every transport.
//!
//! Transport-specific conditions map onto shared states, so that code written against
//! `dyn Transport` can match on them: a closed pipe, a reset socket and a shared-memory peer
//! that set its "closed" flag all become [`Error::Disconnected`].

use std::io;

/// The result type of every fallible switchboard call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while connecting, sending or receiving.
///
/// After [`FrameTooLarge`](Error::FrameTooLarge), [`Truncated`](Error::Truncated),
/// [`Malformed`](Error::Malformed) or [`CorruptSegment`](Error::CorruptSegment), and after `recv` returned
/// [`Disconnected`](Error::Disconnected), the connection is finished: every later call returns
/// `Disconnected`. After `send` returned `Disconnected` (the peer stopped reading), later sends
/// do too, but `recv` still returns what the peer sent, then `Disconnected`. After
/// [`MessageTooLarge`](Error::MessageTooLarge) and [`Timeout`](Error::Timeout) the connection
/// is still usable, and nothing was sent or lost.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use switchboard::{Error, Kind, Options, Transport, pair};
///
/// let options = Options::new().max_message_size(16);
/// let (mut a, mut b) = pair(Kind::Pipe, &options)?;
/// // Too large: refused before anything is written, and the connection stays usable.
/// let err = a.send(&[0; 17]).unwrap_err();
/// assert!(matches!(err, Error::MessageTooLarge { len: 17, max: 16 }));
/// assert_eq!(err.to_string(), "message of 17 bytes exceeds the maximum of 16 bytes");
/// a.send(b"fits")?;
/// let mut buf = Vec::new();
/// match b.recv_timeout(&mut buf, Duration::from_secs(5)) {
///     Ok(_) => assert_eq!(buf, b"fits"),
///     Err(Error::Timeout) => unreachable!("it was sent"),
///     Err(Error::Disconnected) => unreachable!("a is still open"),
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer closed its end, exited or died; no more messages will arrive.
    #[error("peer disconnected")]
    Disconnected,

    /// Nothing arrived before the deadline. No message was lost or half-read.
    #[error("timed out")]
    Timeout,

    /// A message given to `send` is larger than this endpoint's maximum; nothing was written.
    #[error("message of {len} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// Length of the rejected message.
        len: usize,
        /// The endpoint's maximum message size.
        max: usize,
    },

    /// The peer announced a frame larger than this endpoint accepts; nothing was allocated for it.
    #[error("peer announced a frame of {len} bytes, above the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length the peer announced.
        len: u64,
        /// This endpoint's maximum message size.
        max: usize,
    },

    /// The peer closed the connection in the middle of a frame.
    #[error("frame truncated: the peer closed after {received} of {expected} bytes")]
    Truncated {
        /// Bytes the frame should have had, prefix included.
        expected: usize,
        /// Bytes that arrived before the end of the stream.
        received: usize,
    },

    /// The connection handshake failed: wrong protocol version, wrong token, or garbage.
    #[error("handshake failed: {0}")]
    Handshake(String),

    /// A shared-memory segment has the wrong magic, version, size or capacity.
    #[error("incompatible shared-memory segment: {0}")]
    IncompatibleSegment(String),

    /// A shared-memory segment holds an index or length that cannot be valid: the peer wrote
    /// garbage, or something else wrote into the mapping.
    #[error("corrupt shared-memory segment: {0}")]
    CorruptSegment(&'static str),

    /// The peer sent a record that breaks the wire format: an unknown tag, fragments out of
    /// order or not adding up, a record above the largest allowed (seqpacket). Nothing larger
    /// than the maximum message size was allocated; the connection is finished.
    #[error("malformed record from the peer: {0}")]
    Malformed(String),

    /// The peer broke an exchange the caller defined: a message of the wrong length, out of
    /// order or damaged, or a peer process that failed (the harness in `measure` checks
    /// every message it times).
    #[error("protocol violation: {0}")]
    Protocol(String),

    /// A received message is not a valid encoding of the expected type (`Typed`, feature
    /// `serde`). The message was consumed; the connection is still usable.
    #[error("a message of {len} bytes does not decode: {reason}")]
    Decode {
        /// The message's length.
        len: usize,
        /// What the decoder found wrong.
        reason: String,
    },

    /// A value could not be encoded for sending; nothing was sent.
    #[error("a value cannot be encoded: {0}")]
    Encode(String),

    /// Passing file descriptors failed: too many for one message, or the peer sent
    /// descriptors that its messages do not account for (a truncated control message). The
    /// descriptors concerned were closed; after a receive-side failure the connection is
    /// finished.
    #[error("file descriptor passing: {0}")]
    FdPassing(String),

    /// The operation does not exist for this transport: splitting a ZeroMQ socket, passing
    /// descriptors over anything but a Unix socket. Nothing was done; the endpoint is unchanged.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// An option, address or environment variable handed to switchboard is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Memory for a message the peer is sending could not be allocated. The connection is
    /// finished (later calls return `Disconnected`); the process and other connections go on.
    #[error("out of memory: could not grow a receive buffer to {bytes} bytes")]
    OutOfMemory {
        /// The buffer size that could not be allocated.
        bytes: usize,
    },

    /// Any other operating-system error. Where the call concerned a path, a segment name or
    /// an address, the message says which (the [`io::ErrorKind`] is kept).
    #[error(transparent)]
    Io(io::Error),
}

impl Error {
    /// An OS error about `what` (a path, a segment name, an address): the message names it
    /// once, the kind is kept so callers can still match on [`io::ErrorKind`].
    pub(crate) fn about(err: impl Into<io::Error>, what: impl std::fmt::Display) -> Error {
        let err = err.into();
        Error::Io(io::Error::new(err.kind(), format!("{what}: {err}")))
    }
}

/// Grows `buf` to `len` bytes (zero-filled) without aborting when memory runs out: the
/// allocation is sized by the caller from bytes that actually arrived.
pub(crate) fn try_resize(buf: &mut Vec<u8>, len: usize) -> Result<()> {
    if len > buf.len() {
        buf.try_reserve(len - buf.len()).map_err(|_| Error::OutOfMemory { bytes: len })?;
        buf.resize(len, 0);
    }
    Ok(())
}

/// Carried inside an `io::Error` from the stream layer when a peer sends more descriptors with
/// one message than [`MAX_FDS_PER_MESSAGE`](crate::MAX_FDS_PER_MESSAGE) (they were closed);
/// becomes [`Error::FdPassing`].
#[derive(Debug)]
pub(crate) struct TooManyFds;

impl std::fmt::Display for TooManyFds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the peer sent more than {} descriptors with one message", crate::frame::MAX_FDS_PER_MESSAGE)
    }
}

impl std::error::Error for TooManyFds {}

/// The one place where I/O errors that mean "the peer is gone" become `Disconnected`.
impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<TooManyFds>()) {
            return Error::FdPassing(inner.to_string());
        }
        match err.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => Error::Disconnected,
            _ => Error::Io(err),
        }
    }
}

impl From<nix::errno::Errno> for Error {
    fn from(errno: nix::errno::Errno) -> Self {
        io::Error::from(errno).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_gone_kinds_become_disconnected() {
        for kind in [
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert!(matches!(Error::from(io::Error::from(kind)), Error::Disconnected));
        }
        assert!(matches!(Error::from(nix::errno::Errno::EPIPE), Error::Disconnected));
        assert!(matches!(Error::from(io::Error::from(io::ErrorKind::PermissionDenied)), Error::Io(_)));
    }

    #[test]
    fn about_names_the_thing_once_and_keeps_the_kind() {
        let err = Error::about(io::Error::from(io::ErrorKind::NotFound), "shared-memory segment \"x\"");
        let Error::Io(io) = &err else { panic!("{err:?}") };
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert_eq!(err.to_string().matches("\"x\"").count(), 1, "{err}");
    }

    #[test]
    fn try_resize_reports_impossible_sizes() {
        let mut buf = Vec::new();
        try_resize(&mut buf, 10).unwrap();
        assert_eq!(buf, [0; 10]);
        assert!(matches!(try_resize(&mut buf, usize::MAX), Err(Error::OutOfMemory { bytes: usize::MAX })));
        assert_eq!(buf.len(), 10);
    }

    #[test]
    fn io_display_is_not_doubled() {
        let err = Error::from(io::Error::other("boom"));
        assert_eq!(err.to_string(), "boom");
        assert!(std::error::Error::source(&err).is_none());
    }
}
