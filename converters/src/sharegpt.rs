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

use crate::input::{ParallelJsonSource, ParallelOptions, RawRecord, expand_inputs};
use crate::{Outcome, Result, SessionSource, ids};

/// Options of `trace convert sharegpt`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {
    /// Keep only each conversation's first turn (the single-turn view of
    /// `vllm bench serve` and most other tools).
    #[arg(long)]
    pub first_turn_only: bool,
}

pub fn open(inputs: &[PathBuf], opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_inputs(inputs, &["json", "jsonl"])?;
    let opts = opts.clone();
    let source = ParallelJsonSource::new(files, &ParallelOptions::default(), move |rec| {
        convert_record(rec, &opts, "sharegpt")
    })?;
    Ok(Box::new(source))
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
    use Speaker::*;
    // Compared without case and without allocating: this runs once per
    // message.
    const NAMES: [(&str, Speaker); 17] = [
        ("human", User),
        ("gpt", Assistant),
        ("user", User),
        ("assistant", Assistant),
        ("system", System),
        ("prompter", User),
        ("chatgpt", Assistant),
        ("bard", Assistant),
        ("bing", Assistant),
        ("model", Assistant),
        ("bot", Assistant),
        ("function_call", ToolCall),
        ("tool_call", ToolCall),
        ("observation", ToolResult),
        ("tool", ToolResult),
        ("function", ToolResult),
        ("tool_response", ToolResult),
    ];
    let role = role.trim();
    NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(role))
        .map(|&(_, who)| who)
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub(crate) fn convert_record(rec: &RawRecord, opts: &Options, source: &str) -> Result<Outcome> {
    let parsed =
        match scanned::parse(&rec.bytes, source).or_else(|| fast::parse(&rec.bytes, source)) {
            Some(fast) => fast,
            None => parse_general(rec, source)?,
        };
    let Some((session_id, items)) = parsed else {
        return Ok(Outcome::Skipped("no conversations key".into()));
    };
    Ok(build_session(
        &session_id,
        source,
        items,
        opts.first_turn_only,
    ))
}

/// A record's session id and its (speaker, text) items, or `None` when it
/// has no conversation.
type Parsed = Option<(String, Vec<(Speaker, String)>)>;

/// Parses any record through `serde_json::Value`, reporting what is wrong
/// with it. [`fast::parse`] handles the common shapes without this.
fn parse_general(rec: &RawRecord, source: &str) -> Result<Parsed> {
    let value: Value = rec.parse()?;
    let Value::Object(obj) = value else {
        return Err(rec.bad("wrong shape", "a ShareGPT record must be a JSON object"));
    };
    let items = match obj.get("conversations").or_else(|| obj.get("conversation")) {
        None | Some(Value::Null) => return Ok(None),
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
    Ok(Some((session_id, parsed)))
}

/// A key of a record that may be absent, `null`, or hold a value (both
/// fast paths tell the three apart, as the general path does).
#[derive(Default)]
enum Field<T> {
    #[default]
    Absent,
    Null,
    Present(T),
}

impl<T> Field<T> {
    fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Field::Null,
            Some(v) => Field::Present(v),
        })
    }
}

/// The fastest path, for records of exactly the usual shape: `id` (a
/// string or null), `conversations` / `conversation` (an array or null) of
/// `{"from" | "role", "value" | "content"}` objects whose values are
/// strings or null, and no other keys. Read with [`Scan`]; anything else
/// (another key, a number, an unknown role, invalid JSON) gives `None` and
/// the record goes on to [`fast::parse`].
mod scanned {
    use std::borrow::Cow;

    use super::{Field, Parsed, Speaker, speaker};
    use crate::ids;
    use crate::input::Scan;

    /// Reads the comma-separated members of an object or array up to
    /// `close`, the opening bracket already read.
    fn members<'a>(
        s: &mut Scan<'a>,
        close: u8,
        mut member: impl FnMut(&mut Scan<'a>) -> Option<()>,
    ) -> Option<()> {
        if s.eat(close) {
            return Some(());
        }
        loop {
            member(s)?;
            if s.eat(b',') {
                continue;
            }
            return s.eat(close).then_some(());
        }
    }

    /// A string or `null` (as `None`).
    fn nullable<'a>(s: &mut Scan<'a>) -> Option<Option<Cow<'a, str>>> {
        if s.null() {
            return Some(None);
        }
        s.string().map(Some)
    }

    fn item(s: &mut Scan<'_>) -> Option<(Speaker, String)> {
        if !s.eat(b'{') {
            return None;
        }
        let mut from = None;
        let mut value = None;
        members(s, b'}', |s| {
            let key = s.string()?;
            if !s.eat(b':') {
                return None;
            }
            let slot = match &*key {
                "from" | "role" => &mut from,
                "value" | "content" => &mut value,
                _ => return None,
            };
            if slot.is_some() {
                return None; // a duplicate key
            }
            *slot = Some(nullable(s)?);
            Some(())
        })?;
        let who = speaker(from.flatten().as_deref().unwrap_or(""))?;
        let text = value.flatten().map_or_else(String::new, Cow::into_owned);
        Some((who, text))
    }

    fn items(s: &mut Scan<'_>) -> Option<Field<Vec<(Speaker, String)>>> {
        if s.null() {
            return Some(Field::Null);
        }
        if !s.eat(b'[') {
            return None;
        }
        let mut out = Vec::new();
        members(s, b']', |s| {
            out.push(item(s)?);
            Some(())
        })?;
        Some(Field::Present(out))
    }

    /// The record's parse, or `None` to hand it to the next path.
    pub(super) fn parse(bytes: &[u8], source: &str) -> Option<Parsed> {
        let mut s = Scan::new(bytes)?;
        if !s.eat(b'{') {
            return None;
        }
        let mut id = Field::Absent;
        let mut conversations = Field::Absent;
        let mut conversation = Field::Absent;
        members(&mut s, b'}', |s| {
            let key = s.string()?;
            if !s.eat(b':') {
                return None;
            }
            match &*key {
                "id" if id.is_absent() => {
                    id = match nullable(s)? {
                        None => Field::Null,
                        Some(v) => Field::Present(v),
                    }
                }
                "conversations" if conversations.is_absent() => conversations = items(s)?,
                "conversation" if conversation.is_absent() => conversation = items(s)?,
                _ => return None,
            }
            Some(())
        })?;
        if !s.at_end() {
            return None;
        }
        let items = match (conversations, conversation) {
            (Field::Present(items), _) | (Field::Absent, Field::Present(items)) => items,
            _ => return Some(None),
        };
        let session_id = match id {
            Field::Present(s) if !s.is_empty() => s.into_owned(),
            _ => ids::content_id(source, bytes),
        };
        Some(Some((session_id, items)))
    }
}

/// The fast path: records parsed straight into borrowed structs, with no
/// `serde_json::Value` tree and no copy of a string that has no escapes.
///
/// It accepts only records that [`parse_general`] would accept and turns
/// them into the same result; anything else (not an object, a duplicate
/// key, an unknown role, an odd id, a wrong type) makes it give up with
/// `None`, and the general path then parses the record and says what is
/// wrong with it.
mod fast {
    use std::borrow::Cow;
    use std::fmt;

    use serde::Deserialize;
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    use super::{Field, Parsed, speaker};
    use crate::ids;

    #[derive(Deserialize)]
    struct Record<'a> {
        #[serde(borrow, default)]
        id: Option<Id<'a>>,
        #[serde(borrow, default)]
        conversations: Field<Vec<Item<'a>>>,
        #[serde(borrow, default)]
        conversation: Field<Vec<Item<'a>>>,
    }

    #[derive(Deserialize)]
    struct Item<'a> {
        #[serde(alias = "role", borrow)]
        from: Option<Str<'a>>,
        #[serde(alias = "content", borrow)]
        value: Option<Text<'a>>,
    }

    /// A JSON string, borrowed from the input when it has no escapes.
    struct Str<'a>(Cow<'a, str>);

    impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(StrVisitor).map(Str)
        }
    }

    struct StrVisitor;

    impl<'de> Visitor<'de> for StrVisitor {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }

    /// A message's text: a string as it is, any other value as compact JSON
    /// (what the general path's `Value::to_string` gives).
    struct Text<'a>(Cow<'a, str>);

    impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(TextVisitor).map(Text)
        }
    }

    struct TextVisitor;

    fn json_text<'a, E>(v: Value) -> Result<Cow<'a, str>, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    impl<'de> Visitor<'de> for TextVisitor {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            json_text(Value::from(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            json_text(Value::from(v))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            json_text(Value::from(v))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            json_text(Value::from(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            json_text(Value::deserialize(de::value::SeqAccessDeserializer::new(
                seq,
            ))?)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            json_text(Value::deserialize(de::value::MapAccessDeserializer::new(
                map,
            ))?)
        }
    }

    /// A record id: a string or a number (anything else is left to the
    /// general path).
    enum Id<'a> {
        Str(Cow<'a, str>),
        Number(String),
    }

    impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(IdVisitor)
        }
    }

    struct IdVisitor;

    impl<'de> Visitor<'de> for IdVisitor {
        type Value = Id<'de>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or number id")
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Id::Str(Cow::Borrowed(v)))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Id::Str(Cow::Owned(v.to_owned())))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Id::Number(Value::from(v).to_string()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Id::Number(Value::from(v).to_string()))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Id::Number(Value::from(v).to_string()))
        }
    }

    /// The record's parse, or `None` to hand it to the general path.
    pub(super) fn parse(bytes: &[u8], source: &str) -> Option<Parsed> {
        // A derived struct would also accept a JSON array; leave those
        // (and anything else that is not an object) to the general path.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        let record: Record = serde_json::from_slice(bytes).ok()?;
        let items = match (record.conversations, record.conversation) {
            (Field::Present(items), _) | (Field::Absent, Field::Present(items)) => items,
            _ => return Some(None),
        };
        let session_id = match record.id {
            Some(Id::Str(s)) if !s.is_empty() => s.into_owned(),
            Some(Id::Number(n)) => n,
            _ => ids::content_id(source, bytes),
        };
        let mut parsed = Vec::with_capacity(items.len());
        for item in items {
            let who = speaker(item.from.as_ref().map_or("", |s| &s.0))?;
            let text = item.value.map_or_else(String::new, |t| t.0.into_owned());
            parsed.push((who, text));
        }
        Some(Some((session_id, parsed)))
    }
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
    fn invalid_utf8_is_an_error_at_the_record() {
        // The scan path refuses it; the general path must name it.
        let bad = RawRecord {
            bytes: b"{\"conversations\":[{\"from\":\"human\",\"value\":\"\xff\"}]}".to_vec(),
            location: Location::file("t.json"),
        };
        let err = convert_record(&bad, &Options::default(), "sharegpt")
            .expect_err("invalid UTF-8 is an error");
        let text = err.to_string();
        assert!(
            text.contains("t.json") && text.contains("invalid JSON"),
            "{text}"
        );
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

    /// Both parse paths on one record: the fast one must either give up or
    /// agree with the general one.
    fn paths_agree(json: &str) -> bool {
        let r = rec(json);
        let general = parse_general(&r, "sharegpt");
        match fast::parse(&r.bytes, "sharegpt") {
            None => false,
            Some(fast) => {
                assert_eq!(Some(fast), general.ok(), "paths disagree on {json}");
                true
            }
        }
    }

    /// The scanning path on one record: it must either give up or agree
    /// with the general one.
    fn scan_agrees(json: &str) -> bool {
        let r = rec(json);
        match scanned::parse(&r.bytes, "sharegpt") {
            None => false,
            Some(scanned) => {
                let general = parse_general(&r, "sharegpt").ok();
                assert_eq!(Some(scanned), general, "scan disagrees on {json}");
                true
            }
        }
    }

    #[test]
    fn scan_path_matches_general_path() {
        for json in [
            r#"{"id":"a","conversations":[{"from":"human","value":"caf\u00e9 \"q\"\n\ud83d\ude00 \/\b\f\r\t\\"},{"from":"gpt","value":"r"}]}"#,
            r#"{"id":null,"conversation":[{"role":"user","content":"q"},{"role":"assistant","content":null}]}"#,
            r#"{"id":"","conversations":[{"from":" Human ","value":"q"},{"from":"gpt"},{"value":"x","from":"function_call"}]}"#,
            r#"{"conversations":null,"conversation":[{"from":"human","value":"q"}]}"#,
            r#"{"conversations":[{"from":"human","value":"q"}],"conversation":null}"#,
            r#"{"id":"x"}"#,
            r#"{}"#,
            r#"{"id":"e\u0301","conversations":[]}"#,
            r#"{"i\u0064":"esc key","conversations":[{"from":"human"}]}"#,
            "\n {\r\n \"id\" : \"ws\" ,\t\"conversations\" : [ { \"from\" : \"human\" , \"value\" : \"raw 数据 🚀\" } ] } \n",
        ] {
            assert!(scan_agrees(json), "the scan path gave up on {json}");
        }
        // Shapes the scan leaves to serde (numbers, other keys, non-string
        // values), and what the scan must refuse outright.
        for json in [
            r#"{"id":7,"conversations":[]}"#,
            r#"{"id":"a","other":1,"conversations":[]}"#,
            r#"{"conversations":[{"from":"human","value":12}]}"#,
            r#"{"conversations":[{"from":"human","value":"q","extra":1}]}"#,
            r#"{"conversations":[{"from":"human","value":"q"},]}"#,
            r#"{"conversations":[{"from":"human","value":"q"}],}"#,
            r#"{"conversations":[{"from":"human" "value":"q"}]}"#,
            r#"{"conversations":[{"from":"human","value":"raw	tab"}]}"#,
            r#"{"conversations":[{"from":"human","value":"\ud800"}]}"#,
            r#"{"conversations":[{"from":"human","value":"q"}]"#,
            r#"{"conversations":[{"from":"human","value":"q"}]}}"#,
        ] {
            assert!(!scan_agrees(json), "the scan path took {json}");
        }
    }

    #[test]
    fn fast_path_matches_general_path() {
        for json in [
            r#"{"id":"a","conversations":[{"from":"human","value":"caf\u00e9 \"q\"\n\ud83d\ude00"},{"from":"gpt","value":"r"}]}"#,
            r#"{"id":7,"conversation":[{"role":"user","content":"q"},{"role":"assistant","content":null}]}"#,
            r#"{"id":-2.5e3,"conversations":[{"from":"human","value":{"b":[1,2.0,true],"a":"x"}},{"from":"gpt","value":[1,"\t"]},{"from":"human","value":12}]}"#,
            r#"{"id":"","other":{"x":[1,{}]},"conversations":[{"from":" Human ","value":"q","extra":1},{"from":"gpt"}]}"#,
            r#"{"conversations":null,"conversation":[{"from":"human","value":"q"}]}"#,
            r#"{"id":"x"}"#,
            r#"{"id":"e\u0301","conversations":[]}"#,
            r#"  {"conversations":[{"from":"human","value":false}]}"#,
        ] {
            assert!(paths_agree(json), "the fast path gave up on {json}");
        }
    }

    #[test]
    fn fast_path_leaves_odd_records_to_the_general_path() {
        for json in [
            r#"["a", [{"from":"human","value":"q"}]]"#,
            r#"{"id":"a","id":"b","conversations":[]}"#,
            r#"{"id":true,"conversations":[{"from":"human","value":"q"}]}"#,
            r#"{"conversations":[{"from":"alien","value":"q"}]}"#,
            r#"{"conversations":[{"from":"human","role":"user","value":"q"}]}"#,
            r#"{"conversations":[{"from":3,"value":"q"}]}"#,
            r#"{"conversations":"x"}"#,
            r#"{"conversations":[{"from":"human","value":"q"}],"conversation":7}"#,
            r#"{"conversations":[{"from":"human","value":"q"}]} x"#,
        ] {
            assert!(!paths_agree(json), "the fast path took {json}");
            assert!(!scan_agrees(json), "the scan path took {json}");
        }
    }

    #[test]
    fn fast_path_matches_general_path_on_real_samples() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/sharegpt");
        let mut checked = 0;
        let mut scanned = 0;
        for name in [
            "fastchat_dummy_conversation.json",
            "axolotl_conversation.json",
            "axolotl_conversation.missingturns.json",
            "llamafactory_glaive_toolcall_en_demo.json",
            "llamafactory_glaive_toolcall_zh_demo.json",
        ] {
            let path = dir.join(name);
            let reader = crate::input::open(&path).expect("sample opens");
            for r in crate::input::JsonRecords::new(&path, reader) {
                let r = r.expect("record");
                let fast = fast::parse(&r.bytes, "sharegpt").expect("fast path takes real records");
                let general = parse_general(&r, "sharegpt").ok();
                if let Some(scan) = scanned::parse(&r.bytes, "sharegpt") {
                    assert_eq!(Some(&scan), general.as_ref(), "{name}: scan path");
                    scanned += 1;
                }
                assert_eq!(Some(fast), general, "{name}");
                checked += 1;
            }
        }
        assert_eq!(checked, 500 + 1 + 1 + 300 + 300);
        // Every record but the glaive ones, which carry a `tools` key that
        // the scan leaves to serde.
        assert_eq!(scanned, 500 + 1 + 1);
    }
}
