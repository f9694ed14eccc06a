//! The trace as the replayer sees it: sessions of turns, and the request
//! body of each turn (history included) built from them.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use traces::{Message, TraceReader, TraceRow};

use super::client::Api;

/// One conversation: its turns in order.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub turns: Vec<TraceRow>,
}

impl Session {
    pub fn first_arrival_ms(&self) -> Option<f64> {
        self.turns.first().and_then(|t| t.arrival_ms)
    }
}

/// Reads a trace and groups its rows into sessions, in order of first appearance.
pub fn load_sessions(path: &Path) -> anyhow::Result<(Vec<Session>, traces::TraceMetadata)> {
    let reader = TraceReader::open(path)?;
    let meta = reader.metadata().clone();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut sessions: Vec<Session> = Vec::new();
    for batch in reader.batches()? {
        for row in batch.with_context(|| format!("reading {}", path.display()))? {
            let i = *index.entry(row.session_id.clone()).or_insert_with(|| {
                sessions.push(Session {
                    id: row.session_id.clone(),
                    turns: Vec::new(),
                });
                sessions.len() - 1
            });
            sessions[i].turns.push(row);
        }
    }
    for s in &mut sessions {
        s.turns.sort_by_key(|t| t.turn);
    }
    Ok((sessions, meta))
}

/// What a request asks of the model, besides its messages.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// The models sent (`--model A,B`: each session names one of them).
    pub models: Vec<String>,
    pub api: Api,
    /// Overrides every row's output length.
    pub max_tokens: Option<u32>,
    /// Used when a row has no output length of its own.
    pub default_max_tokens: u32,
    pub ignore_eos: bool,
    pub temperature: Option<f64>,
    pub extra_body: Option<Map<String, Value>>,
    pub include_usage: bool,
    /// Ask for a streamed reply.
    pub stream: bool,
    /// Tokens per `hash_ids` block (`trace.block_size`).
    pub block_size: u32,
}

/// How previous turns appear in a later turn's prompt.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum History {
    /// The trace's recorded replies.
    Recorded,
    /// What the server actually answered.
    Live,
}

/// The context a session has built so far.
#[derive(Debug, Default, Clone)]
pub struct Conversation {
    pub messages: Vec<Message>,
}

impl Conversation {
    /// Applies a turn: compaction, then its messages (text synthesised for token-only rows).
    pub fn begin_turn(&mut self, row: &TraceRow, block_size: u32) {
        if row.reset_context {
            self.messages.clear();
        }
        if row.messages.is_empty() {
            if let Some(n) = row.input_tokens {
                self.messages
                    .push(Message::new("user", synthetic_text(row, n, block_size)));
            }
        } else {
            self.messages.extend(row.messages.iter().cloned());
        }
    }

    /// Records the turn's reply as history. A live reply keeps the
    /// recorded tool calls: the trace's next messages are the results of
    /// those calls, and a history without them would answer calls nobody
    /// made (which strict servers reject).
    pub fn end_turn(&mut self, row: &TraceRow, history: History, live_reply: &str) {
        if row.messages.is_empty() {
            // Token-only rows carry their whole prompt: no history to keep.
            self.messages.clear();
            return;
        }
        let reply = match history {
            History::Recorded => row.reference_output.clone().unwrap_or_default(),
            History::Live => live_reply.to_string(),
        };
        let mut m = Message::new("assistant", reply);
        m.tool_calls = row.reference_tool_calls.clone();
        self.messages.push(m);
    }
}

/// The output length a row asks for.
pub fn max_tokens_for(row: &TraceRow, opts: &RequestOptions) -> u32 {
    opts.max_tokens
        .or(row.output_tokens)
        .or(row.reference_output_tokens)
        .or_else(|| {
            row.reference_output
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| (s.chars().count() as u32).div_ceil(4).max(1))
        })
        .unwrap_or(opts.default_max_tokens)
        .max(1)
}

fn message_json(m: &Message) -> Value {
    let mut o = Map::new();
    o.insert("role".into(), Value::String(m.role.clone()));
    o.insert("content".into(), Value::String(m.content.clone()));
    if let Some(calls) = &m.tool_calls
        && let Ok(v) = serde_json::from_str::<Value>(calls)
    {
        o.insert("tool_calls".into(), v);
    }
    if let Some(id) = &m.tool_call_id {
        o.insert("tool_call_id".into(), Value::String(id.clone()));
    }
    Value::Object(o)
}

/// The JSON body of a request with `messages` as its prompt, for `model`;
/// `tag` (`--isolate-levels`) goes before the
/// prompt's first text.
pub fn request_body(
    messages: &[Message],
    max_tokens: u32,
    opts: &RequestOptions,
    model: &str,
    tag: Option<&str>,
) -> Bytes {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.to_string()));
    match opts.api {
        Api::Chat => {
            let mut list: Vec<Value> = messages.iter().map(message_json).collect();
            if let (Some(tag), Some(Value::String(first))) =
                (tag, list.first_mut().and_then(|m| m.get_mut("content")))
            {
                first.insert_str(0, tag);
            }
            body.insert("messages".into(), Value::Array(list));
            body.insert("max_tokens".into(), json!(max_tokens));
        }
        Api::Completions => {
            let prompt: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
            let prompt = format!("{}{}", tag.unwrap_or(""), prompt.join("\n\n"));
            body.insert("prompt".into(), Value::String(prompt));
            body.insert("max_tokens".into(), json!(max_tokens));
        }
    }
    body.insert("stream".into(), Value::Bool(opts.stream));
    // A whole reply carries its usage unasked.
    if opts.include_usage && opts.stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if opts.ignore_eos {
        body.insert("ignore_eos".into(), Value::Bool(true));
        body.insert("min_tokens".into(), json!(max_tokens));
    }
    if let Some(t) = opts.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(extra) = &opts.extra_body {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    Bytes::from(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
}

/// Words that most BPE tokenizers encode as one token each with their
/// leading space, so N words come close to N tokens. Approximate text:
/// `trace tokenize --materialize` makes exact text instead.
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "time", "people", "year",
    "new", "work", "day", "way", "data", "model", "system", "number", "part", "place", "case",
    "point", "world", "life", "hand", "state", "water", "house", "light", "line", "group", "city",
];

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn push_words(out: &mut String, seed: u64, count: u32) {
    let mut state = seed;
    for _ in 0..count {
        state = splitmix(state);
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
    }
}

/// Approximate text of `tokens` tokens for a token-only row: one block of
/// words per hash id (equal ids give identical text, so prefix sharing is
/// kept), the rest seeded by the request id.
pub fn synthetic_text(row: &TraceRow, tokens: u32, block_size: u32) -> String {
    let mut out = String::with_capacity(tokens as usize * 5);
    let mut left = tokens;
    let block = block_size.max(1);
    if let Some(ids) = &row.hash_ids {
        for id in ids {
            if left == 0 {
                break;
            }
            let n = left.min(block);
            push_words(&mut out, splitmix(*id ^ 0xB10C), n);
            left -= n;
        }
    }
    if left > 0 {
        let seed = row
            .request_id
            .bytes()
            .fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
            });
        push_words(&mut out, seed, left);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, hash: Option<Vec<u64>>, n: u32) -> TraceRow {
        TraceRow {
            request_id: id.into(),
            session_id: id.into(),
            input_tokens: Some(n),
            hash_ids: hash,
            ..Default::default()
        }
    }

    #[test]
    fn equal_hash_ids_give_identical_prefixes() {
        let a = synthetic_text(&row("a", Some(vec![1, 2, 3]), 40), 40, 16);
        let b = synthetic_text(&row("b", Some(vec![1, 2, 9]), 40), 40, 16);
        assert_eq!(a.split(' ').count(), 40);
        let wa: Vec<_> = a.split(' ').collect();
        let wb: Vec<_> = b.split(' ').collect();
        assert_eq!(wa[..32], wb[..32]);
        assert_ne!(wa[32..], wb[32..]);
    }

    #[test]
    fn a_tag_starts_the_prompt() {
        let mut opts = RequestOptions {
            models: vec!["m".into()],
            api: Api::Chat,
            max_tokens: None,
            default_max_tokens: 8,
            ignore_eos: false,
            temperature: None,
            extra_body: None,
            include_usage: false,
            stream: true,
            block_size: 16,
        };
        let msgs = [Message::new("system", "sys"), Message::new("user", "q")];
        let body = |opts: &RequestOptions, tag| -> Value {
            serde_json::from_slice(&request_body(&msgs, 4, opts, "m", tag)).expect("JSON")
        };
        let b = body(&opts, Some("[0badcafe] "));
        assert_eq!(b["messages"][0]["content"], "[0badcafe] sys");
        assert_eq!(b["messages"][1]["content"], "q");
        assert_eq!(body(&opts, None)["messages"][0]["content"], "sys");
        opts.api = Api::Completions;
        assert_eq!(body(&opts, Some("[1] "))["prompt"], "[1] sys\n\nq");
    }

    #[test]
    fn history_recorded_and_reset() {
        let opts_block = 16;
        let mut t0 = TraceRow {
            messages: vec![Message::new("system", "s"), Message::new("user", "q0")],
            reference_output: Some("r0".into()),
            ..Default::default()
        };
        let mut ctx = Conversation::default();
        ctx.begin_turn(&t0, opts_block);
        ctx.end_turn(&t0, History::Recorded, "live");
        let t1 = TraceRow {
            turn: 1,
            messages: vec![Message::new("user", "q1")],
            ..Default::default()
        };
        ctx.begin_turn(&t1, opts_block);
        let roles: Vec<_> = ctx.messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(roles, vec!["s", "q0", "r0", "q1"]);
        ctx.end_turn(&t1, History::Live, "live1");
        assert_eq!(
            ctx.messages.last().map(|m| m.content.as_str()),
            Some("live1")
        );
        // A live reply to a turn that recorded tool calls keeps those calls,
        // which the trace's tool results answer.
        let calls = r#"[{"id":"c1","type":"function","function":{"name":"ls","arguments":"{}"}}]"#;
        let t2 = TraceRow {
            turn: 2,
            messages: vec![Message::new("user", "q2")],
            reference_output: Some(String::new()),
            reference_tool_calls: Some(calls.into()),
            ..Default::default()
        };
        ctx.begin_turn(&t2, opts_block);
        ctx.end_turn(&t2, History::Live, "live2");
        let last = ctx.messages.last().expect("reply");
        assert_eq!(
            (last.content.as_str(), last.tool_calls.as_deref()),
            ("live2", Some(calls))
        );
        t0.reset_context = true;
        ctx.begin_turn(&t0, opts_block);
        assert_eq!(ctx.messages.len(), 2);
    }
}
