//! End-to-end relay benchmark: the real bootstrap server in-process on 127.0.0.1:0, real
//! WebSocket clients, and a bare axum WebSocket echo server as the baseline.
//!
//! Run with `cargo bench -p bootstrap-server --bench relay`; add `-- --quick` (or set
//! `RELAY_BENCH_QUICK=1`) for a shorter run. Run without cargo bench's `--bench` flag (as
//! `cargo test --benches` does) it takes the quick settings too. `RUST_LOG=bootstrap_server=info`
//! shows the server's own logs. `docs/benchmarks.md` holds the figures.
//!
//! 1. Ping-pong latency, 200-byte payload: A sends a `Unicast` to B, B answers with a
//!    `Unicast` to A (A→server→B→server→A, two server hops), interleaved round by round
//!    with the same frame bounced off the echo server (A→echo→A, one hop), so that machine
//!    noise hits both.
//! 2. One-way relay throughput, 200-byte and 3 KiB payloads: several sender→receiver pairs
//!    in one room. Each sender keeps at most [`WINDOW`] frames in flight; its receiver
//!    acknowledges every [`ACK_EVERY`] frames with a small Unicast back, so no receiver
//!    queue overflows and the figure is what the server sustains without dropping. At the
//!    end `sent = delivered + dropped` is checked, and so are the server's own `/metrics`.
//! 3. Flood: one sender without flow control, to show what the server does with frames it
//!    cannot deliver (drops them with `TARGET_BUSY` to the sender, per its metrics).
//!
//! With `--fleet` (or `RELAY_BENCH_FLEET=1`) it measures a fleet instead: three servers on
//! one real Redis (`redis-server`, started on a loopback port; see `mesh_testkit::redis_server`)
//! next to a single server, side by side in one run:
//!
//! 4. Ping-pong latency between two clients of one server and between two clients at two
//!    servers of the fleet (every frame through Redis), interleaved round by round.
//! 5. One-way throughput as in 2 with 1, 2 and 3 servers of the fleet (pair `i`'s sender at
//!    server `i mod n`, its receiver at the next: every frame crosses servers), and the
//!    single server as the baseline.
//! 6. Registrations per second, and Redis's memory per registered node.
//!
//! The rate limits are raised out of the way. Everything talks to 127.0.0.1 only, every
//! wait has a deadline and every loop a bound: the whole run is cut off after
//! [`TOTAL_DEADLINE`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::ws::{Message as AxumMessage, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use bootstrap_server::Config;
use bytes::Bytes;
use futures_util::{SinkExt, Stream, StreamExt};
use mesh_proto::identity::{Keypair, register_message};
use mesh_proto::{ErrorCode, Frame, NodeId, RoomName};
use mesh_testkit::{Metrics, TestServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

#[path = "relay/fleet.rs"]
mod fleet;

/// The whole benchmark is abandoned (with an error) past this (twice that with `--fleet`,
/// which measures four set-ups).
const TOTAL_DEADLINE: Duration = Duration::from_secs(50);
/// Any single send, receive or connect.
const OP_DEADLINE: Duration = Duration::from_secs(10);
/// Payload of the ping-pong: an ICE candidate.
const PING_PAYLOAD: usize = 200;
/// Frames the flooding sender queues before flushing its socket.
const SEND_BATCH: usize = 32;
/// Frames a throughput sender may have in flight (sent, not yet acknowledged by its
/// receiver): half the server's default outbound queue, so no receiver queue overflows.
const WINDOW: u64 = 128;
/// A throughput receiver acknowledges every this many frames with a small Unicast back.
const ACK_EVERY: u64 = 16;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How much to measure.
#[derive(Clone, Copy, Debug)]
struct Settings {
    /// Discarded round trips per path before measuring.
    warmup_round_trips: usize,
    /// Rounds of (relay, echo) ping-pong; the order alternates each round.
    rounds: usize,
    /// Round trips per path per round.
    round_trips_per_round: usize,
    /// Concurrent sender→receiver pairs in the throughput test.
    pairs: usize,
    /// Sending before the throughput window opens.
    throughput_warmup: Duration,
    /// The throughput measurement window, per payload size.
    throughput_window: Duration,
    /// Payload sizes of the throughput test: an ICE candidate and an SDP.
    throughput_payloads: [usize; 2],
    /// The most time the flood (no flow control) runs.
    flood_time: Duration,
}

impl Settings {
    const FULL: Settings = Settings {
        warmup_round_trips: 300,
        rounds: 10,
        round_trips_per_round: 500,
        pairs: 4,
        throughput_warmup: Duration::from_millis(500),
        throughput_window: Duration::from_secs(3),
        throughput_payloads: [200, 3 * 1024],
        flood_time: Duration::from_secs(1),
    };
    const QUICK: Settings = Settings {
        warmup_round_trips: 50,
        rounds: 4,
        round_trips_per_round: 100,
        pairs: 2,
        throughput_warmup: Duration::from_millis(200),
        throughput_window: Duration::from_millis(500),
        throughput_payloads: [200, 3 * 1024],
        flood_time: Duration::from_millis(500),
    };
}

fn main() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        // The server's own logs, e.g. RUST_LOG=bootstrap_server=warn.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().collect();
    let fleet = args.iter().any(|a| a == "--fleet")
        || std::env::var("RELAY_BENCH_FLEET").is_ok_and(|v| !v.is_empty() && v != "0");
    let quick = args.iter().any(|a| a == "--quick")
        || !args.iter().any(|a| a == "--bench")
        || std::env::var("RELAY_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let settings = if quick {
        Settings::QUICK
    } else {
        Settings::FULL
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    println!(
        "relay bench ({}{}): server, echo baseline and clients share one tokio runtime \
         ({} worker threads) on {} cores; loopback only",
        if quick { "quick" } else { "full" },
        if fleet { ", fleet" } else { "" },
        runtime.metrics().num_workers(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let started = Instant::now();
    runtime.block_on(async {
        let run = async {
            if fleet {
                fleet::run(settings).await
            } else {
                run(settings).await
            }
        };
        let deadline = if fleet {
            TOTAL_DEADLINE * 2
        } else {
            TOTAL_DEADLINE
        };
        tokio::time::timeout(deadline, run)
            .await
            .with_context(|| format!("the benchmark did not finish within {deadline:?}"))?
    })?;
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    // Do not wait for sessions the server may still be closing.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn run(settings: Settings) -> Result<()> {
    let server = start_server().await;
    let echo = EchoServer::start().await?;

    ping_pong(&server, &echo, settings).await?;
    println!();
    let before = server.metrics().await;
    let mut totals = ThroughputTotals::default();
    for payload in settings.throughput_payloads {
        let end = throughput(&[&server], settings, payload, "").await?;
        totals.sent += end.sent;
        totals.acks += end.acks;
        totals.delivered += end.delivered;
        totals.busy += end.busy;
    }
    check_server_metrics(&[&server], &[before], &totals).await?;
    flood(&server, settings).await?;

    echo.stop().await;
    Ok(server.stop().await?)
}

// ---------------------------------------------------------------------------------------
// Servers

/// The real bootstrap server with rate limits raised out of the way.
async fn start_server() -> TestServer {
    TestServer::start(bench_config()).await
}

fn bench_config() -> Config {
    Config::default()
        .with_frames_per_second(10_000_000)
        .with_frame_burst(10_000_000)
        .with_max_connections(4096)
        .with_shutdown_grace(Duration::from_secs(2))
}

/// A minimal axum WebSocket echo server: the cost of one server hop with nothing on it.
struct EchoServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl EchoServer {
    async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().route(
            "/ws",
            get(|ws: WebSocketUpgrade| async { ws.on_upgrade(echo) }),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self { addr, stop, task })
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if within(&mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            AxumMessage::Binary(bytes) => AxumMessage::Binary(bytes),
            AxumMessage::Close(_) => return,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Clients

async fn within<F: Future>(fut: F) -> Result<F::Output> {
    tokio::time::timeout(OP_DEADLINE, fut)
        .await
        .with_context(|| format!("no progress within {OP_DEADLINE:?}"))
}

/// Connects with TCP_NODELAY, as a latency-sensitive client would.
async fn connect(url: &str) -> Result<Ws> {
    let (ws, _) = within(tokio_tungstenite::connect_async_with_config(
        url, None, true,
    ))
    .await?
    .with_context(|| format!("WebSocket handshake with {url}"))?;
    Ok(ws)
}

/// Connects, answers the challenge and registers in `room` with a fresh identity.
async fn join(url: &str, room: &str) -> Result<(Ws, NodeId)> {
    let mut ws = connect(url).await?;
    let nonce = match recv_frame(&mut ws).await? {
        Frame::Challenge { nonce, .. } => nonce,
        other => bail!("expected a Challenge, got {other:?}"),
    };
    let key = Keypair::generate();
    let room: RoomName = room.parse()?;
    let node_id = key.node_id();
    let signature = key.sign(&register_message(&nonce, &node_id, &room));
    let register = Frame::Register {
        public_key: key.public(),
        node_id,
        room,
        signature,
    };
    within(ws.send(encode(&register)?)).await??;
    match recv_frame(&mut ws).await? {
        Frame::Welcome { node_id: got, .. } if got == node_id => Ok((ws, node_id)),
        other => bail!("expected a Welcome for {node_id}, got {other:?}"),
    }
}

fn encode(frame: &Frame) -> Result<Message> {
    Ok(Message::Binary(mesh_proto::encode(frame)?.into()))
}

/// The next frame, skipping pings and pongs.
async fn recv_frame<S>(stream: &mut S) -> Result<Frame>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        let msg = within(stream.next())
            .await?
            .context("connection closed")??;
        match msg {
            Message::Binary(bytes) => return Ok(mesh_proto::decode(&bytes)?),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => bail!("unexpected message {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Ping-pong latency

/// Prints a latency table, and the ratios of the first path to the second.
fn print_latency(paths: &[(&str, &Stats)], ratio: &str) {
    println!(
        "{:<34} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "path", "n", "mean µs", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    for (name, s) in paths {
        println!(
            "{name:<34} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            s.n, s.mean, s.p50, s.p90, s.p99, s.max
        );
    }
    let (a, b) = (paths[0].1, paths[1].1);
    println!(
        // No ratio of maxima: a single preempted round trip decides those.
        "{:<34} {:>7} {:>8.2}× {:>8.2}× {:>8.2}× {:>8.2}× {:>9}",
        ratio,
        "",
        a.mean / b.mean,
        a.p50 / b.p50,
        a.p90 / b.p90,
        a.p99 / b.p99,
        "-",
    );
}

async fn ping_pong(server: &TestServer, echo: &EchoServer, settings: Settings) -> Result<()> {
    let url = server.url();
    let (mut a, _) = join(&url, "ping").await?;
    let (b, b_id) = join(&url, "ping").await?;
    let bouncer = tokio::spawn(bounce(b));
    let mut c = connect(&echo.url()).await?;
    let payload = vec![0x5a; PING_PAYLOAD];

    for _ in 0..settings.warmup_round_trips {
        relay_round_trip(&mut a, b_id, &payload).await?;
        echo_round_trip(&mut c, b_id, &payload).await?;
    }
    let per_path = settings.rounds * settings.round_trips_per_round;
    let mut relay = Vec::with_capacity(per_path);
    let mut echoed = Vec::with_capacity(per_path);
    let mut round_ratios = Vec::with_capacity(settings.rounds);
    for round in 0..settings.rounds {
        let (mut r, mut e) = (Vec::new(), Vec::new());
        for path in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            for _ in 0..settings.round_trips_per_round {
                if path == 0 {
                    r.push(relay_round_trip(&mut a, b_id, &payload).await?);
                } else {
                    e.push(echo_round_trip(&mut c, b_id, &payload).await?);
                }
            }
        }
        round_ratios.push(Stats::of(&mut r).p50 / Stats::of(&mut e).p50);
        relay.extend(r);
        echoed.extend(e);
    }
    bouncer.abort();

    let relay = Stats::of(&mut relay);
    let echoed = Stats::of(&mut echoed);
    println!(
        "ping-pong, {PING_PAYLOAD}-byte payload ({} B frame), {} round trips per path, \
         interleaved in {} rounds of {}",
        mesh_proto::encode(&unicast(b_id, &payload))?.len(),
        relay.n,
        settings.rounds,
        settings.round_trips_per_round
    );
    print_latency(
        &[
            ("relay  A→server→B→server→A", &relay),
            ("echo   A→echo→A (baseline)", &echoed),
        ],
        "ratio relay / echo",
    );
    round_ratios.sort_by(f64::total_cmp);
    println!(
        "per-round ratio of medians: min {:.2}×, median {:.2}×, max {:.2}×",
        round_ratios[0],
        round_ratios[round_ratios.len() / 2],
        round_ratios[round_ratios.len() - 1]
    );
    Ok(())
}

fn unicast(to: NodeId, payload: &[u8]) -> Frame {
    Frame::Unicast {
        to,
        payload: payload.to_vec(),
    }
}

/// B's side of the relay ping-pong: every Transfer goes back to its sender as a Unicast.
async fn bounce(mut ws: Ws) -> Result<()> {
    loop {
        match recv_frame(&mut ws).await? {
            Frame::Transfer { from, payload } => {
                ws.send(encode(&Frame::Unicast { to: from, payload })?)
                    .await?;
            }
            other => bail!("B expected a Transfer, got {other:?}"),
        }
    }
}

/// A→server→B→server→A. A encodes its Unicast and decodes the Transfer inside the timing.
async fn relay_round_trip(a: &mut Ws, b: NodeId, payload: &[u8]) -> Result<Duration> {
    let start = Instant::now();
    within(a.send(encode(&unicast(b, payload))?)).await??;
    match recv_frame(a).await? {
        Frame::Transfer { from, payload: got } if from == b && got.len() == payload.len() => {
            Ok(start.elapsed())
        }
        other => bail!("A expected B's Transfer, got {other:?}"),
    }
}

/// A→echo→A with the same frame, encoded and decoded the same way.
async fn echo_round_trip(c: &mut Ws, b: NodeId, payload: &[u8]) -> Result<Duration> {
    let start = Instant::now();
    within(c.send(encode(&unicast(b, payload))?)).await??;
    match recv_frame(c).await? {
        Frame::Unicast { payload: got, .. } if got.len() == payload.len() => Ok(start.elapsed()),
        other => bail!("the echo server sent back {other:?}"),
    }
}

/// Latency statistics in microseconds (nearest-rank percentiles).
#[derive(Debug)]
struct Stats {
    n: usize,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &mut [Duration]) -> Self {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let rank = |p: f64| us(samples[((p * samples.len() as f64).ceil() as usize).max(1) - 1]);
        Self {
            n: samples.len(),
            mean: samples.iter().map(|&d| us(d)).sum::<f64>() / samples.len() as f64,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: us(samples[samples.len() - 1]),
        }
    }
}

// ---------------------------------------------------------------------------------------
// One-way throughput

/// Counters of one sender→receiver pair.
#[derive(Debug, Default)]
struct PairCounters {
    sent: AtomicU64,
    delivered: AtomicU64,
    delivered_payload_bytes: AtomicU64,
    delivered_wire_bytes: AtomicU64,
    busy: AtomicU64,
    acks: AtomicU64,
}

/// A snapshot of the sum over all pairs.
#[derive(Clone, Copy, Debug)]
struct Snapshot {
    at: Instant,
    sent: u64,
    delivered: u64,
    payload_bytes: u64,
    wire_bytes: u64,
    busy: u64,
    acks: u64,
}

fn snapshot(pairs: &[Arc<PairCounters>]) -> Snapshot {
    let sum = |f: fn(&PairCounters) -> &AtomicU64| {
        pairs
            .iter()
            .map(|p| f(p).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    Snapshot {
        at: Instant::now(),
        sent: sum(|p| &p.sent),
        delivered: sum(|p| &p.delivered),
        payload_bytes: sum(|p| &p.delivered_payload_bytes),
        wire_bytes: sum(|p| &p.delivered_wire_bytes),
        busy: sum(|p| &p.busy),
        acks: sum(|p| &p.acks),
    }
}

/// What the throughput runs sent in total, to compare with the server's metrics.
#[derive(Debug, Default)]
struct ThroughputTotals {
    sent: u64,
    acks: u64,
    delivered: u64,
    busy: u64,
}

/// Runs the windowed throughput test for one payload size; returns the final counts.
///
/// With several servers (a fleet), pair `i`'s sender is at server `i mod n` and its receiver
/// at the next one, so every frame crosses from one server to another.
async fn throughput(
    servers: &[&TestServer],
    settings: Settings,
    payload_len: usize,
    label: &str,
) -> Result<Snapshot> {
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let room = format!("throughput-{payload_len}");
    let stop = CancellationToken::new();
    // Register everyone first, so no frame goes to a peer that is not there yet.
    let mut joined = Vec::new();
    for i in 0..settings.pairs {
        let (from, to) = (&urls[i % urls.len()], &urls[(i + 1) % urls.len()]);
        joined.push((join(from, &room).await?, join(to, &room).await?));
    }
    let mut counters = Vec::new();
    let mut tasks = Vec::new();
    for ((sender, _), (receiver, receiver_id)) in joined {
        let c = Arc::new(PairCounters::default());
        counters.push(c.clone());
        let frame = mesh_proto::encode(&unicast(receiver_id, &vec![0xa5; payload_len]))?;
        tasks.push(tokio::spawn(receive(receiver, c.clone())));
        tasks.push(tokio::spawn(send(sender, frame.into(), c, stop.clone())));
    }

    tokio::time::sleep(settings.throughput_warmup).await;
    let start = snapshot(&counters);
    tokio::time::sleep(settings.throughput_window).await;
    let end = snapshot(&counters);
    stop.cancel();

    // Let the frames in flight arrive: every frame sent is delivered or reported busy.
    let drain_deadline = Instant::now() + Duration::from_secs(3);
    let mut last = snapshot(&counters);
    while last.sent != last.delivered + last.busy && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        last = snapshot(&counters);
    }
    for task in tasks {
        if task.is_finished() {
            if let Ok(Err(e)) = task.await {
                println!("warning: a throughput client failed: {e:#}");
            }
        } else {
            task.abort();
        }
    }

    let secs = (end.at - start.at).as_secs_f64();
    let rate = |a: u64, b: u64| (b - a) as f64 / secs;
    if payload_len == settings.throughput_payloads[0] && label.is_empty() {
        println!(
            "one-way relay throughput, {} concurrent sender→receiver pairs in one room, \
             window of {WINDOW} frames per sender (acknowledged every {ACK_EVERY}), \
             {secs:.1} s measured after {:.1} s warm-up (MB = 10^6 bytes)",
            settings.pairs,
            settings.throughput_warmup.as_secs_f64()
        );
        println!(
            "{:>8} {:>14} {:>13} {:>10} {:>10} {:>8}",
            "payload", "delivered/s", "payload MB/s", "wire MB/s", "dropped", "lost"
        );
    }
    println!(
        "{label}{:>6} B {:>14.0} {:>13.1} {:>10.1} {:>10} {:>8}",
        payload_len,
        rate(start.delivered, end.delivered),
        rate(start.payload_bytes, end.payload_bytes) / 1e6,
        rate(start.wire_bytes, end.wire_bytes) / 1e6,
        last.busy,
        last.sent - last.delivered - last.busy,
    );
    Ok(last)
}

/// Sends the same Unicast as fast as its window allows until stopped, then stays
/// connected (so acknowledgements in flight still have somewhere to go) until aborted.
async fn send(
    mut ws: Ws,
    frame: Bytes,
    c: Arc<PairCounters>,
    stop: CancellationToken,
) -> Result<()> {
    let (mut sent, mut acked) = (0u64, 0u64);
    while !stop.is_cancelled() {
        while sent - acked < WINDOW {
            within(ws.feed(Message::Binary(frame.clone()))).await??;
            sent += 1;
            c.sent.store(sent, Ordering::Relaxed);
        }
        within(ws.flush()).await??;
        match recv_frame(&mut ws).await? {
            Frame::Transfer { payload, .. } => {
                let count: [u8; 8] = payload
                    .try_into()
                    .map_err(|p| anyhow::anyhow!("an acknowledgement of {} bytes", Vec::len(&p)))?;
                acked = acked.max(u64::from_le_bytes(count));
            }
            Frame::Error { code, .. } if code == ErrorCode::TARGET_BUSY => {
                c.busy.fetch_add(1, Ordering::Relaxed);
            }
            other => bail!("a sender expected an acknowledgement, got {other:?}"),
        }
    }
    std::future::pending().await
}

/// Counts Transfers and acknowledges every [`ACK_EVERY`]th, until aborted.
async fn receive(mut ws: Ws, c: Arc<PairCounters>) -> Result<()> {
    let mut count = 0u64;
    loop {
        let msg = ws.next().await.context("the server closed a receiver")??;
        let Message::Binary(bytes) = msg else {
            continue;
        };
        match mesh_proto::decode(&bytes)? {
            Frame::Transfer { from, payload } => {
                count += 1;
                c.delivered.store(count, Ordering::Relaxed);
                c.delivered_payload_bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                c.delivered_wire_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                if count.is_multiple_of(ACK_EVERY) {
                    let ack = unicast(from, &count.to_le_bytes());
                    within(ws.send(encode(&ack)?)).await??;
                    c.acks.fetch_add(1, Ordering::Relaxed);
                }
            }
            other => bail!("a receiver expected a Transfer, got {other:?}"),
        }
    }
}

/// A sender that ignores flow control: one pair, open loop, 200-byte Unicasts written as
/// fast as the socket takes them, for at most `settings.flood_time`. Reports what the
/// server did with them, from its own metrics.
async fn flood(server: &TestServer, settings: Settings) -> Result<()> {
    let url = server.url();
    let (sender, _) = join(&url, "flood").await?;
    let (mut receiver, receiver_id) = join(&url, "flood").await?;
    let before = server.metrics().await;
    let frame: Bytes = mesh_proto::encode(&unicast(receiver_id, &[0xa5; PING_PAYLOAD]))?.into();
    let delivered = Arc::new(AtomicU64::new(0));
    let counting = delivered.clone();
    let receiving = tokio::spawn(async move {
        while let Some(Ok(msg)) = receiver.next().await {
            if msg.is_binary() {
                counting.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let (mut sink, mut stream) = sender.split();
    let start = Instant::now();
    let (mut sent, mut busy) = (0u64, 0u64);
    let sending = async {
        while start.elapsed() < settings.flood_time {
            for _ in 0..SEND_BATCH {
                if sink.feed(Message::Binary(frame.clone())).await.is_err() {
                    return;
                }
                sent += 1;
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    };
    let reading = tokio::time::timeout(settings.flood_time + Duration::from_secs(1), async {
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Binary(bytes) = msg
                && let Ok(Frame::Error { code, .. }) = mesh_proto::decode(&bytes)
                && code == ErrorCode::TARGET_BUSY
            {
                busy += 1;
            }
        }
        start.elapsed()
    });
    let ((), closed) = tokio::join!(sending, reading);
    drop((sink, stream));
    // Let the receiver take what was queued for it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    receiving.abort();

    let after = server.metrics().await;
    let delta = |series: &str| after.value(series) - before.value(series);
    println!(
        "\nflood (no flow control), 1 pair, {PING_PAYLOAD}-byte payload, up to {:.1} s:",
        settings.flood_time.as_secs_f64()
    );
    println!(
        "  client wrote {sent} frames; server read {:.0} unicasts, delivered {} transfers \
         ({} received), dropped {:.0} as TARGET_BUSY; the sender received {busy} TARGET_BUSY \
         notices ({:.0} more notices dropped at the sender's full queue)",
        delta("bootstrap_frames_in_total{kind=\"unicast\"}"),
        delta("bootstrap_frames_out_total{kind=\"transfer\"}"),
        delivered.load(Ordering::Relaxed),
        delta("bootstrap_frames_dropped_total"),
        delta("bootstrap_notices_dropped_total"),
    );
    match closed {
        Ok(after) => println!(
            "  the server closed the sender's connection after {:.0} ms",
            after.as_secs_f64() * 1e3
        ),
        Err(_) => println!("  the sender stayed connected"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The server's own view

/// Compares the server's own counters over the throughput runs with the clients' counts,
/// and prints the server's mean unicast latency under load.
async fn check_server_metrics(
    servers: &[&TestServer],
    before: &[Metrics],
    totals: &ThroughputTotals,
) -> Result<()> {
    // The last acknowledgements may still be on their way into the server: retry briefly.
    for attempt in 0.. {
        let mut after = Vec::new();
        for server in servers {
            after.push(server.metrics().await);
        }
        // Summed over the servers (a fleet: each frame is counted in at its sender's).
        let sum = |series: &str| -> f64 {
            after
                .iter()
                .zip(before)
                // A series a server never counted yet is absent: zero.
                .map(|(a, b)| a.get(series).unwrap_or(0.0) - b.get(series).unwrap_or(0.0))
                .sum()
        };
        let delta = |series: &str| sum(series) as u64;
        let unicasts_in = delta("bootstrap_frames_in_total{kind=\"unicast\"}");
        let dropped = delta("bootstrap_frames_dropped_total");
        if (unicasts_in != totals.sent + totals.acks || dropped != totals.busy) && attempt < 20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        println!(
            "\nserver /metrics over the throughput runs: {unicasts_in} unicasts in, {} transfers \
             out, {dropped} dropped; clients counted {} data frames + {} acknowledgements \
             sent, {} delivered, {} TARGET_BUSY",
            delta("bootstrap_frames_out_total{kind=\"transfer\"}"),
            totals.sent,
            totals.acks,
            totals.delivered,
            totals.busy
        );
        let latency_sum = sum("bootstrap_unicast_latency_seconds_sum");
        let latency_count = delta("bootstrap_unicast_latency_seconds_count");
        if latency_count > 0 {
            println!(
                "server-side unicast latency (arrival → written to the receiver's socket), \
                 mean under load: {:.1} µs",
                latency_sum / latency_count as f64 * 1e6
            );
        }
        if unicasts_in != totals.sent + totals.acks || dropped != totals.busy {
            bail!("the server's metrics disagree with what the clients counted");
        }
        break;
    }
    Ok(())
}
