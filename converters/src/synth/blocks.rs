//! Prefix block ids for synthetic prompts.
//!
//! A synthetic prompt is a sequence of *segments*: runs of tokens whose
//! content is identified by a segment id (token `i` of segment `s` is the
//! same token wherever that segment appears). A prompt is cut into blocks of
//! `block_size` tokens; a block's id stands for the whole prefix up to and
//! including that block, so it is keyed on its parent block's id plus the
//! pieces of segments it holds. Two prompts therefore share leading ids
//! exactly as long as they share leading content, and a final partial block
//! gets an id of its own (its key holds fewer tokens than a full block's).
//!
//! Ids are dense: 0, 1, 2, ... in order of first use.
//!
//! Only blocks made of *shared* segments (a system prompt, a user prefix, a
//! random-mode prefix) can be built again from scratch by another prompt, so
//! only those keys are remembered; a block that holds a piece of a *unique*
//! segment (a turn's input or output, a random prompt's body) is built once,
//! inside one [`Context`], and simply takes the next id. Memory thus grows
//! with the shared content, not with the size of the trace.

use std::collections::HashMap;

/// A run of tokens with one content identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub id: u64,
    pub len: u32,
    /// Whether the segment may start again in another prompt (see the module docs).
    pub shared: bool,
}

/// Hands out segment ids, unique within one generator.
#[derive(Debug, Default)]
pub struct SegmentIds {
    next: u64,
}

impl SegmentIds {
    /// A new segment of `len` tokens.
    pub fn make(&mut self, len: u32, shared: bool) -> Segment {
        let id = self.next;
        self.next += 1;
        Segment { id, len, shared }
    }
}

/// Tokens `start..end` of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Piece {
    segment: u64,
    start: u32,
    end: u32,
}

/// The ids of every shared block seen so far.
#[derive(Debug)]
pub struct BlockTable {
    block_size: u32,
    next_id: u64,
    known: HashMap<(Option<u64>, Vec<Piece>), u64>,
}

impl BlockTable {
    /// `block_size` must be at least 1 (the generators check their option).
    pub fn new(block_size: u32) -> Self {
        BlockTable {
            block_size: block_size.max(1),
            next_id: 0,
            known: HashMap::new(),
        }
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Distinct block ids handed out so far.
    pub fn ids_used(&self) -> u64 {
        self.next_id
    }

    fn fresh(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn intern(&mut self, parent: Option<u64>, pieces: &[Piece], shared: bool) -> u64 {
        if !shared {
            return self.fresh();
        }
        let key = (parent, pieces.to_vec());
        if let Some(&id) = self.known.get(&key) {
            return id;
        }
        let id = self.fresh();
        self.known.insert(key, id);
        id
    }
}

/// A prompt being built: the ids of its complete blocks and the pieces of
/// its trailing partial block. Appending only computes the new blocks.
#[derive(Debug, Clone, Default)]
pub struct Context {
    full: Vec<u64>,
    tail: Vec<Piece>,
    tail_len: u32,
    /// Whether every piece of the tail comes from a shared segment.
    tail_shared: bool,
    /// The tail's id once asked for, until the tail changes.
    tail_id: Option<u64>,
    len: u64,
}

impl Context {
    pub fn new() -> Self {
        Context {
            tail_shared: true,
            ..Default::default()
        }
    }

    /// Tokens in the context.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a segment's tokens.
    pub fn push(&mut self, table: &mut BlockTable, segment: Segment) {
        let block = table.block_size();
        let mut start = 0u32;
        while start < segment.len {
            let take = (block - self.tail_len).min(segment.len - start);
            self.tail.push(Piece {
                segment: segment.id,
                start,
                end: start + take,
            });
            self.tail_len += take;
            self.tail_shared &= segment.shared;
            self.tail_id = None;
            start += take;
            if self.tail_len == block {
                let id = table.intern(self.full.last().copied(), &self.tail, self.tail_shared);
                self.full.push(id);
                self.tail.clear();
                self.tail_len = 0;
                self.tail_shared = true;
            }
        }
        self.len += u64::from(segment.len);
    }

    /// The block ids of the whole context, the partial last block included.
    pub fn hash_ids(&mut self, table: &mut BlockTable) -> Vec<u64> {
        let mut ids = Vec::with_capacity(self.full.len() + 1);
        ids.extend_from_slice(&self.full);
        if !self.tail.is_empty() {
            let id = match self.tail_id {
                Some(id) => id,
                None => {
                    let id = table.intern(self.full.last().copied(), &self.tail, self.tail_shared);
                    self.tail_id = Some(id);
                    id
                }
            };
            ids.push(id);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_of(table: &mut BlockTable, segments: &[Segment]) -> Vec<u64> {
        let mut ctx = Context::new();
        for s in segments {
            ctx.push(table, *s);
        }
        ctx.hash_ids(table)
    }

    #[test]
    fn block_count_and_partial_tail() {
        let mut t = BlockTable::new(4);
        let mut segs = SegmentIds::default();
        let a = segs.make(10, true);
        let ids = ids_of(&mut t, &[a]);
        assert_eq!(ids, vec![0, 1, 2]);
        // The same content again gives the same ids.
        assert_eq!(ids_of(&mut t, &[a]), ids);
        // A prefix of it shares its complete blocks; its partial block differs.
        let mut ctx = Context::new();
        ctx.push(&mut t, Segment { len: 6, ..a });
        let short = ctx.hash_ids(&mut t);
        assert_eq!(short[0], 0);
        assert_eq!(short.len(), 2);
        assert_ne!(short[1], ids[1]);
        // An empty context has no blocks.
        assert!(Context::new().hash_ids(&mut t).is_empty());
    }

    #[test]
    fn shared_prefix_then_different_content() {
        let mut t = BlockTable::new(4);
        let mut segs = SegmentIds::default();
        let prefix = segs.make(9, true);
        let x = segs.make(7, false);
        let y = segs.make(7, false);
        let px = ids_of(&mut t, &[prefix, x]);
        let py = ids_of(&mut t, &[prefix, y]);
        assert_eq!(px.len(), 4);
        // Two full prefix blocks shared; the block that mixes the prefix's
        // last token with the body differs.
        assert_eq!(px[..2], py[..2]);
        assert!(px[2..].iter().all(|id| !py.contains(id)));
    }

    #[test]
    fn a_block_id_stands_for_the_whole_prefix() {
        let mut t = BlockTable::new(4);
        let mut segs = SegmentIds::default();
        let a = segs.make(4, true);
        let b = segs.make(4, true);
        let c = segs.make(4, true);
        let ac = ids_of(&mut t, &[a, c]);
        let bc = ids_of(&mut t, &[b, c]);
        // Same content block `c`, different prefix: different id.
        assert_ne!(ac[1], bc[1]);
    }

    #[test]
    fn ids_are_dense_in_order_of_first_use() {
        let mut t = BlockTable::new(2);
        let mut segs = SegmentIds::default();
        let mut all = Vec::new();
        for _ in 0..5 {
            let s = segs.make(5, false);
            all.extend(ids_of(&mut t, &[s]));
        }
        let expect: Vec<u64> = (0..15).collect();
        assert_eq!(all, expect);
        assert_eq!(t.ids_used(), 15);
    }

    #[test]
    fn incremental_push_matches_building_at_once() {
        let mut t = BlockTable::new(8);
        let mut segs = SegmentIds::default();
        let s = segs.make(13, true);
        let u = segs.make(20, true);
        let mut ctx = Context::new();
        ctx.push(&mut t, s);
        let first = ctx.hash_ids(&mut t);
        ctx.push(&mut t, u);
        let grown = ctx.hash_ids(&mut t);
        assert_eq!(grown, ids_of(&mut t, &[s, u]));
        assert_eq!(first[0], grown[0]);
        assert_eq!(ctx.len(), 33);
        assert_eq!(grown.len(), 5);
    }

    #[test]
    fn only_shared_blocks_are_remembered() {
        let mut t = BlockTable::new(4);
        let mut segs = SegmentIds::default();
        let p = segs.make(8, true);
        for _ in 0..100 {
            let body = segs.make(64, false);
            ids_of(&mut t, &[p, body]);
        }
        assert_eq!(t.known.len(), 2);
    }
}
