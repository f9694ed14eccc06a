//! A streaming trace writer: rows are buffered into bounded row groups, and
//! the file appears under its name only when [`TraceWriter::finish`] succeeds.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use tempfile::NamedTempFile;

/// Temporary files of writers still open, so an interrupt handler can remove them.
static PENDING: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn register_pending(path: &Path) {
    if let Ok(mut p) = PENDING.lock() {
        p.push(path.to_path_buf());
    }
}

fn unregister_pending(path: &Path) {
    if let Ok(mut p) = PENDING.lock() {
        p.retain(|x| x != path);
    }
}

/// Deletes the temporary files of every writer that has not finished.
/// Called from an interrupt handler before the process exits, so that an
/// interrupted conversion leaves nothing behind.
pub fn remove_pending_outputs() {
    if let Ok(mut p) = PENDING.lock() {
        for path in p.drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}

use crate::schema::{hash_item_field, message_fields, message_item_field, trace_schema};
use crate::{Error, Result, TraceMetadata, TraceRow};

/// Tuning of the writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Rows per row group (at most).
    pub row_group_rows: usize,
    /// Bytes of text buffered before a row group is written, whatever its row count.
    pub row_group_bytes: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            row_group_rows: 32 * 1024,
            row_group_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Writes trace rows to a Parquet file.
///
/// The data goes to a temporary file beside the destination; dropping the
/// writer without calling [`finish`](Self::finish) deletes it, so a failed
/// conversion never leaves a partial file and never replaces an existing one.
pub struct TraceWriter {
    path: PathBuf,
    tmp: Option<NamedTempFile>,
    writer: Option<ArrowWriter<File>>,
    schema: SchemaRef,
    options: WriterOptions,
    buffer: Vec<TraceRow>,
    buffered_bytes: usize,
    rows_written: u64,
}

impl TraceWriter {
    pub fn create(path: impl AsRef<Path>, metadata: &TraceMetadata) -> Result<Self> {
        Self::with_options(path, metadata, WriterOptions::default())
    }

    pub fn with_options(
        path: impl AsRef<Path>,
        metadata: &TraceMetadata,
        options: WriterOptions,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("output folder {} does not exist", dir.display()),
            )));
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "trace".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{file_name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(io)?;
        let file = tmp.reopen().map_err(io)?;
        register_pending(tmp.path());
        let kv = metadata
            .to_pairs()
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| {
                Error::Parquet {
                    path: path.clone(),
                    source: e,
                }
            })?))
            .set_key_value_metadata(Some(kv))
            .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
            .build();
        let schema = trace_schema();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|source| {
            Error::Parquet {
                path: path.clone(),
                source,
            }
        })?;
        Ok(TraceWriter {
            path,
            tmp: Some(tmp),
            writer: Some(writer),
            schema,
            options,
            buffer: Vec::new(),
            buffered_bytes: 0,
            rows_written: 0,
        })
    }

    /// The destination path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows accepted so far.
    pub fn rows(&self) -> u64 {
        self.rows_written + self.buffer.len() as u64
    }

    pub fn write(&mut self, row: TraceRow) -> Result<()> {
        self.buffered_bytes += row
            .messages
            .iter()
            .map(|m| m.content.len() + m.role.len())
            .sum::<usize>()
            + row.reference_output.as_ref().map_or(0, |s| s.len())
            + row.request_id.len()
            + 64;
        self.buffer.push(row);
        if self.buffer.len() >= self.options.row_group_rows
            || self.buffered_bytes >= self.options.row_group_bytes
        {
            self.flush_buffer()?;
        }
        Ok(())
    }

    fn flush_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = rows_to_batch(&self.schema, &self.buffer).map_err(|source| Error::Arrow {
            path: self.path.clone(),
            source,
        })?;
        let path = self.path.clone();
        let writer = self.writer.as_mut().ok_or_else(|| Error::Io {
            path: path.clone(),
            source: std::io::Error::other("writer already closed"),
        })?;
        let pq = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        writer.write(&batch).map_err(pq)?;
        writer.flush().map_err(pq)?;
        self.rows_written += self.buffer.len() as u64;
        self.buffer.clear();
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Records `trace.stats` (set before [`finish`](Self::finish)).
    pub fn set_stats(&mut self, stats: String) {
        if let Some(w) = self.writer.as_mut() {
            w.append_key_value_metadata(KeyValue::new(crate::KEY_STATS.to_string(), stats));
        }
    }

    /// Writes what is buffered, closes the file and moves it to its name.
    /// Returns the number of rows written.
    pub fn finish(mut self) -> Result<u64> {
        self.flush_buffer()?;
        let path = self.path.clone();
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(|source| Error::Parquet {
                path: path.clone(),
                source,
            })?;
        }
        if let Some(tmp) = self.tmp.take() {
            unregister_pending(tmp.path());
            tmp.persist(&path).map_err(|e| Error::Io {
                path: path.clone(),
                source: e.error,
            })?;
        }
        Ok(self.rows_written)
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            unregister_pending(tmp.path());
        }
    }
}

/// Builds one Arrow batch of the trace schema from rows.
pub(crate) fn rows_to_batch(
    schema: &SchemaRef,
    rows: &[TraceRow],
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let n = rows.len();
    let mut request_id = StringBuilder::with_capacity(n, n * 16);
    let mut session_id = StringBuilder::with_capacity(n, n * 16);
    let mut turn = UInt32Builder::with_capacity(n);
    let mut arrival = Float64Builder::with_capacity(n);
    let mut think = Float64Builder::with_capacity(n);
    let mut reset = BooleanBuilder::with_capacity(n);
    let mut reference = StringBuilder::new();
    let mut reference_tools = StringBuilder::new();
    let mut input_tokens = UInt32Builder::with_capacity(n);
    let mut output_tokens = UInt32Builder::with_capacity(n);
    let mut overflow = BooleanBuilder::with_capacity(n);
    let mut source = StringBuilder::with_capacity(n, n * 8);
    let mut new_tokens = UInt32Builder::with_capacity(n);
    let mut prompt_tokens = UInt32Builder::with_capacity(n);
    let mut reference_tokens = UInt32Builder::with_capacity(n);

    let total_messages: usize = rows.iter().map(|r| r.messages.len()).sum();
    let mut msg_offsets: Vec<i32> = Vec::with_capacity(n + 1);
    let mut role = StringBuilder::with_capacity(total_messages, total_messages * 6);
    let content_bytes: usize = rows
        .iter()
        .flat_map(|r| r.messages.iter())
        .map(|m| m.content.len())
        .sum();
    let mut content = StringBuilder::with_capacity(total_messages, content_bytes);
    let mut tool_calls = StringBuilder::new();
    let mut tool_call_id = StringBuilder::new();

    let mut hash_offsets: Vec<i32> = Vec::with_capacity(n + 1);
    let mut hash_values = UInt64Builder::new();
    let mut hash_valid: Vec<bool> = Vec::with_capacity(n);

    msg_offsets.push(0);
    hash_offsets.push(0);
    let offset = |len: usize| -> std::result::Result<i32, arrow_schema::ArrowError> {
        i32::try_from(len).map_err(|_| {
            arrow_schema::ArrowError::InvalidArgumentError("row group too large".into())
        })
    };
    for r in rows {
        request_id.append_value(&r.request_id);
        session_id.append_value(&r.session_id);
        turn.append_value(r.turn);
        arrival.append_option(r.arrival_ms);
        think.append_option(r.think_ms);
        reset.append_value(r.reset_context);
        reference.append_option(r.reference_output.as_deref());
        reference_tools.append_option(r.reference_tool_calls.as_deref());
        input_tokens.append_option(r.input_tokens);
        output_tokens.append_option(r.output_tokens);
        overflow.append_value(r.overflow);
        source.append_value(&r.source);
        new_tokens.append_option(r.new_tokens);
        prompt_tokens.append_option(r.prompt_tokens);
        reference_tokens.append_option(r.reference_output_tokens);
        for m in &r.messages {
            role.append_value(&m.role);
            content.append_value(&m.content);
            tool_calls.append_option(m.tool_calls.as_deref());
            tool_call_id.append_option(m.tool_call_id.as_deref());
        }
        msg_offsets.push(offset(role.len())?);
        match &r.hash_ids {
            Some(ids) => {
                hash_values.append_slice(ids);
                hash_valid.push(true);
            }
            None => hash_valid.push(false),
        }
        hash_offsets.push(offset(hash_values.len())?);
    }

    let structs = StructArray::try_new(
        message_fields(),
        vec![
            Arc::new(role.finish()) as ArrayRef,
            Arc::new(content.finish()),
            Arc::new(tool_calls.finish()),
            Arc::new(tool_call_id.finish()),
        ],
        None,
    )?;
    let messages = ListArray::try_new(
        message_item_field(),
        OffsetBuffer::new(ScalarBuffer::from(msg_offsets)),
        Arc::new(structs),
        None,
    )?;
    let hash_ids = ListArray::try_new(
        hash_item_field(),
        OffsetBuffer::new(ScalarBuffer::from(hash_offsets)),
        Arc::new(hash_values.finish()),
        Some(hash_valid.into()),
    )?;

    let columns: Vec<ArrayRef> = vec![
        Arc::new(request_id.finish()),
        Arc::new(session_id.finish()),
        Arc::new(turn.finish()),
        Arc::new(arrival.finish()),
        Arc::new(think.finish()),
        Arc::new(messages),
        Arc::new(reset.finish()),
        Arc::new(reference.finish()),
        Arc::new(reference_tools.finish()),
        Arc::new(input_tokens.finish()),
        Arc::new(hash_ids),
        Arc::new(output_tokens.finish()),
        Arc::new(overflow.finish()),
        Arc::new(source.finish()),
        Arc::new(new_tokens.finish()),
        Arc::new(prompt_tokens.finish()),
        Arc::new(reference_tokens.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns)
}
