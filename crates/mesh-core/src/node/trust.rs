//! Trust: sealing what this node writes for one destination and opening what is sealed
//! for it, verifying floods, lookups and node records before they cost anything, the
//! budgets of each link and each flood origin, and learning a destination's key before
//! sealing for it (docs/protocol.md §9.6, §10.10).

use std::collections::BTreeMap;

use web_time::Instant;

use mesh_proto::signal::Payload;
use mesh_proto::{Frame, NodeId, NodeRecord, Sealed, authored};
use rand::Rng;

use super::{Carrier, Event, Node, Output};
use crate::budget::{self, Rate, Spend, Verdict};
use crate::keys::Refused;
use crate::{Error, LinkDownReason};

/// Destinations whose key is being looked up at once (each with its messages).
pub(super) const MAX_AWAITED: usize = 32;
/// Floods a node sends in place of routed unicasts, at most: 5/s, 20 at once. Each costs
/// every node of the mesh a verification and a forward, and counts against this node's
/// origin budget at each (`Config::origin_flood_budget`, 10/s), which its broadcasts
/// share; and a node answers a flood with a flood (a key request, a reliable unicast that
/// came by flood), so hostile nodes must not be able to spend all of it. Over it, the
/// routed way instead.
pub(super) const FALLBACK_BUDGET: Rate = Rate::new(5.0, 20.0);
/// Messages kept per destination while its key is looked up.
const MAX_AWAITED_MESSAGES: usize = 16;

/// What waits for a destination's key.
#[derive(Debug)]
pub(super) struct Awaiting {
    /// The lookups that ask for it, one per path (an answer to any of them is taken).
    lookups: Vec<u64>,
    /// The first neighbours those lookups went to.
    tried: Vec<NodeId>,
    /// Answers that came without its record.
    without: usize,
    /// When the next round of lookups goes, unless the key came.
    retry: Instant,
    /// When to give up.
    until: Instant,
    /// Application messages to seal once the key is known, and whether each is reliable.
    messages: Vec<(Vec<u8>, bool)>,
    /// Whether a link to it is wanted: the application asked ([`Node::connect`]), or a
    /// top-up waits for it to show itself alive first.
    connect: bool,
    /// Rounds of lookups sent.
    rounds: u32,
}

/// The destinations whose key is being looked up.
pub(super) type AwaitingKeys = BTreeMap<NodeId, Awaiting>;

impl Node {
    /// Links waiting for the peer's key or its own answer ([`Awaiting::connect`]).
    pub(super) fn links_awaited(&self) -> usize {
        self.awaiting.values().filter(|a| a.connect).count()
    }

    /// The budgets of each link, refilled at the configured rates.
    pub(super) fn rates(&self) -> budget::Rates {
        budget::Rates {
            route: self.config.route_budget,
            flood: self.config.flood_budget,
            lookup: self.config.lookup_budget,
            strikes: self.config.strike_budget,
        }
    }

    /// Spends one of `peer`'s tokens for `what` (a frame it sent on `session`). Returns
    /// whether the frame may go on; over budget it is dropped and counted, and a neighbour
    /// that stays over budget loses its link.
    pub(super) fn within_budget(
        &mut self,
        peer: NodeId,
        session: mesh_proto::signal::SessionId,
        what: Spend,
        now: Instant,
    ) -> bool {
        let rates = self.rates();
        let verdict =
            budget::link_of(&mut self.budgets, peer, &rates, now).spend(&rates, what, now);
        match verdict {
            Verdict::Go => true,
            Verdict::Throttle => {
                self.stats.throttled += 1;
                false
            }
            Verdict::Drop => {
                self.stats.throttled += 1;
                self.stats.links_over_budget += 1;
                self.drop_link(session, LinkDownReason::OverBudget, now);
                false
            }
        }
    }

    /// Whether this node knows of `origin` other than by its floods: a link to it, or its
    /// record (from a neighbour's announcement, a lookup's answer, its own). Floods of
    /// others are strangers' (a key that signs a flood is free to make).
    fn knows_of(&self, origin: &NodeId, now: Instant) -> bool {
        self.keys.has_record(origin, now) || self.live_link(origin).is_some()
    }

    /// Takes a token of the stranger budget of `kind` for a flood `peer` sent: from its
    /// link's share and from the node's.
    fn stranger_within_budget(
        &mut self,
        peer: NodeId,
        kind: budget::FloodKind,
        now: Instant,
    ) -> bool {
        let (rates, links) = (self.rates(), self.degree());
        let node_rate = self.config.stranger_budget;
        budget::link_of(&mut self.budgets, peer, &rates, now).take_stranger(
            kind,
            &mut self.strangers,
            node_rate,
            links,
            now,
        )
    }

    /// A proven origin (it signed or sealed what came): a contact, heard of just now. Not a
    /// reason to look at the shape again (origins come with much traffic; the periodic
    /// announce looks anyway), and not refreshed if known.
    pub(super) fn learn_origin(&mut self, origin: NodeId, now: Instant) {
        // Its own signed or sealed traffic: alive.
        self.gone.remove(&origin);
        if origin != self.id {
            self.contacts.seen(origin, now);
        }
    }

    /// Whether `id` is below [`crate::Config::id_difficulty`] (docs/protocol.md §4.7):
    /// then it is counted, and the caller ignores what it came with. Never with the
    /// puzzle off (no hash is computed).
    pub(super) fn below_difficulty(&mut self, id: &NodeId) -> bool {
        if mesh_proto::puzzle::meets(id, self.config.id_difficulty) {
            return false;
        }
        self.stats.ids_below_difficulty += 1;
        true
    }

    /// Seals `inner` for `to`: the encoded `Payload::Sealed` and its `seq`, or `None` if
    /// `to`'s key is not known.
    pub(super) fn seal_for(
        &mut self,
        to: NodeId,
        inner: &Payload,
        now: Instant,
    ) -> Result<Option<(Vec<u8>, u64)>, Error> {
        let Some(sealed) = self.seal(to, inner, now)? else {
            return Ok(None);
        };
        let seq = sealed.seq;
        Ok(Some((
            mesh_proto::encode_payload(&Payload::Sealed(sealed))?,
            seq,
        )))
    }

    /// Seals `inner` for `to` (remembering the seal's proof for unreachable reports), or
    /// `None` if `to`'s key is not known.
    fn seal(&mut self, to: NodeId, inner: &Payload, now: Instant) -> Result<Option<Sealed>, Error> {
        let plain = mesh_proto::encode_payload(inner)?;
        let Some(sealed) = self.keys.seal(&self.key, to, &plain, now) else {
            return Ok(None);
        };
        self.sent_proofs.insert(sealed.seq, sealed.proof(), now);
        Ok(Some(sealed))
    }

    /// Seals `inner` for `to` and sends it towards `to`. Returns the `seq` it went with, or
    /// `None` if `to`'s key is unknown or no neighbour leads there.
    pub(super) fn send_sealed(&mut self, to: NodeId, inner: &Payload, now: Instant) -> Option<u64> {
        let (bytes, seq) = self.seal_for(to, inner, now).ok().flatten()?;
        self.route_out(to, bytes, now).ok()?;
        Some(seq)
    }

    /// Seals `inner` for `to` and sends it two ways when it can: through the best first
    /// neighbour and again through another (`to` takes the first copy; its replay window
    /// refuses the second, the same seq). For a node's answer to a lookup for its own id
    /// (a key lookup): one relay that drops it without a word would otherwise hold up
    /// every message waiting for the key. Returns the `seq`, or `None` if `to`'s key is
    /// unknown or no neighbour leads there.
    pub(super) fn send_sealed_twice(
        &mut self,
        to: NodeId,
        inner: &Payload,
        now: Instant,
    ) -> Option<u64> {
        let (bytes, seq) = self.seal_for(to, inner, now).ok().flatten()?;
        let (hop, bytes) = self.route_out_avoiding(to, bytes, &[], now).ok()?;
        if hop != to {
            let _ = self.route_out_avoiding(to, bytes, &[hop], now);
        }
        Some(seq)
    }

    /// Whether a `Route` or `Transfer` that came on `session` carries what its `from`
    /// sealed: its payload is `Sealed` under a key that derives `from`. Every node checks
    /// this before it relays or opens one, so a neighbour that sends one that fails made it
    /// or changed it (an honest relay would have refused it): it loses its link, and
    /// nobody downstream learns a route from its claim.
    pub(super) fn origin_checks(
        &mut self,
        from: NodeId,
        payload: &[u8],
        session: mesh_proto::signal::SessionId,
        now: Instant,
    ) -> bool {
        match Sealed::origin_of(payload) {
            Some(origin) if origin == from => true,
            Some(_) => {
                self.stats.forged_origins += 1;
                self.drop_link(session, LinkDownReason::Forged("origin".into()), now);
                false
            }
            None => {
                self.stats.unsealed_refused += 1;
                self.drop_link(session, LinkDownReason::Forged("unsealed".into()), now);
                false
            }
        }
    }

    /// A sealed payload that came from `from` (the `from` of the frame that carried it).
    pub(super) fn on_sealed(
        &mut self,
        from: NodeId,
        sealed: Sealed,
        carrier: Carrier,
        flooded: bool,
        now: Instant,
    ) {
        if sealed.origin() != from {
            self.stats.forged_origins += 1;
            return;
        }
        if self.below_difficulty(&from) {
            return;
        }
        let (origin, plain, fresh) = match self.keys.open(&self.key, &sealed, now) {
            Ok(opened) => opened,
            Err(Refused::Replayed | Refused::OldEpoch) => {
                self.stats.replays_refused += 1;
                return;
            }
            Err(Refused::BadKey | Refused::BadSeal) => {
                self.stats.seal_failures += 1;
                return;
            }
        };
        if !fresh {
            self.stats.replays_refused += 1;
            // Taken before; its acknowledgement may have been lost: acknowledged again
            // (one sealed unicast, as the copy that came cost its sender one).
            if let Ok(Payload::Reliable(_)) = mesh_proto::decode_payload(&plain) {
                self.acknowledge(origin, sealed.seq, flooded, now);
            }
            return;
        }
        self.learn_origin(origin, now);
        self.key_learned(origin, now);
        let plain = mesh_proto::decode_payload(&plain);
        if flooded
            && !matches!(
                plain,
                Ok(Payload::Reliable(_) | Payload::Nodes { .. } | Payload::Ack { .. })
            )
        {
            // A flood carries a sealed reliable unicast or key answer only.
            self.stats.bad_payloads += 1;
            return;
        }
        match plain {
            Ok(Payload::App(data)) => {
                self.stats.messages_delivered += 1;
                self.outputs
                    .push_back(Output::Event(Event::Message { from: origin, data }));
            }
            Ok(Payload::Reliable(data)) => {
                self.stats.messages_delivered += 1;
                self.outputs
                    .push_back(Output::Event(Event::Message { from: origin, data }));
                self.acknowledge(origin, sealed.seq, flooded, now);
            }
            Ok(Payload::Ack { seq }) => {
                if self.reliable.acked(origin, seq) {
                    self.stats.reliable_acked += 1;
                }
            }
            Ok(Payload::Signal(signal)) if signal.from == origin => {
                self.on_signal(signal, carrier, now)
            }
            Ok(Payload::Nodes {
                target,
                lookup,
                peers,
            }) if carrier == Carrier::Mesh => {
                self.on_lookup_answer(origin, target, lookup, peers, now)
            }
            Ok(Payload::Unreachable { to, seq, proof }) if carrier == Carrier::Mesh => {
                self.on_unreachable(to, origin, seq, proof, now)
            }
            Ok(_) | Err(_) => self.stats.bad_payloads += 1,
        }
    }

    /// Acknowledges the reliable message `seq` from `origin`.
    /// A message that came as a flood (its routed tries were lost) is acknowledged by
    /// flood too: the way back is likely as broken as the way there.
    fn acknowledge(&mut self, origin: NodeId, seq: u64, flooded: bool, now: Instant) {
        let ack = Payload::Ack { seq };
        let sent = (flooded && self.flood_sealed(origin, &ack, now))
            || self.send_sealed(origin, &ack, now).is_some();
        if sent {
            self.stats.acks_sent += 1;
        }
    }

    /// Sends again the reliable messages not acknowledged in time, each through a first
    /// neighbour it has not been through (or, with none left, the best one); gives up on
    /// those sent [`crate::Config::reliable_resends`] times more.
    pub(super) fn resend_overdue(&mut self, now: Instant) {
        for (to, seq) in self.reliable.overdue(now) {
            if let Some(entry) = self.reliable.take(to, seq) {
                self.resend_reliable(to, seq, entry, now);
            }
        }
    }

    /// Sends reliable message `seq` to `to` once more, or gives it up.
    pub(super) fn resend_reliable(
        &mut self,
        to: NodeId,
        seq: u64,
        mut entry: crate::acks::Entry,
        now: Instant,
    ) {
        if entry.first_hops.len() > self.config.reliable_resends {
            self.stats.reliable_lost += 1;
            self.outputs
                .push_back(Output::Event(Event::Unreachable { to, at: self.id }));
            return;
        }
        if entry.first_hops.len() == self.config.reliable_resends
            && self.config.flood_fallback
            && self.flood_reliable(to, &entry.payload, now)
        {
            self.stats.reliable_resent += 1;
            self.stats.reliable_flooded += 1;
            entry.first_hops.push(self.id);
            entry.due = now + self.config.ack_timeout;
            self.reliable.keep(to, seq, entry);
            return;
        }
        let payload = std::mem::take(&mut entry.payload);
        let sent = match self.route_out_avoiding(to, payload.clone(), &entry.first_hops, now) {
            Ok(sent) => Ok(sent),
            // Every neighbour was tried: the best way again (a drop may not recur).
            Err(_) => self.route_out_avoiding(to, payload, &[], now),
        };
        let Ok((hop, payload)) = sent else {
            self.stats.reliable_lost += 1;
            self.outputs
                .push_back(Output::Event(Event::Unreachable { to, at: self.id }));
            return;
        };
        self.stats.reliable_resent += 1;
        entry.payload = payload;
        entry.first_hops.push(hop);
        entry.due = now + self.config.ack_timeout;
        self.reliable.keep(to, seq, entry);
    }

    /// Seals `inner` for `to` and sends it as a flood for `to` ([`Payload::Flooded`]);
    /// whether it went.
    fn flood_sealed(&mut self, to: NodeId, inner: &Payload, now: Instant) -> bool {
        match self.seal(to, inner, now) {
            Ok(Some(sealed)) => self
                .flood_payload(Payload::Flooded { to, sealed }, Some(to), now)
                .is_some(),
            _ => false,
        }
    }

    /// Sends the sealed reliable unicast `payload` (as the routed tries carried it, the
    /// same `seq`) to `to` as a flood for `to`; whether it went.
    fn flood_reliable(&mut self, to: NodeId, payload: &[u8], now: Instant) -> bool {
        let Ok(Payload::Sealed(sealed)) = mesh_proto::decode_payload(payload) else {
            return false;
        };
        self.flood_payload(Payload::Flooded { to, sealed }, Some(to), now)
            .is_some()
    }

    /// Floods `payload` (signed), straight to `to` alone if linked to it; its flood id, if
    /// it went.
    fn flood_payload(&mut self, payload: Payload, to: Option<NodeId>, now: Instant) -> Option<u64> {
        if !self.fallback_bucket.take(FALLBACK_BUDGET, now) {
            self.stats.fallbacks_over_budget += 1;
            return None;
        }
        let payload = mesh_proto::encode_payload(&payload).ok()?;
        let id = self.rng.random::<u64>();
        self.dedup.insert((self.id, id), (), now);
        let frame = authored::flood(&self.key, &self.config.room, id, self.config.ttl, payload);
        if let Some(session) = to.and_then(|to| self.live_link(&to)) {
            self.send_frame(session, &frame);
            return Some(id);
        }
        self.send_to_links(&frame, None)
            .is_ok_and(|n| n > 0)
            .then_some(id)
    }

    /// Checks records a neighbour sent (`Neighbours`, `Nodes`): their ids, or `None` if
    /// one fails (then the neighbour lied: an honest node passes on only records it
    /// verified, and the caller drops its link). A record of an id below the difficulty is
    /// skipped unverified, and only it (a neighbour may require less): counted, not learned.
    pub(super) fn verify_records(
        &mut self,
        records: &[NodeRecord],
        now: Instant,
    ) -> Option<Vec<NodeId>> {
        let mut ids = Vec::with_capacity(records.len());
        for record in records {
            if self.config.id_difficulty > 0
                && self.below_difficulty(&NodeId::from_public_key(&record.key))
            {
                continue;
            }
            match self.keys.learn_record(record, now) {
                Some(id) => {
                    ids.push(id);
                    self.key_learned(id, now);
                }
                None => {
                    self.stats.forged_records += 1;
                    return None;
                }
            }
        }
        Some(ids)
    }

    /// The records of `peers` this node holds (a peer whose record it lacks is left out).
    pub(super) fn records_of(&self, peers: &[NodeId], now: Instant) -> Vec<NodeRecord> {
        peers
            .iter()
            .filter_map(|p| self.keys.record_of(p, now))
            .collect()
    }

    /// A `Flood` from neighbour `peer`: verified, deduplicated, within its origin's
    /// budget, then forwarded and delivered.
    pub(super) fn on_flood(
        &mut self,
        peer: NodeId,
        session: mesh_proto::signal::SessionId,
        frame: Frame,
        now: Instant,
    ) {
        let Frame::Flood {
            key,
            id,
            ttl,
            payload,
            signature,
        } = frame
        else {
            return;
        };
        let origin = NodeId::from_public_key(&key);
        if origin == self.id || self.dedup.contains(&(origin, id), now) {
            self.stats.flood_duplicates += 1;
            return;
        }
        if self.below_difficulty(&origin) {
            return;
        }
        let decoded = mesh_proto::decode_payload(&payload);
        let kind = match decoded {
            Ok(Payload::App(_)) => budget::FloodKind::Broadcast,
            _ => budget::FloodKind::Fallback,
        };
        if !self.knows_of(&origin, now) && !self.stranger_within_budget(peer, kind, now) {
            // Not remembered: a copy through another neighbour may find a token.
            self.stats.floods_over_stranger_budget += 1;
            return;
        }
        let room = self.keys.room();
        if authored::verify_flood(room, &key, id, &payload, &signature).is_err() {
            self.stats.forged_floods += 1;
            self.drop_link(session, LinkDownReason::Forged("flood".into()), now);
            return;
        }
        // Remembered even if over budget: its copies are not verified again.
        self.dedup.insert((origin, id), (), now);
        let rate = self.config.origin_flood_budget;
        if !self.origin_floods.contains(&origin, now) {
            self.origin_floods
                .insert(origin, budget::Bucket::new(rate, now), now);
        }
        let within = self
            .origin_floods
            .get_mut(&origin, now)
            .is_some_and(|b| b.take(rate, now));
        if !within {
            self.stats.floods_over_origin_budget += 1;
            return;
        }
        self.keys.learn(origin, key, now);
        self.learn_route(origin, peer, now);
        self.learn_origin(origin, now);
        self.key_learned(origin, now);
        // The copy this node passes on, if it does.
        let onward = Frame::Flood {
            key,
            id,
            ttl: ttl.saturating_sub(1),
            payload,
            signature,
        };
        let data = match decoded {
            Ok(Payload::App(data)) => Some(data),
            Ok(Payload::Flooded { to, sealed }) if to == self.id => {
                // For us: not forwarded further.
                self.on_sealed(origin, sealed, Carrier::Mesh, true, now);
                return;
            }
            Ok(Payload::FindKey { target }) if target == self.id => {
                let answer = Payload::Nodes {
                    target,
                    lookup: id,
                    peers: vec![self.record],
                };
                if !self.flood_sealed(origin, &answer, now) {
                    self.send_sealed_twice(origin, &answer, now);
                }
                return;
            }
            Ok(Payload::Flooded { to, .. } | Payload::FindKey { target: to }) => {
                // For another node: a neighbour of it hands it to it alone.
                if let Some(session) = self.live_link(&to) {
                    self.stats.frames_relayed += 1;
                    self.send_frame(session, &onward);
                    return;
                }
                None
            }
            // Not for any application, but forwarded all the same (protocol.md §10.4).
            _ => {
                self.stats.bad_payloads += 1;
                None
            }
        };
        if ttl > 0
            && let Ok(n) = self.send_to_links(&onward, Some(peer))
        {
            self.stats.frames_relayed += n as u64;
        }
        if let Some(data) = data {
            self.stats.broadcasts_delivered += 1;
            self.outputs
                .push_back(Output::Event(Event::Broadcast { from: origin, data }));
        }
    }

    /// A `Lookup` from neighbour `peer`: verified and deduplicated, then forwarded or
    /// answered ([`Node::on_lookup`]).
    pub(super) fn on_lookup_frame(
        &mut self,
        peer: NodeId,
        session: mesh_proto::signal::SessionId,
        frame: Frame,
        now: Instant,
    ) {
        let Frame::Lookup {
            target,
            key,
            id,
            ttl,
            signature,
        } = frame
        else {
            return;
        };
        let origin = NodeId::from_public_key(&key);
        if origin == self.id
            || self.dedup.contains(&(origin, id), now)
            || self.below_difficulty(&origin)
        {
            return;
        }
        let room = self.keys.room();
        if authored::verify_lookup(room, &key, &target, id, &signature).is_err() {
            self.stats.forged_lookups += 1;
            self.drop_link(session, LinkDownReason::Forged("lookup".into()), now);
            return;
        }
        self.dedup.insert((origin, id), (), now);
        self.keys.learn(origin, key, now);
        self.learn_route(origin, peer, now);
        self.learn_origin(origin, now);
        self.key_learned(origin, now);
        let forward = Frame::Lookup {
            target,
            key,
            id,
            ttl: ttl.saturating_sub(1),
            signature,
        };
        self.on_lookup(target, origin, id, ttl, forward, now);
    }

    /// Sends a signed lookup of `target` to the neighbours `vias`; returns its id.
    pub(super) fn send_lookup(&mut self, target: NodeId, vias: &[NodeId], now: Instant) -> u64 {
        let id = self.rng.random::<u64>();
        self.dedup.insert((self.id, id), (), now);
        let frame = authored::lookup(&self.key, &self.config.room, target, id, self.config.ttl);
        for via in vias {
            if let Some(session) = self.links.get(via) {
                self.send_frame(session, &frame);
            }
        }
        id
    }

    /// Holds `message` (or a wish to link, with `None`) for `to` until its key is known,
    /// looking it up through the mesh. Returns false if nothing more can wait.
    pub(super) fn await_key(
        &mut self,
        to: NodeId,
        message: Option<(Vec<u8>, bool)>,
        now: Instant,
    ) -> bool {
        if !self.awaiting.contains_key(&to) {
            if self.awaiting.len() >= MAX_AWAITED || self.degree() == 0 {
                return false;
            }
            self.awaiting.insert(
                to,
                Awaiting {
                    lookups: Vec::new(),
                    tried: Vec::new(),
                    without: 0,
                    retry: now,
                    until: now + self.config.session_timeout.min(KEY_WAIT),
                    messages: Vec::new(),
                    connect: false,
                    rounds: 0,
                },
            );
            self.stats.key_lookups += 1;
            self.key_lookup_round(to, now);
        }
        let Some(a) = self.awaiting.get_mut(&to) else {
            return false;
        };
        match message {
            Some(m) if a.messages.len() < MAX_AWAITED_MESSAGES => a.messages.push(m),
            Some(_) => return false,
            None => a.connect = true,
        }
        true
    }

    /// Sends a round of key lookups for `to`: one to each of `key_lookup_paths` first
    /// neighbours, those leading closest to `to` first among the ones not tried yet (all
    /// tried: the best again). Each has its own id, so the node that answers one sends its
    /// answer back the way that one came (relays route towards an origin through the
    /// neighbour its last frame came from): a relay that drops one path's answer holds up
    /// only that path.
    fn key_lookup_round(&mut self, to: NodeId, now: Instant) {
        let mut hops: Vec<(mesh_proto::Distance, NodeId)> = self
            .live_links()
            .map(|(n, _)| (self.reach(n, to, &[self.id]).0, *n))
            .collect();
        hops.sort_unstable();
        let paths = self.config.key_lookup_paths;
        let Some(a) = self.awaiting.get_mut(&to) else {
            return;
        };
        a.retry = now + self.config.ack_timeout;
        a.rounds += 1;
        let by_flood = a.rounds >= 3 && a.rounds % 2 == 1;
        if by_flood && !a.messages.is_empty() && self.config.flood_fallback {
            // Two rounds of routed lookups went unanswered: ask `to` itself, by flood, every
            // other round (with the default timers, at 2 s and 4 s of the 5 s wait).
            if let Some(id) = self.flood_payload(Payload::FindKey { target: to }, Some(to), now) {
                self.stats.key_floods += 1;
                if let Some(a) = self.awaiting.get_mut(&to) {
                    a.lookups.push(id);
                }
                return;
            }
        }
        let Some(a) = self.awaiting.get_mut(&to) else {
            return;
        };
        let mut vias: Vec<NodeId> = hops
            .iter()
            .map(|(_, n)| *n)
            .filter(|n| !a.tried.contains(n))
            .take(paths)
            .collect();
        if vias.is_empty() {
            vias = hops.iter().map(|(_, n)| *n).take(paths).collect();
        }
        for via in vias {
            let id = self.send_lookup(to, &[via], now);
            let Some(a) = self.awaiting.get_mut(&to) else {
                return;
            };
            a.lookups.push(id);
            if !a.tried.contains(&via) {
                a.tried.push(via);
            }
        }
    }

    /// An answer to one of `target`'s key lookups came without its record.
    pub(super) fn key_not_in_answer(&mut self, target: NodeId, now: Instant) {
        let paths = self.config.key_lookup_paths;
        let Some(a) = self.awaiting.get_mut(&target) else {
            return;
        };
        a.without += 1;
        // A wish to link gives up once a round's answers all said so. Messages wait for
        // the deadline: with a relay dropping what goes through it, a lookup can end short
        // of the target, at a node that does not know it, however many paths say so.
        if a.messages.is_empty() && a.without >= paths.min(a.lookups.len()) {
            self.give_up_key(target, now);
        }
    }

    /// Whether `lookup` is one of the key lookups for `target`.
    pub(super) fn is_key_lookup(&self, target: &NodeId, lookup: u64) -> bool {
        self.awaiting
            .get(target)
            .is_some_and(|a| a.lookups.contains(&lookup))
    }

    /// `id`'s key is known now: what waited for it goes.
    pub(super) fn key_learned(&mut self, id: NodeId, now: Instant) {
        let Some(a) = self.awaiting.remove(&id) else {
            return;
        };
        for (data, reliable) in a.messages {
            if self.send_now(id, data, reliable, now).is_err() {
                self.stats.sends_unresolved += 1;
                self.outputs.push_back(Output::Event(Event::Unreachable {
                    to: id,
                    at: self.id,
                }));
            }
        }
        if a.connect {
            if !self.keys.confirmed(&id, now) || !self.seen_lately(&id, now) {
                // Only a record someone passed on, or word of it from a while ago: the
                // node itself must answer first.
                self.awaiting.insert(
                    id,
                    Awaiting {
                        messages: Vec::new(),
                        ..a
                    },
                );
                return;
            }
            if self.is_eligible(&id, now) {
                self.learn_peers(&[id], now);
                self.start_session(id, Carrier::Mesh, now);
            }
        }
    }

    /// Gives up on the keys not learned in time (their messages are reported unreachable),
    /// and sends another round of lookups for messages whose answers are late (a wish to
    /// link has one round: the topology has other peers to try).
    pub(super) fn expire_awaiting(&mut self, now: Instant) {
        let late: Vec<NodeId> = self
            .awaiting
            .iter()
            .filter(|(_, a)| now >= a.until)
            .map(|(id, _)| *id)
            .collect();
        for to in late {
            self.give_up_key(to, now);
        }
        let again: Vec<NodeId> = self
            .awaiting
            .iter()
            .filter(|(_, a)| now >= a.retry && !a.messages.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for to in again {
            self.key_lookup_round(to, now);
        }
    }

    /// Gives up on `to`'s key: what waited for it is reported unreachable.
    pub(super) fn give_up_key(&mut self, to: NodeId, now: Instant) {
        let Some(a) = self.awaiting.remove(&to) else {
            return;
        };
        if a.connect {
            // Nobody answered for it: not a contact, and not tried again for
            // `retry_backoff`, as after a session that failed (records others pass on, the
            // answers to these very lookups among them, bring it straight back).
            self.stats.connects_unresolved += 1;
            self.contacts.remove(&to);
            self.back_off(to, now);
        }
        if !a.messages.is_empty() {
            self.stats.sends_unresolved += a.messages.len() as u64;
            self.outputs
                .push_back(Output::Event(Event::Unreachable { to, at: self.id }));
        }
    }
}

/// How long a message waits for its destination's key at most.
pub(crate) const KEY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
