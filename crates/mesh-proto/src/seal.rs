//! Sealed payloads: authenticated encryption between two identities, so that only the
//! destination of a unicast relayed through the mesh can read it, and knows who wrote it.
//!
//! The two ends agree on a secret with X25519 between their Ed25519 identities
//! ([`Keypair::agree`]); HKDF-SHA-256 derives one key per direction and room from it
//! ([`PairKey::derive`]); each payload is XChaCha20-Poly1305 under that key, with a nonce
//! made of the sender's random `epoch` (chosen once per run, so a restarted node never
//! reuses a nonce) and a `seq` that counts up within the epoch. A pair's keys are derived
//! once and cached by the caller: a sealed unicast costs one AEAD, not a signature.
//!
//! Only the two ends hold the key, so a payload that opens was written by the other end
//! (or by the recipient itself): the origin is authenticated to the recipient, and to
//! nobody else (relays cannot check it; it is not a signature). The byte layout and every
//! derivation step, with a test vector, are in `docs/protocol.md` §9.7.

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::identity::{Keypair, PublicKey};
use crate::record::push_room;
use crate::{Error, NodeId, RoomName};

/// The HKDF salt of a sealing key.
pub const SEAL_SALT: &[u8] = b"mesh-overlay/seal/v2\0";

/// Bytes the AEAD adds to a plaintext (the Poly1305 tag).
pub const SEAL_OVERHEAD: usize = 16;

/// A payload sealed by its origin for its destination (`Payload::Sealed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The origin's Ed25519 public key; the origin is `NodeId::from_public_key(key)`.
    pub key: PublicKey,
    /// Chosen at random by the origin once per run: the first half of the nonce.
    pub epoch: u64,
    /// Counts the origin's sealed payloads to this destination within `epoch` from 0: the
    /// second half of the nonce, and what the destination's replay window remembers.
    pub seq: u64,
    /// The sealed encoding of the inner payload, followed by the 16-byte tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// The origin, derived from [`Sealed::key`].
    pub fn origin(&self) -> NodeId {
        NodeId::from_public_key(&self.key)
    }

    /// The origin of an encoded payload, if it is a `Sealed` one (tag 4, then the 32
    /// bytes of its key), read without decoding the rest: what a node checks against the
    /// `from` of a `Route` or `Transfer` before it relays or opens it (docs/protocol.md
    /// §10.2). `None` for any other payload, or one cut short inside its key.
    pub fn origin_of(payload: &[u8]) -> Option<NodeId> {
        match payload {
            [4, key @ ..] if key.len() >= 32 => {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(&key[..32]);
                Some(NodeId::from_public_key(&PublicKey::from_bytes(bytes)))
            }
            _ => None,
        }
    }

    /// What an unreachable report quotes to show it saw this payload: the first 8 bytes of
    /// its authentication tag (the last 16 bytes of the ciphertext; zeros if shorter).
    pub fn proof(&self) -> [u8; 8] {
        let mut proof = [0; 8];
        if let Some(tag) = self
            .ciphertext
            .len()
            .checked_sub(SEAL_OVERHEAD)
            .map(|at| &self.ciphertext[at..])
        {
            proof.copy_from_slice(&tag[..8]);
        }
        proof
    }
}

/// The key of one direction of one pair in one room: `from` seals with it, `to` opens.
#[derive(Clone)]
pub struct PairKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for PairKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("PairKey(..)")
    }
}

impl PairKey {
    /// The key `from` seals with for `to` in `room`, computed by either end: `own` is the
    /// caller's key pair, `other` the other end's public key.
    ///
    /// `HKDF-SHA-256(salt = SEAL_SALT, ikm = X25519 secret, info = room length (1 byte) ‖
    /// room ‖ from (16) ‖ to (16))`, 32 bytes. Fails if `other` is not a usable key.
    pub fn derive(
        own: &Keypair,
        other: &PublicKey,
        from: &NodeId,
        to: &NodeId,
        room: &RoomName,
    ) -> Result<Self, Error> {
        Ok(Self::expand(&own.agree(other)?, from, to, room))
    }

    /// Both keys of a pair for `own`'s node and `other`: the one it seals with for
    /// `other_id`, and the one it opens what `other_id` sealed for it with. One X25519 for
    /// the two (the costly step).
    pub fn derive_both(
        own: &Keypair,
        other: &PublicKey,
        other_id: &NodeId,
        room: &RoomName,
    ) -> Result<(Self, Self), Error> {
        let secret = own.agree(other)?;
        let me = own.node_id();
        Ok((
            Self::expand(&secret, &me, other_id, room),
            Self::expand(&secret, other_id, &me, room),
        ))
    }

    /// The HKDF step of [`PairKey::derive`].
    fn expand(secret: &[u8; 32], from: &NodeId, to: &NodeId, room: &RoomName) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(SEAL_SALT), secret);
        let mut info = Vec::with_capacity(1 + 64 + 32);
        push_room(&mut info, room);
        info.extend_from_slice(from.as_bytes());
        info.extend_from_slice(to.as_bytes());
        let mut key = [0u8; 32];
        hk.expand(&info, &mut key)
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// Seals `plaintext` under this key with the nonce `(epoch, seq)`. A key must never
    /// seal twice with one nonce: the caller counts `seq` up within an epoch.
    pub fn seal(&self, epoch: u64, seq: u64, plaintext: &[u8]) -> Vec<u8> {
        self.cipher
            .encrypt(
                &nonce(epoch, seq),
                AeadPayload {
                    msg: plaintext,
                    aad: &[],
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any plaintext shorter than 256 GiB")
    }

    /// Opens `ciphertext` sealed under this key with the nonce `(epoch, seq)`.
    pub fn open(&self, epoch: u64, seq: u64, ciphertext: &[u8]) -> Result<Vec<u8>, Error> {
        self.cipher
            .decrypt(
                &nonce(epoch, seq),
                AeadPayload {
                    msg: ciphertext,
                    aad: &[],
                },
            )
            .map_err(|_| Error::BadSeal)
    }
}

/// The 24-byte XChaCha20 nonce: `epoch` (8 bytes LE) ‖ `seq` (8 bytes LE) ‖ 8 zero bytes.
fn nonce(epoch: u64, seq: u64) -> XNonce {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&epoch.to_le_bytes());
    n[8..16].copy_from_slice(&seq.to_le_bytes());
    n.into()
}

#[cfg(test)]
mod tests {

    #[test]
    fn origin_of_reads_the_sealed_header_alone() {
        let a = Keypair::from_seed([1; 32]);
        let sealed = Sealed {
            key: a.public(),
            epoch: 7,
            seq: 9,
            ciphertext: vec![0; 16],
        };
        let bytes = crate::encode_payload(&crate::signal::Payload::Sealed(sealed)).unwrap();
        assert_eq!(Sealed::origin_of(&bytes), Some(a.node_id()));
        assert_eq!(Sealed::origin_of(&bytes[..33]), Some(a.node_id()));
        assert_eq!(Sealed::origin_of(&bytes[..32]), None, "cut inside the key");
        let app = crate::encode_payload(&crate::signal::Payload::App(vec![4; 40])).unwrap();
        assert_eq!(Sealed::origin_of(&app), None, "not sealed");
        assert_eq!(Sealed::origin_of(&[]), None);
    }

    use super::*;

    fn room(s: &str) -> RoomName {
        s.parse().unwrap()
    }

    #[test]
    fn both_ends_derive_the_same_key_and_only_they_open() {
        let a = Keypair::from_seed([1; 32]);
        let b = Keypair::from_seed([2; 32]);
        let mallory = Keypair::from_seed([3; 32]);
        let (ia, ib) = (a.node_id(), b.node_id());
        let lobby = room("lobby");
        let seal = PairKey::derive(&a, &b.public(), &ia, &ib, &lobby).unwrap();
        let open = PairKey::derive(&b, &a.public(), &ia, &ib, &lobby).unwrap();
        let ct = seal.seal(7, 0, b"hello");
        assert_eq!(ct.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(open.open(7, 0, &ct).unwrap(), b"hello");

        // Another nonce, another direction, another room, another key: all refused.
        assert!(open.open(7, 1, &ct).is_err());
        assert!(open.open(8, 0, &ct).is_err());
        let back = PairKey::derive(&b, &a.public(), &ib, &ia, &lobby).unwrap();
        assert!(back.open(7, 0, &ct).is_err());
        let other_room = PairKey::derive(&b, &a.public(), &ia, &ib, &room("other")).unwrap();
        assert!(other_room.open(7, 0, &ct).is_err());
        let eve = PairKey::derive(&mallory, &a.public(), &ia, &ib, &lobby).unwrap();
        assert!(eve.open(7, 0, &ct).is_err());
        // Any flipped bit fails the tag.
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 1;
            assert!(open.open(7, 0, &bad).is_err(), "bit flip at {i}");
        }
    }

    #[test]
    fn a_key_that_is_not_a_point_is_refused() {
        let a = Keypair::from_seed([1; 32]);
        let id = a.node_id();
        // The identity point (small order): X25519 with it gives all zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let r = PairKey::derive(&a, &PublicKey::from_bytes(identity), &id, &id, &room("r"));
        assert!(r.is_err());
    }
}
