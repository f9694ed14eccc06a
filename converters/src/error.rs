use std::fmt;
use std::path::PathBuf;

/// Where in an input a record was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based line where the record starts (JSONL, CSV, text), if known.
    pub line: Option<u64>,
    /// 0-based index of the record in the file (JSON arrays, and every format).
    pub record: Option<u64>,
}

impl Location {
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location {
            file: file.into(),
            line: None,
            record: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(record) = self.record {
            write!(f, " (record {record})")?;
        }
        Ok(())
    }
}

/// Errors of converters and generators. Every variant says where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read at all (the cause is the `source()`).
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's framing is broken (unterminated JSON array, not CSV, ...):
    /// nothing after this point can be read, even with `--skip-bad`.
    #[error("{location}: {message}")]
    Fatal { location: Location, message: String },
    /// One record does not parse or has the wrong shape; `--skip-bad` skips it.
    #[error("{location}: {message}")]
    BadRecord {
        location: Location,
        /// A short, stable reason used to count skipped records (e.g. "invalid JSON").
        kind: String,
        message: String,
    },
    /// Invalid options (the message names the flag).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Trace(#[from] traces::Error),
}

impl Error {
    pub fn bad(location: Location, kind: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadRecord {
            location,
            kind: kind.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
