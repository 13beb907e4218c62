//! Typed messages: any serde type over any transport, one message per value, encoded with
//! postcard (a compact, stable, `no_std`-friendly binary format: see its wire specification at
//! postcard.jamesmunns.com). bincode is not used: it is unmaintained (RUSTSEC-2025-0141).
//!
//! The wrapper keeps one send buffer and one receive buffer, so once they have grown to the
//! largest message no send or receive allocates (decoding owned values such as `String` still
//! allocates those values; [`Typed::recv_borrowed`] decodes borrowed ones from the receive
//! buffer without copying).

use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::time::Duration;

use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};

use crate::error::{Error, Result};
use crate::transport::Transport;

/// A transport that sends values of type `Out` and receives values of type `In`.
///
/// Each value travels as one message of the inner transport, so the inner transport's
/// maximum message size bounds the encoded size, and a `Typed` endpoint talks to any peer that
/// sends postcard-encoded messages. A message that does not decode as `In` is
/// [`Error::Decode`] and the connection stays usable: the next `recv` returns the next
/// message.
///
/// # Examples
/// ```
/// use serde::{Deserialize, Serialize};
/// use switchboard::{Kind, Options, Typed, pair};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// enum Job {
///     Resize { width: u32, height: u32 },
///     Stop,
/// }
///
/// let (a, b) = pair(Kind::Unix, &Options::new())?;
/// let (mut boss, mut worker) = (Typed::<Job>::new(a), Typed::<Job>::new(b));
/// boss.send(&Job::Resize { width: 640, height: 480 })?;
/// assert_eq!(worker.recv()?, Job::Resize { width: 640, height: 480 });
/// # Ok::<(), switchboard::Error>(())
/// ```
pub struct Typed<Out, In = Out> {
    inner: Box<dyn Transport>,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
    _types: PhantomData<fn(Out) -> In>,
}

impl<Out, In> fmt::Debug for Typed<Out, In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed").field("kind", &self.inner.kind()).finish_non_exhaustive()
    }
}

impl<Out, In> Typed<Out, In> {
    /// Wraps a connected transport.
    pub fn new(transport: Box<dyn Transport>) -> Self {
        Typed { inner: transport, send_buf: Vec::new(), recv_buf: Vec::new(), _types: PhantomData }
    }

    /// The inner transport.
    pub fn get_ref(&self) -> &dyn Transport {
        self.inner.as_ref()
    }

    /// The inner transport, to send or receive raw bytes between typed messages.
    pub fn get_mut(&mut self) -> &mut dyn Transport {
        self.inner.as_mut()
    }

    /// Unwraps the inner transport.
    pub fn into_inner(self) -> Box<dyn Transport> {
        self.inner
    }
}

impl<Out: Serialize, In> Typed<Out, In> {
    /// Encodes `msg` and sends it as one message.
    ///
    /// # Errors
    /// [`Error::Encode`] if the value cannot be encoded (nothing is sent); otherwise as
    /// [`Transport::send`], [`Error::MessageTooLarge`] included.
    pub fn send(&mut self, msg: &Out) -> Result<()> {
        let mut buf = mem::take(&mut self.send_buf);
        buf.clear();
        let result = postcard::to_extend(msg, buf);
        let buf = match result {
            Ok(buf) => buf,
            Err(e) => return Err(Error::Encode(e.to_string())),
        };
        let sent = self.inner.send(&buf);
        self.send_buf = buf;
        sent
    }
}

impl<Out, In: DeserializeOwned> Typed<Out, In> {
    /// Receives the next message and decodes it.
    ///
    /// # Errors
    /// [`Error::Decode`] if the message is not a valid encoding of `In` (it is consumed and
    /// the connection stays usable); otherwise as [`Transport::recv`].
    pub fn recv(&mut self) -> Result<In> {
        self.inner.recv(&mut self.recv_buf)?;
        decode(&self.recv_buf)
    }

    /// Like [`recv`](Typed::recv), but gives up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] if no whole message arrived in time (nothing is lost); otherwise as
    /// [`recv`](Typed::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<In> {
        self.inner.recv_timeout(&mut self.recv_buf, timeout)?;
        decode(&self.recv_buf)
    }
}

impl<Out, In> Typed<Out, In> {
    /// Receives the next message and decodes a `T` that borrows from the receive buffer
    /// (`&str`, `&[u8]` fields) instead of copying: valid until the next receive.
    ///
    /// # Errors
    /// As [`recv`](Typed::recv).
    ///
    /// # Examples
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use switchboard::{Kind, Options, Typed, pair};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Log<'a> {
    ///     level: u8,
    ///     text: &'a str,
    /// }
    ///
    /// let (a, b) = pair(Kind::Pipe, &Options::new())?;
    /// let mut tx = Typed::<Log<'static>>::new(a);
    /// let mut rx = Typed::<(), ()>::new(b);
    /// tx.send(&Log { level: 3, text: "disk almost full" })?;
    /// let log: Log<'_> = rx.recv_borrowed()?;
    /// assert_eq!(log.text, "disk almost full");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn recv_borrowed<'a, T: Deserialize<'a>>(&'a mut self) -> Result<T> {
        self.inner.recv(&mut self.recv_buf)?;
        decode(&self.recv_buf)
    }
}

/// Decodes exactly one value from `bytes`: trailing bytes are an error too.
fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => {
            Err(Error::Decode { len: bytes.len(), reason: format!("{} bytes left over after the value", rest.len()) })
        }
        Err(e) => Err(Error::Decode { len: bytes.len(), reason: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_garbage_and_trailing_bytes() {
        assert_eq!(decode::<(u8, u16)>(&[1, 2]).unwrap(), (1, 2));
        assert!(matches!(decode::<(u8, u16)>(&[1, 2, 9]), Err(Error::Decode { len: 3, .. })));
        assert!(matches!(decode::<u32>(&[0xff; 8]), Err(Error::Decode { .. })));
        assert!(matches!(decode::<String>(&[5, b'a']), Err(Error::Decode { .. })));
        let err = decode::<bool>(&[7]).unwrap_err();
        assert!(err.to_string().contains("1 bytes") || err.to_string().contains("1 byte"), "{err}");
    }
}
