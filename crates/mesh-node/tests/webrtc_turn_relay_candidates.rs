//! What webrtc-rs 0.21.1 gathers from a real TURN server (coturn's `turnserver`, started on
//! 127.0.0.1 by the test): a `relay` candidate through `turn:…?transport=udp`, and none
//! through `turn:…?transport=tcp`, which its gatherer skips ("Skipping unsupported non-UDP
//! TURN url", `webrtc-0.21.1/src/peer_connection/transport/turn_relayer.rs`). If a later
//! webrtc-rs gathers over TCP, the TCP test fails: update `docs/operations.md` and the
//! `--turn` warning of the `mesh-node` CLI.
//!
//! And two nodes limited to relay candidates link through it, and `Node::links` reports the
//! pair as `relay/udp relay/udp`.
//!
//! Ignored by default: it needs `turnserver` on the PATH (`apt-get install coturn`). Run
//! with `cargo test -p mesh-node --test webrtc_turn_relay_candidates -- --ignored`.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_node::transport::webrtc::{Config as WebRtcConfig, IceServer};
use mesh_node::transport::{Candidate, CandidateKind, CandidatePair, CandidateProtocol};
use mesh_node::{Config, Node};
use mesh_proto::identity::Keypair;
use tokio::sync::mpsc;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceErrorEvent,
    RTCPeerConnectionIceEvent, SettingEngineBuilder,
};

const DEADLINE: Duration = Duration::from_secs(10);
const USER: &str = "mesh";
const PASSWORD: &str = "secret";

/// A coturn `turnserver` on 127.0.0.1, killed on drop.
struct Coturn {
    port: u16,
    child: Child,
}

impl Coturn {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--min-port=49152",
                "--max-port=65535",
                "--lt-cred-mech",
                &format!("--user={USER}:{PASSWORD}"),
                "--realm=mesh",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                "--log-file=stdout",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver on the PATH (apt-get install coturn)");
        let server = Self { port, child };
        // Ready once its TCP listener accepts (the UDP one starts with it).
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < DEADLINE, "turnserver did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self, transport: &str) -> String {
        format!("turn:127.0.0.1:{}?transport={transport}", self.port)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 for both TCP and UDP, as far as can be told.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// What gathering reported.
#[derive(Debug)]
enum Gathered {
    Candidate(String),
    Error(String),
    Complete,
}

struct Report(mpsc::Sender<Gathered>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Report {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.0.try_send(Gathered::Candidate(init.candidate));
        }
    }

    async fn on_ice_candidate_error(&self, event: RTCPeerConnectionIceErrorEvent) {
        let _ = self.0.try_send(Gathered::Error(format!("{event:?}")));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.try_send(Gathered::Complete);
        }
    }
}

/// The candidates a PeerConnection on 127.0.0.1 gathers with `url` as its only ICE server.
async fn gather(url: String, policy: RTCIceTransportPolicy) -> (Vec<String>, Vec<String>) {
    let (tx, mut rx) = mpsc::channel(64);
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let configuration = RTCConfigurationBuilder::new()
        .with_ice_servers(vec![RTCIceServer {
            urls: vec![url],
            username: USER.to_owned(),
            credential: PASSWORD.to_owned(),
        }])
        .with_ice_transport_policy(policy)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Report(tx)))
        .with_udp_addrs(vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()])
        .build()
        .await
        .unwrap();
    pc.create_data_channel("probe", None).await.unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer).await.unwrap();
    let (mut candidates, mut errors) = (Vec::new(), Vec::new());
    loop {
        match tokio::time::timeout(DEADLINE, rx.recv()).await {
            Ok(Some(Gathered::Candidate(c))) => candidates.push(c),
            Ok(Some(Gathered::Error(e))) => errors.push(e),
            Ok(Some(Gathered::Complete)) => break,
            Ok(None) => panic!("the handler is gone"),
            Err(_) => panic!("gathering did not complete: {candidates:?} {errors:?}"),
        }
    }
    pc.close().await.unwrap();
    (candidates, errors)
}

fn of_type<'a>(candidates: &'a [String], typ: &str) -> Vec<&'a String> {
    let needle = format!(" typ {typ}");
    candidates.iter().filter(|c| c.contains(&needle)).collect()
}

#[tokio::test]
#[ignore = "needs coturn's turnserver on the PATH"]
async fn turn_over_udp_gathers_a_relay_candidate() {
    let coturn = Coturn::start();
    let (candidates, errors) = gather(coturn.url("udp"), RTCIceTransportPolicy::All).await;
    eprintln!("udp, all: {candidates:#?} errors {errors:#?}");
    assert_eq!(of_type(&candidates, "host").len(), 1, "{candidates:?}");
    let relay = of_type(&candidates, "relay");
    assert_eq!(relay.len(), 1, "{candidates:?} {errors:?}");
    assert!(relay[0].contains(" udp "), "the relayed address is UDP");

    let (candidates, errors) = gather(coturn.url("udp"), RTCIceTransportPolicy::Relay).await;
    eprintln!("udp, relay only: {candidates:#?} errors {errors:#?}");
    assert_eq!(candidates.len(), 1, "relay only: {candidates:?}");
    assert_eq!(of_type(&candidates, "relay").len(), 1, "{candidates:?}");
}

#[tokio::test]
#[ignore = "needs coturn's turnserver on the PATH"]
async fn turn_over_tcp_gathers_no_relay_candidate() {
    let coturn = Coturn::start();
    let (candidates, errors) = gather(coturn.url("tcp"), RTCIceTransportPolicy::All).await;
    eprintln!("tcp, all: {candidates:#?} errors {errors:#?}");
    assert_eq!(of_type(&candidates, "host").len(), 1, "{candidates:?}");
    assert!(
        of_type(&candidates, "relay").is_empty(),
        "webrtc-rs now gathers relay candidates over TCP TURN: {candidates:?}"
    );

    let (candidates, errors) = gather(coturn.url("tcp"), RTCIceTransportPolicy::Relay).await;
    eprintln!("tcp, relay only: {candidates:#?} errors {errors:#?}");
    assert!(
        candidates.is_empty(),
        "relay only over TCP TURN gathers nothing: {candidates:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs coturn's turnserver on the PATH"]
async fn relay_only_nodes_link_through_turn_over_udp() {
    let coturn = Coturn::start();
    let door = support::Door::start(false).await;
    let join = || {
        let transport = WebRtcConfig::new()
            .with_bind_addrs(vec!["127.0.0.1:0".parse().unwrap()])
            .with_ice_servers(vec![IceServer::turn(coturn.url("udp"), USER, PASSWORD)])
            .with_relay_only(true);
        Node::join(
            Config::new(door.url().parse().expect("a ws:// URL")),
            Keypair::generate(),
            transport,
        )
    };
    let a = join().await.unwrap();
    let b = join().await.unwrap();
    let relay = Candidate {
        kind: CandidateKind::Relay,
        protocol: CandidateProtocol::Udp,
    };
    let through_turn = Some(CandidatePair {
        local: relay,
        remote: relay,
    });
    for (node, peer) in [(&a, b.id()), (&b, a.id())] {
        let links = support::wait_until("linked through the TURN server", || async {
            let links = node.links().await.unwrap();
            links
                .first()
                .is_some_and(|l| l.candidate_pair.is_some())
                .then_some(links)
        })
        .await;
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0].peer, peer);
        assert_eq!(links[0].candidate_pair, through_turn, "{links:?}");
    }
    a.leave().await.unwrap();
    b.leave().await.unwrap();
    door.stop().await;
}
