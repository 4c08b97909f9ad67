//! The id puzzle (docs/protocol.md §4.7) in a mesh that requires 8 bits: a node refuses a
//! key of its own below it; records, floods and lookups of ids below it are ignored and
//! counted (`ids_below_difficulty`) without costing the neighbour that passed them on its
//! link, while those of ids that meet it are taken; and a newcomer whose id is below it
//! gets no link, though one whose id meets it does.

mod support;

use std::time::Duration;

use mesh_core::{Config, Error, Event, Node};
use mesh_proto::identity::Keypair;
use mesh_proto::signal::Payload;
use mesh_proto::{Frame, NodeRecord, authored, puzzle};
use support::{Net, grown_mesh, key, test_config};

const DIFFICULTY: u32 = 8;

fn config() -> Config {
    test_config().with_id_difficulty(DIFFICULTY)
}

/// A deterministic key whose id is below [`DIFFICULTY`] (255 seeds in 256 give one).
fn cheap(i: usize) -> Keypair {
    let key = (i..)
        .map(|i| key(i, 0))
        .find(|k| !puzzle::meets(&k.node_id(), DIFFICULTY))
        .unwrap();
    assert!(puzzle::difficulty(&key.node_id()) < DIFFICULTY);
    key
}

/// A key, from outside the mesh, whose id meets [`DIFFICULTY`].
fn dear(i: usize) -> Keypair {
    let key = key(i, DIFFICULTY);
    assert!(puzzle::difficulty(&key.node_id()) >= DIFFICULTY);
    key
}

#[test]
fn a_node_refuses_a_key_of_its_own_below_the_difficulty() {
    let now = std::time::Instant::now();
    let err = Node::new(config(), cheap(0), now, 0).unwrap_err();
    assert!(
        matches!(err, Error::IdBelowDifficulty { required: 8, has, .. } if has < 8),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("below the 8 bits configured"),
        "{err}"
    );
    assert!(Node::new(config(), dear(0), now, 0).is_ok());
    // Off by default: the same key is fine.
    assert!(Node::new(test_config(), cheap(0), now, 0).is_ok());
    // Bounded: nobody is asked for hours of mining.
    let err = config().with_id_difficulty(25).validate().unwrap_err();
    assert!(err.to_string().contains("at most 24"), "{err}");
}

#[test]
fn records_floods_and_lookups_of_cheap_ids_are_ignored_and_counted() {
    let mut net = grown_mesh(5, config());
    let victim = 0;
    let sender = net.index[&net.nodes[victim].neighbours()[0]];
    let room = net.nodes[victim].config().room.clone();
    let below = |net: &Net| net.nodes[victim].stats().ids_below_difficulty;
    assert_eq!(below(&net), 0, "every node of the mesh meets the puzzle");

    // Records: the neighbour's own, one of a cheap id, one of an id that meets the puzzle.
    let (cheap_key, dear_key) = (cheap(100), dear(100));
    let contacts = net.nodes[victim].contact_count();
    let frame = Frame::Neighbours {
        peers: vec![
            net.nodes[sender].record(),
            NodeRecord::sign(&cheap_key, &room),
            NodeRecord::sign(&dear_key, &room),
        ],
    };
    net.inject(victim, sender, mesh_proto::encode(&frame).unwrap());
    assert_eq!(below(&net), 1);
    assert_eq!(
        net.nodes[victim].contact_count(),
        contacts + 1,
        "the record that meets the puzzle is learned, the cheap one is not"
    );
    assert!(
        net.nodes[victim].neighbours().contains(&net.id(sender)),
        "a cheap record is not a forged one: the link stays"
    );
    assert_eq!(net.nodes[victim].stats().forged_records, 0);

    // Floods: a cheap origin's is neither delivered nor forwarded; a dear one's is.
    let app = |text: &[u8]| mesh_proto::encode_payload(&Payload::App(text.to_vec())).unwrap();
    let relayed = net.nodes[victim].stats().frames_relayed;
    let flood = authored::flood(&cheap_key, &room, 1, 8, app(b"cheap"));
    net.inject(victim, sender, mesh_proto::encode(&flood).unwrap());
    assert_eq!(below(&net), 2);
    assert_eq!(net.nodes[victim].stats().frames_relayed, relayed);
    assert_eq!(net.nodes[victim].stats().forged_floods, 0);
    let flood = authored::flood(&dear_key, &room, 1, 8, app(b"dear"));
    net.inject(victim, sender, mesh_proto::encode(&flood).unwrap());
    assert_eq!(below(&net), 2);
    let heard: Vec<_> = net
        .broadcasts(victim)
        .into_iter()
        .map(|(from, _)| from)
        .collect();
    assert!(heard.contains(&dear_key.node_id()), "{heard:?}");
    assert!(!heard.contains(&cheap_key.node_id()), "{heard:?}");
    let others_heard = (1..5).any(|i| {
        net.broadcasts(i)
            .iter()
            .any(|(from, _)| *from == dear_key.node_id())
    });
    assert!(others_heard, "the dear flood goes on");
    assert!((1..5).all(|i| {
        net.broadcasts(i)
            .iter()
            .all(|(from, _)| *from != cheap_key.node_id())
    }));

    // Lookups: a cheap origin's is neither forwarded nor answered.
    let acted = |net: &Net| {
        let s = net.nodes[victim].stats();
        s.frames_relayed + s.lookups_answered
    };
    let before = acted(&net);
    let lookup = authored::lookup(&cheap_key, &room, net.id(3), 7, 8);
    net.inject(victim, sender, mesh_proto::encode(&lookup).unwrap());
    assert_eq!(below(&net), 3);
    assert_eq!(acted(&net), before);
    let lookup = authored::lookup(&dear_key, &room, net.id(3), 7, 8);
    net.inject(victim, sender, mesh_proto::encode(&lookup).unwrap());
    assert_eq!(below(&net), 3);
    assert!(
        acted(&net) > before,
        "a dear lookup is forwarded or answered"
    );
    assert!(net.nodes[victim].neighbours().contains(&net.id(sender)));
}

#[test]
fn a_newcomer_below_the_difficulty_gets_no_link_and_one_that_meets_it_does() {
    let n = 7;
    let mut net = Net::new(n, config());
    // Node 5 does not require the puzzle and its id does not meet it; node 6 is an honest
    // newcomer.
    let now = net.now;
    net.replace(5, Node::new(test_config(), cheap(5), now, 5).unwrap());
    for i in 0..5 {
        net.join(i);
        if i > 0 {
            assert!(
                net.run_until(Duration::from_secs(30), |net| net.degree(i) >= 1),
                "node {i} never linked"
            );
        }
    }
    let counted = |net: &Net| {
        (0..5)
            .map(|i| net.nodes[i].stats().ids_below_difficulty)
            .sum::<u64>()
    };
    assert_eq!(counted(&net), 0);

    net.join(5);
    net.run_for(Duration::from_secs(30));
    assert_eq!(net.degree(5), 0, "nobody answers the cheap newcomer");
    let cheap_id = net.id(5);
    assert!((0..5).all(|i| !net.nodes[i].neighbours().contains(&cheap_id)));
    assert!(
        net.nodes[5].stats().sessions_initiated_via_server > 0,
        "it did offer"
    );
    assert!(counted(&net) > 0, "its offers were counted");
    assert!(
        !net.events
            .iter()
            .any(|(i, e)| *i < 5 && matches!(e, Event::LinkUp { peer, .. } if *peer == cheap_id))
    );

    // The same wait is enough for a newcomer whose id meets the puzzle.
    net.join(6);
    assert!(
        net.run_until(Duration::from_secs(30), |net| net.degree(6) >= 1),
        "the dear newcomer links"
    );
}
