//! Encode and decode cost of representative frames, with a plain copy as the floor.
//!
//! Run with `cargo bench -p mesh-proto --bench codec`; `docs/benchmarks.md` holds the
//! figures and the machine they were measured on.
//!
//! - `unicast_3k`: a Unicast with a 3 KiB payload, the size of a typical SDP offer.
//! - `unicast_200`: a Unicast with a 200-byte payload, the size of an ICE candidate.
//! - `welcome_8`: a Welcome with 8 peers (the server's default sample).
//! - `register`: a signed Register in the room `default`.
//! - `copy_to_vec/unicast_3k` (baseline): `to_vec()` of the encoded 3 KiB Unicast, the
//!   allocation and copy that any decoder handing out an owned payload must pay, and that
//!   an encoder writing into a fresh buffer must pay too.
//! - `relay/unicast_3k`, `relay/unicast_200`: what the bootstrap server does per relayed
//!   unicast: decode the Unicast, encode the Transfer.
//! - `register_auth/verify`: decode a Register, check the id derives from the key and
//!   verify the signature: the server's CPU per registration.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use mesh_proto::identity::{Keypair, register_message};
use mesh_proto::{Frame, NodeId, RoomName, decode, encode};

/// A payload of `len` bytes that looks like SDP text (the codec does not care, but the
/// bytes are not all one value).
fn sdp_like(len: usize) -> Vec<u8> {
    b"a=candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host generation 0\r\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn node(i: u8) -> NodeId {
    Keypair::from_seed([i; 32]).node_id()
}

/// The frames under test, by name.
fn frames() -> Vec<(&'static str, Frame)> {
    let key = Keypair::from_seed([1; 32]);
    let room = RoomName::default();
    let nonce = [7; 32];
    let register = Frame::Register {
        public_key: key.public(),
        node_id: key.node_id(),
        signature: key.sign(&register_message(&nonce, &key.node_id(), &room)),
        room,
    };
    vec![
        (
            "unicast_3k",
            Frame::Unicast {
                to: node(2),
                payload: sdp_like(3 * 1024),
            },
        ),
        (
            "unicast_200",
            Frame::Unicast {
                to: node(2),
                payload: sdp_like(200),
            },
        ),
        (
            "welcome_8",
            Frame::Welcome {
                node_id: node(1),
                peers: (10..18).map(node).collect(),
                stun_port: Some(3478),
            },
        ),
        ("register", register),
    ]
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    // Short enough for a shared 2-core machine, long enough for stable medians.
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    configure(&mut group);
    for (name, frame) in frames() {
        let len = encode(&frame).expect("encodes").len();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(name, |b| {
            b.iter(|| encode(black_box(&frame)).expect("encodes"))
        });
    }
    add_copy_baseline(&mut group);
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    configure(&mut group);
    for (name, frame) in frames() {
        let bytes = encode(&frame).expect("encodes");
        assert_eq!(decode(&bytes).expect("decodes"), frame);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| decode(black_box(&bytes)).expect("decodes"))
        });
    }
    add_copy_baseline(&mut group);
    group.finish();
}

/// The floor: an owned copy of the encoded 3 KiB Unicast.
fn add_copy_baseline(group: &mut BenchmarkGroup<'_, WallTime>) {
    let (_, frame) = frames().swap_remove(0);
    let bytes = encode(&frame).expect("encodes");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("copy_to_vec/unicast_3k", |b| {
        b.iter(|| black_box(&bytes[..]).to_vec())
    });
}

/// Per relayed unicast the server decodes a Unicast and encodes a Transfer.
fn bench_relay_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay");
    configure(&mut group);
    let from = node(1);
    for (name, frame) in frames().into_iter().take(2) {
        let bytes = encode(&frame).expect("encodes");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| match decode(black_box(&bytes)).expect("decodes") {
                Frame::Unicast { payload, .. } => {
                    encode(&Frame::Transfer { from, payload }).expect("encodes")
                }
                other => unreachable!("not a unicast: {other:?}"),
            })
        });
    }
    group.finish();
}

/// Per registration the server decodes the Register and verifies its signature.
fn bench_register_auth(c: &mut Criterion) {
    let mut group = c.benchmark_group("register_auth");
    configure(&mut group);
    let nonce = [7; 32];
    let (_, frame) = frames().swap_remove(3);
    let bytes = encode(&frame).expect("encodes");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify", |b| {
        b.iter(|| match decode(black_box(&bytes)).expect("decodes") {
            Frame::Register {
                public_key,
                node_id,
                room,
                signature,
            } => {
                assert!(node_id.derives_from(&public_key));
                let signed = register_message(&nonce, &node_id, &room);
                public_key.verify(&signed, &signature).expect("verifies");
            }
            other => unreachable!("not a register: {other:?}"),
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_encode,
    bench_decode,
    bench_relay_path,
    bench_register_auth
);
criterion_main!(benches);
