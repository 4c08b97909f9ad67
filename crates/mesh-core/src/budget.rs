//! Budgets: what a neighbour can make this node relay or answer, and what one origin can
//! make the mesh flood. Token buckets, each refilled at its rate up to its burst; a frame
//! over budget is dropped and counted. A neighbour that keeps sending over budget (its
//! drops exhaust a second bucket, its *strikes*) has its link dropped: an honest node
//! never comes near (the traffic model behind the defaults: docs/protocol.md §10.11).

use std::collections::HashMap;
use std::time::Duration;

use mesh_proto::NodeId;
use web_time::Instant;

/// A rate and a burst: a bucket of `burst` tokens refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// The most tokens the bucket holds (and starts with).
    pub burst: f64,
}

impl Rate {
    /// `per_second` with a burst of `burst`.
    pub const fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst }
    }
}

/// One token bucket.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    /// A bucket as full as the rate it is first used with allows (its burst).
    fn full(now: Instant) -> Self {
        Self {
            tokens: f64::INFINITY,
            at: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        if self.ready(rate, now) {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Refills to `now` and says whether a token is there (taking none).
    fn ready(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.tokens >= 1.0
    }
}

/// What a link's neighbour may make this node do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spend {
    /// Relay (or take) a `Route` or `Transfer`.
    Route,
    /// Verify, deliver and forward a `Flood`.
    Flood,
    /// Verify, forward or answer a `Lookup` (and answer `FindNodes`, `GetNeighbours`).
    Lookup,
}

/// The budgets of one link.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    route: Bucket,
    flood: Bucket,
    lookup: Bucket,
    strikes: Bucket,
    /// This link's share of the node's budgets for floods of strangers, by kind.
    strangers: [Bucket; 2],
}

/// The kinds of flood whose strangers' budgets are kept apart, so that a storm of one (the
/// fallbacks of a mass failure) does not starve the other (applications' broadcasts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FloodKind {
    /// An application's broadcast (`Payload::App`).
    Broadcast = 0,
    /// Anything else: a node's fallback (a key request, a unicast sent by flood).
    Fallback = 1,
}

/// The rates in force (from `Config`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rates {
    pub route: Rate,
    pub flood: Rate,
    pub lookup: Rate,
    pub strikes: Rate,
}

/// What a link's budget says about one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within budget.
    Go,
    /// Over budget: drop the frame.
    Throttle,
    /// Over budget for too long: drop the link.
    Drop,
}

impl Link {
    pub fn new(rates: &Rates, now: Instant) -> Self {
        Self {
            route: Bucket::new(rates.route, now),
            flood: Bucket::new(rates.flood, now),
            lookup: Bucket::new(rates.lookup, now),
            strikes: Bucket::new(rates.strikes, now),
            // Filled as the node's bucket is: a share cut below the burst as links come.
            strangers: [Bucket::full(now), Bucket::full(now)],
        }
    }

    /// Spends one token of `what`.
    pub fn spend(&mut self, rates: &Rates, what: Spend, now: Instant) -> Verdict {
        let ok = match what {
            Spend::Route => self.route.take(rates.route, now),
            Spend::Flood => self.flood.take(rates.flood, now),
            Spend::Lookup => self.lookup.take(rates.lookup, now),
        };
        if ok {
            Verdict::Go
        } else if self.strikes.take(rates.strikes, now) {
            Verdict::Throttle
        } else {
            Verdict::Drop
        }
    }

    /// Takes a token for a flood of `kind` from a stranger (an origin this node knows
    /// nothing of) from this link's share and from the node's bucket of that kind (`node`,
    /// each refilled at `node_rate`), or from neither: whether the flood may go on. A
    /// link's share is [`stranger_share`] of the node's rate and burst. Not a strike: past
    /// the first hop, an honest neighbour relays what others sent.
    pub fn take_stranger(
        &mut self,
        kind: FloodKind,
        node: &mut [Bucket; 2],
        node_rate: Rate,
        links: usize,
        now: Instant,
    ) -> bool {
        let share = stranger_share(node_rate, links);
        let (link, node) = (&mut self.strangers[kind as usize], &mut node[kind as usize]);
        if link.ready(share, now) && node.ready(node_rate, now) {
            // Both refilled to `now` just above.
            link.tokens -= 1.0;
            node.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The budgets of `peer`'s link in `budgets`, made at `rates` if it has none yet.
pub(crate) fn link_of<'a>(
    budgets: &'a mut HashMap<NodeId, Link>,
    peer: NodeId,
    rates: &Rates,
    now: Instant,
) -> &'a mut Link {
    budgets.entry(peer).or_insert_with(|| Link::new(rates, now))
}

/// What one of `links` links may spend of the node's stranger budget `node`: an even
/// share, rate and burst. A neighbour that makes up origins puts into the mesh at most
/// its share at each of its neighbours (docs/protocol.md §10.11); the node's own bucket
/// bounds what links that come and go bring (each comes with a full share).
pub(crate) fn stranger_share(node: Rate, links: usize) -> Rate {
    let parts = links.max(1) as f64;
    Rate::new(node.per_second / parts, node.burst / parts)
}

/// How long a per-origin flood bucket is remembered after its last use: long enough that
/// an origin cannot reset its budget by pausing (it refills in less).
pub(crate) const ORIGIN_MEMORY: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Rates {
        Rates {
            route: Rate::new(10.0, 20.0),
            flood: Rate::new(1.0, 2.0),
            lookup: Rate::new(1.0, 1.0),
            strikes: Rate::new(1.0, 5.0),
        }
    }

    #[test]
    fn a_burst_goes_then_the_rate_then_throttling_then_the_link() {
        let t0 = Instant::now();
        let r = rates();
        let mut link = Link::new(&r, t0);
        for _ in 0..20 {
            assert_eq!(link.spend(&r, Spend::Route, t0), Verdict::Go);
        }
        for _ in 0..5 {
            assert_eq!(link.spend(&r, Spend::Route, t0), Verdict::Throttle);
        }
        assert_eq!(link.spend(&r, Spend::Route, t0), Verdict::Drop);
        // A second later: 10 more routes, and one strike back.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..10 {
            assert_eq!(link.spend(&r, Spend::Route, t1), Verdict::Go);
        }
        assert_eq!(link.spend(&r, Spend::Route, t1), Verdict::Throttle);
        // Kinds have their own buckets.
        assert_eq!(link.spend(&r, Spend::Lookup, t1), Verdict::Go);
    }

    #[test]
    fn each_link_takes_an_even_share_of_strangers_and_new_links_draw_on_the_node() {
        let t0 = Instant::now();
        let r = rates();
        let node_rate = Rate::new(4.0, 8.0);
        let mut node = [Bucket::new(node_rate, t0), Bucket::new(node_rate, t0)];
        let broadcast = FloodKind::Broadcast;
        let take = |link: &mut Link, node: &mut [Bucket; 2], kind, links, at| {
            (0..100)
                .take_while(|_| link.take_stranger(kind, node, node_rate, links, at))
                .count()
        };
        // Two links: 4 each at once, then 2/s each.
        let (mut a, mut b) = (Link::new(&r, t0), Link::new(&r, t0));
        assert_eq!(take(&mut a, &mut node, broadcast, 2, t0), 4);
        assert_eq!(take(&mut b, &mut node, broadcast, 2, t0), 4);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(take(&mut a, &mut node, broadcast, 2, t1), 2);
        // The other kind has buckets of its own, at the node and on the link.
        assert_eq!(take(&mut a, &mut node, FloodKind::Fallback, 2, t1), 4);
        // A link that comes brings a full share, but the node's bucket holds only what is
        // left of its own (2 of the 4 refilled in a second; `a` took the other 2).
        let mut c = Link::new(&r, t1);
        assert_eq!(take(&mut c, &mut node, broadcast, 3, t1), 2);
        assert_eq!(take(&mut b, &mut node, broadcast, 3, t1), 0);
    }
}
