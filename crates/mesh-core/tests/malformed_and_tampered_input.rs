//! Bad input: a malformed frame costs the sender its link and nothing else; a tampered
//! signal is refused and the honest path still works; replays are refused.

mod support;

use std::time::Duration;

use bytes::Bytes;
use mesh_core::Event;
use mesh_proto::Frame;
use mesh_proto::signal::Payload;
use support::{Net, grown_mesh, test_config};

#[test]
fn a_malformed_frame_drops_that_link_only() {
    let mut net = grown_mesh(6, test_config());
    let victim = 0;
    let neighbours = net.nodes[victim].neighbours();
    let offender = net.index[&neighbours[0]];
    let others: Vec<_> = neighbours[1..].to_vec();
    net.inject(victim, offender, vec![1, 0xFF, 0xFF, 0xFF]);
    assert!(!net.nodes[victim].neighbours().contains(&net.id(offender)));
    for other in &others {
        assert!(
            net.nodes[victim].neighbours().contains(other),
            "other links stay"
        );
    }
    assert_eq!(net.nodes[victim].stats().malformed_frames, 1);
    assert!(net.events.iter().any(|(k, e)| *k == victim
        && matches!(e, Event::LinkDown { reason, .. } if matches!(reason, mesh_core::LinkDownReason::Malformed(_)))));
    // A server frame on a link is a violation too.
    let neighbours = net.nodes[victim].neighbours();
    if let Some(next) = neighbours.first() {
        let j = net.index[next];
        net.inject(
            victim,
            j,
            mesh_proto::encode(&Frame::GetPeers { max: 1 }).unwrap(),
        );
        assert!(!net.nodes[victim].neighbours().contains(next));
    }
    // The victim still works.
    let (to, now) = (net.id(5), net.now);
    if net.id(victim) != to {
        net.run_for(Duration::from_secs(10));
        net.nodes[victim].send(now, to, b"ok".to_vec()).unwrap();
        net.drain(victim);
        net.settle();
        assert_eq!(
            net.messages(5).last().map(|m| m.1.clone()),
            Some(b"ok".to_vec())
        );
    }
}

/// Alters every sealed payload relayed by a node other than `honest` (relays
/// cannot read an offer through the mesh any more: it is sealed; they can only alter it).
fn tamper_sealed(honest: [usize; 2]) -> support::Tamper {
    Box::new(move |sender, bytes: &mut Bytes| {
        if honest.contains(&sender) {
            return;
        }
        let Ok(frame) = mesh_proto::decode(bytes) else {
            return;
        };
        let frame = match frame {
            Frame::Route {
                to,
                from,
                ttl,
                steering,
                payload,
            } => {
                let Some(payload) = flip(&payload) else {
                    return;
                };
                Frame::Route {
                    to,
                    from,
                    ttl,
                    steering,
                    payload,
                }
            }
            Frame::Transfer { from, payload } => {
                let Some(payload) = flip(&payload) else {
                    return;
                };
                Frame::Transfer { from, payload }
            }
            _ => return,
        };
        *bytes = mesh_proto::encode(&frame).unwrap().into();
    })
}

/// The payload with its sealed ciphertext altered, if it is sealed.
fn flip(payload: &[u8]) -> Option<Vec<u8>> {
    let Ok(Payload::Sealed(mut sealed)) = mesh_proto::decode_payload(payload) else {
        return None;
    };
    // Added, not flipped: two relays that each flip a bit would restore it.
    sealed.ciphertext[0] = sealed.ciphertext[0].wrapping_add(1);
    mesh_proto::encode_payload(&Payload::Sealed(sealed)).ok()
}

#[test]
fn a_tampered_sealed_offer_is_refused_and_the_honest_path_still_works() {
    let config = test_config()
        .with_target_degree(2)
        .with_min_degree(1)
        .with_max_degree(6); // room for one more mesh link at every node
    let n = 8;
    let mut net = grown_mesh(n, config);
    // Two nodes that are not neighbours, so their signaling needs relays, and both with
    // room for a link through the mesh (rewiring may have filled some nodes up to it).
    let room = |i: usize| net.degree(i) + 2 < 6;
    let (x, t) = (0..n)
        .flat_map(|x| (0..n).map(move |t| (x, t)))
        .find(|(x, t)| {
            x != t && room(*x) && room(*t) && !net.nodes[*x].neighbours().contains(&net.id(*t))
        })
        .expect("a sparse mesh has non-adjacent nodes with room");
    let bad_before = net.nodes[t].stats().seal_failures;
    let answered_before = net.nodes[t].stats().sessions_answered_via_mesh;

    net.tamper = Some(tamper_sealed([x, t]));
    let (tid, now) = (net.id(t), net.now);
    net.nodes[x].connect(now, tid).unwrap();
    net.drain(x);
    net.run_for(Duration::from_secs(6)); // past the session timeout
    assert!(
        net.nodes[t].stats().seal_failures > bad_before,
        "the altered offer did not open"
    );
    assert_eq!(
        net.nodes[t].stats().sessions_answered_via_mesh,
        answered_before,
        "and was not answered"
    );
    assert!(!net.nodes[x].neighbours().contains(&tid));

    // Honest relays: the same connection now succeeds.
    net.tamper = None;
    let now = net.now;
    net.nodes[x].connect(now, tid).unwrap();
    net.drain(x);
    let linked = net.run_until(Duration::from_secs(10), |net| {
        net.nodes[x].neighbours().contains(&tid)
    });
    assert!(linked, "{:?}", net.nodes[x].stats());
}

#[test]
fn a_replayed_sealed_payload_is_refused() {
    use std::cell::RefCell;
    use std::rc::Rc;

    let mut net = grown_mesh(6, test_config());
    // Capture every sealed payload a neighbour hands over (offers, answers, candidates).
    let captured: Rc<RefCell<Vec<Bytes>>> = Rc::default();
    let sink = captured.clone();
    net.tamper = Some(Box::new(move |_, bytes: &mut Bytes| {
        let payload = match mesh_proto::decode(bytes) {
            Ok(Frame::Transfer { payload, .. }) => payload,
            _ => return,
        };
        if let Ok(Payload::Sealed(_)) = mesh_proto::decode_payload(&payload) {
            sink.borrow_mut().push(bytes.clone());
        }
    }));
    // Force new sessions through the mesh: everyone drops a neighbour.
    for i in 0..6 {
        if let Some(p) = net.nodes[i].neighbours().first().copied() {
            let now = net.now;
            net.nodes[i].disconnect(now, p);
            net.drain(i);
        }
    }
    net.run_for(Duration::from_secs(10));
    net.tamper = None;
    let bytes = captured
        .borrow()
        .first()
        .cloned()
        .expect("a sealed payload was handed over");
    // Deliver it again to its recipient, over any of the recipient's links.
    let Ok(Frame::Transfer { payload, .. }) = mesh_proto::decode(&bytes) else {
        unreachable!()
    };
    let Ok(Payload::Sealed(sealed)) = mesh_proto::decode_payload(&payload) else {
        unreachable!()
    };
    let origin = net.index[&sealed.origin()];
    // Its recipient refuses it as a replay, and takes nothing from it; any other node
    // cannot open it at all.
    let mut refused_by = None;
    for r in (0..6).filter(|r| *r != origin) {
        let Some(via) = net.nodes[r].neighbours().first().map(|p| net.index[p]) else {
            continue;
        };
        let before = net.nodes[r].stats().clone();
        net.inject(r, via, bytes.to_vec());
        let after = net.nodes[r].stats();
        if after.replays_refused == before.replays_refused + 1 {
            assert_eq!(
                after.signals_received_via_mesh,
                before.signals_received_via_mesh
            );
            refused_by = Some(r);
            break;
        }
        assert_eq!(after.seal_failures, before.seal_failures + 1, "node {r}");
    }
    assert!(refused_by.is_some(), "its recipient refused it as a replay");
}

#[test]
fn glare_resolves_to_one_link() {
    let mut net = Net::new(2, test_config());
    // Both register at once, each told about the other: both open a entry session.
    net.join_together(&[0, 1]);
    assert!(
        net.run_until(Duration::from_secs(10), |net| net.degree(0) == 1
            && net.degree(1) == 1)
    );
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.nodes[0].stats().links_up, 1);
    assert_eq!(net.nodes[1].stats().links_up, 1);
    let initiated: u64 = (0..2)
        .map(|i| net.nodes[i].stats().sessions_initiated_via_server)
        .sum();
    assert_eq!(initiated, 2, "both offered");
}

#[test]
fn a_full_node_rejects_and_the_newcomer_is_told() {
    let config = test_config()
        .with_target_degree(1)
        .with_min_degree(1)
        .with_max_degree(1)
        .with_entry_slots(0);
    let mut net = Net::new(3, config);
    net.join(0);
    net.join(1);
    assert!(
        net.run_until(Duration::from_secs(10), |net| net.degree(0) == 1
            && net.degree(1) == 1)
    );
    net.join(2);
    assert!(net.run_until(
        Duration::from_secs(10),
        |net| net.nodes[2].stats().sessions_rejected >= 1
    ));
    assert_eq!(net.degree(0), 1);
    assert_eq!(net.degree(1), 1);
    assert_eq!(net.degree(2), 0);
}

#[test]
fn an_answerer_whose_transport_fails_tells_the_offerer_at_once() {
    let mut net = Net::new(2, test_config());
    net.failing_answerers = vec![0];
    net.join(0);
    net.join(1); // its entry session goes to node 0, whose transport fails
    assert!(net.run_until(Duration::from_millis(100), |net| {
        net.nodes[1].stats().sessions_rejected >= 1
    }));
    assert_eq!(net.nodes[0].stats().sessions_failed, 1);
    assert_eq!(net.degree(1), 0);
}

/// A flood for one node ([`Payload::Flooded`]) is taken only by the node it names, only
/// if it opens as its flood's origin's, and only for what a flood may carry (a reliable
/// message, an acknowledgement, a key answer): a plain application payload, or a seal made
/// by another key than the flood's, reaches no application; the right one arrives once.
#[test]
fn a_flood_for_one_node_delivers_only_what_its_origin_sealed_as_reliable() {
    use mesh_proto::{PairKey, RoomName, Sealed, authored};

    let mut net = support::shaped_mesh(6, test_config());
    let x = 0;
    let b = (1..6)
        .find(|j| net.link_session(x, *j).is_some())
        .expect("a neighbour of x");
    let third = (1..6).find(|j| *j != b).expect("a third node");
    let (kx, kb, k3) = (
        support::key(x, 0),
        support::key(b, 0),
        support::key(third, 0),
    );
    let (x_id, b_id) = (kx.node_id(), kb.node_id());
    let room = RoomName::default();
    // Sealed by `by` for b, with a late epoch (b refuses earlier ones once it saw it).
    let seal = |by: &mesh_proto::identity::Keypair, seq: u64, inner: Payload| {
        let key = PairKey::derive(by, &kb.public(), &by.node_id(), &b_id, &room).unwrap();
        let plain = mesh_proto::encode_payload(&inner).unwrap();
        let epoch = u64::MAX / 2;
        Sealed {
            key: by.public(),
            epoch,
            seq,
            ciphertext: key.seal(epoch, seq, &plain),
        }
    };
    let flood = |id: u64, sealed: Sealed| {
        let payload = mesh_proto::encode_payload(&Payload::Flooded { to: b_id, sealed }).unwrap();
        mesh_proto::encode(&authored::flood(&kx, &room, id, 4, payload)).unwrap()
    };
    let before = net.nodes[b].stats().clone();
    // A plain App payload: a flood carries none for one node.
    net.inject(
        b,
        x,
        flood(1, seal(&kx, 1, Payload::App(b"plain".to_vec()))),
    );
    // Sealed by another node than the flood's origin.
    net.inject(
        b,
        x,
        flood(2, seal(&k3, 1, Payload::Reliable(b"forged".to_vec()))),
    );
    let after = net.nodes[b].stats().clone();
    assert_eq!(after.bad_payloads, before.bad_payloads + 1, "{after:?}");
    assert_eq!(after.forged_origins, before.forged_origins + 1, "{after:?}");
    // The real thing, twice (the second copy is a replay: acknowledged, not delivered).
    net.inject(
        b,
        x,
        flood(3, seal(&kx, 2, Payload::Reliable(b"ok".to_vec()))),
    );
    net.inject(
        b,
        x,
        flood(4, seal(&kx, 2, Payload::Reliable(b"ok".to_vec()))),
    );
    net.settle();
    let got: Vec<_> = net
        .messages(b)
        .into_iter()
        .filter(|(f, _)| *f == x_id)
        .collect();
    assert_eq!(got, vec![(x_id, b"ok".to_vec())]);
    assert!(net.nodes[b].stats().acks_sent >= before.acks_sent + 2);
    for i in 0..6 {
        assert!(
            net.broadcasts(i).iter().all(|(f, _)| *f != x_id),
            "node {i}"
        );
        if i != b {
            assert!(net.messages(i).iter().all(|(f, _)| *f != x_id), "node {i}");
        }
    }
}

/// A neighbour announces validly signed records of keys no node runs (made-up peers), then
/// a record signed for another room: that one costs it its link, and what it announced
/// before is void too. The peers only its word made known are forgotten; one another
/// neighbour announced as well stays known.
#[test]
fn a_neighbour_caught_with_a_forged_record_loses_what_it_announced_before() {
    use mesh_proto::NodeRecord;
    use mesh_proto::identity::Keypair;

    let mut net = grown_mesh(6, test_config());
    let victim = 0;
    let neighbours = net.nodes[victim].neighbours();
    assert!(neighbours.len() >= 2, "{neighbours:?}");
    let (liar, other) = (net.index[&neighbours[0]], net.index[&neighbours[1]]);
    let room = net.nodes[victim].config().room.clone();
    let made_up: Vec<Keypair> = (0..4).map(|k| Keypair::from_seed([200 + k; 32])).collect();
    let before = net.nodes[victim].contact_count();

    let mut peers = vec![net.nodes[liar].record()];
    peers.extend(made_up.iter().map(|k| NodeRecord::sign(k, &room)));
    net.inject(
        victim,
        liar,
        mesh_proto::encode(&Frame::Neighbours { peers }).unwrap(),
    );
    assert_eq!(
        net.nodes[victim].contact_count(),
        before + 4,
        "taken at its word"
    );
    // Another neighbour announces one of them too.
    let peers = vec![
        net.nodes[other].record(),
        NodeRecord::sign(&made_up[0], &room),
    ];
    net.inject(
        victim,
        other,
        mesh_proto::encode(&Frame::Neighbours { peers }).unwrap(),
    );

    let elsewhere = mesh_proto::RoomName::try_from("elsewhere".to_owned()).unwrap();
    let peers = vec![
        net.nodes[liar].record(),
        NodeRecord::sign(&Keypair::from_seed([250; 32]), &elsewhere),
    ];
    net.inject(
        victim,
        liar,
        mesh_proto::encode(&Frame::Neighbours { peers }).unwrap(),
    );
    assert_eq!(net.nodes[victim].stats().forged_records, 1);
    assert!(!net.nodes[victim].neighbours().contains(&net.id(liar)));
    assert!(net.nodes[victim].neighbours().contains(&net.id(other)));
    assert_eq!(
        net.nodes[victim].contact_count(),
        before + 1,
        "only the peer another neighbour vouched for is still known"
    );
}
