//! The one codec: every frame on every carrier goes through [`encode`] and [`decode`].
//!
//! An encoded frame is one version byte ([`PROTOCOL_VERSION`]) followed by the
//! [`Frame`] in bincode 2's *standard* configuration (little-endian, variable-length
//! integers). bincode is an implementation detail of this module: nothing else in the
//! workspace names it, so the format can be reimplemented or the crate swapped without
//! touching callers. `docs/protocol.md` specifies the bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::signal::Payload;
use crate::{Error, Frame};

/// The version byte that opens every encoded frame.
pub const PROTOCOL_VERSION: u8 = 2;

/// The largest encoded frame of the protocol, in bytes, version byte included. Carriers
/// may enforce a smaller limit (see [`decode_with_limit`]), never a larger one.
pub const MAX_FRAME_SIZE: usize = 64 * 1024;

fn config() -> impl bincode::config::Config {
    // The limit caps what a decode may allocate, whatever lengths the input claims. bincode
    // counts decoded sizes against it (8 per length, 4 per tag, 16 per NodeId...), not wire
    // bytes, so it sits well above MAX_FRAME_SIZE: the input itself was already capped.
    bincode::config::standard().with_limit::<{ 4 * MAX_FRAME_SIZE }>()
}

/// Encodes `frame`: the version byte, then the frame body.
///
/// Fails only if the result would exceed [`MAX_FRAME_SIZE`].
pub fn encode(frame: &Frame) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(size_hint(frame));
    out.push(PROTOCOL_VERSION);
    encode_into(frame, out)
}

/// Encodes a [`Payload`] (the content of a `Unicast`, `Transfer`, `Route` or `Flood`
/// payload). No version byte: the frame that carries it has one.
pub fn encode_payload(payload: &Payload) -> Result<Vec<u8>, Error> {
    encode_into(payload, Vec::with_capacity(payload.size_hint()))
}

fn encode_into<T: Serialize>(value: &T, mut out: Vec<u8>) -> Result<Vec<u8>, Error> {
    bincode::serde::encode_into_std_write(value, &mut out, config())
        .map_err(|e| Error::Encode(e.to_string()))?;
    if out.len() > MAX_FRAME_SIZE {
        return Err(Error::FrameTooLarge {
            size: out.len(),
            max: MAX_FRAME_SIZE,
        });
    }
    Ok(out)
}

/// An upper estimate of the encoded size, so that encoding allocates once.
fn size_hint(frame: &Frame) -> usize {
    let variable = match frame {
        Frame::Unicast { payload, .. }
        | Frame::Transfer { payload, .. }
        | Frame::Broadcast { payload }
        | Frame::TransferBroadcast { payload, .. }
        | Frame::Route { payload, .. } => payload.len(),
        // The key and the signature.
        Frame::Flood { payload, .. } => payload.len() + 96,
        Frame::Welcome { peers, .. } | Frame::Peers { peers } => peers.len() * 16,
        Frame::Neighbours { peers } | Frame::Nodes { peers, .. } => 16 + peers.len() * 96,
        Frame::Error { message, .. } => message.len(),
        // Fixed-size frames: the largest, Register, is under 200 bytes with its room name.
        _ => 160,
    };
    // Version, tag, length prefixes and fixed fields.
    (variable + 48).min(MAX_FRAME_SIZE)
}

/// Decodes one frame that fills `bytes` exactly, with the protocol's [`MAX_FRAME_SIZE`].
pub fn decode(bytes: &[u8]) -> Result<Frame, Error> {
    decode_with_limit(bytes, MAX_FRAME_SIZE)
}

/// Decodes one frame that fills `bytes` exactly, refusing input longer than `max`
/// (itself capped at [`MAX_FRAME_SIZE`]).
///
/// Every malformed input gives a typed [`Error`]; no input panics.
pub fn decode_with_limit(bytes: &[u8], max: usize) -> Result<Frame, Error> {
    let max = max.min(MAX_FRAME_SIZE);
    if bytes.len() > max {
        return Err(Error::FrameTooLarge {
            size: bytes.len(),
            max,
        });
    }
    let (&version, body) = bytes.split_first().ok_or(Error::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(Error::UnsupportedVersion {
            got: version,
            supported: PROTOCOL_VERSION,
        });
    }
    decode_exact(body)
}

/// Decodes a [`Payload`] that fills `bytes` exactly. Every malformed input gives a typed
/// [`Error`]; no input panics.
pub fn decode_payload(bytes: &[u8]) -> Result<Payload, Error> {
    if bytes.len() > MAX_FRAME_SIZE {
        return Err(Error::FrameTooLarge {
            size: bytes.len(),
            max: MAX_FRAME_SIZE,
        });
    }
    decode_exact(bytes)
}

fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| Error::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(Error::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, NodeId};

    #[test]
    fn version_byte_leads() {
        let bytes = encode(&Frame::GetPeers { max: 5 }).unwrap();
        assert_eq!(bytes, [PROTOCOL_VERSION, 7, 5]);
    }

    #[test]
    fn typed_errors_for_each_kind_of_bad_input() {
        assert!(matches!(decode(&[]), Err(Error::Empty)));
        assert!(matches!(
            decode(&[1, 7, 5]),
            Err(Error::UnsupportedVersion { got: 1, .. })
        ));
        assert!(matches!(decode(&[2, 200]), Err(Error::Malformed(_))));
        assert!(matches!(decode(&[2, 7]), Err(Error::Malformed(_))));
        assert!(matches!(
            decode(&[2, 7, 5, 0]),
            Err(Error::TrailingBytes(1))
        ));
        assert!(matches!(
            decode_with_limit(&[2, 7, 5], 2),
            Err(Error::FrameTooLarge { size: 3, max: 2 })
        ));
    }

    #[test]
    fn huge_claimed_lengths_do_not_allocate() {
        // Unicast to a zero id with a payload claiming u64::MAX bytes.
        let mut bytes = vec![PROTOCOL_VERSION, 3];
        bytes.extend_from_slice(&[0; 16]);
        bytes.push(253);
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode(&bytes), Err(Error::Malformed(_))));
    }

    #[test]
    fn oversized_frames_do_not_encode() {
        let frame = Frame::Broadcast {
            payload: vec![0; MAX_FRAME_SIZE],
        };
        assert!(matches!(encode(&frame), Err(Error::FrameTooLarge { .. })));
        let frame = Frame::Error {
            code: ErrorCode::UNKNOWN_PEER,
            target: Some(NodeId::from_bytes([9; 16])),
            message: "no such peer".into(),
        };
        assert_eq!(decode(&encode(&frame).unwrap()).unwrap(), frame);
    }

    #[test]
    fn size_hint_covers_every_frame() {
        let id = NodeId::from_bytes([1; 16]);
        let key = crate::identity::Keypair::from_seed([1; 32]);
        let frames = [
            Frame::Challenge {
                nonce: [0; 32],
                limits: crate::Limits {
                    max_frame_size: u32::MAX,
                    max_payload_size: u32::MAX,
                    frames_per_second: u32::MAX,
                    frame_burst: u32::MAX,
                    id_difficulty: u32::MAX,
                },
            },
            Frame::Register {
                public_key: key.public(),
                node_id: id,
                room: "r".repeat(crate::RoomName::MAX_LEN).parse().unwrap(),
                signature: key.sign(b"x"),
            },
            Frame::Unicast {
                to: id,
                payload: vec![0; 70_000.min(MAX_FRAME_SIZE - 64)],
            },
            Frame::Welcome {
                node_id: id,
                peers: vec![id; 300],
                stun_port: Some(u16::MAX),
            },
            Frame::Error {
                code: ErrorCode(u16::MAX),
                target: Some(id),
                message: "m".repeat(300),
            },
            Frame::GetPeers { max: u16::MAX },
        ];
        for frame in frames {
            let len = encode(&frame).unwrap().len();
            assert!(
                size_hint(&frame) >= len,
                "{}: hint {} < {len}",
                frame.kind(),
                size_hint(&frame)
            );
        }
    }

    #[test]
    fn largest_frames_round_trip() {
        // Fill each variable-size frame up to the largest size that encodes.
        let fill = |make: &dyn Fn(usize) -> Frame| {
            // The largest n whose frame still encodes (frames grow with n).
            let (mut n, mut hi) = (0, MAX_FRAME_SIZE);
            while n < hi {
                let mid = (n + hi).div_ceil(2);
                if encode(&make(mid)).is_ok() {
                    n = mid
                } else {
                    hi = mid - 1
                }
            }
            let frame = make(n);
            let bytes = encode(&frame).unwrap();
            assert!(bytes.len() > MAX_FRAME_SIZE - 32, "{} bytes", bytes.len());
            assert_eq!(decode(&bytes).unwrap(), frame);
        };
        let id = NodeId::from_bytes([7; 16]);
        fill(&|n| Frame::Unicast {
            to: id,
            payload: vec![0xAB; n],
        });
        fill(&|n| Frame::Broadcast {
            payload: vec![1; n],
        });
        fill(&|n| Frame::Peers {
            peers: vec![id; n / 16],
        });
        fill(&|n| Frame::Welcome {
            node_id: id,
            peers: vec![id; n / 16],
            stun_port: Some(u16::MAX),
        });
        fill(&|n| Frame::Error {
            code: ErrorCode(1),
            target: Some(id),
            message: "e".repeat(n),
        });
        // And the exact maximum: a Broadcast of 1 + 1 + 3 + 65531 = 65536 bytes.
        let frame = Frame::Broadcast {
            payload: vec![9; MAX_FRAME_SIZE - 5],
        };
        let bytes = encode(&frame).unwrap();
        assert_eq!(bytes.len(), MAX_FRAME_SIZE);
        assert_eq!(decode(&bytes).unwrap(), frame);
    }

    #[test]
    fn invalid_room_name_is_malformed() {
        // Register with a 0-length room name, the rest zeroed.
        let mut bytes = vec![PROTOCOL_VERSION, 1];
        bytes.extend_from_slice(&[0; 32 + 16]);
        bytes.push(0);
        bytes.extend_from_slice(&[0; 64]);
        assert!(matches!(decode(&bytes), Err(Error::Malformed(_))));
    }
}
