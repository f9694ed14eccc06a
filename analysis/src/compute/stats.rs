//! Building blocks of the queries: distribution aggregations, the level
//! key, and reading typed values back out of a collected `DataFrame`.

use std::cell::RefCell;
use std::collections::HashMap;

use polars::prelude::*;

use crate::error::{PolarsContext, Result};
use crate::model::{Dist, LevelKey, PERCENTILES};

/// Columns that identify a level.
pub const KEY_COLUMNS: [&str; 4] = ["run_id", "load_mode", "load_value", "round"];

/// The level key columns, as expressions.
pub fn key_exprs() -> Vec<Expr> {
    KEY_COLUMNS.iter().map(|c| col(*c)).collect()
}

/// `status = 'ok'`.
pub fn is_ok() -> Expr {
    col("status").eq(lit("ok"))
}

/// `values` where `pred` holds, else null: the elementwise form of
/// `values.filter(pred)` for aggregations that skip nulls, which Polars
/// computes on the whole column at once instead of group by group.
pub fn only(pred: Expr, values: Expr) -> Expr {
    when(pred).then(values).otherwise(lit(NULL))
}

/// Rows outside warm-up.
pub fn measured() -> Expr {
    col("warmup").not()
}

/// One percentile of a metric, aliased as given.
pub fn quantile(values: Expr, p: f64, alias: &str) -> Expr {
    values
        .cast(DataType::Float64)
        .quantile(lit(p), QuantileMethod::Linear)
        .alias(alias)
}

/// A value a distribution is taken of: `f64` columns, or the `f32`
/// inter-token gaps kept as they are stored (half the memory).
pub trait Sample: Copy + Into<f64> {
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering;
    fn is_nan(self) -> bool;
}

impl Sample for f64 {
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        a.total_cmp(b)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

impl Sample for f32 {
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        a.total_cmp(b)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

/// Arrivals (session starts) per second that a level achieved, as the
/// replay summary and the report both define it: `starts` arrivals, the
/// first scheduled and the last actually sent (ms), the level's duration.
/// - With a finite target rate: n arrivals at rate r span (n - 1) / r on
///   average, so one mean gap is added back to make n / span unbiased.
///   Burst arrivals come `group` at a time, a group every `group / r`:
///   n of them span (n - group) / r, so a group's gap is added back.
/// - Recorded timestamps (`trace`): the rate they were sent at, (n - 1)
///   gaps over their span, not diluted by the level's drain.
/// - Otherwise (closed loop): arrivals over the level's duration.
pub fn achieved_rate(
    load_mode: &str,
    target: Option<f64>,
    group: usize,
    starts: u64,
    first_scheduled_ms: Option<f64>,
    last_sent_ms: Option<f64>,
    duration_s: f64,
) -> f64 {
    let n = starts as f64;
    match (target, first_scheduled_ms, last_sent_ms) {
        (Some(t), Some(first), Some(last)) if t.is_finite() && t > 0.0 && n > 0.0 => {
            n / ((last - first).max(0.0) / 1000.0 + group.max(1) as f64 / t)
        }
        (_, Some(first), Some(last)) if load_mode == "trace" && n >= 2.0 && last > first => {
            (n - 1.0) / ((last - first) / 1000.0)
        }
        _ if duration_s > 0.0 => n / duration_s,
        _ => 0.0,
    }
}

/// The relative standard error of a rate estimated from `arrivals`
/// random arrivals: about 1/√n.
pub fn rate_standard_error(arrivals: u64) -> f64 {
    1.0 / (arrivals.max(1) as f64).sqrt()
}

/// Whether an achieved rate fell short of a finite target by more than
/// chance explains: beyond 10 % and beyond 3 standard errors of its arrivals.
pub fn rate_short_of_target(achieved: f64, target: Option<f64>, arrivals: u64) -> bool {
    let tolerance = (3.0 * rate_standard_error(arrivals)).max(0.1);
    target.is_some_and(|t| t.is_finite() && achieved < (1.0 - tolerance) * t)
}

/// Linear-interpolation quantiles (DuckDB's `quantile_cont`) of unsorted
/// values, `ps` rising, in 0..=1: the value at position (n - 1)·p, found by
/// selection rather than a full sort, interpolated in `f64`. Each
/// selection works only on the part right of the previous one, which the
/// previous selection left holding the larger values.
pub fn quantiles_of<T: Sample>(values: &mut [T], ps: &[f64]) -> Vec<Option<f64>> {
    let n = values.len();
    if n == 0 {
        return vec![None; ps.len()];
    }
    let mut start = 0;
    ps.iter()
        .map(|p| {
            let h = (n - 1) as f64 * p;
            let lo = (h.floor() as usize).min(n - 1);
            if lo >= start {
                values[start..].select_nth_unstable_by(lo - start, T::order);
                start = lo + 1;
            }
            let a: f64 = values[lo].into();
            let frac = h - lo as f64;
            if frac == 0.0 || lo + 1 >= n {
                return Some(a);
            }
            let b = values[lo + 1..]
                .iter()
                .map(|x| (*x).into())
                .fold(f64::INFINITY, f64::min);
            Some(a + (b - a) * frac)
        })
        .collect()
}

/// The distribution of a buffer of values (NaN left out), with the same
/// definitions as DuckDB's count, avg, stddev_samp, min, quantile_cont and
/// max; sums in `f64`.
pub fn dist_of<T: Sample>(mut values: Vec<T>) -> Dist {
    values.retain(|x| !x.is_nan());
    dist_of_slice(&mut values)
}

/// [`dist_of`] of values with no NaN among them, reordered in place.
pub fn dist_of_slice<T: Sample>(values: &mut [T]) -> Dist {
    let n = values.len();
    if n == 0 {
        return Dist::default();
    }
    let as_f64 = |x: &T| -> f64 { (*x).into() };
    let mean = values.iter().map(as_f64).sum::<f64>() / n as f64;
    let std = (n > 1).then(|| {
        let ss: f64 = values
            .iter()
            .map(|x| (as_f64(x) - mean) * (as_f64(x) - mean))
            .sum();
        (ss / (n - 1) as f64).sqrt()
    });
    let min = values.iter().map(as_f64).fold(f64::INFINITY, f64::min);
    let max = values.iter().map(as_f64).fold(f64::NEG_INFINITY, f64::max);
    let q = quantiles_of(values, &PERCENTILES.map(|p| p / 100.0));
    assemble(n, mean, std, (min, max), &q)
}

/// A [`Dist`] of `n` values from its figures; `q` holds the
/// [`PERCENTILES`] in order.
fn assemble(
    n: usize,
    mean: f64,
    std: Option<f64>,
    (min, max): (f64, f64),
    q: &[Option<f64>],
) -> Dist {
    Dist {
        count: n as u64,
        mean: Some(mean),
        std,
        min: Some(min),
        p50: q[0],
        p90: q[1],
        p95: q[2],
        p99: q[3],
        max: Some(max),
    }
}

/// [`dist_of`] of `f32` values kept in [`Blocks`] (the inter-token
/// gaps), the same figures without joining the blocks into one buffer:
/// the sums are taken in the same order, and the order statistics the
/// percentiles need are found by a radix selection. One pass counts the
/// values by the top 16 bits of a key that sorts like `f32::total_cmp`,
/// which tells the bucket of every wanted rank; a second pass gathers
/// only those buckets' values, and the ranks are selected within them.
/// Two linear passes instead of a copy of every value and a selection
/// per percentile over millions of them.
pub fn dist_of_blocks(blocks: &Blocks<f32>) -> Dist {
    // First pass: the count, sum, extremes and bucket counts, each
    // accumulated in the order of `dist_of` (so the same sums).
    let mut buckets = vec![0u64; 1 << 16];
    let (mut n, mut sum) = (0usize, -0.0f64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for slice in blocks.slices() {
        for &x in slice.iter().filter(|x| !x.is_nan()) {
            buckets[(order_key(x) >> 16) as usize] += 1;
            n += 1;
            let v = f64::from(x);
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
    }
    if n == 0 {
        return Dist::default();
    }
    let mean = sum / n as f64;
    // The ranks each percentile reads: (n - 1)·p and, to interpolate, the
    // next one (as `quantiles_of`).
    let spots: Vec<(usize, f64)> = PERCENTILES
        .iter()
        .map(|p| {
            let h = (n - 1) as f64 * (p / 100.0);
            let lo = (h.floor() as usize).min(n - 1);
            (lo, h - lo as f64)
        })
        .collect();
    let mut ranks: Vec<usize> = spots
        .iter()
        .flat_map(|&(lo, frac)| {
            let next = (frac != 0.0 && lo + 1 < n).then_some(lo + 1);
            std::iter::once(lo).chain(next)
        })
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    // The bucket of each rank, and the rank within it.
    let mut slot_of_bucket = vec![u16::MAX; buckets.len()];
    let mut wanted: Vec<(usize, usize)> = Vec::with_capacity(ranks.len());
    let mut gathered: Vec<Vec<f32>> = Vec::new();
    let (mut bucket, mut below) = (0usize, 0u64);
    for &rank in &ranks {
        while below + buckets[bucket] <= rank as u64 {
            below += buckets[bucket];
            bucket += 1;
        }
        if slot_of_bucket[bucket] == u16::MAX {
            slot_of_bucket[bucket] = gathered.len() as u16;
            gathered.push(Vec::with_capacity(buckets[bucket] as usize));
        }
        wanted.push((slot_of_bucket[bucket] as usize, rank - below as usize));
    }
    // Second pass: the squared deviations, and the wanted buckets' values.
    let mut ss = -0.0f64;
    for slice in blocks.slices() {
        for &x in slice.iter().filter(|x| !x.is_nan()) {
            ss += (f64::from(x) - mean) * (f64::from(x) - mean);
            let slot = slot_of_bucket[(order_key(x) >> 16) as usize];
            if slot != u16::MAX {
                gathered[slot as usize].push(x);
            }
        }
    }
    let std = (n > 1).then(|| (ss / (n - 1) as f64).sqrt());
    let mut ranked = std::collections::HashMap::with_capacity(ranks.len());
    for (&rank, &(slot, within)) in ranks.iter().zip(&wanted) {
        let bucket = &mut gathered[slot];
        let (_, x, _) = bucket.select_nth_unstable_by(within, f32::total_cmp);
        ranked.insert(rank, f64::from(*x));
    }
    let q: Vec<Option<f64>> = spots
        .iter()
        .map(|&(lo, frac)| {
            let a = ranked[&lo];
            if frac == 0.0 || lo + 1 >= n {
                return Some(a);
            }
            Some(a + (ranked[&(lo + 1)] - a) * frac)
        })
        .collect();
    assemble(n, mean, std, (min, max), &q)
}

/// `x`'s bits, mapped so that unsigned order is `f32::total_cmp`'s order.
fn order_key(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

/// Values per block of [`Blocks`]: 512 KB of `f64`.
const BLOCK: usize = 1 << 16;

/// Values gathered for a distribution, in blocks. A `Vec` doubles and
/// copies as it grows, so a few large buffers can hold up to twice their
/// size; blocks have at most one block of spare room, and are joined into
/// one buffer only when the distribution is taken, a group at a time,
/// each block freed as soon as it is copied.
#[derive(Debug, Default)]
pub struct Blocks<T> {
    full: Vec<Vec<T>>,
    current: Vec<T>,
}

impl<T: Copy> Blocks<T> {
    fn next_block(&mut self) {
        let done = std::mem::replace(&mut self.current, Vec::with_capacity(BLOCK));
        self.full.push(done);
    }

    pub fn push(&mut self, v: T) {
        if self.current.len() == BLOCK {
            self.next_block();
        }
        self.current.push(v);
    }

    pub fn extend_from_slice(&mut self, mut values: &[T]) {
        while !values.is_empty() {
            if self.current.len() == BLOCK {
                self.next_block();
            }
            let room = BLOCK - self.current.len();
            let (now, rest) = values.split_at(room.min(values.len()));
            self.current.extend_from_slice(now);
            values = rest;
        }
    }

    pub fn len(&self) -> usize {
        self.full.len() * BLOCK + self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values, block by block, in the order pushed.
    pub fn slices(&self) -> impl Iterator<Item = &[T]> {
        self.full
            .iter()
            .map(Vec::as_slice)
            .chain(std::iter::once(self.current.as_slice()))
    }

    pub fn into_vec(self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        for block in self.full {
            out.extend_from_slice(&block);
        }
        out.extend_from_slice(&self.current);
        out
    }
}

/// Typed access to a collected frame's cells.
pub struct Frame {
    df: DataFrame,
    /// Columns already cast, by `name/dtype`.
    cache: RefCell<HashMap<String, Series>>,
}

impl Frame {
    pub fn collect(lf: LazyFrame, what: &str) -> Result<Self> {
        let df = lf.collect().ctx(|| format!("computing {what}"))?;
        Ok(Self::from_df(df))
    }

    pub fn from_df(df: DataFrame) -> Self {
        Self {
            df,
            cache: RefCell::new(HashMap::new()),
        }
    }

    pub fn into_df(self) -> DataFrame {
        self.df
    }

    pub fn height(&self) -> usize {
        self.df.height()
    }

    fn series(&self, name: &str, dtype: &DataType) -> Result<Series> {
        let cache_key = format!("{name}/{dtype}");
        if let Some(s) = self.cache.borrow().get(&cache_key) {
            return Ok(s.clone());
        }
        let s = self.cast(name, dtype)?;
        self.cache.borrow_mut().insert(cache_key, s.clone());
        Ok(s)
    }

    fn cast(&self, name: &str, dtype: &DataType) -> Result<Series> {
        let c = self
            .df
            .column(name)
            .ctx(|| format!("reading column {name}"))?;
        c.as_materialized_series()
            .cast(dtype)
            .ctx(|| format!("reading column {name} as {dtype}"))
    }

    /// A float cell; NaN and null are `None`.
    pub fn f64(&self, name: &str, row: usize) -> Result<Option<f64>> {
        let s = self.series(name, &DataType::Float64)?;
        let v = s.f64().ctx(|| format!("column {name}"))?.get(row);
        Ok(v.filter(|x| !x.is_nan()))
    }

    /// A float cell kept as is (infinity included); null is `None`.
    pub fn f64_raw(&self, name: &str, row: usize) -> Result<Option<f64>> {
        let s = self.series(name, &DataType::Float64)?;
        Ok(s.f64().ctx(|| format!("column {name}"))?.get(row))
    }

    pub fn u64(&self, name: &str, row: usize) -> Result<u64> {
        let s = self.series(name, &DataType::UInt64)?;
        Ok(s.u64()
            .ctx(|| format!("column {name}"))?
            .get(row)
            .unwrap_or(0))
    }

    pub fn opt_u64(&self, name: &str, row: usize) -> Result<Option<u64>> {
        let s = self.series(name, &DataType::UInt64)?;
        Ok(s.u64().ctx(|| format!("column {name}"))?.get(row))
    }

    pub fn str(&self, name: &str, row: usize) -> Result<Option<String>> {
        let s = self.series(name, &DataType::String)?;
        Ok(s.str()
            .ctx(|| format!("column {name}"))?
            .get(row)
            .map(str::to_string))
    }

    pub fn key(&self, row: usize) -> Result<LevelKey> {
        Ok(LevelKey {
            run_id: self.str("run_id", row)?.unwrap_or_default(),
            load_mode: self.str("load_mode", row)?.unwrap_or_default(),
            load_value: self.f64_raw("load_value", row)?.unwrap_or(f64::NAN),
            round: u32::try_from(self.u64("round", row)?).unwrap_or(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_quantiles_match_quantile_cont() {
        let d = dist_of(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(d.count, 4);
        assert_eq!(d.min, Some(1.0));
        assert_eq!(d.max, Some(4.0));
        assert_eq!(d.p50, Some(2.5));
        assert!((d.p90.expect("p90") - 3.7).abs() < 1e-12);
        assert!((d.p99.expect("p99") - 3.97).abs() < 1e-12);
        assert!((d.std.expect("std") - 1.2909944487358056).abs() < 1e-12);
        let one = dist_of(vec![5.0]);
        assert_eq!((one.p50, one.p99, one.std), (Some(5.0), Some(5.0), None));
        assert_eq!(dist_of(vec![f64::NAN]), Dist::default());
        let gaps = dist_of(vec![4.0f32, 1.0, 3.0, 2.0]);
        assert_eq!((gaps.p50, gaps.max), (Some(2.5), Some(4.0)));
        assert!((gaps.p90.expect("p90") - 3.7).abs() < 1e-12);
    }

    #[test]
    fn blocks_give_the_distribution_of_the_joined_buffer() {
        // A small linear congruential generator: no dependency, the same
        // values every run.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        let mut cases: Vec<Vec<f32>> = vec![
            vec![],
            vec![f32::NAN],
            vec![7.5],
            vec![2.0, 1.0],
            vec![4.0, 1.0, 3.0, 2.0],
            vec![-0.0, 0.0, -1.5, f32::NAN, 3.25, -0.0],
            vec![12.0; 1000],
            vec![-0.0; 3],
        ];
        // Gaps-like values (a few distinct ones, many repeats), spread
        // values over many exponents with negatives and NaN, and one
        // value that fills a whole bucket, each across several blocks.
        cases.push(
            (0..BLOCK + 4321)
                .map(|_| 10.0 + (next() % 50) as f32 * 0.5)
                .collect(),
        );
        cases.push(
            (0..2 * BLOCK + 99)
                .map(|i| match i % 97 {
                    0 => f32::NAN,
                    1 => -(next() as f32),
                    _ => f32::from_bits(next() % 0x7f00_0000),
                })
                .collect(),
        );
        cases.push(
            (0..BLOCK + 1)
                .map(|i| 3.0 + (i % 2) as f32 * 1e-6)
                .collect(),
        );
        for values in cases {
            let mut blocks = Blocks::default();
            blocks.extend_from_slice(&values);
            let want = format!("{:?}", dist_of(values.clone()));
            let got = format!("{:?}", dist_of_blocks(&blocks));
            assert_eq!(got, want, "{} values", values.len());
        }
    }

    #[test]
    fn blocks_keep_every_value_in_order() {
        let mut b = Blocks::default();
        let values: Vec<u32> = (0..(3 * BLOCK as u32 + 17)).collect();
        b.extend_from_slice(&values[..BLOCK - 1]);
        b.push(values[BLOCK - 1]);
        b.push(values[BLOCK]);
        b.extend_from_slice(&values[BLOCK + 1..]);
        assert_eq!(b.len(), values.len());
        assert_eq!(b.into_vec(), values);
        assert!(Blocks::<f64>::default().is_empty());
    }

    /// Against a full sort, on values with many ties and in every order.
    #[test]
    fn nested_selection_matches_a_sort() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in [1usize, 2, 3, 5, 10, 101, 1000, 4099] {
            let values: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 50) as f64
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let at = |p: f64| {
                let h = (n - 1) as f64 * p;
                let lo = h.floor() as usize;
                let hi = (lo + 1).min(n - 1);
                sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo as f64)
            };
            let d = dist_of(values);
            for (got, p) in [(d.p50, 0.5), (d.p90, 0.9), (d.p95, 0.95), (d.p99, 0.99)] {
                let want = at(p);
                assert!((got.expect("quantile") - want).abs() < 1e-9, "n={n} p={p}");
            }
        }
    }
}
