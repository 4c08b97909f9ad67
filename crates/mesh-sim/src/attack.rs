//! What both transports share about hostile nodes: which initial nodes are hostile (from
//! the seed, the same on either transport), the dropper's rule and the flooders' rate (the
//! two attacks the webrtc transport runs as well as the memory one).

use mesh_proto::{Frame, NodeId};

use crate::memory::derive;
use crate::{AttackKind, Scenario};

/// Floods a second each flooding hostile node injects.
pub const SPAM_RATE: f64 = 500.0;

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

/// Whether a dropper (`--attack drop`) with id `me` drops the link frame `bytes`: every
/// unicast it relays, whatever carries it: a `Route` or `Transfer`, and a `Flood` for one
/// node (its payload a `Flooded` or a `FindKey`, the flood that takes over where routing
/// failed, protocol.md §10.4). Its own go out; so do broadcasts (`App` floods).
pub(crate) fn dropped(bytes: &[u8], me: NodeId) -> bool {
    // Byte 1 is the frame's tag (protocol.md §3): only these three are decoded.
    if !matches!(bytes.get(1), Some(4 | 10 | 11)) {
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
