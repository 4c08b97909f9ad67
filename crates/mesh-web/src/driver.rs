//! The browser driver: owns the overlay state machine (`mesh_core::Node`) and connects it
//! to the page's WebSockets, RTCPeerConnections and timer.
//!
//! It decides nothing. Like mesh-node's driver, it feeds the core what happened
//! (`handle_input`) and carries out what the core asks (`poll_output`); every overlay rule
//! (whom to link with, where to register, routing, floods, trust) is the core's.
//!
//! Everything runs on the page's one thread. Browser callbacks (a WebSocket message, an ICE
//! candidate, a DataChannel opening, the timer) never touch the core directly: each one
//! posts an [`Ev`] to the queue and calls [`pump`], which drains the queue into the core and
//! the core's outputs into the browser. A callback that fires while a pump is running (one
//! the browser calls synchronously) only queues its event; the running pump takes it.
//! Application callbacks are called after the driver is released, so an event handler may
//! call the node's methods.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::time::Duration;

use mesh_core::{Event, Input, Instant, Output};
use mesh_proto::identity::Keypair;
use mesh_proto::signal::SessionId;
use mesh_proto::{Frame, NodeId, RoomName, ServerUrl};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::events::{Ev, LinkEv, Poster, ServerEv, debug, warn, window};
use crate::link::Link;
use crate::server::{self, Conn};

/// Messages queued towards the driver before further ones are dropped (and counted): the
/// bound on what a flood of DataChannel messages can pile up between two pumps. Other
/// events (at most a few per session or connection, whose number is bounded) are always
/// queued: a session's one `Closed` must not be lost.
const QUEUE_LIMIT: usize = 4096;

/// Application events kept while no handler is set (the first ones, until `onEvent`).
const UNHANDLED_EVENTS: usize = 256;

/// Counters of the browser driver itself (the core's are in `mesh_core::Stats`).
#[derive(Debug, Default, Clone)]
pub(crate) struct DriverStats {
    pub server_registrations: u64,
    pub door_rejoins: u64,
    pub link_send_dropped: u64,
    pub server_send_dropped: u64,
    pub events_dropped: u64,
    pub queue_dropped: u64,
    pub sessions_refused: u64,
    /// Setup times (`OpenSession` → DataChannel open) of the last links this node offered.
    pub link_setup: VecDeque<Duration>,
}

/// How many link setup times are kept.
const LINK_SETUP_KEPT: usize = 64;

/// The driver and its queue, shared by every browser callback (through a [`Weak`]).
pub(crate) struct Shared {
    pub driver: RefCell<Driver>,
    queue: RefCell<VecDeque<Ev>>,
    /// The timer's callback, made once.
    timer: RefCell<Option<Closure<dyn FnMut()>>>,
}

/// Settings the driver needs besides the core's.
#[derive(Debug)]
pub(crate) struct Settings {
    pub room: RoomName,
    pub register_timeout: Duration,
    /// ICE servers given by the page (`[{ urls, username?, credential? }]`), or none: then
    /// the bootstrap server's STUN responder when it announces one.
    pub ice_servers: Option<JsValue>,
    /// Most RTCPeerConnections open at once.
    pub max_links: usize,
}

pub(crate) struct Driver {
    pub core: mesh_core::Node,
    seed: [u8; 32],
    settings: Settings,
    /// The first registration succeeded: the core runs.
    started: bool,
    /// `leave` was called, or joining failed.
    stopped: bool,
    servers: HashMap<ServerUrl, Conn>,
    next_attempt: u64,
    links: HashMap<SessionId, Link>,
    /// The bootstrap server's STUN responder, `stun:host:port`.
    server_stun: Option<String>,
    pub stats: DriverStats,
    offered: HashMap<SessionId, Instant>,
    /// The application's event handler, and events waiting for one.
    handler: Option<js_sys::Function>,
    waiting: VecDeque<JsValue>,
    /// Calls to make once the driver is released: (function, argument).
    calls: Vec<(js_sys::Function, JsValue)>,
    /// `join`'s promise: resolved at the first registration, rejected if it fails.
    join: Option<(js_sys::Function, js_sys::Function)>,
    /// The bootstrap servers that failed while joining, in the order they were tried.
    join_failures: Vec<ServerUrl>,
    /// What the core asked for while joining, other than the join's own registrations:
    /// carried out first once it runs.
    early: VecDeque<Output>,
    /// The pending timer: its handle and when it fires.
    timer: Option<(i32, Instant)>,
    weak: Weak<Shared>,
    /// What links and server connections post their events with.
    poster: Poster,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("id", &self.core.id())
            .field("started", &self.started)
            .field("servers", &self.servers.len())
            .field("links", &self.links.len())
            .finish()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Starts a driver: registers at the bootstrap server the core picks
/// (`mesh_core::Node::joining_at`), and should that fail at the next ones in turn, as the
/// core asks; `resolve`/`reject` settle `join`'s promise when one succeeds or all failed.
pub(crate) fn start(
    overlay: mesh_core::Config,
    key: Keypair,
    settings: Settings,
    join: (js_sys::Function, js_sys::Function),
) -> Result<Rc<Shared>, mesh_core::Error> {
    let now = Instant::now();
    let seed = key.to_seed();
    let core = mesh_core::Node::new(overlay, key, now, random_u64())?;
    let shared = Rc::new_cyclic(|weak: &Weak<Shared>| Shared {
        driver: RefCell::new(Driver {
            core,
            seed,
            settings,
            started: false,
            stopped: false,
            servers: HashMap::new(),
            next_attempt: 0,
            links: HashMap::new(),
            server_stun: None,
            stats: DriverStats::default(),
            offered: HashMap::new(),
            handler: None,
            waiting: VecDeque::new(),
            calls: Vec::new(),
            join: Some(join),
            join_failures: Vec::new(),
            early: VecDeque::new(),
            timer: None,
            weak: weak.clone(),
            poster: {
                let weak = weak.clone();
                Rc::new(move |ev| post(&weak, ev))
            },
        }),
        queue: RefCell::new(VecDeque::new()),
        timer: RefCell::new(None),
    });
    let weak = Rc::downgrade(&shared);
    *shared.timer.borrow_mut() = Some(Closure::new(move || post(&weak, Ev::Timer)));
    {
        let mut driver = shared.driver.borrow_mut();
        let Some(bootstrap) = driver.core.joining_at().cloned() else {
            return Err(mesh_core::Error::InvalidConfig(
                "no bootstrap server URL: give at least one".into(),
            ));
        };
        let timeout = driver.settings.register_timeout;
        // The core starts once this registration succeeds (as mesh-node's `join`).
        driver.connect(bootstrap, timeout);
    }
    pump(&shared);
    Ok(shared)
}

/// Queues `ev` for the driver and runs it.
pub(crate) fn post(weak: &Weak<Shared>, ev: Ev) {
    let Some(shared) = weak.upgrade() else { return };
    {
        let mut queue = shared.queue.borrow_mut();
        if queue.len() >= QUEUE_LIMIT && matches!(ev, Ev::Link(_, LinkEv::Data(_))) {
            drop(queue);
            if let Ok(mut driver) = shared.driver.try_borrow_mut() {
                driver.stats.queue_dropped += 1;
            }
            return;
        }
        queue.push_back(ev);
    }
    pump(&shared);
}

/// Drains the queue into the driver, carries out the core's outputs, sets the timer, then
/// calls the application's handlers. Does nothing if a pump is already running (it takes
/// what was queued).
pub(crate) fn pump(shared: &Rc<Shared>) {
    loop {
        let calls = {
            let Ok(mut driver) = shared.driver.try_borrow_mut() else {
                return;
            };
            loop {
                let next = shared.queue.borrow_mut().pop_front();
                let Some(ev) = next else { break };
                driver.handle(ev);
                driver.flush();
            }
            driver.flush();
            driver.schedule(shared);
            std::mem::take(&mut driver.calls)
        };
        for (function, argument) in calls {
            if let Err(e) = function.call1(&JsValue::NULL, &argument) {
                web_sys::console::error_2(&"mesh: an event handler threw".into(), &e);
            }
        }
        if shared.queue.borrow().is_empty() {
            return;
        }
    }
}

impl Driver {
    /// Sets the application's event handler and hands it the events that waited for one.
    pub fn set_handler(&mut self, handler: js_sys::Function) {
        for event in self.waiting.drain(..) {
            self.calls.push((handler.clone(), event));
        }
        self.handler = Some(handler);
    }

    /// Leaves: tells the neighbours, closes every link and server connection.
    pub fn leave(&mut self) {
        if self.stopped {
            return;
        }
        if self.started {
            self.core.leave();
            self.flush();
        }
        self.stop();
    }

    fn stop(&mut self) {
        self.stopped = true;
        for (_, conn) in self.servers.drain() {
            conn.close();
        }
        for (_, mut link) in self.links.drain() {
            link.close();
        }
        if let Some((handle, _)) = self.timer.take() {
            window().clear_timeout_with_handle(handle);
        }
    }

    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    pub fn server_stun(&self) -> Option<&str> {
        self.server_stun.as_deref()
    }

    fn handle(&mut self, ev: Ev) {
        if self.stopped {
            return;
        }
        let now = Instant::now();
        match ev {
            Ev::Timer => {
                self.timer = None;
                if self.started {
                    self.core.handle_input(now, Input::Timeout);
                }
            }
            Ev::Link(session, ev) => self.on_link(now, session, ev),
            Ev::Server(url, attempt, ev) => {
                if self.servers.get(&url).is_some_and(|c| c.attempt == attempt) {
                    self.on_server(now, url, ev);
                }
            }
        }
    }

    fn on_link(&mut self, now: Instant, session: SessionId, ev: LinkEv) {
        let Some(link) = self.links.get_mut(&session) else {
            return;
        };
        let input = match ev {
            LinkEv::Local(signal) => Input::LocalSignal { session, signal },
            LinkEv::RemoteApplied => {
                link.remote_applied();
                return;
            }
            LinkEv::Up => {
                if let Some(opened) = self.offered.remove(&session) {
                    let setup = &mut self.stats.link_setup;
                    if setup.len() == LINK_SETUP_KEPT {
                        setup.pop_front();
                    }
                    setup.push_back(now.saturating_duration_since(opened));
                }
                Input::LinkUp { session }
            }
            LinkEv::Data(bytes) => Input::LinkData {
                session,
                bytes: bytes.into(),
            },
            LinkEv::Closed(reason) => {
                if let Some(mut link) = self.links.remove(&session) {
                    link.close();
                }
                self.offered.remove(&session);
                Input::LinkClosed { session, reason }
            }
        };
        if self.started {
            self.core.handle_input(now, input);
        }
    }

    fn on_server(&mut self, now: Instant, url: ServerUrl, ev: ServerEv) {
        match ev {
            ServerEv::Message(bytes) => match mesh_proto::decode(&bytes) {
                Ok(frame) => self.on_frame(now, url, frame),
                Err(e) => {
                    warn(&format!("undecodable frame from {url}, disconnecting: {e}"));
                    self.server_gone(now, url);
                }
            },
            ServerEv::Closed(why) => {
                debug(&format!("connection to {url} closed: {why}"));
                self.server_gone(now, url);
            }
            ServerEv::Timeout => {
                if !self.servers.get(&url).is_some_and(Conn::registered) {
                    warn(&format!("registering at {url} timed out"));
                    self.server_gone(now, url);
                }
            }
        }
    }

    fn on_frame(&mut self, now: Instant, url: ServerUrl, frame: Frame) {
        let Some(conn) = self.servers.get_mut(&url) else {
            return;
        };
        if !conn.registered() {
            let key = Keypair::from_seed(self.seed);
            match conn.handshake(frame, &key, &self.settings.room) {
                Ok(None) => {}
                Ok(Some(peers)) => self.registered(now, url, peers),
                Err(why) => {
                    warn(&format!("registering at {url} failed: {why}"));
                    self.server_gone(now, url);
                }
            }
            return;
        }
        if !self.started {
            return;
        }
        let at = url.clone();
        match self.core.handle_server_frame(now, url, frame) {
            None => {}
            // A fatal one ends that connection (it closes next).
            Some(Frame::Error { code, message, .. }) => {
                warn(&format!("{at} ends the session: {code}: {message}"))
            }
            Some(other) => debug(&format!("ignoring a {} frame from {at}", other.kind())),
        }
    }

    /// A registration at `url` succeeded: the first one starts the core.
    fn registered(&mut self, now: Instant, url: ServerUrl, peers: Vec<NodeId>) {
        if !self.started {
            self.started = true;
            if let Some((resolve, _)) = self.join.take() {
                self.calls.push((resolve, JsValue::UNDEFINED));
            }
        }
        self.core
            .handle_input(now, Input::Registered { server: url, peers });
    }

    /// The connection to `url` is gone (closed, failed, undecodable, timed out).
    fn server_gone(&mut self, now: Instant, url: ServerUrl) {
        let Some(conn) = self.servers.remove(&url) else {
            return;
        };
        let registered = conn.registered();
        conn.close();
        if !self.started {
            self.join_failed(now, url);
            return;
        }
        let input = if registered {
            Input::ServerDown { server: url }
        } else {
            Input::RegisterFailed { server: url }
        };
        self.core.handle_input(now, input);
    }

    /// Joining at bootstrap server `url` failed: the next one the core asks for, at once;
    /// once every one failed, joining fails (nothing runs without the first registration).
    fn join_failed(&mut self, now: Instant, url: ServerUrl) {
        self.join_failures.push(url.clone());
        self.core
            .handle_input(now, Input::RegisterFailed { server: url });
        let mut next = None;
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Register { server, timeout }
                    if next.is_none() && self.core.config().bootstraps.contains(&server) =>
                {
                    next = Some((server, timeout))
                }
                other => self.early.push_back(other),
            }
        }
        if let Some((server, timeout)) = next {
            self.connect(server, timeout);
            return;
        }
        if let Some((_, reject)) = self.join.take() {
            let tried: Vec<&str> = self.join_failures.iter().map(ServerUrl::as_str).collect();
            let why = format!(
                "could not register at the bootstrap server {}: see the console; \
                 is the server running and the URL right?",
                tried.join(", ")
            );
            self.calls.push((reject, js_sys::Error::new(&why).into()));
        }
        self.stop();
    }

    /// Opens a connection to `url` and registers there (a registration attempt of its own).
    fn connect(&mut self, url: ServerUrl, timeout: Duration) {
        self.next_attempt += 1;
        let attempt = self.next_attempt;
        match server::Conn::open(&self.poster, url.clone(), attempt, timeout) {
            Ok(conn) => {
                if let Some(old) = self.servers.insert(url, conn) {
                    old.close();
                }
            }
            Err(e) => {
                warn(&format!("cannot open a WebSocket to {url}: {e:?}"));
                // Reported like a failed attempt, after the pump (the core is mid-output).
                self.servers
                    .insert(url.clone(), server::Conn::failed(attempt));
                let weak = self.weak.clone();
                let ev = Ev::Server(url, attempt, ServerEv::Closed("cannot open".into()));
                wasm_bindgen_futures::spawn_local(async move { post(&weak, ev) });
            }
        }
    }

    /// Carries out everything the core asked for.
    fn flush(&mut self) {
        if !self.started || self.stopped {
            return;
        }
        while let Some(output) = self.early.pop_front().or_else(|| self.core.poll_output()) {
            match output {
                Output::SendServer { server, frame } => match self.servers.get(&server) {
                    Some(conn) if conn.registered() => {
                        if !conn.send(&frame) {
                            self.stats.server_send_dropped += 1;
                        }
                    }
                    _ => debug(&format!("no connection to {server}: frame dropped")),
                },
                Output::Register { server, timeout } => self.connect(server, timeout),
                Output::Unregister { server } => {
                    if let Some(conn) = self.servers.remove(&server) {
                        conn.close();
                    }
                }
                Output::SendLink { session, bytes } => {
                    if let Some(link) = self.links.get(&session)
                        && link.send(&bytes).is_err()
                    {
                        self.stats.link_send_dropped += 1;
                    }
                }
                Output::OpenSession {
                    session,
                    peer,
                    role,
                } => self.open(session, peer, role),
                Output::RemoteSignal { session, signal } => {
                    if let Some(link) = self.links.get_mut(&session) {
                        link.remote_signal(session, signal);
                    }
                }
                Output::CloseSession { session } => {
                    if let Some(link) = self.links.get_mut(&session) {
                        link.close();
                        // The session's one `Closed`, after this pump's outputs.
                        let weak = self.weak.clone();
                        let ev = Ev::Link(session, LinkEv::Closed("closed locally".into()));
                        wasm_bindgen_futures::spawn_local(async move { post(&weak, ev) });
                    }
                }
                Output::Event(event) => self.event(event),
            }
        }
    }

    fn open(&mut self, session: SessionId, peer: NodeId, role: mesh_core::Role) {
        let refused = if self.links.len() >= self.settings.max_links {
            Some(format!(
                "{} RTCPeerConnections open: the most this page allows",
                self.links.len()
            ))
        } else {
            let ice = self.ice_servers();
            match Link::open(&self.poster, session, peer, role, &ice) {
                Ok(link) => {
                    self.links.insert(session, link);
                    if role == mesh_core::Role::Offerer {
                        self.offered.insert(session, Instant::now());
                    }
                    None
                }
                Err(e) => Some(format!("cannot create an RTCPeerConnection: {e:?}")),
            }
        };
        if let Some(reason) = refused {
            self.stats.sessions_refused += 1;
            self.core
                .handle_input(Instant::now(), Input::LinkClosed { session, reason });
        }
    }

    /// The ICE servers of new sessions: the page's, else the bootstrap server's STUN
    /// responder, else none (host candidates only).
    fn ice_servers(&self) -> JsValue {
        if let Some(servers) = &self.settings.ice_servers {
            return servers.clone();
        }
        let list = js_sys::Array::new();
        if let Some(stun) = &self.server_stun {
            let server = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&server, &"urls".into(), &stun.into());
            list.push(&server);
        }
        list.into()
    }

    fn event(&mut self, event: Event) {
        match &event {
            Event::ServerConnected { server, door } => {
                self.stats.server_registrations += 1;
                if *door {
                    self.stats.door_rejoins += 1;
                }
                let stun = self.servers.get(server).and_then(Conn::stun_port);
                self.server_stun =
                    stun.and_then(|port| crate::text::stun_url(server.as_str(), port));
            }
            Event::LinkUp { peer } => debug(&format!("link up: {peer}")),
            Event::LinkDown { peer, reason } => debug(&format!("link down: {peer}: {reason}")),
            _ => {}
        }
        let value = crate::js::event_to_js(&event);
        match &self.handler {
            Some(handler) => self.calls.push((handler.clone(), value)),
            None => {
                if self.waiting.len() < UNHANDLED_EVENTS {
                    self.waiting.push_back(value);
                } else {
                    self.stats.events_dropped += 1;
                }
            }
        }
    }

    /// Sets the browser timer to the core's next deadline.
    fn schedule(&mut self, shared: &Shared) {
        if !self.started || self.stopped {
            return;
        }
        let at = self.core.poll_timeout();
        if let Some((handle, when)) = self.timer {
            if when == at {
                return;
            }
            window().clear_timeout_with_handle(handle);
            self.timer = None;
        }
        let delay = at.saturating_duration_since(Instant::now());
        let ms = delay.as_millis().min(i32::MAX as u128) as i32;
        let timer = shared.timer.borrow();
        let Some(callback) = timer.as_ref() else {
            return;
        };
        match window().set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.as_ref().unchecked_ref(),
            ms,
        ) {
            Ok(handle) => self.timer = Some((handle, at)),
            Err(e) => web_sys::console::error_2(&"mesh: setTimeout failed".into(), &e),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// 64 random bits from the browser's `crypto.getRandomValues`.
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No crypto in this context: the core's choices need no secrecy, only spread.
        return (js_sys::Math::random() * u64::MAX as f64) as u64;
    }
    u64::from_le_bytes(bytes)
}
