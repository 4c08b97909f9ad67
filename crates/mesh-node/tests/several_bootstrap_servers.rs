//! A node given several bootstrap servers (`Config::with_bootstraps`): it joins at the one
//! its id picks, and when that one refuses or dies it goes to the next in the list, in
//! turn. Real bootstrap servers on port 0 and closed ports on 127.0.0.1.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mesh_node::transport::memory::{MemoryNetwork, MemoryTransport};
use mesh_node::transport::webrtc;
use mesh_node::{Config, Error, Event, Node};
use mesh_proto::ServerUrl;
use mesh_proto::identity::Keypair;
use support::{Door, wait_until};

/// A URL where nothing listens: a port that was free a moment ago.
fn closed_url() -> ServerUrl {
    format!("ws://127.0.0.1:{}/ws", mesh_testkit::turn::free_port())
        .parse()
        .expect("a URL")
}

fn url(s: &str) -> ServerUrl {
    s.parse().expect("a ws:// URL")
}

/// A key whose id picks `bootstraps[index]` first (`mesh_core::Config::first_bootstrap`):
/// one key in `bootstraps.len()` does.
fn key_starting_at(config: &Config, index: usize) -> Keypair {
    let overlay = config
        .overlay
        .clone()
        .with_bootstraps(config.bootstraps.clone());
    let first = &config.bootstraps[index];
    loop {
        let key = Keypair::generate();
        if overlay.first_bootstrap(&key.node_id()) == Some(first) {
            return key;
        }
    }
}

/// The server of the next `ServerConnected` event, within [`support::DEADLINE`].
async fn next_server(events: &mut mesh_node::Events) -> ServerUrl {
    let next = async {
        loop {
            match events.next().await {
                Some(Event::ServerConnected { server, .. }) => return server,
                Some(_) => {}
                None => panic!("the node stopped"),
            }
        }
    };
    tokio::time::timeout(support::DEADLINE, next)
        .await
        .expect("a registration within the deadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_first_bootstrap_servers_are_closed_joins_at_the_live_one() {
    let live = Door::start(true).await;
    let stun = format!(
        "stun:127.0.0.1:{}",
        live.stun.expect("a STUN responder").port()
    );
    let a = support::webrtc_node(&live.url(), Vec::new()).await;
    let (dead, dead_too) = (closed_url(), closed_url());
    let config =
        Config::new(dead.clone()).with_bootstraps([dead.clone(), dead_too, url(&live.url())]);
    // Its id picks the first closed one: refused there, then at the second, then the live one.
    let key = key_starting_at(&config, 0);
    let transport = webrtc::Config::new().with_bind_addrs(vec!["127.0.0.1:0".parse().unwrap()]);
    let started = Instant::now();
    let b = Node::join(config, key, transport).await.expect("b joins");
    let joined = started.elapsed();
    assert!(joined < Duration::from_secs(5), "joined after {joined:?}");
    let stats = b.stats().await.unwrap();
    assert!(stats.server_connected, "{stats:?}");
    assert_eq!(stats.server_registrations, 1, "{stats:?}");
    // The STUN URL is the one of the server that sent the Welcome.
    assert_eq!(stats.server_stun, Some(stun));
    wait_until("b and a are linked", || async {
        let linked =
            b.neighbours().await.unwrap() == [a.id()] && a.neighbours().await.unwrap() == [b.id()];
        linked.then_some(())
    })
    .await;
    let links = b.links().await.unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].peer, a.id());
    assert_eq!(links[0].carrier, Some(mesh_core::Carrier::Server));
    assert_eq!(b.stats().await.unwrap().degree, 1);
    eprintln!("joined through the third bootstrap server in {joined:?}");
    b.leave().await.unwrap();
    a.leave().await.unwrap();
    live.stop().await;
}

#[tokio::test]
async fn a_lone_node_moves_to_the_next_bootstrap_server_when_its_own_stops() {
    let (first, second) = (Door::start(false).await, Door::start(false).await);
    let (first_url, second_url) = (url(&first.url()), url(&second.url()));
    let config = Config::new(first_url.clone())
        .with_bootstraps([first_url.clone(), second_url.clone()])
        .with_reconnect(Duration::from_millis(50), Duration::from_millis(400));
    let key = key_starting_at(&config, 0);
    let net = MemoryNetwork::new();
    let id = key.node_id();
    let transport_net = net.clone();
    let lone = Node::join_with(config, key, move |events| {
        MemoryTransport::new(transport_net, id, events)
    })
    .await
    .expect("joins at its first");
    let mut events = lone.events().expect("taken once");
    assert_eq!(
        next_server(&mut events).await,
        first_url,
        "registered at the server its id picks"
    );
    first.stop().await;
    assert_eq!(
        next_server(&mut events).await,
        second_url,
        "the next server in the list"
    );
    let stats = lone.stats().await.unwrap();
    assert_eq!(stats.server_registrations, 2, "{stats:?}");
    // A newcomer at the second server alone finds it there, and they link.
    let key = Keypair::generate();
    let (id, transport_net) = (key.node_id(), net.clone());
    let newcomer = Node::join_with(Config::new(second_url), key, move |events| {
        MemoryTransport::new(transport_net, id, events)
    })
    .await
    .expect("joins");
    wait_until("the newcomer links with the lone node", || async {
        (lone.neighbours().await.unwrap() == [newcomer.id()]).then_some(())
    })
    .await;
    newcomer.leave().await.unwrap();
    lone.leave().await.unwrap();
    second.stop().await;
}

#[tokio::test]
async fn joining_fails_naming_every_bootstrap_server_when_none_takes_the_node() {
    let (dead, dead_too) = (closed_url(), closed_url());
    let config = Config::new(dead.clone()).with_bootstraps([dead.clone(), dead_too.clone()]);
    let key = Keypair::generate();
    let id = key.node_id();
    let net = MemoryNetwork::new();
    let started = Instant::now();
    let result = Node::join_with(config, key, move |events| {
        MemoryTransport::new(net, id, events)
    })
    .await;
    let Err(e @ Error::NoBootstrap(_)) = result else {
        panic!("expected NoBootstrap, got {result:?}");
    };
    let message = e.to_string();
    for url in [&dead, &dead_too] {
        assert!(message.contains(url.as_str()), "{message}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "each refused at once"
    );
}
