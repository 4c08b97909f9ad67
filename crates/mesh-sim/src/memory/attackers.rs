//! The hostile nodes of a run: which initial nodes attack and how (chosen from the seed),
//! the made-up keys they mint, and what they did. What they do to the frames they send is
//! in `hostile.rs`.

use mesh_proto::NodeId;
use mesh_proto::identity::Keypair;
use rustc_hash::FxHashSet;

use super::plan::derive;
use crate::{AttackKind, Scenario};

/// The hostile nodes' side of a run.
#[derive(Debug, Default)]
pub(super) struct State {
    /// The attack of each initial node that is hostile (by slot; `None`: honest).
    pub initial: Vec<Option<AttackKind>>,
    /// The honest initial nodes: the ones forgeries claim to come from.
    pub honest: Vec<u32>,
    /// Ids of the made-up nodes hostile nodes announced or flooded.
    pub made_up: FxHashSet<NodeId>,
    /// Keys minted so far (each from the seed and its number).
    pub minted: u64,
    /// Turns of the forgeries (which honest node is claimed, which flood forgery).
    pub turn: u64,
    /// `Neighbours` frames poisoned so far.
    pub poisoned: u64,
    /// Floods each flooding hostile node may still inject, by slot.
    pub spam_left: Vec<(u32, u32)>,
    pub frames_dropped: u64,
    pub frames_rewritten: u64,
    pub spam_sent: u64,
}

impl State {
    /// The hostile initial nodes of `scenario`, chosen from its seed.
    pub fn new(scenario: &Scenario) -> Self {
        let Some(h) = scenario.hostile else {
            return Self::default();
        };
        let n = scenario.nodes;
        let initial = crate::attack::initial(scenario);
        let honest = (0..n as u32)
            .filter(|i| initial[*i as usize].is_none())
            .collect();
        let spam_left = (0..n as u32)
            .filter(|i| initial[*i as usize] == Some(AttackKind::Flood))
            .map(|i| (i, h.spam))
            .collect();
        Self {
            initial,
            honest,
            spam_left,
            ..Self::default()
        }
    }

    /// Hostile nodes.
    pub fn count(&self) -> usize {
        self.initial.iter().filter(|k| k.is_some()).count()
    }

    /// A fresh key pair, from the seed.
    pub(super) fn mint(&mut self, seed: u64) -> Keypair {
        self.minted += 1;
        let mut bytes = [0u8; 32];
        for (k, chunk) in bytes.chunks_mut(8).enumerate() {
            let made_up = (1 << 40) + self.minted;
            chunk.copy_from_slice(&derive(seed, made_up, 16 + k as u64).to_le_bytes());
        }
        let key = Keypair::from_seed(bytes);
        self.made_up.insert(key.node_id());
        key
    }
}
