//! The worked examples of `docs/protocol.md` are true, and the document shows no others:
//! each frame and payload built here encodes to the exact hex printed there and decodes
//! back, the identity example (key, SHA-256, NodeId, signed bytes) and the signal example
//! (signed bytes, signature) are what the code computes, and each decoder-conformance
//! input (frames and payloads) is accepted or refused as the document says.
//!
//! Hex in the document is lowercase bytes separated by whitespace, either in a fenced
//! ```` ```hex ```` block (possibly over several lines) or inline in backticks in a table.

use mesh_proto::identity::{self, Keypair, PublicKey, REGISTER_CONTEXT};
use mesh_proto::signal::{
    Payload, RejectReason, SIGNAL_CONTEXT, SessionId, Signal, SignalKind, signal_message,
};
use mesh_proto::{
    ErrorCode, Frame, Limits, NodeId, RoomName, decode, decode_payload, encode, encode_payload,
};
use sha2::{Digest, Sha256};

const PROTOCOL_MD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/protocol.md"
));

/// RFC 8032 section 7.1, TEST 1: the secret key (seed) of the Register example.
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
/// Two other peers of the examples (any 16 bytes are a valid NodeId on the wire).
const PEER_A: &str = "5a8f4b2e-0c3d-8e17-9f60-2b7d4c1e8a93";
const PEER_B: &str = "c3e91f07-6d52-8a4b-b1c8-0e9f2d7a5b64";
/// The session id of the signal example: a 64-bit value, as the initiator draws them.
const SESSION: u64 = 0x0123_4567_89ab_cdef;
/// The (shortened) SDP of the signal example's offer.
const SDP: &str = "v=0\r\n";
/// The id of the Flood example.
const FLOOD_ID: u64 = 0x1122_3344_5566_7788;

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.split_whitespace().collect::<String>()).unwrap()
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

fn keypair() -> Keypair {
    Keypair::from_seed(bytes(SEED).try_into().unwrap())
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

/// The application payload carried by the Route and Flood examples.
fn app_payload() -> Payload {
    Payload::App(b"hi!".to_vec())
}

/// The signal example: the key of the Register example offers a session to `PEER_A`.
fn offer_signal() -> Signal {
    Signal::sign(
        &keypair(),
        SessionId(SESSION),
        id(PEER_A),
        SignalKind::Offer(SDP.into()),
    )
}

fn signed_signal_message() -> Vec<u8> {
    let signal = offer_signal();
    signal_message(signal.session, &signal.from, &signal.to, &signal.kind)
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
                to: id(PEER_A),
                from: id(NODE_ID),
                ttl: 16,
                steering: mesh_proto::Steering::Learned,
                payload: encode_payload(&app_payload()).unwrap(),
            },
        ),
        (
            "flood",
            Frame::Flood {
                from: id(NODE_ID),
                id: FLOOD_ID,
                ttl: 16,
                payload: encode_payload(&app_payload()).unwrap(),
            },
        ),
        ("get_neighbours", Frame::GetNeighbours),
        (
            "neighbours",
            Frame::Neighbours {
                peers: vec![id(PEER_A), id(PEER_B)],
            },
        ),
        ("find_nodes", Frame::FindNodes { target: id(PEER_A) }),
        (
            "nodes",
            Frame::Nodes {
                target: id(PEER_A),
                peers: vec![id(PEER_B)],
            },
        ),
        ("closing", Frame::Closing),
        (
            "lookup",
            Frame::Lookup {
                target: id(NODE_ID),
                from: id(NODE_ID),
                ttl: 16,
            },
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
    ]
}

/// Every example payload of the document (encoded without a version byte), by name.
fn payload_examples() -> Vec<(&'static str, Payload)> {
    vec![
        ("app payload", app_payload()),
        ("signed offer", Payload::Signal(offer_signal())),
        (
            "nodes payload",
            Payload::Nodes {
                target: id(NODE_ID),
                peers: vec![id(PEER_A)],
            },
        ),
        (
            "unreachable payload",
            Payload::Unreachable {
                to: id(PEER_B),
                payload_tag: 0,
            },
        ),
    ]
}

/// The hex the document prints in fenced blocks, other than frames, by name.
fn identity_examples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("seed", bytes(SEED)),
        ("public key", bytes(PUBLIC_KEY)),
        ("SHA-256 of the public key", bytes(KEY_DIGEST)),
        ("NodeId bytes", id(NODE_ID).as_bytes().to_vec()),
        ("signed register message", signed_message()),
        ("signed signal message", signed_signal_message()),
    ]
}

/// The decoder-conformance table of the document: input, and the frame it decodes to
/// (`None`: it must be refused).
fn conformance_examples() -> Vec<(&'static str, Option<Frame>)> {
    let hi = Frame::Broadcast {
        payload: b"hi!".to_vec(),
    };
    vec![
        ("01 07 05", Some(Frame::GetPeers { max: 5 })),
        ("01 07 fb 05 00", Some(Frame::GetPeers { max: 5 })),
        ("01 fb 07 00 05", Some(Frame::GetPeers { max: 5 })),
        ("01 05 fb 03 00 68 69 21", Some(hi)),
        ("01 07 fc 05 00 00 00", None),
        ("01 07 05 00", None),
        ("01 07", None),
        ("02 07 05", None),
        ("01 0c", Some(Frame::GetNeighbours)),
        ("01 0e", None),
        ("01 10", Some(Frame::Closing)),
        (
            "01 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            Some(Frame::Welcome {
                node_id: NodeId::from_bytes([0; 16]),
                peers: Vec::new(),
                stun_port: None,
            }),
        ),
        (
            "01 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            None,
        ),
        ("01 13", None),
        ("01 12 00", Some(Frame::Doors { doors: Vec::new() })),
        (
            "01 12 01 5a 8f 4b 2e 0c 3d 8e 17 9f 60 2b 7d 4c 1e 8a 93 03 68 69 21",
            None,
        ),
        ("01 09 0c 02 00", None),
        (
            "01 0a 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 10 04 00",
            None,
        ),
        ("01 09 0f 00 02 c3 28", None),
        (
            "01 05 fe 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            None,
        ),
        ("01 05 fd ff ff ff ff ff ff ff ff", None),
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
        ("04 00", None),
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
    }
}

#[test]
fn every_identity_example_is_documented() {
    let blocks = fenced_hex_blocks();
    for (name, value) in identity_examples() {
        let hex = spaced(&value);
        assert!(
            blocks.contains(&hex),
            "docs/protocol.md must show the {name} as a ```hex block:\n{hex}"
        );
    }
    assert!(PROTOCOL_MD.contains(NODE_ID), "the NodeId text form");
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
    checked.extend(identity_examples().iter().map(|(_, value)| spaced(value)));
    let blocks = fenced_hex_blocks();
    assert_eq!(blocks.len(), checked.len(), "one ```hex block per example");
    for block in blocks {
        assert!(checked.contains(&block), "unchecked ```hex block:\n{block}");
    }
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
    assert_eq!(REGISTER_CONTEXT, b"mesh-overlay/register/v1\0");
    let Frame::Register { signature, .. } = &frame_examples()[1].1 else {
        panic!("the second example is the Register frame");
    };
    public.verify(&message, signature).unwrap();
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
    }
    // The Route and Flood examples carry the App payload example.
    let app = encode_payload(&app_payload()).unwrap();
    for (name, frame) in frame_examples() {
        if let Frame::Route { payload, .. } | Frame::Flood { payload, .. } = frame {
            assert_eq!(payload, app, "the {name} example carries the App payload");
        }
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
    signal.verify().unwrap();

    // The signed bytes, assembled by hand as the document lists them.
    assert_eq!(SIGNAL_CONTEXT, b"mesh-overlay/signal/v1\0");
    let mut by_hand = SIGNAL_CONTEXT.to_vec();
    by_hand.extend_from_slice(&SESSION.to_le_bytes());
    by_hand.extend_from_slice(id(NODE_ID).as_bytes());
    by_hand.extend_from_slice(id(PEER_A).as_bytes());
    by_hand.push(0); // the kind tag of Offer
    by_hand.extend_from_slice(SDP.as_bytes());
    assert_eq!(signed_signal_message(), by_hand);
    assert_eq!(by_hand.len(), 23 + 8 + 16 + 16 + 1 + SDP.len());
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
        SessionId(5),
        &signal.from,
        &signal.to,
        &SignalKind::EndOfCandidates,
    );
    assert_eq!(&small[23..31], &[5, 0, 0, 0, 0, 0, 0, 0]);
    let small_signal = Signal::sign(
        &keypair(),
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
    assert!(altered.verify().is_err());
    let mut altered = signal;
    altered.session = SessionId(SESSION + 1);
    assert!(altered.verify().is_err());
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
