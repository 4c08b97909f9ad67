//! The messages between the bootstrap servers of a fleet, on their Redis channels
//! (docs/protocol.md §11.3): what one server publishes to another's channel
//! (`{prefix}:to:{server}`) or to every server (`{prefix}:broadcast`). Clients never see
//! them. Version 1; all integers big-endian.
//!
//! ```
//! use mesh_proto::fleet::Message;
//! use mesh_proto::NodeId;
//!
//! let kick = Message::Kick {
//!     room: "lobby".parse().unwrap(),
//!     node: NodeId::from_bytes([1; 16]),
//!     session: 7,
//! };
//! let bytes = kick.encode();
//! assert_eq!(Message::decode(&bytes, 16 * 1024), Ok(kick));
//! assert!(Message::decode(&bytes[..5], 16 * 1024).is_err());
//! ```

use crate::{ErrorCode, NodeId, RoomName};

/// The version byte every message starts with.
pub const VERSION: u8 = 1;

/// A message between the servers of a fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Kind 1: a `Transfer` frame for a node the receiving server holds; if it does not (or
    /// the node's queue is full), the receiver answers `origin` with [`Message::Failed`].
    Unicast {
        /// The server that sent it (its 64-bit id).
        origin: u64,
        /// The room of both nodes.
        room: RoomName,
        /// The sending node.
        from: NodeId,
        /// The node to deliver to.
        to: NodeId,
        /// The encoded `Transfer` frame, as the receiving server writes it to `to`.
        frame: Vec<u8>,
    },
    /// Kind 2: a `TransferBroadcast` frame for every member of the room the receiving server
    /// holds but `from`; a server ignores its own.
    Broadcast {
        /// The server that sent it.
        origin: u64,
        /// The room.
        room: RoomName,
        /// The broadcasting node.
        from: NodeId,
        /// The encoded `TransferBroadcast` frame.
        frame: Vec<u8>,
    },
    /// Kind 3: the session `session` of `node` is replaced by a registration at another
    /// server: close it (`REPLACED`) if it is the one held.
    Kick {
        /// The room of the registration.
        room: RoomName,
        /// The node.
        node: NodeId,
        /// The replaced session (the number in its registration's value).
        session: u64,
    },
    /// Kind 4: a unicast from `from` to `to` was not delivered: tell `from` with `code`.
    Failed {
        /// The room.
        room: RoomName,
        /// The sender of the unicast (held by the receiving server).
        from: NodeId,
        /// Its destination.
        to: NodeId,
        /// `UNKNOWN_PEER` or `TARGET_BUSY`.
        code: ErrorCode,
    },
}

/// Why a fleet message did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The message ends before its fields do.
    #[error("message ends early")]
    Truncated,
    /// Another version than [`VERSION`].
    #[error("unknown version {0}")]
    Version(u8),
    /// A kind other than 1 to 4.
    #[error("unknown kind {0}")]
    Kind(u8),
    /// The room name is not valid UTF-8 or not a valid room name.
    #[error("bad room name")]
    Room,
    /// The frame is larger than the receiver's limit.
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Bytes follow the last field.
    #[error("{0} bytes after the end")]
    Trailing(usize),
}

impl Message {
    /// The kind, for logs and metrics: `unicast`, `broadcast`, `kick` or `failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unicast { .. } => "unicast",
            Self::Broadcast { .. } => "broadcast",
            Self::Kick { .. } => "kick",
            Self::Failed { .. } => "failed",
        }
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        match self {
            Self::Unicast {
                origin,
                room,
                from,
                to,
                frame,
            } => {
                out.push(1);
                out.extend_from_slice(&origin.to_be_bytes());
                put_room(&mut out, room);
                out.extend_from_slice(from.as_bytes());
                out.extend_from_slice(to.as_bytes());
                out.extend_from_slice(frame);
            }
            Self::Broadcast {
                origin,
                room,
                from,
                frame,
            } => {
                out.push(2);
                out.extend_from_slice(&origin.to_be_bytes());
                put_room(&mut out, room);
                out.extend_from_slice(from.as_bytes());
                out.extend_from_slice(frame);
            }
            Self::Kick {
                room,
                node,
                session,
            } => {
                out.push(3);
                put_room(&mut out, room);
                out.extend_from_slice(node.as_bytes());
                out.extend_from_slice(&session.to_be_bytes());
            }
            Self::Failed {
                room,
                from,
                to,
                code,
            } => {
                out.push(4);
                put_room(&mut out, room);
                out.extend_from_slice(from.as_bytes());
                out.extend_from_slice(to.as_bytes());
                out.extend_from_slice(&code.0.to_be_bytes());
            }
        }
        out
    }

    /// Decodes a message whose frame (if any) is 1 to `max_frame` bytes.
    pub fn decode(bytes: &[u8], max_frame: usize) -> Result<Self, MessageError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(MessageError::Version(version));
        }
        let kind = r.u8()?;
        let message = match kind {
            1 => {
                let origin = r.u64()?;
                let room = r.room()?;
                let (from, to) = (r.node()?, r.node()?);
                let frame = r.frame(max_frame)?;
                Self::Unicast {
                    origin,
                    room,
                    from,
                    to,
                    frame,
                }
            }
            2 => {
                let origin = r.u64()?;
                let room = r.room()?;
                let from = r.node()?;
                let frame = r.frame(max_frame)?;
                Self::Broadcast {
                    origin,
                    room,
                    from,
                    frame,
                }
            }
            3 => Self::Kick {
                room: r.room()?,
                node: r.node()?,
                session: r.u64()?,
            },
            4 => Self::Failed {
                room: r.room()?,
                from: r.node()?,
                to: r.node()?,
                code: ErrorCode(u16::from_be_bytes(r.take::<2>()?)),
            },
            other => return Err(MessageError::Kind(other)),
        };
        if !r.0.is_empty() {
            return Err(MessageError::Trailing(r.0.len()));
        }
        Ok(message)
    }
}

/// A room: one byte of length (1 to [`RoomName::MAX_LEN`]), then the name's UTF-8.
fn put_room(out: &mut Vec<u8>, room: &RoomName) {
    let name = room.as_str().as_bytes();
    // A RoomName is at most RoomName::MAX_LEN (64) bytes.
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(MessageError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.take::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, MessageError> {
        Ok(u64::from_be_bytes(self.take::<8>()?))
    }

    fn node(&mut self) -> Result<NodeId, MessageError> {
        Ok(NodeId::from_bytes(self.take::<16>()?))
    }

    fn room(&mut self) -> Result<RoomName, MessageError> {
        let len = usize::from(self.u8()?);
        if self.0.len() < len {
            return Err(MessageError::Truncated);
        }
        let (name, rest) = self.0.split_at(len);
        self.0 = rest;
        let name = std::str::from_utf8(name).map_err(|_| MessageError::Room)?;
        RoomName::try_from(name.to_owned()).map_err(|_| MessageError::Room)
    }

    /// The rest: an encoded frame, 1 to `max` bytes.
    fn frame(&mut self, max: usize) -> Result<Vec<u8>, MessageError> {
        if self.0.len() > max {
            return Err(MessageError::TooLarge(self.0.len()));
        }
        if self.0.is_empty() {
            return Err(MessageError::Truncated);
        }
        let frame = self.0.to_vec();
        self.0 = &[];
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(b: u8) -> NodeId {
        NodeId::from_bytes([b; 16])
    }

    #[test]
    fn messages_round_trip() {
        let room: RoomName = "lobby".parse().unwrap();
        for message in [
            Message::Unicast {
                origin: 0xfeed,
                room: room.clone(),
                from: node(1),
                to: node(2),
                frame: b"frame".to_vec(),
            },
            Message::Broadcast {
                origin: 7,
                room: room.clone(),
                from: node(3),
                frame: b"b".to_vec(),
            },
            Message::Kick {
                room: room.clone(),
                node: node(4),
                session: 99,
            },
            Message::Failed {
                room,
                from: node(5),
                to: node(6),
                code: ErrorCode::TARGET_BUSY,
            },
        ] {
            let bytes = message.encode();
            assert_eq!(Message::decode(&bytes, 64), Ok(message));
        }
    }

    #[test]
    fn the_kick_of_protocol_md_11_3_is_these_bytes() {
        let mut id = [0; 16];
        id[15] = 1;
        let kick = Message::Kick {
            room: "lobby".parse().unwrap(),
            node: NodeId::from_bytes(id),
            session: 7,
        };
        let hex: Vec<String> = kick.encode().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex.join(" "),
            "01 03 05 6c 6f 62 62 79 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 \
             00 00 00 00 00 00 00 07"
        );
    }

    #[test]
    fn bad_messages_are_typed_errors() {
        let kick = Message::Kick {
            room: RoomName::default(),
            node: node(1),
            session: 1,
        }
        .encode();
        assert_eq!(Message::decode(&[], 64), Err(MessageError::Truncated));
        assert_eq!(Message::decode(&[2, 3], 64), Err(MessageError::Version(2)));
        assert_eq!(Message::decode(&[1, 9], 64), Err(MessageError::Kind(9)));
        assert_eq!(
            Message::decode(&kick[..kick.len() - 1], 64),
            Err(MessageError::Truncated)
        );
        let mut long = kick.clone();
        long.push(0);
        assert_eq!(Message::decode(&long, 64), Err(MessageError::Trailing(1)));
        let mut bad_room = kick;
        bad_room[3] = 0x07; // a control character in the room name
        assert_eq!(Message::decode(&bad_room, 64), Err(MessageError::Room));
        let big = Message::Broadcast {
            origin: 1,
            room: RoomName::default(),
            from: node(1),
            frame: vec![0; 65],
        }
        .encode();
        assert_eq!(Message::decode(&big, 64), Err(MessageError::TooLarge(65)));
    }
}
