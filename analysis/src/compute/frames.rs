//! The lazy frames every query starts from.

use std::path::{Path, PathBuf};

use polars::prelude::*;

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

/// Some of a run's `requests` parts as one lazy frame. `run_id` is set to
/// the run folder's name, which it is unless the folder was renamed, so
/// that every section names runs the same way.
fn run_scan(run: &RunFiles, parts: &[PathBuf]) -> Result<LazyFrame> {
    let what = format!("{}/requests", run.path.display());
    let mut lf = scan(parts, &what)?.with_column(lit(run.run_id.clone()).alias("run_id"));
    if run.version < 2 {
        // Version 1 had no `source` column.
        lf = lf.with_column(lit(NULL).cast(DataType::String).alias("source"));
    }
    Ok(lf)
}

/// Every run's `requests` parts as one lazy frame.
pub fn requests(runs: &[RunFiles]) -> Result<LazyFrame> {
    let frames = runs
        .iter()
        .map(|r| run_scan(r, &r.request_parts))
        .collect::<Result<Vec<_>>>()?;
    if frames.len() == 1 {
        return Ok(frames.into_iter().next().expect("one frame"));
    }
    concat(frames, UnionArgs::default()).ctx(|| "combining the runs".to_string())
}

/// The request columns the report's sections read; `request_id` is read
/// only for runs with rounds to join (`rounds`).
const LOADED: [&str; 22] = [
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
    "itl_ms",
];

/// Request parts read per batch: enough for Polars to read files in
/// parallel, few enough that a batch is tens of MB whatever the run's size.
const PARTS_PER_BATCH: usize = 64;

/// Read every run's requests a batch of parts at a time, with the columns
/// the report uses and `extra` (the `--by` columns), and hand each batch
/// to `f`. The sections accumulate what they need, so the requests are
/// read once and never held whole.
pub fn for_each_batch(
    runs: &[RunFiles],
    extra: &[String],
    mut f: impl FnMut(&DataFrame) -> Result<()>,
) -> Result<()> {
    for run in runs {
        let what = format!("{}/requests", run.path.display());
        for parts in run.request_parts.chunks(PARTS_PER_BATCH) {
            let lf = run_scan(run, parts)?;
            let schema = lf
                .clone()
                .collect_schema()
                .ctx(|| format!("reading the schema of {what}"))?;
            let mut names: Vec<&str> = Vec::new();
            for name in LOADED
                .iter()
                .copied()
                .chain(extra.iter().map(String::as_str))
            {
                if schema.get(name).is_some() && !names.contains(&name) {
                    names.push(name);
                }
            }
            let batch = lf
                .select(names.iter().map(|n| col(*n)).collect::<Vec<_>>())
                .collect()
                .ctx(|| format!("reading {what}"))?;
            f(&batch)?;
        }
    }
    Ok(())
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
