//! Named segments for unrelated processes: `shm_open(3)` names that the creator removes as
//! soon as the peer attaches, and that a creator killed before that leaves behind only until
//! the next `create_named`, `open_named` or `remove_named` of the name.

use std::time::Duration;

use std::sync::atomic::Ordering;

use crate::deadline;
use crate::error::{Error, Result};
use crate::shm::child::{claim, wait_attached};
use crate::shm::layout::{self, HEADER_SIZE};
use crate::shm::region::{self, Region};
use crate::shm::wait::PeerWatch;
use crate::shm::{ShmTransport, header};
use crate::transport::Options;

impl ShmTransport {
    /// Creates a named segment (`shm_open`, owner-only) for an unrelated process to open with
    /// [`open_named`](ShmTransport::open_named). The name exists until the peer attaches (then
    /// [`NamedShm::accept`] removes it) or the `NamedShm` is dropped.
    ///
    /// A segment left under `name` by a creator that died before anyone attached (a
    /// switchboard segment of this user, never attached, whose creator process is gone) is
    /// removed and the name reused.
    ///
    /// # Errors
    /// [`Error::Io`] naming the segment if the name is in use or the segment cannot be made;
    /// [`Error::Config`] for a name with `/` or NUL in it, or invalid options.
    ///
    /// # Platform-specific behavior
    /// If this process is killed before a peer attaches, the name stays in `/dev/shm` until
    /// the next `create_named` of that name, [`remove_named`](ShmTransport::remove_named), or
    /// an `open_named`, each of which removes it. After attach nothing can leak. Named segments cannot be sealed: a peer of the
    /// same user could truncate it and make the next access raise SIGBUS (see the README's
    /// threat model); parent and child connections use a sealed memfd instead.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Options, ShmTransport, Transport};
    ///
    /// let name = format!("switchboard-doc-{}", std::process::id());
    /// let server = ShmTransport::create_named(&name, &Options::new())?;
    /// let mut client = ShmTransport::open_named(&name, &Options::new())?;
    /// let mut server = server.accept(Duration::from_secs(5))?;
    /// client.send(b"hello")?;
    /// let mut buf = Vec::new();
    /// server.recv(&mut buf)?;
    /// assert_eq!(buf, b"hello");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn create_named(name: &str, options: &Options) -> Result<NamedShm> {
        options.check()?;
        let size = layout::total_size(options.ring_capacity);
        let region = match Region::create_named(name, size) {
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists && reclaim_abandoned(name) => {
                Region::create_named(name, size)
            }
            other => other,
        }?;
        header(&region).init(options.ring_capacity, std::process::id());
        Ok(NamedShm { name: name.to_owned(), region: Some(region), options: options.clone() })
    }

    /// Opens a segment made by [`create_named`](ShmTransport::create_named) in another
    /// process. Its ring capacity comes from the segment.
    ///
    /// # Errors
    /// [`Error::Io`] naming the segment if no such name exists (`NotFound`);
    /// [`Error::IncompatibleSegment`] if it is not a switchboard segment of this version, or
    /// not owner-only and ours; [`Error::Handshake`] if another process attached first, or
    /// if its creator is gone (the abandoned segment is then removed).
    pub fn open_named(name: &str, options: &Options) -> Result<Self> {
        options.check()?;
        let region = Region::open_named(name, HEADER_SIZE)?;
        let h = header(&region);
        h.validate(region.len())?;
        let creator = h.creator_pid.load(Ordering::Relaxed);
        let peer = PeerWatch::pid(creator as i32);
        if !peer.alive() {
            reclaim_abandoned(name);
            return Err(Error::Handshake(format!(
                "the creator of shared-memory segment {name:?} (pid {creator}) is gone; the segment was removed"
            )));
        }
        claim(h)?;
        Self::new(region, 1, options, peer, None)
    }

    /// Removes the name of a segment made by [`create_named`](ShmTransport::create_named), as
    /// `shm_unlink(3)` does: connected endpoints keep working. Returns whether the name
    /// existed.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid name; [`Error::Io`] naming the segment if it cannot be
    /// removed (for example, another user's).
    ///
    /// # Examples
    /// ```
    /// use switchboard::{Options, ShmTransport};
    ///
    /// let name = format!("switchboard-doc-remove-{}", std::process::id());
    /// let segment = ShmTransport::create_named(&name, &Options::new())?;
    /// std::mem::forget(segment); // as if the creator had been killed
    /// assert!(ShmTransport::remove_named(&name)?);
    /// assert!(!ShmTransport::remove_named(&name)?);
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn remove_named(name: &str) -> Result<bool> {
        region::remove_named(name)
    }
}

/// Removes the named segment `name` if it was abandoned: a valid switchboard segment of this
/// user that nobody attached to and whose creator process is gone. Whether it did.
///
/// A creator whose pid was reused by another process looks alive, so such a segment stays
/// (a leftover, never a wrong removal).
fn reclaim_abandoned(name: &str) -> bool {
    let Ok(region) = Region::open_named(name, HEADER_SIZE) else {
        return false;
    };
    let h = header(&region);
    if h.validate(region.len()).is_err() || h.attached.load(Ordering::Acquire) != 0 {
        return false;
    }
    if PeerWatch::pid(h.creator_pid.load(Ordering::Relaxed) as i32).alive() {
        return false;
    }
    region::unlink_named(name);
    true
}

/// A named segment waiting for its peer; see [`ShmTransport::create_named`]. Dropping it
/// before a peer attached removes the name.
///
/// # Examples
/// The peer would normally be another process that learned the name; here it is the same one.
/// ```
/// use std::time::Duration;
/// use switchboard::{Options, ShmTransport, Transport};
///
/// let name = format!("switchboard-doc-named-{}", std::process::id());
/// let waiting = ShmTransport::create_named(&name, &Options::new())?;
/// assert_eq!(waiting.name(), name); // what the peer passes to open_named
/// let mut peer = ShmTransport::open_named(&name, &Options::new())?;
/// let mut conn = waiting.accept(Duration::from_secs(5))?;
/// assert!(!ShmTransport::remove_named(&name)?, "accept removed the name");
///
/// peer.send(b"hi")?;
/// let mut buf = Vec::new();
/// conn.recv(&mut buf)?;
/// assert_eq!(buf, b"hi");
/// # Ok::<(), switchboard::Error>(())
/// ```
#[derive(Debug)]
pub struct NamedShm {
    name: String,
    region: Option<Region>,
    options: Options,
}

impl NamedShm {
    /// The segment's name, to pass to [`ShmTransport::open_named`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to `timeout` for a peer to attach, then removes the name and returns the
    /// connected endpoint.
    ///
    /// # Errors
    /// [`Error::Timeout`] if no peer attached in time. `accept` takes the `NamedShm`, so
    /// after a timeout it has been dropped and its name removed: create a new segment to wait
    /// again.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use switchboard::{Error, Options, ShmTransport};
    ///
    /// let name = format!("switchboard-doc-accept-{}", std::process::id());
    /// let lonely = ShmTransport::create_named(&name, &Options::new())?;
    /// assert!(matches!(lonely.accept(Duration::from_millis(1)), Err(Error::Timeout)));
    /// assert!(!ShmTransport::remove_named(&name)?, "the name went with the NamedShm");
    /// # Ok::<(), switchboard::Error>(())
    /// ```
    pub fn accept(mut self, timeout: Duration) -> Result<ShmTransport> {
        let Some(region) = self.region.take() else {
            return Err(Error::Disconnected);
        };
        let h = header(&region);
        if !wait_attached(h, deadline::after(timeout)) {
            region::unlink_named(&self.name);
            return Err(Error::Timeout);
        }
        let peer = PeerWatch::pid(h.attacher_pid.load(Ordering::Acquire) as i32);
        region::unlink_named(&self.name);
        ShmTransport::new(region, 0, &self.options, peer, None)
    }
}

impl Drop for NamedShm {
    fn drop(&mut self) {
        if self.region.is_some() {
            region::unlink_named(&self.name);
        }
    }
}
