//! Counting a reply's output tokens with a tokenizer when the server did
//! not report them (`replay --tokenizer`). Without it such a reply's
//! `completion_tokens` is the number of token-bearing chunks, which is
//! short by the server's tokens per chunk.
//!
//! The counting runs on the recorder's thread, never on the workers that
//! time the requests.

use serde_json::Value;
use traces::results::{RequestRecord, Status};

/// `tokens_source` of counts from the server's usage report.
pub const FROM_USAGE: &str = "usage";
/// `tokens_source` of counts of token-bearing chunks.
pub const FROM_CHUNKS: &str = "counted";
/// `tokens_source` of counts by `--tokenizer` of the text received.
pub const FROM_TOKENIZER: &str = "tokenized";

/// The tokenizer `--tokenizer` names, ready to count what was sent and
/// received.
pub struct OutputCounter {
    loaded: crate::tokenize::Loaded,
    /// What identifies it (file or hub commit, sha256, how prompts are
    /// counted), for run.json.
    pub identity: Value,
}

impl OutputCounter {
    /// Loads a `tokenizer.json`, a folder holding one (with its chat
    /// template), or a hub model id at `revision`. Blocking (it may
    /// download from the hub).
    pub fn load(spec: &str, revision: &str) -> anyhow::Result<Self> {
        let loaded =
            crate::tokenize::load_spec(spec, revision, crate::tokenize::TemplateChoice::Auto)?;
        let mut identity = loaded.identity.clone();
        if let Some(m) = identity.as_object_mut() {
            m.remove("counting_rules");
            m.insert(
                "counts".into(),
                Value::from(
                    "replies without usage: the prompt sent (as `prompt` says) and the text \
                     received (content, reasoning and tool calls, no special tokens)",
                ),
            );
        }
        Ok(OutputCounter { loaded, identity })
    }

    fn prompter(&self) -> crate::tokenize::Prompter<'_> {
        crate::tokenize::Prompter::new(&self.loaded.tokenizer, self.loaded.template.as_ref())
    }

    /// Tokens of `text`, with no special tokens added.
    pub fn count(&self, text: &str) -> Option<u32> {
        self.prompter().count(text).ok()
    }

    /// Prompt tokens of a request body as sent (`None` if it cannot be
    /// read or rendered).
    pub fn count_prompt(&self, body: &[u8]) -> Option<u32> {
        let v: Value = serde_json::from_slice(body).ok()?;
        self.prompter().count_request(&v).ok().flatten()
    }

    /// For a record without usage: replaces its chunk count (none for a
    /// whole reply) by the tokens
    /// of `output` (the content, reasoning and tool-call text received),
    /// its TPOT with them, and fills its prompt tokens from `body`, the
    /// request sent. Records with the server's usage are left as they are,
    /// and so is a reply whose text counts no token (a chunk count is all
    /// there is).
    pub fn apply(&self, rec: &mut RequestRecord, output: &str, body: &[u8]) {
        if rec.tokens_source.as_deref() == Some(FROM_USAGE) {
            return;
        }
        let Some(n) = self.count(output).filter(|&n| n > 0) else {
            return;
        };
        rec.completion_tokens = Some(n);
        rec.tokens_source = Some(FROM_TOKENIZER.to_string());
        rec.tpot_ms = tpot(rec.status, rec.ttft_ms, rec.e2e_ms, Some(n));
        if rec.prompt_tokens.is_none() {
            rec.prompt_tokens = self.count_prompt(body);
        }
    }
}

/// Time per output token after the first: `(e2e - ttft) / (n - 1)` of an
/// ok request with more than one token.
pub fn tpot(
    status: Option<Status>,
    ttft: Option<f64>,
    e2e: Option<f64>,
    n: Option<u32>,
) -> Option<f64> {
    match (status, ttft, e2e, n) {
        (Some(Status::Ok), Some(t), Some(e), Some(n)) if n > 1 => Some((e - t) / f64::from(n - 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpot_needs_an_ok_request_of_two_tokens() {
        assert_eq!(
            tpot(Some(Status::Ok), Some(10.0), Some(40.0), Some(4)),
            Some(10.0)
        );
        assert_eq!(
            tpot(Some(Status::Ok), Some(10.0), Some(40.0), Some(1)),
            None
        );
        assert_eq!(
            tpot(Some(Status::Timeout), Some(10.0), Some(40.0), Some(4)),
            None
        );
        assert_eq!(tpot(Some(Status::Ok), None, Some(40.0), Some(4)), None);
    }
}
