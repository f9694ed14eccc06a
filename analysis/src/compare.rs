//! `trace compare`: the same levels of several runs side by side, with
//! deltas against the first run and a flag where a change is larger than
//! the noise the runs themselves show.
//!
//! Noise: each level's requests, in send order, are dealt round-robin into
//! `SUBSETS` interleaved subsets; a figure computed on each subset varies
//! about K times as much as on the whole level, so its standard error is
//! the subsets' standard deviation / √K. Success % uses the binomial
//! standard error, rates the Poisson one. A change is flagged when it
//! exceeds 3 × √(se_a² + se_b²), and is not negligible: at least 1 % of
//! the baseline, and 0.1 ms for a time. (A workload whose requests all
//! generate the same tokens has no spread between subsets in tokens/s, so
//! without the floor a 0.01 % change would be flagged.)

use polars::prelude::*;

use crate::compute::stats::{Frame, is_ok, key_exprs, measured, quantile};
use crate::compute::{self, Options, effective_slo};
use crate::error::Result;
use crate::model::{
    ComparedLevel, ComparedMetric, Comparison, LevelKey, LevelStats, PERCENTILE_DEFINITION,
    REPORT_VERSION,
};
use crate::run::RunFiles;

const SUBSETS: u64 = 4;
const SIGMAS: f64 = 3.0;
/// Changes below these are never flagged: a share of the baseline, and an
/// absolute floor for times (ms).
const MIN_RELATIVE: f64 = 0.01;
const MIN_MS: f64 = 0.1;

pub const NOISE_DEFINITION: &str = "standard error from the run itself: each level's requests \
     are dealt round-robin in send order into 4 subsets and a percentile's standard error is the \
     subsets' standard deviation / 2; success % uses the binomial and rates the Poisson standard \
     error. A change is flagged when it exceeds 3 x sqrt(se_a^2 + se_b^2), 1 % of the baseline \
     and, for times, 0.1 ms";

/// A figure compared across runs: name, direction, how to read it from a
/// level, and the subset column that gives its noise.
struct Metric {
    name: &'static str,
    higher_is_better: bool,
    value: fn(&LevelStats) -> Option<f64>,
    subset: Option<&'static str>,
}

fn metrics() -> Vec<Metric> {
    vec![
        Metric {
            name: "success_pct",
            higher_is_better: true,
            value: |l| (l.requests > 0).then_some(l.success_pct),
            subset: None,
        },
        Metric {
            name: "achieved_rate",
            higher_is_better: true,
            value: |l| Some(l.achieved_rate),
            subset: None,
        },
        Metric {
            name: "output_tokens_per_s",
            higher_is_better: true,
            value: |l| Some(l.output_tokens_per_s),
            subset: Some("out_tokens"),
        },
        Metric {
            name: "ttft_p50_ms",
            higher_is_better: false,
            value: |l| l.ttft_ms.p50,
            subset: Some("ttft_p50"),
        },
        Metric {
            name: "ttft_p99_ms",
            higher_is_better: false,
            value: |l| l.ttft_ms.p99,
            subset: Some("ttft_p99"),
        },
        Metric {
            name: "tpot_p50_ms",
            higher_is_better: false,
            value: |l| l.tpot_ms.p50,
            subset: Some("tpot_p50"),
        },
        Metric {
            name: "tpot_p99_ms",
            higher_is_better: false,
            value: |l| l.tpot_ms.p99,
            subset: Some("tpot_p99"),
        },
        Metric {
            name: "itl_p50_ms",
            higher_is_better: false,
            value: |l| l.itl_ms.p50,
            subset: Some("itl_p50"),
        },
        Metric {
            name: "e2e_p50_ms",
            higher_is_better: false,
            value: |l| l.e2e_ms.p50,
            subset: Some("e2e_p50"),
        },
        Metric {
            name: "e2e_p99_ms",
            higher_is_better: false,
            value: |l| l.e2e_ms.p99,
            subset: Some("e2e_p99"),
        },
        Metric {
            name: "lateness_p99_ms",
            higher_is_better: false,
            value: |l| l.lateness_p99_ms,
            subset: Some("lateness_p99"),
        },
    ]
}

/// Per-subset figures of every level of one run.
struct Subsets {
    frame: Frame,
}

impl Subsets {
    fn compute(lf: &LazyFrame) -> Result<Self> {
        let sort_by = ["load_mode", "load_value", "round", "sent_ms"];
        let ok = is_ok();
        let mut by = key_exprs();
        by.push(col("subset"));
        let lf = lf
            .clone()
            .filter(measured())
            .sort(sort_by, SortMultipleOptions::default())
            .with_row_index("idx", None)
            .with_column((col("idx").cast(DataType::UInt64) % lit(SUBSETS)).alias("subset"))
            .group_by(by)
            .agg([
                quantile(col("ttft_ms").filter(ok.clone()), 0.5, "ttft_p50"),
                quantile(col("ttft_ms").filter(ok.clone()), 0.99, "ttft_p99"),
                quantile(col("tpot_ms").filter(ok.clone()), 0.5, "tpot_p50"),
                quantile(col("tpot_ms").filter(ok.clone()), 0.99, "tpot_p99"),
                quantile(col("e2e_ms").filter(ok.clone()), 0.5, "e2e_p50"),
                quantile(col("e2e_ms").filter(ok.clone()), 0.99, "e2e_p99"),
                quantile(col("lateness_ms"), 0.99, "lateness_p99"),
                quantile(
                    col("itl_ms").filter(ok.clone()).explode(ExplodeOptions {
                        empty_as_null: false,
                        keep_nulls: false,
                    }),
                    0.5,
                    "itl_p50",
                ),
                col("completion_tokens")
                    .filter(ok)
                    .cast(DataType::Float64)
                    .sum()
                    .alias("out_tokens"),
            ]);
        Ok(Self {
            frame: Frame::collect(lf, "per-subset figures for the noise estimate")?,
        })
    }

    /// Standard error of the whole level's figure from its subsets' spread.
    fn standard_error(&self, key: &LevelKey, column: &str, scale: f64) -> Result<Option<f64>> {
        let mut values = Vec::new();
        for i in 0..self.frame.height() {
            if self.frame.key(i)?.same_level(key)
                && let Some(v) = self.frame.f64(column, i)?
            {
                values.push(v * scale);
            }
        }
        if values.len() < 2 {
            return Ok(None);
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        Ok(Some(var.sqrt() / n.sqrt()))
    }
}

fn noise(m: &Metric, l: &LevelStats, subsets: &Subsets) -> Result<Option<f64>> {
    match (m.name, m.subset) {
        ("success_pct", _) => {
            let n = l.requests as f64;
            // Laplace's estimate keeps the error above zero at 100 %.
            let p = (l.ok as f64 + 1.0) / (n + 2.0);
            Ok((n > 0.0).then(|| 100.0 * (p * (1.0 - p) / n).sqrt()))
        }
        ("achieved_rate", _) => {
            let arrivals = l.achieved_rate * l.duration_s;
            Ok((arrivals >= 1.0).then(|| l.achieved_rate / arrivals.sqrt()))
        }
        ("output_tokens_per_s", Some(c)) => {
            // A subset's tokens over the whole level's duration, × K.
            let scale = if l.duration_s > 0.0 {
                SUBSETS as f64 / l.duration_s
            } else {
                0.0
            };
            subsets.standard_error(&l.key, c, scale)
        }
        (_, Some(c)) => subsets.standard_error(&l.key, c, 1.0),
        _ => Ok(None),
    }
}

/// Share of the asked output tokens that came back (`output_fill_pct`)
/// below which two runs did different work, in percentage points.
const FILL_POINTS: f64 = 2.0;

/// A note when the runs' replies filled their `max_tokens` to different
/// degrees (one server honoured `ignore_eos`, the other stopped at the end
/// of sequence): their throughput and end-to-end times measure unlike work.
fn output_lengths_note(per_run: &[RunLevels], infos: &[crate::model::RunInfo]) -> Option<String> {
    let fills: Vec<Vec<f64>> = per_run
        .iter()
        .map(|r| r.levels.iter().filter_map(|l| l.output_fill_pct).collect())
        .collect();
    let all: Vec<f64> = fills.iter().flatten().copied().collect();
    let lo = all.iter().copied().reduce(f64::min)?;
    let hi = all.iter().copied().reduce(f64::max)?;
    if hi - lo < FILL_POINTS {
        return None;
    }
    let each: Vec<String> = fills
        .iter()
        .zip(infos)
        .map(|(f, info)| {
            let range = crate::notes::pct_range(f).unwrap_or_else(|| "unknown".into());
            format!("{range} in {}", info.run_id)
        })
        .collect();
    Some(format!(
        "the replies got different shares of the max_tokens they asked for ({}): output tokens/s, \
         TPOT and E2E compare unlike work (a server that ignores ignore_eos stops at the end of \
         sequence)",
        each.join(", ")
    ))
}

/// A note when the runs measured unlike things: some did not stream
/// (`--no-stream`: no TTFT, TPOT or ITL), or some got replies without usage
/// whose output was counted as chunks or not at all (output tokens/s and
/// TPOT then differ by how they were counted, not by the server).
fn measurement_notes(
    runs: &[RunFiles],
    per_run: &[RunLevels],
    infos: &[crate::model::RunInfo],
) -> Vec<String> {
    let mut notes = Vec::new();
    let whole: Vec<&str> = runs
        .iter()
        .zip(infos)
        .filter(|(r, _)| r.run_json.as_ref().and_then(|j| j.stream) == Some(false))
        .map(|(_, i)| i.run_id.as_str())
        .collect();
    if !whole.is_empty() && whole.len() < runs.len() {
        notes.push(format!(
            "{} did not stream (--no-stream): there is no TTFT, TPOT or ITL to compare with the \
             other runs; E2E compares",
            whole.join(", ")
        ));
    }
    let uncounted: Vec<String> = per_run
        .iter()
        .zip(infos)
        .filter_map(|(r, i)| {
            let n: u64 = r
                .levels
                .iter()
                .map(|l| l.tokens_counted + l.tokens_unknown)
                .sum();
            (n > 0).then(|| format!("{n} in {}", i.run_id))
        })
        .collect();
    if !uncounted.is_empty() {
        notes.push(format!(
            "some ok requests came without usage and had their output counted as chunks or not \
             at all ({}): output tokens/s and TPOT there are not token counts, and differ from \
             the other runs' by how they were counted; replay with --tokenizer to count tokens",
            uncounted.join(", ")
        ));
    }
    notes
}

/// Each run's level at `key` with the run's id, for the runs that have it,
/// in the runs' order.
fn levels_at<'a>(
    key: &LevelKey,
    per_run: &'a [RunLevels],
    infos: &'a [crate::model::RunInfo],
) -> Vec<(&'a LevelStats, &'a str)> {
    per_run
        .iter()
        .zip(infos)
        .filter_map(|(r, i)| {
            let l = r.levels.iter().find(|l| l.key.same_level(key))?;
            Some((l, i.run_id.as_str()))
        })
        .collect()
}

/// Values of the runs at a level with their runs' ids, lowest, highest.
type Spread<'a> = (Vec<(f64, &'a str)>, f64, f64);

/// Each run's value of `f` at `key` with the run's id (runs without one
/// left out), and the lowest and highest of them; `None` if no run has one.
fn spread_at<'a>(
    key: &LevelKey,
    per_run: &'a [RunLevels],
    infos: &'a [crate::model::RunInfo],
    f: impl Fn(&LevelStats) -> Option<f64>,
) -> Option<Spread<'a>> {
    let values: Vec<(f64, &str)> = levels_at(key, per_run, infos)
        .into_iter()
        .filter_map(|(l, run)| Some((f(l)?, run)))
        .collect();
    let lo = values.iter().map(|(v, _)| *v).reduce(f64::min)?;
    let hi = values.iter().map(|(v, _)| *v).reduce(f64::max)?;
    Some((values, lo, hi))
}

/// Difference in cached-token ratio (points of %) between runs at one
/// level from which their TTFTs measure unlike work.
const CACHE_POINTS: f64 = 20.0;

/// A note when the runs found different shares of their prompts in the
/// server's prefix cache at the same level (one reset its cache or ran the
/// level first, the other found earlier levels' prompts cached; or the
/// servers cache differently): their TTFT differences are partly that.
fn cache_note(
    keys: &[LevelKey],
    per_run: &[RunLevels],
    infos: &[crate::model::RunInfo],
) -> Option<String> {
    let mut differ = Vec::new();
    for key in keys {
        let Some((ratios, lo, hi)) =
            spread_at(key, per_run, infos, |l| Some(100.0 * l.cached_token_ratio?))
        else {
            continue;
        };
        if hi - lo >= CACHE_POINTS {
            let each: Vec<String> = ratios
                .iter()
                .map(|(r, run)| format!("{r:.0}% in {run}"))
                .collect();
            differ.push(format!("{} ({})", key.label(), each.join(", ")));
        }
    }
    if differ.is_empty() {
        return None;
    }
    Some(format!(
        "the runs found different shares of their prompt tokens in the prefix cache at {}: part \
         of their TTFT difference is the cache (replay with --cache-reset or --isolate-levels to \
         start every level cold)",
        differ.join("; ")
    ))
}

/// A note when, at the same open-loop level, some runs' servers kept up
/// with the arrivals and others fell behind (`notes::fell_behind`): there
/// the TTFT and E2E differences are mostly a queue that grew through the
/// level, and they grow with the level's length, not with per-request speed.
fn fell_behind_note(
    keys: &[LevelKey],
    per_run: &[RunLevels],
    infos: &[crate::model::RunInfo],
) -> Option<String> {
    let mut differ = Vec::new();
    for key in keys {
        let found = levels_at(key, per_run, infos);
        let behind: Vec<String> = found
            .iter()
            .filter(|(l, _)| l.fell_behind)
            .map(|(l, run)| {
                format!(
                    "{run}: TTFT rose by {:.1} s",
                    l.ttft_rise_ms.unwrap_or(0.0) / 1000.0
                )
            })
            .collect();
        if !behind.is_empty() && behind.len() < found.len() {
            differ.push(format!("{} ({})", key.label(), behind.join("; ")));
        }
    }
    if differ.is_empty() {
        return None;
    }
    Some(format!(
        "some runs' servers fell behind their arrivals where the others kept up, at {}: there a \
         queue grew through the level, so their TTFT and E2E differences grow with the level's \
         length; compare the highest levels at which both kept up",
        differ.join("; ")
    ))
}

/// A note when the runs' servers streamed different numbers of tokens a
/// chunk at a level (by a factor of [`notes::CHUNKED_TOKENS_PER_CHUNK`] or
/// more): ITL is timed between chunks, so there its difference is one of
/// chunking (a stream interval, speculative decoding), not of per-token
/// speed, which TPOT compares.
///
/// [`notes::CHUNKED_TOKENS_PER_CHUNK`]: crate::notes::CHUNKED_TOKENS_PER_CHUNK
fn chunking_note(
    keys: &[LevelKey],
    per_run: &[RunLevels],
    infos: &[crate::model::RunInfo],
) -> Option<String> {
    let mut differ = Vec::new();
    for key in keys {
        let Some((found, lo, hi)) = spread_at(key, per_run, infos, |l| l.tokens_per_chunk) else {
            continue;
        };
        if found.len() > 1 && lo > 0.0 && hi / lo >= crate::notes::CHUNKED_TOKENS_PER_CHUNK {
            let each: Vec<String> = found
                .iter()
                .map(|(k, run)| format!("{run}: {k:.2}"))
                .collect();
            differ.push(format!("{} ({})", key.label(), each.join("; ")));
        }
    }
    if differ.is_empty() {
        return None;
    }
    Some(format!(
        "the servers streamed different numbers of tokens a chunk at {}: ITL is timed between \
         chunks, so its difference there is one of chunking (a stream interval, speculative \
         decoding), not of per-token speed; compare TPOT",
        differ.join("; ")
    ))
}

/// Whether a change `d` from the baseline `b` is too small to matter,
/// however little noise the runs show.
fn negligible(m: &Metric, d: f64, b: f64) -> bool {
    d.abs() < MIN_RELATIVE * b.abs() || (m.name.ends_with("_ms") && d.abs() < MIN_MS)
}

struct RunLevels {
    levels: Vec<LevelStats>,
    subsets: Subsets,
}

pub fn compare(runs: &[RunFiles], opts: &Options) -> Result<Comparison> {
    let slo = effective_slo(runs, opts);
    let mut per_run = Vec::with_capacity(runs.len());
    let mut infos = Vec::with_capacity(runs.len());
    for run in runs {
        let one = std::slice::from_ref(run);
        let levels = compute::level_stats(one, &slo)?;
        let rows = levels.iter().map(|l| l.requests + l.warmup_requests).sum();
        infos.push(run.info(rows));
        per_run.push(RunLevels {
            levels,
            subsets: Subsets::compute(&compute::requests(one)?)?,
        });
    }
    // Levels in the order they first appear.
    let mut keys: Vec<LevelKey> = Vec::new();
    for r in &per_run {
        for l in &r.levels {
            if !keys.iter().any(|k| k.same_level(&l.key)) {
                keys.push(l.key.clone());
            }
        }
    }
    keys.sort_by(|a, b| {
        a.load_mode
            .cmp(&b.load_mode)
            .then(a.load_value.total_cmp(&b.load_value))
            .then(a.round.cmp(&b.round))
    });
    let mut notes = Vec::new();
    let mut levels = Vec::with_capacity(keys.len());
    for key in &keys {
        let found: Vec<Option<&LevelStats>> = per_run
            .iter()
            .map(|r| r.levels.iter().find(|l| l.key.same_level(key)))
            .collect();
        if found.iter().any(Option::is_none) {
            notes.push(format!(
                "{}: not in every run (missing in {})",
                key.label(),
                found
                    .iter()
                    .zip(&infos)
                    .filter(|(f, _)| f.is_none())
                    .map(|(_, i)| i.run_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut out = Vec::new();
        for m in metrics() {
            out.push(compare_metric(&m, &found, &per_run)?);
        }
        levels.push(ComparedLevel {
            load_mode: key.load_mode.clone(),
            load_value: key.load_value,
            round: key.round,
            metrics: out,
        });
    }
    notes.extend(output_lengths_note(&per_run, &infos));
    notes.extend(cache_note(&keys, &per_run, &infos));
    notes.extend(fell_behind_note(&keys, &per_run, &infos));
    notes.extend(chunking_note(&keys, &per_run, &infos));
    notes.extend(measurement_notes(runs, &per_run, &infos));
    Ok(Comparison {
        report_version: REPORT_VERSION,
        percentile_definition: PERCENTILE_DEFINITION.to_string(),
        noise_definition: NOISE_DEFINITION.to_string(),
        runs: infos,
        levels,
        notes,
    })
}

fn compare_metric(
    m: &Metric,
    found: &[Option<&LevelStats>],
    per_run: &[RunLevels],
) -> Result<ComparedMetric> {
    let values: Vec<Option<f64>> = found.iter().map(|l| l.and_then(m.value)).collect();
    let noise_v = found
        .iter()
        .zip(per_run)
        .map(|(l, r)| match l {
            Some(l) => noise(m, l, &r.subsets),
            None => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    let base = values[0];
    let base_noise = noise_v[0];
    let mut delta = Vec::new();
    let mut delta_pct = Vec::new();
    let mut flag = Vec::new();
    for (v, n) in values.iter().zip(&noise_v) {
        let d = match (v, base) {
            (Some(v), Some(b)) => Some(v - b),
            _ => None,
        };
        delta.push(d);
        delta_pct.push(match (d, base) {
            (Some(d), Some(b)) if b != 0.0 => Some(100.0 * d / b),
            _ => None,
        });
        let significant = match (d, n, base_noise, base) {
            (Some(d), Some(na), Some(nb), Some(b)) => {
                d.abs() > SIGMAS * (na * na + nb * nb).sqrt() && !negligible(m, d, b)
            }
            _ => false,
        };
        flag.push(match d {
            Some(d) if significant && d != 0.0 => {
                if (d > 0.0) == m.higher_is_better {
                    "better".to_string()
                } else {
                    "worse".to_string()
                }
            }
            _ => String::new(),
        });
    }
    Ok(ComparedMetric {
        metric: m.name.to_string(),
        higher_is_better: m.higher_is_better,
        values,
        noise: noise_v,
        delta,
        delta_pct,
        flag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_changes_are_never_flagged() {
        let all = metrics();
        let by_name = |n: &str| all.iter().find(|m| m.name == n).expect("metric");
        let tokens = by_name("output_tokens_per_s");
        // 300.3 to 300.29 tokens/s: below 1 % of the baseline.
        assert!(negligible(tokens, -0.01, 300.3));
        assert!(!negligible(tokens, -4.0, 300.3));
        let late = by_name("lateness_p99_ms");
        // 0.22 to 0.30 ms: +36 %, but under 0.1 ms.
        assert!(negligible(late, 0.08, 0.22));
        assert!(!negligible(late, 0.5, 0.22));
        let ttft = by_name("ttft_p50_ms");
        assert!(negligible(ttft, 0.5, 255.0));
        assert!(!negligible(ttft, 25.0, 255.0));
    }
}
