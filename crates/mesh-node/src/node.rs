//! The [`Node`] handle applications hold, and its stream of [`Event`]s.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use mesh_proto::NodeId;
use mesh_proto::identity::Keypair;
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Command, Driver};
use crate::transport::{Transport, TransportEvent};
use crate::{Config, Error, Event, LinkInfo, NodeStats};

/// The events of a node ([`Node::events`]): a [`Stream`](futures_util::Stream) of
/// [`Event`]s that ends when the node stops.
///
/// The queue behind it is bounded ([`Config::event_queue`]): while the application does
/// not read, further events are dropped and counted in [`NodeStats::events_dropped`]; the
/// node itself never waits for its application.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the node has stopped and every event was read. The same
    /// as [`StreamExt::next`](futures_util::StreamExt::next), without the import.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is queued now, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl futures_util::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// A running node. Dropping it (or [`Node::leave`]) stops the node.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    commands: mpsc::Sender<Command>,
    events: Mutex<Option<mpsc::Receiver<Event>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Commands queued towards the driver.
const COMMAND_QUEUE: usize = 256;
/// How long [`Node::leave`] waits for the node to close its links and stop.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

impl Node {
    /// Joins the mesh over real WebRTC links: registers with a bootstrap server and
    /// starts the node. Fails if `webrtc`'s ICE servers are unusable
    /// ([`crate::transport::webrtc::Config::validate`]) or the first registration fails (a
    /// wrong URL, a refusal): with several bootstrap servers ([`Config::bootstraps`]), the
    /// one the node's id picks first, then each other in turn, at once, until one takes it
    /// ([`Error::NoBootstrap`] if none does).
    pub async fn join(
        config: Config,
        key: Keypair,
        webrtc: crate::transport::webrtc::Config,
    ) -> Result<Node, Error> {
        webrtc.validate()?;
        Self::join_with(config, key, move |events| {
            crate::transport::webrtc::WebRtcTransport::new(webrtc, events)
        })
        .await
    }

    /// Joins with any transport, built by `make` from the channel it reports to.
    pub async fn join_with<T, F>(config: Config, key: Keypair, make: F) -> Result<Node, Error>
    where
        T: Transport,
        F: FnOnce(mpsc::Sender<TransportEvent>) -> T,
    {
        let id = key.node_id();
        // Before the server sees it: a key below the node's own puzzle cannot run.
        let required = config.overlay.id_difficulty;
        if !mesh_proto::puzzle::meets(&id, required) {
            return Err(Error::Core(mesh_core::Error::IdBelowDifficulty {
                id,
                has: mesh_proto::puzzle::difficulty(&id),
                required,
            }));
        }
        let (transport_tx, transport_rx) = mpsc::channel(config.transport_queue);
        let transport = make(transport_tx);
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (event_tx, event_rx) = mpsc::channel(config.event_queue);
        let mut driver = Driver::new(config, key, transport, transport_rx, command_rx, event_tx)?;
        driver.join().await?;
        let span = tracing::info_span!("node", node = %id);
        let task = tokio::spawn(tracing::Instrument::instrument(driver.run(), span));
        Ok(Node {
            id,
            commands,
            events: Mutex::new(Some(event_rx)),
            task: Some(task),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's [`Events`], a [`Stream`](futures_util::Stream). There is one stream per
    /// node: the first call takes it, later calls return `None`.
    pub fn events(&self) -> Option<Events> {
        let rx = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        Some(Events { rx })
    }

    /// Sends `data` to `to` through the mesh.
    pub async fn send(&self, to: NodeId, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.ask(|reply| Command::Send {
            reliable: false,
            to,
            data: data.into(),
            reply,
        })
        .await?
    }

    /// Sends `data` to `to` and makes sure it arrives: `to` acknowledges it, and without an
    /// acknowledgement within the overlay's `ack_timeout` (1 s) it goes again through
    /// another first neighbour, at most `reliable_resends` (5) times (the last time as a
    /// flood for `to` alone, still sealed: `flood_fallback`), before
    /// [`mesh_core::Event::Unreachable`]
    /// ([`mesh_core::Node::send_reliable`]). For messages a relay must not silently lose.
    pub async fn send_reliable(&self, to: NodeId, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.ask(|reply| Command::Send {
            reliable: true,
            to,
            data: data.into(),
            reply,
        })
        .await?
    }

    /// Broadcasts `data` to every node of the mesh; returns how many neighbours it left on.
    pub async fn broadcast(&self, data: impl Into<Vec<u8>>) -> Result<usize, Error> {
        self.ask(|reply| Command::Broadcast {
            data: data.into(),
            reply,
        })
        .await?
    }

    /// Opens a direct link to `peer`, any node of the mesh, with the signaling carried
    /// through the mesh (not the bootstrap server). Returns once the session is started;
    /// [`Event::LinkUp`] follows when the link is up (or nothing, if it fails).
    ///
    /// Fails at once with [`Error::Core`] if `peer` is this node
    /// ([`mesh_core::Error::SelfAddressed`]) or if the mesh has no route towards it
    /// ([`mesh_core::Error::NoRoute`]).
    pub async fn connect_direct(&self, peer: NodeId) -> Result<(), Error> {
        self.ask(|reply| Command::Connect { peer, reply }).await?
    }

    /// Closes the link to `peer`, if any; the node replaces it with another.
    pub async fn disconnect(&self, peer: NodeId) -> Result<(), Error> {
        self.ask(|reply| Command::Disconnect { peer, reply }).await
    }

    /// The current neighbours.
    pub async fn neighbours(&self) -> Result<Vec<NodeId>, Error> {
        self.ask(|reply| Command::Neighbours { reply }).await
    }

    /// What the node did so far.
    pub async fn stats(&self) -> Result<NodeStats, Error> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// The live links (one per neighbour, in the order of [`Node::neighbours`]) and how each
    /// one's packets travel. The candidate pairs are read from the transport when asked.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, Error> {
        self.ask(|reply| Command::Links { reply }).await
    }

    /// Sends raw bytes on the link to neighbour `peer`, bypassing the codec: for tests of
    /// how peers handle malformed input. Not part of the stable API.
    #[doc(hidden)]
    pub async fn send_raw_to_neighbour(&self, peer: NodeId, bytes: Vec<u8>) -> Result<(), Error> {
        self.ask(|reply| Command::Raw { peer, bytes, reply })
            .await?
    }

    /// Leaves the mesh: closes every link and the bootstrap connection, and waits for the
    /// node to stop (at most 5 s; then its task is aborted).
    ///
    /// Fails with [`Error::Task`] if the node's task had panicked.
    pub async fn leave(mut self) -> Result<(), Error> {
        let _ = self.commands.send(Command::Leave).await;
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(LEAVE_TIMEOUT, &mut task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.is_panic() => Err(Error::Task(e)),
            Ok(Err(_)) => Ok(()),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }

    async fn ask<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> Command) -> Result<R, Error> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Best effort: ask the driver to close links; abort if it cannot take commands.
            if self.commands.try_send(Command::Leave).is_err() {
                task.abort();
            }
        }
    }
}
