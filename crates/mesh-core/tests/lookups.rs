//! Lookups. One-link: a node answers `FindNodes` with the peers it knows closest to the
//! target (never the asker, at most 16), and takes no `Nodes` frame it did not ask for (it
//! asks none: it looks up through the mesh). Through the mesh: a newcomer's `Lookup` finds the nodes closest to it, with
//! the server gone. Deterministic, in virtual time.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use mesh_proto::frame::MAX_NODES;
use mesh_proto::identity::Keypair;
use mesh_proto::{Frame, NodeId, NodeRecord};
use support::{Net, default_degrees_config, grown_mesh, test_config};

/// The `Nodes` frames a node sent: (target, peers).
type Answers = Rc<RefCell<Vec<(NodeId, Vec<NodeId>)>>>;

/// Records every `Nodes` frame node `a` sends.
fn tap_nodes(net: &mut Net, a: usize) -> Answers {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    net.tamper = Some(Box::new(move |sender, bytes| {
        if sender != a {
            return;
        }
        if let Ok(Frame::Nodes { target, peers }) = mesh_proto::decode(bytes) {
            let ids = peers.iter().map(|r| r.id()).collect();
            sink.borrow_mut().push((target, ids));
        }
    }));
    seen
}

fn ask(net: &mut Net, a: usize, b: usize, target: NodeId) {
    let bytes = mesh_proto::encode(&Frame::FindNodes { target }).unwrap();
    net.inject(a, b, bytes);
}

#[test]
fn find_nodes_is_answered_with_the_closest_known_peers_never_the_asker() {
    let n = 12;
    let mut net = grown_mesh(n, test_config());
    let a = 0;
    let b = net.index[&net.nodes[a].neighbours()[0]];
    let seen = tap_nodes(&mut net, a);
    let target = net.id(b); // the asker's own id: the asker must still be left out
    ask(&mut net, a, b, target);

    let answers = seen.borrow();
    let (t, peers) = answers.last().expect("a Nodes answer");
    assert_eq!(*t, target);
    assert!(!peers.is_empty() && peers.len() <= MAX_NODES);
    assert!(!peers.contains(&net.id(b)), "never the asker");
    assert!(!peers.contains(&net.id(a)), "never itself");
    let distances: Vec<_> = peers.iter().map(|p| p.distance(&target)).collect();
    assert!(distances.windows(2).all(|w| w[0] < w[1]), "closest first");
    // Every node of this small mesh is known to `a`; the closest one to the target (the
    // asker aside) leads the answer.
    let best = (0..n)
        .filter(|j| *j != a && *j != b)
        .map(|j| net.id(j))
        .min_by_key(|p| p.distance(&target))
        .unwrap();
    assert_eq!(peers[0], best);
    assert!(
        net.nodes[a].neighbours().contains(&net.id(b)),
        "a valid frame"
    );
}

#[test]
fn a_nodes_frame_nobody_asked_for_teaches_nothing() {
    let n = 8;
    let mut net = grown_mesh(n, test_config());
    let a = 0;
    let b = net.index[&net.nodes[a].neighbours()[0]];
    // Records that verify (real keys, the right room), only nobody asked for them.
    let room = net.nodes[a].config().room.clone();
    let records: Vec<NodeRecord> = (0..MAX_NODES as u8)
        .map(|i| NodeRecord::sign(&Keypair::from_seed([200u8.wrapping_add(i); 32]), &room))
        .collect();
    let fresh: Vec<NodeId> = records.iter().map(|r| r.id()).collect();
    let frame = Frame::Nodes {
        target: fresh[0],
        peers: records,
    };
    let bad_before = net.nodes[a].stats().bad_payloads;
    net.inject(a, b, mesh_proto::encode(&frame).unwrap());
    let seen = tap_nodes(&mut net, a);

    // Asked for each made-up id, `a` names none of them: it learned nothing.
    for made_up in &fresh {
        ask(&mut net, a, b, *made_up);
        let answers = seen.borrow();
        let (_, peers) = answers.last().expect("an answer to FindNodes");
        assert!(!peers.contains(made_up), "{made_up} was taken unasked");
    }
    assert_eq!(net.nodes[a].stats().bad_payloads, bad_before + 1);
    // A valid frame, only unasked: the link stays.
    assert_eq!(net.nodes[a].stats().malformed_frames, 0);
    assert!(net.nodes[a].neighbours().contains(&net.id(b)));
}

#[test]
fn nodes_with_lookups_find_their_way_in_a_larger_mesh() {
    let n = 40;
    let config = default_degrees_config();
    let mut net = grown_mesh(n, config);
    net.run_for(Duration::from_secs(10));
    let lookups: u64 = (0..n).map(|i| net.nodes[i].stats().lookups_sent).sum();
    assert!(lookups > 0, "nodes looked up peers");
    // Any node reaches any other.
    for a in 0..n {
        for b in (0..n).filter(|b| *b != a) {
            let (to, now) = (net.id(b), net.now);
            net.nodes[a].send(now, to, vec![a as u8, b as u8]).unwrap();
            net.drain(a);
        }
    }
    net.settle();
    for b in 0..n {
        assert_eq!(net.messages(b).len(), n - 1, "node {b}");
    }
}

#[test]
fn a_newcomer_finds_its_closest_peers_through_the_mesh_without_the_server() {
    let n = 30;
    // At degree 4, 30 nodes have more distance buckets to cover than links to cover them.
    let config = default_degrees_config();
    let mut net = Net::new(n + 1, config);
    for i in 0..n {
        net.join(i);
        assert!(net.run_until(Duration::from_secs(30), |net| i == 0 || net.degree(i) >= 1));
    }
    assert!(net.run_until(Duration::from_secs(60), |net| net.greedy_complete()));
    // The newcomer gets its one door link, then the server goes away: everything else it
    // learns comes through the mesh.
    let new = n;
    net.join(new);
    assert!(net.run_until(Duration::from_secs(30), |net| net.degree(new) >= 1));
    net.stop_server();
    let me = net.id(new);
    let mut by_distance: Vec<usize> = (0..n).collect();
    by_distance.sort_by_key(|j| net.id(*j).distance(&me));
    let closest: Vec<_> = by_distance[..3].iter().map(|j| net.id(*j)).collect();
    // The shape of the core's neighbour selection: the closest peer linked, and the
    // distance bucket of each of the 3 closest held by a link of the newcomer. (Not the 3
    // closest themselves: at its target degree a node rewires only for a peer in a deeper
    // bucket, not for one a little closer in a bucket it already has, and the 3rd closest
    // may be full.)
    let bucket = |p: &NodeId| me.distance(p).leading_zeros();
    let found = net.run_until(Duration::from_secs(20), |net| {
        let links = net.nodes[new].neighbours();
        links.contains(&closest[0])
            && closest
                .iter()
                .all(|c| links.iter().any(|l| bucket(l) == bucket(c)))
    });
    let stats = net.nodes[new].stats();
    assert!(
        found,
        "links {:?}, stats {stats:?}",
        net.nodes[new].neighbours()
    );
    assert!(
        stats.lookups_sent > 0 && stats.lookup_answers > 0,
        "{stats:?}"
    );
    assert_eq!(stats.sessions_initiated_via_server, 1, "only the door");
    // And the mesh is whole for greedy routing again.
    assert!(net.run_until(Duration::from_secs(30), |net| net.greedy_complete()));
}
