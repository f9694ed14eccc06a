//! The request log (`--log-requests`): one record per completion request,
//! written by one thread so request tasks never touch the file.
//!
//! Times are milliseconds since the Unix epoch as `f64` (microsecond
//! precision), taken from a monotonic clock anchored at server start, so a
//! client's wall-clock measurements can be compared with them directly.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use anyhow::Context;
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, StringBuilder, UInt16Builder, UInt32Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use serde::Serialize;

use super::args::LogFormat;

/// What happened to one request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record {
    /// The response id (`chatcmpl-mock-N` / `cmpl-mock-N`).
    pub request_id: String,
    /// The client's `x-request-id` header, if it sent one.
    pub client_request_id: Option<String>,
    /// `chat` or `completions`.
    pub endpoint: &'static str,
    pub stream: bool,
    /// `ok`, `fault`, `error` (rejected input) or `cancelled` (the client went away).
    pub status: &'static str,
    pub http_status: u16,
    /// The fault name when `status` is `fault`.
    pub fault: Option<&'static str>,
    pub arrival_ms: f64,
    /// When the request left the waiting queue.
    pub admitted_ms: Option<f64>,
    /// When the first token was handed to the connection.
    pub first_token_ms: Option<f64>,
    /// When the last token was handed to the connection.
    pub last_token_ms: Option<f64>,
    pub prompt_tokens: u32,
    /// Tokens actually sent.
    pub completion_tokens: u32,
    /// Prompt tokens served from either cache tier.
    pub cached_tokens: u32,
    /// Of those, from the external tier.
    pub external_cached_tokens: u32,
}

enum Msg {
    Record(Box<Record>),
    Close,
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct Log {
    tx: Option<Sender<Msg>>,
}

/// Owns the writer thread; `close` flushes and closes the file.
pub struct LogWriter {
    tx: Sender<Msg>,
    thread: JoinHandle<anyhow::Result<()>>,
    path: PathBuf,
}

impl Log {
    /// A log that drops everything.
    pub fn disabled() -> Log {
        Log { tx: None }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn write(&self, record: Record) {
        if let Some(tx) = &self.tx {
            // A closed log only happens during shutdown: records are dropped then.
            let _ = tx.send(Msg::Record(Box::new(record)));
        }
    }
}

/// Creates the file (so a bad path fails at start) and starts the writer.
pub fn open(path: &Path, format: LogFormat) -> anyhow::Result<(Log, LogWriter)> {
    let file = File::create(path)
        .with_context(|| format!("cannot create request log {}", path.display()))?;
    let (tx, rx) = channel();
    let shown = path.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("mock-request-log".into())
        .spawn(move || match format {
            LogFormat::Jsonl => write_jsonl(file, rx),
            LogFormat::Parquet => write_parquet(file, rx),
        })
        .context("cannot start the request log thread")?;
    Ok((
        Log {
            tx: Some(tx.clone()),
        },
        LogWriter {
            tx,
            thread,
            path: shown,
        },
    ))
}

impl LogWriter {
    /// Writes what is queued, closes the file and waits for the thread.
    pub fn close(self) -> anyhow::Result<()> {
        let _ = self.tx.send(Msg::Close);
        match self.thread.join() {
            Ok(result) => {
                result.with_context(|| format!("cannot write request log {}", self.path.display()))
            }
            Err(_) => anyhow::bail!("the request log thread of {} died", self.path.display()),
        }
    }
}

fn write_jsonl(file: File, rx: Receiver<Msg>) -> anyhow::Result<()> {
    let mut out = BufWriter::new(file);
    while let Ok(msg) = rx.recv() {
        let mut next = Some(msg);
        // Write everything queued, then flush, so a killed server loses little.
        while let Some(msg) = next {
            match msg {
                Msg::Record(r) => {
                    serde_json::to_writer(&mut out, &r)?;
                    out.write_all(b"\n")?;
                }
                Msg::Close => {
                    out.flush()?;
                    return Ok(());
                }
            }
            next = rx.try_recv().ok();
        }
        out.flush()?;
    }
    out.flush()?;
    Ok(())
}

const BATCH_ROWS: usize = 8192;

fn schema() -> Arc<Schema> {
    let f64n = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("request_id", DataType::Utf8, false),
        Field::new("client_request_id", DataType::Utf8, true),
        Field::new("endpoint", DataType::Utf8, false),
        Field::new("stream", DataType::Boolean, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("http_status", DataType::UInt16, false),
        Field::new("fault", DataType::Utf8, true),
        Field::new("arrival_ms", DataType::Float64, false),
        f64n("admitted_ms"),
        f64n("first_token_ms"),
        f64n("last_token_ms"),
        Field::new("prompt_tokens", DataType::UInt32, false),
        Field::new("completion_tokens", DataType::UInt32, false),
        Field::new("cached_tokens", DataType::UInt32, false),
        Field::new("external_cached_tokens", DataType::UInt32, false),
    ]))
}

fn to_batch(schema: &Arc<Schema>, rows: &[Record]) -> anyhow::Result<RecordBatch> {
    let mut id = StringBuilder::new();
    let mut client = StringBuilder::new();
    let mut endpoint = StringBuilder::new();
    let mut stream = BooleanBuilder::new();
    let mut status = StringBuilder::new();
    let mut http = UInt16Builder::new();
    let mut fault = StringBuilder::new();
    let mut arrival = Float64Builder::new();
    let mut admitted = Float64Builder::new();
    let mut first = Float64Builder::new();
    let mut last = Float64Builder::new();
    let mut prompt = UInt32Builder::new();
    let mut completion = UInt32Builder::new();
    let mut cached = UInt32Builder::new();
    let mut external = UInt32Builder::new();
    for r in rows {
        id.append_value(&r.request_id);
        client.append_option(r.client_request_id.as_deref());
        endpoint.append_value(r.endpoint);
        stream.append_value(r.stream);
        status.append_value(r.status);
        http.append_value(r.http_status);
        fault.append_option(r.fault);
        arrival.append_value(r.arrival_ms);
        admitted.append_option(r.admitted_ms);
        first.append_option(r.first_token_ms);
        last.append_option(r.last_token_ms);
        prompt.append_value(r.prompt_tokens);
        completion.append_value(r.completion_tokens);
        cached.append_value(r.cached_tokens);
        external.append_value(r.external_cached_tokens);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(client.finish()),
        Arc::new(endpoint.finish()),
        Arc::new(stream.finish()),
        Arc::new(status.finish()),
        Arc::new(http.finish()),
        Arc::new(fault.finish()),
        Arc::new(arrival.finish()),
        Arc::new(admitted.finish()),
        Arc::new(first.finish()),
        Arc::new(last.finish()),
        Arc::new(prompt.finish()),
        Arc::new(completion.finish()),
        Arc::new(cached.finish()),
        Arc::new(external.finish()),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn write_parquet(file: File, rx: Receiver<Msg>) -> anyhow::Result<()> {
    let schema = schema();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None)?;
    let mut rows: Vec<Record> = Vec::with_capacity(BATCH_ROWS);
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Record(r) => {
                rows.push(*r);
                if rows.len() >= BATCH_ROWS {
                    writer.write(&to_batch(&schema, &rows)?)?;
                    rows.clear();
                }
            }
            Msg::Close => break,
        }
    }
    if !rows.is_empty() {
        writer.write(&to_batch(&schema, &rows)?)?;
    }
    writer.close()?;
    Ok(())
}
