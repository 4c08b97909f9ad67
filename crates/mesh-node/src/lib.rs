//! A node of the peer-relayed WebRTC mesh overlay. (Being written.)
#![warn(missing_docs)]

pub mod transport;

/// Everything that can go wrong in a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport could not start a session.
    #[error("transport error: {0}")]
    Transport(String),
}
