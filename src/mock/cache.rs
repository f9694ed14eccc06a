//! The prefix cache: full blocks of prompt tokens, identified by a chained
//! hash, kept in two LRU tiers. The fast tier stands for GPU memory; blocks
//! it evicts move to the larger external tier (CPU memory or disk), whose
//! own evictions are dropped.

use std::collections::{BTreeMap, HashMap};

/// A set of block hashes with a capacity and least-recently-used eviction.
#[derive(Debug)]
struct Lru {
    capacity: usize,
    stamp_of: HashMap<u64, u64>,
    by_stamp: BTreeMap<u64, u64>,
    clock: u64,
}

impl Lru {
    fn new(capacity: usize) -> Lru {
        Lru {
            capacity,
            stamp_of: HashMap::new(),
            by_stamp: BTreeMap::new(),
            clock: 0,
        }
    }

    fn contains(&self, block: u64) -> bool {
        self.stamp_of.contains_key(&block)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.stamp_of.len()
    }

    /// Marks `block` as just used, inserting it if absent; returns the block
    /// evicted to make room, if any.
    fn touch(&mut self, block: u64) -> Option<u64> {
        if self.capacity == 0 {
            return None;
        }
        self.clock += 1;
        if let Some(old) = self.stamp_of.insert(block, self.clock) {
            self.by_stamp.remove(&old);
            self.by_stamp.insert(self.clock, block);
            return None;
        }
        self.by_stamp.insert(self.clock, block);
        if self.stamp_of.len() > self.capacity
            && let Some((_, victim)) = self.by_stamp.pop_first()
        {
            self.stamp_of.remove(&victim);
            return Some(victim);
        }
        None
    }
}

/// What a lookup found: the prompt's longest cached prefix, in blocks,
/// counted by the tier each block was found in (the fast tier first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hit {
    pub fast_blocks: u32,
    pub external_blocks: u32,
}

/// Both tiers.
#[derive(Debug)]
pub struct PrefixCache {
    fast: Lru,
    external: Lru,
}

impl PrefixCache {
    pub fn new(fast_blocks: u32, external_blocks: u32) -> PrefixCache {
        PrefixCache {
            fast: Lru::new(fast_blocks as usize),
            external: Lru::new(external_blocks as usize),
        }
    }

    /// Looks up the longest cached prefix of `blocks` (at most `max_blocks`
    /// of them: an engine always computes the prompt's last token), then
    /// stores every block of the prompt in the fast tier as most recent.
    pub fn lookup_and_store(&mut self, blocks: &[u64], max_blocks: usize) -> Hit {
        let limit = max_blocks.min(blocks.len());
        let (mut fast, mut external) = (0u32, 0u32);
        for &block in &blocks[..limit] {
            if self.fast.contains(block) {
                fast += 1;
            } else if self.external.contains(block) {
                external += 1;
            } else {
                break;
            }
        }
        for &block in blocks {
            if self.external.contains(block) {
                self.external.touch(block);
            }
            if let Some(evicted) = self.fast.touch(block) {
                self.external.touch(evicted);
            }
        }
        Hit {
            fast_blocks: fast,
            external_blocks: external,
        }
    }

    /// Empties both tiers (an engine's prefix-cache reset).
    pub fn clear(&mut self) {
        *self = PrefixCache::new(self.fast.capacity as u32, self.external.capacity as u32);
    }

    /// Blocks held in each tier.
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize) {
        (self.fast.len(), self.external.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cleared_cache_misses_and_keeps_its_capacity() {
        let mut c = PrefixCache::new(2, 1);
        c.lookup_and_store(&[1, 2, 3], 3);
        c.clear();
        assert_eq!(c.sizes(), (0, 0));
        assert_eq!(c.lookup_and_store(&[1, 2, 3], 3), Hit::default());
        assert_eq!(c.sizes(), (2, 1), "the capacities are kept");
    }

    #[test]
    fn repeated_prompt_hits_the_fast_tier() {
        let mut c = PrefixCache::new(8, 8);
        assert_eq!(c.lookup_and_store(&[1, 2, 3], 3), Hit::default());
        let hit = c.lookup_and_store(&[1, 2, 3, 4], 4);
        assert_eq!(hit.fast_blocks, 3);
        assert_eq!(hit.external_blocks, 0);
        // The cap leaves the last block to compute.
        assert_eq!(c.lookup_and_store(&[1, 2, 3, 4], 3).fast_blocks, 3);
        // A different first block shares nothing (the hashes are chained by the caller).
        assert_eq!(c.lookup_and_store(&[9, 2, 3], 3).fast_blocks, 0);
    }

    #[test]
    fn evicted_blocks_move_to_the_external_tier_and_come_back() {
        let mut c = PrefixCache::new(2, 4);
        c.lookup_and_store(&[1, 2], 2);
        c.lookup_and_store(&[5, 6], 2); // evicts 1 and 2 to the external tier
        assert_eq!(c.sizes(), (2, 2));
        let hit = c.lookup_and_store(&[1, 2], 2);
        assert_eq!(hit.fast_blocks, 0);
        assert_eq!(hit.external_blocks, 2);
        // Promoted back: now a fast hit.
        assert_eq!(c.lookup_and_store(&[1, 2], 2).fast_blocks, 2);
    }

    #[test]
    fn external_tier_evicts_least_recent() {
        let mut c = PrefixCache::new(1, 1);
        c.lookup_and_store(&[1], 1);
        c.lookup_and_store(&[2], 1); // 1 → external
        c.lookup_and_store(&[3], 1); // 2 → external, 1 dropped
        assert_eq!(c.lookup_and_store(&[1], 1), Hit::default());
        let mut none = PrefixCache::new(0, 0);
        none.lookup_and_store(&[1], 1);
        assert_eq!(none.lookup_and_store(&[1], 1), Hit::default());
    }
}
