//! Large payloads handed over instead of copied: a memfd written once, then frozen with
//! `F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL` (`memfd_create(2)`, "File
//! sealing"), and passed over a Unix socket. The receiver checks the seals and maps it
//! read-only: no copy through the socket, no trust in the sender (it can neither change the
//! bytes nor truncate them under the reader), and nothing to clean up (no name).

use std::fmt;
use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::Result;
use crate::shm::region::{self, Region};

/// A read-only payload in a sealed memfd: send its fd with
/// [`UnixTransport::send_with_fds`](crate::UnixTransport::send_with_fds), and rebuild it on
/// the other side with [`from_fd`](SealedMemfd::from_fd). Its bytes never change once made.
///
/// # Examples
/// ```
/// use std::os::fd::AsFd;
/// use switchboard::{Options, SealedMemfd, UnixTransport};
///
/// let (mut a, mut b) = UnixTransport::pair(&Options::new())?;
/// let payload = SealedMemfd::with_len(1 << 20, |bytes| bytes.fill(7))?;
/// a.send_with_fds(b"frame 1", &[payload.as_fd()])?;
/// drop(payload);
///
/// let (mut msg, mut fds) = (Vec::new(), Vec::new());
/// b.recv_with_fds(&mut msg, &mut fds)?;
/// let received = SealedMemfd::from_fd(fds.pop().unwrap())?;
/// assert_eq!(received.len(), 1 << 20);
/// assert!(received.iter().all(|&b| b == 7));
/// # Ok::<(), switchboard::Error>(())
/// ```
pub struct SealedMemfd {
    fd: OwnedFd,
    /// `None` for an empty payload (nothing to map).
    map: Option<Region>,
}

impl fmt::Debug for SealedMemfd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedMemfd").field("fd", &self.fd).field("len", &self.len()).finish()
    }
}

impl SealedMemfd {
    /// A payload of `len` bytes that `fill` writes in place (zero-filled before), then sealed.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the memfd cannot be created, sized, mapped or sealed.
    pub fn with_len(len: usize, fill: impl FnOnce(&mut [u8])) -> Result<Self> {
        let (map, fd) = Region::memfd_unsealed(c"switchboard-payload", len)?;
        if let Some(mut map) = map {
            // SAFETY: the memfd was created just now and never shared: this is its only mapping.
            fill(unsafe { region::private_bytes_mut(&mut map) });
            // Unmapped before sealing: F_SEAL_WRITE is refused while a writable mapping exists.
            drop(map);
        }
        region::freeze(&fd)?;
        Self::from_fd(fd)
    }

    /// A sealed copy of `bytes`.
    ///
    /// # Errors
    /// As [`with_len`](SealedMemfd::with_len).
    pub fn copy_from(bytes: &[u8]) -> Result<Self> {
        // write(2) into the memfd instead of a mapping: no page tables to build and tear
        // down on this side, only the reader maps it.
        let fd = region::memfd_filled(c"switchboard-payload", bytes)?;
        region::freeze(&fd)?;
        Self::from_fd(fd)
    }

    /// Adopts a memfd received from a peer, after checking that it is sealed against writes
    /// and resizing, and maps it read-only.
    ///
    /// # Errors
    /// [`Error::IncompatibleSegment`](crate::Error::IncompatibleSegment) if it is not sealed
    /// so (or not a memfd); [`Error::Io`](crate::Error::Io) if it cannot be mapped.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let len = region::frozen_len(&fd)?;
        let map = if len == 0 { None } else { Some(Region::map_read_only(&fd, len)?) };
        Ok(SealedMemfd { fd, map })
    }

    /// Gives up the mapping and returns the descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for SealedMemfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Deref for SealedMemfd {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.map {
            // SAFETY: `from_fd` checked F_SEAL_WRITE and F_SEAL_SHRINK: nobody can change or
            // truncate these bytes while we map them.
            Some(map) => unsafe { region::frozen_bytes(map) },
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_payloads_are_frozen_and_unsealed_ones_refused() {
        let p = SealedMemfd::copy_from(b"frozen").unwrap();
        assert_eq!(&*p, b"frozen");
        let writer = std::fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{}", {
            use std::os::fd::AsRawFd;
            p.as_fd().as_raw_fd()
        }));
        if let Ok(mut w) = writer {
            use std::io::Write;
            assert!(w.write_all(b"X").is_err(), "a frozen memfd must refuse writes");
        }
        assert_eq!(&*p, b"frozen");
        assert!(SealedMemfd::copy_from(b"").unwrap().is_empty());
        let (_, unsealed) = Region::memfd_unsealed(c"t", 10).unwrap();
        assert!(matches!(SealedMemfd::from_fd(unsealed), Err(crate::error::Error::IncompatibleSegment(_))));
    }
}
