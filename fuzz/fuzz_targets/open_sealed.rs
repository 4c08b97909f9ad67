//! Fuzzes what a node does with a payload that reaches it: decode it; if it is `Sealed` (or
//! a `Flooded` one, which holds a `Sealed`),
//! derive the pair key from the key it names and try to open it as a fixed node (the
//! destination of the sealing vector of `docs/protocol.md` §9.7: RFC 8032 TEST 2, room
//! `lobby`); verify every node record and signal in what it holds, and in a bare payload
//! too. Nothing may panic: not a key that is no curve point or of small order, not a
//! ciphertext shorter than a tag, not a record or signature of random bytes.
//!
//! A fuzzer cannot forge a Poly1305 tag, so what it writes almost never opens. To reach the
//! code behind a successful open with fuzzer-chosen plaintexts, the target also seals the
//! `ciphertext` bytes under a fixed pair's key (RFC 8032 TEST 1 to the fixed node, with the
//! input's epoch and seq), checks that they open to themselves and that a flipped tag bit
//! does not, and handles them as an opened plaintext.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mesh_proto::identity::Keypair;
use mesh_proto::seal::SEAL_OVERHEAD;
use mesh_proto::signal::Payload;
use mesh_proto::{NodeId, PairKey, RoomName, decode_payload};

/// The node the payloads reach: RFC 8032 TEST 2.
static ME: LazyLock<Keypair> = LazyLock::new(|| Keypair::from_seed(seed(RFC8032_TEST2)));
/// The fixed origin of the sealed plaintexts: RFC 8032 TEST 1.
static SENDER: LazyLock<Keypair> = LazyLock::new(|| Keypair::from_seed(seed(RFC8032_TEST1)));
static ROOM: LazyLock<RoomName> = LazyLock::new(|| "lobby".parse().unwrap());
/// SENDER's key to seal for ME, and ME's to open what SENDER sealed.
static SEAL: LazyLock<PairKey> = LazyLock::new(|| {
    PairKey::derive(
        &SENDER,
        &ME.public(),
        &SENDER.node_id(),
        &ME.node_id(),
        &ROOM,
    )
    .unwrap()
});
static OPEN: LazyLock<PairKey> = LazyLock::new(|| {
    PairKey::derive(
        &ME,
        &SENDER.public(),
        &SENDER.node_id(),
        &ME.node_id(),
        &ROOM,
    )
    .unwrap()
});

const RFC8032_TEST1: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_TEST2: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

fn seed(hex: &str) -> [u8; 32] {
    std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = decode_payload(data) else {
        return;
    };
    let sealed = match payload {
        Payload::Sealed(sealed) => sealed,
        // A flood for one node holds a sealed payload for it (protocol.md §10.4).
        Payload::Flooded { sealed, .. } => sealed,
        payload => {
            // A bare payload (a signal through the server, or one a node must ignore):
            // its records and signals are checked all the same.
            verify_contents(&payload);
            return;
        }
    };
    let me = ME.node_id();

    // As the destination: the key comes from the payload itself.
    let origin = sealed.origin();
    if let Ok(key) = PairKey::derive(&ME, &sealed.key, &origin, &me, &ROOM) {
        if let Ok(plaintext) = key.open(sealed.epoch, sealed.seq, &sealed.ciphertext) {
            handle_opened(&plaintext);
        }
    }

    // The fuzzer's bytes as a plaintext that opens.
    let ciphertext = SEAL.seal(sealed.epoch, sealed.seq, &sealed.ciphertext);
    assert_eq!(ciphertext.len(), sealed.ciphertext.len() + SEAL_OVERHEAD);
    let plaintext = OPEN
        .open(sealed.epoch, sealed.seq, &ciphertext)
        .expect("what was sealed for this node opens");
    assert_eq!(plaintext, sealed.ciphertext);
    let mut altered = ciphertext;
    let last = altered.len() - 1;
    altered[last] ^= 0x80;
    assert!(OPEN.open(sealed.epoch, sealed.seq, &altered).is_err());
    assert!(
        OPEN.open(sealed.epoch, sealed.seq.wrapping_add(1), &altered)
            .is_err()
    );
    handle_opened(&plaintext);
});

/// What a node does with the plaintext of a sealed payload.
fn handle_opened(plaintext: &[u8]) {
    match decode_payload(plaintext) {
        // A sealed payload inside a sealed payload is ignored (protocol.md §9.2), and so
        // is a flood's payload for one node.
        Ok(Payload::Sealed(_) | Payload::Flooded { .. } | Payload::FindKey { .. }) | Err(_) => {}
        Ok(inner) => verify_contents(&inner),
    }
}

/// Verifies every record and signal of `payload` for the fixed room; never panics.
fn verify_contents(payload: &Payload) {
    match payload {
        Payload::Signal(signal) => {
            // A signature that verifies implies that `from` derives from the key.
            if signal.verify(&ROOM).is_ok() {
                assert!(signal.from.derives_from(&signal.public_key));
            }
        }
        Payload::Nodes { peers, .. } => {
            for record in peers {
                if let Ok(id) = record.verify(&ROOM) {
                    assert_eq!(id, NodeId::from_public_key(&record.key));
                }
            }
        }
        _ => {}
    }
}
