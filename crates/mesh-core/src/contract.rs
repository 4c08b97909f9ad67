//! The contract between a [`crate::Node`] and its driver: what goes in ([`Input`]), what
//! comes out ([`Output`]) and what the application hears ([`Event`]).

use std::time::Duration;

use bytes::Bytes;
use mesh_proto::signal::{SessionId, SignalKind};
use mesh_proto::{ErrorCode, Frame, NodeId, ServerUrl};

#[cfg(doc)]
use crate::{Config, Node};

/// How a signaling session's messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// Through a server (`Unicast` → `Transfer`): the bootstrap server or a door. Only for
    /// a node's entry session and for answering a newcomer that has no other way in.
    Server,
    /// Through the mesh (`Route` → … → `Transfer`).
    Mesh,
}

/// Which side of a session this node plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The initiator: creates the offer.
    Offerer,
    /// Answers the remote offer.
    Answerer,
}

/// Something that happened, for the node to react to.
#[derive(Debug)]
pub enum Input {
    /// The driver registered the node at `server`, as an [`Output::Register`] asked (or,
    /// at the start, at [`crate::Node::joining_at`]); `peers` is the server's `Welcome`
    /// sample.
    Registered {
        /// The server.
        server: ServerUrl,
        /// Other peers of the room.
        peers: Vec<NodeId>,
    },
    /// The driver could not register the node at `server` (unreachable, refused, timed
    /// out).
    RegisterFailed {
        /// The server.
        server: ServerUrl,
    },
    /// A `Peers` answer from the server the node signals through.
    ServerPeers {
        /// Other peers of the room.
        peers: Vec<NodeId>,
    },
    /// A `Transfer` from a server.
    ServerTransfer {
        /// The server it came through.
        server: ServerUrl,
        /// The registered sender.
        from: NodeId,
        /// Its payload (an encoded [`mesh_proto::signal::Payload`]).
        payload: Vec<u8>,
    },
    /// A non-fatal `Error` from the server (e.g. a unicast target that left).
    ServerError {
        /// The code.
        code: ErrorCode,
        /// The peer it is about.
        target: Option<NodeId>,
    },
    /// The connection to `server` is gone (not reported for an [`Output::Unregister`]).
    ServerDown {
        /// The server.
        server: ServerUrl,
    },
    /// The transport opened the link of `session`.
    LinkUp {
        /// The session.
        session: SessionId,
    },
    /// One message received on the link of `session`: an encoded frame.
    LinkData {
        /// The session whose link received it.
        session: SessionId,
        /// The encoded frame.
        bytes: Bytes,
    },
    /// The transport ended `session` (failed, closed, or the remote left).
    LinkClosed {
        /// The session.
        session: SessionId,
        /// What the transport said, for logs.
        reason: String,
    },
    /// The transport produced a signaling step for `session` (offer, answer, candidate,
    /// end of candidates) to carry to the remote side.
    LocalSignal {
        /// The session.
        session: SessionId,
        /// The step.
        signal: SignalKind,
    },
    /// The time returned by [`Node::poll_timeout`] has come.
    Timeout,
}

/// Something for the driver to do.
#[derive(Debug)]
pub enum Output {
    /// Connect to `server` and register this node there (its key, its room), within
    /// `timeout`; then report [`Input::Registered`] or [`Input::RegisterFailed`].
    Register {
        /// The server: the bootstrap server, a neighbour's door or the node's own door.
        server: ServerUrl,
        /// How long the connection and registration may take.
        timeout: Duration,
    },
    /// Close the connection to `server`, or give up registering there.
    Unregister {
        /// The server.
        server: ServerUrl,
    },
    /// Send this frame to `server` (one the node is registered at).
    SendServer {
        /// The server.
        server: ServerUrl,
        /// The frame.
        frame: Frame,
    },
    /// Send these bytes (one encoded frame) on the link of `session`.
    SendLink {
        /// The session whose link carries it.
        session: SessionId,
        /// The encoded frame.
        bytes: Bytes,
    },
    /// Start a transport session with `peer`.
    OpenSession {
        /// The new session.
        session: SessionId,
        /// The remote node.
        peer: NodeId,
        /// Our side.
        role: Role,
    },
    /// Apply a verified signaling step from the remote side of `session`.
    RemoteSignal {
        /// The session.
        session: SessionId,
        /// The step (never `Reject`: rejections are handled here).
        signal: SignalKind,
    },
    /// Close `session` and its link.
    CloseSession {
        /// The session.
        session: SessionId,
    },
    /// Tell the application.
    Event(Event),
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A link to `peer` is up.
    LinkUp {
        /// The new neighbour.
        peer: NodeId,
    },
    /// The link to `peer` is gone.
    LinkDown {
        /// The former neighbour.
        peer: NodeId,
        /// Why.
        reason: LinkDownReason,
    },
    /// Registered at `server`, the server the node signals through from now on.
    ServerConnected {
        /// The server.
        server: ServerUrl,
        /// Whether it is a neighbour's door rather than a bootstrap server.
        door: bool,
    },
    /// No longer registered at `server`: the connection is gone, or the node left a door
    /// it no longer needs. It registers again only while it needs a server (no link, or
    /// stranded on an island): at every door it knows at once, then at the bootstrap
    /// servers, one at a time, in turn.
    ServerDisconnected {
        /// The server.
        server: ServerUrl,
    },
    /// A unicast message for this node.
    Message {
        /// The origin (as it claims; see `docs/protocol.md`).
        from: NodeId,
        /// The application bytes.
        data: Vec<u8>,
    },
    /// A broadcast, delivered once.
    Broadcast {
        /// The origin.
        from: NodeId,
        /// The application bytes.
        data: Vec<u8>,
    },
    /// A message this node sent to `to` was dropped on the way: the node `at` could find
    /// no next hop closer to `to` (or the TTL ran out there), and sending it again through
    /// other first neighbours (at most twice, within 2 s) did not get it through either.
    /// Best effort, like delivery: a drop can also go unreported.
    Unreachable {
        /// The destination.
        to: NodeId,
        /// The node that dropped it.
        at: NodeId,
    },
}

/// Why a link went down.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkDownReason {
    /// The transport ended it (the remote left or closed it, or the connection failed);
    /// what the transport said.
    Transport(String),
    /// The neighbour sent a frame that did not decode, or one not valid on a link: it
    /// cost the neighbour its link. What was wrong.
    Malformed(String),
    /// Nothing came on the link for this long ([`Config::link_timeout`]).
    Silent(Duration),
    /// This node closed it ([`Node::disconnect`]).
    Local,
    /// This node closed it as redundant above its target degree.
    Redundant,
    /// This node closed it to make room for a newcomer's entry session.
    MadeRoom,
    /// The neighbour sent something that fails verification and that an honest node
    /// never forwards (a forged flood, lookup or node record): what it was.
    Forged(String),
    /// The neighbour kept sending over its budget ([`crate::Config::strike_budget`]).
    OverBudget,
}

impl std::fmt::Display for LinkDownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transport(why) => write!(f, "{why}"),
            Self::Malformed(why) => write!(f, "malformed frame: {why}"),
            Self::Silent(d) => write!(f, "nothing heard for {d:?}"),
            Self::Local => f.write_str("closed locally"),
            Self::Redundant => f.write_str("redundant link closed"),
            Self::MadeRoom => f.write_str("making room for a newcomer"),
            Self::Forged(what) => write!(f, "forged {what}"),
            Self::OverBudget => f.write_str("over budget"),
        }
    }
}
