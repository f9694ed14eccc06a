//! The `server_metrics` Parquet parts: one row per scraped sample, long
//! format, written as numbered self-contained files so that a killed run
//! keeps every part already closed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;

/// The columns of `server_metrics`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts_ms", DataType::Float64, false),
        Field::new("endpoint", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("labels", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("canonical", DataType::Utf8, true),
    ]))
}

/// One sample as it is stored.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub ts_ms: f64,
    pub endpoint: &'a str,
    pub name: &'a str,
    pub labels: &'a str,
    pub value: f64,
    pub canonical: Option<&'a str>,
}

/// Buffers rows in Arrow builders and cuts them into parts.
pub struct PartsWriter {
    dir: PathBuf,
    schema: SchemaRef,
    ts_ms: Float64Builder,
    endpoint: StringBuilder,
    name: StringBuilder,
    labels: StringBuilder,
    value: Float64Builder,
    canonical: StringBuilder,
    buffered: usize,
    next_part: u32,
}

impl PartsWriter {
    /// Creates the folder; numbering continues after any parts already in it.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the metrics folder {}", dir.display()))?;
        let next_part = next_part_number(dir)?;
        Ok(PartsWriter {
            dir: dir.to_path_buf(),
            schema: schema(),
            ts_ms: Float64Builder::new(),
            endpoint: StringBuilder::new(),
            name: StringBuilder::new(),
            labels: StringBuilder::new(),
            value: Float64Builder::new(),
            canonical: StringBuilder::new(),
            buffered: 0,
            next_part,
        })
    }

    pub fn push(&mut self, row: Row<'_>) {
        self.ts_ms.append_value(row.ts_ms);
        self.endpoint.append_value(row.endpoint);
        self.name.append_value(row.name);
        self.labels.append_value(row.labels);
        self.value.append_value(row.value);
        self.canonical.append_option(row.canonical);
        self.buffered += 1;
    }

    /// Rows waiting for the next part.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Moves the buffered rows into a part to be written (on a blocking
    /// thread); `None` when nothing is buffered.
    pub fn take_part(&mut self) -> anyhow::Result<Option<PendingPart>> {
        if self.buffered == 0 {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts_ms.finish()),
            Arc::new(self.endpoint.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.canonical.finish()),
        ];
        self.buffered = 0;
        let name = format!("part-{:05}.parquet", self.next_part);
        self.next_part += 1;
        let path = self.dir.join(&name);
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .with_context(|| format!("cannot build the rows of {}", path.display()))?;
        Ok(Some(PendingPart {
            tmp: self.dir.join(format!(".{name}.tmp")),
            path,
            batch,
        }))
    }
}

/// A finished batch of rows and the file it becomes.
pub struct PendingPart {
    tmp: PathBuf,
    path: PathBuf,
    batch: RecordBatch,
}

impl PendingPart {
    /// Writes the part under a hidden name, syncs it and renames it into
    /// place. Returns the number of rows.
    pub fn write(self) -> anyhow::Result<u64> {
        let result = self.write_tmp();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("cannot rename {} into place", self.path.display()))?;
        Ok(self.batch.num_rows() as u64)
    }

    fn write_tmp(&self) -> anyhow::Result<()> {
        let context = || format!("cannot write {}", self.path.display());
        let file = File::create(&self.tmp).with_context(context)?;
        let props = traces::results::results_writer_properties(&self.batch.schema());
        let mut writer =
            ArrowWriter::try_new(file, self.batch.schema(), Some(props)).with_context(context)?;
        writer.write(&self.batch).with_context(context)?;
        let file = writer.into_inner().with_context(context)?;
        file.sync_all().with_context(context)?;
        Ok(())
    }
}

/// One past the highest `part-NNNNN.parquet` in `dir` (0 if none).
fn next_part_number(dir: &Path) -> anyhow::Result<u32> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the metrics folder {}", dir.display()))?;
    let mut next = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix("part-"))
            .and_then(|n| n.strip_suffix(".parquet"))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(number) = number {
            next = next.max(number.saturating_add(1));
        }
    }
    Ok(next)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use traces::results::{KEY_RESULTS_VERSION, RESULTS_SCHEMA_VERSION};

    /// Every row of every part in `dir`, in part order:
    /// (ts_ms, endpoint, name, labels, value, canonical).
    pub(crate) type ReadRow = (f64, String, String, String, f64, Option<String>);

    pub(crate) fn read_parts(dir: &Path) -> Vec<ReadRow> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut rows = Vec::new();
        for file in files {
            let name = file.file_name().unwrap().to_str().unwrap().to_string();
            assert!(
                name.starts_with("part-") && name.ends_with(".parquet"),
                "unexpected file {name}"
            );
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(File::open(&file).unwrap()).unwrap();
            let kv = builder
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .cloned()
                .unwrap_or_default();
            assert!(
                kv.iter().any(|kv| kv.key == KEY_RESULTS_VERSION
                    && kv.value == Some(RESULTS_SCHEMA_VERSION.to_string())),
                "{name} lacks results.schema_version {RESULTS_SCHEMA_VERSION}"
            );
            for batch in builder.build().unwrap() {
                let batch = batch.unwrap();
                let f = |i: usize| {
                    batch
                        .column(i)
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .unwrap()
                        .clone()
                };
                let s = |i: usize| {
                    batch
                        .column(i)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .unwrap()
                        .clone()
                };
                let (ts, ep, nm, lb, val, can) = (f(0), s(1), s(2), s(3), f(4), s(5));
                for i in 0..batch.num_rows() {
                    rows.push((
                        ts.value(i),
                        ep.value(i).to_string(),
                        nm.value(i).to_string(),
                        lb.value(i).to_string(),
                        val.value(i),
                        (!can.is_null(i)).then(|| can.value(i).to_string()),
                    ));
                }
            }
        }
        rows
    }

    #[test]
    fn parts_are_numbered_complete_and_carry_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("server_metrics");
        let mut writer = PartsWriter::create(&out).unwrap();
        assert!(writer.take_part().unwrap().is_none());
        for i in 0..3 {
            writer.push(Row {
                ts_ms: i as f64,
                endpoint: "127.0.0.1:8000",
                name: "vllm:num_requests_running",
                labels: "model_name=m",
                value: f64::NAN,
                canonical: Some("num_requests_running"),
            });
        }
        assert_eq!(writer.buffered(), 3);
        assert_eq!(writer.take_part().unwrap().unwrap().write().unwrap(), 3);
        assert_eq!(writer.buffered(), 0);
        writer.push(Row {
            ts_ms: 3.5,
            endpoint: "127.0.0.1:8000",
            name: "custom",
            labels: "",
            value: f64::INFINITY,
            canonical: None,
        });
        writer.take_part().unwrap().unwrap().write().unwrap();
        let names: Vec<_> = {
            let mut n: Vec<_> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names, ["part-00000.parquet", "part-00001.parquet"]);
        let rows = read_parts(&out);
        assert_eq!(rows.len(), 4);
        assert!(rows[0].4.is_nan());
        assert_eq!(rows[2].5.as_deref(), Some("num_requests_running"));
        assert_eq!(rows[3].2, "custom");
        assert_eq!(rows[3].4, f64::INFINITY);
        assert_eq!(rows[3].5, None);

        // A second writer on the same folder does not overwrite.
        let mut again = PartsWriter::create(&out).unwrap();
        again.push(Row {
            ts_ms: 9.0,
            endpoint: "e",
            name: "n",
            labels: "",
            value: 1.0,
            canonical: None,
        });
        again.take_part().unwrap().unwrap().write().unwrap();
        assert!(out.join("part-00002.parquet").exists());
        assert_eq!(read_parts(&out).len(), 5);
    }

    #[test]
    fn an_unwritable_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let err = PartsWriter::create(&file.join("sub")).err().unwrap();
        assert!(format!("{err:#}").contains("not-a-dir"), "{err:#}");
    }
}
