//! Routing: delivering payloads here, sending towards a node, relaying `Route` frames, and
//! choosing the next hop.

use std::time::Instant;

use mesh_proto::signal::Payload;
use mesh_proto::{Distance, Frame, NodeId};

use super::{Carrier, Event, Node, Output};
use crate::Error;

impl Node {
    pub(super) fn deliver_payload(
        &mut self,
        from: NodeId,
        payload: &[u8],
        carrier: Carrier,
        now: Instant,
    ) {
        match mesh_proto::decode_payload(payload) {
            Ok(Payload::App(data)) => {
                self.stats.messages_delivered += 1;
                self.outputs
                    .push_back(Output::Event(Event::Message { from, data }));
            }
            Ok(Payload::Signal(signal)) => self.on_signal(signal, carrier, now),
            Ok(Payload::Nodes { target, peers }) if carrier == Carrier::Mesh => {
                self.on_lookup_answer(from, target, peers, now)
            }
            Ok(Payload::Unreachable { to, payload_tag }) if carrier == Carrier::Mesh => {
                self.on_unreachable(to, from, payload_tag, now)
            }
            Ok(_) | Err(_) => self.stats.bad_payloads += 1,
        }
    }

    /// Sends a payload originating here towards `to`.
    pub(super) fn route_out(
        &mut self,
        to: NodeId,
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<(), Error> {
        if let Some(session) = self.live_link(&to) {
            self.send_frame(
                session,
                &Frame::Transfer {
                    from: self.id,
                    payload,
                },
            );
            return Ok(());
        }
        let hop = self.next_hop(to, &[], now).ok_or(Error::NoRoute(to))?;
        let frame = Frame::Route {
            to,
            from: self.id,
            ttl: self.config.ttl,
            payload,
        };
        self.send_frame(self.links[&hop], &frame);
        Ok(())
    }

    /// Relays a `Route` frame that arrived from neighbour `came_from`.
    pub(super) fn forward(
        &mut self,
        to: NodeId,
        from: NodeId,
        ttl: u8,
        payload: Vec<u8>,
        came_from: NodeId,
        now: Instant,
    ) {
        if let Some(session) = self.live_link(&to) {
            self.stats.frames_relayed += 1;
            self.send_frame(session, &Frame::Transfer { from, payload });
            return;
        }
        if ttl == 0 {
            self.stats.dropped_ttl += 1;
            self.report_unreachable(to, from, &payload, now);
            return;
        }
        let Some(hop) = self.next_hop(to, &[came_from, from], now) else {
            self.stats.dropped_no_route += 1;
            self.report_unreachable(to, from, &payload, now);
            return;
        };
        self.stats.frames_relayed += 1;
        self.send_frame(
            self.links[&hop],
            &Frame::Route {
                to,
                from,
                ttl: ttl - 1,
                payload,
            },
        );
    }

    /// Tells `origin` that its unicast to `to` ends here, unless what was dropped is itself
    /// such a report or a lookup answer (never a report about a report), or undecodable.
    fn report_unreachable(&mut self, to: NodeId, origin: NodeId, payload: &[u8], now: Instant) {
        let payload_tag = match mesh_proto::decode_payload(payload) {
            Ok(Payload::App(_)) => 0,
            Ok(Payload::Signal(_)) => 1,
            Ok(_) | Err(_) => return,
        };
        let report = Payload::Unreachable { to, payload_tag };
        let Ok(report) = mesh_proto::encode_payload(&report) else {
            return;
        };
        if origin != self.id && self.route_out(origin, report, now).is_ok() {
            self.stats.unreachable_sent += 1;
        }
    }

    /// A node on the way reports that our unicast to `to` was dropped there. A signaling
    /// session with `to` that is not linked yet cannot complete: it ends now, not at its
    /// timeout. An application message is reported to the application.
    fn on_unreachable(&mut self, to: NodeId, at: NodeId, payload_tag: u8, now: Instant) {
        self.stats.unreachable_received += 1;
        match payload_tag {
            0 => self
                .outputs
                .push_back(Output::Event(Event::Unreachable { to, at })),
            1 => self.fail_pending(to, Carrier::Mesh, now),
            _ => {}
        }
    }

    /// The neighbour to send traffic for `to` through, never one of `skip` (the neighbour
    /// the frame came from, and its origin): one that has `to` as its neighbour; else the
    /// neighbour the traffic of `to` last came through (a path known to work, which a
    /// newcomer's answers need before the nodes near it know it); else the greedy step of
    /// [`Node::greedy_hop`], if it makes progress. `None`: no progress is possible from
    /// here (the caller reports it unreachable).
    ///
    /// Learned routes do not follow XOR distance, so a greedy step right after one could
    /// lead straight back: excluding the way the frame came keeps the two from
    /// ping-ponging (measured: without it, 500 memory nodes dropped 5–10 times more frames
    /// for want of a next hop).
    pub(super) fn next_hop(&self, to: NodeId, skip: &[NodeId], now: Instant) -> Option<NodeId> {
        let greedy = self.greedy_hop(to, skip);
        if let Some((d, via)) = greedy
            && d.as_u128() == 0
        {
            return Some(via);
        }
        let usable = |n: &NodeId| !skip.contains(n) && self.live_link(n).is_some();
        if let Some(n) = self.routes.get(&to, now).filter(|n| usable(n)) {
            return Some(*n);
        }
        greedy
            .filter(|(d, _)| *d < self.id.distance(&to))
            .map(|(_, via)| via)
    }

    /// Greedy by XOR distance over the two-hop view: among the live neighbours and the
    /// peers they announced (never one of `skip`, never this node), the node closest to
    /// `to`, and the neighbour to reach it through: itself if it is a neighbour, else the
    /// lowest neighbour that announced it. Returns (its distance to `to`, that neighbour);
    /// whether it is closer than this node is for the caller to judge.
    pub(super) fn greedy_hop(&self, to: NodeId, skip: &[NodeId]) -> Option<(Distance, NodeId)> {
        // (distance, reached through a neighbour's set, via): a direct neighbour wins a
        // tie, so that the frame goes straight to the node that made the progress.
        let mut best: Option<(Distance, bool, NodeId)> = None;
        let mut consider = |c: (Distance, bool, NodeId)| {
            if best.is_none_or(|b| c < b) {
                best = Some(c);
            }
        };
        for (n, _) in self.live_links().filter(|(n, _)| !skip.contains(n)) {
            consider((n.distance(&to), false, *n));
            if let Some(set) = self.neighbour_sets.get(n) {
                for m in set.iter().filter(|m| **m != self.id && !skip.contains(m)) {
                    consider((m.distance(&to), true, *n));
                }
            }
        }
        best.map(|(d, _, via)| (d, via))
    }

    pub(super) fn learn_route(&mut self, origin: NodeId, via: NodeId, now: Instant) {
        if origin != via && origin != self.id {
            self.routes.insert(origin, via, now);
            // Known, but not a reason to look at the shape again: origins come with every
            // frame, and the periodic announce looks anyway. Not refreshed if known (an
            // insert costs more than a lookup, and this runs for every frame).
            if !self.contacts.contains(&origin, now) {
                self.contacts.insert(origin, now);
            }
        }
    }

    pub(super) fn learn_peers(&mut self, peers: &[NodeId], now: Instant) {
        // The table never stores our own id.
        for p in peers {
            if self.contacts.insert(*p, now) {
                self.topology_dirty = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use mesh_proto::identity::Keypair;
    use mesh_proto::signal::SessionId;
    use mesh_proto::{Distance, NodeId};
    use proptest::prelude::*;

    use crate::Config;
    use crate::node::{Carrier, Node, Role, Session};

    fn id(n: u128) -> NodeId {
        NodeId::from_bytes(n.to_be_bytes())
    }

    /// A node with links to `neighbours`, each having announced its set.
    fn node_with(seed: [u8; 32], neighbours: &[(u128, Vec<u128>)], now: Instant) -> Node {
        let mut node = Node::new(Config::default(), Keypair::from_seed(seed), now, 1).unwrap();
        for (k, (peer, set)) in neighbours.iter().enumerate() {
            let session = SessionId(k as u64);
            node.sessions.insert(
                session,
                Session {
                    peer: id(*peer),
                    role: Role::Offerer,
                    carrier: Carrier::Mesh,
                    started: now,
                    linked: true,
                },
            );
            node.links.insert(id(*peer), session);
            node.neighbour_sets
                .insert(id(*peer), set.iter().map(|p| id(*p)).collect());
        }
        node
    }

    /// The closest node to `to` that `via` stands for: itself or a peer it announced, never
    /// this node nor one of `skip`.
    fn reach(node: &Node, via: NodeId, to: NodeId, skip: &[NodeId]) -> Option<Distance> {
        let set = node.neighbour_sets.get(&via).cloned().unwrap_or_default();
        std::iter::once(via)
            .chain(set)
            .filter(|p| *p != node.id && !skip.contains(p))
            .map(|p| p.distance(&to))
            .min()
    }

    proptest! {
        /// With no learned routes, the next hop either reaches (directly or through its
        /// announced neighbours) a node strictly closer to the destination than this node,
        /// or there is none: no node of the two-hop view (outside `skip`) is closer, and the
        /// caller reports the destination unreachable. Never back where the frame came from.
        #[test]
        fn routing_makes_xor_progress_or_reports_unreachable(
            seed in any::<[u8; 32]>(),
            neighbours in prop::collection::vec(
                (any::<u128>(), prop::collection::vec(any::<u128>(), 0..8)), 0..8),
            to in any::<u128>(),
            skip_first in any::<bool>(),
        ) {
            let now = Instant::now();
            let node = node_with(seed, &neighbours, now);
            let to = id(to);
            prop_assume!(node.live_link(&to).is_none() && to != node.id);
            let skip: Vec<NodeId> = neighbours
                .first()
                .filter(|_| skip_first)
                .map(|(p, _)| id(*p))
                .into_iter()
                .collect();
            let mine = node.id.distance(&to);
            match node.next_hop(to, &skip, now) {
                Some(via) => {
                    prop_assert!(node.live_link(&via).is_some());
                    prop_assert!(!skip.contains(&via));
                    let best = reach(&node, via, to, &skip);
                    prop_assert!(best.is_some_and(|d| d < mine), "no progress through {via}");
                }
                None => {
                    let links: Vec<NodeId> = node.links.keys().copied().collect();
                    for n in links.iter().filter(|n| !skip.contains(n)) {
                        let best = reach(&node, *n, to, &skip);
                        prop_assert!(best.is_none_or(|d| d >= mine), "{n} makes progress");
                    }
                }
            }
        }
    }
}
