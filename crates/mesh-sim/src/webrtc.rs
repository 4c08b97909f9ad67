//! The webrtc transport: real `mesh_node::Node`s (webrtc-rs PeerConnections, UDP bound to
//! 127.0.0.1 only) joining through an embedded `bootstrap_server` on 127.0.0.1, in one
//! process, in wall-clock time.
//!
//! How a run goes:
//! 1. The server starts on `127.0.0.1:0` (connection and room limits raised to fit the
//!    run; per-connection rate limits are the defaults, which a node stays far below).
//! 2. The initial nodes start at `join_rate` per second. A task per node consumes its
//!    events (bounded channel) and records its first link and when its degree reached the
//!    minimum ([`observe`]).
//! 3. Once every initial node has a link (or 10 s after the last one started), the
//!    traffic starts: unicasts between random live, linked pairs at `unicast_rate` (each
//!    payload carries an id and its send time), a broadcast from a random node every
//!    `broadcast_every`, and churn (a random node leaves, a new one joins) at
//!    `churn_per_min`. `kill` and `kill_bootstrap_at` happen at their time from the start.
//! 4. At `duration` from the start, traffic stops; the run waits (up to 3 s) for what is in
//!    flight, counts hops with probes, reads every node's neighbours and counters, and
//!    measures idle CPU for 2 s. Then every node leaves and the server stops.
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
//!   relays too) is discarded. `hops_mean`/`hops_p99` are over the probes; `hop_samples`
//!   (every delivered unicast) stays empty.
//! - **link_setup_ms**: `NodeStats::link_setup`, the driver's own record of offerer
//!   sessions (`OpenSession` → `LinkUp`), the last 256 per node.
//! - **Signaling**: sessions initiated via the server / via the mesh, summed over every node
//!   that ran (those that left are read just before they go).
//! - **Memory**: `VmRSS` every second for the timeline, `VmHWM` for the peak (the whole
//!   process: nodes, server, harness). **Idle CPU**: `utime + stime` of the process over
//!   2 s with no traffic at the end, in % of one core (10 ms resolution: ±0.5 %).

mod observe;
mod procfs;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mesh_node::{Node, NodeStats};
use mesh_proto::NodeId;
use mesh_proto::identity::Keypair;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::report::{self, Percentiles, Sample};
use crate::{Report, Scenario, TransportKind};
use observe::{Kind, Record, Shared, Traffic, lock};

/// Most hop probes sent at the end of a run.
pub const PROBES: usize = 40;
/// How long the hop probes may take in all.
const PROBE_BUDGET: Duration = Duration::from_secs(4);
/// How long in-flight traffic may take to arrive once the traffic stops.
const DRAIN: Duration = Duration::from_secs(3);
/// The window over which idle CPU is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// Traffic starts at the latest this long after the last initial node started.
const JOIN_GRACE: Duration = Duration::from_secs(10);
/// A node that does not answer a query within this time is left out of it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
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
    if let Some(kill) = s.kill {
        if !(kill.fraction > 0.0 && kill.fraction <= 1.0) {
            bail!(
                "the kill fraction must be within (0, 1], not {}",
                kill.fraction
            );
        }
    }
    if s.duration.is_zero() {
        bail!("duration must be longer than 0 s");
    }
    if s.broadcast_every.is_some_and(|d| d.is_zero()) {
        bail!("broadcast_every must be longer than 0 s (or none)");
    }
    Ok(())
}

/// One node of the run, from the moment it starts joining.
#[derive(Debug)]
struct Slot {
    id: NodeId,
    /// When `Node::join` was called.
    started: Instant,
    /// The node while it runs (`None` while joining and once gone).
    node: Option<Arc<Node>>,
    gone: bool,
    record: Arc<Mutex<Record>>,
}

/// Counters of the nodes that ran, added up.
#[derive(Debug, Default)]
struct Totals {
    sessions_via_server: u64,
    sessions_via_mesh: u64,
    signals_via_server: u64,
    signals_via_mesh: u64,
    flood_duplicates: u64,
    dropped_ttl: u64,
    dropped_no_route: u64,
    link_send_dropped: u64,
    links_up: u64,
    links_shed: u64,
    sessions_failed: u64,
    sessions_rejected: u64,
    link_setup_ms: Vec<f64>,
}

impl Totals {
    fn add(&mut self, s: &NodeStats) {
        self.sessions_via_server += s.overlay.sessions_initiated_via_server;
        self.sessions_via_mesh += s.overlay.sessions_initiated_via_mesh;
        self.signals_via_server += s.overlay.signals_sent_via_server;
        self.signals_via_mesh += s.overlay.signals_sent_via_mesh;
        self.flood_duplicates += s.overlay.flood_duplicates;
        self.dropped_ttl += s.overlay.dropped_ttl;
        self.dropped_no_route += s.overlay.dropped_no_route;
        self.link_send_dropped += s.link_send_dropped;
        self.links_up += s.overlay.links_up;
        self.links_shed += s.overlay.links_shed;
        self.sessions_failed += s.overlay.sessions_failed;
        self.sessions_rejected += s.overlay.sessions_rejected;
        self.link_setup_ms
            .extend(s.link_setup.iter().map(|d| d.as_secs_f64() * 1e3));
    }
}

type JoinResult = (usize, Result<Node, mesh_node::Error>);

struct Sim<'a> {
    scenario: &'a Scenario,
    overlay: mesh_core::Config,
    url: String,
    server_stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), bootstrap_server::Error>>>,
    shared: Arc<Shared>,
    slots: Vec<Slot>,
    joins: JoinSet<JoinResult>,
    keys: StdRng,
    picks: StdRng,
    /// Counters of the nodes that are gone, read just before they went.
    retired: Totals,
    initial_failed: usize,
    join_failures: u64,
    unicast_sent: u64,
    /// Per unicast sent: (from, to) slot indices and the send time, for the log of those
    /// that did not arrive.
    unicast_log: Vec<(usize, usize, Duration)>,
    send_errors: u64,
    /// Per broadcast sent: the linked nodes alive when it was sent (origin included).
    broadcast_alive: Vec<usize>,
    timeline: Vec<Sample>,
    bar: ProgressBar,
}

impl<'a> Sim<'a> {
    async fn start(scenario: &'a Scenario, progress: bool) -> anyhow::Result<Sim<'a>> {
        let n = scenario.nodes;
        let overlay = scenario.overlay();
        overlay
            .validate()
            .context("the scenario's overlay configuration")?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the embedded bootstrap server to 127.0.0.1")?;
        let url = format!("ws://{}/ws", listener.local_addr()?);
        // Room for every node, churn's newcomers and reconnections.
        let limit = (4 * n + 64).max(10_000);
        let config = bootstrap_server::Config::default()
            .with_max_connections(limit)
            .with_max_peers_per_room(limit)
            .with_shutdown_grace(Duration::from_secs(2));
        let (server_stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(bootstrap_server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        let shared = Arc::new(Shared {
            start: Instant::now(),
            initial: n,
            min_degree: overlay.min_degree,
            joined_initial: Default::default(),
            joined_total: Default::default(),
            traffic: Mutex::new(Traffic::default()),
        });
        let bar = if progress {
            ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "joining  [{bar:40}] {pos}/{len} nodes have a link ({elapsed})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let seed = scenario.seed;
        Ok(Sim {
            scenario,
            overlay,
            url,
            server_stop: Some(server_stop),
            server: Some(server),
            shared,
            slots: Vec::with_capacity(n),
            joins: JoinSet::new(),
            keys: StdRng::seed_from_u64(seed),
            picks: StdRng::seed_from_u64(seed ^ 0x5eed_5eed_5eed_5eed),
            retired: Totals::default(),
            initial_failed: 0,
            join_failures: 0,
            unicast_sent: 0,
            unicast_log: Vec::new(),
            send_errors: 0,
            broadcast_alive: Vec::new(),
            timeline: Vec::new(),
            bar,
        })
    }

    /// The scenario, then the measurements at the end.
    async fn run(&mut self) -> anyhow::Result<Report> {
        let s = self.scenario;
        let start = self.shared.start;
        let end = start + s.duration;
        let join_every = Duration::from_secs_f64(1.0 / s.join_rate);
        let unicast_every =
            (s.unicast_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / s.unicast_rate));
        let churn_rate = s.churn_per_min / 100.0 * s.nodes as f64 / 60.0;
        let churn_every = (churn_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / churn_rate));

        let mut started = 0;
        let mut next_join = start;
        let mut traffic_from: Option<Instant> = None;
        let (mut next_unicast, mut next_broadcast, mut next_churn) = (None, None, None);
        let mut kill_at = s.kill.map(|k| (start + k.at, k.fraction));
        let mut server_kill_at = s.kill_bootstrap_at.map(|d| start + d);
        let mut next_sample = start + Duration::from_secs(1);
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            while started < s.nodes && next_join <= now {
                self.start_join();
                started += 1;
                next_join += join_every;
            }
            if traffic_from.is_none() && started == s.nodes {
                let joined = self.shared.joined_initial.load(Ordering::Relaxed);
                let last_start = self.slots[s.nodes - 1].started;
                if joined + self.initial_failed >= s.nodes || now >= last_start + JOIN_GRACE {
                    info!(joined, "initial joins done: traffic starts");
                    traffic_from = Some(now);
                    next_unicast = unicast_every.map(|d| now + d);
                    next_broadcast = s.broadcast_every.map(|d| now + d);
                    next_churn = churn_every.map(|d| now + d);
                    self.bar.set_style(
                        ProgressStyle::with_template("running  [{bar:40}] {pos}/{len} s  {msg}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    self.bar.set_length(s.duration.as_secs());
                }
            }
            if let Some((at, fraction)) = kill_at {
                if at <= now {
                    self.kill(fraction).await;
                    kill_at = None;
                }
            }
            if server_kill_at.is_some_and(|at| at <= now) {
                info!("stopping the bootstrap server");
                if let Some(stop) = self.server_stop.take() {
                    let _ = stop.send(());
                }
                server_kill_at = None;
            }
            if let (Some(next), Some(every)) = (next_unicast.as_mut(), unicast_every) {
                while *next <= now {
                    self.unicast().await;
                    *next += every;
                }
            }
            if let (Some(next), Some(every)) = (next_broadcast.as_mut(), s.broadcast_every) {
                while *next <= now {
                    self.broadcast().await;
                    *next += every;
                }
            }
            if let (Some(next), Some(every)) = (next_churn.as_mut(), churn_every) {
                while *next <= now {
                    self.churn().await;
                    *next += every;
                }
            }
            if next_sample <= now {
                self.sample(true).await;
                while next_sample <= Instant::now() {
                    next_sample += Duration::from_secs(1);
                }
            }
            self.show_progress(traffic_from.is_some());

            let mut wake = end.min(next_sample).min(now + Duration::from_millis(100));
            if started < s.nodes {
                wake = wake.min(next_join);
            }
            for t in [next_unicast, next_broadcast, next_churn, server_kill_at]
                .into_iter()
                .flatten()
                .chain(kill_at.map(|(at, _)| at))
            {
                wake = wake.min(t);
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {}
                Some(joined) = self.joins.join_next(), if !self.joins.is_empty() => {
                    self.on_joined(joined.context("a join task failed")?);
                }
            }
        }
        self.finish().await
    }

    /// After the scenario: drain, hop probes, the final reading, idle CPU; the report.
    async fn finish(&mut self) -> anyhow::Result<Report> {
        let finishing = |bar: &ProgressBar, msg: &'static str| {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("valid template"),
            );
            bar.set_message(msg);
            bar.enable_steady_tick(Duration::from_millis(200));
        };
        finishing(&self.bar, "traffic stopped: waiting for what is in flight");
        // Joins still under way are abandoned (their nodes leave as they are dropped).
        self.joins.abort_all();
        while let Some(joined) = self.joins.join_next().await {
            if let Ok(joined) = joined {
                self.on_joined(joined);
            }
        }
        let deadline = Instant::now() + DRAIN;
        while !self.traffic_arrived() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.sample(true).await;

        finishing(&self.bar, "counting hops with probe messages");
        let hops = self.probe_hops().await;
        self.sample(true).await;

        finishing(&self.bar, "reading every node's neighbours and counters");
        let live = self.live(false);
        let ids: Vec<NodeId> = live.iter().map(|&(i, _)| self.slots[i].id).collect();
        let neighbours = query(&live, |node| async move { node.neighbors().await }).await;
        let stats = query(&live, |node| async move { node.stats().await }).await;
        let index_of: HashMap<NodeId, usize> =
            ids.iter().enumerate().map(|(k, id)| (*id, k)).collect();
        let mut edges = Vec::new();
        let mut degrees = Vec::new();
        for (k, &(i, _)) in live.iter().enumerate() {
            let Some(peers) = neighbours.get(&i) else {
                continue;
            };
            degrees.push(peers.len());
            edges.extend(
                peers
                    .iter()
                    .filter_map(|p| index_of.get(p))
                    .map(|&j| (k, j)),
            );
        }
        let components = report::components(live.len(), edges);
        let mut totals = std::mem::take(&mut self.retired);
        for s in stats.values() {
            totals.add(s);
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
        Ok(self.report(
            totals,
            components,
            degrees,
            live.len(),
            hops,
            cpu_idle,
            wall_s,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        totals: Totals,
        components: usize,
        degrees: Vec<usize>,
        nodes_alive: usize,
        hops: Vec<u32>,
        cpu_idle: f64,
        wall_s: f64,
    ) -> Report {
        let s = self.scenario;
        let (join_ms, full_ms) = self.join_samples();
        let traffic = lock(&self.shared.traffic);
        let coverage = traffic
            .broadcast_receipts
            .iter()
            .zip(&self.broadcast_alive)
            .filter(|&(_, &alive)| alive > 1)
            .map(|(&got, &alive)| (f64::from(got) / (alive - 1) as f64).min(1.0))
            .fold(None, |min: Option<f64>, c| {
                Some(min.map_or(c, |m| m.min(c)))
            });
        let copies: usize = self.broadcast_alive.iter().sum();
        let hops_f: Vec<f64> = hops.iter().map(|&h| f64::from(h)).collect();
        info!(
            links_up = totals.links_up,
            links_shed = totals.links_shed,
            sessions_failed = totals.sessions_failed,
            sessions_rejected = totals.sessions_rejected,
            dropped_ttl = totals.dropped_ttl,
            dropped_no_route = totals.dropped_no_route,
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
            link_setup_ms: report::LinkSetup {
                p50: report::quantile(&totals.link_setup_ms, 0.5),
                p99: report::quantile(&totals.link_setup_ms, 0.99),
            },
            signaling: report::Signaling {
                sessions: totals.sessions_via_server + totals.sessions_via_mesh,
                via_server: totals.sessions_via_server,
                via_mesh: totals.sessions_via_mesh,
            },
            unicast: report::Unicast {
                sent: self.unicast_sent,
                delivered: traffic.unicast_delivered,
                hops_mean: report::mean(&hops_f),
                hops_p99: report::quantile(&hops_f, 0.99),
                latency_ms_p50: report::quantile(&traffic.unicast_latency_ms, 0.5),
            },
            broadcast: report::Broadcast {
                sent: self.broadcast_alive.len() as u64,
                min_coverage: coverage.unwrap_or(0.0),
                duplicates_per_node_mean: if copies == 0 {
                    0.0
                } else {
                    totals.flood_duplicates as f64 / copies as f64
                },
            },
            components,
            nodes_alive,
            rss_mb_peak: procfs::peak_rss_mb(),
            cpu_idle_pct_of_one_core: cpu_idle,
            wall_s,
            seed: s.seed,
            degrees,
            join_samples_ms: join_ms,
            hop_samples: Vec::new(),
            timeline: self.timeline.clone(),
        }
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

    fn start_join(&mut self) {
        let index = self.slots.len();
        let key = Keypair::from_seed(self.keys.random());
        let record = Arc::new(Mutex::new(Record::default()));
        let config = mesh_node::Config::new(&self.url).with_overlay(self.overlay.clone());
        let transport = mesh_node::transport::webrtc::Config::new()
            .with_bind_addrs(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))]);
        self.slots.push(Slot {
            id: key.node_id(),
            started: Instant::now(),
            node: None,
            gone: false,
            record: record.clone(),
        });
        let shared = self.shared.clone();
        self.joins.spawn(async move {
            let joined = Node::join(config, key, transport).await.inspect(|node| {
                // Taken here, at once, so no event waits for the run's loop.
                if let Some(events) = node.events() {
                    tokio::spawn(observe::observe(index, events, record, shared));
                }
            });
            (index, joined)
        });
    }

    fn on_joined(&mut self, (index, joined): JoinResult) {
        let slot = &mut self.slots[index];
        match joined {
            Ok(node) => slot.node = Some(Arc::new(node)),
            Err(e) => {
                warn!(node = index, "join failed: {e}");
                slot.gone = true;
                self.join_failures += 1;
                if index < self.scenario.nodes {
                    self.initial_failed += 1;
                }
            }
        }
    }

    /// Running nodes (with `linked`, only those that have had a link): (index, node).
    fn live(&self, linked: bool) -> Vec<(usize, Arc<Node>)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.gone)
            .filter_map(|(i, s)| Some((i, s.node.clone()?)))
            .filter(|&(i, _)| !linked || lock(&self.slots[i].record).first_link.is_some())
            .collect()
    }

    fn now_us(&self) -> u64 {
        self.shared.start.elapsed().as_micros() as u64
    }

    async fn unicast(&mut self) {
        let live = self.live(true);
        if live.len() < 2 {
            return;
        }
        let a = self.picks.random_range(0..live.len());
        let b = (a + self.picks.random_range(1..live.len())) % live.len();
        let id = self.unicast_sent;
        lock(&self.shared.traffic).unicast_arrived.push(false);
        self.unicast_sent += 1;
        self.unicast_log
            .push((live[a].0, live[b].0, self.shared.start.elapsed()));
        let to = self.slots[live[b].0].id;
        let data = observe::payload(Kind::Unicast, id, self.now_us());
        if let Err(e) = live[a].1.send(to, data).await {
            debug!(from = live[a].0, to = live[b].0, "unicast not sent: {e}");
            self.send_errors += 1;
        }
    }

    async fn broadcast(&mut self) {
        let live = self.live(true);
        if live.len() < 2 {
            return;
        }
        let origin = self.picks.random_range(0..live.len());
        let id = self.broadcast_alive.len() as u64;
        lock(&self.shared.traffic).broadcast_receipts.push(0);
        self.broadcast_alive.push(live.len());
        let data = observe::payload(Kind::Broadcast, id, self.now_us());
        if let Err(e) = live[origin].1.broadcast(data).await {
            debug!(from = live[origin].0, "broadcast not sent: {e}");
            self.send_errors += 1;
        }
    }

    /// Stops the nodes at `indices` (dropping their handles), after reading their counters.
    async fn retire(&mut self, indices: &[usize]) {
        let nodes: Vec<(usize, Arc<Node>)> = indices
            .iter()
            .filter_map(|&i| Some((i, self.slots[i].node.clone()?)))
            .collect();
        for stats in query(&nodes, |node| async move { node.stats().await })
            .await
            .values()
        {
            self.retired.add(stats);
        }
        drop(nodes);
        for &i in indices {
            let slot = &mut self.slots[i];
            slot.gone = true;
            // The last handle: dropping it makes the driver leave.
            slot.node = None;
        }
    }

    async fn kill(&mut self, fraction: f64) {
        let live = self.live(false);
        let n = ((fraction * live.len() as f64).round() as usize).clamp(1, live.len().max(1));
        if live.is_empty() {
            return;
        }
        let victims: Vec<usize> = rand::seq::index::sample(&mut self.picks, live.len(), n)
            .into_iter()
            .map(|k| live[k].0)
            .collect();
        drop(live);
        info!(n, "killing nodes");
        self.retire(&victims).await;
    }

    async fn churn(&mut self) {
        let live = self.live(true);
        if let Some(&(i, _)) = live.get(self.picks.random_range(0..live.len().max(1))) {
            drop(live);
            debug!(node = i, "churn: a node leaves, a new one joins");
            self.retire(&[i]).await;
        }
        self.start_join();
    }

    /// A point of the timeline; with `counters`, the signaling counts are read from the
    /// nodes, otherwise carried over (to keep idle measurements quiet).
    async fn sample(&mut self, counters: bool) {
        let live = self.live(false);
        let (mut server, mut mesh) = match self.timeline.last() {
            Some(last) if !counters => (last.signals_via_server, last.signals_via_mesh),
            _ => (
                self.retired.signals_via_server,
                self.retired.signals_via_mesh,
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

    fn show_progress(&self, running: bool) {
        if self.bar.is_hidden() {
            return;
        }
        if running {
            let t = lock(&self.shared.traffic);
            self.bar.set_position(self.shared.start.elapsed().as_secs());
            self.bar.set_message(format!(
                "{} nodes, unicasts {}/{} delivered, {} broadcasts",
                self.live(false).len(),
                t.unicast_delivered,
                self.unicast_sent,
                self.broadcast_alive.len()
            ));
        } else {
            self.bar
                .set_position(self.shared.joined_initial.load(Ordering::Relaxed) as u64);
        }
    }

    /// Whether every unicast sent arrived and every broadcast reached every node.
    fn traffic_arrived(&self) -> bool {
        let t = lock(&self.shared.traffic);
        t.unicast_delivered == self.unicast_sent
            && t.broadcast_receipts
                .iter()
                .zip(&self.broadcast_alive)
                .all(|(&got, &alive)| got as usize + 1 >= alive)
    }

    /// Hops of up to [`PROBES`] unicasts sent one at a time in the quiet mesh (see the
    /// module docs).
    async fn probe_hops(&mut self) -> Vec<u32> {
        let deadline = Instant::now() + PROBE_BUDGET;
        let mut hops = Vec::new();
        let mut discarded = 0;
        for id in 0..PROBES as u64 {
            let live = self.live(true);
            if live.len() < 2 || Instant::now() >= deadline {
                break;
            }
            let a = self.picks.random_range(0..live.len());
            let b = (a + self.picks.random_range(1..live.len())) % live.len();
            lock(&self.shared.traffic).probe_arrived.push(false);
            let before = relay_counters(&live).await;
            let data = observe::payload(Kind::Probe, id, self.now_us());
            if live[a]
                .1
                .send(self.slots[live[b].0].id, data)
                .await
                .is_err()
            {
                continue;
            }
            let sent = Instant::now();
            let arrived = loop {
                if lock(&self.shared.traffic).probe_arrived[id as usize] {
                    break true;
                }
                if sent.elapsed() > Duration::from_secs(1) {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            let after = relay_counters(&live).await;
            match (arrived, before, after) {
                (true, Some(b), Some(a)) if a.quiet_since(&b) => {
                    hops.push(1 + (a.relayed - b.relayed) as u32);
                }
                _ => discarded += 1,
            }
        }
        info!(probes = hops.len(), discarded, "hop probes");
        hops
    }

    /// Leaves with every node, stops the server.
    async fn teardown(&mut self) {
        self.bar.finish_and_clear();
        self.joins.abort_all();
        let mut leaving = JoinSet::new();
        for slot in &mut self.slots {
            if let Some(node) = slot.node.take() {
                match Arc::try_unwrap(node) {
                    Ok(node) => {
                        leaving.spawn(node.leave());
                    }
                    Err(node) => drop(node),
                }
            }
        }
        let t = Instant::now();
        let left = tokio::time::timeout(TEARDOWN, async {
            while leaving.join_next().await.is_some() {}
        })
        .await;
        if left.is_err() {
            warn!("nodes still leaving after {TEARDOWN:?}");
        }
        if let Some(stop) = self.server_stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            match tokio::time::timeout(TEARDOWN, server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => warn!("the bootstrap server failed: {e}"),
                Ok(Err(e)) => warn!("the bootstrap server task failed: {e}"),
                Err(_) => warn!("the bootstrap server did not stop within {TEARDOWN:?}"),
            }
        }
        info!(took = ?t.elapsed(), "teardown");
    }
}

/// Sums of the counters that change when a frame is relayed.
#[derive(Clone, Copy, Debug, Default)]
struct RelayCounters {
    relayed: u64,
    signals: u64,
    floods: u64,
}

impl RelayCounters {
    /// No signaling message and no flood copy moved between `before` and `self`.
    fn quiet_since(&self, before: &Self) -> bool {
        self.signals == before.signals
            && self.floods == before.floods
            && self.relayed >= before.relayed
    }
}

/// The relay counters summed over `nodes`; `None` if a node did not answer.
async fn relay_counters(nodes: &[(usize, Arc<Node>)]) -> Option<RelayCounters> {
    let stats = query(nodes, |node| async move { node.stats().await }).await;
    if stats.len() != nodes.len() {
        return None;
    }
    let mut c = RelayCounters::default();
    for s in stats.values() {
        let o = &s.overlay;
        c.relayed += o.frames_relayed;
        c.signals += o.signals_sent_via_mesh + o.signals_received_via_mesh;
        c.floods += o.broadcasts_delivered + o.flood_duplicates;
    }
    Some(c)
}

/// Asks every node at once; the answers by index (nodes that stopped or took longer than
/// [`QUERY_TIMEOUT`] are left out).
async fn query<T, F, Fut>(nodes: &[(usize, Arc<Node>)], ask: F) -> HashMap<usize, T>
where
    T: Send + 'static,
    F: Fn(Arc<Node>) -> Fut,
    Fut: std::future::Future<Output = Result<T, mesh_node::Error>> + Send + 'static,
{
    let mut set = JoinSet::new();
    for (i, node) in nodes {
        let (i, asked) = (*i, ask(node.clone()));
        set.spawn(async move { (i, tokio::time::timeout(QUERY_TIMEOUT, asked).await) });
    }
    let mut answers = HashMap::with_capacity(nodes.len());
    while let Some(answer) = set.join_next().await {
        if let Ok((i, Ok(Ok(value)))) = answer {
            answers.insert(i, value);
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn a_probe_window_with_signaling_or_floods_is_not_quiet() {
        let before = RelayCounters {
            relayed: 10,
            signals: 5,
            floods: 2,
        };
        assert!(
            RelayCounters {
                relayed: 12,
                ..before
            }
            .quiet_since(&before)
        );
        assert!(
            !RelayCounters {
                signals: 6,
                ..before
            }
            .quiet_since(&before)
        );
        assert!(
            !RelayCounters {
                floods: 3,
                ..before
            }
            .quiet_since(&before)
        );
    }
}
