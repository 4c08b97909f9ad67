//! `Node::links` lists each live link with the ICE candidate pair selected for it: read from
//! real webrtc-rs PeerConnections on 127.0.0.1 (with and without the bootstrap server's
//! STUN responder), unknown with the memory transport.

mod support;

use mesh_node::transport::memory::{MemoryNetwork, MemoryTransport};
use mesh_node::transport::{Candidate, CandidateKind, CandidatePair, CandidateProtocol};
use mesh_node::{Config, LinkInfo, Node};
use mesh_proto::identity::Keypair;
use support::{Door, wait_until};

const HOST_UDP: Candidate = Candidate {
    kind: CandidateKind::Host,
    protocol: CandidateProtocol::Udp,
};

/// Waits until `a` and `b` are linked, with their candidate pairs known and no remote end
/// peer-reflexive (each side's check can beat the other's signaled candidate, which then
/// arrives a moment later: until it does, the pair is reported as `prflx`); returns each
/// one's links then.
async fn linked(a: &Node, b: &Node) -> (Vec<LinkInfo>, Vec<LinkInfo>) {
    wait_until(
        "a and b are linked, with their candidate pairs known and signaled",
        || async {
            let (la, lb) = (a.links().await.unwrap(), b.links().await.unwrap());
            let known = |links: &[LinkInfo]| {
                links.len() == 1
                    && links.iter().all(|l| {
                        l.candidate_pair
                            .is_some_and(|p| p.remote.kind != CandidateKind::Prflx)
                    })
            };
            (known(&la) && known(&lb)).then_some((la, lb))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_links_on_loopback_travel_host_to_host_over_udp() {
    let door = Door::start(false).await;
    let a = support::webrtc_node(&door.url(), Vec::new()).await;
    let b = support::webrtc_node(&door.url(), Vec::new()).await;
    let (la, lb) = linked(&a, &b).await;
    eprintln!("a: {la:?}\nb: {lb:?}");
    assert_eq!(la[0].peer, b.id());
    assert_eq!(lb[0].peer, a.id());
    // Only host candidates exist (no ICE server); a remote first seen as peer-reflexive is
    // reported with the type it was signaled with, once that candidate has come.
    let host_to_host = CandidatePair {
        local: HOST_UDP,
        remote: HOST_UDP,
    };
    assert_eq!(la[0].candidate_pair, Some(host_to_host));
    assert_eq!(lb[0].candidate_pair, Some(host_to_host));
    assert_eq!(
        host_to_host.to_string(),
        "host/udp host/udp",
        "what `/links` prints"
    );
    a.leave().await.unwrap();
    b.leave().await.unwrap();
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_links_with_the_door_stun_report_udp_pairs() {
    let door = Door::start(true).await;
    let a = support::webrtc_node(&door.url(), Vec::new()).await;
    let b = support::webrtc_node(&door.url(), Vec::new()).await;
    let (la, lb) = linked(&a, &b).await;
    eprintln!("with STUN: a: {la:?}\nb: {lb:?}");
    // On loopback a srflx candidate has the host's own address, so either may be selected.
    let pairs = [la[0].candidate_pair, lb[0].candidate_pair];
    assert!(pairs.iter().all(Option::is_some), "{pairs:?}");
    for pair in pairs.into_iter().flatten() {
        for end in [pair.local, pair.remote] {
            assert_eq!(end.protocol, CandidateProtocol::Udp, "{pair}");
            assert!(
                matches!(end.kind, CandidateKind::Host | CandidateKind::Srflx),
                "{pair}"
            );
        }
    }
    a.leave().await.unwrap();
    b.leave().await.unwrap();
    door.stop().await;
}

#[tokio::test]
async fn memory_links_have_no_candidate_pair() {
    let door = Door::start(false).await;
    let net = MemoryNetwork::new();
    let join = |key: Keypair| {
        let net = net.clone();
        let id = key.node_id();
        Node::join_with(
            Config::new(door.url().parse().expect("a ws:// URL")),
            key,
            move |events| MemoryTransport::new(net, id, events),
        )
    };
    let a = join(Keypair::generate()).await.unwrap();
    let b = join(Keypair::generate()).await.unwrap();
    let links = wait_until("a has a link", || async {
        let links = a.links().await.unwrap();
        (!links.is_empty()).then_some(links)
    })
    .await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].peer, b.id());
    assert_eq!(links[0].candidate_pair, None);
    a.leave().await.unwrap();
    b.leave().await.unwrap();
    door.stop().await;
}
