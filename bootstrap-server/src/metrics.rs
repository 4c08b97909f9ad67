//! The server's own counters, exposed at `/metrics` in the Prometheus text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of per-kind frame counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Kind {
    pub kind: &'static str,
}

/// Label of per-code error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Code {
    pub code: &'static str,
}

/// Label of the STUN responder's refusal counter and of the accept failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    pub reason: &'static str,
}

/// Every metric the server keeps.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub peers: Gauge,
    pub rooms: Gauge,
    pub registrations: Counter,
    pub frames_in: Family<Kind, Counter>,
    pub frames_out: Family<Kind, Counter>,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub errors: Family<Code, Counter>,
    pub dropped: Counter,
    pub notices_dropped: Counter,
    pub unicast_latency: Histogram,
    pub stun_answers: Counter,
    pub stun_refused: Family<Reason, Counter>,
    pub accept_errors: Family<Reason, Counter>,
    pub accept_refused: Counter,
    pub web_requests: Counter,
    /// Whether a fleet server reaches Redis (1) or serves only its own registrations (0).
    pub fleet_redis_up: Gauge,
    pub fleet_outages: Counter,
    pub fleet_redis_errors: Counter,
    pub fleet_published: Family<Kind, Counter>,
    pub fleet_received: Family<Kind, Counter>,
    pub fleet_bad_data: Counter,
    pub fleet_reannounced: Counter,
    pub fleet_queue_full: Counter,
}

impl Metrics {
    /// The server's metrics; the `bootstrap_fleet_*` ones only for a server of a fleet.
    pub fn new(fleet: bool) -> Self {
        let mut registry = Registry::with_prefix("bootstrap");
        let connections = Gauge::default();
        let peers = Gauge::default();
        let rooms = Gauge::default();
        let registrations = Counter::default();
        let frames_in = Family::<Kind, Counter>::default();
        let frames_out = Family::<Kind, Counter>::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        let errors = Family::<Code, Counter>::default();
        let dropped = Counter::default();
        let notices_dropped = Counter::default();
        // 10 µs .. ~5 s.
        let unicast_latency = Histogram::new(exponential_buckets(1e-5, 3.0, 13));
        let stun_answers = Counter::default();
        let stun_refused = Family::<Reason, Counter>::default();
        let accept_errors = Family::<Reason, Counter>::default();
        let accept_refused = Counter::default();
        let web_requests = Counter::default();
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        registry.register("peers", "Registered peers, all rooms", peers.clone());
        registry.register("rooms", "Rooms with at least one peer", rooms.clone());
        registry.register(
            "registrations",
            "Successful registrations",
            registrations.clone(),
        );
        registry.register("frames_in", "Frames received, by kind", frames_in.clone());
        registry.register("frames_out", "Frames sent, by kind", frames_out.clone());
        registry.register("bytes_in", "Bytes of frames received", bytes_in.clone());
        registry.register("bytes_out", "Bytes of frames sent", bytes_out.clone());
        registry.register("errors", "Error frames sent, by code", errors.clone());
        registry.register(
            "frames_dropped",
            "Frames dropped because the recipient's queue was full",
            dropped.clone(),
        );
        registry.register(
            "notices_dropped",
            "Non-fatal error notices (TARGET_BUSY, UNKNOWN_PEER) dropped because the sender's own queue was full",
            notices_dropped.clone(),
        );
        registry.register(
            "unicast_latency_seconds",
            "From a unicast's arrival to its transfer being written to the recipient",
            unicast_latency.clone(),
        );
        registry.register(
            "stun_answers",
            "STUN Binding success responses sent",
            stun_answers.clone(),
        );
        registry.register(
            "stun_refused",
            "STUN datagrams not answered, by reason (oversized, not_stun, not_binding_request, malformed, rate_limited_source, rate_limited_total, send_failed, internal)",
            stun_refused.clone(),
        );
        registry.register(
            "accept_errors",
            "Failed accepts of TCP connections, by reason (fd_limit: the open-files limit, aborted: the client left first, other)",
            accept_errors.clone(),
        );
        registry.register(
            "accept_refused",
            "TCP connections closed as soon as accepted because the process was at its open-files limit",
            accept_refused.clone(),
        );
        registry.register(
            "web_requests",
            "Requests for the browser page and its assets (/, /app.js, /pkg/...), whatever the answer",
            web_requests.clone(),
        );
        let fleet_redis_up = Gauge::default();
        let fleet_outages = Counter::default();
        let fleet_redis_errors = Counter::default();
        let fleet_published = Family::<Kind, Counter>::default();
        let fleet_received = Family::<Kind, Counter>::default();
        let fleet_bad_data = Counter::default();
        let fleet_reannounced = Counter::default();
        let fleet_queue_full = Counter::default();
        if fleet {
            let fleet = registry.sub_registry_with_prefix("fleet");
            fleet.register(
                "redis_up",
                "1 while this server reaches Redis (commands and its subscription), 0 while it serves its own registrations only",
                fleet_redis_up.clone(),
            );
            fleet.register(
                "outages",
                "Times this server lost Redis (commands failing, timing out, or its subscription closed)",
                fleet_outages.clone(),
            );
            fleet.register(
                "redis_errors",
                "Redis commands or batches of commands that failed or timed out",
                fleet_redis_errors.clone(),
            );
            fleet.register(
                "published",
                "Messages published to other servers through Redis, by kind (unicast, broadcast, kick, failed)",
                fleet_published.clone(),
            );
            fleet.register(
                "received",
                "Messages received from other servers through Redis, by kind (unicast, broadcast, kick, failed)",
                fleet_received.clone(),
            );
            fleet.register(
                "bad_data",
                "Values and messages read from Redis that did not decode (logged and skipped)",
                fleet_bad_data.clone(),
            );
            fleet.register(
                "reannounced",
                "Registrations written again to Redis: lease renewals and re-announcements after an outage",
                fleet_reannounced.clone(),
            );
            fleet.register(
                "queue_full",
                "Unicasts (answered TARGET_BUSY) and broadcasts not sent to other servers because the queue towards Redis was full",
                fleet_queue_full.clone(),
            );
        }
        Self {
            fleet_redis_up,
            fleet_outages,
            fleet_redis_errors,
            fleet_published,
            fleet_received,
            fleet_bad_data,
            fleet_reannounced,
            fleet_queue_full,
            registry,
            connections,
            peers,
            rooms,
            registrations,
            frames_in,
            frames_out,
            bytes_in,
            bytes_out,
            errors,
            dropped,
            notices_dropped,
            unicast_latency,
            stun_answers,
            stun_refused,
            accept_errors,
            accept_refused,
            web_requests,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
