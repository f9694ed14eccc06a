//! The OpenAI API surface: request bodies, validation, and the JSON and SSE
//! text of responses (written by hand on the hot path, no serialisation).

use serde::Deserialize;
use serde_json::Value;

use super::tokens::{Prompt, word};

/// Which completion endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<RawMessage>>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<RawStreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    min_tokens: Option<u32>,
    #[serde(default)]
    ignore_eos: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    tool_calls: Option<Value>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawStreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// A validated completion request.
#[derive(Debug)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: Prompt,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    pub min_tokens: u32,
    pub ignore_eos: bool,
}

/// Parses and checks a request body; the error is the message of a 400.
pub fn parse_request(endpoint: Endpoint, body: &[u8]) -> Result<CompletionRequest, String> {
    let raw: RawRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    let prompt = match endpoint {
        Endpoint::Chat => chat_prompt(raw.messages)?,
        Endpoint::Completions => completion_prompt(raw.prompt)?,
    };
    let max_tokens = raw.max_completion_tokens.or(raw.max_tokens);
    if max_tokens == Some(0) {
        return Err("max_tokens must be at least 1, got 0".into());
    }
    let min_tokens = raw.min_tokens.unwrap_or(0);
    if let Some(max) = max_tokens
        && min_tokens > max
    {
        return Err(format!(
            "min_tokens ({min_tokens}) must be less than or equal to max_tokens ({max})"
        ));
    }
    Ok(CompletionRequest {
        model: raw.model,
        prompt,
        stream: raw.stream.unwrap_or(false),
        include_usage: raw
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_tokens,
        min_tokens,
        ignore_eos: raw.ignore_eos.unwrap_or(false),
    })
}

fn chat_prompt(messages: Option<Vec<RawMessage>>) -> Result<Prompt, String> {
    let Some(messages) = messages else {
        return Err("missing required field `messages`".into());
    };
    if messages.is_empty() {
        return Err("`messages` must not be empty".into());
    }
    let mut text = String::new();
    // Tool call ids of the assistant messages so far: a tool result must
    // answer one of them, as strict servers (OpenAI's API) require.
    let mut calls: Vec<&str> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        if let Some(Value::Array(list)) = &m.tool_calls {
            calls.extend(list.iter().filter_map(|c| c.get("id")?.as_str()));
        }
        if m.role.as_deref() == Some("tool")
            && let Some(id) = &m.tool_call_id
            && !calls.contains(&id.as_str())
        {
            return Err(format!(
                "messages[{i}]: a `tool` message must answer a tool call of an earlier \
                 assistant message; no call has the id {id:?}"
            ));
        }
        match &m.content {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => text.push_str(s),
            Some(Value::Array(parts)) => {
                for part in parts {
                    match part.get("text") {
                        Some(Value::String(s)) => text.push_str(s),
                        Some(_) => {
                            return Err(format!("messages[{i}]: a part's `text` is not a string"));
                        }
                        None => {}
                    }
                }
            }
            Some(_) => {
                return Err(format!(
                    "messages[{i}].content must be a string or an array of parts"
                ));
            }
        }
    }
    Ok(Prompt::Text(text))
}

fn token_ids(values: &[Value]) -> Option<Vec<u32>> {
    values
        .iter()
        .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect()
}

fn completion_prompt(prompt: Option<Value>) -> Result<Prompt, String> {
    match prompt {
        None | Some(Value::Null) => Err("missing required field `prompt`".into()),
        Some(Value::String(s)) => Ok(Prompt::Text(s)),
        Some(Value::Array(items)) => {
            if let Some(ids) = token_ids(&items)
                && !items.is_empty()
            {
                return Ok(Prompt::TokenIds(ids));
            }
            match items.as_slice() {
                [Value::String(s)] => Ok(Prompt::Text(s.clone())),
                [Value::Array(inner)] => token_ids(inner)
                    .map(Prompt::TokenIds)
                    .ok_or_else(|| "`prompt` token ids must be integers".to_string()),
                [] => Err("`prompt` must not be empty".into()),
                many => Err(format!(
                    "`prompt` holds {} prompts; the mock takes one per request",
                    many.len()
                )),
            }
        }
        Some(_) => Err(
            "`prompt` must be a string, an array of token ids, or one of those in an array".into(),
        ),
    }
}

/// An OpenAI-style error body.
pub fn error_json(message: &str, kind: &str, code: &str) -> String {
    serde_json::json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    })
    .to_string()
}

/// `finish_reason` of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Length,
    Stop,
}

impl Finish {
    pub fn name(self) -> &'static str {
        match self {
            Finish::Length => "length",
            Finish::Stop => "stop",
        }
    }
}

/// Token counts reported in `usage`.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub prompt: u32,
    pub completion: u32,
    pub cached: u32,
}

impl Usage {
    fn json(self) -> String {
        format!(
            r#"{{"prompt_tokens":{},"total_tokens":{},"completion_tokens":{},"prompt_tokens_details":{{"cached_tokens":{}}}}}"#,
            self.prompt,
            self.prompt as u64 + self.completion as u64,
            self.completion,
            self.cached
        )
    }
}

/// Writes the SSE events and JSON bodies of one response.
#[derive(Debug)]
pub struct Writer {
    endpoint: Endpoint,
    /// `{"id":..,"object":..,"created":..,"model":..,` shared by every chunk.
    head: String,
    id: String,
    created: u64,
    model_json: String,
}

impl Writer {
    pub fn new(endpoint: Endpoint, id: String, created: u64, model: &str) -> Writer {
        let model_json = serde_json::Value::from(model).to_string();
        let object = match endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completions => "text_completion",
        };
        let head = format!(
            r#"{{"id":"{id}","object":"{object}","created":{created},"model":{model_json},"#
        );
        Writer {
            endpoint,
            head,
            id,
            created,
            model_json,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event of reply token `i` (the first chat chunk also carries the role).
    #[cfg(test)]
    pub fn token(&self, out: &mut Vec<u8>, i: u32) {
        self.tokens(out, i..i + 1);
    }

    /// One event carrying reply tokens `range` (the first chat chunk also
    /// carries the role).
    pub fn tokens(&self, out: &mut Vec<u8>, range: std::ops::Range<u32>) {
        let i = range.start;
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.head.as_bytes());
        match self.endpoint {
            Endpoint::Chat => {
                let role = if i == 0 { r#""role":"assistant","# } else { "" };
                out.extend_from_slice(br#""choices":[{"index":0,"delta":{"#);
                out.extend_from_slice(role.as_bytes());
                out.extend_from_slice(br#""content":""#);
            }
            Endpoint::Completions => out.extend_from_slice(br#""choices":[{"index":0,"text":""#),
        }
        for t in range {
            out.extend_from_slice(word(t).as_bytes());
        }
        match self.endpoint {
            Endpoint::Chat => out.extend_from_slice(b"\"}"),
            Endpoint::Completions => out.extend_from_slice(b"\""),
        }
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }

    /// The last content-less event carrying `finish_reason`.
    pub fn finish(&self, out: &mut Vec<u8>, finish: Finish) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.head.as_bytes());
        match self.endpoint {
            Endpoint::Chat => out.extend_from_slice(br#""choices":[{"index":0,"delta":{}"#),
            Endpoint::Completions => out.extend_from_slice(br#""choices":[{"index":0,"text":"""#),
        }
        out.extend_from_slice(br#","logprobs":null,"finish_reason":""#);
        out.extend_from_slice(finish.name().as_bytes());
        out.extend_from_slice(b"\"}]}\n\n");
    }

    /// The usage event (`stream_options.include_usage`).
    pub fn usage(&self, out: &mut Vec<u8>, usage: Usage) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(br#""choices":[],"usage":"#);
        out.extend_from_slice(usage.json().as_bytes());
        out.extend_from_slice(b"}\n\n");
    }

    pub fn done(out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// A line that claims to be an event but is not JSON.
    pub fn malformed(out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\"\n\n");
    }

    /// The whole body of a non-streaming response of `tokens` tokens.
    pub fn full(&self, tokens: u32, finish: Finish, usage: Option<Usage>) -> String {
        let mut text = String::new();
        for i in 0..tokens {
            text.push_str(word(i));
        }
        let (object, choice) = match self.endpoint {
            Endpoint::Chat => (
                "chat.completion",
                format!(
                    r#"{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"logprobs":null,"finish_reason":"{}"}}"#,
                    finish.name()
                ),
            ),
            Endpoint::Completions => (
                "text_completion",
                format!(
                    r#"{{"index":0,"text":"{text}","logprobs":null,"finish_reason":"{}"}}"#,
                    finish.name()
                ),
            ),
        };
        let usage = match usage {
            Some(u) => format!(r#","usage":{}"#, u.json()),
            None => String::new(),
        };
        format!(
            r#"{{"id":"{}","object":"{object}","created":{},"model":{},"choices":[{choice}]{usage}}}"#,
            self.id, self.created, self.model_json
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(endpoint: Endpoint, body: &str) -> Result<CompletionRequest, String> {
        parse_request(endpoint, body.as_bytes())
    }

    #[test]
    fn validates_requests() {
        assert!(parse(Endpoint::Chat, "{").is_err());
        assert!(parse(Endpoint::Chat, r#"{"model":"m"}"#).is_err());
        assert!(parse(Endpoint::Chat, r#"{"messages":[]}"#).is_err());
        // A tool result must answer an earlier call (by its id), when it names one.
        let call = r#"{"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"ls","arguments":"{}"}}]}"#;
        let answer = |id: &str| format!(r#"{{"role":"tool","tool_call_id":"{id}","content":"a"}}"#);
        let ok = format!(r#"{{"messages":[{call},{}]}}"#, answer("c1"));
        assert!(parse(Endpoint::Chat, &ok).is_ok());
        let unanswered = format!(r#"{{"messages":[{call},{}]}}"#, answer("c2"));
        let e = parse(Endpoint::Chat, &unanswered).expect_err("unknown id");
        assert!(e.contains("messages[1]") && e.contains("\"c2\""), "{e}");
        let before = format!(r#"{{"messages":[{},{call}]}}"#, answer("c1"));
        assert!(parse(Endpoint::Chat, &before).is_err());
        // Without an id (ShareGPT observations) it is taken as it is.
        assert!(
            parse(
                Endpoint::Chat,
                r#"{"messages":[{"role":"tool","content":"a"}]}"#
            )
            .is_ok()
        );
        assert!(parse(Endpoint::Chat, r#"{"messages":[{"content":5}]}"#).is_err());
        assert!(
            parse(
                Endpoint::Chat,
                r#"{"messages":[{"content":"x"}],"max_tokens":-1}"#
            )
            .is_err()
        );
        assert!(
            parse(
                Endpoint::Chat,
                r#"{"messages":[{"content":"x"}],"max_tokens":0}"#
            )
            .is_err()
        );
        assert!(parse(Endpoint::Completions, r#"{"prompt":["a","b"]}"#).is_err());
        assert!(parse(Endpoint::Completions, r#"{"prompt":{}}"#).is_err());
        let r = parse(
            Endpoint::Chat,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true,
                "stream_options":{"include_usage":true},"max_tokens":3,"max_completion_tokens":5}"#,
        )
        .expect("valid");
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(5));
        let Ok(CompletionRequest {
            prompt: Prompt::TokenIds(ids),
            ..
        }) = parse(Endpoint::Completions, r#"{"prompt":[1,2,3]}"#)
        else {
            panic!("token ids")
        };
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn chunks_are_json() {
        let w = Writer::new(Endpoint::Chat, "chatcmpl-1".into(), 7, "m\"odel");
        let mut out = Vec::new();
        w.token(&mut out, 0);
        w.token(&mut out, 1);
        w.finish(&mut out, Finish::Length);
        w.usage(
            &mut out,
            Usage {
                prompt: 3,
                completion: 2,
                cached: 0,
            },
        );
        let text = String::from_utf8(out).expect("utf8");
        for event in text.split("\n\n").filter(|e| !e.is_empty()) {
            let json = event.strip_prefix("data: ").expect("data line");
            let v: Value = serde_json::from_str(json).expect("json");
            assert_eq!(v["model"], "m\"odel");
        }
        let full: Value = serde_json::from_str(&w.full(2, Finish::Stop, None)).expect("json");
        assert_eq!(full["choices"][0]["message"]["content"], " the of");
        let c = Writer::new(Endpoint::Completions, "cmpl-1".into(), 7, "m");
        let mut out = Vec::new();
        c.token(&mut out, 0);
        c.finish(&mut out, Finish::Stop);
        let text = String::from_utf8(out).expect("utf8");
        for event in text.split("\n\n").filter(|e| !e.is_empty()) {
            let v: Value = serde_json::from_str(&event[6..]).expect("json");
            assert_eq!(v["object"], "text_completion");
        }
    }
}
