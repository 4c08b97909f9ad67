//! A reconnect storm against the real bootstrap server in-process on 127.0.0.1:0: rounds of
//! clients that all connect at once (TCP connect, WebSocket handshake, the server's
//! `Challenge`), for each listen backlog asked for. A connect that finds the server's
//! accept queue full has its SYN dropped and retried by the kernel a second later, so the
//! slowest connects of a round tell whether the backlog held the burst.
//!
//! `cargo bench -p bootstrap-server --bench connect_storm` runs backlogs 128 (what
//! `TcpListener::bind` gives) and 1024 (the default of `Config::listen_backlog`), 5 rounds
//! of 400 clients each. `CONNECT_STORM_BACKLOGS` (comma-separated), `CONNECT_STORM_CLIENTS`
//! and `CONNECT_STORM_ROUNDS` change them. Everything talks to 127.0.0.1 only; every
//! connect has a deadline, the rounds are bounded, and the whole run is cut off after
//! [`TOTAL_DEADLINE`]. `docs/benchmarks.md` holds the figures.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bootstrap_server::Config;
use futures_util::StreamExt;
use mesh_proto::Frame;
use mesh_testkit::{DEADLINE, TestServer, wait_until};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

/// The whole run is abandoned (with an error) past this.
const TOTAL_DEADLINE: Duration = Duration::from_secs(300);
/// One client's connect, handshake and `Challenge`.
const CONNECT_DEADLINE: Duration = Duration::from_secs(15);
/// A connect slower than this waited for at least one SYN retry.
const RETRIED: Duration = Duration::from_millis(900);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<()> {
    let backlogs: Vec<u32> = match std::env::var("CONNECT_STORM_BACKLOGS") {
        Ok(list) => list
            .split(',')
            .map(|b| b.trim().parse().context("CONNECT_STORM_BACKLOGS"))
            .collect::<Result<_>>()?,
        Err(_) => vec![128, Config::default().listen_backlog],
    };
    let clients: usize = env_or("CONNECT_STORM_CLIENTS", 400)?;
    let rounds: usize = env_or("CONNECT_STORM_ROUNDS", 5)?;
    if clients == 0 || clients > 2000 || rounds == 0 || rounds > 20 {
        bail!("CONNECT_STORM_CLIENTS must be 1..=2000 and CONNECT_STORM_ROUNDS 1..=20");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(TOTAL_DEADLINE, async {
            for backlog in backlogs {
                storm(backlog, clients, rounds).await?;
            }
            Ok(())
        })
        .await
        .context("the connect storm took longer than its total deadline")?
    })
}

/// Runs `rounds` rounds of `clients` simultaneous connects against a server listening with
/// `backlog`, and prints the connect times.
async fn storm(backlog: u32, clients: usize, rounds: usize) -> Result<()> {
    let server = TestServer::start(Config::default().with_listen_backlog(backlog)).await;
    let url = server.url();
    let overflows_before = listen_overflows();
    let mut times = Vec::with_capacity(clients * rounds);
    for _ in 0..rounds {
        let mut set = JoinSet::new();
        for _ in 0..clients {
            let url = url.clone();
            set.spawn(async move {
                let start = Instant::now();
                let connect = async {
                    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
                    match ws.next().await {
                        Some(Ok(Message::Binary(bytes))) => match mesh_proto::decode(&bytes) {
                            Ok(Frame::Challenge { .. }) => {}
                            other => bail!("expected a Challenge, got {other:?}"),
                        },
                        other => bail!("expected a Challenge, got {other:?}"),
                    }
                    Ok(ws)
                };
                let ws = tokio::time::timeout(CONNECT_DEADLINE, connect)
                    .await
                    .context("a connect took longer than its deadline")??;
                Ok::<_, anyhow::Error>((start.elapsed(), ws))
            });
        }
        // Hold every connection of the round until the round is over, as reconnected
        // clients would.
        let mut held = Vec::with_capacity(clients);
        while let Some(joined) = set.join_next().await {
            let (elapsed, ws) = joined??;
            times.push(elapsed);
            held.push(ws);
        }
        drop(held);
        wait_until("the round's connections are closed", DEADLINE, async || {
            let open = server.metrics().await.count("bootstrap_connections");
            if open == 0 { Ok(()) } else { Err(open) }
        })
        .await;
    }
    let overflows = listen_overflows()
        .zip(overflows_before)
        .map(|(after, before)| after.saturating_sub(before));
    server.stop().await?;

    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let retried = times.iter().filter(|&&t| t >= RETRIED).count();
    println!(
        "backlog {backlog:>5}: {} connects ({rounds} rounds of {clients} at once): \
         p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {retried} took >= {} ms; \
         listen overflows (TcpExtListenOverflows, whole host) {}",
        times.len(),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0)),
        RETRIED.as_millis(),
        overflows.map_or("unknown".to_owned(), |n| n.to_string()),
    );
    Ok(())
}

/// The host's count of connections dropped at a full accept queue (`TcpExt:
/// ListenOverflows` in `/proc/net/netstat`), where it can be read.
fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let index = names
            .split_whitespace()
            .position(|n| n == "ListenOverflows")?;
        return values.split_whitespace().nth(index)?.parse().ok();
    }
    None
}
