//! Per-user aggregates of `--users` runs, so that one slow user is not
//! hidden by the level's mean.

use polars::prelude::*;

use super::stats::{Frame, is_ok, key_exprs, measured, quantile};
use crate::error::Result;
use crate::model::UserStats;

pub fn per_user(lf: &LazyFrame) -> Result<Vec<UserStats>> {
    let mut by = key_exprs();
    by.push(col("user_id"));
    let ok = is_ok();
    let f = Frame::collect(
        lf.clone()
            .filter(measured().and(col("user_id").is_not_null()))
            .group_by(by)
            .agg([
                len().cast(DataType::UInt64).alias("requests"),
                ok.clone()
                    .not()
                    .cast(DataType::UInt64)
                    .sum()
                    .alias("errors"),
                col("compaction")
                    .cast(DataType::UInt64)
                    .sum()
                    .alias("compactions"),
                quantile(col("ttft_ms").filter(ok.clone()), 0.5, "ttft_p50"),
                quantile(col("ttft_ms").filter(ok.clone()), 0.99, "ttft_p99"),
                quantile(col("tpot_ms").filter(ok.clone()), 0.5, "tpot_p50"),
                quantile(col("tpot_ms").filter(ok.clone()), 0.99, "tpot_p99"),
                col("completion_tokens")
                    .filter(ok)
                    .cast(DataType::Float64)
                    .sum()
                    .alias("out_tokens"),
                col("sent_ms").min().alias("first_sent"),
                col("end_ms").max().alias("last_end"),
            ]),
        "per-user statistics",
    )?;
    let mut out = Vec::with_capacity(f.height());
    for i in 0..f.height() {
        let span_s = match (f.f64("first_sent", i)?, f.f64("last_end", i)?) {
            (Some(a), Some(b)) if b > a => Some((b - a) / 1000.0),
            _ => None,
        };
        out.push(UserStats {
            key: f.key(i)?,
            user_id: u32::try_from(f.u64("user_id", i)?).unwrap_or(u32::MAX),
            requests: f.u64("requests", i)?,
            errors: f.u64("errors", i)?,
            compactions: f.u64("compactions", i)?,
            ttft_p50_ms: f.f64("ttft_p50", i)?,
            ttft_p99_ms: f.f64("ttft_p99", i)?,
            tpot_p50_ms: f.f64("tpot_p50", i)?,
            tpot_p99_ms: f.f64("tpot_p99", i)?,
            output_tokens_per_s: span_s
                .map(|s| f.f64("out_tokens", i).ok().flatten().unwrap_or(0.0) / s),
        });
    }
    out.sort_by(|a, b| {
        (&a.key.run_id, &a.key.load_mode)
            .cmp(&(&b.key.run_id, &b.key.load_mode))
            .then(a.key.load_value.total_cmp(&b.key.load_value))
            .then(a.key.round.cmp(&b.key.round))
            .then(a.user_id.cmp(&b.user_id))
    });
    Ok(out)
}
