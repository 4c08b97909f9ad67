//! Property tests of the one codec: every frame and payload round-trips, no input panics
//! `decode` or `decode_payload`, and what version 2 signs or seals survives the codec and
//! nothing else: node records and signed floods verify after a round trip and only in their
//! room, and a sealed payload opens after a round trip and not after any flipped bit.

use mesh_proto::authored::{flood, verify_flood};
use mesh_proto::identity::{Keypair, PublicKey, Signature};
use mesh_proto::signal::{Payload, SessionId, Signal, SignalKind};
use mesh_proto::{
    ErrorCode, Frame, Limits, NodeId, NodeRecord, PairKey, RoomName, Sealed, Steering, decode,
    decode_payload, decode_with_limit, encode, encode_payload,
};
use proptest::prelude::*;

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 16]>().prop_map(NodeId::from_bytes)
}

/// Any 32 bytes: the codec does not check that a key is a curve point.
fn public_key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey::from_bytes)
}

/// Any 64 bytes: the codec does not check signatures.
fn signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(r, s)| {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice(&s);
        Signature::from_bytes(sig)
    })
}

/// A record as the codec sees it: 96 arbitrary bytes.
fn raw_record() -> impl Strategy<Value = NodeRecord> {
    (public_key(), signature()).prop_map(|(key, signature)| NodeRecord { key, signature })
}

fn keypair() -> impl Strategy<Value = Keypair> {
    any::<[u8; 32]>().prop_map(Keypair::from_seed)
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
        (
            public_key(),
            any::<u64>(),
            any::<u8>(),
            payload(),
            signature()
        )
            .prop_map(|(key, id, ttl, payload, signature)| Frame::Flood {
                key,
                id,
                ttl,
                payload,
                signature,
            }),
        Just(Frame::GetNeighbours),
        prop::collection::vec(raw_record(), 0..30).prop_map(|peers| Frame::Neighbours { peers }),
        node_id().prop_map(|target| Frame::FindNodes { target }),
        (node_id(), prop::collection::vec(raw_record(), 0..20))
            .prop_map(|(target, peers)| Frame::Nodes { target, peers }),
        Just(Frame::Closing),
        (
            node_id(),
            public_key(),
            any::<u64>(),
            any::<u8>(),
            signature()
        )
            .prop_map(|(target, key, id, ttl, signature)| Frame::Lookup {
                target,
                key,
                id,
                ttl,
                signature,
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
        (any::<[u8; 32]>(), any::<[u32; 5]>()).prop_map(|(nonce, l)| Frame::Challenge {
            nonce,
            limits: Limits {
                max_frame_size: l[0],
                max_payload_size: l[1],
                frames_per_second: l[2],
                frame_burst: l[3],
                id_difficulty: l[4],
            },
        }),
        (public_key(), node_id(), room(), signature()).prop_map(
            |(public_key, node_id, room, signature)| Frame::Register {
                public_key,
                node_id,
                room,
                signature,
            }
        ),
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

/// A signal as the codec sees it: arbitrary fields, an arbitrary signature.
fn raw_signal() -> impl Strategy<Value = Signal> {
    let kind = prop_oneof![
        ".{0,64}".prop_map(SignalKind::Offer),
        ".{0,64}".prop_map(SignalKind::Answer),
        ".{0,64}".prop_map(SignalKind::Candidate),
        Just(SignalKind::EndOfCandidates),
        any::<u8>().prop_map(|r| SignalKind::Reject(mesh_proto::signal::RejectReason(r))),
    ];
    (
        any::<u64>(),
        node_id(),
        node_id(),
        public_key(),
        kind,
        signature(),
    )
        .prop_map(|(session, from, to, public_key, kind, signature)| Signal {
            session: SessionId(session),
            from,
            to,
            public_key,
            kind,
            signature,
        })
}

fn raw_sealed() -> impl Strategy<Value = Sealed> {
    (public_key(), any::<u64>(), any::<u64>(), payload()).prop_map(
        |(key, epoch, seq, ciphertext)| Sealed {
            key,
            epoch,
            seq,
            ciphertext,
        },
    )
}

/// Every payload, as the codec sees it.
fn any_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        payload().prop_map(Payload::App),
        raw_signal().prop_map(Payload::Signal),
        (
            node_id(),
            any::<u64>(),
            prop::collection::vec(raw_record(), 0..20)
        )
            .prop_map(|(target, lookup, peers)| Payload::Nodes {
                target,
                lookup,
                peers
            }),
        (node_id(), any::<u64>(), any::<[u8; 8]>())
            .prop_map(|(to, seq, proof)| Payload::Unreachable { to, seq, proof }),
        raw_sealed().prop_map(Payload::Sealed),
        payload().prop_map(Payload::Reliable),
        any::<u64>().prop_map(|seq| Payload::Ack { seq }),
        (node_id(), raw_sealed()).prop_map(|(to, sealed)| Payload::Flooded { to, sealed }),
        node_id().prop_map(|target| Payload::FindKey { target }),
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

    #[test]
    fn every_payload_round_trips(payload in any_payload()) {
        let bytes = encode_payload(&payload).unwrap();
        prop_assert_eq!(bytes[0], payload.tag());
        prop_assert_eq!(decode_payload(&bytes).unwrap(), payload);
    }

    #[test]
    fn truncated_payloads_are_errors(payload in any_payload(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_payload(&payload).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(decode_payload(&bytes[..cut]).is_err());
    }

    #[test]
    fn random_payload_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(payload) = decode_payload(&bytes) {
            let again = encode_payload(&payload).unwrap();
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(decode_payload(&again).unwrap(), payload);
        }
    }
}

// Signing and sealing cost tens of microseconds each: fewer cases.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_records_round_trip_and_verify_in_their_room_only(
        keys in prop::collection::vec(keypair(), 1..6),
        room in room(),
        other in room(),
    ) {
        let peers: Vec<NodeRecord> = keys.iter().map(|k| NodeRecord::sign(k, &room)).collect();
        let frame = Frame::Neighbours { peers: peers.clone() };
        let bytes = encode(&frame).unwrap();
        prop_assert_eq!(bytes.len(), 3 + 96 * peers.len());
        let Frame::Neighbours { peers: decoded } = decode(&bytes).unwrap() else {
            panic!("a Neighbours frame decodes as one");
        };
        prop_assert_eq!(&decoded, &peers);
        for (record, key) in decoded.iter().zip(&keys) {
            prop_assert_eq!(record.verify(&room).unwrap(), key.node_id());
            if other != room {
                prop_assert!(record.verify(&other).is_err());
            }
        }
    }

    #[test]
    fn a_flipped_bit_in_a_record_fails_verification(
        key in keypair(),
        room in room(),
        at in 0usize..96,
        bit in 0u8..8,
    ) {
        let record = NodeRecord::sign(&key, &room);
        let mut bytes = encode(&Frame::Neighbours { peers: vec![record] }).unwrap();
        bytes[3 + at] ^= 1 << bit;
        let Frame::Neighbours { peers } = decode(&bytes).unwrap() else {
            panic!("a Neighbours frame decodes as one");
        };
        prop_assert!(peers[0].verify(&room).is_err());
    }

    #[test]
    fn signed_floods_round_trip_and_verify_whatever_the_ttl(
        key in keypair(),
        room in room(),
        id in any::<u64>(),
        ttl in any::<u8>(),
        relayed_ttl in any::<u8>(),
        data in payload(),
    ) {
        let inner = encode_payload(&Payload::App(data)).unwrap();
        let frame = flood(&key, &room, id, ttl, inner);
        let bytes = encode(&frame).unwrap();
        let decoded = decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &frame);
        let Frame::Flood { key: k, id: i, payload: p, signature: s, .. } = decoded else {
            panic!("a Flood frame decodes as one");
        };
        prop_assert_eq!(k, key.public());
        verify_flood(&room, &k, i, &p, &s).unwrap();
        // The TTL is not signed: a relay may change it; the signature still verifies.
        let relayed = Frame::Flood { key: k, id: i, ttl: relayed_ttl, payload: p.clone(), signature: s };
        let Frame::Flood { key: k, id: i, payload: p, signature: s, .. } =
            decode(&encode(&relayed).unwrap()).unwrap()
        else {
            panic!("a Flood frame decodes as one");
        };
        verify_flood(&room, &k, i, &p, &s).unwrap();
        // Anything else it is not allowed to touch.
        prop_assert!(verify_flood(&room, &k, i ^ 1, &p, &s).is_err());
        let mut altered = p.clone();
        altered.push(0);
        prop_assert!(verify_flood(&room, &k, i, &altered, &s).is_err());
    }

    #[test]
    fn sealed_payloads_round_trip_and_open_at_the_destination_only(
        origin in keypair(),
        destination in keypair(),
        room in room(),
        epoch in any::<u64>(),
        seq in any::<u64>(),
        inner in any_payload(),
    ) {
        let (from, to) = (origin.node_id(), destination.node_id());
        let plaintext = encode_payload(&inner).unwrap();
        let seal = PairKey::derive(&origin, &destination.public(), &from, &to, &room).unwrap();
        let sealed = Sealed {
            key: origin.public(),
            epoch,
            seq,
            ciphertext: seal.seal(epoch, seq, &plaintext),
        };
        let bytes = encode_payload(&Payload::Sealed(sealed.clone())).unwrap();
        let Payload::Sealed(received) = decode_payload(&bytes).unwrap() else {
            panic!("a Sealed payload decodes as one");
        };
        prop_assert_eq!(&received, &sealed);
        // The destination derives the key from what it received, as the document says.
        let open = PairKey::derive(&destination, &received.key, &received.origin(), &to, &room)
            .unwrap();
        let opened = open.open(received.epoch, received.seq, &received.ciphertext).unwrap();
        prop_assert_eq!(decode_payload(&opened).unwrap(), inner);
        // Not in the other direction (unless the two ends are one node).
        if from != to {
            let back = PairKey::derive(&destination, &origin.public(), &to, &from, &room).unwrap();
            prop_assert!(back.open(epoch, seq, &sealed.ciphertext).is_err());
        }
    }

    #[test]
    fn any_flipped_bit_of_a_sealed_payload_fails_to_open(
        origin in keypair(),
        destination in keypair(),
        room in room(),
        epoch in any::<u64>(),
        seq in any::<u64>(),
        data in prop::collection::vec(any::<u8>(), 0..256),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (from, to) = (origin.node_id(), destination.node_id());
        let seal = PairKey::derive(&origin, &destination.public(), &from, &to, &room).unwrap();
        let open = PairKey::derive(&destination, &origin.public(), &from, &to, &room).unwrap();
        let plaintext = encode_payload(&Payload::App(data)).unwrap();
        let ciphertext = seal.seal(epoch, seq, &plaintext);
        prop_assert_eq!(ciphertext.len(), plaintext.len() + mesh_proto::seal::SEAL_OVERHEAD);
        prop_assert_eq!(open.open(epoch, seq, &ciphertext).unwrap(), plaintext);

        // A flipped bit anywhere in the ciphertext, the tag included, fails the tag.
        let mut bad = ciphertext.clone();
        let i = at.index(bad.len());
        bad[i] ^= 1 << bit;
        prop_assert!(open.open(epoch, seq, &bad).is_err(), "bit {} of byte {}", bit, i);
        // So does a flipped bit of the nonce's halves.
        prop_assert!(open.open(epoch ^ (1 << (u64::from(bit) * 8)), seq, &ciphertext).is_err());
        prop_assert!(open.open(epoch, seq ^ (1 << bit), &ciphertext).is_err());
        // And of the origin's key, as the destination derives the key from it.
        let mut key = *origin.public().as_bytes();
        key[i % 32] ^= 1 << bit;
        let forged = PublicKey::from_bytes(key);
        if let Ok(k) = PairKey::derive(
            &destination,
            &forged,
            &NodeId::from_public_key(&forged),
            &to,
            &room,
        ) {
            prop_assert!(k.open(epoch, seq, &ciphertext).is_err());
        }
    }

    #[test]
    fn signals_verify_in_their_room_only_after_a_round_trip(
        key in keypair(),
        to in node_id(),
        room in room(),
        other in room(),
        session in any::<u64>(),
        sdp in ".{0,64}",
    ) {
        let signal = Signal::sign(&key, &room, SessionId(session), to, SignalKind::Offer(sdp));
        let bytes = encode_payload(&Payload::Signal(signal.clone())).unwrap();
        let Payload::Signal(decoded) = decode_payload(&bytes).unwrap() else {
            panic!("a Signal payload decodes as one");
        };
        prop_assert_eq!(&decoded, &signal);
        decoded.verify(&room).unwrap();
        if other != room {
            prop_assert!(decoded.verify(&other).is_err());
        }
    }
}

// The fleet's messages between bootstrap servers (docs/protocol.md §11.3).
proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fleet_messages_round_trip(
        origin in any::<u64>(),
        room in room(),
        from in node_id(),
        to in node_id(),
        frame in prop::collection::vec(any::<u8>(), 1..200),
        session in any::<u64>(),
        code in any::<u16>(),
        kind in 0u8..4,
    ) {
        use mesh_proto::fleet::Message;
        let message = match kind {
            0 => Message::Unicast { origin, room, from, to, frame },
            1 => Message::Broadcast { origin, room, from, frame },
            2 => Message::Kick { room, node: from, session },
            _ => Message::Failed { room, from, to, code: ErrorCode(code) },
        };
        prop_assert_eq!(Message::decode(&message.encode(), 200), Ok(message));
    }

    #[test]
    fn any_bytes_decode_as_a_fleet_message_or_fail_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let _ = mesh_proto::fleet::Message::decode(&bytes, 128);
    }
}
