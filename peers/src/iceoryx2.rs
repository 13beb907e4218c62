//! Eclipse iceoryx2 in its natural mode: zero-copy publish-subscribe of `[u8]` slices in shared
//! memory (`ipc::Service`), polled by busy-spinning on `Subscriber::receive`.
//!
//! Two services per exchange, `.../ping` (parent to child) and `.../pong` (child to parent),
//! with one publisher and one subscriber each. Sending is a loan from the publisher's data
//! segment, a write into it and `send`; receiving is `receive` and a copy out of the sample
//! (the read), so both figures include touching every byte, as switchboard's do. The
//! services never overflow: a publisher whose subscriber's buffer is full retries until there
//! is room (`BackpressureStrategy::RetryUntilDelivered`), so a stream loses nothing.
//!
//! Names are `switchboard-peers-PID-N/...`, unique per exchange. Nodes that end cleanly remove
//! their files in /dev/shm and /tmp/iceoryx2; each new exchange, and [`cleanup`] at the end,
//! remove what a killed child left (`Node::try_cleanup_dead_nodes`).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ::iceoryx2::port::publisher::Publisher;
use ::iceoryx2::port::subscriber::Subscriber;
use ::iceoryx2::port::update_connections::UpdateConnections;
use ::iceoryx2::prelude::*;
use ::iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;
use nix::unistd::Pid;
use switchboard::measure::{Job, Link, Settings};
use switchboard::{Error, Result};

use crate::peer::{self, ENV_ADDRESS, Other, failed};

/// What the row measures.
pub(crate) const WHAT: &str = "iceoryx2 0.10: publish-subscribe of [u8] slices (ipc::Service), \
     a ping and a pong service; loan_slice_uninit + write_from_slice + send, receive + copy out; \
     busy-spin polling of receive() for round trips and streams";

/// A publisher's slices hold at least this many bytes: the measurement's 16-byte report
/// travels the same way as the messages.
const MIN_SLICE: usize = 64;

/// The parent's go-ahead, sent once its ports are attached.
const HELLO: [u8; 1] = [0x48];

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;
type Service = PubSub<ipc::Service, [u8], ()>;

/// One end of the exchange. Fields drop in order: ports, then services, then the node.
struct IceoryxLink {
    publisher: Pub,
    subscriber: Sub,
    /// The service this end subscribes to.
    inbound: Service,
    _outbound: Service,
    _node: Node<ipc::Service>,
    other: Other,
}

impl Link for IceoryxLink {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let sample = self.publisher.loan_slice_uninit(msg.len()).map_err(|e| failed("iceoryx2: loan a sample", e))?;
        let sample = sample.write_from_slice(msg);
        sample.send().map_err(|e| failed("iceoryx2: send", e))?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<()> {
        let subscriber = &self.subscriber;
        let sample = peer::spin_until(self.other, || subscriber.receive().map_err(|e| failed("iceoryx2: receive", e)))?;
        let payload = sample.payload();
        if payload.len() != len {
            return Err(Error::Protocol(format!("expected a {len}-byte message, got {} bytes", payload.len())));
        }
        buf.clear();
        buf.extend_from_slice(payload);
        Ok(())
    }
}

/// A node that installs no signal handlers (so Ctrl-C stops the run as usual) and says
/// nothing below errors.
fn node() -> Result<Node<ipc::Service>> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| failed("iceoryx2: create a node", e))
}

fn service_name(base: &str, direction: &str) -> Result<ServiceName> {
    let name = format!("{base}/{direction}");
    name.as_str().try_into().map_err(|e| failed(&format!("iceoryx2: service name {name}"), e))
}

/// The parent's side: creates both services, its publisher and subscriber, starts the child and
/// waits until the child subscribed.
///
/// # Errors
/// Whatever iceoryx2 or spawning returns; [`Error::Handshake`] if the child exits or does not
/// subscribe within [`peer::JOIN_LIMIT`].
pub(crate) fn connect(command: &mut Command, size: usize, settings: &Settings) -> Result<(Child, Box<dyn Link>)> {
    let node = node()?;
    // Remove what children killed in earlier exchanges left behind.
    let _ = node.try_cleanup_dead_nodes();
    let base = peer::unique_name();
    // A subscriber queue about the size of switchboard's ring, so that a stream runs as deep.
    let depth = (settings.ring_capacity / size.max(1)).clamp(2, 4096);
    let create = |direction: &str| -> Result<Service> {
        node.service_builder(&service_name(&base, direction)?)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .history_size(0)
            .subscriber_max_buffer_size(depth)
            .max_publishers(1)
            .max_subscribers(1)
            .max_nodes(2)
            .create()
            .map_err(|e| failed(&format!("iceoryx2: create service {base}/{direction}"), e))
    };
    let ping = create("ping")?;
    let pong = create("pong")?;
    let subscriber = pong.subscriber_builder().create().map_err(|e| failed("iceoryx2: create a subscriber", e))?;
    let publisher = publisher(&ping, size)?;
    command.env(ENV_ADDRESS, &base);
    let mut child = peer::spawn_guarded(command)?;
    // The child publishes before it subscribes: once it subscribed, both ports exist.
    peer::wait_for_child(&mut child, "subscribed to the iceoryx2 ping service", || {
        Ok(ping.dynamic_config().number_of_subscribers() >= 1 && pong.dynamic_config().number_of_publishers() >= 1)
    })?;
    // Attach both our ports to their connections before the child may send: a publisher whose
    // subscriber has not attached yet drops what does not fit the queue instead of waiting.
    publisher.update_connections().map_err(|e| failed("iceoryx2: connect to the subscriber", e))?;
    subscriber.update_connections().map_err(|e| failed("iceoryx2: connect to the publisher", e))?;
    let other = Other::Child(Pid::from_raw(child.id() as i32));
    let mut link = IceoryxLink { publisher, subscriber, inbound: pong, _outbound: ping, _node: node, other };
    // The go-ahead: the child starts its job once it has it.
    link.send(&HELLO)?;
    Ok(peer::joined(child, Box::new(link)))
}

fn publisher(service: &Service, size: usize) -> Result<Pub> {
    service
        .publisher_builder()
        .initial_max_slice_len(size.max(MIN_SLICE))
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .map_err(|e| failed("iceoryx2: create a publisher", e))
}

/// The child's side: opens both services, publishes on pong, subscribes to ping, serves
/// `job`, and keeps its ports until the parent has closed its own, so that the last messages
/// and the report are still there when the parent reads them.
///
/// # Errors
/// Whatever iceoryx2 or the exchange returns.
pub(crate) fn serve(job: &Job, base: &str, parent: Pid) -> Result<()> {
    let node = node()?;
    let open = |direction: &str| -> Result<Service> {
        node.service_builder(&service_name(base, direction)?)
            .publish_subscribe::<[u8]>()
            .open()
            .map_err(|e| failed(&format!("iceoryx2: open service {base}/{direction}"), e))
    };
    let ping = open("ping")?;
    let pong = open("pong")?;
    let publisher = publisher(&pong, job.size())?;
    let subscriber = ping.subscriber_builder().create().map_err(|e| failed("iceoryx2: create a subscriber", e))?;
    let other = Other::Parent(parent);
    let mut link = IceoryxLink { publisher, subscriber, inbound: ping, _outbound: pong, _node: node, other };
    link.recv(&mut Vec::new(), HELLO.len())?;
    job.serve(&mut link)?;
    // The parent drops its publisher once it has read everything.
    let started = Instant::now();
    while link.inbound.dynamic_config().number_of_publishers() > 0
        && !other.gone()
        && started.elapsed() < peer::JOIN_LIMIT
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Removes the files of nodes that died without cleaning up (children killed at a deadline).
pub(crate) fn cleanup() {
    if let Ok(node) = node() {
        let _ = node.try_cleanup_dead_nodes();
    }
}
