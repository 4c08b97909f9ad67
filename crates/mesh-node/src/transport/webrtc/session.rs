//! One session: the task that owns a PeerConnection and its DataChannel, applies remote
//! signals, and is the only producer of the session's events.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mesh_proto::NodeId;
use mesh_proto::signal::SessionId;
use rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceConnectionState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionState,
    RTCSessionDescription, SettingEngineBuilder,
};

use super::handler::{Handler, PcEvent};
use super::{Config, IceServer, Shared, sdp};
use crate::transport::{Role, SignalBody, TransportEvent};

/// Label of the link's DataChannel (informational: the channel is pre-negotiated).
const CHANNEL_LABEL: &str = "mesh";
/// SCTP stream id of the pre-negotiated DataChannel, the same on both sides.
const CHANNEL_ID: u16 = 0;
/// Driver events queued towards the session task.
const PC_EVENT_QUEUE_LEN: usize = 32;
/// How long the offerer's writer holds its first message when the remote sends nothing
/// ([`write_link`]).
const FIRST_SEND_WAIT: Duration = Duration::from_millis(250);

/// A session task, ready to run.
pub(super) struct Session {
    pub(super) id: SessionId,
    pub(super) peer: NodeId,
    pub(super) role: Role,
    pub(super) serial: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) signals: mpsc::Receiver<SignalBody>,
    pub(super) close: oneshot::Receiver<()>,
}

/// Why a session ended, for the `Closed` event.
type Reason = String;

/// The session's state once its PeerConnection exists.
struct Link {
    pc: Arc<dyn PeerConnection>,
    dc: Arc<dyn DataChannel>,
    /// Remote description applied.
    remote_set: bool,
    /// The largest message the writer may send: what the remote's SDP announced, at most
    /// [`Config::MAX_MESSAGE_SIZE`] ([`sdp::remote_limit`]).
    send_limit: usize,
    /// Remote candidates received before the remote description.
    early_candidates: Vec<String>,
    /// Local `EndOfCandidates` sent.
    gathering_done: bool,
    /// The channel is open (`LinkUp` sent).
    up: bool,
    /// When the link must be open by, once ICE has connected.
    dtls_deadline: Option<tokio::time::Instant>,
    writer: Option<JoinHandle<Result<(), String>>>,
    /// The offerer's: tells its writer that the remote's channel is open (a first message
    /// came), see [`write_link`].
    remote_open: Option<oneshot::Sender<()>>,
}

impl Session {
    /// Runs the session to its end and reports `Closed`, exactly once.
    pub(super) async fn run(mut self) {
        let mut guard = Unfinished {
            shared: Arc::clone(&self.shared),
            id: self.id,
            serial: self.serial,
            armed: true,
        };
        let span = tracing::debug_span!("webrtc_session", session = %self.id, peer = %self.peer);
        let (reason, link) = self.drive().instrument(span).await;
        // Unpublish first: once `Closed` is out, `send` and `remote_signal` must see nothing.
        self.shared.remove(self.id, self.serial);
        if let Some(link) = link {
            if let Some(writer) = &link.writer {
                writer.abort();
            }
            if let Err(err) = link.pc.close().await {
                tracing::debug!(session = %self.id, "closing the peer connection: {err}");
            }
        }
        tracing::debug!(session = %self.id, peer = %self.peer, %reason, "session closed");
        guard.armed = false;
        let _ = self
            .shared
            .events
            .send(TransportEvent::Closed {
                session: self.id,
                reason,
            })
            .await;
    }

    /// Builds the connection and runs it; returns why it ended and what to tear down.
    async fn drive(&mut self) -> (Reason, Option<Link>) {
        let (pc_events_tx, mut pc_events) = mpsc::channel(PC_EVENT_QUEUE_LEN);
        let handler = Arc::new(Handler::new(pc_events_tx, self.shared.config.fast_open));
        let ice_servers = self.shared.ice_servers();
        let config = &self.shared.config;
        let pc = match build_peer_connection(config, ice_servers, Arc::clone(&handler)).await {
            Ok(pc) => pc,
            Err(err) => return (format!("could not create the peer connection: {err}"), None),
        };
        let init = RTCDataChannelInit {
            negotiated: Some(CHANNEL_ID),
            ..Default::default()
        };
        let dc = match pc.create_data_channel(CHANNEL_LABEL, Some(init)).await {
            Ok(dc) => dc,
            Err(err) => {
                let _ = pc.close().await;
                return (format!("could not create the data channel: {err}"), None);
            }
        };
        handler.set_data_channel(Arc::downgrade(&dc));
        tracing::trace!("peer connection built");
        let mut link = Link {
            pc,
            dc,
            remote_set: false,
            send_limit: Config::MAX_MESSAGE_SIZE,
            early_candidates: Vec::new(),
            gathering_done: false,
            up: false,
            dtls_deadline: None,
            writer: None,
            remote_open: None,
        };
        let reason = match self.run_link(&mut link, &mut pc_events).await {
            Ok(never) => match never {},
            Err(reason) => reason,
        };
        (reason, Some(link))
    }

    /// Drives an existing link until it ends. Returns only with the reason it ended.
    async fn run_link(
        &mut self,
        link: &mut Link,
        pc_events: &mut mpsc::Receiver<PcEvent>,
    ) -> Result<std::convert::Infallible, Reason> {
        if self.role == Role::Offerer {
            let offer = link
                .pc
                .create_offer(None)
                .await
                .map_err(|e| format!("could not create the offer: {e}"))?;
            link.pc
                .set_local_description(offer.clone())
                .await
                .map_err(|e| format!("could not apply the local offer: {e}"))?;
            let announced = sdp::announce(&offer.sdp, Config::MAX_MESSAGE_SIZE);
            self.emit_signal(SignalBody::Offer(announced)).await?;
        }
        let dc = Arc::clone(&link.dc);
        loop {
            let dtls_deadline = link.dtls_deadline;
            tokio::select! {
                biased;
                _ = &mut self.close => return Err("closed locally".to_owned()),
                () = sleep_until(dtls_deadline) => {
                    return Err(format!(
                        "the DTLS handshake did not complete within {:?} of ICE connecting \
                         (the remote certificate does not match the signed fingerprint, or the \
                         path lost every handshake flight)",
                        self.shared.config.dtls_timeout
                    ));
                }
                Some(signal) = self.signals.recv() => self.on_signal(link, signal).await?,
                Some(event) = pc_events.recv() => self.on_pc_event(link, event).await?,
                event = dc.poll() => self.on_channel_event(link, event).await?,
                result = wait_writer(&mut link.writer) => {
                    return Err(match result {
                        Ok(Ok(())) => "the link's writer stopped".to_owned(),
                        Ok(Err(err)) => format!("sending on the data channel failed: {err}"),
                        Err(err) => format!("the link's writer failed: {err}"),
                    });
                }
            }
        }
    }

    async fn on_signal(&mut self, link: &mut Link, signal: SignalBody) -> Result<(), Reason> {
        match (signal, self.role) {
            (SignalBody::Offer(sdp), Role::Answerer) => {
                if link.remote_set {
                    tracing::debug!("duplicate offer ignored");
                    return Ok(());
                }
                link.send_limit = sdp::remote_limit(&sdp);
                let (description, candidates) = sdp::take_candidates(&sdp);
                let offer = RTCSessionDescription::offer(sdp::announce(
                    &description,
                    Config::MAX_READ_SIZE,
                ))
                .map_err(|e| format!("the remote offer is not valid SDP: {e}"))?;
                link.pc
                    .set_remote_description(offer)
                    .await
                    .map_err(|e| format!("could not apply the remote offer: {e}"))?;
                link.remote_set = true;
                for candidate in candidates {
                    add_candidate(&*link.pc, candidate).await;
                }
                let answer = link
                    .pc
                    .create_answer(None)
                    .await
                    .map_err(|e| format!("could not create the answer: {e}"))?;
                link.pc
                    .set_local_description(answer.clone())
                    .await
                    .map_err(|e| format!("could not apply the local answer: {e}"))?;
                let announced = sdp::announce(&answer.sdp, Config::MAX_MESSAGE_SIZE);
                self.emit_signal(SignalBody::Answer(announced)).await?;
                self.apply_early_candidates(link).await;
            }
            (SignalBody::Answer(sdp), Role::Offerer) => {
                if link.remote_set {
                    tracing::debug!("duplicate answer ignored");
                    return Ok(());
                }
                link.send_limit = sdp::remote_limit(&sdp);
                let (description, candidates) = sdp::take_candidates(&sdp);
                let answer = RTCSessionDescription::answer(sdp::announce(
                    &description,
                    Config::MAX_READ_SIZE,
                ))
                .map_err(|e| format!("the remote answer is not valid SDP: {e}"))?;
                link.pc
                    .set_remote_description(answer)
                    .await
                    .map_err(|e| format!("could not apply the remote answer: {e}"))?;
                link.remote_set = true;
                for candidate in candidates {
                    add_candidate(&*link.pc, candidate).await;
                }
                self.apply_early_candidates(link).await;
            }
            (SignalBody::Offer(_), Role::Offerer) => {
                return Err("the remote sent an offer to the offering side".to_owned());
            }
            (SignalBody::Answer(_), Role::Answerer) => {
                return Err("the remote sent an answer to the answering side".to_owned());
            }
            (SignalBody::Candidate(candidate), _) => {
                if link.remote_set {
                    add_candidate(&*link.pc, candidate).await;
                } else if link.early_candidates.len() < self.shared.config.max_early_candidates {
                    link.early_candidates.push(candidate);
                } else {
                    tracing::warn!(
                        limit = self.shared.config.max_early_candidates,
                        "remote candidate dropped: too many before the remote description"
                    );
                }
            }
            // Nothing to do: webrtc-rs does not use the remote end of candidates.
            (SignalBody::EndOfCandidates, _) => {}
        }
        Ok(())
    }

    async fn apply_early_candidates(&self, link: &mut Link) {
        for candidate in std::mem::take(&mut link.early_candidates) {
            add_candidate(&*link.pc, candidate).await;
        }
    }

    async fn on_pc_event(&mut self, link: &mut Link, event: PcEvent) -> Result<(), Reason> {
        match event {
            PcEvent::Candidate(candidate) => {
                self.emit_signal(SignalBody::Candidate(candidate)).await?;
            }
            PcEvent::GatheringComplete => {
                if !link.gathering_done {
                    link.gathering_done = true;
                    self.emit_signal(SignalBody::EndOfCandidates).await?;
                }
            }
            PcEvent::Ice(state) => {
                tracing::trace!(%state, "ice state");
                match state {
                    RTCIceConnectionState::Failed => {
                        return Err("ICE failed: no candidate pair works".to_owned());
                    }
                    RTCIceConnectionState::Connected
                        if !link.up && link.dtls_deadline.is_none() =>
                    {
                        link.dtls_deadline =
                            Some(tokio::time::Instant::now() + self.shared.config.dtls_timeout);
                    }
                    _ => {}
                }
            }
            PcEvent::Connection(state) => {
                tracing::trace!(%state, "connection state");
                match state {
                    RTCPeerConnectionState::Failed => {
                        return Err(
                            "the connection failed (ICE, or the DTLS handshake: wrong fingerprint?)"
                                .to_owned(),
                        );
                    }
                    RTCPeerConnectionState::Closed => {
                        return Err("the connection was closed".to_owned());
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn on_channel_event(
        &mut self,
        link: &mut Link,
        event: Option<DataChannelEvent>,
    ) -> Result<(), Reason> {
        match event {
            Some(DataChannelEvent::OnOpen) => {
                if link.up {
                    return Ok(());
                }
                link.up = true;
                link.dtls_deadline = None;
                // Opening the channel queued the local opening of its SCTP stream, which
                // webrtc-rs 0.21.1 writes only at the driver's next turn; without a wake that
                // is when the remote's first message arrives, which then opens the stream
                // from the remote side, and the local opening fails with a warning (`there
                // already exists a stream with identifier`). Any DataChannel call that
                // changes state wakes the driver; this one is idempotent (see the handler's
                // fast-open wake).
                if let Err(err) = link.dc.set_buffered_amount_low_threshold(0).await {
                    tracing::debug!("wake at open failed: {err}");
                }
                let (queue_tx, queue_rx) = mpsc::channel(self.shared.config.send_queue_len);
                let remote_open = match self.role {
                    Role::Offerer => {
                        let (open_tx, open_rx) = oneshot::channel();
                        link.remote_open = Some(open_tx);
                        Some(open_rx)
                    }
                    Role::Answerer => None,
                };
                let send_limit = if self.shared.config.oversize_sends {
                    Config::MAX_READ_SIZE
                } else {
                    link.send_limit
                };
                link.writer = Some(tokio::spawn(write_link(
                    Arc::clone(&link.dc),
                    queue_rx,
                    send_limit,
                    remote_open,
                )));
                self.shared
                    .set_link(self.id, self.serial, queue_tx, Arc::downgrade(&link.pc));
                self.emit(TransportEvent::LinkUp {
                    session: self.id,
                    peer: self.peer,
                })
                .await
            }
            Some(DataChannelEvent::OnMessage(message)) => {
                if let Some(remote_open) = link.remote_open.take() {
                    let _ = remote_open.send(());
                }
                let len = message.data.len();
                self.emit(TransportEvent::Data {
                    session: self.id,
                    bytes: message.data.freeze(),
                })
                .await?;
                // The remote broke protocol.md §10.1 (every SDP announced 65536): the message
                // went to the core like any other, whose decoder refuses it and closes the
                // link. Nothing after it is read, so an offender cannot fill the event queue
                // with 256 KiB messages meanwhile.
                if len > Config::MAX_MESSAGE_SIZE {
                    return Err(format!(
                        "the remote sent a message of {len} bytes, over the {} it was told \
                         (a=max-message-size)",
                        Config::MAX_MESSAGE_SIZE
                    ));
                }
                Ok(())
            }
            Some(DataChannelEvent::OnClosing | DataChannelEvent::OnClose) => {
                Err("the remote closed the link".to_owned())
            }
            Some(DataChannelEvent::OnError) => Err("the data channel failed".to_owned()),
            Some(_) => Ok(()),
            None => Err("the connection stopped".to_owned()),
        }
    }

    async fn emit_signal(&self, signal: SignalBody) -> Result<(), Reason> {
        self.emit(TransportEvent::LocalSignal {
            session: self.id,
            signal,
        })
        .await
    }

    async fn emit(&self, event: TransportEvent) -> Result<(), Reason> {
        self.shared
            .events
            .send(event)
            .await
            .map_err(|_| "the transport's event receiver is gone".to_owned())
    }
}

/// Keeps the promise of one `Closed` per session if the session task dies early (a panic
/// in code it calls, or the runtime shutting down): unpublishes the session and reports it
/// closed, without waiting.
struct Unfinished {
    shared: Arc<Shared>,
    id: SessionId,
    serial: u64,
    armed: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.armed {
            self.shared.remove(self.id, self.serial);
            let _ = self.shared.events.try_send(TransportEvent::Closed {
                session: self.id,
                reason: "the session's task stopped unexpectedly".to_owned(),
            });
        }
    }
}

/// Builds a PeerConnection as `config` says, with `ice_servers`, reporting to `handler`.
async fn build_peer_connection(
    config: &Config,
    ice_servers: Vec<IceServer>,
    handler: Arc<Handler>,
) -> webrtc::error::Result<Arc<dyn PeerConnection>> {
    let mut settings = SettingEngineBuilder::new()
        // Each mDNS-enabled connection binds a second (multicast) socket; candidates are
        // plain addresses here.
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        // webrtc-rs's ceiling, so that its receive buffer holds an oversized message for the
        // core to refuse; the SDPs signalled still announce 65536 (see `sdp`).
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(Config::MAX_READ_SIZE as u32));
    if config.fast_open {
        let interval = config.ice_check_interval;
        settings = settings
            .with_ice_connection_attempts(Some(interval), Some(checks_per_pair(interval)))
            // A remote's check that beats its signaled candidate makes the candidate
            // peer-reflexive, and webrtc-rs then waits 1 s before nominating it (even once the
            // host candidate arrives: responses are matched to the first candidate with their
            // address). With relayed signaling that race is the common case.
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO));
    }
    let ice_servers = ice_servers
        .into_iter()
        .map(|server| RTCIceServer {
            urls: server.urls,
            username: server.username,
            credential: server.credential,
        })
        .collect();
    let policy = if config.relay_only {
        RTCIceTransportPolicy::Relay
    } else {
        RTCIceTransportPolicy::All
    };
    let configuration = RTCConfigurationBuilder::new()
        .with_ice_servers(ice_servers)
        .with_ice_transport_policy(policy)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_setting_engine(settings.build())
        .with_handler(handler)
        .with_udp_addrs(config.bind_addrs.clone())
        .with_data_channel_send_buffer_limit(config.send_buffer_limit)
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// How many binding requests ICE may send one candidate pair, checking every `interval`,
/// so that it gives the pair up after [`Config::ICE_PAIR_CHECK_BUDGET`] like webrtc-rs's
/// defaults do (webrtc-rs fails a pair after this many requests, whatever the interval).
fn checks_per_pair(interval: Duration) -> u16 {
    let checks = Config::ICE_PAIR_CHECK_BUDGET.as_millis() / interval.as_millis().max(1);
    u16::try_from(checks).unwrap_or(u16::MAX).max(7)
}

/// Applies one remote candidate; a bad one is logged and skipped.
async fn add_candidate(pc: &dyn PeerConnection, candidate: String) {
    let init = RTCIceCandidateInit {
        candidate,
        // The single media section (the data channel's).
        sdp_mid: Some("0".to_owned()),
        sdp_mline_index: Some(0),
        ..Default::default()
    };
    if let Err(err) = pc.add_ice_candidate(init).await {
        tracing::debug!("remote candidate skipped: {err}");
    }
}

/// Waits until `deadline`; pending forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Waits for the link's writer to end; pending forever while there is none.
async fn wait_writer(
    writer: &mut Option<JoinHandle<Result<(), String>>>,
) -> Result<Result<(), String>, tokio::task::JoinError> {
    match writer {
        Some(handle) => {
            let result = handle.await;
            *writer = None;
            result
        }
        None => std::future::pending().await,
    }
}

/// Drains the link's send queue into the DataChannel, waiting while its send buffer is
/// full. Ends when the queue closes (the session ended), a send fails, or a message is
/// over `send_limit` (the remote's announced max-message-size, at most 64 KiB; webrtc-rs
/// would send up to 256 KiB, [`sdp`]).
///
/// On the offerer, the first message waits until `remote_open` fires (the remote's first
/// message arrived, so its channel is open) or [`FIRST_SEND_WAIT`] has passed. webrtc-rs
/// 0.21.1 loses messages that reach the SCTP client (the answerer: it answers
/// `a=setup:active`, so it is the DTLS and SCTP client) in the same burst of datagrams as
/// the association's COOKIE-ACK: its driver reads the whole burst before it handles the
/// "association up" event that opens a pre-negotiated channel, and the DataChannel handler
/// drops data for a channel not opened yet (`data channel not existed`, then `there already
/// exists a stream with identifier` when it opens it). Sent at once, an offerer's messages
/// right after `LinkUp` were lost on 9 of 30 links (28 of 90 messages). The mesh core sends
/// on every new link at once from both ends, so the wait is about one round trip.
async fn write_link(
    dc: Arc<dyn DataChannel>,
    mut queue: mpsc::Receiver<Bytes>,
    send_limit: usize,
    remote_open: Option<oneshot::Receiver<()>>,
) -> Result<(), String> {
    if let Some(remote_open) = remote_open {
        let _ = tokio::time::timeout(FIRST_SEND_WAIT, remote_open).await;
    }
    while let Some(bytes) = queue.recv().await {
        if bytes.len() > send_limit {
            return Err(format!(
                "a message of {} bytes is over the {send_limit} the remote accepts \
                 (a=max-message-size)",
                bytes.len()
            ));
        }
        let message = bytes
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        dc.send(message).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_faster_check_interval_keeps_the_per_pair_budget() {
        assert_eq!(checks_per_pair(Duration::from_millis(5)), 320);
        assert_eq!(checks_per_pair(Duration::from_millis(1)), 1600);
        // webrtc-rs's own default: 7 requests 200 ms apart.
        assert_eq!(checks_per_pair(Duration::from_millis(200)), 8);
        assert_eq!(checks_per_pair(Duration::from_secs(1)), 7);
    }
}
