//! `trace tokenize`: exact, parallel token counts, and token-exact text for
//! token-only rows (`--materialize`). See docs/tokenize.md.
//!
//! - [`args`]: the command line;
//! - [`load`]: the tokenizer and chat template, from a file, a folder or the hub ([`hub`]);
//! - [`template`]: Hugging Face chat templates on minijinja;
//! - [`prompt`]: what each turn sends, and counting its tokens;
//! - [`count`]: the token columns of every row, in parallel across sessions;
//! - [`materialize`]: synthetic text of exact length with the trace's prefix sharing.

mod args;
mod count;
mod hub;
mod load;
mod materialize;
mod prompt;
mod template;

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use traces::{TraceMetadata, TraceReader, TraceRow, TraceWriter, WriterOptions, column};

pub use args::{TemplateChoice, TokenizeArgs};
pub use load::{Loaded, load_spec};
pub use prompt::Prompter;

use materialize::{MaterializeReport, Materializer};

/// Metadata key of what `--materialize` did.
const KEY_MATERIALIZED: &str = "trace.materialized";
/// Block size assumed for rows without `hash_ids` when the file names none.
const DEFAULT_BLOCK_SIZE: u32 = 16;

pub fn run(args: TokenizeArgs) -> anyhow::Result<()> {
    args.validate()?;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("cannot start the worker threads")?;
    let out = &args.output;
    pool.install(|| tokenize(&args)).with_context(|| {
        format!(
            "trace tokenize {} failed; {} was not written",
            args.trace.display(),
            out.display()
        )
    })
}

/// The columns `trace tokenize` reads, checked in the file's schema.
fn check_columns(path: &Path) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let schema = builder.schema();
    for needed in [
        column::REQUEST_ID,
        column::SESSION_ID,
        column::TURN,
        column::MESSAGES,
    ] {
        if schema.field_with_name(needed).is_err() {
            bail!(
                "{}: column `{needed}` is missing; trace tokenize needs request_id, session_id, \
                 turn and messages (docs/trace-format.md)",
                path.display()
            );
        }
    }
    Ok(())
}

fn tokenize(args: &TokenizeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let reader = TraceReader::open(&args.trace).map_err(flat)?;
    check_columns(&args.trace)?;
    let loaded = load::load(args)?;
    let mut metadata = reader.metadata().clone();

    let materialized_before = metadata.extra.get(KEY_MATERIALIZED);
    let done_before = metadata
        .tokenizer
        .as_deref()
        .is_some_and(|t| load::same_tokenization(t, &loaded.identity))
        && (!args.materialize
            || materialized_before.is_some_and(|m| same_materialization(m, args)));
    if done_before && !args.force {
        return already_done(args, &loaded);
    }

    let mut rows = reader.read_all().map_err(flat)?;
    let sessions = count::group_sessions(&rows);
    let prompter = Prompter::new(&loaded.tokenizer, loaded.template.as_ref());

    let materialized = if args.materialize {
        let block_size = block_size(&metadata, &rows, &args.trace)?;
        let m = Materializer::new(&prompter, block_size, args.seed)?;
        let report = m
            .run(&mut rows, &sessions)
            .with_context(|| format!("{}", args.trace.display()))?;
        let mut stored = serde_json::to_value(&report)?;
        stored["tokenizer_sha256"] = loaded.identity["tokenizer_sha256"].clone();
        stored["chat_template_sha256"] = loaded.identity["chat_template_sha256"].clone();
        metadata
            .extra
            .insert(KEY_MATERIALIZED.to_string(), stored.to_string());
        Some(report)
    } else {
        None
    };

    let token_only = rows.iter().filter(|r| r.messages.is_empty()).count();
    if token_only == rows.len() && !rows.is_empty() {
        bail!(
            "{}: every row is token-only (input_tokens without text), so there is nothing to \
             count; --materialize gives each row text of exactly its input_tokens tokens",
            args.trace.display()
        );
    }
    let counts = count::count_all(&prompter, &rows, &sessions)
        .with_context(|| format!("{}", args.trace.display()))?;
    let mut totals = Totals::default();
    for (row, c) in rows.iter_mut().zip(&counts) {
        row.new_tokens = c.new_tokens;
        row.prompt_tokens = c.prompt_tokens;
        row.reference_output_tokens = c.reference_output_tokens;
        totals.add(row);
    }

    metadata.tokenizer = Some(loaded.identity.to_string());
    write_rows(&args.output, &metadata, rows, args.write.compression)?;
    let report = json!({
        "trace": args.trace.display().to_string(),
        "output": args.output.display().to_string(),
        "tokenizer": loaded.identity,
        "skipped": false,
        "rows": totals.rows,
        "sessions": sessions.len(),
        "new_tokens": totals.new_tokens,
        "prompt_tokens": totals.prompt_tokens,
        "max_prompt_tokens": totals.max_prompt,
        "reference_output_tokens": totals.reference_tokens,
        "token_only_rows": token_only,
        "rows_without_prompt_tokens": totals.uncounted,
        "materialized": materialized,
        "seconds": started.elapsed().as_secs_f64(),
    });
    print_report(args, &loaded, &report, materialized.as_ref());
    Ok(())
}

/// A trace error as an anyhow error (its text names the file, its source the cause).
fn flat(e: traces::Error) -> anyhow::Error {
    e.into()
}

#[derive(Default)]
struct Totals {
    rows: u64,
    new_tokens: u64,
    prompt_tokens: u64,
    max_prompt: u32,
    reference_tokens: u64,
    /// Rows whose prompt could not be counted (token-only rows, and later
    /// turns of their sessions).
    uncounted: u64,
}

impl Totals {
    fn add(&mut self, row: &TraceRow) {
        self.rows += 1;
        self.new_tokens += u64::from(row.new_tokens.unwrap_or(0));
        self.uncounted += row.prompt_tokens.is_none() as u64;
        let p = row.prompt_tokens.unwrap_or(0);
        self.prompt_tokens += u64::from(p);
        self.max_prompt = self.max_prompt.max(p);
        self.reference_tokens += u64::from(row.reference_output_tokens.unwrap_or(0));
    }
}

fn same_materialization(stored: &str, args: &TokenizeArgs) -> bool {
    serde_json::from_str::<Value>(stored)
        .ok()
        .and_then(|v| v.get("seed").and_then(Value::as_u64))
        == Some(args.seed)
}

/// The block size of `hash_ids`: the file's `trace.block_size`, required
/// when rows have `hash_ids`.
fn block_size(metadata: &TraceMetadata, rows: &[TraceRow], path: &Path) -> anyhow::Result<u32> {
    match metadata.block_size {
        Some(0) => bail!("{}: trace.block_size is 0", path.display()),
        Some(b) => Ok(b),
        None if rows.iter().any(|r| r.hash_ids.is_some()) => bail!(
            "{}: rows have hash_ids but the file has no trace.block_size, so --materialize \
             cannot tell how many tokens a block holds",
            path.display()
        ),
        None => Ok(DEFAULT_BLOCK_SIZE),
    }
}

fn write_rows(
    out: &Path,
    metadata: &TraceMetadata,
    rows: Vec<TraceRow>,
    compression: traces::Codec,
) -> anyhow::Result<()> {
    let options = WriterOptions {
        compression,
        ..WriterOptions::default()
    };
    let mut writer = TraceWriter::with_options(out, metadata, options).map_err(flat)?;
    for row in rows {
        writer.write(row).map_err(flat)?;
    }
    writer.finish().map_err(flat)?;
    Ok(())
}

/// The trace was tokenized with this tokenizer already: nothing to count.
fn already_done(args: &TokenizeArgs, loaded: &load::Loaded) -> anyhow::Result<()> {
    let same_file = match (args.trace.canonicalize(), args.output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same_file {
        copy_file(&args.trace, &args.output)?;
    }
    let report = json!({
        "trace": args.trace.display().to_string(),
        "output": args.output.display().to_string(),
        "tokenizer": loaded.identity,
        "skipped": true,
    });
    if args.json {
        println!("{report:#}");
    } else {
        println!(
            "{} is already tokenized with {}: nothing to do (--force redoes it)",
            args.trace.display(),
            loaded.describe()
        );
        if !same_file {
            println!("copied it to {}", args.output.display());
        }
    }
    Ok(())
}

/// Copies through a temporary file beside `to`, renamed when complete.
fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".trace-tokenize.")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut src = File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
    std::io::copy(&mut src, tmp.as_file_mut())
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    tmp.persist(to)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", to.display()))?;
    Ok(())
}

fn print_report(
    args: &TokenizeArgs,
    loaded: &load::Loaded,
    report: &Value,
    materialized: Option<&MaterializeReport>,
) {
    if args.json {
        println!("{report:#}");
        return;
    }
    println!(
        "tokenized {} rows ({} sessions) of {} with {} in {:.2} s",
        report["rows"],
        report["sessions"],
        args.trace.display(),
        loaded.describe(),
        report["seconds"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  new_tokens {}  prompt_tokens {} (max {})  reference_output_tokens {}",
        report["new_tokens"],
        report["prompt_tokens"],
        report["max_prompt_tokens"],
        report["reference_output_tokens"]
    );
    let token_only = report["token_only_rows"].as_u64().unwrap_or(0);
    let uncounted = report["rows_without_prompt_tokens"].as_u64().unwrap_or(0);
    if uncounted > 0 {
        println!(
            "  {uncounted} rows left without prompt_tokens: {token_only} are token-only (no text to \
             count), the rest follow one in their session; --materialize gives token-only rows \
             text of exactly their input_tokens"
        );
    }
    if let Some(m) = materialized {
        println!(
            "  materialized {} rows: {} exact, {} inexact (max deviation {} tokens), {} words, block size {}",
            m.rows, m.exact, m.inexact, m.max_deviation, m.vocabulary, m.block_size
        );
    }
    println!("wrote {}", args.output.display());
}
