//! The shared mapping: `memfd_create(2)` for parent and child, `shm_open(3)` for unrelated
//! processes, and `mmap(2)`. The only mapping syscalls of the crate live here.
//!
//! A memfd has no name, so nothing can leak even if both processes are killed; it is sealed
//! against shrinking (`F_SEAL_SHRINK`, see `memfd_create(2)`), so the peer cannot truncate it
//! under us and turn our next access into SIGBUS. A named `shm_open` object cannot be sealed:
//! see the README's threat model.

use std::ffi::CString;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap, shm_open, shm_unlink};
use nix::sys::stat::{Mode, fstat};

use crate::error::{Error, Result};

/// A shared read-write mapping of a whole file, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory with no thread affinity; all access to it goes
// through atomics or through the ring's ownership protocol.
unsafe impl Send for Region {}

// SAFETY: `&Region` gives out only the pointer and length (and `frozen_bytes`, over a sealed
// mapping nobody can write). The two halves of a split endpoint share one region, each
// touching its own ring through its own producer or consumer, the header through atomics.
unsafe impl Sync for Region {}

impl Region {
    /// Maps all `len` bytes of `fd` shared and read-write, with the page tables filled in
    /// (`MAP_POPULATE`): otherwise the first pass over a ring takes a page fault every 4 KiB,
    /// which showed up as a 10x p99 on small messages.
    fn map(fd: impl AsFd, len: usize) -> Result<Self> {
        let size = NonZeroUsize::new(len).ok_or_else(|| Error::IncompatibleSegment("empty segment".into()))?;
        // SAFETY: a fresh mapping chosen by the kernel (no address hint, no MAP_FIXED) cannot
        // alias any Rust object; the file is at least `len` bytes (callers check), and we
        // unmap it only in Drop.
        let ptr = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED | MapFlags::MAP_POPULATE,
                fd,
                0,
            )
        }?;
        Ok(Region { ptr: ptr.cast(), len })
    }

    /// Maps all `len` bytes of `fd` shared and read-only.
    pub(crate) fn map_read_only(fd: impl AsFd, len: usize) -> Result<Self> {
        let size = NonZeroUsize::new(len).ok_or_else(|| Error::IncompatibleSegment("empty segment".into()))?;
        // SAFETY: as in `map`: a fresh mapping of a file at least `len` bytes long.
        let ptr =
            unsafe { mmap(None, size, ProtFlags::PROT_READ, MapFlags::MAP_SHARED | MapFlags::MAP_POPULATE, fd, 0) }?;
        Ok(Region { ptr: ptr.cast(), len })
    }

    /// Creates an unsealed, close-on-exec memfd of `len` bytes, named `name` for
    /// `/proc/PID/fd`, and maps it read-write.
    pub(crate) fn memfd_unsealed(name: &std::ffi::CStr, len: usize) -> Result<(Option<Self>, OwnedFd)> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
        nix::unistd::ftruncate(&fd, len as i64)?;
        let region = if len == 0 { None } else { Some(Self::map(&fd, len)?) };
        Ok((region, fd))
    }

    /// Creates a sealed, close-on-exec memfd of `len` bytes and maps it.
    pub(crate) fn memfd(len: usize) -> Result<(Self, OwnedFd)> {
        let fd = memfd_create(c"switchboard", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
        nix::unistd::ftruncate(&fd, len as i64)?;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL))?;
        Ok((Self::map(&fd, len)?, fd))
    }

    /// Maps a memfd received from the parent, after checking that it is sealed against
    /// shrinking and at least `min_len` bytes long.
    pub(crate) fn attach_memfd(fd: &OwnedFd, min_len: usize) -> Result<Self> {
        let seals = SealFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GET_SEALS)?);
        if !seals.contains(SealFlag::F_SEAL_SHRINK) {
            return Err(Error::IncompatibleSegment("the memfd is not sealed against shrinking".into()));
        }
        let len = file_len(fd)?;
        if len < min_len {
            return Err(Error::IncompatibleSegment(format!("segment of {len} bytes is too small")));
        }
        Self::map(fd, len)
    }

    /// Creates a new owner-only named object of `len` bytes (fails if the name exists).
    pub(crate) fn create_named(name: &str, len: usize) -> Result<Self> {
        let cname = shm_name(name)?;
        let fd =
            shm_open(cname.as_c_str(), OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR, Mode::S_IRUSR | Mode::S_IWUSR)
                .map_err(|e| about(e, name))?;
        let result =
            nix::unistd::ftruncate(&fd, len as i64).map_err(|e| about(e, name)).and_then(|()| Self::map(&fd, len));
        if result.is_err() {
            let _ = shm_unlink(cname.as_c_str());
        }
        result
    }

    /// Opens and maps an existing named object, which must belong to this user and be
    /// owner-only.
    pub(crate) fn open_named(name: &str, min_len: usize) -> Result<Self> {
        let cname = shm_name(name)?;
        let fd = shm_open(cname.as_c_str(), OFlag::O_RDWR, Mode::empty()).map_err(|e| about(e, name))?;
        let stat = fstat(&fd).map_err(|e| about(e, name))?;
        if stat.st_uid != nix::unistd::geteuid().as_raw() || stat.st_mode & 0o077 != 0 {
            return Err(Error::IncompatibleSegment(format!("{name:?} is not an owner-only segment of this user")));
        }
        let len = file_len(&fd)?;
        if len < min_len {
            return Err(Error::IncompatibleSegment(format!("segment of {len} bytes is too small")));
        }
        Self::map(&fd, len)
    }

    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is the mapping made in `map`, and every reference into it
        // borrows from the transport that owns this Region, so none outlives it.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// Removes a named object; missing is fine.
pub(crate) fn unlink_named(name: &str) {
    let _ = remove_named(name);
}

/// Removes a named object; whether it existed.
pub(crate) fn remove_named(name: &str) -> Result<bool> {
    match shm_unlink(shm_name(name)?.as_c_str()) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(about(e, name)),
    }
}

/// An OS error about the named segment `name`.
fn about(err: nix::errno::Errno, name: &str) -> Error {
    Error::about(err, format_args!("shared-memory segment {name:?}"))
}

/// `/NAME`, where NAME is a single path component without NUL.
fn shm_name(name: &str) -> Result<CString> {
    let name = name.strip_prefix('/').unwrap_or(name);
    if name.is_empty() || name.len() > 200 || name.contains('/') || name.contains('\0') {
        return Err(Error::Config(format!("{name:?} is not a valid shared-memory name")));
    }
    CString::new(format!("/{name}")).map_err(|_| Error::Config("NUL in name".into()))
}

fn file_len(fd: &OwnedFd) -> Result<usize> {
    let size = fstat(fd)?.st_size;
    usize::try_from(size).map_err(|_| Error::IncompatibleSegment(format!("segment size {size}")))
}

/// Creates an unsealed, close-on-exec memfd holding `bytes` (written, not mapped).
pub(crate) fn memfd_filled(name: &std::ffi::CStr, bytes: &[u8]) -> Result<OwnedFd> {
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    nix::unistd::ftruncate(&fd, bytes.len() as i64)?;
    let mut done = 0;
    while done < bytes.len() {
        match nix::sys::uio::pwrite(&fd, &bytes[done..], done as i64) {
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(fd)
}

/// The seals of a frozen payload: no writes, no size change, no more seals.
const FROZEN: SealFlag =
    SealFlag::F_SEAL_WRITE.union(SealFlag::F_SEAL_SHRINK).union(SealFlag::F_SEAL_GROW).union(SealFlag::F_SEAL_SEAL);

/// Freezes a memfd that has no writable mapping left.
pub(crate) fn freeze(fd: &OwnedFd) -> Result<()> {
    fcntl(fd, FcntlArg::F_ADD_SEALS(FROZEN))?;
    Ok(())
}

/// The length of a memfd that is frozen: its contents and size can never change again.
pub(crate) fn frozen_len(fd: &OwnedFd) -> Result<usize> {
    let seals = SealFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GET_SEALS)?);
    if !seals.contains(FROZEN.difference(SealFlag::F_SEAL_SEAL)) {
        return Err(Error::IncompatibleSegment(format!(
            "the memfd is not sealed against writing and resizing (seals {seals:?})"
        )));
    }
    file_len(fd)
}

/// The bytes of a mapping, for a mapping nobody can write (a frozen memfd).
///
/// # Safety
/// No process may be able to write the mapped file while the slice lives: the file is sealed
/// with `F_SEAL_WRITE` (which the kernel grants only when no writable mapping exists) and
/// `F_SEAL_SHRINK`.
pub(crate) unsafe fn frozen_bytes(region: &Region) -> &[u8] {
    // SAFETY: the mapping is `len` bytes, lives as long as `region`, and (the caller's
    // contract) its contents cannot change.
    unsafe { std::slice::from_raw_parts(region.ptr.as_ptr(), region.len) }
}

/// The bytes of a writable mapping this process owns exclusively (an unsealed memfd it just
/// created and has not shared yet).
///
/// # Safety
/// No other mapping of the file, in any process, may exist while the slice lives.
pub(crate) unsafe fn private_bytes_mut(region: &mut Region) -> &mut [u8] {
    // SAFETY: the mapping is `len` bytes and (the caller's contract) nobody else maps it.
    unsafe { std::slice::from_raw_parts_mut(region.ptr.as_ptr(), region.len) }
}
