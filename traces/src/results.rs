//! The results contract: one row per request a replay sent
//! (`docs/results-format.md`), written in self-contained Parquet parts so
//! that a crash or `kill -9` keeps every request already written.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, ListBuilder, StringBuilder, UInt16Builder,
    UInt32Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::{Error, Result};

/// Version of the results format, stored as `results.schema_version`.
/// Version 2 added the `source` column, version 3 `finish_reason`,
/// version 4 the `level_drain` status and the `endpoint` column, version
/// 5 the `model` column.
pub const RESULTS_SCHEMA_VERSION: u32 = 5;
pub const KEY_RESULTS_VERSION: &str = "results.schema_version";
/// The versions `read_parts` understands: version 1 parts have no
/// `source`, versions 1 and 2 no `finish_reason`, versions 1 to 3 no
/// `endpoint`, versions 1 to 4 no `model`, and before version 4 a request
/// cut by `--level-drain` was `cancelled`.
pub const READABLE_RESULTS_VERSIONS: &[u32] = &[1, 2, 3, 4, 5];

/// Service-level objectives: a request meets them when it succeeded and
/// each one set holds (TTFT, TPOT and end-to-end time at most so many ms).
/// `trace replay --slo` takes them and writes them to run.json, and `trace
/// report` reads them from there.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
}

impl Slo {
    /// Whether any objective is set.
    pub fn is_set(&self) -> bool {
        self.ttft_ms.is_some() || self.tpot_ms.is_some() || self.e2e_ms.is_some()
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    HttpError,
    Timeout,
    ConnectError,
    StreamError,
    /// Stopped by the run's end: Ctrl-C, SIGTERM, `--drain-timeout`.
    Cancelled,
    /// Still in flight (or waiting for a slot) `--level-drain` after its
    /// `--duration` level's end: the server had not finished it.
    LevelDrain,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::HttpError => "http_error",
            Status::Timeout => "timeout",
            Status::ConnectError => "connect_error",
            Status::StreamError => "stream_error",
            Status::Cancelled => "cancelled",
            Status::LevelDrain => "level_drain",
        }
    }
}

/// One request of a replay, as written to `requests/part-*.parquet`.
/// Times are milliseconds from the run's start (one monotonic clock).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestRecord {
    pub run_id: String,
    pub load_mode: String,
    pub load_value: f64,
    pub round: u32,
    pub warmup: bool,
    pub request_id: String,
    pub session_id: String,
    pub turn: u32,
    /// The dataset the request came from (the trace row's `source`).
    pub source: Option<String>,
    pub user_id: Option<u32>,
    pub scheduled_ms: f64,
    pub sent_ms: f64,
    pub first_token_ms: Option<f64>,
    pub first_reasoning_ms: Option<f64>,
    pub first_content_ms: Option<f64>,
    pub end_ms: f64,
    pub ttft_ms: Option<f64>,
    pub ttft_intended_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    pub e2e_intended_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub itl_ms: Vec<f32>,
    pub lateness_ms: f64,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub reasoning_tokens: Option<u32>,
    pub cached_tokens: Option<u32>,
    pub tokens_source: Option<String>,
    pub input_tokens_target: Option<u32>,
    pub max_tokens: Option<u32>,
    pub output_chars: u32,
    /// The reply's `finish_reason` (`stop`, `length`, `tool_calls`, ...),
    /// as the server gave it.
    pub finish_reason: Option<String>,
    /// The server the request was sent to (its base URL, as `--endpoint`
    /// gave it); several with a list of endpoints.
    pub endpoint: Option<String>,
    /// The model the request named (one of several with `--model A,B`).
    pub model: Option<String>,
    pub status: Option<Status>,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub compaction: bool,
}

impl RequestRecord {
    pub fn status_str(&self) -> &'static str {
        self.status.unwrap_or(Status::Cancelled).as_str()
    }
}

/// The Arrow schema of `requests` parts.
pub fn requests_schema() -> SchemaRef {
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    Arc::new(Schema::new(vec![
        f("run_id", DataType::Utf8, false),
        f("load_mode", DataType::Utf8, false),
        f("load_value", DataType::Float64, false),
        f("round", DataType::UInt32, false),
        f("warmup", DataType::Boolean, false),
        f("request_id", DataType::Utf8, false),
        f("session_id", DataType::Utf8, false),
        f("turn", DataType::UInt32, false),
        f("source", DataType::Utf8, true),
        f("user_id", DataType::UInt32, true),
        f("endpoint", DataType::Utf8, true),
        f("model", DataType::Utf8, true),
        f("scheduled_ms", DataType::Float64, false),
        f("sent_ms", DataType::Float64, false),
        f("first_token_ms", DataType::Float64, true),
        f("first_reasoning_ms", DataType::Float64, true),
        f("first_content_ms", DataType::Float64, true),
        f("end_ms", DataType::Float64, false),
        f("ttft_ms", DataType::Float64, true),
        f("ttft_intended_ms", DataType::Float64, true),
        f("e2e_ms", DataType::Float64, true),
        f("e2e_intended_ms", DataType::Float64, true),
        f("tpot_ms", DataType::Float64, true),
        f(
            "itl_ms",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
            false,
        ),
        f("lateness_ms", DataType::Float64, false),
        f("prompt_tokens", DataType::UInt32, true),
        f("completion_tokens", DataType::UInt32, true),
        f("reasoning_tokens", DataType::UInt32, true),
        f("cached_tokens", DataType::UInt32, true),
        f("tokens_source", DataType::Utf8, true),
        f("input_tokens_target", DataType::UInt32, true),
        f("max_tokens", DataType::UInt32, true),
        f("output_chars", DataType::UInt32, false),
        f("finish_reason", DataType::Utf8, true),
        f("status", DataType::Utf8, false),
        f("http_status", DataType::UInt16, true),
        f("error", DataType::Utf8, true),
        f("compaction", DataType::Boolean, false),
    ]))
}

fn records_to_batch(
    schema: &SchemaRef,
    rows: &[RequestRecord],
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let n = rows.len();
    let mut run_id = StringBuilder::with_capacity(n, n * 24);
    let mut load_mode = StringBuilder::with_capacity(n, n * 8);
    let mut load_value = Float64Builder::with_capacity(n);
    let mut round = UInt32Builder::with_capacity(n);
    let mut warmup = BooleanBuilder::with_capacity(n);
    let mut request_id = StringBuilder::with_capacity(n, n * 16);
    let mut session_id = StringBuilder::with_capacity(n, n * 16);
    let mut turn = UInt32Builder::with_capacity(n);
    let mut source = StringBuilder::with_capacity(n, n * 12);
    let mut user_id = UInt32Builder::with_capacity(n);
    let mut endpoint = StringBuilder::with_capacity(n, n * 24);
    let mut model = StringBuilder::with_capacity(n, n * 16);
    let mut f64s: Vec<Float64Builder> = (0..11).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut itl = ListBuilder::new(Float32Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Float32,
        false,
    )));
    let mut lateness = Float64Builder::with_capacity(n);
    let mut u32s: Vec<UInt32Builder> = (0..7).map(|_| UInt32Builder::with_capacity(n)).collect();
    let mut tokens_source = StringBuilder::new();
    let mut finish_reason = StringBuilder::new();
    let mut status = StringBuilder::with_capacity(n, n * 4);
    let mut http_status = UInt16Builder::with_capacity(n);
    let mut error = StringBuilder::new();
    let mut compaction = BooleanBuilder::with_capacity(n);
    for r in rows {
        run_id.append_value(&r.run_id);
        load_mode.append_value(&r.load_mode);
        load_value.append_value(r.load_value);
        round.append_value(r.round);
        warmup.append_value(r.warmup);
        request_id.append_value(&r.request_id);
        session_id.append_value(&r.session_id);
        turn.append_value(r.turn);
        source.append_option(r.source.as_deref());
        user_id.append_option(r.user_id);
        let times = [
            Some(r.scheduled_ms),
            Some(r.sent_ms),
            r.first_token_ms,
            r.first_reasoning_ms,
            r.first_content_ms,
            Some(r.end_ms),
            r.ttft_ms,
            r.ttft_intended_ms,
            r.e2e_ms,
            r.e2e_intended_ms,
            r.tpot_ms,
        ];
        for (b, v) in f64s.iter_mut().zip(times) {
            b.append_option(v);
        }
        itl.values().append_slice(&r.itl_ms);
        itl.append(true);
        lateness.append_value(r.lateness_ms);
        let counts = [
            r.prompt_tokens,
            r.completion_tokens,
            r.reasoning_tokens,
            r.cached_tokens,
            r.input_tokens_target,
            r.max_tokens,
            Some(r.output_chars),
        ];
        tokens_source.append_option(r.tokens_source.as_deref());
        for (b, v) in u32s.iter_mut().zip(counts) {
            b.append_option(v);
        }
        endpoint.append_option(r.endpoint.as_deref());
        model.append_option(r.model.as_deref());
        finish_reason.append_option(r.finish_reason.as_deref());
        status.append_value(r.status_str());
        http_status.append_option(r.http_status);
        error.append_option(r.error.as_deref());
        compaction.append_value(r.compaction);
    }
    let mut f = f64s
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut u = u32s
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next_f = || {
        f.next()
            .ok_or_else(|| arrow_schema::ArrowError::ComputeError("columns".into()))
    };
    let scheduled = next_f()?;
    let sent = next_f()?;
    let first_token = next_f()?;
    let first_reasoning = next_f()?;
    let first_content = next_f()?;
    let end = next_f()?;
    let ttft = next_f()?;
    let ttft_i = next_f()?;
    let e2e = next_f()?;
    let e2e_i = next_f()?;
    let tpot = next_f()?;
    let mut next_u = || {
        u.next()
            .ok_or_else(|| arrow_schema::ArrowError::ComputeError("columns".into()))
    };
    let prompt = next_u()?;
    let completion = next_u()?;
    let reasoning = next_u()?;
    let cached = next_u()?;
    let input_target = next_u()?;
    let max_tokens = next_u()?;
    let output_chars = next_u()?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(run_id.finish()),
        Arc::new(load_mode.finish()),
        Arc::new(load_value.finish()),
        Arc::new(round.finish()),
        Arc::new(warmup.finish()),
        Arc::new(request_id.finish()),
        Arc::new(session_id.finish()),
        Arc::new(turn.finish()),
        Arc::new(source.finish()),
        Arc::new(user_id.finish()),
        Arc::new(endpoint.finish()),
        Arc::new(model.finish()),
        scheduled,
        sent,
        first_token,
        first_reasoning,
        first_content,
        end,
        ttft,
        ttft_i,
        e2e,
        e2e_i,
        tpot,
        Arc::new(itl.finish()),
        Arc::new(lateness.finish()),
        prompt,
        completion,
        reasoning,
        cached,
        Arc::new(tokens_source.finish()),
        input_target,
        max_tokens,
        output_chars,
        Arc::new(finish_reason.finish()),
        Arc::new(status.finish()),
        Arc::new(http_status.finish()),
        Arc::new(error.finish()),
        Arc::new(compaction.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns)
}

/// The codec of results files (request parts and server metrics).
///
/// Snappy, not zstd: readers need no decompression context for it, and
/// zstd's costs one per column chunk read, whose set-up runs `cpuid`, an
/// exit to the hypervisor on a VM. With 2,000 parts of 22 columns, `trace
/// report` over 10 M requests took 18 user CPU-seconds on zstd parts and
/// 14.6 on the same parts in Snappy (bench/report/README.md), for files
/// 10 % larger (latency columns are floats, which compress little). The
/// replayer's own writer spends less CPU beside the measurement, too.
pub const RESULTS_COMPRESSION: Compression = Compression::SNAPPY;

/// How results files are written: [`RESULTS_COMPRESSION`], the results
/// schema version in the footer, and dictionary encoding only for the
/// string columns of `schema`.
///
/// Times, token counts and inter-token gaps are nearly all distinct, and
/// a part's few thousand of them fit the dictionary page, so by default
/// they would be dictionary-encoded: a dictionary as large as the plain
/// values plus the indices, and a gather to decode. Plain, the same
/// 10 M-request set is 20 % smaller (1.6 instead of 2.0 GB) and `trace
/// report` reads it 5 % faster (bench/report/README.md).
pub fn results_writer_properties(schema: &Schema) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(RESULTS_COMPRESSION)
        .set_dictionary_enabled(false)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            KEY_RESULTS_VERSION.to_string(),
            RESULTS_SCHEMA_VERSION.to_string(),
        )]));
    for field in schema.fields() {
        if field.data_type() == &DataType::Utf8 {
            props =
                props.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), true);
        }
    }
    props.build()
}

/// Writes request records as numbered, self-contained Parquet parts in a
/// folder: `part-00000.parquet`, `part-00001.parquet`, ... Each part is
/// written under a hidden temporary name and renamed when complete, so the
/// folder never holds a half-written part that readers would choke on.
pub struct PartsWriter {
    dir: PathBuf,
    schema: SchemaRef,
    buffer: Vec<RequestRecord>,
    part_rows: usize,
    next_part: u32,
    rows_written: u64,
}

impl PartsWriter {
    /// Creates the folder (and its parents).
    pub fn create(dir: impl AsRef<Path>, part_rows: usize) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(PartsWriter {
            dir,
            schema: requests_schema(),
            buffer: Vec::new(),
            part_rows: part_rows.max(1),
            next_part: 0,
            rows_written: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rows accepted so far (written or buffered).
    pub fn rows(&self) -> u64 {
        self.rows_written + self.buffer.len() as u64
    }

    /// Buffers a record; writes a part when the buffer is full.
    pub fn write(&mut self, record: RequestRecord) -> Result<()> {
        self.buffer.push(record);
        if self.buffer.len() >= self.part_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes whatever is buffered as a new part (nothing if empty).
    pub fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let name = format!("part-{:05}.parquet", self.next_part);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let batch =
            records_to_batch(&self.schema, &self.buffer).map_err(|source| Error::Arrow {
                path: path.clone(),
                source,
            })?;
        let pq = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        let file = File::create(&tmp).map_err(|source| Error::Io {
            path: tmp.clone(),
            source,
        })?;
        let props = results_writer_properties(&self.schema);
        let mut writer =
            ArrowWriter::try_new(file, self.schema.clone(), Some(props)).map_err(pq)?;
        writer.write(&batch).map_err(pq)?;
        // `into_inner` writes the footer and hands the file back for syncing.
        let file = writer.into_inner().map_err(pq)?;
        file.sync_all().map_err(|source| Error::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        self.rows_written += self.buffer.len() as u64;
        self.buffer.clear();
        self.next_part += 1;
        Ok(())
    }

    /// Flushes and returns the number of rows written.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.rows_written)
    }
}

/// Reads every complete part in a `requests` folder (hidden temporary
/// parts are skipped), in part order.
pub fn read_parts(dir: impl AsRef<Path>) -> Result<Vec<RequestRecord>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Float64Type, UInt16Type, UInt32Type};
    use arrow_array::{Array, BooleanArray, StringArray};
    let dir = dir.as_ref();
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"))
        })
        .collect();
    parts.sort();
    let mut out = Vec::new();
    for path in parts {
        let file = File::open(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let pq = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(pq)?;
        let version = part_version(&path, builder.metadata().file_metadata())?;
        let reader = builder.build().map_err(pq)?;
        for batch in reader {
            let batch = batch.map_err(|source| Error::Arrow {
                path: path.clone(),
                source,
            })?;
            let col = |name: &str| {
                batch.column_by_name(name).ok_or_else(|| Error::Column {
                    path: path.clone(),
                    column: name.to_string(),
                    problem: "is missing".into(),
                })
            };
            let wrong = |name: &str| Error::Column {
                path: path.clone(),
                column: name.to_string(),
                problem: "has an unexpected type".into(),
            };
            let s = |name: &str| -> Result<StringArray> {
                col(name)?
                    .as_string_opt::<i32>()
                    .cloned()
                    .ok_or_else(|| wrong(name))
            };
            let f = |name: &str| -> Result<arrow_array::Float64Array> {
                col(name)?
                    .as_primitive_opt::<Float64Type>()
                    .cloned()
                    .ok_or_else(|| wrong(name))
            };
            let u = |name: &str| -> Result<arrow_array::UInt32Array> {
                col(name)?
                    .as_primitive_opt::<UInt32Type>()
                    .cloned()
                    .ok_or_else(|| wrong(name))
            };
            let b = |name: &str| -> Result<BooleanArray> {
                col(name)?
                    .as_boolean_opt()
                    .cloned()
                    .ok_or_else(|| wrong(name))
            };
            let (run_id, load_mode, request_id, session_id, status) = (
                s("run_id")?,
                s("load_mode")?,
                s("request_id")?,
                s("session_id")?,
                s("status")?,
            );
            let (tokens_source, error) = (s("tokens_source")?, s("error")?);
            // A column added in version `since`: none in older parts, whose
            // rows read as null there.
            let added = |since: u32, name: &str| -> Result<Option<StringArray>> {
                if version >= since {
                    s(name).map(Some)
                } else {
                    Ok(None)
                }
            };
            let source = added(2, "source")?;
            let finish_reason = added(3, "finish_reason")?;
            let endpoint = added(4, "endpoint")?;
            let model = added(5, "model")?;
            let (load_value, scheduled, sent, first, first_r, first_c, end) = (
                f("load_value")?,
                f("scheduled_ms")?,
                f("sent_ms")?,
                f("first_token_ms")?,
                f("first_reasoning_ms")?,
                f("first_content_ms")?,
                f("end_ms")?,
            );
            let (ttft, ttft_i, e2e, e2e_i, tpot, late) = (
                f("ttft_ms")?,
                f("ttft_intended_ms")?,
                f("e2e_ms")?,
                f("e2e_intended_ms")?,
                f("tpot_ms")?,
                f("lateness_ms")?,
            );
            let (round, turn, user, prompt, completion, reasoning, cached, target, maxt, chars) = (
                u("round")?,
                u("turn")?,
                u("user_id")?,
                u("prompt_tokens")?,
                u("completion_tokens")?,
                u("reasoning_tokens")?,
                u("cached_tokens")?,
                u("input_tokens_target")?,
                u("max_tokens")?,
                u("output_chars")?,
            );
            let (warmup, compaction) = (b("warmup")?, b("compaction")?);
            let http = col("http_status")?
                .as_primitive_opt::<UInt16Type>()
                .cloned()
                .ok_or_else(|| wrong("http_status"))?;
            let itl = col("itl_ms")?
                .as_list_opt::<i32>()
                .cloned()
                .ok_or_else(|| wrong("itl_ms"))?;
            let itl_values = itl
                .values()
                .as_primitive_opt::<Float32Type>()
                .cloned()
                .ok_or_else(|| wrong("itl_ms"))?;
            let of = |a: &arrow_array::Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
            let ou = |a: &arrow_array::UInt32Array, i: usize| a.is_valid(i).then(|| a.value(i));
            let os = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
            for i in 0..batch.num_rows() {
                let offsets = itl.value_offsets();
                let (a, z) = (offsets[i] as usize, offsets[i + 1] as usize);
                out.push(RequestRecord {
                    run_id: run_id.value(i).to_string(),
                    load_mode: load_mode.value(i).to_string(),
                    load_value: load_value.value(i),
                    round: round.value(i),
                    warmup: warmup.value(i),
                    request_id: request_id.value(i).to_string(),
                    session_id: session_id.value(i).to_string(),
                    turn: turn.value(i),
                    source: source.as_ref().and_then(|a| os(a, i)),
                    user_id: ou(&user, i),
                    endpoint: endpoint.as_ref().and_then(|a| os(a, i)),
                    model: model.as_ref().and_then(|a| os(a, i)),
                    scheduled_ms: scheduled.value(i),
                    sent_ms: sent.value(i),
                    first_token_ms: of(&first, i),
                    first_reasoning_ms: of(&first_r, i),
                    first_content_ms: of(&first_c, i),
                    end_ms: end.value(i),
                    ttft_ms: of(&ttft, i),
                    ttft_intended_ms: of(&ttft_i, i),
                    e2e_ms: of(&e2e, i),
                    e2e_intended_ms: of(&e2e_i, i),
                    tpot_ms: of(&tpot, i),
                    itl_ms: itl_values.values()[a..z].to_vec(),
                    lateness_ms: late.value(i),
                    prompt_tokens: ou(&prompt, i),
                    completion_tokens: ou(&completion, i),
                    reasoning_tokens: ou(&reasoning, i),
                    cached_tokens: ou(&cached, i),
                    tokens_source: os(&tokens_source, i),
                    input_tokens_target: ou(&target, i),
                    max_tokens: ou(&maxt, i),
                    output_chars: chars.value(i),
                    finish_reason: finish_reason.as_ref().and_then(|a| os(a, i)),
                    status: Some(match status.value(i) {
                        "ok" => Status::Ok,
                        "http_error" => Status::HttpError,
                        "timeout" => Status::Timeout,
                        "connect_error" => Status::ConnectError,
                        "stream_error" => Status::StreamError,
                        "level_drain" => Status::LevelDrain,
                        _ => Status::Cancelled,
                    }),
                    http_status: http.is_valid(i).then(|| http.value(i)),
                    error: os(&error, i),
                    compaction: compaction.value(i),
                });
            }
        }
    }
    Ok(out)
}

/// The `results.schema_version` of a part, if this build can read it.
fn part_version(path: &Path, meta: &parquet::file::metadata::FileMetaData) -> Result<u32> {
    let found = meta
        .key_value_metadata()
        .and_then(|kvs| kvs.iter().find(|kv| kv.key == KEY_RESULTS_VERSION))
        .and_then(|kv| kv.value.clone());
    let Some(found) = found else {
        return Err(Error::NotAResultsPart {
            path: path.to_path_buf(),
        });
    };
    match found.trim().parse::<u32>() {
        Ok(v) if READABLE_RESULTS_VERSIONS.contains(&v) => Ok(v),
        _ => Err(Error::UnsupportedResultsVersion {
            path: path.to_path_buf(),
            found,
            supported: READABLE_RESULTS_VERSIONS
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::basic::Encoding;

    #[test]
    fn parts_round_trip_and_skip_temporaries() {
        let dir = tempfile::tempdir().expect("dir");
        let mut w = PartsWriter::create(dir.path().join("requests"), 2).expect("writer");
        for i in 0..5u32 {
            w.write(RequestRecord {
                run_id: "r".into(),
                load_mode: "qps".into(),
                load_value: 1.5,
                round: 1,
                request_id: format!("s{i}#0"),
                session_id: format!("s{i}"),
                source: (i != 1).then(|| format!("set{}", i % 2)),
                itl_ms: vec![1.0, 2.5],
                ttft_ms: Some(10.0 + f64::from(i)),
                status: Some(if i == 3 {
                    Status::HttpError
                } else {
                    Status::Ok
                }),
                http_status: Some(if i == 3 { 503 } else { 200 }),
                error: (i == 3).then(|| "HTTP 503".to_string()),
                ..Default::default()
            })
            .expect("write");
        }
        assert_eq!(w.finish().expect("finish"), 5);
        // Every column chunk of every part in the results codec.
        for i in 0..3 {
            let path = dir.path().join(format!("requests/part-{i:05}.parquet"));
            let file = File::open(&path).expect("part");
            let reader = parquet::file::reader::SerializedFileReader::new(file).expect("parquet");
            let meta = parquet::file::reader::FileReader::metadata(&reader);
            for group in meta.row_groups() {
                for chunk in group.columns() {
                    assert_eq!(
                        chunk.compression(),
                        RESULTS_COMPRESSION,
                        "{}",
                        path.display()
                    );
                    // Dictionaries for the strings only.
                    let column = chunk.column_path().string();
                    let dictionary = chunk.encodings().any(|e| e == Encoding::RLE_DICTIONARY);
                    let string =
                        ["run_id", "load_mode", "request_id", "status"].contains(&column.as_str());
                    let numeric = ["ttft_ms", "itl_ms.list.element", "prompt_tokens", "round"]
                        .contains(&column.as_str());
                    assert!(!numeric || !dictionary, "{column} dictionary-encoded");
                    assert!(!string || dictionary, "{column} not dictionary-encoded");
                }
            }
        }
        assert_eq!(RESULTS_COMPRESSION, Compression::SNAPPY);
        std::fs::write(dir.path().join("requests/.part-00009.parquet.tmp"), b"half").expect("tmp");
        let rows = read_parts(dir.path().join("requests")).expect("read");
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[3].status, Some(Status::HttpError));
        assert_eq!(rows[3].error.as_deref(), Some("HTTP 503"));
        assert_eq!(rows[4].itl_ms, vec![1.0, 2.5]);
        assert_eq!(rows[2].ttft_ms, Some(12.0));
        let sources: Vec<Option<&str>> = rows.iter().map(|r| r.source.as_deref()).collect();
        assert_eq!(
            sources,
            vec![Some("set0"), None, Some("set0"), Some("set1"), Some("set0")]
        );
        let parts = std::fs::read_dir(dir.path().join("requests"))
            .expect("dir")
            .count();
        assert_eq!(
            parts, 4,
            "three parts of at most 2 rows, plus the stray temporary"
        );
    }

    fn sample_records() -> Vec<RequestRecord> {
        (0..3u32)
            .map(|i| RequestRecord {
                run_id: "old".into(),
                load_mode: "concurrency".into(),
                load_value: 2.0,
                round: 1,
                request_id: format!("s{i}#0"),
                session_id: format!("s{i}"),
                turn: i,
                source: Some("sharegpt".into()),
                user_id: Some(i),
                ttft_ms: Some(5.0 + f64::from(i)),
                itl_ms: vec![0.5; i as usize],
                completion_tokens: Some(i + 1),
                finish_reason: Some("length".into()),
                endpoint: Some("http://127.0.0.1:8000".into()),
                model: Some(["base", "lora-a"][i as usize % 2].into()),
                // Every status, `level_drain` (version 4) among them.
                status: Some([Status::Ok, Status::LevelDrain, Status::Cancelled][i as usize % 3]),
                http_status: Some(200),
                ..Default::default()
            })
            .collect()
    }

    /// Writes `records` as one part laid out as results format `version`
    /// was (version 1: no `source` column; 1 and 2: no `finish_reason`;
    /// 1 to 3: no `endpoint`; 1 to 4: no `model`), tagged with `tag` as its
    /// `results.schema_version` (none if `None`).
    fn write_part_as(path: &Path, records: &[RequestRecord], version: u32, tag: Option<&str>) {
        let mut batch = records_to_batch(&requests_schema(), records).expect("batch");
        if version < 2 {
            let at = batch.schema().index_of("source").expect("source column");
            batch.remove_column(at);
        }
        if version < 4 {
            let at = batch
                .schema()
                .index_of("endpoint")
                .expect("endpoint column");
            batch.remove_column(at);
        }
        if version < 5 {
            let at = batch.schema().index_of("model").expect("model column");
            batch.remove_column(at);
        }
        if version < 3 {
            let at = batch
                .schema()
                .index_of("finish_reason")
                .expect("finish_reason column");
            batch.remove_column(at);
        }
        let kv = tag.map(|t| {
            vec![KeyValue::new(
                KEY_RESULTS_VERSION.to_string(),
                t.to_string(),
            )]
        });
        let props = WriterProperties::builder()
            .set_key_value_metadata(kv)
            .build();
        let file = File::create(path).expect("create part");
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
    }

    #[test]
    fn version_1_parts_read_without_source() {
        let dir = tempfile::tempdir().expect("dir");
        let records = sample_records();
        write_part_as(
            &dir.path().join("part-00000.parquet"),
            &records,
            1,
            Some("1"),
        );
        let rows = read_parts(dir.path()).expect("version 1 part reads");
        let expected: Vec<RequestRecord> = records
            .into_iter()
            .map(|r| RequestRecord {
                source: None,
                finish_reason: None,
                endpoint: None,
                model: None,
                ..r
            })
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn parts_of_every_version_read_together() {
        let dir = tempfile::tempdir().expect("dir");
        let records = sample_records();
        for v in [1u32, 2, 3, 4, 5] {
            write_part_as(
                &dir.path().join(format!("part-0000{v}.parquet")),
                &records,
                v,
                Some(&v.to_string()),
            );
        }
        let rows = read_parts(dir.path()).expect("mixed parts read");
        let got: Vec<[Option<&str>; 4]> = rows
            .iter()
            .map(|r| {
                [
                    r.source.as_deref(),
                    r.finish_reason.as_deref(),
                    r.endpoint.as_deref(),
                    r.model.is_some().then_some("model"),
                ]
            })
            .collect();
        let url = Some("http://127.0.0.1:8000");
        let (v1, v2, v3, v4, v5) = (
            [None, None, None, None],
            [Some("sharegpt"), None, None, None],
            [Some("sharegpt"), Some("length"), None, None],
            [Some("sharegpt"), Some("length"), url, None],
            [Some("sharegpt"), Some("length"), url, Some("model")],
        );
        assert_eq!(got, [[v1; 3], [v2; 3], [v3; 3], [v4; 3], [v5; 3]].concat());
        // A version 5 part reads back as written.
        assert_eq!(rows[12..], records[..]);
    }

    #[test]
    fn version_1_and_2_parts_read_together() {
        let dir = tempfile::tempdir().expect("dir");
        let records = sample_records();
        write_part_as(
            &dir.path().join("part-00000.parquet"),
            &records,
            1,
            Some("1"),
        );
        write_part_as(
            &dir.path().join("part-00001.parquet"),
            &records,
            2,
            Some("2"),
        );
        let rows = read_parts(dir.path()).expect("mixed parts read");
        let sources: Vec<Option<&str>> = rows.iter().map(|r| r.source.as_deref()).collect();
        assert_eq!(
            sources,
            vec![
                None,
                None,
                None,
                Some("sharegpt"),
                Some("sharegpt"),
                Some("sharegpt")
            ]
        );
    }

    #[test]
    fn unknown_or_missing_versions_are_refused_naming_the_part() {
        let dir = tempfile::tempdir().expect("dir");
        let part = dir.path().join("part-00000.parquet");
        write_part_as(&part, &sample_records(), 2, Some("9"));
        let err = read_parts(dir.path()).expect_err("version 9 must be refused");
        let msg = err.to_string();
        assert!(msg.contains(&part.display().to_string()), "{msg}");
        assert!(msg.contains("results format version 9"), "{msg}");
        assert!(msg.contains("1, 2"), "{msg}");

        write_part_as(&part, &sample_records(), 2, None);
        let msg = read_parts(dir.path())
            .expect_err("a part without a version must be refused")
            .to_string();
        assert!(msg.contains(&part.display().to_string()), "{msg}");
        assert!(msg.contains(KEY_RESULTS_VERSION), "{msg}");
    }

    #[test]
    fn version_2_part_without_source_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        write_part_as(
            &dir.path().join("part-00000.parquet"),
            &sample_records(),
            1,
            Some("2"),
        );
        let msg = read_parts(dir.path())
            .expect_err("a version 2 part must have `source`")
            .to_string();
        assert!(msg.contains("`source` is missing"), "{msg}");
    }
}
