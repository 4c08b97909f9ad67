//! The worked examples of `docs/protocol.md` are true, and the document shows no others:
//! each frame and payload built here encodes to the exact hex printed there and decodes
//! back; the identity example (key, SHA-256, NodeId, signed bytes), the node record, the
//! signed bytes of Flood, Lookup and Signal, and the sealing vector (X25519, HKDF, nonce,
//! ciphertext) are what the code computes; the sealing vector is also recomputed by hand,
//! step by step as the document specifies it (an X25519 written here from RFC 7748, HKDF
//! and the AEAD under the documented key and nonce), so the document and the code cannot
//! drift apart; and each decoder-conformance input (frames and payloads) is accepted or
//! refused as the document says.
//!
//! Hex in the document is lowercase bytes separated by whitespace, either in a fenced
//! ```` ```hex ```` block (possibly over several lines) or inline in backticks in a table.

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use mesh_proto::authored::{
    self, FLOOD_CONTEXT, LOOKUP_CONTEXT, flood_message, lookup_message, verify_flood, verify_lookup,
};
use mesh_proto::identity::{self, Keypair, PublicKey, REGISTER_CONTEXT};
use mesh_proto::record::{RECORD_CONTEXT, record_message};
use mesh_proto::seal::{SEAL_OVERHEAD, SEAL_SALT};
use mesh_proto::signal::{
    Payload, RejectReason, SIGNAL_CONTEXT, SessionId, Signal, SignalKind, signal_message,
};
use mesh_proto::{
    ErrorCode, Frame, Limits, NodeId, NodeRecord, PairKey, RoomName, Sealed, decode,
    decode_payload, encode, encode_payload,
};
use sha2::{Digest, Sha256};

const PROTOCOL_MD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/protocol.md"
));

/// RFC 8032 section 7.1, TEST 1: the secret key (seed) of the Register example, and the
/// origin of every signed or sealed example.
const SEED: &str = "9d 61 b1 9d ef fd 5a 60 ba 84 4a f4 92 ec 2c c4 \
                    44 49 c5 69 7b 32 69 19 70 3b ac 03 1c ae 7f 60";
/// RFC 8032 section 7.1, TEST 1: its public key.
const PUBLIC_KEY: &str = "d7 5a 98 01 82 b1 0a b7 d5 4b fe d3 c9 64 07 3a \
                          0e e1 72 f3 da a6 23 25 af 02 1a 68 f7 07 51 1a";
/// SHA-256 of that public key.
const KEY_DIGEST: &str = "21 fe 31 df a1 54 a2 61 62 6b f8 54 04 6f d2 27 \
                          1b 7b ed 4b 6a be 45 aa 58 87 7e f4 7f 97 21 b9";
/// The NodeId the document derives from that key.
const NODE_ID: &str = "21fe31df-a154-8261-a26b-f854046fd227";
/// RFC 8032 section 7.1, TEST 2: the seed of the node in the record examples, and the
/// destination of the sealing vector.
const SEED_2: &str = "4c cd 08 9b 28 ff 96 da 9d b6 c3 46 ec 11 4e 0f \
                      5b 8a 31 9f 35 ab a6 24 da 8c f6 ed 4f b8 a6 fb";
/// RFC 8032 section 7.1, TEST 2: its public key.
const PUBLIC_KEY_2: &str = "3d 40 17 c3 e8 43 89 5a 92 b7 0a a7 4d 1b 7e bc \
                            9c 98 2c cf 2e c4 96 8c c0 cd 55 f1 2a f4 66 0c";
/// Two other peers of the examples (any 16 bytes are a valid NodeId on the wire).
const PEER_A: &str = "5a8f4b2e-0c3d-8e17-9f60-2b7d4c1e8a93";
const PEER_B: &str = "c3e91f07-6d52-8a4b-b1c8-0e9f2d7a5b64";
/// The session id of the signal example: a 64-bit value, as the initiator draws them.
const SESSION: u64 = 0x0123_4567_89ab_cdef;
/// The (shortened) SDP of the signal example's offer.
const SDP: &str = "v=0\r\n";
/// The id of the Flood example.
const FLOOD_ID: u64 = 0x1122_3344_5566_7788;
/// The id of the Lookup example (and of the Nodes payload that answers it).
const LOOKUP_ID: u64 = 0x0f1e_2d3c_4b5a_6978;
/// The epoch and sequence number of the sealing vector.
const EPOCH: u64 = 0x9e37_79b9_7f4a_7c15;
const SEQ: u64 = 2;

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.split_whitespace().collect::<String>()).unwrap()
}

fn array<const N: usize>(hex_text: &str) -> [u8; N] {
    bytes(hex_text).try_into().unwrap()
}

/// Lowercase bytes separated by single spaces: the normal form both sides are compared in.
fn spaced(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn normalise(hex_text: &str) -> String {
    hex_text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The origin of the examples: RFC 8032 TEST 1.
fn keypair() -> Keypair {
    Keypair::from_seed(array(SEED))
}

/// The other node of the record examples and the sealing vector: RFC 8032 TEST 2.
fn keypair_2() -> Keypair {
    Keypair::from_seed(array(SEED_2))
}

fn id(text: &str) -> NodeId {
    text.parse().unwrap()
}

/// The nonce of the Challenge example, signed in the Register example.
fn nonce() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

fn room() -> RoomName {
    "lobby".parse().unwrap()
}

fn signed_message() -> Vec<u8> {
    identity::register_message(&nonce(), &keypair().node_id(), &room())
}

/// The application payload carried by the Flood example and sealed in the sealing vector.
fn app_payload() -> Payload {
    Payload::App(b"hi!".to_vec())
}

/// The signal example: the key of the Register example offers a session to `PEER_A`.
fn offer_signal() -> Signal {
    Signal::sign(
        &keypair(),
        &room(),
        SessionId(SESSION),
        id(PEER_A),
        SignalKind::Offer(SDP.into()),
    )
}

fn signed_signal_message() -> Vec<u8> {
    let signal = offer_signal();
    signal_message(
        &room(),
        signal.session,
        &signal.from,
        &signal.to,
        &signal.kind,
    )
}

/// The record example: the TEST 2 node's record in `lobby`.
fn record_2() -> NodeRecord {
    NodeRecord::sign(&keypair_2(), &room())
}

/// The key the origin (TEST 1) seals with for the destination (TEST 2) in `lobby`.
fn origin_pair_key() -> PairKey {
    let (a, b) = (keypair(), keypair_2());
    PairKey::derive(&a, &b.public(), &a.node_id(), &b.node_id(), &room()).unwrap()
}

/// The same key, as the destination derives it to open.
fn destination_pair_key() -> PairKey {
    let (a, b) = (keypair(), keypair_2());
    PairKey::derive(&b, &a.public(), &a.node_id(), &b.node_id(), &room()).unwrap()
}

/// The sealing vector: the App payload `hi!`, sealed by TEST 1 for TEST 2 in `lobby`.
fn sealed_example() -> Sealed {
    let plaintext = encode_payload(&app_payload()).unwrap();
    Sealed {
        key: keypair().public(),
        epoch: EPOCH,
        seq: SEQ,
        ciphertext: origin_pair_key().seal(EPOCH, SEQ, &plaintext),
    }
}

/// The HKDF info of the sealing vector, assembled by hand as the document lists it.
fn seal_info_by_hand() -> Vec<u8> {
    let mut info = vec![5];
    info.extend_from_slice(b"lobby");
    info.extend_from_slice(keypair().node_id().as_bytes());
    info.extend_from_slice(keypair_2().node_id().as_bytes());
    info
}

/// The shared secret of the sealing vector, as the code computes it.
fn shared_secret() -> [u8; 32] {
    keypair().agree(&keypair_2().public()).unwrap()
}

/// The sealing key of the sealing vector, by HKDF-SHA-256 as the document specifies it.
fn seal_key_by_hand() -> [u8; 32] {
    let mut key = [0; 32];
    Hkdf::<Sha256>::new(Some(b"mesh-overlay/seal/v2\0"), &shared_secret())
        .expand(&seal_info_by_hand(), &mut key)
        .unwrap();
    key
}

/// The XChaCha20 nonce of the sealing vector: epoch ‖ seq ‖ 8 zero bytes.
fn seal_nonce_by_hand() -> [u8; 24] {
    let mut nonce = [0; 24];
    nonce[..8].copy_from_slice(&EPOCH.to_le_bytes());
    nonce[8..16].copy_from_slice(&SEQ.to_le_bytes());
    nonce
}

/// Every example frame of the document, by name, in document order.
fn frame_examples() -> Vec<(&'static str, Frame)> {
    let key = keypair();
    vec![
        (
            "challenge",
            Frame::Challenge {
                nonce: nonce(),
                limits: Limits {
                    max_frame_size: 65536,
                    max_payload_size: 12288,
                    frames_per_second: 50,
                    frame_burst: 100,
                    id_difficulty: 0,
                },
            },
        ),
        (
            "register",
            Frame::Register {
                public_key: key.public(),
                node_id: key.node_id(),
                room: room(),
                signature: key.sign(&signed_message()),
            },
        ),
        (
            "welcome",
            Frame::Welcome {
                node_id: id(NODE_ID),
                peers: vec![id(PEER_A), id(PEER_B)],
                stun_port: Some(3478),
            },
        ),
        (
            "unicast",
            Frame::Unicast {
                to: id(PEER_A),
                payload: b"offer".to_vec(),
            },
        ),
        (
            "transfer",
            Frame::Transfer {
                from: id(NODE_ID),
                payload: b"offer".to_vec(),
            },
        ),
        (
            "broadcast",
            Frame::Broadcast {
                payload: b"hi!".to_vec(),
            },
        ),
        (
            "transfer_broadcast",
            Frame::TransferBroadcast {
                from: id(NODE_ID),
                payload: b"hi!".to_vec(),
            },
        ),
        ("get_peers", Frame::GetPeers { max: 300 }),
        (
            "peers",
            Frame::Peers {
                peers: vec![id(PEER_B)],
            },
        ),
        (
            "error with target",
            Frame::Error {
                code: ErrorCode::UNKNOWN_PEER,
                target: Some(id(PEER_B)),
                message: "no such peer".into(),
            },
        ),
        (
            "error without target",
            Frame::Error {
                code: ErrorCode::SHUTTING_DOWN,
                target: None,
                message: "bye".into(),
            },
        ),
        (
            "route",
            Frame::Route {
                to: keypair_2().node_id(),
                from: id(NODE_ID),
                ttl: 16,
                steering: mesh_proto::Steering::Learned,
                payload: encode_payload(&Payload::Sealed(sealed_example())).unwrap(),
            },
        ),
        (
            "flood",
            authored::flood(
                &key,
                &room(),
                FLOOD_ID,
                16,
                encode_payload(&app_payload()).unwrap(),
            ),
        ),
        ("get_neighbours", Frame::GetNeighbours),
        (
            "neighbours",
            Frame::Neighbours {
                peers: vec![record_2()],
            },
        ),
        ("find_nodes", Frame::FindNodes { target: id(PEER_A) }),
        (
            "nodes",
            Frame::Nodes {
                target: id(PEER_A),
                peers: vec![record_2()],
            },
        ),
        ("closing", Frame::Closing),
        (
            "lookup",
            authored::lookup(&key, &room(), key.node_id(), LOOKUP_ID, 16),
        ),
        (
            "doors",
            Frame::Doors {
                doors: vec![mesh_proto::Door {
                    node: id(PEER_A),
                    url: "ws://10.0.0.7:8080/ws".parse().unwrap(),
                }],
            },
        ),
        (
            "error of an id below the difficulty",
            Frame::Error {
                code: ErrorCode::ID_BELOW_DIFFICULTY,
                target: None,
                message: "needs 8 bits".into(),
            },
        ),
    ]
}

/// Every example payload of the document (encoded without a version byte), by name.
fn payload_examples() -> Vec<(&'static str, Payload)> {
    vec![
        ("app payload", app_payload()),
        (
            "nodes payload",
            Payload::Nodes {
                target: id(NODE_ID),
                lookup: LOOKUP_ID,
                peers: vec![record_2()],
            },
        ),
        (
            "unreachable payload",
            Payload::Unreachable {
                to: keypair_2().node_id(),
                seq: SEQ,
                proof: sealed_example().proof(),
            },
        ),
        ("signed offer", Payload::Signal(offer_signal())),
        ("sealed payload", Payload::Sealed(sealed_example())),
        (
            "find-key payload",
            Payload::FindKey {
                target: keypair_2().node_id(),
            },
        ),
        (
            "flooded payload",
            Payload::Flooded {
                to: keypair_2().node_id(),
                sealed: sealed_example(),
            },
        ),
    ]
}

/// The hex the document prints in fenced blocks, other than frames and payloads, by name.
fn other_examples() -> Vec<(&'static str, Vec<u8>)> {
    let (a, b) = (keypair(), keypair_2());
    let record = record_2();
    let mut record_bytes = record.key.as_bytes().to_vec();
    record_bytes.extend_from_slice(record.signature.as_bytes());
    vec![
        ("seed", bytes(SEED)),
        ("public key", bytes(PUBLIC_KEY)),
        ("SHA-256 of the public key", bytes(KEY_DIGEST)),
        ("NodeId bytes", id(NODE_ID).as_bytes().to_vec()),
        (
            "SHA-256 of the NodeId (the id puzzle)",
            Sha256::digest(id(NODE_ID).as_bytes()).to_vec(),
        ),
        ("signed register message", signed_message()),
        ("second seed", bytes(SEED_2)),
        ("second public key", bytes(PUBLIC_KEY_2)),
        ("second NodeId bytes", b.node_id().as_bytes().to_vec()),
        ("signed record bytes", record_message(&b.public(), &room())),
        ("record on the wire", record_bytes),
        (
            "signed flood bytes",
            flood_message(&room(), FLOOD_ID, &encode_payload(&app_payload()).unwrap()),
        ),
        (
            "signed lookup bytes",
            lookup_message(&room(), &a.node_id(), LOOKUP_ID),
        ),
        ("signed signal message", signed_signal_message()),
        (
            "origin X25519 scalar",
            x25519::clamped_scalar(&array(SEED)).to_vec(),
        ),
        (
            "destination X25519 scalar",
            x25519::clamped_scalar(&array(SEED_2)).to_vec(),
        ),
        (
            "origin Montgomery u",
            x25519::edwards_to_montgomery(&array(PUBLIC_KEY)).to_vec(),
        ),
        (
            "destination Montgomery u",
            x25519::edwards_to_montgomery(&array(PUBLIC_KEY_2)).to_vec(),
        ),
        ("shared secret", shared_secret().to_vec()),
        ("HKDF info", seal_info_by_hand()),
        ("sealing key", seal_key_by_hand().to_vec()),
        ("nonce", seal_nonce_by_hand().to_vec()),
    ]
}

/// The decoder-conformance table of the document: input, and the frame it decodes to
/// (`None`: it must be refused).
fn conformance_examples() -> Vec<(&'static str, Option<Frame>)> {
    let hi = Frame::Broadcast {
        payload: b"hi!".to_vec(),
    };
    vec![
        ("02 07 05", Some(Frame::GetPeers { max: 5 })),
        ("02 07 fb 05 00", Some(Frame::GetPeers { max: 5 })),
        ("02 fb 07 00 05", Some(Frame::GetPeers { max: 5 })),
        ("02 05 fb 03 00 68 69 21", Some(hi)),
        ("02 07 fc 05 00 00 00", None),
        ("02 07 05 00", None),
        ("02 07", None),
        ("01 07 05", None),
        ("02 0c", Some(Frame::GetNeighbours)),
        ("02 0e", None),
        ("02 10", Some(Frame::Closing)),
        (
            "02 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            Some(Frame::Welcome {
                node_id: NodeId::from_bytes([0; 16]),
                peers: Vec::new(),
                stun_port: None,
            }),
        ),
        (
            "02 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            None,
        ),
        ("02 13", None),
        ("02 0d 00", Some(Frame::Neighbours { peers: Vec::new() })),
        ("02 0d 01 00", None),
        ("02 12 00", Some(Frame::Doors { doors: Vec::new() })),
        (
            "02 12 01 5a 8f 4b 2e 0c 3d 8e 17 9f 60 2b 7d 4c 1e 8a 93 03 68 69 21",
            None,
        ),
        ("02 09 0c 02 00", None),
        (
            "02 0a 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 10 04 00",
            None,
        ),
        ("02 09 0f 00 02 c3 28", None),
        (
            "02 05 fe 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            None,
        ),
        ("02 05 fd ff ff ff ff ff ff ff ff", None),
    ]
}

/// The payload-conformance table of the document: input (a payload, no version byte), and
/// the payload it decodes to (`None`: it must be refused).
fn payload_conformance_examples() -> Vec<(&'static str, Option<Payload>)> {
    vec![
        ("00 03 68 69 21", Some(app_payload())),
        ("00 00", Some(Payload::App(Vec::new()))),
        ("00 03 68 69", None),
        ("00 03 68 69 21 00", None),
        ("09 00", None),
        ("07 00", None),
        ("08 39 f7 13 d0 a6 44 85 3f 84 52 94 21 b9 f5 1b", None),
        (
            "08 39 f7 13 d0 a6 44 85 3f 84 52 94 21 b9 f5 1b 9b",
            Some(Payload::FindKey {
                target: keypair_2().node_id(),
            }),
        ),
        ("05 02 68 69", Some(Payload::Reliable(b"hi".to_vec()))),
        ("06 07", Some(Payload::Ack { seq: 7 })),
        ("06", None),
        ("04 00", None),
        (
            "04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            Some(Payload::Sealed(Sealed {
                key: PublicKey::from_bytes([0; 32]),
                epoch: 0,
                seq: 0,
                ciphertext: Vec::new(),
            })),
        ),
        ("03 00", None),
        ("01 05", None),
    ]
}

/// The normalised contents of every ```` ```hex ```` block of the document.
fn fenced_hex_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in PROTOCOL_MD.lines() {
        let trimmed = line.trim();
        match &mut current {
            None if trimmed == "```hex" => current = Some(String::new()),
            None => {}
            Some(_) if trimmed.starts_with("```") => {
                blocks.push(normalise(&current.take().unwrap()));
            }
            Some(text) => {
                text.push_str(trimmed);
                text.push(' ');
            }
        }
    }
    assert!(
        current.is_none(),
        "unterminated ```hex block in protocol.md"
    );
    blocks
}

#[test]
fn every_frame_example_encodes_to_the_documented_hex() {
    let blocks = fenced_hex_blocks();
    for (name, frame) in frame_examples() {
        let hex = spaced(&encode(&frame).unwrap());
        assert!(
            blocks.contains(&hex),
            "docs/protocol.md must show the {name} example as a ```hex block:\n{hex}"
        );
        assert_eq!(decode(&bytes(&hex)).unwrap(), frame, "{name} decodes back");
        assert_eq!(bytes(&hex)[0], 2, "{name}: version 2");
    }
}

#[test]
fn every_other_example_is_documented() {
    let blocks = fenced_hex_blocks();
    for (name, value) in other_examples() {
        let hex = spaced(&value);
        assert!(
            blocks.contains(&hex),
            "docs/protocol.md must show the {name} as a ```hex block:\n{hex}"
        );
    }
    assert!(PROTOCOL_MD.contains(NODE_ID), "the NodeId text form");
    let second = keypair_2().node_id().to_string();
    assert!(PROTOCOL_MD.contains(&second), "the second NodeId {second}");
    assert!(PROTOCOL_MD.contains(PEER_A) && PROTOCOL_MD.contains(PEER_B));
}

#[test]
fn the_document_shows_no_unchecked_hex_block() {
    let mut checked: Vec<String> = frame_examples()
        .iter()
        .map(|(_, frame)| spaced(&encode(frame).unwrap()))
        .collect();
    checked.extend(
        payload_examples()
            .iter()
            .map(|(_, payload)| spaced(&encode_payload(payload).unwrap())),
    );
    checked.extend(other_examples().iter().map(|(_, value)| spaced(value)));
    let blocks = fenced_hex_blocks();
    assert_eq!(blocks.len(), checked.len(), "one ```hex block per example");
    for block in blocks {
        assert!(checked.contains(&block), "unchecked ```hex block:\n{block}");
    }
}

#[test]
fn the_document_speaks_version_2() {
    assert_eq!(mesh_proto::PROTOCOL_VERSION, 2);
    assert!(PROTOCOL_MD.starts_with("# Wire protocol, version 2\n"));
    // Every offset table of a frame names the version byte as 02.
    assert!(!PROTOCOL_MD.contains("| 0 | `01` | version 1 |"));
    assert_eq!(
        PROTOCOL_MD.matches("| 0 | `02` | version 2 |").count(),
        frame_examples().len(),
        "one offset table per frame example"
    );
}

#[test]
fn the_identity_example_derives_as_documented() {
    let key = keypair();
    let public: PublicKey = key.public();
    assert_eq!(
        public.as_bytes().to_vec(),
        bytes(PUBLIC_KEY),
        "RFC 8032 TEST 1"
    );
    assert_eq!(
        keypair_2().public().as_bytes().to_vec(),
        bytes(PUBLIC_KEY_2),
        "RFC 8032 TEST 2"
    );

    let digest = Sha256::digest(public.as_bytes());
    assert_eq!(digest.to_vec(), bytes(KEY_DIGEST));

    // The documented rule, applied by hand: version 8 in byte 6, RFC variant in byte 8.
    let mut by_hand: [u8; 16] = digest[..16].try_into().unwrap();
    by_hand[6] = (by_hand[6] & 0x0F) | 0x80;
    by_hand[8] = (by_hand[8] & 0x3F) | 0x80;
    assert_eq!(key.node_id(), NodeId::from_bytes(by_hand));
    assert_eq!(key.node_id().to_string(), NODE_ID);

    let message = signed_message();
    assert_eq!(
        message.len(),
        REGISTER_CONTEXT.len() + 32 + 16 + "lobby".len()
    );
    assert_eq!(
        REGISTER_CONTEXT, b"mesh-overlay/register/v1\0",
        "version 2 kept the register signature of version 1"
    );
    let Frame::Register { signature, .. } = &frame_examples()[1].1 else {
        panic!("the second example is the Register frame");
    };
    public.verify(&message, signature).unwrap();
}

#[test]
fn the_id_puzzle_example_counts_as_documented() {
    // SHA-256 of the example NodeId begins 71 = 0111 0001: one leading zero bit.
    let node_id = id(NODE_ID);
    let digest = Sha256::digest(node_id.as_bytes());
    assert_eq!(digest[0], 0x71);
    assert_eq!(mesh_proto::puzzle::difficulty(&node_id), 1);
    assert!(mesh_proto::puzzle::meets(&node_id, 1));
    assert!(!mesh_proto::puzzle::meets(&node_id, 2));
    assert!(PROTOCOL_MD.contains("its difficulty is **1**"));
    assert_eq!(ErrorCode::ID_BELOW_DIFFICULTY.0, 18);
    assert!(PROTOCOL_MD.contains("| 18 | `id_below_difficulty` | yes |"));
}

#[test]
fn the_record_example_signs_and_verifies_as_documented() {
    let key = keypair_2();
    let record = record_2();
    assert_eq!(record.key, key.public());
    assert_eq!(record.verify(&room()).unwrap(), key.node_id());
    assert!(record.verify(&"lobbz".parse().unwrap()).is_err(), "room");

    // The signed bytes, assembled by hand: context, room length, room, public key.
    assert_eq!(RECORD_CONTEXT, b"mesh-overlay/record/v2\0");
    let mut by_hand = RECORD_CONTEXT.to_vec();
    by_hand.push(5);
    by_hand.extend_from_slice(b"lobby");
    by_hand.extend_from_slice(&bytes(PUBLIC_KEY_2));
    assert_eq!(record_message(&key.public(), &room()), by_hand);
    assert_eq!(by_hand.len(), 23 + 1 + 5 + 32);
    key.public().verify(&by_hand, &record.signature).unwrap();

    // 96 bytes on the wire: key, then signature, nothing else.
    let Frame::Neighbours { peers } = &frame_examples()[14].1 else {
        panic!("the 15th example is the Neighbours frame");
    };
    let encoded = encode(&Frame::Neighbours {
        peers: peers.clone(),
    })
    .unwrap();
    assert_eq!(encoded.len(), 2 + 1 + 96);
    assert_eq!(&encoded[3..35], key.public().as_bytes());
    assert_eq!(&encoded[35..], record.signature.as_bytes());

    // A record whose key was swapped, or whose signature was altered, fails.
    let mut forged = record;
    forged.key = keypair().public();
    assert!(forged.verify(&room()).is_err());
    let mut sig = *record.signature.as_bytes();
    sig[0] ^= 1;
    forged = record;
    forged.signature = mesh_proto::identity::Signature::from_bytes(sig);
    assert!(forged.verify(&room()).is_err());
}

#[test]
fn the_flood_and_lookup_examples_sign_as_documented() {
    let key = keypair();
    let payload = encode_payload(&app_payload()).unwrap();

    assert_eq!(FLOOD_CONTEXT, b"mesh-overlay/flood/v2\0");
    let mut by_hand = FLOOD_CONTEXT.to_vec();
    by_hand.push(5);
    by_hand.extend_from_slice(b"lobby");
    by_hand.extend_from_slice(&FLOOD_ID.to_le_bytes());
    by_hand.extend_from_slice(&payload);
    assert_eq!(flood_message(&room(), FLOOD_ID, &payload), by_hand);
    assert_eq!(by_hand.len(), 22 + 1 + 5 + 8 + 5);

    let Frame::Flood {
        key: k,
        id: flood_id,
        ttl,
        payload: p,
        signature,
    } = authored::flood(&key, &room(), FLOOD_ID, 16, payload.clone())
    else {
        unreachable!()
    };
    assert_eq!(
        (k, flood_id, ttl, &p),
        (key.public(), FLOOD_ID, 16, &payload)
    );
    key.public().verify(&by_hand, &signature).unwrap();
    verify_flood(&room(), &k, flood_id, &p, &signature).unwrap();
    // The TTL is not signed: the same signature verifies whatever a relay makes of it.
    let encoded = encode(&authored::flood(
        &key,
        &room(),
        FLOOD_ID,
        16,
        payload.clone(),
    ))
    .unwrap();
    let ttl_at = 2 + 32 + 9;
    assert_eq!(encoded[ttl_at], 16);
    let mut lowered = encoded.clone();
    lowered[ttl_at] = 3;
    let Frame::Flood {
        key: k,
        id: i,
        ttl: 3,
        payload: p,
        signature: s,
    } = decode(&lowered).unwrap()
    else {
        panic!("the TTL byte sits after the key and the id")
    };
    verify_flood(&room(), &k, i, &p, &s).unwrap();
    // The room and every other field are.
    assert!(verify_flood(&"lobbz".parse().unwrap(), &k, i, &p, &s).is_err());
    let mut altered = encoded.clone();
    *altered.last_mut().unwrap() ^= 1;
    let Frame::Flood {
        key: k,
        id: i,
        payload: p,
        signature: s,
        ..
    } = decode(&altered).unwrap()
    else {
        unreachable!()
    };
    assert!(verify_flood(&room(), &k, i, &p, &s).is_err());

    assert_eq!(LOOKUP_CONTEXT, b"mesh-overlay/lookup/v2\0");
    let mut by_hand = LOOKUP_CONTEXT.to_vec();
    by_hand.push(5);
    by_hand.extend_from_slice(b"lobby");
    by_hand.extend_from_slice(key.node_id().as_bytes());
    by_hand.extend_from_slice(&LOOKUP_ID.to_le_bytes());
    assert_eq!(lookup_message(&room(), &key.node_id(), LOOKUP_ID), by_hand);
    assert_eq!(by_hand.len(), 23 + 1 + 5 + 16 + 8);
    let Frame::Lookup {
        target,
        key: k,
        id: lookup_id,
        ttl,
        signature,
    } = authored::lookup(&key, &room(), key.node_id(), LOOKUP_ID, 16)
    else {
        unreachable!()
    };
    assert_eq!(ttl, 16);
    key.public().verify(&by_hand, &signature).unwrap();
    verify_lookup(&room(), &k, &target, lookup_id, &signature).unwrap();
    assert!(verify_lookup(&room(), &k, &id(PEER_A), lookup_id, &signature).is_err());
}

#[test]
fn the_sealing_vector_derives_seals_and_opens_as_documented() {
    let (a, b) = (keypair(), keypair_2());

    // X25519 by hand, as the document specifies it: each side's clamped scalar times the
    // other's Montgomery u gives one shared secret, which is what the code computes.
    let scalar_a = x25519::clamped_scalar(&array(SEED));
    let scalar_b = x25519::clamped_scalar(&array(SEED_2));
    let u_a = x25519::edwards_to_montgomery(&array(PUBLIC_KEY));
    let u_b = x25519::edwards_to_montgomery(&array(PUBLIC_KEY_2));
    let secret = x25519::scalar_mult(&scalar_a, &u_b);
    assert_eq!(secret, x25519::scalar_mult(&scalar_b, &u_a));
    assert_eq!(secret, shared_secret());
    assert_eq!(b.agree(&a.public()).unwrap(), secret);
    assert_ne!(secret, [0; 32]);
    // The birational map agrees with the ladder's own base point: 9 is the u of B.
    let mut nine = [0u8; 32];
    nine[0] = 9;
    assert_eq!(
        x25519::scalar_mult(&scalar_a, &nine),
        u_a,
        "the u of the public key is the clamped scalar times the base point"
    );

    // HKDF: salt and info as listed; the key it gives is the key the code seals with.
    assert_eq!(SEAL_SALT, b"mesh-overlay/seal/v2\0");
    let info = seal_info_by_hand();
    assert_eq!(info.len(), 1 + 5 + 16 + 16);
    let key = seal_key_by_hand();
    let nonce = seal_nonce_by_hand();
    let plaintext = encode_payload(&app_payload()).unwrap();
    let by_hand = XChaCha20Poly1305::new(&key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            AeadPayload {
                msg: &plaintext,
                aad: &[],
            },
        )
        .unwrap();
    let sealed = sealed_example();
    assert_eq!(
        sealed.ciphertext, by_hand,
        "PairKey seals under the documented key"
    );
    assert_eq!(sealed.ciphertext.len(), plaintext.len() + SEAL_OVERHEAD);
    assert_eq!(sealed.origin(), a.node_id());

    // The destination opens it; nobody else, no other nonce, no other room does.
    let open = destination_pair_key();
    assert_eq!(
        open.open(EPOCH, SEQ, &sealed.ciphertext).unwrap(),
        plaintext
    );
    assert_eq!(decode_payload(&plaintext).unwrap(), app_payload());
    assert!(open.open(EPOCH, SEQ + 1, &sealed.ciphertext).is_err());
    assert!(open.open(EPOCH ^ 1, SEQ, &sealed.ciphertext).is_err());
    let back = PairKey::derive(&b, &a.public(), &b.node_id(), &a.node_id(), &room()).unwrap();
    assert!(
        back.open(EPOCH, SEQ, &sealed.ciphertext).is_err(),
        "direction"
    );
    let elsewhere = PairKey::derive(
        &b,
        &a.public(),
        &a.node_id(),
        &b.node_id(),
        &"lobbz".parse().unwrap(),
    )
    .unwrap();
    assert!(
        elsewhere.open(EPOCH, SEQ, &sealed.ciphertext).is_err(),
        "room"
    );

    // The Sealed payload on the wire: tag, key, epoch and seq as varints, ciphertext.
    let encoded = encode_payload(&Payload::Sealed(sealed.clone())).unwrap();
    let mut layout = vec![4];
    layout.extend_from_slice(&bytes(PUBLIC_KEY));
    layout.push(0xfd);
    layout.extend_from_slice(&EPOCH.to_le_bytes());
    layout.push(SEQ as u8);
    layout.push(sealed.ciphertext.len() as u8);
    layout.extend_from_slice(&sealed.ciphertext);
    assert_eq!(encoded, layout);

    // The all-zero result is refused: a small-order key (the identity point, y = 1).
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    assert_eq!(
        x25519::scalar_mult(&scalar_a, &x25519::edwards_to_montgomery(&identity_point)),
        [0; 32]
    );
    assert!(a.agree(&PublicKey::from_bytes(identity_point)).is_err());
}

#[test]
fn the_route_example_carries_the_sealed_payload_and_the_flood_the_app_payload() {
    let app = encode_payload(&app_payload()).unwrap();
    let sealed = encode_payload(&Payload::Sealed(sealed_example())).unwrap();
    for (name, frame) in frame_examples() {
        match frame {
            Frame::Route { to, payload, .. } => {
                assert_eq!(
                    payload, sealed,
                    "the {name} example carries the sealed payload"
                );
                assert_eq!(to, keypair_2().node_id());
            }
            Frame::Flood { payload, .. } => {
                assert_eq!(payload, app, "the {name} example carries the App payload");
            }
            _ => {}
        }
    }
    // The Nodes payload answers the Lookup example.
    let Frame::Lookup { target, id, .. } = &frame_examples()[18].1 else {
        panic!("the 19th example is the Lookup frame");
    };
    let Payload::Nodes {
        target: t,
        lookup,
        peers,
    } = &payload_examples()[1].1
    else {
        panic!("the second payload example is Nodes");
    };
    assert_eq!((t, lookup), (target, id));
    assert_eq!(peers[0].verify(&room()).unwrap(), keypair_2().node_id());
}

#[test]
fn decoder_conformance_table_holds() {
    for (hex, expected) in conformance_examples() {
        assert!(
            PROTOCOL_MD.contains(&format!("`{hex}`")),
            "docs/protocol.md must list `{hex}` in the decoder conformance table"
        );
        let got = decode(&bytes(hex));
        match &expected {
            Some(frame) => assert_eq!(got.as_ref().ok(), Some(frame), "{hex} decodes"),
            None => assert!(got.is_err(), "{hex} must be refused, got {got:?}"),
        }
    }
}

#[test]
fn every_payload_example_encodes_to_the_documented_hex() {
    let blocks = fenced_hex_blocks();
    for (name, payload) in payload_examples() {
        let hex = spaced(&encode_payload(&payload).unwrap());
        assert!(
            blocks.contains(&hex),
            "docs/protocol.md must show the {name} example as a ```hex block:\n{hex}"
        );
        assert_eq!(
            decode_payload(&bytes(&hex)).unwrap(),
            payload,
            "{name} decodes back"
        );
        assert_eq!(bytes(&hex)[0], payload.tag(), "{name}: its tag leads");
    }
}

#[test]
fn the_signal_example_signs_and_verifies_as_documented() {
    let signal = offer_signal();
    assert_eq!(
        signal.from,
        id(NODE_ID),
        "signed by the Register example's key"
    );
    assert_eq!(signal.public_key, keypair().public());
    signal.verify(&room()).unwrap();
    assert!(signal.verify(&"lobbz".parse().unwrap()).is_err(), "room");

    // The signed bytes, assembled by hand as the document lists them.
    assert_eq!(SIGNAL_CONTEXT, b"mesh-overlay/signal/v2\0");
    let mut by_hand = SIGNAL_CONTEXT.to_vec();
    by_hand.push(5);
    by_hand.extend_from_slice(b"lobby");
    by_hand.extend_from_slice(&SESSION.to_le_bytes());
    by_hand.extend_from_slice(id(NODE_ID).as_bytes());
    by_hand.extend_from_slice(id(PEER_A).as_bytes());
    by_hand.push(0); // the kind tag of Offer
    by_hand.extend_from_slice(SDP.as_bytes());
    assert_eq!(signed_signal_message(), by_hand);
    assert_eq!(by_hand.len(), 23 + 1 + 5 + 8 + 16 + 16 + 1 + SDP.len());
    keypair()
        .public()
        .verify(&by_hand, &signal.signature)
        .unwrap();

    // The signature is the last 64 bytes of the encoded payload.
    let encoded = encode_payload(&Payload::Signal(signal.clone())).unwrap();
    assert_eq!(&encoded[encoded.len() - 64..], signal.signature.as_bytes());

    // The session id is a varint on the wire but 8 bytes LE in the signed bytes: the
    // document's small-id illustration.
    let small = signal_message(
        &room(),
        SessionId(5),
        &signal.from,
        &signal.to,
        &SignalKind::EndOfCandidates,
    );
    assert_eq!(&small[29..37], &[5, 0, 0, 0, 0, 0, 0, 0]);
    let small_signal = Signal::sign(
        &keypair(),
        &room(),
        SessionId(5),
        id(PEER_A),
        SignalKind::EndOfCandidates,
    );
    let small_payload = encode_payload(&Payload::Signal(small_signal)).unwrap();
    assert_eq!(
        &small_payload[..3],
        &[1, 5, 0x21],
        "tag, session `05`, from"
    );
    assert!(PROTOCOL_MD.contains("`05 00 00 00 00 00 00 00`"));

    // Kind tags beyond 4 do not decode; reason bytes the document does not define do.
    let end = Signal::sign(
        &keypair(),
        &room(),
        SessionId(SESSION),
        id(PEER_A),
        SignalKind::EndOfCandidates,
    );
    let mut bytes = encode_payload(&Payload::Signal(end)).unwrap();
    let kind_at = 1 + 9 + 16 + 16 + 32;
    assert_eq!(bytes[kind_at], 3, "EndOfCandidates");
    bytes[kind_at] = 5;
    assert!(decode_payload(&bytes).is_err(), "kind tag 5");
    let odd = Signal::sign(
        &keypair(),
        &room(),
        SessionId(SESSION),
        id(PEER_A),
        SignalKind::Reject(RejectReason(9)),
    );
    let payload = Payload::Signal(odd);
    let bytes = encode_payload(&payload).unwrap();
    assert_eq!(
        bytes[kind_at..kind_at + 2],
        [4, 9],
        "Reject: tag, then one raw byte"
    );
    assert_eq!(decode_payload(&bytes).unwrap(), payload);

    // Every kind's tag and body, as the document's table lists them.
    let kinds = [
        (SignalKind::Offer(SDP.into()), 0, SDP.as_bytes().to_vec()),
        (SignalKind::Answer(SDP.into()), 1, SDP.as_bytes().to_vec()),
        (
            SignalKind::Candidate("candidate:1".into()),
            2,
            b"candidate:1".to_vec(),
        ),
        (SignalKind::EndOfCandidates, 3, Vec::new()),
        (SignalKind::Reject(RejectReason::FULL), 4, vec![1]),
    ];
    for (kind, tag, body) in kinds {
        assert_eq!((kind.tag(), kind.body()), (tag, &body[..]), "{kind:?}");
    }
    assert_eq!(
        (
            RejectReason::FULL.0,
            RejectReason::ALREADY_LINKED.0,
            RejectReason::FAILED.0
        ),
        (1, 2, 3)
    );

    // A relay that alters anything, or re-addresses the signal, is detected.
    let mut altered = signal.clone();
    altered.to = id(PEER_B);
    assert!(altered.verify(&room()).is_err());
    let mut altered = signal;
    altered.session = SessionId(SESSION + 1);
    assert!(altered.verify(&room()).is_err());
}

#[test]
fn payload_conformance_table_holds() {
    for (hex, expected) in payload_conformance_examples() {
        assert!(
            PROTOCOL_MD.contains(&format!("`{hex}`")),
            "docs/protocol.md must list `{hex}` in the payload conformance table"
        );
        let got = decode_payload(&bytes(hex));
        match &expected {
            Some(payload) => assert_eq!(got.as_ref().ok(), Some(payload), "{hex} decodes"),
            None => assert!(got.is_err(), "{hex} must be refused, got {got:?}"),
        }
    }
}

/// X25519 (RFC 7748) and the map from Ed25519 keys, written from the RFCs, slowly and
/// not in constant time, to check the document's steps independently of the code.
mod x25519 {
    use sha2::{Digest, Sha512};

    /// An element of GF(2^255 − 19), four little-endian 64-bit limbs, fully reduced.
    type Fe = [u64; 4];

    const P: Fe = [
        0xffff_ffff_ffff_ffed,
        0xffff_ffff_ffff_ffff,
        0xffff_ffff_ffff_ffff,
        0x7fff_ffff_ffff_ffff,
    ];

    fn geq_p(a: &Fe) -> bool {
        for i in (0..4).rev() {
            if a[i] != P[i] {
                return a[i] > P[i];
            }
        }
        true
    }

    /// Subtracts without reduction; the caller knows `a` ≥ `b` or wants the wrap.
    fn sub_raw(a: &Fe, b: &Fe) -> (Fe, bool) {
        let mut out = [0; 4];
        let mut borrow = false;
        for i in 0..4 {
            let (d, b1) = a[i].overflowing_sub(b[i]);
            let (d, b2) = d.overflowing_sub(u64::from(borrow));
            out[i] = d;
            borrow = b1 || b2;
        }
        (out, borrow)
    }

    fn reduce(mut a: Fe) -> Fe {
        while geq_p(&a) {
            a = sub_raw(&a, &P).0;
        }
        a
    }

    /// Reduces a 512-bit value (eight limbs): 2^256 ≡ 38 (mod p).
    fn reduce_wide(t: [u64; 8]) -> Fe {
        let mut r = [0u64; 4];
        let mut carry: u128 = 0;
        for i in 0..4 {
            let acc = u128::from(t[i]) + 38 * u128::from(t[i + 4]) + carry;
            r[i] = acc as u64;
            carry = acc >> 64;
        }
        while carry > 0 {
            let mut c = carry * 38;
            for limb in r.iter_mut() {
                let acc = u128::from(*limb) + c;
                *limb = acc as u64;
                c = acc >> 64;
            }
            carry = c;
        }
        reduce(r)
    }

    fn add(a: &Fe, b: &Fe) -> Fe {
        let mut t = [0u64; 8];
        let mut carry = 0u128;
        for i in 0..4 {
            let acc = u128::from(a[i]) + u128::from(b[i]) + carry;
            t[i] = acc as u64;
            carry = acc >> 64;
        }
        t[4] = carry as u64;
        reduce_wide(t)
    }

    fn sub(a: &Fe, b: &Fe) -> Fe {
        // a + (p − b): both reduced, so p − b does not wrap.
        add(a, &sub_raw(&P, b).0)
    }

    fn mul(a: &Fe, b: &Fe) -> Fe {
        let mut t = [0u64; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let acc = u128::from(t[i + j]) + u128::from(a[i]) * u128::from(b[j]) + carry;
                t[i + j] = acc as u64;
                carry = acc >> 64;
            }
            t[i + 4] = carry as u64;
        }
        reduce_wide(t)
    }

    fn pow(a: &Fe, e: &Fe) -> Fe {
        let mut result: Fe = [1, 0, 0, 0];
        for i in (0..256).rev() {
            result = mul(&result, &result);
            if (e[i / 64] >> (i % 64)) & 1 == 1 {
                result = mul(&result, a);
            }
        }
        result
    }

    /// a^(p − 2): the inverse of a, and 0 for 0.
    fn invert(a: &Fe) -> Fe {
        let p_minus_2 = sub_raw(&P, &[2, 0, 0, 0]).0;
        pow(a, &p_minus_2)
    }

    /// Little-endian bytes, bit 255 masked (RFC 7748 decodeUCoordinate; for an Ed25519
    /// public key, the sign bit of x), reduced mod p.
    fn from_bytes(bytes: &[u8; 32]) -> Fe {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            *limb = u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
        }
        limbs[3] &= 0x7fff_ffff_ffff_ffff;
        reduce(limbs)
    }

    fn to_bytes(a: &Fe) -> [u8; 32] {
        let mut out = [0u8; 32];
        for i in 0..4 {
            out[8 * i..8 * i + 8].copy_from_slice(&a[i].to_le_bytes());
        }
        out
    }

    /// The X25519 secret of an Ed25519 seed: the first 32 bytes of SHA-512(seed), clamped
    /// (RFC 8032 5.1.5 steps 1–2, RFC 7748 decodeScalar25519).
    pub fn clamped_scalar(seed: &[u8; 32]) -> [u8; 32] {
        let h = Sha512::digest(seed);
        let mut k: [u8; 32] = h[..32].try_into().unwrap();
        k[0] &= 248;
        k[31] &= 127;
        k[31] |= 64;
        k
    }

    /// The Montgomery u of an Ed25519 public key: u = (1 + y) / (1 − y) mod p.
    pub fn edwards_to_montgomery(public: &[u8; 32]) -> [u8; 32] {
        let y = from_bytes(public);
        let one: Fe = [1, 0, 0, 0];
        to_bytes(&mul(&add(&one, &y), &invert(&sub(&one, &y))))
    }

    /// X25519(k, u) of RFC 7748 section 5, for a clamped scalar `k`.
    pub fn scalar_mult(k: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
        let x1 = from_bytes(u);
        let a24: Fe = [121_665, 0, 0, 0];
        let (mut x2, mut z2, mut x3, mut z3): (Fe, Fe, Fe, Fe) =
            ([1, 0, 0, 0], [0; 4], x1, [1, 0, 0, 0]);
        let mut swap = false;
        for t in (0..255).rev() {
            let bit = (k[t / 8] >> (t % 8)) & 1 == 1;
            if swap ^ bit {
                std::mem::swap(&mut x2, &mut x3);
                std::mem::swap(&mut z2, &mut z3);
            }
            swap = bit;
            let a = add(&x2, &z2);
            let aa = mul(&a, &a);
            let b = sub(&x2, &z2);
            let bb = mul(&b, &b);
            let e = sub(&aa, &bb);
            let c = add(&x3, &z3);
            let d = sub(&x3, &z3);
            let da = mul(&d, &a);
            let cb = mul(&c, &b);
            let s = add(&da, &cb);
            x3 = mul(&s, &s);
            let diff = sub(&da, &cb);
            z3 = mul(&x1, &mul(&diff, &diff));
            x2 = mul(&aa, &bb);
            z2 = mul(&e, &add(&aa, &mul(&a24, &e)));
        }
        if swap {
            std::mem::swap(&mut x2, &mut x3);
            std::mem::swap(&mut z2, &mut z3);
        }
        to_bytes(&mul(&x2, &invert(&z2)))
    }
}
