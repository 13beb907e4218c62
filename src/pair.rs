//! Two connected endpoints of any transport in one process, for tests and threads.

use crate::address::Address;
use crate::error::{Error, Result};
use crate::fifo::FifoTransport;
use crate::listener::Listener;
use crate::pipe::PipeTransport;
use crate::seqpacket::SeqpacketTransport;
use crate::shm::ShmTransport;
use crate::tcp::TcpTransport;
use crate::transport::{Kind, Options, Transport};
use crate::unix::UnixTransport;
#[cfg(feature = "zmq")]
use crate::zmq::ZmqTransport;

/// Two connected endpoints of the `kind` transport in this process.
///
/// tcp goes through a real listener on 127.0.0.1 (with the handshake), unix through
/// `socketpair(2)`, pipe through two pipes, shm through one anonymous shared mapping,
/// seqpacket through a `SOCK_SEQPACKET` `socketpair(2)`, fifo through two fifos made in a
/// private directory, opened and removed at once, zmq
/// (feature `zmq`) through two ZeroMQ PAIR sockets on an abstract Unix socket.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) if the sockets, pipes, mapping or (for tcp) the connecting
/// thread cannot be created; [`Error::Config`](crate::Error::Config) for invalid options.
///
/// # Examples
/// ```
/// use switchboard::{Kind, Transport, pair};
///
/// for kind in [Kind::Tcp, Kind::Unix, Kind::Pipe, Kind::Seqpacket, Kind::Fifo] {
///     let (mut a, mut b) = pair(kind, &Default::default())?;
///     a.send(b"hello")?;
///     let mut buf = Vec::new();
///     b.recv(&mut buf)?;
///     assert_eq!(buf, b"hello");
/// }
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn pair(kind: Kind, options: &Options) -> Result<(Box<dyn Transport>, Box<dyn Transport>)> {
    fn boxed<T: Transport + 'static>((a, b): (T, T)) -> (Box<dyn Transport>, Box<dyn Transport>) {
        (Box::new(a), Box::new(b))
    }
    options.check()?;
    Ok(match kind {
        Kind::Tcp => {
            let listener = Listener::bind_tcp(options)?;
            let Address::Tcp(addr) = *listener.local_addr() else {
                return Err(Error::Config("a tcp listener reported a non-tcp address".into()));
            };
            let options2 = options.clone();
            let client = std::thread::Builder::new()
                .name("switchboard-pair".into())
                .spawn(move || TcpTransport::connect(addr, &options2))?;
            let server = listener.accept_timeout(options.handshake_timeout);
            let client = client
                .join()
                .map_err(|_| Error::Handshake("the connecting thread of pair(Kind::Tcp) panicked".into()))??;
            (server?, Box::new(client) as Box<dyn Transport>)
        }
        Kind::Unix => boxed(UnixTransport::pair(options)?),
        Kind::Pipe => boxed(PipeTransport::pair(options)?),
        Kind::Shm => boxed(ShmTransport::pair(options)?),
        Kind::Seqpacket => boxed(SeqpacketTransport::pair(options)?),
        Kind::Fifo => boxed(FifoTransport::pair(options)?),
        #[cfg(feature = "zmq")]
        Kind::Zmq => boxed(ZmqTransport::pair(options)?),
    })
}
