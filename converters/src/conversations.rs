//! `trace convert conversations`: conversation-history samples of a QPS
//! load tool.
//!
//! Input: a JSON array (or JSON Lines) of samples
//! `{"prompt_content": "<system prompt>", "cut_chat_history": [{"role", "content"}, ...]}`.
//! By default a sample is one request carrying the system prompt and the
//! whole history, as the tool sends it; with `--split-turns` it becomes a
//! multi-turn session mapped like ShareGPT. See `docs/formats/conversations.md`.

use std::path::PathBuf;

use serde_json::{Map, Value};
use traces::{Message, TraceRow};

use crate::input::{JsonSource, RawRecord, expand_inputs};
use crate::openai::{build_turns, record_id, role_name, role_of};
use crate::sharegpt::Speaker;
use crate::{Outcome, Result, SessionSource, ids};

const SOURCE: &str = "conversations";

/// Options of `trace convert conversations`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {
    /// Make each sample a multi-turn session (each user message opens a
    /// turn, the assistant message after it is the turn's reference) instead
    /// of one request that carries the whole history.
    #[arg(long)]
    pub split_turns: bool,
}

/// Opens the inputs (files, or folders of `.json`/`.jsonl` files) as a source of sessions.
pub fn open(inputs: &[PathBuf], opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_inputs(inputs, &["json", "jsonl"])?;
    let opts = opts.clone();
    Ok(Box::new(JsonSource::new(files, move |rec| {
        convert_record(&rec, &opts)
    })))
}

fn convert_record(rec: &RawRecord, opts: &Options) -> Result<Outcome> {
    let value: Value = rec.parse()?;
    let Value::Object(obj) = value else {
        return Err(rec.bad(
            "wrong shape",
            "a sample must be a JSON object with `prompt_content` and `cut_chat_history`",
        ));
    };
    let system = system_prompt(&obj).map_err(|m| rec.bad("wrong shape", m))?;
    let history = history(&obj).map_err(|m| rec.bad("wrong shape", m))?;
    if history.is_empty() {
        return Ok(Outcome::Skipped("empty history".into()));
    }
    if !history.iter().any(|m| m.role == "user") {
        return Ok(Outcome::Skipped("no user message".into()));
    }
    let session_id = record_id(&obj).unwrap_or_else(|| ids::content_id(SOURCE, &rec.bytes));
    if opts.split_turns {
        let messages = system.into_iter().chain(history).collect();
        return Ok(build_turns(&session_id, SOURCE, messages, false));
    }
    Ok(Outcome::Session(vec![single_request(
        &session_id,
        system,
        history,
    )]))
}

/// The system prompt from `prompt_content`, if it is there and not blank.
fn system_prompt(obj: &Map<String, Value>) -> Result<Option<Message>, String> {
    match obj.get("prompt_content") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(Message::new("system", s.clone()))),
        Some(_) => Err("`prompt_content` must be a string".into()),
    }
}

/// The history's messages with roles normalised; system entries and blank
/// messages are left out.
fn history(obj: &Map<String, Value>) -> Result<Vec<Message>, String> {
    let items = match obj.get("cut_chat_history") {
        Some(Value::Array(items)) => items,
        Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => return Err("`cut_chat_history` must be a list".into()),
        None => return Err("the sample has no `cut_chat_history`".into()),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (who, content) = entry(item).map_err(|m| format!("cut_chat_history[{i}] {m}"))?;
        if who != Speaker::System && !content.trim().is_empty() {
            out.push(Message::new(role_name(who), content));
        }
    }
    Ok(out)
}

/// One `{"role", "content"}` entry; `content` must be a string (or null).
fn entry(item: &Value) -> Result<(Speaker, String), String> {
    let Value::Object(obj) = item else {
        return Err("is not a {\"role\", \"content\"} object".into());
    };
    let who = match obj.get("role") {
        Some(Value::String(role)) => {
            role_of(role).ok_or_else(|| format!("has unknown role {role:?}"))?
        }
        _ => return Err("has no string `role`".into()),
    };
    let content = match obj.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("has a `content` that is not a string".into()),
    };
    Ok((who, content))
}

/// The whole sample as one request; a trailing assistant message is the
/// recorded reply to it, so it becomes the reference instead of input.
fn single_request(
    session_id: &str,
    system: Option<Message>,
    mut history: Vec<Message>,
) -> TraceRow {
    let reply = match history.last() {
        Some(m) if m.role == "assistant" => history.pop(),
        _ => None,
    };
    TraceRow {
        request_id: ids::request_id(session_id, 0),
        session_id: session_id.to_string(),
        turn: 0,
        messages: system.into_iter().chain(history).collect(),
        reference_output: reply.map(|m| m.content),
        source: SOURCE.to_string(),
        ..Default::default()
    }
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

    fn rows(json: &str, split_turns: bool) -> Vec<TraceRow> {
        match convert_record(&rec(json), &Options { split_turns }).expect("converts") {
            Outcome::Session(rows) => rows,
            Outcome::Skipped(r) => panic!("skipped: {r}"),
        }
    }

    const SAMPLE: &str = r#"{"prompt_content":"S","cut_chat_history":[
        {"role":"user","content":"q1"},{"role":"system","content":"inner"},
        {"role":"assistant","content":"r1"},{"role":"user","content":"q2"},
        {"role":"assistant","content":"r2"}]}"#;

    #[test]
    fn default_is_one_request_with_trailing_reply_as_reference() {
        let r = rows(SAMPLE, false);
        assert_eq!(r.len(), 1);
        let roles: Vec<_> = r[0].messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(r[0].reference_output.as_deref(), Some("r2"));
        assert!(r[0].session_id.starts_with("conversations-"));
    }

    #[test]
    fn split_turns_makes_a_session() {
        let r = rows(SAMPLE, true);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].messages.len(), 2);
        assert_eq!(r[0].reference_output.as_deref(), Some("r1"));
        assert_eq!(r[1].messages, vec![Message::new("user", "q2")]);
        assert_eq!(r[1].reference_output.as_deref(), Some("r2"));
    }

    #[test]
    fn nothing_to_send_is_skipped() {
        for (json, reason) in [
            (
                r#"{"prompt_content":"S","cut_chat_history":[]}"#,
                "empty history",
            ),
            (r#"{"cut_chat_history":null}"#, "empty history"),
            (
                r#"{"cut_chat_history":[{"role":"system","content":"x"}]}"#,
                "empty history",
            ),
            (
                r#"{"cut_chat_history":[{"role":"assistant","content":"x"}]}"#,
                "no user message",
            ),
        ] {
            match convert_record(&rec(json), &Options::default()).expect("ok") {
                Outcome::Skipped(r) => assert_eq!(r, reason, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for bad in [
            r#"[]"#,
            r#"{"prompt_content":"S"}"#,
            r#"{"prompt_content":1,"cut_chat_history":[]}"#,
            r#"{"cut_chat_history":{}}"#,
            r#"{"cut_chat_history":[{"role":"user","content":["x"]}]}"#,
            r#"{"cut_chat_history":[{"role":"robot","content":"x"}]}"#,
            r#"{"cut_chat_history":["x"]}"#,
        ] {
            assert!(
                convert_record(&rec(bad), &Options::default()).is_err(),
                "{bad}"
            );
        }
    }
}
