//! A node's links: the neighbour → session table, and the links being closed with notice
//! (`Frame::Closing`), which still carry what arrives but count for nothing.

use std::collections::BTreeMap;
use std::ops::Index;

use mesh_proto::NodeId;
use mesh_proto::signal::SessionId;
use web_time::Instant;

/// The links of one node, one per neighbour.
#[derive(Debug, Default)]
pub(crate) struct Links {
    /// Neighbour → the session of its link.
    by_peer: BTreeMap<NodeId, SessionId>,
    /// Links being closed → when to close them at the latest.
    draining: BTreeMap<NodeId, Instant>,
}

impl Links {
    /// The session of the link to `peer`, being closed or not.
    pub fn get(&self, peer: &NodeId) -> Option<SessionId> {
        self.by_peer.get(peer).copied()
    }

    /// Whether there is a link to `peer`, being closed or not.
    pub fn contains(&self, peer: &NodeId) -> bool {
        self.by_peer.contains_key(peer)
    }

    /// Whether there is no link at all.
    pub fn is_empty(&self) -> bool {
        self.by_peer.is_empty()
    }

    /// Every link, being closed or not, by neighbour.
    pub fn all(&self) -> impl Iterator<Item = (&NodeId, &SessionId)> {
        self.by_peer.iter()
    }

    /// The links that count: all but those being closed.
    pub fn live(&self) -> impl Iterator<Item = (&NodeId, &SessionId)> {
        self.by_peer
            .iter()
            .filter(|(p, _)| !self.draining.contains_key(p))
    }

    /// The session of the link to `peer`, unless it is being closed.
    pub fn live_link(&self, peer: &NodeId) -> Option<SessionId> {
        self.get(peer).filter(|_| !self.draining.contains_key(peer))
    }

    /// How many links count towards the degree.
    pub fn degree(&self) -> usize {
        self.live().count()
    }

    /// A new link to `peer`.
    pub fn insert(&mut self, peer: NodeId, session: SessionId) {
        self.by_peer.insert(peer, session);
    }

    /// The link to `peer` is gone (closed, or being closed no more).
    pub fn remove(&mut self, peer: &NodeId) {
        self.by_peer.remove(peer);
        self.draining.remove(peer);
    }

    /// Every link is gone.
    pub fn clear(&mut self) {
        self.by_peer.clear();
        self.draining.clear();
    }

    /// Whether the link to `peer` is being closed.
    pub fn is_draining(&self, peer: &NodeId) -> bool {
        self.draining.contains_key(peer)
    }

    /// The link to `peer` is being closed: it closes at `until` at the latest.
    pub fn drain(&mut self, peer: NodeId, until: Instant) {
        self.draining.insert(peer, until);
    }

    /// The links whose closing grace is over at `now` (still marked as being closed: the
    /// caller closes them one by one with [`Links::close_drained`]).
    pub fn drained(&self, now: Instant) -> Vec<NodeId> {
        self.draining
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| *p)
            .collect()
    }

    /// The link to `peer` is no longer being closed with notice: its session, for the
    /// caller to close now.
    pub fn close_drained(&mut self, peer: &NodeId) -> Option<SessionId> {
        self.draining.remove(peer);
        self.get(peer)
    }
}

impl Index<&NodeId> for Links {
    type Output = SessionId;

    /// The session of the link to a neighbour that has one.
    fn index(&self, peer: &NodeId) -> &SessionId {
        &self.by_peer[peer]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_link_being_closed_still_exists_but_does_not_count() {
        let (a, b) = (NodeId::from_bytes([1; 16]), NodeId::from_bytes([2; 16]));
        let t0 = Instant::now();
        let mut links = Links::default();
        links.insert(a, SessionId(1));
        links.insert(b, SessionId(2));
        assert_eq!(links.degree(), 2);
        links.drain(b, t0 + Duration::from_secs(1));
        assert_eq!(links.degree(), 1);
        assert_eq!(links.live_link(&b), None);
        assert_eq!(links.get(&b), Some(SessionId(2)));
        assert!(links.drained(t0).is_empty(), "not before its grace");
        assert_eq!(links.drained(t0 + Duration::from_secs(1)), [b]);
        assert_eq!(links.close_drained(&b), Some(SessionId(2)));
        assert!(!links.is_draining(&b));
        links.remove(&b);
        assert_eq!(links.all().count(), 1);
    }
}
