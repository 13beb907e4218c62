//! The seqpacket wire format: records that carry a tag byte, and the reassembly of messages
//! that span several records.
//!
//! A record is what one `send`/`sendmsg` puts on a `SOCK_SEQPACKET` socket and one `recv` takes
//! off it: the kernel keeps its boundaries (`unix(7)`), so no length prefix is needed. Records
//! are limited in size (the socket's send buffer; `EMSGSIZE` above it), so a message that does
//! not fit in one travels as several:
//!
//! | tag | name | then |
//! |---|---|---|
//! | 1 | whole | the whole message (possibly empty) |
//! | 2 | first | the message's total length, `u32` LE, then its first bytes |
//! | 3 | middle | more bytes (at least one) |
//! | 4 | last | the final bytes (at least one); the fragments add up to the total |
//!
//! The tag numbers are those of the shared-memory ring's records. Every record holds at least
//! its tag, so a read of zero bytes can only mean the end of the connection (an empty
//! seqpacket record would read the same as the end). No record is above [`RECORD_MAX`]
//! bytes; a receiver reads into a buffer of that size and refuses a record the kernel had to
//! cut (`MSG_TRUNC`).
//!
//! Memory follows what arrived: the first fragment's total is checked against the maximum
//! message size, never used to allocate; the message grows fragment by fragment
//! (`try_reserve`), and a fragment that would overrun the total is refused.

use std::mem;

use crate::error::{Error, Result};

/// A message in one record.
pub(crate) const WHOLE: u8 = 1;
/// The first record of a message in several; the total length follows the tag.
pub(crate) const FIRST: u8 = 2;
/// A record between the first and the last.
pub(crate) const MIDDLE: u8 = 3;
/// The last record of a message in several.
pub(crate) const LAST: u8 = 4;

/// Bytes before the payload in a first record: the tag and the `u32` total.
pub(crate) const FIRST_HEADER: usize = 5;

/// The largest record, header included, that a sender makes and a receiver accepts: 128 KiB,
/// so that a 64 KiB message is still one record (the default Unix send buffer, 208 KiB, takes
/// records up to 208 KiB - 32 bytes).
pub(crate) const RECORD_MAX: usize = 128 << 10;

/// The smallest record size a sender falls back to when the kernel refuses bigger ones.
pub(crate) const RECORD_MIN: usize = 1024;

/// The header of one record: its tag, and for a first record the total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    bytes: [u8; FIRST_HEADER],
    len: usize,
}

impl Header {
    /// The header of a message sent as one record.
    pub(crate) fn whole() -> Self {
        Header::tag(WHOLE)
    }

    fn tag(tag: u8) -> Self {
        Header { bytes: [tag, 0, 0, 0, 0], len: 1 }
    }

    fn first(total: usize) -> Self {
        debug_assert!(total <= u32::MAX as usize);
        let t = (total as u32).to_le_bytes();
        Header { bytes: [FIRST, t[0], t[1], t[2], t[3]], len: FIRST_HEADER }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The records of `msg` (at most `u32::MAX` bytes), each at most `record` bytes with its
/// header (`record` is at least [`RECORD_MIN`]), in order: each record's header and the range
/// of `msg` it carries. A message shorter than `record` is one whole record.
pub(crate) fn split(msg: &[u8], record: usize) -> Vec<(Header, usize, usize)> {
    debug_assert!(record >= RECORD_MIN);
    if msg.len() < record {
        return vec![(Header::whole(), 0, msg.len())];
    }
    let mut out = Vec::with_capacity(msg.len() / (record - 1) + 2);
    let first = record - FIRST_HEADER;
    out.push((Header::first(msg.len()), 0, first));
    let mut at = first;
    while msg.len() - at > record - 1 {
        out.push((Header::tag(MIDDLE), at, at + record - 1));
        at += record - 1;
    }
    out.push((Header::tag(LAST), at, msg.len()));
    out
}

/// A message being reassembled from its records.
#[derive(Debug)]
struct Partial {
    total: usize,
    buf: Vec<u8>,
}

/// Reassembles messages from records, checking every tag and length.
#[derive(Debug)]
pub(crate) struct Assembler {
    max: usize,
    partial: Option<Partial>,
}

impl Assembler {
    pub(crate) fn new(max: usize) -> Self {
        Assembler { max, partial: None }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Takes one record (at least one byte). Returns `true` when it completed a message,
    /// which is then in `out` (cleared first); `false` when more records are needed.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] for a message above the maximum, [`Error::Malformed`] for a
    /// record out of place, [`Error::OutOfMemory`] if a fragment cannot be stored.
    pub(crate) fn push(&mut self, record: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        let Some((&tag, payload)) = record.split_first() else {
            return Err(malformed("an empty record (every record carries at least its tag)"));
        };
        match (tag, &mut self.partial) {
            (WHOLE, None) => {
                if payload.len() > self.max {
                    return Err(Error::FrameTooLarge { len: payload.len() as u64, max: self.max });
                }
                out.clear();
                out.try_reserve(payload.len()).map_err(|_| Error::OutOfMemory { bytes: payload.len() })?;
                out.extend_from_slice(payload);
                Ok(true)
            }
            (FIRST, None) => {
                let Some((total, chunk)) = payload.split_first_chunk::<4>() else {
                    return Err(malformed("a first fragment without its total length"));
                };
                let total = u32::from_le_bytes(*total) as usize;
                if total > self.max {
                    return Err(Error::FrameTooLarge { len: total as u64, max: self.max });
                }
                if chunk.len() >= total {
                    return Err(malformed("a first fragment that holds the whole message"));
                }
                let mut buf = Vec::new();
                buf.try_reserve(chunk.len()).map_err(|_| Error::OutOfMemory { bytes: chunk.len() })?;
                buf.extend_from_slice(chunk);
                self.partial = Some(Partial { total, buf });
                Ok(false)
            }
            (MIDDLE | LAST, Some(partial)) => {
                let filled = partial.buf.len() + payload.len();
                if payload.is_empty() || filled > partial.total {
                    return Err(malformed("a fragment that is empty or overruns the message's total"));
                }
                if (tag == LAST) != (filled == partial.total) {
                    return Err(malformed("fragments that do not add up to the message's total"));
                }
                partial.buf.try_reserve(payload.len()).map_err(|_| Error::OutOfMemory { bytes: filled })?;
                partial.buf.extend_from_slice(payload);
                if tag == MIDDLE {
                    return Ok(false);
                }
                let done = self.partial.take().map(|p| p.buf).unwrap_or_default();
                *out = done;
                Ok(true)
            }
            (WHOLE | FIRST, Some(_)) => Err(malformed("a new message began before the last one ended")),
            (MIDDLE | LAST, None) => Err(malformed("a fragment without a first fragment")),
            (other, _) => Err(Error::Malformed(format!("unknown record tag {other}"))),
        }
    }

    /// The error for the end of the connection now: `Truncated` inside a message, else
    /// `Disconnected`.
    pub(crate) fn end(&mut self) -> Error {
        match mem::take(&mut self.partial) {
            Some(p) => Error::Truncated { expected: p.total, received: p.buf.len() },
            None => Error::Disconnected,
        }
    }

    /// Bytes held for a message not yet complete (for tests of the memory bound).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.buf.capacity())
    }
}

fn malformed(what: &str) -> Error {
    Error::Malformed(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records of `msg` as the wire carries them.
    fn wire(msg: &[u8], record: usize) -> Vec<Vec<u8>> {
        split(msg, record)
            .into_iter()
            .map(|(h, from, to)| {
                let mut r = h.as_bytes().to_vec();
                r.extend_from_slice(&msg[from..to]);
                r
            })
            .collect()
    }

    #[test]
    fn every_size_round_trips_through_records_of_every_size() {
        for record in [RECORD_MIN, 4096, RECORD_MAX] {
            for len in [0, 1, record - 2, record - 1, record, record + 1, 3 * record, 3 * record + 7] {
                let msg: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let records = wire(&msg, record);
                assert!(records.iter().all(|r| !r.is_empty() && r.len() <= record), "{len} in {record}");
                assert_eq!(records.len() == 1, len < record, "{len} in {record}: one record iff it fits");
                let mut asm = Assembler::new(usize::MAX);
                let mut out = Vec::new();
                for (i, r) in records.iter().enumerate() {
                    assert_eq!(asm.push(r, &mut out).unwrap(), i == records.len() - 1);
                }
                assert_eq!(out, msg);
            }
        }
    }

    #[test]
    fn records_out_of_place_are_malformed() {
        let first = |total: u32, chunk: &[u8]| {
            let mut r = vec![FIRST];
            r.extend_from_slice(&total.to_le_bytes());
            r.extend_from_slice(chunk);
            r
        };
        let cases: Vec<Vec<Vec<u8>>> = vec![
            vec![vec![]],
            vec![vec![0]],
            vec![vec![9, 1, 2]],
            vec![vec![MIDDLE, 1]],
            vec![vec![LAST, 1]],
            vec![vec![FIRST, 1, 0]],
            vec![first(2, b"ab")],
            vec![first(4, b"ab"), vec![WHOLE]],
            vec![first(4, b"ab"), first(4, b"ab")],
            vec![first(4, b"ab"), vec![MIDDLE]],
            vec![first(4, b"ab"), vec![MIDDLE, 1, 2]],
            vec![first(4, b"ab"), vec![LAST, 1]],
            vec![first(4, b"ab"), vec![LAST, 1, 2, 3]],
        ];
        for records in cases {
            let mut asm = Assembler::new(1 << 20);
            let mut out = Vec::new();
            let mut result = Ok(false);
            for r in &records {
                result = asm.push(r, &mut out);
                if result.is_err() {
                    break;
                }
            }
            assert!(matches!(result, Err(Error::Malformed(_))), "{records:?}: {result:?}");
        }
    }

    #[test]
    fn announced_totals_above_the_maximum_are_refused_before_anything_is_held() {
        let mut asm = Assembler::new(100);
        let mut out = Vec::new();
        assert!(matches!(asm.push(&[WHOLE; 102], &mut out), Err(Error::FrameTooLarge { len: 101, max: 100 })));
        let mut big = vec![FIRST];
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        big.push(0);
        assert!(matches!(asm.push(&big, &mut out), Err(Error::FrameTooLarge { .. })));
        assert_eq!(asm.held(), 0);
    }

    #[test]
    fn memory_follows_the_fragments_that_arrived() {
        let mut asm = Assembler::new(64 << 20);
        let mut first = vec![FIRST];
        first.extend_from_slice(&(60u32 << 20).to_le_bytes());
        first.extend_from_slice(&[1; 10]);
        let mut out = Vec::new();
        assert!(!asm.push(&first, &mut out).unwrap());
        assert!(asm.held() < 4096, "{} bytes held for 10 that arrived", asm.held());
        assert!(matches!(asm.end(), Error::Truncated { expected, received: 10 } if expected == 60 << 20));
        assert!(matches!(asm.end(), Error::Disconnected));
    }
}
