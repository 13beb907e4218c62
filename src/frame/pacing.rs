//! How much a pipe's reader takes per `read`.
//!
//! A pipe that a reader empties is expensive for its writer: the next write finds the pipe
//! empty, takes a fresh page instead of appending to the last one, and wakes the reader's
//! wait queue. A reader that takes one message per read (as a raw loop that knows its
//! sizes does) stays a message behind a writer that sends one per write, so the pipe never
//! empties and neither side pays. A C probe with 68-byte frames on the 2-vCPU test machine,
//! writer and reader pinned to two cores: 2.85-3.13 M frames/s against 2.50-2.63 for a
//! reader that takes all it can (five runs each). But once the reader has caught up, it stays
//! caught up (a writer into an empty pipe is the slower side), so the two rates are the two
//! states of one system, and one drained pipe can switch it to the slow one for good.
//! Taking everything only pays when the writer sends many frames per write
//! ([`send_batch`](super::Framed::send_batch)): then one read serves hundreds of them.
//!
//! So a paced reader reads the rest of the frame it is in and the next frame's prefix, and
//! no more; with no prefix yet, a frame as large as recent ones and the next prefix. Every
//! [`CHECK_EVERY`] reads it asks the kernel how much waits (`FIONREAD`); while that is a
//! backlog of many frames it reads all but [`KEEP_FRAMES`] frames of it (looking again before
//! every read), so that a batching writer's frames still come a buffer-full per read and the
//! pipe still never empties under either writer. Only reads with no deadline are paced: a read
//! with one pays a `ppoll` first, and one frame per read would double its syscalls.

use super::PREFIX_LEN;

/// Reads between two looks at the backlog while there is none.
pub(crate) const CHECK_EVERY: u32 = 16;

/// Frames left in the pipe by a read that takes a backlog (at least [`KEEP_MIN`] bytes).
const KEEP_FRAMES: usize = 16;

/// The least a backlog read leaves in the pipe.
const KEEP_MIN: usize = 4 * 1024;

/// Frames beyond those kept that make a backlog worth a read of its own.
const TAKE_FRAMES: usize = 8;

/// The read size of a paced stream.
#[derive(Debug, Clone)]
pub(crate) struct Pacing {
    /// About the largest frame body lately (it decays by an eighth of the difference with
    /// each smaller frame), which sizes a read that does not know its frame's length yet.
    recent: usize,
    /// Reads since the backlog was last looked at.
    reads: u32,
    /// The last look found a backlog: look again before every read.
    backlog: bool,
}

impl Pacing {
    /// A pacer whose first read may take `first` bytes (a reader that knows nothing yet reads
    /// as much as an unpaced one).
    pub(crate) fn new(first: usize) -> Self {
        Pacing { recent: first, reads: 0, backlog: false }
    }

    /// How many bytes the next read may take, at least one and at most `room` (which must be
    /// at least one: an empty read would look like the end of the stream): `buffered` bytes
    /// of the next frame are in the buffer already, and `len` is its body's length if its
    /// prefix is among them. `unread` asks the kernel how many bytes wait (`None` if it
    /// cannot tell).
    pub(crate) fn limit(
        &mut self,
        buffered: usize,
        len: Option<usize>,
        room: usize,
        unread: impl FnOnce() -> Option<usize>,
    ) -> usize {
        debug_assert!(room > 0, "a paced read needs room for one byte");
        let frame = len.unwrap_or(self.recent).saturating_add(PREFIX_LEN);
        // The rest of this frame and the next one's prefix.
        let want = frame.saturating_add(PREFIX_LEN).saturating_sub(buffered).max(1);
        self.reads += 1;
        if self.backlog || self.reads >= CHECK_EVERY {
            self.reads = 0;
            let keep = frame.saturating_mul(KEEP_FRAMES).max(KEEP_MIN);
            match unread() {
                Some(waiting) if waiting >= keep.saturating_add(frame.saturating_mul(TAKE_FRAMES)) => {
                    self.backlog = true;
                    return (waiting - keep).max(want).min(room).max(1);
                }
                _ => self.backlog = false,
            }
        }
        want.min(room).max(1)
    }

    /// Notes a delivered frame's body length.
    pub(crate) fn delivered(&mut self, len: usize) {
        self.recent = if len >= self.recent { len } else { self.recent - (self.recent - len).div_ceil(8) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> Option<usize> {
        panic!("looked at the backlog")
    }

    #[test]
    fn a_known_frame_is_read_to_its_end_and_the_next_prefix() {
        let mut p = Pacing::new(64 * 1024);
        // 64-byte body, 10 bytes of the frame buffered (its prefix and 6 body bytes).
        assert_eq!(p.limit(10, Some(64), 1 << 16, never), 4 + 64 - 10 + 4);
        // Never more than the room.
        assert_eq!(p.limit(10, Some(64), 20, never), 20);
    }

    #[test]
    fn an_unknown_frame_is_read_as_large_as_recent_ones() {
        let mut p = Pacing::new(64 * 1024);
        assert_eq!(p.limit(0, None, 1 << 20, never), 64 * 1024 + 8);
        for _ in 0..200 {
            p.delivered(64);
        }
        assert_eq!(p.limit(0, None, 1 << 20, never), 64 + 8);
        // A larger frame raises it at once; smaller ones lower it slowly.
        p.delivered(1000);
        assert_eq!(p.limit(2, None, 1 << 20, never), 1000 + 8 - 2);
        p.delivered(64);
        assert_eq!(p.limit(0, None, 1 << 20, never), 1000 - 117 + 8);
    }

    #[test]
    fn a_backlog_is_read_all_but_a_few_frames_until_it_is_gone() {
        let mut p = Pacing::new(64);
        for _ in 1..CHECK_EVERY {
            assert_eq!(p.limit(4, Some(64), 1 << 20, never), 68);
        }
        // The check: 100 KiB waits; 16 frames of 68 bytes (the 4 KiB minimum) stay.
        assert_eq!(p.limit(4, Some(64), 1 << 20, || Some(100 * 1024)), 100 * 1024 - 4096);
        // While there is a backlog, every read looks; the room still bounds the read.
        assert_eq!(p.limit(4, Some(64), 50_000, || Some(100 * 1024)), 50_000);
        // A backlog of fewer than 8 frames beyond those kept: one frame again, and no look
        // for another CHECK_EVERY reads.
        assert_eq!(p.limit(4, Some(64), 1 << 20, || Some(4096 + 7 * 68)), 68);
        assert_eq!(p.limit(4, Some(64), 1 << 20, never), 68);
    }

    #[test]
    fn no_answer_from_the_kernel_means_one_frame() {
        let mut p = Pacing::new(64);
        for _ in 1..CHECK_EVERY {
            p.limit(4, Some(64), 1 << 20, never);
        }
        assert_eq!(p.limit(4, Some(64), 1 << 20, || None), 68);
    }
}
