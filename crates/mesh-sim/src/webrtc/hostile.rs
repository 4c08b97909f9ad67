//! Hostile nodes on real WebRTC links (`--hostile F --attack drop`): a dropper runs the
//! honest `mesh_node::Node` over a [`Dropper`], a transport that wraps the real webrtc one
//! and drops every `Route`/`Transfer` the node relays (the same rule as the memory
//! transport's, `crate::attack::dropped`), saying nothing. Forgeries, floods and poisoned
//! records rewrite or add frames signed with other nodes' keys; they run on the memory
//! transport only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use mesh_node::transport::{CandidatePairsFuture, Role, SendError, SignalBody, Transport};
use mesh_proto::NodeId;
use mesh_proto::signal::SessionId;

/// A transport that drops what its node relays and passes everything else to `inner`.
pub(super) struct Dropper<T> {
    inner: T,
    me: NodeId,
    /// Frames dropped, shared by every dropper of the run.
    dropped: Arc<AtomicU64>,
}

impl<T> Dropper<T> {
    pub(super) fn new(inner: T, me: NodeId, dropped: Arc<AtomicU64>) -> Self {
        Self { inner, me, dropped }
    }
}

impl<T: Transport> Transport for Dropper<T> {
    fn open(&self, session: SessionId, peer: NodeId, role: Role) -> Result<(), mesh_node::Error> {
        self.inner.open(session, peer, role)
    }

    fn remote_signal(&self, session: SessionId, signal: SignalBody) {
        self.inner.remote_signal(session, signal);
    }

    fn send(&self, session: SessionId, bytes: Bytes) -> Result<(), SendError> {
        if crate::attack::dropped(&bytes, self.me) {
            // Silently: to the node, the frame went out.
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.inner.send(session, bytes)
    }

    fn close(&self, session: SessionId) {
        self.inner.close(session);
    }

    fn candidate_pairs(&self, sessions: &[SessionId]) -> CandidatePairsFuture {
        self.inner.candidate_pairs(sessions)
    }

    fn use_server_stun(&self, url: Option<String>) {
        self.inner.use_server_stun(url);
    }
}
