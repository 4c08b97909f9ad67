//! Where a node registers for signaling, and when: the rules that choose between the
//! bootstrap server, a neighbour's door and the node's own door, with their timeouts,
//! pauses and rounds. Pure: the driver carries out [`Output::Register`] and
//! [`Output::Unregister`] and reports back with [`Input::Registered`],
//! [`Input::RegisterFailed`] and [`Input::ServerDown`].
//!
//! The rules (see `docs/architecture.md`, "Rendezvous"):
//! - A node *needs a server* when it has no link or is stranded (`Node::wants_server`).
//!   Needing one and registered nowhere, it starts a **round**: a registration at every
//!   door it knows at once (not its own, not a linked peer's, each URL once; the first to
//!   register it wins and the others are abandoned), or, once the round's doors failed, at
//!   a bootstrap server.
//! - The bootstrap servers (`Config::bootstraps`, a fleet's doors) are tried one at a time,
//!   in turn: the node starts at `Config::first_bootstrap` (its id modulo their number, so
//!   newcomers spread over the fleet); after a failed registration at the `i`-th, the
//!   `(i + 1)`-th (modulo their number) at once, while the round has one it did not try;
//!   once every one failed, the round ends: the next one starts, at the next in turn, after
//!   a pause that doubles from `reconnect_min` to `reconnect_max`, and goes back to
//!   `reconnect_min` on success. A lost bootstrap server also ends a round (one pause, not
//!   doubled), and the next round starts at another one: `1..n-1` past it, by the node's id
//!   (`loss_step`), so the nodes of a server that died spread over the rest.
//! - A node leaves a neighbour's door once it no longer needs a server (the door's owner
//!   keeps a place for the next newcomer), or after `door_stay`; then a bootstrap server
//!   is next, so a door whose sessions keep failing cannot hold a node. A bootstrap server
//!   is kept for as long as the connection lasts.
//! - A node that runs a door of its own (`Config::door`, none of the bootstrap servers)
//!   stays registered there, retrying with the same pauses. A peer whose signaling came
//!   through the own door is a **door client** for `door_client_ttl` after its last frame
//!   that way, and until its frames come through the server: the node's frames to it go
//!   back through the door.

use std::collections::VecDeque;
use std::time::Duration;

use mesh_proto::{NodeId, ServerUrl};
use web_time::Instant;

use crate::{Config, Output};

/// The index of the first of `n` bootstrap servers for `id` ([`Config::first_bootstrap`]).
pub(crate) fn first_index(id: &NodeId, n: usize) -> Option<usize> {
    let n = u128::try_from(n).ok().filter(|n| *n > 0)?;
    usize::try_from(u128::from_be_bytes(*id.as_bytes()) % n).ok()
}

/// How far past a lost bootstrap server (of `n`) node `id` starts its next round: `1` to
/// `n - 1`, from the id's next digit in base `n` (independent of its first pick), so that
/// the nodes of a server that died spread over the others instead of all moving to the
/// next one. 1 with fewer than three servers.
pub(crate) fn loss_step(id: &NodeId, n: usize) -> usize {
    let Ok(wide) = u128::try_from(n) else {
        return 1;
    };
    if n < 3 {
        return 1;
    }
    let digit = u128::from_be_bytes(*id.as_bytes()) / wide % (wide - 1);
    1 + usize::try_from(digit).unwrap_or(0)
}

/// Peers remembered as door clients: the most recent ones.
const DOOR_CLIENTS: usize = 64;

/// A retried attempt: when it is due, and the pause it waits after the next failure
/// (doubling up to a maximum, back to the minimum on success).
#[derive(Debug)]
struct Retry {
    next: Instant,
    pause: Duration,
}

impl Retry {
    fn new(now: Instant, min: Duration) -> Self {
        Self {
            next: now,
            pause: min,
        }
    }

    /// Not before one pause from `now`.
    fn wait(&mut self, now: Instant) {
        self.next = now + self.pause;
    }

    /// Failed: not before one pause from `now`, and the pause after doubles (to `max`).
    fn fail(&mut self, now: Instant, max: Duration) {
        self.wait(now);
        self.pause = (self.pause * 2).min(max);
    }

    /// Succeeded: the pause goes back to `min`.
    fn reset(&mut self, min: Duration) {
        self.pause = min;
    }
}

/// What a change of registration means for the overlay.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Registered at `server` (its sample of peers comes with the input): signaling
    /// through the server works from now on.
    Attached {
        /// The server.
        server: ServerUrl,
        /// Whether it is a neighbour's door (not the bootstrap server).
        door: bool,
    },
    /// No longer registered at `server`.
    Detached {
        /// The server.
        server: ServerUrl,
    },
}

/// The registrations of one node: at most one server it signals through (a bootstrap
/// server or a neighbour's door), plus its own door.
#[derive(Debug)]
pub(crate) struct Rendezvous {
    /// The bootstrap servers, each once (`Config::validate`), in the order they are tried.
    bootstraps: Vec<ServerUrl>,
    /// The bootstrap server a round tries next (an index into `bootstraps`).
    next_bootstrap: usize,
    /// Bootstrap servers this round has not tried yet: none once the round's last one is
    /// under way (its failure ends the round).
    bootstraps_left: usize,
    /// How far past a lost bootstrap server the next round starts (`loss_step`).
    loss_step: usize,
    /// The node's own door, unless it is one of the bootstrap servers.
    own_door: Option<ServerUrl>,
    /// Where the node signals through, and since when.
    attached: Option<(ServerUrl, Instant)>,
    /// Registrations under way for `attached`: a round's doors, or one bootstrap server.
    attempts: Vec<ServerUrl>,
    /// Whether this round's doors were tried (a bootstrap server is next).
    doors_tried: bool,
    reconnect: Retry,
    own_registered: bool,
    own_attempt: bool,
    own_retry: Retry,
    /// Peers whose signaling came through the own door, and when it last did, the most
    /// recent first.
    door_clients: VecDeque<(NodeId, Instant)>,
}

impl Rendezvous {
    /// A node's at its start: its driver is registering node `id` at its first bootstrap
    /// server (`Config::first_bootstrap`: a node joins through it, and the driver reports
    /// how that went); should that fail, the next one is tried at once.
    pub fn new(config: &Config, id: &NodeId, now: Instant) -> Self {
        let bootstraps = config.bootstraps.clone();
        let own_door = config.door.clone().filter(|d| !bootstraps.contains(d));
        let first = first_index(id, bootstraps.len());
        Self {
            attempts: first.map(|i| bootstraps[i].clone()).into_iter().collect(),
            next_bootstrap: first.unwrap_or(0),
            bootstraps_left: bootstraps.len().saturating_sub(1),
            loss_step: loss_step(id, bootstraps.len()),
            bootstraps,
            own_door,
            attached: None,
            doors_tried: false,
            reconnect: Retry::new(now, config.reconnect_min),
            own_registered: false,
            own_attempt: false,
            own_retry: Retry::new(now, config.reconnect_min),
            door_clients: VecDeque::new(),
        }
    }

    /// The bootstrap server a registration is under way at, if any: at the start, where
    /// the node's driver registers it before the node starts.
    pub fn joining_at(&self) -> Option<&ServerUrl> {
        self.attached
            .is_none()
            .then(|| self.attempts.first())
            .flatten()
            .filter(|url| self.is_bootstrap(url))
    }

    fn is_bootstrap(&self, url: &ServerUrl) -> bool {
        self.bootstraps.contains(url)
    }

    /// The server the node signals through, if it is registered at one.
    pub fn attached(&self) -> Option<&ServerUrl> {
        self.attached.as_ref().map(|(server, _)| server)
    }

    /// Whether the node is registered at its own door.
    pub fn own_door_registered(&self) -> bool {
        self.own_registered
    }

    /// The earliest time [`Rendezvous::upkeep`] has something to do, given whether the
    /// node needs a server.
    pub fn next_wake(&self, config: &Config, wants_server: bool) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        match &self.attached {
            Some((server, since)) if !self.is_bootstrap(server) && wants_server => {
                at(*since + config.door_stay)
            }
            None if wants_server && self.attempts.is_empty() => at(self.reconnect.next),
            _ => {}
        }
        if self.own_door.is_some() && !self.own_registered && !self.own_attempt {
            at(self.own_retry.next);
        }
        wake
    }

    /// Leaves a neighbour's door that is no longer needed or was stayed at long enough;
    /// starts a round when the node needs a server and is registered nowhere; registers at
    /// the own door. `doors` are the doors the node knows (`Node::doors`), `linked` says
    /// whether a peer is a neighbour (asked only when a round starts).
    pub fn upkeep<'a>(
        &mut self,
        config: &Config,
        now: Instant,
        wants_server: bool,
        doors: impl Iterator<Item = (NodeId, &'a ServerUrl)>,
        linked: impl Fn(&NodeId) -> bool,
        out: &mut VecDeque<Output>,
    ) -> Option<Change> {
        let mut change = None;
        if let Some((server, since)) = &self.attached
            && !self.is_bootstrap(server)
            && (!wants_server || now.saturating_duration_since(*since) >= config.door_stay)
        {
            let server = server.clone();
            if !wants_server {
                // The door did its job: the next time, a round starts without delay.
                self.reconnect.reset(config.reconnect_min);
            }
            self.attached = None;
            self.reconnect.wait(now);
            if wants_server {
                // Stayed long enough for nothing: a bootstrap server next.
                self.doors_tried = true;
            }
            out.push_back(Output::Unregister {
                server: server.clone(),
            });
            change = Some(Change::Detached { server });
        }
        if wants_server
            && self.attached.is_none()
            && self.attempts.is_empty()
            && now >= self.reconnect.next
        {
            self.start_round(config, now, doors, linked, out);
        }
        if let Some(own) = &self.own_door
            && !self.own_registered
            && !self.own_attempt
            && now >= self.own_retry.next
        {
            self.own_attempt = true;
            out.push_back(Output::Register {
                server: own.clone(),
                timeout: config.register_timeout,
            });
        }
        change
    }

    fn start_round<'a>(
        &mut self,
        config: &Config,
        now: Instant,
        doors: impl Iterator<Item = (NodeId, &'a ServerUrl)>,
        linked: impl Fn(&NodeId) -> bool,
        out: &mut VecDeque<Output>,
    ) {
        // Doors first, unless they were tried or the round is going through the bootstrap
        // servers.
        if !self.doors_tried && self.bootstraps_left == 0 {
            for (peer, url) in doors {
                // Not the own door, nor one of a linked peer (it cannot lead anywhere new),
                // and each server once: two registrations of one key at one server replace
                // each other (a node that came back with a new key, or a neighbour's claim,
                // can list a URL twice).
                if linked(&peer)
                    || Some(url) == self.own_door.as_ref()
                    || self.bootstraps.contains(url)
                    || self.attempts.contains(url)
                {
                    continue;
                }
                self.attempts.push(url.clone());
            }
        }
        if self.attempts.is_empty() {
            self.doors_tried = false;
            match self.bootstraps.get(self.next_bootstrap) {
                Some(bootstrap) => {
                    if self.bootstraps_left == 0 {
                        // A round's first bootstrap server: every other one is left to try.
                        self.bootstraps_left = self.bootstraps.len();
                    }
                    self.bootstraps_left -= 1;
                    self.attempts.push(bootstrap.clone());
                    out.push_back(Output::Register {
                        server: bootstrap.clone(),
                        timeout: config.register_timeout,
                    });
                }
                // Nowhere to go: the next round after a pause.
                None => self.reconnect.fail(now, config.reconnect_max),
            }
        } else {
            self.doors_tried = true;
            tracing::debug!(
                doors = self.attempts.len(),
                "rejoining through neighbours' doors"
            );
            for server in &self.attempts {
                out.push_back(Output::Register {
                    server: server.clone(),
                    timeout: config.door_timeout,
                });
            }
        }
    }

    /// The driver registered the node at `server`. The first registration of a round wins
    /// (the others are abandoned); a neighbour's door that answers once the node no longer
    /// needs a server is left at once, as is any server nobody asked for.
    pub fn registered(
        &mut self,
        config: &Config,
        now: Instant,
        server: ServerUrl,
        wants_server: bool,
        out: &mut VecDeque<Output>,
    ) -> Option<Change> {
        if Some(&server) == self.own_door.as_ref() && self.own_attempt {
            self.own_attempt = false;
            self.own_registered = true;
            self.own_retry.reset(config.reconnect_min);
            return None;
        }
        let Some(at) = self.attempts.iter().position(|s| *s == server) else {
            out.push_back(Output::Unregister { server });
            return None;
        };
        self.attempts.swap_remove(at);
        for other in self.attempts.drain(..) {
            out.push_back(Output::Unregister { server: other });
        }
        let door = !self.is_bootstrap(&server);
        if door && !wants_server {
            out.push_back(Output::Unregister { server });
            return None;
        }
        if !door {
            self.reconnect.reset(config.reconnect_min);
            self.bootstraps_left = 0;
            if let Some(i) = self.bootstraps.iter().position(|b| *b == server) {
                // Should it be lost, the next round starts at another one, chosen by the id
                // so that a dead server's nodes spread over the rest.
                self.next_bootstrap = (i + self.loss_step) % self.bootstraps.len();
            }
        }
        self.doors_tried = false;
        self.attached = Some((server.clone(), now));
        Some(Change::Attached { server, door })
    }

    /// The driver could not register the node at `server` (refused, unreachable, timed
    /// out). Once the last of a round's doors failed a bootstrap server is next, at once;
    /// once a bootstrap server failed, the next one in turn, at once, unless the round
    /// tried them all: then the next round after a pause ([`Rendezvous::upkeep`] registers).
    pub fn register_failed(&mut self, config: &Config, now: Instant, server: &ServerUrl) {
        if Some(server) == self.own_door.as_ref() && self.own_attempt {
            self.own_attempt = false;
            self.own_retry.fail(now, config.reconnect_max);
            return;
        }
        let Some(at) = self.attempts.iter().position(|s| s == server) else {
            return;
        };
        self.attempts.swap_remove(at);
        if let Some(i) = self.bootstraps.iter().position(|b| b == server) {
            self.next_bootstrap = (i + 1) % self.bootstraps.len();
            // Unless it was the round's last, the round goes on with the next one, at once.
            if self.bootstraps_left == 0 {
                self.reconnect.fail(now, config.reconnect_max);
            }
        }
    }

    /// The connection to `server` ended.
    pub fn server_down(
        &mut self,
        config: &Config,
        now: Instant,
        server: &ServerUrl,
    ) -> Option<Change> {
        if self.attached.as_ref().is_some_and(|(s, _)| s == server) {
            // The next round after a pause: from a bootstrap server, at another one (set
            // when it registered the node).
            self.attached = None;
            self.reconnect.wait(now);
            return Some(Change::Detached {
                server: server.clone(),
            });
        }
        if Some(server) == self.own_door.as_ref() && self.own_registered {
            self.own_registered = false;
            self.door_clients.clear();
            self.own_retry.fail(now, config.reconnect_max);
        }
        None
    }

    /// A frame from `from` came through `server`: through the own door, `from` is a door
    /// client from now on; through the server the node signals through, no longer one.
    pub fn heard_from(&mut self, server: &ServerUrl, from: NodeId, now: Instant) {
        self.door_clients.retain(|(c, _)| *c != from);
        if Some(server) == self.own_door.as_ref() {
            self.door_clients.push_front((from, now));
            self.door_clients.truncate(DOOR_CLIENTS);
        }
    }

    /// Where a frame to the server about `to` goes: back through the own door to a door
    /// client, anything else to the server the node signals through. `None`: nowhere.
    pub fn route(
        &mut self,
        config: &Config,
        to: Option<NodeId>,
        now: Instant,
    ) -> Option<ServerUrl> {
        let ttl = config.door_client_ttl;
        self.door_clients
            .retain(|(_, at)| now.saturating_duration_since(*at) < ttl);
        let to_client = to.is_some_and(|to| self.door_clients.iter().any(|(c, _)| *c == to));
        match &self.own_door {
            Some(own) if to_client && self.own_registered => Some(own.clone()),
            _ => self.attached().cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_servers_nodes_spread_over_the_others() {
        for n in [1, 2, 3, 4, 7] {
            let mut steps = vec![0usize; n.max(2)];
            let mut firsts = vec![0usize; n];
            for i in 0..6000u32 {
                let mut bytes = [0u8; 16];
                bytes[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
                bytes[12..].copy_from_slice(&i.to_be_bytes());
                let id = NodeId::from_bytes(bytes);
                let step = loss_step(&id, n);
                assert!((1..n.max(2)).contains(&step), "n {n}: step {step}");
                steps[step] += 1;
                firsts[first_index(&id, n).unwrap()] += 1;
            }
            if n >= 3 {
                // Among the nodes of any one server (first pick), every other server is
                // someone's next: roughly evenly.
                for (s, count) in steps.iter().enumerate().skip(1) {
                    let share = *count as f64 / 6000.0;
                    let even = 1.0 / (n - 1) as f64;
                    assert!((share - even).abs() < 0.05, "n {n}: step {s} {share}");
                }
            }
        }
    }

    fn url(s: &str) -> ServerUrl {
        format!("ws://{s}/ws").parse().unwrap()
    }

    /// This node's id: 0, so its first bootstrap server is the first of the list.
    const ME: NodeId = NodeId::from_bytes([0; 16]);

    fn config() -> Config {
        Config::default()
            .with_bootstrap(Some(url("bootstrap")))
            .with_door(Some(url("own")))
    }

    fn outputs(out: &mut VecDeque<Output>) -> Vec<String> {
        out.drain(..)
            .map(|o| match o {
                Output::Register { server, timeout } => format!("register {server} {timeout:?}"),
                Output::Unregister { server } => format!("unregister {server}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// A node registered at the bootstrap server and at its own door.
    fn settled(config: &Config, t0: Instant) -> (Rendezvous, VecDeque<Output>) {
        let mut r = Rendezvous::new(config, &ME, t0);
        let mut out = VecDeque::new();
        let change = r.registered(config, t0, url("bootstrap"), true, &mut out);
        assert_eq!(
            change,
            Some(Change::Attached {
                server: url("bootstrap"),
                door: false
            })
        );
        r.upkeep(
            config,
            t0,
            false,
            std::iter::empty(),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["register ws://own/ws 10s"]);
        assert_eq!(r.registered(config, t0, url("own"), false, &mut out), None);
        assert!(r.own_door_registered());
        (r, out)
    }

    #[test]
    fn a_round_tries_every_door_at_once_then_the_bootstrap_server_then_pauses() {
        let config = config();
        let t0 = Instant::now();
        let (mut r, mut out) = settled(&config, t0);
        let (a, b, c) = (
            NodeId::from_bytes([1; 16]),
            NodeId::from_bytes([2; 16]),
            NodeId::from_bytes([3; 16]),
        );
        let doors = [(a, url("a")), (b, url("b")), (c, url("a")), (a, url("own"))];
        let known = || doors.iter().map(|(p, u)| (*p, u));
        r.server_down(&config, t0, &url("bootstrap"));
        // Not before one pause.
        r.upkeep(&config, t0, true, known(), |p: &NodeId| *p == b, &mut out);
        assert!(out.is_empty());
        let t1 = t0 + config.reconnect_min;
        assert_eq!(r.next_wake(&config, true), Some(t1));
        r.upkeep(&config, t1, true, known(), |p: &NodeId| *p == b, &mut out);
        // b is linked, `a` is listed twice, the own door is not a way back.
        assert_eq!(outputs(&mut out), ["register ws://a/ws 3s"]);
        r.register_failed(&config, t1, &url("a"));
        r.upkeep(&config, t1, true, known(), |p: &NodeId| *p == b, &mut out);
        assert_eq!(outputs(&mut out), ["register ws://bootstrap/ws 10s"]);
        r.register_failed(&config, t1, &url("bootstrap"));
        // The round ended: the next after a pause, which doubles after every failed round.
        let t2 = t1 + config.reconnect_min;
        assert_eq!(r.next_wake(&config, true), Some(t2));
        r.upkeep(
            &config,
            t2,
            true,
            std::iter::empty(),
            |p: &NodeId| *p == b,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["register ws://bootstrap/ws 10s"]);
        r.register_failed(&config, t2, &url("bootstrap"));
        assert_eq!(
            r.next_wake(&config, true),
            Some(t2 + 2 * config.reconnect_min)
        );
    }

    #[test]
    fn the_first_door_to_register_wins_and_is_left_once_linked() {
        let config = config();
        let t0 = Instant::now();
        let mut r = Rendezvous::new(&config, &ME, t0);
        let mut out = VecDeque::new();
        r.register_failed(&config, t0, &url("bootstrap"));
        let (a, b) = (NodeId::from_bytes([1; 16]), NodeId::from_bytes([2; 16]));
        let doors = [(a, url("a")), (b, url("b"))];
        let t1 = t0 + config.reconnect_min;
        r.upkeep(
            &config,
            t1,
            true,
            doors.iter().map(|(p, u)| (*p, u)),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(
            outputs(&mut out),
            [
                "register ws://a/ws 3s",
                "register ws://b/ws 3s",
                "register ws://own/ws 10s",
            ]
        );
        let change = r.registered(&config, t1, url("b"), true, &mut out);
        assert_eq!(
            change,
            Some(Change::Attached {
                server: url("b"),
                door: true
            })
        );
        assert_eq!(outputs(&mut out), ["unregister ws://a/ws"]);
        // A late answer is left at once.
        assert_eq!(r.registered(&config, t1, url("a"), true, &mut out), None);
        assert_eq!(outputs(&mut out), ["unregister ws://a/ws"]);
        // Still needing a server: it stays until `door_stay`, then the bootstrap server.
        let stay = t1 + config.door_stay;
        assert_eq!(r.next_wake(&config, true), Some(stay));
        r.upkeep(
            &config,
            stay,
            true,
            doors.iter().map(|(p, u)| (*p, u)),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["unregister ws://b/ws"]);
        let later = stay + config.reconnect_max;
        r.upkeep(
            &config,
            later,
            true,
            doors.iter().map(|(p, u)| (*p, u)),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["register ws://bootstrap/ws 10s"]);
    }

    #[test]
    fn a_door_is_left_as_soon_as_the_node_is_linked_again() {
        let config = config();
        let t0 = Instant::now();
        let mut r = Rendezvous::new(&config, &ME, t0);
        let mut out = VecDeque::new();
        r.register_failed(&config, t0, &url("bootstrap"));
        let a = NodeId::from_bytes([1; 16]);
        let doors = [(a, url("a"))];
        let t1 = t0 + config.reconnect_min;
        r.upkeep(
            &config,
            t1,
            true,
            doors.iter().map(|(p, u)| (*p, u)),
            |_: &NodeId| false,
            &mut out,
        );
        r.registered(&config, t1, url("a"), true, &mut out);
        outputs(&mut out);
        let change = r.upkeep(
            &config,
            t1,
            false,
            doors.iter().map(|(p, u)| (*p, u)),
            |p: &NodeId| *p == a,
            &mut out,
        );
        assert_eq!(change, Some(Change::Detached { server: url("a") }));
        assert_eq!(outputs(&mut out), ["unregister ws://a/ws"]);
        assert_eq!(r.attached(), None);
        // A door that answers once the node is linked again is not taken.
        r.upkeep(
            &config,
            t1 + config.reconnect_max,
            true,
            std::iter::empty(),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["register ws://bootstrap/ws 10s"]);
        assert_eq!(
            r.registered(&config, t1, url("nobody"), true, &mut out),
            None
        );
        assert_eq!(outputs(&mut out), ["unregister ws://nobody/ws"]);
    }

    #[test]
    fn frames_to_door_clients_go_back_through_the_own_door_for_a_while() {
        let config = config();
        let t0 = Instant::now();
        let (mut r, _) = settled(&config, t0);
        let (client, other) = (NodeId::from_bytes([1; 16]), NodeId::from_bytes([2; 16]));
        r.heard_from(&url("own"), client, t0);
        assert_eq!(r.route(&config, Some(client), t0), Some(url("own")));
        assert_eq!(r.route(&config, Some(other), t0), Some(url("bootstrap")));
        assert_eq!(r.route(&config, None, t0), Some(url("bootstrap")));
        let expired = t0 + config.door_client_ttl;
        assert_eq!(
            r.route(&config, Some(client), expired),
            Some(url("bootstrap"))
        );
        // Heard through the server: no longer a door client.
        r.heard_from(&url("own"), client, t0);
        r.heard_from(&url("bootstrap"), client, t0);
        assert_eq!(r.route(&config, Some(client), t0), Some(url("bootstrap")));
        // Bounded.
        for i in 0..2 * DOOR_CLIENTS as u8 {
            r.heard_from(&url("own"), NodeId::from_bytes([i; 16]), t0);
        }
        assert_eq!(r.door_clients.len(), DOOR_CLIENTS);
    }

    #[test]
    fn the_own_door_is_registered_again_after_a_pause() {
        let config = config();
        let t0 = Instant::now();
        let (mut r, mut out) = settled(&config, t0);
        r.server_down(&config, t0, &url("own"));
        assert!(!r.own_door_registered());
        r.upkeep(
            &config,
            t0,
            false,
            std::iter::empty(),
            |_: &NodeId| false,
            &mut out,
        );
        assert!(out.is_empty());
        let t1 = t0 + config.reconnect_min;
        assert_eq!(r.next_wake(&config, false), Some(t1));
        r.upkeep(
            &config,
            t1,
            false,
            std::iter::empty(),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["register ws://own/ws 10s"]);
    }

    fn fleet() -> Config {
        Config::default().with_bootstraps([url("b0"), url("b1"), url("b2")])
    }

    /// An id whose first bootstrap server is the `k`-th of three (2^128 - 256 + k ≡ k).
    fn id_at(k: u8) -> NodeId {
        let mut bytes = [0xff; 16];
        bytes[15] = k;
        NodeId::from_bytes(bytes)
    }

    #[test]
    fn a_node_starts_at_its_own_bootstrap_server_of_the_fleet() {
        let config = fleet();
        let t0 = Instant::now();
        for k in 0..3u8 {
            let r = Rendezvous::new(&config, &id_at(k), t0);
            let expected = url(&format!("b{k}"));
            assert_eq!(r.joining_at(), Some(&expected));
            assert_eq!(config.first_bootstrap(&id_at(k)), Some(&expected));
        }
    }

    #[test]
    fn failed_bootstrap_servers_are_tried_in_turn_then_the_round_pauses() {
        let config = fleet();
        let t0 = Instant::now();
        let mut r = Rendezvous::new(&config, &id_at(2), t0);
        let mut out = VecDeque::new();
        let none = || std::iter::empty();
        let doors = [(NodeId::from_bytes([1; 16]), url("door"))];
        // The first one (b2, its id's) fails: b0, the next in turn, at once (no doors
        // within the round's bootstrap servers), then b1.
        r.register_failed(&config, t0, &url("b2"));
        r.upkeep(
            &config,
            t0,
            true,
            doors.iter().map(|(p, u)| (*p, u)),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["register ws://b0/ws 10s"]);
        assert_eq!(r.joining_at(), Some(&url("b0")));
        r.register_failed(&config, t0, &url("b0"));
        r.upkeep(&config, t0, true, none(), |_: &NodeId| false, &mut out);
        assert_eq!(outputs(&mut out), ["register ws://b1/ws 10s"]);
        // All three failed: the round ends, the next one after a pause, doors first, then
        // b2, the one after the last tried.
        r.register_failed(&config, t0, &url("b1"));
        r.upkeep(&config, t0, true, none(), |_: &NodeId| false, &mut out);
        assert!(out.is_empty());
        let t1 = t0 + config.reconnect_min;
        assert_eq!(r.next_wake(&config, true), Some(t1));
        r.upkeep(
            &config,
            t1,
            true,
            doors.iter().map(|(p, u)| (*p, u)),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["register ws://door/ws 3s"]);
        r.register_failed(&config, t1, &url("door"));
        r.upkeep(&config, t1, true, none(), |_: &NodeId| false, &mut out);
        assert_eq!(outputs(&mut out), ["register ws://b2/ws 10s"]);
        r.register_failed(&config, t1, &url("b2"));
        r.upkeep(&config, t1, true, none(), |_: &NodeId| false, &mut out);
        assert_eq!(outputs(&mut out), ["register ws://b0/ws 10s"]);
        let change = r.registered(&config, t1, url("b0"), true, &mut out);
        assert_eq!(
            change,
            Some(Change::Attached {
                server: url("b0"),
                door: false
            })
        );
        // Registered: it stays (nothing to leave), linked or not.
        r.upkeep(
            &config,
            t1 + config.door_stay,
            true,
            none(),
            |_: &NodeId| false,
            &mut out,
        );
        r.upkeep(
            &config,
            t1 + config.door_stay,
            false,
            none(),
            |_: &NodeId| false,
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(r.attached(), Some(&url("b0")));
    }

    #[test]
    fn a_lost_bootstrap_server_is_followed_by_the_next_after_a_pause() {
        let config = fleet();
        let t0 = Instant::now();
        let mut r = Rendezvous::new(&config, &id_at(1), t0);
        let mut out = VecDeque::new();
        r.registered(&config, t0, url("b1"), true, &mut out);
        let t1 = t0 + Duration::from_secs(60);
        let change = r.server_down(&config, t1, &url("b1"));
        assert_eq!(change, Some(Change::Detached { server: url("b1") }));
        r.upkeep(
            &config,
            t1,
            true,
            std::iter::empty(),
            |_: &NodeId| false,
            &mut out,
        );
        assert!(out.is_empty(), "not before a pause");
        let t2 = t1 + config.reconnect_min;
        r.upkeep(
            &config,
            t2,
            true,
            std::iter::empty(),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["register ws://b2/ws 10s"]);
        // That one refuses too: the next in turn (past the end: the first) at once.
        r.register_failed(&config, t2, &url("b2"));
        r.upkeep(
            &config,
            t2,
            true,
            std::iter::empty(),
            |_: &NodeId| false,
            &mut out,
        );
        assert_eq!(outputs(&mut out), ["register ws://b0/ws 10s"]);
    }
}
