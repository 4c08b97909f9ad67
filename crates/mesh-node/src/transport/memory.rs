//! In-process links, for tests of the layers above and for simulations far larger than
//! real WebRTC allows in one process. Not a stand-in for WebRTC: the tests that claim
//! WebRTC use [`super::webrtc`].
//!
//! Transports that share one [`MemoryNetwork`] can link to each other. A session goes
//! through the same signaling steps as WebRTC (offer, answer, end of candidates, carried
//! by the mesh or the server like any signaling), so the signaling paths are exercised;
//! the "SDP" is a token naming the session's side. A link comes up when the offerer
//! applies the answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use mesh_proto::NodeId;
use mesh_proto::signal::SessionId;
use tokio::sync::mpsc;

use super::{Role, SendError, SignalBody, Transport, TransportEvent};

/// A shared medium for [`MemoryTransport`]s.
#[derive(Clone, Debug, Default)]
pub struct MemoryNetwork {
    sessions: Arc<Mutex<HashMap<SessionId, Pair>>>,
}

#[derive(Debug, Default)]
struct Pair {
    offerer: Option<End>,
    answerer: Option<End>,
    up: bool,
}

#[derive(Debug, Clone)]
struct End {
    node: NodeId,
    events: mpsc::Sender<TransportEvent>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Pair>> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Links currently up, for tests.
    pub fn links_up(&self) -> usize {
        self.lock().values().filter(|p| p.up).count()
    }
}

/// One node's side of a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryTransport {
    network: MemoryNetwork,
    node: NodeId,
    events: mpsc::Sender<TransportEvent>,
}

impl MemoryTransport {
    /// `node`'s transport on `network`, reporting to `events`.
    pub fn new(network: MemoryNetwork, node: NodeId, events: mpsc::Sender<TransportEvent>) -> Self {
        Self {
            network,
            node,
            events,
        }
    }

    fn emit(&self, event: TransportEvent) {
        emit(&self.events, event);
    }

    fn end(&self) -> End {
        End {
            node: self.node,
            events: self.events.clone(),
        }
    }
}

/// Events must not be lost silently; the channel is sized by the driver for bursts. If
/// it is full the event is dropped and the link will time out, like a lost packet.
fn emit(events: &mpsc::Sender<TransportEvent>, event: TransportEvent) {
    if let Err(e) = events.try_send(event) {
        tracing::warn!("memory transport: event dropped: {e}");
    }
}

impl Transport for MemoryTransport {
    fn open(&self, session: SessionId, _peer: NodeId, role: Role) -> Result<(), crate::Error> {
        let mut sessions = self.network.lock();
        let pair = sessions.entry(session).or_default();
        match role {
            Role::Offerer => {
                pair.offerer = Some(self.end());
                drop(sessions);
                self.emit(TransportEvent::LocalSignal {
                    session,
                    signal: SignalBody::Offer(format!("memory-offer {}", self.node)),
                });
                self.emit(TransportEvent::LocalSignal {
                    session,
                    signal: SignalBody::EndOfCandidates,
                });
            }
            Role::Answerer => pair.answerer = Some(self.end()),
        }
        Ok(())
    }

    fn remote_signal(&self, session: SessionId, signal: SignalBody) {
        let mut sessions = self.network.lock();
        let Some(pair) = sessions.get_mut(&session) else {
            return;
        };
        match signal {
            SignalBody::Offer(_) if pair.answerer.as_ref().is_some_and(|a| a.node == self.node) => {
                drop(sessions);
                self.emit(TransportEvent::LocalSignal {
                    session,
                    signal: SignalBody::Answer(format!("memory-answer {}", self.node)),
                });
                self.emit(TransportEvent::LocalSignal {
                    session,
                    signal: SignalBody::EndOfCandidates,
                });
            }
            SignalBody::Answer(_) if pair.offerer.as_ref().is_some_and(|o| o.node == self.node) => {
                let (Some(offerer), Some(answerer)) = (pair.offerer.clone(), pair.answerer.clone())
                else {
                    return;
                };
                if pair.up {
                    return;
                }
                pair.up = true;
                drop(sessions);
                emit(
                    &offerer.events,
                    TransportEvent::LinkUp {
                        session,
                        peer: answerer.node,
                    },
                );
                emit(
                    &answerer.events,
                    TransportEvent::LinkUp {
                        session,
                        peer: offerer.node,
                    },
                );
            }
            _ => {}
        }
    }

    fn send(&self, session: SessionId, bytes: Bytes) -> Result<(), SendError> {
        let sessions = self.network.lock();
        let pair = sessions
            .get(&session)
            .filter(|p| p.up)
            .ok_or(SendError::Closed)?;
        let other = match (&pair.offerer, &pair.answerer) {
            (Some(o), Some(a)) if o.node == self.node => a,
            (Some(o), Some(_)) => o,
            _ => return Err(SendError::Closed),
        };
        other
            .events
            .try_send(TransportEvent::Data { session, bytes })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SendError::Full,
                mpsc::error::TrySendError::Closed(_) => SendError::Closed,
            })
    }

    fn close(&self, session: SessionId) {
        let Some(pair) = self.network.lock().remove(&session) else {
            return;
        };
        for end in [pair.offerer, pair.answerer].into_iter().flatten() {
            let reason = if end.node == self.node {
                "closed locally"
            } else {
                "closed by the remote"
            };
            emit(
                &end.events,
                TransportEvent::Closed {
                    session,
                    reason: reason.to_owned(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_proto::identity::Keypair;

    fn side(net: &MemoryNetwork) -> (MemoryTransport, mpsc::Receiver<TransportEvent>, NodeId) {
        let (tx, rx) = mpsc::channel(64);
        let id = Keypair::generate().node_id();
        (MemoryTransport::new(net.clone(), id, tx), rx, id)
    }

    fn signal(rx: &mut mpsc::Receiver<TransportEvent>) -> SignalBody {
        match rx.try_recv() {
            Ok(TransportEvent::LocalSignal { signal, .. }) => signal,
            other => panic!("expected a local signal, got {other:?}"),
        }
    }

    #[test]
    fn offer_answer_opens_a_link_that_carries_bytes_and_closes_once() {
        let net = MemoryNetwork::new();
        let (a, mut arx, aid) = side(&net);
        let (b, mut brx, bid) = side(&net);
        let s = SessionId(1);
        a.open(s, bid, Role::Offerer).unwrap();
        let offer = signal(&mut arx);
        assert!(matches!(signal(&mut arx), SignalBody::EndOfCandidates));
        b.open(s, aid, Role::Answerer).unwrap();
        assert_eq!(
            a.send(s, Bytes::from_static(b"early")),
            Err(SendError::Closed)
        );
        b.remote_signal(s, offer);
        let answer = signal(&mut brx);
        signal(&mut brx);
        a.remote_signal(s, answer);
        assert!(matches!(arx.try_recv(), Ok(TransportEvent::LinkUp { peer, .. }) if peer == bid));
        assert!(matches!(brx.try_recv(), Ok(TransportEvent::LinkUp { peer, .. }) if peer == aid));
        a.send(s, Bytes::from_static(b"hi")).unwrap();
        assert!(matches!(brx.try_recv(), Ok(TransportEvent::Data { bytes, .. }) if bytes == "hi"));
        b.close(s);
        assert!(matches!(arx.try_recv(), Ok(TransportEvent::Closed { .. })));
        assert!(matches!(brx.try_recv(), Ok(TransportEvent::Closed { .. })));
        a.close(s);
        assert!(arx.try_recv().is_err(), "exactly one Closed");
        assert_eq!(net.links_up(), 0);
    }

    #[test]
    fn a_full_receiver_is_backpressure_not_loss() {
        let net = MemoryNetwork::new();
        let (a, mut arx, aid) = side(&net);
        let bid = Keypair::generate().node_id();
        let (btx, mut brx) = mpsc::channel(2);
        let b = MemoryTransport::new(net.clone(), bid, btx);
        let s = SessionId(9);
        a.open(s, bid, Role::Offerer).unwrap();
        let offer = signal(&mut arx);
        b.open(s, aid, Role::Answerer).unwrap();
        b.remote_signal(s, offer);
        let answer = signal(&mut brx);
        a.remote_signal(s, answer);
        // b's channel (2) now holds EndOfCandidates and LinkUp: the next send is Full.
        assert_eq!(a.send(s, Bytes::from_static(b"x")), Err(SendError::Full));
    }
}
