//! The id puzzle from a node's side (docs/protocol.md §4.7): a node whose key is below its
//! own `id_difficulty` does not start, one below the server's (announced in the
//! `Challenge`) does not register and says what to do, and nodes with mined keys join a
//! server that requires the puzzle and link. In-memory transport, real server.

use std::time::Duration;

use mesh_node::transport::memory::{MemoryNetwork, MemoryTransport};
use mesh_node::{BootstrapError, Config, Error, Node};
use mesh_proto::identity::Keypair;
use mesh_proto::puzzle;
use mesh_testkit::{TestServer, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);
const DIFFICULTY: u32 = 8;

async fn join(
    net: &MemoryNetwork,
    url: &str,
    key: Keypair,
    difficulty: u32,
) -> Result<Node, Error> {
    let (net, id) = (net.clone(), key.node_id());
    let config = Config::new(url.parse().unwrap()).with_id_difficulty(difficulty);
    Node::join_with(config, key, move |events| {
        MemoryTransport::new(net, id, events)
    })
    .await
}

fn cheap_key() -> Keypair {
    std::iter::repeat_with(Keypair::generate)
        .find(|k| !puzzle::meets(&k.node_id(), DIFFICULTY))
        .unwrap()
}

#[tokio::test]
async fn cheap_keys_are_refused_before_registering_and_mined_ones_link() {
    let net = MemoryNetwork::new();
    let server =
        TestServer::start(bootstrap_server::Config::default().with_id_difficulty(DIFFICULTY)).await;
    let url = server.url();

    // The node requires the puzzle itself: it does not start with a cheap key.
    let err = join(&net, &url, cheap_key(), DIFFICULTY).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Core(mesh_core::Error::IdBelowDifficulty { required: 8, .. })
        ),
        "{err:?}"
    );

    // The node does not, the server does: the Challenge says so, the node does not register.
    let err = join(&net, &url, cheap_key(), 0).await.unwrap_err();
    let Error::Bootstrap { source, .. } = &err else {
        panic!("expected a bootstrap error, got {err:?}");
    };
    assert!(
        matches!(source, BootstrapError::IdBelowDifficulty { required: 8, has } if *has < 8),
        "{source:?}"
    );
    assert!(
        source.to_string().contains("mesh-node --id-difficulty 8"),
        "{source}"
    );
    let metrics = server.metrics().await;
    assert_eq!(metrics.value("bootstrap_registrations_total"), 0.0);

    // Mined keys: both register and link.
    let a = join(
        &net,
        &url,
        Keypair::generate_with_difficulty(DIFFICULTY).unwrap(),
        DIFFICULTY,
    )
    .await
    .unwrap();
    let b = join(
        &net,
        &url,
        Keypair::generate_with_difficulty(DIFFICULTY).unwrap(),
        DIFFICULTY,
    )
    .await
    .unwrap();
    for node in [&a, &b] {
        wait_until("a link", DEADLINE, async || {
            let stats = node.stats().await.unwrap();
            if stats.degree >= 1 {
                Ok(())
            } else {
                Err(stats.degree)
            }
        })
        .await;
    }
    assert_eq!(
        server
            .metrics()
            .await
            .value("bootstrap_registrations_total"),
        2.0
    );
    a.leave().await.unwrap();
    b.leave().await.unwrap();
    server.stop().await.unwrap();
}
