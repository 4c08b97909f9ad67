//! The run's state and its life: the embedded bootstrap server, one [`Slot`] per node, the
//! progress bar; starting the server and the nodes, asking every node at once, and the
//! teardown. The scenario's steps are in `traffic`, the readings at the end in `measure`.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mesh_node::Node;
use mesh_node::transport::webrtc::WebRtcTransport;
use mesh_proto::NodeId;
use mesh_proto::identity::Keypair;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, warn};

use super::hostile::{Cast, Sessions, Watched};
use super::observe::{self, Record, Shared, Traffic, lock};
use super::{QUERY_TIMEOUT, TEARDOWN};
use crate::report::Sample;
use crate::{AttackKind, Scenario};

/// What a flood task needs of a hostile node: its transport (not kept alive by the task)
/// and its sessions.
pub(super) type Flooder = (Weak<WebRtcTransport>, Sessions);

/// One node of the run, from the moment it starts joining.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) id: NodeId,
    /// When `Node::join` was called.
    pub(super) started: Instant,
    /// The node while it runs (`None` while joining, and once gone or if its join failed).
    pub(super) node: Option<Arc<Node>>,
    pub(super) record: Arc<Mutex<Record>>,
    /// With doors: dropping it stops the node's door.
    pub(super) door_stop: Option<oneshot::Sender<()>>,
    /// Hostile (`--attack`); churn's newcomers are honest.
    pub(super) hostile: bool,
    /// A hostile node's transport and sessions, for its flood task.
    pub(super) flooder: Arc<Mutex<Option<Flooder>>>,
}

/// The scenario's kill and the survivors' repair.
#[derive(Debug)]
pub(super) struct KillRecord {
    /// When the victims' handles were dropped.
    pub(super) at: Instant,
    /// Nodes the kill removed.
    pub(super) killed: usize,
    /// When the live nodes were first seen as one component again, and the id of the
    /// first unicast sent after that.
    pub(super) repaired: Option<(Instant, usize)>,
}

/// A join under way ends with the slot index and the node (or why it failed).
pub(super) type JoinResult = (usize, Result<Node, mesh_node::Error>);

/// Everything a run holds, from the start of the server to the teardown.
pub(super) struct Sim<'a> {
    pub(super) scenario: &'a Scenario,
    pub(super) overlay: mesh_core::Config,
    /// The embedded servers' URLs (one, or a fleet's), given to every node.
    pub(super) urls: Vec<mesh_proto::ServerUrl>,
    pub(super) server_stop: Vec<oneshot::Sender<()>>,
    pub(super) servers: Vec<JoinHandle<Result<(), bootstrap_server::Error>>>,
    pub(super) shared: Arc<Shared>,
    pub(super) slots: Vec<Slot>,
    pub(super) joins: JoinSet<JoinResult>,
    pub(super) keys: StdRng,
    pub(super) picks: StdRng,
    /// Counters of the nodes that are gone, read just before they went.
    pub(super) retired: Totals,
    /// Of those, the honest nodes' (with hostile nodes).
    pub(super) retired_honest: Totals,
    /// The attack of each initial node that is hostile (`crate::attack::initial`).
    pub(super) hostile: Vec<Option<AttackKind>>,
    /// What the hostile nodes share and did.
    pub(super) cast: Arc<Cast>,
    /// Floods the flooders sent, and their tasks.
    pub(super) spam_sent: Arc<AtomicU64>,
    pub(super) floods: Vec<JoinHandle<()>>,
    pub(super) initial_failed: usize,
    pub(super) join_failures: u64,
    /// Per unicast sent (its id is its index): (from, to) slot indices and the send time,
    /// for the log of those that did not arrive.
    pub(super) unicast_log: Vec<(usize, usize, Duration)>,
    pub(super) send_errors: u64,
    /// Per broadcast sent: the linked nodes alive when it was sent (origin included).
    pub(super) broadcast_alive: Vec<usize>,
    /// Per broadcast sent: with an honest origin, the other honest linked nodes alive when
    /// it was sent; `None` with a hostile one.
    pub(super) broadcast_honest: Vec<Option<usize>>,
    /// The kill, once it happened.
    pub(super) kill: Option<KillRecord>,
    pub(super) timeline: Vec<Sample>,
    pub(super) bar: ProgressBar,
}

impl<'a> Sim<'a> {
    /// Starts the server (or the fleet's servers) on `127.0.0.1:0`; no node yet.
    pub(super) async fn start(scenario: &'a Scenario, progress: bool) -> anyhow::Result<Sim<'a>> {
        let n = scenario.nodes;
        let overlay = scenario.overlay();
        overlay
            .validate()
            .context("the scenario's overlay configuration")?;
        // Room for every node, churn's newcomers and reconnections.
        let limit = (4 * n + 64).max(10_000);
        let mut config = bootstrap_server::Config::default()
            .with_max_connections(limit)
            .with_max_peers_per_room(limit)
            .with_shutdown_grace(Duration::from_secs(2));
        if let Some(redis) = &scenario.redis {
            // A name of this run's own: nothing of an earlier run is in its rooms.
            let prefix = format!("mesh-sim-{}-{}", std::process::id(), scenario.seed);
            config = config
                .with_redis(Some(redis.clone()))
                .with_fleet_prefix(prefix);
        }
        let (mut urls, mut server_stop, mut servers) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..scenario.servers {
            // The server's own listen backlog (1,024): hundreds of nodes connect at once.
            let listening =
                bootstrap_server::Server::listen((Ipv4Addr::LOCALHOST, 0).into(), config.clone())
                    .await
                    .context("starting an embedded bootstrap server on 127.0.0.1")?;
            let addr = listening.local_addr()?;
            let (stop, stopped) = oneshot::channel::<()>();
            servers.push(tokio::spawn(listening.run(async move {
                let _ = stopped.await;
            })));
            server_stop.push(stop);
            if scenario.redis.is_some() {
                wait_reaches_redis(addr).await?;
            }
            urls.push(
                format!("ws://{addr}/ws")
                    .parse()
                    .map_err(std::io::Error::other)?,
            );
        }
        let shared = Arc::new(Shared {
            start: Instant::now(),
            initial: n,
            min_degree: overlay.min_degree,
            joined_initial: Default::default(),
            joined_total: Default::default(),
            formed_initial: Default::default(),
            hostile: Mutex::new(HashSet::new()),
            traffic: Mutex::new(Traffic::default()),
        });
        let hostile = crate::attack::initial(scenario);
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
            urls,
            server_stop,
            servers,
            shared,
            slots: Vec::with_capacity(n),
            joins: JoinSet::new(),
            keys: StdRng::seed_from_u64(seed),
            picks: StdRng::seed_from_u64(seed ^ 0x5eed_5eed_5eed_5eed),
            retired: Totals::default(),
            retired_honest: Totals::default(),
            hostile,
            cast: Arc::default(),
            spam_sent: Arc::new(AtomicU64::new(0)),
            floods: Vec::new(),
            initial_failed: 0,
            join_failures: 0,
            unicast_log: Vec::new(),
            send_errors: 0,
            broadcast_alive: Vec::new(),
            broadcast_honest: Vec::new(),
            kill: None,
            timeline: Vec::new(),
            bar,
        })
    }

    /// Starts node `slots.len()` joining; [`Sim::on_joined`] takes the outcome.
    pub(super) fn start_join(&mut self) {
        let index = self.slots.len();
        let seed: [u8; 32] = self.keys.random();
        let key = Keypair::from_seed(seed);
        let record = Arc::new(Mutex::new(Record::default()));
        let mut config = mesh_node::Config::new(self.urls[0].clone())
            .with_bootstraps(self.urls.iter().cloned())
            .with_overlay(self.overlay.clone());
        let transport = mesh_node::transport::webrtc::Config::new()
            .with_bind_addrs(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))]);
        let (door_stop, door_stopped) = oneshot::channel::<()>();
        let doors = self.scenario.doors;
        let id = key.node_id();
        let attack = self.hostile.get(index).copied().flatten();
        let hostile = attack.is_some();
        if hostile {
            lock(&self.shared.hostile).insert(id);
        } else if index < self.scenario.nodes {
            lock(&self.cast.roster).push((id, key.public()));
        }
        // With hostile nodes in the run, every node goes through a watched transport.
        let watched = self.scenario.hostile.is_some();
        let cast = self.cast.clone();
        let poison_seed = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes"));
        let flooder = Arc::new(Mutex::new(None));
        self.slots.push(Slot {
            id,
            started: Instant::now(),
            node: None,
            record: record.clone(),
            door_stop: doors.then_some(door_stop),
            hostile,
            flooder: flooder.clone(),
        });
        let shared = self.shared.clone();
        self.joins.spawn(async move {
            if doors {
                match start_door(door_stopped).await {
                    Ok(url) => config = config.with_door(url),
                    Err(e) => warn!(node = index, "no door: {e}"),
                }
            }
            let joined = if watched {
                Node::join_with(config, key, move |events| {
                    let inner = WebRtcTransport::new(transport, events);
                    let (transport, weak, sessions) =
                        Watched::new(inner, Keypair::from_seed(seed), attack, poison_seed, cast);
                    if attack == Some(AttackKind::Flood) {
                        *lock(&flooder) = Some((weak, sessions));
                    }
                    transport
                })
                .await
            } else {
                Node::join(config, key, transport).await
            };
            let joined = joined.inspect(|node| {
                // Taken here, at once, so no event waits for the run's loop.
                if let Some(events) = node.events() {
                    let honest = !hostile;
                    tokio::spawn(observe::observe(index, honest, events, record, shared));
                }
            });
            (index, joined)
        });
    }

    /// Takes the outcome of a join.
    pub(super) fn on_joined(&mut self, (index, joined): JoinResult) {
        let slot = &mut self.slots[index];
        match joined {
            Ok(node) => slot.node = Some(Arc::new(node)),
            Err(e) => {
                warn!(node = index, "join failed: {e}");
                self.join_failures += 1;
                if index < self.scenario.nodes {
                    self.initial_failed += 1;
                }
            }
        }
    }

    /// Running nodes (with `linked`, only those that have had a link): (index, node).
    pub(super) fn live(&self, linked: bool) -> Vec<(usize, Arc<Node>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.node.clone()?)))
            .filter(|&(i, _)| !linked || lock(&self.slots[i].record).first_link.is_some())
            .collect()
    }

    /// Two distinct random indices below `n` (at least 2): a sender and a receiver.
    pub(super) fn pick_pair(&mut self, n: usize) -> (usize, usize) {
        let a = self.picks.random_range(0..n);
        (a, (a + self.picks.random_range(1..n)) % n)
    }

    /// Microseconds since the run started (the send time a payload carries).
    pub(super) fn now_us(&self) -> u64 {
        self.shared.start.elapsed().as_micros() as u64
    }

    /// Updates the bar: joins while joining, then seconds and traffic while `running`.
    pub(super) fn show_progress(&self, running: bool) {
        if self.bar.is_hidden() {
            return;
        }
        if running {
            let t = lock(&self.shared.traffic);
            self.bar.set_position(self.shared.start.elapsed().as_secs());
            self.bar.set_message(format!(
                "{} nodes, unicasts {}/{} delivered, {} broadcasts",
                self.slots.iter().filter(|s| s.node.is_some()).count(),
                t.unicast_delivered,
                self.unicast_log.len(),
                self.broadcast_alive.len()
            ));
        } else {
            self.bar
                .set_position(self.shared.joined_initial.load(Ordering::Relaxed) as u64);
        }
    }

    /// The flooders start (with the traffic).
    pub(super) fn start_floods(&mut self) {
        let Some(h) = self.scenario.hostile else {
            return;
        };
        let ttl = self.overlay.ttl;
        for (i, attack) in self.hostile.iter().enumerate() {
            if *attack != Some(AttackKind::Flood) {
                continue;
            }
            let Some((transport, sessions)) =
                self.slots.get(i).and_then(|s| lock(&s.flooder).clone())
            else {
                continue;
            };
            let seed = self.scenario.seed ^ ((i as u64) << 32);
            let start = self.shared.start;
            let sent = self.spam_sent.clone();
            self.floods.push(tokio::spawn(super::hostile::flood(
                transport, sessions, seed, h.spam, ttl, start, sent,
            )));
        }
    }

    /// Leaves with every node, stops the server.
    pub(super) async fn teardown(&mut self) {
        self.bar.finish_and_clear();
        for flood in self.floods.drain(..) {
            flood.abort();
        }
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
        for stop in self.server_stop.drain(..) {
            let _ = stop.send(());
        }
        for server in self.servers.drain(..) {
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

/// Asks every node at once; the answers by index (nodes that stopped or took longer than
/// [`QUERY_TIMEOUT`] are left out).
pub(super) async fn query<T, F, Fut>(nodes: &[(usize, Arc<Node>)], ask: F) -> HashMap<usize, T>
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

/// Waits (up to 10 s) until the fleet server at `addr` reaches its Redis: its `/healthz`
/// says `ok`, not `degraded`.
async fn wait_reaches_redis(addr: SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut answer = String::new();
        if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
            let request =
                format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).await.is_ok() {
                let _ = stream.read_to_string(&mut answer).await;
            }
        }
        if answer.ends_with("\r\n\r\nok\n") {
            return Ok(());
        }
        last = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_owned())
            .unwrap_or(answer);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the fleet server at {addr} did not reach its Redis within 10 s: {last}")
}

/// Starts a node's door (`Scenario::doors`): a bootstrap server on 127.0.0.1, with default
/// limits, until `stopped` resolves (or its sender is dropped). Returns its URL.
async fn start_door(stopped: oneshot::Receiver<()>) -> std::io::Result<mesh_proto::ServerUrl> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let url = format!("ws://{}/ws", listener.local_addr()?)
        .parse()
        .map_err(std::io::Error::other)?;
    tokio::spawn(bootstrap_server::run(
        listener,
        bootstrap_server::Config::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(url)
}

/// Counters of the nodes that ran, added up.
#[derive(Debug, Default)]
pub(super) struct Totals {
    pub(super) overlay: mesh_core::Stats,
    pub(super) link_send_dropped: u64,
    pub(super) link_setup_ms: Vec<f64>,
    pub(super) door_rejoins: u64,
}

impl Totals {
    pub(super) fn add(&mut self, s: &mesh_node::NodeStats) {
        self.overlay.add(&s.overlay);
        self.link_send_dropped += s.link_send_dropped;
        self.door_rejoins += s.door_rejoins;
        self.link_setup_ms
            .extend(s.link_setup.iter().map(|d| d.as_secs_f64() * 1e3));
    }
}
