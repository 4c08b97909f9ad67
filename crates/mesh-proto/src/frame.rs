//! The frames of the protocol, as serde types. Their byte layout is fixed by
//! [`crate::codec`] and specified in `docs/protocol.md`.
//!
//! The variant order of [`Frame`] is the wire tag: new variants go at the end, never
//! in between, and a variant is never reordered or removed. A decoder refuses tags it does
//! not know, so once a version is deployed a new kind needs a new version byte
//! (`docs/protocol.md` §7).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::identity::{PublicKey, Signature};
use crate::record::NodeRecord;
use crate::{Error, NodeId};

/// One message on the bootstrap WebSocket (a binary WebSocket message carries exactly one
/// encoded frame). "client→server" and "server→client" give the only direction in which
/// each frame is valid; a frame received in the wrong direction is a protocol error
/// ([`ErrorCode::UNEXPECTED_FRAME`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Frame {
    /// Tag 0, server→client, the first frame of every connection: a fresh random nonce to
    /// sign, and the limits this server enforces.
    Challenge {
        /// 32 random bytes, never reused.
        nonce: [u8; 32],
        /// The limits of this server, so a client can stay within them.
        limits: Limits,
    },
    /// Tag 1, client→server: prove ownership of `public_key` and join `room`.
    Register {
        /// The node's Ed25519 public key.
        public_key: PublicKey,
        /// Must be [`NodeId::from_public_key`] of `public_key`.
        node_id: NodeId,
        /// The mesh to join; peers of other rooms are invisible.
        room: RoomName,
        /// Signature by `public_key` of [`crate::identity::register_message`].
        signature: Signature,
    },
    /// Tag 2, server→client: registration accepted.
    Welcome {
        /// The registered id, echoed.
        node_id: NodeId,
        /// A uniformly random sample of other registered peers of the room (never the node
        /// itself), at most the server's configured sample size.
        peers: Vec<NodeId>,
        /// The UDP port of the server's STUN binding responder, if it runs one: on the host
        /// name of the server's URL. A node with no STUN server of its own may use
        /// `stun:<that host>:<stun_port>` to learn its server-reflexive address.
        stun_port: Option<u16>,
    },
    /// Tag 3, client→server: deliver `payload` to `to` (as [`Frame::Transfer`]).
    Unicast {
        /// The recipient, registered in the same room.
        to: NodeId,
        /// Opaque bytes; the server never parses them.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Tag 4, server→client: a [`Frame::Unicast`] addressed to this node.
    Transfer {
        /// The registered sender.
        from: NodeId,
        /// The sender's payload, unchanged.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Tag 5, client→server: deliver `payload` to every other peer of the room
    /// (as [`Frame::TransferBroadcast`]).
    Broadcast {
        /// Opaque bytes; the server never parses them.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Tag 6, server→client: a [`Frame::Broadcast`] of another peer of the room.
    TransferBroadcast {
        /// The registered sender.
        from: NodeId,
        /// The sender's payload, unchanged.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Tag 7, client→server: ask for a fresh random sample of the room's peers.
    GetPeers {
        /// The most peers wanted; the server may send fewer (its own cap, or the room size).
        max: u16,
    },
    /// Tag 8, server→client: the answer to [`Frame::GetPeers`].
    Peers {
        /// A uniformly random sample of other peers of the room.
        peers: Vec<NodeId>,
    },
    /// Tag 9, server→client: something went wrong. If the code is fatal
    /// ([`ErrorCode::is_fatal`]) the server closes the connection right after this frame.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// The peer the error is about, if any (e.g. an unknown unicast target).
        target: Option<NodeId>,
        /// Human-readable detail, for logs only.
        message: String,
    },
    /// Tag 10, node→neighbour on a DataChannel: a unicast relayed through the mesh. Each
    /// relay forwards it towards `to`; the neighbour of `to` delivers it as
    /// [`Frame::Transfer`] with the same `from` and `payload`.
    Route {
        /// The final recipient.
        to: NodeId,
        /// The origin, as it claims (relays do not authenticate it; signaling payloads are
        /// signed end to end, see [`crate::signal`]).
        from: NodeId,
        /// Hops left: a relay that receives 0 and is not the neighbour of `to` drops it.
        ttl: u8,
        /// How relays choose the next hop from here on: the origin sends
        /// [`Steering::Learned`]; relays move it on to the next mode, never back.
        steering: Steering,
        /// An encoded [`crate::signal::Payload`]; relays never parse it.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Tag 11, node→neighbour on a DataChannel: a broadcast flooded through the mesh,
    /// signed by its origin. Each node verifies it before anything else, delivers it once
    /// (deduplicated on the origin and `id`) and forwards it to its other neighbours while
    /// `ttl` > 0. See [`crate::authored`].
    Flood {
        /// The origin's public key; the origin is `NodeId::from_public_key(key)`.
        key: PublicKey,
        /// Chosen at random by the origin; `(origin, id)` identifies the flood.
        id: u64,
        /// Hops left (not signed: each node lowers it).
        ttl: u8,
        /// An encoded [`crate::signal::Payload`] (`App`).
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        /// The origin's signature of [`crate::authored::flood_message`].
        signature: Signature,
    },
    /// Tag 12, node→neighbour: ask for the neighbour's current neighbours.
    GetNeighbours,
    /// Tag 13, node→neighbour: the answer to [`Frame::GetNeighbours`] (also sent unasked
    /// when the sender's neighbour set changes).
    Neighbours {
        /// The records of the sender's neighbours (never the recipient itself).
        peers: Vec<NodeRecord>,
    },
    /// Tag 14, node→neighbour: ask for the peers the neighbour knows closest to `target`
    /// (a one-link lookup: how a node finds peers in a part of the id space it knows
    /// nobody in).
    FindNodes {
        /// The id to find peers near.
        target: NodeId,
    },
    /// Tag 15, node→neighbour: the answer to [`Frame::FindNodes`].
    Nodes {
        /// The `target` of the request.
        target: NodeId,
        /// Records of peers the sender knows, closest to `target` first, at most
        /// [`MAX_NODES`]; never the recipient itself.
        peers: Vec<NodeRecord>,
    },
    /// Tag 16, node→neighbour: the sender is about to close this link. The recipient stops
    /// sending on it and stops counting it; the sender closes it once what is in flight
    /// has arrived.
    Closing,
    /// Tag 17, node→neighbour: a lookup routed through the mesh, signed by its origin.
    /// Each node verifies it, drops a repeat (the origin and `id`), and forwards it
    /// greedily towards `target` (never to the origin); the node that can get no closer
    /// answers the origin with a sealed [`crate::signal::Payload::Nodes`]: the records of
    /// the peers it knows closest to `target`. See [`crate::authored`].
    Lookup {
        /// The id to find the closest nodes to (any 16 bytes; often the origin's own).
        target: NodeId,
        /// The origin's public key; the origin is `NodeId::from_public_key(key)`.
        key: PublicKey,
        /// Chosen at random by the origin; `(origin, id)` identifies the lookup.
        id: u64,
        /// Hops left (not signed): a node that receives 0 answers instead of forwarding.
        ttl: u8,
        /// The origin's signature of [`crate::authored::lookup_message`].
        signature: Signature,
    },
    /// Tag 18, node→neighbour: doors the sender knows — its own, if it runs one, and those
    /// its neighbours announced as theirs. A door is a bootstrap server (`docs/protocol.md`
    /// §6) where its node is itself registered in this link's room; a node that later
    /// needs a server (it lost every link) may register at one before its own bootstrap
    /// server.
    Doors {
        /// At most [`MAX_DOORS`] doors (a receiver ignores any beyond).
        doors: Vec<Door>,
    },
}

/// The most doors a [`Frame::Doors`] carries.
pub const MAX_DOORS: usize = 8;

/// One door of a [`Frame::Doors`]: the node that runs it and where.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Door {
    /// The node registered at the door (which runs it).
    pub node: NodeId,
    /// The door's WebSocket URL.
    pub url: ServerUrl,
}

/// The most peers a [`Frame::Nodes`] carries.
pub const MAX_NODES: usize = 16;

impl Frame {
    /// A short static name of the frame kind, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Challenge { .. } => "challenge",
            Frame::Register { .. } => "register",
            Frame::Welcome { .. } => "welcome",
            Frame::Unicast { .. } => "unicast",
            Frame::Transfer { .. } => "transfer",
            Frame::Broadcast { .. } => "broadcast",
            Frame::TransferBroadcast { .. } => "transfer_broadcast",
            Frame::GetPeers { .. } => "get_peers",
            Frame::Peers { .. } => "peers",
            Frame::Error { .. } => "error",
            Frame::Route { .. } => "route",
            Frame::Flood { .. } => "flood",
            Frame::GetNeighbours => "get_neighbours",
            Frame::Neighbours { .. } => "neighbours",
            Frame::FindNodes { .. } => "find_nodes",
            Frame::Nodes { .. } => "nodes",
            Frame::Closing => "closing",
            Frame::Lookup { .. } => "lookup",
            Frame::Doors { .. } => "doors",
        }
    }
}

/// The limits a bootstrap server enforces, announced in [`Frame::Challenge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest encoded frame the server accepts, in bytes (version byte included).
    pub max_frame_size: u32,
    /// Largest `payload` of a unicast or broadcast, in bytes.
    pub max_payload_size: u32,
    /// Sustained frames per second allowed per connection.
    pub frames_per_second: u32,
    /// Frames one connection may send at once: the size of a token bucket that refills at
    /// `frames_per_second` (not a number of frames on top of that rate).
    pub frame_burst: u32,
    /// The difficulty a node id must meet to register ([`crate::puzzle`]): leading zero
    /// bits of SHA-256 of the id. 0 (the default of the reference server): none.
    pub id_difficulty: u32,
}

/// `FromStr` (through the type's `TryFrom<String>`, which validates), `From<_> for String`
/// and `Display` for a validated string newtype.
macro_rules! validated_string {
    ($t:ident) => {
        impl FromStr for $t {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                Self::try_from(s.to_owned())
            }
        }

        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_string!(RoomName);
validated_string!(ServerUrl);

/// The name of a room: an independent mesh on one server. 1 to
/// [`RoomName::MAX_LEN`] bytes of UTF-8 with no control characters.
/// On the wire: a string (varint byte length, then UTF-8).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

impl RoomName {
    /// Longest room name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RoomName {
    /// The room `default`.
    fn default() -> Self {
        Self("default".to_owned())
    }
}

impl TryFrom<String> for RoomName {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        if s.is_empty() || s.len() > Self::MAX_LEN || s.chars().any(char::is_control) {
            return Err(Error::InvalidRoomName(
                s.chars().take(Self::MAX_LEN).collect(),
            ));
        }
        Ok(Self(s))
    }
}

/// The WebSocket URL of a server a node registers at: the bootstrap server, or a door
/// ([`Frame::Doors`]; a door is a bootstrap server that a node runs for its neighbours).
/// `ws://` or `wss://` and at least one more byte, at most [`ServerUrl::MAX_LEN`] bytes,
/// with no control character and no space. On the wire: a string (varint byte length, then
/// UTF-8).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerUrl(String);

impl ServerUrl {
    /// Longest server URL, in bytes.
    pub const MAX_LEN: usize = 256;

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServerUrl {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        let rest = s.strip_prefix("ws://").or_else(|| s.strip_prefix("wss://"));
        let valid = rest.is_some_and(|rest| !rest.is_empty())
            && s.len() <= Self::MAX_LEN
            && !s.chars().any(|c| c.is_control() || c.is_whitespace());
        if !valid {
            return Err(Error::InvalidServerUrl(
                s.chars().take(Self::MAX_LEN).collect(),
            ));
        }
        Ok(Self(s))
    }
}

/// How the relays of a [`Frame::Route`] choose its next hop (`docs/protocol.md` §10.3): a
/// ladder of four phases that a frame only ever climbs. Within a phase it cannot loop:
/// greedy steps get strictly closer to `to` (over the two-hop view), and learned routes
/// retrace paths `to`'s own traffic took. A frame that went back and forth between the two
/// could, and did, until its TTL ran out; climbing bounds the switches to three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Steering {
    /// Wire value 0, as the origin sends it: the neighbour through which `to`'s traffic
    /// last came, where known (the reverse of a path that worked, which the answers to a
    /// newcomer need before the nodes near its id know it); else a greedy step, and the
    /// frame goes on as [`Steering::Greedy`].
    Learned,
    /// Wire value 1: greedy steps; where greedy can make no progress, a learned route, and
    /// the frame goes on as [`Steering::Return`].
    Greedy,
    /// Wire value 2: learned routes; where none is known, a greedy step, and the frame goes
    /// on as [`Steering::Last`].
    Return,
    /// Wire value 3: greedy steps only.
    Last,
}

/// A numeric error code carried by [`Frame::Error`]. Codes are stable across versions;
/// an unknown code decodes fine (it is just a number) and should be treated as fatal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ErrorCode(pub u16);

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $label:literal, $fatal:literal; )*) => {
        impl ErrorCode {
            $( $(#[$doc])* pub const $name: ErrorCode = ErrorCode($value); )*

            /// Every code this version defines, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];

            /// A short stable name, for logs and metric labels (`unknown` if undefined).
            pub fn label(self) -> &'static str {
                match self.0 {
                    $($value => $label,)*
                    _ => "unknown",
                }
            }

            /// Whether the server closes the connection after sending this code.
            /// Unknown codes are fatal.
            pub fn is_fatal(self) -> bool {
                match self.0 {
                    $($value => $fatal,)*
                    _ => true,
                }
            }
        }
    };
}

error_codes! {
    /// The frame did not decode (bad bytes, or a text WebSocket message).
    MALFORMED = 1, "malformed", true;
    /// The frame's version byte is not one this server speaks.
    UNSUPPORTED_VERSION = 2, "unsupported_version", true;
    /// The frame is larger than [`Limits::max_frame_size`].
    FRAME_TOO_LARGE = 3, "frame_too_large", true;
    /// A payload is larger than [`Limits::max_payload_size`].
    PAYLOAD_TOO_LARGE = 4, "payload_too_large", true;
    /// The connection sent frames faster than [`Limits::frames_per_second`] allows.
    RATE_LIMITED = 5, "rate_limited", true;
    /// The server is at its connection limit; try again later or elsewhere.
    SERVER_FULL = 6, "server_full", true;
    /// The room is at its peer limit.
    ROOM_FULL = 7, "room_full", true;
    /// A frame other than `Register` arrived before registration.
    NOT_REGISTERED = 8, "not_registered", true;
    /// A second `Register` arrived on a registered connection.
    ALREADY_REGISTERED = 9, "already_registered", true;
    /// The node id does not derive from the key, or the signature does not verify.
    AUTH_FAILED = 10, "auth_failed", true;
    /// Another key already holds this node id in the room.
    NODE_ID_IN_USE = 11, "node_id_in_use", true;
    /// The unicast target is not registered in the room. Not fatal.
    UNKNOWN_PEER = 12, "unknown_peer", false;
    /// A frame that is only valid in the other direction (server→client).
    UNEXPECTED_FRAME = 13, "unexpected_frame", true;
    /// Nothing was received for longer than the idle timeout (or no registration in time).
    IDLE_TIMEOUT = 14, "idle_timeout", true;
    /// The server is shutting down.
    SHUTTING_DOWN = 15, "shutting_down", true;
    /// A new session proved the same key and took over this node id.
    REPLACED = 16, "replaced", true;
    /// The unicast target's outgoing queue is full; the frame was dropped. Not fatal.
    TARGET_BUSY = 17, "target_busy", false;
    /// The node id does not meet the server's [`Limits::id_difficulty`]
    /// ([`crate::puzzle`]): the node needs a key whose id does.
    ID_BELOW_DIFFICULTY = 18, "id_below_difficulty", true;
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({} {})", self.0, self.label())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.label(), self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_validated() {
        assert!("lobby".parse::<RoomName>().is_ok());
        assert!("".parse::<RoomName>().is_err());
        assert!("a\nb".parse::<RoomName>().is_err());
        assert!("x".repeat(RoomName::MAX_LEN).parse::<RoomName>().is_ok());
        assert!(
            "x".repeat(RoomName::MAX_LEN + 1)
                .parse::<RoomName>()
                .is_err()
        );
    }

    #[test]
    fn door_urls_are_validated() {
        assert!("ws://127.0.0.1:8080/ws".parse::<ServerUrl>().is_ok());
        assert!("wss://door.example/ws".parse::<ServerUrl>().is_ok());
        for bad in [
            "",
            "ws://",
            "http://a/ws",
            "ws://a b/ws",
            "ws://a\n",
            "WS://a",
        ] {
            assert!(bad.parse::<ServerUrl>().is_err(), "{bad:?}");
        }
        let longest = format!("ws://{}", "x".repeat(ServerUrl::MAX_LEN - 5));
        assert!(longest.parse::<ServerUrl>().is_ok());
        assert!(format!("{longest}x").parse::<ServerUrl>().is_err());
    }

    #[test]
    fn error_codes_are_unique_and_labelled() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.0), "duplicate code {}", code.0);
            assert_ne!(code.label(), "unknown");
        }
        assert_eq!(ErrorCode(999).label(), "unknown");
        assert!(ErrorCode(999).is_fatal());
        assert!(!ErrorCode::UNKNOWN_PEER.is_fatal());
        assert!(ErrorCode::AUTH_FAILED.is_fatal());
    }
}
