use std::path::PathBuf;

/// Errors of reading and writing traces. Every variant names the file; the
/// underlying cause is the error's `source()`, so a chain printer such as
/// anyhow's `{:#}` shows it once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable Parquet file")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error(
        "{path}: trace schema version {found} is not supported by this build of trace \
         (it reads version(s) {supported}); convert the file again or upgrade trace"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error(
        "{path}: not a trace file (no `trace.schema_version` in its metadata); \
         make one with `trace convert` or `trace synth`"
    )]
    NotATrace { path: PathBuf },
    #[error(
        "{path}: results format version {found} is not supported by this build of trace \
         (it reads version(s) {supported}); upgrade trace"
    )]
    UnsupportedResultsVersion {
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error("{path}: not a results part (no `results.schema_version` in its metadata)")]
    NotAResultsPart { path: PathBuf },
    #[error("{path}: column `{column}` {problem}")]
    Column {
        path: PathBuf,
        column: String,
        problem: String,
    },
    #[error("{path}: invalid row {row}: {problem}")]
    InvalidRow {
        path: PathBuf,
        row: u64,
        problem: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
