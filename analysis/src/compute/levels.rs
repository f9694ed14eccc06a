//! Per-level statistics: counts, rates, throughput, latency distributions,
//! lateness, cached tokens, goodput. Warm-up requests are left out.
//!
//! Definitions match `trace replay`'s own summary (src/replay/summary.rs):
//! duration runs from the first scheduled send to the last byte; the
//! achieved rate counts session starts (first turns) over the span of their
//! sends plus one mean gap of the target rate.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::stats::{Frame, dist_exprs, is_ok, key_exprs, measured, quantile};
use crate::error::{PolarsContext, Result};
use crate::model::{Dist, LevelKey, LevelStats, Slo};
use crate::run::RunFiles;

/// Arrival lateness p99 over which an uncapped open-loop level is the
/// client's fault.
const CLIENT_BEHIND_MS: f64 = 10.0;

/// `ok` and within every SLO set (a request with no TPOT passes the TPOT SLO).
pub fn meets_slo(slo: &Slo) -> Expr {
    let mut e = is_ok();
    if let Some(t) = slo.ttft_ms {
        e = e.and(col("ttft_ms").lt_eq(lit(t)).fill_null(lit(false)));
    }
    if let Some(t) = slo.tpot_ms {
        e = e.and(
            col("tpot_ms")
                .is_null()
                .or(col("tpot_ms").lt_eq(lit(t)))
                .fill_null(lit(false)),
        );
    }
    if let Some(t) = slo.e2e_ms {
        e = e.and(col("e2e_ms").lt_eq(lit(t)).fill_null(lit(false)));
    }
    e.fill_null(lit(false))
}

fn count_if(pred: Expr) -> Expr {
    pred.cast(DataType::UInt64).sum()
}

fn sum_f64(e: Expr) -> Expr {
    e.cast(DataType::Float64).sum()
}

fn main_aggs(slo: &Slo) -> Vec<Expr> {
    let ok = is_ok();
    let first = col("turn").eq(lit(0u32));
    let mut aggs = vec![
        len().cast(DataType::UInt64).alias("requests"),
        count_if(ok.clone()).alias("ok"),
        col("scheduled_ms").min().alias("start_ms"),
        col("end_ms").max().alias("end_ms"),
        count_if(first.clone()).alias("starts"),
        col("scheduled_ms")
            .filter(first.clone())
            .min()
            .alias("starts_first_scheduled"),
        col("sent_ms")
            .filter(first.clone())
            .max()
            .alias("starts_last_sent"),
        sum_f64(col("prompt_tokens").filter(ok.clone())).alias("in_tokens"),
        sum_f64(col("completion_tokens").filter(ok.clone())).alias("out_tokens"),
        sum_f64(col("cached_tokens").filter(ok.clone())).alias("cached"),
        sum_f64(col("prompt_tokens").filter(ok.clone().and(col("cached_tokens").is_not_null())))
            .alias("cached_base"),
        count_if(meets_slo(slo)).alias("good"),
        quantile(col("lateness_ms"), 0.50, "lateness_p50"),
        quantile(col("lateness_ms"), 0.99, "lateness_p99"),
        quantile(
            col("lateness_ms").filter(first),
            0.99,
            "arrival_lateness_p99",
        ),
    ];
    aggs.extend(dist_exprs("ttft", col("ttft_ms").filter(ok.clone())));
    aggs.extend(dist_exprs("tpot", col("tpot_ms").filter(ok.clone())));
    aggs.extend(dist_exprs("e2e", col("e2e_ms").filter(ok)));
    aggs
}

/// Statistics of every level of every run, in run order, then mode, value
/// and round.
pub fn level_stats(lf: &LazyFrame, runs: &[RunFiles], slo: &Slo) -> Result<Vec<LevelStats>> {
    let main = Frame::collect(
        lf.clone()
            .filter(measured())
            .group_by(key_exprs())
            .agg(main_aggs(slo)),
        "per-level statistics",
    )?;
    let level_keys = (0..main.height())
        .map(|i| main.key(i))
        .collect::<Result<Vec<_>>>()?;
    let itl = itl_by_level(lf, &level_keys)?;
    let warmup = warmup_by_level(lf)?;
    let (errors, errors_detail) = errors_by_level(lf)?;
    let mut out = Vec::with_capacity(main.height());
    for i in 0..main.height() {
        let key = main.key(i)?;
        let requests = main.u64("requests", i)?;
        let ok = main.u64("ok", i)?;
        let start = main.f64("start_ms", i)?.unwrap_or(0.0);
        let end = main.f64("end_ms", i)?.unwrap_or(0.0);
        let duration_s = if requests == 0 {
            0.0
        } else {
            ((end - start) / 1000.0).max(1e-9)
        };
        let per_s = |x: f64| {
            if duration_s > 0.0 {
                x / duration_s
            } else {
                0.0
            }
        };
        let target_rate =
            (key.load_mode == "qps" && key.load_value.is_finite()).then_some(key.load_value);
        let starts = main.u64("starts", i)? as f64;
        let achieved_rate = match (
            target_rate,
            main.f64("starts_first_scheduled", i)?,
            main.f64("starts_last_sent", i)?,
        ) {
            (Some(t), Some(first), Some(last)) if t > 0.0 && starts > 0.0 => {
                starts / ((last - first).max(0.0) / 1000.0 + 1.0 / t)
            }
            _ => per_s(starts),
        };
        let cached_base = main.f64("cached_base", i)?.unwrap_or(0.0);
        let good = main.u64("good", i)? as f64;
        let arrival_p99 = main.f64("arrival_lateness_p99", i)?;
        let capped = runs
            .iter()
            .filter(|r| r.run_id == key.run_id)
            .filter_map(|r| r.run_json.as_ref())
            .any(|j| {
                j.capped_levels
                    .iter()
                    .any(|(m, v)| *m == key.load_mode && v.to_bits() == key.load_value.to_bits())
            });
        let label = level_label(&key);
        out.push(LevelStats {
            requests,
            ok,
            warmup_requests: warmup.get(&label).copied().unwrap_or(0),
            errors: errors.get(&label).cloned().unwrap_or_default(),
            errors_detail: errors_detail.get(&label).cloned().unwrap_or_default(),
            success_pct: if requests == 0 {
                0.0
            } else {
                100.0 * ok as f64 / requests as f64
            },
            duration_s,
            first_scheduled_ms: start,
            last_end_ms: end,
            target_rate,
            arrivals: starts as u64,
            achieved_rate,
            request_rate: per_s(requests as f64),
            input_tokens_per_s: per_s(main.f64("in_tokens", i)?.unwrap_or(0.0)),
            output_tokens_per_s: per_s(main.f64("out_tokens", i)?.unwrap_or(0.0)),
            ttft_ms: main.dist("ttft", i)?,
            tpot_ms: main.dist("tpot", i)?,
            itl_ms: itl.get(&label).cloned().unwrap_or_default(),
            e2e_ms: main.dist("e2e", i)?,
            lateness_p50_ms: main.f64("lateness_p50", i)?,
            lateness_p99_ms: main.f64("lateness_p99", i)?,
            arrival_lateness_p99_ms: arrival_p99,
            client_behind: target_rate.is_some()
                && !capped
                && arrival_p99.is_some_and(|p| p > CLIENT_BEHIND_MS),
            cached_token_ratio: (cached_base > 0.0)
                .then(|| main.f64("cached", i).ok().flatten().unwrap_or(0.0) / cached_base),
            goodput: slo.is_set().then(|| per_s(good)),
            slo_attainment_pct: (slo.is_set() && requests > 0)
                .then(|| 100.0 * good / requests as f64),
            server: None,
            key,
        });
    }
    let order: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    out.sort_by(|a, b| level_order(&order, &a.key, &b.key));
    Ok(out)
}

/// Runs in the order given, then mode, value and round.
pub fn level_order(runs: &[&str], a: &LevelKey, b: &LevelKey) -> std::cmp::Ordering {
    let pos = |k: &LevelKey| {
        runs.iter()
            .position(|r| *r == k.run_id)
            .unwrap_or(usize::MAX)
    };
    pos(a)
        .cmp(&pos(b))
        .then_with(|| a.load_mode.cmp(&b.load_mode))
        .then_with(|| a.load_value.total_cmp(&b.load_value))
        .then_with(|| a.round.cmp(&b.round))
}

/// A map key for a level.
pub fn level_label(k: &LevelKey) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        k.run_id,
        k.load_mode,
        k.load_value.to_bits(),
        k.round
    )
}

/// Inter-token latency per level. The gaps of a level are read on their
/// own (row-group statistics skip the other levels' parts) and their
/// distribution is computed in one buffer: exploding the list column
/// beside the level keys and grouping would copy the keys once per gap.
fn itl_by_level(lf: &LazyFrame, keys: &[LevelKey]) -> Result<BTreeMap<String, Dist>> {
    let mut out = BTreeMap::new();
    for key in keys {
        let level = col("run_id")
            .eq(lit(key.run_id.clone()))
            .and(col("load_mode").eq(lit(key.load_mode.clone())))
            .and(col("load_value").eq(lit(key.load_value)))
            .and(col("round").eq(lit(key.round)));
        let df = lf
            .clone()
            .filter(level.and(measured()).and(is_ok()))
            .select([col("itl_ms")])
            .collect()
            .ctx(|| format!("reading the inter-token gaps of {}", key.label()))?;
        let gaps = df
            .column("itl_ms")
            .and_then(|c| {
                c.as_materialized_series().explode(ExplodeOptions {
                    empty_as_null: false,
                    keep_nulls: false,
                })
            })
            .and_then(|s| s.cast(&DataType::Float64))
            .ctx(|| format!("exploding the inter-token gaps of {}", key.label()))?;
        let values: Vec<f64> = gaps
            .f64()
            .ctx(|| "inter-token gaps as numbers".to_string())?
            .iter()
            .flatten()
            .collect();
        out.insert(level_label(key), super::stats::dist_of(values));
    }
    Ok(out)
}

fn warmup_by_level(lf: &LazyFrame) -> Result<BTreeMap<String, u64>> {
    let f = Frame::collect(
        lf.clone()
            .filter(col("warmup"))
            .group_by(key_exprs())
            .agg([len().cast(DataType::UInt64).alias("n")]),
        "warm-up counts",
    )?;
    let mut out = BTreeMap::new();
    for i in 0..f.height() {
        out.insert(level_label(&f.key(i)?), f.u64("n", i)?);
    }
    Ok(out)
}

type Counts = BTreeMap<String, BTreeMap<String, u64>>;

fn errors_by_level(lf: &LazyFrame) -> Result<(Counts, Counts)> {
    let mut by = key_exprs();
    by.extend([col("status"), col("http_status")]);
    let f = Frame::collect(
        lf.clone()
            .filter(measured().and(is_ok().not()))
            .group_by(by)
            .agg([len().cast(DataType::UInt64).alias("n")]),
        "errors per level",
    )?;
    let mut errors: Counts = BTreeMap::new();
    let mut detail: Counts = BTreeMap::new();
    for i in 0..f.height() {
        let label = level_label(&f.key(i)?);
        let status = f.str("status", i)?.unwrap_or_else(|| "unknown".into());
        let n = f.u64("n", i)?;
        *errors
            .entry(label.clone())
            .or_default()
            .entry(status.clone())
            .or_insert(0) += n;
        let d = match f.opt_u64("http_status", i)? {
            Some(code) if status == "http_error" => format!("{status} {code}"),
            _ => status,
        };
        *detail.entry(label).or_default().entry(d).or_insert(0) += n;
    }
    Ok((errors, detail))
}
