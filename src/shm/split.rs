//! Splitting a shared-memory endpoint into a sending half and a receiving half.
//!
//! Each half is an endpoint restricted to one direction ([`Role`]): the sending half owns the
//! outgoing ring (and the tail of a message accepted by `send_timeout`), the receiving half
//! the incoming ring, the fragments being reassembled, the messages read ahead and the
//! readiness descriptor. They share the mapping. Both may sleep on the endpoint's bell at
//! once, which is why `sleeping` counts sleepers and a waker wakes them all (`wait.rs`).

use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use nix::sys::epoll::{Epoll, EpollCreateFlags};

use crate::error::Result;
use crate::shm::ready::Doorbells;
use crate::shm::{Role, ShmTransport};

impl ShmTransport {
    /// The sending half and the receiving half of this endpoint.
    pub(crate) fn split_halves(mut self) -> Result<(ShmTransport, ShmTransport)> {
        let doorbells = match &self.doorbells {
            Some(bells) => Some(bells.try_clone()?),
            None => None,
        };
        let peer = self.peer.try_clone()?;
        // The sending half never hands out a readiness descriptor; an empty set stands in.
        let ready = mem::replace(&mut self.ready, Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?);
        let ready_used = AtomicBool::new(*self.ready_used.get_mut());
        *self.ready_used.get_mut() = false;
        let halves = Arc::new(AtomicUsize::new(2));
        // SAFETY: the receiving half never produces and the sending half never consumes:
        // `SendHalf` and `RecvHalf` reach only their own direction's methods, and `Role`
        // keeps a sending half's wait from reading ahead.
        let (producer, consumer) = unsafe { (self.producer.alias(), self.consumer.alias()) };
        let recv = ShmTransport {
            producer,
            consumer,
            my_bell: self.my_bell,
            peer_bell: self.peer_bell,
            side: self.side,
            peer,
            max: self.max,
            strategy: self.strategy,
            spin: self.spin,
            budget: self.budget,
            my_cpus: self.my_cpus,
            machine_has_one: self.machine_has_one,
            partial: mem::take(&mut self.partial),
            partial_total: self.partial_total.take(),
            inbox: mem::take(&mut self.inbox),
            inbox_cost: mem::replace(&mut self.inbox_cost, 0),
            broken: self.broken,
            send_broken: true,
            outbox: None,
            doorbells,
            ready,
            ready_used,
            role: Role::Recv,
            halves: Some(halves.clone()),
            watch: None,
            region: Arc::clone(&self.region),
        };
        self.role = Role::Send;
        self.halves = Some(halves);
        Ok((self, recv))
    }
}

impl Doorbells {
    /// Duplicates of both eventfds, for the other half of a split endpoint.
    pub(crate) fn try_clone(&self) -> Result<Doorbells> {
        let [mine, peer] = self.fds();
        Ok(Doorbells::from_fds(mine.try_clone_to_owned()?, peer.try_clone_to_owned()?))
    }
}
