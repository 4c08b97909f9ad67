//! The resend window: application messages sent through the mesh lately, kept so that one
//! that meets a dead end can go again through another first neighbour (`Node::resend`).
//! Bounded in count, size and time.

use std::collections::VecDeque;
use std::time::Duration;

use mesh_proto::NodeId;
use web_time::Instant;

/// How many times an application message is sent again, each time through a first
/// neighbour it has not been through (docs/benchmarks.md §8.3 measures 0, 1 and 2).
pub(crate) const RESENDS: usize = 2;
/// Messages kept: at most this many, each at most [`MAX_SIZE`] bytes, for at most
/// [`WINDOW`]: at most 1 MiB.
const CAPACITY: usize = 64;
/// The largest application payload kept (bigger ones are not resent).
const MAX_SIZE: usize = 16 * 1024;
/// How long a sent message can still be resent.
pub(crate) const WINDOW: Duration = Duration::from_secs(2);

/// An application message sent through the mesh, kept for a resend.
#[derive(Debug)]
pub(crate) struct Sent {
    pub to: NodeId,
    /// Its seal's `seq`: what an unreachable report names.
    pub seq: u64,
    pub payload: Vec<u8>,
    /// The first neighbours it went to, the first one first.
    pub first_hops: Vec<NodeId>,
    at: Instant,
}

/// The messages kept, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Window {
    sent: VecDeque<Sent>,
}

impl Window {
    /// Keeps a message sent to `to` through `first_hop` at `now` (unless too big), making
    /// room by forgetting the oldest and those past the window.
    pub fn keep(
        &mut self,
        to: NodeId,
        seq: u64,
        payload: Vec<u8>,
        first_hop: NodeId,
        now: Instant,
    ) {
        if payload.len() > MAX_SIZE {
            return;
        }
        while self.sent.len() >= CAPACITY
            || self
                .sent
                .front()
                .is_some_and(|m| now.saturating_duration_since(m.at) > WINDOW)
        {
            self.sent.pop_front();
        }
        self.sent.push_back(Sent {
            to,
            seq,
            payload,
            first_hops: vec![first_hop],
            at: now,
        });
    }

    /// Takes the message `seq` to `to` if it is still within the window. One past the
    /// window is forgotten.
    pub fn take(&mut self, to: NodeId, seq: u64, now: Instant) -> Option<Sent> {
        let i = self.sent.iter().position(|m| m.to == to && m.seq == seq)?;
        let m = self.sent.remove(i)?;
        (now.saturating_duration_since(m.at) <= WINDOW).then_some(m)
    }

    /// Keeps `m` again after it went through `hop` (once it has been resent [`RESENDS`]
    /// times it is kept as [`Sent::exhausted`]: the next report about it reaches the
    /// application).
    pub fn keep_again(&mut self, mut m: Sent, hop: NodeId) {
        m.first_hops.push(hop);
        self.sent.push_back(m);
    }
}

impl Sent {
    /// Whether it has been resent [`RESENDS`] times already.
    pub fn exhausted(&self) -> bool {
        self.first_hops.len() > RESENDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_messages_are_bounded_in_count_size_and_time() {
        let t0 = Instant::now();
        let (to, hop) = (NodeId::from_bytes([1; 16]), NodeId::from_bytes([2; 16]));
        let mut w = Window::default();
        w.keep(to, 0, vec![0; MAX_SIZE + 1], hop, t0);
        assert!(w.take(to, 0, t0).is_none(), "too big to keep");
        for i in 0..2 * CAPACITY {
            w.keep(NodeId::from_bytes([i as u8; 16]), i as u64, vec![], hop, t0);
        }
        assert_eq!(w.sent.len(), CAPACITY);
        w.keep(to, 9, vec![7], hop, t0);
        assert!(w.take(to, 8, t0).is_none(), "another message");
        assert!(
            w.take(to, 9, t0 + WINDOW + Duration::from_millis(1))
                .is_none()
        );
    }

    #[test]
    fn a_message_goes_again_at_most_resends_times() {
        let t0 = Instant::now();
        let to = NodeId::from_bytes([1; 16]);
        let mut w = Window::default();
        w.keep(to, 3, vec![7], NodeId::from_bytes([10; 16]), t0);
        let mut resent = 0;
        while let Some(m) = w.take(to, 3, t0) {
            if m.exhausted() {
                break;
            }
            resent += 1;
            w.keep_again(m, NodeId::from_bytes([10 + resent; 16]));
        }
        assert_eq!(usize::from(resent), RESENDS);
    }
}
