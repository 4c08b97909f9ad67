//! Doors (`Scenario::doors`): every node runs one. The emulator models a door as a server
//! and nothing more: when and where a node registers, leaves, or what goes through which
//! server is decided by each node's core (`mesh_core`'s rendezvous rules, the same code
//! `mesh_node`'s driver runs); the emulator carries out its `Register`, `Unregister` and
//! `SendServer` outputs. A door is a room of its own: its owner, registered there from its
//! start, and the nodes that came through it.
//!
//! | what | model |
//! |---|---|
//! | registration at a neighbour's door | if its owner is alive when the attempt starts: 3 one-way latencies of the node's server connection, as at the start, then `Registered` with the room's members (the owner first), if the owner is still alive; if not, `RegisterFailed` after the attempt's timeout (a host that does not answer) |
//! | registration at the own door | `Registered` at once |
//! | door `Unicast`, `GetPeers` | as at the server, within the room: `Transfer` to the owner or a member, `UNKNOWN_PEER` otherwise |
//! | the owner is killed or leaves | every member's connection ends (`ServerDown` after its latency) |

use mesh_core::Input;
use mesh_proto::{Frame, NodeId};

use super::emulator::{Event, Sim};
use super::urls::door_url;

impl Sim<'_> {
    /// Node `i` asked to register at door `j` (`timeout`: its attempt's).
    pub(super) fn door_register(&mut self, i: u32, j: u32, timeout: u64) {
        let server = door_url(j);
        if i == j {
            self.queue.push(
                self.now,
                Event::Deliver(
                    i,
                    Input::Registered {
                        server,
                        peers: vec![],
                    },
                ),
            );
            return;
        }
        let after = if self.slots[j as usize].node.is_some() {
            3 * self.slots[i as usize].server_latency
        } else {
            timeout
        };
        self.queue
            .push(self.now + after, Event::Registering(i, server));
    }

    /// Node `i`'s attempt at door `j` ends now.
    pub(super) fn door_registering(&mut self, i: u32, j: u32) {
        let server = door_url(j);
        if self.slots[j as usize].node.is_none() {
            self.feed(i, Input::RegisterFailed { server });
            return;
        }
        let room = self.door_rooms.entry(j).or_default();
        if !room.contains(&i) {
            room.push(i);
        }
        let peers = self.room_peers(j, i);
        self.feed(i, Input::Registered { server, peers });
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

    /// Node `i` left door `j`.
    pub(super) fn leave_room(&mut self, i: u32, j: u32) {
        if let Some(room) = self.door_rooms.get_mut(&j) {
            room.retain(|m| *m != i);
        }
    }

    /// Node `i` is gone: out of every door it was at, and its own door's members lose
    /// their connection.
    pub(super) fn doors_on_gone(&mut self, i: u32) {
        for room in self.door_rooms.values_mut() {
            room.retain(|m| *m != i);
        }
        let server = door_url(i);
        for m in self.door_rooms.remove(&i).unwrap_or_default() {
            let server = server.clone();
            self.server_send(m, Input::ServerDown { server });
        }
    }

    /// A frame from node `i` reaches door `j` (a member's, or the owner's own).
    pub(super) fn at_door(&mut self, i: u32, j: u32, frame: Frame) {
        // A door whose owner is gone takes nothing (its members hear `ServerDown`).
        if self.slots[j as usize].node.is_none() {
            return;
        }
        let member = |sim: &Self, t: u32| {
            t == j || sim.door_rooms.get(&j).is_some_and(|room| room.contains(&t))
        };
        if !member(self, i) {
            return;
        }
        match frame {
            Frame::Unicast { to, payload } => {
                let target = self.index.get(&to).copied().filter(|t| member(self, *t));
                self.relay_unicast(door_url(j), i, to, target, payload);
            }
            Frame::GetPeers { .. } => {
                let peers = self.room_peers(j, i);
                self.server_send(i, Input::ServerPeers { peers });
            }
            other => debug_assert!(false, "unexpected frame to a door: {other:?}"),
        }
    }
}
