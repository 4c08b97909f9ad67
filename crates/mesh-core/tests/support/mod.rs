//! A deterministic network of `mesh_core::Node`s for tests, on the emulator the simulator
//! runs too (`mesh_emu`), with every latency zero (unless made with
//! [`Net::with_latencies`]): a simulated bootstrap server, simulated
//! links (a session's offer/answer exchange opens them, as WebRTC would), and a virtual
//! clock. Every step is reproducible from the seeds.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh_core::{Config, Event, Input, Node, Role};
use mesh_emu::{Emulator, Latencies, Sampling, Scheduled, World};
use mesh_proto::identity::Keypair;
use mesh_proto::signal::SessionId;
use mesh_proto::{NodeId, ServerUrl};
use rand::SeedableRng;

/// A hook that may rewrite the bytes a node sends on a link: (sender index, bytes).
pub type Tamper = Box<dyn FnMut(usize, &mut Bytes)>;

/// The simulated bootstrap server's URL.
pub fn bootstrap() -> ServerUrl {
    mesh_emu::bootstrap_url()
}

pub struct Net {
    pub now: Instant,
    pub nodes: Vec<Node>,
    pub index: HashMap<NodeId, usize>,
    emu: Emulator<()>,
    registered: Vec<usize>,
    pub events: Vec<(usize, Event)>,
    pub tamper: Option<Tamper>,
    /// Nodes whose transport fails every session they answer.
    pub failing_answerers: Vec<usize>,
    /// Nodes no link with ever comes up, silently ([`mesh_emu::World::unlinkable`]).
    pub unlinkable: Vec<usize>,
    /// The sessions nodes opened, in order: (node, peer, role).
    pub opened: Vec<(usize, NodeId, Role)>,
    left: Vec<bool>,
}

/// What the emulator sees of a [`Net`]: its nodes and hooks, borrowed apart from the
/// emulator itself.
struct View<'a> {
    nodes: &'a mut [Node],
    left: &'a [bool],
    events: &'a mut Vec<(usize, Event)>,
    tamper: &'a mut Option<Tamper>,
    failing_answerers: &'a [usize],
    unlinkable: &'a [usize],
    opened: &'a mut Vec<(usize, NodeId, Role)>,
}

impl World<()> for View<'_> {
    fn node(&self, i: u32) -> Option<&Node> {
        (!self.left[i as usize]).then(|| &self.nodes[i as usize])
    }
    fn node_mut(&mut self, i: u32) -> Option<&mut Node> {
        (!self.left[i as usize]).then(|| &mut self.nodes[i as usize])
    }
    fn on_event(&mut self, _: &mut Emulator<()>, i: u32, event: Event) {
        self.events.push((i as usize, event));
    }
    fn on_user(&mut self, _: &mut Emulator<()>, (): ()) {}
    fn on_link_frame(&mut self, i: u32, _j: u32, bytes: &mut Bytes) -> bool {
        if let Some(tamper) = self.tamper.as_mut() {
            tamper(i as usize, bytes);
        }
        // A tamper that empties a frame drops it.
        !bytes.is_empty()
    }
    fn fails_answering(&self, i: u32) -> bool {
        self.failing_answerers.contains(&(i as usize))
    }
    fn unlinkable(&self, i: u32) -> bool {
        self.unlinkable.contains(&(i as usize))
    }
    fn on_open_session(&mut self, i: u32, peer: NodeId, role: Role) {
        self.opened.push((i as usize, peer, role));
    }
}

impl Net {
    /// `n` nodes (not yet joined), each with its own deterministic key and seed.
    pub fn new(n: usize, config: Config) -> Self {
        Self::with_latencies(n, config, Latencies::ZERO)
    }

    /// [`Net::new`] with the emulator's `latencies` (seeded draws) instead of zero.
    pub fn with_latencies(n: usize, mut config: Config, latencies: Latencies) -> Self {
        if config.bootstraps.is_empty() {
            config.bootstraps.push(bootstrap());
        }
        let network = mesh_emu::Config {
            latencies,
            sampling: Sampling::Newest,
            welcome: 8,
            peers: 16,
        };
        let mut emu = Emulator::new(network, rand::rngs::StdRng::seed_from_u64(0))
            .with_bootstraps(config.bootstraps.clone());
        let now = emu.instant_now();
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                Node::new(config.clone(), key(i, config.id_difficulty), now, i as u64).unwrap()
            })
            .collect();
        for node in &nodes {
            emu.add(node.id());
        }
        let index = nodes.iter().enumerate().map(|(i, n)| (n.id(), i)).collect();
        Self {
            now,
            nodes,
            index,
            emu,
            registered: Vec::new(),
            events: Vec::new(),
            tamper: None,
            failing_answerers: Vec::new(),
            unlinkable: Vec::new(),
            opened: Vec::new(),
            left: vec![false; n],
        }
    }

    /// Puts `node` in place of node `i` (before it joins).
    pub fn replace(&mut self, i: usize, node: Node) {
        self.index.remove(&self.nodes[i].id());
        self.index.insert(node.id(), i);
        self.emu.rename(i as u32, node.id());
        self.nodes[i] = node;
    }

    pub fn id(&self, i: usize) -> NodeId {
        self.nodes[i].id()
    }

    /// Unicasts the simulated server relayed.
    pub fn server_unicasts(&self) -> u64 {
        self.emu.server_unicasts
    }

    /// Registers node `i` with the simulated server; the Welcome lists the 8 nodes that
    /// registered last, the newest first.
    pub fn join(&mut self, i: usize) {
        let peers: Vec<usize> = self.registered.iter().rev().take(8).copied().collect();
        self.register(i, &peers);
        self.settle();
    }

    /// Registers node `i`; the Welcome lists exactly `peers`.
    pub fn join_knowing(&mut self, i: usize, peers: &[usize]) {
        self.register(i, peers);
        self.settle();
    }

    /// Registers several nodes at once, each told about the others, then lets them act.
    pub fn join_together(&mut self, nodes: &[usize]) {
        for &i in nodes {
            let others: Vec<usize> = nodes.iter().copied().filter(|j| *j != i).collect();
            self.register(i, &others);
        }
        self.settle();
    }

    fn register(&mut self, i: usize, peers: &[usize]) {
        let peers = peers.iter().map(|j| self.id(*j)).collect();
        self.registered.push(i);
        self.emu.register_with(i as u32, peers);
    }

    /// Node `i` starts as a driver starts it: it registers at its first bootstrap server
    /// (`Node::joining_at`) through the emulated network, which answers with a sample of
    /// the nodes registered anywhere in the fleet.
    pub fn start(&mut self, i: usize) {
        self.registered.push(i);
        self.emu.connect(i as u32);
        let (emu, view) = self.view();
        emu.arm_timer(&view, i as u32);
    }

    /// Bootstrap server `url` of the fleet dies: the nodes registered there hear
    /// `ServerDown`; later attempts there are refused.
    pub fn kill_bootstrap(&mut self, url: &ServerUrl) {
        self.emu.kill_bootstrap(url);
        self.settle();
    }

    /// The bootstrap server node `i` is registered at (as the emulated fleet sees it).
    pub fn bootstrap_of(&self, i: usize) -> Option<&ServerUrl> {
        self.emu.bootstrap_of(i as u32)
    }

    /// The connected components of the nodes that started and did not leave, by their
    /// links (each sorted, the components by their first node).
    pub fn components(&self) -> Vec<Vec<usize>> {
        let mut live = self.registered.clone();
        live.sort_unstable();
        live.dedup();
        let mut seen = vec![false; self.nodes.len()];
        let mut components = Vec::new();
        for &start in &live {
            if seen[start] {
                continue;
            }
            seen[start] = true;
            let mut component = vec![start];
            let mut next = 0;
            while next < component.len() {
                let i = component[next];
                next += 1;
                for peer in self.nodes[i].neighbours() {
                    if let Some(&j) = self.index.get(&peer)
                        && !seen[j]
                    {
                        seen[j] = true;
                        component.push(j);
                    }
                }
            }
            component.sort_unstable();
            components.push(component);
        }
        components
    }

    /// Stops the simulated server: every node hears ServerDown.
    pub fn stop_server(&mut self) {
        let alive: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|i| !self.left[*i as usize])
            .collect();
        self.emu.stop_server(&alive);
        self.settle();
    }

    /// Node `i` leaves: closes everything; its links drop on the other side.
    pub fn leave(&mut self, i: usize) {
        self.nodes[i].leave();
        self.drain(i);
        self.left[i] = true;
        self.registered.retain(|j| *j != i);
        self.emu.gone(i as u32);
        self.settle();
    }

    pub fn degree(&self, i: usize) -> usize {
        self.nodes[i].neighbours().len()
    }

    /// Whether greedy routing can make progress everywhere: for every two nodes `a` ≠ `b`
    /// that joined and did not leave, some neighbour of `a`, or neighbour of a neighbour, is
    /// closer to `b` by XOR than `a` is (so a unicast from anywhere to anywhere is never at
    /// a dead end, once the neighbour sets are announced).
    pub fn greedy_complete(&self) -> bool {
        let live: Vec<usize> = self.registered.clone();
        live.iter().all(|&a| {
            let me = self.id(a);
            let near: Vec<NodeId> = self.nodes[a]
                .neighbours()
                .into_iter()
                .flat_map(|n| {
                    let far = self.index.get(&n).map(|&j| self.nodes[j].neighbours());
                    std::iter::once(n).chain(far.into_iter().flatten())
                })
                .collect();
            live.iter().filter(|&&b| b != a).all(|&b| {
                let to = self.id(b);
                near.iter().any(|n| n.distance(&to) < me.distance(&to))
            })
        })
    }

    fn view(&mut self) -> (&mut Emulator<()>, View<'_>) {
        let view = View {
            nodes: &mut self.nodes,
            left: &self.left,
            events: &mut self.events,
            tamper: &mut self.tamper,
            failing_answerers: &self.failing_answerers,
            unlinkable: &self.unlinkable,
            opened: &mut self.opened,
        };
        (&mut self.emu, view)
    }

    /// Processes everything due up to `at`.
    fn run_to(&mut self, at: u64) {
        let (emu, mut view) = self.view();
        emu.run(&mut view, at);
        self.now = self.emu.instant_now();
    }

    /// Runs until `done` holds or `limit` of virtual time passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.emu.now + u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX / 2);
        loop {
            self.settle();
            if done(self) {
                return true;
            }
            match self.emu.next_at() {
                Some(next) if next <= end => self.run_to(next),
                _ => return false,
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Delivers everything queued, and everything that causes, at the current time.
    pub fn settle(&mut self) {
        let now = self.emu.now;
        self.run_to(now);
    }

    /// Carries out node `i`'s outputs (after a command such as `send`).
    pub fn drain(&mut self, i: usize) {
        let (emu, mut view) = self.view();
        emu.drain(&mut view, i as u32);
    }

    /// Injects raw bytes on node `i`'s link to `peer`, as if `peer` had sent them.
    pub fn inject(&mut self, i: usize, peer: usize, bytes: Vec<u8>) {
        let session = self.link_session(i, peer).expect("linked");
        let input = Input::LinkData {
            session,
            bytes: bytes.into(),
        };
        let now = self.emu.now;
        self.emu.push(now, Scheduled::Deliver(i as u32, input));
        self.settle();
    }

    /// The session of the up link between `a` and `b`.
    pub fn link_session(&self, a: usize, b: usize) -> Option<SessionId> {
        self.emu.link_session(a as u32, b as u32)
    }

    pub fn messages(&self, i: usize) -> Vec<(NodeId, Vec<u8>)> {
        self.events
            .iter()
            .filter(|(j, _)| *j == i)
            .filter_map(|(_, e)| match e {
                Event::Message { from, data } => Some((*from, data.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn broadcasts(&self, i: usize) -> Vec<(NodeId, Vec<u8>)> {
        self.events
            .iter()
            .filter(|(j, _)| *j == i)
            .filter_map(|(_, e)| match e {
                Event::Broadcast { from, data } => Some((*from, data.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Node `i`'s deterministic key: from the seed `i + 1`, or, with a `difficulty`, the first
/// seed `i + 1` ‖ counter whose id meets it (docs/protocol.md §4.7; 2^difficulty tries on
/// average).
pub fn key(i: usize, difficulty: u32) -> Keypair {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    for n in 0u64.. {
        if difficulty > 0 {
            seed[8..16].copy_from_slice(&n.to_le_bytes());
        }
        let key = Keypair::from_seed(seed);
        if mesh_proto::puzzle::meets(&key.node_id(), difficulty) {
            return key;
        }
    }
    unreachable!()
}

/// A small-mesh configuration with short timers, for tests.
pub fn test_config() -> Config {
    Config::default()
        .with_bootstrap(Some(bootstrap()))
        .with_target_degree(4)
        .with_min_degree(2)
        .with_max_degree(8)
        .with_session_timeout(Duration::from_secs(5))
        .with_retry_backoff(Duration::from_secs(2))
        .with_announce_interval(Duration::from_secs(1))
}

/// [`test_config`] with the library's default degrees (target 8, minimum 3, maximum 12).
pub fn default_degrees_config() -> Config {
    let d = Config::default();
    test_config()
        .with_target_degree(d.target_degree)
        .with_min_degree(d.min_degree)
        .with_max_degree(d.max_degree)
}

/// Builds `n` nodes that join one after another, each once the previous one has a link.
pub fn grown_mesh(n: usize, config: Config) -> Net {
    let mut net = Net::new(n, config);
    for i in 0..n {
        net.join(i);
        if i > 0 {
            assert!(
                net.run_until(Duration::from_secs(30), |net| net.degree(i) >= 1),
                "node {i} never linked"
            );
        }
    }
    let min = net.nodes[0].config().min_degree;
    assert!(
        net.run_until(Duration::from_secs(60), |net| (0..n)
            .all(|i| net.degree(i) >= min)),
        "degrees: {:?}",
        (0..n).map(|i| net.degree(i)).collect::<Vec<_>>()
    );
    net
}

/// [`grown_mesh`], then run until the mesh has the shape greedy routing needs
/// ([`Net::greedy_complete`]; at most 60 s of virtual time), and one announce interval
/// more, so that every node has heard its neighbours' sets.
pub fn shaped_mesh(n: usize, config: Config) -> Net {
    let mut net = grown_mesh(n, config);
    assert!(
        net.run_until(Duration::from_secs(60), |net| net.greedy_complete()),
        "greedy routing still has dead ends after 60 s"
    );
    let announce = net.nodes[0].config().announce_interval;
    net.run_for(announce);
    net
}
