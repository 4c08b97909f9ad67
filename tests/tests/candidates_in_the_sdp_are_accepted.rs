//! Candidates in the SDP are accepted (docs/protocol.md §10.6, "Candidates"; issue 18): a
//! peer that does not trickle — it waits until ICE gathering is complete and puts all its
//! candidates in its offer or answer (`a=candidate` lines and `a=end-of-candidates`), and
//! sends no `Candidate` signal — links with a real node, and a message crosses the link
//! both ways.
//!
//! The peer is written by hand on webrtc-rs 0.21 (a PeerConnection with the one
//! pre-negotiated DataChannel of §10.1, UDP on 127.0.0.1), registers with the real bootstrap
//! server on port 0, and signals through it (an entry session: bare, signed `Signal`s in
//! `Unicast`/`Transfer`). It records the node's `Candidate` signals but never applies them:
//! it knows no address of the node, so the only way ICE can find a pair is the node checking
//! the candidates of the peer's SDP. A node that ignored them would never link. The node
//! must also say that the pair it selected ends at a `host` candidate of the peer (one from
//! the SDP), not a peer-reflexive one learned from a check.
//!
//! Four tests: the node offers and the peer answers; the peer offers and the node answers;
//! the peer offers with two candidate lines the node cannot use ahead of its own, which the
//! node skips as it would skip them trickled (webrtc-rs alone refuses the whole offer for
//! them, and the node answered `Reject FAILED` before it took the lines out of the SDP:
//! docs/webrtc-rs-upstream.md, finding 7); and a mix, an offer whose only candidate line is
//! unusable followed by the peer's own candidates trickled. The first three also check what
//! the node sends (§10.6: the reference trickles): an SDP without candidates, then its
//! candidates one `Candidate` each, then `EndOfCandidates`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use mesh_e2e::{Client, DEADLINE, MeshNode, TestServer, e2e_overlay, open, seal, wait_until};
use mesh_node::transport::CandidateKind;
use mesh_proto::identity::{Keypair, PublicKey};
use mesh_proto::signal::{Payload, SessionId, Signal, SignalKind};
use mesh_proto::{Frame, NodeId, RoomName};
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCSessionDescription, SettingEngineBuilder,
};

/// The room of both tests.
const ROOM: &str = "sdp-candidates";

// --- the hand-written peer -----------------------------------------------------------

/// What the peer's PeerConnection reported: the candidates it gathered and whether
/// gathering is complete.
#[derive(Debug, Default)]
struct Gathering {
    candidates: Mutex<Vec<String>>,
    complete: Mutex<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Gathering {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        // Kept to check the SDP against; never signalled (the peer does not trickle).
        if let Ok(init) = event.candidate.to_json() {
            lock(&self.candidates).push(init.candidate);
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            *lock(&self.complete) = true;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the peer's DataChannel brought.
#[derive(Debug)]
enum OnLink {
    Open,
    Frame(Frame),
    Undecodable(usize),
    Closed,
}

/// A peer that does not trickle: one registered identity, one PeerConnection, one session.
struct NonTrickler {
    key: Keypair,
    room: RoomName,
    /// Frames to the server.
    to_server: mpsc::Sender<Frame>,
    /// Frames from the server.
    from_server: mpsc::Receiver<Frame>,
    pc: Arc<dyn PeerConnection>,
    dc: Arc<dyn DataChannel>,
    gathering: Arc<Gathering>,
    link: mpsc::Receiver<OnLink>,
    /// Every signal it sent.
    sent: Vec<Signal>,
    /// Every verified signal the node sent it.
    received: Vec<Signal>,
    /// Sealed payloads so far (one epoch: the peer's start).
    seq: u64,
    epoch: u64,
}

impl NonTrickler {
    /// Registers `key` in [`ROOM`] through `server` and builds the PeerConnection; returns
    /// the peer and the server's sample of the room.
    async fn register(server: &TestServer, key: Keypair) -> (Self, Vec<NodeId>) {
        let mut client = Client::connect(&server.url()).await;
        client.key = Keypair::from_seed(key.to_seed());
        let sample = client.register(ROOM).await;
        let (to_server, mut outbox) = mpsc::channel::<Frame>(64);
        let (inbox, from_server) = mpsc::channel::<Frame>(1024);
        // The client, in a task: it answers the server's pings while the test waits on
        // WebRTC.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    frame = outbox.recv() => match frame {
                        Some(frame) => client.send(&frame).await,
                        None => break,
                    },
                    received = client.recv_whenever() => match received {
                        mesh_e2e::Received::Frame(frame) => {
                            if inbox.send(frame).await.is_err() {
                                break;
                            }
                        }
                        mesh_e2e::Received::Closed(_) => break,
                    },
                }
            }
        });

        let gathering = Arc::new(Gathering::default());
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(65_536))
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_handler(Arc::clone(&gathering) as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
            .build()
            .await
            .expect("a peer connection");
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        // §10.1: negotiated, stream 0, ordered and reliable.
        let init = RTCDataChannelInit {
            negotiated: Some(0),
            ..Default::default()
        };
        let dc = pc
            .create_data_channel("mesh", Some(init))
            .await
            .expect("a data channel");
        let (events, link) = mpsc::channel(1024);
        let channel = Arc::clone(&dc);
        tokio::spawn(async move {
            while let Some(event) = channel.poll().await {
                let seen = match event {
                    DataChannelEvent::OnOpen => OnLink::Open,
                    DataChannelEvent::OnMessage(message) => match mesh_proto::decode(&message.data)
                    {
                        Ok(frame) => OnLink::Frame(frame),
                        Err(_) => OnLink::Undecodable(message.data.len()),
                    },
                    DataChannelEvent::OnClose => OnLink::Closed,
                    _ => continue,
                };
                if events.send(seen).await.is_err() {
                    break;
                }
            }
        });
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_micros();
        let peer = Self {
            room: ROOM.parse().expect("a room name"),
            key,
            to_server,
            from_server,
            pc,
            dc,
            gathering,
            link,
            sent: Vec::new(),
            received: Vec::new(),
            seq: 0,
            epoch: u64::try_from(micros).expect("micros fit a u64"),
        };
        (peer, sample)
    }

    fn id(&self) -> NodeId {
        self.key.node_id()
    }

    /// Signs `kind` for `to` and sends it through the server (an entry session's carrier).
    async fn signal(&mut self, session: SessionId, to: NodeId, kind: SignalKind) {
        let signal = Signal::sign(&self.key, &self.room, session, to, kind);
        let payload = mesh_proto::encode_payload(&Payload::Signal(signal.clone()))
            .expect("the signal encodes");
        self.to_server
            .send(Frame::Unicast { to, payload })
            .await
            .expect("the client task runs");
        self.sent.push(signal);
    }

    /// The first signal from the server that verifies for this peer and that `pick` picks,
    /// within [`DEADLINE`]; every one that verifies is kept in `received`.
    async fn signal_where(&mut self, what: &str, pick: impl Fn(&Signal) -> bool) -> Signal {
        let wait = async {
            loop {
                let frame = self.from_server.recv().await.expect("the client task runs");
                if let Some(signal) = signal_in(&frame, &self.room, self.id()) {
                    self.received.push(signal.clone());
                    if pick(&signal) {
                        return signal;
                    }
                }
            }
        };
        match tokio::time::timeout(DEADLINE, wait).await {
            Ok(signal) => signal,
            Err(_) => {
                let got: Vec<&str> = self.received.iter().map(|s| s.kind.name()).collect();
                panic!("no {what} from the node within {DEADLINE:?}; it sent {got:?}")
            }
        }
    }

    /// Keeps every signal the server has passed on so far in `received`.
    fn drain_signals(&mut self) {
        while let Ok(frame) = self.from_server.try_recv() {
            if let Some(signal) = signal_in(&frame, &self.room, self.id()) {
                self.received.push(signal);
            }
        }
    }

    /// Waits until ICE gathering is complete, then returns the local description: every
    /// candidate is in it (what a peer that does not trickle signals).
    async fn gathered_description(&self) -> String {
        let gathering = Arc::clone(&self.gathering);
        wait_until("the peer's ICE gathering completes", DEADLINE, async || {
            *lock(&gathering.complete)
        })
        .await;
        self.pc
            .local_description()
            .await
            .expect("a local description")
            .sdp
    }

    /// Offers a session to `to`, its SDP holding all the candidates, after `first`
    /// (`a=candidate` lines the peer adds ahead of its own).
    async fn offer(&mut self, to: NodeId, first: &[&str]) -> SessionId {
        let session = SessionId(rand_session());
        let offer = self.pc.create_offer(None).await.expect("an offer");
        self.pc
            .set_local_description(offer)
            .await
            .expect("the local offer applies");
        let mut sdp = self.gathered_description().await;
        if let Some(at) = sdp.find("a=candidate:") {
            let lines: String = first.iter().map(|l| format!("{l}\r\n")).collect();
            sdp.insert_str(at, &lines);
        }
        self.signal(session, to, SignalKind::Offer(sdp)).await;
        session
    }

    /// Offers a session to `to` with `in_sdp` as the offer's only candidate lines (and no
    /// `a=end-of-candidates`), then trickles every candidate it gathered, one `Candidate`
    /// each, then `EndOfCandidates`: the two ways mixed.
    async fn offer_mixed(&mut self, to: NodeId, in_sdp: &[&str]) -> SessionId {
        let session = SessionId(rand_session());
        let offer = self.pc.create_offer(None).await.expect("an offer");
        self.pc
            .set_local_description(offer)
            .await
            .expect("the local offer applies");
        let gathered = self.gathered_description().await;
        let (mut lines, mut replaced) = (Vec::new(), false);
        for line in gathered.split("\r\n") {
            if !line.starts_with("a=candidate:") && line != "a=end-of-candidates" {
                lines.push(line);
            } else if !replaced {
                lines.extend_from_slice(in_sdp);
                replaced = true;
            }
        }
        self.signal(session, to, SignalKind::Offer(lines.join("\r\n")))
            .await;
        let candidates = lock(&self.gathering.candidates).clone();
        for candidate in candidates {
            self.signal(session, to, SignalKind::Candidate(candidate))
                .await;
        }
        self.signal(session, to, SignalKind::EndOfCandidates).await;
        session
    }

    /// Applies the answer to `session`, ignoring every other signal (the node's own offer,
    /// if both offered at once, and candidates that came first).
    async fn take_answer(&mut self, session: SessionId) {
        let signal = self
            .signal_where("answer or reject", |s| {
                s.session == session
                    && matches!(s.kind, SignalKind::Answer(_) | SignalKind::Reject(_))
            })
            .await;
        let SignalKind::Answer(sdp) = signal.kind else {
            panic!("the node refused the offer: {:?}", signal.kind);
        };
        let answer = RTCSessionDescription::answer(sdp).expect("an SDP answer");
        self.pc
            .set_remote_description(answer)
            .await
            .expect("the node's answer applies");
    }

    /// Waits for an offer, answers it with all the candidates in the SDP; returns the
    /// session and the offerer.
    async fn answer(&mut self) -> (SessionId, NodeId) {
        let signal = self
            .signal_where("offer", |s| matches!(s.kind, SignalKind::Offer(_)))
            .await;
        let (session, from) = (signal.session, signal.from);
        let SignalKind::Offer(sdp) = signal.kind else {
            unreachable!("an offer was picked")
        };
        let offer = RTCSessionDescription::offer(sdp).expect("an SDP offer");
        self.pc
            .set_remote_description(offer)
            .await
            .expect("the node's offer applies");
        let answer = self.pc.create_answer(None).await.expect("an answer");
        self.pc
            .set_local_description(answer)
            .await
            .expect("the local answer applies");
        let sdp = self.gathered_description().await;
        self.signal(session, from, SignalKind::Answer(sdp)).await;
        (session, from)
    }

    /// Waits until the DataChannel is open: the first thing it reports.
    async fn wait_open(&mut self) {
        let first = tokio::time::timeout(DEADLINE, self.link.recv())
            .await
            .expect("the peer's DataChannel opens within the deadline");
        assert!(
            matches!(first, Some(OnLink::Open)),
            "before the channel opened: {first:?}"
        );
    }

    /// Sends `data` to the node at the other end of the link (key `to`), sealed, in a
    /// `Transfer`.
    async fn send_app(&mut self, to: &PublicKey, data: &[u8]) {
        let sealed = seal(
            &self.key,
            &self.room,
            to,
            self.epoch,
            self.seq,
            &Payload::App(data.to_vec()),
        );
        self.seq += 1;
        let frame = Frame::Transfer {
            from: self.id(),
            payload: mesh_proto::encode_payload(&Payload::Sealed(sealed))
                .expect("the payload encodes"),
        };
        let bytes = mesh_proto::encode(&frame).expect("the frame encodes");
        self.dc
            .send(BytesMut::from(&bytes[..]))
            .await
            .expect("the peer sends on its DataChannel");
    }

    /// Waits for application bytes from `from` on the link; returns them and the frames
    /// that came before.
    async fn receive_app(&mut self, from: NodeId) -> (Vec<u8>, Vec<Frame>) {
        let mut before = Vec::new();
        let wait = async {
            loop {
                match self.link.recv().await {
                    Some(OnLink::Frame(frame)) => {
                        if let Frame::Transfer { from: f, .. } = &frame
                            && *f == from
                            && let Some(Payload::App(data)) = mesh_e2e::sealed_in(&frame)
                                .and_then(|s| open(&self.key, &self.room, &s))
                        {
                            return data;
                        }
                        before.push(frame);
                    }
                    Some(OnLink::Undecodable(len)) => {
                        panic!("the node sent a message of {len} bytes that does not decode")
                    }
                    other => panic!("on the open link: {other:?}"),
                }
            }
        };
        let data = tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("the node's message arrives within the deadline");
        (data, before)
    }

    /// Closes the PeerConnection and the server connection.
    async fn leave(self) {
        let _ = self.pc.close().await;
    }
}

/// The signal a `Transfer` from the server carries, if it verifies for `me` in `room`.
fn signal_in(frame: &Frame, room: &RoomName, me: NodeId) -> Option<Signal> {
    let Frame::Transfer { payload, .. } = frame else {
        return None;
    };
    match mesh_proto::decode_payload(payload) {
        Ok(Payload::Signal(signal)) if signal.to == me && signal.verify(room).is_ok() => {
            Some(signal)
        }
        _ => None,
    }
}

/// A session id drawn at random (§10.6), from the key generator's randomness.
fn rand_session() -> u64 {
    let seed = Keypair::generate().to_seed();
    u64::from_le_bytes(seed[..8].try_into().expect("8 bytes"))
}

/// The `a=candidate` lines of `sdp`, without `a=`.
fn candidate_lines(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .collect()
}

fn has_end_of_candidates(sdp: &str) -> bool {
    sdp.lines().any(|l| l.trim_end() == "a=end-of-candidates")
}

/// A key pair whose id is lower than `than`: such a peer's offer wins the glare rule of
/// §10.7 against an entry session the node may offer it meanwhile.
fn key_below(than: NodeId) -> Keypair {
    (0..1000)
        .map(|_| Keypair::generate())
        .find(|k| k.node_id() < than)
        .expect("a key pair with a lower id")
}

// --- the node --------------------------------------------------------------------------

async fn join_node(server: &TestServer, key: Keypair) -> MeshNode {
    let config = mesh_node::Config::new(server.url().parse().expect("a ws:// URL"))
        .with_room(ROOM.parse().expect("a room name"))
        .with_overlay(e2e_overlay());
    let transport = mesh_node::transport::webrtc::Config::new()
        .with_bind_addrs(vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    let node = mesh_node::Node::join(config, key, transport)
        .await
        .expect("the node joins");
    let events = node.events().expect("the events, taken once");
    MeshNode { node, events }
}

/// Waits until the node has a link to `peer`; returns the kind of the remote end of the
/// candidate pair it selected.
async fn wait_for_link(node: &MeshNode, peer: NodeId) -> CandidateKind {
    wait_until("the node has a link to the peer", DEADLINE, async || {
        let links = node.node.links().await.expect("the node runs");
        match links.iter().find(|l| l.peer == peer) {
            Some(link) => Ok(link.candidate_pair.map(|p| p.remote.kind)),
            None => Err(format!("{} links", links.len())),
        }
    })
    .await
    .expect("the WebRTC transport tells the candidate pair")
}

/// Sends a message each way on the link and checks both arrive.
async fn exchange(node: &mut MeshNode, peer: &mut NonTrickler, node_key: &PublicKey) {
    let up = b"from the peer that does not trickle".as_slice();
    peer.send_app(node_key, up).await;
    match mesh_e2e::next_message(node).await {
        mesh_node::Event::Message { from, data } => {
            assert_eq!((from, data.as_slice()), (peer.id(), up));
        }
        other => panic!("expected the peer's message, got {other:?}"),
    }
    let down = b"from the node".to_vec();
    node.node
        .send(peer.id(), down.clone())
        .await
        .expect("the node sends");
    let (got, before) = peer.receive_app(node.node.id()).await;
    assert_eq!(got, down, "frames before it: {before:?}");
}

/// The peer signalled one SDP and nothing else, with every candidate it gathered in it;
/// the node signalled an SDP without candidates, then trickled them.
async fn check_signals(peer: &mut NonTrickler, session: SessionId) {
    let (kinds, sdp) = match peer.sent.as_slice() {
        [one] => match &one.kind {
            SignalKind::Offer(sdp) | SignalKind::Answer(sdp) => (one.kind.name(), sdp.clone()),
            other => panic!("the peer signalled {other:?}"),
        },
        more => panic!(
            "the peer sent {} signals: {:?}",
            more.len(),
            more.iter().map(|s| s.kind.name()).collect::<Vec<_>>()
        ),
    };
    let in_sdp = candidate_lines(&sdp);
    let gathered = lock(&peer.gathering.candidates).clone();
    assert!(
        !in_sdp.is_empty() && has_end_of_candidates(&sdp),
        "the peer's {kinds} carries its candidates and a=end-of-candidates:\n{sdp}"
    );
    assert!(
        !gathered.is_empty() && gathered.iter().all(|c| in_sdp.contains(&c.as_str())),
        "every candidate the peer gathered ({gathered:?}) is in its {kinds}:\n{sdp}"
    );

    // What the node sends: all its steps of the session came through the server, in order,
    // EndOfCandidates last.
    wait_until("the node's EndOfCandidates arrives", DEADLINE, async || {
        peer.drain_signals();
        peer.received
            .iter()
            .any(|s| s.session == session && s.kind == SignalKind::EndOfCandidates)
    })
    .await;
    let from_node: Vec<&SignalKind> = peer
        .received
        .iter()
        .filter(|s| s.session == session)
        .map(|s| &s.kind)
        .collect();
    let node_sdp = from_node
        .iter()
        .find_map(|k| match k {
            SignalKind::Offer(sdp) | SignalKind::Answer(sdp) => Some(sdp.as_str()),
            _ => None,
        })
        .expect("the node signalled an SDP");
    let trickled = from_node
        .iter()
        .filter(|k| matches!(k, SignalKind::Candidate(_)))
        .count();
    assert!(
        candidate_lines(node_sdp).is_empty(),
        "the node's SDP carries no candidate (it trickles):\n{node_sdp}"
    );
    assert!(
        trickled >= 1,
        "the node trickled its candidates: {from_node:?}"
    );
}

async fn finish(node: MeshNode, peer: NonTrickler, server: TestServer) {
    node.node.leave().await.expect("a clean leave");
    peer.leave().await;
    server.stop().await.expect("a clean stop");
}

// --- the tests -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_links_with_an_answer_that_holds_every_candidate() {
    let server = TestServer::start(bootstrap_server::Config::default()).await;
    // The peer registers first; the node's entry session goes to it, the only one in the
    // room.
    let (mut peer, sample) = NonTrickler::register(&server, Keypair::generate()).await;
    assert!(sample.is_empty(), "the room was empty: {sample:?}");
    let node_key = Keypair::generate();
    let node_public = node_key.public();
    let mut node = join_node(&server, node_key).await;

    let (session, offerer) = peer.answer().await;
    assert_eq!(offerer, node.node.id(), "the node offered");
    peer.wait_open().await;
    let remote = wait_for_link(&node, peer.id()).await;
    assert_eq!(
        remote,
        CandidateKind::Host,
        "the node reached the peer at a candidate of its SDP"
    );
    exchange(&mut node, &mut peer, &node_public).await;
    check_signals(&mut peer, session).await;
    finish(node, peer, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_links_with_an_offer_that_holds_every_candidate() {
    let server = TestServer::start(bootstrap_server::Config::default()).await;
    // The node registers first, alone; the peer offers it a session through the server.
    let node_key = Keypair::generate();
    let node_public = node_key.public();
    let node_id = node_key.node_id();
    let mut node = join_node(&server, node_key).await;
    let (mut peer, sample) = NonTrickler::register(&server, key_below(node_id)).await;
    assert_eq!(sample, vec![node_id], "the server's sample is the node");

    let session = peer.offer(node_id, &[]).await;
    peer.take_answer(session).await;
    peer.wait_open().await;
    let remote = wait_for_link(&node, peer.id()).await;
    assert_eq!(
        remote,
        CandidateKind::Host,
        "the node reached the peer at a candidate of its SDP"
    );
    exchange(&mut node, &mut peer, &node_public).await;
    check_signals(&mut peer, session).await;
    finish(node, peer, server).await;
}

/// A candidate line the node cannot use — here an address that is neither an IP address nor
/// an mDNS name — is skipped, as it would be in a `Candidate` signal: the node links through
/// the others (§10.6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_the_node_cannot_use_does_not_cost_the_session() {
    let server = TestServer::start(bootstrap_server::Config::default()).await;
    let node_key = Keypair::generate();
    let node_public = node_key.public();
    let node_id = node_key.node_id();
    let mut node = join_node(&server, node_key).await;
    let (mut peer, _) = NonTrickler::register(&server, key_below(node_id)).await;

    let unusable = [
        "a=candidate:1 1 udp 2130706431 unresolvable.example 9 typ host",
        "a=candidate:2 1 udp 2130706431 192.0.2.1 9 typ unknowntype",
    ];
    let session = peer.offer(node_id, &unusable).await;
    let sent = match &peer.sent[0].kind {
        SignalKind::Offer(sdp) => candidate_lines(sdp).len(),
        other => panic!("the peer offered, not {other:?}"),
    };
    assert!(
        sent >= 3,
        "the offer holds the unusable lines and the peer's own"
    );
    peer.take_answer(session).await;
    peer.wait_open().await;
    let remote = wait_for_link(&node, peer.id()).await;
    assert_eq!(remote, CandidateKind::Host);
    exchange(&mut node, &mut peer, &node_public).await;
    check_signals(&mut peer, session).await;
    finish(node, peer, server).await;
}

/// Candidates both ways in one session: the offer holds only lines the node cannot use, the
/// peer's own candidates follow in `Candidate` signals. The node links through the trickled
/// ones, and the lines of the SDP cost it nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_in_the_sdp_and_trickled_mix() {
    let server = TestServer::start(bootstrap_server::Config::default()).await;
    let node_key = Keypair::generate();
    let node_public = node_key.public();
    let node_id = node_key.node_id();
    let mut node = join_node(&server, node_key).await;
    let (mut peer, _) = NonTrickler::register(&server, key_below(node_id)).await;

    let in_sdp = ["a=candidate:1 1 udp 2130706431 unresolvable.example 9 typ host"];
    let session = peer.offer_mixed(node_id, &in_sdp).await;
    let kinds: Vec<&str> = peer.sent.iter().map(|s| s.kind.name()).collect();
    let trickled = kinds.iter().filter(|k| **k == "candidate").count();
    let SignalKind::Offer(offer) = &peer.sent[0].kind else {
        panic!("the peer offered first: {kinds:?}")
    };
    assert_eq!(candidate_lines(offer), [&in_sdp[0][2..]], "{offer}");
    assert!(
        trickled >= 1 && kinds.last() == Some(&"end_of_candidates"),
        "the peer trickled its own candidates: {kinds:?}"
    );
    peer.take_answer(session).await;
    peer.wait_open().await;
    let remote = wait_for_link(&node, peer.id()).await;
    assert_eq!(remote, CandidateKind::Host, "a trickled host candidate");
    exchange(&mut node, &mut peer, &node_public).await;
    finish(node, peer, server).await;
}
