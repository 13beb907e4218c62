//! interprocess's local socket stream (on Linux an abstract Unix stream socket, by a
//! namespaced name), framed as switchboard frames its sockets: a `u32` little-endian length,
//! then the bytes, prefix and body in one gather write; the receiver reads through a 64 KiB
//! buffer, so that small frames cost one read for many.
//!
//! The listener accepts without blocking, so the parent can watch the child while it waits.

use std::io::{self, BufReader, IoSlice, Read, Write};
use std::process::{Child, Command};
use std::rc::Rc;

use ::interprocess::local_socket::prelude::*;
use ::interprocess::local_socket::{GenericNamespaced, ListenerNonblockingMode, ListenerOptions, Stream};
use switchboard::measure::Link;
use switchboard::{Error, Result};

use crate::peer::{self, ENV_ADDRESS, failed};

/// What the row measures.
pub(crate) const WHAT: &str = "interprocess 2.4: local socket stream (an abstract Unix stream socket), \
     u32 LE length prefix, one gather write per message, reads through a 64 KiB buffer";

/// The receive buffer, as switchboard's framing reads.
const READ_BUFFER: usize = 64 << 10;

/// One end of the exchange: the reader and the writer share the stream, as interprocess
/// advises instead of its deprecated halves (`&Stream` reads and writes).
struct LocalSocketLink {
    reader: BufReader<Shared>,
    writer: Shared,
}

/// The stream, shared by the reader and the writer.
struct Shared(Rc<Stream>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self.0).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LocalSocketLink {
    fn new(stream: Stream) -> Self {
        let stream = Rc::new(stream);
        LocalSocketLink {
            reader: BufReader::with_capacity(READ_BUFFER, Shared(stream.clone())),
            writer: Shared(stream),
        }
    }
}

impl Link for LocalSocketLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let prefix = u32::try_from(msg.len())
            .map_err(|_| Error::Config(format!("a {}-byte message does not fit a u32 length prefix", msg.len())))?
            .to_le_bytes();
        let mut slices = [IoSlice::new(&prefix), IoSlice::new(msg)];
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.writer.write_vectored(rest) {
                Ok(0) => return Err(Error::Disconnected),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        let mut prefix = [0u8; 4];
        self.reader.read_exact(&mut prefix).map_err(io_error)?;
        let announced = u32::from_le_bytes(prefix) as usize;
        // Checked before allocating: never grow by what the peer announces.
        if announced != len {
            return Err(Error::Protocol(format!("expected a {len}-byte message, the peer announced {announced}")));
        }
        buf.resize(len, 0);
        self.reader.read_exact(buf).map_err(io_error)
    }
}

/// End of file and a closed peer are `Disconnected`, as in switchboard's transports.
fn io_error(e: io::Error) -> Error {
    use io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    match e.kind() {
        BrokenPipe | ConnectionReset | UnexpectedEof => Error::Disconnected,
        _ => Error::Io(e),
    }
}

/// The parent's side: listens on a fresh namespaced name, starts the child and accepts it.
///
/// # Errors
/// Whatever interprocess or spawning returns; [`Error::Handshake`] if the child exits or does
/// not connect within [`peer::JOIN_LIMIT`].
pub(crate) fn connect(command: &mut Command) -> Result<(Child, Box<dyn Link>)> {
    let name = format!("{}.sock", peer::unique_name());
    let listener = ListenerOptions::new()
        .name(name.as_str().to_ns_name::<GenericNamespaced>().map_err(|e| failed("interprocess: socket name", e))?)
        .nonblocking(ListenerNonblockingMode::Accept)
        .create_sync()
        .map_err(|e| failed(&format!("interprocess: listen on {name}"), e))?;
    command.env(ENV_ADDRESS, &name);
    let mut child = peer::spawn_guarded(command)?;
    let mut accepted = None;
    peer::wait_for_child(&mut child, "connected to the local socket", || match listener.accept() {
        Ok(stream) => {
            accepted = Some(stream);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(failed(&format!("interprocess: accept on {name}"), e)),
    })?;
    let stream = accepted.ok_or_else(|| Error::Handshake("interprocess: accepted nothing".into()))?;
    // The listener was non-blocking for accept only; the stream blocks, as a reader should.
    Ok(peer::joined(child, Box::new(LocalSocketLink::new(stream))))
}

/// The child's side: connects to the parent's socket.
///
/// # Errors
/// Whatever interprocess returns.
pub(crate) fn join(name: &str) -> Result<Box<dyn Link>> {
    let ns_name = name.to_ns_name::<GenericNamespaced>().map_err(|e| failed("interprocess: socket name", e))?;
    let stream = Stream::connect(ns_name).map_err(|e| failed(&format!("interprocess: connect to {name}"), e))?;
    Ok(Box::new(LocalSocketLink::new(stream)))
}
