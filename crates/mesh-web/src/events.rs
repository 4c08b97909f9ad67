//! What the browser tells the driver ([`Ev`]), and how: every browser callback of a link or
//! a server connection holds a [`Poster`] and hands it one event. The bottom of the crate:
//! it imports nothing of the others.

use std::rc::Rc;

use mesh_proto::ServerUrl;
use mesh_proto::signal::{SessionId, SignalKind};

/// Hands an event to the driver (queues it and runs the driver).
pub(crate) type Poster = Rc<dyn Fn(Ev)>;

/// What happened in the browser, for the driver.
#[derive(Debug)]
pub(crate) enum Ev {
    /// Something about the RTCPeerConnection of a session.
    Link(SessionId, LinkEv),
    /// Something about the WebSocket of one registration attempt at a server.
    Server(ServerUrl, u64, ServerEv),
    /// The core's timer fired.
    Timer,
}

/// What a session's RTCPeerConnection reports.
#[derive(Debug)]
pub(crate) enum LinkEv {
    /// A local signaling step to carry to the peer.
    Local(SignalKind),
    /// The remote description is applied: candidates kept until now can be.
    RemoteApplied,
    /// The DataChannel is open.
    Up,
    /// One message received on the DataChannel.
    Data(Vec<u8>),
    /// The session ended (failed, closed by either side).
    Closed(String),
}

/// What a server connection reports.
#[derive(Debug)]
pub(crate) enum ServerEv {
    /// One binary WebSocket message.
    Message(Vec<u8>),
    /// The WebSocket closed or failed.
    Closed(String),
    /// The registration took longer than the core allowed.
    Timeout,
}

pub(crate) fn window() -> web_sys::Window {
    // The crate runs in a page (it is built for one): `window` exists there.
    web_sys::window().expect("mesh-web runs in a browser window")
}

pub(crate) fn warn(message: &str) {
    web_sys::console::warn_1(&format!("mesh: {message}").into());
}

pub(crate) fn debug(message: &str) {
    web_sys::console::debug_1(&format!("mesh: {message}").into());
}
