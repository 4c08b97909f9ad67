//! Who is registered where: the one registry type the sessions talk to.
//!
//! Two implementations sit behind it. [`Local`] holds the rooms of one process in memory: a
//! single server is that alone. [`Fleet`] is a server of a fleet ([`crate::Config::redis`]):
//! its own sessions are in a [`Local`] as well, and the rooms are shared with the other
//! servers through Redis (leases, cross-server delivery, samples drawn across the whole
//! room). The session code never asks which one it has: it registers, unregisters, delivers,
//! broadcasts and samples, and the registry does what its kind needs.
//!
//! `deliver` and `broadcast` never wait (a fleet hands what is not local to a bounded queue
//! that one task writes to Redis); `register` and `sample` may await Redis, within
//! [`crate::Config::fleet_timeout`], and fall back to the local rooms when it does not answer.

mod fleet;
mod local;

use bytes::Bytes;
use mesh_proto::identity::PublicKey;
use mesh_proto::{ErrorCode, NodeId, RoomName};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use fleet::Fleet;
pub(crate) use local::Local;

/// One encoded frame on its way to a connection.
#[derive(Debug)]
pub(crate) struct Outbound {
    /// The encoded frame, shared by every recipient of a broadcast.
    pub bytes: Bytes,
    /// The frame kind, for metrics.
    pub kind: &'static str,
    /// When a unicast was received, to measure its latency through the server.
    pub received: Option<Instant>,
}

/// What a new registration brings in.
#[derive(Debug)]
pub(crate) struct Registration {
    pub room: RoomName,
    pub node_id: NodeId,
    pub public_key: PublicKey,
    pub session: u64,
    pub tx: mpsc::Sender<Outbound>,
    pub replaced: CancellationToken,
}

/// The result of delivering a frame to one peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Queued for a session of this server.
    Queued,
    /// Handed to the fleet for the server that holds the peer: if it is nowhere, or its
    /// queue is full, the sender gets the error notice later, from the fleet.
    Forwarded,
    UnknownPeer,
    Busy,
}

/// The rooms a server serves: its own alone, or shared with a fleet.
#[derive(Debug)]
pub(crate) enum Registry {
    /// One server: everything in this process.
    Local(Local),
    /// A server of a fleet sharing its rooms through Redis.
    Fleet(Fleet),
}

impl Registry {
    /// The sessions of this process, whatever the kind.
    fn local(&self) -> &Local {
        match self {
            Self::Local(local) => local,
            Self::Fleet(fleet) => fleet.local(),
        }
    }

    /// Registers a session and returns a sample of up to `k` other peers of its room for
    /// its `Welcome`. A node id already held by the same key is taken over (in a fleet, at
    /// whichever server held it); held by another key, it is refused.
    pub async fn register(&self, reg: Registration, k: usize) -> Result<Vec<NodeId>, ErrorCode> {
        match self {
            Self::Local(local) => {
                let (room, node) = (reg.room.clone(), reg.node_id);
                local.register(reg)?;
                Ok(local.sample(&room, &node, k))
            }
            Self::Fleet(fleet) => fleet.register(reg, k).await,
        }
    }

    /// Removes `node_id` from `room` if it is still held by `session`.
    pub fn unregister(&self, room: &RoomName, node_id: &NodeId, session: u64) {
        match self {
            Self::Local(local) => {
                local.unregister(room, node_id, session);
            }
            Self::Fleet(fleet) => fleet.unregister(room, node_id, session),
        }
    }

    /// Queues `out` (a `Transfer` from `from`) for `to` without waiting.
    pub fn deliver(&self, room: &RoomName, from: &NodeId, to: &NodeId, out: Outbound) -> Delivery {
        match self {
            Self::Local(local) => local.deliver(room, to, out),
            Self::Fleet(fleet) => fleet.deliver(room, from, to, out),
        }
    }

    /// Queues `bytes` (a `TransferBroadcast`) for every peer of `room` but `from`: those of
    /// this server, and in a fleet those of the others. Returns (queued, dropped) here.
    pub fn broadcast(&self, room: &RoomName, from: &NodeId, bytes: &Bytes) -> (usize, usize) {
        match self {
            Self::Local(local) => local.broadcast(room, from, bytes),
            Self::Fleet(fleet) => fleet.broadcast(room, from, bytes),
        }
    }

    /// A uniformly random sample of up to `k` peers of `room`, never `exclude`.
    pub async fn sample(&self, room: &RoomName, exclude: &NodeId, k: usize) -> Vec<NodeId> {
        match self {
            Self::Local(local) => local.sample(room, exclude, k),
            Self::Fleet(fleet) => fleet.sample(room, exclude, k).await,
        }
    }

    /// (rooms, registered peers) of this server's own sessions, for metrics.
    pub fn counts(&self) -> (usize, usize) {
        self.local().counts()
    }

    /// Why the server is degraded (a fleet server that cannot reach Redis), if it is.
    pub fn degraded(&self) -> Option<String> {
        match self {
            Self::Local(_) => None,
            Self::Fleet(fleet) => fleet.degraded(),
        }
    }

    /// On shutdown, after the sessions ended: a fleet server writes what is still queued and
    /// takes its lease out of Redis (bounded by [`crate::Config::fleet_timeout`]).
    pub async fn close(&self) {
        if let Self::Fleet(fleet) = self {
            fleet.close().await;
        }
    }
}
