//! Entry points for the fuzz targets in `fuzz/` and for the tests that replay seeded inputs
//! through the same code on stable Rust. Not part of the public API.
//!
//! Each function feeds untrusted bytes to one parser and panics only if an invariant breaks
//! (a message above the maximum, more bytes out than in); errors are the expected outcome.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::Instant;

use crate::frame::{Framed, Ready, Stream};
use crate::shm::ShmTransport;

/// The address and length of the shared mapping behind `transport`, so a test can scribble on
/// exactly that segment (and not another test's) to check that corruption gives errors.
pub fn shm_mapping(transport: &ShmTransport) -> (usize, usize) {
    transport.mapping()
}

/// A stream over a byte slice that returns at most `chunk` bytes per read, then end of stream;
/// `paced` as a pipe's (with the rest of the slice as the kernel's backlog).
struct SliceStream {
    input: VecDeque<u8>,
    chunk: usize,
    paced: bool,
}

impl Stream for SliceStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.input.len());
        for (slot, byte) in buf[..n].iter_mut().zip(self.input.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(bufs.iter().map(|b| b.len()).sum())
    }
    fn wait(&mut self, read: bool, write: bool, _: Option<Instant>) -> io::Result<Ready> {
        Ok(Ready { readable: read, writable: write })
    }
    fn paced(&self) -> bool {
        self.paced
    }
    fn unread(&self) -> Option<usize> {
        Some(self.input.len())
    }
}

/// Decodes frames (maximum 4096 bytes) from `data[1..]`, read `data[0] + 1` bytes at a time,
/// once taking all it can per read and once paced as a pipe's reader: both must deliver the
/// same messages and end with the same error.
pub fn frames(data: &[u8]) {
    const MAX: usize = 4096;
    let Some((&chunk, rest)) = data.split_first() else { return };
    let decode = |paced: bool| {
        let input = rest.iter().copied().collect();
        let mut framed = Framed::new(SliceStream { input, chunk: chunk as usize + 1, paced }, MAX);
        let mut buf = Vec::new();
        let mut consumed = 0;
        let mut messages = Vec::new();
        loop {
            match framed.recv(&mut buf, None, None) {
                Ok(n) => {
                    assert!(n <= MAX && buf.len() == n, "a frame above the maximum was accepted");
                    consumed += 4 + n;
                    assert!(consumed <= rest.len(), "more bytes decoded than were given");
                    messages.push(buf.clone());
                }
                Err(e) => return (messages, e.to_string()),
            }
        }
    };
    assert_eq!(decode(false), decode(true), "paced and unpaced reads decoded differently");
}

/// Parses `data` as a handshake hello and as a reply; a hello that parses re-encodes to
/// the same bytes.
pub fn handshake(data: &[u8]) {
    use crate::handshake::{Token, encode_hello, parse_hello, parse_reply};
    if let Ok(hello) = parse_hello(data) {
        let token = hello.token.map(|t| Token::from_hex(&t.iter().map(|b| format!("{b:02x}")).collect::<String>()));
        let encoded = match token {
            Some(Ok(token)) => encode_hello(Some(&token)),
            Some(Err(_)) => panic!("a parsed token must re-encode"),
            None => encode_hello(None),
        };
        assert_eq!(encoded, data, "a parsed hello must re-encode to the same bytes");
    }
    let _ = parse_reply(data);
}

/// Reassembles seqpacket messages (maximum 4096 bytes) from records cut out of `data`: each
/// record is a `u16` LE length, then that many bytes (a length past the end takes the rest).
/// Every message delivered is within the maximum and built from bytes that were given.
pub fn records(data: &[u8]) {
    const MAX: usize = 4096;
    let mut asm = crate::seqpacket::record::Assembler::new(MAX);
    let (mut rest, mut given, mut out) = (data, 0usize, 0usize);
    let mut msg = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = (u16::from_le_bytes(*len) as usize).min(tail.len());
        let (record, tail) = tail.split_at(len);
        rest = tail;
        given += record.len();
        match asm.push(record, &mut msg) {
            Ok(true) => {
                assert!(msg.len() <= MAX, "a message above the maximum was accepted");
                out += msg.len();
                assert!(out <= given, "more bytes delivered than were given");
            }
            Ok(false) => {}
            Err(_) => return,
        }
    }
    let _ = asm.end();
}

/// Reads records from a ring whose indices and bytes come from `data` (the first 16 bytes are
/// the tail and head, the rest the ring's contents).
pub fn ring(data: &[u8]) {
    crate::shm::fuzz_reader(data);
}
