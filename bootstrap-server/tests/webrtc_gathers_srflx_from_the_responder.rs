//! A real webrtc-rs PeerConnection, given the responder as its STUN server, gathers a
//! server-reflexive candidate from it.

use std::time::Duration;

use bootstrap_server::Config;
use mesh_testkit::TestServer;
use tokio::sync::mpsc;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCIceServer, RTCPeerConnectionIceEvent, SettingEngineBuilder,
};

const DEADLINE: Duration = Duration::from_secs(10);

/// Forwards each local candidate (`None`: gathering complete) on a bounded queue.
struct Candidates(mpsc::Sender<Option<String>>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Candidates {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.0.try_send(Some(init.candidate));
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.try_send(None);
        }
    }
}

#[tokio::test]
async fn a_peer_connection_gathers_a_srflx_candidate_from_the_responder() {
    let config = Config::default().with_stun_listen(Some("127.0.0.1:0".parse().unwrap()));
    let server = TestServer::start(config).await;
    let stun = server.stun_addr().unwrap();

    let (tx, mut rx) = mpsc::channel(64);
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let configuration = RTCConfigurationBuilder::new()
        .with_ice_servers(vec![RTCIceServer {
            urls: vec![format!("stun:{stun}")],
            ..Default::default()
        }])
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_setting_engine(settings)
        .with_handler(std::sync::Arc::new(Candidates(tx)))
        .with_udp_addrs(vec!["127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap()])
        .build()
        .await
        .unwrap();
    pc.create_data_channel("probe", None).await.unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer).await.unwrap();

    let mut candidates = Vec::new();
    loop {
        match tokio::time::timeout(DEADLINE, rx.recv()).await {
            Ok(Some(Some(candidate))) => candidates.push(candidate),
            Ok(Some(None)) => break,
            Ok(None) => panic!("the handler is gone"),
            Err(_) => panic!("gathering did not complete; candidates so far: {candidates:?}"),
        }
    }
    let host = candidates
        .iter()
        .find(|c| c.contains("typ host"))
        .unwrap_or_else(|| panic!("a host candidate: {candidates:?}"));
    let srflx = candidates
        .iter()
        .find(|c| c.contains("typ srflx"))
        .unwrap_or_else(|| panic!("a srflx candidate: {candidates:?}"));
    // On loopback the reflexive address is the host candidate's own address.
    let host_port = host.split_whitespace().nth(5).unwrap();
    assert!(
        srflx.contains(&format!(
            "127.0.0.1 {host_port} typ srflx raddr 127.0.0.1 rport {host_port}"
        )),
        "host {host}, srflx {srflx}"
    );

    pc.close().await.unwrap();
    server.stop().await.unwrap();
}
