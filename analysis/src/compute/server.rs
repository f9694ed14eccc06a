//! The server's own figures per level, from `server_metrics`: counter
//! deltas between the first and last sample of each series inside the
//! level's window (summed over series), gauge means and maxima.
//!
//! The window is the level's `start_ms`..`end_ms` from run.json, or, for a
//! run without run.json, its first scheduled send to its last byte.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::frames;
use super::stats::Frame;
use crate::error::Result;
use crate::model::{LevelStats, ServerFigures};
use crate::run::RunFiles;

const COUNTERS: [&str; 8] = [
    "prefix_cache_hits",
    "prefix_cache_queries",
    "prompt_tokens_total",
    // Prompt tokens computed, those reused from the cache excluded (llama.cpp).
    "prompt_tokens_uncached_total",
    "generation_tokens_total",
    "num_preemptions_total",
    "request_success_total",
    "external_prefix_cache_hits",
];
const GAUGES: [&str; 4] = [
    "num_requests_running",
    "num_requests_waiting",
    "kv_cache_usage_perc",
    "prefix_cache_hit_rate",
];

/// Fill `server` of this run's levels.
pub fn attach(run: &RunFiles, levels: &mut [LevelStats]) -> Result<()> {
    let Some(lf) = frames::server_metrics(run)? else {
        return Ok(());
    };
    let samples = lf
        .filter(col("canonical").is_not_null())
        .select([
            col("ts_ms"),
            col("endpoint"),
            col("name"),
            col("labels"),
            col("canonical"),
            col("value"),
        ])
        .sort(["ts_ms"], SortMultipleOptions::default());
    let samples = Frame::collect(samples, "server metrics")?;
    let df = samples.into_df();
    for level in levels.iter_mut().filter(|l| l.key.run_id == run.run_id) {
        let (start, end) = window(run, level);
        let per_series = Frame::collect(
            df.clone()
                .lazy()
                .filter(
                    col("ts_ms")
                        .gt_eq(lit(start))
                        .and(col("ts_ms").lt_eq(lit(end))),
                )
                .group_by_stable([
                    col("endpoint"),
                    col("name"),
                    col("labels"),
                    col("canonical"),
                ])
                .agg([
                    col("value").first().alias("first"),
                    col("value").last().alias("last"),
                    col("value").mean().alias("mean"),
                    col("value").max().alias("max"),
                    len().cast(DataType::UInt64).alias("n"),
                ]),
            "server metrics per level",
        )?;
        level.server = figures(&per_series, start, end, None)?;
        let mut endpoints: Vec<String> = Vec::new();
        for i in 0..per_series.height() {
            if let Some(e) = per_series.str("endpoint", i)?
                && !endpoints.contains(&e)
            {
                endpoints.push(e);
            }
        }
        level.server_by_endpoint.clear();
        if endpoints.len() > 1 {
            for e in endpoints {
                if let Some(f) = figures(&per_series, start, end, Some(&e))? {
                    level.server_by_endpoint.insert(e, f);
                }
            }
        }
    }
    Ok(())
}

fn window(run: &RunFiles, level: &LevelStats) -> (f64, f64) {
    let from_json = run.run_json.as_ref().and_then(|j| {
        j.windows.iter().find(|w| {
            w.load_mode == level.key.load_mode
                && w.load_value.to_bits() == level.key.load_value.to_bits()
                && w.round == level.key.round
        })
    });
    match from_json {
        Some(w) => (w.start_ms, w.end_ms),
        None => (level.first_scheduled_ms, level.last_end_ms),
    }
}

#[derive(Default)]
struct Acc {
    delta: f64,
    mean: f64,
    max: f64,
    series: u32,
}

/// The figures of every series in `f`, or only of the server `only`.
fn figures(f: &Frame, start: f64, end: f64, only: Option<&str>) -> Result<Option<ServerFigures>> {
    let mut by: BTreeMap<String, Acc> = BTreeMap::new();
    let mut samples = 0;
    let mut rows = 0;
    for i in 0..f.height() {
        if let Some(only) = only
            && f.str("endpoint", i)?.as_deref() != Some(only)
        {
            continue;
        }
        rows += 1;
        let Some(name) = f.str("canonical", i)? else {
            continue;
        };
        if !COUNTERS.contains(&name.as_str()) && !GAUGES.contains(&name.as_str()) {
            continue;
        }
        samples += f.u64("n", i)?;
        let a = by.entry(name).or_default();
        let first = f.f64("first", i)?.unwrap_or(0.0);
        let last = f.f64("last", i)?.unwrap_or(0.0);
        // A counter that went down was reset (server restart): count from zero.
        a.delta += if last >= first { last - first } else { last };
        a.mean += f.f64("mean", i)?.unwrap_or(0.0);
        a.max = a.max.max(f.f64("max", i)?.unwrap_or(0.0));
        a.series += 1;
    }
    if rows == 0 {
        return Ok(None);
    }
    let delta = |k: &str| by.get(k).map(|a| a.delta);
    let mean = |k: &str| by.get(k).map(|a| a.mean);
    let max = |k: &str| by.get(k).map(|a| a.max);
    let (hit_rate, source) = hit_rate(&by);
    Ok(Some(ServerFigures {
        window_start_ms: start,
        window_end_ms: end,
        samples,
        prefix_cache_hit_rate: hit_rate,
        prefix_cache_hit_rate_source: source,
        running_mean: mean("num_requests_running"),
        running_max: max("num_requests_running"),
        waiting_mean: mean("num_requests_waiting"),
        waiting_max: max("num_requests_waiting"),
        kv_usage_mean: by
            .get("kv_cache_usage_perc")
            .map(|a| a.mean / f64::from(a.series.max(1))),
        kv_usage_max: max("kv_cache_usage_perc"),
        prompt_tokens: delta("prompt_tokens_total").or_else(|| {
            let computed = delta("prompt_tokens_uncached_total")?;
            Some(computed + delta("prefix_cache_hits").unwrap_or(0.0))
        }),
        generation_tokens: delta("generation_tokens_total"),
        preemptions: delta("num_preemptions_total"),
        requests_finished: delta("request_success_total"),
    }))
}

fn hit_rate(by: &BTreeMap<String, Acc>) -> (Option<f64>, Option<String>) {
    let hits = by.get("prefix_cache_hits").map(|a| a.delta);
    let queries = by.get("prefix_cache_queries").map(|a| a.delta);
    let prompt = by.get("prompt_tokens_total").map(|a| a.delta);
    let computed = by.get("prompt_tokens_uncached_total").map(|a| a.delta);
    match (hits, queries, prompt) {
        (Some(h), Some(q), _) if q > 0.0 => (
            Some(h / q),
            Some("Δprefix_cache_hits / Δprefix_cache_queries".into()),
        ),
        (Some(h), None, None) if computed.is_some_and(|c| h + c > 0.0) => (
            Some(h / (h + computed.unwrap_or(0.0))),
            Some(
                "Δprefix_cache_hits / (Δprefix_cache_hits + Δprompt_tokens_uncached_total)".into(),
            ),
        ),
        (Some(h), None, Some(p)) if p > 0.0 => (
            Some(h / p),
            Some("Δprefix_cache_hits / Δprompt_tokens_total".into()),
        ),
        _ => match by.get("prefix_cache_hit_rate") {
            Some(a) => (
                Some(a.mean / f64::from(a.series.max(1))),
                Some("mean of the server's prefix_cache_hit_rate gauge".into()),
            ),
            None => (None, None),
        },
    }
}
