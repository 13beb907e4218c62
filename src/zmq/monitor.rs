//! Which connection of a ZeroMQ socket is the peer, and when it is gone, read from the
//! socket's monitor (`zmq_socket_monitor(3)`).
//!
//! libzmq reports each connection's start (`ZMQ_EVENT_CONNECTED` on the connecting side,
//! `ZMQ_EVENT_ACCEPTED` on the binding side, with the connection's fd as the value), its end
//! (`ZMQ_EVENT_DISCONNECTED`, fd) and that a ZMTP handshake succeeded
//! (`ZMQ_EVENT_HANDSHAKE_SUCCEEDED`, value 0: it does not say which connection). A PAIR socket
//! takes the first connection whose handshake succeeds and leaves later ones open but unused,
//! so the peer is one of the connections open when the first handshake succeeded: those are
//! the candidates, and the peer is gone once every candidate has disconnected. That never
//! reports a live peer as gone; a second ZeroMQ peer that connected during the first one's
//! handshake and outlives it delays the news until it leaves too.
//!
//! A lost peer is a DISCONNECTED event whatever the cause: a closed socket (the kernel tells at
//! once, also when the peer process was killed), a heartbeat timeout (`ZMQ_HEARTBEAT_TIMEOUT`
//! after an unanswered PING), or a message above `ZMQ_MAXMSGSIZE` (libzmq drops the
//! connection on reading its length). libzmq does not say which.

/// One monitor event, as far as liveness is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// A connection started (connected or accepted); its fd.
    Opened(u32),
    /// A connection ended; its fd.
    Closed(u32),
    /// Some connection completed the ZMTP handshake.
    HandshakeSucceeded,
    /// Some connection failed the ZMTP handshake (no detail, protocol or authentication).
    HandshakeFailed,
}

/// The events to subscribe to: the ones [`Event`] knows.
pub(super) const EVENTS: i32 = (ZMQ_EVENT_CONNECTED
    | ZMQ_EVENT_ACCEPTED
    | ZMQ_EVENT_DISCONNECTED
    | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
    | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
    | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) as i32;

// From zmq.h (stable since libzmq 4.3.0); the values are part of libzmq's ABI.
const ZMQ_EVENT_CONNECTED: u16 = 0x0001;
const ZMQ_EVENT_ACCEPTED: u16 = 0x0020;
const ZMQ_EVENT_DISCONNECTED: u16 = 0x0200;
const ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: u16 = 0x0800;
const ZMQ_EVENT_HANDSHAKE_SUCCEEDED: u16 = 0x1000;
const ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: u16 = 0x2000;
const ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: u16 = 0x4000;

/// Decodes the first frame of a monitor message: event `u16` and value `u32`, in the host's
/// byte order (libzmq copies the C integers as they are). `None` for a frame of another size or
/// an event this module does not follow.
pub(super) fn parse(frame: &[u8]) -> Option<Event> {
    let frame: &[u8; 6] = frame.try_into().ok()?;
    let event = u16::from_ne_bytes([frame[0], frame[1]]);
    let value = u32::from_ne_bytes([frame[2], frame[3], frame[4], frame[5]]);
    match event {
        ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED => Some(Event::Opened(value)),
        ZMQ_EVENT_DISCONNECTED => Some(Event::Closed(value)),
        ZMQ_EVENT_HANDSHAKE_SUCCEEDED => Some(Event::HandshakeSucceeded),
        ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
        | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH => Some(Event::HandshakeFailed),
        _ => None,
    }
}

/// The peer's state, from the monitor's events in the order libzmq sent them.
#[derive(Debug, Default)]
pub(super) struct PeerWatch {
    /// Connections open now, oldest first.
    open: Vec<u32>,
    /// Set at the first successful handshake: the connections then open, one of which is the
    /// peer's. Shrinks as they close.
    candidates: Option<Vec<u32>>,
    /// Handshakes that failed, for error messages.
    failed_handshakes: u32,
}

impl PeerWatch {
    pub(super) fn on(&mut self, event: Event) {
        match event {
            Event::Opened(fd) => self.open.push(fd),
            Event::Closed(fd) => {
                self.open.retain(|&open| open != fd);
                if let Some(candidates) = &mut self.candidates {
                    candidates.retain(|&c| c != fd);
                }
            }
            Event::HandshakeSucceeded => {
                if self.candidates.is_none() && !self.open.is_empty() {
                    self.candidates = Some(self.open.clone());
                }
            }
            Event::HandshakeFailed => self.failed_handshakes = self.failed_handshakes.saturating_add(1),
        }
    }

    /// Whether a peer completed the handshake (it may have left since).
    pub(super) fn had_peer(&self) -> bool {
        self.candidates.is_some()
    }

    /// Whether the peer came and is gone.
    pub(super) fn is_gone(&self) -> bool {
        self.candidates.as_ref().is_some_and(Vec::is_empty)
    }

    pub(super) fn failed_handshakes(&self) -> u32 {
        self.failed_handshakes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(event: u16, value: u32) -> Vec<u8> {
        let mut out = event.to_ne_bytes().to_vec();
        out.extend_from_slice(&value.to_ne_bytes());
        out
    }

    #[test]
    fn parses_the_events_it_follows_and_nothing_else() {
        assert_eq!(parse(&frame(0x0001, 7)), Some(Event::Opened(7)));
        assert_eq!(parse(&frame(0x0020, 8)), Some(Event::Opened(8)));
        assert_eq!(parse(&frame(0x0200, 8)), Some(Event::Closed(8)));
        assert_eq!(parse(&frame(0x1000, 0)), Some(Event::HandshakeSucceeded));
        assert_eq!(parse(&frame(0x2000, 3)), Some(Event::HandshakeFailed));
        assert_eq!(parse(&frame(0x0008, 5)), None, "LISTENING is not followed");
        assert_eq!(parse(&frame(0x0001, 7)[..5]), None, "a short frame");
        assert_eq!(parse(&[0; 7]), None, "a long frame");
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn one_connection_comes_and_goes() {
        let mut w = PeerWatch::default();
        w.on(Event::Opened(9));
        assert!(!w.had_peer() && !w.is_gone(), "no handshake yet");
        w.on(Event::HandshakeSucceeded);
        assert!(w.had_peer() && !w.is_gone());
        w.on(Event::Opened(10)); // a reconnect or a second peer: not a candidate
        w.on(Event::Closed(9));
        assert!(w.is_gone());
    }

    #[test]
    fn connections_that_fail_the_handshake_are_not_the_peer() {
        let mut w = PeerWatch::default();
        w.on(Event::Opened(5));
        w.on(Event::HandshakeFailed);
        w.on(Event::Closed(5));
        assert!(!w.had_peer(), "a garbage client is no peer");
        assert_eq!(w.failed_handshakes(), 1);
        w.on(Event::Opened(5)); // the fd number is reused
        w.on(Event::HandshakeSucceeded);
        assert!(w.had_peer() && !w.is_gone());
        w.on(Event::Closed(5));
        assert!(w.is_gone());
    }

    #[test]
    fn a_live_peer_is_never_reported_gone() {
        // A silent client (6) was open when the peer (7) finished its handshake: either could be
        // the peer, so the peer is gone only once both have closed, whichever closes first.
        for first in [6, 7] {
            let mut w = PeerWatch::default();
            w.on(Event::Opened(6));
            w.on(Event::Opened(7));
            w.on(Event::HandshakeSucceeded);
            w.on(Event::Closed(first));
            assert!(!w.is_gone());
            w.on(Event::Closed(13 - first));
            assert!(w.is_gone());
        }
    }

    #[test]
    fn a_handshake_with_nothing_open_is_ignored() {
        let mut w = PeerWatch::default();
        w.on(Event::HandshakeSucceeded);
        assert!(!w.had_peer());
        w.on(Event::Closed(3));
        assert!(!w.is_gone());
    }
}
