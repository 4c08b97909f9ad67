//! The worked examples of `docs/protocol.md` are true, and the document shows no others:
//! each frame built here encodes to the exact hex printed there and decodes back, the
//! identity example (key, SHA-256, NodeId, signed bytes) is what the code computes, and
//! each decoder-conformance input is accepted or refused as the document says.
//!
//! Hex in the document is lowercase bytes separated by whitespace, either in a fenced
//! ```` ```hex ```` block (possibly over several lines) or inline in backticks in a table.

use mesh_proto::identity::{self, Keypair, PublicKey, REGISTER_CONTEXT};
use mesh_proto::{ErrorCode, Frame, Limits, NodeId, RoomName, decode, encode};
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
        ("01 0a", None),
        ("01 09 0c 02 00", None),
        ("01 09 0f 00 02 c3 28", None),
        (
            "01 05 fe 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            None,
        ),
        ("01 05 fd ff ff ff ff ff ff ff ff", None),
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
