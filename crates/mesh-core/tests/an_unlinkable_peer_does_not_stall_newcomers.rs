//! A newcomer whose closest sampled peers cannot link (behind a firewall, or without a
//! usable candidate: their sessions signal, then never come up, and nothing says so before
//! the session timeout) is not held up by them for a whole `session_timeout`, and one whose
//! closest sampled peer links uses the server for that one session only. With no link yet,
//! it starts one entry session with the closest eligible peer of the server's sample, and
//! the next ones `Config::entry_stagger` apart ("happy eyeballs", RFC 8305), at once after
//! one fails, up to `Config::entry_sessions` under way at once. Deterministic, in virtual
//! time, every latency zero unless a test says otherwise.

mod support;

use std::time::{Duration, Instant};

use mesh_core::{Config, Event, Input, Node, Output, Role};
use mesh_emu::Latencies;
use mesh_proto::NodeId;
use support::{Net, test_config};

/// `linkable` members that link with one another, then `unlinkable` members no link with
/// ever comes up, registered at the server as any node (it cannot tell): of all the
/// members, the closest by XOR to the newcomer. The newcomer registers last, its `Welcome`
/// listing every member.
struct Lab {
    net: Net,
    newcomer: usize,
    /// The members, the closest to the newcomer first.
    by_distance: Vec<NodeId>,
    /// When the newcomer registered.
    joined: Instant,
    /// When (after `joined`) each of the newcomer's sessions through the server started.
    starts: Vec<Duration>,
    /// The most entry sessions the newcomer had under way at once while it had no link.
    most_under_way: u64,
}

fn lab(config: Config, linkable: usize, unlinkable: usize) -> Lab {
    lab_with(config, linkable, unlinkable, &[])
}

/// [`lab`], with the members at `failing` (indices into the closest-first order, among the
/// linkable ones) failing every session they answer, at once: the newcomer hears a
/// `Reject` straight away.
fn lab_with(config: Config, linkable: usize, unlinkable: usize, failing: &[usize]) -> Lab {
    let members = linkable + unlinkable;
    let newcomer = members;
    let mut net = Net::new(members + 1, config);
    let me = net.id(newcomer);
    let mut order: Vec<usize> = (0..members).collect();
    order.sort_by_key(|j| me.distance(&net.id(*j)));
    net.unlinkable = order[..unlinkable].to_vec();
    let mut linked: Vec<usize> = order[unlinkable..].to_vec();
    linked.sort_unstable();
    for (k, &j) in linked.iter().enumerate() {
        net.join_knowing(j, &linked[..k]);
        if k > 0 {
            assert!(
                net.run_until(Duration::from_secs(30), |net| net.degree(j) >= 1),
                "member {j} never linked"
            );
        }
    }
    // They try to link as well, in vain: their sessions go to the linkable members.
    for u in net.unlinkable.clone() {
        net.join_knowing(u, &linked);
    }
    // Set once the members linked: they fail only the newcomer's sessions.
    net.failing_answerers = failing.iter().map(|k| order[*k]).collect();
    let joined = net.now;
    let everyone: Vec<usize> = (0..members).collect();
    net.join_knowing(newcomer, &everyone);
    let by_distance = order.iter().map(|j| net.id(*j)).collect();
    let mut lab = Lab {
        net,
        newcomer,
        by_distance,
        joined,
        starts: Vec::new(),
        most_under_way: 0,
    };
    lab.observe();
    lab
}

impl Lab {
    /// Records the newcomer's new sessions through the server (at the current instant),
    /// and its entry sessions under way if it has no link: before its first link, every
    /// session it has is one it offered through the server, and each ends failed,
    /// rejected or linked.
    fn observe(&mut self) {
        let (net, i) = (&self.net, self.newcomer);
        let stats = net.nodes[i].stats();
        let at = net.now - self.joined;
        while (self.starts.len() as u64) < stats.sessions_initiated_via_server {
            self.starts.push(at);
        }
        if net.degree(i) == 0 {
            let ended = stats.sessions_failed + stats.sessions_rejected + stats.links_up;
            let under_way = stats.sessions_initiated_via_server - ended;
            self.most_under_way = self.most_under_way.max(under_way);
        }
    }

    /// Runs until `done` holds (at most `limit`), observing the newcomer after every
    /// instant something happened; returns whether it held.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Net) -> bool) -> bool {
        let mut held = false;
        let end = self.net.now + limit;
        while !held && self.net.now < end {
            let before = self.net.now;
            let left = end - self.net.now;
            // One instant at a time: stop at the first one after `before`.
            let stepped = self
                .net
                .run_until(left, |net| net.now > before || done(net));
            self.observe();
            held = done(&self.net);
            if !stepped {
                break;
            }
        }
        held
    }

    /// Runs until the newcomer's first link (at most `limit`); returns how long it took
    /// from its registration.
    fn first_link(&mut self, limit: Duration) -> Duration {
        let newcomer = self.newcomer;
        assert!(
            self.run_until(limit, |net| net.degree(newcomer) >= 1),
            "the newcomer never linked"
        );
        self.net.now - self.joined
    }

    /// Runs until `after` the newcomer's registration.
    fn run_until_after_join(&mut self, after: Duration) {
        let limit = (self.joined + after).saturating_duration_since(self.net.now);
        self.run_until(limit, |_| false);
        // `Net::run_until` stops at the last event before the limit: the clock is there.
        assert!(self.net.now <= self.joined + after);
    }

    /// The peers the newcomer offered sessions to, in order.
    fn offered(&self) -> Vec<NodeId> {
        self.net
            .opened
            .iter()
            .filter(|(i, _, role)| *i == self.newcomer && *role == Role::Offerer)
            .map(|(_, peer, _)| *peer)
            .collect()
    }

    fn via_server(&self) -> u64 {
        self.net.nodes[self.newcomer]
            .stats()
            .sessions_initiated_via_server
    }
}

fn secs(s: &[u64]) -> Vec<Duration> {
    s.iter().map(|s| Duration::from_secs(*s)).collect()
}

/// The rule before `entry_sessions`, kept as its value 1: one at a time, so the first,
/// to the unlinkable peer, holds the newcomer for exactly the session timeout (its ticks
/// start when it registers, so the session expires on one), and the next one links at once.
#[test]
fn one_entry_session_at_a_time_waits_out_the_session_timeout() {
    let config = test_config().with_entry_sessions(1);
    let timeout = config.session_timeout;
    let mut lab = lab(config, 6, 1);
    let took = lab.first_link(Duration::from_secs(30));
    assert_eq!(took, timeout, "the stall: the whole session timeout");
    assert_eq!(lab.via_server(), 2);
    assert_eq!(lab.starts, [Duration::ZERO, timeout]);
    assert_eq!(lab.most_under_way, 1);
    assert_eq!(lab.offered(), lab.by_distance[..2], "the closest first");
    assert_eq!(lab.net.nodes[lab.newcomer].stats().sessions_failed, 1);
}

/// The common case, the one the server's load rests on: the closest sampled peer links
/// (here at once, every latency zero), so the newcomer's first entry session is its only
/// session through the server, however long it then stays (the stagger never comes).
#[test]
fn a_newcomer_whose_closest_peer_links_uses_one_server_session() {
    let config = test_config();
    let (stagger, target) = (config.entry_stagger, config.target_degree);
    let mut lab = lab(config, 7, 0);
    let took = lab.first_link(Duration::from_secs(30));
    assert_eq!(
        took,
        Duration::ZERO,
        "zero latencies: linked as it registered"
    );
    assert_eq!(lab.offered(), lab.by_distance[..1], "the closest");
    // Ten staggers later it has grown to its target degree through the mesh, and still
    // used the server for one session.
    lab.run_until_after_join(10 * stagger);
    assert!(lab.net.degree(lab.newcomer) >= target);
    assert_eq!(
        lab.via_server(),
        1,
        "one server-signaled session for the join"
    );
    assert_eq!(lab.starts, [Duration::ZERO]);
}

/// The same with latencies of a wide-area network (server 20–80 ms one way, links 10–100
/// ms, a link up 4 link latencies after the answer): sixteen nodes join one after another,
/// each once the previous one linked, and each gets its first link well within the
/// stagger, so each newcomer uses the server for exactly one session.
#[test]
fn with_wan_latencies_every_join_uses_one_server_session() {
    const MS: u64 = 1_000_000;
    let latencies = Latencies {
        server: (20 * MS, 80 * MS),
        link: (10 * MS, 100 * MS),
        link_setup: 4,
    };
    let config = test_config();
    let (stagger, min) = (config.entry_stagger, config.min_degree);
    let n = 16;
    let mut net = Net::with_latencies(n, config, latencies);
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let joined = net.now;
        net.join(i);
        if i > 0 {
            assert!(
                net.run_until(Duration::from_secs(30), |net| net.degree(i) >= 1),
                "node {i} never linked"
            );
            slowest = slowest.max(net.now - joined);
        }
    }
    // At most 960 ms by these ranges (the registration's 3 server latencies, the offer and
    // the answer through the server, 4 more, and the link's setup, 4 link latencies), if
    // the first entry session links; observed 730 ms. The stagger never came.
    assert!(slowest < stagger, "a first link took {slowest:?}");
    net.run_for(Duration::from_secs(30));
    for i in 1..n {
        let via_server = net.nodes[i].stats().sessions_initiated_via_server;
        assert_eq!(via_server, 1, "node {i}");
    }
    // The first node, alone until the second came, asked the server for peers and offered
    // to the second while the second offered to it: one session at most.
    assert!(net.nodes[0].stats().sessions_initiated_via_server <= 1);
    assert!((0..n).all(|i| net.degree(i) >= min));
}

/// With the default (3 at once, 1 s apart), the closest sampled peer unlinkable: the
/// second entry session starts one stagger after the first and links at once, so the first
/// link comes exactly one stagger after the newcomer registered (a fifth of the session
/// timeout), after exactly two sessions through the server.
#[test]
fn the_next_entry_session_starts_one_stagger_after_an_unlinkable_peers() {
    let config = test_config();
    assert_eq!(config.entry_sessions, 3, "the documented default");
    assert_eq!(
        config.entry_stagger,
        Duration::from_secs(1),
        "the documented default"
    );
    let (stagger, timeout) = (config.entry_stagger, config.session_timeout);
    let mut lab = lab(config, 6, 1);
    let took = lab.first_link(Duration::from_secs(30));
    assert_eq!(took, stagger, "first link after {took:?}");
    assert!(took < timeout / 4);
    assert_eq!(
        lab.via_server(),
        2,
        "one to the unlinkable peer, one that linked"
    );
    assert_eq!(lab.starts, [Duration::ZERO, stagger]);
    assert_eq!(lab.offered(), lab.by_distance[..2], "the closest first");
    // The first link ends the rule: the newcomer goes on through the mesh, and the entry
    // session with the unlinkable peer times out as any session would.
    lab.run_until_after_join(2 * timeout);
    let stats = lab.net.nodes[lab.newcomer].stats();
    assert_eq!(stats.sessions_initiated_via_server, 2);
    assert!(
        stats.sessions_failed >= 1,
        "the unlinkable peer's timed out"
    );
    assert!(lab.net.degree(lab.newcomer) >= 2);
}

/// A session that fails lets the next one start at once: the closest peer is unlinkable,
/// the next one fails every session it answers (its `Reject` comes at once), so the third
/// starts at the instant of the second's failure, not a stagger later.
#[test]
fn a_failed_entry_session_lets_the_next_start_at_once() {
    let config = test_config();
    let stagger = config.entry_stagger;
    let mut lab = lab_with(config, 6, 1, &[1]);
    let took = lab.first_link(Duration::from_secs(30));
    assert_eq!(took, stagger, "not 2 × stagger: {took:?}");
    assert_eq!(lab.starts, [Duration::ZERO, stagger, stagger]);
    assert_eq!(lab.offered(), lab.by_distance[..3]);
    assert_eq!(lab.net.nodes[lab.newcomer].stats().sessions_rejected, 1);
}

/// Zero stagger: all the entry sessions start at once (the rule before staggering).
#[test]
fn a_zero_stagger_starts_every_entry_session_at_once() {
    let config = test_config().with_entry_stagger(Duration::ZERO);
    let mut lab = lab(config, 6, 1);
    let took = lab.first_link(Duration::from_secs(30));
    assert_eq!(took, Duration::ZERO);
    assert_eq!(lab.starts, [Duration::ZERO; 3]);
    assert_eq!(lab.offered(), lab.by_distance[..3]);
}

/// Never more entry sessions under way than `entry_sessions`: with the four closest
/// peers unlinkable, nothing ends before a session timeout, so the newcomer starts one a
/// stagger until it has `entry_sessions` under way, then one as each times out, each with
/// the next peer of the sample, never one already tried.
#[test]
fn entry_sessions_under_way_never_exceed_the_setting() {
    // (entry_sessions, when each session starts, when the first link comes) with a 1 s
    // stagger and a 5 s session timeout; the fifth session is the first linkable peer's.
    let cases = [
        (2, secs(&[0, 1, 5, 6, 10]), 10),
        (3, secs(&[0, 1, 2, 5, 6]), 6),
    ];
    for (entry_sessions, starts, link) in cases {
        // A peer whose session failed may be tried again after `retry_backoff` (2 s in
        // `test_config`, shorter than its 5 s session timeout), but the sample's untried
        // peers come first: each is tried once, in order.
        let config = test_config().with_entry_sessions(entry_sessions);
        let mut lab = lab(config, 6, 4);
        let took = lab.first_link(Duration::from_secs(30));
        assert_eq!(took, Duration::from_secs(link), "{entry_sessions}");
        assert_eq!(lab.starts, starts, "{entry_sessions}");
        assert_eq!(lab.most_under_way, entry_sessions as u64);
        assert_eq!(lab.offered(), lab.by_distance[..5], "{entry_sessions}");
        // And none after the first link.
        lab.run_until_after_join(Duration::from_secs(20));
        assert_eq!(lab.via_server(), 5, "{entry_sessions}");
    }
}

/// Peers already tried come after the untried ones: one entry session at a time, with the
/// two closest peers unlinkable and their backoff (2 s) shorter than a session timeout
/// (5 s), the newcomer does not go back to them but on to the third, which links.
#[test]
fn peers_already_tried_come_after_the_untried_ones() {
    let config = test_config().with_entry_sessions(1);
    assert!(config.retry_backoff < config.session_timeout);
    let mut lab = lab(config, 6, 2);
    let took = lab.first_link(Duration::from_secs(60));
    assert_eq!(took, Duration::from_secs(10));
    assert_eq!(lab.starts, secs(&[0, 5, 10]));
    assert_eq!(lab.offered(), lab.by_distance[..3]);
}

/// Nor more than `max_pending_sessions`, whatever `entry_sessions` says: with the three
/// closest peers unlinkable, two under way, the next one when the first times out.
#[test]
fn entry_sessions_stay_within_max_pending_sessions() {
    let config = test_config()
        .with_entry_sessions(3)
        .with_max_pending_sessions(2);
    let timeout = config.session_timeout;
    let mut lab = lab(config, 6, 3);
    lab.run_until_after_join(timeout - Duration::from_millis(1));
    assert_eq!(lab.net.degree(lab.newcomer), 0);
    assert_eq!(lab.starts, secs(&[0, 1]));
    assert_eq!(lab.offered(), lab.by_distance[..2]);
    let took = lab.first_link(Duration::from_secs(30));
    assert_eq!(took, Duration::from_secs(6));
    assert_eq!(lab.starts, secs(&[0, 1, 5, 6]));
    assert_eq!(lab.most_under_way, 2);
}

/// The core asks to be woken for the next entry session ([`Node::poll_timeout`]), not at
/// the next tick: with ticks 4 s apart, a node fed only at its `poll_timeout` starts the
/// second entry session exactly one stagger after the first.
#[test]
fn the_stagger_is_kept_to_the_instant_between_ticks() {
    let config = test_config()
        .with_tick_interval(Duration::from_secs(4))
        .with_entry_stagger(Duration::from_millis(700));
    let server = config.bootstraps[0].clone();
    let t0 = Instant::now();
    let mut node = Node::new(config, support::key(0, 0), t0, 0).unwrap();
    let peers: Vec<NodeId> = (1..3).map(|i| support::key(i, 0).node_id()).collect();
    let opened = |node: &mut Node| {
        let mut peers = Vec::new();
        while let Some(out) = node.poll_output() {
            match out {
                Output::OpenSession { peer, role, .. } => {
                    assert_eq!(role, Role::Offerer);
                    peers.push(peer);
                }
                Output::Event(Event::LinkUp { .. }) => panic!("no link here"),
                _ => {}
            }
        }
        peers
    };
    node.handle_input(
        t0,
        Input::Registered {
            server,
            peers: peers.clone(),
        },
    );
    let mut closest = peers.clone();
    closest.sort_by_key(|p| node.id().distance(p));
    assert_eq!(opened(&mut node), closest[..1]);
    // The first tick is due at once; then the stagger comes before the next one.
    node.handle_input(t0, Input::Timeout);
    assert!(opened(&mut node).is_empty());
    assert_eq!(node.poll_timeout(), t0 + Duration::from_millis(700));
    node.handle_input(node.poll_timeout(), Input::Timeout);
    assert_eq!(opened(&mut node), closest[1..2]);
    // A third may start a stagger later; when it comes, nobody else is in the sample:
    // nothing starts, and nothing more to wake for before the tick.
    assert_eq!(node.poll_timeout(), t0 + Duration::from_millis(1400));
    node.handle_input(node.poll_timeout(), Input::Timeout);
    assert!(opened(&mut node).is_empty());
    assert_eq!(node.poll_timeout(), t0 + Duration::from_secs(4));
}
