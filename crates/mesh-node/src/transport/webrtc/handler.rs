//! The PeerConnection event handler of one session: forwards what the driver reports to
//! the session task, and (fast open) pokes the driver when DTLS completes.
//!
//! It holds no strong reference to its PeerConnection or DataChannel (the connection owns
//! its handler, so that would be a cycle that leaks the connection): events go out on a
//! bounded channel, and the DataChannel is reached through a `Weak`.

use std::sync::{OnceLock, Weak};

use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceConnectionState, RTCIceGatheringState,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState,
};

/// What a PeerConnection reports to its session task.
#[derive(Debug)]
pub(super) enum PcEvent {
    /// A local candidate, as its `candidate:` attribute value.
    Candidate(String),
    /// Local gathering is complete.
    GatheringComplete,
    /// The ICE connection state changed.
    Ice(RTCIceConnectionState),
    /// The peer connection state (ICE + DTLS) changed.
    Connection(RTCPeerConnectionState),
}

/// Forwards driver callbacks to the session task.
pub(super) struct Handler {
    events: mpsc::Sender<PcEvent>,
    fast_open: bool,
    data_channel: OnceLock<Weak<dyn DataChannel>>,
}

impl Handler {
    pub(super) fn new(events: mpsc::Sender<PcEvent>, fast_open: bool) -> Self {
        Self {
            events,
            fast_open,
            data_channel: OnceLock::new(),
        }
    }

    /// Gives the handler a weak handle on the session's DataChannel, for fast open.
    pub(super) fn set_data_channel(&self, data_channel: Weak<dyn DataChannel>) {
        let _ = self.data_channel.set(data_channel);
    }

    async fn forward(&self, event: PcEvent) {
        // Waits while the session task is behind (it is only behind when the transport's
        // event consumer is): back-pressure onto the driver rather than an unbounded queue.
        // An error means the session task is gone, and then nobody needs the event.
        let _ = self.events.send(event).await;
    }

    /// Makes the driver run one more loop iteration now.
    ///
    /// webrtc-rs 0.21.1's driver flushes the core's outgoing packets *before* it handles the
    /// core's events, and the SCTP INIT is queued while the DTLS-complete event is handled,
    /// so without a wake it waits for the next timer (up to 200 ms). Any DataChannel call
    /// that changes state sends the driver a coalesced `WriteNotify`; this one is idempotent
    /// (0 is the default low threshold, and nothing here uses it). This runs inside the
    /// driver's callback, so the wake is queued before the driver goes back to sleep.
    async fn wake_driver(&self) {
        if let Some(data_channel) = self.data_channel.get().and_then(Weak::upgrade)
            && let Err(err) = data_channel.set_buffered_amount_low_threshold(0).await
        {
            tracing::debug!("fast-open wake failed: {err}");
        }
    }
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("fast_open", &self.fast_open)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => self.forward(PcEvent::Candidate(init.candidate)).await,
            Err(err) => tracing::warn!("local candidate not encodable, skipped: {err}"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.forward(PcEvent::GatheringComplete).await;
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        self.forward(PcEvent::Ice(state)).await;
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if self.fast_open && state == RTCPeerConnectionState::Connected {
            self.wake_driver().await;
        }
        self.forward(PcEvent::Connection(state)).await;
    }
}
