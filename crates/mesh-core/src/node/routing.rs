//! Routing: delivering payloads here, sending towards a node, relaying `Route` frames, and
//! choosing the next hop.

use std::time::Instant;

use mesh_proto::signal::Payload;
use mesh_proto::{Frame, NodeId};

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
        if let Some(&session) = self.links.get(&to) {
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
        if let Some(&session) = self.links.get(&to) {
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

    /// The neighbour to send traffic for `to` through: one that has `to` as a neighbour,
    /// else the neighbour its traffic came from, else the neighbour closest to it by XOR.
    pub(super) fn next_hop(&self, to: NodeId, exclude: &[NodeId], now: Instant) -> Option<NodeId> {
        let usable = |n: &NodeId| !exclude.contains(n) && self.links.contains_key(n);
        let mut via_set: Vec<NodeId> = self
            .neighbour_sets
            .iter()
            .filter(|(n, set)| usable(n) && set.contains(&to))
            .map(|(n, _)| *n)
            .collect();
        via_set.sort();
        if let Some(n) = via_set.first() {
            return Some(*n);
        }
        if let Some(n) = self.routes.get(&to, now).filter(|n| usable(n)) {
            return Some(*n);
        }
        self.links
            .keys()
            .filter(|n| usable(n))
            .min_by_key(|n| n.distance(&to))
            .copied()
    }

    pub(super) fn learn_route(&mut self, origin: NodeId, via: NodeId, now: Instant) {
        if origin != via && origin != self.id {
            self.routes.insert(origin, via, now);
        }
    }

    pub(super) fn learn_peers(&mut self, peers: &[NodeId], now: Instant) {
        for p in peers {
            if *p != self.id {
                self.known.insert(*p, (), now);
            }
        }
    }
}
