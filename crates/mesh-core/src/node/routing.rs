//! Routing: delivering payloads here, sending towards a node, relaying `Route` frames, and
//! choosing the next hop.

use std::time::Instant;

use mesh_proto::signal::Payload;
use mesh_proto::{Distance, Frame, NodeId};
use rand::seq::IteratorRandom;

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
            return;
        }
        let Some(hop) = self.next_hop(to, &[came_from, from], now) else {
            self.stats.dropped_no_route += 1;
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

    /// The neighbour to send traffic for `to` through, excluding `exclude`: one that has
    /// `to` as its neighbour; else the neighbour the traffic of `to` last came through (a
    /// path known to work, which a node with few links yet needs); else greedy by XOR
    /// distance over the two-hop view: the neighbour through which the node closest to
    /// `to` is reached, among the neighbours and their neighbours (ties: the lowest id).
    /// `None`: no usable neighbour at all.
    pub(super) fn next_hop(
        &mut self,
        to: NodeId,
        exclude: &[NodeId],
        now: Instant,
    ) -> Option<NodeId> {
        let usable = |n: &NodeId| {
            !exclude.contains(n) && self.links.contains_key(n) && !self.draining.contains_key(n)
        };
        if let Some((n, _)) = self
            .neighbour_sets
            .iter()
            .find(|(n, set)| usable(n) && set.contains(&to))
        {
            return Some(*n);
        }
        if let Some(n) = self.routes.get(&to, now).filter(|n| usable(n)) {
            return Some(*n);
        }
        let mut best: Option<(Distance, NodeId)> = None;
        let mut consider = |d: Distance, via: NodeId| {
            if best.is_none_or(|b| (d, via) < b) {
                best = Some((d, via));
            }
        };
        for n in self.links.keys().filter(|n| usable(n)) {
            consider(n.distance(&to), *n);
            if let Some(set) = self.neighbour_sets.get(n) {
                for m in set {
                    consider(m.distance(&to), *n);
                }
            }
        }
        match best {
            Some((d, via)) if d < self.id.distance(&to) => Some(via),
            // No strict progress from here over two links: a random step (never back where
            // it came from, nor to its origin) to get out of the region that lacks the way,
            // the TTL bounding the walk.
            _ => self
                .links
                .keys()
                .filter(|n| usable(n))
                .copied()
                .choose(&mut self.rng),
        }
    }

    pub(super) fn learn_route(&mut self, origin: NodeId, via: NodeId, now: Instant) {
        if origin != via && origin != self.id {
            self.routes.insert(origin, via, now);
            // Known, but not a reason to look at the shape again: origins come with every
            // frame, and the periodic announce looks anyway. Not refreshed if known (an
            // insert costs more than a lookup, and this runs for every frame).
            if !self.known.contains(&origin, now) {
                self.known.insert(origin, (), now);
            }
        }
    }

    pub(super) fn learn_peers(&mut self, peers: &[NodeId], now: Instant) {
        for p in peers {
            if *p != self.id && !self.known.contains(p, now) {
                self.known.insert(*p, (), now);
                self.topology_dirty = true;
            }
        }
    }
}
