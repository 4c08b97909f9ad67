//! The scenario's steps as data: what the event heap carries for the plan
//! (`scenario_plan.rs` carries them out).

use super::Ns;

/// A step of the scenario. Periodic steps carry their index `k`: the k-th occurrence is
/// due at the start of its series plus k periods (no drift), and each schedules the next.
#[derive(Debug)]
pub(crate) enum Action {
    /// The next initial node starts.
    StartInitial,
    /// Start the traffic even if some initial node never linked.
    StartTraffic,
    Unicast(u64),
    Broadcast(u64),
    Churn(u64),
    Kill,
    /// Whether the survivors of the kill form one component yet.
    RepairCheck,
    KillServer,
    /// The flooding hostile nodes inject a flood each.
    Spam(u64),
    /// A deliberate unicast (even) or broadcast (odd) across rooms.
    CrossRoom(u64),
    Sample,
    Progress,
}

/// Where the scenario is.
#[derive(Debug, Default)]
pub(super) struct PlanState {
    /// Every initial node has started.
    pub all_started: bool,
    /// Initial nodes that linked, or are gone without ever linking.
    pub initial_settled: usize,
    /// When the traffic (and churn) started.
    pub traffic_at: Option<Ns>,
}

/// A 64-bit value derived from the scenario seed, a node (0 for the emulator) and a
/// purpose: SplitMix64 over the three.
pub(crate) fn derive(seed: u64, node: u64, purpose: u64) -> u64 {
    let mut z = seed
        .wrapping_add(node.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(purpose.wrapping_mul(0xd1b5_4a32_d192_ed03));
    for _ in 0..2 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    z
}
