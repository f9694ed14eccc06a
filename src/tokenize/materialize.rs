//! `--materialize`: real text for token-only rows.
//!
//! A row that has `input_tokens` but no user (or tool) message gets a user
//! message of synthetic text after whatever messages it has, such that the
//! whole prompt it sends (session history and chat template included) has
//! exactly `input_tokens` tokens.
//!
//! The text is a sequence of *words*: vocabulary entries such as `" river"`
//! that are one token on their own and stay one token next to each other.
//! The word at prompt position `q` is drawn from `(seed, id, q mod B)`, where
//! `B` is `trace.block_size` and `id` is the row's `hash_ids[q / B]`: equal
//! ids (which stand for equal prefixes) give the same words at the same
//! positions, so rows that share leading blocks share byte-identical text
//! exactly that far, and a server's prefix cache sees the sharing the trace
//! records. Rows without `hash_ids` draw from ids of their own.
//!
//! The length is made exact by encoding the whole prompt and correcting the
//! number of words until it has `input_tokens` tokens. It cannot be exact
//! when the fixed part of the prompt (template, history, real messages) is
//! already longer than `input_tokens`; such rows are counted as inexact with
//! their deviation.

use anyhow::{Context as _, bail};
use rayon::prelude::*;
use serde::Serialize;
use traces::{Message, TraceRow};

use super::prompt::{Msg, Prompter, row_messages};

/// Stands for the synthetic text while the template is rendered.
const SENTINEL: &str = "\u{E000}trace-materialize\u{E001}";

/// What `--materialize` did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MaterializeReport {
    pub seed: u64,
    pub block_size: u32,
    /// Distinct words the text is drawn from.
    pub vocabulary: usize,
    pub rows: u64,
    pub exact: u64,
    pub inexact: u64,
    /// Largest |prompt tokens - input_tokens| over the inexact rows.
    pub max_deviation: u32,
}

/// Writes text for token-only rows.
pub struct Materializer<'p, 'a> {
    prompter: &'p Prompter<'a>,
    words: Vec<String>,
    block_size: u32,
    seed: u64,
}

/// Whether a row is to be given text: it has a length but nothing a user said.
pub fn needs_text(row: &TraceRow) -> bool {
    row.input_tokens.is_some()
        && !row
            .messages
            .iter()
            .any(|m| m.role == "user" || m.role == "tool")
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A stable 64-bit key of a row without `hash_ids` (FNV-1a of its request id).
fn row_key(request_id: &str) -> u64 {
    request_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One drafted row: its prompt text before and after the synthetic part.
struct Draft<'r> {
    row: &'r TraceRow,
    before: String,
    after: String,
    /// Prompt position where the synthetic words start.
    start: u64,
    target: u32,
}

/// The outcome of one row.
struct RowText {
    content: String,
    deviation: u32,
}

impl<'p, 'a> Materializer<'p, 'a> {
    /// Collects the words of the tokenizer's vocabulary that are one token
    /// with a leading space and re-encode to themselves.
    pub fn new(prompter: &'p Prompter<'a>, block_size: u32, seed: u64) -> anyhow::Result<Self> {
        let tok = prompter.tokenizer();
        let mut vocab: Vec<(String, u32)> = tok.get_vocab(false).into_iter().collect();
        vocab.sort_by_key(|(_, id)| *id);
        let mut words = Vec::new();
        for (_, id) in vocab {
            let Ok(text) = tok.decode(&[id], false) else {
                continue;
            };
            let Some(word) = text.strip_prefix(' ') else {
                continue;
            };
            if !(3..=9).contains(&word.len()) || !word.bytes().all(|b| b.is_ascii_lowercase()) {
                continue;
            }
            match tok.encode_fast(text.as_str(), false) {
                Ok(enc) if enc.get_ids() == [id] => words.push(text),
                _ => {}
            }
        }
        if words.len() < 16 {
            bail!(
                "--materialize: the tokenizer has too few single-token words ({}) to write text with",
                words.len()
            );
        }
        Ok(Materializer {
            prompter,
            words,
            block_size: block_size.max(1),
            seed,
        })
    }

    fn word(&self, row: &TraceRow, q: u64) -> &str {
        let b = u64::from(self.block_size);
        let block = q / b;
        let id = row
            .hash_ids
            .as_ref()
            .and_then(|h| usize::try_from(block).ok().and_then(|j| h.get(j)).copied())
            .unwrap_or_else(|| splitmix(row_key(&row.request_id) ^ splitmix(block)) | 1 << 63);
        let h = splitmix(self.seed ^ splitmix(id ^ splitmix(q % b)));
        &self.words[(h % self.words.len() as u64) as usize]
    }

    fn words_at(&self, row: &TraceRow, start: u64, n: u64) -> String {
        let mut s = String::new();
        for q in start..start + n {
            s.push_str(self.word(row, q));
        }
        s
    }

    fn prompt_len(&self, d: &Draft, n: u64) -> anyhow::Result<u32> {
        let text = format!(
            "{}{}{}",
            d.before,
            self.words_at(d.row, d.start, n),
            d.after
        );
        self.prompter.count_prompt(&text)
    }

    /// Finds the number of words that gives the target length.
    fn fit(&self, d: &Draft) -> anyhow::Result<RowText> {
        let target = i64::from(d.target);
        let base = i64::from(
            self.prompter
                .count_prompt(&format!("{}{}", d.before, d.after))?,
        );
        let mut n = (target - base).max(0);
        let mut best: Option<(u32, i64)> = None;
        let mut tried = std::collections::HashSet::new();
        for _ in 0..8 {
            if !tried.insert(n) {
                break;
            }
            let len = i64::from(self.prompt_len(d, n as u64)?);
            let dev = (len - target).unsigned_abs() as u32;
            if best.is_none_or(|(b, _)| dev < b) {
                best = Some((dev, n));
            }
            if dev == 0 {
                break;
            }
            n = (n + target - len).max(0);
        }
        let (deviation, n) = best.unwrap_or((u32::MAX, 0));
        Ok(RowText {
            content: self.words_at(d.row, d.start, n as u64),
            deviation,
        })
    }

    /// Texts for one session's rows (in turn order): for each row, the user
    /// message to append and its deviation from `input_tokens`.
    fn session(&self, rows: &[&TraceRow]) -> anyhow::Result<Vec<Option<RowText>>> {
        let mut ctx = self.prompter.context();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let text = (|| -> anyhow::Result<Option<RowText>> {
                if row.reset_context {
                    ctx.clear();
                }
                let mut msgs = row_messages(row)?;
                let text = match row.input_tokens {
                    Some(target) if needs_text(row) => {
                        let mut with = msgs.clone();
                        with.push(Msg::new("user", SENTINEL.to_string()));
                        let rendered = ctx.render(&with)?;
                        let Some((before, after)) = rendered.split_once(SENTINEL) else {
                            bail!("the chat template leaves out the user's message");
                        };
                        let start = self.prompter.prompt_ids(before)?.len() as u64;
                        let draft = Draft {
                            row,
                            before: before.to_string(),
                            after: after.to_string(),
                            start,
                            target,
                        };
                        let fitted = self.fit(&draft)?;
                        msgs.push(Msg::new("user", fitted.content.clone()));
                        Some(fitted)
                    }
                    _ => None,
                };
                for m in &msgs {
                    ctx.push(m);
                }
                if let Some(reply) = Msg::reference(row)? {
                    ctx.push(&reply);
                }
                Ok(text)
            })()
            .with_context(|| format!("row {}", row.request_id))?;
            out.push(text);
        }
        Ok(out)
    }

    /// Materialises every token-only row of `rows`, in parallel across sessions.
    pub fn run(
        &self,
        rows: &mut [TraceRow],
        sessions: &[Vec<usize>],
    ) -> anyhow::Result<MaterializeReport> {
        let results: Vec<anyhow::Result<Vec<Option<RowText>>>> = sessions
            .par_iter()
            .map(|s| {
                let session: Vec<&TraceRow> = s.iter().map(|&i| &rows[i]).collect();
                self.session(&session)
            })
            .collect();
        let mut report = MaterializeReport {
            seed: self.seed,
            block_size: self.block_size,
            vocabulary: self.words.len(),
            ..Default::default()
        };
        for (session, result) in sessions.iter().zip(results) {
            for (&i, text) in session.iter().zip(result?) {
                let Some(text) = text else { continue };
                report.rows += 1;
                if text.deviation == 0 {
                    report.exact += 1;
                } else {
                    report.inexact += 1;
                    report.max_deviation = report.max_deviation.max(text.deviation);
                }
                rows[i].messages.push(Message::new("user", text.content));
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_rows_need_text() {
        let mut r = TraceRow {
            input_tokens: Some(10),
            ..Default::default()
        };
        assert!(needs_text(&r));
        r.messages.push(Message::new("system", "s"));
        assert!(needs_text(&r));
        r.messages.push(Message::new("user", "u"));
        assert!(!needs_text(&r));
        r.input_tokens = None;
        r.messages.clear();
        assert!(!needs_text(&r));
    }

    #[test]
    fn row_keys_differ() {
        assert_ne!(row_key("a#0"), row_key("a#1"));
        assert_ne!(splitmix(1), splitmix(2));
    }
}
