//! The files under the fifo transport: making the two fifos (`mkfifo(3)`, mode 0600), opening
//! them in an order that cannot deadlock, and removing them (RAII).
//!
//! Opening a fifo blocks until the other side opens it too (`fifo(7)`), so every open here is
//! `O_NONBLOCK`: for reading it succeeds at once, for writing it fails with `ENXIO` while
//! nobody reads. Opening for reading and writing (`O_RDWR`) would never block either, but
//! then the process is a writer of its own read end and never sees the peer leave.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::handshake;

/// The two fifos of one connection: `BASE.to-server` and `BASE.to-client`.
pub(crate) fn paths(base: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut name = base.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [with(".to-server"), with(".to-client")]
}

/// Fifos this process made, removed on drop if they are still the ones it made; and the
/// private directory around them, if it made one.
#[derive(Debug)]
pub(crate) struct FifoFiles {
    made: Vec<(PathBuf, u64, u64)>,
    dir: Option<PathBuf>,
}

impl FifoFiles {
    /// Makes the two fifos of `base` (mode 0600) and opens `to-server` for reading at once,
    /// so that another server checking whether it is in use finds it read. A fifo left there
    /// by a server that died (nobody reads it) is replaced; a fifo in use, or a path that is
    /// not a fifo, is refused.
    pub(crate) fn create(base: &Path) -> Result<(Self, File)> {
        let mut files = FifoFiles { made: Vec::new(), dir: None };
        let [up, down] = paths(base);
        files.make(&up)?;
        let read = open_read(&up).map_err(|e| Error::about(e, up.display()))?;
        files.make(&down)?;
        Ok((files, read))
    }

    /// Two fifos in a fresh private directory (mode 0700) under the temporary directory,
    /// named by pid, counter and random bits: the directory and both fifos go on drop.
    pub(crate) fn private() -> Result<(Self, PathBuf)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut nonce = [0u8; 8];
        handshake::random_bytes(&mut nonce)?;
        let dir = std::env::temp_dir().join(format!(
            "switchboard-{}-{}-{:016x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            u64::from_ne_bytes(nonce)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| Error::about(e, dir.display()))?;
        let mut files = FifoFiles { made: Vec::new(), dir: Some(dir.clone()) };
        let base = dir.join("fifo");
        for path in paths(&base) {
            files.make(&path)?;
        }
        Ok((files, base))
    }

    fn make(&mut self, path: &Path) -> Result<()> {
        let mode = Mode::S_IRUSR | Mode::S_IWUSR;
        match nix::unistd::mkfifo(path, mode) {
            Err(Errno::EEXIST) if reclaim_stale(path)? => nix::unistd::mkfifo(path, mode),
            other => other,
        }
        .map_err(|e| Error::about(e, path.display()))?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::about(e, path.display()))?;
        self.made.push((path.to_owned(), meta.dev(), meta.ino()));
        Ok(())
    }

    /// Removes the fifos (and the private directory) now: once both sides have opened them,
    /// the names are no longer needed, and nothing is left even if both processes die.
    pub(crate) fn remove(&mut self) {
        for (path, dev, ino) in self.made.drain(..) {
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.dev() == dev && m.ino() == ino) {
                let _ = std::fs::remove_file(&path);
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

impl Drop for FifoFiles {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Whether the existing `path` is a fifo nobody reads (a dead server's) and was removed.
///
/// # Errors
/// `AlreadyExists` naming the path if it is not a fifo, `AddrInUse` if someone reads it.
fn reclaim_stale(path: &Path) -> Result<bool> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::about(e, path.display()))?;
    if !meta.file_type().is_fifo() {
        return Err(Error::about(
            io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a fifo"),
            path.display(),
        ));
    }
    match open_write(path) {
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            std::fs::remove_file(path).map_err(|e| Error::about(e, path.display()))?;
            Ok(true)
        }
        Ok(_) => Err(Error::about(io::Error::new(io::ErrorKind::AddrInUse, "a server uses this fifo"), path.display())),
        Err(e) => Err(Error::about(e, path.display())),
    }
}

/// Opens a fifo for reading without waiting for a writer (close-on-exec, non-blocking).
///
/// # Errors
/// As `open(2)`; `InvalidInput` if the path is not a fifo.
pub(crate) fn open_read(path: &Path) -> io::Result<File> {
    checked(OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?)
}

/// Opens a fifo for writing if someone reads it (`ENXIO` otherwise), without waiting.
///
/// # Errors
/// As `open(2)`; `InvalidInput` if the path is not a fifo.
pub(crate) fn open_write(path: &Path) -> io::Result<File> {
    checked(OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path)?)
}

fn checked(file: File) -> io::Result<File> {
    if file.metadata()?.file_type().is_fifo() {
        Ok(file)
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "not a fifo"))
    }
}
