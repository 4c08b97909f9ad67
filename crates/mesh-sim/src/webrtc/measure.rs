//! The readings at the end of a run and the report built from them: traffic drained, hop
//! probes, every node's neighbours and counters, idle CPU; and the timeline samples taken
//! during the run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mesh_node::Node;
use mesh_proto::NodeId;
use tracing::{info, warn};

use super::observe::{Traffic, lock};
use super::sim::{Sim, Slot, Totals, query};
use super::{DRAIN, IDLE_WINDOW};
use crate::procfs;
use crate::report::{self, Percentiles, Sample};
use crate::{Report, TransportKind};

/// What the end of a run read.
struct Final {
    totals: Totals,
    /// The honest nodes' counters (with hostile nodes).
    honest: Totals,
    components: usize,
    /// Degree of every live node that answered.
    degrees: Vec<usize>,
    nodes_alive: usize,
    /// Hops of each probe that counted.
    hops: Vec<u32>,
    /// % of one core.
    cpu_idle: f64,
    wall_s: f64,
}

impl Sim<'_> {
    /// After the scenario: drain, hop probes, the final reading, idle CPU; the report.
    pub(super) async fn finish(&mut self) -> anyhow::Result<Report> {
        let finishing = |bar: &ProgressBar, msg: &'static str| {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("valid template"),
            );
            bar.set_message(msg);
            bar.enable_steady_tick(Duration::from_millis(200));
        };
        finishing(&self.bar, "traffic stopped: waiting for what is in flight");
        // The flooders stop with the traffic.
        for flood in self.floods.drain(..) {
            flood.abort();
        }
        // Joins still under way are abandoned (their nodes leave as they are dropped).
        self.joins.abort_all();
        while let Some(joined) = self.joins.join_next().await {
            if let Ok(joined) = joined {
                self.on_joined(joined);
            }
        }
        // A reliable unicast may be on its last try for as long as a delivery can take.
        let drain = if self.scenario.reliable {
            DRAIN.max(self.overlay.longest_reliable_delivery() + Duration::from_secs(1))
        } else {
            DRAIN
        };
        let deadline = Instant::now() + drain;
        while !self.traffic_arrived() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.sample(true).await;

        finishing(&self.bar, "counting hops with probe messages");
        let hops = self.probe_hops().await;
        self.sample(true).await;

        finishing(&self.bar, "reading every node's neighbours and counters");
        let live = self.live(false);
        let graph = self.link_graph(&live).await;
        if graph.repaired(self.scenario.overlay().min_degree) {
            self.repaired_now();
        }
        let LinkGraph {
            components,
            degrees,
            ..
        } = graph;
        let stats = query(&live, |node| async move { node.stats().await }).await;
        let mut totals = std::mem::take(&mut self.retired);
        let mut honest = std::mem::take(&mut self.retired_honest);
        for (i, s) in &stats {
            totals.add(s);
            if !self.slots[*i].hostile {
                honest.add(s);
            }
        }

        finishing(&self.bar, "measuring idle CPU");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (cpu0, t0) = (procfs::cpu_seconds(), Instant::now());
        tokio::time::sleep(IDLE_WINDOW / 2).await;
        self.sample(false).await;
        tokio::time::sleep(IDLE_WINDOW / 2).await;
        let (cpu1, t1) = (procfs::cpu_seconds(), Instant::now());
        self.sample(false).await;
        let cpu_idle = match (cpu0, cpu1) {
            (Some(a), Some(b)) => 100.0 * (b - a) / (t1 - t0).as_secs_f64(),
            _ => 0.0,
        };
        let wall_s = self.shared.start.elapsed().as_secs_f64();
        Ok(self.report(Final {
            totals,
            honest,
            components,
            degrees,
            nodes_alive: live.len(),
            hops,
            cpu_idle,
            wall_s,
        }))
    }

    /// The live nodes' links as their neighbour lists say.
    async fn link_graph(&self, live: &[(usize, Arc<Node>)]) -> LinkGraph {
        let neighbours = query(live, |node| async move { node.neighbours().await }).await;
        let index_of: HashMap<NodeId, usize> = live
            .iter()
            .enumerate()
            .map(|(k, &(i, _))| (self.slots[i].id, k))
            .collect();
        let mut edges = Vec::new();
        let mut degrees = Vec::new();
        let mut dangling = 0;
        for (k, &(i, _)) in live.iter().enumerate() {
            let Some(peers) = neighbours.get(&i) else {
                continue;
            };
            degrees.push(peers.len());
            for p in peers {
                match index_of.get(p) {
                    Some(&j) => edges.push((k, j)),
                    None => dangling += 1,
                }
            }
        }
        LinkGraph {
            components: report::components(live.len(), edges),
            degrees,
            dangling,
        }
    }

    /// After the kill, until the first time it holds: whether the mesh is repaired
    /// ([`report::Repair::repair_ms`]); if it is, the moment is recorded.
    pub(super) async fn check_repair(&mut self) -> bool {
        match &self.kill {
            None => return false,
            Some(kill) if kill.repaired.is_some() => return true,
            Some(_) => {}
        }
        let live = self.live(false);
        let repaired = self
            .link_graph(&live)
            .await
            .repaired(self.scenario.overlay().min_degree);
        drop(live);
        if repaired {
            self.repaired_now();
        }
        repaired
    }

    /// Records the repair seen now, unless it was seen before (or there was no kill).
    fn repaired_now(&mut self) {
        let first_after = self.unicast_log.len();
        if let Some(kill) = &mut self.kill {
            kill.repaired.get_or_insert((Instant::now(), first_after));
        }
    }

    /// The `repair` of the report: present if the scenario has a kill.
    fn repair(&self, traffic: &Traffic) -> Option<report::Repair> {
        self.scenario.kill?;
        let Some(kill) = &self.kill else {
            // The traffic ended before the kill was due, or nobody was left to kill.
            return Some(report::Repair::default());
        };
        let (repair_ms, unicast_after) = match kill.repaired {
            Some((at, first)) => {
                let arrived = traffic.unicast_arrived.get(first..).unwrap_or_default();
                let ms = at.saturating_duration_since(kill.at).as_secs_f64() * 1e3;
                (
                    Some(ms),
                    report::UnicastAfter {
                        sent: self.unicast_log.len().saturating_sub(first) as u64,
                        delivered: arrived.iter().filter(|a| **a).count() as u64,
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

    /// The report: the final readings, the records of every node, the traffic counted.
    fn report(&self, end: Final) -> Report {
        let Final {
            totals,
            honest,
            components,
            degrees,
            nodes_alive,
            hops,
            cpu_idle,
            wall_s,
        } = end;
        let s = self.scenario;
        let (join_ms, full_ms) = self.join_samples();
        let traffic = lock(&self.shared.traffic);
        let coverage = traffic
            .broadcast_receipts
            .iter()
            .zip(&self.broadcast_alive)
            .filter(|&(_, &alive)| alive > 1)
            .map(|(&got, &alive)| (f64::from(got) / (alive - 1) as f64).min(1.0))
            .reduce(f64::min);
        let copies: usize = self.broadcast_alive.iter().sum();
        let hops_f: Vec<f64> = hops.iter().map(|&h| f64::from(h)).collect();
        info!(
            links_up = totals.overlay.links_up,
            links_shed = totals.overlay.links_shed,
            sessions_failed = totals.overlay.sessions_failed,
            sessions_rejected = totals.overlay.sessions_rejected,
            dropped_ttl = totals.overlay.dropped_ttl,
            dropped_no_route = totals.overlay.dropped_no_route,
            link_send_dropped = totals.link_send_dropped,
            "overlay counters of every node"
        );
        for (id, &(from, to, at)) in self.unicast_log.iter().enumerate() {
            if !traffic.unicast_arrived.get(id).copied().unwrap_or(true) {
                info!(id, from, to, ?at, "unicast never arrived");
            }
        }
        if traffic.unicast_duplicates > 0 {
            warn!(
                n = traffic.unicast_duplicates,
                "unicasts delivered more than once"
            );
        }
        if self.send_errors > 0 || self.join_failures > 0 {
            warn!(
                send_errors = self.send_errors,
                join_failures = self.join_failures,
                "some sends or joins failed"
            );
        }
        Report {
            nodes: s.nodes,
            transport: Some(TransportKind::Webrtc),
            degree_target: self.overlay.target_degree,
            join_ms: Percentiles::of(&join_ms),
            full_degree_ms: Percentiles::of(&full_ms),
            link_setup_ms: report::LinkSetup::of(&totals.link_setup_ms),
            signaling: report::Signaling {
                door_rejoins: totals.door_rejoins,
                ..report::Signaling::from_stats(&totals.overlay)
            },
            unicast: report::Unicast {
                sent: self.unicast_log.len() as u64,
                delivered: traffic.unicast_delivered,
                hops_mean: report::mean(&hops_f),
                hops_p99: report::quantile(&hops_f, 0.99),
                latency_ms_p50: report::quantile(&traffic.unicast_latency_ms, 0.5),
                shortest_hops_mean: None,
            },
            routing: report::Routing::from_stats(&totals.overlay),
            broadcast: report::Broadcast {
                sent: self.broadcast_alive.len() as u64,
                min_coverage: coverage.unwrap_or(0.0),
                duplicates_per_node_mean: report::Broadcast::duplicates_per_node(
                    totals.overlay.flood_duplicates,
                    copies,
                ),
            },
            components,
            nodes_alive,
            repair: self.repair(&traffic),
            attack: self.attack(&traffic, &honest),
            rooms: None,
            fleet_servers: s.redis.is_some().then_some(s.servers),
            rss_mb_peak: procfs::peak_rss_mb(),
            cpu_idle_pct_of_one_core: cpu_idle,
            wall_s,
            seed: s.seed,
            degrees,
            join_samples_ms: join_ms,
            hop_samples: hops,
            timeline: self.timeline.clone(),
        }
    }

    /// The `attack` of the report: present with hostile nodes.
    fn attack(&self, traffic: &Traffic, honest: &Totals) -> Option<report::Attack> {
        use std::sync::atomic::Ordering::Relaxed;
        let kind = self.scenario.hostile?.attack;
        let honest_slot = |i: usize| !self.slots[i].hostile;
        let (mut sent, mut delivered) = (0, 0);
        for (id, &(from, to, _)) in self.unicast_log.iter().enumerate() {
            if honest_slot(from) && honest_slot(to) {
                sent += 1;
                delivered += u64::from(traffic.unicast_arrived.get(id).copied().unwrap_or(false));
            }
        }
        let coverage = traffic
            .broadcast_honest_receipts
            .iter()
            .zip(&self.broadcast_honest)
            .filter_map(|(&got, others)| match others {
                None => None,
                Some(0) => Some(1.0),
                Some(n) => Some((f64::from(got) / *n as f64).min(1.0)),
            })
            .reduce(f64::min)
            .unwrap_or(1.0);
        let o = &honest.overlay;
        Some(report::Attack {
            hostile: self.hostile.iter().filter(|h| h.is_some()).count(),
            kind,
            forged_delivered: traffic.forged_delivered,
            honest_unicast: report::Delivery { sent, delivered },
            honest_broadcast_min_coverage: coverage,
            throttled: o.throttled,
            links_dropped_forged: traffic.links_dropped_forged.0,
            links_dropped_forged_honest: traffic.links_dropped_forged.1,
            links_over_budget: traffic.links_over_budget.0,
            links_over_budget_honest: traffic.links_over_budget.1,
            sessions_to_made_up: self.cast.sessions_to_made_up.load(Relaxed),
            sessions_over_budget: o.sessions_over_budget,
            connects_unresolved: o.connects_unresolved,
            forged_floods: o.forged_floods,
            forged_records: o.forged_records,
            forged_origins: o.forged_origins,
            seal_failures: o.seal_failures,
            floods_over_origin_budget: o.floods_over_origin_budget,
            floods_over_stranger_budget: o.floods_over_stranger_budget,
            frames_dropped: self.cast.frames_dropped.load(Relaxed),
            frames_rewritten: self.cast.frames_rewritten.load(Relaxed),
            spam_sent: self.spam_sent.load(Relaxed),
            spam_delivered: traffic.spam_delivered,
        })
    }

    /// Join and full-degree times, ms. For the first nodes the clock starts when there is
    /// somebody to link to (see the module docs).
    fn join_samples(&self) -> (Vec<f64>, Vec<f64>) {
        let initial: Vec<Instant> = self
            .slots
            .iter()
            .take(self.scenario.nodes)
            .map(|s| s.started)
            .collect();
        let since = |i: usize, k: usize, slot: &Slot| match initial.get(k) {
            Some(&kth) if i < k => slot.started.max(kth),
            _ => slot.started,
        };
        let ms =
            |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
        let (mut join, mut full) = (Vec::new(), Vec::new());
        for (i, slot) in self.slots.iter().enumerate() {
            let r = lock(&slot.record);
            if let Some(t) = r.first_link {
                join.push(ms(since(i, 1, slot), t));
            }
            if let Some(t) = r.full_degree {
                full.push(ms(since(i, self.shared.min_degree, slot), t));
            }
        }
        (join, full)
    }

    /// A point of the timeline; with `counters`, the signaling counts are read from the
    /// nodes, otherwise carried over (to keep idle measurements quiet).
    pub(super) async fn sample(&mut self, counters: bool) {
        let live = self.live(false);
        let (mut server, mut mesh) = match self.timeline.last() {
            Some(last) if !counters => (last.signals_via_server, last.signals_via_mesh),
            _ => (
                self.retired.overlay.signals_sent_via_server,
                self.retired.overlay.signals_sent_via_mesh,
            ),
        };
        if counters {
            for s in query(&live, |node| async move { node.stats().await })
                .await
                .values()
            {
                server += s.overlay.signals_sent_via_server;
                mesh += s.overlay.signals_sent_via_mesh;
            }
        }
        self.timeline.push(Sample {
            t: self.shared.start.elapsed().as_secs_f64(),
            nodes_alive: live.len(),
            signals_via_server: server,
            signals_via_mesh: mesh,
            rss_mb: procfs::rss_mb(),
        });
    }

    /// Whether every unicast sent arrived and every broadcast reached every node.
    pub(super) fn traffic_arrived(&self) -> bool {
        let t = lock(&self.shared.traffic);
        t.unicast_delivered == self.unicast_log.len() as u64
            && t.broadcast_receipts
                .iter()
                .zip(&self.broadcast_alive)
                .all(|(&got, &alive)| got as usize + 1 >= alive)
    }
}

/// The live nodes' links, as their own neighbour lists say.
struct LinkGraph {
    components: usize,
    /// Degree of every live node that answered.
    degrees: Vec<usize>,
    /// Links live nodes still count to nodes that are gone (not yet noticed).
    dangling: usize,
}

impl LinkGraph {
    fn repaired(&self, min_degree: usize) -> bool {
        report::repaired(self.components, &self.degrees, self.dangling, min_degree)
    }
}
