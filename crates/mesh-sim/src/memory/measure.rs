//! What a run measures (from the emulator's timestamps and the nodes' own counters), and
//! the [`Report`] built from it.

use mesh_core::{Event, Stats};

use super::Ns;
use super::records::{BROADCAST_MARK, UNICAST_MARK, parse_app};
use super::world::{Emu, Life, Sim};
use crate::TransportKind;
use crate::report::{self, LinkSetup, Percentiles, Report, Sample, Signaling};

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

impl Sim<'_> {
    /// What node `i` told its application.
    pub(super) fn on_node_event(&mut self, emu: &mut Emu, i: u32, event: Event) {
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
                    self.on_linked(emu, i);
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
            _ => {}
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
