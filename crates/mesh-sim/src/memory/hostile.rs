//! Hostile nodes (`--hostile FRACTION --attack KIND`): a share of the initial nodes, chosen
//! from the seed, that run the honest core while the simulator rewrites, drops or adds
//! what they send on their links (the emulator's `World::on_link_frame` sees every link
//! frame; `Emulator::inject_link` adds one). What each attack does:
//!
//! | attack | on the hostile node's links |
//! |---|---|
//! | forge | every `Route`/`Transfer` it sends claims another honest node as `from` (its own unicasts, which carry [`FORGED_MARK`], also put that node's key in the seal); a flood it relays gets a forged payload with the origin's signature kept, or is re-signed by its own key with the origin's key kept, in turn; its own broadcasts ([`FORGED_MARK`]) claim an honest node's key under its own signature |
//! | drop | every unicast it relays vanishes: a `Route`/`Transfer` whose `from` is not its own, and a flood for one node of another origin (`Flooded`, `FindKey`: [`crate::attack::dropped`]) |
//! | flood | from the traffic's start, [`crate::attack::SPAM_RATE`] floods a second, each signed by a fresh key (a made-up node, valid signature) and sent on all its links, up to `Hostile::spam` |
//! | poison | the records of every `Neighbours` it sends (its own first, kept) become [`POISON_RECORDS`] records of fresh keys: valid for the room, or, every fourth frame, signed for another room |
//! | mixed | the hostile nodes in turn: forge, drop, flood, poison |
//!
//! Churn replacements are honest. What an attack costs the honest nodes is measured in
//! `measure.rs` (report field `attack`).

use bytes::Bytes;
use mesh_proto::identity::Keypair;
use mesh_proto::signal::Payload;
use mesh_proto::{Frame, NodeId, NodeRecord, RoomName, authored};

use super::attackers::POISON_RECORDS;
use super::records::{FORGED_MARK, SPAM_MARK, app_data};
use super::world::{Emu, Sim, derive};
use crate::AttackKind;

impl Sim<'_> {
    /// Hostile node `i` (attack `kind`) sends `bytes` on a link to `j`: rewritten in place,
    /// or dropped (false).
    pub(super) fn hostile_frame(
        &mut self,
        i: u32,
        j: u32,
        kind: AttackKind,
        bytes: &mut Bytes,
    ) -> bool {
        let tag = bytes.get(1).copied();
        let relevant = match kind {
            AttackKind::Forge => matches!(tag, Some(4 | 10 | 11)),
            AttackKind::Drop => matches!(tag, Some(4 | 10 | 11)),
            AttackKind::Poison => tag == Some(13),
            AttackKind::Flood | AttackKind::Mixed => false,
        };
        if !relevant {
            return true;
        }
        let me = self.slots[i as usize].id;
        if kind == AttackKind::Drop {
            let dropped = crate::attack::dropped(bytes, me);
            self.hostile.frames_dropped += u64::from(dropped);
            return !dropped;
        }
        let Ok(frame) = mesh_proto::decode(bytes) else {
            return true;
        };
        let rewritten = match (kind, frame) {
            (AttackKind::Forge, frame) => self.forge(i, j, frame),
            (AttackKind::Poison, Frame::Neighbours { peers }) => Some(self.poison(i, peers)),
            _ => None,
        };
        if let Some(frame) = rewritten
            && let Ok(encoded) = mesh_proto::encode(&frame)
        {
            self.hostile.frames_rewritten += 1;
            *bytes = Bytes::from(encoded);
        }
        true
    }

    /// An honest node other than `not`: the one a forgery claims.
    fn claim(&mut self, not: &[NodeId]) -> Option<NodeId> {
        // The honest initial nodes that have started (in slot order).
        let started = self.slots.len() as u32;
        let honest = &self.hostile.honest;
        let honest = &honest[..honest.partition_point(|k| *k < started)];
        for _ in 0..honest.len().min(8) {
            self.hostile.turn += 1;
            let k = honest[(self.hostile.turn % honest.len() as u64) as usize];
            let id = self.slots[k as usize].id;
            if !not.contains(&id) {
                return Some(id);
            }
        }
        None
    }

    /// The forged version of `frame`, which hostile node `i` sends to `j`.
    fn forge(&mut self, i: u32, j: u32, frame: Frame) -> Option<Frame> {
        let me = self.slots[i as usize].id;
        let receiver = self.slots[j as usize].id;
        let room = self.rooms[self.slots[i as usize].room as usize].clone();
        match frame {
            Frame::Route {
                to,
                from,
                ttl,
                steering,
                payload,
            } => {
                let claimed = self.claim(&[from, to, me])?;
                let payload = self.claim_seal(me, from, claimed, payload);
                Some(Frame::Route {
                    to,
                    from: claimed,
                    ttl,
                    steering,
                    payload,
                })
            }
            Frame::Transfer { from, payload } => {
                let claimed = self.claim(&[from, receiver, me])?;
                let payload = self.claim_seal(me, from, claimed, payload);
                Some(Frame::Transfer {
                    from: claimed,
                    payload,
                })
            }
            Frame::Flood {
                key,
                id,
                ttl,
                payload,
                signature,
            } => {
                let own = self.keys.get(&me)?.public();
                let forged =
                    mesh_proto::encode_payload(&Payload::App(app_data(FORGED_MARK, u64::from(i))))
                        .ok()?;
                self.hostile.turn += 1;
                let (key, payload, signature) = if key == own {
                    // Its own broadcast (already marked forged) claims an honest key.
                    let claimed = self.claim(&[me])?;
                    let claimed_key = self.keys.get(&claimed)?.public();
                    let sig = self.keys[&me].sign(&authored::flood_message(&room, id, &payload));
                    (claimed_key, payload, sig)
                } else if self.hostile.turn.is_multiple_of(2) {
                    // The origin's signature over another payload.
                    (key, forged, signature)
                } else {
                    // Re-signed by its own key, under the origin's key.
                    let sig = self.keys[&me].sign(&authored::flood_message(&room, id, &forged));
                    (key, forged, sig)
                };
                Some(Frame::Flood {
                    key,
                    id,
                    ttl,
                    payload,
                    signature,
                })
            }
            _ => None,
        }
    }

    /// A unicast `payload` of hostile node `me` (`from` is its own) whose seal claims
    /// `claimed`'s key; another's payload unchanged (a relay cannot open it).
    fn claim_seal(&self, me: NodeId, from: NodeId, claimed: NodeId, payload: Vec<u8>) -> Vec<u8> {
        if from != me {
            return payload;
        }
        let Some(claimed_key) = self.keys.get(&claimed).map(Keypair::public) else {
            return payload;
        };
        match mesh_proto::decode_payload(&payload) {
            Ok(Payload::Sealed(mut sealed)) => {
                sealed.key = claimed_key;
                mesh_proto::encode_payload(&Payload::Sealed(sealed)).unwrap_or(payload)
            }
            _ => payload,
        }
    }

    /// The records of a `Neighbours` frame of hostile node `i`: its own (the first) kept,
    /// the rest made-up.
    fn poison(&mut self, i: u32, peers: Vec<NodeRecord>) -> Frame {
        let room = self.rooms[self.slots[i as usize].room as usize].clone();
        self.hostile.poisoned += 1;
        let elsewhere = self.hostile.poisoned.is_multiple_of(4);
        let signed_for = if elsewhere {
            RoomName::try_from("elsewhere".to_owned()).expect("a valid room name")
        } else {
            room
        };
        let mut records: Vec<NodeRecord> = peers.into_iter().take(1).collect();
        for _ in 0..POISON_RECORDS {
            let key = self.hostile.mint(self.scenario.seed);
            records.push(NodeRecord::sign(&key, &signed_for));
        }
        Frame::Neighbours { peers: records }
    }

    /// Each flooding hostile node injects one flood of a made-up node on all its links.
    pub(super) fn spam(&mut self, emu: &mut Emu) {
        let ttl = self.config.ttl;
        for k in 0..self.hostile.spam_left.len() {
            let (h, left) = self.hostile.spam_left[k];
            if left == 0 {
                continue;
            }
            let Some(node) = self.slots[h as usize].node.as_ref() else {
                continue;
            };
            let sessions: Vec<_> = node
                .neighbours()
                .into_iter()
                .filter_map(|p| node.link_session(p))
                .collect();
            if sessions.is_empty() {
                continue;
            }
            self.hostile.spam_left[k].1 -= 1;
            let room = self.rooms[self.slots[h as usize].room as usize].clone();
            let key = self.hostile.mint(self.scenario.seed);
            let data = app_data(SPAM_MARK, self.hostile.spam_sent);
            self.hostile.spam_sent += 1;
            let Ok(payload) = mesh_proto::encode_payload(&Payload::App(data)) else {
                continue;
            };
            let id = derive(self.scenario.seed, 1 << 41, self.hostile.spam_sent);
            let frame = authored::flood(&key, &room, id, ttl, payload);
            let Ok(bytes) = mesh_proto::encode(&frame) else {
                continue;
            };
            let bytes = Bytes::from(bytes);
            for session in sessions {
                emu.inject_link(h, session, bytes.clone());
            }
        }
    }

    /// Whether a flooding hostile node still has floods to inject.
    pub(super) fn spam_pending(&self) -> bool {
        self.hostile.spam_left.iter().any(|(_, left)| *left > 0)
    }
}
