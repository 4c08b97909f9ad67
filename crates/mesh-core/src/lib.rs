//! The pure overlay state machine of the peer-relayed WebRTC mesh: no tokio, no webrtc, no
//! clock. Time and randomness come in as arguments, so every behaviour can be replayed
//! deterministically.
//!
//! A [`Node`] owns the neighbour table (target/min/max degree), peer discovery (the
//! server's samples and the neighbours' neighbour sets), unicast forwarding (`Route` →
//! relays → `Transfer`, with a TTL and no bouncing back), broadcast (`Flood` with a TTL and a
//! bounded dedup cache), the signaling session state machine (signed offers, answers and
//! candidates; who offers; glare; timeouts; rejection at maximum degree; replay refusal)
//! and the replacement of neighbours that leave.
//!
//! The contract, after str0m and quinn: feed an [`Input`] with [`Node::handle_input`] (or
//! call a command such as [`Node::send`]), then drain [`Node::poll_output`] until `None`;
//! feed [`Input::Timeout`] at [`Node::poll_timeout`].
//!
//! The node also decides where it registers for signaling and when (the bootstrap server,
//! a neighbour's door, its own door): it asks its driver with [`Output::Register`] and
//! [`Output::Unregister`] and hears back through [`Input::Registered`],
//! [`Input::RegisterFailed`] and [`Input::ServerDown`]. A driver only moves bytes, opens
//! connections and reads the clock.
//!
//! ```
//! use mesh_core::{Config, Event, Input, Instant, Node, Output, Role};
//! use mesh_proto::identity::Keypair;
//!
//! let now = Instant::now();
//! let bootstrap: mesh_proto::ServerUrl = "ws://127.0.0.1:8080/ws".parse().unwrap();
//! let config = Config::default().with_bootstrap(Some(bootstrap.clone()));
//! let mut node = Node::new(config, Keypair::generate(), now, 7).unwrap();
//! let first = Keypair::generate().node_id();
//! // The driver registered the node at the bootstrap server, which suggested one peer:
//! node.handle_input(now, Input::Registered { server: bootstrap, peers: vec![first] });
//! assert!(matches!(node.poll_output(), Some(Output::Event(Event::ServerConnected { .. }))));
//! // With no link yet, the node opens an entry session with the closest sampled peer, as
//! // the offerer (another one only if it still has no link `Config::entry_stagger` later).
//! let Some(Output::OpenSession { peer, role, .. }) = node.poll_output() else { panic!() };
//! assert_eq!((peer, role), (first, Role::Offerer));
//! assert_eq!(node.stats().sessions_initiated_via_server, 1);
//! ```
#![warn(missing_docs)]

mod acks;
pub mod budget;
mod cache;
mod config;
mod contacts;
mod contract;
mod doors;
mod keys;
mod links;
mod lookups;
mod node;
mod rendezvous;
mod resend;
mod sessions;

pub use config::{Config, MAX_BOOTSTRAPS};
pub use contract::{Carrier, Event, Input, LinkDownReason, Output, Role};
pub use node::{MAX_MESSAGE_SIZE, Node};
/// The monotonic time the core takes as input: the standard `Instant` on native targets, one
/// built on `performance.now()` in a browser (where std's panics).
pub use web_time::Instant;

/// Everything that can go wrong in the overlay logic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is inconsistent; the message names the setting.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// No neighbour to send towards this node (the node has no link yet).
    #[error("no route to {0}: this node has no link towards it yet")]
    NoRoute(mesh_proto::NodeId),
    /// A message larger than [`MAX_MESSAGE_SIZE`].
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The message size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Too many reliable messages under way ([`Node::send_reliable`]): wait for some to be
    /// acknowledged.
    #[error("too many reliable messages under way: wait for acknowledgements and try again")]
    Busy,
    /// A message or link addressed to this node itself.
    #[error("a node cannot send to or link with itself")]
    SelfAddressed,
    /// This node's own id does not meet [`Config::id_difficulty`].
    #[error(
        "this node's id {id} has difficulty {has}, below the {required} bits configured: \
         use a key whose id meets it (Keypair::generate_with_difficulty, or mesh-node's \
         --id-difficulty with a new key file), or lower id_difficulty"
    )]
    IdBelowDifficulty {
        /// The node's id.
        id: mesh_proto::NodeId,
        /// Its difficulty ([`mesh_proto::puzzle::difficulty`]).
        has: u32,
        /// [`Config::id_difficulty`].
        required: u32,
    },
    /// Encoding failed.
    #[error(transparent)]
    Proto(#[from] mesh_proto::Error),
}

/// Counters of what a node did: the figures tests and benchmarks read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sessions this node started with signaling through the bootstrap server.
    pub sessions_initiated_via_server: u64,
    /// Sessions this node started with signaling through the mesh.
    pub sessions_initiated_via_mesh: u64,
    /// Offers this node accepted that arrived through the server.
    pub sessions_answered_via_server: u64,
    /// Offers this node accepted that arrived through the mesh.
    pub sessions_answered_via_mesh: u64,
    /// Sessions that ended without a link (timeout, transport failure).
    pub sessions_failed: u64,
    /// Sessions the remote refused.
    pub sessions_rejected: u64,
    /// Signaling messages this node sent through the server.
    pub signals_sent_via_server: u64,
    /// Signaling messages this node sent through the mesh.
    pub signals_sent_via_mesh: u64,
    /// Verified signaling messages received through the server.
    pub signals_received_via_server: u64,
    /// Verified signaling messages received through the mesh.
    pub signals_received_via_mesh: u64,
    /// Signals refused: bad signature, key/id mismatch, or not addressed to this node.
    pub bad_signals: u64,
    /// Offers refused as replays of a session already seen.
    pub replayed_offers: u64,
    /// Links that came up.
    pub links_up: u64,
    /// Links that went down.
    pub links_down: u64,
    /// Links this node dropped: to make room for a newcomer's entry session, or because
    /// they were redundant above the target degree.
    pub links_shed: u64,
    /// Links dropped because nothing came on them for `link_timeout`.
    pub links_timed_out: u64,
    /// Sessions opened above the target degree to a better-placed peer (a closer one, or
    /// one in a distance bucket no neighbour covered).
    pub links_rewired: u64,
    /// Lookups started through the mesh (`Lookup`: for our own id, or an id in a part of
    /// the id space we know nobody in).
    pub lookups_sent: u64,
    /// Answers to this node's lookups that it took.
    pub lookup_answers: u64,
    /// Lookups that ended at this node and that it answered.
    pub lookups_answered: u64,
    /// Unicasts dropped here (no progress, or TTL) and reported unreachable to their origin.
    pub unreachable_sent: u64,
    /// Reports that a unicast of this node's was dropped on the way.
    pub unreachable_received: u64,
    /// Frames from a neighbour that did not decode or were not valid on a link (each
    /// cost that neighbour its link).
    pub malformed_frames: u64,
    /// Payloads that did not decode, and answers nobody asked for (a lookup answer to no
    /// lookup under way; a `Nodes` frame, since this node sends no `FindNodes`).
    pub bad_payloads: u64,
    /// Frames forwarded for others.
    pub frames_relayed: u64,
    /// Routed frames dropped with no hop left.
    pub dropped_ttl: u64,
    /// Routed frames dropped with no neighbour to forward to.
    pub dropped_no_route: u64,
    /// Application messages sent.
    pub messages_sent: u64,
    /// Application messages sent once more, through another first neighbour, after a relay
    /// reported a dead end.
    pub messages_resent: u64,
    /// Application messages delivered here.
    pub messages_delivered: u64,
    /// Broadcasts started here.
    pub broadcasts_sent: u64,
    /// Broadcasts delivered here (once each).
    pub broadcasts_delivered: u64,
    /// Flood copies dropped as already seen.
    pub flood_duplicates: u64,
    /// Floods that failed verification (signature, or origin key): dropped, never delivered nor forwarded, and the neighbour that sent one lost its link (an honest node forwards only what it verified).
    pub forged_floods: u64,
    /// Lookups that failed verification: dropped, and the neighbour lost its link.
    pub forged_lookups: u64,
    /// Node records (in `Neighbours`, `Nodes`) that failed verification for this room: the neighbour that sent one lost its link.
    pub forged_records: u64,
    /// Routed payloads whose sealed origin is not the frame's `from`: dropped.
    pub forged_origins: u64,
    /// Payloads that must travel sealed through the mesh and came bare (application bytes, lookup answers, unreachable reports, a signal through the mesh): dropped, never delivered.
    pub unsealed_refused: u64,
    /// Sealed payloads that did not open (altered, for another node or room, or a made-up origin): dropped.
    pub seal_failures: u64,
    /// Sealed payloads refused as already received, or from an earlier run of their origin.
    pub replays_refused: u64,
    /// Frames from a neighbour dropped over its budget (route, flood or lookup).
    pub throttled: u64,
    /// Links dropped because their neighbour kept sending over budget.
    pub links_over_budget: u64,
    /// Floods dropped because their origin was over its flood budget.
    pub floods_over_origin_budget: u64,
    /// Floods of strangers dropped over the stranger budget (the node's or the link's
    /// share; not remembered as seen, so another copy may pass).
    pub floods_over_stranger_budget: u64,
    /// Outgoing sessions not started for now: the session budget was spent.
    pub sessions_over_budget: u64,
    /// Key lookups started: to learn the key of a destination (to seal a message for it),
    /// or to hear a peer a top-up picked answer itself before a session with it.
    pub key_lookups: u64,
    /// Messages given up because the destination's key could not be learned in time.
    pub sends_unresolved: u64,
    /// Unreachable reports ignored: about no message of ours still kept.
    pub unreachable_ignored: u64,
    /// Links wanted ([`crate::Node::connect`], or a top-up to a peer not seen alive
    /// lately) to a peer that no lookup found answering: given up without a session.
    pub connects_unresolved: u64,
    /// Reliable unicasts sent ([`crate::Node::send_reliable`]).
    pub reliable_sent: u64,
    /// Reliable unicasts their destination acknowledged.
    pub reliable_acked: u64,
    /// Reliable unicasts sent again (no acknowledgement in time, or a dead end reported).
    pub reliable_resent: u64,
    /// Reliable unicasts given up after every try ([`Event::Unreachable`]).
    pub reliable_lost: u64,
    /// Reliable unicasts whose last try went as a flood ([`mesh_proto::signal::Payload::Flooded`]).
    pub reliable_flooded: u64,
    /// Key lookups whose last round went as a flood to the destination ([`mesh_proto::signal::Payload::FindKey`]).
    pub key_floods: u64,
    /// Floods in place of routed unicasts not sent: over this node's fallback budget (5/s, 20 at once).
    pub fallbacks_over_budget: u64,
    /// Acknowledgements this node sent for reliable unicasts it received.
    pub acks_sent: u64,
    /// Ids below [`Config::id_difficulty`] ignored (docs/protocol.md §4.7): records in
    /// `Neighbours`, `Nodes` and lookup answers (not learned), peers in `Welcome` and
    /// `Peers`, and floods, lookups, signals (an offer is not answered) and sealed payloads
    /// from such origins (dropped). Each one counts, each copy of a flood too.
    pub ids_below_difficulty: u64,
}

impl Stats {
    /// Adds `other`'s counters to these (to sum the counters of many nodes).
    pub fn add(&mut self, other: &Stats) {
        // Destructured, so that a new counter cannot be forgotten here.
        let Stats {
            sessions_initiated_via_server,
            sessions_initiated_via_mesh,
            sessions_answered_via_server,
            sessions_answered_via_mesh,
            sessions_failed,
            sessions_rejected,
            signals_sent_via_server,
            signals_sent_via_mesh,
            signals_received_via_server,
            signals_received_via_mesh,
            bad_signals,
            replayed_offers,
            links_up,
            links_down,
            links_shed,
            links_timed_out,
            links_rewired,
            lookups_sent,
            lookup_answers,
            lookups_answered,
            unreachable_sent,
            unreachable_received,
            malformed_frames,
            bad_payloads,
            frames_relayed,
            dropped_ttl,
            dropped_no_route,
            messages_sent,
            messages_resent,
            messages_delivered,
            broadcasts_sent,
            broadcasts_delivered,
            flood_duplicates,
            forged_floods,
            forged_lookups,
            forged_records,
            forged_origins,
            unsealed_refused,
            seal_failures,
            replays_refused,
            throttled,
            links_over_budget,
            floods_over_origin_budget,
            floods_over_stranger_budget,
            sessions_over_budget,
            key_lookups,
            sends_unresolved,
            unreachable_ignored,
            connects_unresolved,
            reliable_sent,
            reliable_acked,
            reliable_resent,
            reliable_lost,
            reliable_flooded,
            key_floods,
            fallbacks_over_budget,
            acks_sent,
            ids_below_difficulty,
        } = *other;
        self.sessions_initiated_via_server += sessions_initiated_via_server;
        self.sessions_initiated_via_mesh += sessions_initiated_via_mesh;
        self.sessions_answered_via_server += sessions_answered_via_server;
        self.sessions_answered_via_mesh += sessions_answered_via_mesh;
        self.sessions_failed += sessions_failed;
        self.sessions_rejected += sessions_rejected;
        self.signals_sent_via_server += signals_sent_via_server;
        self.signals_sent_via_mesh += signals_sent_via_mesh;
        self.signals_received_via_server += signals_received_via_server;
        self.signals_received_via_mesh += signals_received_via_mesh;
        self.bad_signals += bad_signals;
        self.replayed_offers += replayed_offers;
        self.links_up += links_up;
        self.links_down += links_down;
        self.links_shed += links_shed;
        self.links_timed_out += links_timed_out;
        self.links_rewired += links_rewired;
        self.lookups_sent += lookups_sent;
        self.lookup_answers += lookup_answers;
        self.lookups_answered += lookups_answered;
        self.unreachable_sent += unreachable_sent;
        self.unreachable_received += unreachable_received;
        self.malformed_frames += malformed_frames;
        self.bad_payloads += bad_payloads;
        self.frames_relayed += frames_relayed;
        self.dropped_ttl += dropped_ttl;
        self.dropped_no_route += dropped_no_route;
        self.messages_sent += messages_sent;
        self.messages_resent += messages_resent;
        self.messages_delivered += messages_delivered;
        self.broadcasts_sent += broadcasts_sent;
        self.broadcasts_delivered += broadcasts_delivered;
        self.flood_duplicates += flood_duplicates;
        self.forged_floods += forged_floods;
        self.forged_lookups += forged_lookups;
        self.forged_records += forged_records;
        self.forged_origins += forged_origins;
        self.unsealed_refused += unsealed_refused;
        self.seal_failures += seal_failures;
        self.replays_refused += replays_refused;
        self.throttled += throttled;
        self.links_over_budget += links_over_budget;
        self.floods_over_origin_budget += floods_over_origin_budget;
        self.floods_over_stranger_budget += floods_over_stranger_budget;
        self.sessions_over_budget += sessions_over_budget;
        self.key_lookups += key_lookups;
        self.sends_unresolved += sends_unresolved;
        self.unreachable_ignored += unreachable_ignored;
        self.connects_unresolved += connects_unresolved;
        self.reliable_sent += reliable_sent;
        self.reliable_acked += reliable_acked;
        self.reliable_resent += reliable_resent;
        self.reliable_lost += reliable_lost;
        self.reliable_flooded += reliable_flooded;
        self.key_floods += key_floods;
        self.fallbacks_over_budget += fallbacks_over_budget;
        self.acks_sent += acks_sent;
        self.ids_below_difficulty += ids_below_difficulty;
    }
}
