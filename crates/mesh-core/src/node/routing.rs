//! Routing: delivering payloads here, sending towards a node, relaying `Route` frames, and
//! choosing the next hop.

use web_time::Instant;

use mesh_proto::signal::Payload;
use mesh_proto::{Distance, Frame, NodeId, Steering};

use super::{Carrier, Event, Node, Output};

use crate::budget::Rate;
use crate::contacts::bucket;

/// Unreachable reports a node sends, at most (each a sealed unicast, and for an origin it
/// does not know yet an X25519): 20/s, 100 at once.
pub(super) const REPORT_BUDGET: Rate = Rate::new(20.0, 100.0);
use crate::{Error, resend};

/// A `Route` frame to relay, as it arrived.
pub(super) struct Routed {
    pub(super) to: NodeId,
    pub(super) from: NodeId,
    pub(super) ttl: u8,
    pub(super) steering: Steering,
    pub(super) payload: Vec<u8>,
}

impl Node {
    /// A payload for this node, from `from` (as the carrying frame says). Through the
    /// mesh only sealed payloads are taken; through a server also a bare signal (an entry
    /// session's: its origin does not know our key yet). Signals verify themselves.
    pub(super) fn deliver_payload(
        &mut self,
        from: NodeId,
        payload: &[u8],
        carrier: Carrier,
        now: Instant,
    ) {
        match mesh_proto::decode_payload(payload) {
            Ok(Payload::Sealed(sealed)) if carrier == Carrier::Mesh => {
                self.on_sealed(from, sealed, carrier, false, now)
            }
            Ok(Payload::Signal(signal)) if carrier == Carrier::Server => {
                self.on_signal(signal, carrier, now)
            }
            Ok(_) => self.stats.unsealed_refused += 1,
            Err(_) => self.stats.bad_payloads += 1,
        }
    }

    /// Sends a payload originating here towards `to`.
    pub(super) fn route_out(
        &mut self,
        to: NodeId,
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<(), Error> {
        self.route_out_avoiding(to, payload, &[], now).map(|_| ())
    }

    /// Sends a payload originating here towards `to`, not through the neighbours in
    /// `avoid`; returns the neighbour it went to (`to` itself over a direct link), and the
    /// payload back once encoded, for a caller that keeps it (no copy per message).
    pub(super) fn route_out_avoiding(
        &mut self,
        to: NodeId,
        payload: Vec<u8>,
        avoid: &[NodeId],
        now: Instant,
    ) -> Result<(NodeId, Vec<u8>), Error> {
        if let Some(session) = self.live_link(&to) {
            let frame = Frame::Transfer {
                from: self.id,
                payload,
            };
            self.send_frame(session, &frame);
            let Frame::Transfer { payload, .. } = frame else {
                unreachable!("built as a Transfer just above")
            };
            return Ok((to, payload));
        }
        let (hop, steering) = self
            .next_hop(to, avoid, Steering::Learned, now)
            .ok_or(Error::NoRoute(to))?;
        let frame = Frame::Route {
            to,
            from: self.id,
            ttl: self.config.ttl,
            steering,
            payload,
        };
        self.send_frame(self.links[&hop], &frame);
        let Frame::Route { payload, .. } = frame else {
            unreachable!("built as a Route just above")
        };
        Ok((hop, payload))
    }

    /// Relays a `Route` frame that arrived from neighbour `came_from`.
    pub(super) fn forward(&mut self, route: Routed, came_from: NodeId, now: Instant) {
        let Routed {
            to,
            from,
            ttl,
            steering,
            payload,
        } = route;
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
        let Some((hop, steering)) = self.next_hop(to, &[came_from, from], steering, now) else {
            self.stats.dropped_no_route += 1;
            self.on_dead_end(to, now);
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
                steering,
                payload,
            },
        );
    }

    /// A frame we relay has no next hop, and so no greedy progress either: a bucket of ours
    /// that nobody within two links is in, or a destination that the nodes near it do not
    /// know yet. Unless a lookup is under way (a new one would discard its answer), the
    /// next goes out now rather than at the end of its pause. Not at the origin: there the
    /// dead ends are mostly a newcomer's offers (why both: docs/benchmarks.md §8.2).
    fn on_dead_end(&mut self, to: NodeId, now: Instant) {
        // `to`'s bucket is not empty, whatever an earlier lookup found: the next lookup
        // looks for `to` itself (the loss this prevents: docs/benchmarks.md §10).
        self.lookups.dead_end(to, bucket(&self.id, &to), now);
    }

    /// Tells `origin` that its unicast to `to` ends here: sealed for the origin, naming
    /// the `seq` of what was dropped. Only a sealed application message or signal is
    /// reported (never a report about a report, nor a lookup answer), and only if its
    /// sealed origin is the frame's `from`.
    fn report_unreachable(&mut self, to: NodeId, origin: NodeId, payload: &[u8], now: Instant) {
        if origin == self.id {
            return;
        }
        let Ok(Payload::Sealed(sealed)) = mesh_proto::decode_payload(payload) else {
            return;
        };
        if sealed.origin() != origin {
            return;
        }
        // Each report may cost an X25519 with a key this node never saw (anyone can send
        // routes sealed by fresh keys): reports are budgeted.
        let rate = REPORT_BUDGET;
        if !self.report_bucket.take(rate, now) {
            return;
        }
        // The key is the origin's (its id derives from it), whatever the payload's worth.
        self.keys.learn_unconfirmed(origin, sealed.key, now);
        let report = Payload::Unreachable {
            to,
            seq: sealed.seq,
            proof: sealed.proof(),
        };
        if self.send_sealed(origin, &report, now).is_some() {
            self.stats.unreachable_sent += 1;
        }
    }

    /// A node on the way, `at`, reports that our unicast `seq` to `to` was dropped there.
    /// It counts only for a message of ours still kept: an application message is sent
    /// again through another first neighbour (or reported to the application), a signal's
    /// session with `to` that is not linked yet ends now, not at its timeout.
    pub(super) fn on_unreachable(
        &mut self,
        to: NodeId,
        at: NodeId,
        seq: u64,
        proof: [u8; 8],
        now: Instant,
    ) {
        self.stats.unreachable_received += 1;
        // Only a node the payload went through knows its tag: a report from anyone else
        // (guessing the seq) counts for nothing.
        if self.sent_proofs.get(&seq, now).is_none_or(|p| *p != proof) {
            self.stats.unreachable_ignored += 1;
            return;
        }
        if let Some(entry) = self.reliable.take(to, seq) {
            // No need to wait for its acknowledgement: another way now.
            self.resend_reliable(to, seq, entry, now);
        } else if let Some(m) = self.sent_app.take(to, seq, now) {
            if !self.resend(m, now) {
                self.outputs
                    .push_back(Output::Event(Event::Unreachable { to, at }));
            }
        } else if self.signal_seqs.get(&seq, now) == Some(&to) {
            self.signal_seqs.remove(&seq);
            // The nodes around `to`'s id do not know it: gone, most likely (a departed
            // node, or one that never ran). Not a contact worth a session any more; its own
            // traffic, or a neighbour's announcement of it, brings it back.
            self.forget_as_gone(to, now);
            self.fail_pending(to, Carrier::Mesh, now);
        } else {
            self.stats.unreachable_ignored += 1;
        }
    }

    /// A relay reported that our application message `m` met a dead end: sends it once
    /// more (the same sealed bytes: the destination takes it once), through a first
    /// neighbour it has not been through (another way into the mesh, often around the
    /// relay's hole), at most `resend::RESENDS` times. Returns whether it did (if not, the
    /// application hears of it).
    fn resend(&mut self, mut m: resend::Sent, now: Instant) -> bool {
        if m.exhausted() {
            return false;
        }
        let to = m.to;
        let payload = std::mem::take(&mut m.payload);
        let Ok((hop, payload)) = self.route_out_avoiding(to, payload, &m.first_hops, now) else {
            return false;
        };
        self.stats.messages_resent += 1;
        m.payload = payload;
        self.sent_app.keep_again(m, hop);
        true
    }

    /// The neighbour to send a frame for `to` through, never one of `skip` (the neighbour
    /// the frame came from, and its origin), and the steering it goes on with. `None`: no
    /// way on from here (the caller reports it unreachable).
    ///
    /// First, a neighbour that has `to` as its neighbour, whatever the steering. Then, by
    /// steering ([`Steering`]): a frame on learned routes takes the neighbour `to`'s
    /// traffic last came through, else the greedy step of [`Node::greedy_hop`] if it makes
    /// progress (and goes on greedy); a greedy frame takes the greedy step, else a learned
    /// route (and goes on returning); a returning frame takes learned routes only.
    ///
    /// The steering only moves on, never back: a frame that went back and forth between
    /// learned routes and greedy steps could loop (docs/benchmarks.md §8.2).
    pub(super) fn next_hop(
        &self,
        to: NodeId,
        skip: &[NodeId],
        steering: Steering,
        now: Instant,
    ) -> Option<(NodeId, Steering)> {
        let greedy = self.greedy_hop(to, skip);
        if let Some((d, via)) = greedy
            && d.as_u128() == 0
        {
            return Some((via, steering));
        }
        let greedy = greedy
            .filter(|(d, _)| *d < self.id.distance(&to))
            .map(|(_, via)| via);
        let usable = |n: &&NodeId| !skip.contains(n) && self.live_link(n).is_some();
        let learned = || self.routes.get(&to, now).filter(usable).copied();
        match steering {
            Steering::Learned => learned()
                .map(|n| (n, Steering::Learned))
                .or(greedy.map(|n| (n, Steering::Greedy))),
            Steering::Greedy => greedy
                .map(|n| (n, Steering::Greedy))
                .or_else(|| learned().map(|n| (n, Steering::Return))),
            Steering::Return => learned()
                .map(|n| (n, Steering::Return))
                .or(greedy.map(|n| (n, Steering::Last))),
            Steering::Last => greedy.map(|n| (n, Steering::Last)),
        }
    }

    /// Greedy by XOR distance over the two-hop view: among the live neighbours and the
    /// peers they announced (never one of `skip`, never this node), the node closest to
    /// `to`, and the neighbour to reach it through: itself if it is a neighbour, else the
    /// lowest neighbour that announced it. Returns (its distance to `to`, that neighbour);
    /// whether it is closer than this node is for the caller to judge.
    pub(super) fn greedy_hop(&self, to: NodeId, skip: &[NodeId]) -> Option<(Distance, NodeId)> {
        // (distance, reached through a neighbour's set, via): a direct neighbour wins a
        // tie, so that the frame goes straight to the node that made the progress.
        self.live_links()
            .filter(|(n, _)| !skip.contains(n))
            .map(|(n, _)| {
                let (d, announced) = self.reach(n, to, skip);
                (d, announced, *n)
            })
            .min()
            .map(|(d, _, via)| (d, via))
    }

    /// The distance to `to` of the closest node neighbour `n` stands for: itself, or a
    /// peer it announced (never this node nor one of `skip`); and whether it is one it
    /// announced (a tie goes to `n` itself).
    pub(super) fn reach(&self, n: &NodeId, to: NodeId, skip: &[NodeId]) -> (Distance, bool) {
        let announced = self
            .neighbour_sets
            .get(n)
            .into_iter()
            .flat_map(|a| &a.peers);
        announced
            .filter(|m| **m != self.id && !skip.contains(m))
            .map(|m| (m.distance(&to), true))
            .fold((n.distance(&to), false), std::cmp::min)
    }

    pub(super) fn learn_route(&mut self, origin: NodeId, via: NodeId, now: Instant) {
        if origin != via && origin != self.id {
            // The `from` of a relayed frame is the neighbour's word: a route, not a
            // contact (contacts come from verified records, offers and server samples).
            self.routes.insert(origin, via, now);
        }
    }

    pub(super) fn learn_peers(&mut self, peers: &[NodeId], now: Instant) {
        // The table never stores our own id.
        for p in peers {
            if self.gone.contains(p, now) {
                continue;
            }
            if self.contacts.insert(*p, now) {
                self.topology_dirty = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;
    use web_time::Instant;

    use mesh_proto::identity::Keypair;
    use mesh_proto::signal::SessionId;
    use mesh_proto::{Distance, NodeId, Steering};
    use proptest::prelude::*;

    use crate::Config;
    use crate::node::{Carrier, Node, Role};

    fn id(n: u128) -> NodeId {
        NodeId::from_bytes(n.to_be_bytes())
    }

    /// A node with links to `neighbours`, each having announced its set.
    fn node_with(seed: [u8; 32], neighbours: &[(u128, Vec<u128>)], now: Instant) -> Node {
        let mut node = Node::new(Config::default(), Keypair::from_seed(seed), now, 1).unwrap();
        for (k, (peer, set)) in neighbours.iter().enumerate() {
            let session = SessionId(k as u64);
            node.sessions
                .start(session, id(*peer), Role::Offerer, Carrier::Mesh, now);
            node.sessions.get_mut(&session).unwrap().linked = true;
            node.links.insert(id(*peer), session);
            node.set_neighbours(id(*peer), set.iter().map(|p| id(*p)).collect());
        }
        node
    }

    /// The closest node to `to` that `via` stands for: itself or a peer it announced, never
    /// this node nor one of `skip`.
    fn reach(node: &Node, via: NodeId, to: NodeId, skip: &[NodeId]) -> Option<Distance> {
        let set = node
            .neighbour_sets
            .get(&via)
            .map(|a| a.peers.clone())
            .unwrap_or_default();
        std::iter::once(via)
            .chain(set)
            .filter(|p| *p != node.id && !skip.contains(p))
            .map(|p| p.distance(&to))
            .min()
    }

    /// The node's outputs so far: the frames it sent (with their session) and what it told
    /// the application.
    fn drain(node: &mut Node) -> (Vec<(SessionId, mesh_proto::Frame)>, Vec<crate::Event>) {
        let (mut frames, mut events) = (Vec::new(), Vec::new());
        while let Some(out) = node.poll_output() {
            match out {
                crate::Output::SendLink { session, bytes } => {
                    frames.push((session, mesh_proto::decode(&bytes).expect("a valid frame")));
                }
                crate::Output::Event(event) => events.push(event),
                _ => {}
            }
        }
        (frames, events)
    }

    /// The sessions the `Route` frames for `to` went out on, and whether the application
    /// heard that `to` is unreachable.
    fn routes_out(node: &mut Node, to: NodeId) -> (Vec<SessionId>, bool) {
        let (frames, events) = drain(node);
        let sessions = frames
            .into_iter()
            .filter(|(_, f)| matches!(f, mesh_proto::Frame::Route { to: t, .. } if *t == to))
            .map(|(s, _)| s)
            .collect();
        let unreachable = events
            .iter()
            .any(|e| matches!(e, crate::Event::Unreachable { to: t, .. } if *t == to));
        (sessions, unreachable)
    }

    #[test]
    fn a_relayed_dead_end_unmarks_the_bucket_and_is_looked_up() {
        let now = Instant::now();
        let seed = [7; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        // `to` is in our bucket 20; both neighbours are in buckets 0 and 1: farther from
        // `to` than we are, so a frame for `to` meets a dead end here.
        let b = 20;
        let to = id(me ^ (1 << (127 - b)));
        let mut node = node_with(
            seed,
            &[(me ^ (1 << 127), vec![]), (me ^ (1 << 126), vec![])],
            now,
        );
        node.lookups.empty_holes.insert(b);
        drain(&mut node);
        // Sealed by its origin, as every payload through the mesh (a relay checks the
        // sealed origin against `from` first).
        let origin = Keypair::from_seed([9; 32]);
        let sealed = mesh_proto::Sealed {
            key: origin.public(),
            epoch: 0,
            seq: 0,
            ciphertext: vec![0; 16],
        };
        let route = mesh_proto::Frame::Route {
            to,
            from: origin.node_id(),
            ttl: 8,
            steering: Steering::Greedy,
            payload: mesh_proto::encode_payload(&mesh_proto::signal::Payload::Sealed(sealed))
                .unwrap(),
        };
        let bytes = mesh_proto::encode(&route).unwrap();
        node.handle_input(
            now,
            crate::Input::LinkData {
                session: SessionId(0),
                bytes: bytes.into(),
            },
        );
        assert_eq!(node.stats().dropped_no_route, 1);
        assert!(
            !node.lookups.empty_holes.contains(b),
            "the bucket is not empty after all"
        );
        node.handle_input(now + Duration::from_millis(1), crate::Input::Timeout);
        let targets = lookups_out(&mut node);
        assert!(
            !targets.is_empty() && targets.iter().all(|t| *t == to),
            "{targets:?}"
        );
    }

    #[test]
    fn a_message_that_meets_a_dead_end_goes_again_through_other_neighbours() {
        let now = Instant::now();
        let seed = [9; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        let to = me ^ (1 << 100);
        // Three neighbours, each closer to `to` than the one after: greedy takes them in
        // that order (sessions 0, 1, 2).
        let hops = [(to ^ 1, vec![]), (to ^ 2, vec![]), (to ^ 4, vec![])];
        let mut node = node_with(seed, &hops, now);
        // A key to seal with (the made-up id does not derive from it: the node does not
        // check what it is told in a test).
        node.keys
            .learn(id(to), Keypair::from_seed([99; 32]).public(), now);
        let relay = id(to ^ 8);
        node.send(now, id(to), b"hello".to_vec()).unwrap();
        assert_eq!(routes_out(&mut node, id(to)), (vec![SessionId(0)], false));

        // A relay reports a dead end: the message goes again, through the next neighbour,
        // and the application hears nothing yet.
        let proof0 = *node.sent_proofs.get(&0, now).unwrap();
        node.on_unreachable(id(to), relay, 0, proof0, now);
        assert_eq!(routes_out(&mut node, id(to)), (vec![SessionId(1)], false));
        node.on_unreachable(id(to), relay, 0, proof0, now);
        assert_eq!(routes_out(&mut node, id(to)), (vec![SessionId(2)], false));
        assert_eq!(node.stats.messages_resent, 2);
        // Resent twice: the third report reaches the application.
        node.on_unreachable(id(to), relay, 0, proof0, now);
        assert_eq!(routes_out(&mut node, id(to)), (vec![], true));
        assert_eq!(node.stats.messages_resent, 2);

        // A report about no message still kept (one past the window, or one never sent)
        // counts for nothing: it may be a lie.
        node.send(now, id(to), b"again".to_vec()).unwrap();
        routes_out(&mut node, id(to));
        // A report quoting the wrong proof: someone off the path.
        node.on_unreachable(id(to), relay, 1, [0; 8], now);
        node.on_unreachable(id(to), relay, 7, [0; 8], now);
        let later = now + crate::resend::WINDOW + std::time::Duration::from_millis(1);
        let proof1 = *node.sent_proofs.get(&1, now).unwrap();
        node.on_unreachable(id(to), relay, 1, proof1, later);
        assert_eq!(routes_out(&mut node, id(to)), (vec![], false));
        assert_eq!(node.stats.unreachable_ignored, 3);
    }

    /// The targets of the `Lookup` frames the node sent.
    fn lookups_out(node: &mut Node) -> Vec<NodeId> {
        drain(node)
            .0
            .into_iter()
            .filter_map(|(_, f)| match f {
                mesh_proto::Frame::Lookup { target, .. } => Some(target),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_bucket_a_lookup_found_empty_gives_way_to_lookups_for_our_own_id() {
        let now = Instant::now();
        let seed = [11; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        let in_bucket = |b: u32| me ^ (1u128 << (127 - b));
        // Links in buckets 0, 1, 2 (two) and 4: bucket 3 is a hole.
        let spare = in_bucket(2) ^ 1;
        let mut links: Vec<(u128, Vec<u128>)> = [0, 1, 2, 4]
            .iter()
            .map(|b| (in_bucket(*b), vec![]))
            .collect();
        links.push((spare, vec![]));
        let mut node = node_with(seed, &links, now);
        let answerer = id(in_bucket(2) ^ 2);

        node.lookup(now);
        let targets = lookups_out(&mut node);
        assert!(!targets.is_empty());
        let hole = targets[0];
        assert_eq!(
            crate::contacts::bucket(&node.id, &hole),
            3,
            "the hole is looked for first"
        );
        // Every path answers, naming nobody in bucket 3 (only peers near us).
        for _ in 0..targets.len() {
            node.on_lookup_answer(answerer, hole, 0, vec![], now);
        }

        // The next lookup is for our own id, not the empty bucket again.
        let later = node.lookups.next;
        node.lookup(later);
        let targets = lookups_out(&mut node);
        assert!(!targets.is_empty());
        assert!(targets.iter().all(|t| *t == node.id), "{targets:?}");

        // A lost link (one that leaves the shape as it was) makes the bucket worth
        // looking for again.
        let lost = node.links[&id(spare)];
        node.drop_link(lost, crate::LinkDownReason::Local, later);
        lookups_out(&mut node);
        node.lookups.target = None;
        node.lookup(node.lookups.next.max(later));
        let targets = lookups_out(&mut node);
        assert!(
            targets
                .iter()
                .all(|t| crate::contacts::bucket(&node.id, t) == 3),
            "{targets:?}"
        );
    }

    /// At the target degree, a closer peer known only from records others passed on is no
    /// reason for an extra link (a departed node lives on in such records); once seen alive
    /// first hand (here, its own traffic), it is, if an offer can reach it: with no
    /// neighbour closer to it and no route learned from its traffic, the session would fail
    /// at once.
    #[test]
    fn an_extra_link_goes_only_to_a_peer_seen_alive_that_an_offer_can_reach() {
        let now = Instant::now();
        let seed = [15; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        let links: Vec<(u128, Vec<u128>)> =
            (0..8).map(|k| (me ^ (1 << (100 + k)), vec![])).collect();
        let mut node = node_with(seed, &links, now);
        assert_eq!(node.degree(), node.config.target_degree);
        let closer = id(me ^ 1);
        node.keys
            .learn(closer, Keypair::from_seed([97; 32]).public(), now);
        node.learn_peers(&[closer], now);
        assert!(node.rewire(now), "looked");
        assert!(node.pending_with(closer).is_none(), "hearsay: no session");
        node.learn_origin(closer, now);
        // Closer to us than any neighbour: none is a step towards it.
        assert!(node.rewire(now));
        assert!(
            node.pending_with(closer).is_none(),
            "no way there: no session"
        );
        node.routes.insert(closer, id(links[0].0), now);
        assert!(node.rewire(now));
        assert!(
            node.pending_with(closer).is_some(),
            "seen alive, a way: a session"
        );
        assert_eq!(node.stats.links_rewired, 1);
        assert_eq!(node.stats.sessions_failed, 0);
    }

    /// Below the target, the bucket to link into is chosen by shape alone, and within it a
    /// peer seen alive lately (first hand: here, its own traffic) goes before one only
    /// heard of (a record passed on): closer or not, and whichever way the bucket was
    /// chosen (the closest link wanted; a random peer in the farthest bucket not linked).
    /// Once not seen for `SEEN_LATELY`, they are alike again.
    #[test]
    fn a_top_up_prefers_in_its_bucket_a_peer_seen_alive_lately() {
        let now = Instant::now();
        let seed = [18; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        // Two links: the closest links are wanted, in the deepest bucket with a contact.
        let mut node = node_with(
            seed,
            &[(me ^ (1 << 120), vec![]), (me ^ (1 << 121), vec![])],
            now,
        );
        let (heard, alive) = (id(me ^ (1 << 90) ^ 1), id(me ^ (1 << 90) ^ 2));
        node.learn_peers(&[heard], now);
        node.learn_origin(alive, now);
        assert!(node.id.distance(&heard) < node.id.distance(&alive));
        assert_eq!(node.pick_candidate(true, now), Some(alive));
        let later = now + Duration::from_secs(31);
        assert_eq!(
            node.pick_candidate(true, later),
            Some(heard),
            "alike: the closest"
        );

        // Three links closer than anyone else; bucket 0 covered by a neighbour's neighbour,
        // not linked: a random peer of bucket 0, eleven to choose from.
        let cover = me ^ (1 << 127) ^ 0xff;
        let mut node = node_with(
            seed,
            &[(me ^ 1, vec![cover]), (me ^ 2, vec![]), (me ^ 3, vec![])],
            now,
        );
        let heard: Vec<NodeId> = (0..10).map(|k| id(me ^ (1 << 127) ^ k)).collect();
        let alive = id(me ^ (1 << 127) ^ 10);
        node.learn_peers(&heard, now);
        node.learn_origin(alive, now);
        for _ in 0..10 {
            assert_eq!(node.pick_candidate(true, now), Some(alive));
        }
        let picks: std::collections::BTreeSet<NodeId> = (0..40)
            .filter_map(|_| node.pick_candidate(true, later))
            .collect();
        assert!(
            picks.len() > 1,
            "alike again: any of the bucket ({picks:?})"
        );
    }

    /// A top-up to a peer not seen alive lately (here, only heard of) looks it up first and
    /// starts no session: the session starts when the peer shows itself alive (its own
    /// answer, here its traffic); a peer that does not in time is given up without a
    /// session, no longer a contact, and counts as a failure towards being stranded.
    #[test]
    fn a_top_up_looks_up_a_peer_only_heard_of_before_a_session() {
        let now = Instant::now();
        let seed = [19; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        let mut node = node_with(seed, &[(me ^ (1 << 120), vec![])], now);
        let (alive, left) = (id(me ^ (1 << 90) ^ 1), id(me ^ (1 << 91) ^ 1));
        for (peer, k) in [(alive, 95), (left, 96)] {
            let key = Keypair::from_seed([k; 32]).public();
            node.keys.learn_unconfirmed(peer, key, now);
        }
        node.learn_peers(&[alive, left], now);
        let _ = drain(&mut node);
        node.top_up(now);
        let (sent, _) = drain(&mut node);
        let lookups = |frames: &[(SessionId, mesh_proto::Frame)], to: NodeId| {
            let lookup = |(_, f): &&(SessionId, mesh_proto::Frame)| matches!(f, mesh_proto::Frame::Lookup { target, .. } if *target == to);
            frames.iter().filter(lookup).count()
        };
        assert!(lookups(&sent, alive) > 0 && lookups(&sent, left) > 0);
        assert_eq!(node.sessions.pending_offers().count(), 0, "no session yet");
        assert_eq!(node.links_awaited(), 2);
        // `alive` shows itself: its key proved and seen alive, as its sealed answer does.
        let key = Keypair::from_seed([95; 32]).public();
        node.keys.learn(alive, key, now);
        node.learn_origin(alive, now);
        node.key_learned(alive, now);
        assert!(node.pending_with(alive).is_some(), "alive: a session");
        // `left` never does.
        let later = now + super::super::trust::KEY_WAIT;
        node.expire_awaiting(later);
        assert!(node.pending_with(left).is_none());
        assert!(!node.contacts.contains(&left, later), "given up: forgotten");
        assert_eq!(node.stats.connects_unresolved, 1);
        assert_eq!(node.stats.sessions_failed, 0);
        assert_eq!(node.stats.sessions_initiated_via_mesh, 1);
    }

    /// A link that ends without notice (no `Closing`: the peer left or failed) takes the
    /// peer out of the contacts; one closed with notice (shed) does not.
    #[test]
    fn a_neighbour_lost_without_notice_is_no_longer_a_contact() {
        let now = Instant::now();
        let seed = [17; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        let (left, shed) = (me ^ (1 << 100), me ^ (1 << 101));
        let mut node = node_with(seed, &[(left, vec![]), (shed, vec![])], now);
        node.learn_peers(&[id(left), id(shed)], now);
        node.on_closing(id(shed), now);
        let closed = |node: &Node, peer: u128| node.links.get(&id(peer)).unwrap();
        let (s_left, s_shed) = (closed(&node, left), closed(&node, shed));
        let gone = || crate::LinkDownReason::Transport("closed by the peer".into());
        node.on_link_closed(s_left, gone(), now);
        node.on_link_closed(s_shed, gone(), now);
        assert_eq!(node.degree(), 0);
        assert!(!node.contacts.contains(&id(left), now), "left: forgotten");
        assert!(
            node.contacts.contains(&id(shed), now),
            "shed with notice: kept"
        );
    }

    /// A session whose offer met a dead end near its peer's id: the peer is gone for this
    /// node (not a contact, and records others pass on do not make it one again), until
    /// its own traffic, a neighbour's announcement or the server shows it alive.
    #[test]
    fn a_peer_the_mesh_reports_unreachable_is_not_learned_again_from_hearsay() {
        let now = Instant::now();
        let seed = [14; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        let to = me ^ (1 << 100);
        let mut node = node_with(seed, &[(to ^ 1, vec![])], now);
        node.keys
            .learn(id(to), Keypair::from_seed([98; 32]).public(), now);
        node.learn_peers(&[id(to)], now);
        assert!(node.contacts.contains(&id(to), now));
        node.start_session(id(to), Carrier::Mesh, now);
        let session = node.pending_with(id(to)).expect("a session").0;
        node.send_signal(
            session,
            mesh_proto::signal::SignalKind::Offer("v=0".into()),
            now,
        );
        // The first payload this node sealed: seq 0.
        let seq = 0;
        assert_eq!(node.signal_seqs.get(&seq, now), Some(&id(to)), "the offer");
        let proof = *node.sent_proofs.get(&seq, now).unwrap();
        node.on_unreachable(id(to), id(to ^ 1), seq, proof, now);
        assert!(node.pending_with(id(to)).is_none(), "the session ended");
        assert!(!node.contacts.contains(&id(to), now));
        // Hearsay (a lookup answer's records) does not bring it back ...
        node.learn_peers(&[id(to)], now);
        assert!(!node.contacts.contains(&id(to), now));
        // ... its own traffic does.
        node.learn_origin(id(to), now);
        assert!(node.contacts.contains(&id(to), now));
    }

    /// A server's sample is a moment's: once one of its peers turns out gone, the rest is
    /// not worked through one session at a time (after a mass kill most of it is dead).
    #[test]
    fn a_peer_of_the_server_sample_gone_discards_the_sample() {
        let now = Instant::now();
        let mut node = node_with([13; 32], &[(1, vec![])], now);
        node.server_peers = vec![id(7), id(8), id(9)];
        let unknown = mesh_proto::ErrorCode::UNKNOWN_PEER;
        node.on_server_error(unknown, Some(id(42)), now);
        assert_eq!(node.server_peers.len(), 3, "not one of the sample's");
        node.on_server_error(unknown, Some(id(8)), now);
        assert!(node.server_peers.is_empty());
        assert!(node.server_candidate(now).is_none());
    }

    /// A region can split into parts that do not know each other; a lookup for our own
    /// id that only ever takes the best first hops stays in our part. Its last path
    /// enters through a neighbour drawn at random.
    #[test]
    fn a_lookup_for_our_own_id_also_enters_through_a_random_neighbour() {
        let now = Instant::now();
        let seed = [12; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        // Links in buckets 0..=6: no hole, so every lookup is for our own id.
        let links: Vec<(u128, Vec<u128>)> = (0..=6u32)
            .map(|b| (me ^ (1u128 << (127 - b)), vec![]))
            .collect();
        let mut node = node_with(seed, &links, now);
        let closest = id(me ^ (1u128 << (127 - 6)));
        let mut second = std::collections::BTreeSet::new();
        for k in 0..24u64 {
            let at = now + std::time::Duration::from_secs(60 * k);
            node.lookups.target = None;
            node.lookups.next = at;
            node.lookup(at);
            let out: Vec<NodeId> = drain(&mut node)
                .0
                .into_iter()
                .filter(|(_, f)| matches!(f, mesh_proto::Frame::Lookup { target, .. } if *target == node.id))
                .map(|(s, _)| *node.live_links().find(|(_, v)| **v == s).unwrap().0)
                .collect();
            assert_eq!(out.len(), node.config.lookup_paths, "one frame per path");
            assert_eq!(out[0], closest, "the first path takes the best first hop");
            assert_ne!(out[1], out[0]);
            second.insert(out[1]);
        }
        assert!(second.len() >= 3, "the last path varies: {second:?}");
    }

    /// The steering ladder of `docs/protocol.md` §10.3, each row: a neighbour `a` that
    /// `to`'s traffic came through (a learned route) and a neighbour `b` strictly closer to
    /// `to` (a greedy step); the frame only ever climbs.
    #[test]
    fn the_steering_ladder_only_climbs() {
        let now = Instant::now();
        let seed = [7; 32];
        let me = u128::from_be_bytes(*Keypair::from_seed(seed).node_id().as_bytes());
        let to = me ^ (1 << 100);
        let (a, b, far) = (me ^ (1 << 127), to ^ 1, me ^ (1 << 126));
        let node = |route: bool, progress: bool| {
            let step = if progress { b } else { far };
            let mut node = node_with(seed, &[(a, vec![]), (step, vec![])], now);
            if route {
                node.routes.insert(id(to), id(a), now);
            }
            node
        };
        use Steering::*;
        let rows = [
            // (learned route, greedy progress, steering in, expected out)
            (true, true, Learned, Some((a, Learned))),
            (true, true, Greedy, Some((b, Greedy))),
            (true, true, Return, Some((a, Return))),
            (true, true, Last, Some((b, Last))),
            (false, true, Learned, Some((b, Greedy))),
            (false, true, Return, Some((b, Last))),
            (true, false, Greedy, Some((a, Return))),
            (true, false, Last, None),
            (false, false, Learned, None),
            (false, false, Greedy, None),
        ];
        for (route, progress, steering, expected) in rows {
            let got = node(route, progress).next_hop(id(to), &[], steering, now);
            let expected = expected.map(|(n, s)| (id(n), s));
            assert_eq!(
                got, expected,
                "route {route}, progress {progress}, {steering:?}"
            );
        }
        // A neighbour that announced `to` goes first and keeps the steering.
        let mut direct = node(true, true);
        direct.set_neighbours(id(far), vec![id(to)]);
        direct.links.insert(id(far), SessionId(9));
        direct
            .sessions
            .start(SessionId(9), id(far), Role::Offerer, Carrier::Mesh, now);
        direct.sessions.get_mut(&SessionId(9)).unwrap().linked = true;
        for steering in [Learned, Greedy, Return, Last] {
            let got = direct.next_hop(id(to), &[], steering, now);
            assert_eq!(got, Some((id(far), steering)));
        }
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
            match node.next_hop(to, &skip, Steering::Greedy, now) {
                Some((via, steering)) => {
                    prop_assert_eq!(steering, Steering::Greedy);
                    prop_assert!(node.live_link(&via).is_some());
                    prop_assert!(!skip.contains(&via));
                    let best = reach(&node, via, to, &skip);
                    prop_assert!(best.is_some_and(|d| d < mine), "no progress through {via}");
                }
                None => {
                    let links: Vec<NodeId> = node.links.all().map(|(p, _)| *p).collect();
                    for n in links.iter().filter(|n| !skip.contains(n)) {
                        let best = reach(&node, *n, to, &skip);
                        prop_assert!(best.is_none_or(|d| d >= mine), "{n} makes progress");
                    }
                }
            }
        }
    }
}
