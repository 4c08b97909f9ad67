//! `mesh-node`: join a mesh and chat over it from the terminal. See `--help`.

mod chat;
mod escape;
mod stats;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mesh_node::transport::webrtc::{self, IceServer};
use mesh_node::{Config, Node};
use mesh_proto::RoomName;
use mesh_proto::identity::Keypair;
use rtc::ice::url::SchemeType;
use tokio::io::{AsyncBufReadExt, BufReader};
use tracing_subscriber::EnvFilter;

/// A node of the peer-relayed WebRTC mesh overlay.
///
/// Joins the mesh through a bootstrap server, opens its first WebRTC link with signaling
/// carried by the server, and every further link with signaling carried by the mesh.
/// Several --bootstrap URLs (repeated, or comma-separated) are several servers of one
/// fleet: the node spreads over them and moves to the next when one fails.
/// Prints its own node id on the first line of stdout. With --door, it also runs a door
/// for its neighbours: one that later loses every link rejoins through it, even with the
/// bootstrap server gone.
///
/// Then reads commands from stdin, one per line:
///
///   <text>               broadcast <text> to every node of the mesh
///   /to <id> <text>      send <text> to one node; <id> may be a unique prefix of a known
///                        id (a neighbour or a node heard from), as git takes hash prefixes
///   /peers               the neighbours: `neighbours: N`, then one `neighbour <id>` line each
///   /links               the links: `links: N`, then one line per link,
///                        `link <id> <local-type>/<local-proto> <remote-type>/<remote-proto>`:
///                        the ICE candidate pair selected for it, e.g. srflx/udp srflx/udp
///                        (types host, srflx, prflx, relay; unknown/unknown when not known)
///   /stats               a short summary of the node's counters
///   /stats --json        the same counters as one JSON object on one line (its keys are
///                        listed in docs/operations.md)
///   /help                the list of commands
///   /quit                leave the mesh (as does the end of input)
///
/// Messages received are printed on stdout as `<sender> <text>` (`<sender> [broadcast]
/// <text>` for broadcasts), one line each: in <text>, and in everything else a peer or a
/// server said, control and format characters are escaped (\n, \r, \t, \x1b, \u{202e}; a
/// byte that is not UTF-8 as \xff; a backslash as \\). Errors, notices and logs go to
/// stderr.
///
/// Logs are quiet by default (warnings of the mesh crates only; webrtc-rs's own log lines
/// are left out): -v adds what the node does (links up and down, registrations), -vv debug
/// output and webrtc-rs's warnings, -vvv everything. RUST_LOG, if set, replaces these (e.g.
/// RUST_LOG=debug). Log fields are escaped as message text is.
///
/// Behind a NAT: with no --stun, the node uses the bootstrap server's STUN responder if the
/// server announces one (bootstrap-server --stun-listen, or --serve-stun here). Behind a
/// firewall that lets no UDP out, give a TURN server over TCP or TLS:
///   --turn turn:turn.example.org:3478?transport=tcp   (TURN over TCP)
///   --turn turns:turn.example.org:443                 (TURN over TLS; --turn-ca for a
///                                                      private CA)
/// stuns: URLs and TURN over DTLS are accepted but not used (a warning says so).
#[derive(Debug, Parser)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Args {
    /// The bootstrap server's WebSocket URL (ws:// or wss://). Repeat it, or separate URLs
    /// with commas (also in MESH_BOOTSTRAP), for several servers of one fleet: the node
    /// spreads over them and moves to the next when one fails. Each node starts at the one
    /// its id picks (so newcomers spread evenly), and when that one refuses, is unreachable
    /// or dies, registers at the next in the list, in turn; at most 16.
    #[arg(
        long,
        env = "MESH_BOOTSTRAP",
        value_name = "URL",
        action = clap::ArgAction::Append,
        value_delimiter = ',',
        value_parser = bootstrap_url,
        default_value = "ws://127.0.0.1:8080/ws",
        conflicts_with = "serve"
    )]
    bootstrap: Vec<mesh_proto::ServerUrl>,
    /// Also run a bootstrap server (the door for other nodes) at this address, with default
    /// limits, and join through it: one command, no external service.
    #[arg(long, env = "MESH_SERVE")]
    serve: Option<SocketAddr>,
    /// With --serve: the embedded server also answers STUN binding requests on this UDP
    /// address (e.g. 0.0.0.0:3478) and announces the port in its Welcome, so nodes without
    /// --stun learn their public address from it.
    #[arg(long, env = "MESH_SERVE_STUN")]
    serve_stun: Option<SocketAddr>,
    /// Also run a door at this address: a bootstrap server with default limits where this
    /// node registers itself, announced to every neighbour (who pass it on one link
    /// further). A node that loses every link tries all the doors it heard of at once
    /// before its own --bootstrap, so the mesh heals without the bootstrap server. The door must be
    /// reachable by the neighbours: behind a NAT, only those on the same network reach it.
    #[arg(long, env = "MESH_DOOR", conflicts_with = "serve")]
    door: Option<SocketAddr>,
    /// With --door: the URL to announce for it (e.g. ws://203.0.113.7:8081/ws). Default:
    /// ws://<--door's address>/ws, which needs a specific address, not a wildcard.
    #[arg(long, env = "MESH_DOOR_URL", requires = "door")]
    door_url: Option<mesh_proto::ServerUrl>,
    /// The room (independent mesh) to join.
    #[arg(long, env = "MESH_ROOM", default_value = "default")]
    room: RoomName,
    /// Links to keep (the target degree); the minimum is min(3, degree) and the maximum
    /// degree + max(2, degree/2), two of which are kept for newcomers.
    #[arg(long, env = "MESH_DEGREE", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    degree: u16,
    /// A file holding this node's identity (created if missing). Without it each run uses
    /// a fresh key, so many nodes can run side by side.
    #[arg(long, env = "MESH_KEY")]
    key: Option<PathBuf>,
    /// Require the id puzzle (S/Kademlia's static puzzle): node ids count only if SHA-256
    /// of the id begins with N zero bits. This node mines such a key (2^N tries on average,
    /// some 20 us each: milliseconds at 8, seconds at 16, minutes at 24; measured in
    /// docs/benchmarks.md section 14.5), refuses a --key file below it,
    /// and ignores records, floods and offers of ids below it; --serve and --door servers
    /// require it too. Give every node, and the bootstrap server (its --id-difficulty),
    /// the same N. 0: off.
    #[arg(long, env = "MESH_ID_DIFFICULTY", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=24))]
    id_difficulty: u32,
    /// Local address(es) for WebRTC's UDP sockets. A wildcard does not include loopback:
    /// name the interfaces you mean (e.g. 127.0.0.1:0 for a single-machine mesh).
    #[arg(
        long = "bind",
        env = "MESH_BIND",
        value_delimiter = ',',
        default_value = "0.0.0.0:0"
    )]
    bind: Vec<SocketAddr>,
    /// A STUN server URL (repeatable), e.g. stun:stun.example.org:3478. Without one, the
    /// node uses the bootstrap server's STUN responder if the server announces one.
    #[arg(long = "stun", env = "MESH_STUN", value_delimiter = ',', value_parser = stun_url)]
    stun: Vec<String>,
    /// A TURN server URL (repeatable): turn:HOST:PORT (UDP), turn:HOST:PORT?transport=tcp
    /// (TCP) or turns:HOST:PORT (TLS); needs --turn-user and --turn-password.
    #[arg(long = "turn", env = "MESH_TURN", value_delimiter = ',', value_parser = turn_url)]
    turn: Vec<String>,
    /// A PEM file of CA certificates to trust for turns: servers, besides the system's
    /// (for a TURN server with a private CA's certificate).
    #[arg(long, env = "MESH_TURN_CA", value_name = "FILE")]
    turn_ca: Option<std::path::PathBuf>,
    /// The TURN username (long-term credentials).
    #[arg(long, env = "MESH_TURN_USER", default_value = "")]
    turn_user: String,
    /// The TURN credential (long-term credentials).
    #[arg(long, env = "MESH_TURN_PASSWORD", default_value = "")]
    turn_password: String,
    /// Use only relay candidates (ICE transport policy "relay"): every link goes through
    /// the --turn server, and without a working one no link opens. For testing a TURN server.
    #[arg(long, env = "MESH_RELAY_ONLY")]
    relay_only: bool,
    /// More log output on stderr: -v what the node does, -vv debug, -vvv everything
    /// (including webrtc-rs). RUST_LOG, if set, wins.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Parses a --bootstrap URL.
fn bootstrap_url(raw: &str) -> Result<mesh_proto::ServerUrl, String> {
    raw.parse().map_err(|_| {
        format!(
            "{raw} is not a bootstrap server URL: expected ws://HOST:PORT/PATH or \
             wss://HOST/PATH, e.g. ws://127.0.0.1:8080/ws (several: comma-separated)"
        )
    })
}

/// Parses a --stun URL: a STUN URL as webrtc-rs reads it.
fn stun_url(raw: &str) -> Result<String, String> {
    ice_url(raw, false)
}

/// Parses a --turn URL: a TURN URL as webrtc-rs reads it.
fn turn_url(raw: &str) -> Result<String, String> {
    ice_url(raw, true)
}

/// A STUN (`turn` false) or TURN URL as webrtc-rs reads it, or why not.
fn ice_url(raw: &str, turn: bool) -> Result<String, String> {
    let url = rtc::ice::url::Url::parse_url(raw).map_err(|e| {
        format!(
            "not a STUN/TURN URL ({e}); expected e.g. stun:stun.example.org:3478 or \
             turn:turn.example.org:3478?transport=udp"
        )
    })?;
    let is_turn = matches!(url.scheme, SchemeType::Turn | SchemeType::Turns);
    match (turn, is_turn) {
        (false, true) => Err(format!(
            "{raw} is a {} URL; give TURN servers with --turn",
            url.scheme
        )),
        (true, false) => Err(format!(
            "{raw} is a {} URL; give STUN servers with --stun (a TURN URL starts with turn:)",
            url.scheme
        )),
        _ => Ok(raw.to_owned()),
    }
}

/// The ICE servers the flags describe, checked; warns about URLs webrtc-rs will not use.
fn ice_servers(args: &Args) -> anyhow::Result<Vec<IceServer>> {
    let mut ice = Vec::new();
    if !args.stun.is_empty() {
        ice.push(IceServer {
            urls: args.stun.clone(),
            username: String::new(),
            credential: String::new(),
        });
    }
    if !args.turn.is_empty() {
        if args.turn_user.is_empty() || args.turn_password.is_empty() {
            anyhow::bail!(
                "--turn needs --turn-user and --turn-password (or MESH_TURN_USER and \
                 MESH_TURN_PASSWORD): TURN servers only relay for authenticated users"
            );
        }
        ice.push(IceServer {
            urls: args.turn.clone(),
            username: args.turn_user.clone(),
            credential: args.turn_password.clone(),
        });
    } else if !args.turn_user.is_empty() || !args.turn_password.is_empty() {
        tracing::warn!("--turn-user and --turn-password are ignored without a --turn server");
    }
    if args.relay_only && args.turn.is_empty() {
        anyhow::bail!("--relay-only needs a --turn server: without one no link can open");
    }
    for server in &ice {
        server.validate()?;
        for (url, why) in server.unsupported_urls() {
            tracing::warn!("{url} accepted but not used: {why}");
        }
    }
    Ok(ice)
}

/// The log filter for `-v` given `verbose` times, when RUST_LOG is not set.
///
/// Quiet by default: only the warnings of the mesh crates (this binary's crate is named
/// `mesh_node` too). The dependencies' logs are not the user's business: webrtc-rs warns
/// about a STUN check that came before its session's answer (`password is empty`), which
/// ICE retries anyway. (Its two warnings at every link up, `data channel not existed` and
/// `there already exists a stream with identifier`, were a lost message and a late stream
/// opening; the transport now avoids both, see docs/webrtc-rs-upstream.md, finding 5.)
/// webrtc-rs's logs appear from -vv on.
fn log_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "off,mesh_node=warn,mesh_core=warn,mesh_proto=warn,bootstrap_server=warn",
        1 => "off,mesh_node=info,mesh_core=info,mesh_proto=info,bootstrap_server=info",
        2 => {
            "warn,rtc_ice=error,rtc_dtls=error,mesh_node=debug,mesh_core=debug,mesh_proto=debug,\
              bootstrap_server=debug"
        }
        _ => "debug",
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The causes can hold what a server said (a refusal's message): escaped, on one
            // line.
            eprintln!("error: {}", escape::escape(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(log_filter(args.verbose))),
        )
        .fmt_fields(escape::log_fields())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if args.serve_stun.is_some() && args.serve.is_none() {
        anyhow::bail!(
            "--serve-stun runs the STUN responder of --serve's bootstrap server; give --serve too"
        );
    }
    let ice = ice_servers(&args)?;
    if args.bootstrap.len() > mesh_core::MAX_BOOTSTRAPS {
        anyhow::bail!(
            "{} --bootstrap URLs: at most {} (give a few of the fleet's servers)",
            args.bootstrap.len(),
            mesh_core::MAX_BOOTSTRAPS
        );
    }

    let mut bootstraps = args.bootstrap.clone();
    if let Some(addr) = args.serve {
        let config = bootstrap_server::Config::default()
            .with_stun_listen(args.serve_stun)
            .with_id_difficulty(args.id_difficulty);
        // With the server's own listen backlog (1,024), not the 128 of a plain bind.
        let server = bootstrap_server::Server::listen(addr, config)
            .await
            .with_context(|| format!("cannot start the embedded bootstrap server on {addr}"))?;
        let addr = server.local_addr()?;
        let url: mesh_proto::ServerUrl = format!("ws://{addr}/ws")
            .parse()
            .context("the embedded server's address makes no valid URL")?;
        // Notices for the person who started it, whatever the log level.
        eprintln!("bootstrap server for other nodes: --bootstrap {url}");
        bootstraps = vec![url];
        if let Some(stun) = server.stun_addr() {
            eprintln!("its STUN responder: stun:{stun} (UDP), announced in its Welcome");
        }
        tokio::spawn(async move {
            if let Err(e) = server.run(std::future::pending()).await {
                tracing::error!("embedded bootstrap server failed: {e}");
            }
        });
    }

    let door = match args.door {
        Some(addr) => Some(start_door(addr, args.door_url.clone(), args.id_difficulty).await?),
        None => None,
    };

    // Mining is CPU work: off the runtime's threads.
    let (path, difficulty) = (args.key.clone(), args.id_difficulty);
    let key = tokio::task::spawn_blocking(move || match &path {
        Some(path) => mesh_node::keyfile::load_or_create(path, difficulty),
        None => Keypair::generate_with_difficulty(difficulty)
            .map_err(|e| mesh_node::Error::Core(mesh_core::Error::Proto(e))),
    })
    .await??;
    println!("{}", key.node_id());

    let degree = usize::from(args.degree);
    let overlay = mesh_core::Config::default()
        .with_target_degree(degree)
        .with_min_degree(degree.min(3))
        .with_max_degree(degree + (degree / 2).max(2));
    let through = bootstraps
        .iter()
        .map(mesh_proto::ServerUrl::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let first = bootstraps.first().cloned().context("no --bootstrap URL")?;
    let mut config = Config::new(first)
        .with_bootstraps(bootstraps)
        .with_room(args.room.clone())
        .with_overlay(overlay)
        .with_id_difficulty(args.id_difficulty);
    if let Some(url) = door {
        config = config.with_door(url);
    }
    let transport = webrtc::Config::new()
        .with_bind_addrs(args.bind.clone())
        .with_ice_servers(ice)
        .with_turn_ca(args.turn_ca.clone())
        .with_relay_only(args.relay_only);
    let node = Node::join(config, key, transport)
        .await
        .with_context(|| format!("cannot join the mesh through {through}"))?;
    let mut events = node.events().context("events already taken")?;
    let mut chat = chat::Chat::new(node);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => chat.on_event(event),
                None => break,
            },
            line = lines.next_line() => {
                let Some(line) = line.context("reading stdin")? else { break };
                if !chat.command(line.trim()).await {
                    break;
                }
            }
        }
    }
    chat.into_node().leave().await?;
    Ok(())
}

/// Starts the --door server at `addr` and returns the URL to announce for it.
async fn start_door(
    addr: SocketAddr,
    url: Option<mesh_proto::ServerUrl>,
    id_difficulty: u32,
) -> anyhow::Result<mesh_proto::ServerUrl> {
    let config = bootstrap_server::Config::default().with_id_difficulty(id_difficulty);
    let server = bootstrap_server::Server::listen(addr, config)
        .await
        .with_context(|| format!("cannot start the door on {addr}"))?;
    let bound = server.local_addr()?;
    let url = match url {
        Some(url) => url,
        None if bound.ip().is_unspecified() => anyhow::bail!(
            "--door {addr} is a wildcard address: give the URL neighbours should use with --door-url"
        ),
        None => format!("ws://{bound}/ws")
            .parse()
            .context("the door's address makes no valid URL")?,
    };
    eprintln!("door for neighbours that lose every link: {url}");
    tokio::spawn(async move {
        if let Err(e) = server.run(std::future::pending()).await {
            tracing::error!("the door failed: {e}");
        }
    });
    Ok(url)
}
