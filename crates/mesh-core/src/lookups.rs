//! The state of a node's lookups through the mesh (`Lookup` / `Nodes`): when the next one
//! is due, the one under way and its answers, the buckets found empty, and the dead end to
//! look for. What a lookup looks for and where it goes is `Node::lookup`'s (it needs the
//! node's tables); the timing and bookkeeping rules are here.

use std::time::Duration;

use mesh_proto::NodeId;
use web_time::Instant;

use crate::Config;
use crate::contacts::BucketSet;

/// One node's lookups.
#[derive(Debug)]
pub(crate) struct Lookups {
    /// When the next lookup is due.
    pub next: Instant,
    /// The target of the lookup under way: only its answer is taken.
    pub target: Option<NodeId>,
    /// Answers still expected to the lookup under way (one per path it took).
    awaiting: usize,
    /// Whether an answer to the lookup under way brought a closer peer (or, for a hole,
    /// a peer in it).
    improved: bool,
    /// The bucket the lookup under way looks for someone in (`None`: our own id).
    pub hole: Option<u32>,
    /// Buckets a lookup found nobody in since the last lost link: not looked for again
    /// until then, so that lookups for our own id go on.
    pub empty_holes: BucketSet,
    /// The destination of the last frame this node relayed into a dead end: what the next
    /// lookup looks for.
    pub dead_end: Option<NodeId>,
    /// The pause before the next lookup when the last one found nothing closer.
    pause: Duration,
}

impl Lookups {
    /// The first lookup is due at once (it goes out on the first tick with a link).
    pub fn new(config: &Config, now: Instant) -> Self {
        Self {
            next: now,
            target: None,
            awaiting: 0,
            improved: false,
            hole: None,
            empty_holes: BucketSet::default(),
            dead_end: None,
            pause: config.announce_interval,
        }
    }

    /// A lookup for `target` (for someone in bucket `hole`, or `None`: closer peers)
    /// went out along `paths` paths. Until its answers say otherwise, the next one is due
    /// `announce_interval` from `now`.
    pub fn started(
        &mut self,
        config: &Config,
        now: Instant,
        target: NodeId,
        hole: Option<u32>,
        paths: usize,
    ) {
        self.next = now + config.announce_interval;
        self.target = Some(target);
        self.hole = hole;
        self.awaiting = paths;
        self.improved = false;
    }

    /// One answer to the lookup under way came; `improved`: it brought a closer peer (or
    /// one in the hole). Once every path answered: a hole nobody was found in is marked
    /// empty, and the next lookup is due on the next tick if some answer improved (an
    /// iterative lookup built from recursive ones), else after a pause doubling from
    /// `announce_interval` to `lookup_interval`.
    pub fn answered(&mut self, config: &Config, now: Instant, improved: bool) {
        self.awaiting = self.awaiting.saturating_sub(1);
        self.improved |= improved;
        if self.awaiting > 0 {
            return;
        }
        self.target = None;
        if let Some(b) = self.hole.take()
            && !self.improved
        {
            self.empty_holes.insert(b);
        }
        if std::mem::take(&mut self.improved) {
            self.next = now + config.tick_interval;
            self.pause = config.announce_interval;
        } else {
            self.next = now + self.pause;
            self.pause = (2 * self.pause).min(config.lookup_interval);
        }
    }

    /// A frame this node relayed towards `to`, in bucket `bucket`, met a dead end: that
    /// bucket is not empty, whatever an earlier lookup found, and the next lookup looks
    /// for `to` itself; unless a lookup is under way (a new one would discard its answer),
    /// it goes out now.
    pub fn dead_end(&mut self, to: NodeId, bucket: u32, now: Instant) {
        self.empty_holes.remove(bucket);
        self.dead_end = Some(to);
        if self.target.is_none() {
            self.next = self.next.min(now);
        }
    }

    /// A link was lost: look for the peers now closest at once, with the shortest pause,
    /// and every bucket may be worth looking in again.
    pub fn link_lost(&mut self, config: &Config, now: Instant) {
        self.next = self.next.min(now);
        self.pause = config.announce_interval;
        self.empty_holes = BucketSet::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_while_nothing_improves_and_resets_when_something_does() {
        let config = Config::default();
        let t0 = Instant::now();
        let target = NodeId::from_bytes([1; 16]);
        let mut l = Lookups::new(&config, t0);
        let mut pauses = Vec::new();
        let mut now = t0;
        for _ in 0..6 {
            l.started(&config, now, target, None, 2);
            l.answered(&config, now, false);
            assert!(l.target.is_some(), "one path has not answered yet");
            l.answered(&config, now, false);
            pauses.push(l.next - now);
            now = l.next;
        }
        let a = config.announce_interval;
        assert_eq!(pauses[..3], [a, 2 * a, 4 * a]);
        assert_eq!(*pauses.last().unwrap(), config.lookup_interval);
        l.started(&config, now, target, None, 1);
        l.answered(&config, now, true);
        assert_eq!(l.next, now + config.tick_interval);
    }

    #[test]
    fn a_hole_found_empty_stays_marked_until_a_dead_end_or_a_lost_link() {
        let config = Config::default();
        let t0 = Instant::now();
        let mut l = Lookups::new(&config, t0);
        l.started(&config, t0, NodeId::from_bytes([1; 16]), Some(5), 1);
        l.answered(&config, t0, false);
        assert!(l.empty_holes.contains(5));
        let to = NodeId::from_bytes([2; 16]);
        l.dead_end(to, 5, t0 + config.lookup_interval);
        assert!(!l.empty_holes.contains(5));
        assert_eq!(l.dead_end, Some(to));
        l.started(&config, t0, to, Some(6), 1);
        l.answered(&config, t0, false);
        assert!(l.empty_holes.contains(6));
        l.link_lost(&config, t0);
        assert!(!l.empty_holes.contains(6));
        assert_eq!(l.next, t0);
    }
}
