//! Doors: a node that runs one announces it on every new link, its neighbours keep it and
//! pass it on to theirs (one link further, no more), each list the most recent first and
//! bounded, for a rejoin once every link is gone. A `Doors` frame that does not decode costs
//! its sender the link.

mod support;

use mesh_proto::{Door, Frame, NodeId, ServerUrl};
use support::{grown_mesh, test_config};

fn door(i: usize) -> ServerUrl {
    mesh_emu::door_url(i as u32)
}

#[test]
fn a_node_with_a_door_announces_it_to_every_new_neighbour() {
    let n = 6;
    // Only node 0 runs a door.
    let mut net = support::Net::new(n, test_config());
    let node = mesh_core::Node::new(
        test_config().with_door(Some(door(0))),
        mesh_proto::identity::Keypair::from_seed([9; 32]),
        net.now,
        99,
    )
    .unwrap();
    net.replace(0, node);
    let door_id = net.nodes[0].id();
    for i in 0..n {
        net.join(i);
        assert!(
            net.run_until(std::time::Duration::from_secs(30), |net| i == 0
                || net.degree(i) >= 1),
            "node {i} never linked"
        );
    }
    let linked: Vec<usize> = net.nodes[0]
        .neighbours()
        .iter()
        .map(|p| net.index[p])
        .collect();
    assert!(!linked.is_empty());
    let mut passed_on = 0;
    for i in 1..n {
        let doors: Vec<(NodeId, ServerUrl)> =
            net.nodes[i].doors().map(|(p, u)| (p, u.clone())).collect();
        if linked.contains(&i) {
            assert_eq!(doors, [(door_id, door(0))], "node {i}");
        } else {
            // Heard of through a neighbour of node 0, or not at all: no other node runs
            // a door, and nothing else is made up.
            assert!(
                doors.is_empty() || doors == [(door_id, door(0))],
                "node {i}: {doors:?}"
            );
            passed_on += doors.len();
        }
    }
    assert!(
        passed_on > 0 || linked.len() == n - 1,
        "the door was passed on to a node not linked to its node"
    );
    // A door is never announced back to its own node.
    assert!(net.nodes[0].doors().next().is_none());
}

fn entry(node: NodeId, url: ServerUrl) -> Door {
    Door { node, url }
}

fn kept(net: &support::Net, i: usize) -> Vec<(NodeId, ServerUrl)> {
    net.nodes[i].doors().map(|(p, u)| (p, u.clone())).collect()
}

fn announce(net: &mut support::Net, to: usize, from: usize, doors: Vec<Door>) {
    net.inject(
        to,
        from,
        mesh_proto::encode(&Frame::Doors { doors }).unwrap(),
    );
}

#[test]
fn doors_are_kept_most_recent_first_and_bounded() {
    let mut net = grown_mesh(6, test_config().with_door_contacts(2));
    let victim = 0;
    let neighbours: Vec<usize> = net.nodes[victim]
        .neighbours()
        .iter()
        .map(|p| net.index[p])
        .collect();
    assert!(neighbours.len() >= 3, "{neighbours:?}");
    let (a, b, c) = (neighbours[0], neighbours[1], neighbours[2]);
    let (ida, idb, idc, me) = (net.id(a), net.id(b), net.id(c), net.id(victim));
    let far = |k: u8| NodeId::from_bytes([k; 16]);
    announce(&mut net, victim, a, vec![entry(ida, door(a))]);
    // b's own door, two it heard of, and one naming us (never kept).
    announce(
        &mut net,
        victim,
        b,
        vec![
            entry(idb, door(b)),
            entry(far(1), door(101)),
            entry(me, door(99)),
            entry(far(2), door(102)),
        ],
    );
    assert_eq!(
        kept(&net, victim),
        [
            (idb, door(b)),
            (ida, door(a)),
            (far(1), door(101)),
            (far(2), door(102)),
        ]
    );
    // A neighbour that announces again moves to the front with its new URL, and is kept
    // once; an own door beyond the bound pushes out the least recent one.
    announce(&mut net, victim, a, vec![entry(ida, door(40))]);
    announce(
        &mut net,
        victim,
        c,
        vec![entry(idc, door(c)), entry(ida, door(41))],
    );
    assert_eq!(
        kept(&net, victim),
        [
            (idc, door(c)),
            (ida, door(40)),
            (far(1), door(101)),
            (far(2), door(102)),
        ],
        "a's own announcement outranks what c says of it"
    );
    // What b passes on goes first among the doors heard of, and the least recent one
    // (far(2)) goes.
    announce(&mut net, victim, b, vec![entry(far(3), door(103))]);
    assert_eq!(
        kept(&net, victim)[2..],
        [(far(3), door(103)), (far(1), door(101))]
    );
    assert_eq!(net.nodes[victim].stats().malformed_frames, 0);
    // A door whose URL is not ws:// or wss:// does not decode: the sender loses its link,
    // and the doors already kept stay.
    let before = kept(&net, victim);
    let mut bad = mesh_proto::encode(&Frame::Doors {
        doors: vec![entry(idb, door(1))],
    })
    .unwrap();
    let at = bad.iter().position(|&byte| byte == b'w').unwrap();
    bad[at] = b'h';
    net.inject(victim, b, bad);
    assert!(!net.nodes[victim].neighbours().contains(&idb));
    assert_eq!(net.nodes[victim].stats().malformed_frames, 1);
    assert_eq!(kept(&net, victim), before);
}

#[test]
fn entries_beyond_the_eighth_are_ignored() {
    let mut net = grown_mesh(4, test_config().with_door_contacts(16));
    let a = net.index[&net.nodes[0].neighbours()[0]];
    let heard: Vec<Door> = (1..=10u8)
        .map(|k| entry(NodeId::from_bytes([k; 16]), door(100 + usize::from(k))))
        .collect();
    announce(&mut net, 0, a, heard.clone());
    let kept: Vec<NodeId> = kept(&net, 0).into_iter().map(|(p, _)| p).collect();
    let first_eight: Vec<NodeId> = heard[..8].iter().map(|d| d.node).collect();
    assert_eq!(kept, first_eight);
}

#[test]
fn a_node_passes_on_its_neighbours_doors_but_not_those_it_heard_of() {
    // Nodes 0 and 1 run doors; the others do not.
    let n = 5;
    let mut net = support::Net::new(n, test_config());
    for i in 0..2 {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let node = mesh_core::Node::new(
            test_config().with_door(Some(door(i))),
            mesh_proto::identity::Keypair::from_seed(seed),
            net.now,
            i as u64,
        )
        .unwrap();
        net.replace(i, node);
    }
    // A chain: 0 - 2 - 3 - 4, and 1 - 2, each told only of its predecessor.
    net.join_knowing(0, &[]);
    for (i, prev) in [(2, 0), (1, 2), (3, 2), (4, 3)] {
        net.join_knowing(i, &[prev]);
        assert!(net.run_until(std::time::Duration::from_secs(30), |net| net.degree(i) >= 1));
    }
    let ids = |net: &support::Net, i: usize| -> Vec<NodeId> {
        net.nodes[i].doors().map(|(p, _)| p).collect()
    };
    // Node 3 linked to 2 after 2 had both doors as its neighbours' own: heard of both.
    let at3 = ids(&net, 3);
    assert!(
        at3.contains(&net.id(0)) && at3.contains(&net.id(1)),
        "{at3:?}"
    );
    // Node 4 linked to 3, which only heard of them (unless the mesh linked 4 elsewhere
    // meanwhile, to a node that runs a door or has one as a neighbour).
    for (node, _) in net.nodes[4].doors() {
        let j = net.index[&node];
        let near = net.nodes[4]
            .neighbours()
            .iter()
            .any(|p| *p == node || net.nodes[net.index[p]].neighbours().contains(&node));
        assert!(
            near,
            "node 4 knows the door of {j} from more than two links away"
        );
    }
}

#[test]
fn a_linked_node_needs_no_server_and_one_with_no_link_does() {
    let mut net = grown_mesh(6, test_config());
    for i in 0..6 {
        assert!(!net.nodes[i].wants_server(), "node {i} is linked");
    }
    // Everyone else leaves: with no link node 0 needs a server again. (Only its
    // neighbours leaving is not enough: it links to the others as they go.)
    net.stop_server();
    for j in 1..6 {
        net.leave(j);
    }
    assert_eq!(net.degree(0), 0);
    assert!(net.nodes[0].wants_server());
}
