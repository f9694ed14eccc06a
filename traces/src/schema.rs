//! The Arrow schema of a trace file (`docs/trace-format.md`).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

/// Column names, so that readers and writers never spell them twice.
pub mod column {
    pub const REQUEST_ID: &str = "request_id";
    pub const SESSION_ID: &str = "session_id";
    pub const TURN: &str = "turn";
    pub const ARRIVAL_MS: &str = "arrival_ms";
    pub const THINK_MS: &str = "think_ms";
    pub const MESSAGES: &str = "messages";
    pub const RESET_CONTEXT: &str = "reset_context";
    pub const REFERENCE_OUTPUT: &str = "reference_output";
    pub const REFERENCE_TOOL_CALLS: &str = "reference_tool_calls";
    pub const INPUT_TOKENS: &str = "input_tokens";
    pub const HASH_IDS: &str = "hash_ids";
    pub const OUTPUT_TOKENS: &str = "output_tokens";
    pub const OVERFLOW: &str = "overflow";
    pub const SOURCE: &str = "source";
    pub const NEW_TOKENS: &str = "new_tokens";
    pub const PROMPT_TOKENS: &str = "prompt_tokens";
    pub const REFERENCE_OUTPUT_TOKENS: &str = "reference_output_tokens";

    pub const ROLE: &str = "role";
    pub const CONTENT: &str = "content";
    pub const TOOL_CALLS: &str = "tool_calls";
    pub const TOOL_CALL_ID: &str = "tool_call_id";
}

/// Fields of the message struct inside `messages`.
pub fn message_fields() -> Fields {
    Fields::from(vec![
        Field::new(column::ROLE, DataType::Utf8, false),
        Field::new(column::CONTENT, DataType::Utf8, false),
        Field::new(column::TOOL_CALLS, DataType::Utf8, true),
        Field::new(column::TOOL_CALL_ID, DataType::Utf8, true),
    ])
}

pub(crate) fn message_item_field() -> Arc<Field> {
    Arc::new(Field::new(
        "item",
        DataType::Struct(message_fields()),
        false,
    ))
}

pub(crate) fn hash_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::UInt64, false))
}

/// The schema every trace file of [`crate::SCHEMA_VERSION`] has.
pub fn trace_schema() -> SchemaRef {
    use column::*;
    Arc::new(Schema::new(vec![
        Field::new(REQUEST_ID, DataType::Utf8, false),
        Field::new(SESSION_ID, DataType::Utf8, false),
        Field::new(TURN, DataType::UInt32, false),
        Field::new(ARRIVAL_MS, DataType::Float64, true),
        Field::new(THINK_MS, DataType::Float64, true),
        Field::new(MESSAGES, DataType::List(message_item_field()), false),
        Field::new(RESET_CONTEXT, DataType::Boolean, false),
        Field::new(REFERENCE_OUTPUT, DataType::Utf8, true),
        Field::new(REFERENCE_TOOL_CALLS, DataType::Utf8, true),
        Field::new(INPUT_TOKENS, DataType::UInt32, true),
        Field::new(HASH_IDS, DataType::List(hash_item_field()), true),
        Field::new(OUTPUT_TOKENS, DataType::UInt32, true),
        Field::new(OVERFLOW, DataType::Boolean, false),
        Field::new(SOURCE, DataType::Utf8, false),
        Field::new(NEW_TOKENS, DataType::UInt32, true),
        Field::new(PROMPT_TOKENS, DataType::UInt32, true),
        Field::new(REFERENCE_OUTPUT_TOKENS, DataType::UInt32, true),
    ]))
}
