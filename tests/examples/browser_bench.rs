//! A browser node measured against a native one, side by side in one run
//! (docs/benchmarks.md §15). Run it with `scripts/browser-bench.sh`, which builds the bundle
//! and runs this in a loopback-only network namespace, as the browser test does.
//!
//! 1. Join: `JOINS` times each, alternating, a browser page and a native node join a mesh of
//!    three native nodes: time to registered, to the first link, to three links (every other
//!    node). The page's times count from its navigation start (page load and wasm compile
//!    included, and reported apart); the native node's from `Node::join`.
//! 2. Link setup (offer created → DataChannel open) of the sessions those joiners offered.
//! 3. Over one link, from a native node: the round trip of a 32-byte unicast echoed by a
//!    browser neighbour and by a native neighbour (`ROUNDS` each, alternating), and the
//!    messages per second of 100-byte unicasts, `WINDOW` in flight (the last of each window
//!    echoed; links are ordered, so its echo means the window arrived), in runs that stay
//!    within the receiver's per-link route budget.
//! 4. The .wasm's size, raw and gzipped, and a page's memory with its links.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstrap_server::Config;
use mesh_e2e::browser::Browser;
use mesh_e2e::{TestServer, wait_until, webrtc_mesh};
use mesh_node::Event;
use mesh_proto::NodeId;
use tokio::sync::mpsc;

/// Joins of each kind; `BENCH_JOINS` overrides.
const JOINS: usize = 5;
const ROUNDS: usize = 200;
const WINDOW: usize = 64;
/// Messages per throughput run: within the receiver's per-link route budget (2 000/s, burst
/// 4 000: `mesh_core::Config::route_budget`), which drops what a neighbour sends beyond it
/// (counted in `throttled`): the runs measure the link, not the budget.
const THROUGHPUT_MSGS: usize = 1_024;
const THROUGHPUT_RUNS: usize = 5;
const LINKS: Duration = Duration::from_secs(60);

fn overlay() -> mesh_core::Config {
    // Defaults, but a mesh of four can only give three links.
    mesh_core::Config::default().with_min_degree(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    assert!(
        std::hint::black_box(bootstrap_server::web::BUNDLE_EMBEDDED),
        "run scripts/build-web.sh first"
    );
    let server = TestServer::start(Config::default()).await;
    let mut natives = webrtc_mesh(&server, 3, overlay()).await;
    let mut browser = Browser::launch().await;
    let url = format!("http://{}/", server.addr());

    // 1 and 2: joins, alternating.
    let mut page_rows = Vec::new();
    let mut native_rows = Vec::new();
    let mut page_setup = Vec::new();
    let mut native_setup = Vec::new();
    let joins = std::env::var("BENCH_JOINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(JOINS);
    for _ in 0..joins {
        let page = browser.open(&url).await;
        let times = wait_until("the page reached three links", LINKS, async || {
            let t = browser.eval(page, "window.mesh.times").await;
            match t["linkUp"].as_array() {
                Some(ups) if ups.len() >= 3 => Ok(t),
                _ => Err(format!("{t}")),
            }
        })
        .await;
        let ms = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        let ups = times["linkUp"].as_array().expect("array");
        page_rows.push([
            ms(&times["script"]),
            ms(&times["joined"]),
            ms(&ups[0]),
            ms(&ups[2]),
        ]);
        let stats = browser.eval(page, "window.mesh.node.stats()").await;
        for v in stats["link_setup_ms"].as_array().into_iter().flatten() {
            page_setup.push(ms(v));
        }
        browser.eval(page, "window.mesh.node.leave()").await;
        browser.close(page).await;

        let start = Instant::now();
        let mut node = mesh_e2e::join_webrtc(&server, overlay()).await;
        let joined = start.elapsed();
        let mut ups = Vec::new();
        while ups.len() < 3 {
            match tokio::time::timeout(LINKS, node.events.recv()).await {
                Ok(Some(Event::LinkUp { .. })) => ups.push(start.elapsed()),
                Ok(Some(_)) => {}
                _ => panic!("the native joiner did not reach three links"),
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        native_rows.push([f64::NAN, ms(joined), ms(ups[0]), ms(ups[2])]);
        let stats = node.node.stats().await.expect("running");
        native_setup.extend(stats.link_setup.iter().map(|d| ms(*d)));
        let id = node.node.id();
        node.node.leave().await.expect("leave");
        // The mesh notices it left before the next joiner comes.
        for n in &natives {
            wait_until("the joiner is gone", LINKS, async || {
                !n.node.neighbours().await.expect("running").contains(&id)
            })
            .await;
        }
    }

    // 3: a browser neighbour and a native neighbour of natives[0].
    let page = browser.open(&url).await;
    let page_id: NodeId = wait_until("the page joined", LINKS, async || {
        let id = browser
            .eval(page, "window.mesh?.node?.nodeId ?? null")
            .await;
        id.as_str().map(|s| s.parse().expect("id")).ok_or("not yet")
    })
    .await;
    // Echo what starts with 1 or 2 (the native side does the same below).
    browser
        .eval(
            page,
            "window.mesh.node.onEvent((e) => { if (e.type === 'message' && e.data[0] !== 0) \
             window.mesh.node.send(e.from, e.data); }), true",
        )
        .await;
    let echo = mesh_e2e::join_webrtc(&server, overlay()).await;
    let echo_id = echo.node.id();
    let echo_node = Arc::new(echo.node);
    let mut echo_events = echo.events;
    let echoing = echo_node.clone();
    tokio::spawn(async move {
        while let Some(event) = echo_events.recv().await {
            if let Event::Message { from, data } = event
                && data.first() != Some(&0)
            {
                let _ = echoing.send(from, data).await;
            }
        }
    });
    let a = natives.remove(0);
    wait_until("node A neighbours both", LINKS, async || {
        let n = a.node.neighbours().await.expect("running");
        n.contains(&page_id) && n.contains(&echo_id)
    })
    .await;
    // A's messages, forwarded to a channel the measuring loops read.
    let (tx, mut replies) = mpsc::channel::<(NodeId, Vec<u8>)>(1024);
    let mut a_events = a.events;
    tokio::spawn(async move {
        while let Some(event) = a_events.recv().await {
            if let Event::Message { from, data } = event
                && tx.send((from, data)).await.is_err()
            {
                break;
            }
        }
    });
    let a_node = a.node;
    let mut rtt_page = Vec::new();
    let mut rtt_native = Vec::new();
    for round in 0..ROUNDS as u32 {
        for (to, out) in [(page_id, &mut rtt_page), (echo_id, &mut rtt_native)] {
            let mut ping = vec![1u8; 32];
            ping[1..5].copy_from_slice(&round.to_le_bytes());
            let start = Instant::now();
            a_node.send(to, ping.clone()).await.expect("send");
            if !wait_echo(&mut replies, to, &ping).await {
                let stats = browser.eval(page, "window.mesh.node.stats()").await;
                panic!("no echo from {to} (the page is {page_id}); the page's stats: {stats}");
            }
            out.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let mut rate_page = Vec::new();
    let mut rate_native = Vec::new();
    for run in 0..THROUGHPUT_RUNS {
        // The receivers' route budgets refill (2 000/s) between runs: a benchmark's pause,
        // not a wait for a condition.
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (to, out) in [(page_id, &mut rate_page), (echo_id, &mut rate_native)] {
            let start = Instant::now();
            for window in 0..THROUGHPUT_MSGS / WINDOW {
                for i in 0..WINDOW {
                    let mut msg = vec![0u8; 100];
                    if i == WINDOW - 1 {
                        msg[0] = 2;
                        msg[1..5]
                            .copy_from_slice(&((run * 1_000_000 + window) as u32).to_le_bytes());
                    }
                    a_node.send(to, msg.clone()).await.expect("send");
                    if i == WINDOW - 1 && !wait_echo(&mut replies, to, &msg).await {
                        let stats = browser.eval(page, "window.mesh.node.stats()").await;
                        let echo = echo_node.stats().await.expect("running").overlay;
                        let a = a_node.stats().await.expect("running").overlay;
                        panic!(
                            "no echo from {to} (page {page_id}) in window {window}; page {stats}\n\
                             native echo {echo:?}\nA {a:?}"
                        );
                    }
                }
            }
            out.push(THROUGHPUT_MSGS as f64 / start.elapsed().as_secs_f64());
        }
    }

    // 4: sizes and memory.
    let wasm = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../bootstrap-server/web/pkg/mesh_web_bg.wasm"),
    )
    .expect("the bundle");
    let gz = gzip_len(&wasm);
    let metrics = browser.memory(page).await;
    let wasm_memory = browser
        .eval(page, "window.mesh.wasm.memory.buffer.byteLength")
        .await;
    let links = browser
        .eval(page, "window.mesh.node.neighbours().length")
        .await;

    println!("## browser vs native, one run ({joins} joins each, alternating)\n");
    println!("| joiner | page loaded | registered | first link | three links |");
    println!("|---|---|---|---|---|");
    for (name, rows) in [("browser", &page_rows), ("native", &native_rows)] {
        let col = |k: usize| median(rows.iter().map(|r| r[k]).filter(|v| !v.is_nan()).collect());
        println!(
            "| {name} (median ms) | {} | {} | {} | {} |",
            fmt(col(0)),
            fmt(col(1)),
            fmt(col(2)),
            fmt(col(3))
        );
    }
    println!("\nraw rows (ms): browser {page_rows:.0?}\nnative {native_rows:.0?}\n");
    println!("| | browser offerer | native offerer |\n|---|---|---|");
    println!(
        "| link setup median / max (ms), n | {} / {} , {} | {} / {} , {} |",
        fmt(median(page_setup.clone())),
        fmt(max(&page_setup)),
        page_setup.len(),
        fmt(median(native_setup.clone())),
        fmt(max(&native_setup)),
        native_setup.len()
    );
    println!("\n| over one link from a native node | to a browser | to a native node | ratio |");
    println!("|---|---|---|---|");
    let (p50p, p50n) = (pct(&rtt_page, 50.0), pct(&rtt_native, 50.0));
    let (p99p, p99n) = (pct(&rtt_page, 99.0), pct(&rtt_native, 99.0));
    println!(
        "| RTT p50 (ms), {ROUNDS} rounds | {p50p:.2} | {p50n:.2} | {:.2} |",
        p50p / p50n
    );
    println!(
        "| RTT p99 (ms) | {p99p:.2} | {p99n:.2} | {:.2} |",
        p99p / p99n
    );
    let (rp, rn) = (median(rate_page.clone()), median(rate_native.clone()));
    println!(
        "| messages/s (100 B, {WINDOW} in flight), median of {THROUGHPUT_RUNS} | {rp:.0} | {rn:.0} | {:.2} |",
        rp / rn
    );
    println!("\nruns (msg/s): browser {rate_page:.0?}, native {rate_native:.0?}");
    println!(
        "\nwasm: {} bytes raw, {gz} gzipped (gzip -9)\npage with {links} links: JS heap used {} bytes, \
         total {} bytes; wasm memory {wasm_memory} bytes; Chromium metrics: {metrics}",
        wasm.len(),
        metrics["JSHeapUsedSize"],
        metrics["JSHeapTotalSize"],
    );
    browser.shut().await;
}

/// Waits for `data` back from `from`; `false` after 10 s.
async fn wait_echo(
    replies: &mut mpsc::Receiver<(NodeId, Vec<u8>)>,
    from: NodeId,
    data: &[u8],
) -> bool {
    let wait = async {
        while let Some((f, d)) = replies.recv().await {
            if f == from && d == data {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or(false)
}

fn gzip_len(bytes: &[u8]) -> usize {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-9")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    child.wait_with_output().expect("gzip output").stdout.len()
}

fn median(mut v: Vec<f64>) -> f64 {
    pct_sorted(&mut v, 50.0)
}

fn pct(v: &[f64], p: f64) -> f64 {
    pct_sorted(&mut v.to_vec(), p)
}

fn pct_sorted(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.0}")
    }
}
