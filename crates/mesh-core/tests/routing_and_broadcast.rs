//! Unicast reaches any node through relays; broadcast reaches every node exactly once.

mod support;

use std::time::Duration;

use support::{Net, grown_mesh, shaped_mesh, test_config};

#[test]
fn any_node_reaches_any_other_intact() {
    let n = 12;
    let mut net = shaped_mesh(n, test_config());
    for a in 0..n {
        for b in 0..n {
            if a != b {
                let to = net.id(b);
                let now = net.now;
                net.nodes[a]
                    .send(now, to, format!("{a}->{b}").into_bytes())
                    .unwrap();
                net.drain(a);
            }
        }
    }
    net.settle();
    for b in 0..n {
        let mut got: Vec<String> = net
            .messages(b)
            .into_iter()
            .map(|(_, d)| String::from_utf8(d).unwrap())
            .collect();
        got.sort();
        let mut want: Vec<String> = (0..n)
            .filter(|a| *a != b)
            .map(|a| format!("{a}->{b}"))
            .collect();
        want.sort();
        assert_eq!(got, want, "node {b}");
        for (from, data) in net.messages(b) {
            let a: usize = String::from_utf8(data)
                .unwrap()
                .split("->")
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(from, net.id(a), "the origin is reported");
        }
    }
    let relayed: u64 = (0..n).map(|i| net.nodes[i].stats().frames_relayed).sum();
    assert!(relayed > 0, "some messages needed relays");
}

#[test]
fn broadcast_reaches_every_node_exactly_once() {
    let n = 12;
    let mut net = grown_mesh(n, test_config());
    let now = net.now;
    for origin in [0, 5, 11] {
        net.nodes[origin]
            .broadcast(now, format!("hello from {origin}").into_bytes())
            .unwrap();
        net.drain(origin);
    }
    net.settle();
    for i in 0..n {
        let got = net.broadcasts(i);
        let expected = [0, 5, 11].iter().filter(|o| **o != i).count();
        assert_eq!(got.len(), expected, "node {i} got {got:?}");
        for (from, data) in got {
            let origin = net.index[&from];
            assert_eq!(data, format!("hello from {origin}").into_bytes());
        }
    }
    let dups: u64 = (0..n).map(|i| net.nodes[i].stats().flood_duplicates).sum();
    assert!(
        dups > 0,
        "a mesh has cycles: duplicates were seen and suppressed"
    );
}

#[test]
fn oversized_messages_are_refused_up_front() {
    let mut net = grown_mesh(3, test_config());
    let (to, now) = (net.id(1), net.now);
    let err = net.nodes[0]
        .send(now, to, vec![0; mesh_core::MAX_MESSAGE_SIZE + 1])
        .unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
    assert!(
        net.nodes[0]
            .send(now, to, vec![0; mesh_core::MAX_MESSAGE_SIZE])
            .is_ok()
    );
    net.drain(0);
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.messages(1).len(), 1);
}

#[test]
fn a_unicast_to_nobody_is_reported_unreachable_without_going_out() {
    use mesh_core::{Error, Event};
    use mesh_proto::identity::Keypair;

    let n = 12;
    let mut net = shaped_mesh(n, test_config());
    let a = 0;
    let mut sent = Vec::new();
    let mut no_route = 0;
    for k in 0..40u8 {
        // Ids of nodes that never joined: every relay's greedy step runs into a dead end.
        let to = Keypair::from_seed([100u8.wrapping_add(k); 32]).node_id();
        let now = net.now;
        match net.nodes[a].send(now, to, vec![k]) {
            Ok(()) => sent.push(to),
            Err(Error::NoRoute(_)) => no_route += 1,
            Err(e) => panic!("{e}"),
        }
        net.drain(a);
    }
    net.settle();
    // Every answer comes without a record; what waits for a key is given up at the key
    // wait's end (5 s: a dropped answer would look the same), not before.
    let early = net
        .events
        .iter()
        .filter(|(i, e)| *i == a && matches!(e, Event::Unreachable { .. }))
        .count();
    assert_eq!(early, 0, "reported before the key wait ended");
    net.run_for(std::time::Duration::from_secs(6));
    let reported: Vec<_> = net
        .events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::Unreachable { to, at } if *i == a => Some((*to, *at)),
            _ => None,
        })
        .collect();
    assert!(
        !sent.is_empty(),
        "some went out ({no_route} had no first hop)"
    );
    for to in &sent {
        let (_, at) = reported
            .iter()
            .find(|(t, _)| t == to)
            .unwrap_or_else(|| panic!("the unicast to {to} was not reported"));
        assert!(net.index.contains_key(at), "reported by a node of the mesh");
    }
    assert_eq!(reported.len(), sent.len(), "each reported once");
    // A unicast is sealed for its destination: with no node holding that id, the lookup
    // for its key finds no record, and the message never goes out (nobody relays it).
    let stats = net.nodes[a].stats();
    assert!(stats.key_lookups >= 1);
    assert_eq!(stats.sends_unresolved, sent.len() as u64);
    assert_eq!(stats.messages_sent, 0);
    let from_a = net.id(a);
    for i in 0..n {
        assert!(
            net.messages(i).iter().all(|(from, _)| *from != from_a),
            "node {i} got a message from a"
        );
    }
}

/// A relay that drops a reliable unicast without a word: no report comes, the
/// acknowledgement does not either, and the origin sends it again another way; the
/// destination takes it once and acknowledges it.
#[test]
fn a_reliable_unicast_dropped_in_silence_goes_again_and_arrives_once() {
    use std::cell::Cell;
    use std::rc::Rc;

    use bytes::Bytes;
    use mesh_proto::Frame;
    use mesh_proto::signal::Payload;

    let n = 12;
    let mut net = shaped_mesh(n, test_config());
    let a = 0;
    // A destination that is not a neighbour: its unicasts are relayed.
    let b = (1..n)
        .find(|j| !net.nodes[a].neighbours().contains(&net.id(*j)))
        .expect("a node two links away or more");
    let origin_key = *net.nodes[a].record().key.as_bytes();
    // Each relay that meets the first copy of a's sealed payloads to `b` spoils it so that
    // nobody can open it and nobody reports it: a silent drop.
    let dropped = Rc::new(Cell::new(0));
    let count = dropped.clone();
    let b_id = net.id(b);
    net.tamper = Some(Box::new(move |_, bytes: &mut Bytes| {
        if count.get() > 0 {
            return;
        }
        let Ok(Frame::Route {
            to,
            from,
            ttl,
            steering,
            payload,
        }) = mesh_proto::decode(bytes)
        else {
            return;
        };
        let Ok(Payload::Sealed(sealed)) = mesh_proto::decode_payload(&payload) else {
            return;
        };
        if to != b_id || sealed.key.as_bytes() != &origin_key {
            return;
        }
        count.set(count.get() + 1);
        let frame = Frame::Route {
            to,
            from,
            ttl,
            steering,
            payload: vec![0xff],
        };
        *bytes = mesh_proto::encode(&frame).unwrap().into();
    }));
    let now = net.now;
    net.nodes[a]
        .send_reliable(now, b_id, b"must arrive".to_vec())
        .unwrap();
    net.drain(a);
    let arrived = net.run_until(Duration::from_secs(10), |net| {
        net.nodes[a].stats().reliable_acked == 1
    });
    assert!(arrived, "{:?}", net.nodes[a].stats());
    assert_eq!(dropped.get(), 1, "the first copy was dropped on the way");
    let stats = net.nodes[a].stats();
    assert!(stats.reliable_resent >= 1);
    assert_eq!(stats.reliable_lost, 0);
    let got: Vec<_> = net
        .messages(b)
        .into_iter()
        .filter(|(from, d)| *from == net.id(a) && d == b"must arrive")
        .collect();
    assert_eq!(got.len(), 1, "delivered once");
}

/// A mesh of 12 where every relay drops, without a word, the unicasts (routed, or flooded
/// for one node when `drop_floods`) that node `a` sends to node `b`, two links away or
/// more: returns the mesh, `a`, `b` and the count of copies dropped.
fn every_relay_drops(
    config: mesh_core::Config,
    drop_floods: bool,
) -> (Net, usize, usize, std::rc::Rc<std::cell::Cell<usize>>) {
    use mesh_proto::Frame;

    let n = 12;
    let mut net = shaped_mesh(n, config);
    let a = 0;
    let b = (1..n)
        .find(|j| !net.nodes[a].neighbours().contains(&net.id(*j)))
        .expect("a node two links away or more");
    let (a_id, b_id) = (net.id(a), net.id(b));
    let dropped = std::rc::Rc::new(std::cell::Cell::new(0));
    let count = dropped.clone();
    // a itself sends each copy out; every other node drops it.
    net.tamper = Some(Box::new(move |i, bytes: &mut bytes::Bytes| {
        if i == a {
            return;
        }
        let relayed = match mesh_proto::decode(bytes) {
            Ok(Frame::Route { to, from, .. }) => to == b_id && from == a_id,
            Ok(Frame::Transfer { from, .. }) => from == a_id,
            Ok(Frame::Flood { key, .. }) => {
                drop_floods && mesh_proto::NodeId::from_public_key(&key) == a_id
            }
            _ => false,
        };
        if relayed {
            count.set(count.get() + 1);
            *bytes = bytes::Bytes::new();
        }
    }));
    (net, a, b, dropped)
}

/// A destination behind relays that drop every copy without a word, floods too: the
/// origin sends it `reliable_resends` more times, each through another first neighbour
/// (the last as a flood), then gives it up and tells the application.
#[test]
fn a_reliable_unicast_every_relay_drops_is_tried_then_given_up() {
    let resends = 3;
    let config = test_config().with_reliable_resends(resends);
    let (mut net, a, b, dropped) = every_relay_drops(config, true);
    let (a_id, b_id) = (net.id(a), net.id(b));
    let now = net.now;
    net.nodes[a]
        .send_reliable(now, b_id, b"never arrives".to_vec())
        .unwrap();
    net.drain(a);
    let given_up = net.run_until(Duration::from_secs(30), |net| {
        net.nodes[a].stats().reliable_lost == 1
    });
    assert!(given_up, "{:?}", net.nodes[a].stats());
    let stats = net.nodes[a].stats();
    assert_eq!(stats.reliable_resent, resends as u64);
    assert_eq!(stats.reliable_flooded, 1, "the last try went as a flood");
    assert_eq!(stats.reliable_acked, 0);
    // Each routed copy was dropped at its first relay, the flood where a's neighbours
    // passed it on.
    assert!(
        dropped.get() > resends,
        "each routed copy and the flood were dropped: {}",
        dropped.get()
    );
    assert!(
        net.events.iter().any(|(i, e)| *i == a
            && matches!(e, mesh_core::Event::Unreachable { to, .. } if *to == b_id)),
        "the application heard of it"
    );
    assert!(net.messages(b).iter().all(|(from, _)| *from != a_id));
}

/// The same relays, but floods go round them: the last try of the reliable unicast, a
/// flood for `b` alone, arrives; `b` takes it once and acknowledges it by flood, and no
/// other node's application hears of it.
#[test]
fn a_reliable_unicast_every_relay_drops_arrives_by_flood_on_its_last_try() {
    let resends = 3;
    let config = test_config().with_reliable_resends(resends);
    let (mut net, a, b, dropped) = every_relay_drops(config, false);
    let (a_id, b_id) = (net.id(a), net.id(b));
    let now = net.now;
    net.nodes[a]
        .send_reliable(now, b_id, b"arrives by flood".to_vec())
        .unwrap();
    net.drain(a);
    let acked = net.run_until(Duration::from_secs(30), |net| {
        net.nodes[a].stats().reliable_acked == 1
    });
    assert!(acked, "{:?}", net.nodes[a].stats());
    let stats = net.nodes[a].stats();
    assert_eq!(stats.reliable_resent, resends as u64);
    assert_eq!(stats.reliable_flooded, 1);
    assert_eq!(stats.reliable_lost, 0);
    assert_eq!(dropped.get(), resends, "the routed tries were dropped");
    let got: Vec<_> = net
        .messages(b)
        .into_iter()
        .filter(|(from, d)| *from == a_id && d == b"arrives by flood")
        .collect();
    assert_eq!(got.len(), 1, "delivered once");
    for i in (0..net.nodes.len()).filter(|i| *i != b) {
        assert!(net.messages(i).iter().all(|(from, _)| *from != a_id));
        assert!(
            net.broadcasts(i)
                .iter()
                .all(|(from, _)| *from != a_id && *from != b_id)
        );
    }
}

/// With the fallback off, nothing goes as a flood: the message is given up.
#[test]
fn without_the_flood_fallback_a_unicast_every_relay_drops_is_given_up() {
    let config = test_config()
        .with_reliable_resends(2)
        .with_flood_fallback(false);
    let (mut net, a, b, dropped) = every_relay_drops(config, false);
    let b_id = net.id(b);
    let now = net.now;
    net.nodes[a]
        .send_reliable(now, b_id, b"lost".to_vec())
        .unwrap();
    net.drain(a);
    let given_up = net.run_until(Duration::from_secs(30), |net| {
        net.nodes[a].stats().reliable_lost == 1
    });
    assert!(given_up, "{:?}", net.nodes[a].stats());
    assert_eq!(net.nodes[a].stats().reliable_flooded, 0);
    assert_eq!(dropped.get(), 3);
}
