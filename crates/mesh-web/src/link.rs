//! One session's RTCPeerConnection: the browser's side of the carrier of protocol.md §10.1
//! (one PeerConnection, one pre-negotiated DataChannel `mesh`, id 0, reliable and ordered;
//! trickle ICE), reporting to the driver as `LinkEv`s.
//!
//! The same contract as mesh-node's transports: the offerer signals its offer, then each
//! candidate, then the end of candidates; the answerer does the same after its answer;
//! candidates that arrive before the remote description are kept (up to
//! [`EARLY_CANDIDATES`]) and applied after it; exactly one `Closed` ends the session (the
//! driver keeps the first and ignores the rest).

use mesh_core::Role;
use mesh_proto::NodeId;
use mesh_proto::signal::{SessionId, SignalKind};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelInit, RtcDataChannelState,
    RtcDataChannelType, RtcIceCandidateInit, RtcPeerConnection, RtcPeerConnectionIceEvent,
    RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit,
};

use crate::events::{Ev, LinkEv, Poster};

/// Label of the DataChannel (informational: it is pre-negotiated).
const CHANNEL_LABEL: &str = "mesh";
/// SCTP stream id of the DataChannel, the same on both sides.
const CHANNEL_ID: u16 = 0;
/// Remote candidates kept before the remote description is applied.
pub(crate) const EARLY_CANDIDATES: usize = 32;
/// Bytes a DataChannel may hold unsent (`bufferedAmount`) before [`Link::send`] refuses
/// more: the browser queues without bound otherwise.
pub(crate) const SEND_BUFFER_LIMIT: u32 = 1024 * 1024;
/// The largest message sent or announced (protocol.md §10.1).
pub(crate) use crate::text::MAX_MESSAGE_SIZE;

/// Why [`Link::send`] did not send.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Too many bytes wait in the channel's buffer.
    Full,
    /// The channel is not open (or the message is too large).
    Closed,
}

pub(crate) struct Link {
    pub peer: NodeId,
    role: Role,
    pc: RtcPeerConnection,
    dc: RtcDataChannel,
    /// An offer (answerer) or answer (offerer) was taken.
    remote_taken: bool,
    /// It is applied: candidates go straight to the connection.
    remote_applied: bool,
    early: Vec<String>,
    closed: bool,
    poster: Poster,
    _handlers: Handlers,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.peer)
            .field("role", &self.role)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// The browser callbacks of one link, kept alive as long as it is.
struct Handlers {
    _ice: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    _state: Closure<dyn FnMut()>,
    _open: Closure<dyn FnMut()>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut()>,
}

impl Link {
    /// Creates the PeerConnection and its DataChannel; the offerer starts its offer.
    pub fn open(
        poster: &Poster,
        session: SessionId,
        peer: NodeId,
        role: Role,
        ice_servers: &JsValue,
    ) -> Result<Self, JsValue> {
        let config = RtcConfiguration::new();
        config.set_ice_servers(ice_servers);
        let pc = RtcPeerConnection::new_with_configuration(&config)?;
        let init = RtcDataChannelInit::new();
        init.set_negotiated(true);
        init.set_id(CHANNEL_ID);
        let dc = pc.create_data_channel_with_data_channel_dict(CHANNEL_LABEL, &init);
        dc.set_binary_type(RtcDataChannelType::Arraybuffer);

        let to = poster.clone();
        let ice = Closure::<dyn FnMut(RtcPeerConnectionIceEvent)>::new(
            move |e: RtcPeerConnectionIceEvent| {
                let signal = match e.candidate().map(|c| c.candidate()) {
                    Some(c) if !c.is_empty() => SignalKind::Candidate(c),
                    _ => SignalKind::EndOfCandidates,
                };
                to(Ev::Link(session, LinkEv::Local(signal)));
            },
        );
        pc.set_onicecandidate(Some(ice.as_ref().unchecked_ref()));
        let to = poster.clone();
        let watched = pc.clone();
        let state = Closure::<dyn FnMut()>::new(move || {
            let why = match watched.connection_state() {
                RtcPeerConnectionState::Failed => "the connection failed (ICE or DTLS)",
                RtcPeerConnectionState::Closed => "the connection closed",
                _ => return,
            };
            to(Ev::Link(session, LinkEv::Closed(why.into())));
        });
        pc.set_onconnectionstatechange(Some(state.as_ref().unchecked_ref()));
        let to = poster.clone();
        let open = Closure::<dyn FnMut()>::new(move || to(Ev::Link(session, LinkEv::Up)));
        dc.set_onopen(Some(open.as_ref().unchecked_ref()));
        let to = poster.clone();
        let message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            // Binary as the protocol says; a string is read as its bytes (the reference
            // does the same), and its frame decoder judges it.
            let bytes = match data.dyn_ref::<js_sys::ArrayBuffer>() {
                Some(buffer) => js_sys::Uint8Array::new(buffer).to_vec(),
                None => data.as_string().unwrap_or_default().into_bytes(),
            };
            to(Ev::Link(session, LinkEv::Data(bytes)));
        });
        dc.set_onmessage(Some(message.as_ref().unchecked_ref()));
        let to = poster.clone();
        let close = Closure::<dyn FnMut()>::new(move || {
            let why = "the data channel closed".to_owned();
            to(Ev::Link(session, LinkEv::Closed(why)));
        });
        dc.set_onclose(Some(close.as_ref().unchecked_ref()));

        if role == Role::Offerer {
            let pc = pc.clone();
            let to = poster.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let ev = match describe(&pc, RtcSdpType::Offer).await {
                    Ok(sdp) => LinkEv::Local(SignalKind::Offer(sdp)),
                    Err(e) => LinkEv::Closed(format!("creating the offer failed: {e:?}")),
                };
                to(Ev::Link(session, ev));
            });
        }
        Ok(Self {
            peer,
            role,
            pc,
            dc,
            remote_taken: false,
            remote_applied: false,
            early: Vec::new(),
            closed: false,
            poster: poster.clone(),
            _handlers: Handlers {
                _ice: ice,
                _state: state,
                _open: open,
                _message: message,
                _close: close,
            },
        })
    }

    /// Applies a verified step from the peer (the core checked who sent it).
    pub fn remote_signal(&mut self, session: SessionId, signal: SignalKind) {
        if self.closed {
            return;
        }
        let kind = match (&signal, self.role) {
            (SignalKind::Offer(_), Role::Answerer) => RtcSdpType::Offer,
            (SignalKind::Answer(_), Role::Offerer) => RtcSdpType::Answer,
            (SignalKind::Candidate(candidate), _) => {
                if self.remote_applied {
                    add_candidate(&self.pc, candidate.clone());
                } else if self.early.len() < EARLY_CANDIDATES {
                    self.early.push(candidate.clone());
                }
                return;
            }
            // The end of candidates needs nothing (ICE completes without it); a step that
            // does not fit the role is ignored.
            _ => return,
        };
        if self.remote_taken {
            return; // a duplicate offer or answer
        }
        self.remote_taken = true;
        let (SignalKind::Offer(sdp) | SignalKind::Answer(sdp)) = signal else {
            return;
        };
        let pc = self.pc.clone();
        let to = self.poster.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let remote = RtcSessionDescriptionInit::new(kind);
            remote.set_sdp(&sdp);
            if let Err(e) = JsFuture::from(pc.set_remote_description(&remote)).await {
                let why = format!("the remote description was refused: {e:?}");
                to(Ev::Link(session, LinkEv::Closed(why)));
                return;
            }
            to(Ev::Link(session, LinkEv::RemoteApplied));
            if kind == RtcSdpType::Offer {
                let ev = match describe(&pc, RtcSdpType::Answer).await {
                    Ok(sdp) => LinkEv::Local(SignalKind::Answer(sdp)),
                    Err(e) => LinkEv::Closed(format!("creating the answer failed: {e:?}")),
                };
                to(Ev::Link(session, ev));
            }
        });
    }

    /// The remote description is applied: the candidates kept until now go in.
    pub fn remote_applied(&mut self) {
        self.remote_applied = true;
        for candidate in self.early.drain(..) {
            add_candidate(&self.pc, candidate);
        }
    }

    /// Sends one message, without waiting.
    pub fn send(&self, bytes: &[u8]) -> Result<(), SendError> {
        if self.closed
            || bytes.len() > MAX_MESSAGE_SIZE
            || self.dc.ready_state() != RtcDataChannelState::Open
        {
            return Err(SendError::Closed);
        }
        if self.dc.buffered_amount() > SEND_BUFFER_LIMIT {
            return Err(SendError::Full);
        }
        self.dc
            .send_with_u8_array(bytes)
            .map_err(|_| SendError::Closed)
    }

    /// Closes the connection; its callbacks are detached first, so it says nothing more.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        self.dc.set_onopen(None);
        self.dc.set_onmessage(None);
        self.dc.set_onclose(None);
        self.dc.close();
        self.pc.close();
    }
}

/// Creates the local offer or answer, sets it, and returns the SDP to signal.
async fn describe(pc: &RtcPeerConnection, kind: RtcSdpType) -> Result<String, JsValue> {
    let promise = match kind {
        RtcSdpType::Offer => pc.create_offer(),
        _ => pc.create_answer(),
    };
    let description = JsFuture::from(promise).await?;
    let sdp = js_sys::Reflect::get(&description, &"sdp".into())?
        .as_string()
        .unwrap_or_default();
    let local = RtcSessionDescriptionInit::new(kind);
    local.set_sdp(&sdp);
    JsFuture::from(pc.set_local_description(&local)).await?;
    Ok(crate::text::munge_max_message_size(&sdp))
}

/// Applies one remote candidate; one the browser cannot use is skipped (protocol.md §10.6:
/// a candidate never costs the session).
fn add_candidate(pc: &RtcPeerConnection, candidate: String) {
    let init = RtcIceCandidateInit::new(&candidate);
    init.set_sdp_mid(Some("0"));
    init.set_sdp_m_line_index(Some(0));
    let promise = pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = JsFuture::from(promise).await {
            crate::events::debug(&format!("a remote candidate was skipped: {e:?}"));
        }
    });
}
