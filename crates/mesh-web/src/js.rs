//! JavaScript values of the overlay's events (the `MeshEvent` type of the API).

use mesh_core::Event;
use wasm_bindgen::prelude::*;

/// Sets `object[name] = value`.
pub(crate) fn set(object: &js_sys::Object, name: &str, value: impl Into<JsValue>) {
    let _ = js_sys::Reflect::set(object, &name.into(), &value.into());
}

/// One event as the JavaScript object `MeshEvent` describes.
pub(crate) fn event_to_js(event: &Event) -> JsValue {
    let o = js_sys::Object::new();
    let bytes = |data: &[u8]| JsValue::from(js_sys::Uint8Array::from(data));
    match event {
        Event::Message { from, data } => {
            set(&o, "type", "message");
            set(&o, "from", from.to_string());
            set(&o, "data", bytes(data));
        }
        Event::Broadcast { from, data } => {
            set(&o, "type", "broadcast");
            set(&o, "from", from.to_string());
            set(&o, "data", bytes(data));
        }
        Event::LinkUp { peer } => {
            set(&o, "type", "linkUp");
            set(&o, "peer", peer.to_string());
        }
        Event::LinkDown { peer, reason } => {
            set(&o, "type", "linkDown");
            set(&o, "peer", peer.to_string());
            set(&o, "reason", reason.to_string());
        }
        Event::ServerConnected { server, door } => {
            set(&o, "type", "serverConnected");
            set(&o, "server", server.to_string());
            set(&o, "door", *door);
        }
        Event::ServerDisconnected { server } => {
            set(&o, "type", "serverDisconnected");
            set(&o, "server", server.to_string());
        }
        Event::Unreachable { to, at } => {
            set(&o, "type", "unreachable");
            set(&o, "to", to.to_string());
            set(&o, "at", at.to_string());
        }
        other => {
            set(&o, "type", "other");
            set(&o, "detail", format!("{other:?}"));
        }
    }
    o.into()
}
