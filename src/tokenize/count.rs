//! Counting tokens of every row, in parallel across sessions.
//!
//! Sessions are independent, so rayon spreads them over the cores; within a
//! session the turns are counted in order, as each prompt holds the ones
//! before it. Results are stored by row index, so the output is the same
//! whatever the number of threads.

use std::collections::HashMap;

use anyhow::Context as _;
use rayon::prelude::*;
use traces::TraceRow;

use super::prompt::{Msg, Prompter, row_messages};

/// The token columns of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowCounts {
    /// `None` for a token-only row: it has no text to count.
    pub new_tokens: Option<u32>,
    /// `None` for a token-only row, and for the rows after one in its
    /// session until a `reset_context` (their context holds text that only
    /// the replayer will make).
    pub prompt_tokens: Option<u32>,
    pub reference_output_tokens: Option<u32>,
}

/// Row indices of each session, in order of first appearance; within a
/// session, by turn (rows with equal turns keep their file order).
pub fn group_sessions(rows: &[TraceRow]) -> Vec<Vec<usize>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let g = *index.entry(row.session_id.as_str()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    for g in &mut groups {
        g.sort_by_key(|&i| rows[i].turn);
    }
    groups
}

/// Counts one session's rows (given in turn order).
pub fn count_session(p: &Prompter, rows: &[&TraceRow]) -> anyhow::Result<Vec<RowCounts>> {
    let mut ctx = p.context();
    // The context holds a token-only row's turn, whose text is unknown.
    let mut ctx_unknown = false;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let counts = (|| -> anyhow::Result<RowCounts> {
            if row.reset_context {
                ctx.clear();
                ctx_unknown = false;
            }
            let reference_output_tokens = row
                .reference_output
                .as_deref()
                .map(|r| p.count(r))
                .transpose()?;
            if row.messages.is_empty() {
                // Token-only (`input_tokens`, `hash_ids`): nothing to count
                // until --materialize gives it text.
                ctx_unknown = true;
                return Ok(RowCounts {
                    new_tokens: None,
                    prompt_tokens: None,
                    reference_output_tokens,
                });
            }
            let msgs = row_messages(row)?;
            let mut new_tokens = 0u32;
            for m in &msgs {
                new_tokens = new_tokens.saturating_add(p.count(&m.plain_text())?);
            }
            let prompt_tokens = if ctx_unknown {
                None
            } else if !p.has_template() && ctx.len() == 0 && msgs.len() == 1 {
                // The prompt is that one message: its count plus the post-processor's tokens.
                Some(new_tokens.saturating_add(p.plain_specials()))
            } else {
                Some(p.count_prompt(&ctx.render(&msgs)?)?)
            };
            for m in &msgs {
                ctx.push(m);
            }
            if let Some(reply) = Msg::reference(row)? {
                ctx.push(&reply);
            }
            Ok(RowCounts {
                new_tokens: Some(new_tokens),
                prompt_tokens,
                reference_output_tokens,
            })
        })()
        .with_context(|| format!("row {}", row.request_id))?;
        out.push(counts);
    }
    Ok(out)
}

/// Counts every row; `sessions` from [`group_sessions`]. The first failing
/// session in file order gives the error.
pub fn count_all(
    p: &Prompter,
    rows: &[TraceRow],
    sessions: &[Vec<usize>],
) -> anyhow::Result<Vec<RowCounts>> {
    let results: Vec<anyhow::Result<Vec<RowCounts>>> = sessions
        .par_iter()
        .map(|s| {
            let session: Vec<&TraceRow> = s.iter().map(|&i| &rows[i]).collect();
            count_session(p, &session)
        })
        .collect();
    let mut out = vec![RowCounts::default(); rows.len()];
    for (session, result) in sessions.iter().zip(results) {
        for (&i, counts) in session.iter().zip(result?) {
            out[i] = counts;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(session: &str, turn: u32) -> TraceRow {
        TraceRow {
            request_id: format!("{session}#{turn}"),
            session_id: session.into(),
            turn,
            ..Default::default()
        }
    }

    #[test]
    fn sessions_in_first_appearance_order_and_by_turn() {
        let rows = vec![
            row("b", 1),
            row("a", 0),
            row("b", 0),
            row("c", 0),
            row("a", 1),
        ];
        assert_eq!(group_sessions(&rows), vec![vec![2, 0], vec![1, 4], vec![3]]);
    }
}
