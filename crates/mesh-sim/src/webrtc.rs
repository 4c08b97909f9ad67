//! The webrtc transport: real `mesh_node::Node`s (webrtc-rs PeerConnections, UDP bound to
//! 127.0.0.1 only) joining through an embedded `bootstrap_server` on 127.0.0.1, in one
//! process, in wall-clock time.
//!
//! How a run goes:
//! 1. The server starts on `127.0.0.1:0` (connection and room limits raised to fit the
//!    run; per-connection rate limits are the defaults, which a node stays far below).
//! 2. The initial nodes start at `join_rate` per second. A task per node consumes its
//!    events (bounded channel) and records its first link and when its degree reached the
//!    minimum (`observe`).
//! 3. Once every initial node has a link (or 10 s after the last one started), and then
//!    `settle` more (default 2 s, for the mesh to take its shape), the traffic starts: unicasts between random live, linked pairs at `unicast_rate` (each
//!    payload carries an id and its send time), a broadcast from a random node every
//!    `broadcast_every`, and churn (a random node leaves, a new one joins) at
//!    `churn_per_min`. `kill` and `kill_bootstrap_at` happen at their time from the start.
//!    **What is due after the traffic's planned start waits for the mesh**: the planned
//!    start is when it would be if joins took no time (the last initial node's start at
//!    `join_rate`, plus `settle`). The server's stop, the kill and the end that fall after
//!    it are held until the traffic has started and the mesh has formed (every initial
//!    node at the minimum degree, or `FORM_WAIT`, 30 s, after the last one started), then
//!    move by as much as that came late. On an idle machine that is the last joins' link
//!    time (tens to hundreds of milliseconds); on a busy one the phases keep their order
//!    and spacing instead of falling into a mesh still forming (or the end coming before
//!    any traffic). What falls before it keeps its time. After a kill, the end also waits
//!    for the repair and `AFTER_REPAIR` (1 s) of traffic after it (at most `REPAIR_WAIT`,
//!    30 s, from the kill).
//!    With `doors`, every node also runs a door (its own bootstrap server on 127.0.0.1:0,
//!    `mesh_node::Config::with_door`), which stops when the node is killed or leaves.
//! 4. At `duration` from the start (moved as above), traffic stops; the run waits (up to
//!    3 s) for what is in flight, counts hops with probes, reads every node's neighbours
//!    and counters, and measures idle CPU for 2 s. Then every node leaves and the server
//!    stops.
//!
//! What the figures mean, where it is not obvious:
//! - **join_ms**: `Node::join` called → first `LinkUp`; **full_degree_ms**: → degree ≥ the
//!   minimum. A node cannot link before there is somebody to link to, so for the first
//!   nodes the clock starts when the k-th other node starts (k = 1 for a link, k = min
//!   degree for the minimum). Nodes that never got there have no sample.
//! - **Killing** uses what the `Node` API offers: dropping the handle, which makes the
//!   driver leave without waiting for it (close every link and the server connection). The
//!   API has no silent crash: a dropped webrtc transport closes its DataChannels
//!   (`close_notify` + SCTP ABORT), so neighbours notice at once, not after the 30 s ICE
//!   consent timeout a vanished host would cost. Churn leaves the same way.
//! - **Hops**: a node cannot see how many links a message crossed, but every node counts
//!   the frames it forwards (`frames_relayed`). After the traffic, while the mesh is quiet,
//!   up to [`PROBES`] probe unicasts between random pairs are sent one at a time, each
//!   between two readings of every live node's counters: hops = 1 + the relays counted in
//!   between. A probe whose window also saw a signaling message or a flood copy (which
//!   relays too) is discarded. `hops_mean`/`hops_p99` and `hop_samples` (the histogram)
//!   are the probes'.
//! - **Repair** (with a kill only): `killed`, the nodes whose handles the kill dropped;
//!   `repair_ms`, from the moment they were dropped to the first check at which the live
//!   nodes formed one component (every live node's neighbour list, as for `components`;
//!   the first check right after the kill, then one every 100 ms (`REPAIR_POLL`) until the
//!   traffic stops, and the final reading last; the time is taken when the answers are
//!   in, so it includes the check's own time); `null` if none did. `unicast_after`: the
//!   unicasts sent after that check, and of those the delivered ones (each once).
//! - **link_setup_ms**: `NodeStats::link_setup`, the driver's own record of offerer
//!   sessions (`OpenSession` → `LinkUp`), the last 256 per node.
//! - **Signaling**: sessions initiated via the server / via the mesh, summed over every node
//!   that ran (those that left are read just before they go).
//! - **Memory**: `VmRSS` every second for the timeline, `VmHWM` for the peak (the whole
//!   process: nodes, server, harness). **Idle CPU**: `utime + stime` of the process over
//!   2 s with no traffic at the end, in % of one core (10 ms resolution: ±0.5 %).
//!
//! - **Hostile nodes** (`--hostile F --attack KIND`): the initial nodes `crate::attack`
//!   chooses from the seed (the same as on the memory transport), each with its attack
//!   (`mixed`: forge, drop, flood, poison in turn). Every node of such a run goes through a
//!   `hostile::Watched` transport that applies its node's attack to what it sends, by the
//!   rules the memory transport applies on its links: droppers drop every unicast they
//!   relay, forgers rewrite origins and floods, poisoners fill their neighbour lists with
//!   made-up nodes; flooders, from the traffic's start, send `crate::attack::SPAM_RATE`
//!   validly signed floods a second at most, each from a fresh made-up key, on every link
//!   (`hostile::flood`), up to `Hostile::spam`, until the traffic stops. `attack` in the
//!   report counts the unicasts between two honest nodes and the broadcasts of honest
//!   origins at honest nodes. A delivery whose claimed origin is not the message's author,
//!   or of what a forger put in a flood (`observe::Kind::Forged`), counts as
//!   `forged_delivered`, not as a delivery; sessions honest nodes open to the poisoners'
//!   made-up nodes count as `sessions_to_made_up`.
//! - **Reliable** (`--reliable`): unicasts go with `Node::send_reliable`, and the drain
//!   at the end lasts up to `longest_reliable_delivery` + 1 s (12 s by default).
//!
//! Where it lives: `sim` (the run's state, starting the server and the nodes, the
//! teardown), `traffic` (the scenario loop: joins, traffic, churn, kills), `observe` (one
//! task per node recording its events), `hostile` (the hostile nodes' transport), `probe` (hop
//! probes), `measure` (the readings at the end and the [`Report`]); memory and CPU of the
//! process come from `crate::procfs`.

mod hostile;
mod measure;
mod observe;
mod probe;
mod sim;
mod traffic;

use std::time::Duration;

use anyhow::bail;

use crate::{Report, Scenario};
use sim::Sim;

/// Most hop probes sent at the end of a run.
pub const PROBES: usize = 40;
/// How long the hop probes may take in all.
const PROBE_BUDGET: Duration = Duration::from_secs(4);
/// How long in-flight traffic may take to arrive once the traffic stops.
const DRAIN: Duration = Duration::from_secs(3);
/// The window over which idle CPU is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// A node that does not answer a query within this time is left out of it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// After a kill, how often the run checks whether the live nodes form one component again
/// (the resolution of `repair.repair_ms`, plus the time the check takes).
const REPAIR_POLL: Duration = Duration::from_millis(100);
/// The held phases wait at most this long after the last initial node started for every
/// initial node to reach the minimum degree.
const FORM_WAIT: Duration = Duration::from_secs(30);
/// After a kill, the end waits for the repair at most this long from the kill.
const REPAIR_WAIT: Duration = Duration::from_secs(30);
/// After a kill, the end waits until the repair has been seen and this much traffic has
/// followed it, so that `repair.unicast_after` measures something.
const AFTER_REPAIR: Duration = Duration::from_secs(1);
/// How long leaving, and stopping the server, may take at the end.
const TEARDOWN: Duration = Duration::from_secs(10);

/// Runs `scenario` with real WebRTC nodes on 127.0.0.1.
pub async fn run(scenario: &Scenario, progress: bool) -> anyhow::Result<Report> {
    check(scenario)?;
    let mut sim = Sim::start(scenario, progress).await?;
    let report = sim.run().await;
    sim.teardown().await;
    report
}

/// Refuses scenarios this driver cannot run, saying what to change.
fn check(s: &Scenario) -> anyhow::Result<()> {
    if s.nodes == 0 {
        bail!("a run needs at least one node (nodes = 0)");
    }
    if !(s.join_rate.is_finite() && s.join_rate > 0.0) {
        bail!(
            "join_rate must be a positive number of joins per second, not {}",
            s.join_rate
        );
    }
    if !(s.unicast_rate.is_finite() && s.unicast_rate >= 0.0) {
        bail!(
            "unicast_rate must be ≥ 0 per second, not {}",
            s.unicast_rate
        );
    }
    if !(s.churn_per_min.is_finite() && s.churn_per_min >= 0.0) {
        bail!("churn_per_min must be ≥ 0 %, not {}", s.churn_per_min);
    }
    if let Some(kill) = s.kill
        && !(kill.fraction > 0.0 && kill.fraction <= 1.0)
    {
        bail!(
            "the kill fraction must be within (0, 1], not {}",
            kill.fraction
        );
    }
    if s.duration.is_zero() {
        bail!("duration must be longer than 0 s");
    }
    if s.broadcast_every.is_some_and(|d| d.is_zero()) {
        bail!("broadcast_every must be longer than 0 s (or none)");
    }
    if s.rooms > 1 {
        bail!("rooms are simulated with the memory transport only (--transport memory)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AttackKind;

    #[test]
    fn scenarios_that_cannot_run_are_refused_with_a_reason() {
        assert!(check(&Scenario::default()).is_ok());
        let zero = Scenario {
            nodes: 0,
            ..Default::default()
        };
        assert!(
            check(&zero)
                .unwrap_err()
                .to_string()
                .contains("at least one node")
        );
        let slow = Scenario {
            join_rate: 0.0,
            ..Default::default()
        };
        assert!(check(&slow).unwrap_err().to_string().contains("join_rate"));
        let kill = Scenario {
            kill: Some(crate::Kill {
                fraction: 1.5,
                at: Duration::from_secs(1),
            }),
            ..Default::default()
        };
        assert!(
            check(&kill)
                .unwrap_err()
                .to_string()
                .contains("kill fraction")
        );
        let forgers = Scenario {
            hostile: Some(crate::Hostile {
                fraction: 0.1,
                attack: AttackKind::Forge,
                spam: 0,
            }),
            ..Default::default()
        };
        assert!(check(&forgers).is_ok());
        let flooders = Scenario {
            hostile: Some(crate::Hostile {
                attack: AttackKind::Flood,
                ..forgers.hostile.unwrap()
            }),
            ..Default::default()
        };
        assert!(check(&flooders).is_ok());
        let droppers = Scenario {
            hostile: Some(crate::Hostile {
                attack: AttackKind::Drop,
                ..forgers.hostile.unwrap()
            }),
            ..Default::default()
        };
        assert!(check(&droppers).is_ok());
        let rooms = Scenario {
            rooms: 4,
            ..Default::default()
        };
        assert!(check(&rooms).unwrap_err().to_string().contains("rooms"));
    }
}
