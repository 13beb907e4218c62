//! The `fifo` transport: framed messages over two named pipes (`fifo(7)`, `mkfifo(3)`), one
//! per direction, so that unrelated local processes can talk without sockets.
//!
//! The frames and the handshake are the pipe transport's and the unix listener's (the same
//! `frame` module and `handshake` module): the client's first frame is a hello, the server
//! answers with a reply frame. By address (`fifo:BASE`), the server makes `BASE.to-server` and
//! `BASE.to-client` (mode 0600) and the client opens them; the order of the opens is what
//! keeps either side from blocking forever (see `files.rs`):
//!
//! 1. the server makes both fifos and opens `to-server` for reading (`O_NONBLOCK`: at once);
//! 2. the client opens `to-server` for writing (retrying while nobody reads it yet, up to the
//!    handshake timeout), then `to-client` for reading, and writes its hello;
//! 3. the server reads the hello, opens `to-client` for writing (the client reads it by now),
//!    answers, and removes both names: from then on nothing is left behind, whatever happens.
//!
//! A fifo's reader that never had a writer does not poll as hung up, so the client waits for
//! the reply in `ppoll` like any reader. One pair of fifos serves one client: the fifo
//! transport has no [`Listener`](crate::Listener).
//!
//! # Examples
//! ```
//! use switchboard::{Kind, Options, Transport, pair};
//!
//! let (mut a, mut b) = pair(Kind::Fifo, &Options::new())?; // fifos made, opened and unlinked
//! a.send(b"through a named pipe")?;
//! let mut buf = Vec::new();
//! b.recv(&mut buf)?;
//! assert_eq!(buf, b"through a named pipe");
//! # Ok::<(), switchboard::Error>(())
//! ```

use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;

use crate::address::Address;
use crate::deadline;
use crate::error::{Error, Result};
use crate::frame::Framed;
use crate::handshake::{self, HelloReader, Progress, Status, Token};
use crate::stream::FdStream;
use crate::transport::{Kind, Options};

pub(crate) mod files;

use files::FifoFiles;

/// One end of a pair of named pipes.
///
/// Obtained from [`FifoTransport::pair`], [`FifoTransport::create`] (the server side of a
/// `fifo:` address), [`FifoTransport::open`] or [`connect`](crate::connect) (the client side),
/// or [`spawn_child`](crate::spawn_child) with [`Kind::Fifo`]. Dropping it closes both fifos:
/// the peer receives what was sent, then [`Error::Disconnected`](crate::Error::Disconnected).
///
/// # Platform-specific behavior
/// As for [`PipeTransport`](crate::PipeTransport), a process whose SIGPIPE disposition is
/// still the default gets it set to ignore, so that a write to a departed peer returns
/// `Disconnected`.
///
/// # Examples
/// ```
/// use switchboard::{FifoTransport, Options, Transport};
///
/// let (mut a, mut b) = FifoTransport::pair(&Options::new())?;
/// a.send(b"ping")?;
/// let mut buf = Vec::new();
/// assert_eq!(b.recv(&mut buf)?, 4);
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct FifoTransport {
    framed: Framed<FdStream>,
}

impl FifoTransport {
    /// Two connected endpoints in this process: two fifos in a private directory, opened and
    /// removed at once.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory or the fifos cannot be made or opened.
    pub fn pair(options: &Options) -> Result<(Self, Self)> {
        options.check()?;
        let (mut names, base) = FifoFiles::private()?;
        let [up, down] = files::paths(&base);
        let open = |path: &Path| -> Result<(File, File)> {
            let read = files::open_read(path).map_err(|e| Error::about(e, path.display()))?;
            let write = files::open_write(path).map_err(|e| Error::about(e, path.display()))?;
            Ok((read, write))
        };
        let (up_read, up_write) = open(&up)?;
        let (down_read, down_write) = open(&down)?;
        names.remove();
        Ok((Self::from_files(up_read, down_write, options)?, Self::from_files(down_read, up_write, options)?))
    }

    /// The server side of `fifo:BASE`: makes `BASE.to-server` and `BASE.to-client` (mode
    /// 0600), waits up to the handshake timeout for one client to open them and say hello,
    /// and removes them once it has.
    ///
    /// A fifo left at the path by a server that died (nobody reads it) is replaced.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path if it exists and is not a fifo (`AlreadyExists`), if a
    /// live server uses it (`AddrInUse`), or if the fifos cannot be made; [`Error::Handshake`]
    /// if no client came in time or its hello was not a switchboard hello. The fifos are
    /// removed on every error.
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Address, FifoTransport, Options, Transport, connect};
    ///
    /// let base = std::env::temp_dir().join(format!("fifo-doc-{}", std::process::id()));
    /// let addr = Address::Fifo(base.clone());
    /// let client = std::thread::spawn(move || connect(&addr, &Options::new())); // waits for the server
    /// let mut server = FifoTransport::create(&base, &Options::new())?;
    /// let mut client = client.join().expect("client thread")?;
    /// client.send(b"hi")?;
    /// let mut buf = Vec::new();
    /// server.recv(&mut buf)?;
    /// assert_eq!(buf, b"hi");
    /// assert!(!base.with_extension("to-server").exists(), "the names are gone once connected");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn create(base: impl AsRef<Path>, options: &Options) -> Result<Self> {
        options.check()?;
        let base = base.as_ref();
        let mut server = FifoServer::create(base)?;
        let deadline = deadline::after(options.handshake_timeout);
        match server.accept_until(None, options, deadline)? {
            Some(t) => Ok(t),
            None => Err(Error::Handshake(format!(
                "no client opened {} within {:?}",
                Address::Fifo(base.to_owned()),
                options.handshake_timeout
            ))),
        }
    }

    /// The client side of `fifo:BASE`: opens the two fifos a server made with
    /// [`create`](FifoTransport::create) and performs the handshake, waiting up to the
    /// handshake timeout for the server to be there.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path if it is not a fifo (`InvalidInput`), if it does not
    /// exist within the handshake timeout (`NotFound`) or nobody reads it by then
    /// (`ConnectionRefused`: a server that died left it);
    /// [`Error::Handshake`] if the server refuses the client.
    ///
    /// # Examples
    /// ```no_run
    /// use switchboard::{FifoTransport, Options, Transport};
    ///
    /// let mut conn = FifoTransport::open("/run/user/1000/app", &Options::new())?;
    /// conn.send(b"hello")?;
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn open(base: impl AsRef<Path>, options: &Options) -> Result<Self> {
        Self::open_with(base.as_ref(), options, None)
    }

    /// [`open`](FifoTransport::open), presenting `token` in the hello (a spawned child).
    pub(crate) fn open_with(base: &Path, options: &Options, token: Option<&Token>) -> Result<Self> {
        options.check()?;
        let deadline = deadline::after(options.handshake_timeout);
        let [up, down] = files::paths(base);
        let mut pause = Duration::from_millis(1);
        let write = loop {
            match files::open_write(&up) {
                Ok(file) => break file,
                // Not made yet, or nobody reads it yet: the server may be starting.
                Err(e)
                    if (e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENXIO))
                        && !deadline::passed(deadline) =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                // Still nobody reads it: a server that died before anyone came left it.
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "no server reads this fifo");
                    return Err(Error::about(refused, up.display()));
                }
                Err(e) => return Err(Error::about(e, up.display())),
            }
        };
        // The server makes `to-client` just after it starts reading `to-server`.
        let read = loop {
            match files::open_read(&down) {
                Ok(file) => break file,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !deadline::passed(deadline) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(Error::about(e, down.display())),
            }
        };
        let mut conn = Self::from_files(read, write, options)?;
        let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
        handshake::client(&mut conn.framed, token, left.max(Duration::from_millis(1)))?;
        Ok(conn)
    }

    fn from_files(read: File, write: File, options: &Options) -> Result<Self> {
        Self::from_fds(read.into(), write.into(), options)
    }

    fn from_fds(read: OwnedFd, write: OwnedFd, options: &Options) -> Result<Self> {
        Ok(FifoTransport { framed: Framed::new(FdStream::pipes(read, write)?, options.max_message_size) })
    }

    /// The read end's fd (for `poll`).
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.framed.get_ref().read_fd()
    }

    /// The write end's fd.
    pub fn write_fd(&self) -> BorrowedFd<'_> {
        self.framed.get_ref().write_fd()
    }
}

/// The server side while it waits for its one client: the fifos and the read end.
#[derive(Debug)]
pub(crate) struct FifoServer {
    files: FifoFiles,
    up: std::path::PathBuf,
    down: std::path::PathBuf,
    read: File,
    hello: HelloReader,
}

impl FifoServer {
    /// Makes the fifos at `base` and reads `to-server`.
    pub(crate) fn create(base: &Path) -> Result<Self> {
        let (files, read) = FifoFiles::create(base)?;
        let [up, down] = files::paths(base);
        Ok(FifoServer { files, up, down, read, hello: HelloReader::default() })
    }

    /// Two fifos in a private directory, for a spawned child; and their base path.
    pub(crate) fn private() -> Result<(Self, std::path::PathBuf)> {
        let (files, base) = FifoFiles::private()?;
        let [up, down] = files::paths(&base);
        let read = files::open_read(&up).map_err(|e| Error::about(e, up.display()))?;
        Ok((FifoServer { files, up, down, read, hello: HelloReader::default() }, base))
    }

    /// Waits until `deadline` for the client's hello (with `token`, if given); `Ok(None)` if
    /// it has not come yet. A writer that opens and closes without a word (someone checking
    /// whether the fifo is in use) is forgotten: the read end is opened afresh.
    pub(crate) fn accept_until(
        &mut self,
        token: Option<&Token>,
        options: &Options,
        deadline: Option<Instant>,
    ) -> Result<Option<FifoTransport>> {
        loop {
            let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&self.read), PollFlags::POLLIN)];
            let timeout = deadline.map(|d| TimeSpec::from_duration(d.saturating_duration_since(Instant::now())));
            match ppoll(&mut fds, timeout, None) {
                Ok(0) => return Ok(None),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            match self.hello.read_from(&mut self.read) {
                Progress::More => {}
                Progress::Gone if self.hello.is_silent() => {
                    self.read = files::open_read(&self.up).map_err(|e| Error::about(e, self.up.display()))?;
                }
                Progress::Gone | Progress::Refuse(_) => {
                    return Err(Error::Handshake("the client's hello is not a switchboard hello".into()));
                }
                Progress::Hello(got) => {
                    if let Some(expected) = token
                        && !got.is_some_and(|t| expected.ct_eq(&t))
                    {
                        return Err(Error::Handshake("the client presented a wrong token".into()));
                    }
                    return self.finish(options).map(Some);
                }
            }
            if deadline::passed(deadline) {
                return Ok(None);
            }
        }
    }

    /// Opens the client's fifo, answers the hello and removes the names.
    fn finish(&mut self, options: &Options) -> Result<FifoTransport> {
        let write = files::open_write(&self.down).map_err(|e| {
            Error::Handshake(format!("the client did not open {} for reading: {e}", self.down.display()))
        })?;
        let read = self.read.try_clone()?;
        let mut conn = FifoTransport::from_files(read, write, options)?;
        conn.framed.send_frame(&handshake::encode_reply(Status::Accepted))?;
        self.files.remove();
        Ok(conn)
    }
}

crate::frame::impl_transport!(FifoTransport, Kind::Fifo);
