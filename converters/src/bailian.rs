//! `trace convert bailian`: Alibaba Bailian (Qwen serving) traces.
//!
//! Input: JSON Lines (or a JSON array) of `{"chat_id", "parent_chat_id",
//! "timestamp" (seconds), "input_length", "output_length", "type", "turn",
//! "hash_ids"}`, `hash_ids` naming 16-token blocks. Sessions follow the
//! parent links (root → child → grandchild), so all records are read and
//! held compactly before the first session is written; sessions are written
//! ordered by their first arrival. See `docs/formats/bailian.md`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use traces::TraceRow;

use crate::input::{JsonRecords, RawRecord, expand_inputs, open as open_file};
use crate::timestamp::{EMPTY_PROMPT, Nanos, hash_ids_mismatch, offset_ms, units_to_nanos};
use crate::{Error, Location, Outcome, Result, SessionSource, ids};

/// Tokens per `hash_ids` block in Bailian traces.
pub const BLOCK_SIZE: u32 = 16;

/// Options of `trace convert bailian`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {
    /// Keep records whose `hash_ids` do not hold exactly
    /// ceil(input_length / 16) ids, instead of treating them as bad records.
    #[arg(long)]
    pub allow_hash_mismatch: bool,
}

/// Opens the inputs, reads them whole and links their sessions.
pub fn open(inputs: &[PathBuf], opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_inputs(inputs, &["jsonl", "json"])?;
    let mut graph = Graph::default();
    for (index, path) in files.iter().enumerate() {
        for rec in JsonRecords::new(path, open_file(path)?) {
            let outcome = rec.and_then(|rec| graph.add(&rec, index, opts.allow_hash_mismatch));
            match outcome {
                Ok(()) => {}
                Err(e @ Error::BadRecord { .. }) => graph.early.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Box::new(graph.into_sessions(files)))
}

#[derive(Deserialize)]
struct Record {
    chat_id: Value,
    #[serde(default)]
    parent_chat_id: Value,
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    hash_ids: Option<Vec<u64>>,
}

/// One request, compactly.
#[derive(Debug, Clone)]
struct Node {
    id: String,
    parent: Option<String>,
    at: Nanos,
    input: u32,
    output: u32,
    kind: Option<String>,
    hash_ids: Option<Vec<u64>>,
    file: u32,
    line: u64,
}

/// A chat id as text: a string or an integer.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// The parent of a record: `None` for a root (missing, null, empty, -1).
fn parent_text(rec: &RawRecord, v: &Value) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() || s.trim() == "-1" => Ok(None),
        Value::Number(n) if n.as_i64() == Some(-1) => Ok(None),
        other => id_text(other).map(Some).ok_or_else(|| {
            rec.bad(
                "wrong shape",
                format!("`parent_chat_id` must be an id, -1 or null, found {other}"),
            )
        }),
    }
}

/// All records, by id, with their parent links.
#[derive(Default)]
struct Graph {
    nodes: Vec<Node>,
    by_id: HashMap<String, usize>,
    /// Skipped and bad records, passed on before any session.
    early: Vec<Result<Outcome>>,
}

impl Graph {
    fn add(&mut self, rec: &RawRecord, file: usize, allow_mismatch: bool) -> Result<()> {
        let r: Record = rec.parse()?;
        let id = id_text(&r.chat_id).ok_or_else(|| {
            rec.bad(
                "wrong shape",
                format!(
                    "`chat_id` must be a string or an integer, found {}",
                    r.chat_id
                ),
            )
        })?;
        let parent = parent_text(rec, &r.parent_chat_id)?;
        let at = units_to_nanos(r.timestamp, 1_000_000_000).ok_or_else(|| {
            rec.bad(
                "bad timestamp",
                format!(
                    "`timestamp` must be non-negative seconds, found {}",
                    r.timestamp
                ),
            )
        })?;
        if let Some(hash_ids) = &r.hash_ids
            && !allow_mismatch
            && let Some(why) = hash_ids_mismatch(hash_ids, r.input_length, BLOCK_SIZE)
        {
            return Err(rec.bad("hash_ids length mismatch", why));
        }
        if self.by_id.contains_key(&id) {
            return Err(rec.bad(
                "duplicate chat_id",
                format!("chat_id {id} appeared earlier in the input"),
            ));
        }
        if r.input_length == 0 {
            self.early.push(Ok(Outcome::Skipped(EMPTY_PROMPT.into())));
            return Ok(());
        }
        self.by_id.insert(id.clone(), self.nodes.len());
        self.nodes.push(Node {
            id,
            parent,
            at,
            input: r.input_length,
            output: r.output_length,
            kind: r.kind.filter(|k| !k.trim().is_empty()),
            hash_ids: r.hash_ids,
            file: file as u32,
            line: rec.location.line.unwrap_or(0),
        });
        Ok(())
    }

    /// Session starts (roots, orphans) and each node's children by arrival.
    fn links(&self) -> (Vec<usize>, Vec<Vec<usize>>) {
        let mut starts = Vec::new();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            match node.parent.as_ref().and_then(|p| self.by_id.get(p)) {
                Some(&p) if p != i => children[p].push(i),
                Some(_) => {} // its own parent: a one-node cycle
                None => starts.push(i),
            }
        }
        for list in &mut children {
            list.sort_by_key(|&c| self.nodes[c].at);
        }
        (starts, children)
    }

    /// Follows the chains: the earliest child continues a session, later
    /// children (branches) start sessions of their own.
    fn chains(&self) -> (Vec<Vec<usize>>, Vec<usize>) {
        let (mut starts, children) = self.links();
        let mut visited: HashSet<usize> = HashSet::new();
        let mut chains = Vec::new();
        while let Some(start) = starts.pop() {
            let mut chain = Vec::new();
            let mut next = Some(start);
            while let Some(i) = next.filter(|i| visited.insert(*i)) {
                chain.push(i);
                let mut kids = children[i].iter();
                next = kids.next().copied();
                starts.extend(kids.copied());
            }
            chains.push(chain);
        }
        let unreached = (0..self.nodes.len())
            .filter(|i| !visited.contains(i))
            .collect();
        (chains, unreached)
    }

    fn into_sessions(mut self, files: Vec<PathBuf>) -> Sessions {
        let (mut chains, unreached) = self.chains();
        for i in unreached {
            let node = &self.nodes[i];
            self.early.push(Err(Error::bad(
                Location {
                    file: files[node.file as usize].clone(),
                    line: Some(node.line),
                    record: None,
                },
                "parent cycle",
                format!(
                    "chat {} is in a cycle of parent_chat_id links with no root",
                    node.id
                ),
            )));
        }
        chains.retain(|c| !c.is_empty());
        chains.sort_by_key(|c| (self.nodes[c[0]].at, c[0]));
        let origin = chains
            .iter()
            .flatten()
            .map(|&i| self.nodes[i].at)
            .min()
            .unwrap_or(0);
        self.early.reverse();
        chains.reverse();
        Sessions {
            early: self.early,
            chains,
            nodes: self.nodes,
            origin,
        }
    }
}

/// The linked sessions, handed out by first arrival (stacks are reversed).
struct Sessions {
    early: Vec<Result<Outcome>>,
    chains: Vec<Vec<usize>>,
    nodes: Vec<Node>,
    origin: Nanos,
}

impl Sessions {
    fn rows(&mut self, chain: &[usize]) -> Vec<TraceRow> {
        let Some(&first) = chain.first() else {
            return Vec::new();
        };
        let session_id = self.nodes[first].id.clone();
        let mut previous: Option<Nanos> = None;
        let mut rows = Vec::with_capacity(chain.len());
        for (turn, &i) in chain.iter().enumerate() {
            let node = &mut self.nodes[i];
            let turn = turn as u32;
            rows.push(TraceRow {
                request_id: ids::request_id(&session_id, turn),
                session_id: session_id.clone(),
                turn,
                arrival_ms: Some(offset_ms(node.at, self.origin)),
                think_ms: previous.map(|p| offset_ms(node.at, p).max(0.0)),
                input_tokens: Some(node.input),
                output_tokens: Some(node.output),
                hash_ids: node.hash_ids.take(),
                source: match &node.kind {
                    Some(kind) => format!("bailian/{kind}"),
                    None => "bailian".into(),
                },
                ..Default::default()
            });
            previous = Some(node.at);
        }
        rows
    }
}

impl SessionSource for Sessions {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        if let Some(early) = self.early.pop() {
            return Some(early);
        }
        let chain = self.chains.pop()?;
        Some(Ok(Outcome::Session(self.rows(&chain))))
    }

    fn block_size(&self) -> Option<u32> {
        Some(BLOCK_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(lines: &[&str]) -> Graph {
        let mut g = Graph::default();
        for (n, line) in lines.iter().enumerate() {
            let rec = RawRecord {
                bytes: line.as_bytes().to_vec(),
                location: Location {
                    file: "t.jsonl".into(),
                    line: Some(n as u64 + 1),
                    record: Some(n as u64),
                },
            };
            if let Err(e) = g.add(&rec, 0, false) {
                g.early.push(Err(e));
            }
        }
        g
    }

    fn line(id: i64, parent: i64, ts: f64) -> String {
        format!(
            r#"{{"chat_id": {id}, "parent_chat_id": {parent}, "timestamp": {ts}, "input_length": 20, "output_length": 3, "type": "text", "turn": 1, "hash_ids": [1, 2]}}"#
        )
    }

    #[test]
    fn branches_start_their_own_session() {
        let lines = [
            line(1, -1, 0.0),
            line(2, 1, 5.0),
            line(3, 1, 7.0),
            line(4, 2, 9.0),
        ];
        let g = graph(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let (chains, unreached) = g.chains();
        let ids: Vec<Vec<&str>> = chains
            .iter()
            .map(|c| c.iter().map(|&i| g.nodes[i].id.as_str()).collect())
            .collect();
        assert!(ids.contains(&vec!["1", "2", "4"]), "{ids:?}");
        assert!(ids.contains(&vec!["3"]), "{ids:?}");
        assert!(unreached.is_empty());
    }

    #[test]
    fn cycles_are_bad_records() {
        let lines = [line(1, 2, 0.0), line(2, 1, 1.0), line(3, 3, 2.0)];
        let g = graph(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let mut s = g.into_sessions(vec!["t.jsonl".into()]);
        let mut bad = 0;
        while let Some(o) = s.next_outcome() {
            assert!(matches!(o, Err(Error::BadRecord { ref kind, .. }) if kind == "parent cycle"));
            bad += 1;
        }
        assert_eq!(bad, 3);
    }

    #[test]
    fn parent_forms() {
        let g = graph(&[
            r#"{"chat_id": "a", "timestamp": 1, "input_length": 1, "output_length": 1}"#,
            r#"{"chat_id": "b", "parent_chat_id": "-1", "timestamp": 1, "input_length": 1, "output_length": 1}"#,
            r#"{"chat_id": "c", "parent_chat_id": null, "timestamp": 1, "input_length": 1, "output_length": 1}"#,
            r#"{"chat_id": "d", "parent_chat_id": [1], "timestamp": 1, "input_length": 1, "output_length": 1}"#,
            r#"{"chat_id": 1.5, "timestamp": 1, "input_length": 1, "output_length": 1}"#,
        ]);
        assert_eq!(g.nodes.len(), 3);
        assert!(g.nodes.iter().all(|n| n.parent.is_none()));
        assert_eq!(g.early.len(), 2);
    }
}
