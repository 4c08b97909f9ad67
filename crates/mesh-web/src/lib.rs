//! The mesh in a browser: the same `mesh_core` state machine as native nodes, compiled to
//! WebAssembly and driven by the page's `RTCPeerConnection`s, `WebSocket`s and timers.
//!
//! A browser tab joins the same mesh as `mesh-node`s: it registers at the bootstrap server
//! over a `WebSocket` (protocol.md §6), opens one `RTCPeerConnection` with one pre-negotiated
//! DataChannel per link (§10.1), and from its second link on is signaled through the mesh
//! like any node. The driver here only moves bytes and reads the clock
//! (`performance.now()` through `mesh_core::Instant`); every overlay rule is the core's.
//!
//! JavaScript use (the bundle is built by `scripts/build-web.sh`, and the bootstrap server
//! serves it with a chat page at `/`):
//!
//! ```js
//! import init, { MeshNode } from "./pkg/mesh_web.js";
//! await init();
//! const node = await MeshNode.join("ws://127.0.0.1:8080/ws", { room: "default" });
//! node.onEvent((e) => { if (e.type === "message") console.log(e.from, e.data); });
//! node.broadcast(new TextEncoder().encode("hello"));
//! ```
//!
//! The crate is for `wasm32-unknown-unknown` only; on other targets it is empty.
#![warn(missing_docs)]

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod driver;
#[cfg(target_arch = "wasm32")]
mod events;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod link;
#[cfg(target_arch = "wasm32")]
mod server;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod text;

#[cfg(target_arch = "wasm32")]
pub use api::MeshNode;
