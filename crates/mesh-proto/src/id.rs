//! Node identities: [`NodeId`] and the XOR metric over them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::PublicKey;

/// A node's identity on the overlay: 128 bits, shown and parsed as a UUID.
///
/// A `NodeId` is derived from the node's Ed25519 public key ([`NodeId::from_public_key`]):
/// the first 16 bytes of SHA-256(public key) with the UUID version-8 and RFC 9562 variant
/// bits set. Any 16 bytes parse and decode as a `NodeId`; whether one belongs to a key is
/// checked with [`NodeId::derives_from`].
///
/// On the wire a `NodeId` is its 16 bytes, in order, with no length prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId([u8; 16]);

impl NodeId {
    /// The length of a `NodeId` in bytes.
    pub const LEN: usize = 16;

    /// Wraps 16 raw bytes. Use [`NodeId::from_public_key`] to derive one from a key.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 raw bytes, as they travel on the wire.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Derives the `NodeId` of a public key: SHA-256 of the 32 key bytes, truncated to
    /// 16 bytes, with the UUID version set to 8 and the variant to RFC 9562.
    pub fn from_public_key(key: &PublicKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(*uuid::Builder::from_custom_bytes(bytes).as_uuid().as_bytes())
    }

    /// Whether this `NodeId` is the one derived from `key`.
    pub fn derives_from(&self, key: &PublicKey) -> bool {
        *self == Self::from_public_key(key)
    }

    /// The XOR distance between two ids, the metric of the overlay's routing.
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut d = [0u8; 16];
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        uuid::Uuid::from_bytes(self.0).hyphenated().fmt(f)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = crate::Error;

    /// Parses any UUID text form (hyphenated, simple, braced or URN).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(|u| Self(*u.as_bytes()))
            .map_err(|e| crate::Error::InvalidNodeId(e.to_string()))
    }
}

impl From<[u8; 16]> for NodeId {
    fn from(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

/// The XOR distance between two [`NodeId`]s, ordered as a 128-bit big-endian integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Distance([u8; 16]);

impl Distance {
    /// The distance as a 128-bit unsigned integer.
    pub fn as_u128(&self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The number of leading zero bits: how long a prefix the two ids share
    /// (128 for an id and itself).
    pub fn leading_zeros(&self) -> u32 {
        self.as_u128().leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn derived_id_is_uuid_v8_with_rfc_variant() {
        let key = Keypair::from_seed([7; 32]);
        let id = NodeId::from_public_key(&key.public());
        let uuid = uuid::Uuid::from_bytes(*id.as_bytes());
        assert_eq!(uuid.get_version_num(), 8);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        assert!(id.derives_from(&key.public()));
        assert!(!id.derives_from(&Keypair::from_seed([8; 32]).public()));
    }

    #[test]
    fn display_parse_round_trip() {
        let id = Keypair::from_seed([1; 32]).node_id();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<NodeId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<NodeId>().unwrap(), id);
        assert!("not-a-uuid".parse::<NodeId>().is_err());
    }

    #[test]
    fn xor_distance_is_a_metric() {
        let a = NodeId::from_bytes([0xF0; 16]);
        let b = NodeId::from_bytes([0x0F; 16]);
        assert_eq!(a.distance(&a).as_u128(), 0);
        assert_eq!(a.distance(&a).leading_zeros(), 128);
        assert_eq!(a.distance(&b), b.distance(&a));
        assert_eq!(a.distance(&b).as_u128(), u128::MAX);
        let c = NodeId::from_bytes([0xF1; 16]);
        assert!(a.distance(&c) < a.distance(&b));
    }

    #[test]
    fn ordering_follows_bytes() {
        let lo = NodeId::from_bytes([0; 16]);
        let mut hi_bytes = [0; 16];
        hi_bytes[0] = 1;
        assert!(lo < NodeId::from_bytes(hi_bytes));
    }
}
