//! The relay bench's `--fleet` part: three servers on one real Redis next to a single
//! server, measured side by side in one run (see the bench's documentation, 4 to 6).

use mesh_testkit::redis_server::Redis;

use super::*;

/// Clients registered for the registration rate and Redis's memory per node.
fn registrations(settings: Settings) -> usize {
    if settings.rounds >= 10 { 1000 } else { 200 }
}

/// Registrations under way at once.
const CONCURRENT_JOINS: usize = 32;

pub(super) async fn run(settings: Settings) -> Result<()> {
    // Many clients at once: each connection costs a descriptor at both ends.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let redis = Redis::start();
    let version: String = redis::cmd("INFO")
        .arg("server")
        .query::<String>(&mut redis.connection())?
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .to_owned();
    let single = start_server().await;
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let config = bench_config().with_redis(Some(redis.url().parse()?));
        fleet.push(TestServer::start(config).await);
    }
    for server in &fleet {
        wait_healthy(server).await?;
    }
    println!(
        "fleet: 3 bootstrap servers on one redis-server {version} (127.0.0.1, no persistence), \
         and a single server without Redis as the baseline; all in this process but Redis\n"
    );

    ping_pong(&single, &fleet, settings).await?;

    println!(
        "\none-way relay throughput through the fleet, {} sender→receiver pairs (pair i: \
         sender at server i mod n, receiver at the next), window {WINDOW}, {:.1} s measured \
         after {:.1} s warm-up",
        settings.pairs,
        settings.throughput_window.as_secs_f64(),
        settings.throughput_warmup.as_secs_f64()
    );
    println!(
        "{:<26}{:>8} {:>14} {:>13} {:>10} {:>10} {:>8}",
        "servers", "payload", "delivered/s", "payload MB/s", "wire MB/s", "dropped", "lost"
    );
    let runs: [(&str, Vec<&TestServer>); 4] = [
        ("1, no Redis (baseline)", vec![&single]),
        ("1 of the fleet", vec![&fleet[0]]),
        ("2 of the fleet", vec![&fleet[0], &fleet[1]]),
        ("3 of the fleet", fleet.iter().collect()),
    ];
    for (name, servers) in &runs {
        let mut before = Vec::new();
        for server in servers {
            before.push(server.metrics().await);
        }
        let mut totals = ThroughputTotals::default();
        for payload in settings.throughput_payloads {
            let end = throughput(servers, settings, payload, &format!("{name:<24}")).await?;
            totals.sent += end.sent;
            totals.acks += end.acks;
            totals.delivered += end.delivered;
            totals.busy += end.busy;
        }
        check_quietly(servers, &before, &totals).await?;
    }

    println!();
    let n = registrations(settings);
    let single_rate = register_many(&[single.url()], n).await?;
    let fleet_urls: Vec<String> = fleet.iter().map(TestServer::url).collect();
    let used_before = used_memory(&redis)?;
    let (fleet_rate, held) = register_and_hold(&fleet_urls, n).await?;
    let used_after = used_memory(&redis)?;
    println!(
        "registrations ({n} clients, {CONCURRENT_JOINS} at a time: connect, challenge, \
         register, Welcome): single server {single_rate:.0}/s, fleet of 3 {fleet_rate:.0}/s \
         ({:.2}×)",
        fleet_rate / single_rate
    );
    println!(
        "redis memory per registered node: {:.0} bytes ({n} nodes in one room: used_memory \
         {used_before} → {used_after} bytes)",
        (used_after.saturating_sub(used_before)) as f64 / n as f64
    );
    drop(held);

    for server in fleet {
        server.stop().await?;
    }
    single.stop().await?;
    Ok(())
}

async fn wait_healthy(server: &TestServer) -> Result<()> {
    let deadline = Instant::now() + OP_DEADLINE;
    loop {
        if server.http_get("/healthz").await == (200, "ok\n".to_owned()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("a fleet server did not reach redis within {OP_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `used_memory` from `INFO memory`, in bytes.
fn used_memory(redis: &Redis) -> Result<u64> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut redis.connection())?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .context("INFO memory has no used_memory")?
        .trim()
        .parse()
        .context("used_memory is not a number")
}

/// Ping-pong between two clients of the single server, and between a client at fleet
/// server 1 and one at fleet server 2, interleaved round by round.
async fn ping_pong(single: &TestServer, fleet: &[TestServer], settings: Settings) -> Result<()> {
    let (mut a, _) = join(&single.url(), "ping").await?;
    let (b, b_id) = join(&single.url(), "ping").await?;
    let (mut fa, _) = join(&fleet[0].url(), "ping").await?;
    let (fb, fb_id) = join(&fleet[1].url(), "ping").await?;
    let bouncers = [tokio::spawn(bounce(b)), tokio::spawn(bounce(fb))];
    let payload = vec![0x5a; PING_PAYLOAD];
    for _ in 0..settings.warmup_round_trips {
        relay_round_trip(&mut a, b_id, &payload).await?;
        relay_round_trip(&mut fa, fb_id, &payload).await?;
    }
    let (mut across, mut one) = (Vec::new(), Vec::new());
    for round in 0..settings.rounds {
        for path in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            for _ in 0..settings.round_trips_per_round {
                if path == 0 {
                    across.push(relay_round_trip(&mut fa, fb_id, &payload).await?);
                } else {
                    one.push(relay_round_trip(&mut a, b_id, &payload).await?);
                }
            }
        }
    }
    for bouncer in bouncers {
        bouncer.abort();
    }
    println!(
        "ping-pong, {PING_PAYLOAD}-byte payload, interleaved in {} rounds of {}",
        settings.rounds, settings.round_trips_per_round
    );
    print_latency(
        &[
            ("fleet  A→S1→redis→S2→B→…→A", &Stats::of(&mut across)),
            ("single A→server→B→server→A", &Stats::of(&mut one)),
        ],
        "ratio fleet / single",
    );
    Ok(())
}

/// `check_server_metrics`, which prints: the fleet runs print their own lines only.
async fn check_quietly(
    servers: &[&TestServer],
    before: &[Metrics],
    totals: &ThroughputTotals,
) -> Result<()> {
    if totals.sent + totals.acks == 0 {
        bail!("nothing was sent");
    }
    check_server_metrics(servers, before, totals).await
}

/// Registers `n` clients spread over `urls`, [`CONCURRENT_JOINS`] at a time; returns the
/// rate, and closes them.
async fn register_many(urls: &[String], n: usize) -> Result<f64> {
    let (rate, held) = register_and_hold(urls, n).await?;
    drop(held);
    Ok(rate)
}

/// As [`register_many`], keeping the connections open.
async fn register_and_hold(urls: &[String], n: usize) -> Result<(f64, Vec<Ws>)> {
    let started = Instant::now();
    let mut held = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    let mut next = 0;
    while held.len() < n {
        while next < n && pending.len() < CONCURRENT_JOINS {
            let url = urls[next % urls.len()].clone();
            pending.spawn(async move { join(&url, "registrations").await });
            next += 1;
        }
        let joined = pending
            .join_next()
            .await
            .context("no registration under way")???;
        held.push(joined.0);
    }
    Ok((n as f64 / started.elapsed().as_secs_f64(), held))
}
