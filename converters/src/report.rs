//! Counting what a conversion read, wrote and skipped.

use std::collections::BTreeMap;

use serde::Serialize;

/// What a conversion did, printed at the end and stored as `trace.stats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// Records read from the inputs (sessions in the source's terms).
    pub records: u64,
    pub sessions_written: u64,
    pub rows_written: u64,
    /// Records that parsed but had nothing to send, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Records that did not parse or had the wrong shape, skipped with `--skip-bad`, by reason.
    pub bad: BTreeMap<String, u64>,
    /// Sessions dropped by `--max-input-tokens` / `--max-output-tokens`.
    pub filtered: u64,
    /// Duplicate records removed (formats that deduplicate).
    pub duplicates: u64,
    /// Rows that start with a compaction (`reset_context`).
    pub compactions: u64,
    /// Rows marked `overflow` (the base context alone exceeds the window).
    pub overflows: u64,
    /// Other things worth knowing, counted (e.g. image parts left out).
    pub notes: BTreeMap<String, u64>,
    /// Session ids that collided with an earlier one and got a suffix.
    pub renamed_ids: u64,
}

impl Report {
    pub fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }

    pub fn bad(&mut self, reason: impl Into<String>) {
        *self.bad.entry(reason.into()).or_default() += 1;
    }

    pub fn note(&mut self, what: impl Into<String>, count: u64) {
        *self.notes.entry(what.into()).or_default() += count;
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    pub fn bad_total(&self) -> u64 {
        self.bad.values().sum()
    }

    /// Human-readable lines for the console.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "read {} records; wrote {} sessions, {} rows",
            self.records, self.sessions_written, self.rows_written
        )];
        if !self.skipped.is_empty() {
            out.push(format!(
                "skipped {} records with nothing to send: {}",
                self.skipped_total(),
                fmt_map(&self.skipped)
            ));
        }
        if !self.bad.is_empty() {
            out.push(format!(
                "skipped {} bad records (--skip-bad): {}",
                self.bad_total(),
                fmt_map(&self.bad)
            ));
        }
        if self.filtered > 0 {
            out.push(format!("filtered out {} sessions by length", self.filtered));
        }
        if self.duplicates > 0 {
            out.push(format!("removed {} duplicate records", self.duplicates));
        }
        if self.compactions > 0 || self.overflows > 0 {
            out.push(format!(
                "{} compaction turns, {} overflow turns (sessions end at an overflow)",
                self.compactions, self.overflows
            ));
        }
        if !self.notes.is_empty() {
            out.push(format!("notes: {}", fmt_map(&self.notes)));
        }
        if self.renamed_ids > 0 {
            out.push(format!(
                "renamed {} sessions whose id repeated an earlier one",
                self.renamed_ids
            ));
        }
        out
    }
}

fn fmt_map(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}
