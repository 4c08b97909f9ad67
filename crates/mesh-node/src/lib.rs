//! A node of the peer-relayed WebRTC mesh overlay: the library applications use.
//!
//! A node registers with a bootstrap server, opens its first WebRTC link with
//! signaling carried by the server, and from then on signals every further link through
//! the mesh itself: `Route` frames relayed over DataChannels, delivered as `Transfer`.
//! Applications send to any node id, broadcast, open direct links and read [`Event`]s
//! from [`Node::events`], a [`Stream`](futures_util::Stream).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use mesh_node::transport::memory::{MemoryNetwork, MemoryTransport};
//! use mesh_node::{Config, Event, Node};
//! use mesh_proto::identity::Keypair;
//!
//! // A bootstrap server on a loopback port, and two nodes on an in-memory network.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url: mesh_proto::ServerUrl = format!("ws://{}/ws", listener.local_addr()?).parse()?;
//! tokio::spawn(bootstrap_server::run(listener, Default::default(), std::future::pending()));
//! let net = MemoryNetwork::new();
//! let join = |key: Keypair| {
//!     let net = net.clone();
//!     let id = key.node_id();
//!     Node::join_with(Config::new(url.clone()), key, move |events| MemoryTransport::new(net, id, events))
//! };
//! let a = join(Keypair::generate()).await?;
//! let b = join(Keypair::generate()).await?;
//! let mut b_events = b.events().expect("taken once");
//! // Wait until b has its first link, then send to it.
//! while !matches!(b_events.next().await, Some(Event::LinkUp { .. })) {}
//! a.send(b.id(), b"hello".to_vec()).await?;
//! let messages = b_events.filter_map(|event| async move {
//!     match event {
//!         Event::Message { from, data } => Some((from, data)),
//!         _ => None,
//!     }
//! });
//! let mut messages = std::pin::pin!(messages);
//! assert_eq!(messages.next().await, Some((a.id(), b"hello".to_vec())));
//! a.leave().await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod config;
mod driver;
mod error;
mod event;
pub mod keyfile;
mod node;
mod server;
pub mod transport;

pub use config::Config;
pub use error::{BootstrapError, Error};
pub use event::{LinkInfo, NodeStats};
/// What a node tells its application: the core's events, as they are.
pub use mesh_core::{Event, LinkDownReason};
pub use node::{Events, Node};
