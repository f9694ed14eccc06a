//! Latency within a level by a further grouping: the turn of a session,
//! the prompt-length bucket, or any columns the user names with `--by`.

use polars::prelude::*;

use super::stats::{Frame, dist_exprs, is_ok, key_exprs, measured};
use crate::error::{Error, PolarsContext, Result};
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

fn group_aggs() -> Vec<Expr> {
    let ok = is_ok();
    let mut aggs = vec![
        len().cast(DataType::UInt64).alias("requests"),
        ok.clone().cast(DataType::UInt64).sum().alias("ok"),
        col("compaction")
            .cast(DataType::UInt64)
            .sum()
            .alias("compactions"),
        col("prompt_tokens")
            .filter(ok.clone())
            .cast(DataType::Float64)
            .mean()
            .alias("prompt_mean"),
    ];
    aggs.extend(dist_exprs("ttft", col("ttft_ms").filter(ok.clone())));
    aggs.extend(dist_exprs("tpot", col("tpot_ms").filter(ok.clone())));
    aggs.extend(dist_exprs("e2e", col("e2e_ms").filter(ok)));
    aggs
}

fn read_groups(
    f: &Frame,
    label: impl Fn(&Frame, usize) -> Result<(String, f64)>,
) -> Result<Vec<GroupStats>> {
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
            ttft_ms: f.dist("ttft", i)?,
            tpot_ms: f.dist("tpot", i)?,
            e2e_ms: f.dist("e2e", i)?,
        });
    }
    out.sort_by(|a, b| {
        (&a.key.run_id, &a.key.load_mode)
            .cmp(&(&b.key.run_id, &b.key.load_mode))
            .then(a.key.load_value.total_cmp(&b.key.load_value))
            .then(a.key.round.cmp(&b.key.round))
            .then(a.order.total_cmp(&b.order))
            .then(a.group.cmp(&b.group))
    });
    Ok(out)
}

/// By turn (only for runs with more than one turn) and by prompt bucket.
pub fn sessions(lf: &LazyFrame) -> Result<(Vec<GroupStats>, Vec<GroupStats>)> {
    let mut by = key_exprs();
    by.push(col("turn"));
    let turns = Frame::collect(
        lf.clone().filter(measured()).group_by(by).agg(group_aggs()),
        "latency by turn",
    )?;
    let multi_turn = (0..turns.height()).any(|i| turns.u64("turn", i).is_ok_and(|t| t > 0));
    let turns = if multi_turn {
        read_groups(&turns, |f, i| {
            let t = f.u64("turn", i)?;
            Ok((format!("turn {t}"), t as f64))
        })?
    } else {
        Vec::new()
    };
    let length = col("prompt_tokens")
        .cast(DataType::Float64)
        .fill_null(col("input_tokens_target").cast(DataType::Float64));
    let mut by = key_exprs();
    by.push(col("bucket"));
    let buckets = Frame::collect(
        lf.clone()
            .filter(measured())
            .with_column(bucket_expr(length).alias("bucket"))
            .filter(col("bucket").is_not_null())
            .group_by(by)
            .agg(group_aggs()),
        "latency by prompt length",
    )?;
    let buckets = read_groups(&buckets, |f, i| {
        let lo = f.f64("bucket", i)?.unwrap_or(0.0);
        Ok((bucket_label(lo), lo))
    })?;
    Ok((turns, buckets))
}

/// `--by COLS`: latency per level and per value of the named columns.
pub fn by_columns(lf: &LazyFrame, columns: &[String]) -> Result<ByTable> {
    let schema = lf
        .clone()
        .collect_schema()
        .ctx(|| "reading the requests schema".to_string())?;
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
    let text_cols: Vec<String> = columns.iter().map(|c| format!("__by_{c}")).collect();
    let mut by = key_exprs();
    by.extend(text_cols.iter().map(|c| col(c.as_str())));
    let with: Vec<Expr> = columns
        .iter()
        .zip(&text_cols)
        .map(|(c, t)| col(c.as_str()).cast(DataType::String).alias(t.as_str()))
        .collect();
    let f = Frame::collect(
        lf.clone()
            .filter(measured())
            .with_columns(with)
            .group_by(by)
            .agg(group_aggs()),
        "the --by groups",
    )?;
    let groups = read_groups(&f, |f, i| {
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
    Ok(ByTable {
        columns: columns.to_vec(),
        groups,
    })
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
