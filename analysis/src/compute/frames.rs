//! The lazy frames every query starts from.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;

use super::stats::Frame;
use crate::error::{PolarsContext, Result};
use crate::run::RunFiles;

pub fn scan(parts: &[impl AsRef<Path>], what: &str) -> Result<LazyFrame> {
    let paths = parts
        .iter()
        .map(|p| PlRefPath::new(p.as_ref().to_string_lossy().as_ref()))
        .collect();
    let args = ScanArgsParquet {
        glob: false,
        ..Default::default()
    };
    LazyFrame::scan_parquet_files(paths, args).ctx(|| format!("scanning {what}"))
}

/// Every run's `requests` parts as one lazy frame. `run_id` is set to the
/// run folder's name, which it is unless the folder was renamed, so that
/// every section names runs the same way.
pub fn requests(runs: &[RunFiles]) -> Result<LazyFrame> {
    let frames = runs
        .iter()
        .map(|r| {
            let what = format!("{}/requests", r.path.display());
            let mut lf =
                scan(&r.request_parts, &what)?.with_column(lit(r.run_id.clone()).alias("run_id"));
            if r.version < 2 {
                // Version 1 had no `source` column.
                lf = lf.with_column(lit(NULL).cast(DataType::String).alias("source"));
            }
            Ok(lf)
        })
        .collect::<Result<Vec<_>>>()?;
    if frames.len() == 1 {
        return Ok(frames.into_iter().next().expect("one frame"));
    }
    concat(frames, UnionArgs::default()).ctx(|| "combining the runs".to_string())
}

/// The request columns the report's sections read. Everything but the
/// inter-token gaps (read level by level, see `levels`) and `request_id`
/// (read only for runs with rounds to join).
const LOADED: [&str; 21] = [
    "run_id",
    "load_mode",
    "load_value",
    "round",
    "warmup",
    "status",
    "http_status",
    "turn",
    "user_id",
    "scheduled_ms",
    "sent_ms",
    "end_ms",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "lateness_ms",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "input_tokens_target",
    "compaction",
];

/// The requests of every run: the lazy scan of their parts, and the
/// columns the report reads, collected once so that its sections query
/// memory instead of each reading the parts again.
pub struct Requests {
    pub scan: LazyFrame,
    pub data: DataFrame,
}

impl Requests {
    /// Scan `runs` and load the report's columns plus `extra` (the `--by`
    /// columns; unknown names are left to the section that uses them).
    pub fn load(runs: &[RunFiles], extra: &[String]) -> Result<Self> {
        let scan = requests(runs)?;
        let schema = scan
            .clone()
            .collect_schema()
            .ctx(|| "reading the requests schema".to_string())?;
        let mut names: Vec<&str> = Vec::new();
        for name in LOADED
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
        {
            let loadable = schema
                .get(name)
                .is_some_and(|t| !matches!(t, DataType::List(_)));
            if loadable && !names.contains(&name) {
                names.push(name);
            }
        }
        let df = scan
            .clone()
            .select(names.iter().map(|n| col(*n)).collect::<Vec<_>>())
            .collect()
            .ctx(|| "reading the requests".to_string())?;
        Ok(Self { scan, data: df })
    }
}

/// One run's `server_metrics` parts, if it has any.
pub fn server_metrics(run: &RunFiles) -> Result<Option<LazyFrame>> {
    if run.metric_parts.is_empty() {
        return Ok(None);
    }
    scan(
        &run.metric_parts,
        &format!("{}/server_metrics", run.path.display()),
    )
    .map(Some)
}

/// Rows per run_id (warm-up included).
pub fn row_counts(lf: &LazyFrame) -> Result<HashMap<String, u64>> {
    let f = Frame::collect(
        lf.clone()
            .group_by([col("run_id")])
            .agg([len().alias("rows")]),
        "row counts",
    )?;
    let mut out = HashMap::new();
    for i in 0..f.height() {
        if let Some(id) = f.str("run_id", i)? {
            out.insert(id, f.u64("rows", i)?);
        }
    }
    Ok(out)
}
