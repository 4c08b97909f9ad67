//! What a run measures (from the emulator's timestamps and the nodes' own counters), and
//! the [`Report`] built from it.

use mesh_core::{Event, LinkDownReason, Stats};
use mesh_proto::NodeId;

use super::Ns;
use super::records::{
    BROADCAST_MARK, CROSS_BROADCAST_MARK, CROSS_UNICAST_MARK, FORGED_MARK, SPAM_MARK, UNICAST_MARK,
    parse_app,
};
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
            Event::LinkDown { peer, reason } => self.on_link_down(i, peer, &reason),
            Event::Message { from, data } => {
                if self.forged(i, from, &data, false) {
                    return;
                }
                if parse_app(CROSS_UNICAST_MARK, &data).is_some() {
                    self.measure.attack.cross_room_deliveries += 1;
                    self.measure.attack.cross_delivered += 1;
                }
                let record = parse_app(UNICAST_MARK, &data)
                    .and_then(|id| self.measure.unicasts.get_mut(id as usize));
                if let Some(record) = record {
                    let origin = record.ends.0 as usize;
                    if self.slots[origin].room != self.slots[i as usize].room {
                        self.measure.attack.cross_room_deliveries += 1;
                    }
                    record.delivered.get_or_insert((now, record.transmissions));
                }
            }
            Event::Broadcast { from, data } => {
                if self.forged(i, from, &data, true) {
                    return;
                }
                let slot = &self.slots[i as usize];
                let (start, room, honest) = (slot.start, slot.room, slot.hostile.is_none());
                if let Some(origin) = parse_app(CROSS_BROADCAST_MARK, &data)
                    && self
                        .slots
                        .get(origin as usize)
                        .is_some_and(|o| o.room != room)
                {
                    self.measure.attack.cross_room_deliveries += 1;
                    self.measure.attack.cross_delivered += 1;
                }
                if honest && parse_app(SPAM_MARK, &data).is_some() {
                    self.measure.attack.spam_delivered += 1;
                }
                let Some(record) = parse_app(BROADCAST_MARK, &data)
                    .and_then(|id| self.measure.broadcasts.get_mut(id as usize))
                else {
                    return;
                };
                if self.slots[record.origin as usize].room != room {
                    self.measure.attack.cross_room_deliveries += 1;
                } else if start <= record.sent_at && record.origin != i {
                    record.covered += 1;
                    if honest {
                        record.honest_covered += 1;
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether a message (`broadcast` or unicast) that honest node `i` delivered from
    /// `from` is a hostile node's forgery: marked forged by a hostile node that is not
    /// `from`, or one of the scenario's whose origin is not `from`. Counted if so.
    fn forged(&mut self, i: u32, from: NodeId, data: &[u8], broadcast: bool) -> bool {
        if self.slots[i as usize].hostile.is_some() {
            return false;
        }
        let author = if let Some(author) = parse_app(FORGED_MARK, data) {
            Some(author as usize)
        } else if broadcast {
            parse_app(BROADCAST_MARK, data)
                .and_then(|id| self.measure.broadcasts.get(id as usize))
                .map(|b| b.origin as usize)
        } else {
            parse_app(UNICAST_MARK, data)
                .and_then(|id| self.measure.unicasts.get(id as usize))
                .map(|u| u.ends.0 as usize)
        };
        let forged = author.is_some_and(|a| self.slots.get(a).is_none_or(|s| s.id != from));
        if forged {
            self.measure.attack.forged_delivered += 1;
        }
        forged
    }

    /// Honest node `i` lost its link to `peer`: counted if for a forgery or over budget.
    fn on_link_down(&mut self, i: u32, peer: NodeId, reason: &LinkDownReason) {
        if self.slots[i as usize].hostile.is_some() {
            return;
        }
        let honest_peer = self
            .index
            .get(&peer)
            .is_some_and(|j| self.slots[*j as usize].hostile.is_none());
        let a = &mut self.measure.attack;
        match reason {
            LinkDownReason::Forged(_) => {
                a.links_dropped_forged += 1;
                a.links_dropped_forged_honest += u64::from(honest_peer);
            }
            LinkDownReason::OverBudget => {
                a.links_over_budget += 1;
                a.links_over_budget_honest += u64::from(honest_peer);
            }
            _ => {}
        }
    }

    /// The counters summed over the honest nodes that ran.
    fn honest_totals(&self) -> Stats {
        let mut t = self.measure.attack.retired_honest.clone();
        for &i in self.live.items() {
            let slot = &self.slots[i as usize];
            if let (Some(node), None) = (&slot.node, slot.hostile) {
                t.add(node.stats());
            }
        }
        t
    }

    /// The `attack` of the report: present with hostile nodes.
    fn attack(&self) -> Option<report::Attack> {
        let kind = self.scenario.hostile?.attack;
        let honest = |slot: u32| self.slots[slot as usize].hostile.is_none();
        let unicasts = self
            .measure
            .unicasts
            .iter()
            .filter(|u| honest(u.ends.0) && honest(u.ends.1));
        let (mut sent, mut delivered) = (0, 0);
        for u in unicasts {
            sent += 1;
            delivered += u64::from(u.delivered.is_some());
        }
        let coverage = self
            .measure
            .broadcasts
            .iter()
            .filter(|b| honest(b.origin))
            .map(|b| match b.honest_alive {
                0 => 1.0,
                n => b.honest_covered as f64 / n as f64,
            })
            .reduce(f64::min)
            .unwrap_or(1.0);
        let t = self.honest_totals();
        let a = &self.measure.attack;
        let h = &self.hostile;
        Some(report::Attack {
            hostile: h.count(),
            kind,
            forged_delivered: a.forged_delivered,
            honest_unicast: report::Delivery { sent, delivered },
            honest_broadcast_min_coverage: coverage,
            throttled: t.throttled,
            links_dropped_forged: a.links_dropped_forged,
            links_dropped_forged_honest: a.links_dropped_forged_honest,
            links_over_budget: a.links_over_budget,
            links_over_budget_honest: a.links_over_budget_honest,
            sessions_to_made_up: a.sessions_to_made_up,
            sessions_over_budget: t.sessions_over_budget,
            connects_unresolved: t.connects_unresolved,
            forged_floods: t.forged_floods,
            forged_records: t.forged_records,
            forged_origins: t.forged_origins,
            seal_failures: t.seal_failures,
            floods_over_origin_budget: t.floods_over_origin_budget,
            floods_over_stranger_budget: t.floods_over_stranger_budget,
            frames_dropped: h.frames_dropped,
            frames_rewritten: h.frames_rewritten,
            spam_sent: h.spam_sent,
            spam_delivered: a.spam_delivered,
        })
    }

    /// The `rooms` of the report: present with more than one room.
    fn rooms(&self) -> Option<report::Rooms> {
        let k = self.rooms.len();
        if k <= 1 {
            return None;
        }
        let mut per_room = vec![report::Room::default(); k];
        let mut coverage: Vec<Option<f64>> = vec![None; k];
        for slot in &self.slots {
            per_room[slot.room as usize].nodes += 1;
        }
        for u in &self.measure.unicasts {
            let room = &mut per_room[self.slots[u.ends.0 as usize].room as usize];
            room.unicast.sent += 1;
            room.unicast.delivered += u64::from(u.delivered.is_some());
        }
        for b in &self.measure.broadcasts {
            let share = match b.alive.saturating_sub(1) {
                0 => 1.0,
                others => b.covered as f64 / others as f64,
            };
            let c = &mut coverage[self.slots[b.origin as usize].room as usize];
            *c = Some(c.map_or(share, |c: f64| c.min(share)));
        }
        for (room, c) in per_room.iter_mut().zip(coverage) {
            room.broadcast_min_coverage = c.unwrap_or(1.0);
        }
        let a = &self.measure.attack;
        Some(report::Rooms {
            k,
            cross_room_deliveries: a.cross_room_deliveries,
            cross_room_attempts: report::Delivery {
                sent: a.cross_attempts,
                delivered: a.cross_delivered,
            },
            per_room,
        })
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
            attack: self.attack(),
            rooms: self.rooms(),
            fleet_servers: None,
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
