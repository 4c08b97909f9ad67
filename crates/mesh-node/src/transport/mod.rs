//! Transports: how links between nodes carry bytes. The driver (and, through it, the pure
//! `mesh_core` state machine) decides *what* to send and to whom; a transport only opens
//! links as told, reports what happens to them, and moves bytes.
//!
//! Two implementations: [`webrtc`] (real WebRTC PeerConnections, one reliable ordered
//! DataChannel per link) and [`memory`] (in-process links for tests and large simulations;
//! an addition, never a stand-in for the WebRTC tests).
//!
//! Contract, common to both:
//! - Every method returns at once (no `.await`); work happens on the transport's own tasks.
//! - Everything the transport has to say arrives as a [`TransportEvent`] on the bounded
//!   channel given to its constructor, in order per session.
//! - A session is one attempt to open one link to one peer, as [`Role::Offerer`] or
//!   [`Role::Answerer`]. The offerer emits `LocalSignal(Offer)` and then candidates; the
//!   answerer waits for the remote offer through [`Transport::remote_signal`], then emits
//!   `LocalSignal(Answer)` and candidates. Remote signals of a session may arrive in any
//!   order (a candidate before the offer/answer is kept until it can be applied).
//! - When the link is usable, `LinkUp`; from then on `Data` for each message received, and
//!   [`Transport::send`] works. Exactly one `Closed` ends every session that was opened,
//!   whether it failed, was closed by [`Transport::close`], or the remote went away.
//! - Two optional parts, with defaults that do nothing: [`Transport::candidate_pairs`]
//!   (how each link's packets travel; unknown by default, and in [`memory`]) and
//!   [`Transport::use_server_stun`] (the bootstrap server's STUN responder, announced in
//!   its `Welcome`; ignored by default, and in [`memory`]).

mod candidate;
pub mod memory;
pub mod webrtc;

pub use candidate::{
    Candidate, CandidateKind, CandidatePair, CandidatePairsFuture, CandidateProtocol,
};

use bytes::Bytes;
use mesh_proto::NodeId;
use mesh_proto::signal::{SessionId, SignalKind};

pub use mesh_core::Role;

/// A signaling step produced locally or to be applied from the remote side. These are
/// the unsigned bodies; the driver signs and verifies them (`mesh_proto::signal`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignalBody {
    /// An SDP offer.
    Offer(String),
    /// An SDP answer.
    Answer(String),
    /// One ICE candidate (the `candidate:` attribute value).
    Candidate(String),
    /// No more candidates.
    EndOfCandidates,
}

impl SignalBody {
    /// The wire form of this step.
    pub fn into_kind(self) -> SignalKind {
        match self {
            SignalBody::Offer(sdp) => SignalKind::Offer(sdp),
            SignalBody::Answer(sdp) => SignalKind::Answer(sdp),
            SignalBody::Candidate(c) => SignalKind::Candidate(c),
            SignalBody::EndOfCandidates => SignalKind::EndOfCandidates,
        }
    }

    /// The step a wire signal asks the transport to apply (`None` for a rejection, which
    /// the overlay handles itself).
    pub fn from_kind(kind: SignalKind) -> Option<Self> {
        match kind {
            SignalKind::Offer(sdp) => Some(SignalBody::Offer(sdp)),
            SignalKind::Answer(sdp) => Some(SignalBody::Answer(sdp)),
            SignalKind::Candidate(c) => Some(SignalBody::Candidate(c)),
            SignalKind::EndOfCandidates => Some(SignalBody::EndOfCandidates),
            _ => None,
        }
    }
}

/// What a transport reports.
#[derive(Debug)]
pub enum TransportEvent {
    /// A local signaling step of `session`, to be carried to the remote side.
    LocalSignal {
        /// The session.
        session: SessionId,
        /// The step.
        signal: SignalBody,
    },
    /// The link of `session` to `peer` is open.
    LinkUp {
        /// The session that opened it.
        session: SessionId,
        /// The remote node.
        peer: NodeId,
    },
    /// One message received on the link of `session`.
    Data {
        /// The session whose link received it.
        session: SessionId,
        /// The message.
        bytes: Bytes,
    },
    /// The session ended (failed, closed locally, or closed by the remote). Sent exactly
    /// once per opened session; nothing follows it for that session.
    Closed {
        /// The session.
        session: SessionId,
        /// Why, for logs.
        reason: String,
    },
}

/// Why [`Transport::send`] did not take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The link's send buffer is full: the remote (or the network) is slower than the
    /// sender. The message was not sent.
    #[error("the link's send buffer is full")]
    Full,
    /// No open link for this session.
    #[error("the link is not open")]
    Closed,
}

/// Opens links and moves bytes. See the [module docs](self) for the contract.
pub trait Transport: Send + Sync + 'static {
    /// Starts `session` with `peer` in `role`. Errors only if the session cannot even be
    /// started (e.g. the transport is at its limit); otherwise the outcome is reported
    /// through events.
    fn open(&self, session: SessionId, peer: NodeId, role: Role) -> Result<(), crate::Error>;

    /// Applies a (verified) signaling step from the remote side of `session`. Unknown or
    /// closed sessions ignore it.
    fn remote_signal(&self, session: SessionId, signal: SignalBody);

    /// Queues one message on the open link of `session`, without waiting.
    fn send(&self, session: SessionId, bytes: Bytes) -> Result<(), SendError>;

    /// Closes `session` (its link, if open). A `Closed` event follows.
    fn close(&self, session: SessionId);

    /// The selected candidate pair of the open link of each of `sessions`, in that order
    /// (`None` for a session without an open link, or when the transport cannot tell).
    ///
    /// Returns at once; the returned future reads the pairs when it runs and holds no
    /// borrow of the transport, so the caller can run it on a task of its own. The default
    /// knows nothing: `None` for every session.
    fn candidate_pairs(&self, sessions: &[SessionId]) -> CandidatePairsFuture {
        let unknown = vec![None; sessions.len()];
        Box::pin(std::future::ready(unknown))
    }

    /// The bootstrap server runs a STUN responder at `url` (`stun:<host>:<port>`, from its
    /// `Welcome`), or none (`None`). A transport with no STUN server configured of its own
    /// may use it for the sessions it opens from now on. The default ignores it.
    fn use_server_stun(&self, url: Option<String>) {
        let _ = url;
    }

    /// What the transport's TURN-over-TCP/TLS connections did (see
    /// [`webrtc::Config::with_ice_servers`]). The default has none: all zero.
    fn turn_stream_stats(&self) -> webrtc::TurnStreamStats {
        webrtc::TurnStreamStats::default()
    }
}
