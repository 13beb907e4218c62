// README's chart is `![...][compare-chart]`, defined at its end as the relative path
// docs/results/compare.svg, which rustdoc cannot load. The crate docs define it first (the
// first definition of a link label wins) as a data URI of the same file, made by
// docs/rustdoc-chart.sh.
#![doc = include_str!("../docs/rustdoc-chart.md")]
#![doc = include_str!("../README.md")]

mod address;
#[cfg(feature = "tokio")]
#[allow(unsafe_code)] // one registration with tokio's reactor: see src/aio.rs
mod aio;
mod deadline;
mod error;
mod fifo;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod handshake;
mod listener;
#[cfg(feature = "measure")]
pub mod measure;
mod pair;
mod pipe;
mod process;
mod selector;
mod seqpacket;
#[allow(unsafe_code)] // shared memory and futexes: see src/shm/ and STYLE.md
mod shm;
mod spawn;
mod split;
mod stream;
mod tcp;
mod transport;
#[cfg(feature = "serde")]
mod typed;
mod unix;
#[cfg(feature = "zmq")]
mod zmq;

pub use address::{Address, connect};
#[cfg(feature = "tokio")]
pub use aio::{AsyncListener, AsyncTransport};
pub use error::{Error, Result};
pub use fifo::FifoTransport;
pub use frame::MAX_FDS_PER_MESSAGE;
pub use handshake::PROTOCOL_VERSION;
pub use listener::Listener;
pub use pair::pair;
pub use pipe::PipeTransport;
pub use process::ChildGuard;
pub use selector::{Pollable, Selector};
pub use seqpacket::SeqpacketTransport;
pub use shm::{NamedShm, SealedMemfd, ShmRecvSlot, ShmSendSlot, ShmTransport};
pub use spawn::{ENV_CONNECT, ENV_MAX_MESSAGE_SIZE, ENV_TOKEN, ENV_WAIT, connect_to_parent, spawn_child};
pub use split::{RecvHalf, SendHalf};
pub use tcp::TcpTransport;
pub use transport::{
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_RING_CAPACITY, DEFAULT_SPIN, Kind, MAX_MESSAGE_SIZE_LIMIT, Options, Transport,
    WaitStrategy,
};
#[cfg(feature = "serde")]
pub use typed::Typed;
pub use unix::{PeerCredentials, UnixTransport};
// `self::`: a bare `zmq` would also name the `zmq` crate.
#[cfg(feature = "zmq")]
pub use self::zmq::ZmqTransport;
