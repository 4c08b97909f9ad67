//! Reliable unicasts: application messages whose destination acknowledges them, kept until
//! it does. One that is not acknowledged in time goes again, the same sealed bytes (the
//! destination takes it once), through a first neighbour it has not been through: another
//! way into the mesh, around a relay that drops what it should relay without a word. After
//! [`crate::Config::reliable_resends`] more tries it is given up (`Event::Unreachable`). Bounded in
//! count and bytes.

use std::collections::BTreeMap;

use mesh_proto::NodeId;
use web_time::Instant;

/// Reliable messages kept at once (beyond, `send_reliable` refuses: the caller waits).
pub(crate) const CAPACITY: usize = 256;
/// Bytes of reliable messages kept at once, at most.
pub(crate) const MAX_BYTES: usize = 4 << 20;

/// A reliable message under way.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The encoded sealed payload, sent as is each time.
    pub payload: Vec<u8>,
    /// The first neighbours it went to, the first one first.
    pub first_hops: Vec<NodeId>,
    /// When to try again (or give up) without an acknowledgement.
    pub due: Instant,
}

/// The reliable messages under way, by destination and seal `seq`.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    entries: BTreeMap<(NodeId, u64), Entry>,
    bytes: usize,
}

impl Pending {
    /// Whether one more message of `size` bytes can be kept.
    pub fn has_room(&self, size: usize) -> bool {
        self.entries.len() < CAPACITY && self.bytes + size <= MAX_BYTES
    }

    /// Keeps a message until acknowledged.
    pub fn keep(&mut self, to: NodeId, seq: u64, entry: Entry) {
        self.bytes += entry.payload.len();
        if let Some(old) = self.entries.insert((to, seq), entry) {
            self.bytes -= old.payload.len();
        }
    }

    /// `to` acknowledged `seq`: forgotten. Whether it was under way.
    pub fn acked(&mut self, to: NodeId, seq: u64) -> bool {
        self.take(to, seq).is_some()
    }

    /// Takes the message `seq` to `to` out (to resend it or give it up).
    pub fn take(&mut self, to: NodeId, seq: u64) -> Option<Entry> {
        let entry = self.entries.remove(&(to, seq))?;
        self.bytes -= entry.payload.len();
        Some(entry)
    }

    /// The messages whose acknowledgement is overdue at `now`.
    pub fn overdue(&self, now: Instant) -> Vec<(NodeId, u64)> {
        self.entries
            .iter()
            .filter(|(_, e)| now >= e.due)
            .map(|(k, _)| *k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn kept_until_acknowledged_and_bounded() {
        let t0 = Instant::now();
        let to = NodeId::from_bytes([1; 16]);
        let mut p = Pending::default();
        let entry = |n: usize| Entry {
            payload: vec![0; n],
            first_hops: vec![],
            due: t0 + Duration::from_secs(1),
        };
        p.keep(to, 1, entry(10));
        assert!(p.overdue(t0).is_empty());
        assert_eq!(p.overdue(t0 + Duration::from_secs(1)), vec![(to, 1)]);
        assert!(p.acked(to, 1));
        assert!(!p.acked(to, 1), "once");
        assert!(!p.has_room(MAX_BYTES + 1));
        for seq in 0..CAPACITY as u64 {
            p.keep(to, seq, entry(1));
        }
        assert!(!p.has_room(1));
        assert_eq!(p.bytes, CAPACITY);
    }
}
