//! The errors of a node: [`Error`], and [`BootstrapError`] for what went wrong with the
//! bootstrap server. Each variant keeps the error it comes from as its
//! [`source`](std::error::Error::source) where there is one: print the whole chain (e.g.
//! with `anyhow`'s `{:#}`) to see it.

use std::time::Duration;

use mesh_proto::signal::SessionId;

/// Everything that can go wrong in a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bootstrap server (or a neighbour's door) could not be reached or spoke nonsense.
    #[error("cannot register with the bootstrap server {url}")]
    Bootstrap {
        /// The URL tried.
        url: String,
        /// What went wrong.
        #[source]
        source: BootstrapError,
    },
    /// None of several bootstrap servers took the node when it joined: each was tried
    /// once, in turn (one of them alone fails with its own error).
    #[error("no bootstrap server took the node: {}", list(.0))]
    NoBootstrap(Vec<Error>),
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
    /// A message could not be queued on a link.
    #[error("cannot send on the link")]
    Send(#[from] crate::transport::SendError),
    /// The transport cannot open another session: it is at its limit.
    #[error("the transport is at its limit of {limit} sessions: close one first")]
    SessionLimit {
        /// The limit in force.
        limit: usize,
    },
    /// The transport was asked to open a session it already has.
    #[error("session {0} is already open: pick a fresh session id")]
    SessionExists(SessionId),
    /// The WebRTC transport was created outside a Tokio runtime.
    #[error("the WebRTC transport was created outside a Tokio runtime: create it inside one")]
    NoRuntime,
    /// A task of the node panicked or was cancelled.
    #[error("a task of the node failed")]
    Task(#[from] tokio::task::JoinError),
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
        /// The parser's error, when the URL did not parse.
        #[source]
        source: Option<rtc::shared::error::Error>,
    },
    /// The CA file for TURN over TLS ([`crate::transport::webrtc::Config::with_turn_ca`])
    /// cannot be read or holds no PEM certificate.
    #[error("TURN CA file: {why}")]
    TurnCa {
        /// What is wrong with it.
        why: String,
    },
    /// A key file could not be read or written, or holds no key.
    #[error("key file {path}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong (`InvalidData` if the file holds no key).
        #[source]
        source: std::io::Error,
    },
}

/// What went wrong while registering with a bootstrap server ([`Error::Bootstrap`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The WebSocket connection could not be opened, or failed during the registration.
    #[error("WebSocket error")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A frame could not be encoded, or one from the server did not decode.
    #[error("bad frame")]
    Codec(#[from] mesh_proto::Error),
    /// The server sent something else than the registration expects next.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        /// What the registration expected (e.g. `a Challenge`).
        expected: &'static str,
        /// What came instead.
        got: String,
    },
    /// The server closed the connection during the registration.
    #[error("the server closed the connection")]
    Closed,
    /// The server's `Challenge` requires an id puzzle this node's id does not meet
    /// (docs/protocol.md §4.7): the node did not register, the server would refuse it.
    #[error(
        "the server requires ids of difficulty {required} (--id-difficulty) and this node's id \
         has {has}: run the node with a key whose id meets it (mesh-node --id-difficulty \
         {required}, with a new key file if it uses one)"
    )]
    IdBelowDifficulty {
        /// The server's `limits.id_difficulty`.
        required: u32,
        /// The difficulty of this node's id.
        has: u32,
    },
}

/// Displays an error and its sources, joined by `": "`: for log lines, where `{e}` alone
/// would show only the outermost message.
pub(crate) struct Chain<'a>(pub(crate) &'a dyn std::error::Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// The errors of several attempts, each with its sources, joined by `"; "`.
fn list(errors: &[Error]) -> String {
    let all: Vec<String> = errors.iter().map(|e| Chain(e).to_string()).collect();
    all.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_shows_every_source() {
        let e = Error::KeyFile {
            path: "k".into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a key"),
        };
        assert_eq!(e.to_string(), "key file k");
        assert_eq!(Chain(&e).to_string(), "key file k: not a key");
    }
}
