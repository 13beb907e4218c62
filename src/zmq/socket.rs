//! The libzmq calls of the zmq transport, through the `zmq` crate: the PAIR socket and its
//! options, the monitor, moving one message, waiting, and the one place where ZeroMQ's errors
//! become switchboard's (`zmq_setsockopt(3)`, `zmq_socket_monitor(3)`, `zmq_poll(3)`).

use std::io;
use std::time::{Duration, Instant};

use super::ZmqTransport;
use super::monitor::{self, Event};
use crate::error::{Error, Result};
use crate::handshake;
use crate::transport::Options;

/// A PAIR socket with switchboard's options, and a socket that receives its monitor's events
/// (subscribed before any bind or connect, so none is missed), in a context of their own.
pub(super) fn open(endpoint: &str, options: &Options) -> Result<(::zmq::Socket, ::zmq::Socket)> {
    let fail = |e| error(e, endpoint);
    let context = ::zmq::Context::new();
    let socket = context.socket(::zmq::PAIR).map_err(fail)?;
    // A spawned child's hello passes whatever the user's maximum is; `recv` checks the
    // user's maximum itself.
    let receive_limit = options.max_message_size.max(handshake::HELLO_MAX);
    socket.set_maxmsgsize(i64::try_from(receive_limit).unwrap_or(i64::MAX)).map_err(fail)?;
    socket.set_heartbeat_ivl(millis(ZmqTransport::HEARTBEAT_INTERVAL)).map_err(fail)?;
    socket.set_heartbeat_timeout(millis(ZmqTransport::HEARTBEAT_TIMEOUT)).map_err(fail)?;
    socket.set_heartbeat_ttl(millis(ZmqTransport::HEARTBEAT_TIMEOUT)).map_err(fail)?;
    socket.set_handshake_ivl(millis(options.handshake_timeout)).map_err(fail)?;
    socket.set_linger(millis(ZmqTransport::LINGER)).map_err(fail)?;
    // Only for an IPv6 address: with the option on, libzmq reports an IPv4 endpoint as
    // `[::ffff:127.0.0.1]`, which a peer without it cannot connect to.
    socket.set_ipv6(endpoint.contains('[')).map_err(fail)?;
    // Events are kept however long nobody reads them: a lost DISCONNECTED would hide a dead
    // peer.
    let monitor = context.socket(::zmq::PAIR).map_err(fail)?;
    monitor.set_rcvhwm(0).map_err(fail)?;
    socket.monitor(MONITOR_ENDPOINT, monitor::EVENTS).map_err(fail)?;
    monitor.connect(MONITOR_ENDPOINT).map_err(fail)?;
    Ok((socket, monitor))
}

/// Binds `socket`; returns the endpoint libzmq resolved (`*` to a port), if it says.
pub(super) fn bind(socket: &::zmq::Socket, endpoint: &str) -> Result<Option<String>> {
    socket.bind(endpoint).map_err(|e| error(e, endpoint))?;
    // libzmq 4.3 ends the string with its NUL.
    Ok(socket.get_last_endpoint().ok().and_then(Result::ok).map(|e| e.trim_end_matches('\0').to_owned()))
}

pub(super) fn connect(socket: &::zmq::Socket, endpoint: &str) -> Result<()> {
    socket.connect(endpoint).map_err(|e| error(e, endpoint))
}

/// Hands every pending monitor event to `on`.
pub(super) fn read_events(monitor: &::zmq::Socket, endpoint: &str, mut on: impl FnMut(Event)) -> Result<()> {
    let mut event = ::zmq::Message::new();
    loop {
        match monitor.recv(&mut event, ::zmq::DONTWAIT) {
            Ok(()) => {
                if let Some(e) = monitor::parse(&event) {
                    on(e);
                }
                // The second part names the endpoint; multipart messages arrive whole.
                while event.get_more() {
                    monitor.recv(&mut event, ::zmq::DONTWAIT).map_err(|e| error(e, endpoint))?;
                }
            }
            Err(::zmq::Error::EAGAIN) => return Ok(()),
            Err(::zmq::Error::EINTR) => {}
            Err(e) => return Err(error(e, endpoint)),
        }
    }
}

/// Queues `msg` if libzmq takes it now; `Ok(false)` if not (no peer yet, or the queue is full).
pub(super) fn try_send(socket: &::zmq::Socket, msg: &[u8], endpoint: &str) -> Result<bool> {
    match socket.send(msg, ::zmq::DONTWAIT) {
        Ok(()) => Ok(true),
        Err(::zmq::Error::EAGAIN | ::zmq::Error::EINTR) => Ok(false),
        Err(e) => Err(error(e, endpoint)),
    }
}

/// Lets `socket` close without waiting for what it queued: nobody will read it.
pub(super) fn abandon(socket: &::zmq::Socket) {
    let _ = socket.set_linger(0);
}

/// Takes one whole message out of `socket` into `buf` if one is there (`Ok(None)` if not).
pub(super) fn take(socket: &::zmq::Socket, buf: &mut Vec<u8>, limit: usize, endpoint: &str) -> Result<Option<usize>> {
    let mut msg = ::zmq::Message::new();
    loop {
        match socket.recv(&mut msg, ::zmq::DONTWAIT) {
            Ok(()) => break,
            Err(::zmq::Error::EAGAIN) => return Ok(None),
            Err(::zmq::Error::EINTR) => {}
            Err(e) => return Err(error(e, endpoint)),
        }
    }
    if msg.get_more() {
        let mut parts = 1u64;
        while msg.get_more() {
            socket.recv(&mut msg, ::zmq::DONTWAIT).map_err(|e| error(e, endpoint))?;
            parts += 1;
        }
        return Err(Error::Protocol(format!(
            "zmq:{endpoint}: the peer sent a ZeroMQ message of {parts} parts; switchboard messages have one"
        )));
    }
    if msg.len() > limit {
        return Err(Error::FrameTooLarge { len: msg.len() as u64, max: limit });
    }
    buf.clear();
    buf.try_reserve(msg.len()).map_err(|_| Error::OutOfMemory { bytes: msg.len() })?;
    buf.extend_from_slice(&msg);
    Ok(Some(buf.len()))
}

/// Which way [`wait`] waits on the data socket.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    Read,
    Write,
}

/// Waits until `socket` can go `direction`, the monitor has an event, or `deadline` (`None`:
/// forever).
pub(super) fn wait(
    socket: Option<&::zmq::Socket>,
    direction: Direction,
    monitor: &::zmq::Socket,
    deadline: Option<Instant>,
    endpoint: &str,
) -> Result<()> {
    let timeout_ms = match deadline {
        None => -1,
        // Rounded up, so that a wait never ends before the deadline and spins.
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            i64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
        }
    };
    let events = match direction {
        Direction::Read => ::zmq::POLLIN,
        Direction::Write => ::zmq::POLLOUT,
    };
    let mut items = Vec::with_capacity(2);
    items.push(monitor.as_poll_item(::zmq::POLLIN));
    if let Some(socket) = socket {
        items.push(socket.as_poll_item(events));
    }
    match ::zmq::poll(&mut items, timeout_ms) {
        Ok(_) | Err(::zmq::Error::EINTR) => Ok(()),
        Err(e) => Err(error(e, endpoint)),
    }
}

/// Where each endpoint's monitor publishes, inside the endpoint's own context.
const MONITOR_ENDPOINT: &str = "inproc://switchboard-monitor";

/// Milliseconds for a libzmq option, saturating.
fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Checks that `endpoint` is something libzmq can be given: `transport://address`, no NUL
/// (the `zmq` crate would panic on one), and not `inproc://`.
pub(crate) fn check_endpoint(endpoint: &str) -> Result<()> {
    let bad = |why: &str| Error::Config(format!("ZeroMQ endpoint {endpoint:?} {why}"));
    let Some((transport, address)) = endpoint.split_once("://") else {
        return Err(bad("is not transport://address (tcp://HOST:PORT, ipc://PATH)"));
    };
    if transport.is_empty() || address.is_empty() || endpoint.contains('\0') {
        return Err(bad("is not transport://address (tcp://HOST:PORT, ipc://PATH)"));
    }
    if transport == "inproc" {
        return Err(bad("is inproc://, which only reaches sockets of the same ZeroMQ context: use ipc://@NAME"));
    }
    Ok(())
}

/// The one place where ZeroMQ's errors become switchboard's: a context or socket that is gone
/// (`ETERM`, `ENOTSOCK`) is `Disconnected`; anything else is `Io` naming the endpoint, with
/// the errno's [`io::ErrorKind`] where it is a system errno (libzmq's own, such as `EFSM`,
/// are `Other`).
fn error(err: ::zmq::Error, endpoint: &str) -> Error {
    /// libzmq numbers its own errors from here up (`zmq.h`).
    const ZMQ_HAUSNUMERO: i32 = 156_384_712;
    match err {
        ::zmq::Error::ETERM | ::zmq::Error::ENOTSOCK => Error::Disconnected,
        _ => {
            let raw = err.to_raw();
            let io = if raw < ZMQ_HAUSNUMERO {
                io::Error::from_raw_os_error(raw)
            } else {
                io::Error::other(err.to_string())
            };
            Error::about(io, format_args!("zmq:{endpoint}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_before_libzmq_sees_them() {
        for good in ["tcp://127.0.0.1:*", "ipc:///run/app.sock", "ipc://@name", "tcp://[::1]:5555"] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
        for bad in ["", "tcp:127.0.0.1:5", "://x", "tcp://", "inproc://x", "tcp://a\0b:1"] {
            assert!(matches!(check_endpoint(bad), Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn zmq_errors_map_in_one_place() {
        assert!(matches!(error(::zmq::Error::ETERM, "x"), Error::Disconnected));
        let Error::Io(io) = error(::zmq::Error::EADDRINUSE, "tcp://127.0.0.1:1") else { panic!() };
        assert_eq!(io.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(io.to_string().matches("zmq:tcp://127.0.0.1:1").count(), 1, "{io}");
        let Error::Io(io) = error(::zmq::Error::EFSM, "x") else { panic!() };
        assert_eq!(io.kind(), io::ErrorKind::Other);
    }

    #[test]
    fn millis_saturate() {
        assert_eq!(millis(Duration::MAX), i32::MAX);
        assert_eq!(millis(Duration::from_millis(100)), 100);
    }
}
