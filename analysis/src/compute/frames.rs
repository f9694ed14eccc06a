//! The lazy frames every query starts from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{PolarsContext, Result};
use crate::model::LevelKey;
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
    if run.version < 3 {
        // Versions 1 and 2 had no `finish_reason` column.
        lf = lf.with_column(lit(NULL).cast(DataType::String).alias("finish_reason"));
    }
    if run.version < 4 {
        // Versions 1 to 3 had no `endpoint` column.
        lf = lf.with_column(lit(NULL).cast(DataType::String).alias("endpoint"));
    }
    if run.version < 5 {
        // Versions 1 to 4 had no `model` column.
        lf = lf.with_column(lit(NULL).cast(DataType::String).alias("model"));
    }
    if run.version < traces::results::RESULTS_SCHEMA_VERSION {
        // The columns in today's order, so that runs of several versions
        // stack into one frame.
        let order: Vec<Expr> = traces::results::requests_schema()
            .fields()
            .iter()
            .map(|f| col(f.name().as_str()))
            .collect();
        lf = lf.select(order);
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
/// only for runs that may have rounds to join (`may_have_rounds`).
const LOADED: [&str; 25] = [
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
    "tokens_source",
    "finish_reason",
    "max_tokens",
    "input_tokens_target",
    "compaction",
    "itl_ms",
];

/// Request parts read per batch: enough for Polars to read files in
/// parallel, few enough that a batch is tens of MB whatever the run's size.
const PARTS_PER_BATCH: usize = 64;

/// Whether a run may hold a level replayed in more than one round: its
/// run.json says so, or it has no run.json (a killed run) to tell.
pub fn may_have_rounds(run: &RunFiles) -> bool {
    run.run_json
        .as_ref()
        .is_none_or(|j| j.windows.is_empty() || j.windows.iter().any(|w| w.round > 1))
}

/// Whether a run may hold sessions of more than one turn: its run.json
/// says its trace has more turns than sessions, or has no such figures
/// (a killed run, or one from before they were written).
pub fn may_have_sessions(run: &RunFiles) -> bool {
    run.run_json
        .as_ref()
        .is_none_or(|j| j.multi_turn != Some(false))
}

/// The column `for_each_batch` adds to every batch: the row's level
/// (`run_id`, `load_mode`, `load_value`, `round`) as an index into its
/// [`Levels`]. The sections group by it instead of the four key columns
/// (two of them strings), and put the keys back when they finish.
pub const LEVEL: &str = "__level";

/// The levels seen, numbered in the order they were first seen, with the
/// rows read of each (warm-up included).
#[derive(Debug, Default)]
pub struct Levels {
    keys: Vec<LevelKey>,
    rows: Vec<u64>,
    index: HashMap<(String, String, u64, u32), u32>,
}

impl Levels {
    fn id(&mut self, run_id: &str, load_mode: &str, load_value: f64, round: u32) -> u32 {
        let k = (
            run_id.to_string(),
            load_mode.to_string(),
            load_value.to_bits(),
            round,
        );
        if let Some(id) = self.index.get(&k) {
            return *id;
        }
        let id = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        self.index.insert(k, id);
        self.rows.push(0);
        self.keys.push(LevelKey {
            run_id: run_id.to_string(),
            load_mode: load_mode.to_string(),
            load_value,
            round,
        });
        id
    }

    /// The level numbered `id`.
    pub fn key(&self, id: u32) -> Option<&LevelKey> {
        self.keys.get(id as usize)
    }

    /// The rows read of `run_id`, every level and warm-up included.
    pub fn run_rows(&self, run_id: &str) -> u64 {
        self.keys
            .iter()
            .zip(&self.rows)
            .filter(|(k, _)| k.run_id == run_id)
            .map(|(_, n)| n)
            .sum()
    }

    /// `frame` with its [`LEVEL`] column replaced by the four key columns,
    /// first, so that `stats::Frame::key` reads them.
    pub fn expand(&self, frame: DataFrame) -> Result<DataFrame> {
        let Ok(ids) = frame.column(LEVEL) else {
            return Ok(frame);
        };
        let ids = ids
            .as_materialized_series()
            .u32()
            .ctx(|| "level numbers".to_string())?
            .clone();
        let key = |id: Option<u32>| id.and_then(|id| self.key(id));
        let run: StringChunked = ids
            .iter()
            .map(|i| key(i).map(|k| k.run_id.as_str()))
            .collect();
        let mode: StringChunked = ids
            .iter()
            .map(|i| key(i).map(|k| k.load_mode.as_str()))
            .collect();
        let value: Float64Chunked = ids.iter().map(|i| key(i).map(|k| k.load_value)).collect();
        let round: UInt32Chunked = ids.iter().map(|i| key(i).map(|k| k.round)).collect();
        let mut columns: Vec<Column> = vec![
            run.with_name("run_id".into()).into_series().into(),
            mode.with_name("load_mode".into()).into_series().into(),
            value.with_name("load_value".into()).into_series().into(),
            round.with_name("round".into()).into_series().into(),
        ];
        columns.extend(
            frame
                .columns()
                .iter()
                .filter(|c| c.name().as_str() != LEVEL)
                .cloned(),
        );
        DataFrame::new_infer_height(columns).ctx(|| "the levels of a section".to_string())
    }

    /// The [`LEVEL`] column of a batch of `run_id`'s requests. A null key
    /// cell reads as the empty mode, a NaN value or round 0.
    fn column(&mut self, run_id: &str, batch: &DataFrame) -> Result<Column> {
        let what = || format!("the levels of {run_id}'s requests");
        let get = |name: &str, dtype: &DataType| {
            batch
                .column(name)
                .and_then(|c| c.as_materialized_series().cast(dtype))
                .map(|s| s.rechunk())
                .ctx(what)
        };
        let mode = get("load_mode", &DataType::String)?;
        let value = get("load_value", &DataType::Float64)?;
        let round = get("round", &DataType::UInt32)?;
        let (mode, value, round) = (
            mode.str().ctx(what)?,
            value.f64().ctx(what)?,
            round.u32().ctx(what)?,
        );
        let mut ids = Vec::with_capacity(batch.height());
        // The previous row's key cells and level: rows come in runs of one level.
        type Cells<'a> = (Option<&'a str>, Option<u64>, Option<u32>);
        let mut last: Option<(Cells, u32)> = None;
        for ((m, v), r) in mode.iter().zip(value.iter()).zip(round.iter()) {
            let bits = v.map(f64::to_bits);
            let id = match last {
                Some(((lm, lv, lr), id)) if lm == m && lv == bits && lr == r => id,
                _ => {
                    let id = self.id(
                        run_id,
                        m.unwrap_or_default(),
                        v.unwrap_or(f64::NAN),
                        r.unwrap_or(0),
                    );
                    last = Some(((m, bits, r), id));
                    id
                }
            };
            ids.push(id);
            self.rows[id as usize] += 1;
        }
        Ok(Column::new(LEVEL.into(), ids))
    }
}

/// Read every run's requests a batch of parts at a time, with the columns
/// the report uses and `extra` (the `--by` columns), and hand each batch
/// to `f` with a [`LEVEL`] column numbering its levels in `levels`; with
/// `request_ids`, `request_id` too for the runs that may have rounds, and
/// `session_id` for those that may have multi-turn sessions. The
/// sections accumulate what they need, so the requests are read once and
/// never held whole. The next batch is read while `f` takes this one.
pub fn for_each_batch(
    runs: &[RunFiles],
    extra: &[String],
    request_ids: bool,
    levels: &mut Levels,
    mut f: impl FnMut(&DataFrame) -> Result<()> + Send,
) -> Result<()> {
    let jobs: Vec<(&RunFiles, &[PathBuf])> = runs
        .iter()
        .flat_map(|run| {
            run.request_parts
                .chunks(PARTS_PER_BATCH)
                .map(move |parts| (run, parts))
        })
        .collect();
    let read = |run: &RunFiles, parts: &[PathBuf]| {
        let mut ids = Vec::new();
        if request_ids && may_have_rounds(run) {
            ids.push("request_id");
        }
        if may_have_sessions(run) {
            ids.push("session_id");
        }
        read_batch(run, parts, extra, &ids)
    };
    let mut jobs = jobs.into_iter();
    let mut read_next = || {
        jobs.next()
            .map(|(run, parts)| read(run, parts).map(|batch| (run, batch)))
            .transpose()
    };
    let mut next = read_next()?;
    while let Some((run, mut batch)) = next.take() {
        let level = levels.column(&run.run_id, &batch)?;
        batch
            .with_column(level)
            .ctx(|| format!("numbering the levels of {}/requests", run.path.display()))?;
        let (done, after) = rayon::join(|| f(&batch), &mut read_next);
        done?;
        next = after?;
    }
    Ok(())
}

/// One batch of a run's parts, with the columns the report uses, `extra`
/// and `ids`, those the parts have.
fn read_batch(
    run: &RunFiles,
    parts: &[PathBuf],
    extra: &[String],
    ids: &[&str],
) -> Result<DataFrame> {
    let what = format!("{}/requests", run.path.display());
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
        .chain(ids.iter().copied())
    {
        if schema.get(name).is_some() && !names.contains(&name) {
            names.push(name);
        }
    }
    lf.select(names.iter().map(|n| col(*n)).collect::<Vec<_>>())
        .collect()
        .ctx(|| format!("reading {what}"))
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
