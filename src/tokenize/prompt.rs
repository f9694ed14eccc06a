//! What a turn sends: the session's context so far plus the turn's
//! messages, as prompt text (through the chat template, or plainly joined),
//! and the counting of its tokens.
//!
//! The prompt of turn k = the messages of turns 0..=k, with each earlier
//! turn's recorded reply (`reference_output`, `reference_tool_calls`) as an
//! assistant message after that turn's messages; a row with `reset_context`
//! starts again from its own messages.

use std::borrow::Cow;

use anyhow::Context as _;
use minijinja::Value;
use tokenizers::Tokenizer;
use traces::{Message, TraceRow};

use super::template::{ChatTemplate, message_value, parse_json};

/// Separator of messages in a plain (template-less) prompt.
pub const PLAIN_SEPARATOR: &str = "\n";

/// One message, with its tool calls parsed.
#[derive(Debug, Clone)]
pub struct Msg {
    pub role: String,
    pub content: String,
    pub tool_calls: Option<Value>,
    pub tool_call_id: Option<String>,
    /// The tool calls as written in the trace (for plain prompts).
    tool_calls_text: Option<String>,
}

impl Msg {
    pub fn new(role: &str, content: String) -> Self {
        Msg {
            role: role.to_string(),
            content,
            tool_calls: None,
            tool_call_id: None,
            tool_calls_text: None,
        }
    }

    fn parse_calls(text: Option<&str>, what: &str) -> anyhow::Result<Option<Value>> {
        text.map(|t| parse_json(t).with_context(|| format!("{what} is not valid JSON")))
            .transpose()
    }

    pub fn from_message(m: &Message, row: &TraceRow, index: usize) -> anyhow::Result<Self> {
        let what = format!("row {}: messages[{index}].tool_calls", row.request_id);
        Ok(Msg {
            role: m.role.clone(),
            content: m.content.clone(),
            tool_calls: Self::parse_calls(m.tool_calls.as_deref(), &what)?,
            tool_call_id: m.tool_call_id.clone(),
            tool_calls_text: m.tool_calls.clone(),
        })
    }

    /// The recorded reply of a row as an assistant message, if it has one.
    pub fn reference(row: &TraceRow) -> anyhow::Result<Option<Self>> {
        if row.reference_output.is_none() && row.reference_tool_calls.is_none() {
            return Ok(None);
        }
        let what = format!("row {}: reference_tool_calls", row.request_id);
        Ok(Some(Msg {
            role: "assistant".into(),
            content: row.reference_output.clone().unwrap_or_default(),
            tool_calls: Self::parse_calls(row.reference_tool_calls.as_deref(), &what)?,
            tool_call_id: None,
            tool_calls_text: row.reference_tool_calls.clone(),
        }))
    }

    /// The message's text in a plain prompt: its content, then its tool calls' JSON.
    pub fn plain_text(&self) -> Cow<'_, str> {
        match &self.tool_calls_text {
            None => Cow::Borrowed(&self.content),
            Some(calls) if self.content.is_empty() => Cow::Borrowed(calls),
            Some(calls) => Cow::Owned(format!("{}{PLAIN_SEPARATOR}{calls}", self.content)),
        }
    }

    fn value(&self) -> Value {
        message_value(
            &self.role,
            &self.content,
            self.tool_calls.as_ref(),
            self.tool_call_id.as_deref(),
        )
    }
}

/// The row's own messages, parsed.
pub fn row_messages(row: &TraceRow) -> anyhow::Result<Vec<Msg>> {
    row.messages
        .iter()
        .enumerate()
        .map(|(i, m)| Msg::from_message(m, row, i))
        .collect()
}

/// Builds prompt text and counts tokens with one tokenizer and template.
pub struct Prompter<'a> {
    tokenizer: &'a Tokenizer,
    template: Option<&'a ChatTemplate>,
}

impl<'a> Prompter<'a> {
    pub fn new(tokenizer: &'a Tokenizer, template: Option<&'a ChatTemplate>) -> Self {
        Prompter {
            tokenizer,
            template,
        }
    }

    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    pub fn tokenizer(&self) -> &'a Tokenizer {
        self.tokenizer
    }

    fn encode_len(&self, text: &str, special: bool) -> anyhow::Result<u32> {
        let enc = self
            .tokenizer
            .encode_fast(text, special)
            .map_err(|e| anyhow::anyhow!("the tokenizer failed: {e}"))?;
        u32::try_from(enc.len()).context("more than 2^32 tokens in one text")
    }

    /// Tokens of a piece of text, without special tokens.
    pub fn count(&self, text: &str) -> anyhow::Result<u32> {
        self.encode_len(text, false)
    }

    /// Token ids of a prompt, as the server sees it.
    pub fn prompt_ids(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode_fast(text, self.template.is_none())
            .map_err(|e| anyhow::anyhow!("the tokenizer failed: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Tokens of a whole prompt: a rendered template already holds its
    /// special tokens; a plain prompt gets those of the tokenizer's post-processor.
    pub fn count_prompt(&self, text: &str) -> anyhow::Result<u32> {
        self.encode_len(text, self.template.is_none())
    }

    /// Special tokens the post-processor adds to a plain prompt.
    pub fn plain_specials(&self) -> u32 {
        use tokenizers::PostProcessor;
        self.tokenizer
            .get_post_processor()
            .map_or(0, |p| u32::try_from(p.added_tokens(false)).unwrap_or(0))
    }

    /// Prompt tokens of an OpenAI request body as sent: its `messages`
    /// rendered as a session's history is (the chat template, else plain
    /// concatenation), or its completions `prompt` with the
    /// post-processor's specials. `None` for a body with neither.
    pub fn count_request(&self, body: &serde_json::Value) -> anyhow::Result<Option<u32>> {
        use serde_json::Value as Json;
        if let Some(list) = body.get("messages").and_then(Json::as_array) {
            let mut ctx = self.context();
            for m in list {
                let text = |k: &str| m.get(k).and_then(Json::as_str);
                let mut msg = Msg::new(
                    text("role").unwrap_or("user"),
                    text("content").unwrap_or("").to_string(),
                );
                if let Some(calls) = m.get("tool_calls").filter(|t| !t.is_null()) {
                    let calls = calls.to_string();
                    msg.tool_calls = Msg::parse_calls(Some(&calls), "tool_calls")?;
                    msg.tool_calls_text = Some(calls);
                }
                msg.tool_call_id = text("tool_call_id").map(str::to_string);
                ctx.push(&msg);
            }
            return Ok(Some(self.count_prompt(&ctx.render(&[])?)?));
        }
        match body.get("prompt").and_then(Json::as_str) {
            Some(p) => Ok(Some(self.encode_len(p, true)?)),
            None => Ok(None),
        }
    }

    pub fn context(&self) -> Context<'_, 'a> {
        Context {
            prompter: self,
            values: Vec::new(),
            plain: String::new(),
            messages: 0,
        }
    }
}

/// A session's history, growing turn by turn.
pub struct Context<'p, 'a> {
    prompter: &'p Prompter<'a>,
    values: Vec<Value>,
    plain: String,
    messages: usize,
}

impl Context<'_, '_> {
    pub fn clear(&mut self) {
        self.values.clear();
        self.plain.clear();
        self.messages = 0;
    }

    /// Messages in the history.
    pub fn len(&self) -> usize {
        self.messages
    }

    pub fn push(&mut self, m: &Msg) {
        if self.prompter.has_template() {
            self.values.push(m.value());
        } else {
            if self.messages > 0 {
                self.plain.push_str(PLAIN_SEPARATOR);
            }
            self.plain.push_str(&m.plain_text());
        }
        self.messages += 1;
    }

    /// The prompt text of the history followed by `extra`.
    pub fn render(&self, extra: &[Msg]) -> anyhow::Result<String> {
        match self.prompter.template {
            Some(t) => {
                let mut all = self.values.clone();
                all.extend(extra.iter().map(Msg::value));
                t.render(&all, true)
                    .map_err(|e| anyhow::anyhow!("the chat template failed: {e:#}"))
            }
            None => {
                let mut text = self.plain.clone();
                for (i, m) in extra.iter().enumerate() {
                    if self.messages + i > 0 {
                        text.push_str(PLAIN_SEPARATOR);
                    }
                    text.push_str(&m.plain_text());
                }
                Ok(text)
            }
        }
    }
}
