//! Node records: how nodes tell each other about a third node. A record is the node's
//! public key signed by the node itself for one room, so a record names a real key pair
//! that chose to be in this room: a neighbour cannot pass on a node of another room, and
//! whoever learns a record can seal unicasts for that node ([`crate::seal`]).
//!
//! A record does not prove the node is still there, nor that it is not one of many keys a
//! liar made: what a node does with the contacts it hears of is bounded by policy
//! (`docs/protocol.md` §10.10).

use serde::{Deserialize, Serialize};

use crate::identity::{Keypair, PublicKey, Signature};
use crate::{Error, NodeId, RoomName};

/// Domain-separation prefix of the bytes a [`NodeRecord`] signature covers.
pub const RECORD_CONTEXT: &[u8] = b"mesh-overlay/record/v2\0";

/// A node's public key, signed by that node for one room. 96 bytes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's Ed25519 public key; its id is `NodeId::from_public_key(key)`.
    pub key: PublicKey,
    /// The node's signature of [`record_message`] for the room.
    pub signature: Signature,
}

impl NodeRecord {
    /// The record of `key`'s node in `room`.
    pub fn sign(key: &Keypair, room: &RoomName) -> Self {
        let public = key.public();
        Self {
            key: public,
            signature: key.sign(&record_message(&public, room)),
        }
    }

    /// The node the record is about.
    pub fn id(&self) -> NodeId {
        NodeId::from_public_key(&self.key)
    }

    /// Checks the signature for `room`; returns the node's id.
    pub fn verify(&self, room: &RoomName) -> Result<NodeId, Error> {
        self.key
            .verify(&record_message(&self.key, room), &self.signature)?;
        Ok(self.id())
    }
}

/// The exact bytes a [`NodeRecord`] signature covers: [`RECORD_CONTEXT`] ‖ room length (1
/// byte) ‖ room (UTF-8) ‖ public key (32).
pub fn record_message(key: &PublicKey, room: &RoomName) -> Vec<u8> {
    let mut msg = Vec::with_capacity(RECORD_CONTEXT.len() + 1 + 64 + 32);
    msg.extend_from_slice(RECORD_CONTEXT);
    push_room(&mut msg, room);
    msg.extend_from_slice(key.as_bytes());
    msg
}

/// Appends a room as it appears in every signed byte string of version 2: its length in
/// one byte (a room name is 1 to 64 bytes), then its UTF-8 bytes.
pub(crate) fn push_room(msg: &mut Vec<u8>, room: &RoomName) {
    let room = room.as_str().as_bytes();
    msg.push(room.len() as u8);
    msg.extend_from_slice(room);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_verifies_in_its_room_only() {
        let key = Keypair::from_seed([4; 32]);
        let lobby: RoomName = "lobby".parse().unwrap();
        let other: RoomName = "other".parse().unwrap();
        let record = NodeRecord::sign(&key, &lobby);
        assert_eq!(record.verify(&lobby).unwrap(), key.node_id());
        assert!(record.verify(&other).is_err());
        let mut forged = record;
        forged.key = Keypair::from_seed([5; 32]).public();
        assert!(forged.verify(&lobby).is_err());
    }
}
