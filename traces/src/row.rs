use serde::{Deserialize, Serialize};

/// One message of a turn: the unit a chat endpoint takes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    /// OpenAI `tool_calls` of an assistant message, as the JSON array the API takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<String>,
    /// `tool_call_id` of a `tool` message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
        }
    }
}

/// One row of a trace: one request the replayer will send.
///
/// Field meanings are those of `docs/trace-format.md`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TraceRow {
    pub request_id: String,
    pub session_id: String,
    pub turn: u32,
    pub arrival_ms: Option<f64>,
    pub think_ms: Option<f64>,
    /// The messages this turn adds to the session's context.
    pub messages: Vec<Message>,
    pub reset_context: bool,
    pub reference_output: Option<String>,
    /// Tool calls of the recorded reply, as an OpenAI `tool_calls` JSON array.
    pub reference_tool_calls: Option<String>,
    pub input_tokens: Option<u32>,
    pub hash_ids: Option<Vec<u64>>,
    pub output_tokens: Option<u32>,
    /// The turn's base context alone exceeds the context window (synthetic agents).
    pub overflow: bool,
    pub source: String,
    pub new_tokens: Option<u32>,
    pub prompt_tokens: Option<u32>,
    pub reference_output_tokens: Option<u32>,
}

impl TraceRow {
    /// Characters of text this row adds (messages only).
    pub fn message_chars(&self) -> usize {
        self.messages
            .iter()
            .map(|m| m.content.chars().count())
            .sum()
    }
}
