//! A fleet of bootstrap servers sharing rooms through a real Redis (`redis-server`, started
//! by each test on a loopback port with its own temporary directory): clients registered at
//! different servers are sampled together and reach each other (unicast, broadcast), a key
//! registered at a second server ends its first session, bad data in Redis is skipped,
//! Redis going away makes the servers degraded but serving, and its return makes the fleet
//! whole again. TLS (`rediss://`) with a password, and what the fleet leaves in Redis.
//!
//! They need `redis-server`, so they are `#[ignore]`d in the workspace run: `.ci/run`
//! installs it and runs them (`cargo test -p mesh-e2e --test fleet -- --ignored`). Without
//! it they fail saying so; they never skip.

use std::collections::HashSet;
use std::time::Duration;

use bootstrap_server::Config;
use mesh_e2e::{Client, DEADLINE, TestServer, wait_until};
use mesh_proto::identity::Keypair;
use mesh_proto::{ErrorCode, Frame, NodeId};
use mesh_testkit::redis_server::{Options, Redis};
use redis::Commands;

const PREFIX: &str = "fleet-test";

fn fleet_config(redis_url: &str) -> Config {
    Config::default()
        .with_redis(Some(redis_url.parse().expect("a redis URL")))
        .with_fleet_prefix(PREFIX.into())
        .with_fleet_lease(Duration::from_secs(3))
        .with_fleet_timeout(Duration::from_millis(500))
}

async fn fleet(redis: &Redis, n: usize) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for _ in 0..n {
        servers.push(TestServer::start(fleet_config(&redis.url())).await);
    }
    for server in &servers {
        wait_healthy(server).await;
    }
    servers
}

async fn wait_healthy(server: &TestServer) {
    wait_until(
        "the server reaches redis (/healthz ok)",
        DEADLINE,
        async || match server.http_get("/healthz").await {
            (200, body) if body == "ok\n" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

/// Every key of the fleet in Redis, with its TTL in seconds (-1: none, -2: gone).
fn fleet_keys(redis: &Redis) -> Vec<(String, i64)> {
    let mut conn = redis.connection();
    let keys: Vec<String> = conn.keys(format!("{PREFIX}:*")).unwrap();
    keys.into_iter()
        .map(|k| {
            let ttl: i64 = conn.ttl(&k).unwrap();
            (k, ttl)
        })
        .collect()
}

fn client_with(key: &Keypair, mut client: Client) -> Client {
    client.key = Keypair::from_seed(key.to_seed());
    client
}

#[tokio::test]
#[ignore = "needs redis-server: run by .ci/run (cargo test -p mesh-e2e --test fleet -- --ignored)"]
async fn clients_at_three_servers_are_sampled_together_and_reach_each_other() {
    let redis = Redis::start();
    let servers = fleet(&redis, 3).await;
    let (mut a, first) = Client::join(&servers[0].url(), "lobby").await;
    assert!(first.is_empty());
    let (mut b, welcome_b) = Client::join(&servers[1].url(), "lobby").await;
    assert_eq!(
        welcome_b,
        vec![a.id()],
        "b's Welcome lists a, registered at another server"
    );
    let (mut c, welcome_c) = Client::join(&servers[2].url(), "lobby").await;
    let expected: HashSet<_> = [a.id(), b.id()].into();
    assert_eq!(welcome_c.into_iter().collect::<HashSet<_>>(), expected);
    let (mut outsider, welcome) = Client::join(&servers[1].url(), "elsewhere").await;
    assert!(welcome.is_empty(), "rooms stay apart across the fleet");

    // Unicast across servers, every way round.
    a.unicast_to(&mut b, b"a to b").await;
    b.unicast_to(&mut c, b"b to c").await;
    c.unicast_to(&mut a, b"c to a").await;
    a.unicast_to(&mut c, &[]).await;
    let peers: HashSet<_> = a.peers(10).await.into_iter().collect();
    assert_eq!(peers, HashSet::from([b.id(), c.id()]));

    // Broadcast reaches the room's members at every server, once.
    a.send(&Frame::Broadcast {
        payload: b"to all".to_vec(),
    })
    .await;
    for member in [&mut b, &mut c] {
        match member.recv_frame().await {
            Frame::TransferBroadcast { from, payload } => {
                assert_eq!((from, payload.as_slice()), (a.id(), &b"to all"[..]));
            }
            other => panic!("expected the broadcast, got {other:?}"),
        }
    }
    // Nothing more: the next frame each gets is the one sent now.
    b.unicast_to(&mut c, b"after the broadcast").await;
    c.unicast_to(&mut b, b"after the broadcast").await;
    // The other room's member got nothing of it: its next frame is this one.
    let (mut neighbour, _) = Client::join(&servers[2].url(), "elsewhere").await;
    neighbour.unicast_to(&mut outsider, b"only this").await;

    // Redis forgets its scripts (as after a restart): the servers send them again.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut redis.connection())
        .unwrap();
    a.unicast_to(&mut c, b"after SCRIPT FLUSH").await;

    // A node that is nowhere: NotFound (UNKNOWN_PEER), naming it, and a also stays.
    let nobody = NodeId::from_bytes([0xAB; 16]);
    a.send(&Frame::Unicast {
        to: nobody,
        payload: b"?".to_vec(),
    })
    .await;
    assert_eq!(a.expect_error(ErrorCode::UNKNOWN_PEER).await, Some(nobody));

    let m = servers[0].metrics().await;
    assert_eq!(m.value("bootstrap_fleet_redis_up"), 1.0);
    assert!(m.count(r#"bootstrap_fleet_published_total{kind="unicast"}"#) >= 2);
    assert!(m.count(r#"bootstrap_fleet_published_total{kind="broadcast"}"#) >= 1);
    assert_eq!(m.count("bootstrap_fleet_bad_data_total"), 0);

    // Every key carries the prefix and a TTL.
    let keys = fleet_keys(&redis);
    assert!(
        keys.len() >= 3 + 4 + 2,
        "leases, registrations, rooms: {keys:?}"
    );
    assert!(keys.iter().all(|(_, ttl)| *ttl > 0), "{keys:?}");

    // b leaves: it is no longer sampled, and is nowhere.
    let gone = b.id();
    drop(b);
    a.wait_until_gone(gone, "b leaves a's samples").await;
    wait_until(
        "a unicast to b, gone, is UNKNOWN_PEER",
        DEADLINE,
        async || {
            a.send(&Frame::Unicast {
                to: gone,
                payload: b"still there?".to_vec(),
            })
            .await;
            match a.recv_frame().await {
                Frame::Error {
                    code: ErrorCode::UNKNOWN_PEER,
                    target,
                    ..
                } if target == Some(gone) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // Stopped gracefully, the fleet leaves nothing behind.
    drop((a, c, outsider, neighbour));
    for server in servers {
        server.stop().await.unwrap();
    }
    let keys = fleet_keys(&redis);
    assert!(keys.is_empty(), "left in redis: {keys:?}");
}

#[tokio::test]
#[ignore = "needs redis-server: run by .ci/run (cargo test -p mesh-e2e --test fleet -- --ignored)"]
async fn a_key_registering_at_a_second_server_ends_its_first_session() {
    let redis = Redis::start();
    let servers = fleet(&redis, 2).await;
    let key = Keypair::generate();
    let mut first = client_with(&key, Client::connect(&servers[0].url()).await);
    first.register("lobby").await;
    let (mut other, _) = Client::join(&servers[0].url(), "lobby").await;
    let mut second = client_with(&key, Client::connect(&servers[1].url()).await);
    let sample = second.register("lobby").await;
    assert_eq!(sample, vec![other.id()], "never itself");
    assert_eq!(first.expect_fatal(ErrorCode::REPLACED).await, 1008);

    // One registration: at the second server, where unicasts now go.
    let mut conn = redis.connection();
    let members: HashSet<String> = conn.smembers(format!("{PREFIX}:room:lobby")).unwrap();
    assert_eq!(
        members,
        HashSet::from([key.node_id().to_string(), other.id().to_string()])
    );
    wait_until(
        "the first server holds only `other`",
        DEADLINE,
        async || {
            let peers = servers[0].metrics().await.count("bootstrap_peers");
            if peers == 1 {
                Ok(())
            } else {
                Err(format!("{peers} peers"))
            }
        },
    )
    .await;
    other.unicast_to(&mut second, b"to the new session").await;
    let peers = other.peers(10).await;
    assert_eq!(peers, vec![key.node_id()]);
}

#[tokio::test]
#[ignore = "needs redis-server: run by .ci/run (cargo test -p mesh-e2e --test fleet -- --ignored)"]
async fn bad_data_in_redis_is_skipped_and_counted() {
    let redis = Redis::start();
    let servers = fleet(&redis, 2).await;
    let (mut a, _) = Client::join(&servers[0].url(), "lobby").await;
    let (b, _) = Client::join(&servers[1].url(), "lobby").await;
    let mut conn = redis.connection();
    let server: String = conn
        .keys::<_, Vec<String>>(format!("{PREFIX}:srv:*"))
        .unwrap()
        .remove(0)
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    // A member that is no node id, with a valid-looking registration of a live server; a
    // registration value that does not decode; and garbage on the fleet's channels.
    let _: () = conn
        .sadd(format!("{PREFIX}:room:lobby"), "not-a-node")
        .unwrap();
    let _: () = conn
        .set(
            format!("{PREFIX}:node:lobby:not-a-node"),
            format!("{server} 1"),
        )
        .unwrap();
    let garbled = NodeId::from_bytes([7; 16]);
    let _: () = conn
        .set(format!("{PREFIX}:node:lobby:{garbled}"), "garbage")
        .unwrap();
    let _: () = conn
        .publish(format!("{PREFIX}:broadcast"), &b"\x01\x02junk"[..])
        .unwrap();
    let _: () = conn
        .publish(format!("{PREFIX}:to:{server}"), &b"\xff"[..])
        .unwrap();

    // Samples still answer, with the real members only.
    for _ in 0..5 {
        assert_eq!(a.peers(10).await, vec![b.id()]);
    }
    a.send(&Frame::Unicast {
        to: garbled,
        payload: vec![1],
    })
    .await;
    assert_eq!(a.expect_error(ErrorCode::UNKNOWN_PEER).await, Some(garbled));
    wait_until("the bad data is counted", DEADLINE, async || {
        let mut bad = 0;
        for server in &servers {
            bad += server
                .metrics()
                .await
                .count("bootstrap_fleet_bad_data_total");
        }
        // The member that is no node id (once at least), the garbled value, and the
        // message on the broadcast channel (at both servers) or the server's own.
        if bad >= 4 {
            Ok(bad)
        } else {
            Err(format!("{bad} counted"))
        }
    })
    .await;
    for server in &servers {
        assert_eq!(server.http_get("/healthz").await.0, 200);
    }
}

#[tokio::test]
#[ignore = "needs redis-server: run by .ci/run (cargo test -p mesh-e2e --test fleet -- --ignored)"]
async fn without_redis_each_server_serves_its_own_and_the_fleet_is_whole_when_it_returns() {
    let mut redis = Redis::start();
    let servers = fleet(&redis, 2).await;
    let (mut a, _) = Client::join(&servers[0].url(), "lobby").await;
    let (mut b, _) = Client::join(&servers[1].url(), "lobby").await;
    a.unicast_to(&mut b, b"before").await;

    redis.kill();
    for server in &servers {
        let body = wait_until("/healthz says degraded", DEADLINE, async || {
            match server.http_get("/healthz").await {
                (200, body) if body.starts_with("degraded: redis unreachable") => Ok(body),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert!(body.contains("own registrations"), "{body}");
        let m = server.metrics().await;
        assert_eq!(m.value("bootstrap_fleet_redis_up"), 0.0);
        assert!(m.count("bootstrap_fleet_outages_total") >= 1);
    }
    // A newcomer still joins, through its own server's nodes.
    let (mut c, welcome) = Client::join(&servers[0].url(), "lobby").await;
    assert_eq!(welcome, vec![a.id()]);
    c.unicast_to(&mut a, b"during the outage, same server")
        .await;
    // b, at the other server, cannot be reached now: said at once.
    c.send(&Frame::Unicast {
        to: b.id(),
        payload: vec![2],
    })
    .await;
    assert_eq!(c.expect_error(ErrorCode::UNKNOWN_PEER).await, Some(b.id()));

    // Redis returns, empty: every server re-announces what it holds.
    redis.restart();
    for server in &servers {
        wait_healthy(server).await;
    }
    wait_until("b sees a and c again", DEADLINE, async || {
        let peers: HashSet<_> = b.peers(10).await.into_iter().collect();
        let want: HashSet<_> = [a.id(), c.id()].into();
        if peers == want {
            Ok(())
        } else {
            Err(format!("{peers:?}"))
        }
    })
    .await;
    c.unicast_to(&mut b, b"after the outage").await;
    b.unicast_to(&mut a, b"after the outage").await;
    assert!(
        servers[0]
            .metrics()
            .await
            .count("bootstrap_fleet_reannounced_total")
            >= 2
    );
}

#[tokio::test]
#[ignore = "needs redis-server: run by .ci/run (cargo test -p mesh-e2e --test fleet -- --ignored)"]
async fn a_fleet_over_tls_with_a_password() {
    let redis = Redis::start_with(Options {
        password: Some("fleet-secret".into()),
        tls: true,
    });
    let config = |ca: bool| {
        fleet_config(&redis.tls_url()).with_redis_ca(ca.then(|| redis.ca().to_path_buf()))
    };
    let mut servers = Vec::new();
    for _ in 0..2 {
        servers.push(TestServer::start(config(true)).await);
    }
    for server in &servers {
        wait_healthy(server).await;
    }
    let (mut a, _) = Client::join(&servers[0].url(), "lobby").await;
    let (mut b, welcome) = Client::join(&servers[1].url(), "lobby").await;
    assert_eq!(welcome, vec![a.id()]);
    a.unicast_to(&mut b, b"over rediss").await;

    // Without the CA, the certificate is not trusted: degraded, and it says why.
    let untrusting = TestServer::start(config(false)).await;
    let (status, body) = untrusting.http_get("/healthz").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("degraded:"), "{body}");
    tokio::time::timeout(Duration::from_secs(5), async {
        let (_, welcome) = Client::join(&untrusting.url(), "lobby").await;
        assert!(welcome.is_empty(), "it serves its own registrations only");
    })
    .await
    .expect("a degraded server still registers");
    // Wrong password: refused, degraded.
    let wrong = redis.tls_url().replace("fleet-secret", "wrong");
    let wrong =
        TestServer::start(fleet_config(&wrong).with_redis_ca(Some(redis.ca().to_path_buf()))).await;
    wait_until("a wrong password is degraded", DEADLINE, async || {
        let (_, body) = wrong.http_get("/healthz").await;
        let m = wrong.metrics().await;
        if body.starts_with("degraded:") && m.count("bootstrap_fleet_redis_errors_total") > 0 {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await;
}
