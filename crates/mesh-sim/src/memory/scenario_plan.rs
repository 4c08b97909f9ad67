//! The scenario's steps in virtual time: joins, traffic, churn, kills, the server's end,
//! samples and progress lines.

use super::emulator::{Event, Life, Pool, Sim};
use super::plan::Action;
use super::records::{
    BROADCAST_MARK, BroadcastRecord, KillRecord, UNICAST_MARK, UnicastRecord, app_data,
};
use super::{DRAIN_NS, JOIN_GRACE_NS, KILL_DETECTION_NS, Ns, REPAIR_CHECK_NS, S};
use mesh_core::Input;

/// Virtual time between progress lines.
const PROGRESS_EVERY: Ns = 5 * S;

fn ns_of(seconds: f64) -> Ns {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1e9) as Ns
    } else {
        0
    }
}

impl Sim<'_> {
    /// The events of the scenario known from the start.
    pub(super) fn schedule_plan(&mut self) {
        let sc = self.scenario;
        if sc.nodes > 0 {
            self.queue.push(0, Event::Plan(Action::StartInitial));
        }
        if let Some(kill) = sc.kill {
            let at = ns_of(kill.at.as_secs_f64());
            self.queue.push(at, Event::Plan(Action::Kill));
        }
        if let Some(at) = sc.kill_bootstrap_at {
            let at = ns_of(at.as_secs_f64());
            self.queue.push(at, Event::Plan(Action::KillServer));
        }
        self.queue.push(0, Event::Plan(Action::Sample));
        if self.progress {
            self.queue
                .push(PROGRESS_EVERY, Event::Plan(Action::Progress));
        }
    }

    /// Carries out one step.
    pub(super) fn act(&mut self, action: Action) {
        match action {
            Action::StartInitial => {
                self.start_node(true);
                let next = self.slots.len();
                if next < self.scenario.nodes {
                    let at = ns_of(next as f64 / self.scenario.join_rate);
                    self.queue
                        .push(at.max(self.now), Event::Plan(Action::StartInitial));
                } else {
                    self.plan.all_started = true;
                    self.queue
                        .push(self.now + JOIN_GRACE_NS, Event::Plan(Action::StartTraffic));
                    self.maybe_start_traffic();
                }
            }
            Action::StartTraffic => self.start_traffic(),
            Action::Unicast(k) => {
                self.unicast();
                self.schedule_periodic(k + 1, 1.0 / self.scenario.unicast_rate, Action::Unicast);
            }
            Action::Broadcast(k) => {
                self.broadcast();
                let every = self
                    .scenario
                    .broadcast_every
                    .map_or(0.0, |d| d.as_secs_f64());
                self.schedule_periodic(k + 1, every, Action::Broadcast);
            }
            Action::Churn(k) => {
                self.churn();
                self.schedule_periodic(k + 1, self.churn_period(), Action::Churn);
            }
            Action::Kill => self.kill(),
            Action::RepairCheck => self.repair_check(),
            Action::KillServer => self.kill_server(),
            Action::Sample => {
                self.sample();
                if self.now + S <= self.end {
                    self.queue.push(self.now + S, Event::Plan(Action::Sample));
                }
            }
            Action::Progress => {
                self.print_progress();
                if self.now + PROGRESS_EVERY <= self.end {
                    self.queue
                        .push(self.now + PROGRESS_EVERY, Event::Plan(Action::Progress));
                }
            }
        }
    }

    /// Node `i` has its first link.
    pub(super) fn on_linked(&mut self, i: u32) {
        if self.slots[i as usize].initial {
            self.plan.initial_settled += 1;
            self.maybe_start_traffic();
        }
    }

    /// Node `i` left or was killed.
    pub(super) fn on_gone(&mut self, i: u32) {
        let slot = &self.slots[i as usize];
        if slot.initial && slot.first_link.is_none() {
            self.plan.initial_settled += 1;
            self.maybe_start_traffic();
        }
    }

    fn maybe_start_traffic(&mut self) {
        // True once: every initial node settles once. (A second StartTraffic would do
        // nothing anyway.)
        if self.plan.all_started && self.plan.initial_settled >= self.scenario.nodes {
            let at = self.now + ns_of(self.scenario.settle.as_secs_f64());
            self.queue.push(at, Event::Plan(Action::StartTraffic));
        }
    }

    fn start_traffic(&mut self) {
        if self.plan.traffic_at.is_some() {
            return;
        }
        self.plan.traffic_at = Some(self.now);
        let sc = self.scenario;
        // A rate of 0 gives an infinite period, which schedules nothing.
        self.schedule_periodic(0, 1.0 / sc.unicast_rate, Action::Unicast);
        if let Some(every) = sc.broadcast_every {
            self.schedule_periodic(0, every.as_secs_f64(), Action::Broadcast);
        }
        let churn = self.churn_period();
        self.schedule_periodic(1, churn, Action::Churn);
    }

    /// Schedules the `k`-th occurrence of a series of `period` seconds that started with
    /// the traffic, if it falls before the traffic stops.
    fn schedule_periodic(&mut self, k: u64, period: f64, action: fn(u64) -> Action) {
        let Some(start) = self.plan.traffic_at else {
            return;
        };
        if !(period.is_finite() && period > 0.0) {
            return;
        }
        let at = start.saturating_add(ns_of(k as f64 * period));
        if at < self.end.saturating_sub(DRAIN_NS) {
            self.queue.push(at, Event::Plan(action(k)));
        }
    }

    /// Seconds between two replacements (infinite without churn).
    fn churn_period(&self) -> f64 {
        1.0 / self.scenario.churns_per_second()
    }

    fn unicast(&mut self) {
        if self.live.len() < 2 {
            return;
        }
        let pick = self.live.sample(&mut self.plan_rng, 2, None);
        let (a, b) = (pick[0], pick[1]);
        let id = self.measure.unicasts.len() as u64;
        self.measure.unicasts.push(UnicastRecord {
            sent_at: self.now,
            ends: (a, b),
            transmissions: 0,
            delivered: None,
        });
        let to = self.slots[b as usize].id;
        let now = self.instant(self.now);
        let Some(node) = self.slots[a as usize].node.as_mut() else {
            return;
        };
        // A node with no link yet refuses (`NoRoute`): the message counts as sent, lost.
        if node.send(now, to, app_data(UNICAST_MARK, id)).is_ok() {
            self.drain(a);
        }
    }

    fn broadcast(&mut self) {
        let Some(&origin) = self.live.sample(&mut self.plan_rng, 1, None).first() else {
            return;
        };
        let id = self.measure.broadcasts.len() as u64;
        self.measure.broadcasts.push(BroadcastRecord {
            sent_at: self.now,
            origin,
            alive: self.live.len(),
            covered: 0,
        });
        let now = self.instant(self.now);
        let Some(node) = self.slots[origin as usize].node.as_mut() else {
            return;
        };
        if node.broadcast(now, app_data(BROADCAST_MARK, id)).is_ok() {
            self.drain(origin);
        }
    }

    /// A random live node leaves and a new one starts.
    fn churn(&mut self) {
        if let Some(&i) = self.live.sample(&mut self.plan_rng, 1, None).first() {
            self.retire(i, Life::Left);
        }
        self.start_node(false);
    }

    /// A fraction of the live nodes vanish at once.
    fn kill(&mut self) {
        let Some(kill) = self.scenario.kill else {
            return;
        };
        let count = ((kill.fraction.clamp(0.0, 1.0) * self.live.len() as f64).round() as usize)
            .min(self.live.len());
        let mut victims = self.live.sample(&mut self.plan_rng, count, None);
        victims.sort_unstable();
        let killed = victims.len();
        for i in victims {
            self.retire(i, Life::Killed);
        }
        self.drop_sessions_of_dead(KILL_DETECTION_NS);
        self.measure.kill = Some(KillRecord {
            at: self.now,
            killed,
            repaired: None,
        });
        self.repair_check();
    }

    /// Checks for one component now and, until there is one, every [`REPAIR_CHECK_NS`].
    fn repair_check(&mut self) {
        if !self.check_repair() && self.now + REPAIR_CHECK_NS <= self.end {
            self.queue
                .push(self.now + REPAIR_CHECK_NS, Event::Plan(Action::RepairCheck));
        }
    }

    /// The bootstrap server stops: every live node hears `ServerDown`.
    fn kill_server(&mut self) {
        self.server_up = false;
        self.registry = Pool::default();
        let mut alive = self.live.items().to_vec();
        alive.sort_unstable();
        for i in alive {
            let server = super::urls::bootstrap_url();
            self.server_send(i, Input::ServerDown { server });
        }
    }

    fn print_progress(&self) {
        let delivered = self
            .measure
            .unicasts
            .iter()
            .filter(|u| u.delivered.is_some())
            .count();
        eprintln!(
            "mesh-sim memory: t {:.0}/{:.0} s, {} alive, {} linked, {} at min degree, \
             unicast {}/{}, broadcasts {}, {} events queued (peak {}), wall {:.1} s",
            self.now as f64 / 1e9,
            self.end as f64 / 1e9,
            self.live.len(),
            self.measure.linked,
            self.measure.full,
            delivered,
            self.measure.unicasts.len(),
            self.measure.broadcasts.len(),
            self.queue.len(),
            self.queue.peak,
            self.wall.elapsed().as_secs_f64(),
        );
    }
}
