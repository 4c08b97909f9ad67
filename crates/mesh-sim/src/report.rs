//! The report of a run: `report.json` (field names fixed, so reports compare across
//! versions), a markdown summary, and the time series the plots are drawn from.

use std::path::Path;

use serde::Serialize;

use crate::scenario::{AttackKind, TransportKind};

/// p50/p90/p99 of a sample, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// The percentiles of `values` (all zero if empty).
    pub fn of(values: &[f64]) -> Self {
        Self {
            p50: quantile(values, 0.5),
            p90: quantile(values, 0.9),
            p99: quantile(values, 0.99),
        }
    }
}

/// The `q` quantile (nearest rank) of `values`; 0 if empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The mean of `values`; 0 if empty.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// p50/p99 of link setup times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LinkSetup {
    /// Median, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
}

impl LinkSetup {
    /// p50/p99 of setup times in ms.
    pub fn of(samples_ms: &[f64]) -> Self {
        Self {
            p50: quantile(samples_ms, 0.5),
            p99: quantile(samples_ms, 0.99),
        }
    }
}

/// Signaling sessions by carrier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Signaling {
    /// Sessions started.
    pub sessions: u64,
    /// Of which signaled through the bootstrap server (entry sessions).
    pub via_server: u64,
    /// Of which signaled through the mesh.
    pub via_mesh: u64,
    /// Registrations at a neighbour's door by nodes that needed a server (with `--doors`;
    /// 0 without).
    pub door_rejoins: u64,
    /// Sessions that ended without a link (timeout, transport failure, reported
    /// unreachable), at the node that started them or answered them.
    pub failed: u64,
    /// Sessions the remote refused.
    pub rejected: u64,
    /// Of the sessions started, those opened above the target degree to a better-placed
    /// peer (rewiring).
    pub rewired: u64,
    /// Links that came up, counted at both ends.
    pub links_up: u64,
}

impl Signaling {
    /// The sessions started, from counters summed over the nodes.
    pub fn from_stats(stats: &mesh_core::Stats) -> Self {
        let via_server = stats.sessions_initiated_via_server;
        let via_mesh = stats.sessions_initiated_via_mesh;
        Self {
            sessions: via_server + via_mesh,
            via_server,
            via_mesh,
            door_rejoins: 0,
            failed: stats.sessions_failed,
            rejected: stats.sessions_rejected,
            rewired: stats.links_rewired,
            links_up: stats.links_up,
        }
    }
}

/// Unicast traffic of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Unicast {
    /// Sent by the scenario's traffic.
    pub sent: u64,
    /// Delivered to the addressee.
    pub delivered: u64,
    /// Mean links crossed by a delivered unicast.
    pub hops_mean: f64,
    /// 99th percentile of links crossed.
    pub hops_p99: f64,
    /// Median send → delivery, ms.
    pub latency_ms_p50: f64,
    /// Mean shortest path, in links, between the ends of the unicasts sent, in the mesh as
    /// it is at the end (pairs with both ends alive and connected): the floor for
    /// `hops_mean`, to see how far routing is from it. Memory transport only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortest_hops_mean: Option<f64>,
}

/// What the relays dropped, summed over the nodes that ran: unicasts and signaling alike
/// (a unicast of the scenario that is not delivered was dropped somewhere).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Routing {
    /// Frames whose TTL ran out.
    pub dropped_ttl: u64,
    /// Frames with no neighbour closer to their destination.
    pub dropped_no_route: u64,
    /// Drops reported to the unicast's origin (`Unreachable`): one per attempt, so an
    /// application message resent after a dead end can count up to three.
    pub unreachable_reported: u64,
    /// Lookups started through the mesh.
    pub lookups: u64,
    /// Lookup answers taken by their origin.
    pub lookup_answers: u64,
    /// Key lookups started: for a destination's key before a first unicast to it, or for a
    /// peer a top-up picked, to hear it answer before a session.
    pub key_lookups: u64,
    /// Unicasts given up because no key lookup found the destination's key in time.
    pub sends_unresolved: u64,
    /// Key lookups whose last round went as a flood.
    pub key_floods: u64,
    /// Floods of strangers (origins a node had neither a link to nor a record of) dropped
    /// over the stranger budget (`Stats::floods_over_stranger_budget`).
    pub floods_over_stranger_budget: u64,
    /// Reliable unicasts (`--reliable`): sent, acknowledged, sent again (no
    /// acknowledgement in time, or a dead end reported), given up after every try.
    pub reliable: Reliable,
}

/// What became of reliable unicasts, summed over the nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Reliable {
    /// Sent (`Node::send_reliable`), each once however often it went.
    pub sent: u64,
    /// Acknowledged by their destination.
    pub acked: u64,
    /// Tries after the first one.
    pub resent: u64,
    /// Given up after every try (`Event::Unreachable`).
    pub lost: u64,
    /// Whose last try went as a flood.
    pub flooded: u64,
}

impl Routing {
    /// The routing figures of counters summed over the nodes.
    pub fn from_stats(stats: &mesh_core::Stats) -> Self {
        Self {
            dropped_ttl: stats.dropped_ttl,
            dropped_no_route: stats.dropped_no_route,
            unreachable_reported: stats.unreachable_sent,
            lookups: stats.lookups_sent,
            lookup_answers: stats.lookup_answers,
            key_lookups: stats.key_lookups,
            sends_unresolved: stats.sends_unresolved,
            key_floods: stats.key_floods,
            floods_over_stranger_budget: stats.floods_over_stranger_budget,
            reliable: Reliable {
                sent: stats.reliable_sent,
                acked: stats.reliable_acked,
                resent: stats.reliable_resent,
                lost: stats.reliable_lost,
                flooded: stats.reliable_flooded,
            },
        }
    }
}

/// Broadcast traffic of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Broadcast {
    /// Broadcasts sent.
    pub sent: u64,
    /// The lowest share of the nodes alive at the time that received a broadcast.
    pub min_coverage: f64,
    /// Mean duplicate copies a node received (and suppressed) per broadcast.
    pub duplicates_per_node_mean: f64,
}

impl Broadcast {
    /// `duplicates_per_node_mean`: the flood duplicates counted by every node over the
    /// nodes alive at each send (origin included), summed over the broadcasts.
    pub fn duplicates_per_node(flood_duplicates: u64, alive_at_sends: usize) -> f64 {
        if alive_at_sends == 0 {
            0.0
        } else {
            flood_duplicates as f64 / alive_at_sends as f64
        }
    }
}

/// Unicasts sent after the survivors of a kill formed one component again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct UnicastAfter {
    /// Sent by the scenario's traffic after the repair moment.
    pub sent: u64,
    /// Of those, delivered to the addressee (each once).
    pub delivered: u64,
}

/// How the mesh came back from the scenario's kill.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Repair {
    /// Nodes the kill removed (0 if the run ended before the kill was due; then
    /// `repair_ms` is `None`).
    pub killed: usize,
    /// Kill → the first check (memory: every 50 ms of virtual time; webrtc: every 100 ms)
    /// at which the mesh was repaired, ms: no survivor still counted a link to a killed
    /// node (every dead link noticed), every survivor was back at the minimum degree, and
    /// the survivors formed one component (links as their own neighbour lists say).
    /// `None` if that never held up to the end of the run.
    pub repair_ms: Option<f64>,
    /// Unicasts sent after that moment (none if there was none).
    pub unicast_after: UnicastAfter,
}

/// Messages sent and, of those, delivered (each once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Delivery {
    /// Sent.
    pub sent: u64,
    /// Delivered to the addressee, each once.
    pub delivered: u64,
}

/// What the hostile nodes did and what it cost the honest ones (memory transport). Every
/// figure is over honest nodes only: honest traffic is the scenario's with both ends
/// honest, counters are summed over the honest nodes that ran.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attack {
    /// Hostile nodes (of the initial nodes; churn replacements are honest).
    pub hostile: usize,
    /// The attack.
    pub kind: AttackKind,
    /// Deliveries at honest nodes of anything a hostile node forged to look like
    /// another's: a unicast or broadcast whose claimed origin is not its author, or whose
    /// content a hostile node altered. The target is 0.
    pub forged_delivered: u64,
    /// The scenario's unicasts between two honest nodes.
    pub honest_unicast: Delivery,
    /// The lowest share of the honest nodes alive at the send (the origin excepted) that
    /// delivered a broadcast of an honest origin (1 with none sent).
    pub honest_broadcast_min_coverage: f64,
    /// Frames honest nodes dropped over a per-link budget (`Stats::throttled`).
    pub throttled: u64,
    /// Links honest nodes closed for a forgery (`LinkDownReason::Forged`).
    pub links_dropped_forged: u64,
    /// Of those, links to an honest neighbour.
    pub links_dropped_forged_honest: u64,
    /// Links honest nodes closed over budget (`LinkDownReason::OverBudget`).
    pub links_over_budget: u64,
    /// Of those, links to an honest neighbour (collateral of relaying an attack).
    pub links_over_budget_honest: u64,
    /// Signaling sessions honest nodes opened to made-up nodes (ids only hostile nodes
    /// announced).
    pub sessions_to_made_up: u64,
    /// Sessions honest nodes did not start for want of budget (`sessions_over_budget`).
    pub sessions_over_budget: u64,
    /// Links honest nodes wanted (asked for, or a top-up's peer not seen alive lately) that
    /// no lookup found answering (`connects_unresolved`).
    pub connects_unresolved: u64,
    /// Floods honest nodes refused as forged (`forged_floods`).
    pub forged_floods: u64,
    /// Node records honest nodes refused as forged (`forged_records`).
    pub forged_records: u64,
    /// Sealed payloads honest nodes refused: origin not the frame's `from`
    /// (`forged_origins`), or not opening (`seal_failures`).
    pub forged_origins: u64,
    /// See `forged_origins`.
    pub seal_failures: u64,
    /// Floods honest nodes dropped over their origin's budget (`floods_over_origin_budget`).
    pub floods_over_origin_budget: u64,
    /// Floods of strangers honest nodes dropped over the stranger budget
    /// (`floods_over_stranger_budget`): made-up origins, and honest ones they crowd out.
    pub floods_over_stranger_budget: u64,
    /// Frames the hostile nodes dropped (drop).
    pub frames_dropped: u64,
    /// Frames the hostile nodes rewrote (forge, poison).
    pub frames_rewritten: u64,
    /// Floods of made-up nodes the hostile nodes injected (flood; each once, on every link).
    pub spam_sent: u64,
    /// Deliveries of those floods at honest nodes (the cost: at most `spam_sent` × honest
    /// nodes).
    pub spam_delivered: u64,
}

/// One room of a run with `--rooms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Room {
    /// Nodes that ran in it.
    pub nodes: usize,
    /// The scenario's unicasts within it.
    pub unicast: Delivery,
    /// The lowest share of its nodes alive at the send (the origin excepted) that delivered
    /// one of its broadcasts (1 with none sent).
    pub broadcast_min_coverage: f64,
}

/// Nodes spread over rooms (memory transport).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rooms {
    /// Rooms.
    pub k: usize,
    /// Deliveries of any message at a node of another room than its origin's (the
    /// scenario's and the deliberate attempts). Must be 0.
    pub cross_room_deliveries: u64,
    /// Deliberate cross-room attempts: unicasts to a node of another room, and broadcasts
    /// counted at the nodes of the other rooms.
    pub cross_room_attempts: Delivery,
    /// Each room, in order.
    pub per_room: Vec<Room>,
}

/// Mean of the shortest path lengths between `pairs` in the undirected graph of `nodes`
/// nodes and `edges` (pairs not connected are left out; `None` if none is).
pub fn shortest_paths_mean(
    nodes: usize,
    edges: &[(usize, usize)],
    pairs: impl IntoIterator<Item = (usize, usize)>,
) -> Option<f64> {
    let mut adjacent = vec![Vec::new(); nodes];
    for &(a, b) in edges {
        adjacent[a].push(b);
        adjacent[b].push(a);
    }
    let mut by_source: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (a, b) in pairs {
        by_source.entry(a).or_default().push(b);
    }
    let mut lengths = Vec::new();
    let mut distance = vec![u32::MAX; nodes];
    let mut queue = std::collections::VecDeque::new();
    for (source, targets) in by_source {
        distance.fill(u32::MAX);
        distance[source] = 0;
        queue.push_back(source);
        while let Some(n) = queue.pop_front() {
            for &m in &adjacent[n] {
                if distance[m] == u32::MAX {
                    distance[m] = distance[n] + 1;
                    queue.push_back(m);
                }
            }
        }
        lengths.extend(
            targets
                .iter()
                .map(|t| distance[*t])
                .filter(|d| *d != u32::MAX)
                .map(f64::from),
        );
    }
    (!lengths.is_empty()).then(|| mean(&lengths))
}

/// Whether a mesh counts as repaired ([`Repair::repair_ms`]): its live nodes form
/// `components` components, still count `dangling` links to gone nodes, and have these
/// `degrees` (links to gone nodes included).
pub fn repaired(components: usize, degrees: &[usize], dangling: usize, min_degree: usize) -> bool {
    components == 1 && dangling == 0 && degrees.iter().all(|d| *d >= min_degree)
}

/// A point of the time series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the start of the run.
    pub t: f64,
    /// Nodes alive.
    pub nodes_alive: usize,
    /// Signaling messages sent through the server so far.
    pub signals_via_server: u64,
    /// Signaling messages sent through the mesh so far.
    pub signals_via_mesh: u64,
    /// Resident memory of the process, MB (webrtc) or 0 (memory transport, virtual time).
    pub rss_mb: f64,
}

/// Everything a run measured. Field names are fixed; add fields freely.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Nodes that joined.
    pub nodes: usize,
    /// `webrtc` or `memory`.
    pub transport: Option<TransportKind>,
    /// The target degree.
    pub degree_target: usize,
    /// Node start → first link open, ms.
    pub join_ms: Percentiles,
    /// Node start → degree ≥ min, ms.
    pub full_degree_ms: Percentiles,
    /// First offer sent → channel open, ms.
    pub link_setup_ms: LinkSetup,
    /// Sessions by carrier.
    pub signaling: Signaling,
    /// Unicast traffic.
    pub unicast: Unicast,
    /// Broadcast traffic.
    pub broadcast: Broadcast,
    /// Frames the relays dropped.
    pub routing: Routing,
    /// Connected components of the link graph at the end.
    pub components: usize,
    /// Nodes alive at the end.
    pub nodes_alive: usize,
    /// The repair after the scenario's kill; absent (not even `null`) without a kill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
    /// Hostile nodes and what they cost; absent without `--hostile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<Attack>,
    /// The rooms; absent with one room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Rooms>,
    /// The embedded bootstrap servers of a fleet (`--servers`, on Redis); absent with one
    /// server and no Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet_servers: Option<usize>,
    /// Peak resident memory of the process, MB.
    pub rss_mb_peak: f64,
    /// CPU used while idle at the end, % of one core.
    pub cpu_idle_pct_of_one_core: f64,
    /// Wall-clock duration of the run, s.
    pub wall_s: f64,
    /// The seed.
    pub seed: u64,
    /// Degree of every live node at the end (for the histogram).
    pub degrees: Vec<usize>,
    /// Join latencies, ms (for the CDF).
    pub join_samples_ms: Vec<f64>,
    /// Hops of every delivered unicast (memory transport) or of every hop probe (webrtc),
    /// for the histogram.
    pub hop_samples: Vec<u32>,
    /// The time series.
    pub timeline: Vec<Sample>,
}

impl Report {
    /// The markdown summary.
    pub fn summary(&self) -> String {
        let transport = match self.transport {
            Some(TransportKind::Webrtc) => "webrtc",
            Some(TransportKind::Memory) => "memory",
            None => "?",
        };
        let mut s = String::new();
        s.push_str(&format!(
            "| {} nodes, {transport}, degree {} | value |\n|---|---|\n",
            self.nodes, self.degree_target
        ));
        let mut row = |k: &str, v: String| s.push_str(&format!("| {k} | {v} |\n"));
        let p = |x: &Percentiles| format!("p50 {:.1}, p90 {:.1}, p99 {:.1}", x.p50, x.p90, x.p99);
        if let Some(n) = self.fleet_servers {
            row("bootstrap servers", format!("{n}, a fleet on Redis"));
        }
        row("join → first link (ms)", p(&self.join_ms));
        row("join → min degree (ms)", p(&self.full_degree_ms));
        row(
            "link setup (ms)",
            format!(
                "p50 {:.1}, p99 {:.1}",
                self.link_setup_ms.p50, self.link_setup_ms.p99
            ),
        );
        row(
            "sessions: via server / via mesh",
            format!(
                "{} / {} (of {})",
                self.signaling.via_server, self.signaling.via_mesh, self.signaling.sessions
            ),
        );
        row(
            "sessions: failed / refused / rewiring; links up (both ends)",
            format!(
                "{} / {} / {}; {}",
                self.signaling.failed,
                self.signaling.rejected,
                self.signaling.rewired,
                self.signaling.links_up
            ),
        );
        row(
            "unicast delivered / sent",
            format!("{} / {}", self.unicast.delivered, self.unicast.sent),
        );
        row(
            "relay drops: TTL / no progress (reported)",
            format!(
                "{} / {} ({})",
                self.routing.dropped_ttl,
                self.routing.dropped_no_route,
                self.routing.unreachable_reported
            ),
        );
        row(
            "lookups: sent / answered",
            format!("{} / {}", self.routing.lookups, self.routing.lookup_answers),
        );
        let r = &self.routing;
        if r.key_lookups > 0 {
            row(
                "key lookups: started / by flood / given up",
                format!(
                    "{} / {} / {}",
                    r.key_lookups, r.key_floods, r.sends_unresolved
                ),
            );
        }
        if r.reliable.sent > 0 {
            row(
                "reliable: sent / acked / resent (by flood) / lost",
                format!(
                    "{} / {} / {} ({}) / {}",
                    r.reliable.sent,
                    r.reliable.acked,
                    r.reliable.resent,
                    r.reliable.flooded,
                    r.reliable.lost
                ),
            );
        }
        row(
            "unicast hops: mean, p99 (shortest paths: mean)",
            format!(
                "{:.2}, {:.0}{}",
                self.unicast.hops_mean,
                self.unicast.hops_p99,
                self.unicast
                    .shortest_hops_mean
                    .map_or_else(String::new, |s| format!(" ({s:.2})"))
            ),
        );
        row(
            "unicast latency p50 (ms)",
            format!("{:.2}", self.unicast.latency_ms_p50),
        );
        row(
            "broadcasts: sent, min coverage, duplicates/node",
            format!(
                "{}, {:.3}, {:.2}",
                self.broadcast.sent,
                self.broadcast.min_coverage,
                self.broadcast.duplicates_per_node_mean
            ),
        );
        row(
            "components, nodes alive",
            format!("{}, {}", self.components, self.nodes_alive),
        );
        if let Some(r) = &self.repair {
            let after = r
                .repair_ms
                .map_or_else(|| "never".to_owned(), |ms| format!("{ms:.1}"));
            row(
                "repair: killed, repaired after (ms), unicast after repair delivered / sent",
                format!(
                    "{}, {after}, {} / {}",
                    r.killed, r.unicast_after.delivered, r.unicast_after.sent
                ),
            );
        }
        if let Some(a) = &self.attack {
            row(
                "attack: hostile, kind",
                format!("{}, {:?}", a.hostile, a.kind).to_lowercase(),
            );
            row(
                "attack: forged delivered at honest nodes",
                a.forged_delivered.to_string(),
            );
            row(
                "attack: honest unicast delivered / sent, honest broadcast min coverage",
                format!(
                    "{} / {}, {:.3}",
                    a.honest_unicast.delivered,
                    a.honest_unicast.sent,
                    a.honest_broadcast_min_coverage
                ),
            );
            row(
                "attack: throttled, links dropped forged (honest) / over budget (honest)",
                format!(
                    "{}, {} ({}) / {} ({})",
                    a.throttled,
                    a.links_dropped_forged,
                    a.links_dropped_forged_honest,
                    a.links_over_budget,
                    a.links_over_budget_honest
                ),
            );
            row(
                "attack: sessions to made-up ids, over budget; spam sent, delivered, over budget",
                format!(
                    "{}, {}; {}, {}, {}",
                    a.sessions_to_made_up,
                    a.sessions_over_budget,
                    a.spam_sent,
                    a.spam_delivered,
                    a.floods_over_stranger_budget
                ),
            );
        }
        if let Some(r) = &self.rooms {
            let rooms: Vec<String> = r
                .per_room
                .iter()
                .map(|room| {
                    format!(
                        "{} nodes {}/{} {:.3}",
                        room.nodes,
                        room.unicast.delivered,
                        room.unicast.sent,
                        room.broadcast_min_coverage
                    )
                })
                .collect();
            row(
                "rooms: k, cross-room deliveries (of attempts)",
                format!(
                    "{}, {} (of {})",
                    r.k, r.cross_room_deliveries, r.cross_room_attempts.sent
                ),
            );
            row(
                "rooms: nodes, unicast delivered/sent, broadcast min coverage",
                rooms.join("; "),
            );
        }
        row("RSS peak (MB)", format!("{:.0}", self.rss_mb_peak));
        row(
            "idle CPU (% of one core)",
            format!("{:.1}", self.cpu_idle_pct_of_one_core),
        );
        row("wall time (s)", format!("{:.1}", self.wall_s));
        s
    }

    /// Writes `report.json`, `summary.md` and the plots into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(dir.join("summary.md"), self.summary())?;
        crate::plot::all(self, dir)?;
        Ok(())
    }
}

/// Connected components of an undirected graph given as adjacency lists over `0..n`.
pub fn components(n: usize, edges: impl IntoIterator<Item = (usize, usize)>) -> usize {
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut count = n;
    for (a, b) in edges {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra] = rb;
            count -= 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(mean(&[1.0, 3.0]), 2.0);
    }

    #[test]
    fn shortest_paths_mean_walks_the_graph() {
        // A path 0-1-2-3 and an island 4.
        let edges = [(0, 1), (1, 2), (2, 3)];
        assert_eq!(shortest_paths_mean(5, &edges, [(0, 3), (1, 2)]), Some(2.0));
        assert_eq!(shortest_paths_mean(5, &edges, [(0, 4)]), None);
        assert_eq!(
            shortest_paths_mean(5, &edges, [(3, 0), (0, 4), (0, 0)]),
            Some(1.5)
        );
    }

    #[test]
    fn components_counts_islands() {
        assert_eq!(components(4, [(0, 1), (2, 3)]), 2);
        assert_eq!(components(4, [(0, 1), (1, 2), (2, 3)]), 1);
        assert_eq!(components(3, []), 3);
    }
}
