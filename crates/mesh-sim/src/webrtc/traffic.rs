//! The scenario in wall-clock time: nodes start at the join rate, then unicasts, broadcasts,
//! churn, the kill and the server's stop happen when they are due, until the end. What is
//! due after the traffic's planned start waits for the mesh: it moves by as much as the
//! initial joins came late (see [`Late`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::ProgressStyle;
use mesh_node::Node;
use rand::Rng;
use tracing::{debug, info};

use super::observe::{self, Kind, lock};
use super::sim::{KillRecord, Sim, query};
use super::{AFTER_REPAIR, FORM_WAIT, REPAIR_POLL, REPAIR_WAIT};
use crate::Report;
use crate::scenario::JOIN_GRACE;

impl Sim<'_> {
    /// The scenario, then the measurements at the end.
    pub(super) async fn run(&mut self) -> anyhow::Result<Report> {
        let s = self.scenario;
        let start = self.shared.start;
        let join_every = Duration::from_secs_f64(1.0 / s.join_rate);
        let late = Late::new(start, s, join_every);
        let mut end = late.due(s.duration);
        let unicast_every =
            (s.unicast_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / s.unicast_rate));
        let churn_rate = s.churns_per_second();
        let churn_every = (churn_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / churn_rate));

        let mut started = 0;
        let mut next_join = start;
        let mut traffic_started = false;
        let mut settle_until: Option<Instant> = None;
        let (mut next_unicast, mut next_broadcast, mut next_churn) = (None, None, None);
        let mut kill_at = s.kill.map(|k| (late.due(k.at), k.fraction));
        let mut server_kill_at = s.kill_bootstrap_at.map(|d| late.due(d));
        let mut next_repair_check: Option<Instant> = None;
        let mut held = true;
        let mut next_sample = start + Duration::from_secs(1);
        loop {
            let now = Instant::now();
            if end.at(now) && !self.awaiting_repair(now) {
                break;
            }
            while started < s.nodes && next_join <= now {
                self.start_join();
                started += 1;
                next_join += join_every;
            }
            if settle_until.is_none() && started == s.nodes {
                let joined = self.shared.joined_initial.load(Ordering::Relaxed);
                let last_start = self.slots[s.nodes - 1].started;
                if joined + self.initial_failed >= s.nodes || now >= last_start + JOIN_GRACE {
                    // The mesh gets `settle` to take its shape before the traffic.
                    settle_until = Some(now + s.settle);
                }
            }
            if !traffic_started && settle_until.is_some_and(|at| now >= at) {
                let joined = self.shared.joined_initial.load(Ordering::Relaxed);
                info!(joined, "initial joins done, mesh settled: traffic starts");
                traffic_started = true;
                self.start_floods();
                next_unicast = unicast_every.map(|d| now + d);
                next_broadcast = s.broadcast_every.map(|d| now + d);
                next_churn = churn_every.map(|d| now + d);
                self.bar.set_style(
                    ProgressStyle::with_template("running  [{bar:40}] {pos}/{len} s  {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                self.bar.set_length(s.duration.as_secs());
            }
            if held && traffic_started && self.formed(now) {
                // The mesh has formed: what was held is due as late as the mesh came.
                held = false;
                let lag = late.lag(now);
                if !lag.is_zero() {
                    info!(
                        ?lag,
                        "the mesh formed late: what is due after it moves by as much"
                    );
                }
                for due in [Some(&mut end), kill_at.as_mut().map(|(at, _)| at)]
                    .into_iter()
                    .chain([server_kill_at.as_mut()])
                    .flatten()
                {
                    due.release(lag);
                }
            }
            if let Some((at, fraction)) = kill_at
                && at.at(now)
            {
                self.kill(fraction).await;
                kill_at = None;
                next_repair_check = Some(now);
            }
            if next_repair_check.is_some_and(|at| at <= now) {
                let repaired = self.check_repair().await;
                next_repair_check = (!repaired).then(|| Instant::now() + REPAIR_POLL);
            }
            if server_kill_at.is_some_and(|at| at.at(now)) {
                info!("stopping the bootstrap server(s)");
                for stop in self.server_stop.drain(..) {
                    let _ = stop.send(());
                }
                server_kill_at = None;
            }
            if let (Some(next), Some(every)) = (next_unicast.as_mut(), unicast_every) {
                while *next <= now {
                    self.unicast().await;
                    *next += every;
                }
            }
            if let (Some(next), Some(every)) = (next_broadcast.as_mut(), s.broadcast_every) {
                while *next <= now {
                    self.broadcast().await;
                    *next += every;
                }
            }
            if let (Some(next), Some(every)) = (next_churn.as_mut(), churn_every) {
                while *next <= now {
                    self.churn().await;
                    *next += every;
                }
            }
            if next_sample <= now {
                self.sample(true).await;
                while next_sample <= Instant::now() {
                    next_sample += Duration::from_secs(1);
                }
            }
            self.show_progress(traffic_started);

            let mut wake = next_sample.min(now + Duration::from_millis(100));
            if started < s.nodes {
                wake = wake.min(next_join);
            }
            let settling = settle_until.filter(|_| !traffic_started);
            for t in [
                next_unicast,
                next_broadcast,
                next_churn,
                settling,
                next_repair_check,
            ]
            .into_iter()
            .flatten()
            .chain(
                [Some(end), server_kill_at, kill_at.map(|(at, _)| at)]
                    .into_iter()
                    .flatten()
                    .filter_map(Due::time),
            ) {
                wake = wake.min(t);
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {}
                Some(joined) = self.joins.join_next(), if !self.joins.is_empty() => {
                    self.on_joined(joined.context("a join task failed")?);
                }
            }
        }
        self.finish().await
    }

    /// Whether the initial mesh has formed: every initial node (but those whose join
    /// failed) has reached the minimum degree, or [`FORM_WAIT`] has passed since the last
    /// one started.
    fn formed(&self, now: Instant) -> bool {
        let s = self.scenario;
        let formed = self.shared.formed_initial.load(Ordering::Relaxed);
        formed + self.initial_failed >= s.nodes
            || self
                .slots
                .get(s.nodes - 1)
                .is_some_and(|last| now >= last.started + FORM_WAIT)
    }

    /// Whether the end waits for the mesh after a kill: until the repair has been seen and
    /// [`AFTER_REPAIR`] of traffic has followed it, at most [`REPAIR_WAIT`] after the kill.
    fn awaiting_repair(&self, now: Instant) -> bool {
        match &self.kill {
            None => false,
            Some(kill) if now >= kill.at + REPAIR_WAIT => false,
            Some(kill) => kill.repaired.is_none_or(|(at, _)| now < at + AFTER_REPAIR),
        }
    }

    /// A unicast between two random linked nodes.
    pub(super) async fn unicast(&mut self) {
        let live = self.live(true);
        if live.len() < 2 {
            return;
        }
        let (a, b) = self.pick_pair(live.len());
        let id = lock(&self.shared.traffic).unicast_sent(self.slots[live[a].0].id);
        self.unicast_log
            .push((live[a].0, live[b].0, self.shared.start.elapsed()));
        let to = self.slots[live[b].0].id;
        let data = observe::payload(Kind::Unicast, id, self.now_us());
        let sent = if self.scenario.reliable {
            live[a].1.send_reliable(to, data).await
        } else {
            live[a].1.send(to, data).await
        };
        if let Err(e) = sent {
            debug!(from = live[a].0, to = live[b].0, "unicast not sent: {e}");
            self.send_errors += 1;
        }
    }

    /// A broadcast from a random linked node.
    pub(super) async fn broadcast(&mut self) {
        let live = self.live(true);
        if live.len() < 2 {
            return;
        }
        let origin = self.picks.random_range(0..live.len());
        let id = lock(&self.shared.traffic).broadcast_sent(self.slots[live[origin].0].id);
        self.broadcast_alive.push(live.len());
        let honest = live.iter().filter(|(i, _)| !self.slots[*i].hostile).count();
        let origin_honest = !self.slots[live[origin].0].hostile;
        self.broadcast_honest
            .push(origin_honest.then(|| honest.saturating_sub(1)));
        let data = observe::payload(Kind::Broadcast, id, self.now_us());
        if let Err(e) = live[origin].1.broadcast(data).await {
            debug!(from = live[origin].0, "broadcast not sent: {e}");
            self.send_errors += 1;
        }
    }

    /// Stops the nodes at `indices` (dropping their handles), after reading their counters.
    pub(super) async fn retire(&mut self, indices: &[usize]) {
        let nodes: Vec<(usize, Arc<Node>)> = indices
            .iter()
            .filter_map(|&i| Some((i, self.slots[i].node.clone()?)))
            .collect();
        for (i, stats) in query(&nodes, |node| async move { node.stats().await }).await {
            self.retired.add(&stats);
            if !self.slots[i].hostile {
                self.retired_honest.add(&stats);
            }
        }
        drop(nodes);
        for &i in indices {
            let slot = &mut self.slots[i];
            // The last handle: dropping it makes the driver leave; its door goes too.
            slot.node = None;
            slot.door_stop = None;
        }
    }

    /// Kills `fraction` of the live nodes, chosen at random.
    pub(super) async fn kill(&mut self, fraction: f64) {
        let live = self.live(false);
        if live.is_empty() {
            return;
        }
        let n = ((fraction * live.len() as f64).round() as usize).clamp(1, live.len());
        let victims: Vec<usize> = rand::seq::index::sample(&mut self.picks, live.len(), n)
            .into_iter()
            .map(|k| live[k].0)
            .collect();
        drop(live);
        info!(n, "killing nodes");
        self.retire(&victims).await;
        self.kill = Some(KillRecord {
            at: Instant::now(),
            killed: victims.len(),
            repaired: None,
        });
    }

    /// A random linked node leaves; a new one joins.
    pub(super) async fn churn(&mut self) {
        let live = self.live(true);
        if let Some(&(i, _)) = live.get(self.picks.random_range(0..live.len().max(1))) {
            drop(live);
            debug!(node = i, "churn: a node leaves, a new one joins");
            self.retire(&[i]).await;
        }
        self.start_join();
    }
}

/// When the traffic was planned to start: once every initial node had started (at the join
/// rate) and `settle` had passed, as if joins took no time. On a slow machine the joins
/// take longer, and a scenario that kept its times from the start would stop the server or
/// kill nodes in a mesh still forming, or end before any traffic: what is due after this
/// moment is held until the traffic has started and the mesh has formed (every initial
/// node at the minimum degree), then moves by as much as that came late.
#[derive(Clone, Copy, Debug)]
struct Late {
    start: Instant,
    planned: Instant,
}

impl Late {
    fn new(start: Instant, s: &crate::Scenario, join_every: Duration) -> Self {
        let joins = join_every.mul_f64(s.nodes.saturating_sub(1) as f64);
        Self {
            start,
            planned: start + joins + s.settle,
        }
    }

    /// The moment `offset` from the start: fixed if it comes before the planned traffic
    /// start, held until the traffic starts otherwise.
    fn due(&self, offset: Duration) -> Due {
        let at = self.start + offset;
        if at < self.planned {
            Due::At(at)
        } else {
            Due::Held(at)
        }
    }

    /// How late the mesh is, formed at `now`.
    fn lag(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.planned)
    }
}

/// A scheduled moment of the scenario (the server's stop, the kill, the end).
#[derive(Clone, Copy, Debug)]
enum Due {
    /// Happens at this time.
    At(Instant),
    /// Planned for this time, held until the traffic starts and the mesh has formed.
    Held(Instant),
}

impl Due {
    /// Whether it is due at `now` (a held moment never is).
    fn at(self, now: Instant) -> bool {
        matches!(self, Due::At(at) if at <= now)
    }

    /// The time to wake up for it, if it has one yet.
    fn time(self) -> Option<Instant> {
        match self {
            Due::At(at) => Some(at),
            Due::Held(_) => None,
        }
    }

    /// The mesh came `lag` late: a held moment is due that much later than planned.
    fn release(&mut self, lag: Duration) {
        if let Due::Held(at) = *self {
            *self = Due::At(at + lag);
        }
    }
}
