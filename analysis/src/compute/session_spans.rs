//! Sessions of multi-turn runs, one figure each: how long a session took
//! from its first send to its last byte (an agent's whole task under that
//! load, think times included), how many turns it ran, and whether a
//! failed turn ended it. Per level: how many sessions, how many failed,
//! and the distributions of turns and spans.
//!
//! Sessions are told apart by a 128-bit hash of `session_id` (XXH3-128),
//! as the rounds tell requests apart (see `rounds`), so the pass keeps 40
//! bytes a session, not its id. `session_id` is read only for runs whose
//! run.json says their trace has more turns than sessions (or does not
//! say: a killed or older run), so single-turn runs pay nothing.

use polars::prelude::*;

use super::frames::{LEVEL, Levels};
use super::rounds::{HashedIds, id_hash};
use super::stats::{dist_of, is_ok, measured};
use crate::error::{PolarsContext, Result};
use crate::model::SessionSpans;

/// One session of a level, as far as read.
#[derive(Debug, Clone, Copy)]
struct Span {
    turns: u32,
    failed: bool,
    first_sent: f64,
    last_end: f64,
}

/// The sessions of every level, by `frames::LEVEL` number.
#[derive(Default)]
pub struct SessionSpansAcc {
    levels: Vec<HashedIds<Span>>,
}

impl SessionSpansAcc {
    /// Add a batch of requests; one without `session_id` adds nothing.
    pub fn add(&mut self, batch: &DataFrame) -> Result<()> {
        if batch.column("session_id").is_err() {
            return Ok(());
        }
        let what = || "the sessions' spans".to_string();
        let cols = batch
            .clone()
            .lazy()
            .select([
                measured().fill_null(lit(false)).alias("__measured"),
                is_ok().fill_null(lit(false)).alias("__ok"),
                col(LEVEL),
                col("session_id"),
                col("sent_ms").cast(DataType::Float64),
                col("end_ms").cast(DataType::Float64),
            ])
            .collect()
            .ctx(what)?;
        let column = |name: &str| {
            cols.column(name)
                .map(|c| c.as_materialized_series().rechunk())
                .ctx(what)
        };
        let (m, ok, level, id, sent, end) = (
            column("__measured")?,
            column("__ok")?,
            column(LEVEL)?,
            column("session_id")?,
            column("sent_ms")?,
            column("end_ms")?,
        );
        let (m, ok, level, id, sent, end) = (
            m.bool().ctx(what)?,
            ok.bool().ctx(what)?,
            level.u32().ctx(what)?,
            id.str().ctx(what)?,
            sent.f64().ctx(what)?,
            end.f64().ctx(what)?,
        );
        let rows = m
            .downcast_iter()
            .flat_map(|a| a.iter())
            .zip(ok.downcast_iter().flat_map(|a| a.iter()))
            .zip(level.downcast_iter().flat_map(|a| a.iter()))
            .zip(id.downcast_iter().flat_map(|a| a.iter()))
            .zip(sent.downcast_iter().flat_map(|a| a.iter()))
            .zip(end.downcast_iter().flat_map(|a| a.iter()));
        for (((((m, ok), l), id), sent), end) in rows {
            let (Some(true), Some(&l), Some(id), Some(&sent), Some(&end)) = (m, l, id, sent, end)
            else {
                continue;
            };
            let l = l as usize;
            if self.levels.len() <= l {
                self.levels.resize_with(l + 1, HashedIds::default);
            }
            let span = self.levels[l].entry(id_hash(id)).or_insert(Span {
                turns: 0,
                failed: false,
                first_sent: f64::INFINITY,
                last_end: f64::NEG_INFINITY,
            });
            span.turns += 1;
            span.failed |= ok != Some(true);
            span.first_sent = span.first_sent.min(sent);
            span.last_end = span.last_end.max(end);
        }
        Ok(())
    }

    /// Per level whose sessions ran more than one turn (at least one of
    /// them), sorted by run, mode, value and round.
    pub fn finish(self, levels: &Levels) -> Vec<SessionSpans> {
        let mut out: Vec<SessionSpans> = self
            .levels
            .into_iter()
            .enumerate()
            .filter(|(_, sessions)| sessions.values().any(|s| s.turns > 1))
            .filter_map(|(id, sessions)| {
                let key = levels.key(u32::try_from(id).ok()?)?.clone();
                let turns: Vec<f64> = sessions.values().map(|s| f64::from(s.turns)).collect();
                let spans: Vec<f64> = sessions
                    .values()
                    .map(|s| (s.last_end - s.first_sent) / 1000.0)
                    .collect();
                Some(SessionSpans {
                    key,
                    sessions: sessions.len() as u64,
                    failed: sessions.values().filter(|s| s.failed).count() as u64,
                    turns: dist_of(turns),
                    span_s: dist_of(spans),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.key.run_id, &a.key.load_mode)
                .cmp(&(&b.key.run_id, &b.key.load_mode))
                .then(a.key.load_value.total_cmp(&b.key.load_value))
                .then(a.key.round.cmp(&b.key.round))
        });
        out
    }
}
