//! A streaming trace writer: rows are buffered into bounded row groups, and
//! the file appears under its name only when [`TraceWriter::finish`] succeeds.
//!
//! Encoding runs beside the caller: each full buffer of rows goes to an
//! encoder thread, which hands whole row groups to worker threads (each
//! builds the Arrow batch and encodes every column of its row group) and
//! appends them to the file in order, while the caller goes on producing
//! the next rows.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::Encoding;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
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

use crate::schema::{column, hash_item_field, message_fields, message_item_field, trace_schema};
use crate::{Codec, Error, Message, Result, TraceMetadata, TraceRow};

/// Tuning of the writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Rows per row group (at most).
    pub row_group_rows: usize,
    /// Bytes of text buffered before a row group is written, whatever its row count.
    pub row_group_bytes: usize,
    /// Row groups encoded at once, each on its own thread (at least 1).
    pub encode_threads: usize,
    /// Compression of the column chunks.
    pub compression: Codec,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            row_group_rows: 32 * 1024,
            // Small enough that row groups stream through the encoder
            // thread and memory stays low (every megabyte of peak RSS is
            // first-touched once, which is dear on a VM: 8 MiB instead of
            // 16 took peak RSS from 362 to 269 MB on the 1.1 GB benchmark),
            // large enough to compress well (the file grew by 0.05 %).
            row_group_bytes: 8 * 1024 * 1024,
            encode_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4),
            compression: Codec::default(),
        }
    }
}

/// Writes trace rows to a Parquet file.
///
/// The data goes to a temporary file beside the destination; dropping the
/// writer without calling [`finish`](Self::finish) deletes it, so a failed
/// conversion never leaves a partial file and never replaces an existing one.
/// An encoding or I/O error may surface on a later [`write`](Self::write)
/// than the one whose rows caused it, and at the latest from `finish`.
pub struct TraceWriter {
    path: PathBuf,
    tmp: Option<NamedTempFile>,
    encoder: Option<EncoderThread>,
    options: WriterOptions,
    buffer: Vec<TraceRow>,
    buffered_bytes: usize,
    rows_written: u64,
    stats: Option<String>,
}

/// The encoder thread and the channel that feeds it row groups.
struct EncoderThread {
    rows: SyncSender<Vec<TraceRow>>,
    handle: JoinHandle<std::result::Result<Encoder, ParquetError>>,
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
        let pq = |source| Error::Parquet {
            path: path.clone(),
            source,
        };
        let encoder = Encoder::new(file, metadata, &options).map_err(pq)?;
        let thread = EncoderThread::spawn(encoder).map_err(io)?;
        Ok(TraceWriter {
            path,
            tmp: Some(tmp),
            encoder: Some(thread),
            options,
            buffer: Vec::new(),
            buffered_bytes: 0,
            rows_written: 0,
            stats: None,
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

    /// Hands the buffered rows to the encoder thread as one row group.
    fn flush_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let capacity = self.buffer.len();
        let rows = std::mem::replace(&mut self.buffer, Vec::with_capacity(capacity));
        let count = rows.len() as u64;
        self.buffered_bytes = 0;
        let sent = match &self.encoder {
            Some(thread) => thread.rows.send(rows).is_ok(),
            None => false,
        };
        if !sent {
            // The encoder stopped early: its result says why.
            return Err(match self.join_encoder() {
                Err(e) => e,
                Ok(_) => self.closed_error(),
            });
        }
        self.rows_written += count;
        Ok(())
    }

    /// Closes the channel and waits for the encoder, returning it or its error.
    fn join_encoder(&mut self) -> Result<Encoder> {
        let Some(EncoderThread { rows, handle }) = self.encoder.take() else {
            return Err(self.closed_error());
        };
        drop(rows);
        match handle.join() {
            Ok(Ok(encoder)) => Ok(encoder),
            Ok(Err(source)) => Err(Error::Parquet {
                path: self.path.clone(),
                source,
            }),
            Err(_) => Err(Error::Io {
                path: self.path.clone(),
                source: std::io::Error::other("the Parquet encoder thread panicked"),
            }),
        }
    }

    fn closed_error(&self) -> Error {
        Error::Io {
            path: self.path.clone(),
            source: std::io::Error::other("writer already closed"),
        }
    }

    /// Records `trace.stats` (set before [`finish`](Self::finish)).
    pub fn set_stats(&mut self, stats: String) {
        self.stats = Some(stats);
    }

    /// Writes what is buffered, closes the file and moves it to its name.
    /// Returns the number of rows written.
    pub fn finish(mut self) -> Result<u64> {
        self.flush_buffer()?;
        let path = self.path.clone();
        let mut encoder = self.join_encoder()?;
        if let Some(stats) = self.stats.take() {
            encoder
                .file
                .append_key_value_metadata(KeyValue::new(crate::KEY_STATS.to_string(), stats));
        }
        encoder.file.close().map_err(|source| Error::Parquet {
            path: path.clone(),
            source,
        })?;
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
        // Stop the encoder before the temporary file goes away.
        if self.encoder.is_some() {
            let _ = self.join_encoder();
        }
        if let Some(tmp) = &self.tmp {
            unregister_pending(tmp.path());
        }
    }
}

impl EncoderThread {
    fn spawn(mut encoder: Encoder) -> std::io::Result<Self> {
        // One row group waits in the channel while another is encoded.
        let (rows, receiver) = sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("trace-parquet-encoder".into())
            .spawn(move || {
                encoder.run(receiver)?;
                Ok(encoder)
            })?;
        Ok(EncoderThread { rows, handle })
    }
}

/// Turns row groups of [`TraceRow`]s into Parquet, on the encoder thread.
///
/// Nearly all of a trace's bytes sit in one leaf column (message content),
/// so splitting a row group by column cannot spread the work. Whole row
/// groups are encoded at once instead, one per worker thread, and appended
/// to the file in order as they finish.
struct Encoder {
    file: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    row_groups: usize,
    threads: usize,
}

type ParquetResult<T> = std::result::Result<T, ParquetError>;

/// One row group for a worker: its rows, its column writers, and where its
/// encoded chunks go.
struct RowGroupJob {
    rows: Vec<TraceRow>,
    writers: Vec<ArrowColumnWriter>,
    done: SyncSender<ParquetResult<Vec<ArrowColumnChunk>>>,
}

/// A row group handed to a worker, in file order.
type Encoded = Receiver<ParquetResult<Vec<ArrowColumnChunk>>>;

impl Encoder {
    fn new(file: File, metadata: &TraceMetadata, options: &WriterOptions) -> ParquetResult<Self> {
        let kv = metadata
            .to_pairs()
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let mut props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(options.compression.parquet()?)
            .set_key_value_metadata(Some(kv));
        for path in free_text_columns() {
            // Free text repeats rarely and min/max of it prunes nothing:
            // a dictionary and statistics would cost time for no gain.
            props = props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path.clone(), Encoding::PLAIN)
                .set_column_statistics_enabled(path, EnabledStatistics::None);
        }
        let props = props.build();
        let schema = trace_schema();
        // ArrowWriter sets up the file (Parquet schema, embedded Arrow
        // schema); its parts let us encode the columns ourselves.
        let (file, factory) =
            ArrowWriter::try_new(file, schema.clone(), Some(props))?.into_serialized_writer()?;
        Ok(Encoder {
            file,
            factory,
            schema,
            row_groups: 0,
            threads: options.encode_threads.max(1),
        })
    }

    fn run(&mut self, receiver: Receiver<Vec<TraceRow>>) -> ParquetResult<()> {
        let (jobs_tx, jobs_rx) = sync_channel::<RowGroupJob>(self.threads);
        let jobs_rx = Mutex::new(jobs_rx);
        let schema = self.schema.clone();
        std::thread::scope(|scope| {
            let mut workers = Vec::with_capacity(self.threads);
            for i in 0..self.threads {
                let worker = std::thread::Builder::new()
                    .name(format!("trace-parquet-rg-{i}"))
                    .spawn_scoped(scope, || encode_jobs(&jobs_rx, &schema))
                    .map_err(|e| ParquetError::External(Box::new(e)));
                match worker {
                    Ok(handle) => workers.push(handle),
                    Err(e) => {
                        drop(jobs_tx);
                        return Err(e);
                    }
                }
            }
            let result = self.dispatch(&receiver, jobs_tx);
            // The work channel is closed: the workers stop. Joining them
            // here keeps a worker's panic an error, not a second panic.
            for worker in workers {
                let _ = worker.join();
            }
            result
        })
    }

    /// Hands each row group to the workers and appends the encoded ones in
    /// order; at most `threads` row groups are being encoded at a time.
    fn dispatch(
        &mut self,
        receiver: &Receiver<Vec<TraceRow>>,
        jobs: SyncSender<RowGroupJob>,
    ) -> ParquetResult<()> {
        let mut in_flight: VecDeque<Encoded> = VecDeque::with_capacity(self.threads + 1);
        for rows in receiver {
            if in_flight.len() >= self.threads {
                self.append_next(&mut in_flight)?;
            }
            let index = self.row_groups + in_flight.len();
            let writers = self.factory.create_column_writers(index)?;
            let (done, encoded) = sync_channel(1);
            jobs.send(RowGroupJob {
                rows,
                writers,
                done,
            })
            .map_err(|_| worker_died())?;
            in_flight.push_back(encoded);
        }
        drop(jobs);
        while !in_flight.is_empty() {
            self.append_next(&mut in_flight)?;
        }
        Ok(())
    }

    /// Waits for the oldest row group in flight and appends it.
    fn append_next(&mut self, in_flight: &mut VecDeque<Encoded>) -> ParquetResult<()> {
        let Some(next) = in_flight.pop_front() else {
            return Ok(());
        };
        let chunks = next.recv().map_err(|_| worker_died())??;
        self.append(chunks)
    }

    /// Appends one encoded row group to the file.
    fn append(&mut self, chunks: Vec<ArrowColumnChunk>) -> ParquetResult<()> {
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        Ok(())
    }
}

fn worker_died() -> ParquetError {
    ParquetError::General("a Parquet row-group encoder thread stopped unexpectedly".into())
}

/// A worker thread: encodes row groups until the work channel closes.
fn encode_jobs(jobs: &Mutex<Receiver<RowGroupJob>>, schema: &SchemaRef) {
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(RowGroupJob {
            rows,
            writers,
            done,
        }) = job
        else {
            return;
        };
        let chunks = encode_row_group(schema, &rows, writers);
        // The dispatcher may have stopped on an earlier error; that is fine.
        let _ = done.send(chunks);
    }
}

/// Encodes `rows` as the column chunks of one row group, in column order.
fn encode_row_group(
    schema: &SchemaRef,
    rows: &[TraceRow],
    writers: Vec<ArrowColumnWriter>,
) -> ParquetResult<Vec<ArrowColumnChunk>> {
    let batch = rows_to_batch(schema, rows)?;
    let mut leaves = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        leaves.extend(compute_leaves(field, column)?);
    }
    if writers.len() != leaves.len() {
        return Err(ParquetError::General(format!(
            "{} column writers for {} leaf columns",
            writers.len(),
            leaves.len()
        )));
    }
    writers
        .into_iter()
        .zip(leaves)
        .map(|(mut writer, leaf)| {
            writer.write(&leaf)?;
            writer.close()
        })
        .collect()
}

/// The leaf columns that hold long free text (messages and replies).
fn free_text_columns() -> [ColumnPath; 2] {
    [
        ColumnPath::from(vec![
            column::MESSAGES.to_string(),
            "list".to_string(),
            message_item_field().name().clone(),
            column::CONTENT.to_string(),
        ]),
        ColumnPath::from(column::REFERENCE_OUTPUT),
    ]
}

fn opt_len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, String::len)
}

/// Builds one Arrow batch of the trace schema from rows.
pub(crate) fn rows_to_batch(
    schema: &SchemaRef,
    rows: &[TraceRow],
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let n = rows.len();
    // Builders sized exactly: growing one by doubling copies its bytes.
    let row_bytes = |f: fn(&TraceRow) -> usize| rows.iter().map(f).sum::<usize>();
    let message_bytes = |f: fn(&Message) -> usize| {
        rows.iter()
            .flat_map(|r| r.messages.iter())
            .map(f)
            .sum::<usize>()
    };
    let mut request_id = StringBuilder::with_capacity(n, row_bytes(|r| r.request_id.len()));
    let mut session_id = StringBuilder::with_capacity(n, row_bytes(|r| r.session_id.len()));
    let mut turn = UInt32Builder::with_capacity(n);
    let mut arrival = Float64Builder::with_capacity(n);
    let mut think = Float64Builder::with_capacity(n);
    let mut reset = BooleanBuilder::with_capacity(n);
    let mut reference =
        StringBuilder::with_capacity(n, row_bytes(|r| opt_len(&r.reference_output)));
    let mut reference_tools =
        StringBuilder::with_capacity(n, row_bytes(|r| opt_len(&r.reference_tool_calls)));
    let mut input_tokens = UInt32Builder::with_capacity(n);
    let mut output_tokens = UInt32Builder::with_capacity(n);
    let mut overflow = BooleanBuilder::with_capacity(n);
    let mut source = StringBuilder::with_capacity(n, row_bytes(|r| r.source.len()));
    let mut new_tokens = UInt32Builder::with_capacity(n);
    let mut prompt_tokens = UInt32Builder::with_capacity(n);
    let mut reference_tokens = UInt32Builder::with_capacity(n);

    let total_messages: usize = rows.iter().map(|r| r.messages.len()).sum();
    let mut msg_offsets: Vec<i32> = Vec::with_capacity(n + 1);
    let mut role = StringBuilder::with_capacity(total_messages, message_bytes(|m| m.role.len()));
    let mut content =
        StringBuilder::with_capacity(total_messages, message_bytes(|m| m.content.len()));
    let mut tool_calls =
        StringBuilder::with_capacity(total_messages, message_bytes(|m| opt_len(&m.tool_calls)));
    let mut tool_call_id =
        StringBuilder::with_capacity(total_messages, message_bytes(|m| opt_len(&m.tool_call_id)));

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TraceReader;

    fn row(i: u32) -> TraceRow {
        let mut tool = Message::new("tool", format!("résultat n°{i} \u{1F680}"));
        tool.tool_call_id = i.is_multiple_of(3).then(|| format!("call_{i}"));
        TraceRow {
            request_id: format!("s{}#{}", i / 4, i % 4),
            session_id: format!("s{}", i / 4),
            turn: i % 4,
            arrival_ms: i.is_multiple_of(2).then_some(f64::from(i) * 1.5),
            messages: vec![Message::new("user", "x".repeat(i as usize % 50)), tool],
            reference_output: (!i.is_multiple_of(5)).then(|| format!("reply {i}")),
            input_tokens: Some(i),
            hash_ids: (!i.is_multiple_of(2)).then(|| vec![u64::from(i), u64::MAX]),
            source: "test".into(),
            ..Default::default()
        }
    }

    /// Writes rows `0..n` (and `stats`) to `path`; returns the rows.
    fn write_rows(
        path: &Path,
        options: WriterOptions,
        n: u32,
        stats: Option<&str>,
    ) -> Vec<TraceRow> {
        let mut w = TraceWriter::with_options(path, &metadata(), options).expect("create");
        let rows: Vec<TraceRow> = (0..n).map(row).collect();
        for r in rows.clone() {
            w.write(r).expect("write");
        }
        if let Some(stats) = stats {
            w.set_stats(stats.into());
        }
        assert_eq!(w.finish().expect("finish"), u64::from(n));
        rows
    }

    /// The Parquet footer of a written file.
    fn parquet_metadata(path: &Path) -> parquet::file::metadata::ParquetMetaData {
        let file = File::open(path).expect("file");
        let reader =
            parquet::file::serialized_reader::SerializedFileReader::new(file).expect("parquet");
        parquet::file::reader::FileReader::metadata(&reader).clone()
    }

    fn metadata() -> TraceMetadata {
        TraceMetadata::with_source(serde_json::json!({"test": true}))
    }

    #[test]
    fn many_row_groups_on_several_threads_read_back_in_order() {
        for threads in [1, 2, 3, 8] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("t.parquet");
            let options = WriterOptions {
                row_group_rows: 7,
                row_group_bytes: 1 << 20,
                encode_threads: threads,
                ..WriterOptions::default()
            };
            let rows = write_rows(&path, options, 500, Some("{\"rows\":500}"));
            let reader = TraceReader::open(&path).expect("open");
            assert_eq!(reader.metadata().stats.as_deref(), Some("{\"rows\":500}"));
            assert_eq!(reader.read_all().expect("read"), rows, "{threads} threads");
            let meta = parquet_metadata(&path);
            assert_eq!(meta.num_row_groups(), 72, "{threads} threads");
        }
    }

    #[test]
    fn every_codec_reads_back_and_free_text_has_no_dictionary() {
        for codec in Codec::ALL {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("t.parquet");
            let options = WriterOptions {
                compression: codec,
                ..WriterOptions::default()
            };
            let rows = write_rows(&path, options, 50, None);
            let reader = TraceReader::open(&path).expect("open");
            assert_eq!(reader.read_all().expect("read"), rows, "{codec}");
            let meta = parquet_metadata(&path);
            let want = codec.parquet().expect("codec").to_string();
            for chunk in meta.row_group(0).columns() {
                let name = chunk.column_path().string();
                let got = chunk.compression().to_string();
                assert_eq!(got.split('(').next(), want.split('(').next(), "{name}");
                let has_dictionary = chunk.dictionary_page_offset().is_some();
                if free_text_columns().iter().any(|p| p.string() == name) {
                    assert!(!has_dictionary, "{name}");
                    assert!(chunk.encodings().any(|e| e == Encoding::PLAIN), "{name}");
                } else if name == "source" {
                    assert!(has_dictionary, "{name}");
                }
            }
            // Version 2 data pages: values compressed without a staging copy.
            let file = File::open(&path).expect("file");
            let reader =
                parquet::file::serialized_reader::SerializedFileReader::new(file).expect("parquet");
            let row_group =
                parquet::file::reader::FileReader::get_row_group(&reader, 0).expect("row group");
            let content = meta
                .row_group(0)
                .columns()
                .iter()
                .position(|c| c.column_path() == &free_text_columns()[0])
                .expect("the content column");
            let mut pages = row_group.get_column_page_reader(content).expect("pages");
            let page = pages.get_next_page().expect("page").expect("a page");
            assert_eq!(
                page.page_type(),
                parquet::basic::PageType::DATA_PAGE_V2,
                "{codec}"
            );
        }
    }

    #[test]
    fn byte_limit_closes_row_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.parquet");
        let options = WriterOptions {
            row_group_rows: 1000,
            row_group_bytes: 1,
            encode_threads: 1,
            ..WriterOptions::default()
        };
        let mut w = TraceWriter::with_options(&path, &metadata(), options).expect("create");
        for i in 0..5 {
            w.write(row(i)).expect("write");
        }
        w.finish().expect("finish");
        let meta = parquet_metadata(&path);
        assert_eq!(meta.num_row_groups(), 5);
    }

    #[test]
    fn dropping_an_unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.parquet");
        let options = WriterOptions {
            row_group_rows: 3,
            ..WriterOptions::default()
        };
        let mut w = TraceWriter::with_options(&path, &metadata(), options).expect("create");
        for i in 0..10 {
            w.write(row(i)).expect("write");
        }
        drop(w);
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_empty_trace_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.parquet");
        let w = TraceWriter::create(&path, &metadata()).expect("create");
        assert_eq!(w.finish().expect("finish"), 0);
        assert!(
            TraceReader::open(&path)
                .expect("open")
                .read_all()
                .expect("read")
                .is_empty()
        );
    }
}
