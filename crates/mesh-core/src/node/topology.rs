//! Neighbour selection in the Kademlia style: which known peer to link to next, when a
//! better-placed peer is worth an extra link, and which link is redundant.
//!
//! The shape the node works towards, within its degree bounds:
//! - links to the [`Config::closest_links`](crate::Config::closest_links) nodes closest to
//!   it by XOR distance, so that the nodes near any id know each other;
//! - every distance bucket (the length of the id prefix a peer shares with this node) in
//!   which it knows a peer is *covered*: some neighbour, or some neighbour's neighbour, is
//!   in it. A unicast for an id in bucket `b` then has a next hop strictly closer to it
//!   (anyone in bucket `b` is closer to that id than this node is), one or two links away.
//!   Where the node knows nobody in the bucket of the id, greedy routing meets a dead end
//!   (reported to the origin); lookups through the mesh (`Lookup`, below) find such peers,
//!   and the node's closest ones.
//!
//! Links beyond the target degree that add neither closeness nor coverage, to a neighbour
//! that is itself above its target, are shed, so that nodes keep room for newcomers.

use std::collections::BTreeSet;
use std::time::Duration;

use web_time::Instant;

use mesh_proto::frame::MAX_NODES;
use mesh_proto::signal::Payload;
use mesh_proto::{Distance, Frame, NodeId, NodeRecord, Steering};
use rand::Rng;
use rand::seq::IteratorRandom;

use super::{Carrier, Node, Role};
use crate::contacts::{BucketSet, bucket};

/// How long a link closed with notice stays open for what is in flight to arrive.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Only a peer seen alive (first hand: its own signed or sealed traffic, a neighbour's
/// announcement, the server's sample, its offer) within this long gets a link above the
/// target degree; below it, such a peer goes before the others of its bucket.
const SEEN_LATELY: Duration = Duration::from_secs(30);

impl Node {
    /// How many closest links to keep.
    fn closest_links(&self) -> usize {
        self.config.closest_links.min(self.config.target_degree)
    }

    /// Whether we could open a session with `peer` now: not linked, not in a session, not
    /// backing off.
    pub(super) fn is_eligible(&self, peer: &NodeId, now: Instant) -> bool {
        // Sessions are few (at most `max_sessions`): a scan beats building a set.
        !self.links.contains(peer)
            && !self.sessions.with_peer(peer)
            && !self.backing_off(peer, now)
            && !self.awaiting.contains_key(peer)
    }

    /// Whether an offer to `peer` can leave this node through the mesh: a neighbour makes
    /// progress towards it, or a route learned from its traffic leads there. A session
    /// whose offer has nowhere to go fails at once, after the transport has prepared it
    /// (in WebRTC, a PeerConnection and its offer): an extra link does not go to such a
    /// peer. A top-up (below the target) still may: those failures are how a node on an
    /// island learns it is stranded ([`Node::stranded`]; taking them away left survivors
    /// of a mass kill below their minimum degree, docs/benchmarks.md §14.18).
    fn reachable(&self, peer: &NodeId, now: Instant) -> bool {
        self.next_hop(*peer, &[], Steering::Learned, now).is_some()
    }

    /// Whether `peer` was seen alive first hand (its own signed or sealed traffic, a
    /// neighbour's announcement, the server's sample, its offer) in the last
    /// `SEEN_LATELY`.
    /// The start of "lately": `SEEN_LATELY` ago, or when the node was made if the clock
    /// does not go back that far (in a browser, for the page's first 30 s: nothing was
    /// seen before the node existed, so the two mean the same).
    fn lately(&self, now: Instant) -> Instant {
        now.checked_sub(SEEN_LATELY).unwrap_or(self.created)
    }

    pub(super) fn seen_lately(&self, peer: &NodeId, now: Instant) -> bool {
        self.contacts.seen_within(peer, SEEN_LATELY, now)
    }

    /// Peers we could open a session with now: known and eligible; in no particular order.
    fn eligible(&self, now: Instant) -> Vec<NodeId> {
        self.contacts
            .iter(now)
            .copied()
            .filter(|p| self.is_eligible(p, now))
            .collect()
    }

    /// The eligible contact in bucket `b` closest to us; for an extra link (`extra_since`),
    /// of those seen alive since then and that an offer can reach. For a top-up (`None`),
    /// of those seen alive lately if there is one (a contact only heard of, from records
    /// passed on, is the likeliest to have left: docs/benchmarks.md §14.19), else of all.
    fn closest_eligible_in(
        &self,
        b: u32,
        now: Instant,
        extra_since: Option<Instant>,
    ) -> Option<NodeId> {
        let closest = |since| {
            self.contacts
                .in_bucket(b, now, since)
                .filter(|p| self.is_eligible(p, now))
                .min_by_key(|p| self.id.distance(p))
                .copied()
        };
        if extra_since.is_none() {
            return closest(Some(self.lately(now))).or_else(|| closest(None));
        }
        let eligible = self
            .contacts
            .in_bucket(b, now, extra_since)
            .filter(|p| self.is_eligible(p, now));
        let mut in_bucket: Vec<NodeId> = eligible.copied().collect();
        in_bucket.sort_unstable_by_key(|p| self.id.distance(p));
        in_bucket.into_iter().find(|p| self.reachable(p, now))
    }

    /// The distance of our `closest_links`-th closest neighbour (`None`: fewer links).
    fn closest_link_bound(&self) -> Option<Distance> {
        let k = self.closest_links();
        let mut d: Vec<_> = self
            .live_links()
            .map(|(p, _)| self.id.distance(p))
            .collect();
        if d.len() < k {
            return None;
        }
        d.sort_unstable();
        d.get(k.checked_sub(1)?).copied()
    }

    /// Buckets in which we have a neighbour or a neighbour's neighbour.
    fn covered_buckets(&self) -> BucketSet {
        let links: BucketSet = self
            .live_links()
            .map(|(p, _)| bucket(&self.id, p))
            .collect();
        self.neighbour_sets
            .iter()
            .filter(|(n, _)| !self.links.is_draining(n))
            .fold(links, |covered, (_, a)| covered.union(a.buckets))
    }

    /// A peer whose link would improve the shape: one closer than our
    /// `closest_links`-th closest neighbour, else one in a bucket nobody we can reach in
    /// two links is in (the farthest such bucket first: it holds the most ids; in it, the
    /// peer closest to us). Only eligible contacts count (and for an extra link, only those
    /// an offer can reach).
    ///
    /// For an extra link, above the target (`extra_since`: only peers seen alive since
    /// then), "closer" means closer than our closest neighbour, or in a deeper bucket than
    /// that `closest_links`-th one: every newcomer a little closer would otherwise cost a
    /// session and a shed link.
    ///
    /// It runs on every tick after anything that bears on the shape changed, so it walks
    /// the buckets rather than every contact: the closest eligible peer is in the deepest
    /// bucket that has one, and covered buckets are skipped whole.
    fn structural_candidate(&self, extra_since: Option<Instant>, now: Instant) -> Option<NodeId> {
        let coarse = extra_since.is_some();
        let depth = self.contacts.depth();
        if self.closest_links() > 0
            && let Some(p) = (0..depth)
                .rev()
                .find_map(|b| self.closest_eligible_in(b, now, extra_since))
        {
            let d = self.id.distance(&p);
            match self.closest_link_bound() {
                None => return Some(p),
                Some(bound)
                    if coarse
                        && (d.leading_zeros() > bound.leading_zeros()
                            || self.live_links().all(|(l, _)| d < self.id.distance(l))) =>
                {
                    return Some(p);
                }
                Some(bound) if !coarse && d < bound => return Some(p),
                Some(_) => {}
            }
        }
        let covered = self.covered_buckets();
        (0..depth)
            .filter(|b| !covered.contains(*b))
            .find_map(|b| self.closest_eligible_in(b, now, extra_since))
    }

    /// The next peer to link to while under the target degree: a structural improvement
    /// if there is one; else a random peer in the farthest bucket that none of our links is
    /// in (a long link: covered through a neighbour, that bucket costs a unicast an extra
    /// hop); else (`prefer_routable`) a random peer a neighbour knows (its signaling is sure
    /// to find a way), else any.
    /// (What the long links are worth: docs/benchmarks.md §8.1.)
    ///
    /// The bucket is chosen by shape alone, whoever is in it: preferring peers seen alive
    /// lately everywhere (neighbours' neighbours, mostly) made the mesh clustered and
    /// fragile under droppers and forgers (docs/benchmarks.md §14.13). Within the chosen
    /// bucket, a peer seen alive lately goes first (§14.19).
    pub(super) fn pick_candidate(&mut self, prefer_routable: bool, now: Instant) -> Option<NodeId> {
        if let Some(p) = self.structural_candidate(None, now) {
            return Some(p);
        }
        let mut eligible = self.eligible(now);
        // Sorted, so that the random choice depends on the seed only.
        eligible.sort_unstable();
        let linked: BucketSet = self
            .live_links()
            .map(|(p, _)| bucket(&self.id, p))
            .collect();
        let farthest_unlinked = eligible
            .iter()
            .map(|p| bucket(&self.id, p))
            .filter(|b| !linked.contains(*b))
            .min();
        if let Some(b) = farthest_unlinked {
            let mut in_bucket: Vec<NodeId> = self
                .contacts
                .in_bucket(b, now, Some(self.lately(now)))
                .filter(|p| self.is_eligible(p, now))
                .copied()
                .collect();
            if in_bucket.is_empty() {
                in_bucket = eligible
                    .iter()
                    .filter(|p| bucket(&self.id, p) == b)
                    .copied()
                    .collect();
            }
            // Sorted, so that the random choice depends on the seed only.
            in_bucket.sort_unstable();
            return in_bucket.into_iter().choose(&mut self.rng);
        }
        if prefer_routable {
            let two_hop: BTreeSet<&NodeId> = self
                .neighbour_sets
                .values()
                .flat_map(|a| &a.peers)
                .collect();
            let routable = eligible.iter().filter(|p| two_hop.contains(p)).copied();
            if let Some(p) = routable.choose(&mut self.rng) {
                return Some(p);
            }
        }
        eligible.into_iter().choose(&mut self.rng)
    }

    /// At or above the target degree: opens one session to a structurally better peer, if
    /// there is one and room for it (below `max_degree - entry_slots`, nothing else under
    /// way). Returns whether it looked (`false`: not now, try again).
    pub(super) fn rewire(&mut self, now: Instant) -> bool {
        let pending = self.sessions.pending();
        let room = self.config.max_degree - self.config.entry_slots;
        if self.degree() == 0 || pending > 0 || self.degree() + 1 > room {
            return false;
        }
        // An extra link is a choice, not a need: only to a peer seen alive lately. A
        // departed node lives on in others' records for `key_ttl`, and in a churning mesh
        // rewiring to such hearsay was most of the sessions opened (docs/benchmarks.md
        // §14.13). Only to a peer a neighbour announces now was measured too, and left
        // out: it cut rewiring to peers lookups found, and the mesh's shape (§14.18).
        let lately = self.lately(now);
        if let Some(peer) = self.structural_candidate(Some(lately), now) {
            self.stats.links_rewired += 1;
            self.start_session(peer, Carrier::Mesh, now);
        }
        true
    }

    /// Above the target degree: drops one link that is not among the closest, shares its
    /// bucket with another link, and goes to a neighbour that announced more than the
    /// target degree itself. Only the offerer of a link considers dropping it, so the two
    /// ends never both drop a link on the same grounds.
    pub(super) fn shed_redundant(&mut self, now: Instant) {
        let target = self.config.target_degree;
        if self.degree() <= target {
            return;
        }
        let mut by_distance: Vec<NodeId> = self.live_links().map(|(p, _)| *p).collect();
        by_distance.sort_by_key(|p| self.id.distance(p));
        let keep: BTreeSet<NodeId> = by_distance
            .iter()
            .take(self.closest_links())
            .copied()
            .collect();
        let victim = by_distance.iter().rev().find(|p| {
            let their_degree = self.neighbour_sets.get(*p).map_or(0, |a| a.peers.len()) + 1;
            !keep.contains(*p)
                && their_degree > target
                && self.role_of(**p) == Some(Role::Offerer)
                && self.still_covered_without(**p)
        });
        if let Some(&peer) = victim {
            // Closed with notice: the neighbour stops sending on it and stops counting it
            // (and says so to its neighbours), and what it had in flight still arrives.
            self.stats.links_shed += 1;
            self.send_frame(self.links[&peer], &Frame::Closing);
            self.links.drain(peer, now + CLOSE_GRACE);
            self.announce(now);
        }
    }

    /// The neighbour `peer` is about to close our link: stop using and counting it, and
    /// let it close (or close it ourselves if it has not after twice its grace).
    pub(super) fn on_closing(&mut self, peer: NodeId, now: Instant) {
        if self.links.is_draining(&peer) {
            return;
        }
        self.links.drain(peer, now + 2 * CLOSE_GRACE);
        self.topology_dirty = true;
        self.announce(now);
        self.top_up(now);
    }

    /// Closes the links whose closing grace is over.
    pub(super) fn close_drained(&mut self, now: Instant) {
        for peer in self.links.drained(now) {
            if let Some(session) = self.links.close_drained(&peer) {
                self.drop_link(session, super::LinkDownReason::Redundant, now);
            }
        }
    }

    /// Up to `max` peers we know (linked or not), closest to `target` first, never `asker`.
    pub(super) fn closest_known(
        &self,
        target: NodeId,
        asker: NodeId,
        max: usize,
        now: Instant,
    ) -> Vec<NodeId> {
        // Links first (they are alive), then contacts; each peer counted once.
        let mut all: Vec<(Distance, NodeId)> = self
            .live_links()
            .map(|(p, _)| *p)
            .chain(
                self.contacts
                    .closest(&target, max, now, |p| !self.links.contains(p)),
            )
            .filter(|p| *p != asker && *p != self.id)
            .map(|p| (p.distance(&target), p))
            .collect();
        all.sort_unstable();
        all.truncate(max);
        all.into_iter().map(|(_, p)| p).collect()
    }

    /// When due, starts one lookup through the mesh ([`Frame::Lookup`]): for the
    /// destination of the last frame we relayed into a dead end, if any since the last
    /// lookup (judged like a lookup for its bucket); else for a random id in the farthest
    /// bucket (above the bucket of our closest neighbour) that no neighbour
    /// nor neighbour's neighbour is in, we know nobody in, and no lookup found empty since
    /// we last lost a link (`empty_holes`); with no such bucket, for our own id (closer
    /// peers than we have), along `lookup_paths` paths (docs/benchmarks.md §8.2). Due on the first tick with a link, and at once after a
    /// link is lost; after that, when [`Node::on_lookup_answer`] says once every path has
    /// answered (the next tick if an answer brought closer peers, else a pause doubling up
    /// to `lookup_interval`), or `announce_interval` after a lookup that did not get all
    /// its answers.
    pub(super) fn lookup(&mut self, now: Instant) {
        if now < self.lookups.next || self.degree() == 0 {
            return;
        }
        // Until an answer says otherwise, look again soon.
        self.lookups.next = now + self.config.announce_interval;
        let deepest = self
            .live_links()
            .map(|(p, _)| bucket(&self.id, p))
            .max()
            .unwrap_or(0);
        let known = self
            .covered_buckets()
            .union(self.contacts.non_empty_buckets(now));
        let (target, hole) = match self.lookups.dead_end.take() {
            // The destination of a frame we could not relay: its bucket is not empty.
            Some(to) => (to, Some(bucket(&self.id, &to))),
            None => {
                let empty = &self.lookups.empty_holes;
                let hole = (0..deepest).find(|b| !known.contains(*b) && !empty.contains(*b));
                let target = match hole {
                    Some(b) => {
                        // Our id with bit `b` flipped and random bits below: an id in
                        // bucket `b`.
                        let me = u128::from_be_bytes(*self.id.as_bytes());
                        let below = if b >= 127 { 0 } else { u128::MAX >> (b + 1) };
                        let flipped = me ^ (1u128 << (127 - b));
                        let id = (flipped & !below) | (self.rng.random::<u128>() & below);
                        NodeId::from_bytes(id.to_be_bytes())
                    }
                    None => self.id,
                };
                (target, hole)
            }
        };
        let Some((_, via)) = self.greedy_hop(target, &[self.id]) else {
            return;
        };
        let mut vias = vec![via];
        let paths = self.config.lookup_paths;
        if paths > 1 {
            // The next best first hops: neighbours ordered by the closest node to the target
            // they stand for (themselves or a peer they announced). Each path may end at a
            // different node, whose answer adds what the others do not know.
            let mut others: Vec<(Distance, NodeId)> = self
                .live_links()
                .filter(|(n, _)| **n != via)
                .map(|(n, _)| (self.reach(n, target, &[]).0, *n))
                .collect();
            others.sort_unstable();
            if target == self.id && !others.is_empty() {
                // A lookup for our own id: its last path enters through a neighbour drawn
                // at random. The best first hops all lead into the part of our region
                // that knows us; a region can split into parts that do not know each
                // other (their links were signaled through relays that dropped them), and
                // a lookup that comes from elsewhere can end in the other part, which then
                // learns us (docs/benchmarks.md §14.9).
                let explore = others.remove(self.rng.random_range(0..others.len())).1;
                vias.extend(others.into_iter().take(paths - 2).map(|(_, n)| n));
                vias.push(explore);
            } else {
                vias.extend(others.into_iter().take(paths - 1).map(|(_, n)| n));
            }
        }
        self.stats.lookups_sent += 1;
        self.lookups
            .started(&self.config, now, target, hole, vias.len());
        self.send_lookup(target, &vias, now);
    }

    /// A `Lookup` from `origin`: forwarded greedily towards `target` while that makes
    /// progress (and TTL is left), else answered here with the peers we know closest to
    /// it. Only the origin is excluded (the target may be its own id): lookups follow XOR
    /// distance alone, so the node aimed at gets strictly closer at least every two hops
    /// and the lookup cannot loop (as long as the neighbour sets are current).
    pub(super) fn on_lookup(
        &mut self,
        target: NodeId,
        origin: NodeId,
        id: u64,
        ttl: u8,
        forward: Frame,
        now: Instant,
    ) {
        if origin == self.id {
            return;
        }
        let progress = (ttl > 0)
            .then(|| self.greedy_hop(target, &[origin]))
            .flatten()
            .filter(|(d, _)| *d < self.id.distance(&target));
        if let Some((_, via)) = progress {
            self.stats.frames_relayed += 1;
            self.send_frame(self.links[&via], &forward);
            return;
        }
        // Our own record first (the lookup may be for our id: a key lookup), then those of
        // the peers we know closest to the target.
        let ids = self.closest_known(target, origin, MAX_NODES - 1, now);
        let mut peers = vec![self.record];
        // The target's own record, if held (a key lookup that ends short of the target),
        // whether or not the target is among the contacts.
        let wanted = (target != origin && target != self.id)
            .then(|| self.keys.record_of(&target, now))
            .flatten();
        let ids: Vec<NodeId> = ids.into_iter().filter(|p| *p != target).collect();
        peers.extend(wanted);
        peers.extend(self.records_of(&ids, now));
        peers.truncate(MAX_NODES);
        let answer = Payload::Nodes {
            target,
            lookup: id,
            peers,
        };
        // A lookup for this node's own id is a key lookup: its answer goes two ways.
        let sent = if target == self.id {
            self.send_sealed_twice(origin, &answer, now)
        } else {
            self.send_sealed(origin, &answer, now)
        };
        if sent.is_some() {
            self.stats.lookups_answered += 1;
        }
    }

    /// The answer to a lookup, sealed by `from`, the node where it ended: the records in
    /// it are checked, and taken if it answers the lookup under way or a key lookup
    /// (nobody can feed us peers unasked).
    pub(super) fn on_lookup_answer(
        &mut self,
        from: NodeId,
        target: NodeId,
        lookup: u64,
        records: Vec<NodeRecord>,
        now: Instant,
    ) {
        // A key lookup, or the lookup's target answering itself (its key proved by the
        // answer: what waited for it is gone already).
        let key_lookup = self.is_key_lookup(&target, lookup) || from == target;
        if self.lookups.target != Some(target) && !key_lookup {
            self.stats.bad_payloads += 1;
            return;
        }
        let mut records = records;
        records.truncate(MAX_NODES);
        // A record that fails is the answering node's lie (it passes on only verified
        // ones): the answer is dropped whole.
        let Some(mut peers) = self.verify_records(&records, now) else {
            return;
        };
        if key_lookup {
            // Verifying the records delivered what waited, if the target's was among
            // them; if not, this is one path's word that nobody near it knows it.
            if self.awaiting.contains_key(&target) {
                self.key_not_in_answer(target, now);
            }
            self.learn_peers(&peers, now);
            return;
        }
        peers.push(from);
        peers.retain(|p| *p != self.id);
        let improved = match self.lookups.hole {
            // A lookup for a hole, towards a random id in it, succeeds only by finding
            // someone in it. (Judged by closeness to that random id, as it was, nearly
            // every answer "improved" on the last: a node with an empty bucket looked it up
            // on every tick for good, and never looked for its own closest peers.)
            Some(b) => peers.iter().any(|p| bucket(&self.id, p) == b),
            None => {
                let known_best = self.closest_known(target, self.id, 1, now).first().copied();
                let answer_best = peers.iter().min_by_key(|p| p.distance(&target)).copied();
                match (answer_best, known_best) {
                    (Some(a), Some(k)) => a.distance(&target) < k.distance(&target),
                    (a, _) => a.is_some(),
                }
            }
        };
        self.learn_peers(&peers, now);
        // The answer came back the way the lookup went, towards nodes that know these
        // peers: the way to reach them too, until their own traffic shows a better one.
        if let Some(via) = self.routes.get(&from, now).copied() {
            for p in &peers {
                if self.routes.get(p, now).is_none() {
                    self.routes.insert(*p, via, now);
                }
            }
        }
        self.stats.lookup_answers += 1;
        self.lookups.answered(&self.config, now, improved);
    }

    /// Our role in the session of the link to `peer`.
    fn role_of(&self, peer: NodeId) -> Option<Role> {
        let session = self.links.get(&peer)?;
        let session = &session;
        self.sessions.get(session).map(|s| s.role)
    }

    /// Whether another link is in the bucket of `peer`. (Coverage through neighbours'
    /// neighbours does not count here: two nodes that each counted on the other's link
    /// would both drop theirs.)
    fn still_covered_without(&self, peer: NodeId) -> bool {
        let b = bucket(&self.id, &peer);
        self.live_links()
            .any(|(p, _)| *p != peer && bucket(&self.id, p) == b)
    }
}
