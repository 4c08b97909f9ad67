//! The simulation harness of the mesh overlay: starts an embedded bootstrap server and N
//! nodes in one process (real WebRTC), or N pure overlay cores in a deterministic emulator
//! (memory transport, virtual time), runs a [`Scenario`], and writes a [`Report`]:
//! `report.json`, a markdown summary and SVG plots.
#![warn(missing_docs)]

mod attack;
pub mod memory;
pub mod plot;
mod procfs;
pub mod report;
pub mod scenario;
pub mod webrtc;

pub use report::Report;
pub use scenario::{AttackKind, Hostile, Kill, Scenario, TransportKind};

/// Runs `scenario` to completion.
pub async fn run(scenario: &Scenario, progress: bool) -> anyhow::Result<Report> {
    if scenario.servers > 1 && scenario.redis.is_none() {
        anyhow::bail!(
            "{} servers need a Redis to share the room through (--redis redis://HOST:PORT/)",
            scenario.servers
        );
    }
    if scenario.transport == TransportKind::Memory
        && (scenario.servers > 1 || scenario.redis.is_some())
    {
        anyhow::bail!("--servers and --redis are for the webrtc transport (real servers)");
    }
    match scenario.transport {
        TransportKind::Webrtc => webrtc::run(scenario, progress).await,
        TransportKind::Memory => Ok(memory::run(scenario, progress)),
    }
}
