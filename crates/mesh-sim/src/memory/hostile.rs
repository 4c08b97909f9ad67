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
//! | poison | the records of every `Neighbours` it sends (its own first, kept) become [`crate::attack::POISON_RECORDS`] records of fresh keys: valid for the room, or, every fourth frame, signed for another room |
//! | mixed | the hostile nodes in turn: forge, drop, flood, poison |
//!
//! Churn replacements are honest. What an attack costs the honest nodes is measured in
//! `measure.rs` (report field `attack`).

use bytes::Bytes;
use mesh_proto::identity::{Keypair, PublicKey};
use mesh_proto::signal::Payload;
use mesh_proto::{Frame, NodeId, NodeRecord, authored};

use super::records::{FORGED_MARK, SPAM_MARK, app_data};
use super::world::{Emu, Sim, Slot, derive};
use crate::AttackKind;
use crate::attack::{Forger, Roster};

/// The honest initial nodes that have started, by slot: whom a forgery claims.
struct Started<'a> {
    honest: &'a [u32],
    slots: &'a [Slot],
    keys: &'a mesh_emu::FastMap<NodeId, Keypair>,
}

impl Roster for Started<'_> {
    fn len(&self) -> usize {
        self.honest.len()
    }

    fn get(&self, k: usize) -> Option<(NodeId, PublicKey)> {
        let id = self.slots[*self.honest.get(k)? as usize].id;
        Some((id, self.keys.get(&id)?.public()))
    }
}

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
        if !crate::attack::concerns(kind, bytes) {
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

    /// The forged version of `frame`, which hostile node `i` sends to `j`
    /// ([`crate::attack::Forger`]).
    fn forge(&mut self, i: u32, j: u32, frame: Frame) -> Option<Frame> {
        let me = self.keys.get(&self.slots[i as usize].id)?;
        let receiver = self.slots[j as usize].id;
        let room = &self.rooms[self.slots[i as usize].room as usize];
        // The honest initial nodes that have started (in slot order).
        let started = self.slots.len() as u32;
        let honest = &self.hostile.honest;
        let roster = Started {
            honest: &honest[..honest.partition_point(|k| *k < started)],
            slots: &self.slots,
            keys: &self.keys,
        };
        let mut forger = Forger {
            me,
            room,
            turn: &mut self.hostile.turn,
        };
        forger.forge(frame, receiver, &roster, || {
            app_data(FORGED_MARK, u64::from(i))
        })
    }

    /// The records of a `Neighbours` frame of hostile node `i`: its own (the first) kept,
    /// the rest made-up ([`crate::attack::poison`]).
    fn poison(&mut self, i: u32, peers: Vec<NodeRecord>) -> Frame {
        let room = self.rooms[self.slots[i as usize].room as usize].clone();
        self.hostile.poisoned += 1;
        let seed = self.scenario.seed;
        crate::attack::poison(peers, &room, self.hostile.poisoned, || {
            self.hostile.mint(seed)
        })
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
