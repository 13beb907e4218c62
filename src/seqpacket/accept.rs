//! A listener's view of a seqpacket client before the handshake: its hello record read as
//! the frame it stands for, so that one `HelloReader` serves stream and seqpacket clients.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::frame::{PREFIX_LEN, encode_prefix};
use crate::handshake::HELLO_MAX;
use crate::seqpacket::record::WHOLE;
use crate::seqpacket::sys::{self, Received};

/// A non-blocking seqpacket connection whose hello is being read.
#[derive(Debug)]
pub(crate) struct HelloRecords {
    fd: OwnedFd,
    /// The frame a record stands for (length prefix, then payload) and how much was read.
    frame: Vec<u8>,
    at: usize,
}

impl HelloRecords {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        HelloRecords { fd, frame: Vec::new(), at: 0 }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Best effort: one reply record on a new socket fits, or the peer is gone.
    pub(crate) fn refuse(&self, reply: &[u8]) {
        let _ = sys::send_record(self.fd.as_fd(), &[WHOLE], reply, false);
    }
}

impl Read for HelloRecords {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.frame.len() {
            let mut record = [0u8; 2 + HELLO_MAX];
            self.frame.clear();
            self.at = 0;
            match sys::recv_record(self.fd.as_fd(), &mut record, false)? {
                Received::Record(0) => return Ok(0),
                Received::Record(n) if record[0] == WHOLE => {
                    self.frame.extend_from_slice(&encode_prefix(n - 1));
                    self.frame.extend_from_slice(&record[1..n]);
                }
                // Not a whole record of a hello's size: a length no hello has, so the
                // reader refuses it as malformed.
                _ => self.frame.extend_from_slice(&[0xff; PREFIX_LEN]),
            }
        }
        let n = buf.len().min(self.frame.len() - self.at);
        buf[..n].copy_from_slice(&self.frame[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
