//! What travels inside unicast, transfer, route and flood payloads: application bytes, or
//! WebRTC signaling signed end to end by its origin.
//!
//! A relay (the bootstrap server or a mesh node) can drop or delay a [`Signal`], never
//! alter it: the recipient checks that the signer's key derives the claimed `from` id and
//! that the signature covers the session, both ids, the kind and the body. The DTLS
//! fingerprint inside a verified SDP then authenticates the DataChannel end to end.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::identity::{Keypair, PublicKey, Signature};
use crate::record::{NodeRecord, push_room};
use crate::seal::Sealed;
use crate::{Error, NodeId, RoomName};

/// Domain-separation prefix of the bytes a [`Signal`] signature covers.
pub const SIGNAL_CONTEXT: &[u8] = b"mesh-overlay/signal/v2\0";

/// Identifies one signaling session (one attempt to open one link), chosen at random by
/// the session's initiator. On the wire: a varint `u64`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId(pub u64);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:016x})", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The content of a payload carried between nodes, through the server or the mesh.
///
/// Every unicast payload through the mesh travels inside a [`Payload::Sealed`]; only the
/// `Signal`s of an entry session travel bare, through the server, and a `Flood` carries a
/// bare `App` (its signature proves its origin), or, for one node, a `Flooded` (which holds
/// a `Sealed`) or a `FindKey`. Application bytes for one node, lookup
/// answers and unreachable reports are only ever accepted sealed, so their origin is
/// proven and only their destination reads them (`docs/protocol.md` §9.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Payload {
    /// Tag 0: application bytes, delivered to the recipient's application.
    App(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Tag 1: a signed signaling message for the recipient's transport.
    Signal(Signal),
    /// Tag 2: the answer to a [`crate::Frame::Lookup`], sealed for its origin.
    Nodes {
        /// The `target` of the lookup.
        target: NodeId,
        /// The `id` of the lookup.
        lookup: u64,
        /// Records of peers the answering node knows (linked or not, itself included),
        /// closest to `target` first, at most [`crate::frame::MAX_NODES`]; never the
        /// lookup's origin.
        peers: Vec<NodeRecord>,
    },
    /// Tag 3: a unicast could not be delivered: the node that sends it (the origin of the
    /// sealed payload that carries this) found no next hop closer to `to`, or the TTL ran
    /// out there.
    Unreachable {
        /// The destination of the unicast that was dropped.
        to: NodeId,
        /// The `seq` of the sealed payload that was dropped.
        seq: u64,
        /// The first 8 bytes of the dropped sealed payload's authentication tag (the last
        /// 16 bytes of its ciphertext, [`crate::Sealed::proof`]): only a node the payload
        /// went through knows them, so nobody off its path can report it.
        proof: [u8; 8],
    },
    /// Tag 4: an inner payload sealed by its origin for its destination.
    Sealed(Sealed),
    /// Tag 5: application bytes whose destination acknowledges them ([`Payload::Ack`]), so
    /// that the origin can send them again, another way, when no acknowledgement comes.
    Reliable(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Tag 6: the destination of a [`Payload::Reliable`] took it (or had taken it): `seq`
    /// is that of the sealed payload that carried it. Only ever sealed.
    Ack {
        /// The `seq` of the sealed payload acknowledged.
        seq: u64,
    },
    /// Tag 7, only as the payload of a [`crate::Frame::Flood`]: a sealed
    /// [`Payload::Reliable`] for `to` (or `to`'s answer to a [`Payload::FindKey`]), sent as a flood (the last try of a reliable unicast
    /// whose routed tries went unacknowledged: every honest node forwards a flood, so it
    /// gets round relays that drop what they should route). Only `to` opens it; the others
    /// forward it, and a node linked to `to` forwards it to `to` alone.
    Flooded {
        /// The destination.
        to: NodeId,
        /// The sealed payload, as the routed tries carried it (same `seq`).
        sealed: Sealed,
    },
    /// Tag 8, only as the payload of a [`crate::Frame::Flood`]: the flood's origin asks
    /// `target` for its record (the last round of a key lookup whose routed lookups went
    /// unanswered). `target` answers with a [`Payload::Nodes`] holding its own record,
    /// sealed for the origin and sent as a [`Payload::Flooded`] flood, whose `lookup` is
    /// this flood's `id`.
    FindKey {
        /// The node whose record is wanted.
        target: NodeId,
    },
}

impl Payload {
    /// An upper estimate of the encoded size.
    pub(crate) fn size_hint(&self) -> usize {
        16 + match self {
            Payload::App(bytes) => bytes.len(),
            Payload::Signal(signal) => 160 + signal.kind.body().len(),
            Payload::Nodes { peers, .. } => 32 + 96 * peers.len(),
            Payload::Unreachable { .. } => 32,
            Payload::Sealed(sealed) => 64 + sealed.ciphertext.len(),
            Payload::Reliable(bytes) => bytes.len(),
            Payload::Ack { .. } => 16,
            Payload::Flooded { sealed, .. } => 80 + sealed.ciphertext.len(),
            Payload::FindKey { .. } => 16,
        }
    }

    /// The wire tag of this payload.
    pub fn tag(&self) -> u8 {
        match self {
            Payload::App(_) => 0,
            Payload::Signal(_) => 1,
            Payload::Nodes { .. } => 2,
            Payload::Unreachable { .. } => 3,
            Payload::Sealed(_) => 4,
            Payload::Reliable(_) => 5,
            Payload::Ack { .. } => 6,
            Payload::Flooded { .. } => 7,
            Payload::FindKey { .. } => 8,
        }
    }
}

/// Why a session was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RejectReason(pub u8);

impl RejectReason {
    /// The recipient is at its maximum degree.
    pub const FULL: RejectReason = RejectReason(1);
    /// The two nodes are already linked (or a session between them is under way).
    pub const ALREADY_LINKED: RejectReason = RejectReason(2);
    /// The recipient could not set up its side (e.g. the offer was unusable).
    pub const FAILED: RejectReason = RejectReason(3);
}

/// One signaling step. The body of each kind is what the signature covers after the kind
/// byte ([`SignalKind::tag`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SignalKind {
    /// Tag 0: the initiator's SDP offer (body: the SDP text).
    Offer(String),
    /// Tag 1: the responder's SDP answer (body: the SDP text).
    Answer(String),
    /// Tag 2: one trickled ICE candidate (body: the `candidate:` attribute value, for the
    /// session's only media section).
    Candidate(String),
    /// Tag 3: no more candidates will follow (body: empty).
    EndOfCandidates,
    /// Tag 4: the session is refused (body: the one reason byte).
    Reject(RejectReason),
}

impl SignalKind {
    /// The kind byte covered by the signature (equal to the wire tag).
    pub fn tag(&self) -> u8 {
        match self {
            SignalKind::Offer(_) => 0,
            SignalKind::Answer(_) => 1,
            SignalKind::Candidate(_) => 2,
            SignalKind::EndOfCandidates => 3,
            SignalKind::Reject(_) => 4,
        }
    }

    /// The body covered by the signature.
    pub fn body(&self) -> &[u8] {
        match self {
            SignalKind::Offer(sdp) | SignalKind::Answer(sdp) => sdp.as_bytes(),
            SignalKind::Candidate(c) => c.as_bytes(),
            SignalKind::EndOfCandidates => &[],
            SignalKind::Reject(reason) => std::slice::from_ref(&reason.0),
        }
    }

    /// A short static name, for logs and stats.
    pub fn name(&self) -> &'static str {
        match self {
            SignalKind::Offer(_) => "offer",
            SignalKind::Answer(_) => "answer",
            SignalKind::Candidate(_) => "candidate",
            SignalKind::EndOfCandidates => "end_of_candidates",
            SignalKind::Reject(_) => "reject",
        }
    }
}

/// A signaling message signed by its origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// The session this step belongs to.
    pub session: SessionId,
    /// The origin; must derive from `public_key`.
    pub from: NodeId,
    /// The recipient.
    pub to: NodeId,
    /// The origin's public key.
    pub public_key: PublicKey,
    /// The step.
    pub kind: SignalKind,
    /// The origin's signature of [`signal_message`].
    pub signature: Signature,
}

impl Signal {
    /// Builds and signs a signal from `key`'s node to `to`, for `room`.
    pub fn sign(
        key: &Keypair,
        room: &RoomName,
        session: SessionId,
        to: NodeId,
        kind: SignalKind,
    ) -> Self {
        let from = key.node_id();
        let signature = key.sign(&signal_message(room, session, &from, &to, &kind));
        Self {
            session,
            from,
            to,
            public_key: key.public(),
            kind,
            signature,
        }
    }

    /// Checks that `from` derives from `public_key` and that the signature covers every
    /// field and `room` (the recipient's: a signal signed for another room fails). Says
    /// nothing about whether `to` is the caller: check that too.
    pub fn verify(&self, room: &RoomName) -> Result<(), Error> {
        if !self.from.derives_from(&self.public_key) {
            return Err(Error::BadSignature);
        }
        let message = signal_message(room, self.session, &self.from, &self.to, &self.kind);
        self.public_key.verify(&message, &self.signature)
    }
}

/// The exact bytes a [`Signal`] signature covers: [`SIGNAL_CONTEXT`] ‖ room length (1
/// byte) ‖ room ‖ session (8 bytes, little-endian) ‖ from (16) ‖ to (16) ‖ kind tag (1) ‖
/// body.
pub fn signal_message(
    room: &RoomName,
    session: SessionId,
    from: &NodeId,
    to: &NodeId,
    kind: &SignalKind,
) -> Vec<u8> {
    let body = kind.body();
    let mut msg = Vec::with_capacity(SIGNAL_CONTEXT.len() + 65 + 8 + 32 + 1 + body.len());
    msg.extend_from_slice(SIGNAL_CONTEXT);
    push_room(&mut msg, room);
    msg.extend_from_slice(&session.0.to_le_bytes());
    msg.extend_from_slice(from.as_bytes());
    msg.extend_from_slice(to.as_bytes());
    msg.push(kind.tag());
    msg.extend_from_slice(body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_payload, encode_payload};

    fn room() -> RoomName {
        "lobby".parse().unwrap()
    }

    fn offer() -> (Keypair, Signal) {
        let key = Keypair::from_seed([5; 32]);
        let to = Keypair::from_seed([6; 32]).node_id();
        let sdp = "v=0\r\na=fingerprint:sha-256 AB:CD\r\n".to_owned();
        let signal = Signal::sign(&key, &room(), SessionId(42), to, SignalKind::Offer(sdp));
        (key, signal)
    }

    #[test]
    fn signed_signal_verifies_and_round_trips() {
        let (_, signal) = offer();
        signal.verify(&room()).unwrap();
        assert!(signal.verify(&"other".parse().unwrap()).is_err());
        let payload = Payload::Signal(signal);
        let bytes = encode_payload(&payload).unwrap();
        assert_eq!(decode_payload(&bytes).unwrap(), payload);
    }

    #[test]
    fn any_altered_field_fails_verification() {
        let (_, signal) = offer();
        let mut fingerprint = signal.clone();
        fingerprint.kind = SignalKind::Offer("v=0\r\na=fingerprint:sha-256 EE:EE\r\n".into());
        let mut session = signal.clone();
        session.session = SessionId(43);
        let mut to = signal.clone();
        to.to = NodeId::from_bytes([0; 16]);
        let mut kind = signal.clone();
        kind.kind = SignalKind::Answer("v=0\r\na=fingerprint:sha-256 AB:CD\r\n".into());
        for altered in [fingerprint, session, to, kind] {
            assert!(altered.verify(&room()).is_err(), "{altered:?}");
        }
    }

    #[test]
    fn a_key_that_does_not_derive_from_is_refused() {
        let (_, signal) = offer();
        // Re-signed by another key but still claiming the original origin.
        let mallory = Keypair::from_seed([9; 32]);
        let mut forged = Signal::sign(
            &mallory,
            &room(),
            signal.session,
            signal.to,
            signal.kind.clone(),
        );
        forged.from = signal.from;
        assert!(forged.verify(&room()).is_err());
    }

    #[test]
    fn app_payload_round_trips() {
        let payload = Payload::App(b"hello".to_vec());
        let bytes = encode_payload(&payload).unwrap();
        assert_eq!(bytes, [0, 5, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(decode_payload(&bytes).unwrap(), payload);
        assert!(decode_payload(&bytes[..3]).is_err());
        assert!(decode_payload(&[9]).is_err());
    }
}
