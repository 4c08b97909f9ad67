//! What a run records as it goes: the scenario's messages (marked so that the emulator
//! recognises them on the links), the kill, and the counters of nodes that are gone.

use std::collections::HashMap;

use mesh_core::Stats;
use mesh_proto::identity::Keypair;
use mesh_proto::signal::Payload;
use mesh_proto::{Frame, NodeId, PairKey, RoomName};

use super::Ns;
use crate::report::Sample;

/// Opens the application bytes of a scenario unicast; the message id follows.
pub(super) const UNICAST_MARK: [u8; 8] = *b"msim/uc\0";
/// Opens the application bytes of a scenario broadcast; the broadcast id follows.
pub(super) const BROADCAST_MARK: [u8; 8] = *b"msim/bc\0";

/// Opens what a hostile node forged (`--attack forge`); its slot follows.
pub(super) const FORGED_MARK: [u8; 8] = *b"msim/fg\0";
/// Opens a flood of a made-up node (`--attack flood`); its number follows.
pub(super) const SPAM_MARK: [u8; 8] = *b"msim/sp\0";
/// Opens a deliberate cross-room unicast (`--rooms`); its number follows.
pub(super) const CROSS_UNICAST_MARK: [u8; 8] = *b"msim/xu\0";
/// Opens a deliberate cross-room broadcast (`--rooms`); its origin's slot follows.
pub(super) const CROSS_BROADCAST_MARK: [u8; 8] = *b"msim/xb\0";

/// The application bytes of scenario message `id`: 8 bytes of mark, 8 of id.
pub(super) fn app_data(mark: [u8; 8], id: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(16);
    data.extend_from_slice(&mark);
    data.extend_from_slice(&id.to_le_bytes());
    data
}

/// The id in application bytes made by [`app_data`] with `mark`.
pub(super) fn parse_app(mark: [u8; 8], data: &[u8]) -> Option<u64> {
    let (head, id) = data.split_first_chunk::<8>()?;
    let id: [u8; 8] = id.try_into().ok()?;
    (*head == mark).then(|| u64::from_le_bytes(id))
}

/// The id of the scenario unicast an encoded link frame carries, if it carries one, for a
/// frame that `receiver` receives: the frame's sealed payload is opened with the key of
/// its destination (`key_of`) and the pair keys cached in `opener`.
///
/// Only `Route` and `Transfer` frames (tag byte 10 or 4) are decoded at all.
pub(super) fn unicast_in_frame<'k>(
    bytes: &[u8],
    receiver: NodeId,
    key_of: impl Fn(&NodeId) -> Option<&'k Keypair>,
    room: &RoomName,
    opener: &mut Opener,
) -> Option<u64> {
    if !matches!(bytes.get(1), Some(4 | 10)) {
        return None;
    }
    let (to, payload) = match mesh_proto::decode(bytes).ok()? {
        Frame::Route { to, payload, .. } => (to, payload),
        Frame::Transfer { payload, .. } => (receiver, payload),
        _ => return None,
    };
    let Payload::Sealed(sealed) = mesh_proto::decode_payload(&payload).ok()? else {
        return None;
    };
    let from = sealed.origin();
    let key = match opener.pairs.entry((from, to)) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(PairKey::derive(key_of(&to)?, &sealed.key, &from, &to, room).ok()?)
        }
    };
    let plain = key
        .open(sealed.epoch, sealed.seq, &sealed.ciphertext)
        .ok()?;
    match mesh_proto::decode_payload(&plain).ok()? {
        Payload::App(data) | Payload::Reliable(data) => parse_app(UNICAST_MARK, &data),
        _ => None,
    }
}

/// The pair keys the simulator derived to read sealed unicasts on the links.
#[derive(Debug, Default)]
pub(super) struct Opener {
    pairs: HashMap<(NodeId, NodeId), PairKey>,
}

/// One unicast of the scenario.
#[derive(Debug)]
pub(super) struct UnicastRecord {
    pub sent_at: Ns,
    /// The slots of its origin and addressee.
    pub ends: (u32, u32),
    /// Link transmissions seen so far.
    pub transmissions: u32,
    /// When it was delivered, and the transmissions it took.
    pub delivered: Option<(Ns, u32)>,
}

/// One broadcast of the scenario.
#[derive(Debug)]
pub(super) struct BroadcastRecord {
    pub sent_at: Ns,
    pub origin: u32,
    /// Nodes alive at the send, the origin included (of its room).
    pub alive: usize,
    /// Nodes alive at the send that delivered it (of its room).
    pub covered: usize,
    /// Honest nodes alive at the send, the origin excepted (of its room).
    pub honest_alive: usize,
    /// Honest nodes alive at the send that delivered it (of its room).
    pub honest_covered: usize,
}

/// What hostile nodes and rooms made happen at honest nodes.
#[derive(Debug, Default)]
pub(super) struct AttackRecord {
    /// Counters of the honest nodes that are gone.
    pub retired_honest: Stats,
    pub forged_delivered: u64,
    pub links_dropped_forged: u64,
    pub links_dropped_forged_honest: u64,
    pub links_over_budget: u64,
    pub links_over_budget_honest: u64,
    pub sessions_to_made_up: u64,
    pub spam_delivered: u64,
    /// Deliveries at a node of another room than the message's origin's.
    pub cross_room_deliveries: u64,
    /// Deliberate cross-room attempts, and deliveries of them.
    pub cross_attempts: u64,
    pub cross_delivered: u64,
}

/// The scenario's kill and the survivors' repair.
#[derive(Debug)]
pub(super) struct KillRecord {
    pub at: Ns,
    /// Nodes the kill removed.
    pub killed: usize,
    /// When the live nodes were first seen as one component again, and the id of the
    /// first unicast sent after that.
    pub repaired: Option<(Ns, usize)>,
}

/// Everything measured during the run.
#[derive(Debug, Default)]
pub(super) struct Measure {
    /// Counters of the nodes that are gone.
    pub retired: Stats,
    pub link_setup_ms: Vec<f64>,
    pub unicasts: Vec<UnicastRecord>,
    pub broadcasts: Vec<BroadcastRecord>,
    pub timeline: Vec<Sample>,
    /// Nodes that got a first link.
    pub linked: usize,
    /// Nodes that reached the minimum degree.
    pub full: usize,
    /// The kill, once it happened.
    pub kill: Option<KillRecord>,
    /// Registrations at a neighbour's door (doors only).
    pub door_rejoins: u64,
    /// Pair keys, to read sealed unicasts.
    pub opener: Opener,
    /// Hostile nodes and rooms.
    pub attack: AttackRecord,
}

impl Measure {
    /// Counts a link transmission of a scenario unicast (`receiver` receives `bytes`).
    pub fn observe_link_frame<'k>(
        &mut self,
        bytes: &[u8],
        receiver: NodeId,
        key_of: impl Fn(&NodeId) -> Option<&'k Keypair>,
        room: &RoomName,
    ) {
        let id = unicast_in_frame(bytes, receiver, key_of, room, &mut self.opener);
        if let Some(record) = id.and_then(|id| self.unicasts.get_mut(id as usize)) {
            record.transmissions += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicast_ids_are_found_in_sealed_route_and_transfer_frames_only() {
        let (ka, kb) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let (a, b) = (ka.node_id(), kb.node_id());
        let room = RoomName::default();
        let seal_as = |inner: Payload, seq: u64| {
            let key = PairKey::derive(&kb, &ka.public(), &b, &a, &room).unwrap();
            let plain = mesh_proto::encode_payload(&inner).unwrap();
            let sealed = mesh_proto::Sealed {
                key: kb.public(),
                epoch: 1,
                seq,
                ciphertext: key.seal(1, seq, &plain),
            };
            mesh_proto::encode_payload(&Payload::Sealed(sealed)).unwrap()
        };
        let seal = |data: Vec<u8>, seq: u64| seal_as(Payload::App(data), seq);
        let payload = seal(app_data(UNICAST_MARK, 42), 0);
        let route = Frame::Route {
            to: a,
            from: b,
            ttl: 16,
            steering: mesh_proto::Steering::Learned,
            payload: payload.clone(),
        };
        let transfer = Frame::Transfer {
            from: b,
            payload: payload.clone(),
        };
        let flood = mesh_proto::authored::flood(&kb, &room, 7, 16, payload);
        let key_of = |id: &NodeId| (*id == a).then_some(&ka);
        let mut opener = Opener::default();
        let mut find = |frame: &Frame| {
            let bytes = mesh_proto::encode(frame).unwrap();
            unicast_in_frame(&bytes, a, key_of, &room, &mut opener)
        };
        assert_eq!(find(&route), Some(42));
        assert_eq!(find(&transfer), Some(42));
        assert_eq!(find(&flood), None);
        let other = Frame::Transfer {
            from: b,
            payload: seal(app_data(BROADCAST_MARK, 42), 1),
        };
        assert_eq!(find(&other), None);
        // A reliable unicast of the scenario counts too (`--reliable`).
        let reliable = Frame::Transfer {
            from: b,
            payload: seal_as(Payload::Reliable(app_data(UNICAST_MARK, 43)), 2),
        };
        assert_eq!(find(&reliable), Some(43));
        assert_eq!(
            unicast_in_frame(b"short", a, key_of, &room, &mut opener),
            None
        );
    }
}
