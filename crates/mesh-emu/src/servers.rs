//! The emulated servers' URLs, and doors: a door is a server of its own, with its owner
//! (registered from its start) and the nodes that came through it as its room.

use mesh_core::Input;
use mesh_proto::{Frame, NodeId, ServerUrl};

use crate::{Emulator, Scheduled, World};

/// The emulated bootstrap server's URL.
pub fn bootstrap_url() -> ServerUrl {
    "ws://bootstrap.sim/ws".parse().expect("a valid URL")
}

/// The URL of node `i`'s door.
pub fn door_url(i: u32) -> ServerUrl {
    format!("ws://n{i}.sim/ws")
        .parse()
        .expect("a valid door URL")
}

/// The node whose door `url` is, if it is one of [`door_url`]'s.
pub fn door_owner(url: &ServerUrl) -> Option<u32> {
    url.as_str()
        .strip_prefix("ws://n")?
        .strip_suffix(".sim/ws")?
        .parse()
        .ok()
}

impl<U> Emulator<U> {
    /// Node `i` asked to register at door `j` (`timeout`: its attempt's). Its own door
    /// takes it at once; a neighbour's after 3 latencies if its owner is alive now, else
    /// the attempt fails after `timeout` (a host that does not answer).
    pub(crate) fn door_register<W: World<U>>(&mut self, world: &W, i: u32, j: u32, timeout: u64) {
        let server = door_url(j);
        if i == j {
            let input = Input::Registered {
                server,
                peers: vec![],
            };
            self.push(self.now, Scheduled::Deliver(i, input));
            return;
        }
        let after = if world.node(j).is_some() {
            3 * self.peers[i as usize].server_latency
        } else {
            timeout
        };
        self.push(self.now + after, Scheduled::Registering(i, server));
    }

    /// Node `i`'s attempt at door `j` ends now.
    pub(crate) fn door_registering<W: World<U>>(&mut self, world: &mut W, i: u32, j: u32) {
        let server = door_url(j);
        if world.node(j).is_none() {
            self.feed(world, i, Input::RegisterFailed { server });
            return;
        }
        let room = self.door_rooms.entry(j).or_default();
        if !room.contains(&i) {
            room.push(i);
        }
        let peers = self.room_peers(j, i);
        self.feed(world, i, Input::Registered { server, peers });
    }

    /// The members of `j`'s door other than `except`: its owner first.
    fn room_peers(&self, j: u32, except: u32) -> Vec<NodeId> {
        let members = self.door_rooms.get(&j).into_iter().flatten();
        std::iter::once(&j)
            .chain(members)
            .filter(|m| **m != except)
            .map(|m| self.peers[*m as usize].id)
            .collect()
    }

    /// Node `i` left door `j`.
    pub(crate) fn leave_room(&mut self, i: u32, j: u32) {
        if let Some(room) = self.door_rooms.get_mut(&j) {
            room.retain(|m| *m != i);
        }
    }

    /// Node `i` is gone: out of every door it was at, and its own door's members lose
    /// their connection.
    pub(crate) fn doors_on_gone(&mut self, i: u32) {
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
    pub(crate) fn at_door<W: World<U>>(&mut self, world: &W, i: u32, j: u32, frame: Frame) {
        // A door whose owner is gone takes nothing (its members hear `ServerDown`).
        if world.node(j).is_none() {
            return;
        }
        let member = |emu: &Self, t: u32| {
            t == j || emu.door_rooms.get(&j).is_some_and(|room| room.contains(&t))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_urls_name_their_owner() {
        for i in [0, 7, 12_345] {
            assert_eq!(door_owner(&door_url(i)), Some(i));
        }
        assert_eq!(door_owner(&bootstrap_url()), None);
    }
}
