//! `trace convert sharegpt`: ShareGPT conversations.
//!
//! Input: a JSON array of records, JSON Lines, or a single record, where a
//! record is `{"id"?, "conversations": [{"from", "value"}, ...]}` (items
//! written `{"role", "content"}` are accepted too). One session per record;
//! each user (or tool-result) message opens a turn and the model's reply
//! that follows becomes the turn's `reference_output`. See
//! `docs/trace-format.md` for how odd records are treated.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use traces::{Message, TraceRow};

use crate::input::{JsonSource, RawRecord, expand_inputs};
use crate::{Outcome, Result, SessionSource, ids};

/// Options of `trace convert sharegpt`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {
    /// Keep only each conversation's first turn (the single-turn view of
    /// `vllm bench serve` and most other tools).
    #[arg(long)]
    pub first_turn_only: bool,
}

pub fn open(inputs: &[PathBuf], opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_inputs(inputs, &["json", "jsonl"])?;
    let opts = opts.clone();
    Ok(Box::new(JsonSource::new(files, move |rec| {
        convert_record(&rec, &opts, "sharegpt")
    })))
}

#[derive(Deserialize)]
struct Item {
    #[serde(alias = "role")]
    from: Option<String>,
    #[serde(alias = "content")]
    value: Option<Value>,
}

/// A speaker, normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speaker {
    System,
    User,
    Assistant,
    /// The model calling a tool (`function_call`).
    ToolCall,
    /// A tool's result (`observation`, `tool`, `function`).
    ToolResult,
}

pub(crate) fn speaker(role: &str) -> Option<Speaker> {
    Some(match role.trim().to_ascii_lowercase().as_str() {
        "human" | "user" | "prompter" => Speaker::User,
        "gpt" | "assistant" | "chatgpt" | "bard" | "bing" | "model" | "bot" => Speaker::Assistant,
        "system" => Speaker::System,
        "function_call" | "tool_call" => Speaker::ToolCall,
        "observation" | "tool" | "function" | "tool_response" => Speaker::ToolResult,
        _ => return None,
    })
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub(crate) fn convert_record(rec: &RawRecord, opts: &Options, source: &str) -> Result<Outcome> {
    let value: Value = rec.parse()?;
    let Value::Object(obj) = value else {
        return Err(rec.bad("wrong shape", "a ShareGPT record must be a JSON object"));
    };
    let items = match obj.get("conversations").or_else(|| obj.get("conversation")) {
        None | Some(Value::Null) => return Ok(Outcome::Skipped("no conversations key".into())),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(rec.bad("wrong shape", "`conversations` must be an array"));
        }
    };
    let session_id = match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => ids::content_id(source, &rec.bytes),
    };
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item: Item = serde_json::from_value(item.clone()).map_err(|e| {
            rec.bad(
                "wrong shape",
                format!("conversations[{i}] is not a {{\"from\", \"value\"}} object: {e}"),
            )
        })?;
        let role = item.from.unwrap_or_default();
        let Some(who) = speaker(&role) else {
            return Err(rec.bad(
                "unknown role",
                format!("conversations[{i}] has unknown role {role:?}"),
            ));
        };
        parsed.push((who, text_of(item.value.as_ref())));
    }
    Ok(build_session(
        &session_id,
        source,
        parsed,
        opts.first_turn_only,
    ))
}

/// Turns a list of (speaker, text) into the rows of one session.
pub(crate) fn build_session(
    session_id: &str,
    source: &str,
    items: Vec<(Speaker, String)>,
    first_turn_only: bool,
) -> Outcome {
    let mut rows: Vec<TraceRow> = Vec::new();
    let mut pending: Vec<Message> = Vec::new();
    let mut pending_request = false;
    let mut last_call_id: Option<String> = None;
    let mut calls = 0u32;
    let close_turn = |pending: &mut Vec<Message>,
                      rows: &mut Vec<TraceRow>,
                      reply: Option<String>,
                      tool_calls: Option<String>| {
        let turn = rows.len() as u32;
        rows.push(TraceRow {
            request_id: ids::request_id(session_id, turn),
            session_id: session_id.to_string(),
            turn,
            messages: std::mem::take(pending),
            reference_output: reply,
            reference_tool_calls: tool_calls,
            source: source.to_string(),
            ..Default::default()
        });
    };
    for (who, text) in items {
        match who {
            Speaker::System => {
                if !text.trim().is_empty() {
                    pending.push(Message::new("system", text));
                }
            }
            Speaker::User => {
                if !text.trim().is_empty() {
                    pending.push(Message::new("user", text));
                    pending_request = true;
                }
            }
            Speaker::ToolResult => {
                let mut m = Message::new("tool", text);
                m.tool_call_id = last_call_id.take();
                pending.push(m);
                pending_request = true;
            }
            Speaker::Assistant | Speaker::ToolCall => {
                let tool_calls = if who == Speaker::ToolCall {
                    calls += 1;
                    let id = format!("call_{calls}");
                    let calls_json = tool_call_json(&id, &text);
                    last_call_id = Some(id);
                    calls_json
                } else {
                    None
                };
                if pending_request {
                    let reply = if text.is_empty() { None } else { Some(text) };
                    close_turn(&mut pending, &mut rows, reply, tool_calls);
                    pending_request = false;
                } else if !text.trim().is_empty() {
                    // A reply with no request before it (a conversation that
                    // starts with the model, or two replies in a row): keep it
                    // as context for the next turn.
                    let mut m = Message::new("assistant", text);
                    m.tool_calls = tool_calls;
                    pending.push(m);
                }
            }
        }
        if first_turn_only && !rows.is_empty() {
            break;
        }
    }
    if pending_request && (!first_turn_only || rows.is_empty()) {
        close_turn(&mut pending, &mut rows, None, None);
    }
    if rows.is_empty() {
        return Outcome::Skipped("no user turn".into());
    }
    Outcome::Session(rows)
}

/// OpenAI `tool_calls` JSON for a ShareGPT `function_call` value
/// (`{"name", "arguments"}`), or `None` when the value is not such an object.
fn tool_call_json(id: &str, text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let name = v.get("name")?.as_str()?;
    let arguments = match v.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "{}".to_string(),
    };
    Some(
        serde_json::json!([{
            "id": id,
            "type": "function",
            "function": {"name": name, "arguments": arguments}
        }])
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;

    fn rec(json: &str) -> RawRecord {
        RawRecord {
            bytes: json.as_bytes().to_vec(),
            location: Location::file("t.json"),
        }
    }

    fn session(json: &str) -> Vec<TraceRow> {
        match convert_record(&rec(json), &Options::default(), "sharegpt").expect("converts") {
            Outcome::Session(rows) => rows,
            Outcome::Skipped(r) => panic!("skipped: {r}"),
        }
    }

    #[test]
    fn turns_pair_user_with_following_reply() {
        let rows = session(
            r#"{"id":"a","conversations":[{"from":"system","value":"S"},{"from":"human","value":"q1"},
            {"from":"gpt","value":"r1"},{"from":"user","value":"q2"},{"from":"chatgpt","value":"r2"}]}"#,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].messages.len(), 2);
        assert_eq!(rows[0].messages[0].role, "system");
        assert_eq!(rows[0].reference_output.as_deref(), Some("r1"));
        assert_eq!(rows[1].request_id, "a#1");
        assert_eq!(rows[1].messages, vec![Message::new("user", "q2")]);
    }

    #[test]
    fn model_first_and_trailing_user() {
        let rows = session(
            r#"{"conversations":[{"from":"gpt","value":"hello"},{"from":"human","value":"q"}]}"#,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].messages[0].role, "assistant");
        assert_eq!(rows[0].reference_output, None);
        assert!(rows[0].session_id.starts_with("sharegpt-"));
    }

    #[test]
    fn nothing_to_send_is_skipped() {
        let o = convert_record(&rec(r#"{"id":"x"}"#), &Options::default(), "sharegpt").expect("ok");
        assert!(matches!(o, Outcome::Skipped(_)));
        let o = convert_record(
            &rec(r#"{"conversations":[{"from":"gpt","value":"only"}]}"#),
            &Options::default(),
            "sharegpt",
        )
        .expect("ok");
        assert!(matches!(o, Outcome::Skipped(_)));
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for bad in [
            r#"[1]"#,
            r#"{"conversations":"x"}"#,
            r#"{"conversations":[{"from":"alien","value":"x"}]}"#,
        ] {
            assert!(
                convert_record(&rec(bad), &Options::default(), "sharegpt").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn tool_calls_become_openai_tool_calls() {
        let rows = session(
            r#"{"conversations":[{"from":"human","value":"weather?"},
            {"from":"function_call","value":"{\"name\": \"get\", \"arguments\": {\"city\": \"Paris\"}}"},
            {"from":"observation","value":"{\"t\": 20}"},{"from":"gpt","value":"20C"}]}"#,
        );
        assert_eq!(rows.len(), 2);
        let calls: Value =
            serde_json::from_str(rows[0].reference_tool_calls.as_deref().expect("calls"))
                .expect("json");
        assert_eq!(calls[0]["function"]["name"], "get");
        assert_eq!(rows[1].messages[0].role, "tool");
        assert_eq!(rows[1].messages[0].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(rows[1].reference_output.as_deref(), Some("20C"));
    }

    #[test]
    fn first_turn_only() {
        let r = rec(
            r#"{"id":"a","conversations":[{"from":"human","value":"q1"},{"from":"gpt","value":"r1"},{"from":"human","value":"q2"}]}"#,
        );
        let opts = Options {
            first_turn_only: true,
        };
        match convert_record(&r, &opts, "sharegpt").expect("ok") {
            Outcome::Session(rows) => assert_eq!(rows.len(), 1),
            _ => panic!(),
        }
    }
}
