//! The simulation's side of the emulated network (`mesh_emu`): the nodes with what the
//! scenario keeps of each, and the hooks through which the emulator reports to the plan
//! (`scenario_plan.rs`) and the measurements (`measure.rs`).

use mesh_core::{Event, Node, Role};
use mesh_emu::{FastMap, Pool, World, bootstrap_url, door_url};
use mesh_proto::{NodeId, RoomName};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::attackers;
use super::plan::{Action, PlanState};
use super::records::Measure;
use super::{LINK_LATENCY_NS, LINK_SETUP_LATENCIES, Ns, SERVER_LATENCY_NS};
use crate::{AttackKind, Scenario};

/// The emulated network, carrying the scenario's own events.
pub(super) type Emu = mesh_emu::Emulator<Action>;
pub(super) use super::plan::derive;

/// Peers in a `Welcome`.
const WELCOME_SAMPLE: usize = 8;
/// Most peers in a `Peers` answer.
const PEERS_SAMPLE: usize = 16;

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Life {
    Alive,
    Left,
    Killed,
}

/// One node of the run, alive or not.
pub(super) struct Slot {
    /// The core; `None` once the node has left or was killed.
    pub node: Option<Node>,
    pub id: NodeId,
    pub life: Life,
    pub start: Ns,
    pub first_link: Option<Ns>,
    pub full_degree: Option<Ns>,
    /// One of the scenario's initial nodes (not a churn replacement).
    pub initial: bool,
    /// Its attack, if it is hostile.
    pub hostile: Option<AttackKind>,
    /// Its room (an index into [`Sim::rooms`]).
    pub room: u32,
}

/// The run: the scenario, its nodes and what it measured.
pub(crate) struct Sim<'a> {
    pub scenario: &'a Scenario,
    pub config: mesh_core::Config,
    /// The virtual time of the event being handled (the emulator's, copied as each
    /// callback starts).
    pub now: Ns,
    pub end: Ns,
    /// The scenario's choices: traffic pairs, churn and kill victims.
    pub plan_rng: StdRng,
    pub slots: Vec<Slot>,
    pub index: FastMap<NodeId, u32>,
    pub live: Pool,
    pub measure: Measure,
    pub plan: PlanState,
    pub progress: bool,
    pub wall: std::time::Instant,
    /// Every node's key pair: the simulator opens the scenario's sealed unicasts on the
    /// links to count their hops (no relay can).
    pub keys: FastMap<NodeId, mesh_proto::identity::Keypair>,
    /// The rooms' names (one, the default room, without `--rooms`).
    pub rooms: Vec<RoomName>,
    /// The live nodes of each room.
    pub live_rooms: Vec<Pool>,
    /// The hostile nodes.
    pub hostile: attackers::State,
}

impl<'a> Sim<'a> {
    /// The run of `scenario` and its network, with the scenario's first events scheduled.
    pub fn new(scenario: &'a Scenario, progress: bool) -> (Self, Emu) {
        let end = u64::try_from(scenario.duration.as_nanos()).unwrap_or(u64::MAX / 2);
        let network = mesh_emu::Config {
            latencies: mesh_emu::Latencies {
                server: SERVER_LATENCY_NS,
                link: LINK_LATENCY_NS,
                link_setup: LINK_SETUP_LATENCIES,
            },
            sampling: mesh_emu::Sampling::Random,
            welcome: WELCOME_SAMPLE,
            peers: PEERS_SAMPLE,
        };
        let mut emu = Emu::new(network, StdRng::seed_from_u64(derive(scenario.seed, 0, 1)));
        let config = scenario.overlay();
        let rooms: Vec<RoomName> = if scenario.rooms > 1 {
            (0..scenario.rooms)
                .map(|r| RoomName::try_from(format!("room-{r}")).expect("a valid room name"))
                .collect()
        } else {
            vec![config.room.clone()]
        };
        let mut sim = Self {
            scenario,
            config,
            now: 0,
            end,
            plan_rng: StdRng::seed_from_u64(derive(scenario.seed, 0, 2)),
            slots: Vec::with_capacity(scenario.nodes),
            index: FastMap::default(),
            live: Pool::default(),
            measure: Measure::default(),
            plan: PlanState::default(),
            progress,
            wall: std::time::Instant::now(),
            keys: FastMap::default(),
            live_rooms: rooms.iter().map(|_| Pool::default()).collect(),
            rooms,
            hostile: attackers::State::new(scenario),
        };
        sim.schedule_plan(&mut emu);
        (sim, emu)
    }

    /// Processes every event up to the end of the run.
    pub fn run(&mut self, emu: &mut Emu) {
        emu.run(self, self.end);
        self.now = self.end;
    }

    /// Starts node `initial`'s or a replacement's life: a new slot, a key, a core; it
    /// connects to the bootstrap server at once.
    pub fn start_node(&mut self, emu: &mut Emu, initial: bool) -> u32 {
        let i = self.slots.len() as u32;
        let seed = self.scenario.seed;
        let mut key_seed = [0u8; 32];
        for (k, chunk) in key_seed.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&derive(seed, u64::from(i) + 1, 16 + k as u64).to_le_bytes());
        }
        let key = mesh_proto::identity::Keypair::from_seed(key_seed);
        let id = key.node_id();
        // The simulator reads the scenario's unicasts on the links (to count their hops):
        // it holds every node's key, as no relay does.
        self.keys
            .insert(id, mesh_proto::identity::Keypair::from_seed(key_seed));
        let room = i % self.rooms.len() as u32;
        let mut config = self.config.clone();
        config.room = self.rooms[room as usize].clone();
        config.bootstraps = vec![bootstrap_url()];
        if self.scenario.doors {
            config.door = Some(door_url(i));
        }
        let node = Node::new(
            config,
            key,
            emu.instant_now(),
            derive(seed, u64::from(i) + 1, 3),
        )
        .expect("Scenario::overlay gives a valid configuration");
        let added = emu.add_in_room(id, room);
        debug_assert_eq!(added, i, "the emulator counts nodes as the slots do");
        self.slots.push(Slot {
            node: Some(node),
            id,
            life: Life::Alive,
            start: self.now,
            first_link: None,
            full_degree: None,
            initial,
            hostile: if initial {
                self.hostile.initial.get(i as usize).copied().flatten()
            } else {
                None
            },
            room,
        });
        self.index.insert(id, i);
        self.live.insert(i);
        self.live_rooms[room as usize].insert(i);
        emu.connect(i);
        emu.arm_timer(self, i);
        i
    }

    /// Node `i` leaves (`Node::leave`) or is killed; either way it is gone for good.
    pub fn retire(&mut self, emu: &mut Emu, i: u32, life: Life) {
        let Some(node) = self.slots[i as usize].node.as_mut() else {
            return;
        };
        if life == Life::Left {
            node.leave();
            emu.drain(self, i);
        }
        let slot = &mut self.slots[i as usize];
        slot.life = life;
        if let Some(node) = slot.node.take() {
            self.measure.retired.add(node.stats());
            if slot.hostile.is_none() {
                self.measure.attack.retired_honest.add(node.stats());
            }
        }
        self.live.remove(i);
        self.live_rooms[slot.room as usize].remove(i);
        emu.gone(i);
        self.on_gone(emu, i);
    }
}

impl World<Action> for Sim<'_> {
    fn node(&self, i: u32) -> Option<&Node> {
        self.slots.get(i as usize)?.node.as_ref()
    }

    fn node_mut(&mut self, i: u32) -> Option<&mut Node> {
        self.slots.get_mut(i as usize)?.node.as_mut()
    }

    fn on_event(&mut self, emu: &mut Emu, i: u32, event: Event) {
        self.now = emu.now;
        self.on_node_event(emu, i, event);
    }

    fn on_user(&mut self, emu: &mut Emu, action: Action) {
        self.now = emu.now;
        self.act(emu, action);
    }

    fn on_link_frame(&mut self, i: u32, j: u32, bytes: &mut bytes::Bytes) -> bool {
        if let Some(kind) = self.slots.get(i as usize).and_then(|s| s.hostile)
            && !self.hostile_frame(i, j, kind, bytes)
        {
            return false;
        }
        let Some(receiver) = self.slots.get(j as usize) else {
            return true;
        };
        let (id, room) = (receiver.id, &self.rooms[receiver.room as usize]);
        let keys = &self.keys;
        self.measure
            .observe_link_frame(bytes, id, |id| keys.get(id), room);
        true
    }

    fn on_open_session(&mut self, i: u32, peer: NodeId, role: Role) {
        if role == Role::Offerer
            && self.slots[i as usize].hostile.is_none()
            && self.hostile.made_up.contains(&peer)
        {
            self.measure.attack.sessions_to_made_up += 1;
        }
    }

    fn on_link_up(&mut self, setup: Ns) {
        self.measure.link_setup_ms.push(setup as f64 / 1e6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_by_node_and_purpose() {
        assert_ne!(derive(1, 1, 1), derive(1, 2, 1));
        assert_ne!(derive(1, 1, 1), derive(1, 1, 2));
        assert_ne!(derive(1, 1, 1), derive(2, 1, 1));
        // Pinned: a run's nodes, keys and choices derive from it, so a change here changes
        // every seeded report.
        assert_eq!(derive(7, 3, 3), 18_125_976_302_054_136_645);
    }
}
