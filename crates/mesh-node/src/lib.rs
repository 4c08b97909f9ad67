//! A node of the peer-relayed WebRTC mesh overlay: the library applications use.
//!
//! A node registers with a bootstrap server (the door), opens its first WebRTC link with
//! signaling carried by the server, and from then on signals every further link through
//! the mesh itself: `Route` frames relayed over DataChannels, delivered as `Transfer`.
//! Applications send to any node id, broadcast, open direct links and read [`Event`]s.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
//! let mut b_events = b.events().unwrap();
//! // Wait until b has its first link, then send to it.
//! while !matches!(b_events.recv().await, Some(Event::LinkUp { .. })) {}
//! a.send(b.id(), b"hello".to_vec()).await?;
//! loop {
//!     if let Some(Event::Message { from, data }) = b_events.recv().await {
//!         assert_eq!((from, data), (a.id(), b"hello".to_vec()));
//!         break;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod driver;
pub mod keyfile;
mod node;
mod server;
pub mod transport;

pub use node::{Config, Event, LinkInfo, Node, NodeStats};

/// Everything that can go wrong in a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bootstrap server could not be reached or spoke nonsense.
    #[error("bootstrap server {url}: {why}")]
    Bootstrap {
        /// The URL tried.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// The bootstrap server refused the node.
    #[error("the bootstrap server refused: {code}: {message}")]
    Refused {
        /// The server's error code.
        code: mesh_proto::ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The overlay refused the operation (no route, too large, bad configuration).
    #[error(transparent)]
    Core(#[from] mesh_core::Error),
    /// The transport failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// A STUN or TURN server of the configuration is unusable.
    #[error("ICE server {url}: {why}")]
    IceServer {
        /// The URL at fault (empty if the server has none).
        url: String,
        /// What is wrong with it, and what to write instead.
        why: String,
    },
    /// A key file could not be read or written.
    #[error("key file {path}: {why}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        why: String,
    },
}
