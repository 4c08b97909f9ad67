//! The memory transport: N pure overlay cores ([`mesh_core::Node`]) in one deterministic
//! discrete-event emulator, in virtual time.
//!
//! One thread, no tokio, no wall clock inside the simulation: every event (a node's timer,
//! a frame arriving on a link or from the server, a step of the scenario) sits in one binary
//! heap ordered by (virtual time, sequence number), so events at the same instant run in the
//! order they were scheduled. Every random choice comes from [`Scenario::seed`]: the
//! emulator's two generators (network and plan), each node's key
//! ([`mesh_proto::identity::Keypair::from_seed`]) and each node's own seed. The same seed
//! gives the same [`Report`], except `wall_s` and `rss_mb_peak`.
//!
//! # The model
//!
//! | what | model |
//! |---|---|
//! | node start | node *i* of the initial set starts at *i* / `join_rate` s; it connects to the server at once |
//! | server latency | each node's server connection has a one-way latency drawn once, uniform in [`SERVER_LATENCY_NS`] (1–3 ms); frames on it stay in order |
//! | registration | `Register` reaches the server 3 one-way latencies after the start (WebSocket upgrade round trip, then the challenge); the `Welcome` (`Input::ServerUp`) one more later |
//! | `Welcome` / `Peers` | a uniform random sample, without repetition, of up to 8 (`Peers`: up to min(`max`, 16)) other registered nodes |
//! | server `Unicast` | `Transfer` to the target after the sender's plus the target's latency, or `Error UNKNOWN_PEER` back if the target is not registered |
//! | link latency | each link (session) gets a one-way latency drawn once, uniform in [`LINK_LATENCY_NS`] (0.5–1.5 ms, i.e. 1 ms ± 0.5 ms of jitter between links); every message on it takes exactly that, so each direction is FIFO, as a reliable ordered DataChannel is; no bandwidth limit, no loss |
//! | transport signaling | `OpenSession` (offerer) → `LocalSignal(Offer)` at once; `RemoteSignal(Offer)` (answerer) → `Answer` at once. The emulated transport does not trickle: its offer and answer carry their candidates, as a WebRTC agent that waits for gathering does, so a session costs two signed messages, not four (the real transport trickles; signing and verifying took 27 % of the emulator's CPU time in a profile of 2,000 nodes, docs/benchmarks.md §8). The tokens are tiny strings, not real SDP |
//! | link setup | when the offerer applies the answer, both ends get `LinkUp` 10 one-way latencies later (5 round trips: ICE check, DTLS, SCTP), so 5–15 ms, if both ends are still alive and the session still open |
//! | close | `CloseSession` → `LinkClosed` to the closer at once and to the other end after the link latency (also for a session not yet up: the emulator tells both ends, as `tests/support` does) |
//! | leave (churn) | [`mesh_core::Node::leave`]: the node closes its sessions (above) and its server connection |
//! | kill | the node vanishes: nothing more is sent or delivered; the survivors of each of its links get `LinkClosed` [`KILL_DETECTION_NS`] (5 s) later, as a transport whose liveness check gave up would report it (stock WebRTC ICE consent takes 5 + 25 s); its sessions not yet up are left to the survivors' session timeout |
//! | server kill | every live node gets `ServerDown` after its latency; frames still travelling to the server vanish; a node started later never registers (it stays alone and counts as alive) |
//! | hostile nodes (`--hostile`, `--attack`) | a share of the initial nodes, chosen from the seed, run the honest core; the simulator rewrites, drops or adds what they send on their links (`hostile.rs`) |
//! | rooms (`--rooms K`) | node *i* is in room `room-(i mod K)`: its core's room, and its room at the server, which samples and relays only within it |
//! | doors (`--doors`) | every node runs a door and announces it; a node that needs a server registers at the doors it knows, then the server, as `mesh_node`'s driver does: the model is in `memory/doors.rs` |
//!
//! The server and the emulator deregister a node the moment it leaves or is killed.
//!
//! # The scenario
//!
//! Traffic and churn start `settle` (default 2 s) after every initial node has started and
//! has a link (or is gone), or [`JOIN_GRACE_NS`] (10 s) after the last initial start,
//! whichever is first.
//! Then: a unicast every 1/`unicast_rate` s between two distinct random live nodes, a
//! broadcast every `broadcast_every` from a random live node, and every
//! 60 / (`churn_per_min` / 100 × `nodes`) s a random live node leaves and a new node starts.
//! Traffic stops [`DRAIN_NS`] (1 s) before the end so that every message has time to arrive;
//! with `--reliable`, the longest a reliable unicast takes before that
//! (`mesh_core::Config::longest_reliable_delivery`: 11 s with the defaults), so that every
//! one is delivered or given up within the run.
//! The run ends at `duration` of virtual time after the first start.
//!
//! # Measurements
//!
//! From the emulator's own timestamps and the nodes' [`mesh_core::Stats`], never from logs:
//!
//! - `join_ms`: node start → its first `Event::LinkUp`; `full_degree_ms`: start → the first
//!   `LinkUp` after which it has `min_degree` neighbours.
//! - `link_setup_ms`: the offerer's `OpenSession` → the link up (both ends).
//! - `signaling`: the sum of `sessions_initiated_via_{server,mesh}` over every node that ran.
//! - `unicast`: `sent` counts every attempt of the scenario between two live nodes (a
//!   `send` refused for want of a link counts, undelivered); `delivered` counts the messages
//!   delivered to their addressee, each once. Each payload carries a message id; the emulator counts the
//!   link transmissions of each id (a cheap suffix check on every `SendLink`, then a full
//!   decode of the frames that match), which is the hop count at delivery.
//! - `broadcast`: coverage = the nodes alive at the send (the origin excepted) that delivered
//!   it, over their number; `duplicates_per_node_mean` = the sum of `flood_duplicates` over
//!   the sum, over broadcasts, of the nodes alive at the send (origin included, as for
//!   webrtc).
//! - `components`, `degrees`: the live nodes' own neighbour lists at the end.
//! - `repair` (with a kill only): `killed`, the nodes it removed; `repair_ms`, from the kill
//!   to the first check at which the live nodes form one component (links between live
//!   nodes as their neighbour lists say, as for `components`). The first check runs right
//!   after the victims are gone (0 ms: the kill did not split the survivors), then one
//!   every [`REPAIR_CHECK_NS`] (50 ms) of virtual time until it holds; `null` if it never
//!   did. The checks only read the nodes, so they change nothing else in the report.
//!   `unicast_after`: the unicasts sent after that check, and of those the delivered ones
//!   (each once, as for `unicast`); 0 / 0 without a repair.
//! - timeline: one sample per virtual second; `rss_mb` is 0 (virtual time: the process's
//!   memory says nothing about a moment of the simulation; the peak is in `rss_mb_peak`).
//! - `rss_mb_peak`: the process's peak resident memory (`VmHWM` of `/proc/self/status`),
//!   which includes anything the process did before the run.
//! - `cpu_idle_pct_of_one_core`: always 0. In virtual time an idle mesh costs nothing but
//!   the events it schedules; the figure only means something for real nodes (webrtc).
//!
//! # Bounds
//!
//! The event heap holds at most: one timer per live node, one scenario event of each kind
//! (each traffic, churn, sample or progress event schedules its successor when it fires, so
//! traffic is rate-limited by construction), one link-setup event per session under way
//! (bounded by `max_sessions` per node), and the messages in flight. A message is in flight
//! for at most a few milliseconds (or [`KILL_DETECTION_NS`] for a kill notice), and each
//! input makes a node emit a bounded number of outputs, so the heap is bounded by the
//! number of nodes times their per-node limits. The per-message and per-broadcast records
//! are bounded by the traffic rates times the duration; the session table drops a session
//! when it closes.

mod attackers;
mod hostile;
mod measure;
mod plan;
mod records;
mod scenario_plan;
mod world;

pub(crate) use plan::derive;

use crate::{Report, Scenario};

/// A virtual duration or instant, in nanoseconds since the first start.
type Ns = u64;

const S: Ns = 1_000_000_000;

/// One-way latency of a link, drawn once per session (inclusive range, ns).
pub const LINK_LATENCY_NS: (u64, u64) = (500_000, 1_500_000);
/// One-way latency of a node's server connection, drawn once per node (inclusive, ns).
pub const SERVER_LATENCY_NS: (u64, u64) = (1_000_000, 3_000_000);
/// Link setup after the offerer applies the answer, in one-way link latencies.
pub const LINK_SETUP_LATENCIES: u64 = 10;
/// Delay between a kill and the survivors' `LinkClosed`, ns.
pub const KILL_DETECTION_NS: u64 = 5 * S;
/// The longest wait, after the last initial start, for every initial node to link, ns.
pub const JOIN_GRACE_NS: u64 = crate::scenario::JOIN_GRACE.as_nanos() as u64;
/// Virtual time between two checks, after a kill, of whether the live nodes form one
/// component again (the resolution of `repair.repair_ms`), ns.
pub const REPAIR_CHECK_NS: u64 = 50_000_000;
/// Traffic stops this long before the end of the run, ns.
pub const DRAIN_NS: u64 = S;

/// Runs `scenario` in virtual time and reports what it measured. `progress` prints a line
/// to stderr every 5 s of virtual time.
///
/// ```
/// use std::time::Duration;
/// use mesh_sim::{Scenario, TransportKind};
///
/// let scenario = Scenario {
///     nodes: 20,
///     transport: TransportKind::Memory,
///     join_rate: 100.0,
///     duration: Duration::from_secs(5),
///     ..Scenario::default()
/// };
/// let report = mesh_sim::memory::run(&scenario, false);
/// assert_eq!(report.nodes_alive, 20);
/// assert_eq!(report.components, 1);
/// ```
pub fn run(scenario: &Scenario, progress: bool) -> Report {
    let wall = std::time::Instant::now();
    let (mut sim, mut emu) = world::Sim::new(scenario, progress);
    sim.run(&mut emu);
    let mut report = sim.report();
    report.rss_mb_peak = crate::procfs::peak_rss_mb();
    report.wall_s = wall.elapsed().as_secs_f64();
    report
}
