//! Wire types and the one codec of the peer-relayed WebRTC mesh overlay.
//!
//! - [`NodeId`]: a node's 128-bit identity, shown as a UUID, derived from its Ed25519
//!   [`identity::PublicKey`]; XOR [`Distance`] between ids.
//! - [`Frame`]: every message on the bootstrap WebSocket and on the mesh's DataChannels.
//! - [`signal::Payload`]: what unicast/route/flood payloads carry: application bytes, or
//!   WebRTC signaling signed end to end ([`signal::Signal`]), or lookup answers and
//!   unreachable reports; through the mesh, sealed for their destination ([`seal`]).
//! - [`NodeRecord`]: a node's key signed for a room ([`record`]); floods and lookups are
//!   signed by their origin ([`authored`]).
//! - [`puzzle`]: the optional cost of an id, S/Kademlia's static puzzle (leading zero bits
//!   of SHA-256 of the id).
//! - [`codec`]: [`encode`] and [`decode`], the only way bytes become frames. Every malformed
//!   input is a typed [`Error`]; nothing panics.
//!
//! The byte layout is specified in `docs/protocol.md`.
//!
//! ```
//! use mesh_proto::{decode, encode, identity::Keypair, Frame};
//!
//! let key = Keypair::generate();
//! let frame = Frame::Unicast { to: key.node_id(), payload: b"offer".to_vec() };
//! let bytes = encode(&frame)?;
//! assert_eq!(bytes[0], mesh_proto::PROTOCOL_VERSION);
//! assert_eq!(decode(&bytes)?, frame);
//! assert!(decode(&bytes[..bytes.len() - 1]).is_err());
//! # Ok::<(), mesh_proto::Error>(())
//! ```
#![warn(missing_docs)]

pub mod authored;
pub mod codec;
pub mod fleet;
pub mod frame;
pub mod id;
pub mod identity;
pub mod puzzle;
pub mod record;
pub mod seal;
pub mod signal;

pub use codec::{
    MAX_FRAME_SIZE, PROTOCOL_VERSION, decode, decode_payload, decode_with_limit, encode,
    encode_payload,
};
pub use frame::{Door, ErrorCode, Frame, Limits, MAX_DOORS, RoomName, ServerUrl, Steering};
pub use id::{Distance, NodeId};
pub use record::NodeRecord;
pub use seal::{PairKey, Sealed};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame was zero bytes long; every frame starts with a version byte.
    #[error("empty frame: every frame starts with the protocol version byte")]
    Empty,
    /// The version byte is not one this implementation speaks.
    #[error("unsupported protocol version {got}: this implementation speaks version {supported}")]
    UnsupportedVersion {
        /// The version byte received.
        got: u8,
        /// The version this implementation speaks.
        supported: u8,
    },
    /// A frame exceeds the size limit in force.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's size in bytes.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// The frame body is not a valid encoding of any frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A valid frame was followed by extra bytes.
    #[error("malformed frame: {0} trailing bytes after a complete frame")]
    TrailingBytes(usize),
    /// Encoding failed (cannot happen for in-memory frames within the size limit).
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// Text that is not a UUID was given as a node id.
    #[error("invalid node id (expected a UUID such as 67e55044-10b1-826f-9247-bb680e5fe0c8): {0}")]
    InvalidNodeId(String),
    /// A room name was empty, too long or held control characters.
    #[error("invalid room name {0:?}: use 1 to 64 bytes of UTF-8 without control characters")]
    InvalidRoomName(String),
    /// A server URL (the bootstrap server's or a door's) was not `ws://` or `wss://`, too
    /// long, or held spaces or control characters.
    #[error(
        "invalid server URL {0:?}: use a ws:// or wss:// URL of at most 256 bytes without spaces or control characters"
    )]
    InvalidServerUrl(String),
    /// 32 bytes that are not an Ed25519 public key.
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    /// A signature that does not verify under the claimed key.
    #[error("signature does not verify under the claimed public key")]
    BadSignature,
    /// A sealed payload that does not open under the pair's key: altered, sealed for
    /// another node or room, or not sealed by the node it claims.
    #[error(
        "sealed payload does not open: altered, or not sealed by its claimed origin for this node and room"
    )]
    BadSeal,
    /// A key was asked to meet a puzzle harder than [`puzzle::MAX_DIFFICULTY`].
    #[error(
        "id difficulty {0} is too high: at most 24 bits (each bit doubles the 2^d keys a node makes to find its id)"
    )]
    DifficultyTooHigh(u32),
}
