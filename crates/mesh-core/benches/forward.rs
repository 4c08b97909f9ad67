//! One forwarding step of the pure core: a `Route` frame arrives on a link and leaves as a
//! `Transfer` (the addressee is a neighbour) or as a `Route` (one more relay), including
//! the decode, the next-hop choice (greedy by XOR over the neighbours and the neighbours
//! they announced) and the encode. Side by side: the codec's own
//! decode + encode of the same frames, the floor of any forwarding step.
//!
//! `cargo bench -p mesh-core --bench forward`

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mesh_core::budget::Rate;
use mesh_core::{Config, Input, Node, Output};
use mesh_proto::identity::Keypair;
use mesh_proto::signal::{Payload, SessionId, Signal, SignalKind};
use mesh_proto::{Frame, NodeId, NodeRecord};

/// A node with links to `peers`, opened by feeding it the signaling a real peer would send.
fn node_with_links(peers: &[Keypair]) -> (Node, Vec<SessionId>) {
    let now = Instant::now();
    let key = Keypair::from_seed([1; 32]);
    let me = key.node_id();
    let bootstrap: mesh_proto::ServerUrl = "ws://bootstrap.bench/ws".parse().unwrap();
    let mut node = Node::new(
        Config::default()
            .with_max_degree(64)
            .with_entry_slots(0)
            // Every iteration arrives at the same instant: no budget would hold.
            .with_route_budget(Rate::new(1e12, 1e12))
            .with_bootstrap(Some(bootstrap.clone())),
        key,
        now,
        1,
    )
    .unwrap();
    node.handle_input(
        now,
        Input::Registered {
            server: bootstrap.clone(),
            peers: vec![],
        },
    );
    let mut sessions = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        // Each peer offers through the server; the node answers; the link comes up.
        let session = SessionId(1000 + i as u64);
        let room = mesh_proto::RoomName::default();
        let offer = Signal::sign(peer, &room, session, me, SignalKind::Offer("v=0".into()));
        let payload = mesh_proto::encode_payload(&Payload::Signal(offer)).unwrap();
        node.handle_input(
            now,
            Input::ServerTransfer {
                server: bootstrap.clone(),
                from: peer.node_id(),
                payload,
            },
        );
        node.handle_input(now, Input::LinkUp { session });
        while node.poll_output().is_some() {}
        sessions.push(session);
    }
    assert_eq!(node.neighbours().len(), peers.len());
    (node, sessions)
}

fn bench(c: &mut Criterion) {
    let peers: Vec<Keypair> = (2..10u8).map(|i| Keypair::from_seed([i; 32])).collect();
    let (mut node, sessions) = node_with_links(&peers);
    let own = &peers;
    // Each neighbour announces 10 neighbours of its own: the two-hop view greedy routing
    // searches (80 nodes) is that of a node in a mesh of degree 8 to 12.
    let now = Instant::now();
    for (i, session) in sessions.iter().enumerate() {
        // The neighbour's own record first, then its neighbours'.
        let room = mesh_proto::RoomName::default();
        let peers: Vec<NodeRecord> = std::iter::once(NodeRecord::sign(&own[i], &room))
            .chain((0..10u8).map(|j| {
                NodeRecord::sign(&Keypair::from_seed([100 + 10 * i as u8 + j; 32]), &room)
            }))
            .collect();
        let bytes = mesh_proto::encode(&Frame::Neighbours { peers }).unwrap();
        node.handle_input(
            now,
            Input::LinkData {
                session: *session,
                bytes: bytes.into(),
            },
        );
        while node.poll_output().is_some() {}
    }
    // The origin of the routed frames: a relay checks that the payload's seal derives it.
    let origin = Keypair::from_seed([99; 32]);
    let far = origin.node_id();
    let mut group = c.benchmark_group("forward");
    for size in [100usize, 1024] {
        // What relays see: a payload sealed by its origin (the rest of its bytes are opaque
        // to them).
        let payload = mesh_proto::encode_payload(&Payload::Sealed(mesh_proto::Sealed {
            key: origin.public(),
            epoch: 1,
            seq: 1,
            ciphertext: vec![7; size + 16],
        }))
        .unwrap();
        // To a neighbour: delivered as Transfer.
        let to_neighbour = mesh_proto::encode(&Frame::Route {
            to: peers[3].node_id(),
            from: far,
            ttl: 8,
            steering: mesh_proto::Steering::Learned,
            payload: payload.clone(),
        })
        .unwrap();
        // To a node no neighbour announced: relayed as Route, greedy over the two-hop view.
        let beyond: NodeId = Keypair::from_seed([250; 32]).node_id();
        let relayed = mesh_proto::encode(&Frame::Route {
            to: beyond,
            from: far,
            ttl: 8,
            steering: mesh_proto::Steering::Learned,
            payload,
        })
        .unwrap();
        group.throughput(Throughput::Bytes(to_neighbour.len() as u64));
        for (name, frame) in [("to_neighbour", &to_neighbour), ("relay_on", &relayed)] {
            group.bench_function(format!("{name}/{size}"), |b| {
                b.iter(|| {
                    let bytes = frame.clone().into();
                    node.handle_input(
                        now,
                        Input::LinkData {
                            session: sessions[0],
                            bytes,
                        },
                    );
                    let mut n = 0;
                    while let Some(out) = node.poll_output() {
                        if matches!(out, Output::SendLink { .. }) {
                            n += 1;
                        }
                    }
                    assert_eq!(n, 1);
                })
            });
        }
        // The floor: decode the frame and encode its successor, nothing else.
        group.bench_function(format!("codec_only/{size}"), |b| {
            b.iter(|| {
                let Ok(Frame::Route { from, payload, .. }) = mesh_proto::decode(&to_neighbour)
                else {
                    unreachable!()
                };
                mesh_proto::encode(&Frame::Transfer { from, payload }).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
