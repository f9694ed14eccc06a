//! Errors of the analysis crate. Display names the file or run; the cause
//! is in `source()`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: not a replay run folder (no requests/*.parquet parts and no run.json)")]
    NotARun { path: PathBuf },
    #[error("{path}: the run has no finished requests yet (requests/ holds no complete part)")]
    NoRequests { path: PathBuf },
    #[error(
        "{path}: results format version {found}; this trace reads versions 1 to {expected}; use a trace release that matches the run"
    )]
    Version {
        path: PathBuf,
        found: String,
        expected: u32,
    },
    #[error("{path}: cannot read")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unreadable run.json")]
    RunJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: unreadable Parquet part")]
    Parquet {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{context}")]
    Polars {
        context: String,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("bad --by column {column:?}: {reason}")]
    BadColumn { column: String, reason: String },
    #[error("chart {chart}: {message}")]
    Plot { chart: String, message: String },
    #[error("{path}: cannot write the spreadsheet: {message}")]
    Xlsx { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
    /// A bug of this crate: the message says what did not add up.
    #[error("internal error (a bug, please report it): {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a context line to a Polars error.
pub trait PolarsContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> PolarsContext<T> for std::result::Result<T, polars::error::PolarsError> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Polars {
            context: context(),
            source,
        })
    }
}
