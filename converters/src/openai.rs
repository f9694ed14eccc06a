//! `trace convert openai`: conversations in OpenAI chat `messages` form.
//!
//! Input: JSON Lines, a JSON array or a single object of records
//! `{"messages": [{"role", "content", ...}], ...}` (other keys such as
//! `tools` or `images` are ignored), or a file that is itself a bare JSON
//! array of messages (one conversation per file, as agent trajectories are
//! saved). The bare case is recognised per file from its first element.
//! One session per conversation, mapped as ShareGPT is: each user or tool
//! message opens a turn and the assistant message after it is the turn's
//! reference. See `docs/formats/openai.md`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use traces::{Message, TraceRow};

use crate::input::{self, JsonLayout, JsonRecords, RawRecord, expand_inputs};
use crate::sharegpt::{Speaker, speaker};
use crate::{Outcome, Report, Result, SessionSource, ids};

const SOURCE: &str = "openai";

/// Options of `trace convert openai`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {
    /// Keep only each conversation's first turn (the single-turn view of
    /// `vllm bench serve` and most other tools).
    #[arg(long)]
    pub first_turn_only: bool,
}

/// Opens the inputs (files, or folders of `.json`/`.jsonl` files) as a source of sessions.
pub fn open(inputs: &[PathBuf], opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_inputs(inputs, &["json", "jsonl"])?;
    Ok(Box::new(OpenAiSource {
        files: files.into_iter(),
        current: None,
        opts: opts.clone(),
        dropped_parts: 0,
    }))
}

type Records = JsonRecords<BufReader<File>>;

/// Reads the files in turn, deciding for each whether it holds records or
/// is one bare conversation.
struct OpenAiSource {
    files: std::vec::IntoIter<PathBuf>,
    /// The file being read record by record.
    current: Option<Records>,
    opts: Options,
    /// Image, audio and file parts left out of the messages.
    dropped_parts: u64,
}

impl SessionSource for OpenAiSource {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        loop {
            if let Some(records) = self.current.as_mut() {
                match records.next() {
                    Some(Ok(rec)) => {
                        return Some(convert_record(&rec, &self.opts, &mut self.dropped_parts));
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.current = None,
                }
            }
            let path = self.files.next()?;
            if let Some(outcome) = self.start_file(&path) {
                return Some(outcome);
            }
        }
    }

    fn finish(&mut self, report: &mut Report) {
        if self.dropped_parts > 0 {
            report.note(
                "image/audio/file content parts left out (text parts kept)",
                self.dropped_parts,
            );
        }
    }
}

impl OpenAiSource {
    /// Opens `path` and returns the outcome of its first record (or of the
    /// whole file when it is one bare conversation); `None` for an empty file.
    fn start_file(&mut self, path: &Path) -> Option<Result<Outcome>> {
        let mut records = match input::open(path) {
            Ok(reader) => JsonRecords::new(path, reader),
            Err(e) => return Some(Err(e)),
        };
        let first = match records.next()? {
            Ok(first) => first,
            Err(e) => {
                self.current = Some(records);
                return Some(Err(e));
            }
        };
        let bare = (records.layout() == Some(JsonLayout::Array))
            .then(|| bare_message(&first))
            .flatten();
        if let Some(message) = bare {
            let mut parser = MessageParser::new(&mut self.dropped_parts);
            return Some(bare_conversation(
                path,
                &first,
                &message,
                &mut records,
                &mut parser,
                &self.opts,
            ));
        }
        self.current = Some(records);
        Some(convert_record(&first, &self.opts, &mut self.dropped_parts))
    }
}

/// The record as a JSON value when it is a message (has `role`, no `messages`).
fn bare_message(rec: &RawRecord) -> Option<Value> {
    let value: Value = rec.parse().ok()?;
    let obj = value.as_object()?;
    (obj.contains_key("role") && !obj.contains_key("messages")).then_some(value)
}

/// Reads the rest of a bare array of messages as one conversation, whose
/// session id is the file's name.
fn bare_conversation(
    path: &Path,
    first: &RawRecord,
    first_value: &Value,
    rest: &mut Records,
    parser: &mut MessageParser,
    opts: &Options,
) -> Result<Outcome> {
    let mut messages = vec![
        parser
            .message(first_value)
            .map_err(|m| element_error(first, &m))?,
    ];
    for rec in rest {
        let rec = rec?;
        let value: Value = rec.parse()?;
        messages.push(
            parser
                .message(&value)
                .map_err(|m| element_error(&rec, &m))?,
        );
    }
    let session_id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| ids::content_id(SOURCE, path.to_string_lossy().as_bytes()));
    Ok(build_turns(
        &session_id,
        SOURCE,
        messages,
        opts.first_turn_only,
    ))
}

fn element_error(rec: &RawRecord, message: &str) -> crate::Error {
    rec.bad(
        "wrong shape",
        format!("message in a bare array of messages {message}"),
    )
}

/// Converts one `{"messages": [...]}` record.
fn convert_record(rec: &RawRecord, opts: &Options, dropped: &mut u64) -> Result<Outcome> {
    let value: Value = rec.parse()?;
    let Value::Object(obj) = value else {
        return Err(rec.bad(
            "wrong shape",
            "an OpenAI record must be a JSON object with a `messages` list",
        ));
    };
    let items = match obj.get("messages") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(rec.bad("wrong shape", "`messages` must be a list")),
        None if obj.contains_key("role") => {
            return Err(rec.bad(
                "wrong shape",
                "this record is a single message, not a conversation \
                 (a file of bare messages must be one JSON array of them)",
            ));
        }
        None if obj.contains_key("trajectory") || obj.contains_key("history") => {
            return Err(rec.bad(
                "wrong shape",
                "the record has no `messages` list; it looks like a SWE-agent trajectory: \
                 use `trace convert swe-agent`",
            ));
        }
        None => return Err(rec.bad("wrong shape", "the record has no `messages` list")),
    };
    let mut parser = MessageParser::new(dropped);
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let message = parser
            .message(item)
            .map_err(|m| rec.bad("wrong shape", format!("messages[{i}] {m}")))?;
        messages.push(message);
    }
    let session_id = record_id(&obj).unwrap_or_else(|| ids::content_id(SOURCE, &rec.bytes));
    Ok(build_turns(
        &session_id,
        SOURCE,
        messages,
        opts.first_turn_only,
    ))
}

/// The record's own `id` (a non-empty string or a number), if any.
pub(crate) fn record_id(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// The normalised role of a chat role name (`developer` counts as `system`).
pub(crate) fn role_of(role: &str) -> Option<Speaker> {
    if role.trim().eq_ignore_ascii_case("developer") {
        return Some(Speaker::System);
    }
    speaker(role)
}

/// The role name a chat endpoint takes for a speaker.
pub(crate) fn role_name(who: Speaker) -> &'static str {
    match who {
        Speaker::System => "system",
        Speaker::User => "user",
        Speaker::Assistant | Speaker::ToolCall => "assistant",
        Speaker::ToolResult => "tool",
    }
}

/// Turns the messages of one conversation into normalised [`Message`]s,
/// numbering tool calls that carry no id and pairing tool results with them.
pub(crate) struct MessageParser<'a> {
    /// Tool calls given an id so far in this conversation.
    issued: u32,
    /// Ids of the latest assistant message's calls not yet answered.
    unanswered: VecDeque<String>,
    dropped: &'a mut u64,
}

/// Text and tool calls found in a message's `content`.
#[derive(Default)]
struct Content {
    texts: Vec<String>,
    /// Values of `tool_call` parts: `{"name", "arguments"}` (maybe as a JSON string).
    calls: Vec<Value>,
}

impl<'a> MessageParser<'a> {
    pub(crate) fn new(dropped: &'a mut u64) -> Self {
        MessageParser {
            issued: 0,
            unanswered: VecDeque::new(),
            dropped,
        }
    }

    /// One message; the error says what is wrong with it.
    pub(crate) fn message(&mut self, value: &Value) -> Result<Message, String> {
        let Value::Object(obj) = value else {
            return Err("is not an object".into());
        };
        let who = match obj.get("role") {
            Some(Value::String(role)) => {
                role_of(role).ok_or_else(|| format!("has unknown role {role:?}"))?
            }
            Some(_) => return Err("has a `role` that is not a string".into()),
            None => return Err("has no `role`".into()),
        };
        let content = self.content(obj.get("content"))?;
        let mut message = Message::new(role_name(who), content.texts.join("\n"));
        match who {
            Speaker::Assistant => {
                message.tool_calls = self.assistant_calls(obj, content.calls)?;
            }
            Speaker::ToolCall => {
                // A `function_call` role whose content is the call itself.
                let call = Value::String(std::mem::take(&mut message.content));
                message.tool_calls = self.assistant_calls(obj, vec![call])?;
            }
            Speaker::ToolResult => message.tool_call_id = self.result_id(obj)?,
            Speaker::System | Speaker::User => {
                if !content.calls.is_empty() {
                    return Err("has tool_call parts but is not an assistant message".into());
                }
            }
        }
        Ok(message)
    }

    fn content(&mut self, value: Option<&Value>) -> Result<Content, String> {
        let mut content = Content::default();
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => content.texts.push(s.clone()),
            Some(Value::Array(parts)) => {
                for (i, part) in parts.iter().enumerate() {
                    self.part(part, &mut content)
                        .map_err(|m| format!("has content[{i}] {m}"))?;
                }
            }
            Some(_) => {
                return Err("has a `content` that is neither a string, null nor a list".into());
            }
        }
        Ok(content)
    }

    /// One typed part of a `content` list.
    fn part(&mut self, part: &Value, content: &mut Content) -> Result<(), String> {
        let obj = match part {
            Value::String(s) => {
                content.texts.push(s.clone());
                return Ok(());
            }
            Value::Object(obj) => obj,
            _ => return Err("that is neither an object nor a string".into()),
        };
        let kind = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            None if obj.contains_key("text") => "text",
            _ => return Err("without a string `type`".into()),
        };
        match kind {
            "text" | "input_text" | "output_text" => content.texts.push(part_text(obj)?),
            "reasoning" | "thinking" => {}
            "tool_call" | "function_call" => match obj.get("value") {
                Some(v) => content.calls.push(v.clone()),
                None => return Err("of type tool_call without a `value`".into()),
            },
            "image" | "image_url" | "input_image" | "audio" | "input_audio" | "video"
            | "video_url" | "file" | "input_file" => *self.dropped += 1,
            other => return Err(format!("of unknown type {other:?}")),
        }
        Ok(())
    }

    /// The `tool_calls` JSON of an assistant message: its own `tool_calls`
    /// (or legacy `function_call`), then calls found in its content parts.
    fn assistant_calls(
        &mut self,
        obj: &Map<String, Value>,
        part_calls: Vec<Value>,
    ) -> Result<Option<String>, String> {
        let mut calls: Vec<Value> = match obj.get("tool_calls") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(calls)) => calls.clone(),
            Some(_) => return Err("has `tool_calls` that is not a list".into()),
        };
        if let Some(legacy) = obj.get("function_call").filter(|v| !v.is_null()) {
            calls.push(self.new_call(legacy)?);
        }
        for call in &part_calls {
            calls.push(self.new_call(call)?);
        }
        if calls.is_empty() {
            return Ok(None);
        }
        self.unanswered = calls
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        Ok(Some(Value::Array(calls).to_string()))
    }

    /// An OpenAI tool call with a fresh id from `{"name", "arguments"}`
    /// given as an object or as a JSON string.
    fn new_call(&mut self, call: &Value) -> Result<Value, String> {
        let parsed;
        let call = match call {
            Value::String(s) => {
                parsed = serde_json::from_str::<Value>(s)
                    .map_err(|e| format!("has a tool call that is not JSON: {e}"))?;
                &parsed
            }
            other => other,
        };
        let name = call
            .get("name")
            .and_then(Value::as_str)
            .ok_or("has a tool call without a string `name`")?;
        let arguments = match call.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => "{}".to_string(),
            Some(other) => other.to_string(),
        };
        self.issued += 1;
        Ok(serde_json::json!({
            "id": format!("call_{}", self.issued),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }))
    }

    /// The `tool_call_id` of a tool result: its own, else the next
    /// unanswered call of the assistant message before it.
    fn result_id(&mut self, obj: &Map<String, Value>) -> Result<Option<String>, String> {
        let own = match obj.get("tool_call_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err("has a `tool_call_id` that is not a string".into()),
        };
        match own {
            Some(id) => {
                self.unanswered.retain(|u| *u != id);
                Ok(Some(id))
            }
            None => Ok(self.unanswered.pop_front()),
        }
    }
}

/// The text of a text part, keyed `text` (OpenAI) or `value` (LLaMA-Factory).
fn part_text(obj: &Map<String, Value>) -> Result<String, String> {
    match obj.get("text").or_else(|| obj.get("value")) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => Err("whose text is not a string".into()),
    }
}

/// Groups normalised messages (roles `system`, `user`, `assistant`, `tool`)
/// into the turns of one session.
struct Turns<'a> {
    session_id: &'a str,
    source: &'a str,
    rows: Vec<TraceRow>,
    pending: Vec<Message>,
    /// A user or tool message is waiting for its reply.
    open: bool,
}

impl<'a> Turns<'a> {
    fn push(&mut self, m: Message) {
        let blank = m.content.trim().is_empty();
        match m.role.as_str() {
            "system" if !blank => self.pending.push(m),
            "user" if !blank => {
                self.pending.push(m);
                self.open = true;
            }
            "tool" => {
                self.pending.push(m);
                self.open = true;
            }
            "assistant" if self.open => self.close(Some(m)),
            // A reply with no request before it (the model speaks first, or
            // twice in a row): context for the next turn.
            "assistant" if !blank || m.tool_calls.is_some() => self.pending.push(m),
            _ => {}
        }
    }

    fn has_turn(&self) -> bool {
        !self.rows.is_empty()
    }

    /// Ends the current turn with `reply` as its reference.
    fn close(&mut self, reply: Option<Message>) {
        let turn = self.rows.len() as u32;
        let (reference_output, reference_tool_calls) = match reply {
            Some(m) => ((!m.content.is_empty()).then_some(m.content), m.tool_calls),
            None => (None, None),
        };
        self.rows.push(TraceRow {
            request_id: ids::request_id(self.session_id, turn),
            session_id: self.session_id.to_string(),
            turn,
            messages: std::mem::take(&mut self.pending),
            reference_output,
            reference_tool_calls,
            source: self.source.to_string(),
            ..Default::default()
        });
        self.open = false;
    }
}

/// Turns a conversation's messages into the rows of one session: each user
/// or tool message opens a turn, the assistant message after it is the
/// turn's reference, and a conversation ending on a request gets a last turn
/// with no reference. Skipped when no turn has a request.
pub(crate) fn build_turns(
    session_id: &str,
    source: &str,
    messages: Vec<Message>,
    first_turn_only: bool,
) -> Outcome {
    let mut turns = Turns {
        session_id,
        source,
        rows: Vec::new(),
        pending: Vec::new(),
        open: false,
    };
    for m in messages {
        turns.push(m);
        if first_turn_only && turns.has_turn() {
            break;
        }
    }
    let wants_more = !first_turn_only || !turns.has_turn();
    if turns.open && wants_more {
        turns.close(None);
    }
    if turns.rows.is_empty() {
        return Outcome::Skipped("no user turn".into());
    }
    Outcome::Session(turns.rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;

    fn rec(json: &str) -> RawRecord {
        RawRecord {
            bytes: json.as_bytes().to_vec(),
            location: Location::file("t.jsonl"),
        }
    }

    fn convert(json: &str) -> Result<Outcome> {
        let mut dropped = 0;
        convert_record(&rec(json), &Options::default(), &mut dropped)
    }

    fn session(json: &str) -> Vec<TraceRow> {
        match convert(json).expect("converts") {
            Outcome::Session(rows) => rows,
            Outcome::Skipped(r) => panic!("skipped: {r}"),
        }
    }

    #[test]
    fn parts_keyed_value_with_reasoning_and_tool_call() {
        let rows = session(
            r#"{"messages":[{"content":[{"type":"text","value":"S"}],"role":"system"},
            {"role":"user","content":[{"type":"text","value":"weather?"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","content":[{"type":"reasoning","value":"think"},
              {"type":"tool_call","value":"{\"name\": \"get\", \"arguments\": {\"city\": \"Paris\"}}"}]},
            {"role":"tool","content":[{"type":"text","value":"20"}]},
            {"role":"assistant","content":[{"type":"reasoning","value":"hmm"},{"type":"text","value":"20C"}]}],
            "tools":"[]"}"#,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].messages[0], Message::new("system", "S"));
        assert_eq!(rows[0].messages[1], Message::new("user", "weather?"));
        assert_eq!(rows[0].reference_output, None);
        let calls: Value =
            serde_json::from_str(rows[0].reference_tool_calls.as_deref().expect("calls"))
                .expect("json");
        assert_eq!(calls[0]["id"], "call_1");
        assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert_eq!(rows[1].messages[0].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(rows[1].reference_output.as_deref(), Some("20C"));
    }

    #[test]
    fn native_tool_calls_and_ids_are_kept() {
        let rows = session(
            r#"{"id":"n","messages":[{"role":"developer","content":"D"},{"role":"user","content":"q"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"abc","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"abc","content":"r"},{"role":"user","content":"more"}]}"#,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].messages[0].role, "system");
        assert!(
            rows[0]
                .reference_tool_calls
                .as_deref()
                .expect("calls")
                .contains("\"abc\"")
        );
        assert_eq!(rows[1].messages[0].tool_call_id.as_deref(), Some("abc"));
        assert_eq!(rows[1].messages[1].content, "more");
        assert_eq!(rows[1].reference_output, None);
        assert_eq!(rows[1].request_id, "n#1");
    }

    #[test]
    fn no_user_turn_is_skipped() {
        let o = convert(
            r#"{"messages":[{"role":"system","content":"S"},{"role":"assistant","content":"hi"}]}"#,
        )
        .expect("ok");
        assert!(matches!(o, Outcome::Skipped(r) if r == "no user turn"));
        let o = convert(r#"{"messages":[]}"#).expect("ok");
        assert!(matches!(o, Outcome::Skipped(_)));
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for bad in [
            r#"[1]"#,
            r#"{"conversations":[]}"#,
            r#"{"role":"user","content":"x"}"#,
            r#"{"messages":"x"}"#,
            r#"{"messages":[{"role":"alien","content":"x"}]}"#,
            r#"{"messages":[{"content":"x"}]}"#,
            r#"{"messages":[{"role":"user","content":5}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"hologram"}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"tool_call","value":"{}"}]}]}"#,
            r#"{"messages":[{"role":"assistant","content":[{"type":"tool_call","value":"not json"}]}]}"#,
        ] {
            match convert(bad) {
                Err(crate::Error::BadRecord { kind, .. }) => {
                    assert_eq!(kind, "wrong shape", "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn first_turn_only() {
        let r = rec(
            r#"{"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"r1"},{"role":"user","content":"q2"}]}"#,
        );
        let opts = Options {
            first_turn_only: true,
        };
        match convert_record(&r, &opts, &mut 0).expect("ok") {
            Outcome::Session(rows) => {
                assert_eq!(rows.len(), 1);
                assert_eq!(rows[0].reference_output.as_deref(), Some("r1"));
            }
            other => panic!("{other:?}"),
        }
    }
}
