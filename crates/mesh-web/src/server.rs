//! One WebSocket to a bootstrap server (or a neighbour's door): the browser's side of
//! protocol.md §6: `Challenge` → `Register` (signed) → `Welcome`, then frames both ways.
//! Each attempt is numbered, so that events of an attempt the driver gave up are ignored.

use std::time::Duration;

use mesh_proto::identity::{Keypair, register_message};
use mesh_proto::{Frame, NodeId, RoomName, ServerUrl, puzzle};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::events::{Ev, Poster, ServerEv, window};

/// Bytes the browser may hold unsent on the WebSocket (`bufferedAmount`) before frames to
/// the server are dropped: the browser queues without bound otherwise.
const SEND_BUFFER_LIMIT: u32 = 1024 * 1024;

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the server's `Challenge`.
    Challenge,
    /// `Register` sent, waiting for the `Welcome`.
    Welcome,
    /// Registered; the `Welcome` announced this STUN port.
    Registered { stun_port: Option<u16> },
    /// The WebSocket could not even be created; its failure is on its way.
    Failed,
}

pub(crate) struct Conn {
    pub attempt: u64,
    ws: Option<WebSocket>,
    state: State,
    timer: Option<i32>,
    _handlers: Option<Handlers>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("attempt", &self.attempt)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

struct Handlers {
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
    _error: Closure<dyn FnMut()>,
    _timeout: Closure<dyn FnMut()>,
}

impl Conn {
    /// Opens a WebSocket to `url`; the registration must be done within `timeout`.
    pub fn open(
        poster: &Poster,
        url: ServerUrl,
        attempt: u64,
        timeout: Duration,
    ) -> Result<Self, JsValue> {
        let ws = WebSocket::new(url.as_str())?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (to, at) = (poster.clone(), url.clone());
        let message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            // A text message is not a frame (protocol.md §1): it ends the connection.
            let ev = match e.data().dyn_ref::<js_sys::ArrayBuffer>() {
                Some(buffer) => ServerEv::Message(js_sys::Uint8Array::new(buffer).to_vec()),
                None => ServerEv::Closed("the server sent a text message".into()),
            };
            to(Ev::Server(at.clone(), attempt, ev));
        });
        ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
        let (to, at) = (poster.clone(), url.clone());
        let close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            let why = format!("closed (code {}) {}", e.code(), e.reason());
            to(Ev::Server(at.clone(), attempt, ServerEv::Closed(why)));
        });
        ws.set_onclose(Some(close.as_ref().unchecked_ref()));
        let (to, at) = (poster.clone(), url.clone());
        let error = Closure::<dyn FnMut()>::new(move || {
            let why = "the WebSocket failed".to_owned();
            to(Ev::Server(at.clone(), attempt, ServerEv::Closed(why)));
        });
        ws.set_onerror(Some(error.as_ref().unchecked_ref()));
        let (to, at) = (poster.clone(), url);
        let timeout_cb = Closure::<dyn FnMut()>::new(move || {
            to(Ev::Server(at.clone(), attempt, ServerEv::Timeout));
        });
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let timer = window()
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                timeout_cb.as_ref().unchecked_ref(),
                ms,
            )
            .ok();
        Ok(Self {
            attempt,
            ws: Some(ws),
            state: State::Challenge,
            timer,
            _handlers: Some(Handlers {
                _message: message,
                _close: close,
                _error: error,
                _timeout: timeout_cb,
            }),
        })
    }

    /// An attempt whose WebSocket could not be created.
    pub fn failed(attempt: u64) -> Self {
        Self {
            attempt,
            ws: None,
            state: State::Failed,
            timer: None,
            _handlers: None,
        }
    }

    pub fn registered(&self) -> bool {
        matches!(self.state, State::Registered { .. })
    }

    pub fn stun_port(&self) -> Option<u16> {
        match self.state {
            State::Registered { stun_port } => stun_port,
            _ => None,
        }
    }

    /// One step of the registration: answers the `Challenge`, takes the `Welcome` (then
    /// returns its peers). Anything else, or an id below the server's puzzle, fails it.
    pub fn handshake(
        &mut self,
        frame: Frame,
        key: &Keypair,
        room: &RoomName,
    ) -> Result<Option<Vec<NodeId>>, String> {
        match (self.state, frame) {
            (State::Challenge, Frame::Challenge { nonce, limits }) => {
                let id = key.node_id();
                if !puzzle::meets(&id, limits.id_difficulty) {
                    return Err(format!(
                        "the server requires ids of difficulty {}, this one has {}",
                        limits.id_difficulty,
                        puzzle::difficulty(&id)
                    ));
                }
                let register = Frame::Register {
                    public_key: key.public(),
                    node_id: id,
                    room: room.clone(),
                    signature: key.sign(&register_message(&nonce, &id, room)),
                };
                if !self.send(&register) {
                    return Err("cannot send the Register frame".into());
                }
                self.state = State::Welcome;
                Ok(None)
            }
            (
                State::Welcome,
                Frame::Welcome {
                    peers, stun_port, ..
                },
            ) => {
                self.state = State::Registered { stun_port };
                if let Some(handle) = self.timer.take() {
                    window().clear_timeout_with_handle(handle);
                }
                Ok(Some(peers))
            }
            (_, Frame::Error { code, message, .. }) => Err(format!("refused: {code}: {message}")),
            (state, other) => Err(format!("unexpected {} frame in {state:?}", other.kind())),
        }
    }

    /// Sends one frame; `false` if it could not be (closed, or too much unsent).
    pub fn send(&self, frame: &Frame) -> bool {
        let Some(ws) = &self.ws else { return false };
        if ws.ready_state() != WebSocket::OPEN || ws.buffered_amount() > SEND_BUFFER_LIMIT {
            return false;
        }
        match mesh_proto::encode(frame) {
            Ok(bytes) => ws.send_with_u8_array(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// Closes the WebSocket; its callbacks are detached first, so it says nothing more.
    pub fn close(mut self) {
        if let Some(handle) = self.timer.take() {
            window().clear_timeout_with_handle(handle);
        }
        if let Some(ws) = self.ws.take() {
            ws.set_onmessage(None);
            ws.set_onclose(None);
            ws.set_onerror(None);
            let _ = ws.close();
        }
    }
}
