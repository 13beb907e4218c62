//! Unit tests of the framing: decoding through readers that return a byte at a time, cut
//! frames, huge prefixes, memory that follows what arrived.

use super::*;
use std::collections::VecDeque;

/// An in-memory stream: reads return at most `chunk` bytes of `input`, then EOF (or
/// WouldBlock-style "not ready" when `open`); writes are collected, at most `wchunk` at a
/// time.
struct Mem {
    input: VecDeque<u8>,
    chunk: usize,
    open: bool,
    output: Vec<u8>,
    wchunk: usize,
    /// Reads are paced, like a pipe's, with `input`'s length as the kernel's backlog.
    paced: bool,
    reads: usize,
    /// Writes that find no room (`WouldBlock`) before writes go through.
    wblock: usize,
}

impl Mem {
    fn new(input: &[u8], chunk: usize) -> Self {
        Mem {
            input: input.iter().copied().collect(),
            chunk,
            open: false,
            output: Vec::new(),
            wchunk: usize::MAX,
            paced: false,
            reads: 0,
            wblock: 0,
        }
    }

    fn paced(input: &[u8], chunk: usize) -> Self {
        Mem { paced: true, ..Mem::new(input, chunk) }
    }
}

impl Stream for Mem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() && self.open {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.reads += 1;
        let n = buf.len().min(self.chunk).min(self.input.len());
        for b in &mut buf[..n] {
            *b = self.input.pop_front().unwrap();
        }
        Ok(n)
    }
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.wblock > 0 {
            self.wblock -= 1;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(self.wchunk - n);
            self.output.extend_from_slice(&b[..take]);
            n += take;
        }
        Ok(n)
    }
    fn wait(&mut self, read: bool, write: bool, _: Option<Instant>) -> io::Result<Ready> {
        Ok(Ready { readable: read && (!self.input.is_empty() || !self.open), writable: write })
    }
    fn paced(&self) -> bool {
        self.paced
    }
    fn unread(&self) -> Option<usize> {
        Some(self.input.len())
    }
}

fn encode(msgs: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

#[test]
fn decodes_one_byte_at_a_time() {
    let big = vec![7u8; 3 * READ_BUF + 5];
    let msgs: [&[u8]; 4] = [b"", b"a", b"hello world", &big];
    for (chunk, paced) in [1, 3, 4, 5, 4096, usize::MAX].into_iter().flat_map(|c| [(c, false), (c, true)]) {
        let mem = if paced { Mem::paced(&encode(&msgs), chunk) } else { Mem::new(&encode(&msgs), chunk) };
        let mut f = Framed::new(mem, 1 << 20);
        let mut buf = Vec::new();
        for m in msgs {
            assert_eq!(f.recv(&mut buf, None, None).unwrap(), m.len());
            assert_eq!(buf, m);
        }
        assert!(matches!(f.recv(&mut buf, None, None), Err(Error::Disconnected)));
        assert!(matches!(f.recv(&mut buf, None, None), Err(Error::Disconnected)));
    }
}

#[test]
fn eof_inside_a_frame_is_truncated() {
    let wire = encode(&[b"0123456789"]);
    for cut in 1..wire.len() {
        let mut f = Framed::new(Mem::new(&wire[..cut], 2), 1024);
        let err = f.recv(&mut Vec::new(), None, None).unwrap_err();
        assert!(matches!(err, Error::Truncated { received, .. } if received == cut), "cut {cut}: {err:?}");
    }
    let big = vec![1u8; READ_BUF * 2];
    let wire = encode(&[&big]);
    let mut f = Framed::new(Mem::new(&wire[..wire.len() - 1], 1000), 1 << 20);
    assert!(matches!(f.recv(&mut Vec::new(), None, None), Err(Error::Truncated { .. })));
}

#[test]
fn oversized_prefix_is_refused_without_allocating() {
    for len in [1025u32, u32::MAX] {
        let mut f = Framed::new(Mem::new(&len.to_le_bytes(), 1), 1024);
        let err = f.recv(&mut Vec::new(), None, None).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { len: l, max: 1024 } if l == len as u64));
        assert!(f.body.capacity() == 0 && f.rbuf.len() == READ_BUF);
        assert!(matches!(f.recv(&mut Vec::new(), None, None), Err(Error::Disconnected)));
    }
}

#[test]
fn memory_follows_bytes_received_not_bytes_announced() {
    // 60 MiB announced, 1,000 bytes sent, then nothing more for now.
    let mut wire = (60u32 << 20).to_le_bytes().to_vec();
    wire.extend_from_slice(&[5; 1000]);
    let mut f = Framed::new(Mem::new(&wire, 1), 64 << 20);
    f.io.open = true;
    for _ in 0..3 {
        assert!(matches!(f.recv(&mut Vec::new(), None, Some(Instant::now())), Err(Error::Timeout)));
    }
    assert!(f.buffered_capacity() <= 3 * READ_BUF, "{} bytes buffered for 1,004 received", f.buffered_capacity());
    // As the bytes come, the buffer follows: about twice what arrived.
    f.io.input.extend(std::iter::repeat_n(6, 3 << 20));
    f.io.chunk = 1 << 16;
    assert!(matches!(f.recv(&mut Vec::new(), None, Some(Instant::now())), Err(Error::Timeout)));
    let received = 1000 + (3 << 20);
    assert!(f.body.capacity() <= 2 * received + READ_BUF, "{} for {received}", f.body.capacity());
    // The whole frame still arrives intact.
    f.io.input.extend(std::iter::repeat_n(7, (60 << 20) - received));
    let mut buf = Vec::new();
    assert_eq!(f.recv(&mut buf, None, Some(Instant::now())).unwrap(), 60 << 20);
    assert_eq!((buf[999], buf[1000], buf[received]), (5, 6, 7));
}

#[test]
fn failed_allocation_is_an_error_for_the_connection() {
    let mut body = Vec::new();
    assert!(matches!(body_room(&mut body, usize::MAX, usize::MAX / 2, 0), Err(Error::OutOfMemory { .. })));
    assert_eq!(body_room(&mut body, 100_000, 0, 10).unwrap(), READ_BUF);
    assert_eq!(body_room(&mut body, 100_000, READ_BUF, 0).unwrap(), 100_000);
}

#[test]
fn timeout_keeps_the_partial_frame() {
    let wire = encode(&[b"abcdef"]);
    let mut f = Framed::new(Mem::new(&wire[..7], 1), 1024);
    f.io.open = true;
    let mut buf = Vec::new();
    assert!(matches!(f.recv(&mut buf, None, Some(Instant::now())), Err(Error::Timeout)));
    f.io.input.extend(&wire[7..]);
    assert_eq!(f.recv(&mut buf, None, Some(Instant::now())).unwrap(), 6);
    assert_eq!(buf, b"abcdef");
}

#[test]
fn send_writes_prefix_and_body_over_partial_writes() {
    for wchunk in [1, 3, 4, 7, usize::MAX] {
        let mut f = Framed::new(Mem::new(&[], 1), 1024);
        f.io.wchunk = wchunk;
        f.send(b"").unwrap();
        f.send(b"xyz").unwrap();
        assert_eq!(f.io.output, encode(&[b"", b"xyz"]));
        assert!(matches!(f.send(&[0; 1025]), Err(Error::MessageTooLarge { len: 1025, max: 1024 })));
        f.send(&[9; 1024]).unwrap();
    }
}

#[test]
fn random_streams_decode_to_the_same_messages() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..50 {
        let msgs: Vec<Vec<u8>> = (0..20)
            .map(|_| {
                let len = match next() % 4 {
                    0 => 0,
                    1 => (next() % 16) as usize,
                    2 => (next() % 4096) as usize,
                    _ => (next() % (3 * READ_BUF as u64)) as usize,
                };
                (0..len).map(|_| next() as u8).collect()
            })
            .collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        let chunk = 1 + (next() % 70_000) as usize;
        let mem = if next() % 2 == 0 { Mem::paced(&encode(&refs), chunk) } else { Mem::new(&encode(&refs), chunk) };
        let mut f = Framed::new(mem, 1 << 20);
        let mut buf = Vec::new();
        for m in &msgs {
            f.recv(&mut buf, None, None).unwrap();
            assert_eq!(&buf, m);
        }
    }
}

#[test]
fn a_paced_reader_leaves_a_backlog_in_the_stream_and_takes_it_in_few_reads() {
    // 2000 frames of 64 bytes wait (136 KB, more than the 64 KiB buffer): the reader must
    // never empty the stream before the last frame (a pipe's writer would pay for every
    // frame it sends into an empty pipe), yet take the backlog many frames per read.
    let frames = 2000;
    let msgs: Vec<Vec<u8>> = (0..frames).map(|i| vec![i as u8; 64]).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let mut f = Framed::new(Mem::paced(&encode(&refs), usize::MAX), 1 << 20);
    let mut buf = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        f.recv(&mut buf, None, None).unwrap();
        assert_eq!(&buf, m);
        if i + 1 < frames {
            assert!(!f.io.input.is_empty(), "the stream was emptied with {} frames to come", frames - i - 1);
        }
    }
    // One read per frame would be 2000; the backlog reads leave 4 KiB (60 frames) behind, and
    // those go one per read.
    assert!(f.io.reads < 200, "{} reads for {frames} frames", f.io.reads);
}

#[test]
fn a_buffer_grown_while_a_send_waited_shrinks_back_though_a_paced_reader_never_drains_it() {
    // A send that waits for room reads what comes meanwhile, growing the buffer past 64 KiB;
    // the buffer must shrink back once what it holds fits, even while the paced reader keeps
    // the next frame's prefix in it.
    let frames = 8000; // 544 KB of 64-byte frames
    let msgs: Vec<Vec<u8>> = (0..frames).map(|i| vec![i as u8; 64]).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let mut f = Framed::new(Mem { wblock: 4, ..Mem::paced(&encode(&refs), usize::MAX) }, 1 << 20);
    f.send(b"out").unwrap();
    assert!(f.rbuf.len() > 2 * READ_BUF, "the waiting send grew the buffer to {} bytes only", f.rbuf.len());
    let mut buf = Vec::new();
    for m in &msgs[..frames - 100] {
        f.recv(&mut buf, None, None).unwrap();
        assert_eq!(&buf, m);
    }
    assert!(!f.io.input.is_empty() && f.start < f.end, "the test must end with frames still to come");
    assert_eq!(f.rbuf.len(), READ_BUF, "the buffer stayed grown");
    for m in &msgs[frames - 100..] {
        f.recv(&mut buf, None, None).unwrap();
        assert_eq!(&buf, m);
    }
}

#[test]
fn a_batch_is_the_frames_of_its_messages_whatever_the_writes_take() {
    let big = vec![9u8; 3000];
    let msgs: Vec<&[u8]> = (0..1200).map(|i| if i % 100 == 7 { &big[..] } else { &b"tick-tock"[..i % 10] }).collect();
    // Writes that take everything, one byte, or a size that cuts prefixes and bodies.
    for wchunk in [usize::MAX, 1, 3, 4093] {
        let mut f = Framed::new(Mem::new(&[], 1), 1 << 20);
        f.io.wchunk = wchunk;
        f.send_batch(&msgs).unwrap();
        assert!(f.io.output == encode(&msgs), "writes of {wchunk} bytes");
    }
}

#[test]
fn a_batch_with_one_message_too_large_sends_nothing() {
    let mut f = Framed::new(Mem::new(&[], 1), 16);
    let err = f.send_batch(&[b"fine", &[0; 17], b"fine too"]).unwrap_err();
    assert!(matches!(err, Error::MessageTooLarge { len: 17, max: 16 }));
    assert!(f.io.output.is_empty());
    f.send_batch(&[b"fine"]).unwrap();
    assert_eq!(f.io.output, encode(&[b"fine"]));
}
