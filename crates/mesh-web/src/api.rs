//! The JavaScript API: [`MeshNode`], mirroring mesh-node's `Node` (join, own id, send,
//! broadcast, direct links, events, neighbours, stats, leave).

use std::rc::Rc;
use std::time::Duration;

use mesh_proto::identity::Keypair;
use mesh_proto::{NodeId, RoomName, ServerUrl};
use wasm_bindgen::prelude::*;

use crate::driver::{self, Settings, Shared, pump};
use crate::events;
use crate::js::set;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `MeshNode.join`; every field is optional. */
export interface JoinOptions {
  /** The room (mesh) to join. Default "default". */
  room?: string;
  /** STUN/TURN servers, as RTCConfiguration.iceServers. Default: the bootstrap server's
   * STUN responder when it announces one, else none (host candidates only). */
  iceServers?: RTCIceServer[];
  /** Keep the identity key in localStorage under this name (made on the first visit),
   * so the page keeps its NodeId across reloads. Default: a new key per page load. */
  keyStorage?: string;
  /** Links the node tries to keep. Default 8. */
  targetDegree?: number;
  /** Below this many links the node tops up first. Default 3. */
  minDegree?: number;
  /** The node refuses sessions at this many links. Default 12. */
  maxDegree?: number;
  /** Most RTCPeerConnections open at once (links and sessions under way). Default 32. */
  maxLinks?: number;
  /** Time allowed to connect and register at a server, in ms. Default 10000. */
  registerTimeoutMs?: number;
}

/** What a node reports, to the handler given to `onEvent`. */
export type MeshEvent =
  | { type: "message"; from: string; data: Uint8Array }
  | { type: "broadcast"; from: string; data: Uint8Array }
  | { type: "linkUp"; peer: string }
  | { type: "linkDown"; peer: string; reason: string }
  | { type: "serverConnected"; server: string; door: boolean }
  | { type: "serverDisconnected"; server: string }
  | { type: "unreachable"; to: string; at: string }
  | { type: "other"; detail: string };
"#;

/// Default of `JoinOptions.maxLinks`: Chromium caps PeerConnections per page (about 500
/// over the page's life); a browser keeps a dozen links and a few sessions under way.
const DEFAULT_MAX_LINKS: usize = 32;

/// A node of the mesh, running in this page.
#[wasm_bindgen]
#[derive(Debug)]
pub struct MeshNode {
    shared: Rc<Shared>,
    id: NodeId,
}

#[wasm_bindgen]
impl MeshNode {
    /// Joins the mesh through the bootstrap server at `url` (`ws://` or `wss://`, e.g.
    /// `ws://host:8080/ws`). Resolves once the node is registered there; from then on it
    /// links with peers by itself. Rejects if the server cannot be reached or refuses.
    ///
    /// `url` may also name several servers of one fleet: an array of URLs, or one string
    /// of comma-separated URLs (at most 16). The node then spreads over them and moves to
    /// the next when one fails: it joins at the one its id picks, and when that one
    /// refuses, is unreachable or dies, registers at the next in the list, in turn (the
    /// rules of `mesh_core`, as mesh-node's); `join` rejects once each was tried.
    pub async fn join(
        #[wasm_bindgen(unchecked_param_type = "string | string[]")] url: JsValue,
        options: JsValue,
    ) -> Result<MeshNode, JsError> {
        let bootstraps = bootstrap_urls(&url)?;
        let options = Options::read(&options)?;
        let key = match &options.key_storage {
            Some(name) => stored_key(name),
            None => Keypair::generate(),
        };
        let id = key.node_id();
        let mut overlay = mesh_core::Config::default();
        if let Some(n) = options.target_degree {
            overlay.target_degree = n;
        }
        if let Some(n) = options.min_degree {
            overlay.min_degree = n;
        }
        if let Some(n) = options.max_degree {
            overlay.max_degree = n;
        }
        overlay.register_timeout = options.register_timeout;
        overlay = overlay.with_bootstraps(bootstraps);
        overlay.room = options.room.clone();
        // Epochs grow from run to run of one key: the wall clock, in microseconds.
        overlay.seal_epoch = Some((js_sys::Date::now() * 1000.0) as u64);
        let settings = Settings {
            room: options.room,
            register_timeout: options.register_timeout,
            ice_servers: options.ice_servers,
            max_links: options.max_links,
        };
        let mut args = Some((overlay, key, settings));
        let mut started = None;
        let promise = js_sys::Promise::new(&mut |resolve, reject| {
            if let Some((overlay, key, settings)) = args.take() {
                started = Some(driver::start(overlay, key, settings, (resolve, reject)));
            }
        });
        let shared = started
            .ok_or_else(|| JsError::new("the driver did not start"))?
            .map_err(|e| JsError::new(&e.to_string()))?;
        if let Err(e) = wasm_bindgen_futures::JsFuture::from(promise).await {
            shared.driver.borrow_mut().leave();
            let why = js_sys::Error::from(e).message();
            return Err(JsError::new(&String::from(why)));
        }
        Ok(MeshNode { shared, id })
    }

    /// This node's id (a UUID-shaped string).
    #[wasm_bindgen(getter, js_name = nodeId)]
    pub fn node_id(&self) -> String {
        self.id.to_string()
    }

    /// Sends `data` to the node `to`, best effort: through the mesh, sealed for `to`.
    /// Throws if the node has no link yet, `to` is not an id, or `data` is too large.
    pub fn send(&self, to: &str, data: &[u8]) -> Result<(), JsError> {
        let to = parse_id(to)?;
        let sent = self.with(|d| d.core.send(mesh_core::Instant::now(), to, data.to_vec()));
        sent.map_err(|e| JsError::new(&e.to_string()))
    }

    /// Sends `data` to `to`, acknowledged and sent again until it is (or given up:
    /// `stats().reliable_lost`).
    #[wasm_bindgen(js_name = sendReliable)]
    pub fn send_reliable(&self, to: &str, data: &[u8]) -> Result<(), JsError> {
        let to = parse_id(to)?;
        let now = mesh_core::Instant::now();
        let sent = self.with(|d| d.core.send_reliable(now, to, data.to_vec()));
        sent.map_err(|e| JsError::new(&e.to_string()))
    }

    /// Floods `data` to every node of the mesh; returns how many neighbours it went to.
    pub fn broadcast(&self, data: &[u8]) -> Result<u32, JsError> {
        let now = mesh_core::Instant::now();
        let sent = self.with(|d| d.core.broadcast(now, data.to_vec()));
        sent.map(|n| n as u32)
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// Opens a direct link to `peer` (signaled through the mesh).
    pub fn connect(&self, peer: &str) -> Result<(), JsError> {
        let peer = parse_id(peer)?;
        let now = mesh_core::Instant::now();
        let result = self.with(|d| d.core.connect(now, peer));
        result.map_err(|e| JsError::new(&e.to_string()))
    }

    /// Closes the link to `peer`, if any.
    pub fn disconnect(&self, peer: &str) -> Result<(), JsError> {
        let peer = parse_id(peer)?;
        self.with(|d| d.core.disconnect(mesh_core::Instant::now(), peer));
        Ok(())
    }

    /// The ids of the current neighbours.
    pub fn neighbours(&self) -> Vec<String> {
        let neighbours = self.shared.driver.borrow().core.neighbours();
        neighbours.iter().map(NodeId::to_string).collect()
    }

    /// The live links: `[{ peer, carrier }]`, `carrier` being how the link's session was
    /// signaled: `"server"` (an entry session) or `"mesh"`.
    pub fn links(&self) -> js_sys::Array {
        let driver = self.shared.driver.borrow();
        let links = js_sys::Array::new();
        for peer in driver.core.neighbours() {
            let link = js_sys::Object::new();
            set(&link, "peer", peer.to_string());
            let carrier = match driver.core.link_carrier(peer) {
                Some(mesh_core::Carrier::Server) => JsValue::from("server"),
                Some(mesh_core::Carrier::Mesh) => JsValue::from("mesh"),
                None => JsValue::NULL,
            };
            set(&link, "carrier", carrier);
            links.push(&link);
        }
        links
    }

    /// Counters: the overlay's (`mesh_core::Stats`, snake_case names as in mesh-node's
    /// `/json`) and the browser driver's.
    pub fn stats(&self) -> JsValue {
        let driver = self.shared.driver.borrow();
        stats_to_js(&driver)
    }

    /// Sets the handler of every event (`MeshEvent`); events that came before it was set
    /// (up to 256) are handed to it at once.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, handler: js_sys::Function) {
        self.with(|d| d.set_handler(handler));
    }

    /// Leaves the mesh: tells the neighbours, closes every link and server connection.
    pub fn leave(&self) {
        self.with(|d| d.leave());
    }
}

impl MeshNode {
    /// Runs `f` on the driver, then lets the driver carry out what the core asked.
    fn with<R>(&self, f: impl FnOnce(&mut driver::Driver) -> R) -> R {
        let result = f(&mut self.shared.driver.borrow_mut());
        pump(&self.shared);
        result
    }
}

/// `JoinOptions`, read.
struct Options {
    room: RoomName,
    ice_servers: Option<JsValue>,
    key_storage: Option<String>,
    target_degree: Option<usize>,
    min_degree: Option<usize>,
    max_degree: Option<usize>,
    max_links: usize,
    register_timeout: Duration,
}

impl Options {
    fn read(options: &JsValue) -> Result<Self, JsError> {
        let get = |name: &str| -> Option<JsValue> {
            if options.is_undefined() || options.is_null() {
                return None;
            }
            let value = js_sys::Reflect::get(options, &name.into()).ok()?;
            (!value.is_undefined() && !value.is_null()).then_some(value)
        };
        let number = |name: &str| -> Result<Option<usize>, JsError> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 1e9 => Ok(Some(n as usize)),
                    _ => Err(JsError::new(&format!(
                        "option {name} must be a whole number ≥ 0"
                    ))),
                },
            }
        };
        let string = |name: &str| -> Result<Option<String>, JsError> {
            match get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_string()
                    .map(Some)
                    .ok_or_else(|| JsError::new(&format!("option {name} must be a string"))),
            }
        };
        let room = match string("room")? {
            Some(name) => RoomName::try_from(name.clone())
                .map_err(|e| JsError::new(&format!("bad room {name:?}: {e}")))?,
            None => RoomName::default(),
        };
        let ice_servers = match get("iceServers") {
            Some(v) if js_sys::Array::is_array(&v) => Some(v),
            Some(_) => return Err(JsError::new("option iceServers must be an array")),
            None => None,
        };
        Ok(Self {
            room,
            ice_servers,
            key_storage: string("keyStorage")?,
            target_degree: number("targetDegree")?,
            min_degree: number("minDegree")?,
            max_degree: number("maxDegree")?,
            max_links: number("maxLinks")?.unwrap_or(DEFAULT_MAX_LINKS).max(1),
            register_timeout: Duration::from_millis(
                number("registerTimeoutMs")?.unwrap_or(10_000) as u64
            ),
        })
    }
}

/// `join`'s `url`: one URL, comma-separated URLs, or an array of URLs; each checked, the
/// first bad one named.
fn bootstrap_urls(url: &JsValue) -> Result<Vec<ServerUrl>, JsError> {
    let texts: Vec<String> = if let Some(text) = url.as_string() {
        text.split(',').map(|s| s.trim().to_owned()).collect()
    } else if js_sys::Array::is_array(url) {
        let array = js_sys::Array::from(url);
        let mut texts = Vec::new();
        for item in array.iter() {
            let text = item.as_string().ok_or_else(|| {
                JsError::new("bad server URL: every element of the array must be a string")
            })?;
            texts.push(text.trim().to_owned());
        }
        texts
    } else {
        return Err(JsError::new(
            "bad server URL: expected a string (URLs separated by commas) or an array of strings",
        ));
    };
    let urls: Vec<ServerUrl> = texts
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse()
                .map_err(|e| JsError::new(&format!("bad server URL {t:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if urls.is_empty() {
        return Err(JsError::new(
            "no server URL: give at least one (ws:// or wss://)",
        ));
    }
    if urls.len() > mesh_core::MAX_BOOTSTRAPS {
        return Err(JsError::new(&format!(
            "{} server URLs: at most {} (a few of the fleet's servers)",
            urls.len(),
            mesh_core::MAX_BOOTSTRAPS
        )));
    }
    Ok(urls)
}

fn parse_id(s: &str) -> Result<NodeId, JsError> {
    s.trim()
        .parse()
        .map_err(|e| JsError::new(&format!("{s:?} is not a node id: {e}")))
}

/// The key kept in `localStorage` under `name`, made and stored on the first call. Where
/// storage is unavailable (disabled, private mode), a new key for this page load.
fn stored_key(name: &str) -> Keypair {
    let storage = events::window().local_storage().ok().flatten();
    let Some(storage) = storage else {
        events::warn("no localStorage here: a new identity for this page load");
        return Keypair::generate();
    };
    if let Ok(Some(text)) = storage.get_item(name) {
        let mut seed = [0u8; 32];
        if hex::decode_to_slice(text.trim(), &mut seed).is_ok() {
            return Keypair::from_seed(seed);
        }
        events::warn(&format!(
            "localStorage {name:?} holds no key: making a new one"
        ));
    }
    let key = Keypair::generate();
    if storage.set_item(name, &hex::encode(key.to_seed())).is_err() {
        events::warn("could not keep the key in localStorage");
    }
    key
}

fn stats_to_js(driver: &driver::Driver) -> JsValue {
    let o = js_sys::Object::new();
    let s = driver.core.stats();
    let counters: &[(&str, u64)] = &[
        (
            "sessions_initiated_via_server",
            s.sessions_initiated_via_server,
        ),
        ("sessions_initiated_via_mesh", s.sessions_initiated_via_mesh),
        (
            "sessions_answered_via_server",
            s.sessions_answered_via_server,
        ),
        ("sessions_answered_via_mesh", s.sessions_answered_via_mesh),
        ("sessions_failed", s.sessions_failed),
        ("sessions_rejected", s.sessions_rejected),
        ("signals_sent_via_server", s.signals_sent_via_server),
        ("signals_sent_via_mesh", s.signals_sent_via_mesh),
        ("signals_received_via_server", s.signals_received_via_server),
        ("signals_received_via_mesh", s.signals_received_via_mesh),
        ("bad_signals", s.bad_signals),
        ("links_up", s.links_up),
        ("links_down", s.links_down),
        ("malformed_frames", s.malformed_frames),
        ("frames_relayed", s.frames_relayed),
        ("messages_sent", s.messages_sent),
        ("messages_delivered", s.messages_delivered),
        ("broadcasts_sent", s.broadcasts_sent),
        ("broadcasts_delivered", s.broadcasts_delivered),
        ("reliable_sent", s.reliable_sent),
        ("reliable_acked", s.reliable_acked),
        ("reliable_lost", s.reliable_lost),
        ("dropped_no_route", s.dropped_no_route),
        ("dropped_ttl", s.dropped_ttl),
        ("bad_payloads", s.bad_payloads),
        ("throttled", s.throttled),
        ("links_over_budget", s.links_over_budget),
        ("links_shed", s.links_shed),
        ("links_timed_out", s.links_timed_out),
        ("links_rewired", s.links_rewired),
        ("lookups_sent", s.lookups_sent),
        ("key_lookups", s.key_lookups),
        ("unsealed_refused", s.unsealed_refused),
        ("seal_failures", s.seal_failures),
        ("replays_refused", s.replays_refused),
        ("forged_floods", s.forged_floods),
        ("forged_records", s.forged_records),
        ("unreachable_sent", s.unreachable_sent),
        ("unreachable_received", s.unreachable_received),
        ("server_registrations", driver.stats.server_registrations),
        ("door_rejoins", driver.stats.door_rejoins),
        ("link_send_dropped", driver.stats.link_send_dropped),
        ("server_send_dropped", driver.stats.server_send_dropped),
        ("events_dropped", driver.stats.events_dropped),
        ("queue_dropped", driver.stats.queue_dropped),
        ("sessions_refused_by_driver", driver.stats.sessions_refused),
    ];
    for (name, value) in counters {
        set(&o, name, *value as f64);
    }
    set(&o, "degree", driver.core.neighbours().len() as u32);
    set(&o, "peer_connections", driver.link_count() as u32);
    set(&o, "server_connected", driver.core.server().is_some());
    set(
        &o,
        "server_stun",
        driver.server_stun().map_or(JsValue::NULL, JsValue::from),
    );
    let setup = js_sys::Array::new();
    for d in &driver.stats.link_setup {
        setup.push(&JsValue::from(d.as_secs_f64() * 1000.0));
    }
    set(&o, "link_setup_ms", setup);
    o.into()
}
