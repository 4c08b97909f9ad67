//! Registration: the signed challenge proves the key, the Welcome samples the room, and a
//! second session with the same key replaces the first.

use bootstrap_server::Config;
use mesh_e2e::{Client, Received, TestServer};
use mesh_proto::identity::Keypair;
use mesh_proto::{ErrorCode, Frame};

#[tokio::test]
async fn welcome_samples_other_peers_of_the_room_only() {
    let server = TestServer::start(Config::default().with_welcome_sample(3)).await;
    let url = server.url();
    let (first, peers) = Client::join(&url, "lobby").await;
    assert!(
        peers.is_empty(),
        "the first peer of a room has nobody to meet"
    );

    let mut clients = vec![first];
    for n in 1..6 {
        let (client, peers) = Client::join(&url, "lobby").await;
        assert_eq!(peers.len(), n.min(3), "sample is min(K, others)");
        assert!(!peers.contains(&client.id()), "never the newcomer itself");
        for p in &peers {
            assert!(
                clients.iter().any(|c| c.id() == *p),
                "{p} is a registered peer of the room"
            );
        }
        clients.push(client);
    }
    let (_other, peers) = Client::join(&url, "elsewhere").await;
    assert!(peers.is_empty(), "rooms are independent meshes");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn challenge_announces_the_configured_limits() {
    let config = Config::default()
        .with_max_payload_size(1000)
        .with_frames_per_second(7);
    let server = TestServer::start(config).await;
    let client = Client::connect(&server.url()).await;
    assert_eq!(client.limits.max_payload_size, 1000);
    assert_eq!(client.limits.frames_per_second, 7);
    assert_eq!(
        client.limits.max_frame_size as usize,
        Config::default().max_frame_size
    );
}

#[tokio::test]
async fn bad_signature_is_refused_and_closed() {
    let server = TestServer::start(Config::default()).await;
    let mut client = Client::connect(&server.url()).await;
    let Frame::Register {
        public_key,
        node_id,
        room,
        ..
    } = client.register_frame("lobby")
    else {
        unreachable!()
    };
    // Signed over the wrong nonce: a replayed registration.
    let signature = client.key.sign(&mesh_proto::identity::register_message(
        &[0; 32], &node_id, &room,
    ));
    client
        .send(&Frame::Register {
            public_key,
            node_id,
            room,
            signature,
        })
        .await;
    assert_eq!(client.expect_fatal(ErrorCode::AUTH_FAILED).await, 1008);
}

#[tokio::test]
async fn node_id_that_does_not_derive_from_the_key_is_refused() {
    let server = TestServer::start(Config::default()).await;
    let (victim, _) = Client::join(&server.url(), "lobby").await;
    let mut thief = Client::connect(&server.url()).await;
    // Claim the victim's id with the thief's own key, correctly signed.
    let Frame::Register {
        public_key, room, ..
    } = thief.register_frame("lobby")
    else {
        unreachable!()
    };
    let node_id = victim.id();
    let signature = thief.key.sign(&mesh_proto::identity::register_message(
        &thief.nonce,
        &node_id,
        &room,
    ));
    thief
        .send(&Frame::Register {
            public_key,
            node_id,
            room,
            signature,
        })
        .await;
    thief.expect_fatal(ErrorCode::AUTH_FAILED).await;

    // The victim is still registered and reachable.
    let (mut sender, _) = Client::join(&server.url(), "lobby").await;
    let mut victim = victim;
    sender.unicast_to(&mut victim, b"still here").await;
}

#[tokio::test]
async fn same_key_replaces_the_old_session() {
    let server = TestServer::start(Config::default()).await;
    let url = server.url();
    let key = Keypair::generate();
    let mut old = Client::connect(&url).await;
    old.key = Keypair::from_seed(key.to_seed());
    old.register("lobby").await;

    let mut new = Client::connect(&url).await;
    new.key = Keypair::from_seed(key.to_seed());
    new.register("lobby").await;
    old.expect_fatal(ErrorCode::REPLACED).await;

    // Traffic for the id now reaches the new session.
    let (mut sender, peers) = Client::join(&url, "lobby").await;
    assert_eq!(
        peers,
        vec![new.id()],
        "exactly one entry for the replaced id"
    );
    sender.unicast_to(&mut new, b"to the new session").await;
}

#[tokio::test]
async fn frames_before_registration_are_refused() {
    let server = TestServer::start(Config::default()).await;
    let mut client = Client::connect(&server.url()).await;
    client.send(&Frame::GetPeers { max: 3 }).await;
    client.expect_fatal(ErrorCode::NOT_REGISTERED).await;
}

#[tokio::test]
async fn a_second_register_is_refused() {
    let server = TestServer::start(Config::default()).await;
    let (mut client, _) = Client::join(&server.url(), "lobby").await;
    client.send(&client.register_frame("lobby")).await;
    client.expect_fatal(ErrorCode::ALREADY_REGISTERED).await;
    assert!(matches!(client.recv().await, Received::Closed(_)));
}
