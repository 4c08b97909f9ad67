//! What a run records as it goes: the scenario's messages (marked so that the emulator
//! recognises them on the links), the kill, and the counters of nodes that are gone.

use mesh_core::Stats;
use mesh_proto::Frame;
use mesh_proto::signal::Payload;

use super::Ns;
use crate::report::Sample;

/// Opens the application bytes of a scenario unicast; the message id follows.
pub(super) const UNICAST_MARK: [u8; 8] = *b"msim/uc\0";
/// Opens the application bytes of a scenario broadcast; the broadcast id follows.
pub(super) const BROADCAST_MARK: [u8; 8] = *b"msim/bc\0";

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

/// The id of the scenario unicast an encoded link frame carries, if it carries one.
///
/// The application bytes end the frame (a `Route` or `Transfer` ends with its payload, an
/// `App` payload with its bytes), so a suffix check rejects every other frame without
/// decoding it; the few that pass are decoded in full.
pub(super) fn unicast_in_frame(bytes: &[u8]) -> Option<u64> {
    let tail = bytes.len().checked_sub(16).map(|at| &bytes[at..])?;
    parse_app(UNICAST_MARK, tail)?;
    let payload = match mesh_proto::decode(bytes).ok()? {
        Frame::Route { payload, .. } | Frame::Transfer { payload, .. } => payload,
        _ => return None,
    };
    match mesh_proto::decode_payload(&payload).ok()? {
        Payload::App(data) => parse_app(UNICAST_MARK, &data),
        _ => None,
    }
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
    /// Nodes alive at the send, the origin included.
    pub alive: usize,
    /// Nodes alive at the send that delivered it.
    pub covered: usize,
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
}

impl Measure {
    /// Counts a link transmission of a scenario unicast.
    pub fn observe_link_frame(&mut self, bytes: &[u8]) {
        if let Some(record) =
            unicast_in_frame(bytes).and_then(|id| self.unicasts.get_mut(id as usize))
        {
            record.transmissions += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proto::identity::Keypair;

    #[test]
    fn unicast_ids_are_found_in_route_and_transfer_frames_only() {
        let (a, b) = (
            Keypair::from_seed([1; 32]).node_id(),
            Keypair::from_seed([2; 32]).node_id(),
        );
        let payload =
            mesh_proto::encode_payload(&Payload::App(app_data(UNICAST_MARK, 42))).unwrap();
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
        let flood = Frame::Flood {
            from: b,
            id: 7,
            ttl: 16,
            payload,
        };
        assert_eq!(
            unicast_in_frame(&mesh_proto::encode(&route).unwrap()),
            Some(42)
        );
        assert_eq!(
            unicast_in_frame(&mesh_proto::encode(&transfer).unwrap()),
            Some(42)
        );
        assert_eq!(unicast_in_frame(&mesh_proto::encode(&flood).unwrap()), None);
        let broadcast =
            mesh_proto::encode_payload(&Payload::App(app_data(BROADCAST_MARK, 42))).unwrap();
        let other = Frame::Transfer {
            from: b,
            payload: broadcast,
        };
        assert_eq!(unicast_in_frame(&mesh_proto::encode(&other).unwrap()), None);
        assert_eq!(unicast_in_frame(b"short"), None);
    }
}
