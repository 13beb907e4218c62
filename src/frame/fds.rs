//! Descriptors passed with frames (`SCM_RIGHTS`, `unix(7)`): which frame each batch belongs
//! to, and the bound on how many a connection holds.
//!
//! The kernel hands a `sendmsg`'s descriptors to the read that first touches the bytes sent
//! with them, and ends that read within those bytes (`unix_stream_read_generic`). Each frame
//! is sent by one `sendmsg` starting at its prefix, so a batch that arrived with the bytes
//! `[from, to)` belongs to the last frame that starts in that range: the one that reaches `to`.

use std::mem;
use std::os::fd::OwnedFd;

use crate::error::{Error, Result};
use crate::frame::{Framed, MAX_FDS_PER_MESSAGE, Stream};

/// The most received descriptors a connection holds before the frames they came with are
/// delivered.
const MAX_QUEUED_FDS: usize = 4 * MAX_FDS_PER_MESSAGE;

/// Descriptors that came with one read of the stream bytes `[from, to)`.
///
/// The kernel hands a message's descriptors to the read that first touches the bytes sent
/// with them, and ends that read within those bytes (`unix_stream_read_generic`): since each
/// frame is sent by one `sendmsg` starting at its prefix, the descriptors belong to the last
/// frame that starts in `[from, to)`, the one that reaches `to`.
#[derive(Debug)]
pub(super) struct FdBatch {
    from: u64,
    to: u64,
    fds: Vec<OwnedFd>,
}

impl<S: Stream> Framed<S> {
    /// Books a read of `n` bytes and the descriptors that came with it.
    pub(super) fn account(&mut self, n: usize) -> Result<()> {
        let from = self.rpos;
        self.rpos += n as u64;
        if self.incoming.is_empty() {
            return Ok(());
        }
        let fds = mem::take(&mut self.incoming);
        self.queued_fds += fds.len();
        self.fds.push_back(FdBatch { from, to: self.rpos, fds });
        if self.queued_fds > MAX_QUEUED_FDS {
            return Err(Error::FdPassing(format!(
                "the peer sent more than {MAX_QUEUED_FDS} descriptors ahead of the messages they came with"
            )));
        }
        Ok(())
    }

    /// Hands the descriptors that came with the frame at stream offset `at`, `size` bytes long,
    /// to `out` (or closes them), and closes any that came with no frame before its end.
    #[inline]
    pub(super) fn deliver_fds(&mut self, at: u64, size: usize, out: Option<&mut Vec<OwnedFd>>) {
        // Almost always nothing came: no call.
        if !self.fds.is_empty() {
            self.deliver_queued_fds(at, size, out);
        }
    }

    fn deliver_queued_fds(&mut self, at: u64, size: usize, mut out: Option<&mut Vec<OwnedFd>>) {
        let end = at + size as u64;
        while self.fds.front().is_some_and(|b| b.to <= end) {
            let Some(batch) = self.fds.pop_front() else { break };
            self.queued_fds -= batch.fds.len();
            // Ours if the read that brought them began at or before our prefix; otherwise
            // they came in the middle of a frame, with no frame: closed on drop.
            if batch.from <= at
                && let Some(out) = out.as_deref_mut()
            {
                out.extend(batch.fds);
            }
        }
    }
}
