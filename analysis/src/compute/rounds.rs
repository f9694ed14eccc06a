//! Rounds: with `--rounds`, every request of a level is replayed again.
//! Each round k ≥ 2 is joined to round 1 request by request (`request_id`
//! within the same run and level), over requests ok in both rounds.

use polars::prelude::*;

use super::frames;
use super::stats::{Frame, is_ok, measured, quantile};
use crate::error::Result;
use crate::model::{LevelKey, LevelStats, RoundDelta};
use crate::run::RunFiles;

const LEVEL: [&str; 3] = ["run_id", "load_mode", "load_value"];

fn side(lf: &LazyFrame, round_filter: Expr, suffix: &str) -> LazyFrame {
    let mut cols: Vec<Expr> = LEVEL.iter().map(|c| col(*c)).collect();
    cols.push(col("request_id"));
    if suffix == "k" {
        cols.push(col("round"));
    }
    cols.extend([
        col("ttft_ms")
            .cast(DataType::Float64)
            .alias(format!("ttft_{suffix}")),
        col("cached_tokens")
            .cast(DataType::Float64)
            .alias(format!("cached_{suffix}")),
        col("prompt_tokens")
            .cast(DataType::Float64)
            .alias(format!("prompt_{suffix}")),
    ]);
    lf.clone()
        .filter(measured().and(is_ok()).and(round_filter))
        .select(cols)
}

fn ratio(cached: &str, prompt: &str) -> Expr {
    let has = col(cached).is_not_null();
    col(cached).sum() / col(prompt).filter(has).sum()
}

/// The deltas of every level replayed in more than one round. Only those
/// levels' `request_id`s are read, one level at a time (the parts of the
/// others are skipped by their statistics), so that the join holds one
/// level's requests, not the run's.
pub fn all_levels(runs: &[RunFiles], levels: &[LevelStats]) -> Result<Vec<RoundDelta>> {
    let mut done: Vec<&LevelKey> = Vec::new();
    let mut out = Vec::new();
    for key in levels.iter().map(|l| &l.key).filter(|k| k.round > 1) {
        let same = |d: &&LevelKey| {
            d.run_id == key.run_id
                && d.load_mode == key.load_mode
                && d.load_value.to_bits() == key.load_value.to_bits()
        };
        if done.iter().any(same) {
            continue;
        }
        done.push(key);
        let Some(run) = runs.iter().find(|r| r.run_id == key.run_id) else {
            continue;
        };
        let lf = frames::requests(std::slice::from_ref(run))?.filter(
            col("load_mode")
                .eq(lit(key.load_mode.clone()))
                .and(col("load_value").eq(lit(key.load_value))),
        );
        out.extend(deltas(&lf)?);
    }
    sort(&mut out);
    Ok(out)
}

fn sort(out: &mut [RoundDelta]) {
    out.sort_by(|a, b| {
        (&a.run_id, &a.load_mode)
            .cmp(&(&b.run_id, &b.load_mode))
            .then(a.load_value.total_cmp(&b.load_value))
            .then(a.round.cmp(&b.round))
    });
}

pub fn deltas(lf: &LazyFrame) -> Result<Vec<RoundDelta>> {
    let first = side(lf, col("round").eq(lit(1u32)), "1");
    let later = side(lf, col("round").gt(lit(1u32)), "k");
    let on: Vec<Expr> = LEVEL
        .iter()
        .map(|c| col(*c))
        .chain([col("request_id")])
        .collect();
    let joined = later.join(first, on.clone(), on, JoinArgs::new(JoinType::Inner));
    let mut by: Vec<Expr> = LEVEL.iter().map(|c| col(*c)).collect();
    by.push(col("round"));
    let delta = col("ttft_k") - col("ttft_1");
    let f = Frame::collect(
        joined.group_by(by).agg([
            len().cast(DataType::UInt64).alias("pairs"),
            quantile(col("ttft_1"), 0.5, "ttft_1_p50"),
            quantile(col("ttft_k"), 0.5, "ttft_k_p50"),
            delta.clone().mean().alias("delta_mean"),
            quantile(delta, 0.5, "delta_p50"),
            col("cached_1").sum().alias("cached_1"),
            col("cached_k").sum().alias("cached_k"),
            col("cached_1").count().alias("cached_1_n"),
            col("cached_k").count().alias("cached_k_n"),
            ratio("cached_1", "prompt_1").alias("ratio_1"),
            ratio("cached_k", "prompt_k").alias("ratio_k"),
        ]),
        "round-to-round deltas",
    )?;
    let mut out = Vec::with_capacity(f.height());
    for i in 0..f.height() {
        let key = f.key(i)?;
        let reported = |n: &str, v: &str| -> Result<Option<f64>> {
            Ok(if f.u64(n, i)? > 0 { f.f64(v, i)? } else { None })
        };
        out.push(RoundDelta {
            pairs: f.u64("pairs", i)?,
            ttft_first_p50_ms: f.f64("ttft_1_p50", i)?,
            ttft_this_p50_ms: f.f64("ttft_k_p50", i)?,
            ttft_delta_mean_ms: f.f64("delta_mean", i)?,
            ttft_delta_p50_ms: f.f64("delta_p50", i)?,
            cached_tokens_first: reported("cached_1_n", "cached_1")?,
            cached_tokens_this: reported("cached_k_n", "cached_k")?,
            cached_ratio_first: reported("cached_1_n", "ratio_1")?.filter(|r| r.is_finite()),
            cached_ratio_this: reported("cached_k_n", "ratio_k")?.filter(|r| r.is_finite()),
            run_id: key.run_id,
            load_mode: key.load_mode,
            load_value: key.load_value,
            round: key.round,
        });
    }
    sort(&mut out);
    Ok(out)
}
