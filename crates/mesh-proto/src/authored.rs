//! Frames that an origin authors and every node on their way acts on — a [`Frame::Flood`]
//! (delivered and forwarded by everyone) and a [`Frame::Lookup`] (forwarded, then answered)
//! — are signed by their origin, for one room. A node verifies one before it forwards or
//! answers it, so a forged one dies at the first honest node, and since an honest node
//! forwards only what it verified, a neighbour that sends one that fails has lied.
//!
//! The TTL is not signed (each node lowers it): a relay can shorten or lengthen a flood's
//! reach, as it can drop it, but not change what it says nor who said it.

use crate::identity::{Keypair, PublicKey, Signature};
use crate::record::push_room;
use crate::{Error, Frame, NodeId, RoomName};

/// Domain-separation prefix of the bytes a [`Frame::Flood`] signature covers.
pub const FLOOD_CONTEXT: &[u8] = b"mesh-overlay/flood/v2\0";

/// Domain-separation prefix of the bytes a [`Frame::Lookup`] signature covers.
pub const LOOKUP_CONTEXT: &[u8] = b"mesh-overlay/lookup/v2\0";

/// The exact bytes a [`Frame::Flood`] signature covers: [`FLOOD_CONTEXT`] ‖ room length (1
/// byte) ‖ room ‖ id (8 bytes LE) ‖ payload.
pub fn flood_message(room: &RoomName, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(FLOOD_CONTEXT.len() + 65 + 8 + payload.len());
    msg.extend_from_slice(FLOOD_CONTEXT);
    push_room(&mut msg, room);
    msg.extend_from_slice(&id.to_le_bytes());
    msg.extend_from_slice(payload);
    msg
}

/// The exact bytes a [`Frame::Lookup`] signature covers: [`LOOKUP_CONTEXT`] ‖ room length
/// (1 byte) ‖ room ‖ target (16) ‖ id (8 bytes LE).
pub fn lookup_message(room: &RoomName, target: &NodeId, id: u64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(LOOKUP_CONTEXT.len() + 65 + 16 + 8);
    msg.extend_from_slice(LOOKUP_CONTEXT);
    push_room(&mut msg, room);
    msg.extend_from_slice(target.as_bytes());
    msg.extend_from_slice(&id.to_le_bytes());
    msg
}

/// A signed [`Frame::Flood`] of `payload` (an encoded `Payload`) by `key`'s node.
pub fn flood(key: &Keypair, room: &RoomName, id: u64, ttl: u8, payload: Vec<u8>) -> Frame {
    let signature = key.sign(&flood_message(room, id, &payload));
    Frame::Flood {
        key: key.public(),
        id,
        ttl,
        payload,
        signature,
    }
}

/// A signed [`Frame::Lookup`] of `target` by `key`'s node.
pub fn lookup(key: &Keypair, room: &RoomName, target: NodeId, id: u64, ttl: u8) -> Frame {
    Frame::Lookup {
        target,
        key: key.public(),
        id,
        ttl,
        signature: key.sign(&lookup_message(room, &target, id)),
    }
}

/// Checks a flood's signature for `room`.
pub fn verify_flood(
    room: &RoomName,
    key: &PublicKey,
    id: u64,
    payload: &[u8],
    signature: &Signature,
) -> Result<(), Error> {
    key.verify(&flood_message(room, id, payload), signature)
}

/// Checks a lookup's signature for `room`.
pub fn verify_lookup(
    room: &RoomName,
    key: &PublicKey,
    target: &NodeId,
    id: u64,
    signature: &Signature,
) -> Result<(), Error> {
    key.verify(&lookup_message(room, target, id), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_verifies_only_as_signed() {
        let key = Keypair::from_seed([1; 32]);
        let lobby: RoomName = "lobby".parse().unwrap();
        let Frame::Flood {
            key: k,
            id,
            payload,
            signature,
            ..
        } = flood(&key, &lobby, 9, 16, b"\x00\x02hi".to_vec())
        else {
            unreachable!()
        };
        verify_flood(&lobby, &k, id, &payload, &signature).unwrap();
        assert!(verify_flood(&"other".parse().unwrap(), &k, id, &payload, &signature).is_err());
        assert!(verify_flood(&lobby, &k, id + 1, &payload, &signature).is_err());
        assert!(verify_flood(&lobby, &k, id, b"\x00\x02ho", &signature).is_err());
        let mallory = Keypair::from_seed([2; 32]).public();
        assert!(verify_flood(&lobby, &mallory, id, &payload, &signature).is_err());
    }

    #[test]
    fn a_lookup_verifies_only_as_signed() {
        let key = Keypair::from_seed([1; 32]);
        let lobby: RoomName = "lobby".parse().unwrap();
        let target = Keypair::from_seed([3; 32]).node_id();
        let Frame::Lookup {
            key: k,
            id,
            signature,
            ..
        } = lookup(&key, &lobby, target, 5, 16)
        else {
            unreachable!()
        };
        verify_lookup(&lobby, &k, &target, id, &signature).unwrap();
        assert!(verify_lookup(&lobby, &k, &key.node_id(), id, &signature).is_err());
        assert!(verify_lookup(&lobby, &k, &target, id + 1, &signature).is_err());
    }
}
