//! What a node did ([`NodeStats`]) and its links ([`LinkInfo`]). What it tells its
//! application is [`mesh_core::Event`], re-exported as `mesh_node::Event`.

use std::time::Duration;

use mesh_proto::NodeId;

use crate::transport::CandidatePair;

/// What a node did: the overlay's counters plus the driver's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// The overlay state machine's counters.
    pub overlay: mesh_core::Stats,
    /// Current neighbours.
    pub degree: usize,
    /// Successful registrations: with the bootstrap server (1 + reconnections) and at
    /// neighbours' doors ([`NodeStats::door_rejoins`]).
    pub server_registrations: u64,
    /// Whether the node is registered with the bootstrap server (or a neighbour's door)
    /// now.
    pub server_connected: bool,
    /// Registrations at a neighbour's door ([`crate::Config::with_door`]) after losing every link:
    /// rejoins that did without the bootstrap server. Also counted in
    /// `server_registrations`.
    pub door_rejoins: u64,
    /// Whether the node is registered at its own door now (always `false` without one, or
    /// when the door is the bootstrap server itself).
    pub door_registered: bool,
    /// Frames dropped because a link's send buffer was full.
    pub link_send_dropped: u64,
    /// Events dropped because the application did not read them.
    pub events_dropped: u64,
    /// Setup times of the last 256 links this node opened as the offerer, oldest first:
    /// from the session's start (`OpenSession`) to its link being up (`LinkUp`).
    pub link_setup: Vec<Duration>,
    /// The STUN server the bootstrap server announced in its last `Welcome`
    /// (`stun:<host of the bootstrap URL>:<port>`), handed to the transport, which uses it
    /// only if it has no STUN server of its own; `None` if the server runs no STUN
    /// responder.
    pub server_stun: Option<String>,
    /// The transport's connections to TURN servers over TCP and TLS (one per allocation;
    /// all zero without such a server).
    pub turn_streams: crate::transport::webrtc::TurnStreamStats,
}

/// One live link, as [`crate::Node::links`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkInfo {
    /// The neighbour at the other end.
    pub peer: NodeId,
    /// How the link's packets travel: the ICE candidate pair the transport selected, when
    /// it can tell (`None` with the memory transport, or if the link closed meanwhile).
    pub candidate_pair: Option<CandidatePair>,
    /// How the link's session was signaled: through a server (an entry session) or through
    /// the mesh (`None` if the link closed meanwhile).
    pub carrier: Option<mesh_core::Carrier>,
}
