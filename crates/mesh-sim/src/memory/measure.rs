//! What a run measures (from the emulator's timestamps and the nodes' own counters), and
//! the [`Report`] built from it.

use mesh_core::{Event, Stats};
use mesh_proto::Frame;
use mesh_proto::signal::Payload;

use super::Ns;
use super::emulator::{Life, Sim};
use crate::TransportKind;
use crate::report::{self, LinkSetup, Percentiles, Report, Sample, Signaling};

/// Opens the application bytes of a scenario unicast; the message id follows.
pub(super) const UNICAST_MARK: [u8; 8] = *b"msim/uc\0";
/// Opens the application bytes of a scenario broadcast; the broadcast id follows.
pub(super) const BROADCAST_MARK: [u8; 8] = *b"msim/bc\0";

/// The application bytes of scenario message `id`: 8 bytes of mark, 8 of id.
pub(super) fn app_data(mark: [u8; 8], id: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(16);
    data.extend_from_slice(&mark);
    data.extend_from_slice(&id.to_le_bytes());
    data
}

/// The id in application bytes made by [`app_data`] with `mark`.
fn parse_app(mark: [u8; 8], data: &[u8]) -> Option<u64> {
    let (head, id) = data.split_first_chunk::<8>()?;
    let id: [u8; 8] = id.try_into().ok()?;
    (*head == mark).then(|| u64::from_le_bytes(id))
}

/// The id of the scenario unicast an encoded link frame carries, if it carries one.
///
/// The application bytes end the frame (a `Route` or `Transfer` ends with its payload, an
/// `App` payload with its bytes), so a suffix check rejects every other frame without
/// decoding it; the few that pass are decoded in full.
pub(super) fn unicast_in_frame(bytes: &[u8]) -> Option<u64> {
    let tail = bytes.len().checked_sub(16).map(|at| &bytes[at..])?;
    parse_app(UNICAST_MARK, tail)?;
    let payload = match mesh_proto::decode(bytes).ok()? {
        Frame::Route { payload, .. } | Frame::Transfer { payload, .. } => payload,
        _ => return None,
    };
    match mesh_proto::decode_payload(&payload).ok()? {
        Payload::App(data) => parse_app(UNICAST_MARK, &data),
        _ => None,
    }
}

/// One unicast of the scenario.
#[derive(Debug)]
pub(super) struct UnicastRecord {
    pub sent_at: Ns,
    /// The slots of its origin and addressee.
    pub ends: (u32, u32),
    /// Link transmissions seen so far.
    pub transmissions: u32,
    /// When it was delivered, and the transmissions it took.
    pub delivered: Option<(Ns, u32)>,
}

/// One broadcast of the scenario.
#[derive(Debug)]
pub(super) struct BroadcastRecord {
    pub sent_at: Ns,
    pub origin: u32,
    /// Nodes alive at the send, the origin included.
    pub alive: usize,
    /// Nodes alive at the send that delivered it.
    pub covered: usize,
}

/// The scenario's kill and the survivors' repair.
#[derive(Debug)]
pub(super) struct KillRecord {
    pub at: Ns,
    /// Nodes the kill removed.
    pub killed: usize,
    /// When the live nodes were first seen as one component again, and the id of the
    /// first unicast sent after that.
    pub repaired: Option<(Ns, usize)>,
}

/// The live nodes' links, as their own neighbour lists say.
struct LinkGraph {
    /// Live nodes.
    nodes: usize,
    /// Degree of every live node.
    degrees: Vec<usize>,
    /// Links between live nodes, over `0..nodes` (each once per end that lists it).
    edges: Vec<(usize, usize)>,
    /// Links live nodes still count to nodes that are gone (not yet noticed).
    dangling: usize,
    /// The index in `0..nodes` of each slot (`u32::MAX`: not alive).
    dense: Vec<u32>,
}

/// Everything measured during the run.
#[derive(Debug, Default)]
pub(super) struct Measure {
    /// Counters of the nodes that are gone.
    pub retired: Stats,
    pub link_setup_ms: Vec<f64>,
    pub unicasts: Vec<UnicastRecord>,
    pub broadcasts: Vec<BroadcastRecord>,
    pub timeline: Vec<Sample>,
    /// Nodes that got a first link.
    pub linked: usize,
    /// Nodes that reached the minimum degree.
    pub full: usize,
    /// The kill, once it happened.
    pub kill: Option<KillRecord>,
    /// Registrations at a neighbour's door (doors only).
    pub door_rejoins: u64,
}

impl Measure {
    /// Counts a link transmission of a scenario unicast.
    pub fn observe_link_frame(&mut self, bytes: &[u8]) {
        if let Some(record) =
            unicast_in_frame(bytes).and_then(|id| self.unicasts.get_mut(id as usize))
        {
            record.transmissions += 1;
        }
    }
}

impl Sim<'_> {
    /// What node `i` told its application.
    pub(super) fn on_event(&mut self, i: u32, event: Event) {
        let now = self.now;
        match event {
            Event::LinkUp { .. } => {
                let min = self.config.min_degree;
                let slot = &mut self.slots[i as usize];
                let first = slot.first_link.is_none();
                if first {
                    slot.first_link = Some(now);
                    self.measure.linked += 1;
                }
                if slot.full_degree.is_none()
                    && slot
                        .node
                        .as_ref()
                        .is_some_and(|n| n.neighbours().len() >= min)
                {
                    slot.full_degree = Some(now);
                    self.measure.full += 1;
                }
                if first {
                    self.on_linked(i);
                }
            }
            Event::ServerConnected { door: true, .. } => self.measure.door_rejoins += 1,
            Event::Message { data, .. } => {
                let record = parse_app(UNICAST_MARK, &data)
                    .and_then(|id| self.measure.unicasts.get_mut(id as usize));
                if let Some(record) = record {
                    record.delivered.get_or_insert((now, record.transmissions));
                }
            }
            Event::Broadcast { data, .. } => {
                let start = self.slots[i as usize].start;
                let record = parse_app(BROADCAST_MARK, &data)
                    .and_then(|id| self.measure.broadcasts.get_mut(id as usize));
                if let Some(record) = record
                    && start <= record.sent_at
                    && record.origin != i
                {
                    record.covered += 1;
                }
            }
            Event::LinkDown { .. }
            | Event::Unreachable { .. }
            | Event::ServerConnected { .. }
            | Event::ServerDisconnected { .. } => {}
        }
    }

    /// The counters summed over every node that ran.
    pub(super) fn totals(&self) -> Stats {
        let mut t = self.measure.retired.clone();
        for &i in self.live.items() {
            if let Some(node) = &self.slots[i as usize].node {
                t.add(node.stats());
            }
        }
        t
    }

    /// Appends a point to the timeline.
    pub(super) fn sample(&mut self) {
        let t = self.totals();
        self.measure.timeline.push(Sample {
            t: self.now as f64 / 1e9,
            nodes_alive: self.live.len(),
            signals_via_server: t.signals_sent_via_server,
            signals_via_mesh: t.signals_sent_via_mesh,
            rss_mb: 0.0,
        });
    }

    /// After the kill, until the first time it holds: whether the mesh is repaired
    /// ([`report::Repair::repair_ms`]); if it is, the moment is recorded. Reads the nodes,
    /// changes nothing else, so checking does not alter the run.
    pub(super) fn check_repair(&mut self) -> bool {
        let Some(kill) = &self.measure.kill else {
            return false;
        };
        if kill.repaired.is_some() {
            return true;
        }
        let graph = self.link_graph();
        let min_degree = self.scenario.overlay().min_degree;
        let components = report::components(graph.nodes, graph.edges);
        if !report::repaired(components, &graph.degrees, graph.dangling, min_degree) {
            return false;
        }
        let first_after = self.measure.unicasts.len();
        if let Some(kill) = &mut self.measure.kill {
            kill.repaired = Some((self.now, first_after));
        }
        true
    }

    /// The live nodes (in slot order) and their links.
    fn link_graph(&self) -> LinkGraph {
        let alive: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|i| self.slots[*i as usize].life == Life::Alive)
            .collect();
        let mut dense = vec![u32::MAX; self.slots.len()];
        for (k, &i) in alive.iter().enumerate() {
            dense[i as usize] = k as u32;
        }
        let mut degrees = Vec::with_capacity(alive.len());
        let mut edges = Vec::new();
        let mut dangling = 0;
        for (k, &i) in alive.iter().enumerate() {
            let Some(node) = &self.slots[i as usize].node else {
                continue;
            };
            let neighbours = node.neighbours();
            degrees.push(neighbours.len());
            for peer in neighbours {
                match self.index.get(&peer) {
                    Some(&j) if dense[j as usize] != u32::MAX => {
                        edges.push((k, dense[j as usize] as usize));
                    }
                    _ => dangling += 1,
                }
            }
        }
        LinkGraph {
            nodes: alive.len(),
            degrees,
            edges,
            dangling,
            dense,
        }
    }

    /// The `repair` of the report: present if the scenario has a kill.
    fn repair(&self) -> Option<report::Repair> {
        self.scenario.kill?;
        let Some(kill) = &self.measure.kill else {
            // The run ended before the kill was due.
            return Some(report::Repair::default());
        };
        let (repair_ms, unicast_after) = match kill.repaired {
            Some((at, first)) => {
                let after = self.measure.unicasts.get(first..).unwrap_or_default();
                let delivered = after.iter().filter(|u| u.delivered.is_some()).count();
                let ms = (at - kill.at) as f64 / 1e6;
                (
                    Some(ms),
                    report::UnicastAfter {
                        sent: after.len() as u64,
                        delivered: delivered as u64,
                    },
                )
            }
            None => (None, report::UnicastAfter::default()),
        };
        Some(report::Repair {
            killed: kill.killed,
            repair_ms,
            unicast_after,
        })
    }

    /// The report of the run (without `wall_s` and `rss_mb_peak`, which the caller adds).
    pub(crate) fn report(&self) -> Report {
        let ms = |d: Ns| d as f64 / 1e6;
        let LinkGraph {
            nodes: nodes_alive,
            degrees,
            edges,
            dense,
            ..
        } = self.link_graph();
        let live_pairs = self.measure.unicasts.iter().filter_map(|u| {
            let (a, b) = (dense[u.ends.0 as usize], dense[u.ends.1 as usize]);
            (a != u32::MAX && b != u32::MAX).then_some((a as usize, b as usize))
        });
        let shortest_hops_mean = report::shortest_paths_mean(nodes_alive, &edges, live_pairs);
        let join_samples_ms: Vec<f64> = self
            .slots
            .iter()
            .filter_map(|s| s.first_link.map(|t| ms(t - s.start)))
            .collect();
        let full_degree_ms: Vec<f64> = self
            .slots
            .iter()
            .filter_map(|s| s.full_degree.map(|t| ms(t - s.start)))
            .collect();
        let totals = self.totals();
        let delivered: Vec<(Ns, u32)> = self
            .measure
            .unicasts
            .iter()
            .filter_map(|u| u.delivered.map(|(at, hops)| (at - u.sent_at, hops)))
            .collect();
        let hop_samples: Vec<u32> = delivered.iter().map(|(_, h)| *h).collect();
        let hops: Vec<f64> = hop_samples.iter().map(|h| f64::from(*h)).collect();
        let latencies: Vec<f64> = delivered.iter().map(|(d, _)| ms(*d)).collect();
        let bcasts = &self.measure.broadcasts;
        let min_coverage = bcasts
            .iter()
            .map(|b| match b.alive.saturating_sub(1) {
                0 => 1.0,
                others => b.covered as f64 / others as f64,
            })
            .reduce(f64::min)
            .unwrap_or(0.0);
        let alive_at_sends: usize = bcasts.iter().map(|b| b.alive).sum();
        Report {
            nodes: self.slots.len(),
            transport: Some(TransportKind::Memory),
            degree_target: self.scenario.degree,
            join_ms: Percentiles::of(&join_samples_ms),
            full_degree_ms: Percentiles::of(&full_degree_ms),
            link_setup_ms: LinkSetup::of(&self.measure.link_setup_ms),
            signaling: Signaling {
                door_rejoins: self.measure.door_rejoins,
                ..Signaling::from_stats(&totals)
            },
            unicast: report::Unicast {
                sent: self.measure.unicasts.len() as u64,
                // Each message once, however many times it arrived.
                delivered: delivered.len() as u64,
                hops_mean: report::mean(&hops),
                hops_p99: report::quantile(&hops, 0.99),
                latency_ms_p50: report::quantile(&latencies, 0.5),
                shortest_hops_mean,
            },
            routing: report::Routing::from_stats(&totals),
            broadcast: report::Broadcast {
                sent: bcasts.len() as u64,
                min_coverage,
                duplicates_per_node_mean: report::Broadcast::duplicates_per_node(
                    totals.flood_duplicates,
                    alive_at_sends,
                ),
            },
            components: report::components(nodes_alive, edges),
            nodes_alive,
            repair: self.repair(),
            rss_mb_peak: 0.0,
            cpu_idle_pct_of_one_core: 0.0,
            wall_s: 0.0,
            seed: self.scenario.seed,
            degrees,
            join_samples_ms,
            hop_samples,
            timeline: self.measure.timeline.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proto::identity::Keypair;

    #[test]
    fn unicast_ids_are_found_in_route_and_transfer_frames_only() {
        let (a, b) = (
            Keypair::from_seed([1; 32]).node_id(),
            Keypair::from_seed([2; 32]).node_id(),
        );
        let payload =
            mesh_proto::encode_payload(&Payload::App(app_data(UNICAST_MARK, 42))).unwrap();
        let route = Frame::Route {
            to: a,
            from: b,
            ttl: 16,
            steering: mesh_proto::Steering::Learned,
            payload: payload.clone(),
        };
        let transfer = Frame::Transfer {
            from: b,
            payload: payload.clone(),
        };
        let flood = Frame::Flood {
            from: b,
            id: 7,
            ttl: 16,
            payload,
        };
        assert_eq!(
            unicast_in_frame(&mesh_proto::encode(&route).unwrap()),
            Some(42)
        );
        assert_eq!(
            unicast_in_frame(&mesh_proto::encode(&transfer).unwrap()),
            Some(42)
        );
        assert_eq!(unicast_in_frame(&mesh_proto::encode(&flood).unwrap()), None);
        let broadcast =
            mesh_proto::encode_payload(&Payload::App(app_data(BROADCAST_MARK, 42))).unwrap();
        let other = Frame::Transfer {
            from: b,
            payload: broadcast,
        };
        assert_eq!(unicast_in_frame(&mesh_proto::encode(&other).unwrap()), None);
        assert_eq!(unicast_in_frame(b"short"), None);
    }
}
