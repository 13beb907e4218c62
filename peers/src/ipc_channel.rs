//! Servo's ipc-channel, measured through `IpcBytesSender`/`IpcBytesReceiver`: raw byte
//! messages with no serde encoding (an `IpcSender<Vec<u8>>` would bincode every byte), over
//! the Unix `SOCK_SEQPACKET` sockets that back it on Linux.
//!
//! The parent opens an `IpcOneShotServer` and passes its name to the child; the child makes
//! two byte channels and sends the parent their far ends (one sender, one receiver) through
//! the server. `accept` blocks without a timeout, so it runs on a thread of its own, and a
//! child that never comes is killed and the server unblocked by a connection of our own.

use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use ::ipc_channel::IpcError;
use ::ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use switchboard::measure::Link;
use switchboard::{Error, Result};

use crate::peer::{self, ENV_ADDRESS, failed};

/// What the row measures.
pub(crate) const WHAT: &str = "ipc-channel 0.23: IpcBytesSender/IpcBytesReceiver (bytes, no serde), \
     a Unix seqpacket socket underneath, a fresh Vec<u8> per received message";

/// What the one-shot server carries: the parent's sender to the child, and its receiver from
/// the child.
type Ends = (IpcBytesSender, IpcBytesReceiver);

/// One end of the exchange.
struct IpcChannelLink {
    tx: IpcBytesSender,
    rx: IpcBytesReceiver,
}

impl Link for IpcChannelLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.tx.send(msg).map_err(io_error)
    }

    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        // ipc-channel hands out a new Vec per message: take it instead of copying.
        *buf = self.rx.recv().map_err(|e| match e {
            IpcError::Disconnected => Error::Disconnected,
            IpcError::Io(e) => io_error(e),
            other => failed("ipc-channel: receive", other),
        })?;
        if buf.len() != len {
            return Err(Error::Protocol(format!("expected a {len}-byte message, got {} bytes", buf.len())));
        }
        Ok(())
    }
}

/// A closed peer is `Disconnected`, as in switchboard's transports.
fn io_error(e: std::io::Error) -> Error {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    match e.kind() {
        BrokenPipe | ConnectionReset | UnexpectedEof => Error::Disconnected,
        _ => Error::Io(e),
    }
}

/// The parent's side: opens the one-shot server, starts the child and accepts its two ends.
///
/// # Errors
/// Whatever ipc-channel or spawning returns; [`Error::Handshake`] if the child exits or does
/// not connect within [`peer::JOIN_LIMIT`].
pub(crate) fn connect(command: &mut Command) -> Result<(Child, Box<dyn Link>)> {
    let (server, name) = IpcOneShotServer::<Ends>::new().map_err(|e| failed("ipc-channel: one-shot server", e))?;
    command.env(ENV_ADDRESS, &name);
    let mut child = peer::spawn_guarded(command)?;
    let (done_tx, done_rx) = mpsc::channel();
    let accepting = std::thread::Builder::new()
        .name("ipc-channel-accept".into())
        .spawn(move || {
            let _ = done_tx.send(server.accept());
        })
        .map_err(Error::Io)?;
    let mut accepted = None;
    let waited = peer::wait_for_child(&mut child, "connected to the ipc-channel server", || {
        match done_rx.recv_timeout(Duration::from_millis(1)) {
            Ok(result) => {
                accepted = Some(result);
                Ok(true)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::Handshake("the ipc-channel accept thread ended without a result".into()))
            }
        }
    });
    if let Err(e) = waited {
        // Unblock `accept`: kill the child (in case it connected and hangs), then connect
        // ourselves and hang up at once, so that the thread can end.
        drop(child);
        drop(IpcSender::<Ends>::connect(name));
        if done_rx.recv_timeout(Duration::from_secs(1)).is_ok() {
            let _ = accepting.join();
        }
        return Err(e);
    }
    let _ = accepting.join();
    let (_server_rx, (tx, rx)) = match accepted {
        Some(Ok(ends)) => ends,
        Some(Err(e)) => return Err(failed("ipc-channel: accept", e)),
        None => return Err(Error::Handshake("ipc-channel: accepted nothing".into())),
    };
    Ok(peer::joined(child, Box::new(IpcChannelLink { tx, rx })))
}

/// The child's side: makes both channels and sends the parent their far ends.
///
/// # Errors
/// Whatever ipc-channel returns.
pub(crate) fn join(server: &str) -> Result<Box<dyn Link>> {
    let (to_child_tx, to_child_rx) = ipc::bytes_channel().map_err(|e| failed("ipc-channel: channel", e))?;
    let (to_parent_tx, to_parent_rx) = ipc::bytes_channel().map_err(|e| failed("ipc-channel: channel", e))?;
    let bootstrap =
        IpcSender::<Ends>::connect(server.to_string()).map_err(|e| failed("ipc-channel: connect to the parent", e))?;
    // Sent, the far ends leave this process: only the parent holds them, so each side's
    // receiver reports Disconnected when the other side is gone.
    bootstrap.send((to_child_tx, to_parent_rx)).map_err(|e| failed("ipc-channel: send the channel ends", e))?;
    Ok(Box::new(IpcChannelLink { tx: to_parent_tx, rx: to_child_rx }))
}
