//! `trace convert burstgpt`: BurstGPT request logs (v1 and v3 layouts).
//!
//! Input: CSV read by header name: `Timestamp` (seconds), `Request tokens`,
//! `Response tokens`, and optionally `Model`, `Log Type`, `Session ID` and
//! `Elapsed time` (v3). Rows sharing a non-empty session id become one
//! multi-turn session in time order; other rows are single-turn sessions.
//! Sessions are grouped across all inputs, so the compact rows are held in
//! memory, and written ordered by their first arrival. See
//! `docs/formats/burstgpt.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use traces::TraceRow;

use crate::input::expand_inputs;
use crate::timestamp::{CsvFile, CsvRow, EMPTY_PROMPT, Nanos, line_id, offset_ms, units_to_nanos};
use crate::{Error, Outcome, Result, SessionSource, ids};

/// The skip reason of a request that got no response.
pub const FAILED: &str = "failed request (0 response tokens)";

/// Options of `trace convert burstgpt`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {
    /// Keep failed requests (0 response tokens) that have a prompt, asking
    /// for 0 output tokens, instead of skipping them.
    #[arg(long)]
    pub include_failed: bool,
}

/// Opens the inputs, reads them whole and groups their sessions.
pub fn open(inputs: &[PathBuf], opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_inputs(inputs, &["csv"])?;
    let mut reader = Reader::new(opts.include_failed);
    for (index, file) in files.iter().enumerate() {
        reader.read_file(file, index)?;
    }
    Ok(Box::new(reader.into_source(files)))
}

/// Which session a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// A named session (index into the session names).
    Named(u32),
    /// A row of its own: input file index and line.
    Single { file: u32, line: u64 },
}

/// One request, compactly.
#[derive(Debug, Clone)]
struct Request {
    at: Nanos,
    input: u32,
    output: u32,
    /// The recorded response time (v3 `Elapsed time`), in ms.
    elapsed_ms: Option<f64>,
    /// Index into the source labels.
    label: u32,
    key: Key,
}

/// Column positions in one file.
struct Columns {
    timestamp: usize,
    request: usize,
    response: usize,
    model: Option<usize>,
    log_type: Option<usize>,
    session: Option<usize>,
    elapsed: Option<usize>,
}

impl Columns {
    fn of(csv: &CsvFile) -> Result<Self> {
        Ok(Columns {
            timestamp: csv.require("Timestamp")?,
            request: csv.require("Request tokens")?,
            response: csv.require("Response tokens")?,
            model: csv.column("Model"),
            log_type: csv.column("Log Type"),
            session: csv.column("Session ID"),
            elapsed: csv.column("Elapsed time"),
        })
    }
}

/// Strings seen many times, stored once.
#[derive(Default)]
struct Interner {
    index: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn get(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }
}

/// Reads every file, keeping requests compactly and skips/bad rows in order.
struct Reader {
    include_failed: bool,
    requests: Vec<Request>,
    /// Skipped and bad rows, passed on before any session.
    early: Vec<Result<Outcome>>,
    sessions: Interner,
    labels: Interner,
}

impl Reader {
    fn new(include_failed: bool) -> Self {
        Reader {
            include_failed,
            requests: Vec::new(),
            early: Vec::new(),
            sessions: Interner::default(),
            labels: Interner::default(),
        }
    }

    fn read_file(&mut self, path: &Path, index: usize) -> Result<()> {
        let csv = CsvFile::open(path)?;
        let columns = Columns::of(&csv)?;
        for row in csv.rows() {
            let parsed = row.and_then(|row| self.request(&row, &columns, index as u32));
            match parsed {
                Ok(Ok(request)) => self.requests.push(request),
                Ok(Err(reason)) => self.early.push(Ok(Outcome::Skipped(reason.into()))),
                Err(e @ Error::BadRecord { .. }) => self.early.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One row as a request, or the reason it is skipped.
    fn request(
        &mut self,
        row: &CsvRow,
        c: &Columns,
        file: u32,
    ) -> Result<std::result::Result<Request, &'static str>> {
        let text = row.text(c.timestamp, "Timestamp")?;
        let at = text
            .parse::<f64>()
            .ok()
            .and_then(|s| units_to_nanos(s, 1_000_000_000))
            .ok_or_else(|| {
                row.bad(
                    "bad timestamp",
                    format!("\"Timestamp\" must be non-negative seconds, found {text:?}"),
                )
            })?;
        let input = row.count(c.request, "Request tokens")?;
        let output = row.count(c.response, "Response tokens")?;
        let elapsed_ms = elapsed_ms(row, c.elapsed)?;
        let optional = |idx: Option<usize>| idx.and_then(|i| row.record.get(i)).map(str::trim);
        let label = source_label(optional(c.model), optional(c.log_type));
        let session = optional(c.session).filter(|s| !s.is_empty());
        if output == 0 && !self.include_failed {
            return Ok(Err(FAILED));
        }
        if input == 0 {
            return Ok(Err(EMPTY_PROMPT));
        }
        let key = match session {
            Some(name) => Key::Named(self.sessions.get(name)),
            None => Key::Single {
                file,
                line: row.location.line.unwrap_or(0),
            },
        };
        Ok(Ok(Request {
            at,
            input,
            output,
            elapsed_ms,
            label: self.labels.get(&label),
            key,
        }))
    }

    fn into_source(mut self, files: Vec<PathBuf>) -> Sessions {
        self.requests.sort_by_key(|r| r.at);
        let origin = self.requests.first().map_or(0, |r| r.at);
        let mut groups: Vec<Vec<Request>> = Vec::new();
        let mut group_of: HashMap<u32, usize> = HashMap::new();
        for request in self.requests {
            match request.key {
                Key::Named(name) => {
                    let g = *group_of.entry(name).or_insert_with(|| {
                        groups.push(Vec::new());
                        groups.len() - 1
                    });
                    groups[g].push(request);
                }
                Key::Single { .. } => groups.push(vec![request]),
            }
        }
        self.early.reverse();
        groups.reverse();
        Sessions {
            early: self.early,
            groups,
            origin,
            files,
            session_names: self.sessions.names,
            labels: self.labels.names,
        }
    }
}

/// The v3 `Elapsed time` (seconds) in ms; `None` when the column is absent or empty.
fn elapsed_ms(row: &CsvRow, column: Option<usize>) -> Result<Option<f64>> {
    let Some(text) = column.and_then(|i| row.record.get(i)).map(str::trim) else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(Some(s * 1000.0)),
        _ => Err(row.bad(
            "bad number",
            format!("\"Elapsed time\" must be non-negative seconds, found {text:?}"),
        )),
    }
}

/// `burstgpt/<Model>/<Log Type>`, leaving out empty parts.
fn source_label(model: Option<&str>, log_type: Option<&str>) -> String {
    let mut label = String::from("burstgpt");
    for part in [model, log_type].into_iter().flatten() {
        if !part.is_empty() {
            label.push('/');
            label.push_str(part);
        }
    }
    label
}

/// The grouped sessions, handed out by first arrival (stacks are reversed).
struct Sessions {
    early: Vec<Result<Outcome>>,
    groups: Vec<Vec<Request>>,
    origin: Nanos,
    files: Vec<PathBuf>,
    session_names: Vec<String>,
    labels: Vec<String>,
}

impl Sessions {
    fn session_id(&self, key: Key) -> String {
        match key {
            Key::Named(i) => self.session_names[i as usize].clone(),
            Key::Single { file, line } => line_id(&self.files[file as usize], line),
        }
    }

    fn rows(&self, group: &[Request]) -> Vec<TraceRow> {
        let Some(first) = group.first() else {
            return Vec::new();
        };
        let session_id = self.session_id(first.key);
        let mut previous: Option<&Request> = None;
        let mut rows = Vec::with_capacity(group.len());
        for (turn, r) in group.iter().enumerate() {
            let turn = turn as u32;
            rows.push(TraceRow {
                request_id: ids::request_id(&session_id, turn),
                session_id: session_id.clone(),
                turn,
                arrival_ms: Some(offset_ms(r.at, self.origin)),
                think_ms: previous.map(|p| think_ms(p, r)),
                input_tokens: Some(r.input),
                output_tokens: Some(r.output),
                source: self.labels[r.label as usize].clone(),
                ..Default::default()
            });
            previous = Some(r);
        }
        rows
    }
}

/// The pause between the previous turn's response and this turn: the gap
/// between their arrivals less the previous response time when recorded,
/// never negative.
fn think_ms(previous: &Request, this: &Request) -> f64 {
    let gap = offset_ms(this.at, previous.at);
    (gap - previous.elapsed_ms.unwrap_or(0.0)).max(0.0)
}

impl SessionSource for Sessions {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        if let Some(early) = self.early.pop() {
            return Some(early);
        }
        let group = self.groups.pop()?;
        Some(Ok(Outcome::Session(self.rows(&group))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(at_s: i64, elapsed_ms: Option<f64>) -> Request {
        Request {
            at: at_s * 1_000_000_000,
            input: 1,
            output: 1,
            elapsed_ms,
            label: 0,
            key: Key::Named(0),
        }
    }

    #[test]
    fn think_time_subtracts_the_previous_response_time() {
        assert_eq!(
            think_ms(&request(10, Some(3000.0)), &request(15, None)),
            2000.0
        );
        assert_eq!(think_ms(&request(10, None), &request(15, None)), 5000.0);
        assert_eq!(
            think_ms(&request(10, Some(9000.0)), &request(15, None)),
            0.0
        );
    }

    #[test]
    fn labels_leave_out_empty_parts() {
        assert_eq!(
            source_label(Some("GPT-4"), Some("API log")),
            "burstgpt/GPT-4/API log"
        );
        assert_eq!(source_label(Some(""), None), "burstgpt");
    }
}
