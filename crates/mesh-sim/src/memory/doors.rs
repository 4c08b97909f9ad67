//! Doors (`Scenario::doors`): every node runs one, and the emulator plays each node's
//! driver the way `mesh_node`'s does (`crates/mesh-node/src/driver.rs`): where the node is
//! registered (the bootstrap server, a neighbour's door, nowhere), the rounds of a node
//! that needs a server (`mesh_core::Node::wants_server`) — every door it knows at once
//! (`mesh_core::Node::doors`, not those of its current neighbours), then the bootstrap
//! server, then a doubling pause — and leaving a neighbour's door once linked again or after
//! [`DOOR_STAY_NS`] (then the bootstrap server is next). A door is a room of its own: its owner, who
//! is always registered there, and the nodes that came through it. The owner's frames to
//! one of them go back through the door, as the driver's do.
//!
//! | what | model |
//! |---|---|
//! | registration at a door or the server | 3 one-way latencies of the node's server connection, as at the start; then `ServerUp` with the room's members (the door's owner first) or the server's sample |
//! | the doors of a round | the first of them (in `Node::doors` order) whose owner is alive registers the node; with none alive, they all fail after [`DOOR_TIMEOUT_NS`] (hosts that do not answer), and the bootstrap server is tried at once |
//! | the server, stopped | the attempt fails after one latency (refused); the next round after the pause |
//! | door `Unicast`, `GetPeers` | as at the server, within the room: `Transfer` to the owner or a member, `UNKNOWN_PEER` otherwise |
//! | the owner is killed or leaves | every member's connection ends (`ServerDown` after its latency) |

use mesh_core::Input;
use mesh_proto::{DoorUrl, Frame, NodeId};

use super::emulator::{Event, Sim};
use super::{Ns, S};

/// Time to connect and register at a door before giving up: `mesh_node::Config`'s
/// `door_timeout` default.
pub(super) const DOOR_TIMEOUT_NS: Ns = 3 * S;
/// The longest a node stays at a neighbour's door still needing a server: the driver's.
pub(super) const DOOR_STAY_NS: Ns = 30 * S;
/// The pause after a round that ended at a stopped server: doubles from this...
const RECONNECT_MIN_NS: Ns = S / 2;
/// ... up to this (`mesh_node::Config`'s `reconnect_min` and `reconnect_max`).
const RECONNECT_MAX_NS: Ns = 30 * S;

/// Where a node is registered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Attached {
    #[default]
    Nowhere,
    Bootstrap,
    /// At the door of this node.
    Door(u32),
}

/// A node's driver, as far as servers go.
#[derive(Debug)]
pub(super) struct Attachment {
    pub at: Attached,
    /// When it registered there.
    pub since: Ns,
    /// Whether this round's doors were tried (the bootstrap server is next).
    doors_tried: bool,
    /// No attempt before this.
    next: Ns,
    backoff: Ns,
    /// An attempt under way (the first registration, from the node's start).
    pub pending: bool,
    /// The time of the node's scheduled upkeep event (`Ns::MAX`: none).
    wake: Ns,
}

impl Default for Attachment {
    fn default() -> Self {
        Self {
            at: Attached::Nowhere,
            since: 0,
            doors_tried: false,
            next: 0,
            backoff: RECONNECT_MIN_NS,
            pending: false,
            wake: Ns::MAX,
        }
    }
}

impl Attachment {
    /// A node's at its start: its first registration with the server under way.
    pub fn registering() -> Self {
        Self {
            pending: true,
            ..Self::default()
        }
    }
}

/// The URL node `i` announces for its door (only its shape matters here).
pub(super) fn door_url(i: u32) -> DoorUrl {
    format!("ws://n{i}.sim/ws")
        .parse()
        .expect("a valid door URL")
}

impl Sim<'_> {
    /// Node `i`'s driver looks at its server connection: called after every input the
    /// node took, and when one of its own timers is due.
    pub(super) fn door_upkeep(&mut self, i: u32) {
        let Some(node) = self.slots[i as usize].node.as_ref() else {
            return;
        };
        let wants = node.wants_server();
        let a = &self.slots[i as usize].attach;
        if let Attached::Door(j) = a.at {
            let stay_until = a.since + DOOR_STAY_NS;
            if !wants || self.now >= stay_until {
                self.leave_room(i, j);
                let a = &mut self.slots[i as usize].attach;
                a.at = Attached::Nowhere;
                if wants {
                    // Stayed long enough for nothing: the bootstrap server next.
                    a.doors_tried = true;
                } else {
                    a.backoff = RECONNECT_MIN_NS;
                }
                a.next = self.now + a.backoff;
                self.queue
                    .push(self.now, Event::Deliver(i, Input::ServerDown));
            } else {
                self.wake_at(i, stay_until);
                return;
            }
        }
        let a = &self.slots[i as usize].attach;
        if !wants || a.at != Attached::Nowhere || a.pending {
            return;
        }
        if self.now >= a.next {
            self.start_attempt(i);
        } else {
            let next = a.next;
            self.wake_at(i, next);
        }
    }

    fn wake_at(&mut self, i: u32, at: Ns) {
        let a = &mut self.slots[i as usize].attach;
        if a.wake != at {
            a.wake = at;
            self.queue.push(at, Event::Upkeep(i));
        }
    }

    /// Node `i`'s upkeep event fired (stale unless it is the one scheduled last).
    pub(super) fn on_upkeep(&mut self, i: u32) {
        if self.slots[i as usize].attach.wake == self.now {
            self.slots[i as usize].attach.wake = Ns::MAX;
            self.door_upkeep(i);
        }
    }

    fn start_attempt(&mut self, i: u32) {
        let Some(node) = self.slots[i as usize].node.as_ref() else {
            return;
        };
        let linked = node.neighbours();
        let doors: Vec<u32> = if self.slots[i as usize].attach.doors_tried {
            Vec::new()
        } else {
            node.doors()
                .filter(|(peer, _)| !linked.contains(peer))
                .filter_map(|(peer, _)| self.index.get(&peer).copied())
                .collect()
        };
        let latency = self.slots[i as usize].server_latency;
        let (target, after) = if doors.is_empty() {
            self.slots[i as usize].attach.doors_tried = false;
            let after = if self.server_up { 3 * latency } else { latency };
            (Attached::Bootstrap, after)
        } else {
            self.slots[i as usize].attach.doors_tried = true;
            match doors
                .iter()
                .find(|j| self.slots[**j as usize].node.is_some())
            {
                Some(&j) => (Attached::Door(j), 3 * latency),
                None => (Attached::Nowhere, DOOR_TIMEOUT_NS),
            }
        };
        self.slots[i as usize].attach.pending = true;
        self.queue
            .push(self.now + after, Event::Attempted(i, target));
    }

    /// Node `i`'s attempt to register at `target` ends now (`Nowhere`: a round's doors,
    /// none of which answered).
    pub(super) fn on_attempted(&mut self, i: u32, target: Attached) {
        self.slots[i as usize].attach.pending = false;
        if self.slots[i as usize].node.is_none() {
            return;
        }
        let ok = match target {
            Attached::Bootstrap => self.server_up,
            Attached::Door(j) => self.slots[j as usize].node.is_some(),
            Attached::Nowhere => false,
        };
        // A door that answers once the node is linked again is not needed (the driver
        // drops it).
        let needed = self.slots[i as usize]
            .node
            .as_ref()
            .is_some_and(mesh_core::Node::wants_server);
        if ok && target != Attached::Bootstrap && !needed {
            return;
        }
        let now = self.now;
        if ok {
            {
                let a = &mut self.slots[i as usize].attach;
                a.at = target;
                a.since = now;
                a.doors_tried = false;
                if target == Attached::Bootstrap {
                    a.backoff = RECONNECT_MIN_NS;
                }
            }
            match target {
                Attached::Door(j) => {
                    self.measure.door_rejoins += 1;
                    self.door_rooms.entry(j).or_default().push(i);
                    let peers = self.room_peers(j, i);
                    self.feed(i, Input::ServerUp { peers });
                }
                _ => self.register(i),
            }
        } else {
            let a = &mut self.slots[i as usize].attach;
            if target == Attached::Bootstrap {
                a.next = now + a.backoff;
                a.backoff = (2 * a.backoff).min(RECONNECT_MAX_NS);
            }
            self.door_upkeep(i);
        }
    }

    /// The members of `j`'s door other than `except`: its owner first.
    fn room_peers(&self, j: u32, except: u32) -> Vec<NodeId> {
        let members = self.door_rooms.get(&j).into_iter().flatten();
        std::iter::once(&j)
            .chain(members)
            .filter(|m| **m != except)
            .map(|m| self.slots[*m as usize].id)
            .collect()
    }

    fn leave_room(&mut self, i: u32, j: u32) {
        if let Some(room) = self.door_rooms.get_mut(&j) {
            room.retain(|m| *m != i);
        }
    }

    /// Node `i` is gone: out of the door it was at, and its own door's members lose
    /// their connection.
    pub(super) fn doors_on_gone(&mut self, i: u32) {
        if let Attached::Door(j) = self.slots[i as usize].attach.at {
            self.leave_room(i, j);
        }
        self.slots[i as usize].attach.at = Attached::Nowhere;
        for m in self.door_rooms.remove(&i).unwrap_or_default() {
            self.slots[m as usize].attach.at = Attached::Nowhere;
            self.server_send(m, Input::ServerDown);
        }
    }

    /// A frame from node `i` to a server, if doors handle it: to a member of `i`'s own
    /// door (back through it), or anything from a node registered at a door. Returns the
    /// frame if it is the bootstrap server's.
    pub(super) fn door_frame(&mut self, i: u32, frame: Frame) -> Option<Frame> {
        if let Frame::Unicast { to, .. } = &frame
            && let Some(&t) = self.index.get(to)
            && self
                .door_rooms
                .get(&i)
                .is_some_and(|room| room.contains(&t))
        {
            let Frame::Unicast { payload, .. } = frame else {
                unreachable!("matched above")
            };
            let from = self.slots[i as usize].id;
            self.server_send(t, Input::ServerTransfer { from, payload });
            return None;
        }
        let Attached::Door(j) = self.slots[i as usize].attach.at else {
            return Some(frame);
        };
        // A door whose owner is gone takes nothing (its members hear `ServerDown`).
        self.slots[j as usize].node.as_ref()?;
        match frame {
            Frame::Unicast { to, payload } => {
                let member = self.index.get(&to).copied().filter(|t| {
                    *t == j || self.door_rooms.get(&j).is_some_and(|room| room.contains(t))
                });
                self.relay_unicast(i, to, member, payload);
            }
            Frame::GetPeers { .. } => {
                let peers = self.room_peers(j, i);
                self.server_send(i, Input::ServerPeers { peers });
            }
            other => debug_assert!(false, "unexpected frame to a door: {other:?}"),
        }
        None
    }
}
