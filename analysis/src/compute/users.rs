//! Per-user aggregates of `--users` runs, so that one slow user is not
//! hidden by the level's mean.

use polars::prelude::*;

use super::frames::{LEVEL, Levels};
use super::grouped::{Agg, GroupedAcc};
use super::groups::latency_metrics;
use super::stats::{dist_of, is_ok, measured, only};
use super::store::Store;
use crate::error::Result;
use crate::model::{UserSpans, UserStats};

/// The users' requests, grouped per level and user.
pub fn per_user_acc() -> GroupedAcc {
    let by = [LEVEL, "user_id"];
    let ok = is_ok();
    let metrics = latency_metrics().into_iter().take(2).collect();
    GroupedAcc::new(
        "per-user statistics",
        Box::new(|lf| lf.filter(measured())),
        &by,
        vec![
            ("requests", Agg::Len),
            ("errors", Agg::Sum(ok.clone().not())),
            ("compactions", Agg::Sum(col("compaction"))),
            ("out_tokens", Agg::Sum(only(ok, col("completion_tokens")))),
            ("first_sent", Agg::Min(col("sent_ms"))),
            ("last_end", Agg::Max(col("end_ms"))),
        ],
        metrics,
    )
    .keep(col("user_id").is_not_null())
}

pub fn per_user(acc: GroupedAcc, levels: &Levels, store: &Store) -> Result<Vec<UserStats>> {
    let g = acc.finish(levels, store)?;
    let f = &g.frame;
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
            ttft_p50_ms: g.dist("ttft", i).p50,
            ttft_p99_ms: g.dist("ttft", i).p99,
            tpot_p50_ms: g.dist("tpot", i).p50,
            tpot_p99_ms: g.dist("tpot", i).p99,
            span_s,
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

/// The spread of the users' spans per level, from [`per_user`]'s rows
/// (sorted by level).
pub fn spans(users: &[UserStats]) -> Vec<UserSpans> {
    let mut out: Vec<UserSpans> = Vec::new();
    for group in users.chunk_by(|a, b| a.key == b.key) {
        let spans: Vec<f64> = group.iter().filter_map(|u| u.span_s).collect();
        out.push(UserSpans {
            key: group[0].key.clone(),
            users: spans.len() as u64,
            span_s: dist_of(spans),
        });
    }
    out
}
