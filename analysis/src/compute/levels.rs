//! Per-level statistics: counts, rates, throughput, latency distributions,
//! lateness, cached tokens, goodput. Warm-up requests are left out.
//!
//! Definitions match `trace replay`'s own summary (src/replay/summary.rs):
//! duration runs from the first scheduled send to the last byte; the
//! achieved rate counts session starts (first turns) over the span of their
//! sends plus one mean gap of the target rate.

use std::collections::BTreeMap;

use polars::prelude::*;
use rayon::prelude::*;

use super::frames::{self, LEVEL, Levels};
use super::grouped::{Agg, Grouped, GroupedAcc, Metric};
use super::stats::{self, Blocks, Frame, is_ok, measured, only};
use super::store::{Store, Value};
use crate::error::{PolarsContext, Result};
use crate::model::{Dist, LevelKey, LevelStats, Slo};
use crate::notes::{TtftTrend, fell_behind, is_open_loop};
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

fn main_aggs(slo: &Slo) -> Vec<(&'static str, Agg)> {
    let ok = is_ok();
    let first = col("turn").eq(lit(0u32));
    vec![
        ("requests", Agg::Len),
        ("ok", Agg::Sum(ok.clone())),
        ("start_ms", Agg::Min(col("scheduled_ms"))),
        ("end_ms", Agg::Max(col("end_ms"))),
        ("starts", Agg::Sum(first.clone())),
        (
            "starts_first_scheduled",
            Agg::Min(only(first.clone(), col("scheduled_ms"))),
        ),
        ("starts_last_sent", Agg::Max(only(first, col("sent_ms")))),
        (
            "in_tokens",
            Agg::Sum(only(ok.clone(), col("prompt_tokens"))),
        ),
        (
            "out_tokens",
            Agg::Sum(only(ok.clone(), col("completion_tokens"))),
        ),
        ("cached", Agg::Sum(only(ok.clone(), col("cached_tokens")))),
        (
            "cached_base",
            Agg::Sum(only(
                ok.and(col("cached_tokens").is_not_null()),
                col("prompt_tokens"),
            )),
        ),
        ("good", Agg::Sum(meets_slo(slo))),
        ("asked", Agg::Sum(only(asked(), col("max_tokens")))),
        (
            "asked_got",
            Agg::Sum(only(asked(), col("completion_tokens"))),
        ),
        (
            "stopped_short",
            Agg::Sum(asked().and(col("completion_tokens").lt(col("max_tokens")))),
        ),
        (
            "tokens_counted",
            Agg::Sum(
                is_ok()
                    .and(col("tokens_source").eq(lit("counted")))
                    .fill_null(lit(false)),
            ),
        ),
        (
            "tokens_unknown",
            Agg::Sum(
                is_ok()
                    .and(col("tokens_source").is_null())
                    .fill_null(lit(false)),
            ),
        ),
        (
            "tokens_tokenized",
            Agg::Sum(
                is_ok()
                    .and(col("tokens_source").eq(lit("tokenized")))
                    .fill_null(lit(false)),
            ),
        ),
        (
            "chunk_tokens",
            Agg::Sum(only(chunked(), col("completion_tokens"))),
        ),
        (
            "chunks",
            Agg::Sum(only(
                chunked(),
                col("itl_ms").list().len().cast(DataType::Float64) + lit(1.0),
            )),
        ),
        // The TTFT trend of the arrivals (`notes::TtftTrend`), as sums.
        ("trend_n", Agg::Sum(trend_point())),
        (
            "trend_x",
            Agg::Sum(only(trend_point(), col("scheduled_ms"))),
        ),
        ("trend_y", Agg::Sum(only(trend_point(), col("ttft_ms")))),
        (
            "trend_xx",
            Agg::Sum(only(
                trend_point(),
                col("scheduled_ms") * col("scheduled_ms"),
            )),
        ),
        (
            "trend_xy",
            Agg::Sum(only(trend_point(), col("scheduled_ms") * col("ttft_ms"))),
        ),
        (
            "trend_yy",
            Agg::Sum(only(trend_point(), col("ttft_ms") * col("ttft_ms"))),
        ),
        (
            "trend_min_x",
            Agg::Min(only(trend_point(), col("scheduled_ms"))),
        ),
        (
            "trend_max_x",
            Agg::Max(only(trend_point(), col("scheduled_ms"))),
        ),
    ]
}

/// A point of the TTFT trend: an ok arrival (first turn) with a TTFT.
fn trend_point() -> Expr {
    is_ok()
        .and(col("turn").eq(lit(0u32)))
        .and(col("ttft_ms").is_not_null())
        .fill_null(lit(false))
}

/// Output tokens that are tokens: the server's usage, or `--tokenizer`'s
/// count of the text (not a count of chunks).
fn tokens_known() -> Expr {
    let src = || col("tokens_source");
    src().eq(lit("usage")).or(src().eq(lit("tokenized")))
}

/// Ok requests whose output tokens are known and whose chunks were
/// timed (a first token, and `itl_ms` after it): their tokens per chunk.
fn chunked() -> Expr {
    is_ok()
        .and(tokens_known())
        .and(col("completion_tokens").is_not_null())
        .and(col("ttft_ms").is_not_null())
        .and(col("itl_ms").is_not_null())
        .fill_null(lit(false))
}

/// Ok requests whose output length can be held against the `max_tokens`
/// they asked for: both known, the length in tokens (counted chunks may
/// carry several tokens each).
fn asked() -> Expr {
    is_ok()
        .and(tokens_known())
        .and(col("max_tokens").is_not_null())
        .and(col("completion_tokens").is_not_null())
        .fill_null(lit(false))
}

/// The distributions taken per level.
fn level_metrics() -> Vec<Metric> {
    let first = col("turn").eq(lit(0u32));
    vec![
        Metric::stored("ttft", Value::Ttft),
        Metric::stored("tpot", Value::Tpot),
        Metric::stored("e2e", Value::E2e),
        Metric::stored("lateness", Value::Lateness),
        Metric::new("arrival_lateness", only(first, col("lateness_ms"))),
    ]
}

/// Statistics of every level of every run, in run order, then mode, value
/// and round: one pass over the runs' parts.
pub fn level_stats(runs: &[RunFiles], slo: &Slo) -> Result<Vec<LevelStats>> {
    let mut acc = LevelsAcc::new(slo);
    let mut levels = Levels::default();
    let mut store = Store::default();
    frames::for_each_batch(runs, &[], false, &mut levels, |batch| {
        store.add(batch)?;
        acc.add(batch)
    })?;
    acc.finish(runs, slo, &levels, &store)
}

/// The per-level figures, fed a batch of requests at a time.
pub struct LevelsAcc {
    main: GroupedAcc,
    warmup: GroupedAcc,
    errors: GroupedAcc,
    finishes: GroupedAcc,
    /// The inter-token gaps of each level, by `frames::LEVEL` number.
    gaps: BTreeMap<u32, Blocks<f32>>,
}

impl LevelsAcc {
    pub fn new(slo: &Slo) -> Self {
        let error_keys = [LEVEL, "status", "http_status"];
        Self {
            main: GroupedAcc::new(
                "per-level statistics",
                Box::new(|lf| lf.filter(measured())),
                &[LEVEL],
                main_aggs(slo),
                level_metrics(),
            ),
            warmup: GroupedAcc::new(
                "warm-up counts",
                Box::new(|lf| lf.filter(col("warmup"))),
                &[LEVEL],
                vec![("n", Agg::Len)],
                Vec::new(),
            ),
            errors: GroupedAcc::new(
                "errors per level",
                Box::new(|lf| lf.filter(measured().and(is_ok().not()))),
                &error_keys,
                vec![("n", Agg::Len)],
                Vec::new(),
            ),
            finishes: GroupedAcc::new(
                "finish reasons per level",
                Box::new(|lf| {
                    lf.filter(measured().and(is_ok()).fill_null(lit(false)))
                        .with_column(col("finish_reason").fill_null(lit(NO_FINISH_REASON)))
                }),
                &[LEVEL, "finish_reason"],
                vec![("n", Agg::Len)],
                Vec::new(),
            ),
            gaps: BTreeMap::new(),
        }
    }

    /// Add a batch of requests, the sections side by side.
    pub fn add(&mut self, batch: &DataFrame) -> Result<()> {
        let (main, rest) = rayon::join(
            || self.main.add(batch),
            || {
                self.warmup.add(batch)?;
                self.errors.add(batch)?;
                self.finishes.add(batch)?;
                append_gaps(batch, &mut self.gaps)
            },
        );
        main.and(rest)
    }
}

/// Append the gaps of the measured, ok requests of a batch to their
/// levels' buffers, straight from the list column's values (no filtered
/// copy of the batch, no exploded copy of the gaps).
fn append_gaps(batch: &DataFrame, gaps: &mut BTreeMap<u32, Blocks<f32>>) -> Result<()> {
    let what = || "reading the inter-token gaps".to_string();
    let mask = batch
        .clone()
        .lazy()
        .select([measured()
            .and(is_ok())
            .fill_null(lit(false))
            .alias("__gaps")])
        .collect()
        .ctx(what)?;
    let mask = mask
        .column("__gaps")
        .ctx(what)?
        .as_materialized_series()
        .rechunk();
    let mut mask = mask.bool().ctx(what)?.iter();
    let ids = batch
        .column(LEVEL)
        .ctx(what)?
        .as_materialized_series()
        .rechunk();
    let ids = ids.u32().ctx(what)?.cont_slice().ctx(what)?;
    let lists = batch
        .column("itl_ms")
        .ctx(what)?
        .as_materialized_series()
        .cast(&DataType::List(Box::new(DataType::Float32)))
        .ctx(what)?;
    let lists = lists.list().ctx(what)?;
    let mut row = 0usize;
    for arr in lists.downcast_iter() {
        let inner = ListChunked::with_chunk("".into(), arr.clone()).get_inner();
        let inner = inner.f32().ctx(what)?;
        // Without nulls among the gaps (as the replayer writes them), one slice.
        let dense = inner.cont_slice().ok();
        let offsets = arr.offsets().as_slice();
        let valid = arr.validity();
        for i in 0..arr.len() {
            let take = mask.next().flatten().unwrap_or(false) && valid.is_none_or(|v| v.get_bit(i));
            let level = ids.get(row).copied();
            row += 1;
            let (Some(level), true) = (level, take) else {
                continue;
            };
            let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
            let buffer = gaps.entry(level).or_default();
            match dense {
                Some(values) => buffer.extend_from_slice(&values[a..b]),
                None => (a..b)
                    .filter_map(|j| inner.get(j))
                    .for_each(|v| buffer.push(v)),
            }
        }
    }
    Ok(())
}

impl LevelsAcc {
    pub fn finish(
        self,
        runs: &[RunFiles],
        slo: &Slo,
        levels: &Levels,
        store: &Store,
    ) -> Result<Vec<LevelStats>> {
        let grouped = self.main.finish(levels, store)?;
        let itl: BTreeMap<String, Dist> = self
            .gaps
            .into_par_iter()
            .filter_map(|(id, values)| {
                let label = level_label(levels.key(id)?);
                Some((label, super::stats::dist_of_blocks(&values)))
            })
            .collect();
        let warmup = warmup_by_level(&self.warmup.finish(levels, store)?.frame)?;
        let (errors, errors_detail) = errors_by_level(&self.errors.finish(levels, store)?.frame)?;
        let finishes = finishes_by_level(&self.finishes.finish(levels, store)?.frame, runs)?;
        let counts = Counted {
            warmup: &warmup,
            errors: &errors,
            errors_detail: &errors_detail,
            finishes: &finishes,
        };
        levels_from(&grouped, &itl, &counts, runs, slo)
    }
}

/// The counts per level taken beside the main pass, by `level_label`.
struct Counted<'a> {
    warmup: &'a BTreeMap<String, u64>,
    errors: &'a Counts,
    errors_detail: &'a Counts,
    finishes: &'a Counts,
}

fn levels_from(
    grouped: &Grouped,
    itl: &BTreeMap<String, Dist>,
    counted: &Counted,
    runs: &[RunFiles],
    slo: &Slo,
) -> Result<Vec<LevelStats>> {
    let main = &grouped.frame;
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
        let starts = main.u64("starts", i)?;
        let run_json = runs
            .iter()
            .filter(|r| r.run_id == key.run_id)
            .find_map(|r| r.run_json.as_ref());
        let burst = target_rate
            .and_then(|t| {
                run_json?
                    .burst_levels
                    .iter()
                    .find(|(rate, _)| rate.to_bits() == t.to_bits())
            })
            .map_or(1, |(_, size)| *size);
        let achieved_rate = stats::achieved_rate(
            &key.load_mode,
            target_rate,
            burst,
            starts,
            main.f64("starts_first_scheduled", i)?,
            main.f64("starts_last_sent", i)?,
            duration_s,
        );
        let cached_base = main.f64("cached_base", i)?.unwrap_or(0.0);
        let good = main.u64("good", i)? as f64;
        let asked = main.f64("asked", i)?.unwrap_or(0.0);
        let arrival_p99 = grouped.dist("arrival_lateness", i).p99;
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
        let trend = if is_open_loop(&key.load_mode) {
            TtftTrend {
                n: main.u64("trend_n", i)?,
                sum_x: main.f64("trend_x", i)?.unwrap_or(0.0),
                sum_y: main.f64("trend_y", i)?.unwrap_or(0.0),
                sum_xx: main.f64("trend_xx", i)?.unwrap_or(0.0),
                sum_xy: main.f64("trend_xy", i)?.unwrap_or(0.0),
                sum_yy: main.f64("trend_yy", i)?.unwrap_or(0.0),
                min_x: main.f64("trend_min_x", i)?.unwrap_or(0.0),
                max_x: main.f64("trend_max_x", i)?.unwrap_or(0.0),
            }
        } else {
            TtftTrend::default()
        };
        let ttft_rise_ms = trend.rise_ms();
        let ttft_ms = grouped.dist("ttft", i);
        out.push(LevelStats {
            requests,
            ok,
            warmup_requests: counted.warmup.get(&label).copied().unwrap_or(0),
            errors: counted.errors.get(&label).cloned().unwrap_or_default(),
            errors_detail: counted
                .errors_detail
                .get(&label)
                .cloned()
                .unwrap_or_default(),
            finish_reasons: counted.finishes.get(&label).cloned().unwrap_or_default(),
            success_pct: if requests == 0 {
                0.0
            } else {
                100.0 * ok as f64 / requests as f64
            },
            duration_s,
            first_scheduled_ms: start,
            last_end_ms: end,
            target_rate,
            arrivals: starts,
            achieved_rate,
            request_rate: per_s(requests as f64),
            input_tokens_per_s: per_s(main.f64("in_tokens", i)?.unwrap_or(0.0)),
            output_tokens_per_s: per_s(main.f64("out_tokens", i)?.unwrap_or(0.0)),
            fell_behind: fell_behind(&trend, ttft_ms.p50),
            ttft_rise_ms,
            ttft_ms,
            tpot_ms: grouped.dist("tpot", i),
            itl_ms: itl.get(&label).cloned().unwrap_or_default(),
            e2e_ms: grouped.dist("e2e", i),
            lateness_p50_ms: grouped.dist("lateness", i).p50,
            lateness_p99_ms: grouped.dist("lateness", i).p99,
            arrival_lateness_p99_ms: arrival_p99,
            client_behind: target_rate.is_some()
                && !capped
                && arrival_p99.is_some_and(|p| p > CLIENT_BEHIND_MS),
            cached_token_ratio: (cached_base > 0.0)
                .then(|| main.f64("cached", i).ok().flatten().unwrap_or(0.0) / cached_base),
            goodput: slo.is_set().then(|| per_s(good)),
            slo_attainment_pct: (slo.is_set() && requests > 0)
                .then(|| 100.0 * good / requests as f64),
            stopped_short: main.u64("stopped_short", i)?,
            tokens_counted: main.u64("tokens_counted", i)?,
            tokens_tokenized: main.u64("tokens_tokenized", i)?,
            tokens_unknown: main.u64("tokens_unknown", i)?,
            output_fill_pct: (asked > 0.0)
                .then(|| 100.0 * main.f64("asked_got", i).ok().flatten().unwrap_or(0.0) / asked),
            tokens_per_chunk: match (main.f64("chunk_tokens", i)?, main.f64("chunks", i)?) {
                (Some(t), Some(c)) if c > 0.0 => Some(t / c),
                _ => None,
            },
            server: None,
            server_by_endpoint: Default::default(),
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

fn warmup_by_level(f: &Frame) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for i in 0..f.height() {
        out.insert(level_label(&f.key(i)?), f.u64("n", i)?);
    }
    Ok(out)
}

type Counts = BTreeMap<String, BTreeMap<String, u64>>;

fn errors_by_level(f: &Frame) -> Result<(Counts, Counts)> {
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

/// How the report names ok replies that came without a `finish_reason`.
pub const NO_FINISH_REASON: &str = "none";

/// Ok requests by finish reason, per level; runs written before results
/// format 3 are left out (they did not keep it, and every reply would
/// read as `none`).
fn finishes_by_level(f: &Frame, runs: &[RunFiles]) -> Result<Counts> {
    let mut out: Counts = BTreeMap::new();
    for i in 0..f.height() {
        let key = f.key(i)?;
        let kept = runs
            .iter()
            .any(|r| r.run_id == key.run_id && r.version >= 3);
        if !kept {
            continue;
        }
        let reason = f
            .str("finish_reason", i)?
            .unwrap_or_else(|| NO_FINISH_REASON.into());
        *out.entry(level_label(&key))
            .or_default()
            .entry(reason)
            .or_insert(0) += f.u64("n", i)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rows: &[(bool, &str, u32, Option<&[f32]>)]) -> DataFrame {
        let lists: ListChunked = rows
            .iter()
            .map(|r| r.3.map(|g| Series::new("".into(), g)))
            .collect();
        DataFrame::new_infer_height(vec![
            Column::new(
                "warmup".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "status".into(),
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ),
            Column::new(LEVEL.into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            lists.with_name("itl_ms".into()).into_series().into(),
        ])
        .expect("a batch")
    }

    /// Only measured, ok requests count; a null list adds nothing; the
    /// batch may come in several chunks; each level has its own buffer.
    #[test]
    fn gaps_are_read_from_the_lists_of_measured_ok_requests() {
        let mut df = batch(&[
            (false, "ok", 0, Some(&[1.0, 2.0])),
            (true, "ok", 0, Some(&[100.0])),
            (false, "timeout", 0, Some(&[200.0])),
            (false, "ok", 1, None),
        ]);
        df.vstack_mut(&batch(&[
            (false, "ok", 1, Some(&[5.0])),
            (false, "ok", 0, Some(&[])),
            (false, "ok", 0, Some(&[3.0])),
        ]))
        .expect("stacked");
        assert!(df.first_col_n_chunks() > 1);
        let mut gaps = BTreeMap::new();
        append_gaps(&df, &mut gaps).expect("gaps");
        let got: Vec<(u32, Vec<f32>)> = gaps.into_iter().map(|(l, b)| (l, b.into_vec())).collect();
        assert_eq!(got, vec![(0, vec![1.0, 2.0, 3.0]), (1, vec![5.0])]);
    }
}
