//! What both transports share about hostile nodes: which initial nodes are hostile (from
//! the seed, the same on either transport), the flooders' rate, and what each attack does
//! to a frame its node sends: the dropper's rule ([`dropped`]), the forger's rewriting
//! ([`Forger`]) and the poisoner's ([`poison`]). Each transport applies them where it sees
//! a hostile node's frames (the emulator's link hook; a wrapping webrtc transport).

use mesh_proto::identity::{Keypair, PublicKey};
use mesh_proto::signal::Payload;
use mesh_proto::{Frame, NodeId, NodeRecord, RoomName, authored};

use crate::memory::derive;
use crate::{AttackKind, Scenario};

/// Floods a second each flooding hostile node injects.
pub const SPAM_RATE: f64 = 500.0;

/// Made-up records in a poisoned `Neighbours` frame.
pub const POISON_RECORDS: usize = 8;

/// The attack of each initial node that is hostile (by index; `None`: honest), chosen
/// from the scenario's seed. `mixed` gives forge, drop, flood and poison in turn.
pub(crate) fn initial(scenario: &Scenario) -> Vec<Option<AttackKind>> {
    let n = scenario.nodes;
    let mut initial = vec![None; n];
    let Some(h) = scenario.hostile else {
        return initial;
    };
    let count = ((h.fraction.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
    let mut rng =
        <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(derive(scenario.seed, 0, 4));
    let mut chosen = rand::seq::index::sample(&mut rng, n, count).into_vec();
    chosen.sort_unstable();
    for (k, i) in chosen.iter().enumerate() {
        initial[*i] = Some(match h.attack {
            AttackKind::Mixed => [
                AttackKind::Forge,
                AttackKind::Drop,
                AttackKind::Flood,
                AttackKind::Poison,
            ][k % 4],
            kind => kind,
        });
    }
    initial
}

/// Whether attack `kind` can touch the link frame `bytes`, by its tag alone (byte 1,
/// protocol.md §3): droppers and forgers `Route`, `Transfer` and `Flood` (4, 10, 11),
/// poisoners `Neighbours` (13); flooders add frames of their own and touch none. The
/// frames it cannot touch go out without being decoded.
pub(crate) fn concerns(kind: AttackKind, bytes: &[u8]) -> bool {
    let tag = bytes.get(1).copied();
    match kind {
        AttackKind::Drop | AttackKind::Forge => matches!(tag, Some(4 | 10 | 11)),
        AttackKind::Poison => tag == Some(13),
        AttackKind::Flood | AttackKind::Mixed => false,
    }
}

/// Whether a dropper (`--attack drop`) with id `me` drops the link frame `bytes`: every
/// unicast it relays, whatever carries it: a `Route` or `Transfer`, and a `Flood` for one
/// node (its payload a `Flooded` or a `FindKey`, the flood that takes over where routing
/// failed, protocol.md §10.4). Its own go out; so do broadcasts (`App` floods).
pub(crate) fn dropped(bytes: &[u8], me: NodeId) -> bool {
    if !concerns(AttackKind::Drop, bytes) {
        return false;
    }
    match mesh_proto::decode(bytes) {
        Ok(Frame::Route { from, .. } | Frame::Transfer { from, .. }) => from != me,
        // The payload's first byte is its tag (protocol.md §9.2).
        Ok(Frame::Flood { key, payload, .. }) => {
            matches!(payload.first(), Some(7 | 8)) && NodeId::from_public_key(&key) != me
        }
        _ => false,
    }
}

/// The honest nodes a forgery may claim to come from, in a fixed order (the honest initial
/// nodes that have started).
pub(crate) trait Roster {
    /// How many.
    fn len(&self) -> usize;
    /// The `k`-th (`k < len`): its id and key.
    fn get(&self, k: usize) -> Option<(NodeId, PublicKey)>;
}

impl Roster for [(NodeId, PublicKey)] {
    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn get(&self, k: usize) -> Option<(NodeId, PublicKey)> {
        <[_]>::get(self, k).copied()
    }
}

/// A forger (`--attack forge`): what it rewrites in a frame it sends.
///
/// - every `Route`/`Transfer` claims another honest node as `from`; in its own unicasts
///   the seal claims that node's key too (a relay cannot open another's seal);
/// - a flood it relays gets a forged payload, with the origin's signature kept or re-signed
///   by its own key under the origin's key, in turn;
/// - its own broadcasts claim an honest node's key under its own signature.
pub(crate) struct Forger<'a> {
    /// The forger's own key.
    pub me: &'a Keypair,
    /// Its room (what flood signatures cover).
    pub room: &'a RoomName,
    /// Whose turn it is (which honest node is claimed, which flood forgery): advanced by
    /// every forgery.
    pub turn: &'a mut u64,
}

impl Forger<'_> {
    /// The forged version of `frame`, sent to `receiver`, claiming a node of `roster`;
    /// `forged` makes the application bytes a relayed flood is given. `None`: sent as it is.
    pub(crate) fn forge(
        &mut self,
        frame: Frame,
        receiver: NodeId,
        roster: &(impl Roster + ?Sized),
        forged: impl FnOnce() -> Vec<u8>,
    ) -> Option<Frame> {
        let me = self.me.node_id();
        match frame {
            Frame::Route {
                to,
                from,
                ttl,
                steering,
                payload,
            } => {
                let (claimed, key) = self.claim(roster, &[from, to, me])?;
                Some(Frame::Route {
                    to,
                    from: claimed,
                    ttl,
                    steering,
                    payload: self.claim_seal(from, key, payload),
                })
            }
            Frame::Transfer { from, payload } => {
                let (claimed, key) = self.claim(roster, &[from, receiver, me])?;
                Some(Frame::Transfer {
                    from: claimed,
                    payload: self.claim_seal(from, key, payload),
                })
            }
            Frame::Flood {
                key,
                id,
                ttl,
                payload,
                signature,
            } => {
                let forged = mesh_proto::encode_payload(&Payload::App(forged())).ok()?;
                *self.turn += 1;
                let (key, payload, signature) = if key == self.me.public() {
                    // Its own broadcast claims an honest key.
                    let (_, claimed) = self.claim(roster, &[me])?;
                    let sig = self
                        .me
                        .sign(&authored::flood_message(self.room, id, &payload));
                    (claimed, payload, sig)
                } else if self.turn.is_multiple_of(2) {
                    // The origin's signature over another payload.
                    (key, forged, signature)
                } else {
                    // Re-signed by its own key, under the origin's key.
                    let sig = self
                        .me
                        .sign(&authored::flood_message(self.room, id, &forged));
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

    /// The next honest node of `roster` (in turn) that is none of `not`; up to 8 tries.
    fn claim(
        &mut self,
        roster: &(impl Roster + ?Sized),
        not: &[NodeId],
    ) -> Option<(NodeId, PublicKey)> {
        let n = roster.len();
        for _ in 0..n.min(8) {
            *self.turn += 1;
            let (id, key) = roster.get((*self.turn % n as u64) as usize)?;
            if !not.contains(&id) {
                return Some((id, key));
            }
        }
        None
    }

    /// A unicast `payload` from `from`: if it is the forger's own, its seal claims
    /// `claimed`; another's unchanged.
    fn claim_seal(&self, from: NodeId, claimed: PublicKey, payload: Vec<u8>) -> Vec<u8> {
        if from != self.me.node_id() {
            return payload;
        }
        match mesh_proto::decode_payload(&payload) {
            Ok(Payload::Sealed(mut sealed)) => {
                sealed.key = claimed;
                mesh_proto::encode_payload(&Payload::Sealed(sealed)).unwrap_or(payload)
            }
            _ => payload,
        }
    }
}

/// A poisoner's (`--attack poison`) `Neighbours` frame, its `n`-th: the first record (its
/// own) kept, then [`POISON_RECORDS`] records of keys from `mint` (made-up nodes), signed
/// for `room`, or, every fourth frame, for another room.
pub(crate) fn poison(
    peers: Vec<NodeRecord>,
    room: &RoomName,
    n: u64,
    mut mint: impl FnMut() -> Keypair,
) -> Frame {
    let elsewhere;
    let signed_for = if n.is_multiple_of(4) {
        elsewhere = RoomName::try_from("elsewhere".to_owned()).expect("a valid room name");
        &elsewhere
    } else {
        room
    };
    let mut records: Vec<NodeRecord> = peers.into_iter().take(1).collect();
    for _ in 0..POISON_RECORDS {
        records.push(NodeRecord::sign(&mint(), signed_for));
    }
    Frame::Neighbours { peers: records }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hostile;
    use mesh_proto::identity::Keypair;

    #[test]
    fn the_hostile_nodes_are_the_seeds_and_mixed_takes_turns() {
        let scenario = |seed, attack| Scenario {
            nodes: 40,
            seed,
            hostile: Some(Hostile {
                fraction: 0.2,
                attack,
                spam: 0,
            }),
            ..Scenario::default()
        };
        let a = initial(&scenario(1, AttackKind::Drop));
        assert_eq!(a.iter().flatten().count(), 8);
        assert_eq!(a, initial(&scenario(1, AttackKind::Drop)));
        assert_ne!(a, initial(&scenario(2, AttackKind::Drop)));
        let mixed: Vec<_> = initial(&scenario(1, AttackKind::Mixed))
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(
            &mixed[..4],
            [
                AttackKind::Forge,
                AttackKind::Drop,
                AttackKind::Flood,
                AttackKind::Poison
            ]
        );
        assert!(initial(&Scenario::default()).iter().all(Option::is_none));
    }

    #[test]
    fn each_attack_touches_only_the_frames_of_its_kind() {
        let frame = |tag: u8| [1, tag, 0, 0];
        for tag in [4, 10, 11] {
            assert!(concerns(AttackKind::Drop, &frame(tag)));
            assert!(concerns(AttackKind::Forge, &frame(tag)));
            assert!(!concerns(AttackKind::Poison, &frame(tag)));
        }
        assert!(concerns(AttackKind::Poison, &frame(13)));
        assert!(!concerns(AttackKind::Forge, &frame(13)));
        assert!(!concerns(AttackKind::Flood, &frame(11)));
        assert!(!concerns(AttackKind::Drop, &[1]), "too short to have a tag");
    }

    #[test]
    fn a_dropper_drops_what_it_relays_and_sends_its_own() {
        let me = Keypair::from_seed([1; 32]).node_id();
        let other = Keypair::from_seed([2; 32]).node_id();
        let transfer = |from| {
            mesh_proto::encode(&Frame::Transfer {
                from,
                payload: vec![1, 2, 3],
            })
            .expect("encodes")
        };
        assert!(dropped(&transfer(other), me));
        assert!(!dropped(&transfer(me), me));
        let route = |from| {
            mesh_proto::encode(&Frame::Route {
                to: me,
                from,
                ttl: 9,
                steering: mesh_proto::Steering::Greedy,
                payload: vec![7],
            })
            .expect("encodes")
        };
        assert!(dropped(&route(other), me));
        assert!(!dropped(&route(me), me));
        let flood = |key: &Keypair, payload: &mesh_proto::signal::Payload| {
            let payload = mesh_proto::encode_payload(payload).expect("encodes");
            mesh_proto::encode(&mesh_proto::authored::flood(
                key,
                &mesh_proto::RoomName::default(),
                1,
                9,
                payload,
            ))
            .expect("encodes")
        };
        let (my_key, other_key) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let find = mesh_proto::signal::Payload::FindKey { target: me };
        assert!(
            dropped(&flood(&other_key, &find), me),
            "a flood for one node"
        );
        assert!(!dropped(&flood(&my_key, &find), me), "its own");
        let broadcast = mesh_proto::signal::Payload::App(vec![1]);
        assert!(!dropped(&flood(&other_key, &broadcast), me), "a broadcast");
        let other_frame = mesh_proto::encode(&Frame::GetNeighbours).expect("encodes");
        assert!(!dropped(&other_frame, me));
        assert!(!dropped(&[], me));
        assert!(
            !dropped(&[1, 4, 0xff], me),
            "undecodable: not ours to judge"
        );
    }
}
