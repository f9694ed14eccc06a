//! Each level over its own time: its measured requests cut into slices of
//! equal length by when they were scheduled, with the latency of each
//! slice. A level's figures are over the whole level; a queue that grew,
//! a cache that warmed, errors that began half-way or contexts that grew
//! over an agent run only show when the level is seen slice by slice.
//!
//! A slice is a span of scheduled time, not of completion time: the
//! requests of a slice are those the schedule sent in it, so a slice whose
//! TTFT is high is one whose arrivals waited. The slices of a level are
//! known only once the level's first and last scheduled times are, so the
//! pass keeps 16 bytes per measured row: its level number (with two flags
//! in the top bits: ok, compaction turn), its scheduled time (f64, so that
//! a request on a slice's edge falls where SQL on the same parts puts it)
//! and its prompt tokens.
//! Latency comes from the [`Store`], whose rows are in the same order.

use polars::prelude::*;

use super::frames::{LEVEL, Levels};
use super::stats::{is_ok, measured};
use super::store::{NO_GROUP, Store, Value};
use crate::error::{Error, PolarsContext, Result};
use crate::model::{Dist, GroupStats, fmt_value, round_sig};

/// Slices per level, at most.
pub const SLICES: usize = 10;
/// A level is cut into fewer slices when it has fewer than this many
/// measured requests per slice; one of fewer than two slices' worth has
/// no timeline.
pub const MIN_PER_SLICE: usize = 10;

/// The top bit of a row's level word: the request was ok.
const OK_BIT: u32 = 1 << 31;
/// The next bit: the request was a compaction turn.
const COMPACTION_BIT: u32 = 1 << 30;
/// The level number in a row's level word.
const LEVEL_MASK: u32 = !(OK_BIT | COMPACTION_BIT);

/// The measured rows read, in the store's order.
#[derive(Debug, Default)]
pub struct TimelineAcc {
    /// `LEVEL` number, with `OK_BIT` set for ok requests and
    /// `COMPACTION_BIT` for compaction turns; `NO_GROUP` when
    /// the row has no level or no scheduled time.
    level: Vec<u32>,
    /// Scheduled time, ms on the run clock.
    at: Vec<f64>,
    /// Prompt tokens of ok requests, else NaN.
    prompt: Vec<f32>,
    /// Highest level number read, plus one.
    n_levels: usize,
}

impl TimelineAcc {
    /// Add the measured rows of a batch of requests.
    pub fn add(&mut self, batch: &DataFrame) -> Result<()> {
        let what = || "the levels' timelines".to_string();
        // Polars computes each row's word and values column by column; the
        // columns are then appended as they are.
        let flag = |pred: Expr, bit: u32| {
            when(pred.fill_null(lit(false)))
                .then(lit(bit))
                .otherwise(lit(0u32))
        };
        let ok = is_ok().fill_null(lit(false));
        // Strictly below the mask: level LEVEL_MASK with both flags set
        // would read as NO_GROUP.
        let usable = col(LEVEL)
            .lt(lit(LEVEL_MASK))
            .and(col("scheduled_ms").is_not_null())
            .fill_null(lit(false));
        let word = when(usable)
            .then(
                col(LEVEL).cast(DataType::UInt32)
                    + flag(ok.clone(), OK_BIT)
                    + flag(col("compaction"), COMPACTION_BIT),
            )
            .otherwise(lit(NO_GROUP));
        let cols = batch
            .clone()
            .lazy()
            .filter(measured())
            .select([
                word.alias("__word"),
                col("scheduled_ms")
                    .cast(DataType::Float64)
                    .fill_null(lit(f64::NAN))
                    .alias("__at"),
                when(ok)
                    .then(col("prompt_tokens").cast(DataType::Float32))
                    .otherwise(lit(NULL).cast(DataType::Float32))
                    .fill_null(lit(f32::NAN))
                    .alias("__prompt"),
            ])
            .collect()
            .ctx(what)?;
        let column = |name: &str| {
            cols.column(name)
                .map(|c| c.as_materialized_series().rechunk())
                .ctx(what)
        };
        let (word, at, prompt) = (column("__word")?, column("__at")?, column("__prompt")?);
        let (word, at, prompt) = (
            word.u32().ctx(what)?,
            at.f64().ctx(what)?,
            prompt.f32().ctx(what)?,
        );
        let start = self.level.len();
        for arr in word.downcast_iter() {
            self.level.extend_from_slice(arr.values());
        }
        for arr in at.downcast_iter() {
            self.at.extend_from_slice(arr.values());
        }
        for arr in prompt.downcast_iter() {
            self.prompt.extend_from_slice(arr.values());
        }
        if self.at.len() != self.level.len() || self.prompt.len() != self.level.len() {
            return Err(Error::Internal(format!(
                "timelines: columns of {} rows read with {} and {} values",
                self.level.len(),
                self.at.len(),
                self.prompt.len()
            )));
        }
        let highest = self.level[start..]
            .iter()
            .filter(|&&w| w != NO_GROUP)
            .map(|&w| w & LEVEL_MASK)
            .max();
        if let Some(h) = highest {
            self.n_levels = self.n_levels.max(h as usize + 1);
        }
        Ok(())
    }

    /// The slices of every level with enough requests to cut, sorted by
    /// run, mode, value, round and time. `group` is the slice's span in
    /// seconds after the level's first scheduled request, `order` its
    /// middle.
    pub fn finish(self, levels: &Levels, store: &Store) -> Result<Vec<GroupStats>> {
        if self.level.len() != store.len() {
            return Err(Error::Internal(format!(
                "timelines: {} rows read, {} values stored",
                self.level.len(),
                store.len()
            )));
        }
        let n_levels = self.n_levels;
        // Per level: rows, earliest and latest scheduled time.
        let mut span = vec![(0usize, f64::INFINITY, f64::NEG_INFINITY); n_levels];
        for (&l, &t) in self.level.iter().zip(&self.at) {
            if l == NO_GROUP || !t.is_finite() {
                continue;
            }
            let s = &mut span[(l & LEVEL_MASK) as usize];
            s.0 += 1;
            s.1 = s.1.min(t);
            s.2 = s.2.max(t);
        }
        // Per level: its first group and how many slices it has.
        let mut cuts = Vec::with_capacity(n_levels);
        let mut n_groups = 0usize;
        for &(n, lo, hi) in &span {
            let slices = (n / MIN_PER_SLICE).min(SLICES);
            if slices < 2 || hi <= lo {
                cuts.push(None);
                continue;
            }
            cuts.push(Some(Cut {
                first_group: n_groups,
                slices,
                lo,
                width: (hi - lo) / slices as f64,
            }));
            n_groups += slices;
        }
        let mut group_of = vec![NO_GROUP; self.level.len()];
        let mut sums = vec![Sums::default(); n_groups];
        for (i, (&l, &t)) in self.level.iter().zip(&self.at).enumerate() {
            if l == NO_GROUP || !t.is_finite() {
                continue;
            }
            let Some(cut) = &cuts[(l & LEVEL_MASK) as usize] else {
                continue;
            };
            let g = cut.group(t);
            group_of[i] = g as u32;
            let s = &mut sums[g];
            s.requests += 1;
            if l & COMPACTION_BIT != 0 {
                s.compactions += 1;
            }
            if l & OK_BIT != 0 {
                s.ok += 1;
                let p = self.prompt[i];
                if !p.is_nan() {
                    s.prompt_n += 1;
                    s.prompt_sum += f64::from(p);
                }
            }
        }
        // The rows' times are no longer needed: free them before the
        // latency values are sorted into the slices.
        drop(self);
        let dists = |v: Value| store.dists(v, &group_of, n_groups);
        let (ttft, tpot, e2e) = (dists(Value::Ttft), dists(Value::Tpot), dists(Value::E2e));
        let mut out = Vec::with_capacity(n_groups);
        for (l, cut) in cuts.iter().enumerate() {
            let Some(cut) = cut else { continue };
            let Some(key) = u32::try_from(l).ok().and_then(|l| levels.key(l)) else {
                continue;
            };
            for k in 0..cut.slices {
                let g = cut.first_group + k;
                let s = &sums[g];
                let (start, end) = cut.seconds(k);
                out.push(GroupStats {
                    key: key.clone(),
                    group: format!(
                        "{}-{} s",
                        fmt_value(round_sig(start, 3)),
                        fmt_value(round_sig(end, 3))
                    ),
                    order: (start + end) / 2.0,
                    requests: s.requests,
                    ok: s.ok,
                    compactions: s.compactions,
                    prompt_tokens_mean: (s.prompt_n > 0).then(|| s.prompt_sum / s.prompt_n as f64),
                    ttft_ms: take(&ttft, g),
                    tpot_ms: take(&tpot, g),
                    e2e_ms: take(&e2e, g),
                });
            }
        }
        super::groups::sort_groups(&mut out);
        Ok(out)
    }
}

fn take(dists: &[Dist], g: usize) -> Dist {
    dists.get(g).cloned().unwrap_or_default()
}

/// How one level is cut: its slices are groups `first_group..+slices`.
#[derive(Debug, Clone, Copy)]
struct Cut {
    first_group: usize,
    slices: usize,
    /// Earliest scheduled time, ms on the run clock.
    lo: f64,
    /// Slice length, ms.
    width: f64,
}

impl Cut {
    /// The group of a row scheduled at `t`: slice `floor((t - lo) / width)`,
    /// the latest row in the last slice.
    fn group(&self, t: f64) -> usize {
        let k = ((t - self.lo) / self.width).floor();
        let k = if k.is_finite() && k > 0.0 {
            k as usize
        } else {
            0
        };
        self.first_group + k.min(self.slices - 1)
    }

    /// Slice `k`'s start and end, in seconds after the earliest scheduled time.
    fn seconds(&self, k: usize) -> (f64, f64) {
        let w = self.width / 1000.0;
        (k as f64 * w, (k + 1) as f64 * w)
    }
}

#[derive(Debug, Clone, Default)]
struct Sums {
    requests: u64,
    ok: u64,
    compactions: u64,
    prompt_n: u64,
    prompt_sum: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fall_in_equal_slices_and_the_last_in_the_last() {
        let cut = Cut {
            first_group: 3,
            slices: 4,
            lo: 100.0,
            width: 250.0,
        };
        assert_eq!(cut.group(100.0), 3);
        assert_eq!(cut.group(349.9), 3);
        assert_eq!(cut.group(350.0), 4);
        assert_eq!(cut.group(1100.0), 6);
        assert_eq!(cut.group(99.0), 3);
        assert_eq!(cut.seconds(1), (0.25, 0.5));
    }
}
