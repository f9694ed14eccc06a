//! Reading trace files back, with the schema version checked first.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ListArray, RecordBatch, StringArray, StructArray};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::metadata::{KEY_BLOCK_SIZE, KEY_SCHEMA_VERSION, KEY_SOURCE, KEY_STATS, KEY_TOKENIZER};
use crate::schema::column;
use crate::{Error, Message, READABLE_VERSIONS, Result, TraceMetadata, TraceRow};

/// An open trace file whose version this build can read.
pub struct TraceReader {
    path: PathBuf,
    metadata: TraceMetadata,
    num_rows: u64,
    builder: ParquetRecordBatchReaderBuilder<File>,
}

impl TraceReader {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| Error::Parquet {
                path: path.clone(),
                source,
            })?;
        let file_meta = builder.metadata().file_metadata();
        let num_rows = u64::try_from(file_meta.num_rows()).unwrap_or(0);
        let mut metadata = TraceMetadata::default();
        let mut version: Option<String> = None;
        for kv in file_meta.key_value_metadata().into_iter().flatten() {
            let Some(value) = kv.value.clone() else {
                continue;
            };
            match kv.key.as_str() {
                KEY_SCHEMA_VERSION => version = Some(value),
                KEY_SOURCE => metadata.source = Some(value),
                KEY_TOKENIZER => metadata.tokenizer = Some(value),
                KEY_BLOCK_SIZE => metadata.block_size = value.trim().parse().ok(),
                KEY_STATS => metadata.stats = Some(value),
                k if k.starts_with("trace.") => {
                    metadata.extra.insert(k.to_string(), value);
                }
                _ => {}
            }
        }
        let Some(version) = version else {
            return Err(Error::NotATrace { path });
        };
        let supported = || {
            READABLE_VERSIONS
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match version.trim().parse::<u32>() {
            Ok(v) if READABLE_VERSIONS.contains(&v) => metadata.schema_version = v,
            _ => {
                return Err(Error::UnsupportedVersion {
                    path,
                    found: version,
                    supported: supported(),
                });
            }
        }
        Ok(TraceReader {
            path,
            metadata,
            num_rows,
            builder,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &TraceMetadata {
        &self.metadata
    }

    /// Rows in the file, from its footer.
    pub fn num_rows(&self) -> u64 {
        self.num_rows
    }

    /// Iterates over the file's record batches as rows, batch by batch.
    pub fn batches(self) -> Result<TraceBatches> {
        let path = self.path;
        let reader = self
            .builder
            .with_batch_size(8192)
            .build()
            .map_err(|source| Error::Parquet {
                path: path.clone(),
                source,
            })?;
        Ok(TraceBatches {
            path,
            reader,
            row: 0,
        })
    }

    /// Reads every row. For small traces; large ones should use [`Self::batches`].
    pub fn read_all(self) -> Result<Vec<TraceRow>> {
        let mut out = Vec::new();
        for batch in self.batches()? {
            out.extend(batch?);
        }
        Ok(out)
    }
}

/// Iterator over a trace's rows, one record batch at a time.
pub struct TraceBatches {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    row: u64,
}

impl Iterator for TraceBatches {
    type Item = Result<Vec<TraceRow>>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(b) => b,
            Err(source) => {
                return Some(Err(Error::Arrow {
                    path: self.path.clone(),
                    source,
                }));
            }
        };
        let first = self.row;
        self.row += batch.num_rows() as u64;
        Some(batch_to_rows(&self.path, &batch, first))
    }
}

struct Cols<'a> {
    path: &'a Path,
    batch: &'a RecordBatch,
}

impl<'a> Cols<'a> {
    fn get(&self, name: &str) -> Result<Option<&'a dyn Array>> {
        Ok(self.batch.column_by_name(name).map(|a| a.as_ref()))
    }

    fn required(&self, name: &str) -> Result<&'a dyn Array> {
        self.get(name)?.ok_or_else(|| Error::Column {
            path: self.path.to_path_buf(),
            column: name.to_string(),
            problem: "is missing".into(),
        })
    }

    fn wrong(&self, name: &str, want: &str, got: &dyn Array) -> Error {
        Error::Column {
            path: self.path.to_path_buf(),
            column: name.to_string(),
            problem: format!("has type {}, expected {want}", got.data_type()),
        }
    }

    fn utf8(&self, name: &str, a: &'a dyn Array) -> Result<&'a StringArray> {
        a.as_string_opt::<i32>()
            .ok_or_else(|| self.wrong(name, "Utf8", a))
    }

    fn opt_utf8(&self, name: &str) -> Result<Option<&'a StringArray>> {
        self.get(name)?.map(|a| self.utf8(name, a)).transpose()
    }

    fn opt_u32(&self, name: &str) -> Result<Option<&'a arrow_array::UInt32Array>> {
        self.get(name)?
            .map(|a| {
                a.as_primitive_opt::<UInt32Type>()
                    .ok_or_else(|| self.wrong(name, "UInt32", a))
            })
            .transpose()
    }

    fn opt_f64(&self, name: &str) -> Result<Option<&'a arrow_array::Float64Array>> {
        self.get(name)?
            .map(|a| {
                a.as_primitive_opt::<Float64Type>()
                    .ok_or_else(|| self.wrong(name, "Float64", a))
            })
            .transpose()
    }

    fn opt_bool(&self, name: &str) -> Result<Option<&'a arrow_array::BooleanArray>> {
        self.get(name)?
            .map(|a| {
                a.as_boolean_opt()
                    .ok_or_else(|| self.wrong(name, "Boolean", a))
            })
            .transpose()
    }

    fn opt_list(&self, name: &str) -> Result<Option<&'a ListArray>> {
        self.get(name)?
            .map(|a| {
                a.as_list_opt::<i32>()
                    .ok_or_else(|| self.wrong(name, "List", a))
            })
            .transpose()
    }
}

fn str_at(a: Option<&StringArray>, i: usize) -> Option<String> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i).to_string())
}

fn u32_at(a: Option<&arrow_array::UInt32Array>, i: usize) -> Option<u32> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

fn f64_at(a: Option<&arrow_array::Float64Array>, i: usize) -> Option<f64> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

/// Converts one record batch of a trace into rows; `first_row` numbers them in errors.
pub(crate) fn batch_to_rows(
    path: &Path,
    batch: &RecordBatch,
    first_row: u64,
) -> Result<Vec<TraceRow>> {
    let c = Cols { path, batch };
    let request_id = c.utf8(column::REQUEST_ID, c.required(column::REQUEST_ID)?)?;
    let session_id = c.utf8(column::SESSION_ID, c.required(column::SESSION_ID)?)?;
    let turn = c.opt_u32(column::TURN)?;
    let arrival = c.opt_f64(column::ARRIVAL_MS)?;
    let think = c.opt_f64(column::THINK_MS)?;
    let reset = c.opt_bool(column::RESET_CONTEXT)?;
    let reference = c.opt_utf8(column::REFERENCE_OUTPUT)?;
    let reference_tools = c.opt_utf8(column::REFERENCE_TOOL_CALLS)?;
    let input_tokens = c.opt_u32(column::INPUT_TOKENS)?;
    let output_tokens = c.opt_u32(column::OUTPUT_TOKENS)?;
    let overflow = c.opt_bool(column::OVERFLOW)?;
    let source = c.opt_utf8(column::SOURCE)?;
    let new_tokens = c.opt_u32(column::NEW_TOKENS)?;
    let prompt_tokens = c.opt_u32(column::PROMPT_TOKENS)?;
    let reference_tokens = c.opt_u32(column::REFERENCE_OUTPUT_TOKENS)?;
    let hash_ids = c.opt_list(column::HASH_IDS)?;
    let hash_values = match hash_ids {
        Some(l) => Some(
            l.values()
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| c.wrong(column::HASH_IDS, "List<UInt64>", l))?,
        ),
        None => None,
    };
    let messages = c.opt_list(column::MESSAGES)?;
    let msg_struct: Option<&StructArray> = match messages {
        Some(l) => Some(
            l.values()
                .as_struct_opt()
                .ok_or_else(|| c.wrong(column::MESSAGES, "List<Struct>", l))?,
        ),
        None => None,
    };
    let field = |s: &'_ StructArray, name: &str| -> Result<Option<StringArray>> {
        match s.column_by_name(name) {
            None => Ok(None),
            Some(a) => a
                .as_string_opt::<i32>()
                .cloned()
                .map(Some)
                .ok_or_else(|| c.wrong(&format!("messages.{name}"), "Utf8", a.as_ref())),
        }
    };
    let (roles, contents, tool_calls, tool_ids) = match msg_struct {
        Some(s) => (
            field(s, column::ROLE)?,
            field(s, column::CONTENT)?,
            field(s, column::TOOL_CALLS)?,
            field(s, column::TOOL_CALL_ID)?,
        ),
        None => (None, None, None, None),
    };

    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let row_no = first_row + i as u64;
        if request_id.is_null(i) || session_id.is_null(i) {
            return Err(Error::InvalidRow {
                path: path.to_path_buf(),
                row: row_no,
                problem: "request_id and session_id must not be null".into(),
            });
        }
        let mut msgs = Vec::new();
        if let Some(list) = messages.filter(|l| l.is_valid(i)) {
            let offsets = list.value_offsets();
            let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
            for j in start..end {
                msgs.push(Message {
                    role: str_at(roles.as_ref(), j).unwrap_or_default(),
                    content: str_at(contents.as_ref(), j).unwrap_or_default(),
                    tool_calls: str_at(tool_calls.as_ref(), j),
                    tool_call_id: str_at(tool_ids.as_ref(), j),
                });
            }
        }
        let hashes = match (hash_ids, hash_values) {
            (Some(list), Some(values)) if list.is_valid(i) => {
                let offsets = list.value_offsets();
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                Some(values.values()[start..end].to_vec())
            }
            _ => None,
        };
        rows.push(TraceRow {
            request_id: request_id.value(i).to_string(),
            session_id: session_id.value(i).to_string(),
            turn: u32_at(turn, i).unwrap_or(0),
            arrival_ms: f64_at(arrival, i),
            think_ms: f64_at(think, i),
            messages: msgs,
            reset_context: reset.is_some_and(|a| a.is_valid(i) && a.value(i)),
            reference_output: str_at(reference, i),
            reference_tool_calls: str_at(reference_tools, i),
            input_tokens: u32_at(input_tokens, i),
            hash_ids: hashes,
            output_tokens: u32_at(output_tokens, i),
            overflow: overflow.is_some_and(|a| a.is_valid(i) && a.value(i)),
            source: str_at(source, i).unwrap_or_default(),
            new_tokens: u32_at(new_tokens, i),
            prompt_tokens: u32_at(prompt_tokens, i),
            reference_output_tokens: u32_at(reference_tokens, i),
        });
    }
    Ok(rows)
}
