//! A set of node indices with O(1) insert, remove and uniform sampling.

use rand::rngs::StdRng;

/// A set of node indices with O(1) insert, remove and uniform sampling.
#[derive(Debug, Default)]
pub struct Pool {
    items: Vec<u32>,
    /// Position of each node in `items`, or `u32::MAX`.
    pos: Vec<u32>,
}

impl Pool {
    /// Adds `i`.
    pub fn insert(&mut self, i: u32) {
        let i_us = i as usize;
        if self.pos.len() <= i_us {
            self.pos.resize(i_us + 1, u32::MAX);
        }
        if self.pos[i_us] == u32::MAX {
            self.pos[i_us] = self.items.len() as u32;
            self.items.push(i);
        }
    }

    /// Removes `i`.
    pub fn remove(&mut self, i: u32) {
        let Some(&p) = self.pos.get(i as usize) else {
            return;
        };
        if p == u32::MAX {
            return;
        }
        self.items.swap_remove(p as usize);
        if let Some(&moved) = self.items.get(p as usize) {
            self.pos[moved as usize] = p;
        }
        self.pos[i as usize] = u32::MAX;
    }

    /// Whether `i` is in.
    pub fn contains(&self, i: u32) -> bool {
        self.pos.get(i as usize).is_some_and(|p| *p != u32::MAX)
    }

    /// How many are in.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none is in.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The members, in no particular order.
    pub fn items(&self) -> &[u32] {
        &self.items
    }

    /// Up to `k` distinct members other than `except`, uniformly at random.
    pub fn sample(&self, rng: &mut StdRng, k: usize, except: Option<u32>) -> Vec<u32> {
        let others = self.len() - usize::from(except.is_some_and(|e| self.contains(e)));
        let want = k.min(others);
        let mut out = Vec::with_capacity(want);
        // One index more than wanted, so that dropping `except` still leaves `want`.
        let mut picked = rand::seq::index::sample(rng, self.len(), (want + 1).min(self.len()))
            .into_iter()
            .map(|p| self.items[p])
            .filter(|i| Some(*i) != except);
        out.extend(picked.by_ref().take(want));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_pool_samples_distinct_members_never_the_excluded_one() {
        let mut pool = Pool::default();
        for i in 0..10 {
            pool.insert(i);
        }
        pool.remove(3);
        pool.remove(3);
        assert_eq!(pool.len(), 9);
        assert!(!pool.contains(3));
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let mut s = pool.sample(&mut rng, 8, Some(4));
            assert_eq!(s.len(), 8);
            assert!(!s.contains(&4) && !s.contains(&3));
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 8);
        }
        assert_eq!(pool.sample(&mut rng, 20, Some(4)).len(), 8);
        assert_eq!(pool.sample(&mut rng, 20, None).len(), 9);
    }
}
