//! The scenario's steps in virtual time: joins, traffic, churn, kills, the server's end,
//! samples and progress lines.

use super::plan::Action;
use super::records::{
    BROADCAST_MARK, BroadcastRecord, CROSS_BROADCAST_MARK, CROSS_UNICAST_MARK, FORGED_MARK,
    KillRecord, UNICAST_MARK, UnicastRecord, app_data,
};
use super::world::{Emu, Life, Sim};
use super::{DRAIN_NS, JOIN_GRACE_NS, KILL_DETECTION_NS, Ns, REPAIR_CHECK_NS, S};
use crate::attack::SPAM_RATE;

/// Virtual time between progress lines.
const PROGRESS_EVERY: Ns = 5 * S;
/// Deliberate cross-room attempts with `--rooms` (half unicasts, half broadcasts).
pub(super) const CROSS_ROOM_ATTEMPTS: u64 = 20;
/// Seconds between two of them.
const CROSS_ROOM_EVERY: f64 = 0.25;

fn ns_of(seconds: f64) -> Ns {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1e9) as Ns
    } else {
        0
    }
}

impl Sim<'_> {
    /// The events of the scenario known from the start.
    pub(super) fn schedule_plan(&mut self, emu: &mut Emu) {
        let sc = self.scenario;
        if sc.nodes > 0 {
            emu.schedule(0, Action::StartInitial);
        }
        if let Some(kill) = sc.kill {
            let at = ns_of(kill.at.as_secs_f64());
            emu.schedule(at, Action::Kill);
        }
        if let Some(at) = sc.kill_bootstrap_at {
            let at = ns_of(at.as_secs_f64());
            emu.schedule(at, Action::KillServer);
        }
        emu.schedule(0, Action::Sample);
        if self.progress {
            emu.schedule(PROGRESS_EVERY, Action::Progress);
        }
    }

    /// Carries out one step.
    pub(super) fn act(&mut self, emu: &mut Emu, action: Action) {
        match action {
            Action::StartInitial => {
                self.start_node(emu, true);
                let next = self.slots.len();
                if next < self.scenario.nodes {
                    let at = ns_of(next as f64 / self.scenario.join_rate);
                    emu.schedule(at.max(self.now), Action::StartInitial);
                } else {
                    self.plan.all_started = true;
                    emu.schedule(self.now + JOIN_GRACE_NS, Action::StartTraffic);
                    self.maybe_start_traffic(emu);
                }
            }
            Action::StartTraffic => self.start_traffic(emu),
            Action::Unicast(k) => {
                self.unicast(emu);
                self.schedule_periodic(
                    emu,
                    k + 1,
                    1.0 / self.scenario.unicast_rate,
                    Action::Unicast,
                );
            }
            Action::Broadcast(k) => {
                self.broadcast(emu);
                let every = self
                    .scenario
                    .broadcast_every
                    .map_or(0.0, |d| d.as_secs_f64());
                self.schedule_periodic(emu, k + 1, every, Action::Broadcast);
            }
            Action::Churn(k) => {
                self.churn(emu);
                self.schedule_periodic(emu, k + 1, self.churn_period(), Action::Churn);
            }
            Action::Kill => self.kill(emu),
            Action::RepairCheck => self.repair_check(emu),
            Action::KillServer => self.kill_server(emu),
            Action::Spam(k) => {
                self.spam(emu);
                if self.spam_pending() {
                    self.schedule_periodic(emu, k + 1, 1.0 / SPAM_RATE, Action::Spam);
                }
            }
            Action::CrossRoom(k) => {
                self.cross_room(emu, k);
                if k + 1 < CROSS_ROOM_ATTEMPTS {
                    self.schedule_periodic(emu, k + 1, CROSS_ROOM_EVERY, Action::CrossRoom);
                }
            }
            Action::Sample => {
                self.sample();
                if self.now + S <= self.end {
                    emu.schedule(self.now + S, Action::Sample);
                }
            }
            Action::Progress => {
                self.print_progress(emu);
                if self.now + PROGRESS_EVERY <= self.end {
                    emu.schedule(self.now + PROGRESS_EVERY, Action::Progress);
                }
            }
        }
    }

    /// Node `i` has its first link.
    pub(super) fn on_linked(&mut self, emu: &mut Emu, i: u32) {
        if self.slots[i as usize].initial {
            self.plan.initial_settled += 1;
            self.maybe_start_traffic(emu);
        }
    }

    /// Node `i` left or was killed.
    pub(super) fn on_gone(&mut self, emu: &mut Emu, i: u32) {
        let slot = &self.slots[i as usize];
        if slot.initial && slot.first_link.is_none() {
            self.plan.initial_settled += 1;
            self.maybe_start_traffic(emu);
        }
    }

    fn maybe_start_traffic(&mut self, emu: &mut Emu) {
        // True once: every initial node settles once. (A second StartTraffic would do
        // nothing anyway.)
        if self.plan.all_started && self.plan.initial_settled >= self.scenario.nodes {
            let at = self.now + ns_of(self.scenario.settle.as_secs_f64());
            emu.schedule(at, Action::StartTraffic);
        }
    }

    fn start_traffic(&mut self, emu: &mut Emu) {
        if self.plan.traffic_at.is_some() {
            return;
        }
        self.plan.traffic_at = Some(self.now);
        let sc = self.scenario;
        // A rate of 0 gives an infinite period, which schedules nothing.
        self.schedule_periodic(emu, 0, 1.0 / sc.unicast_rate, Action::Unicast);
        if let Some(every) = sc.broadcast_every {
            self.schedule_periodic(emu, 0, every.as_secs_f64(), Action::Broadcast);
        }
        let churn = self.churn_period();
        self.schedule_periodic(emu, 1, churn, Action::Churn);
        if self.spam_pending() {
            self.schedule_periodic(emu, 0, 1.0 / SPAM_RATE, Action::Spam);
        }
        if self.rooms.len() > 1 {
            self.schedule_periodic(emu, 0, CROSS_ROOM_EVERY, Action::CrossRoom);
        }
    }

    /// Schedules the `k`-th occurrence of a series of `period` seconds that started with
    /// the traffic, if it falls before the traffic stops.
    fn schedule_periodic(&mut self, emu: &mut Emu, k: u64, period: f64, action: fn(u64) -> Action) {
        let Some(start) = self.plan.traffic_at else {
            return;
        };
        if !(period.is_finite() && period > 0.0) {
            return;
        }
        let at = start.saturating_add(ns_of(k as f64 * period));
        if at < self.end.saturating_sub(self.drain_ns()) {
            emu.schedule(at, action(k));
        }
    }

    /// How long before the end the traffic stops: [`DRAIN_NS`], or with `--reliable` the
    /// longest a reliable unicast takes (key wait and every try) and 1 s more, so that
    /// each one sent is delivered or given up within the run.
    fn drain_ns(&self) -> Ns {
        if !self.scenario.reliable {
            return DRAIN_NS;
        }
        let longest = self.scenario.overlay().longest_reliable_delivery();
        ns_of(longest.as_secs_f64()).saturating_add(DRAIN_NS)
    }

    /// Seconds between two replacements (infinite without churn).
    fn churn_period(&self) -> f64 {
        1.0 / self.scenario.churns_per_second()
    }

    fn unicast(&mut self, emu: &mut Emu) {
        if self.live.len() < 2 {
            return;
        }
        let (a, b) = if self.rooms.len() > 1 {
            // Within a room: the origin first, then another node of its room.
            let a = self.live.sample(&mut self.plan_rng, 1, None)[0];
            let room = &self.live_rooms[self.slots[a as usize].room as usize];
            let Some(&b) = room.sample(&mut self.plan_rng, 1, Some(a)).first() else {
                return;
            };
            (a, b)
        } else {
            let pick = self.live.sample(&mut self.plan_rng, 2, None);
            (pick[0], pick[1])
        };
        let id = self.measure.unicasts.len() as u64;
        self.measure.unicasts.push(UnicastRecord {
            sent_at: self.now,
            ends: (a, b),
            transmissions: 0,
            delivered: None,
        });
        let to = self.slots[b as usize].id;
        let now = emu.instant_now();
        let data = match self.slots[a as usize].hostile {
            Some(crate::AttackKind::Forge) => app_data(FORGED_MARK, u64::from(a)),
            _ => app_data(UNICAST_MARK, id),
        };
        let Some(node) = self.slots[a as usize].node.as_mut() else {
            return;
        };
        // A node with no link yet refuses (`NoRoute`): the message counts as sent, lost.
        let sent = if self.scenario.reliable {
            node.send_reliable(now, to, data)
        } else {
            node.send(now, to, data)
        };
        if sent.is_ok() {
            emu.drain(self, a);
        }
    }

    fn broadcast(&mut self, emu: &mut Emu) {
        let Some(&origin) = self.live.sample(&mut self.plan_rng, 1, None).first() else {
            return;
        };
        let id = self.measure.broadcasts.len() as u64;
        let room = &self.live_rooms[self.slots[origin as usize].room as usize];
        let honest_alive = room
            .items()
            .iter()
            .filter(|j| **j != origin && self.slots[**j as usize].hostile.is_none())
            .count();
        self.measure.broadcasts.push(BroadcastRecord {
            sent_at: self.now,
            origin,
            alive: room.len(),
            covered: 0,
            honest_alive,
            honest_covered: 0,
        });
        let data = match self.slots[origin as usize].hostile {
            Some(crate::AttackKind::Forge) => app_data(FORGED_MARK, u64::from(origin)),
            _ => app_data(BROADCAST_MARK, id),
        };
        let now = emu.instant_now();
        let Some(node) = self.slots[origin as usize].node.as_mut() else {
            return;
        };
        if node.broadcast(now, data).is_ok() {
            emu.drain(self, origin);
        }
    }

    /// Deliberate attempt `k` across rooms: a unicast to a node of another room (even `k`)
    /// or a broadcast (odd `k`) that only the nodes of other rooms would count.
    fn cross_room(&mut self, emu: &mut Emu, k: u64) {
        let Some(&a) = self.live.sample(&mut self.plan_rng, 1, None).first() else {
            return;
        };
        let room = self.slots[a as usize].room;
        let now = emu.instant_now();
        if k.is_multiple_of(2) {
            let others: Vec<u32> = (0..self.live_rooms.len() as u32)
                .filter(|r| *r != room && !self.live_rooms[*r as usize].is_empty())
                .collect();
            let Some(&r) = others.get((k / 2) as usize % others.len().max(1)) else {
                return;
            };
            let Some(&b) = self.live_rooms[r as usize]
                .sample(&mut self.plan_rng, 1, None)
                .first()
            else {
                return;
            };
            self.measure.attack.cross_attempts += 1;
            let to = self.slots[b as usize].id;
            let Some(node) = self.slots[a as usize].node.as_mut() else {
                return;
            };
            // Refused at once (no route) or, more likely, lost: the key lookup finds no
            // record of a node of another room.
            if node.send(now, to, app_data(CROSS_UNICAST_MARK, k)).is_ok() {
                emu.drain(self, a);
            }
        } else {
            self.measure.attack.cross_attempts += 1;
            let Some(node) = self.slots[a as usize].node.as_mut() else {
                return;
            };
            let data = app_data(CROSS_BROADCAST_MARK, u64::from(a));
            if node.broadcast(now, data).is_ok() {
                emu.drain(self, a);
            }
        }
    }

    /// A random live node leaves and a new one starts.
    fn churn(&mut self, emu: &mut Emu) {
        if let Some(&i) = self.live.sample(&mut self.plan_rng, 1, None).first() {
            self.retire(emu, i, Life::Left);
        }
        self.start_node(emu, false);
    }

    /// A fraction of the live nodes vanish at once.
    fn kill(&mut self, emu: &mut Emu) {
        let Some(kill) = self.scenario.kill else {
            return;
        };
        let count = ((kill.fraction.clamp(0.0, 1.0) * self.live.len() as f64).round() as usize)
            .min(self.live.len());
        let mut victims = self.live.sample(&mut self.plan_rng, count, None);
        victims.sort_unstable();
        let killed = victims.len();
        for i in victims {
            self.retire(emu, i, Life::Killed);
        }
        emu.drop_sessions_of_dead(self, KILL_DETECTION_NS);
        self.measure.kill = Some(KillRecord {
            at: self.now,
            killed,
            repaired: None,
        });
        self.repair_check(emu);
    }

    /// Checks for one component now and, until there is one, every [`REPAIR_CHECK_NS`].
    fn repair_check(&mut self, emu: &mut Emu) {
        if !self.check_repair() && self.now + REPAIR_CHECK_NS <= self.end {
            emu.schedule(self.now + REPAIR_CHECK_NS, Action::RepairCheck);
        }
    }

    /// The bootstrap server stops: every live node hears `ServerDown`.
    fn kill_server(&mut self, emu: &mut Emu) {
        let mut alive = self.live.items().to_vec();
        alive.sort_unstable();
        emu.stop_server(&alive);
    }

    fn print_progress(&self, emu: &Emu) {
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
            emu.queued(),
            emu.peak,
            self.wall.elapsed().as_secs_f64(),
        );
    }
}
