//! Latency within a level by a further grouping: the turn of a session,
//! the prompt-length bucket, or any columns the user names with `--by`.

use polars::prelude::*;

use super::frames::{LEVEL, Levels};
use super::grouped::{Agg, Grouped, GroupedAcc, Metric, Prepare};
use super::stats::{Frame, is_ok, measured, only};
use super::store::{Store, Value};
use crate::error::{Error, Result};
use crate::model::{ByTable, GroupStats};

/// Prompt-length bucket edges (tokens): powers of two from 128.
fn bucket_edges() -> Vec<f64> {
    (7..=21).map(|e| f64::from(1u32 << e)).collect()
}

/// Lower bound of the bucket holding `x`: 0 below 128, else the power of
/// two at or below it (capped at 2^21).
fn bucket_expr(x: Expr) -> Expr {
    let edges = bucket_edges();
    let mut lows = vec![0.0];
    lows.extend_from_slice(&edges);
    // From the top down: x < edge ? lower bound : (the buckets above).
    let mut expr = lit(edges[edges.len() - 1]);
    for (edge, lo) in edges.iter().zip(&lows).rev() {
        expr = when(x.clone().lt(lit(*edge)))
            .then(lit(*lo))
            .otherwise(expr);
    }
    when(x.is_null()).then(lit(NULL)).otherwise(expr)
}

fn bucket_label(lo: f64) -> String {
    let edges = bucket_edges();
    match edges.iter().position(|e| *e == lo) {
        _ if lo == 0.0 => format!("0-{}", edges[0] - 1.0),
        Some(i) if i + 1 < edges.len() => format!("{lo}-{}", edges[i + 1] - 1.0),
        _ => format!("{lo}+"),
    }
}

fn group_aggs() -> Vec<(&'static str, Agg)> {
    let ok = is_ok();
    vec![
        ("requests", Agg::Len),
        ("ok", Agg::Sum(ok.clone())),
        ("compactions", Agg::Sum(col("compaction"))),
        ("prompt_mean", Agg::Mean(only(ok, col("prompt_tokens")))),
    ]
}

/// Latency of the requests that succeeded.
pub fn latency_metrics() -> Vec<Metric> {
    vec![
        Metric::stored("ttft", Value::Ttft),
        Metric::stored("tpot", Value::Tpot),
        Metric::stored("e2e", Value::E2e),
    ]
}

/// Groups by the level and `extra`, with `group_aggs` and the latency
/// distributions.
fn by_level_and(prepare: Prepare, extra: &[&str], what: &str) -> GroupedAcc {
    let mut by: Vec<&str> = vec![LEVEL];
    by.extend_from_slice(extra);
    GroupedAcc::new(what, prepare, &by, group_aggs(), latency_metrics())
}

fn read_groups(
    g: &Grouped,
    label: impl Fn(&Frame, usize) -> Result<(String, f64)>,
) -> Result<Vec<GroupStats>> {
    let f = &g.frame;
    let mut out = Vec::with_capacity(f.height());
    for i in 0..f.height() {
        let (group, order) = label(f, i)?;
        out.push(GroupStats {
            key: f.key(i)?,
            group,
            order,
            requests: f.u64("requests", i)?,
            ok: f.u64("ok", i)?,
            compactions: f.u64("compactions", i)?,
            prompt_tokens_mean: f.f64("prompt_mean", i)?,
            ttft_ms: g.dist("ttft", i),
            tpot_ms: g.dist("tpot", i),
            e2e_ms: g.dist("e2e", i),
        });
    }
    sort_groups(&mut out);
    Ok(out)
}

/// Groups in report order: by run, mode, value and round, then by their
/// order and name within the level.
pub(super) fn sort_groups(groups: &mut [GroupStats]) {
    groups.sort_by(|a, b| {
        (&a.key.run_id, &a.key.load_mode)
            .cmp(&(&b.key.run_id, &b.key.load_mode))
            .then(a.key.load_value.total_cmp(&b.key.load_value))
            .then(a.key.round.cmp(&b.key.round))
            .then(a.order.total_cmp(&b.order))
            .then(a.group.cmp(&b.group))
    });
}

/// Latency by turn and by prompt-length bucket.
pub struct SessionsAcc {
    turns: GroupedAcc,
    buckets: GroupedAcc,
}

impl SessionsAcc {
    pub fn new() -> Self {
        let length = col("prompt_tokens")
            .cast(DataType::Float64)
            .fill_null(col("input_tokens_target").cast(DataType::Float64));
        Self {
            turns: by_level_and(
                Box::new(|lf| lf.filter(measured())),
                &["turn"],
                "latency by turn",
            ),
            buckets: by_level_and(
                Box::new(move |lf| {
                    lf.filter(measured())
                        .with_column(bucket_expr(length.clone()).alias("bucket"))
                }),
                &["bucket"],
                "latency by prompt length",
            )
            .keep(col("bucket").is_not_null()),
        }
    }

    pub fn add(&mut self, batch: &DataFrame) -> Result<()> {
        let (turns, buckets) = rayon::join(|| self.turns.add(batch), || self.buckets.add(batch));
        turns.and(buckets)
    }

    /// By turn (only for runs with more than one turn) and by prompt bucket.
    pub fn finish(
        self,
        levels: &Levels,
        store: &Store,
    ) -> Result<(Vec<GroupStats>, Vec<GroupStats>)> {
        let turns = self.turns.finish(levels, store)?;
        let multi_turn =
            (0..turns.frame.height()).any(|i| turns.frame.u64("turn", i).is_ok_and(|t| t > 0));
        let turns = if multi_turn {
            read_groups(&turns, |f, i| {
                let t = f.u64("turn", i)?;
                Ok((format!("turn {t}"), t as f64))
            })?
        } else {
            Vec::new()
        };
        let buckets = read_groups(&self.buckets.finish(levels, store)?, |f, i| {
            let lo = f.f64("bucket", i)?.unwrap_or(0.0);
            Ok((bucket_label(lo), lo))
        })?;
        Ok((turns, buckets))
    }
}

/// Refuse `--by` columns the requests do not have, or cannot be grouped by.
pub fn check_by(schema: &Schema, columns: &[String]) -> Result<()> {
    for c in columns {
        if schema.get(c.as_str()).is_none() {
            let names: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
            return Err(Error::BadColumn {
                column: c.clone(),
                reason: format!(
                    "no such column; the requests columns are {}",
                    names.join(", ")
                ),
            });
        }
        if schema
            .get(c.as_str())
            .is_some_and(|t| matches!(t, DataType::List(_)))
        {
            return Err(Error::BadColumn {
                column: c.clone(),
                reason: "a list column cannot be grouped by".into(),
            });
        }
    }
    Ok(())
}

/// `--by COLS`: latency per level and per value of the named columns
/// (checked with `check_by`).
pub struct ByAcc {
    columns: Vec<String>,
    text_cols: Vec<String>,
    acc: GroupedAcc,
}

impl ByAcc {
    pub fn new(columns: &[String]) -> Self {
        let text_cols: Vec<String> = columns.iter().map(|c| format!("__by_{c}")).collect();
        let text_names: Vec<&str> = text_cols.iter().map(String::as_str).collect();
        let with: Vec<Expr> = columns
            .iter()
            .zip(&text_cols)
            .map(|(c, t)| col(c.as_str()).cast(DataType::String).alias(t.as_str()))
            .collect();
        let acc = by_level_and(
            Box::new(move |lf| lf.filter(measured()).with_columns(with.clone())),
            &text_names,
            "the --by groups",
        );
        Self {
            columns: columns.to_vec(),
            text_cols,
            acc,
        }
    }

    pub fn add(&mut self, batch: &DataFrame) -> Result<()> {
        self.acc.add(batch)
    }

    pub fn finish(self, levels: &Levels, store: &Store) -> Result<ByTable> {
        let (columns, text_cols) = (self.columns, self.text_cols);
        let groups = read_groups(&self.acc.finish(levels, store)?, |f, i| {
            let parts = columns
                .iter()
                .zip(&text_cols)
                .map(|(c, t)| {
                    Ok(format!(
                        "{c}={}",
                        f.str(t, i)?.unwrap_or_else(|| "null".into())
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((parts.join(","), 0.0))
        })?;
        Ok(ByTable { columns, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_labels_cover_the_edges() {
        assert_eq!(bucket_label(0.0), "0-127");
        assert_eq!(bucket_label(128.0), "128-255");
        assert_eq!(bucket_label(2097152.0), "2097152+");
    }
}
