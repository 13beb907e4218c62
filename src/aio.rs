//! Async endpoints for tokio (feature `tokio`): every transport and the listener, driven by
//! their readiness descriptors registered with tokio's reactor (`tokio::io::unix::AsyncFd`).
//!
//! No thread waits per message: `recv` tries a `recv_timeout(Duration::ZERO)`, and only when
//! that times out awaits the descriptor; `send` does the same with `send_timeout`. Each
//! attempt is all or nothing (a whole message, or nothing taken or given), so dropping a
//! future at its await point loses nothing: `recv` is cancellation-safe, and so is `send`
//! (a message is either not sent, or accepted whole before the future completes). Connecting
//! and spawning, which handshake, run once per connection on tokio's blocking pool.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::process::{Child, Command};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::address::{self, Address};
use crate::error::{Error, Result};
use crate::listener::Listener;
use crate::transport::{Kind, Options, Transport};

/// Registers a duplicate of `fd` (so that tokio's registration holds an open descriptor of its
/// own, whatever happens to ours) with the current runtime's reactor, for readability.
fn register(fd: BorrowedFd<'_>) -> Result<AsyncFd<OwnedFd>> {
    // Without a runtime, tokio would panic: say so instead.
    tokio::runtime::Handle::try_current().map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let owned = fd.try_clone_to_owned()?;
    // SAFETY: `owned` is a descriptor of our own, open until the AsyncFd that takes it is
    // dropped (it closes it then), and `as_raw_fd` of an OwnedFd always returns the same one.
    let registered = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) };
    registered.map_err(|e| Error::Io(e.into()))
}

/// An endpoint for async code: any [`Transport`] with `async` `send` and `recv`.
///
/// # Examples
/// ```
/// use switchboard::{AsyncTransport, Kind, Options, pair};
///
/// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
/// let (a, b) = pair(Kind::Shm, &Options::new())?;
/// let (mut a, mut b) = (AsyncTransport::new(a)?, AsyncTransport::new(b)?);
/// a.send(b"hello").await?;
/// let mut buf = Vec::new();
/// b.recv(&mut buf).await?;
/// assert_eq!(buf, b"hello");
/// # Ok::<(), switchboard::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AsyncTransport {
    fd: AsyncFd<OwnedFd>,
    inner: Box<dyn Transport>,
}

impl AsyncTransport {
    /// Registers `transport`'s readiness descriptor with the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Io`] if there is no runtime with I/O enabled, or the descriptor cannot be
    /// made or registered.
    pub fn new(transport: Box<dyn Transport>) -> Result<Self> {
        let fd = register(transport.ready_fd()?)?;
        Ok(AsyncTransport { fd, inner: transport })
    }

    /// Receives the next whole message into `buf` (cleared first) and returns its length.
    ///
    /// Cancellation-safe: dropping the future loses nothing; a message partly arrived stays
    /// buffered for the next call.
    ///
    /// # Errors
    /// As [`Transport::recv`].
    pub async fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        loop {
            if self.inner.pending_send() > 0 {
                // An earlier send that was dropped half-way: let its rest out meanwhile.
                match self.inner.flush_timeout(Duration::ZERO) {
                    Ok(()) | Err(Error::Timeout) => {}
                    Err(e) => return Err(e),
                }
            }
            match self.inner.recv_timeout(buf, Duration::ZERO) {
                Err(Error::Timeout) => {}
                other => return other,
            }
            let mut guard = self.fd.readable().await?;
            match self.inner.recv_timeout(buf, Duration::ZERO) {
                // Nothing whole yet: wait for the descriptor's next event.
                Err(Error::Timeout) => guard.clear_ready(),
                other => return other,
            }
        }
    }

    /// Sends one whole message, waiting (without blocking a thread) while the peer is full;
    /// completes once all of it is written.
    ///
    /// Cancellation: if the future is dropped before it completes, the message was either
    /// not sent at all, or accepted and partly written: then
    /// [`pending_send`](AsyncTransport::pending_send) is not zero, and the next `send` or
    /// [`flush`](AsyncTransport::flush) finishes it first. It is never sent twice or cut.
    ///
    /// # Errors
    /// As [`Transport::send`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        loop {
            match self.inner.send_timeout(msg, Duration::ZERO) {
                Err(Error::Timeout) => {}
                other => {
                    other?;
                    break;
                }
            }
            let mut guard = self.fd.readable().await?;
            match self.inner.send_timeout(msg, Duration::ZERO) {
                Err(Error::Timeout) => guard.clear_ready(),
                other => {
                    other?;
                    break;
                }
            }
        }
        self.flush().await
    }

    /// Bytes of an accepted message not yet written (see [`send`](AsyncTransport::send)).
    pub fn pending_send(&self) -> usize {
        self.inner.pending_send()
    }

    /// Writes what an accepted message still has pending (see
    /// [`Transport::send_timeout`]).
    ///
    /// # Errors
    /// As [`Transport::flush_timeout`], without the timeout.
    pub async fn flush(&mut self) -> Result<()> {
        while self.inner.pending_send() > 0 {
            match self.inner.flush_timeout(Duration::ZERO) {
                Err(Error::Timeout) => {}
                other => return other,
            }
            let mut guard = self.fd.readable().await?;
            match self.inner.flush_timeout(Duration::ZERO) {
                Err(Error::Timeout) => guard.clear_ready(),
                other => return other,
            }
        }
        Ok(())
    }

    /// Which transport this is.
    pub fn kind(&self) -> Kind {
        self.inner.kind()
    }

    /// The transport, for what only it offers (see `downcast_ref` on `dyn Transport`).
    pub fn get_ref(&self) -> &dyn Transport {
        self.inner.as_ref()
    }

    /// Gives the transport back (deregistering it from tokio).
    pub fn into_inner(self) -> Box<dyn Transport> {
        self.inner
    }

    /// Connects to a listener at `addr` (the handshake runs on tokio's blocking pool).
    ///
    /// # Errors
    /// As [`connect`](crate::connect); [`Error::Io`] if the blocking task fails.
    pub async fn connect(addr: &Address, options: &Options) -> Result<Self> {
        let (addr, options) = (addr.clone(), options.clone());
        let transport = tokio::task::spawn_blocking(move || address::connect(&addr, &options))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        Self::new(transport)
    }

    /// Starts `command` as a connected child, as [`Options::spawn_child`] does (on tokio's
    /// blocking pool, since it waits for the child to connect).
    ///
    /// # Errors
    /// As [`Options::spawn_child`].
    pub async fn spawn_child(kind: Kind, mut command: Command, options: &Options) -> Result<(Child, Self)> {
        let options = options.clone();
        let (child, transport) = tokio::task::spawn_blocking(move || options.spawn_child(kind, &mut command))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        Ok((child, Self::new(transport)?))
    }
}

/// A [`Listener`] for async code.
///
/// # Examples
/// ```
/// use switchboard::{AsyncListener, AsyncTransport, Listener, Options};
///
/// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
/// let listener = AsyncListener::new(Listener::bind_unix_private(&Options::new())?)?;
/// let addr = listener.local_addr().clone();
/// let client = tokio::spawn(async move { AsyncTransport::connect(&addr, &Options::new()).await });
/// let mut server_side = listener.accept().await?;
/// let mut client = client.await.expect("client task")?;
/// client.send(b"hi").await?;
/// let mut buf = Vec::new();
/// server_side.recv(&mut buf).await?;
/// assert_eq!(buf, b"hi");
/// # Ok::<(), switchboard::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AsyncListener {
    fd: AsyncFd<OwnedFd>,
    inner: Listener,
}

impl AsyncListener {
    /// Registers `listener`'s readiness descriptor with the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Io`] if there is no runtime with I/O enabled, or the descriptor cannot be
    /// made or registered.
    pub fn new(listener: Listener) -> Result<Self> {
        let fd = register(listener.ready_fd()?)?;
        Ok(AsyncListener { fd, inner: listener })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> &Address {
        self.inner.local_addr()
    }

    /// Waits for the next client that completes the handshake. Cancellation-safe: a client
    /// whose handshake is under way when the future is dropped is served by the next call.
    ///
    /// # Errors
    /// As [`Listener::accept`], and [`Error::Io`] if registering the connection fails.
    pub async fn accept(&self) -> Result<AsyncTransport> {
        loop {
            match self.inner.accept_timeout(Duration::ZERO) {
                Err(Error::Timeout) => {}
                other => return AsyncTransport::new(other?),
            }
            let mut guard = self.fd.readable().await?;
            match self.inner.accept_timeout(Duration::ZERO) {
                Err(Error::Timeout) => guard.clear_ready(),
                other => return AsyncTransport::new(other?),
            }
        }
    }

    /// The listener.
    pub fn get_ref(&self) -> &Listener {
        &self.inner
    }
}
