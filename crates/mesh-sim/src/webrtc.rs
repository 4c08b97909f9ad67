//! The webrtc transport: real nodes, real server, wall-clock time. (Being written.)

use crate::{Report, Scenario};

/// Runs `scenario` with real WebRTC nodes on 127.0.0.1.
pub async fn run(scenario: &Scenario, _progress: bool) -> anyhow::Result<Report> {
    Ok(Report { nodes: scenario.nodes, ..Default::default() })
}
