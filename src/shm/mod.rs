//! The `shm` transport (not built yet).
#![allow(missing_docs)]
use crate::{Error, Options, Result};
use std::os::fd::OwnedFd;

#[derive(Debug)]
pub struct ShmTransport;

impl ShmTransport {
    pub(crate) fn for_child(_: &Options) -> Result<(Self, OwnedFd)> {
        Err(Error::Config("the shm transport is not built yet".into()))
    }
    pub(crate) fn from_parent(_: OwnedFd, _: &Options) -> Result<Self> {
        Err(Error::Config("the shm transport is not built yet".into()))
    }
    pub fn pair(_: &Options) -> Result<(Self, Self)> {
        Err(Error::Config("the shm transport is not built yet".into()))
    }
    pub(crate) fn watch_peer(&mut self, _: u32) -> Result<()> {
        Ok(())
    }
}
impl crate::Transport for ShmTransport {
    fn send(&mut self, _: &[u8]) -> Result<()> {
        unreachable!()
    }
    fn recv(&mut self, _: &mut Vec<u8>) -> Result<usize> {
        unreachable!()
    }
    fn recv_timeout(&mut self, _: &mut Vec<u8>, _: std::time::Duration) -> Result<usize> {
        unreachable!()
    }
    fn kind(&self) -> crate::Kind {
        crate::Kind::Shm
    }
    fn max_message_size(&self) -> usize {
        0
    }
}
