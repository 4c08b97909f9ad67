//! Ed25519 identities: a node's [`Keypair`], its [`PublicKey`] and [`Signature`]s, and the
//! exact bytes each protocol signature covers.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_big_array::BigArray;

use crate::{Error, NodeId, RoomName};

/// Domain-separation prefix of the bytes signed to register with a bootstrap server.
pub const REGISTER_CONTEXT: &[u8] = b"mesh-overlay/register/v1\0";

/// A node's Ed25519 key pair. Its [`NodeId`] is derived from the public half.
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// A fresh key pair from the operating system's random source.
    ///
    /// # Panics
    /// Only if the operating system has no random source at all.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system's random source is unavailable");
        Self::from_seed(seed)
    }

    /// A fresh key pair whose [`NodeId`] meets the puzzle of `difficulty` bits
    /// ([`crate::puzzle`]): keys are made until one does, 2^`difficulty` on average (256
    /// for 8 bits, some 65 000 for 16; each costs an Ed25519 key derivation and two
    /// SHA-256). `difficulty` 0 is [`Keypair::generate`].
    ///
    /// Fails if `difficulty` is above [`crate::puzzle::MAX_DIFFICULTY`].
    ///
    /// # Panics
    /// Only if the operating system has no random source at all.
    pub fn generate_with_difficulty(difficulty: u32) -> Result<Self, Error> {
        if difficulty > crate::puzzle::MAX_DIFFICULTY {
            return Err(Error::DifficultyTooHigh(difficulty));
        }
        // One draw from the operating system, then a counter in the seed's first 8 bytes:
        // every seed tried is as secret as the draw, without a system call per try.
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system's random source is unavailable");
        let base = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes"));
        for n in 0u64.. {
            seed[..8].copy_from_slice(&base.wrapping_add(n).to_le_bytes());
            let key = Self::from_seed(seed);
            if crate::puzzle::meets(&key.node_id(), difficulty) {
                return Ok(key);
            }
        }
        unreachable!("2^64 keys without one of at most 24 bits")
    }

    /// The key pair whose secret key is these 32 bytes (the form in which a key is stored).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The 32-byte secret seed, to store a persistent identity. Keep it private.
    pub fn to_seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// The [`NodeId`] derived from the public half.
    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key(&self.public())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }

    /// The X25519 shared secret of this key and `peer`'s, both taken to Curve25519 in
    /// Montgomery form (RFC 7748; the Ed25519 secret scalar, the birational map of the
    /// public point): the two ends of a pair compute the same 32 bytes, nobody else can.
    /// Fails if `peer` is not a valid key or the result is all zeros (a small-order key).
    pub fn agree(&self, peer: &PublicKey) -> Result<[u8; 32], Error> {
        let peer = VerifyingKey::from_bytes(&peer.0).map_err(|_| Error::InvalidPublicKey)?;
        let shared = peer
            .to_montgomery()
            .mul_clamped(self.signing.to_scalar_bytes());
        if shared.as_bytes() == &[0; 32] {
            return Err(Error::InvalidPublicKey);
        }
        Ok(shared.to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("Keypair")
            .field("node_id", &self.node_id())
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key: 32 bytes on the wire, no length prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Wraps 32 raw bytes; whether they are a valid key is checked by [`PublicKey::verify`].
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks that `signature` is this key's signature of `message` (strict RFC 8032
    /// verification: no malleable or small-order signatures).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), Error> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| Error::InvalidPublicKey)?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &sig)
            .map_err(|_| Error::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, ")")
    }
}

/// An Ed25519 signature: 64 bytes on the wire, no length prefix.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "BigArray")] [u8; 64]);

impl Signature {
    /// Wraps 64 raw bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// The 64 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// The exact bytes a node signs to register with a bootstrap server:
/// [`REGISTER_CONTEXT`] ‖ challenge nonce (32) ‖ node id (16) ‖ room name (UTF-8).
pub fn register_message(nonce: &[u8; 32], node_id: &NodeId, room: &RoomName) -> Vec<u8> {
    let mut msg = Vec::with_capacity(REGISTER_CONTEXT.len() + 32 + 16 + room.as_str().len());
    msg.extend_from_slice(REGISTER_CONTEXT);
    msg.extend_from_slice(nonce);
    msg.extend_from_slice(node_id.as_bytes());
    msg.extend_from_slice(room.as_str().as_bytes());
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject_tampering() {
        let key = Keypair::from_seed([3; 32]);
        let sig = key.sign(b"hello");
        assert!(key.public().verify(b"hello", &sig).is_ok());
        assert!(matches!(
            key.public().verify(b"hellp", &sig),
            Err(Error::BadSignature)
        ));
        let other = Keypair::from_seed([4; 32]);
        assert!(other.public().verify(b"hello", &sig).is_err());
    }

    #[test]
    fn seed_round_trip_keeps_identity() {
        let key = Keypair::generate();
        let again = Keypair::from_seed(key.to_seed());
        assert_eq!(key.node_id(), again.node_id());
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.to_seed())));
    }

    #[test]
    fn register_message_binds_every_field() {
        let room: RoomName = "lobby".parse().unwrap();
        let other_room: RoomName = "lobbz".parse().unwrap();
        let id = NodeId::from_bytes([1; 16]);
        let base = register_message(&[0; 32], &id, &room);
        assert_ne!(base, register_message(&[1; 32], &id, &room));
        assert_ne!(
            base,
            register_message(&[0; 32], &NodeId::from_bytes([2; 16]), &room)
        );
        assert_ne!(base, register_message(&[0; 32], &id, &other_room));
        assert!(base.starts_with(REGISTER_CONTEXT));
    }

    #[test]
    fn garbage_public_key_is_an_error_not_a_panic() {
        // Not every 32-byte string is a curve point; verification must say so.
        let sig = Signature::from_bytes([0; 64]);
        for b in [[0xFF; 32], [0x00; 32], [0x02; 32]] {
            assert!(PublicKey::from_bytes(b).verify(b"x", &sig).is_err());
        }
    }
}
