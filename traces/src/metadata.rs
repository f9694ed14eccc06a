//! The key-value metadata of a trace file.

use std::collections::BTreeMap;

pub const KEY_SCHEMA_VERSION: &str = "trace.schema_version";
pub const KEY_SOURCE: &str = "trace.source";
pub const KEY_TOKENIZER: &str = "trace.tokenizer";
pub const KEY_BLOCK_SIZE: &str = "trace.block_size";
pub const KEY_STATS: &str = "trace.stats";

/// What a trace file says about itself, besides its rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceMetadata {
    /// Set by the reader from the file; the writer always writes [`crate::SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What produced the file: converter or generator name and its arguments, as JSON.
    pub source: Option<String>,
    /// The tokenizer `trace tokenize` used, as JSON.
    pub tokenizer: Option<String>,
    /// Tokens per `hash_ids` block.
    pub block_size: Option<u32>,
    /// Counts of what the producer read, wrote and skipped (and why), as JSON.
    pub stats: Option<String>,
    /// Any other `trace.*` keys, kept as they are.
    pub extra: BTreeMap<String, String>,
}

impl TraceMetadata {
    /// Metadata with a `trace.source` describing the producer.
    pub fn with_source(source: serde_json::Value) -> Self {
        TraceMetadata {
            source: Some(source.to_string()),
            ..Default::default()
        }
    }

    pub(crate) fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![(
            KEY_SCHEMA_VERSION.to_string(),
            crate::SCHEMA_VERSION.to_string(),
        )];
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                pairs.push((k.to_string(), v.clone()));
            }
        };
        push(KEY_SOURCE, &self.source);
        push(KEY_TOKENIZER, &self.tokenizer);
        push(KEY_BLOCK_SIZE, &self.block_size.map(|b| b.to_string()));
        push(KEY_STATS, &self.stats);
        for (k, v) in &self.extra {
            pairs.push((k.clone(), v.clone()));
        }
        pairs
    }
}
