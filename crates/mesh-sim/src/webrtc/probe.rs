//! Hop counts: unicasts sent one at a time in the quiet mesh, each between two readings of
//! every live node's relay counters (see the module docs of `webrtc`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_node::Node;
use tracing::info;

use super::observe::{self, Kind, lock};
use super::sim::{Sim, query};
use super::{PROBE_BUDGET, PROBES};

impl Sim<'_> {
    /// Hops of up to [`PROBES`] unicasts sent one at a time in the quiet mesh (see the
    /// module docs).
    pub(super) async fn probe_hops(&mut self) -> Vec<u32> {
        let deadline = Instant::now() + PROBE_BUDGET;
        let mut hops = Vec::new();
        let mut discarded = 0;
        for id in 0..PROBES as u64 {
            let live = self.live(true);
            if live.len() < 2 || Instant::now() >= deadline {
                break;
            }
            let (a, b) = self.pick_pair(live.len());
            lock(&self.shared.traffic).probe_arrived.push(false);
            let before = relay_counters(&live).await;
            let data = observe::payload(Kind::Probe, id, self.now_us());
            if live[a]
                .1
                .send(self.slots[live[b].0].id, data)
                .await
                .is_err()
            {
                continue;
            }
            let sent = Instant::now();
            let arrived = loop {
                if lock(&self.shared.traffic).probe_arrived[id as usize] {
                    break true;
                }
                if sent.elapsed() > Duration::from_secs(1) {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            let after = relay_counters(&live).await;
            match (arrived, before, after) {
                (true, Some(b), Some(a)) if a.quiet_since(&b) => {
                    hops.push(1 + (a.relayed - b.relayed) as u32);
                }
                _ => discarded += 1,
            }
        }
        info!(probes = hops.len(), discarded, "hop probes");
        hops
    }
}

/// Sums of the counters that change when a frame is relayed.
#[derive(Clone, Copy, Debug, Default)]
struct RelayCounters {
    relayed: u64,
    signals: u64,
    floods: u64,
    /// Lookups, their answers and unreachable reports: relayed like unicasts.
    lookups: u64,
}

impl RelayCounters {
    /// No signaling message, flood copy, lookup or unreachable report moved between
    /// `before` and `self`: every relay in the window was the probe's.
    fn quiet_since(&self, before: &Self) -> bool {
        self.signals == before.signals
            && self.floods == before.floods
            && self.lookups == before.lookups
            && self.relayed >= before.relayed
    }
}

/// The relay counters summed over `nodes`; `None` if a node did not answer.
async fn relay_counters(nodes: &[(usize, Arc<Node>)]) -> Option<RelayCounters> {
    let stats = query(nodes, |node| async move { node.stats().await }).await;
    if stats.len() != nodes.len() {
        return None;
    }
    let mut c = RelayCounters::default();
    for s in stats.values() {
        let o = &s.overlay;
        c.relayed += o.frames_relayed;
        c.signals += o.signals_sent_via_mesh + o.signals_received_via_mesh;
        c.floods += o.broadcasts_delivered + o.flood_duplicates;
        c.lookups += o.lookups_sent
            + o.lookups_answered
            + o.lookup_answers
            + o.unreachable_sent
            + o.unreachable_received;
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_window_with_signaling_floods_or_lookups_is_not_quiet() {
        let before = RelayCounters {
            relayed: 10,
            signals: 5,
            floods: 2,
            lookups: 7,
        };
        assert!(
            RelayCounters {
                relayed: 12,
                ..before
            }
            .quiet_since(&before)
        );
        assert!(
            !RelayCounters {
                signals: 6,
                ..before
            }
            .quiet_since(&before)
        );
        assert!(
            !RelayCounters {
                floods: 3,
                ..before
            }
            .quiet_since(&before)
        );
        assert!(
            !RelayCounters {
                lookups: 8,
                ..before
            }
            .quiet_since(&before)
        );
    }
}
