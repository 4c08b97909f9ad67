//! The bootstrap server client: connect, prove the key, register, then bridge frames
//! between the WebSocket and two bounded channels for the driver.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mesh_proto::identity::{Keypair, register_message};
use mesh_proto::{Frame, NodeId, RoomName, puzzle};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use crate::{BootstrapError, Error};

/// Frames queued towards the server.
const TO_SERVER: usize = 256;
/// Frames queued from the server towards the driver.
const FROM_SERVER: usize = 256;

/// A registered connection to the bootstrap server.
#[derive(Debug)]
pub(crate) struct ServerLink {
    /// The Welcome sample.
    pub peers: Vec<NodeId>,
    /// The UDP port of the server's STUN responder, from the Welcome.
    pub stun_port: Option<u16>,
    /// Frames to send to the server.
    pub tx: mpsc::Sender<Frame>,
    /// Frames from the server; `None` once the connection is gone.
    pub rx: mpsc::Receiver<Frame>,
}

/// Connects to `url`, registers `key`'s id in `room`, and starts bridging.
pub(crate) async fn connect(
    url: &str,
    room: &RoomName,
    key: &Keypair,
    deadline: Duration,
) -> Result<ServerLink, Error> {
    let bootstrap = |source: BootstrapError| Error::Bootstrap {
        url: url.to_owned(),
        source,
    };
    let (mut ws, _) = tokio::time::timeout(deadline, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| bootstrap(BootstrapError::Timeout(deadline)))?
        .map_err(|e| bootstrap(e.into()))?;
    let nonce = match next_frame(&mut ws, deadline, url).await? {
        Frame::Challenge { nonce, limits } => {
            let required = limits.id_difficulty;
            if !puzzle::meets(&key.node_id(), required) {
                return Err(bootstrap(BootstrapError::IdBelowDifficulty {
                    required,
                    has: puzzle::difficulty(&key.node_id()),
                }));
            }
            nonce
        }
        Frame::Error { code, message, .. } => return Err(Error::Refused { code, message }),
        other => {
            return Err(bootstrap(BootstrapError::Unexpected {
                expected: "a Challenge",
                got: other.kind().to_owned(),
            }));
        }
    };
    let node_id = key.node_id();
    let signature = key.sign(&register_message(&nonce, &node_id, room));
    let register = Frame::Register {
        public_key: key.public(),
        node_id,
        room: room.clone(),
        signature,
    };
    let bytes = mesh_proto::encode(&register).map_err(|e| bootstrap(e.into()))?;
    ws.send(Message::Binary(bytes.into()))
        .await
        .map_err(|e| bootstrap(e.into()))?;
    let (peers, stun_port) = match next_frame(&mut ws, deadline, url).await? {
        Frame::Welcome {
            peers, stun_port, ..
        } => (peers, stun_port),
        Frame::Error { code, message, .. } => return Err(Error::Refused { code, message }),
        other => {
            return Err(bootstrap(BootstrapError::Unexpected {
                expected: "a Welcome",
                got: other.kind().to_owned(),
            }));
        }
    };
    info!(%url, %room, peers = peers.len(), ?stun_port, "registered with the bootstrap server");

    let (tx, mut to_server) = mpsc::channel::<Frame>(TO_SERVER);
    let (from_server, rx) = mpsc::channel::<Frame>(FROM_SERVER);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = to_server.recv() => {
                    let Some(frame) = frame else { break };
                    let Ok(bytes) = mesh_proto::encode(&frame) else { continue };
                    if ws.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(bytes))) => match mesh_proto::decode(&bytes) {
                        Ok(frame) => {
                            if from_server.send(frame).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            warn!("undecodable frame from the bootstrap server, disconnecting: {e}");
                            break;
                        }
                    },
                    Some(Ok(Message::Close(close))) => {
                        debug!(?close, "the bootstrap server closed the connection");
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        debug!("bootstrap connection failed: {e}");
                        break;
                    }
                    None => break,
                },
            }
        }
        let _ = ws.close(None).await;
    });
    Ok(ServerLink {
        peers,
        stun_port,
        tx,
        rx,
    })
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame during the handshake, skipping pings.
async fn next_frame(ws: &mut Ws, deadline: Duration, url: &str) -> Result<Frame, Error> {
    let bootstrap = |source: BootstrapError| Error::Bootstrap {
        url: url.to_owned(),
        source,
    };
    loop {
        let msg = tokio::time::timeout(deadline, ws.next())
            .await
            .map_err(|_| bootstrap(BootstrapError::Timeout(deadline)))?;
        match msg {
            Some(Ok(Message::Binary(bytes))) => {
                return mesh_proto::decode(&bytes).map_err(|e| bootstrap(e.into()));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => {
                return Err(bootstrap(BootstrapError::Unexpected {
                    expected: "a binary frame",
                    got: format!("{other:?}"),
                }));
            }
            Some(Err(e)) => return Err(bootstrap(e.into())),
            None => return Err(bootstrap(BootstrapError::Closed)),
        }
    }
}

/// The STUN URL of a server that announced `stun_port` and is reached at `bootstrap` (its
/// WebSocket URL): the same host name, that UDP port. `None` if the URL has no host.
pub(crate) fn stun_url(bootstrap: &str, stun_port: u16) -> Option<String> {
    let uri: tokio_tungstenite::tungstenite::http::Uri = bootstrap.parse().ok()?;
    let host = uri.host().filter(|host| !host.is_empty())?;
    if host.contains(':') && !host.starts_with('[') {
        Some(format!("stun:[{host}]:{stun_port}"))
    } else {
        Some(format!("stun:{host}:{stun_port}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stun_url_takes_the_host_name_of_the_bootstrap_url() {
        let cases = [
            ("ws://127.0.0.1:8080/ws", Some("stun:127.0.0.1:3478")),
            ("wss://door.example/ws", Some("stun:door.example:3478")),
            (
                "wss://door.example:443/mesh/ws",
                Some("stun:door.example:3478"),
            ),
            ("ws://[::1]:8080/ws", Some("stun:[::1]:3478")),
            (
                "ws://user@door.example:8080/ws",
                Some("stun:door.example:3478"),
            ),
            ("/ws", None),
            ("not a url", None),
        ];
        for (bootstrap, expected) in cases {
            assert_eq!(
                stun_url(bootstrap, 3478).as_deref(),
                expected,
                "{bootstrap}"
            );
            if let Some(url) = expected {
                crate::transport::webrtc::IceServer::stun(url)
                    .validate()
                    .unwrap();
            }
        }
    }
}
