//! `mesh-sim`: run a simulation scenario of the mesh overlay and write its report.
//!
//! `mesh-sim demo` runs about 100 real WebRTC nodes through an embedded bootstrap server in
//! well under a minute; `mesh-sim run` takes every knob of a [`Scenario`] as a flag.
//! Both print the markdown summary at the end and write `report.json`, `summary.md` and
//! the plots into `--out`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mesh_sim::{AttackKind, Hostile, Kill, Scenario, TransportKind};
use tracing_subscriber::EnvFilter;

/// Logs shown by default: warnings, but webrtc-rs (`rtc`, `rtc_ice`, `rtc_dtls`) only for
/// errors: it warns thousands of times per 100 joins (ICE checks that arrive before the
/// remote credentials, data channels and streams it does not know yet, closed connections).
const DEFAULT_LOG: &str = "warn,rtc=error,rtc_ice=error,rtc_dtls=error";

#[derive(Debug, Parser)]
#[command(
    name = "mesh-sim",
    version,
    about = "Simulate the mesh overlay: real WebRTC nodes on 127.0.0.1, or thousands of \
             overlay cores in memory, and report how it behaves",
    after_help = "Logs go to stderr (warnings by default; RUST_LOG overrides, e.g. \
                  RUST_LOG=mesh_sim=info). The progress bar is drawn on stderr when it \
                  is a terminal."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario and write its report.
    Run(RunArgs),
    /// About 100 real WebRTC nodes with an embedded bootstrap server on 127.0.0.1: a
    /// 10 s run of joins, unicasts and broadcasts, then the summary table (about 12 s in a release build; docs/benchmarks.md §8).
    ///
    /// The same as `mesh-sim run --nodes 100 --transport webrtc --degree 8 --join-rate 50
    /// --duration 10 --seed 1 --unicast-rate 20 --broadcast-every 1`: 100 nodes join at
    /// 50/s through an embedded bootstrap server; once they have, unicasts between random
    /// pairs (20/s) and a broadcast every second run until 10 s after the first join. Then
    /// hop probes, the final readings and 2 s of idle CPU, and every node leaves.
    Demo(Output),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Nodes that join.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    nodes: u32,
    /// Links between the nodes: `webrtc` (real PeerConnections on 127.0.0.1, real server,
    /// wall-clock time) or `memory` (the overlay cores in a seeded emulator, virtual time).
    #[arg(long, value_enum, default_value_t = TransportKind::Webrtc)]
    transport: TransportKind,
    /// Target degree: links each node aims for (minimum min(3, D), maximum
    /// max(D + D/2, D + 4): two places kept for newcomers' entry sessions and at least two
    /// for offers through the mesh).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    degree: u32,
    /// Nodes joining per second.
    #[arg(long, value_name = "R", default_value_t = 50.0, value_parser = positive)]
    join_rate: f64,
    /// Length of the run in seconds from the first join (traffic runs until then;
    /// virtual seconds with `--transport memory`). Fractions are allowed, e.g. 2.5.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = seconds)]
    duration: Duration,
    /// Seed of every random choice the harness makes (keys, pairs, victims). With
    /// `--transport memory` the same seed gives the same report (but wall time and RSS).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Churn: percent of the nodes replaced per minute (a node leaves, a new one joins),
    /// once the initial nodes have joined. 0 = none.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = non_negative)]
    churn: f64,
    /// Kill a fraction of the live nodes at once at a time from the start, e.g. `0.2@10`
    /// (20 % at 10 s). Default: none (no kill).
    #[arg(long, value_name = "FRACTION@SECS", value_parser = kill)]
    kill: Option<Kill>,
    /// Stop the bootstrap server at this many seconds from the start. Default: none (the
    /// server runs to the end).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    kill_bootstrap_at: Option<Duration>,
    /// Seconds between the initial nodes having joined (each has a link) and the start of
    /// the traffic and churn: the time the mesh gets to take its shape. Unicasts sent
    /// while it is still forming can meet dead ends (reported unreachable)
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds_or_zero)]
    settle: Duration,
    /// Unicasts per second between random pairs of live nodes, once all have joined.
    #[arg(long, value_name = "R", default_value_t = 20.0, value_parser = non_negative)]
    unicast_rate: f64,
    /// A broadcast from a random node every this many seconds, once all have joined.
    /// 0 = none.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = seconds_or_zero)]
    broadcast_every: Duration,
    /// Every node runs a door for its neighbours (as `mesh-node --door`): a node that needs
    /// a server (no link left, or stranded on an island) registers at a door its
    /// neighbours announced before the bootstrap server. With --kill-bootstrap-at, this is
    /// how the mesh heals after a kill without the server.
    #[arg(long)]
    doors: bool,
    /// Share of the initial nodes that are hostile (chosen from the seed), e.g. 0.1; with
    /// --attack. They run the honest core and the simulator rewrites, drops or adds what
    /// they send on their links; report.json's `attack` gives what it cost the honest
    /// nodes. Both transports run every attack (on webrtc, a transport wrapping the real
    /// one applies it to what the hostile node sends).
    #[arg(long, value_name = "FRACTION", value_parser = fraction, requires = "attack")]
    hostile: Option<f64>,
    /// What the hostile nodes do: `forge` (Route/Transfer claiming another honest node as
    /// origin, floods altered or re-signed under an honest node's key, their own messages
    /// marked forged), `drop` (every Route/Transfer they relay), `flood` (validly signed
    /// floods of made-up nodes, 500/s each, up to --spam), `poison` (Neighbours records of
    /// made-up nodes, some signed for another room), `mixed` (a quarter each).
    #[arg(long, value_enum, requires = "hostile")]
    attack: Option<AttackKind>,
    /// With --attack flood (or mixed): floods each flooding node injects at most. The
    /// simulation's cost grows with it: 100 flooders × 100 took 324 s and 1.5 GB for 1,000
    /// nodes (every honest node verifies every flood that gets through).
    #[arg(long, value_name = "COUNT", default_value_t = 100)]
    spam: u32,
    /// Spread the nodes over K rooms (node i in room i mod K): each registers in its room
    /// at the server, traffic stays within a room, plus a few deliberate cross-room
    /// unicasts and broadcasts; report.json's `rooms` counts what crossed (must be 0).
    /// Memory transport only.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rooms: u32,
    /// Send the scenario's unicasts reliably (`Node::send_reliable`: acknowledged by their
    /// destination, sent again through another first neighbour when no acknowledgement
    /// comes within 1 s, 5 times at most). Traffic then stops 11 s before the end (the
    /// longest one can take: 5 s for the destination's key, 6 tries), so that each is
    /// delivered or given up within the run (on the webrtc transport the run waits up to
    /// 12 s after the end for them instead).
    #[arg(long)]
    reliable: bool,
    /// Embedded bootstrap servers (webrtc transport): more than one form a fleet on
    /// --redis, and every node is given every server's URL (it starts at the one its id
    /// picks, so the joins spread over the fleet).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    servers: u32,
    /// The Redis (redis://HOST:PORT/) the embedded servers share rooms through: needed with
    /// --servers above 1; keys are prefixed with a name unique to the run. Prefer the
    /// environment variable for a URL with a password.
    #[arg(long, env = "MESH_SIM_REDIS", value_name = "URL")]
    redis: Option<String>,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct Output {
    /// Directory for report.json, summary.md and the plots (created if needed).
    #[arg(long, value_name = "DIR", default_value = "sim-out")]
    out: PathBuf,
    /// Do not show progress on stderr. Default: shown (webrtc: a progress bar, when
    /// stderr is a terminal; memory: a line every 5 s of virtual time).
    #[arg(long)]
    no_progress: bool,
}

impl RunArgs {
    fn scenario(&self) -> Scenario {
        Scenario {
            nodes: self.nodes as usize,
            transport: self.transport,
            degree: self.degree as usize,
            join_rate: self.join_rate,
            duration: self.duration,
            seed: self.seed,
            churn_per_min: self.churn,
            kill: self.kill,
            kill_bootstrap_at: self.kill_bootstrap_at,
            settle: self.settle,
            unicast_rate: self.unicast_rate,
            broadcast_every: (!self.broadcast_every.is_zero()).then_some(self.broadcast_every),
            doors: self.doors,
            hostile: self
                .hostile
                .zip(self.attack)
                .map(|(fraction, attack)| Hostile {
                    fraction,
                    attack,
                    spam: self.spam,
                }),
            rooms: self.rooms as usize,
            reliable: self.reliable,
            servers: self.servers as usize,
            redis: None,
        }
    }
}

/// The demo: ~100 real WebRTC nodes, done in well under a minute.
fn demo() -> Scenario {
    Scenario {
        nodes: 100,
        transport: TransportKind::Webrtc,
        degree: 8,
        join_rate: 50.0,
        duration: Duration::from_secs(10),
        unicast_rate: 20.0,
        broadcast_every: Some(Duration::from_secs(1)),
        ..Scenario::default()
    }
}

fn number(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("`{s}` is not a finite number"))
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match number(s)? {
        x if x > 0.0 => Ok(x),
        _ => Err(format!("must be greater than 0, got `{s}`")),
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match number(s)? {
        x if x >= 0.0 => Ok(x),
        _ => Err(format!("must be 0 or more, got `{s}`")),
    }
}

fn seconds_or_zero(s: &str) -> Result<Duration, String> {
    let x = non_negative(s).map_err(|e| format!("seconds: {e}"))?;
    Duration::try_from_secs_f64(x).map_err(|_| format!("`{s}` seconds is too long"))
}

fn seconds(s: &str) -> Result<Duration, String> {
    match seconds_or_zero(s)? {
        d if d.is_zero() => Err(format!("must be more than 0 seconds, got `{s}`")),
        d => Ok(d),
    }
}

/// A share in [0, 1].
fn fraction(s: &str) -> Result<f64, String> {
    match number(s)? {
        x if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("must be between 0 and 1, got `{s}`")),
    }
}

/// `FRACTION@SECS`, e.g. `0.2@10`.
fn kill(s: &str) -> Result<Kill, String> {
    let usage = "expected FRACTION@SECS: the share of live nodes to kill (more than 0, at \
                 most 1) and when, in seconds from the start; e.g. 0.2@10";
    let (fraction, at) = s
        .split_once('@')
        .ok_or_else(|| format!("no `@` in `{s}`: {usage}"))?;
    let fraction = number(fraction).map_err(|e| format!("fraction: {e}; {usage}"))?;
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(format!("fraction {fraction} is outside (0, 1]; {usage}"));
    }
    let at = seconds_or_zero(at).map_err(|e| format!("time: {e}; {usage}"))?;
    Ok(Kill { fraction, at })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .init();
    let (mut scenario, output) = match &cli.command {
        Command::Run(args) => (args.scenario(), &args.output),
        Command::Demo(output) => (demo(), output),
    };
    if let Command::Run(RunArgs {
        redis: Some(url), ..
    }) = &cli.command
    {
        // Parsed here, not by clap, whose errors would echo the URL and its password.
        match url.parse() {
            Ok(url) => scenario.redis = Some(url),
            Err(e) => {
                eprintln!("mesh-sim: --redis: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mesh-sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let report = mesh_sim::run(&scenario, !output.no_progress).await?;
        report.write(&output.out)?;
        anyhow::Ok(report)
    });
    // Tasks of nodes still closing are not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(report) => {
            println!("{}", report.summary());
            println!(
                "report written to {} (report.json, summary.md, plots)",
                output.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mesh-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn kill_values_parse_or_say_why_not() {
        let k = kill("0.2@10").unwrap();
        assert_eq!((k.fraction, k.at), (0.2, Duration::from_secs(10)));
        assert!(kill("0.2").unwrap_err().contains("no `@`"));
        assert!(kill("1.5@3").unwrap_err().contains("outside (0, 1]"));
        assert!(kill("x@3").unwrap_err().contains("not a number"));
        assert!(kill("0.5@-1").unwrap_err().contains("0 or more"));
    }

    #[test]
    fn flags_map_onto_the_scenario() {
        let cli = Cli::try_parse_from([
            "mesh-sim",
            "run",
            "--nodes",
            "7",
            "--broadcast-every",
            "0",
            "--kill",
            "0.5@2",
            "--duration",
            "1.5",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let s = args.scenario();
        assert_eq!((s.nodes, s.broadcast_every), (7, None));
        assert_eq!(s.duration, Duration::from_millis(1500));
        assert_eq!(s.kill.map(|k| k.fraction), Some(0.5));
        assert!(Cli::try_parse_from(["mesh-sim", "run", "--duration", "0"]).is_err());
        assert!(Cli::try_parse_from(["mesh-sim", "run", "--servers", "17"]).is_err());
    }

    #[tokio::test]
    async fn a_fleet_without_redis_or_on_the_memory_transport_is_refused() {
        let cli = Cli::try_parse_from(["mesh-sim", "run", "--servers", "3"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let s = args.scenario();
        assert_eq!(s.servers, 3);
        let err = mesh_sim::run(&s, false).await.unwrap_err().to_string();
        assert!(err.contains("need a Redis"), "{err}");
        let memory = Scenario {
            transport: TransportKind::Memory,
            redis: Some("redis://127.0.0.1:1/".parse().unwrap()),
            ..Scenario::default()
        };
        let err = mesh_sim::run(&memory, false).await.unwrap_err().to_string();
        assert!(err.contains("webrtc transport"), "{err}");
    }

    #[test]
    fn hostile_and_rooms_flags_map_onto_the_scenario() {
        let line = "mesh-sim run --transport memory --hostile 0.1 --attack drop --rooms 4";
        let cli = Cli::try_parse_from(line.split_whitespace()).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let s = args.scenario();
        let h = s.hostile.expect("hostile nodes");
        assert_eq!((h.fraction, h.attack, s.rooms), (0.1, AttackKind::Drop, 4));
        for bad in [
            "mesh-sim run --hostile 0.1",
            "mesh-sim run --attack drop",
            "mesh-sim run --hostile 1.5 --attack drop",
            "mesh-sim run --rooms 0",
        ] {
            assert!(
                Cli::try_parse_from(bad.split_whitespace()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_demo_is_the_run_its_help_names() {
        let line = "mesh-sim run --nodes 100 --transport webrtc --degree 8 --join-rate 50 \
                    --duration 10 --seed 1 --unicast-rate 20 --broadcast-every 1";
        let cli = Cli::try_parse_from(line.split_whitespace()).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(format!("{:?}", args.scenario()), format!("{:?}", demo()));
        let help = Cli::command()
            .find_subcommand_mut("demo")
            .expect("a demo command")
            .render_long_help()
            .to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(&line[9..]), "{help}");
    }
}
