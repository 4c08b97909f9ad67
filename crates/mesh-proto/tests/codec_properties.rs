//! Property tests of the one codec: every frame round-trips, and no input panics `decode`.

use mesh_proto::identity::{PublicKey, Signature};
use mesh_proto::{
    ErrorCode, Frame, Limits, NodeId, RoomName, Steering, decode, decode_with_limit, encode,
};
use proptest::prelude::*;

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 16]>().prop_map(NodeId::from_bytes)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048)
}

fn room() -> impl Strategy<Value = RoomName> {
    "[^\\p{Cc}]{1,16}".prop_filter_map("fits a room name", |s| s.parse().ok())
}

/// The frames of a DataChannel link.
fn mesh_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (node_id(), node_id(), any::<u8>(), 0..4u8, payload()).prop_map(
            |(to, from, ttl, steering, payload)| Frame::Route {
                to,
                from,
                ttl,
                steering: [
                    Steering::Learned,
                    Steering::Greedy,
                    Steering::Return,
                    Steering::Last,
                ][usize::from(steering)],
                payload,
            }
        ),
        (node_id(), any::<u64>(), any::<u8>(), payload()).prop_map(|(from, id, ttl, payload)| {
            Frame::Flood {
                from,
                id,
                ttl,
                payload,
            }
        }),
        Just(Frame::GetNeighbours),
        prop::collection::vec(node_id(), 0..30).prop_map(|peers| Frame::Neighbours { peers }),
        node_id().prop_map(|target| Frame::FindNodes { target }),
        (node_id(), prop::collection::vec(node_id(), 0..20))
            .prop_map(|(target, peers)| Frame::Nodes { target, peers }),
        Just(Frame::Closing),
        (node_id(), node_id(), any::<u8>()).prop_map(|(target, from, ttl)| Frame::Lookup {
            target,
            from,
            ttl
        }),
        prop::collection::vec((node_id(), "wss?://[a-z0-9.:/-]{1,40}"), 0..10).prop_map(|doors| {
            Frame::Doors {
                doors: doors
                    .into_iter()
                    .map(|(node, url)| mesh_proto::Door {
                        node,
                        url: url.parse().unwrap(),
                    })
                    .collect(),
            }
        }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![bootstrap_frame(), mesh_frame()]
}

/// The frames of the bootstrap WebSocket.
fn bootstrap_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<[u8; 32]>(), any::<[u32; 4]>()).prop_map(|(nonce, l)| Frame::Challenge {
            nonce,
            limits: Limits {
                max_frame_size: l[0],
                max_payload_size: l[1],
                frames_per_second: l[2],
                frame_burst: l[3],
            },
        }),
        (
            any::<[u8; 32]>(),
            node_id(),
            room(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>()
        )
            .prop_map(|(pk, node_id, room, s1, s2)| {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&s1);
                sig[32..].copy_from_slice(&s2);
                Frame::Register {
                    public_key: PublicKey::from_bytes(pk),
                    node_id,
                    room,
                    signature: Signature::from_bytes(sig),
                }
            }),
        (
            node_id(),
            prop::collection::vec(node_id(), 0..40),
            any::<Option<u16>>()
        )
            .prop_map(|(node_id, peers, stun_port)| Frame::Welcome {
                node_id,
                peers,
                stun_port
            }),
        (node_id(), payload()).prop_map(|(to, payload)| Frame::Unicast { to, payload }),
        (node_id(), payload()).prop_map(|(from, payload)| Frame::Transfer { from, payload }),
        payload().prop_map(|payload| Frame::Broadcast { payload }),
        (node_id(), payload())
            .prop_map(|(from, payload)| Frame::TransferBroadcast { from, payload }),
        any::<u16>().prop_map(|max| Frame::GetPeers { max }),
        prop::collection::vec(node_id(), 0..40).prop_map(|peers| Frame::Peers { peers }),
        (any::<u16>(), prop::option::of(node_id()), ".{0,64}").prop_map(
            |(code, target, message)| Frame::Error {
                code: ErrorCode(code),
                target,
                message
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_frame_round_trips(frame in frame()) {
        let bytes = encode(&frame).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), frame);
    }

    #[test]
    fn truncated_frames_are_errors(frame in frame(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&frame).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), max in 0usize..8192) {
        let _ = decode(&bytes);
        let _ = decode_with_limit(&bytes, max);
    }

    #[test]
    fn versioned_random_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut framed = vec![mesh_proto::PROTOCOL_VERSION];
        framed.extend_from_slice(&bytes);
        if let Ok(frame) = decode(&framed) {
            // Whatever decodes re-encodes to a frame that decodes the same, no longer than the
            // input (decoders accept non-minimal varints; encoders always write minimal ones).
            let again = encode(&frame).unwrap();
            prop_assert!(again.len() <= framed.len());
            prop_assert_eq!(decode(&again).unwrap(), frame);
        }
    }

    #[test]
    fn flipped_bits_never_panic(frame in frame(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode(&frame).unwrap();
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let _ = decode(&bytes);
    }
}
