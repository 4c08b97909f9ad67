//! The stranger budget (docs/protocol.md §10.4 step 2, §10.11): floods whose origin a node has neither a
//! link to nor a record of are taken, per link, only up to an even share of the node's
//! budget, for broadcasts and for the rest apart. Past it they are dropped unverified and
//! not remembered (a copy through another link may still go); floods of origins the node
//! knows are not counted against it.

mod support;

use mesh_core::budget::Rate;
use mesh_proto::signal::Payload;
use mesh_proto::{Frame, NodeId, authored};
use support::{Net, grown_mesh, key, test_config};

/// The node budget's burst: its links share it evenly. Refilled so slowly (0.001/s) that
/// the few seconds the test runs give no token back.
const BURST: f64 = 120.0;

fn encode(frame: &Frame) -> Vec<u8> {
    mesh_proto::encode(frame).unwrap()
}

fn app(text: &str) -> Vec<u8> {
    mesh_proto::encode_payload(&Payload::App(text.as_bytes().to_vec())).unwrap()
}

/// Broadcasts node `i` delivered from `origin`.
fn heard(net: &Net, i: usize, origin: NodeId) -> usize {
    net.broadcasts(i)
        .iter()
        .filter(|(from, _)| *from == origin)
        .count()
}

#[test]
fn floods_of_strangers_past_a_links_share_are_dropped_and_not_remembered() {
    let config = test_config().with_stranger_budget(Rate::new(0.001, BURST));
    let mut net = grown_mesh(6, config);
    net.settle();
    let victim = 0;
    let neighbours = net.nodes[victim].neighbours();
    assert!(neighbours.len() >= 2, "{neighbours:?}");
    let share = (BURST / neighbours.len() as f64).floor() as usize;
    let (sender, other) = (net.index[&neighbours[0]], net.index[&neighbours[1]]);
    let room = net.nodes[victim].config().room.clone();
    let refused = |net: &Net| net.nodes[victim].stats().floods_over_stranger_budget;

    // `share + 3` made-up origins, one flood each, all through one link: `share` go.
    let strangers: Vec<_> = (0..share + 3).map(|i| key(1000 + i, 0)).collect();
    let floods: Vec<Frame> = strangers
        .iter()
        .map(|k| authored::flood(k, &room, 1, 8, app("spam")))
        .collect();
    for flood in &floods {
        net.inject(victim, sender, encode(flood));
    }
    let delivered = strangers
        .iter()
        .filter(|k| heard(&net, victim, k.node_id()) == 1)
        .count();
    assert_eq!(delivered, share, "one link takes its share, no more");
    assert_eq!(refused(&net), 3);
    assert_eq!(
        net.nodes[victim].stats().forged_floods,
        0,
        "dropped before verification, not as forged"
    );
    assert!(
        net.nodes[victim].neighbours().contains(&net.id(sender)),
        "not a strike: an honest neighbour relays others' floods"
    );
    let late = strangers[share].node_id();
    assert_eq!(heard(&net, victim, late), 0);
    assert!(
        (1..6).all(|i| heard(&net, i, late) == 0),
        "a dropped flood is not forwarded"
    );

    // Not remembered as seen: the same flood through another link goes, and on.
    net.inject(victim, other, encode(&floods[share]));
    assert_eq!(heard(&net, victim, late), 1);
    assert!((1..6).any(|i| i != other && heard(&net, i, late) == 1));

    // The spent link still carries a flood of an origin the node knows (its neighbour's
    // own) and a flood of the other kind (a stranger's key request).
    let own = authored::flood(&key(sender, 0), &room, 7, 8, app("mine"));
    net.inject(victim, sender, encode(&own));
    assert_eq!(heard(&net, victim, net.id(sender)), 1);
    let stranger = key(2000, 0);
    let target = key(3000, 0).node_id();
    let request = Payload::FindKey { target };
    let request = mesh_proto::encode_payload(&request).unwrap();
    let relayed = net.nodes[victim].stats().frames_relayed;
    net.inject(
        victim,
        sender,
        encode(&authored::flood(&stranger, &room, 1, 8, request)),
    );
    assert_eq!(
        refused(&net),
        3,
        "key requests draw on a budget of their own"
    );
    assert!(net.nodes[victim].stats().frames_relayed > relayed);

    // And a stranger's broadcast through the spent link is still refused.
    let more = authored::flood(&key(4000, 0), &room, 1, 8, app("spam"));
    net.inject(victim, sender, encode(&more));
    assert_eq!(refused(&net), 4);
}
