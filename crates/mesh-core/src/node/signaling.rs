//! Signaling sessions: starting them, signing and carrying their steps, verifying what
//! arrives, and deciding on offers (replay, glare, room).

use web_time::Instant;

use mesh_proto::signal::{Payload, RejectReason, SessionId, Signal, SignalKind};
use mesh_proto::{Frame, NodeId};
use rand::Rng;

use super::{Carrier, LinkDownReason, Node, Output, Role};

impl Node {
    pub(super) fn start_session(&mut self, peer: NodeId, carrier: Carrier, now: Instant) {
        if self.sessions.is_full() {
            return;
        }
        // An offer through the mesh is sealed for its peer: its key first (a verified record,
        // or what the peer signed or sealed). Without one, a lookup for the peer, and the
        // session starts once the peer itself proves its key (a record another node passes
        // on does not). A record at hand is enough, though: requiring the peer's own proof
        // then too broke the repair of islands after a mass kill (docs/benchmarks.md §14),
        // so records of nodes nobody runs cost sessions, within `session_budget`.
        if carrier == Carrier::Mesh && !self.keys.knows(&peer, now) {
            self.await_key(peer, None, now);
            return;
        }
        // Every contact heard of can cost a session, made-up and departed ones too: how
        // many start is budgeted.
        if !self.session_bucket.take(self.config.session_budget, now) {
            self.stats.sessions_over_budget += 1;
            return;
        }
        let session = SessionId(self.rng.random());
        if !self
            .sessions
            .start(session, peer, Role::Offerer, carrier, now)
        {
            return;
        }
        match carrier {
            Carrier::Server => self.stats.sessions_initiated_via_server += 1,
            Carrier::Mesh => self.stats.sessions_initiated_via_mesh += 1,
        }
        self.outputs.push_back(Output::OpenSession {
            session,
            peer,
            role: Role::Offerer,
        });
    }

    /// Signs a local signaling step and sends it on the session's carrier.
    pub(super) fn send_signal(&mut self, session: SessionId, kind: SignalKind, now: Instant) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        let (peer, carrier) = (s.peer, s.carrier);
        self.send_signal_to(peer, carrier, session, kind, now);
    }

    pub(super) fn send_signal_to(
        &mut self,
        peer: NodeId,
        carrier: Carrier,
        session: SessionId,
        kind: SignalKind,
        now: Instant,
    ) {
        let signal = Payload::Signal(Signal::sign(
            &self.key,
            &self.config.room,
            session,
            peer,
            kind,
        ));
        match carrier {
            Carrier::Server => {
                // Bare: an entry session's peer may not know our key, nor we its.
                let Ok(payload) = mesh_proto::encode_payload(&signal) else {
                    return;
                };
                // A node offers through the server only while connected to one; it answers
                // (or refuses) an offer through the carrier the offer came on, whatever it
                // believes: the offer came, so something carries server frames (its own
                // door, when it runs one; the driver drops what it cannot carry).
                let offering = self
                    .sessions
                    .get(&session)
                    .is_some_and(|s| s.role == Role::Offerer);
                if self.server_up() || !offering {
                    self.stats.signals_sent_via_server += 1;
                    if let Some(server) = self.rendezvous.route(&self.config, Some(peer), now) {
                        let frame = Frame::Unicast { to: peer, payload };
                        self.outputs.push_back(Output::SendServer { server, frame });
                    }
                }
            }
            Carrier::Mesh => {
                // Sealed: relays do not read the SDP nor the candidates' addresses.
                if let Some(seq) = self.send_sealed(peer, &signal, now) {
                    self.signal_seqs.insert(seq, peer, now);
                    self.stats.signals_sent_via_mesh += 1;
                } else if self.sessions.get(&session).is_some_and(|s| !s.linked) {
                    // No way to the peer from here: the session cannot complete; end it
                    // now rather than at its timeout.
                    self.fail_session(session, true, now);
                }
            }
        }
    }

    pub(super) fn on_signal(&mut self, signal: Signal, carrier: Carrier, now: Instant) {
        // An offer from an id below the difficulty is not answered: the offerer times out.
        if self.below_difficulty(&signal.from) {
            return;
        }
        if signal.to != self.id || signal.verify(&self.config.room).is_err() {
            self.stats.bad_signals += 1;
            return;
        }
        // A verified signal proves its key: what this node seals for the peer later.
        self.keys.learn(signal.from, signal.public_key, now);
        match carrier {
            Carrier::Server => self.stats.signals_received_via_server += 1,
            Carrier::Mesh => self.stats.signals_received_via_mesh += 1,
        }
        let Signal {
            session,
            from,
            kind,
            ..
        } = signal;
        match kind {
            SignalKind::Offer(sdp) => self.on_offer(session, from, sdp, carrier, now),
            SignalKind::Reject(reason) => {
                if self
                    .sessions
                    .get(&session)
                    .is_some_and(|s| s.peer == from && !s.linked)
                {
                    if let Some(s) = self.sessions.remove(&session) {
                        self.unlinked(&s, now);
                    }
                    self.stats.sessions_rejected += 1;
                    if reason == RejectReason::FULL {
                        self.contacts.remove(&from);
                        self.back_off_for(from, self.config.full_backoff, now);
                    } else {
                        self.back_off(from, now);
                    }
                    self.outputs.push_back(Output::CloseSession { session });
                }
            }
            step => {
                if self.sessions.get(&session).is_some_and(|s| s.peer == from) {
                    self.outputs.push_back(Output::RemoteSignal {
                        session,
                        signal: step,
                    });
                }
            }
        }
    }

    pub(super) fn on_offer(
        &mut self,
        session: SessionId,
        from: NodeId,
        sdp: String,
        carrier: Carrier,
        now: Instant,
    ) {
        if self.replay.contains(&(from, session), now) || self.sessions.contains(&session) {
            self.stats.replayed_offers += 1;
            return;
        }
        self.replay.insert((from, session), (), now);
        self.gone.remove(&from);
        self.learn_peers(&[from], now);
        self.contacts.seen(from, now);
        if self.links.contains(&from) {
            self.send_signal_to(
                from,
                carrier,
                session,
                SignalKind::Reject(RejectReason::ALREADY_LINKED),
                now,
            );
            return;
        }
        if let Some((mine, role)) = self.pending_with(from) {
            match role {
                // Glare: both sides offered. The offer of the lower id wins.
                Role::Offerer if self.id < from => return, // the other side yields
                // We yield; or the peer gave up an earlier session with us and starts anew.
                Role::Offerer | Role::Answerer => {
                    self.sessions.remove(&mine);
                    self.outputs
                        .push_back(Output::CloseSession { session: mine });
                }
            }
        }
        let inbound_pending = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.linked && s.role == Role::Answerer)
            .count();
        let limit = match carrier {
            Carrier::Server => self.config.max_degree,
            Carrier::Mesh => self.config.max_degree - self.config.entry_slots,
        };
        if carrier == Carrier::Server && self.degree() + inbound_pending >= limit {
            // The door is the newcomer's only way in: make room by dropping the link to
            // the best-connected neighbour, if losing it leaves that neighbour above its
            // minimum.
            self.make_room_for_newcomer(now);
        }
        if self.degree() + inbound_pending >= limit || self.sessions.is_full() {
            self.send_signal_to(
                from,
                carrier,
                session,
                SignalKind::Reject(RejectReason::FULL),
                now,
            );
            return;
        }
        self.sessions
            .start(session, from, Role::Answerer, carrier, now);
        match carrier {
            Carrier::Server => self.stats.sessions_answered_via_server += 1,
            Carrier::Mesh => self.stats.sessions_answered_via_mesh += 1,
        }
        self.outputs.push_back(Output::OpenSession {
            session,
            peer: from,
            role: Role::Answerer,
        });
        self.outputs.push_back(Output::RemoteSignal {
            session,
            signal: SignalKind::Offer(sdp),
        });
    }

    pub(super) fn session_with(&self, peer: NodeId) -> Option<SessionId> {
        self.pending_with(peer).map(|(id, _)| id)
    }

    /// The session under way (not linked) with `peer`, and our role in it.
    pub(super) fn pending_with(&self, peer: NodeId) -> Option<(SessionId, Role)> {
        let mut pending = self
            .sessions
            .iter()
            .filter(|(_, s)| s.peer == peer && !s.linked);
        pending.next().map(|(id, s)| (*id, s.role))
    }

    /// Drops the link to the neighbour with the most announced neighbours, if it has more
    /// than the minimum degree; returns whether it did.
    pub(super) fn make_room_for_newcomer(&mut self, now: Instant) -> bool {
        let min = self.config.min_degree;
        let victim = self
            .links
            .all()
            .filter_map(|(peer, session)| {
                let degree = self.neighbour_sets.get(peer).map_or(0, |a| a.peers.len()) + 1;
                (degree > min).then_some((degree, *peer, *session))
            })
            .max();
        let Some((_, _, session)) = victim else {
            return false;
        };
        self.stats.links_shed += 1;
        self.drop_link(session, LinkDownReason::MadeRoom, now);
        true
    }
}
