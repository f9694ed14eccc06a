//! Rounds: with `--rounds`, every request of a level is replayed again.
//! Each round k ≥ 2 is joined to round 1 request by request (`request_id`
//! within the same run and level), over requests ok in both rounds: the
//! inner join of DuckDB or Polars on `(run_id, load_mode, load_value,
//! request_id)`, every matching pair counted.
//!
//! The pairs are found during the report's one pass over the parts: each
//! measured, ok request of a level is kept as a 128-bit hash of its
//! `request_id` (XXH3-128) beside its round, TTFT and token counts, and
//! the rounds are joined on the hashes when the pass is done. Two distinct
//! ids share a hash with a probability of about n²/2¹²⁹ for n requests
//! (10⁻²⁵ at 10 million), far below any other cause of a wrong figure;
//! keeping the ids themselves took a second read of every part and a join
//! of strings (3.6 of 16 s at 10 M requests, bench/report/README.md).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use polars::prelude::*;
use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_128;

use super::frames::{LEVEL, Levels};
use super::stats::{Sample, is_ok, measured, quantiles_of};
use crate::error::{PolarsContext, Result};
use crate::model::RoundDelta;

/// Null of a token count: no count reaches it (prompts are far below 4 G
/// tokens).
const NO_COUNT: u32 = u32::MAX;

/// One ok request of a level, as the join needs it: 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Row {
    id: [u64; 2],
    cached: u32,
    prompt: u32,
    /// NaN for null.
    ttft: f64,
}

impl Row {
    fn new(id: &str, ttft: Option<f64>, cached: Option<u32>, prompt: Option<u32>) -> Self {
        Self {
            id: id_hash(id),
            cached: cached.unwrap_or(NO_COUNT),
            prompt: prompt.unwrap_or(NO_COUNT),
            ttft: ttft.unwrap_or(f64::NAN),
        }
    }
}

/// The ok requests of every level, by `frames::LEVEL` number, gathered a
/// batch at a time.
#[derive(Default)]
pub struct RoundsAcc {
    rows: Vec<Vec<Row>>,
}

impl RoundsAcc {
    /// Add a batch of requests. A batch without `request_id` (a run
    /// without rounds, see `frames::may_have_rounds`) adds nothing.
    pub fn add(&mut self, batch: &DataFrame) -> Result<()> {
        if batch.column("request_id").is_err() {
            return Ok(());
        }
        // The rows to pair as a mask, not a filter: a filter copies every
        // column it keeps, the ids included.
        let ok = batch
            .clone()
            .lazy()
            .select([
                measured()
                    .and(is_ok())
                    .fill_null(lit(false))
                    .alias("__pair"),
                col(LEVEL),
                col("request_id"),
                col("ttft_ms").cast(DataType::Float64),
                col("cached_tokens").cast(DataType::UInt32),
                col("prompt_tokens").cast(DataType::UInt32),
            ])
            .collect()
            .ctx(|| "selecting the requests of the rounds".to_string())?;
        let what = || "the requests of the rounds".to_string();
        let column = |name: &str| {
            ok.column(name)
                .map(|c| c.as_materialized_series().rechunk())
                .ctx(what)
        };
        let pair = column("__pair")?;
        let pair = pair.bool().ctx(what)?;
        let (level, id, ttft, cached, prompt) = (
            column(LEVEL)?,
            column("request_id")?,
            column("ttft_ms")?,
            column("cached_tokens")?,
            column("prompt_tokens")?,
        );
        let (level, id, ttft, cached, prompt) = (
            level.u32().ctx(what)?,
            id.str().ctx(what)?,
            ttft.f64().ctx(what)?,
            cached.u32().ctx(what)?,
            prompt.u32().ctx(what)?,
        );
        // The arrays' own iterators: a `ChunkedArray`'s is dynamically
        // dispatched, one call a value.
        let pairs = pair.downcast_iter().flat_map(|a| a.iter());
        let levels = level.downcast_iter().flat_map(|a| a.iter());
        let ids = id.downcast_iter().flat_map(|a| a.iter());
        let ttfts = ttft.downcast_iter().flat_map(|a| a.iter());
        let cached = cached.downcast_iter().flat_map(|a| a.iter());
        let prompts = prompt.downcast_iter().flat_map(|a| a.iter());
        for (((((pair, l), id), ttft), cached), prompt) in pairs
            .zip(levels)
            .zip(ids)
            .zip(ttfts)
            .zip(cached)
            .zip(prompts)
        {
            // A request without an id cannot be paired.
            let (Some(true), Some(&l), Some(id)) = (pair, l, id) else {
                continue;
            };
            let l = l as usize;
            if self.rows.len() <= l {
                self.rows.resize_with(l + 1, Vec::new);
            }
            self.rows[l].push(Row::new(
                id,
                ttft.copied(),
                cached.copied(),
                prompt.copied(),
            ));
        }
        Ok(())
    }

    /// The deltas of every level replayed in more than one round, sorted
    /// by run, mode, value and round.
    pub fn finish(self, levels: &Levels) -> Vec<RoundDelta> {
        // The rounds of each level: (run, mode, value) -> [(round, rows)].
        let mut by_level: HashMap<(String, String, u64), Rounds> = HashMap::new();
        for (id, rows) in self.rows.into_iter().enumerate() {
            let Some(k) = u32::try_from(id).ok().and_then(|id| levels.key(id)) else {
                continue;
            };
            by_level
                .entry((
                    k.run_id.clone(),
                    k.load_mode.clone(),
                    k.load_value.to_bits(),
                ))
                .or_default()
                .push((k.round, rows));
        }
        let mut out: Vec<RoundDelta> = by_level
            .into_par_iter()
            .flat_map_iter(|((run_id, load_mode, bits), rounds)| {
                let value = f64::from_bits(bits);
                deltas(rounds)
                    .into_iter()
                    .map(move |(round, p)| p.delta(run_id.clone(), load_mode.clone(), value, round))
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.run_id, &a.load_mode)
                .cmp(&(&b.run_id, &b.load_mode))
                .then(a.load_value.total_cmp(&b.load_value))
                .then(a.round.cmp(&b.round))
        });
        out
    }
}

/// Hashes request-id hashes: they are uniform already, so their first
/// word is the hash.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// An id arrives as the 16 bytes of its two words (after its length,
    /// which `write_usize` drops): the first eight are the hash.
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }

    fn write_usize(&mut self, _: usize) {}
}

/// An id's 128-bit XXH3 hash, as two words (the key of [`HashedIds`]).
pub(super) fn id_hash(id: &str) -> [u64; 2] {
    let h = xxh3_128(id.as_bytes());
    [(h >> 64) as u64, h as u64]
}

/// A map keyed by 128-bit id hashes.
pub(super) type HashedIds<V> = HashMap<[u64; 2], V, BuildHasherDefault<IdHasher>>;

type IdMap = HashedIds<u32>;

/// A level's requests, round by round.
type Rounds = Vec<(u32, Vec<Row>)>;

/// Pair every later round's requests with round 1's of the same id: the
/// pairs of each later round, by round.
fn deltas(mut rounds: Rounds) -> Vec<(u32, Pairs)> {
    let Some(first) = rounds.iter().position(|(r, _)| *r == 1) else {
        return Vec::new();
    };
    let (_, mut first) = rounds.swap_remove(first);
    if first.is_empty() {
        return Vec::new();
    }
    // Round 1 sorted by id, and where each id's rows start.
    first.sort_unstable_by_key(|r| r.id);
    let mut start = IdMap::with_capacity_and_hasher(first.len(), Default::default());
    for (i, r) in first.iter().enumerate() {
        start.entry(r.id).or_insert(i as u32);
    }
    let mut out = Vec::new();
    for (round, rows) in rounds.into_iter().filter(|(r, _)| *r > 1) {
        let mut pairs = Pairs::default();
        for this in &rows {
            let Some(&s) = start.get(&this.id) else {
                continue;
            };
            for f in first[s as usize..].iter().take_while(|f| f.id == this.id) {
                pairs.add(f, this);
            }
        }
        if pairs.n > 0 {
            out.push((round, pairs));
        }
    }
    out
}

/// What one later round gathers over its pairs with round 1.
#[derive(Default)]
struct Pairs {
    n: u64,
    ttft_first: Vec<f64>,
    ttft_this: Vec<f64>,
    delta: Vec<f64>,
    first: Tokens,
    this: Tokens,
}

/// Cached tokens over the pairs, and the prompt tokens of the requests
/// that reported cached tokens (the ratio's base).
#[derive(Default)]
struct Tokens {
    cached: f64,
    cached_n: u64,
    base: f64,
}

impl Tokens {
    fn add(&mut self, r: &Row) {
        if r.cached != NO_COUNT {
            self.cached += f64::from(r.cached);
            self.cached_n += 1;
            if r.prompt != NO_COUNT {
                self.base += f64::from(r.prompt);
            }
        }
    }

    fn sum(&self) -> Option<f64> {
        (self.cached_n > 0).then_some(self.cached)
    }

    fn ratio(&self) -> Option<f64> {
        (self.cached_n > 0)
            .then(|| self.cached / self.base)
            .filter(|r| r.is_finite())
    }
}

impl Pairs {
    fn add(&mut self, first: &Row, this: &Row) {
        self.n += 1;
        if !first.ttft.is_nan() {
            self.ttft_first.push(first.ttft);
        }
        if !this.ttft.is_nan() {
            self.ttft_this.push(this.ttft);
        }
        if !first.ttft.is_nan() && !this.ttft.is_nan() {
            self.delta.push(this.ttft - first.ttft);
        }
        self.first.add(first);
        self.this.add(this);
    }
}

fn p50<T: Sample>(values: &mut [T]) -> Option<f64> {
    quantiles_of(values, &[0.5])[0]
}

impl Pairs {
    fn delta(
        mut self,
        run_id: String,
        load_mode: String,
        load_value: f64,
        round: u32,
    ) -> RoundDelta {
        RoundDelta {
            run_id,
            load_mode,
            load_value,
            round,
            pairs: self.n,
            ttft_first_p50_ms: p50(&mut self.ttft_first),
            ttft_this_p50_ms: p50(&mut self.ttft_this),
            ttft_delta_mean_ms: (!self.delta.is_empty())
                .then(|| self.delta.iter().sum::<f64>() / self.delta.len() as f64),
            ttft_delta_p50_ms: p50(&mut self.delta),
            cached_tokens_first: self.first.sum(),
            cached_tokens_this: self.this.sum(),
            cached_ratio_first: self.first.ratio(),
            cached_ratio_this: self.this.ratio(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, ttft: f64, cached: Option<u32>) -> Row {
        Row::new(id, Some(ttft), cached, Some(100))
    }

    fn delta(rounds: Rounds) -> Vec<RoundDelta> {
        let mut out: Vec<RoundDelta> = deltas(rounds)
            .into_iter()
            .map(|(round, p)| p.delta("r".into(), "qps".into(), 1.0, round))
            .collect();
        out.sort_by_key(|d| d.round);
        out
    }

    #[test]
    fn rounds_pair_like_an_inner_join() {
        let out = delta(vec![
            (
                3,
                // A duplicated id pairs twice.
                vec![row("a", 2.0, None), row("a", 3.0, None)],
            ),
            (
                1,
                vec![
                    row("a", 10.0, Some(0)),
                    row("b", 20.0, None),
                    row("c", 30.0, Some(0)),
                ],
            ),
            (
                2,
                vec![
                    row("a", 4.0, Some(80)),
                    row("b", 6.0, Some(90)),
                    // Not ok in round 1 (so not kept there): no pair.
                    row("d", 1.0, Some(100)),
                ],
            ),
        ]);
        assert_eq!(out.len(), 2);
        let two = &out[0];
        assert_eq!((two.round, two.pairs), (2, 2));
        assert_eq!(two.ttft_first_p50_ms, Some(15.0));
        assert_eq!(two.ttft_this_p50_ms, Some(5.0));
        assert_eq!(two.ttft_delta_mean_ms, Some(-10.0));
        assert_eq!(two.cached_tokens_first, Some(0.0));
        assert_eq!(two.cached_ratio_first, Some(0.0));
        assert_eq!(two.cached_tokens_this, Some(170.0));
        assert_eq!(two.cached_ratio_this, Some(0.85));
        let three = &out[1];
        assert_eq!((three.round, three.pairs), (3, 2));
        assert_eq!(three.ttft_delta_p50_ms, Some(-7.5));
        assert_eq!(three.cached_tokens_this, None);
        assert_eq!(three.cached_ratio_this, None);
    }

    #[test]
    fn a_level_of_one_round_has_no_deltas() {
        assert!(delta(vec![(1, vec![row("a", 10.0, None)])]).is_empty());
        assert!(delta(vec![(2, vec![row("a", 10.0, None)])]).is_empty());
    }
}
