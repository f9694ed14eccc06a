//! One request: send it, read the SSE stream as it arrives, time every
//! token-bearing chunk. Nothing heavy happens here: the finished
//! [`Exchange`] goes to the recorder over a channel.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::sse::SseParser;
use traces::results::Status;

/// Which OpenAI endpoint a run talks to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    Chat,
    Completions,
}

/// Where and how requests are sent (validated once, shared by all tasks).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Full URLs of the chat or completions endpoint of every server
    /// (one unless `--endpoint` names several).
    pub urls: Vec<String>,
    /// The servers as `--endpoint` named them: the `endpoint` column.
    pub names: Vec<String>,
    pub api: Api,
    pub api_key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// Replies are streamed (SSE); else each comes whole, as one JSON body.
    pub stream: bool,
}

/// What happened to one request; instants are turned into run-relative
/// milliseconds by the caller.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub sent: Instant,
    pub first_token: Option<Instant>,
    pub first_reasoning: Option<Instant>,
    pub first_content: Option<Instant>,
    pub end: Instant,
    /// Gaps between successive token-bearing chunks, in ms.
    pub itl_ms: Vec<f32>,
    pub chunks: u32,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub reasoning_tokens: Option<u32>,
    pub cached_tokens: Option<u32>,
    pub status: Status,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// The generated text (content only), for live history.
    pub text: String,
    /// The rest of the output: reasoning text, tool calls' names and
    /// arguments (for counting output tokens with a tokenizer).
    pub other_text: String,
    /// The reply's `finish_reason`, when the server gave one.
    pub finish_reason: Option<String>,
    pub done_seen: bool,
    /// Sent a second time: the first send met a connection the server had
    /// closed, and got no answer.
    pub resent: bool,
}

impl Exchange {
    fn new(sent: Instant) -> Self {
        Exchange {
            sent,
            first_token: None,
            first_reasoning: None,
            first_content: None,
            end: sent,
            itl_ms: Vec::new(),
            chunks: 0,
            prompt_tokens: None,
            completion_tokens: None,
            reasoning_tokens: None,
            cached_tokens: None,
            status: Status::Ok,
            http_status: None,
            error: None,
            text: String::new(),
            other_text: String::new(),
            finish_reason: None,
            done_seen: false,
            resent: false,
        }
    }

    /// A request that never left: cancelled while waiting.
    pub fn cancelled_at(at: Instant) -> Self {
        let mut ex = Exchange::new(at);
        ex.status = Status::Cancelled;
        ex
    }

    fn fail(&mut self, status: Status, error: impl Into<String>) {
        if self.status == Status::Ok {
            self.status = status;
            let mut e: String = error.into();
            if e.len() > 500 {
                let mut cut = 500;
                while !e.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.truncate(cut);
            }
            self.error = Some(e);
        }
    }
}

/// The connection closed before any byte of an answer came back (hyper's
/// "connection closed before message completed").
fn closed_before_answer(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        source = err.source();
    }
    false
}

/// Builds the one HTTP client of a run: pooled keep-alive connections.
pub fn build_client(fresh_connections: bool) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90));
    if fresh_connections {
        b = b.pool_max_idle_per_host(0);
    } else {
        b = b.pool_max_idle_per_host(usize::MAX);
    }
    Ok(b.build()?)
}

/// Sends `body` and reads the stream until `[DONE]`, an error, the timeout,
/// or cancellation.
pub async fn exchange(
    client: &reqwest::Client,
    fresh_client: &reqwest::Client,
    endpoint: &Endpoint,
    server: usize,
    body: Bytes,
    request_id: &str,
    mut cancel: watch::Receiver<bool>,
) -> Exchange {
    let url = &endpoint.urls[server % endpoint.urls.len().max(1)];
    let sent = Instant::now();
    let deadline = sent + endpoint.timeout;
    let mut ex = Exchange::new(sent);
    let response = loop {
        let client = if ex.resent { fresh_client } else { client };
        let mut req = client
            .post(url)
            .header("content-type", "application/json")
            .header(
                "accept",
                if endpoint.stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .header("x-request-id", request_id)
            .body(body.clone());
        if let Some(key) = &endpoint.api_key {
            req = req.bearer_auth(key);
        }
        for (k, v) in &endpoint.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let response = tokio::select! {
            r = req.send() => r,
            _ = tokio::time::sleep_until(deadline) => {
                ex.end = Instant::now();
                ex.fail(Status::Timeout, format!("no response within {:?}", endpoint.timeout));
                return ex;
            }
            _ = cancelled(&mut cancel) => {
                ex.end = Instant::now();
                ex.fail(Status::Cancelled, "cancelled before the response");
                return ex;
            }
        };
        // A server may close a kept-alive connection just as it is reused
        // (llama.cpp's closes it after every stream while it announces
        // keep-alive): the request then meets a closed connection and gets
        // no answer at all. It is sent once more, on a new connection (a
        // pooled one may be as stale), and timed from that send, so the
        // connection's setup counts in its TTFT; the time lost shows as
        // lateness.
        match response {
            Err(e) if !ex.resent && closed_before_answer(&e) => {
                ex.resent = true;
                ex.sent = Instant::now();
            }
            r => break r,
        }
    };
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            ex.end = Instant::now();
            // Only a failure to connect is a connect error; a connection
            // that breaks after the request went out is a stream error.
            let status = if e.is_connect() {
                Status::ConnectError
            } else if e.is_timeout() {
                Status::Timeout
            } else {
                Status::StreamError
            };
            let chain = error_chain(&e);
            if ex.resent && closed_before_answer(&e) {
                ex.fail(
                    status,
                    format!("the connection closed unanswered, when sent again too: {chain}"),
                );
            } else {
                ex.fail(status, chain);
            }
            return ex;
        }
    };
    let code = response.status();
    ex.http_status = Some(code.as_u16());
    if !code.is_success() {
        let body = tokio::select! {
            b = response.text() => b.unwrap_or_default(),
            _ = tokio::time::sleep_until(deadline) => String::new(),
        };
        ex.end = Instant::now();
        ex.fail(
            Status::HttpError,
            format!("HTTP {}: {}", code.as_u16(), body.trim()),
        );
        return ex;
    }
    if !endpoint.stream {
        let body = tokio::select! {
            b = response.bytes() => b,
            _ = tokio::time::sleep_until(deadline) => {
                ex.end = Instant::now();
                ex.fail(Status::Timeout, format!("reply not finished within {:?}", endpoint.timeout));
                return ex;
            }
            _ = cancelled(&mut cancel) => {
                ex.end = Instant::now();
                ex.fail(Status::Cancelled, "cancelled before the reply");
                return ex;
            }
        };
        ex.end = Instant::now();
        match body {
            Ok(b) => on_whole_reply(&mut ex, endpoint.api, &b),
            Err(e) => ex.fail(
                Status::StreamError,
                format!("reply broken: {}", error_chain(&e)),
            ),
        }
        return ex;
    }
    let mut parser = SseParser::new();
    let mut last_token: Option<Instant> = None;
    loop {
        let chunk = tokio::select! {
            c = response.chunk() => c,
            _ = tokio::time::sleep_until(deadline) => {
                ex.end = Instant::now();
                ex.fail(Status::Timeout, format!("stream not finished within {:?}", endpoint.timeout));
                return ex;
            }
            _ = cancelled(&mut cancel) => {
                ex.end = Instant::now();
                ex.fail(Status::Cancelled, "cancelled mid-stream");
                return ex;
            }
        };
        let now = Instant::now();
        match chunk {
            Ok(Some(bytes)) => {
                parser.feed(&bytes, |data| {
                    on_event(&mut ex, endpoint.api, data, now, &mut last_token)
                });
                if ex.status != Status::Ok || ex.done_seen {
                    break;
                }
            }
            Ok(None) => {
                parser.finish(|data| on_event(&mut ex, endpoint.api, data, now, &mut last_token));
                if !ex.done_seen {
                    ex.fail(Status::StreamError, "the stream ended without [DONE]");
                }
                break;
            }
            Err(e) => {
                ex.fail(
                    Status::StreamError,
                    format!("stream broken: {}", error_chain(&e)),
                );
                break;
            }
        }
    }
    ex.end = Instant::now();
    ex
}

async fn cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            // The sender is gone: never cancelled.
            std::future::pending::<()>().await;
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Fails the exchange on an `error` object (returns false); else reads the
/// usage, if any, of a reply or of a stream's chunk (`what`).
fn read_error_and_usage(ex: &mut Exchange, v: &Value, what: &str) -> bool {
    if let Some(err) = v.get("error") {
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| err.to_string());
        ex.fail(Status::StreamError, format!("error in {what}: {msg}"));
        return false;
    }
    if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
        read_usage(ex, usage);
    }
    true
}

/// Keeps the names and arguments of tool calls (a message's, or a delta's
/// pieces of them) for counting output tokens.
fn push_tool_calls(ex: &mut Exchange, calls: Option<&Value>) {
    for call in calls.and_then(Value::as_array).into_iter().flatten() {
        for part in ["/function/name", "/function/arguments"] {
            if let Some(t) = call.pointer(part).and_then(Value::as_str) {
                ex.other_text.push_str(t);
            }
        }
    }
}

/// Keeps a choice's `finish_reason` when it has one (the last chunk of a
/// stream, or a whole reply).
fn read_finish_reason(ex: &mut Exchange, choice: &Value) {
    if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
        ex.finish_reason = Some(r.to_string());
    }
}

/// Reads the usage object of a reply or of a stream's chunk.
fn read_usage(ex: &mut Exchange, usage: &Value) {
    let n = |x: Option<&Value>| {
        x.and_then(Value::as_u64)
            .map(|n| n.min(u32::MAX as u64) as u32)
    };
    ex.prompt_tokens = n(usage.get("prompt_tokens")).or(ex.prompt_tokens);
    ex.completion_tokens = n(usage.get("completion_tokens")).or(ex.completion_tokens);
    ex.cached_tokens =
        n(usage.pointer("/prompt_tokens_details/cached_tokens")).or(ex.cached_tokens);
    ex.reasoning_tokens =
        n(usage.pointer("/completion_tokens_details/reasoning_tokens")).or(ex.reasoning_tokens);
}

/// A whole (non-streamed) reply: its text and usage; no token is timed.
fn on_whole_reply(ex: &mut Exchange, api: Api, body: &[u8]) {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let text = String::from_utf8_lossy(body);
            ex.fail(
                Status::StreamError,
                format!(
                    "the reply is not JSON ({e}): {}",
                    text.chars().take(200).collect::<String>()
                ),
            );
            return;
        }
    };
    if !read_error_and_usage(ex, &v, "reply") {
        return;
    }
    let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
        ex.fail(Status::StreamError, "the reply has no choices");
        return;
    };
    read_finish_reason(ex, choice);
    let text = |p: &str| choice.pointer(p).and_then(Value::as_str).unwrap_or("");
    match api {
        Api::Chat => {
            ex.text.push_str(text("/message/content"));
            let reasoning = choice
                .pointer("/message/reasoning_content")
                .or_else(|| choice.pointer("/message/reasoning"))
                .and_then(Value::as_str)
                .unwrap_or("");
            ex.other_text.push_str(reasoning);
            push_tool_calls(ex, choice.pointer("/message/tool_calls"));
        }
        Api::Completions => ex.text.push_str(text("/text")),
    }
    ex.done_seen = true;
}

fn on_event(ex: &mut Exchange, api: Api, data: &[u8], now: Instant, last: &mut Option<Instant>) {
    if ex.done_seen || ex.status != Status::Ok {
        return;
    }
    let trimmed = data.trim_ascii();
    if trimmed == b"[DONE]" {
        ex.done_seen = true;
        return;
    }
    if trimmed.is_empty() {
        return;
    }
    let v: Value = match serde_json::from_slice(trimmed) {
        Ok(v) => v,
        Err(e) => {
            ex.fail(
                Status::StreamError,
                format!(
                    "malformed SSE data ({e}): {}",
                    String::from_utf8_lossy(&trimmed[..trimmed.len().min(200)])
                ),
            );
            return;
        }
    };
    if !read_error_and_usage(ex, &v, "stream") {
        return;
    }
    let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
        return;
    };
    read_finish_reason(ex, choice);
    let (content, reasoning) = match api {
        Api::Chat => {
            let delta = choice.get("delta");
            let content = delta
                .and_then(|d| d.get("content"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let reasoning = delta
                .and_then(|d| d.get("reasoning_content").or_else(|| d.get("reasoning")))
                .and_then(Value::as_str)
                .unwrap_or("");
            let tool_calls = delta.and_then(|d| d.get("tool_calls"));
            let tool_args = tool_calls.map(|t| !t.is_null()).unwrap_or(false);
            push_tool_calls(ex, tool_calls);
            (
                if content.is_empty() && tool_args {
                    "\u{0}"
                } else {
                    content
                },
                reasoning,
            )
        }
        Api::Completions => (choice.get("text").and_then(Value::as_str).unwrap_or(""), ""),
    };
    if content.is_empty() && reasoning.is_empty() {
        return;
    }
    ex.chunks += 1;
    if ex.first_token.is_none() {
        ex.first_token = Some(now);
    }
    if !reasoning.is_empty() {
        if ex.first_reasoning.is_none() {
            ex.first_reasoning = Some(now);
        }
        ex.other_text.push_str(reasoning);
    }
    if !content.is_empty() {
        if ex.first_content.is_none() {
            ex.first_content = Some(now);
        }
        if content != "\u{0}" {
            ex.text.push_str(content);
        }
    }
    if let Some(prev) = *last {
        ex.itl_ms.push((now - prev).as_secs_f64() as f32 * 1000.0);
    }
    *last = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(ex: &mut Exchange, api: Api, events: &[&str]) {
        let mut last = None;
        let base = ex.sent;
        for (i, e) in events.iter().enumerate() {
            let now = base + Duration::from_millis(10 * (i as u64 + 1));
            on_event(ex, api, e.as_bytes(), now, &mut last);
        }
    }

    #[test]
    fn reasoning_and_content_are_timed_apart() {
        let mut ex = Exchange::new(Instant::now());
        feed(
            &mut ex,
            Api::Chat,
            &[
                r#"{"choices":[{"delta":{"role":"assistant"}}]}"#,
                r#"{"choices":[{"delta":{"reasoning_content":"let me"}}]}"#,
                r#"{"choices":[{"delta":{"reasoning":" think"}}]}"#,
                r#"{"choices":[{"delta":{"content":"Hi"}}]}"#,
                r#"{"choices":[{"delta":{"content":" there"},"finish_reason":null}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
                "[DONE]",
            ],
        );
        assert_eq!(ex.status, Status::Ok);
        assert!(ex.done_seen);
        let ms = |t: Option<Instant>| t.map(|t| (t - ex.sent).as_millis());
        assert_eq!(
            ms(ex.first_token),
            Some(20),
            "the first reasoning token is the first token"
        );
        assert_eq!(ms(ex.first_reasoning), Some(20));
        assert_eq!(ms(ex.first_content), Some(40));
        assert_eq!(ex.itl_ms.len(), 3);
        assert_eq!(ex.text, "Hi there");
        assert_eq!(ex.chunks, 4);
        assert_eq!(
            (
                ex.prompt_tokens,
                ex.completion_tokens,
                ex.cached_tokens,
                ex.reasoning_tokens
            ),
            (Some(7), Some(4), Some(3), Some(2))
        );
    }

    #[test]
    fn errors_inside_the_stream_and_malformed_data() {
        let mut ex = Exchange::new(Instant::now());
        feed(
            &mut ex,
            Api::Chat,
            &[
                r#"{"choices":[{"delta":{"content":"a"}}]}"#,
                r#"{"error":{"message":"overloaded"}}"#,
            ],
        );
        assert_eq!(ex.status, Status::StreamError);
        assert!(
            ex.error
                .as_deref()
                .is_some_and(|e| e.contains("overloaded"))
        );
        let mut ex = Exchange::new(Instant::now());
        feed(
            &mut ex,
            Api::Completions,
            &[r#"{"choices":[{"text":"x"}]}"#, "{not json"],
        );
        assert_eq!(ex.status, Status::StreamError);
        assert_eq!(ex.text, "x");
    }

    #[test]
    fn tool_call_deltas_count_as_tokens() {
        let mut ex = Exchange::new(Instant::now());
        feed(
            &mut ex,
            Api::Chat,
            &[
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]}}]}"#,
            ],
        );
        assert_eq!(ex.chunks, 1);
        assert!(ex.first_content.is_some());
        assert_eq!(ex.text, "");
        assert_eq!(ex.other_text, "{\"");
    }

    #[test]
    fn whole_replies_give_their_text_and_usage() {
        let mut ex = Exchange::new(Instant::now());
        on_whole_reply(
            &mut ex,
            Api::Chat,
            br#"{"choices":[{"message":{"role":"assistant","content":"Hi","reasoning_content":"hm",
                "tool_calls":[{"function":{"name":"ls","arguments":"{}"}}]}}],
                "usage":{"prompt_tokens":7,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":3}}}"#,
        );
        assert_eq!(ex.status, Status::Ok);
        assert_eq!((ex.text.as_str(), ex.other_text.as_str()), ("Hi", "hmls{}"));
        assert_eq!(
            (ex.prompt_tokens, ex.completion_tokens, ex.cached_tokens),
            (Some(7), Some(5), Some(3))
        );
        assert!(ex.first_token.is_none() && ex.itl_ms.is_empty() && ex.chunks == 0);
        assert_eq!(ex.finish_reason, None);

        let mut ex = Exchange::new(Instant::now());
        on_whole_reply(
            &mut ex,
            Api::Completions,
            br#"{"choices":[{"text":"abc"}]}"#,
        );
        assert_eq!((ex.status, ex.text.as_str()), (Status::Ok, "abc"));

        for (body, says) in [
            (&br#"{"error":{"message":"overloaded"}}"#[..], "overloaded"),
            (&b"<html>busy</html>"[..], "not JSON"),
            (&br#"{"choices":[]}"#[..], "no choices"),
        ] {
            let mut ex = Exchange::new(Instant::now());
            on_whole_reply(&mut ex, Api::Chat, body);
            assert_eq!(ex.status, Status::StreamError);
            assert!(
                ex.error.as_deref().is_some_and(|e| e.contains(says)),
                "{:?}",
                ex.error
            );
        }
    }

    #[test]
    fn reasoning_and_tool_calls_are_kept_apart_from_the_content() {
        let mut ex = Exchange::new(Instant::now());
        feed(
            &mut ex,
            Api::Chat,
            &[
                r#"{"choices":[{"delta":{"reasoning_content":"think"}}]}"#,
                r#"{"choices":[{"delta":{"content":"Hi"}}]}"#,
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"ls","arguments":"{}"}}]}}]}"#,
            ],
        );
        assert_eq!(ex.chunks, 3);
        assert_eq!(ex.text, "Hi");
        assert_eq!(ex.other_text, "thinkls{}");
    }
}
