//! Whether a fleet server reaches Redis: its two ways there (commands, the subscription),
//! the transitions between served and degraded, and what `/healthz` says.

use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{Inner, lock};

/// The two ways a server reaches Redis, each healthy or not.
#[derive(Clone, Copy, Debug)]
pub(super) enum Part {
    Commands,
    Subscription,
}

#[derive(Debug)]
pub(super) struct Health {
    commands: Result<(), String>,
    subscription: Result<(), String>,
    /// Since when the server is degraded, if it is.
    down_since: Option<Instant>,
    /// Whether it ever reached Redis fully (an outage is counted only after).
    was_up: bool,
    /// Whether the failure to reach Redis at start was logged.
    told: bool,
}

impl Health {
    /// A server that has not reached Redis yet.
    pub(super) fn starting() -> Self {
        Self {
            commands: Err("not connected to redis yet".into()),
            subscription: Err("not subscribed yet".into()),
            down_since: Some(Instant::now()),
            was_up: false,
            told: false,
        }
    }

    /// The first reason it is degraded.
    fn why(&self) -> &str {
        match (&self.commands, &self.subscription) {
            (Err(why), _) | (_, Err(why)) => why,
            _ => "",
        }
    }

    /// What `/healthz` says after `degraded: `, if the server is.
    pub(super) fn degraded(&self) -> Option<String> {
        let since = self.down_since?;
        Some(format!(
            "redis unreachable for {:.0?}: {}; serving this server's own registrations only",
            since.elapsed(),
            self.why()
        ))
    }
}

impl Inner {
    /// Records how the last use of `part` went; logs and counts the transitions between
    /// served and degraded.
    pub(super) fn report(&self, part: Part, result: Result<(), String>) {
        if result.is_err() {
            self.metrics.fleet_redis_errors.inc();
        }
        let mut health = lock(&self.health);
        match part {
            Part::Commands => health.commands = result,
            Part::Subscription => health.subscription = result,
        }
        let ok = health.commands.is_ok() && health.subscription.is_ok();
        match (ok, health.down_since) {
            (true, Some(since)) => {
                health.down_since = None;
                health.was_up = true;
                self.up.store(true, Ordering::Relaxed);
                self.metrics.fleet_redis_up.set(1);
                self.dirty.store(true, Ordering::Relaxed);
                info!(
                    down_for = ?since.elapsed(),
                    "fleet: redis reachable; re-announcing this server's registrations"
                );
            }
            (false, Some(_)) if !health.was_up && !health.told => {
                // Not reached yet since the start: said once, not counted as an outage.
                health.told = true;
                let why = health.why();
                if !why.starts_with("not ") {
                    warn!(
                        "fleet: redis unreachable at start ({why}); serving this server's own registrations only until it answers"
                    );
                } else {
                    health.told = false;
                }
            }
            (false, None) => {
                health.down_since = Some(Instant::now());
                self.up.store(false, Ordering::Relaxed);
                self.metrics.fleet_redis_up.set(0);
                self.metrics.fleet_outages.inc();
                let why = health.why();
                warn!(
                    "fleet: redis unreachable ({why}); serving this server's own registrations only"
                );
            }
            _ => {}
        }
    }
}
