//! The lazy frames every query starts from.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;

use super::stats::Frame;
use crate::error::{PolarsContext, Result};
use crate::run::RunFiles;

fn scan(parts: &[impl AsRef<Path>], what: &str) -> Result<LazyFrame> {
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
