//! Overlay configuration: degree bounds, timers and the size of every table.

use std::time::Duration;

use mesh_proto::{NodeId, RoomName, ServerUrl};

use crate::budget::Rate;

/// Most bootstrap servers a node is given ([`Config::bootstraps`]): a fleet's doors, more
/// than enough for a fleet (each costs a registration attempt per round at worst), and
/// few enough that a round through all of them stays short.
pub const MAX_BOOTSTRAPS: usize = 16;

/// Configuration of a mesh node's overlay logic. Defaults suit a mesh of tens to thousands
/// of nodes; set fields with the `with_*` builders.
#[derive(Clone, Debug)]
pub struct Config {
    /// Links the node tries to keep. Default 8.
    pub target_degree: usize,
    /// Below this many links the node is "under-connected" and tops up first. Default 3.
    pub min_degree: usize,
    /// The node refuses sessions (`Reject FULL`) at this many links plus pending inbound
    /// sessions. Default 12.
    pub max_degree: usize,
    /// Links kept to the nodes closest by XOR distance (at most `target_degree` of them;
    /// see `docs/architecture.md`, neighbour selection). Default 3.
    pub closest_links: usize,
    /// Links kept free for newcomers: an offer that arrives through the mesh is refused at
    /// `max_degree - entry_slots` links, one through the server (a newcomer's entry session)
    /// only at `max_degree`. Default 2.
    pub entry_slots: usize,
    /// Most outgoing sessions under way at once. Default 3.
    pub max_pending_sessions: usize,
    /// Entry sessions (signaled through the server) a node with no link at all may keep
    /// under way at once, each with another peer of the server's last sample, the closest
    /// first, and never more than `max_pending_sessions` sessions of any kind. They start
    /// one at a time, [`Config::entry_stagger`] apart ("happy eyeballs", RFC 8305): the
    /// first one alone, which in the common case links and is the node's only session
    /// through the server; the next only while the node still has no link. A sampled peer
    /// that cannot link (behind a firewall, no usable candidate) then costs the newcomer
    /// one `entry_stagger`, not a whole `session_timeout` before the next try. Once linked,
    /// the node starts no more of them (stranded, it signals one session at a time through
    /// the server); those still under way complete (extra links) or time out. At least 1;
    /// 1 tries one peer at a time. Default 3.
    pub entry_sessions: usize,
    /// How long a node with no link waits, after starting an entry session, before it
    /// starts the next one beside those under way (up to [`Config::entry_sessions`]). A
    /// session that fails (rejected, or timed out) lets the next one start at once. The
    /// node asks to be woken for it ([`crate::Node::poll_timeout`]), so it is kept to the
    /// instant, not to the tick. Zero starts them all at once. Default 1 s.
    pub entry_stagger: Duration,
    /// A session not linked within this time is abandoned. Default 15 s.
    pub session_timeout: Duration,
    /// A peer whose session failed is not tried again for this long. Default 10 s.
    pub retry_backoff: Duration,
    /// A peer that refused a session as full (`Reject FULL`) is not offered another for
    /// this long: it stays full until one of its links goes, and offering again at every
    /// `retry_backoff` costs a rejected session each time (docs/benchmarks.md §8.3).
    /// Default 60 s.
    pub full_backoff: Duration,
    /// Period of the maintenance tick (timeouts, degree top-up, announcements). Default 200 ms.
    pub tick_interval: Duration,
    /// Period at which neighbours are told our neighbour set: the keepalive of every link
    /// (docs/protocol.md §10.5: at least one frame every 5 s). Default 4.5 s, so that the
    /// tick's lateness (up to `tick_interval`) keeps within the 5 s.
    pub announce_interval: Duration,
    /// A link that brings nothing for this long is dropped: its neighbour announces at
    /// least every `announce_interval`, so it is gone even if the transport has not said
    /// so. Must exceed `announce_interval`. Default 20 s.
    pub link_timeout: Duration,
    /// Hops a routed unicast or a flood may take. Default 16.
    pub ttl: u8,
    /// Remembered (origin, id) pairs of floods, to deliver each once. Default 4096.
    pub dedup_capacity: usize,
    /// How long a flood id is remembered. Default 60 s.
    pub dedup_ttl: Duration,
    /// Learned routes kept. Default 1024.
    pub route_capacity: usize,
    /// How long a learned route lives. Default 60 s.
    pub route_ttl: Duration,
    /// Contacts (known peers, candidates for links) kept per distance bucket: the `k` of
    /// the k-buckets. Default 16.
    pub bucket_size: usize,
    /// How often a settled node looks up its own id (or an id in a bucket it knows nobody
    /// in) through the mesh, to hear of closer peers. While answers bring closer peers it
    /// looks again on the next tick; otherwise after a pause that starts at
    /// `announce_interval` and doubles up to this; and at once after it loses a link.
    /// Default 30 s.
    pub lookup_interval: Duration,
    /// Paths each lookup takes: it goes to this many neighbours (the one closest to its
    /// target first), and each path's end answers; one path's answer is one node's
    /// knowledge. At least 1. Default 2.
    pub lookup_paths: usize,
    /// Remembered (origin, session) pairs of offers, to refuse replays. Default 4096.
    pub replay_capacity: usize,
    /// How long an offer's session id is remembered. Default 10 min.
    pub replay_ttl: Duration,
    /// Most sessions tracked at once: linked ones and those under way, in and out. An
    /// offer beyond it is refused `FULL`. Default 32.
    pub max_sessions: usize,
    /// The bootstrap servers' URLs: several servers of one fleet (sharing rooms), or one.
    /// Where the node joins and registers again when it needs a server and no door it
    /// knows takes it. The node starts at [`Config::first_bootstrap`] (its id modulo the
    /// list's length, so that newcomers spread over the fleet; its driver registers it
    /// there before the node starts), and after a failed or lost registration at one goes
    /// to the next in the list, in turn (docs/architecture.md, "Rendezvous"). No URL twice
    /// ([`Config::with_bootstraps`] drops repeats), at most [`MAX_BOOTSTRAPS`]
    /// ([`Config::validate`]). Default none: the node then rejoins through doors only.
    pub bootstraps: Vec<ServerUrl>,
    /// Time allowed to connect and register at the bootstrap server or the own door.
    /// Default 10 s.
    pub register_timeout: Duration,
    /// Time allowed to connect and register at a neighbour's door, when the node needs a
    /// server and tries the doors it heard of before the bootstrap server. Default 3 s.
    pub door_timeout: Duration,
    /// The pause before the next round of registrations after the bootstrap server failed
    /// or was lost (doubles up to `reconnect_max`). Default 500 ms.
    pub reconnect_min: Duration,
    /// The longest pause between rounds of registrations. Default 30 s.
    pub reconnect_max: Duration,
    /// The longest a node stays registered at a neighbour's door while it still needs a
    /// server: then the bootstrap server is next. Default 30 s (two entry sessions' worth
    /// with the default `session_timeout`).
    pub door_stay: Duration,
    /// How long a peer whose signaling came through the own door counts as a door client
    /// (the node's frames to it go back through the door) after its last frame that way.
    /// Default 30 s (an entry session's worth twice over).
    pub door_client_ttl: Duration,
    /// This node's door, if it runs one: a bootstrap server where it is itself registered,
    /// announced to every new neighbour ([`mesh_proto::Frame::Doors`]) so that a node that
    /// loses every link can rejoin through it. Default none.
    pub door: Option<ServerUrl>,
    /// Doors remembered ([`crate::Node::doors`]): up to this many that neighbours (current
    /// and former) announced as their own, and as many that they passed on. Default 16.
    pub door_contacts: usize,
    /// The room this node is in: every signature it makes or checks, and every key it
    /// seals with, is for this room, so nothing crosses from another (docs/protocol.md
    /// §4.3). A driver sets it from its own room. Default `default`.
    pub room: RoomName,
    /// The epoch of this run's sealed payloads: must grow from one run of a node (one key)
    /// to the next, or its peers refuse what it seals as replayed until they forget it
    /// (`key_ttl`). `None` (the default): drawn from the seed, fine for simulations; the
    /// `mesh-node` driver passes the wall-clock time in microseconds.
    pub seal_epoch: Option<u64>,
    /// Verified public keys of other nodes kept (to seal for them, to check records
    /// once). Pair keys and replay windows are kept for a quarter as many peers.
    /// Default 4096.
    pub key_capacity: usize,
    /// How long a key, a pair key and a replay window live after their last use.
    /// Default 10 min.
    pub key_ttl: Duration,
    /// Per link: `Route`/`Transfer` frames the neighbour may make this node take or relay.
    /// Default 2,000/s, burst 4,000.
    pub route_budget: Rate,
    /// Per link: `Flood`s the neighbour may make this node verify and forward.
    /// Default 200/s, burst 1,000.
    pub flood_budget: Rate,
    /// Per link: `Lookup`, `FindNodes` and `GetNeighbours` the neighbour may make this node
    /// answer or forward. Default 50/s, burst 200.
    pub lookup_budget: Rate,
    /// Per link: frames over budget tolerated (each dropped and counted) before the link
    /// is dropped. Default 100/s, burst 1,000.
    pub strike_budget: Rate,
    /// Per origin: floods this node forwards and delivers. Default 10/s, burst 50.
    pub origin_flood_budget: Rate,
    /// For the whole node: floods of strangers (origins it has neither a link to nor a
    /// record of) this node verifies, forwards and delivers, for broadcasts and apart for
    /// the rest (nodes' fallbacks: key requests, unicasts by flood). Made-up origins cost
    /// nothing to make, so the per-origin budget does not bound them; this does: what one
    /// node flooding at line rate can cost any other. Each link may spend an even share of
    /// it (with 8 links, 1/8), so one neighbour cannot spend it all. Default 10/s, burst
    /// 200, for each kind.
    pub stranger_budget: Rate,
    /// Outgoing signaling sessions started (a peer it heard of costs a session: made-up
    /// or departed contacts must not cost many). Default 1/s, burst 16.
    pub session_budget: Rate,
    /// A reliable unicast ([`crate::Node::send_reliable`]) not acknowledged within this
    /// goes again through another first neighbour (at most [`Config::reliable_resends`]
    /// times); a key lookup not answered within this goes again through first neighbours
    /// not tried yet. Default 1 s.
    pub ack_timeout: Duration,
    /// Times a reliable unicast goes again, unacknowledged, before it is given up
    /// ([`crate::Event::Unreachable`]): each time through a first neighbour it has not
    /// been through while there is one. Default 5: with 10 % of the relays dropping what
    /// they should pass on, two were too few (docs/benchmarks.md §14.9).
    pub reliable_resends: usize,
    /// Paths a key lookup (for a destination whose key this node lacks) takes at once:
    /// one lookup, with its own id, to each of this many first neighbours, so that a relay
    /// that drops the answer of one path does not hold the message. At least 1. Default 3.
    pub key_lookup_paths: usize,
    /// Whether what routing could not deliver goes as a flood, which gets round relays
    /// that drop what they should route (every honest node forwards a flood): the last try
    /// of a reliable unicast ([`mesh_proto::signal::Payload::Flooded`], still sealed:
    /// only its destination reads it), and, with messages waiting for a destination's key
    /// after two rounds of key lookups, a request to the destination itself
    /// ([`mesh_proto::signal::Payload::FindKey`]) every other round. The price: every node of the mesh
    /// forwards those floods and learns who asked for whom; each counts against the
    /// origin's [`Config::origin_flood_budget`] at every node. Default `true`: with 20 %
    /// of the relays dropping unicasts, it took honest reliable delivery from 87.5 % to
    /// 100 % (100 nodes; docs/benchmarks.md §14.14).
    pub flood_fallback: bool,
    /// The id puzzle (docs/protocol.md §4.7): ids must have this many leading zero bits of
    /// SHA-256 of their 16 bytes ([`mesh_proto::puzzle`]), this node's own included
    /// ([`crate::Node::new`] refuses a key below it). Records, floods, lookups, signals
    /// and sealed payloads of ids below it are ignored and counted
    /// ([`crate::Stats::ids_below_difficulty`]). At most
    /// [`mesh_proto::puzzle::MAX_DIFFICULTY`]; every node of a mesh should use the same.
    /// Default 0: off.
    pub id_difficulty: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            target_degree: 8,
            min_degree: 3,
            max_degree: 12,
            closest_links: 3,
            entry_slots: 2,
            max_pending_sessions: 3,
            entry_sessions: 3,
            entry_stagger: Duration::from_secs(1),
            session_timeout: Duration::from_secs(15),
            retry_backoff: Duration::from_secs(10),
            full_backoff: Duration::from_secs(60),
            tick_interval: Duration::from_millis(200),
            announce_interval: Duration::from_millis(4500),
            link_timeout: Duration::from_secs(20),
            ttl: 16,
            dedup_capacity: 4096,
            dedup_ttl: Duration::from_secs(60),
            route_capacity: 1024,
            route_ttl: Duration::from_secs(60),
            bucket_size: 16,
            lookup_interval: Duration::from_secs(30),
            lookup_paths: 2,
            replay_capacity: 4096,
            replay_ttl: Duration::from_secs(600),
            max_sessions: 32,
            bootstraps: Vec::new(),
            register_timeout: Duration::from_secs(10),
            door_timeout: Duration::from_secs(3),
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            door_stay: Duration::from_secs(30),
            door_client_ttl: Duration::from_secs(30),
            door: None,
            door_contacts: 16,
            room: RoomName::default(),
            seal_epoch: None,
            key_capacity: 4096,
            key_ttl: Duration::from_secs(600),
            route_budget: Rate::new(2000.0, 4000.0),
            flood_budget: Rate::new(200.0, 1000.0),
            lookup_budget: Rate::new(50.0, 200.0),
            strike_budget: Rate::new(100.0, 1000.0),
            origin_flood_budget: Rate::new(10.0, 50.0),
            stranger_budget: Rate::new(10.0, 200.0),
            session_budget: Rate::new(1.0, 16.0),
            ack_timeout: Duration::from_secs(1),
            reliable_resends: 5,
            key_lookup_paths: 3,
            flood_fallback: true,
            id_difficulty: 0,
        }
    }
}

macro_rules! builders {
    ($($fn:ident => $field:ident: $ty:ty;)*) => {
        impl Config {
            $(
                #[doc = concat!("Sets [`Config::", stringify!($field), "`].")]
                pub fn $fn(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

builders! {
    with_target_degree => target_degree: usize;
    with_min_degree => min_degree: usize;
    with_max_degree => max_degree: usize;
    with_closest_links => closest_links: usize;
    with_entry_slots => entry_slots: usize;
    with_max_pending_sessions => max_pending_sessions: usize;
    with_entry_sessions => entry_sessions: usize;
    with_entry_stagger => entry_stagger: Duration;
    with_session_timeout => session_timeout: Duration;
    with_retry_backoff => retry_backoff: Duration;
    with_full_backoff => full_backoff: Duration;
    with_tick_interval => tick_interval: Duration;
    with_announce_interval => announce_interval: Duration;
    with_link_timeout => link_timeout: Duration;
    with_ttl => ttl: u8;
    with_dedup_capacity => dedup_capacity: usize;
    with_dedup_ttl => dedup_ttl: Duration;
    with_route_capacity => route_capacity: usize;
    with_route_ttl => route_ttl: Duration;
    with_bucket_size => bucket_size: usize;
    with_lookup_interval => lookup_interval: Duration;
    with_lookup_paths => lookup_paths: usize;
    with_replay_capacity => replay_capacity: usize;
    with_replay_ttl => replay_ttl: Duration;
    with_max_sessions => max_sessions: usize;
    with_register_timeout => register_timeout: Duration;
    with_door_timeout => door_timeout: Duration;
    with_door_stay => door_stay: Duration;
    with_door_client_ttl => door_client_ttl: Duration;
    with_door => door: Option<ServerUrl>;
    with_door_contacts => door_contacts: usize;
    with_room => room: RoomName;
    with_seal_epoch => seal_epoch: Option<u64>;
    with_key_capacity => key_capacity: usize;
    with_key_ttl => key_ttl: Duration;
    with_route_budget => route_budget: Rate;
    with_flood_budget => flood_budget: Rate;
    with_lookup_budget => lookup_budget: Rate;
    with_strike_budget => strike_budget: Rate;
    with_origin_flood_budget => origin_flood_budget: Rate;
    with_stranger_budget => stranger_budget: Rate;
    with_session_budget => session_budget: Rate;
    with_ack_timeout => ack_timeout: Duration;
    with_reliable_resends => reliable_resends: usize;
    with_key_lookup_paths => key_lookup_paths: usize;
    with_flood_fallback => flood_fallback: bool;
    with_id_difficulty => id_difficulty: u32;
}

impl Config {
    /// Sets [`Config::bootstraps`] to one bootstrap server, or to none.
    pub fn with_bootstrap(mut self, bootstrap: Option<ServerUrl>) -> Self {
        self.bootstraps = bootstrap.into_iter().collect();
        self
    }

    /// Sets [`Config::bootstraps`]: the URLs of a fleet's servers, in the order the node
    /// goes through them; a URL given twice counts once (the first time). More than
    /// [`MAX_BOOTSTRAPS`] fail [`Config::validate`].
    pub fn with_bootstraps(mut self, bootstraps: impl IntoIterator<Item = ServerUrl>) -> Self {
        self.bootstraps.clear();
        for url in bootstraps {
            if !self.bootstraps.contains(&url) {
                self.bootstraps.push(url);
            }
        }
        self
    }

    /// The bootstrap server a node with id `id` joins through first: the one at its id (a
    /// big-endian 128-bit number) modulo the number of [`Config::bootstraps`]. Ids are
    /// uniform, so newcomers spread evenly over a fleet; deterministic, so a driver that
    /// registers before its node starts knows where the core expects it
    /// ([`crate::Node::joining_at`]). `None` without bootstrap servers.
    pub fn first_bootstrap(&self, id: &NodeId) -> Option<&ServerUrl> {
        self.bootstraps
            .get(crate::rendezvous::first_index(id, self.bootstraps.len())?)
    }

    /// Sets [`Config::reconnect_min`] and [`Config::reconnect_max`].
    pub fn with_reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// The longest a reliable unicast takes to be acknowledged or given up: the wait for
    /// its destination's key (at most [`Config::session_timeout`], at most 5 s), then every
    /// try ([`Config::reliable_resends`] + 1) for [`Config::ack_timeout`] each.
    pub fn longest_reliable_delivery(&self) -> Duration {
        let tries = u32::try_from(self.reliable_resends.saturating_add(1)).unwrap_or(u32::MAX);
        self.session_timeout
            .min(crate::node::KEY_WAIT)
            .saturating_add(self.ack_timeout.saturating_mul(tries))
    }

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |what: &str| Err(crate::Error::InvalidConfig(what.to_owned()));
        if self.min_degree == 0 || self.min_degree > self.target_degree {
            return bad("min_degree must be within 1..=target_degree");
        }
        if self.target_degree + self.entry_slots > self.max_degree {
            return bad("target_degree + entry_slots must be at most max_degree");
        }
        if self.max_pending_sessions == 0 || self.max_sessions < self.max_pending_sessions {
            return bad("max_pending_sessions must be at least 1 and at most max_sessions");
        }
        if self.entry_sessions == 0 {
            return bad("entry_sessions must be at least 1 (1: one entry session at a time)");
        }
        if self.tick_interval.is_zero() || self.session_timeout <= self.tick_interval {
            return bad("tick_interval must be non-zero and shorter than session_timeout");
        }
        if self.link_timeout <= self.announce_interval {
            return bad("link_timeout must be longer than announce_interval");
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return bad("reconnect_min must be non-zero and at most reconnect_max");
        }
        if self.bootstraps.len() > MAX_BOOTSTRAPS {
            return bad(&format!(
                "at most {MAX_BOOTSTRAPS} bootstrap servers (got {}): give a few of the fleet's",
                self.bootstraps.len()
            ));
        }
        if let Some((i, url)) = self
            .bootstraps
            .iter()
            .enumerate()
            .find(|(i, url)| self.bootstraps[..*i].contains(url))
        {
            return bad(&format!(
                "bootstrap server {url} is listed twice (at {i}): list each once"
            ));
        }
        if self.lookup_paths == 0 {
            return bad("lookup_paths must be at least 1");
        }
        if self.key_lookup_paths == 0 {
            return bad("key_lookup_paths must be at least 1");
        }
        if self.ttl == 0 {
            return bad("ttl must be at least 1");
        }
        if self.key_capacity < 16 {
            return bad("key_capacity must be at least 16");
        }
        let budgets = [
            self.route_budget,
            self.flood_budget,
            self.lookup_budget,
            self.strike_budget,
            self.origin_flood_budget,
            self.stranger_budget,
            self.session_budget,
        ];
        if budgets
            .iter()
            .any(|r| !(r.per_second > 0.0 && r.per_second.is_finite() && r.burst >= 1.0))
        {
            return bad("every budget needs a positive finite rate and a burst of at least 1");
        }
        if self.id_difficulty > mesh_proto::puzzle::MAX_DIFFICULTY {
            return bad(&format!(
                "id_difficulty must be at most {} bits (each bit doubles the keys a node makes)",
                mesh_proto::puzzle::MAX_DIFFICULTY
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ServerUrl {
        format!("ws://{s}/ws").parse().unwrap()
    }

    #[test]
    fn bootstraps_are_deduplicated_and_bounded() {
        let config = Config::default().with_bootstraps([url("a"), url("b"), url("a")]);
        assert_eq!(config.bootstraps, [url("a"), url("b")]);
        assert!(config.validate().is_ok());
        let one = Config::default().with_bootstrap(Some(url("a")));
        assert_eq!(one.bootstraps, [url("a")]);
        assert!(Config::default().with_bootstrap(None).bootstraps.is_empty());
        let many = (0..=MAX_BOOTSTRAPS).map(|i| url(&format!("s{i}")));
        let err = Config::default()
            .with_bootstraps(many)
            .validate()
            .expect_err("17 refused");
        assert!(err.to_string().contains("at most 16"), "{err}");
        let twice = Config {
            bootstraps: vec![url("a"), url("b"), url("a")],
            ..Config::default()
        };
        let err = twice.validate().expect_err("a repeat refused");
        assert!(err.to_string().contains("ws://a/ws"), "{err}");
    }

    #[test]
    fn the_first_bootstrap_is_the_id_modulo_the_list() {
        let config = Config::default().with_bootstraps([url("a"), url("b"), url("c")]);
        let id = |last: u8| {
            let mut bytes = [0xff; 16];
            bytes[15] = last;
            NodeId::from_bytes(bytes)
        };
        // 2^128 - 256 + last, and 2^128 ≡ 256 ≡ 1 (mod 3): the id is `last` (mod 3).
        assert_eq!(config.first_bootstrap(&id(0)), Some(&url("a")));
        assert_eq!(config.first_bootstrap(&id(1)), Some(&url("b")));
        assert_eq!(config.first_bootstrap(&id(2)), Some(&url("c")));
        assert_eq!(config.first_bootstrap(&id(3)), Some(&url("a")));
        assert_eq!(Config::default().first_bootstrap(&id(1)), None);
    }

    #[test]
    fn the_longest_reliable_delivery_is_the_key_wait_and_every_try() {
        let config = Config::default();
        assert_eq!(
            config.longest_reliable_delivery(),
            Duration::from_secs(5 + 6)
        );
        let short = Config::default()
            .with_session_timeout(Duration::from_secs(2))
            .with_reliable_resends(0)
            .with_ack_timeout(Duration::from_millis(500));
        assert_eq!(
            short.longest_reliable_delivery(),
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn a_node_needs_at_least_one_entry_session() {
        let err = Config::default()
            .with_entry_sessions(0)
            .validate()
            .expect_err("entry_sessions 0 refused");
        assert!(err.to_string().contains("entry_sessions"), "{err}");
        assert_eq!(Config::default().entry_sessions, 3);
        assert!(Config::default().with_entry_sessions(1).validate().is_ok());
    }

    #[test]
    fn entry_sessions_are_staggered_by_a_second_and_zero_is_valid() {
        assert_eq!(Config::default().entry_stagger, Duration::from_secs(1));
        let all_at_once = Config::default().with_entry_stagger(Duration::ZERO);
        assert!(all_at_once.validate().is_ok());
    }
}
