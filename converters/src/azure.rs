//! `trace convert azure`: Azure LLM inference traces (2023 and 2024).
//!
//! Input: CSV with the columns `TIMESTAMP`, `ContextTokens` and
//! `GeneratedTokens`, found by header name (any case, any order, extra
//! columns ignored). Timestamps are date-times with or without a fraction
//! and a UTC offset. Each row is one single-turn, token-only session
//! `<file stem>-<line>`, written in arrival order. See `docs/formats/azure.md`.

use std::path::{Path, PathBuf};

use traces::TraceRow;

use crate::input::expand_inputs;
use crate::timestamp::{
    ArrivalOrder, CsvFile, CsvRow, EMPTY_PROMPT, Item, Items, OpenFile, Timed, line_id,
    parse_datetime,
};
use crate::{Result, SessionSource, ids};

/// Options of `trace convert azure`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {}

/// Opens the inputs as a source of sessions, in arrival order.
pub fn open(inputs: &[PathBuf], _opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_inputs(inputs, &["csv"])?;
    let open_one: OpenFile = Box::new(|path: &Path| -> Result<Items> {
        let csv = CsvFile::open(path)?;
        let columns = Columns {
            timestamp: csv.require("TIMESTAMP")?,
            context: csv.require("ContextTokens")?,
            generated: csv.require("GeneratedTokens")?,
        };
        let path = path.to_path_buf();
        Ok(Box::new(
            csv.rows()
                .map(move |row| convert_row(&row?, &columns, &path)),
        ))
    });
    Ok(Box::new(ArrivalOrder::open(&files, open_one, None)?))
}

/// Where the needed columns are in one file.
struct Columns {
    timestamp: usize,
    context: usize,
    generated: usize,
}

/// One CSV row as a request, or the reason it has nothing to send.
fn convert_row(row: &CsvRow, columns: &Columns, path: &Path) -> Result<Item> {
    let text = row.text(columns.timestamp, "TIMESTAMP")?;
    let at = parse_datetime(text).map_err(|e| row.bad("bad timestamp", e))?;
    let input = row.count(columns.context, "ContextTokens")?;
    let output = row.count(columns.generated, "GeneratedTokens")?;
    if input == 0 {
        return Ok(Item::Skipped(EMPTY_PROMPT.into()));
    }
    let session_id = line_id(path, row.location.line.unwrap_or(0));
    Ok(Item::Request(Timed {
        at,
        row: Box::new(TraceRow {
            request_id: ids::request_id(&session_id, 0),
            session_id,
            turn: 0,
            input_tokens: Some(input),
            output_tokens: Some(output),
            source: "azure".into(),
            ..Default::default()
        }),
    }))
}
