//! Budgets: what a neighbour can make this node relay or answer, and what one origin can
//! make the mesh flood. Token buckets, each refilled at its rate up to its burst; a frame
//! over budget is dropped and counted. A neighbour that keeps sending over budget (its
//! drops exhaust a second bucket, its *strikes*) has its link dropped: an honest node
//! never comes near (the traffic model behind the defaults: docs/protocol.md §10.10).

use std::time::Duration;

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

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
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
}
