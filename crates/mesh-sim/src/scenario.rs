//! What a simulation run does: how many nodes, over which transport, joining how fast, with
//! which churn, failures and traffic.

use std::time::Duration;

/// Traffic starts at the latest this long after the last initial node started, even if some
/// never linked (both drivers).
pub(crate) const JOIN_GRACE: Duration = Duration::from_secs(10);

/// Which links the simulated nodes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Real webrtc-rs PeerConnections on 127.0.0.1, real bootstrap server, wall-clock time.
    Webrtc,
    /// The pure overlay cores in one deterministic emulator: virtual time, seeded.
    Memory,
}

/// A fraction of the nodes killed at once at a point of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kill {
    /// Share of the live nodes killed, in (0, 1].
    pub fraction: f64,
    /// When, from the start of the run.
    pub at: Duration,
}

/// What the hostile nodes of a run do to what they send on their links (memory transport;
/// the webrtc transport runs `Drop` and `Flood`).
/// They run the honest core; the simulator rewrites, drops or adds frames on their links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttackKind {
    /// Forgeries: `Route`/`Transfer` they send claim another honest node as `from` (their
    /// own unicasts, marked forged, also carry that node's key in the seal); floods they
    /// relay have their payload altered or are re-signed by their own key under an honest
    /// node's key; their own broadcasts, marked forged, claim an honest node's key.
    Forge,
    /// They drop every `Route`/`Transfer` they relay (not their own).
    Drop,
    /// They inject validly signed floods of made-up nodes (a fresh key each) at 500/s each,
    /// up to `Hostile::spam` floods per hostile node.
    Flood,
    /// The records of the `Neighbours` frames they send are replaced by records of made-up
    /// nodes (fresh keys, valid signatures; every fourth frame: signed for another room).
    Poison,
    /// A quarter of the hostile nodes each (forge, drop, flood, poison in turn).
    Mixed,
}

/// Hostile nodes among the initial nodes (memory transport; webrtc: droppers and flooders).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hostile {
    /// Share of the initial nodes that are hostile, chosen from the seed, in [0, 1].
    pub fraction: f64,
    /// What they do.
    pub attack: AttackKind,
    /// Floods each hostile node of [`AttackKind::Flood`] injects at most.
    pub spam: u32,
}

/// A scenario. Build with [`Scenario::default`] and the public fields; the `mesh-sim` CLI
/// maps its flags onto these one to one.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Nodes that join. Default 100.
    pub nodes: usize,
    /// Links used. Default webrtc.
    pub transport: TransportKind,
    /// Target degree; see [`Scenario::overlay`] for the minimum and maximum. Default 8.
    pub degree: usize,
    /// Joins per second. Default 50.
    pub join_rate: f64,
    /// How long the run lasts after the first join (it ends earlier once everything
    /// scheduled is done and the mesh is stable). Default 20 s.
    pub duration: Duration,
    /// Seed of every random choice (memory transport: same seed, same report). Default 1.
    pub seed: u64,
    /// Churn: percent of the nodes replaced per minute (a node leaves, a new one joins).
    /// Default 0.
    pub churn_per_min: f64,
    /// Kill a fraction of the nodes at once. Default none.
    pub kill: Option<Kill>,
    /// Stop the bootstrap server at this time. Default never.
    pub kill_bootstrap_at: Option<Duration>,
    /// How long after the initial nodes have joined (each has a link) the traffic and churn
    /// start: the time the mesh gets to take its shape. (`kill` and `kill_bootstrap_at`
    /// keep their times from the start.) Default 2 s.
    pub settle: Duration,
    /// Unicasts per second between random pairs of live nodes, once all have joined and
    /// `settle` has passed. Default 20.
    pub unicast_rate: f64,
    /// A broadcast from a random node this often, once all have joined and `settle` has
    /// passed. Default every 2 s.
    pub broadcast_every: Option<Duration>,
    /// Every node runs a door (`mesh_node::Config::with_door`): a node that needs a server
    /// (no link, or stranded on an island) registers at a door its neighbours announced
    /// before the bootstrap server. Default off.
    pub doors: bool,
    /// Hostile nodes and their attack (the webrtc transport runs [`AttackKind::Drop`] and
    /// [`AttackKind::Flood`] only). Default none.
    pub hostile: Option<Hostile>,
    /// Rooms the nodes are spread over (node *i* in room *i* mod `rooms`, named `room-k`;
    /// memory transport only): traffic stays within a room, but for a few deliberate
    /// cross-room attempts. Default 1 (every node in the default room).
    pub rooms: usize,
    /// Scenario unicasts are sent with `Node::send_reliable` (acknowledged, sent again
    /// another way when no acknowledgement comes) instead of `send`; traffic stops
    /// `longest_reliable_delivery` + 1 s before the end (memory transport; the webrtc
    /// transport waits that long for them after the end instead). Default off.
    pub reliable: bool,
    /// Embedded bootstrap servers (webrtc transport): more than one form a fleet sharing
    /// the room through [`Scenario::redis`], and every node is given every server's URL
    /// (each starts at the one its id picks). Default 1.
    pub servers: usize,
    /// The Redis of the fleet of embedded servers (needed with `servers` > 1; with 1, that
    /// one server is a fleet of one). Shown without its password. Default none.
    pub redis: Option<bootstrap_server::RedisUrl>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            nodes: 100,
            transport: TransportKind::Webrtc,
            degree: 8,
            join_rate: 50.0,
            duration: Duration::from_secs(20),
            seed: 1,
            churn_per_min: 0.0,
            kill: None,
            kill_bootstrap_at: None,
            settle: Duration::from_secs(2),
            unicast_rate: 20.0,
            broadcast_every: Some(Duration::from_secs(2)),
            doors: false,
            hostile: None,
            rooms: 1,
            reliable: false,
            servers: 1,
            redis: None,
        }
    }
}

impl Scenario {
    /// Nodes replaced per second by churn (`churn_per_min` percent of `nodes` a minute).
    pub fn churns_per_second(&self) -> f64 {
        self.churn_per_min / 100.0 * self.nodes as f64 / 60.0
    }

    /// The overlay configuration of every node of the run: the library's defaults (table
    /// sizes, TTL, closest links), with `degree` as the target, a minimum of up to 3, and a
    /// maximum that leaves the default two entry slots plus at least two places for offers
    /// through the mesh above the target (12 for degree 8, the default). Faster than the
    /// defaults, so that runs of tens of seconds show a settled mesh: a 50 ms tick (default
    /// 200 ms), announcements every 1 s (5 s), session timeout 5 s (15 s), retry after 1 s
    /// (10 s). The tick matters: 500 memory nodes joining at 250/s delivered 64 of 100
    /// unicasts with the default tick, 99 of 100 with 50 ms (docs/benchmarks.md).
    pub fn overlay(&self) -> mesh_core::Config {
        let d = self.degree.max(1);
        let base = mesh_core::Config::default();
        let entry_slots = base.entry_slots;
        base.with_target_degree(d)
            .with_min_degree(d.min(3))
            .with_max_degree((d + d / 2).max(d + 2 + entry_slots))
            .with_tick_interval(Duration::from_millis(50))
            .with_announce_interval(Duration::from_secs(1))
            .with_link_timeout(Duration::from_secs(5))
            .with_session_timeout(Duration::from_secs(5))
            .with_retry_backoff(Duration::from_secs(1))
            .with_full_backoff(Duration::from_secs(10))
    }
}
