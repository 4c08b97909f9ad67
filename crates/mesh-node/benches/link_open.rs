//! Link-open time, per-connection cost and burst delivery of `WebRtcTransport` over
//! 127.0.0.1, with the fast-open workarounds on (the default) and off (webrtc-rs's stock
//! timers), side by side in one run.
//!
//! `cargo bench -p mesh-node --bench link_open` (harness = false; about 30 s).
//!
//! A link's open time is from `open` on both transports to `LinkUp` on both. RSS and file
//! descriptors come from /proc/self; CPU time from /proc/self/task/*/schedstat; UDP
//! receive-buffer drops from the `RcvbufErrors` counter of /proc/net/snmp (system-wide). One
//! link is two PeerConnections in this process, so "per connection" is per PeerConnection.
//! Memory is measured in a fresh child process per configuration: in a process that has
//! already opened and closed links, new ones mostly reuse freed heap and look cheaper.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh_node::transport::webrtc::{Config, WebRtcTransport};
use mesh_node::transport::{Role, SendError, Transport, TransportEvent};
use mesh_proto::NodeId;
use mesh_proto::signal::SessionId;
use tokio::sync::mpsc;

/// Longest any one wait in the bench may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Argument that makes the bench a child measuring the cost of open links.
const COST_CHILD: &str = "--cost-child=";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match std::env::args().find_map(|arg| arg.strip_prefix(COST_CHILD).map(str::to_owned)) {
        Some(mode) => {
            let config = loopback().with_fast_open(mode == "fast");
            runtime.block_on(cost_per_connection(&mode, config, 100));
        }
        None => runtime.block_on(run()),
    }
}

async fn run() {
    let started = Instant::now();
    println!("link_open: WebRtcTransport over 127.0.0.1 (webrtc-rs 0.21.1), 2 tokio workers");
    let rmem = std::fs::read_to_string("/proc/sys/net/core/rmem_default").unwrap_or_default();
    println!("net.core.rmem_default = {} bytes", rmem.trim());
    println!();

    let fast = || loopback().with_fast_open(true);
    let stock = || loopback().with_fast_open(false);

    println!("link-open time, open → LinkUp on both sides (ms):");
    println!(
        "  {:<46} {:>4} {:>8} {:>8} {:>8} {:>8}",
        "case", "n", "p50", "p90", "p99", "max"
    );
    let fast_seq = open_times(fast(), 50, 1).await;
    report("fast open (ICE interval 5 ms), sequential", &fast_seq);
    let fast_conc = open_times(fast(), 50, 10).await;
    report("fast open (ICE interval 5 ms), 10 at a time", &fast_conc);
    for interval_ms in [1, 2] {
        let config = fast().with_ice_check_interval(Duration::from_millis(interval_ms));
        let times = open_times(config, 30, 1).await;
        report(
            &format!("fast open, ICE interval {interval_ms} ms, sequential"),
            &times,
        );
    }
    let stock_seq = open_times(stock(), 10, 1).await;
    report("stock webrtc-rs timers, sequential", &stock_seq);
    let stock_conc = open_times(stock(), 20, 10).await;
    report("stock webrtc-rs timers, 10 at a time", &stock_conc);
    println!(
        "  ratio stock/fast at p50: sequential {:.0}×, 10 at a time {:.0}×",
        percentile(&stock_seq, 50.0).as_secs_f64() / percentile(&fast_seq, 50.0).as_secs_f64(),
        percentile(&stock_conc, 50.0).as_secs_f64() / percentile(&fast_conc, 50.0).as_secs_f64(),
    );
    println!();

    println!(
        "cost of open links (100 links = 200 PeerConnections, 1 bound address each; \
         fresh process per line):"
    );
    for mode in ["fast", "stock"] {
        cost_in_child(mode);
    }
    println!();

    println!("burst of 1000 × 3 KiB messages, one direction, on one link:");
    for (name, limit) in [
        ("send-buffer limit 64 KiB (default)", 64 * 1024),
        ("send-buffer limit 256 KiB", 256 * 1024),
        ("no send-buffer limit", 0),
    ] {
        burst(
            name,
            loopback().with_send_buffer_limit(limit),
            1000,
            3 * 1024,
        )
        .await;
    }
    println!();
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
}

fn loopback() -> Config {
    Config::new().with_bind_addrs(vec!["127.0.0.1:0".parse().expect("an address")])
}

/// Opens `n` links in batches of `batch` concurrent opens; returns each link's open time.
async fn open_times(config: Config, n: usize, batch: usize) -> Vec<Duration> {
    let mut harness = Harness::new(config);
    let mut times = Vec::with_capacity(n);
    while times.len() < n {
        let count = batch.min(n - times.len());
        let opened = harness.open_links(count).await;
        times.extend(opened.values().copied());
        let sessions: Vec<SessionId> = opened.keys().copied().collect();
        harness.close_links(&sessions).await;
    }
    times
}

/// Runs [`cost_per_connection`] in a fresh process and prints its report.
fn cost_in_child(mode: &str) {
    let output = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg(format!("{COST_CHILD}{mode}"))
            .output()
    });
    match output {
        Ok(output) if output.status.success() => {
            print!("{}", String::from_utf8_lossy(&output.stdout));
        }
        Ok(output) => println!(
            "  {mode}: child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(err) => println!("  {mode}: could not start the child: {err}"),
    }
}

/// Opens `links` links, reports RSS and fds per PeerConnection and idle CPU, closes them
/// and checks that every fd came back.
async fn cost_per_connection(name: &str, config: Config, links: usize) {
    let mut harness = Harness::new(config);
    // Warm up allocator arenas and lazily initialised statics with one link.
    let warm = harness.open_links(1).await;
    harness
        .close_links(&warm.keys().copied().collect::<Vec<_>>())
        .await;

    let rss_before = rss_kib();
    let fds_before = fd_count();
    let mut sessions = Vec::new();
    for _ in 0..links / 10 {
        sessions.extend(harness.open_links(10).await.into_keys());
    }
    let connections = 2 * sessions.len();
    let rss_after = rss_kib();
    let fds_after = fd_count();

    let idle = Duration::from_secs(2);
    let cpu_before = cpu_time();
    tokio::time::sleep(idle).await;
    let cpu = cpu_time().saturating_sub(cpu_before);

    harness.close_links(&sessions).await;
    let fds_closed = fd_count();
    println!(
        "  {name:<13} {:>6.0} KiB RSS and {:.2} fds per connection; \
         idle CPU with {connections} connections: {:.1} % of one core; \
         fds after closing all: {} (before: {})",
        (rss_after.saturating_sub(rss_before)) as f64 / connections as f64,
        (fds_after.saturating_sub(fds_before)) as f64 / connections as f64,
        100.0 * cpu.as_secs_f64() / idle.as_secs_f64(),
        fds_closed,
        fds_before,
    );
}

/// Sends `count` messages of `size` bytes on one link and times their delivery.
async fn burst(name: &str, config: Config, count: usize, size: usize) {
    let mut harness = Harness::new(config);
    let opened = harness.open_links(1).await;
    let session = *opened.keys().next().expect("one link");
    // The offerer holds its first message until the answerer's first one arrives (or
    // 250 ms: `write_link` in transport/webrtc/session.rs); as the mesh does, the answerer
    // speaks first, so that the timing is the burst's alone.
    harness
        .b
        .send(session, Bytes::from_static(b"ready"))
        .expect("the answerer sends");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), harness.events.recv()).await {
            Ok(Some((Side::A, TransportEvent::Data { .. }))) => break,
            Ok(Some(_)) => {}
            other => panic!("the answerer's first message never arrived: {other:?}"),
        }
    }
    let message = Bytes::from(vec![0x5a; size]);
    let drops_before = udp_rcvbuf_errors();
    let started = Instant::now();
    let sender = Arc::clone(&harness.a);
    let send_all = tokio::spawn(async move {
        let mut full = 0u64;
        for _ in 0..count {
            loop {
                match sender.send(session, message.clone()) {
                    Ok(()) => break,
                    Err(SendError::Full) => {
                        full += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(SendError::Closed) => return full,
                }
            }
        }
        full
    });
    let mut received = 0;
    let outcome = loop {
        match tokio::time::timeout(Duration::from_secs(10), harness.events.recv()).await {
            Ok(Some((Side::B, TransportEvent::Data { .. }))) => {
                received += 1;
                if received == count {
                    break Ok(started.elapsed());
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break Err("the transports stopped".to_owned()),
            Err(_) => break Err(format!("only {received}/{count} delivered after 10 s")),
        }
    };
    let full = send_all.await.unwrap_or(0);
    let drops = udp_rcvbuf_errors().saturating_sub(drops_before);
    match outcome {
        Ok(elapsed) => println!(
            "  {name:<36} {:>7.1} ms, {:>6.1} MB/s, {drops:>4} UDP receive-buffer drops \
             (send queue full {full}×)",
            elapsed.as_secs_f64() * 1e3,
            (count * size) as f64 / elapsed.as_secs_f64() / 1e6,
        ),
        Err(err) => println!("  {name:<36} {err}, {drops} UDP receive-buffer drops"),
    }
    harness.close_links(&[session]).await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// Two transports whose signals are carried to each other, and their other events.
struct Harness {
    a: Arc<WebRtcTransport>,
    b: Arc<WebRtcTransport>,
    a_id: NodeId,
    b_id: NodeId,
    events: mpsc::Receiver<(Side, TransportEvent)>,
    next_session: u64,
}

impl Harness {
    fn new(config: Config) -> Self {
        let (a_tx, a_rx) = mpsc::channel(4096);
        let (b_tx, b_rx) = mpsc::channel(4096);
        let (seen_tx, seen_rx) = mpsc::channel(4096);
        let a = Arc::new(WebRtcTransport::new(config.clone(), a_tx));
        let b = Arc::new(WebRtcTransport::new(config, b_tx));
        tokio::spawn(pump(Side::A, a_rx, Arc::downgrade(&b), seen_tx.clone()));
        tokio::spawn(pump(Side::B, b_rx, Arc::downgrade(&a), seen_tx));
        Self {
            a,
            b,
            a_id: NodeId::from_bytes([0xa; 16]),
            b_id: NodeId::from_bytes([0xb; 16]),
            events: seen_rx,
            next_session: 1,
        }
    }

    /// Opens `n` links at once (a offers); returns each one's open time.
    async fn open_links(&mut self, n: usize) -> HashMap<SessionId, Duration> {
        let mut pending: HashMap<SessionId, (Instant, u8)> = HashMap::new();
        for _ in 0..n {
            let session = SessionId(self.next_session);
            self.next_session += 1;
            let started = Instant::now();
            self.b
                .open(session, self.a_id, Role::Answerer)
                .expect("answerer opens");
            self.a
                .open(session, self.b_id, Role::Offerer)
                .expect("offerer opens");
            pending.insert(session, (started, 0));
        }
        let mut opened = HashMap::new();
        while !pending.is_empty() {
            match self.next().await {
                (_, TransportEvent::LinkUp { session, .. }) => {
                    let Some((started, ups)) = pending.get_mut(&session) else {
                        continue;
                    };
                    *ups += 1;
                    if *ups == 2 {
                        opened.insert(session, started.elapsed());
                        pending.remove(&session);
                    }
                }
                (side, TransportEvent::Closed { session, reason }) => {
                    panic!("{session} closed on {side:?} while opening: {reason}")
                }
                _ => {}
            }
        }
        opened
    }

    /// Closes `sessions` from a's side and waits for `Closed` on both sides.
    async fn close_links(&mut self, sessions: &[SessionId]) {
        let mut pending: HashMap<SessionId, u8> = sessions.iter().map(|&s| (s, 0)).collect();
        for &session in sessions {
            self.a.close(session);
        }
        while !pending.is_empty() {
            if let (_, TransportEvent::Closed { session, .. }) = self.next().await
                && let Some(closed) = pending.get_mut(&session)
            {
                *closed += 1;
                if *closed == 2 {
                    pending.remove(&session);
                }
            }
        }
    }

    async fn next(&mut self) -> (Side, TransportEvent) {
        match tokio::time::timeout(DEADLINE, self.events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the transports stopped"),
            Err(_) => panic!("no event within {DEADLINE:?}"),
        }
    }
}

/// Carries one side's signals to the other transport and its other events to the bench.
async fn pump(
    side: Side,
    mut from: mpsc::Receiver<TransportEvent>,
    to: Weak<WebRtcTransport>,
    seen: mpsc::Sender<(Side, TransportEvent)>,
) {
    while let Some(event) = from.recv().await {
        match event {
            TransportEvent::LocalSignal { session, signal } => {
                if let Some(to) = to.upgrade() {
                    to.remote_signal(session, signal);
                }
            }
            other => {
                if seen.send((side, other)).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn report(name: &str, times: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  {name:<46} {:>4} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        times.len(),
        ms(percentile(times, 50.0)),
        ms(percentile(times, 90.0)),
        ms(percentile(times, 99.0)),
        ms(percentile(times, 100.0)),
    );
}

/// Nearest-rank percentile.
fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Resident set size of this process, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of this process.
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// CPU time of every live thread of this process.
fn cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// The system's count of UDP datagrams dropped for a full socket receive buffer.
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}
