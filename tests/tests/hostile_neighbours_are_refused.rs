//! Hostile neighbours are refused (issue 13's table, protocol version 2): an attacker that is
//! a real node, built with the `mesh_node` library and linked to honest nodes over real
//! webrtc-rs PeerConnections on 127.0.0.1 through the real bootstrap server on port 0,
//! sends what the protocol forbids, and each defence is checked on the honest nodes'
//! counters (`mesh_core::Stats`), events and wire.
//!
//! One test per attack, each on a mesh of its own (3 or 4 nodes; two rooms of 3 for the
//! last):
//!
//! 1. a `Transfer` or `Route` whose `from` is honest `c`, with a payload the attacker
//!    sealed: not relayed nor delivered, and the attacker loses the link
//!    (`forged_origins`; bare application bytes, `unsealed_refused`); one claiming `c`'s
//!    key in the seal as well does not open (`seal_failures`);
//! 2. a `Flood` in another node's name, or altered: never delivered, the sender's link
//!    drops (`Forged`, `forged_floods`);
//! 3. 3,000 validly signed floods from made-up origins at line rate: held to the link,
//!    strike and origin budgets (`throttled`, `links_over_budget`, `OverBudget`,
//!    `floods_over_origin_budget`), the sessions honest nodes then offer those origins
//!    stay within the session budget, and honest broadcasts still reach everyone;
//! 4. a relay cannot read the unicasts it carries, nor deliver one twice
//!    (`replays_refused`);
//! 5. a forged `Unreachable` after a delivered unicast: no second delivery
//!    (`replays_refused`), reports about nothing kept ignored (`unreachable_ignored`), a
//!    bare one costs the link (`unsealed_refused`);
//! 6. `Neighbours` records signed for another room or altered: the link drops
//!    (`forged_records`) and nobody offers a session to the made-up ids;
//! 7. a `Lookup` with a victim's key and the attacker's signature: dropped at the first
//!    honest node (`forged_lookups`), the victim gets no answer;
//! 8. one key in two rooms: a unicast sealed in one room does not open in the other
//!    (`seal_failures`), nor does a record cross (`forged_records`), and a node of one room
//!    cannot send to a node of the other (`sends_unresolved`, `Event::Unreachable`), while
//!    each room works.
//!
//! How the test sees the wire: every node's WebRTC transport runs inside a thin wrapper
//! ([`Tapped`]) that records what it received and sent and which sessions it opened. The
//! attacker's hand-made frames go out with `Node::send_raw_to_neighbour`; the test holds
//! every node's key pair, so it can seal as the attacker and open what a victim received.
//! That something did *not* happen is checked once a sentinel, sent after it along the same
//! links (DataChannels are reliable and ordered), has arrived: no test sleeps for a fixed
//! time.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mesh_core::budget::Rate;
use mesh_core::{Event, LinkDownReason, Stats};
use mesh_e2e::{DEADLINE, TestServer, e2e_overlay, open, sealed_in, wait_until};
use mesh_node::transport::webrtc::{self, WebRtcTransport};
use mesh_node::transport::{
    CandidatePairsFuture, Role, SendError, SignalBody, Transport, TransportEvent,
};
use mesh_node::{Config, Node};
use mesh_proto::identity::{Keypair, PublicKey, Signature};
use mesh_proto::signal::{Payload, SessionId};
use mesh_proto::{Frame, NodeId, NodeRecord, PairKey, RoomName, Sealed, Steering, authored};
use tokio::sync::mpsc;

/// The room of the single-room tests.
const ROOM: &str = "hostile";
/// How long a mesh may take to form on a busy machine.
const MESH_DEADLINE: Duration = Duration::from_secs(40);
/// The most frames a [`Wire`] keeps, and events a [`Peer`] keeps (the burst test sends
/// 3,000 frames).
const KEPT: usize = 50_000;

// --- the wire, as the test sees it ---------------------------------------------------

/// Which way a frame went through a transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

/// One message a transport received or sent.
#[derive(Debug)]
struct Seen {
    dir: Dir,
    peer: Option<NodeId>,
    bytes: Bytes,
}

/// What one node's transport carried: its messages (at most [`KEPT`]) and the sessions it
/// opened.
#[derive(Debug, Default)]
struct Wire {
    seen: Mutex<Vec<Seen>>,
    sessions: Mutex<HashMap<SessionId, (NodeId, Role)>>,
}

impl Wire {
    fn record(&self, dir: Dir, session: SessionId, bytes: &Bytes) {
        let peer = lock(&self.sessions).get(&session).map(|(peer, _)| *peer);
        let mut seen = lock(&self.seen);
        if seen.len() < KEPT {
            seen.push(Seen {
                dir,
                peer,
                bytes: bytes.clone(),
            });
        }
    }

    /// The frames that went `dir` on the link with `peer`, decoded.
    fn frames(&self, dir: Dir, peer: NodeId) -> Vec<Frame> {
        lock(&self.seen)
            .iter()
            .filter(|s| s.dir == dir && s.peer == Some(peer))
            .filter_map(|s| mesh_proto::decode(&s.bytes).ok())
            .collect()
    }

    /// Every message received or sent, as bytes.
    fn all_bytes(&self) -> Vec<Bytes> {
        lock(&self.seen).iter().map(|s| s.bytes.clone()).collect()
    }

    /// The ids in the last `Neighbours` frame received from `peer`.
    fn announced_by(&self, peer: NodeId) -> Vec<NodeId> {
        let last = self
            .frames(Dir::In, peer)
            .into_iter()
            .rev()
            .find_map(|f| match f {
                Frame::Neighbours { peers } => Some(peers),
                _ => None,
            });
        last.unwrap_or_default()
            .iter()
            .map(NodeRecord::id)
            .collect()
    }

    /// How many `Neighbours` frames the node sent to `peer`: it sends one on every tick
    /// that announces (every `announce_interval`), after its other upkeep of the tick.
    fn announcements_to(&self, peer: NodeId) -> usize {
        let sent = self.frames(Dir::Out, peer);
        sent.iter()
            .filter(|f| matches!(f, Frame::Neighbours { .. }))
            .count()
    }

    /// Whether the transport opened a session with `peer` (in either role).
    fn opened_with(&self, peer: NodeId) -> bool {
        lock(&self.sessions).values().any(|(p, _)| *p == peer)
    }

    /// The peers the transport opened a session with as the offerer.
    fn offered_to(&self) -> Vec<NodeId> {
        lock(&self.sessions)
            .values()
            .filter(|(_, role)| *role == Role::Offerer)
            .map(|(peer, _)| *peer)
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A [`WebRtcTransport`] that records what it carries in a [`Wire`]; what it receives is
/// recorded by the task that passes its events on to the driver ([`join`]).
struct Tapped {
    inner: WebRtcTransport,
    wire: Arc<Wire>,
}

impl Transport for Tapped {
    fn open(&self, session: SessionId, peer: NodeId, role: Role) -> Result<(), mesh_node::Error> {
        lock(&self.wire.sessions).insert(session, (peer, role));
        self.inner.open(session, peer, role)
    }

    fn remote_signal(&self, session: SessionId, signal: SignalBody) {
        self.inner.remote_signal(session, signal);
    }

    fn send(&self, session: SessionId, bytes: Bytes) -> Result<(), SendError> {
        let result = self.inner.send(session, bytes.clone());
        if result.is_ok() {
            self.wire.record(Dir::Out, session, &bytes);
        }
        result
    }

    fn close(&self, session: SessionId) {
        self.inner.close(session);
    }

    fn candidate_pairs(&self, sessions: &[SessionId]) -> CandidatePairsFuture {
        self.inner.candidate_pairs(sessions)
    }

    fn use_server_stun(&self, url: Option<String>) {
        self.inner.use_server_stun(url);
    }
}

// --- nodes ---------------------------------------------------------------------------

/// One real node of a test mesh: its key pair (the test seals and opens with it), its
/// events as they came (at most [`KEPT`]) and its wire.
struct Peer {
    name: &'static str,
    key: Keypair,
    room: RoomName,
    node: Node,
    wire: Arc<Wire>,
    log: Arc<Mutex<Vec<Event>>>,
}

impl Peer {
    fn id(&self) -> NodeId {
        self.node.id()
    }

    fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// The node's record in its room, as it signs it.
    fn record(&self) -> NodeRecord {
        NodeRecord::sign(&self.key, &self.room)
    }

    async fn stats(&self) -> Stats {
        self.node
            .stats()
            .await
            .expect("the node is running")
            .overlay
    }

    async fn neighbours(&self) -> HashSet<NodeId> {
        let neighbours = self.node.neighbours().await;
        neighbours
            .expect("the node is running")
            .into_iter()
            .collect()
    }

    /// How many events so far `pick` picks.
    fn count(&self, pick: impl Fn(&Event) -> bool) -> usize {
        lock(&self.log).iter().filter(|e| pick(e)).count()
    }

    /// How many times the application got `data` from `from`.
    fn messages(&self, from: NodeId, data: &[u8]) -> usize {
        self.count(|e| matches!(e, Event::Message { from: f, data: d } if *f == from && d == data))
    }

    /// How many broadcasts of `data` the application got.
    fn broadcasts(&self, data: &[u8]) -> usize {
        self.count(|e| matches!(e, Event::Broadcast { data: d, .. } if d == data))
    }

    /// How many events so far: a mark for [`Peer::link_down`].
    fn mark(&self) -> usize {
        lock(&self.log).len()
    }

    /// Why the first link to `peer` that went down after `mark` went down.
    fn link_down(&self, peer: NodeId, mark: usize) -> Option<LinkDownReason> {
        lock(&self.log).iter().skip(mark).find_map(|e| match e {
            Event::LinkDown { peer: p, reason } if *p == peer => Some(reason.clone()),
            _ => None,
        })
    }

    /// Sends `frame`, encoded, on the link to neighbour `to`, bypassing the overlay.
    async fn raw(&self, to: &Peer, frame: &Frame) {
        let bytes = mesh_proto::encode(frame).expect("the frame encodes");
        self.node
            .send_raw_to_neighbour(to.id(), bytes)
            .await
            .unwrap_or_else(|e| panic!("{} sending to {}: {e}", self.name, to.name));
    }
}

fn loopback() -> webrtc::Config {
    webrtc::Config::new().with_bind_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
}

/// A node that keeps exactly `links` links and accepts no more: how the tests make a line
/// (a node that must reach another through the attacker).
fn only(links: usize) -> mesh_core::Config {
    e2e_overlay()
        .with_min_degree(1)
        .with_target_degree(links)
        .with_max_degree(links)
        .with_entry_slots(0)
}

fn copy(key: &Keypair) -> Keypair {
    Keypair::from_seed(key.to_seed())
}

/// A fresh key pair for which `ok` holds.
fn key_where(what: &str, ok: impl Fn(&Keypair) -> bool) -> Keypair {
    (0..100_000)
        .map(|_| Keypair::generate())
        .find(|k| ok(k))
        .unwrap_or_else(|| panic!("no key pair {what}"))
}

fn room(name: &str) -> RoomName {
    name.parse().expect("a room name")
}

/// Joins a real WebRTC node, its transport tapped, with `key`, in `room`.
async fn join(
    server: &TestServer,
    name: &'static str,
    room_name: &str,
    key: &Keypair,
    overlay: mesh_core::Config,
    transport: webrtc::Config,
) -> Peer {
    let room = room(room_name);
    let config = Config::new(server.url().parse().expect("a ws:// URL"))
        .with_room(room.clone())
        .with_overlay(overlay);
    let wire = Arc::new(Wire::default());
    let tap = Arc::clone(&wire);
    let node = Node::join_with(config, copy(key), move |to_driver| {
        let (tx, mut rx) = mpsc::channel(4096);
        let inner = WebRtcTransport::new(transport, tx);
        let seen = Arc::clone(&tap);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if let TransportEvent::Data { session, bytes } = &event {
                    seen.record(Dir::In, *session, bytes);
                }
                if to_driver.send(event).await.is_err() {
                    break;
                }
            }
        });
        Tapped { inner, wire: tap }
    })
    .await
    .unwrap_or_else(|e| panic!("{name} joining: {e}"));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut events = node.events().expect("the events, taken once");
    let sink = Arc::clone(&log);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let mut log = lock(&sink);
            if log.len() < KEPT {
                log.push(event);
            }
        }
    });
    Peer {
        name,
        key: copy(key),
        room,
        node,
        wire,
        log,
    }
}

/// Waits until every node of `shape` has exactly the neighbours listed with it.
async fn wait_for_shape(what: &str, shape: &[(&Peer, &[&Peer])]) {
    wait_until(what, MESH_DEADLINE, async || {
        let mut wrong = Vec::new();
        for (node, expected) in shape {
            let got = node.neighbours().await;
            let want: HashSet<NodeId> = expected.iter().map(|p| p.id()).collect();
            if got != want {
                wrong.push(format!(
                    "{}: {} of {} links",
                    node.name,
                    got.len(),
                    want.len()
                ));
            }
        }
        if wrong.is_empty() { Ok(()) } else { Err(wrong) }
    })
    .await;
}

/// Waits until `node` has a link.
async fn wait_for_a_link(node: &Peer) {
    let what = format!("{} has a link", node.name);
    wait_until(&what, MESH_DEADLINE, async || {
        !node.neighbours().await.is_empty()
    })
    .await;
}

/// The attacker `m` and three honest nodes `a`, `b`, `c` (with `honest` settings), every
/// node linked to every other (each wants 4 links and there are 3 others).
async fn four(
    server: &TestServer,
    honest: mesh_core::Config,
    attacker: webrtc::Config,
) -> [Peer; 4] {
    let m = join(
        server,
        "m",
        ROOM,
        &Keypair::generate(),
        e2e_overlay(),
        attacker,
    )
    .await;
    let mut nodes = vec![m];
    for name in ["a", "b", "c"] {
        let node = join(
            server,
            name,
            ROOM,
            &Keypair::generate(),
            honest.clone(),
            loopback(),
        )
        .await;
        wait_for_a_link(&node).await;
        nodes.push(node);
    }
    let [m, a, b, c]: [Peer; 4] = nodes.try_into().ok().expect("four nodes");
    wait_for_shape(
        "every node is linked to every other",
        &[
            (&m, &[&a, &b, &c]),
            (&a, &[&m, &b, &c]),
            (&b, &[&m, &a, &c]),
            (&c, &[&m, &a, &b]),
        ],
    )
    .await;
    [m, a, b, c]
}

/// `a` and `b` linked to `m` and `c` only (each keeps two links), `m` and `c` to each
/// other too; a's unicasts for b go through the lower id of m and c (of two neighbours
/// that both have b, the lower id): through m if `through_m`. Returns `[m, a, b, c]` once
/// a has heard from both that b is their neighbour.
async fn diamond(server: &TestServer, through_m: bool) -> [Peer; 4] {
    let m_key = Keypair::generate();
    let c_key = key_where("on the right side of m", |k| {
        (k.node_id() > m_key.node_id()) == through_m
    });
    // b's entry session goes to the peer of the server's sample closest to it: not a.
    let a_key = Keypair::generate();
    let b_key = key_where("closer to m or c than to a", |k| {
        let id = k.node_id();
        let to_a = id.distance(&a_key.node_id());
        id.distance(&m_key.node_id()) < to_a || id.distance(&c_key.node_id()) < to_a
    });
    let m = join(server, "m", ROOM, &m_key, e2e_overlay(), loopback()).await;
    let c = join(server, "c", ROOM, &c_key, e2e_overlay(), loopback()).await;
    wait_for_a_link(&c).await;
    let a = join(server, "a", ROOM, &a_key, only(2), loopback()).await;
    wait_for_shape("a is linked to m and c", &[(&a, &[&m, &c])]).await;
    let b = join(server, "b", ROOM, &b_key, only(2), loopback()).await;
    wait_for_shape(
        "a and b linked to m and c only",
        &[
            (&m, &[&a, &b, &c]),
            (&c, &[&a, &b, &m]),
            (&a, &[&m, &c]),
            (&b, &[&m, &c]),
        ],
    )
    .await;
    wait_until(
        "a heard from m and c that b is their neighbour",
        DEADLINE,
        async || {
            let told = [&m, &c].map(|n| a.wire.announced_by(n.id()).contains(&b.id()));
            if told == [true, true] {
                Ok(())
            } else {
                Err(told)
            }
        },
    )
    .await;
    [m, a, b, c]
}

/// Sends unicasts from `a` to `b` until one goes through `relay` (a picks its first hop
/// from what its neighbours announced, which may still be on its way), each delivered
/// once. Returns that one's data and the seq of its seal, which `relay` can read (which of
/// a's sealed payloads for b is the message, the test tells by opening them as b).
/// Returns the message, and the `seq` and proof ([`mesh_proto::Sealed::proof`]) of the
/// sealed payload that carried it.
async fn unicast_through(a: &Peer, b: &Peer, relay: &Peer) -> (Vec<u8>, u64, [u8; 8]) {
    for attempt in 0..10 {
        let data = format!("deliver me once ({attempt})").into_bytes();
        a.node.send(b.id(), data.clone()).await.unwrap();
        wait_until("b has a's message", DEADLINE, async || {
            b.messages(a.id(), &data) == 1
        })
        .await;
        let relayed = relay
            .wire
            .frames(Dir::In, a.id())
            .iter()
            .filter(
                |f| matches!(f, Frame::Route { to, from, .. } if *to == b.id() && *from == a.id()),
            )
            .filter_map(sealed_in)
            .find(|s| open(&b.key, &b.room, s) == Some(app(&data)));
        if let Some(s) = relayed {
            return (data, s.seq, s.proof());
        }
    }
    panic!("none of a's unicasts for b went through {}", relay.name);
}

/// Waits until each node of `pairs` has sent its neighbour three more `Neighbours`
/// frames: at least two announcing ticks (and their upkeep) have run since.
async fn wait_for_ticks(pairs: &[(&Peer, &Peer)]) {
    let start: Vec<usize> = pairs
        .iter()
        .map(|(node, to)| node.wire.announcements_to(to.id()))
        .collect();
    wait_until(
        "the nodes announce three more times",
        DEADLINE,
        async || {
            let now: Vec<usize> = pairs
                .iter()
                .map(|(node, to)| node.wire.announcements_to(to.id()))
                .collect();
            if now.iter().zip(&start).all(|(n, s)| *n >= s + 3) {
                Ok(())
            } else {
                Err(now)
            }
        },
    )
    .await;
}

async fn leave(nodes: impl IntoIterator<Item = Peer>, server: TestServer) {
    for peer in nodes {
        peer.node.leave().await.expect("a clean leave");
    }
    server.stop().await.expect("a clean stop");
}

async fn start_server() -> TestServer {
    TestServer::start(bootstrap_server::Config::default()).await
}

// --- sealing as the attacker, opening as the victim ----------------------------------

/// Seals payloads with the attacker's key, as a hand-made node would: one epoch (later
/// than the attacker node's own, which is its start time) and a counter.
struct Forger {
    key: Keypair,
    room: RoomName,
    epoch: u64,
    seq: u64,
}

impl Forger {
    fn new(peer: &Peer) -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_micros();
        Self {
            key: copy(&peer.key),
            room: peer.room.clone(),
            epoch: u64::try_from(micros).expect("micros fit a u64"),
            seq: 0,
        }
    }

    /// `inner` sealed by the attacker for `to`.
    fn seal(&mut self, to: &Peer, inner: &Payload) -> Sealed {
        let seq = self.seq;
        self.seq += 1;
        mesh_e2e::seal(&self.key, &self.room, &to.public(), self.epoch, seq, inner)
    }

    /// A `Transfer` from the attacker to `to` of `data`, sealed: one `to` delivers.
    fn sentinel(&mut self, to: &Peer, data: &[u8]) -> Frame {
        Frame::Transfer {
            from: self.key.node_id(),
            payload: sealed(self.seal(to, &app(data))),
        }
    }
}

fn app(data: &[u8]) -> Payload {
    Payload::App(data.to_vec())
}

/// The bytes of a payload carrying `s`.
fn sealed(s: Sealed) -> Vec<u8> {
    mesh_proto::encode_payload(&Payload::Sealed(s)).expect("the payload encodes")
}

fn bare(inner: &Payload) -> Vec<u8> {
    mesh_proto::encode_payload(inner).expect("the payload encodes")
}

/// Every payload sealed for `victim` that its transport received, opened.
fn opened_by(victim: &Peer) -> Vec<Payload> {
    let peers: Vec<NodeId> = lock(&victim.wire.sessions)
        .values()
        .map(|(p, _)| *p)
        .collect();
    peers
        .into_iter()
        .flat_map(|p| victim.wire.frames(Dir::In, p))
        .filter_map(|f| sealed_in(&f))
        .filter_map(|s| open(&victim.key, &victim.room, &s))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// --- 1: a sealed payload passed off as another node's --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_sealed_by_the_attacker_is_not_delivered_as_from_another_node() {
    let server = start_server().await;
    let [m, a, b, c] = four(&server, e2e_overlay(), loopback()).await;
    let mut forger = Forger::new(&m);
    let before = [a.stats().await, b.stats().await, c.stats().await];
    let marks = [a.mark(), b.mark(), c.mark()];
    let forged: [&[u8]; 4] = [
        b"sealed by m, in c's key",
        b"sealed by m, routed from c",
        b"sealed by m, from c",
        b"bare, from m",
    ];

    // Straight to b, a Transfer "from c" with c's key in the seal: the header agrees with
    // `from` (m cannot seal as c, so it does not open), which any relay could have passed
    // on: dropped, the link kept; a sentinel after it on the same link proves it arrived.
    let mut in_cs_key = forger.seal(&b, &app(forged[0]));
    in_cs_key.key = c.public();
    let transfer = Frame::Transfer {
        from: c.id(),
        payload: sealed(in_cs_key),
    };
    m.raw(&b, &transfer).await;
    m.raw(&b, &forger.sentinel(&b, b"sentinel")).await;
    wait_until("b has the sentinel from m", DEADLINE, async || {
        b.messages(m.id(), b"sentinel") == 1
    })
    .await;
    let mid = b.stats().await;
    assert_eq!(
        mid.seal_failures - before[1].seal_failures,
        1,
        "the seal in c's key does not open: {mid:?}"
    );
    assert!(
        b.link_down(m.id(), marks[1]).is_none(),
        "b keeps its link to m"
    );

    // What no honest node sends, each costing m its link: to a, a Route "from c" that m
    // sealed (a relay checks the sealed origin before it relays); to b, the same as a
    // Transfer; to c, application bytes with no seal at all.
    let routed = forger.seal(&b, &app(forged[1]));
    let route = Frame::Route {
        to: b.id(),
        from: c.id(),
        ttl: 16,
        steering: Steering::Learned,
        payload: sealed(routed),
    };
    m.raw(&a, &route).await;
    let from_c = forger.seal(&b, &app(forged[2]));
    let transfer = Frame::Transfer {
        from: c.id(),
        payload: sealed(from_c),
    };
    m.raw(&b, &transfer).await;
    let transfer = Frame::Transfer {
        from: m.id(),
        payload: bare(&app(forged[3])),
    };
    m.raw(&c, &transfer).await;
    wait_until("a, b and c drop their links to m", DEADLINE, async || {
        let down = [
            a.link_down(m.id(), marks[0]),
            b.link_down(m.id(), marks[1]),
            c.link_down(m.id(), marks[2]),
        ];
        if down.iter().all(Option::is_some) {
            Ok(down)
        } else {
            Err(down)
        }
    })
    .await;
    for (node, mark) in [(&a, marks[0]), (&b, marks[1]), (&c, marks[2])] {
        let reason = node.link_down(m.id(), mark);
        assert!(
            matches!(reason, Some(LinkDownReason::Forged(_))),
            "{}: {reason:?}",
            node.name
        );
    }
    let after = [a.stats().await, b.stats().await, c.stats().await];
    assert_eq!(
        after[0].forged_origins - before[0].forged_origins,
        1,
        "a refused to relay the Route: {:?}",
        after[0]
    );
    assert_eq!(
        after[1].forged_origins - before[1].forged_origins,
        1,
        "the Transfer whose sealed origin is not its from: {:?}",
        after[1]
    );
    assert_eq!(
        after[2].unsealed_refused - before[2].unsealed_refused,
        1,
        "bare application bytes through the mesh: {:?}",
        after[2]
    );
    assert_eq!(
        b.count(|e| matches!(e, Event::Message { from, .. } if *from == c.id())),
        0,
        "nothing delivered as from c"
    );
    for node in [&a, &b, &c] {
        for data in forged {
            let n = node.count(|e| matches!(e, Event::Message { data: d, .. } if d == data));
            assert_eq!(
                n,
                0,
                "{} got {:?}",
                node.name,
                String::from_utf8_lossy(data)
            );
        }
    }
    leave([m, a, b, c], server).await;
}

// --- 2: forged floods ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_flood_is_never_delivered_and_costs_the_forger_its_link() {
    let server = start_server().await;
    let [m, a, b, c] = four(&server, e2e_overlay(), loopback()).await;
    let room = m.room.clone();
    let before = [a.stats().await, b.stats().await, c.stats().await];
    let marks = [a.mark(), b.mark()];
    let (in_cs_name, signed, altered) = (
        b"a flood in c's name".as_slice(),
        b"a flood m signed".as_slice(),
        b"a flood m altered".as_slice(),
    );

    // To a: c's key, m's signature.
    let payload = bare(&app(in_cs_name));
    let signature = m.key.sign(&authored::flood_message(&room, 1, &payload));
    let flood = Frame::Flood {
        key: c.public(),
        id: 1,
        ttl: 16,
        payload,
        signature,
    };
    m.raw(&a, &flood).await;
    // To b: m's own flood, validly signed, then altered.
    let Frame::Flood {
        key,
        id,
        ttl,
        signature,
        ..
    } = authored::flood(&m.key, &room, 2, 16, bare(&app(signed)))
    else {
        unreachable!("authored::flood builds a Flood")
    };
    let flood = Frame::Flood {
        key,
        id,
        ttl,
        payload: bare(&app(altered)),
        signature,
    };
    m.raw(&b, &flood).await;

    wait_until("a and b drop their links to m", DEADLINE, async || {
        let down = [a.link_down(m.id(), marks[0]), b.link_down(m.id(), marks[1])];
        if down.iter().all(Option::is_some) {
            Ok(down)
        } else {
            Err(down)
        }
    })
    .await;
    for (i, node) in [&a, &b].into_iter().enumerate() {
        let reason = node.link_down(m.id(), marks[i]);
        assert!(
            matches!(&reason, Some(LinkDownReason::Forged(what)) if what == "flood"),
            "{}: {reason:?}",
            node.name
        );
    }
    // Had a or b forwarded the forgery, it would have gone before their own broadcasts.
    a.node.broadcast(b"sentinel from a".to_vec()).await.unwrap();
    b.node.broadcast(b"sentinel from b".to_vec()).await.unwrap();
    wait_until(
        "the honest nodes have each other's sentinels",
        DEADLINE,
        async || {
            let got = [
                a.broadcasts(b"sentinel from b"),
                b.broadcasts(b"sentinel from a"),
                c.broadcasts(b"sentinel from a"),
                c.broadcasts(b"sentinel from b"),
            ];
            if got == [1; 4] { Ok(()) } else { Err(got) }
        },
    )
    .await;

    let after = [a.stats().await, b.stats().await, c.stats().await];
    for (i, node) in [&a, &b, &c].into_iter().enumerate() {
        for data in [in_cs_name, signed, altered] {
            assert_eq!(
                node.broadcasts(data),
                0,
                "{} delivered a forgery",
                node.name
            );
        }
        let forged = after[i].forged_floods - before[i].forged_floods;
        let expected = u64::from(node.name != "c");
        assert_eq!(
            forged, expected,
            "{}: a and b caught one each; c got none, as nobody honest forwarded one",
            node.name
        );
    }
    leave([m, a, b, c], server).await;
}

// --- 3: a burst of floods from made-up origins ---------------------------------------

/// The honest nodes' budgets in the burst test: below the defaults, so that 3,000 floods
/// exhaust them even on a slow machine (the defaults take 2,000 plus 300 a second).
const FLOODS: Rate = Rate::new(100.0, 400.0);
const STRIKES: Rate = Rate::new(50.0, 400.0);
const PER_ORIGIN: Rate = Rate::new(5.0, 20.0);
const SESSIONS: Rate = Rate::new(1.0, 16.0);

/// The most tokens `rate` gives in `secs` (and one for rounding).
fn allowance(rate: Rate, secs: f64) -> usize {
    (rate.burst + rate.per_second * secs) as usize + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_floods_from_made_up_origins_is_held_to_the_budgets() {
    let server = start_server().await;
    let honest = e2e_overlay()
        .with_flood_budget(FLOODS)
        .with_strike_budget(STRIKES)
        .with_origin_flood_budget(PER_ORIGIN)
        .with_session_budget(SESSIONS);
    let [m, a, b, c] = four(&server, honest, loopback().with_send_queue_len(4096)).await;
    let room = m.room.clone();

    // 200 floods from one made-up origin (over its own budget), then 2,800 from as many
    // fresh ones: 3,000 validly signed floods, built before the burst.
    let loud = Keypair::generate();
    let mut origins = HashSet::from([loud.node_id()]);
    let mut frames = Vec::with_capacity(3_000);
    for i in 0..200u64 {
        let payload = bare(&app(format!("loud {i}").as_bytes()));
        frames.push(authored::flood(&loud, &room, i, 16, payload));
    }
    for i in 0..2_800 {
        let origin = Keypair::generate();
        origins.insert(origin.node_id());
        let payload = bare(&app(format!("made up {i}").as_bytes()));
        frames.push(authored::flood(&origin, &room, 0, 16, payload));
    }
    let frames: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| mesh_proto::encode(f).expect("the frame encodes"))
        .collect();
    let before = a.stats().await;
    let mark = a.mark();

    let start = Instant::now();
    let mut sent = 0;
    for frame in frames {
        // Until m's own node sees the link gone.
        if m.node.send_raw_to_neighbour(a.id(), frame).await.is_err() {
            break;
        }
        sent += 1;
    }
    wait_until("a drops m as over budget", DEADLINE, async || {
        match a.link_down(m.id(), mark) {
            Some(LinkDownReason::OverBudget) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    let after = a.stats().await;

    let from_burst = |node: &Peer, pick: &dyn Fn(&NodeId) -> bool| -> HashSet<(NodeId, Vec<u8>)> {
        lock(&node.log)
            .iter()
            .filter_map(|e| match e {
                Event::Broadcast { from, data } if pick(from) => Some((*from, data.clone())),
                _ => None,
            })
            .collect()
    };
    let delivered = from_burst(&a, &|o| origins.contains(o));
    let loud_delivered = from_burst(&a, &|o| *o == loud.node_id()).len();
    let summary = format!(
        "{sent} sent in {secs:.2} s; a delivered {} ({loud_delivered} of the loud origin): {after:?}",
        delivered.len()
    );
    assert!(!delivered.is_empty(), "the floods are valid: {summary}");
    assert!(
        delivered.len() <= allowance(FLOODS, secs),
        "no more than the link's flood budget: {summary}"
    );
    assert!(
        loud_delivered <= allowance(PER_ORIGIN, secs),
        "no more than one origin's budget: {summary}"
    );
    assert!(after.throttled > before.throttled, "{summary}");
    assert!(
        after.throttled - before.throttled <= allowance(STRIKES, secs) as u64,
        "throttled within the strikes, then the link went: {summary}"
    );
    assert_eq!(
        after.links_over_budget - before.links_over_budget,
        1,
        "{summary}"
    );
    assert!(
        after.floods_over_origin_budget > before.floods_over_origin_budget,
        "{summary}"
    );
    // a relays no more than it delivered, and b and c get only what a let through (m's
    // floods reached nobody else).
    for node in [&b, &c] {
        let relayed = a
            .wire
            .frames(Dir::Out, node.id())
            .iter()
            .filter(|f| {
                matches!(f, Frame::Flood { key, .. } if origins.contains(&NodeId::from_public_key(key)))
            })
            .count();
        assert!(
            relayed <= delivered.len(),
            "a relayed {relayed} of the burst's floods to {}: {summary}",
            node.name
        );
        let got = from_burst(node, &|o| origins.contains(o));
        assert!(
            got.is_subset(&delivered),
            "{} delivered {} floods a did not let through",
            node.name,
            got.difference(&delivered).count()
        );
    }
    // Each flood's origin is a contact that signed: an honest node may offer it a session,
    // within its session budget.
    let secs = start.elapsed().as_secs_f64();
    for node in [&a, &b, &c] {
        let offers = node
            .wire
            .offered_to()
            .into_iter()
            .filter(|p| origins.contains(p))
            .count();
        assert!(
            offers <= allowance(SESSIONS, secs),
            "{} offered {offers} sessions to made-up origins in {secs:.1} s",
            node.name
        );
    }

    // The honest nodes still reach each other.
    for node in [&a, &b, &c] {
        let data = format!("after the burst, from {}", node.name);
        node.node.broadcast(data.into_bytes()).await.unwrap();
    }
    wait_until(
        "every honest broadcast reaches every honest node",
        DEADLINE,
        async || {
            let mut missing = Vec::new();
            for node in [&a, &b, &c] {
                for from in [&a, &b, &c] {
                    let data = format!("after the burst, from {}", from.name);
                    if from.name != node.name && node.broadcasts(data.as_bytes()) != 1 {
                        missing.push(format!("{} at {}", from.name, node.name));
                    }
                }
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(missing)
            }
        },
    )
    .await;
    leave([m, a, b, c], server).await;
}

// --- 4: a relay cannot read what it relays -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cannot_read_the_unicasts_it_carries() {
    let server = start_server().await;
    // A line a – m – b: a and b keep one link each; b's entry session goes to the peer of
    // the server's sample closest to it, m.
    let (m_key, a_key) = (Keypair::generate(), Keypair::generate());
    let b_key = key_where("closer to m than to a", |k| {
        let id = k.node_id();
        id.distance(&m_key.node_id()) < id.distance(&a_key.node_id())
    });
    let m = join(&server, "m", ROOM, &m_key, e2e_overlay(), loopback()).await;
    let a = join(&server, "a", ROOM, &a_key, only(1), loopback()).await;
    wait_for_a_link(&a).await;
    let b = join(&server, "b", ROOM, &b_key, only(1), loopback()).await;
    wait_for_shape(
        "a line a - m - b",
        &[(&m, &[&a, &b]), (&a, &[&m]), (&b, &[&m])],
    )
    .await;

    let secret = b"attack at dawn: only b may read this".to_vec();
    a.node.send(b.id(), secret.clone()).await.unwrap();
    wait_until("b has a's message", DEADLINE, async || {
        b.messages(a.id(), &secret) == 1
    })
    .await;

    let seen = m.wire.all_bytes();
    assert!(!seen.is_empty());
    assert!(
        !seen.iter().any(|bytes| contains(bytes, &secret)),
        "the plaintext is in none of the {} messages m's transport carried",
        seen.len()
    );
    // What m relayed: a's Route for b in, a Transfer to b out, the same sealed payload,
    // which b opens and m cannot. (a's other sealed payloads for b, such as lookup
    // answers, look alike: the test tells which is the message by opening them as b.)
    let (routed, s) = m
        .wire
        .frames(Dir::In, a.id())
        .into_iter()
        .filter_map(|f| match &f {
            Frame::Route {
                to, from, payload, ..
            } if *to == b.id() && *from == a.id() => Some((payload.clone(), sealed_in(&f)?)),
            _ => None,
        })
        .find(|(_, s)| open(&b.key, &b.room, s) == Some(app(&secret)))
        .expect("m received a's unicast for b as a Route, sealed, which b opens");
    let relayed = m.wire.frames(Dir::Out, b.id()).into_iter().any(
        |f| matches!(f, Frame::Transfer { from, payload } if from == a.id() && payload == routed),
    );
    assert!(relayed, "m relayed it to b unchanged");
    assert_eq!(s.key, a.public(), "sealed by a");
    assert_eq!(open(&m.key, &m.room, &s), None, "m does not");
    let as_b = PairKey::derive(&m.key, &a.public(), &a.id(), &b.id(), &m.room).unwrap();
    assert!(
        as_b.open(s.epoch, s.seq, &s.ciphertext).is_err(),
        "nor with the key of the pair a → b as m can derive it"
    );
    assert_eq!(
        m.count(|e| matches!(e, Event::Message { .. })),
        0,
        "m's application got nothing"
    );
    // Nor can m deliver it again: b takes each sealed payload once.
    let before = b.stats().await;
    let replay = Frame::Transfer {
        from: a.id(),
        payload: routed,
    };
    m.raw(&b, &replay).await;
    wait_until("b refuses m's replay", DEADLINE, async || {
        let now = b.stats().await;
        (now.replays_refused > before.replays_refused).then_some(())
    })
    .await;
    assert_eq!(b.messages(a.id(), &secret), 1, "b got it once");
    leave([m, a, b], server).await;
}

// --- 5: a forged unreachable report --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_unreachable_report_neither_duplicates_nor_counts() {
    let server = start_server().await;
    // a and b linked to m and c, not to each other; a's unicasts for b go through m.
    let [m, a, b, c] = diamond(&server, true).await;
    // a sends b a unicast that goes through m, which reads its seq.
    let (data, seq, proof) = unicast_through(&a, &b, &m).await;
    let (a_before, b_before) = (a.stats().await, b.stats().await);

    // m tells a, sealed, that the message died at m (a still keeps it for 2 s): a sends it
    // again around m, through c, and b refuses the copy as a replay.
    let mut forger = Forger::new(&m);
    let report = forger.seal(
        &a,
        &Payload::Unreachable {
            to: b.id(),
            seq,
            proof,
        },
    );
    let frame = Frame::Transfer {
        from: m.id(),
        payload: sealed(report),
    };
    m.raw(&a, &frame).await;
    wait_until("b refuses a's copy as a replay", DEADLINE, async || {
        let now = b.stats().await;
        if now.replays_refused > b_before.replays_refused {
            Ok(())
        } else {
            Err((a.stats().await, now))
        }
    })
    .await;
    let a_mid = a.stats().await;
    assert_eq!(
        a_mid.messages_resent - a_before.messages_resent,
        1,
        "{a_mid:?}"
    );
    assert_eq!(b.messages(a.id(), &data), 1, "b got the message once");

    // A report about a message a never sent, and a bare one: ignored, refused.
    let report = forger.seal(
        &a,
        &Payload::Unreachable {
            to: b.id(),
            seq: seq + 1_000_000,
            proof,
        },
    );
    let frame = Frame::Transfer {
        from: m.id(),
        payload: sealed(report),
    };
    m.raw(&a, &frame).await;
    m.raw(&a, &forger.sentinel(&a, b"sentinel")).await;
    wait_until("a has m's sentinel", DEADLINE, async || {
        a.messages(m.id(), b"sentinel") == 1
    })
    .await;
    let a_after = a.stats().await;
    assert_eq!(
        a_after.unreachable_ignored - a_mid.unreachable_ignored,
        1,
        "{a_after:?}"
    );
    // A bare one: no honest node sends a payload unsealed through the mesh, so m loses
    // its link to a.
    let mark = a.mark();
    let frame = Frame::Transfer {
        from: m.id(),
        payload: bare(&Payload::Unreachable {
            to: b.id(),
            seq,
            proof,
        }),
    };
    m.raw(&a, &frame).await;
    wait_until("a drops its link to m", DEADLINE, async || {
        a.link_down(m.id(), mark).ok_or(())
    })
    .await;
    let a_after = a.stats().await;
    assert_eq!(
        a_after.unsealed_refused - a_mid.unsealed_refused,
        1,
        "{a_after:?}"
    );
    assert_eq!(
        a_after.messages_resent, a_mid.messages_resent,
        "{a_after:?}"
    );
    assert_eq!(
        a.count(|e| matches!(e, Event::Unreachable { .. })),
        0,
        "a's application heard of no dead end"
    );
    assert_eq!(b.messages(a.id(), &data), 1, "still once");
    leave([m, a, b, c], server).await;
}

// --- 6: made-up ids in Neighbours ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_signed_for_another_room_or_altered_cost_the_sender_its_link() {
    let server = start_server().await;
    let [m, a, b, c] = four(&server, e2e_overlay(), loopback()).await;
    let (made_up_1, made_up_2) = (Keypair::generate(), Keypair::generate());
    let foreign = NodeRecord::sign(&made_up_1, &room("elsewhere"));
    let mut altered = NodeRecord::sign(&made_up_2, &m.room);
    let mut signature = *altered.signature.as_bytes();
    signature[0] ^= 1;
    altered.signature = Signature::from_bytes(signature);
    let before = [a.stats().await, b.stats().await];
    let marks = [a.mark(), b.mark()];

    let neighbours = |made_up: NodeRecord| Frame::Neighbours {
        peers: vec![m.record(), made_up],
    };
    m.raw(&a, &neighbours(foreign)).await;
    m.raw(&b, &neighbours(altered)).await;
    wait_until("a and b drop their links to m", DEADLINE, async || {
        let down = [a.link_down(m.id(), marks[0]), b.link_down(m.id(), marks[1])];
        if down.iter().all(Option::is_some) {
            Ok(down)
        } else {
            Err(down)
        }
    })
    .await;
    let mid = [a.stats().await, b.stats().await];
    for (i, node) in [&a, &b].into_iter().enumerate() {
        let reason = node.link_down(m.id(), marks[i]);
        assert!(
            matches!(&reason, Some(LinkDownReason::Forged(what)) if what == "node record"),
            "{}: {reason:?}",
            node.name
        );
        assert_eq!(
            mid[i].forged_records - before[i].forged_records,
            1,
            "{}",
            node.name
        );
    }
    // A node tops up when it loses a link, and on every tick while below its target
    // degree: once each has announced a few times since, it had its chances to pick them.
    wait_for_ticks(&[(&a, &c), (&b, &c)]).await;
    for node in [&a, &b, &c] {
        for made_up in [&made_up_1, &made_up_2] {
            assert!(
                !node.wire.opened_with(made_up.node_id()),
                "{} opened a session with a made-up id",
                node.name
            );
        }
    }
    leave([m, a, b, c], server).await;
}

// --- 7: a lookup in a victim's name --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_in_a_victims_name_is_dropped_at_the_first_honest_node() {
    let server = start_server().await;
    let [m, a, b, c] = four(&server, e2e_overlay(), loopback()).await;
    let room = m.room.clone();
    let (t1, t2) = (Keypair::generate().node_id(), Keypair::generate().node_id());
    let before = [a.stats().await, c.stats().await];
    let marks = [a.mark(), c.mark()];

    // To a: b's key, m's signature; TTL 0, so that a would answer b at once.
    let lookup = Frame::Lookup {
        target: t1,
        key: b.public(),
        id: 7,
        ttl: 0,
        signature: m.key.sign(&authored::lookup_message(&room, &t1, 7)),
    };
    m.raw(&a, &lookup).await;
    // To c: a lookup of b's, with its target changed (b's signature stands for one m
    // relayed; the test signs it with b's key).
    let Frame::Lookup { key, signature, .. } =
        authored::lookup(&b.key, &room, Keypair::generate().node_id(), 8, 0)
    else {
        unreachable!("authored::lookup builds a Lookup")
    };
    let lookup = Frame::Lookup {
        target: t2,
        key,
        id: 8,
        ttl: 0,
        signature,
    };
    m.raw(&c, &lookup).await;

    wait_until("a and c drop their links to m", DEADLINE, async || {
        let down = [a.link_down(m.id(), marks[0]), c.link_down(m.id(), marks[1])];
        if down.iter().all(Option::is_some) {
            Ok(down)
        } else {
            Err(down)
        }
    })
    .await;
    let after = [a.stats().await, c.stats().await];
    for (i, node) in [&a, &c].into_iter().enumerate() {
        let reason = node.link_down(m.id(), marks[i]);
        assert!(
            matches!(&reason, Some(LinkDownReason::Forged(what)) if what == "lookup"),
            "{}: {reason:?}",
            node.name
        );
        assert_eq!(
            after[i].forged_lookups - before[i].forged_lookups,
            1,
            "{}",
            node.name
        );
    }
    // An answer would have gone to b on the same link before these.
    a.node
        .send(b.id(), b"sentinel from a".to_vec())
        .await
        .unwrap();
    c.node
        .send(b.id(), b"sentinel from c".to_vec())
        .await
        .unwrap();
    wait_until("b has both sentinels", DEADLINE, async || {
        let got = [
            b.messages(a.id(), b"sentinel from a"),
            b.messages(c.id(), b"sentinel from c"),
        ];
        if got == [1, 1] { Ok(()) } else { Err(got) }
    })
    .await;
    let opened = opened_by(&b);
    assert!(
        opened.contains(&app(b"sentinel from a")) && opened.contains(&app(b"sentinel from c")),
        "the test opens what b received"
    );
    let answers: Vec<&Payload> = opened
        .iter()
        .filter(|p| matches!(p, Payload::Nodes { target, .. } if *target == t1 || *target == t2))
        .collect();
    assert!(answers.is_empty(), "b got answers: {answers:?}");
    leave([m, a, b, c], server).await;
}

// --- 8: one key in two rooms ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_in_two_rooms_carries_nothing_across() {
    let server = start_server().await;
    let (bx, by) = (room("bx"), room("by"));
    // The attacker's one key, in both rooms; so is h's (an honest node in both rooms).
    // bx is a line x1 – mx – hx (h's entry session goes to the closer of mx and x1: mx), so
    // that mx relays x1's unicasts to h; by is a triangle my, hy, y1.
    let k = Keypair::generate();
    let x1_key = Keypair::generate();
    let h = key_where("closer to the attacker than to x1", |h| {
        let id = h.node_id();
        id.distance(&k.node_id()) < id.distance(&x1_key.node_id())
    });
    let mx = join(&server, "mx", "bx", &k, e2e_overlay(), loopback()).await;
    let x1 = join(&server, "x1", "bx", &x1_key, only(1), loopback()).await;
    wait_for_a_link(&x1).await;
    let hx = join(&server, "hx", "bx", &h, only(1), loopback()).await;
    let my = join(&server, "my", "by", &k, e2e_overlay(), loopback()).await;
    let hy = join(&server, "hy", "by", &h, e2e_overlay(), loopback()).await;
    wait_for_a_link(&hy).await;
    let y1 = join(
        &server,
        "y1",
        "by",
        &Keypair::generate(),
        e2e_overlay(),
        loopback(),
    )
    .await;
    wait_for_shape(
        "bx a line, by a triangle",
        &[
            (&mx, &[&x1, &hx]),
            (&x1, &[&mx]),
            (&hx, &[&mx]),
            (&my, &[&hy, &y1]),
            (&hy, &[&my, &y1]),
            (&y1, &[&my, &hy]),
        ],
    )
    .await;
    assert_eq!(mx.id(), my.id());
    assert_eq!(hx.id(), hy.id());

    // Across rooms: the key of a node of the other room is never learned (they wait up to
    // 5 s for it, so they go first).
    x1.node.send(y1.id(), b"bx to by".to_vec()).await.unwrap();
    y1.node.send(x1.id(), b"by to bx".to_vec()).await.unwrap();
    // Within each room, everything works.
    let (in_bx, in_by, back) = (
        b"for h, in bx".as_slice(),
        b"for h, in by".as_slice(),
        b"from h, in by".as_slice(),
    );
    x1.node.send(h.node_id(), in_bx.to_vec()).await.unwrap();
    y1.node.send(h.node_id(), in_by.to_vec()).await.unwrap();
    hy.node.send(y1.id(), back.to_vec()).await.unwrap();
    wait_until("each room delivers its unicasts", DEADLINE, async || {
        let got = [
            hx.messages(x1.id(), in_bx),
            hy.messages(y1.id(), in_by),
            y1.messages(h.node_id(), back),
        ];
        if got == [1, 1, 1] { Ok(()) } else { Err(got) }
    })
    .await;
    assert_eq!(hy.messages(x1.id(), in_bx), 0);
    assert_eq!(hx.messages(y1.id(), in_by), 0);

    // mx relayed x1's unicast for h (x1's other sealed payloads for h look alike: the test
    // tells which it is by opening them as h in bx); my hands it to h in by.
    let (captured, s) = mx
        .wire
        .frames(Dir::In, x1.id())
        .into_iter()
        .filter_map(|f| match &f {
            Frame::Route {
                to, from, payload, ..
            } if *to == h.node_id() && *from == x1.id() => Some((payload.clone(), sealed_in(&f)?)),
            _ => None,
        })
        .find(|(_, s)| open(&h, &bx, s) == Some(app(in_bx)))
        .expect("mx relayed x1's unicast for h, sealed, which h opens in bx");
    assert_eq!(open(&h, &by, &s), None, "in by it does not open");
    let before = hy.stats().await;
    let replayed = Frame::Transfer {
        from: x1.id(),
        payload: captured,
    };
    my.raw(&hy, &replayed).await;
    let after = wait_until("hy refuses the seal from bx", DEADLINE, async || {
        let now = hy.stats().await;
        (now.seal_failures > before.seal_failures).then_some(now)
    })
    .await;
    assert_eq!(after.seal_failures - before.seal_failures, 1, "{after:?}");
    assert_eq!(after.messages_delivered, before.messages_delivered);
    assert_eq!(hy.messages(x1.id(), in_bx), 0, "not delivered in by");

    // The sends across rooms end unresolved.
    wait_until(
        "both sends across rooms are given up",
        DEADLINE,
        async || {
            let given_up = [
                x1.count(|e| matches!(e, Event::Unreachable { to, .. } if *to == y1.id())),
                y1.count(|e| matches!(e, Event::Unreachable { to, .. } if *to == x1.id())),
            ];
            if given_up == [1, 1] {
                Ok(())
            } else {
                Err(given_up)
            }
        },
    )
    .await;
    for (node, other) in [(&x1, &y1), (&y1, &x1)] {
        let stats = node.stats().await;
        assert_eq!(stats.sends_unresolved, 1, "{}: {stats:?}", node.name);
        assert_eq!(
            other.count(|e| matches!(e, Event::Message { from, .. } if *from == node.id())),
            0
        );
    }

    // y1's record, as my heard it in by, passed by mx to x1 in bx: refused.
    let y1_record = my
        .wire
        .frames(Dir::In, y1.id())
        .into_iter()
        .find_map(|f| match f {
            Frame::Neighbours { peers } => peers.into_iter().find(|r| r.id() == y1.id()),
            _ => None,
        })
        .expect("y1 announced its record to my");
    let before = x1.stats().await;
    let mark = x1.mark();
    let frame = Frame::Neighbours {
        peers: vec![mx.record(), y1_record],
    };
    mx.raw(&x1, &frame).await;
    wait_until("x1 drops mx", DEADLINE, async || {
        x1.link_down(mx.id(), mark).is_some()
    })
    .await;
    let reason = x1.link_down(mx.id(), mark);
    assert!(
        matches!(&reason, Some(LinkDownReason::Forged(what)) if what == "node record"),
        "{reason:?}"
    );
    let after = x1.stats().await;
    assert_eq!(after.forged_records - before.forged_records, 1, "{after:?}");
    leave([mx, x1, hx, my, hy, y1], server).await;
}

// --- 5, off the path: a report from a node the message did not go through ------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_report_from_a_node_off_the_path_does_not_count() {
    let server = start_server().await;
    // a and b linked to m and c, not to each other; a's unicasts for b go through c: m is
    // off their path.
    let [m, a, b, c] = diamond(&server, false).await;
    // m learns where a's seal counter stands from a message a sends m itself (one counter
    // for every destination, one step per sealed payload).
    let hello = b"hello m".to_vec();
    a.node.send(m.id(), hello.clone()).await.unwrap();
    let known = wait_until("m has a's message", DEADLINE, async || {
        let got = m.wire.frames(Dir::In, a.id());
        let sealed = got.iter().filter_map(sealed_in);
        sealed
            .filter(|s| open(&m.key, &m.room, s) == Some(app(&hello)))
            .map(|s| s.seq)
            .next()
    })
    .await;
    let (data, seq, _) = unicast_through(&a, &b, &c).await;
    let seen_by_m = m.wire.frames(Dir::In, a.id());
    assert!(
        seen_by_m
            .iter()
            .filter_map(sealed_in)
            .all(|s| s.key != a.public() || s.seq != seq),
        "m never saw the message"
    );
    let before = a.stats().await;

    // m guesses: it reports the next 64 seqs after the one it knows unreachable at m,
    // twice (a message is resent at most twice, then the application hears of it).
    let mut forger = Forger::new(&m);
    let guesses = 64;
    for _ in 0..2 {
        for k in 1..=guesses {
            let report = forger.seal(
                &a,
                &Payload::Unreachable {
                    to: b.id(),
                    seq: known + k,
                    // m never saw those payloads: it cannot know their tags.
                    proof: [0; 8],
                },
            );
            let frame = Frame::Transfer {
                from: m.id(),
                payload: sealed(report),
            };
            m.raw(&a, &frame).await;
        }
    }
    m.raw(&a, &forger.sentinel(&a, b"sentinel")).await;
    wait_until("a has m's sentinel", DEADLINE, async || {
        a.messages(m.id(), b"sentinel") == 1
    })
    .await;
    let after = a.stats().await;
    let summary = format!(
        "the message's seq {seq}, m knew {known}; messages_resent {} -> {}, \
         unreachable_received {} -> {}, unreachable_ignored {} -> {}; a's application heard \
         of {} dead ends",
        before.messages_resent,
        after.messages_resent,
        before.unreachable_received,
        after.unreachable_received,
        before.unreachable_ignored,
        after.unreachable_ignored,
        a.count(|e| matches!(e, Event::Unreachable { .. })),
    );
    assert!(
        seq > known && seq <= known + guesses,
        "m's guesses cover the message: {summary}"
    );
    assert_eq!(
        a.count(|e| matches!(e, Event::Unreachable { to, .. } if *to == b.id())),
        0,
        "a's application heard that a message b got was dropped: {summary}"
    );
    assert_eq!(
        after.messages_resent, before.messages_resent,
        "a resent nothing on the word of a node off the path: {summary}"
    );
    assert_eq!(b.messages(a.id(), &data), 1);
    leave([m, a, b, c], server).await;
}

// --- 6, with valid records: ids nobody holds -----------------------------------------

/// Records of key pairs nobody runs, validly signed for the room, are real keys: a node
/// cannot tell them from nodes that left, and they cost sessions, but no more than the
/// session budget (docs/protocol.md §10.11). (Asking each such peer to prove itself before a
/// session was tried: it broke the repair of islands after a mass kill, benchmarks §14.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_records_of_ids_nobody_runs_cost_at_most_the_session_budget() {
    let server = start_server().await;
    // A small budget: 8 sessions at once, then one every 10 s.
    let budget = mesh_core::budget::Rate::new(0.1, 8.0);
    let [m, a, b, c] = four(
        &server,
        e2e_overlay().with_session_budget(budget),
        loopback(),
    )
    .await;
    // Sixteen key pairs the attacker made up, each record validly signed for the room.
    let made_up: Vec<Keypair> = (0..16).map(|_| Keypair::generate()).collect();
    let mut peers = vec![m.record()];
    peers.extend(made_up.iter().map(|k| NodeRecord::sign(k, &m.room)));
    let before = [a.stats().await, b.stats().await];
    let frame = Frame::Neighbours { peers };
    m.raw(&a, &frame).await;
    m.raw(&b, &frame).await;
    // a and b keep 3 links of the 4 they want, so they top up on every tick.
    wait_for_ticks(&[(&a, &c), (&b, &c)]).await;
    wait_for_ticks(&[(&a, &c), (&b, &c)]).await;
    let after = [a.stats().await, b.stats().await];
    for (i, node) in [&a, &b].into_iter().enumerate() {
        assert_eq!(
            after[i].forged_records, before[i].forged_records,
            "{}: the records verify",
            node.name
        );
        let offered = made_up
            .iter()
            .map(Keypair::node_id)
            .filter(|id| node.wire.opened_with(*id))
            .count();
        let started = after[i].sessions_initiated_via_mesh + after[i].sessions_initiated_via_server;
        assert!(
            started <= 8 && offered < 16,
            "{}: {started} sessions in all, {offered} of them to made-up ids: over the budget",
            node.name,
        );
    }
    assert!(
        after.iter().any(|s| s.sessions_over_budget > 0),
        "the made-up records ran into the session budget: {after:?}"
    );
    // The honest links stay.
    assert!(a.neighbours().await.contains(&c.id()));
    leave([m, a, b, c], server).await;
}
