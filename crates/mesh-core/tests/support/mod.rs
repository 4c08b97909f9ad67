//! A deterministic network of `mesh_core::Node`s for tests: a simulated bootstrap server,
//! simulated links (a session's offer/answer exchange opens them, as WebRTC would), and a
//! virtual clock. Every step is reproducible from the seeds.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh_core::{Config, Event, Input, Node, Output, Role};
use mesh_proto::identity::Keypair;
use mesh_proto::signal::{SessionId, SignalKind};
use mesh_proto::{ErrorCode, Frame, NodeId, ServerUrl};

/// A hook that may rewrite the bytes a node sends on a link: (sender index, bytes).
pub type Tamper = Box<dyn FnMut(usize, &mut Bytes)>;

#[derive(Debug, Default)]
struct Pair {
    offerer: Option<usize>,
    answerer: Option<usize>,
    up: bool,
    closed: bool,
}

/// The simulated bootstrap server's URL.
pub fn bootstrap() -> ServerUrl {
    "ws://bootstrap.test/ws".parse().unwrap()
}

pub struct Net {
    pub now: Instant,
    pub nodes: Vec<Node>,
    pub index: HashMap<NodeId, usize>,
    registered: Vec<usize>,
    pub server_up: bool,
    pairs: HashMap<SessionId, Pair>,
    queue: VecDeque<(usize, Input)>,
    pub events: Vec<(usize, Event)>,
    pub tamper: Option<Tamper>,
    /// Nodes whose transport fails every session they answer.
    pub failing_answerers: Vec<usize>,
    /// Unicasts the simulated server relayed.
    pub server_unicasts: usize,
    left: Vec<bool>,
}

impl Net {
    /// `n` nodes (not yet joined), each with its own deterministic key and seed.
    pub fn new(n: usize, mut config: Config) -> Self {
        let now = Instant::now();
        config.bootstrap.get_or_insert_with(bootstrap);
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                Node::new(config.clone(), Keypair::from_seed(seed), now, i as u64).unwrap()
            })
            .collect();
        let index = nodes.iter().enumerate().map(|(i, n)| (n.id(), i)).collect();
        Self {
            now,
            nodes,
            index,
            registered: Vec::new(),
            server_up: true,
            pairs: HashMap::new(),
            queue: VecDeque::new(),
            events: Vec::new(),
            tamper: None,
            failing_answerers: Vec::new(),
            server_unicasts: 0,
            left: vec![false; n],
        }
    }

    pub fn id(&self, i: usize) -> NodeId {
        self.nodes[i].id()
    }

    /// Registers node `i` with the simulated server; the Welcome samples up to 8 others.
    pub fn join(&mut self, i: usize) {
        let peers: Vec<NodeId> = self
            .registered
            .iter()
            .rev()
            .take(8)
            .map(|j| self.id(*j))
            .collect();
        self.registered.push(i);
        self.queue.push_back((
            i,
            Input::Registered {
                server: bootstrap(),
                peers,
            },
        ));
        self.settle();
    }

    /// Registers node `i`; the Welcome lists exactly `peers`.
    pub fn join_knowing(&mut self, i: usize, peers: &[usize]) {
        let peers = peers.iter().map(|j| self.id(*j)).collect();
        self.registered.push(i);
        self.queue.push_back((
            i,
            Input::Registered {
                server: bootstrap(),
                peers,
            },
        ));
        self.settle();
    }

    /// Registers several nodes at once, each told about the others, then lets them act.
    pub fn join_together(&mut self, nodes: &[usize]) {
        for &i in nodes {
            let peers = nodes
                .iter()
                .filter(|j| **j != i)
                .map(|j| self.id(*j))
                .collect();
            self.registered.push(i);
            self.queue.push_back((
                i,
                Input::Registered {
                    server: bootstrap(),
                    peers,
                },
            ));
        }
        self.settle();
    }

    /// Stops the simulated server: every node hears ServerDown.
    pub fn stop_server(&mut self) {
        self.server_up = false;
        for i in 0..self.nodes.len() {
            let server = bootstrap();
            self.queue.push_back((i, Input::ServerDown { server }));
        }
        self.settle();
    }

    /// Node `i` leaves: closes everything; its links drop on the other side.
    pub fn leave(&mut self, i: usize) {
        self.nodes[i].leave();
        self.left[i] = true;
        self.registered.retain(|j| *j != i);
        self.drain(i);
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

    /// Runs until `done` holds or `limit` of virtual time passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.settle();
            if done(self) {
                return true;
            }
            let next = (0..self.nodes.len())
                .filter(|i| !self.left[*i])
                .map(|i| self.nodes[i].poll_timeout())
                .min()
                .unwrap_or(end);
            if next > end {
                return false;
            }
            self.now = self.now.max(next);
            for i in 0..self.nodes.len() {
                if !self.left[i] && self.nodes[i].poll_timeout() <= self.now {
                    self.queue.push_back((i, Input::Timeout));
                }
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Delivers everything queued, and everything that causes, at the current time.
    pub fn settle(&mut self) {
        while let Some((i, input)) = self.queue.pop_front() {
            if self.left[i] {
                continue;
            }
            self.nodes[i].handle_input(self.now, input);
            self.drain(i);
        }
    }

    /// Takes node `i`'s outputs and acts on them.
    pub fn drain(&mut self, i: usize) {
        while let Some(out) = self.nodes[i].poll_output() {
            self.on_output(i, out);
        }
    }

    /// Injects raw bytes on node `i`'s link to `peer`, as if `peer` had sent them.
    pub fn inject(&mut self, i: usize, peer: usize, bytes: Vec<u8>) {
        let session = self.link_session(i, peer).expect("linked");
        self.queue.push_back((
            i,
            Input::LinkData {
                session,
                bytes: bytes.into(),
            },
        ));
        self.settle();
    }

    /// The session of the up link between `a` and `b`.
    pub fn link_session(&self, a: usize, b: usize) -> Option<SessionId> {
        self.pairs.iter().find_map(|(s, p)| {
            let ends = (p.offerer, p.answerer);
            (p.up && !p.closed && (ends == (Some(a), Some(b)) || ends == (Some(b), Some(a))))
                .then_some(*s)
        })
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

    fn on_output(&mut self, i: usize, out: Output) {
        match out {
            Output::SendServer { server, frame } => {
                if server == bootstrap() {
                    self.server(i, frame);
                }
            }
            Output::Register { server, .. } => {
                // Only the bootstrap server exists here, and it keeps no sample order.
                if server == bootstrap() && self.server_up {
                    self.registered.retain(|j| *j != i);
                    self.registered.push(i);
                    let peers = self
                        .registered
                        .iter()
                        .rev()
                        .filter(|j| **j != i)
                        .take(8)
                        .map(|j| self.id(*j))
                        .collect();
                    self.queue
                        .push_back((i, Input::Registered { server, peers }));
                } else {
                    self.queue.push_back((i, Input::RegisterFailed { server }));
                }
            }
            Output::Unregister { server } => {
                if server == bootstrap() {
                    self.registered.retain(|j| *j != i);
                }
            }
            Output::SendLink { session, mut bytes } => {
                let Some(pair) = self.pairs.get(&session) else {
                    return;
                };
                if !pair.up || pair.closed {
                    return;
                }
                let other = if pair.offerer == Some(i) {
                    pair.answerer
                } else {
                    pair.offerer
                };
                if let Some(tamper) = self.tamper.as_mut() {
                    tamper(i, &mut bytes);
                }
                if let Some(j) = other {
                    self.queue
                        .push_back((j, Input::LinkData { session, bytes }));
                }
            }
            Output::OpenSession { session, role, .. } => {
                let pair = self.pairs.entry(session).or_default();
                match role {
                    Role::Offerer => {
                        pair.offerer = Some(i);
                        let sdp = format!("v=0 offer a=fingerprint:{}", self.nodes[i].id());
                        self.queue.push_back((
                            i,
                            Input::LocalSignal {
                                session,
                                signal: SignalKind::Offer(sdp),
                            },
                        ));
                    }
                    Role::Answerer if self.failing_answerers.contains(&i) => {
                        let reason = "transport failed".to_owned();
                        self.queue
                            .push_back((i, Input::LinkClosed { session, reason }));
                    }
                    Role::Answerer => pair.answerer = Some(i),
                }
            }
            Output::RemoteSignal { session, signal } => match signal {
                SignalKind::Offer(_) => {
                    let sdp = format!("v=0 answer a=fingerprint:{}", self.nodes[i].id());
                    self.queue.push_back((
                        i,
                        Input::LocalSignal {
                            session,
                            signal: SignalKind::Answer(sdp),
                        },
                    ));
                }
                SignalKind::Answer(_) => {
                    let Some(pair) = self.pairs.get_mut(&session) else {
                        return;
                    };
                    if pair.closed || pair.answerer.is_none() || pair.up {
                        return;
                    }
                    pair.up = true;
                    for j in [pair.offerer, pair.answerer].into_iter().flatten() {
                        self.queue.push_back((j, Input::LinkUp { session }));
                    }
                }
                _ => {}
            },
            Output::CloseSession { session } => {
                let Some(pair) = self.pairs.get_mut(&session) else {
                    return;
                };
                if pair.closed {
                    return;
                }
                pair.closed = true;
                for j in [pair.offerer, pair.answerer].into_iter().flatten() {
                    let reason = "closed".to_owned();
                    self.queue
                        .push_back((j, Input::LinkClosed { session, reason }));
                }
            }
            Output::Event(event) => self.events.push((i, event)),
        }
    }

    fn server(&mut self, i: usize, frame: Frame) {
        if !self.server_up {
            return;
        }
        match frame {
            Frame::Unicast { to, payload } => {
                match self
                    .index
                    .get(&to)
                    .copied()
                    .filter(|j| self.registered.contains(j))
                {
                    Some(j) => {
                        self.server_unicasts += 1;
                        let from = self.id(i);
                        let server = bootstrap();
                        self.queue.push_back((
                            j,
                            Input::ServerTransfer {
                                server,
                                from,
                                payload,
                            },
                        ));
                    }
                    None => self.queue.push_back((
                        i,
                        Input::ServerError {
                            code: ErrorCode::UNKNOWN_PEER,
                            target: Some(to),
                        },
                    )),
                }
            }
            Frame::GetPeers { max } => {
                let peers = self
                    .registered
                    .iter()
                    .filter(|j| **j != i)
                    .take(max.into())
                    .map(|j| self.id(*j))
                    .collect();
                self.queue.push_back((i, Input::ServerPeers { peers }));
            }
            other => panic!("node {i} sent {other:?} to the server"),
        }
    }
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
