//! A node's signaling sessions, linked or under way, bounded by `max_sessions`. How a
//! session fails (counted, its peer backed off, its transport closed) is
//! `Node::fail_session`'s, the one way it happens; this table says which sessions are due.

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_proto::NodeId;
use mesh_proto::signal::SessionId;
use web_time::Instant;

use crate::{Carrier, Role};

/// One session, as this node sees it.
#[derive(Debug)]
pub(crate) struct Session {
    pub peer: NodeId,
    pub role: Role,
    pub carrier: Carrier,
    pub started: Instant,
    pub linked: bool,
    /// When the link last brought a frame (or came up): a link silent for
    /// `Config::link_timeout` is dropped.
    pub heard: Instant,
}

/// The sessions of one node, in session id order.
#[derive(Debug)]
pub(crate) struct Table {
    by_id: BTreeMap<SessionId, Session>,
    max: usize,
}

impl Table {
    /// An empty table of at most `max` sessions.
    pub fn new(max: usize) -> Self {
        Self {
            by_id: BTreeMap::new(),
            max,
        }
    }

    /// Whether it holds `max` sessions (an offer beyond is refused, none is started).
    pub fn is_full(&self) -> bool {
        self.by_id.len() >= self.max
    }

    /// A new session under way with `peer`, started at `now`; `false` if the table is
    /// full (or the id is taken).
    pub fn start(
        &mut self,
        id: SessionId,
        peer: NodeId,
        role: Role,
        carrier: Carrier,
        now: Instant,
    ) -> bool {
        if self.is_full() || self.by_id.contains_key(&id) {
            return false;
        }
        let session = Session {
            peer,
            role,
            carrier,
            started: now,
            linked: false,
            heard: now,
        };
        self.by_id.insert(id, session);
        true
    }

    pub fn get(&self, id: &SessionId) -> Option<&Session> {
        self.by_id.get(id)
    }

    pub fn get_mut(&mut self, id: &SessionId) -> Option<&mut Session> {
        self.by_id.get_mut(id)
    }

    pub fn contains(&self, id: &SessionId) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn remove(&mut self, id: &SessionId) -> Option<Session> {
        self.by_id.remove(id)
    }

    /// Every session id, in order.
    pub fn ids(&self) -> Vec<SessionId> {
        self.by_id.keys().copied().collect()
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
    }

    /// Every session.
    pub fn iter(&self) -> impl Iterator<Item = (&SessionId, &Session)> {
        self.by_id.iter()
    }

    /// Whether any session (linked or not) is with `peer`.
    pub fn with_peer(&self, peer: &NodeId) -> bool {
        self.by_id.values().any(|s| s.peer == *peer)
    }

    /// Sessions under way (not linked).
    pub fn pending(&self) -> usize {
        self.by_id.values().filter(|s| !s.linked).count()
    }

    /// Sessions this node offered that are not linked yet.
    pub fn pending_offers(&self) -> impl Iterator<Item = &Session> {
        self.by_id
            .values()
            .filter(|s| !s.linked && s.role == Role::Offerer)
    }

    /// Sessions under way with `peer` on `carrier`.
    pub fn pending_with(&self, peer: NodeId, carrier: Carrier) -> Vec<SessionId> {
        self.by_id
            .iter()
            .filter(|(_, s)| s.peer == peer && !s.linked && s.carrier == carrier)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Sessions not linked `timeout` after they started.
    pub fn expired(&self, now: Instant, timeout: Duration) -> Vec<SessionId> {
        self.by_id
            .iter()
            .filter(|(_, s)| !s.linked && now.saturating_duration_since(s.started) >= timeout)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Linked sessions whose link brought nothing for `timeout`.
    pub fn silent(&self, now: Instant, timeout: Duration) -> Vec<SessionId> {
        self.by_id
            .iter()
            .filter(|(_, s)| s.linked && now.saturating_duration_since(s.heard) >= timeout)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_due_when_their_time_is_over() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let peer = NodeId::from_bytes([1; 16]);
        let mut table = Table::new(2);
        assert!(table.start(SessionId(1), peer, Role::Offerer, Carrier::Mesh, t0));
        assert!(!table.start(SessionId(1), peer, Role::Offerer, Carrier::Mesh, t0));
        assert!(table.start(SessionId(2), peer, Role::Answerer, Carrier::Server, t0));
        assert!(table.is_full());
        assert!(!table.start(SessionId(3), peer, Role::Offerer, Carrier::Mesh, t0));
        assert_eq!(table.pending_offers().count(), 1);
        assert_eq!(table.pending_with(peer, Carrier::Server), [SessionId(2)]);
        table.get_mut(&SessionId(2)).unwrap().linked = true;
        assert_eq!(table.expired(t0 + s(4), s(5)), []);
        assert_eq!(table.expired(t0 + s(5), s(5)), [SessionId(1)]);
        assert_eq!(table.silent(t0 + s(20), s(20)), [SessionId(2)]);
        assert_eq!(table.pending(), 1);
    }
}
