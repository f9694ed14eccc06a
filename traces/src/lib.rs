//! The on-disk contract of `trace`.
//!
//! A *trace* is a Parquet file in which one row is one request the replayer
//! will send (see `docs/trace-format.md`). This crate owns its Arrow schema,
//! the [`SCHEMA_VERSION`] written into every file, the [`TraceRow`] record
//! that converters and generators produce, a streaming [`TraceWriter`] that
//! never leaves a half-written file behind, and a [`TraceReader`] that
//! refuses files of a version it does not know.

mod codec;
mod error;
mod metadata;
mod reader;
pub mod results;
mod row;
mod schema;
mod writer;

pub use codec::{Codec, UnknownCodec};
pub use error::{Error, Result};
pub use metadata::{
    KEY_BLOCK_SIZE, KEY_SCHEMA_VERSION, KEY_SOURCE, KEY_STATS, KEY_TOKENIZER, TraceMetadata,
};
pub use reader::{TraceBatches, TraceReader};
pub use row::{Message, TraceRow};
pub use schema::{column, message_fields, trace_schema};
pub use writer::{TraceWriter, WriterOptions, remove_pending_outputs};

/// Version of the trace format this build writes, stored under
/// `trace.schema_version` in every file's key-value metadata.
pub const SCHEMA_VERSION: u32 = 1;

/// Versions this build can read.
pub const READABLE_VERSIONS: &[u32] = &[1];
