//! Raw baselines for seqpacket and fifo: plain records over a `SOCK_SEQPACKET` socketpair,
//! and plain `read`/`write` over two fifos, with no tags, framing or trait.
//!
//! raw-seqpacket sends a message as records of at most 128 KiB (the kernel refuses records
//! above the send buffer), each `send(2)` one record and each `recv(2)` one record; the child
//! gets its socket as stdin. raw-fifo makes two fifos in a private directory, whose path the
//! child gets in [`ENV_RAW_FIFO`]; both sides open them in the same order, so neither blocks
//! for long, and the names are removed once both are open.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::socket::{MsgFlags, recv, send};

use crate::deadline;
use crate::error::{Error, Result};
use crate::fifo::files::{self, FifoFiles};
use crate::measure::link::Link;
use crate::seqpacket::record::RECORD_MAX;
use crate::transport::Kind;

/// Where the raw fifo child finds the fifos' base path.
pub(crate) const ENV_RAW_FIFO: &str = "SWITCHBOARD_MEASURE_RAW_FIFO";

/// One end of a seqpacket socketpair: a message is `len / RECORD_MAX` records and the rest.
struct RawSeqpacket {
    fd: OwnedFd,
}

impl Link for RawSeqpacket {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        for chunk in msg.chunks(RECORD_MAX) {
            send(self.fd.as_raw_fd(), chunk, MsgFlags::MSG_NOSIGNAL)?;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        buf.resize(len, 0);
        let mut got = 0;
        while got < len {
            let end = (got + RECORD_MAX).min(len);
            match recv(self.fd.as_raw_fd(), &mut buf[got..end], MsgFlags::empty())? {
                0 => return Err(Error::Disconnected),
                n => got += n,
            }
        }
        Ok(())
    }
}

/// Two fifos, read and written with exact sizes.
struct RawFifo {
    read: File,
    write: File,
}

impl Link for RawFifo {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.write.write_all(msg)?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        buf.resize(len, 0);
        self.read.read_exact(buf)?;
        Ok(())
    }
}

/// Spawns `command` as the raw child for seqpacket or fifo and returns the parent's link.
pub(crate) fn spawn(kind: Kind, command: &mut Command) -> Result<(Child, Box<dyn Link>)> {
    if kind == Kind::Seqpacket {
        let (ours, theirs) = crate::seqpacket::socket_pair()?;
        let child = command.stdin(Stdio::from(theirs)).spawn()?;
        return Ok((child, Box::new(RawSeqpacket { fd: ours })));
    }
    let (names, base) = FifoFiles::private()?;
    let [up, down] = files::paths(&base);
    let read = files::open_read(&up).map_err(|e| Error::about(e, up.display()))?;
    command.env(ENV_RAW_FIFO, &base);
    let child = command.spawn()?;
    // The child opens `up` for writing (we read it already), then `down` for reading, which
    // waits for us: open it as soon as it is there.
    let limit = deadline::after(Duration::from_secs(10));
    let write = loop {
        match files::open_write(&down) {
            Ok(file) => break file,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && !deadline::passed(limit) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(Error::about(e, down.display())),
        }
    };
    drop(names);
    blocking(&read)?;
    blocking(&write)?;
    Ok((child, Box::new(RawFifo { read, write })))
}

/// The child's link for seqpacket or fifo, from what [`spawn`] left it.
pub(crate) fn child_link(kind: Kind) -> Result<Box<dyn Link>> {
    if kind == Kind::Seqpacket {
        return Ok(Box::new(RawSeqpacket { fd: std::io::stdin().as_fd().try_clone_to_owned()? }));
    }
    let base = std::env::var_os(ENV_RAW_FIFO).ok_or_else(|| Error::Config(format!("{ENV_RAW_FIFO} is not set")))?;
    let [up, down] = files::paths(&PathBuf::from(base));
    let write = File::options().write(true).open(&up).map_err(|e| Error::about(e, up.display()))?;
    let read = File::open(&down).map_err(|e| Error::about(e, down.display()))?;
    Ok(Box::new(RawFifo { read, write }))
}

fn blocking(file: &File) -> Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_retain(fcntl(file, FcntlArg::F_GETFL)?);
    fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}
