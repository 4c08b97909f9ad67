//! A node's [`Config`].

use std::time::Duration;

use mesh_proto::{RoomName, ServerUrl};

/// Configuration of a node. Build with [`Config::new`] and the `with_*` builders.
#[derive(Clone, Debug)]
pub struct Config {
    /// The bootstrap servers' WebSocket URLs, e.g. `ws://127.0.0.1:8080/ws`: one, or
    /// several servers of one fleet (sharing rooms). The node joins at the one its id picks
    /// (`mesh_core::Config::first_bootstrap`: newcomers spread over the fleet), and after a
    /// failed or lost registration goes to the next in the list, in turn. At least one
    /// ([`crate::Node::join`] refuses an empty list), each once, at most
    /// [`mesh_core::MAX_BOOTSTRAPS`]. Set with [`Config::new`] (one) or
    /// [`Config::with_bootstraps`].
    pub bootstraps: Vec<ServerUrl>,
    /// The room (mesh) to join. Default `default`.
    pub room: RoomName,
    /// The overlay's settings (degree, timers, table sizes, and when to register where:
    /// `register_timeout`, `door_timeout`, `reconnect_min`, `reconnect_max`, ...). Its
    /// `bootstraps` are set from [`Config::bootstraps`] when the node starts.
    pub overlay: mesh_core::Config,
    /// Events queued for the application before further events are dropped (and counted
    /// in [`crate::NodeStats::events_dropped`]). Default 1024.
    pub event_queue: usize,
    /// Transport events queued towards the driver. Default 4096.
    pub transport_queue: usize,
}

impl Config {
    /// A configuration that joins through the bootstrap server at `bootstrap`.
    pub fn new(bootstrap: ServerUrl) -> Self {
        Self {
            bootstraps: vec![bootstrap],
            room: RoomName::default(),
            overlay: mesh_core::Config::default(),
            event_queue: 1024,
            transport_queue: 4096,
        }
    }

    /// Sets [`Config::bootstraps`]: the URLs of several servers of one fleet, in the order
    /// the node goes through them (it starts at the one its id picks). A URL given twice
    /// counts once. For example, with a fleet of three:
    ///
    /// ```
    /// let url = |s: &str| s.parse::<mesh_proto::ServerUrl>().unwrap();
    /// let config = mesh_node::Config::new(url("wss://a.example/ws"))
    ///     .with_bootstraps([url("wss://a.example/ws"), url("wss://b.example/ws"), url("wss://c.example/ws")]);
    /// assert_eq!(config.bootstraps.len(), 3);
    /// ```
    pub fn with_bootstraps(mut self, bootstraps: impl IntoIterator<Item = ServerUrl>) -> Self {
        // The core's own rule: each URL once, in order.
        self.bootstraps = mesh_core::Config::default()
            .with_bootstraps(bootstraps)
            .bootstraps;
        self
    }

    /// Sets [`Config::room`].
    pub fn with_room(mut self, room: RoomName) -> Self {
        self.room = room;
        self
    }

    /// Sets [`Config::overlay`].
    pub fn with_overlay(mut self, overlay: mesh_core::Config) -> Self {
        self.overlay = overlay;
        self
    }

    /// Sets the time allowed to connect and register at a bootstrap server or the own
    /// door (`overlay.register_timeout`, default 10 s).
    pub fn with_bootstrap_timeout(mut self, d: Duration) -> Self {
        self.overlay.register_timeout = d;
        self
    }

    /// Runs a door at `url`: a bootstrap server (started by the application, e.g. with
    /// `bootstrap_server::run`, or by `mesh-node --door`) where the node registers itself
    /// in its room and which it announces to every new neighbour. A neighbour that loses
    /// every link can then rejoin through it without the bootstrap server. Sets
    /// `overlay.door`.
    pub fn with_door(mut self, url: mesh_proto::ServerUrl) -> Self {
        self.overlay.door = Some(url);
        self
    }

    /// Sets the time allowed to register at a neighbour's door (`overlay.door_timeout`,
    /// default 3 s).
    pub fn with_door_timeout(mut self, d: Duration) -> Self {
        self.overlay.door_timeout = d;
        self
    }

    /// Sets the pauses between rounds of registrations (`overlay.reconnect_min`, default
    /// 500 ms, doubling up to `overlay.reconnect_max`, default 30 s).
    pub fn with_reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.overlay = self.overlay.with_reconnect(min, max);
        self
    }

    /// Requires the id puzzle of `bits` (docs/protocol.md §4.7; `overlay.id_difficulty`,
    /// default 0 = off): the node's own key must meet it ([`crate::keyfile`] and
    /// `Keypair::generate_with_difficulty` make one that does), and the node ignores ids
    /// below it. Give every node of a mesh, and its bootstrap server, the same.
    pub fn with_id_difficulty(mut self, bits: u32) -> Self {
        self.overlay.id_difficulty = bits;
        self
    }

    /// Sets [`Config::event_queue`].
    pub fn with_event_queue(mut self, n: usize) -> Self {
        self.event_queue = n;
        self
    }
}
