//! Link setup, round-trip time and throughput of `WebRtcTransport` links relayed through a
//! TURN server over UDP (webrtc-rs's own TURN client), TCP and TLS (mesh-node's bridge,
//! `transport/webrtc/turn_stream.rs`), side by side in one run.
//!
//! `cargo bench -p mesh-node --bench turn_transports` (harness = false; 2 to 3 min).
//!
//! Needs coturn's `turnserver` on the PATH (`apt-get install coturn`): the bench starts one
//! on 127.0.0.1 (UDP and TCP on one port, TLS on another, with a certificate from a CA it
//! makes in a temporary directory) and kills it at the end. Every transport binds
//! 127.0.0.1 and is relay-only, so all traffic stays on 127.0.0.1 and every link goes
//! through the server: both ends allocate a relay, and the relayed leg between the two
//! allocations is UDP inside coturn whatever the client transport.
//!
//! For each transport:
//! - link setup: open → `LinkUp` on both sides (relay allocation, ICE, DTLS and SCTP), links
//!   opened one after another, each a fresh session closed after it opened;
//! - round trip: a 64-byte message from the offerer, echoed by the answerer's event pump,
//!   on one open link, after warm-up round trips;
//! - throughput: 1 KiB messages in one direction on that link, sent as fast as its send
//!   queue takes them (retrying after 1 ms when it is full), timed until the last arrives.
//!
//! What dominates (webrtc-rs 0.21.1, read in its sources and seen in packet timings): its
//! ICE agent waits 2 s before it nominates a relay pair (`DEFAULT_RELAY_ACCEPTANCE_MIN_WAIT`
//! in rtc-ice), and its PeerConnection driver drains the TURN client's output *before* it
//! drains the connection's own, so a packet sent through a relay waits for the driver's next
//! wake-up: the next incoming packet or timer, at worst the 200 ms ICE tick of a connected
//! link. Hence about 4 s to open a relayed link (the DTLS and SCTP handshakes advance about
//! one tick per flight) and round trips of about 200 ms, whatever the TURN transport.
//! Throughput depends on when the driver happens to wake, so runs of one transport can
//! differ tenfold: the table gives the median and the range of up to [`BURST_RUNS`] runs
//! (rounds start while [`BURST_BUDGET`] lasts), and a run that goes [`DEADLINE`] without a
//! message fails the bench.
//!
//! Since those waits are timers, not work (the bench uses a few percent of one core),
//! link setup and round trips run at the same time, for the three transports at once: each
//! transport has one pair of transports that opens and closes links one after another and
//! another pair that holds the measured link. One after another they would take about six
//! minutes; this way the bench takes two to three. The throughput runs, which are work,
//! take turns: round robin per repetition, rotating who goes first, so that a slow moment
//! of the machine is shared rather than landing on one transport. The TURN-stream counters
//! are the transports' own, summed over a transport's four
//! ([`WebRtcTransport::turn_stream_stats`]).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use mesh_node::transport::webrtc::{Config, IceServer, TurnStreamStats, WebRtcTransport};
use mesh_node::transport::{Role, SendError, Transport, TransportEvent};
use mesh_proto::NodeId;
use mesh_proto::signal::SessionId;
use mesh_testkit::turn::{Coturn, PASSWORD, USER};
use tokio::sync::mpsc;

/// Longest any one wait in the bench may take.
const DEADLINE: Duration = Duration::from_secs(20);
/// Longest a throughput run may take, if messages keep arriving (at most [`DEADLINE`]
/// apart): they arrive at very different rates from run to run (see the module docs).
const BURST_DEADLINE: Duration = Duration::from_secs(60);

/// Links opened per transport for the setup time.
const SETUP_LINKS: usize = 10;
/// Round trips per transport, after [`RTT_WARMUP`] unmeasured ones.
const RTT_SAMPLES: usize = 300;
const RTT_WARMUP: usize = 20;
const RTT_SIZE: usize = 64;
/// Messages per throughput run, their size, and runs per transport.
const BURST_COUNT: usize = 2000;
const BURST_SIZE: usize = 1024;
const BURST_RUNS: usize = 3;
/// No round of throughput runs starts after this much time in them (the first always
/// does).
const BURST_BUDGET: Duration = Duration::from_secs(40);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let started = Instant::now();
    let coturn = Coturn::start_with_tls();
    let (tls_url, ca) = coturn.tls_url();
    println!(
        "turn_transports: relay-only WebRtcTransport links through coturn on 127.0.0.1 \
         (webrtc-rs 0.21.1), 2 tokio workers"
    );
    println!(
        "machine: {} CPUs (nproc), kernel {} (uname -r); coturn {}",
        first_line("nproc", &[]),
        first_line("uname", &["-r"]),
        first_line("turnserver", &["--version"]),
    );
    println!();

    // The first is the baseline of the "vs UDP" columns.
    let mut cases: Vec<Case> = [
        ("TURN/UDP", coturn.url("udp"), None, "relay/udp"),
        ("TURN/TCP", coturn.url("tcp"), None, "relay/tcp"),
        ("TURN/TLS", tls_url, Some(ca), "relay/tls"),
    ]
    .into_iter()
    .map(|(name, url, ca, local)| Case::new(name, &url, ca, local))
    .collect();

    // Link setup and round trips at the same time, for all transports at once (see the
    // module docs): each transport opens links one after another on one pair of
    // transports, and opens the measured link and runs the round trips on another.
    let mut phases = Vec::new();
    let mut phase = Instant::now();
    join_all(cases.iter_mut().map(|case| async move {
        let setup = async {
            for _ in 0..SETUP_LINKS {
                let (session, took) = case.setup_harness.open_link().await;
                case.setup.push(took);
                case.setup_harness.close_link(session).await;
            }
        };
        let round_trips = async {
            let (session, pair) = case.harness.open_relayed_link(case.local).await;
            case.harness.round_trips(session, RTT_WARMUP).await;
            case.rtt = case.harness.round_trips(session, RTT_SAMPLES).await;
            case.link = Some(session);
            case.pair = pair;
        };
        tokio::join!(setup, round_trips);
    }))
    .await;
    phases.push(("link setup ‖ round trips", phase.elapsed()));
    phase = Instant::now();

    // Throughput on the measured links, one transport at a time.
    for rep in 0..BURST_RUNS {
        if rep > 0 && phase.elapsed() > BURST_BUDGET {
            break;
        }
        for case in rotated(&mut cases, rep) {
            let run = case
                .harness
                .burst(case.link(), BURST_COUNT, BURST_SIZE)
                .await;
            case.bursts.push(run);
        }
    }
    phases.push(("throughput", phase.elapsed()));
    phase = Instant::now();
    for case in &mut cases {
        case.harness.close_link(case.link()).await;
    }
    phases.push(("close", phase.elapsed()));

    report(&cases);
    drop(cases);
    drop(coturn);
    println!();
    let phases: Vec<String> = phases
        .iter()
        .map(|(name, took)| format!("{name} {:.1} s", took.as_secs_f64()))
        .collect();
    println!(
        "total bench time {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        phases.join(", ")
    );
}

/// One TURN transport under test: its pair of transports and what was measured.
struct Case {
    name: &'static str,
    /// The pair of transports that opens and closes links for the setup time.
    setup_harness: Harness,
    /// The pair of transports of the measured link.
    harness: Harness,
    setup: Vec<Duration>,
    rtt: Vec<Duration>,
    bursts: Vec<Burst>,
    /// The offerer's end of the selected candidate pair expected on its links.
    local: &'static str,
    /// The link of the round trips and throughput runs, once open.
    link: Option<SessionId>,
    /// The offerer's selected candidate pair on that link.
    pair: String,
}

impl Case {
    fn new(name: &'static str, url: &str, ca: Option<PathBuf>, local: &'static str) -> Self {
        let config = Config::new()
            .with_bind_addrs(vec!["127.0.0.1:0".parse().expect("an address")])
            .with_ice_servers(vec![IceServer::turn(url, USER, PASSWORD)])
            .with_turn_ca(ca)
            .with_relay_only(true);
        if let Err(err) = config.validate() {
            panic!("{name}: the configuration for {url} is refused: {err}");
        }
        Self {
            name,
            setup_harness: Harness::new(name, config.clone()),
            harness: Harness::new(name, config),
            setup: Vec::new(),
            rtt: Vec::new(),
            bursts: Vec::new(),
            local,
            link: None,
            pair: String::new(),
        }
    }

    fn link(&self) -> SessionId {
        self.link.expect("the measured link is open")
    }

    /// The median throughput run (of two, the slower).
    fn median_burst(&self) -> Burst {
        let mut runs = self.bursts.clone();
        runs.sort_by_key(|run| run.elapsed);
        runs[runs.len() / 2]
    }
}

/// One throughput run.
#[derive(Clone, Copy, Debug)]
struct Burst {
    /// From the first send to the last message's arrival.
    elapsed: Duration,
    /// How often the sender found the link's send queue full (and slept 1 ms).
    full: u64,
    /// UDP datagrams the system dropped for a full socket receive buffer meanwhile
    /// (`RcvbufErrors` of /proc/net/snmp, system-wide).
    drops: u64,
}

/// The cases in turn order for repetition `rep`: each repetition starts one later.
fn rotated(cases: &mut [Case], rep: usize) -> Vec<&mut Case> {
    let n = cases.len();
    let mut order: Vec<&mut Case> = cases.iter_mut().collect();
    order.rotate_left(rep % n);
    order
}

fn report(cases: &[Case]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let udp = &cases[0];
    let ratio = |x: f64, base: f64| format!("{:.2}×", x / base);

    println!("selected candidate pair (offerer's end, answerer's end) on the measured link:");
    for case in cases {
        println!("  {:<10} {}", case.name, case.pair);
    }
    println!();

    println!(
        "link setup, open → LinkUp on both sides, {SETUP_LINKS} links one after another (ms):"
    );
    println!(
        "  {:<10} {:>4} {:>8} {:>8} {:>8} {:>12}",
        "transport", "n", "p50", "p90", "max", "p50 vs UDP"
    );
    let udp_setup = ms(percentile(&udp.setup, 50.0));
    for case in cases {
        let p50 = ms(percentile(&case.setup, 50.0));
        println!(
            "  {:<10} {:>4} {:>8.1} {:>8.1} {:>8.1} {:>12}",
            case.name,
            case.setup.len(),
            p50,
            ms(percentile(&case.setup, 90.0)),
            ms(percentile(&case.setup, 100.0)),
            ratio(p50, udp_setup),
        );
    }
    println!();

    println!(
        "round trip of {RTT_SIZE} B (offerer → answerer → offerer) on one open link, \
         after {RTT_WARMUP} warm-up (ms):"
    );
    println!(
        "  {:<10} {:>4} {:>8} {:>8} {:>8} {:>12}",
        "transport", "n", "p50", "p99", "max", "p50 vs UDP"
    );
    let udp_rtt = ms(percentile(&udp.rtt, 50.0));
    for case in cases {
        let p50 = ms(percentile(&case.rtt, 50.0));
        println!(
            "  {:<10} {:>4} {:>8.3} {:>8.3} {:>8.3} {:>12}",
            case.name,
            case.rtt.len(),
            p50,
            ms(percentile(&case.rtt, 99.0)),
            ms(percentile(&case.rtt, 100.0)),
            ratio(p50, udp_rtt),
        );
    }
    println!();

    let runs = match udp.bursts.len() {
        1 => "one run".to_owned(),
        n => format!("median of {n} runs"),
    };
    println!(
        "throughput, {BURST_COUNT} × {} KiB one direction on that link, {runs} \
         (MB = 10^6 bytes):",
        BURST_SIZE / 1024,
    );
    println!(
        "  {:<10} {:>8} {:>7} {:>6} {:>13} {:>8} {:>11} {:>13}",
        "transport", "ms", "msg/s", "MB/s", "MB/s min–max", "vs UDP", "queue full", "rcvbuf drops"
    );
    let rate = |elapsed: Duration| BURST_COUNT as f64 / elapsed.as_secs_f64();
    let mbs = |elapsed: Duration| rate(elapsed) * BURST_SIZE as f64 / 1e6;
    let udp_rate = rate(udp.median_burst().elapsed);
    for case in cases {
        let median = case.median_burst();
        let slowest = case.bursts.iter().map(|b| b.elapsed).max().expect("runs");
        let fastest = case.bursts.iter().map(|b| b.elapsed).min().expect("runs");
        println!(
            "  {:<10} {:>8.1} {:>7.0} {:>6.2} {:>13} {:>8} {:>10}× {:>13}",
            case.name,
            ms(median.elapsed),
            rate(median.elapsed),
            mbs(median.elapsed),
            format!("{:.2}–{:.2}", mbs(slowest), mbs(fastest)),
            ratio(rate(median.elapsed), udp_rate),
            median.full,
            case.bursts.iter().map(|b| b.drops).sum::<u64>(),
        );
    }
    println!();

    println!("TURN-stream counters after the runs (all four transports of each):");
    println!(
        "  {:<10} {:>11} {:>5} {:>8} {:>7} {:>12} {:>14}",
        "transport", "connections", "open", "failures", "dropped", "bytes sent", "bytes received"
    );
    for case in cases {
        let all = [
            &case.setup_harness.a,
            &case.setup_harness.b,
            &case.harness.a,
            &case.harness.b,
        ]
        .map(|transport| transport.turn_stream_stats());
        let sum = |field: fn(&TurnStreamStats) -> u64| all.iter().map(field).sum::<u64>();
        println!(
            "  {:<10} {:>11} {:>5} {:>8} {:>7} {:>12} {:>14}",
            case.name,
            sum(|s| s.connections),
            sum(|s| s.open),
            sum(|s| s.failures),
            sum(|s| s.dropped),
            sum(|s| s.bytes_sent),
            sum(|s| s.bytes_received),
        );
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// Two transports whose signals are carried to each other, and their other events. The
/// answerer's pump echoes what it receives while `echo` is on.
struct Harness {
    name: &'static str,
    a: Arc<WebRtcTransport>,
    b: Arc<WebRtcTransport>,
    a_id: NodeId,
    b_id: NodeId,
    events: mpsc::Receiver<(Side, TransportEvent)>,
    echo: Arc<AtomicBool>,
    next_session: u64,
}

impl Harness {
    fn new(name: &'static str, config: Config) -> Self {
        let (a_tx, a_rx) = mpsc::channel(4096);
        let (b_tx, b_rx) = mpsc::channel(4096);
        let (seen_tx, seen_rx) = mpsc::channel(4096);
        let a = Arc::new(WebRtcTransport::new(config.clone(), a_tx));
        let b = Arc::new(WebRtcTransport::new(config, b_tx));
        let echo = Arc::new(AtomicBool::new(false));
        tokio::spawn(pump(
            Side::A,
            a_rx,
            Arc::downgrade(&b),
            None,
            seen_tx.clone(),
        ));
        let echoer = Some((Arc::downgrade(&b), Arc::clone(&echo)));
        tokio::spawn(pump(Side::B, b_rx, Arc::downgrade(&a), echoer, seen_tx));
        Self {
            name,
            a,
            b,
            a_id: NodeId::from_bytes([0xa; 16]),
            b_id: NodeId::from_bytes([0xb; 16]),
            events: seen_rx,
            echo,
            next_session: 1,
        }
    }

    /// Opens one link (a offers); returns it and its open time.
    async fn open_link(&mut self) -> (SessionId, Duration) {
        let session = SessionId(self.next_session);
        self.next_session += 1;
        let started = Instant::now();
        let until = started + DEADLINE;
        self.b
            .open(session, self.a_id, Role::Answerer)
            .expect("answerer opens");
        self.a
            .open(session, self.b_id, Role::Offerer)
            .expect("offerer opens");
        let mut ups = 0;
        while ups < 2 {
            match self.next(until, "LinkUp").await {
                (_, TransportEvent::LinkUp { session: s, .. }) if s == session => ups += 1,
                (side, TransportEvent::Closed { session, reason }) => panic!(
                    "{}: {session} closed on {side:?} while opening: {reason}",
                    self.name
                ),
                _ => {}
            }
        }
        (session, started.elapsed())
    }

    /// Opens the link to measure: opens it, lets the answerer speak first, and checks that
    /// its selected pair is relayed as `local` (e.g. `relay/tcp`) at the offerer's end.
    /// Returns it and its selected pair.
    async fn open_relayed_link(&mut self, local: &str) -> (SessionId, String) {
        let (session, _) = self.open_link().await;
        self.prime(session).await;
        let pair = self.selected_pair(session).await;
        assert!(
            pair.starts_with(local),
            "{}: the link is not relayed as expected: selected pair {pair}, expected {local} \
             at the offerer's end",
            self.name,
        );
        (session, pair)
    }

    /// Closes `session` on both sides and waits for `Closed` on both. (Over a relay the
    /// remote's close may not get through, so each side is closed locally.)
    async fn close_link(&mut self, session: SessionId) {
        let until = Instant::now() + DEADLINE;
        self.a.close(session);
        self.b.close(session);
        let mut closed = 0;
        while closed < 2 {
            if let (_, TransportEvent::Closed { session: s, .. }) = self.next(until, "Closed").await
                && s == session
            {
                closed += 1;
            }
        }
    }

    /// The answerer speaks first, so that the offerer's writer does not hold its first
    /// message (it waits for the remote's first one, or 250 ms: `write_link` in
    /// transport/webrtc/session.rs).
    async fn prime(&mut self, session: SessionId) {
        self.b
            .send(session, Bytes::from_static(b"ready"))
            .expect("the answerer sends");
        let until = Instant::now() + DEADLINE;
        loop {
            if let (Side::A, TransportEvent::Data { .. }) =
                self.next(until, "the answerer's first message").await
            {
                return;
            }
        }
    }

    /// `n` round trips of an [`RTT_SIZE`]-byte message on `session`; their times.
    async fn round_trips(&mut self, session: SessionId, n: usize) -> Vec<Duration> {
        self.echo.store(true, Ordering::Relaxed);
        let message = Bytes::from(vec![0x5a; RTT_SIZE]);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let until = started + DEADLINE;
            if let Err(err) = self.a.send(session, message.clone()) {
                panic!("{}: the offerer cannot send a ping: {err}", self.name);
            }
            loop {
                match self.next(until, "the echo").await {
                    (Side::A, TransportEvent::Data { session: s, bytes }) if s == session => {
                        assert_eq!(bytes.len(), RTT_SIZE, "{}: a wrong echo", self.name);
                        break;
                    }
                    (side, TransportEvent::Closed { session, reason }) => panic!(
                        "{}: {session} closed on {side:?} during round trips: {reason}",
                        self.name
                    ),
                    _ => {}
                }
            }
            times.push(started.elapsed());
        }
        self.echo.store(false, Ordering::Relaxed);
        times
    }

    /// Sends `count` messages of `size` bytes from a to b on `session`, as fast as the send
    /// queue takes them, and waits for them all: at most [`BURST_DEADLINE`], and at most
    /// [`DEADLINE`] without one arriving.
    async fn burst(&mut self, session: SessionId, count: usize, size: usize) -> Burst {
        let message = Bytes::from(vec![0xa5; size]);
        let sender = Arc::clone(&self.a);
        let queued = Arc::new(AtomicUsize::new(0));
        let queued_by_sender = Arc::clone(&queued);
        let drops_before = udp_rcvbuf_errors();
        let started = Instant::now();
        let end = started + BURST_DEADLINE;
        let send_all = tokio::spawn(async move {
            let mut full = 0u64;
            for _ in 0..count {
                loop {
                    match sender.send(session, message.clone()) {
                        Ok(()) => {
                            queued_by_sender.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
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
        let mut last = started;
        while received < count {
            let Some(event) = self.next_before(end.min(last + DEADLINE)).await else {
                panic!(
                    "{}: {received}/{count} messages arrived in {:.1} s, none in the last \
                     {:.1} s ({} queued, {} UDP receive-buffer drops); {}",
                    self.name,
                    started.elapsed().as_secs_f64(),
                    last.elapsed().as_secs_f64(),
                    queued.load(Ordering::Relaxed),
                    udp_rcvbuf_errors() - drops_before,
                    self.turn_streams()
                );
            };
            match event {
                (Side::B, TransportEvent::Data { session: s, .. }) if s == session => {
                    received += 1;
                    last = Instant::now();
                }
                (side, TransportEvent::Closed { session, reason }) => panic!(
                    "{}: {session} closed on {side:?} after {received}/{count} messages: \
                     {reason}",
                    self.name
                ),
                _ => {}
            }
        }
        let elapsed = started.elapsed();
        Burst {
            elapsed,
            full: send_all.await.expect("the sender task"),
            drops: udp_rcvbuf_errors().saturating_sub(drops_before),
        }
    }

    /// The offerer's selected candidate pair of `session`, e.g. `relay/tcp relay/udp`.
    async fn selected_pair(&self, session: SessionId) -> String {
        let pairs = self.a.candidate_pairs(&[session]).await;
        match pairs.first().copied().flatten() {
            Some(pair) => pair.to_string(),
            None => "unknown".to_owned(),
        }
    }

    /// The next event, if it comes before `until`; panics saying what was awaited if not.
    async fn next(&mut self, until: Instant, what: &str) -> (Side, TransportEvent) {
        match self.next_before(until).await {
            Some(event) => event,
            None => panic!(
                "{}: still waiting for {what} after {DEADLINE:?}; {}",
                self.name,
                self.turn_streams()
            ),
        }
    }

    /// The next event, or `None` if none comes before `until`.
    async fn next_before(&mut self, until: Instant) -> Option<(Side, TransportEvent)> {
        let until = tokio::time::Instant::from_std(until);
        match tokio::time::timeout_at(until, self.events.recv()).await {
            Ok(Some(event)) => Some(event),
            Ok(None) => panic!("{}: the transports stopped", self.name),
            Err(_) => None,
        }
    }

    /// The TURN-stream counters of both transports, for a failure message.
    fn turn_streams(&self) -> String {
        format!(
            "TURN streams: offerer {:?}, answerer {:?}",
            self.a.turn_stream_stats(),
            self.b.turn_stream_stats()
        )
    }
}

/// Carries one side's signals to the other transport and its other events to the bench.
/// With `echo` (its own transport and the flag), received messages go back on their link
/// while the flag is on, instead of to the bench.
async fn pump(
    side: Side,
    mut from: mpsc::Receiver<TransportEvent>,
    to: Weak<WebRtcTransport>,
    echo: Option<(Weak<WebRtcTransport>, Arc<AtomicBool>)>,
    seen: mpsc::Sender<(Side, TransportEvent)>,
) {
    while let Some(event) = from.recv().await {
        match event {
            TransportEvent::LocalSignal { session, signal } => {
                if let Some(to) = to.upgrade() {
                    to.remote_signal(session, signal);
                }
            }
            TransportEvent::Data { session, bytes }
                if echo
                    .as_ref()
                    .is_some_and(|(_, on)| on.load(Ordering::Relaxed)) =>
            {
                let own = echo.as_ref().and_then(|(own, _)| own.upgrade());
                if let Some(own) = own
                    && let Err(err) = own.send(session, bytes)
                {
                    // The offerer then waits for an echo that never comes, and says so.
                    eprintln!("{side:?}: echo on {session} not sent: {err}");
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

/// Nearest-rank percentile.
fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The first line `program args` prints, or why there is none.
fn first_line(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(output) => {
            // turnserver prints its version on stdout; look at stderr too.
            let text = [output.stdout, output.stderr].concat();
            let text = String::from_utf8_lossy(&text);
            text.lines()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .unwrap_or("?")
                .to_owned()
        }
        Err(err) => format!("? ({program}: {err})"),
    }
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
