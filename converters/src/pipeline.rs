//! The conversion driver shared by every format.

use std::collections::HashSet;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use traces::{Codec, TraceMetadata, TraceRow, TraceWriter, WriterOptions};

use crate::{Error, Report, Result, ids};

/// What one source record became.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A session: its turns in order (`turn` 0, 1, ...).
    Session(Vec<TraceRow>),
    /// A record that parsed but has nothing to send; the reason is counted.
    Skipped(String),
}

/// A reader of one input format, yielding sessions one by one.
pub trait SessionSource {
    /// The next record's outcome, `None` at the end of all inputs.
    /// [`Error::BadRecord`] may be followed by more records; any other
    /// error ends the conversion.
    fn next_outcome(&mut self) -> Option<Result<Outcome>>;

    /// Tokens per `hash_ids` block, for formats that carry them.
    fn block_size(&self) -> Option<u32> {
        None
    }

    /// Adds the source's own counts (e.g. duplicates removed) to the report.
    fn finish(&mut self, _report: &mut Report) {}
}

/// Options every converter takes.
#[derive(Debug, Clone, Default)]
pub struct CommonOptions {
    /// Keep only the first N usable sessions.
    pub limit: Option<u64>,
    /// Keep a uniform random sample of N sessions (after `limit`), in input order.
    pub sample: Option<u64>,
    pub seed: u64,
    /// Drop sessions with a row whose `input_tokens` exceeds this (where known).
    pub max_input_tokens: Option<u32>,
    /// Drop sessions with a row whose `output_tokens` exceeds this (where known).
    pub max_output_tokens: Option<u32>,
    /// Skip records that do not parse or have the wrong shape, instead of failing.
    pub skip_bad: bool,
    /// Compression of the written trace.
    pub compression: Codec,
}

impl CommonOptions {
    fn keeps(&self, session: &[TraceRow]) -> bool {
        session.iter().all(|r| {
            self.max_input_tokens
                .is_none_or(|m| r.input_tokens.is_none_or(|t| t <= m))
                && self
                    .max_output_tokens
                    .is_none_or(|m| r.output_tokens.is_none_or(|t| t <= m))
        })
    }
}

/// Pulls sessions from `source` until it ends, applying `opts`, and passes
/// them on in order. Shared by [`run`] and callers that post-process rows.
pub fn collect_sessions(
    source: &mut dyn SessionSource,
    opts: &CommonOptions,
    report: &mut Report,
    mut emit: impl FnMut(Vec<TraceRow>, &mut Report) -> Result<()>,
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut reservoir: Vec<(u64, Vec<TraceRow>)> = Vec::new();
    let mut usable: u64 = 0;
    let mut seen_ids: HashSet<String> = HashSet::new();
    while let Some(outcome) = source.next_outcome() {
        if opts.limit.is_some_and(|l| usable >= l) {
            break;
        }
        report.records += 1;
        let mut session = match outcome {
            Ok(Outcome::Session(rows)) if rows.is_empty() => {
                report.skip("empty session");
                continue;
            }
            Ok(Outcome::Session(rows))
                if rows
                    .iter()
                    .any(|r| r.messages.is_empty() && r.input_tokens.is_none()) =>
            {
                report.skip("a turn with nothing to send");
                continue;
            }
            Ok(Outcome::Session(rows)) => rows,
            Ok(Outcome::Skipped(reason)) => {
                report.skip(reason);
                continue;
            }
            Err(Error::BadRecord {
                kind,
                location,
                message,
            }) => {
                if opts.skip_bad {
                    report.bad(kind);
                    continue;
                }
                return Err(Error::BadRecord {
                    kind,
                    location,
                    message: format!("{message} (use --skip-bad to skip bad records)"),
                });
            }
            Err(e) => return Err(e),
        };
        if !opts.keeps(&session) {
            report.filtered += 1;
            continue;
        }
        unique_session_id(&mut session, &mut seen_ids, report);
        match opts.sample {
            Some(n) => {
                if (reservoir.len() as u64) < n {
                    reservoir.push((usable, session));
                } else {
                    let j = rng.random_range(0..=usable);
                    if j < n {
                        reservoir[j as usize] = (usable, session);
                    }
                }
            }
            None => emit(session, report)?,
        }
        usable += 1;
    }
    if opts.sample.is_some() {
        reservoir.sort_by_key(|(i, _)| *i);
        for (_, session) in reservoir {
            emit(session, report)?;
        }
    }
    source.finish(report);
    Ok(())
}

fn unique_session_id(session: &mut [TraceRow], seen: &mut HashSet<String>, report: &mut Report) {
    let Some(first) = session.first() else {
        return;
    };
    let base = first.session_id.clone();
    let mut id = base.clone();
    let mut n = 1;
    while seen.contains(&id) {
        n += 1;
        id = format!("{base}~{n}");
    }
    if n > 1 {
        report.renamed_ids += 1;
    }
    for row in session.iter_mut() {
        if row.session_id != id || row.request_id.is_empty() {
            row.session_id = id.clone();
            row.request_id = ids::request_id(&id, row.turn);
        }
    }
    seen.insert(id);
}

/// Converts everything `source` yields into a trace at `output`.
///
/// `producer` describes the converter and its arguments (stored as
/// `trace.source`). On any error the output is left untouched.
pub fn run(
    source: &mut dyn SessionSource,
    opts: &CommonOptions,
    output: &Path,
    producer: serde_json::Value,
) -> Result<Report> {
    let mut metadata = TraceMetadata::with_source(producer);
    metadata.block_size = source.block_size();
    let writer_options = WriterOptions {
        compression: opts.compression,
        ..WriterOptions::default()
    };
    let mut writer = TraceWriter::with_options(output, &metadata, writer_options)?;
    let mut report = Report::default();
    collect_sessions(source, opts, &mut report, |session, report| {
        report.sessions_written += 1;
        for row in session {
            report.rows_written += 1;
            report.compactions += row.reset_context as u64;
            report.overflows += row.overflow as u64;
            writer.write(row)?;
        }
        Ok(())
    })?;
    writer.set_stats(serde_json::to_string(&report).unwrap_or_default());
    writer.finish()?;
    Ok(report)
}
