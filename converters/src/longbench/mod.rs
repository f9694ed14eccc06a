//! `trace convert longbench`: LongBench v1 / LongBench-E task files and
//! LongBench v2, read from files or fetched from the Hugging Face hub.
//!
//! Every record becomes a single-turn session whose user message is the
//! benchmark's own prompt for the record's task (see [`templates`]), with the
//! task's answer budget as `output_tokens`. v1 and v2 records are told apart
//! by their keys, so one run may mix them. Records repeated across files
//! (same `_id`, or the same context and question when there is no `_id`) are
//! kept once and counted as duplicates. See `docs/formats/longbench.md`.

mod hub;
mod templates;

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use traces::{Message, TraceRow};

use crate::hub_env::HubEnv;
use crate::input::{JsonRecords, RawRecord, expand_inputs};
use crate::{Error, Outcome, Report, Result, SessionSource, ids};
use templates::{GENERIC, Task, V2_MAX_NEW_TOKENS, V2Question};

/// Options of `trace convert longbench`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {
    /// Download from the Hugging Face hub instead of reading files. With no
    /// TASK: the 21 LongBench v1 tasks. A TASK is a v1 task name (qasper,
    /// narrativeqa, ..., or a LongBench-E name such as qasper_e), `v1` (all
    /// v1 tasks), `e` (all LongBench-E files) or `v2` (LongBench v2).
    /// Honours HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_TOKEN and
    /// HF_HUB_OFFLINE=1 (use only the cache).
    #[arg(long, num_args = 0.., value_name = "TASK")]
    pub hub: Option<Vec<String>>,
}

/// Opens the inputs (or the hub download) as a source of sessions.
pub fn open(inputs: &[PathBuf], opts: &Options) -> Result<Box<dyn SessionSource>> {
    let parts = match &opts.hub {
        Some(_) if !inputs.is_empty() => {
            return Err(Error::Usage(
                "trace convert longbench: give input files or --hub, not both".into(),
            ));
        }
        Some(words) => {
            let env = HubEnv::from_env().ok_or_else(|| {
                Error::Usage(
                    "--hub: cannot tell where the Hugging Face cache is: set HF_HOME".into(),
                )
            })?;
            hub::parts(words, &env)?
        }
        None if inputs.is_empty() => {
            return Err(Error::Usage(
                "trace convert longbench: give input files or folders, or --hub [TASK...]".into(),
            ));
        }
        None => expand_inputs(inputs, &["jsonl", "json"])?
            .into_iter()
            .map(Part::File)
            .collect(),
    };
    Ok(Box::new(LongBenchSource::new(parts)))
}

/// One input: a file, or a task file inside v1's `data.zip`.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    File(PathBuf),
    ZipMember { zip: PathBuf, member: String },
}

impl Part {
    /// The path errors name (`.../data.zip/data/qasper.jsonl` for a member).
    fn label(&self) -> PathBuf {
        match self {
            Part::File(p) => p.clone(),
            Part::ZipMember { zip, member } => zip.join(member),
        }
    }

    fn reader(&self) -> Result<Box<dyn BufRead>> {
        match self {
            Part::File(p) => Ok(Box::new(crate::input::open(p)?)),
            Part::ZipMember { zip, member } => hub::open_member(zip, member),
        }
    }
}

/// The task a file name stands for (`qasper_e.jsonl` -> `qasper_e`), used
/// when a record has no `dataset`.
fn task_from_file_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    (!stem.is_empty()).then(|| stem.to_string())
}

struct Current {
    records: JsonRecords<Box<dyn BufRead>>,
    file_task: Option<String>,
}

/// Reads the parts in turn, dropping records seen before.
struct LongBenchSource {
    parts: std::vec::IntoIter<Part>,
    current: Option<Current>,
    seen: HashSet<String>,
    duplicates: u64,
}

impl LongBenchSource {
    fn new(parts: Vec<Part>) -> Self {
        LongBenchSource {
            parts: parts.into_iter(),
            current: None,
            seen: HashSet::new(),
            duplicates: 0,
        }
    }

    fn open_next(&mut self) -> Option<Result<()>> {
        let part = self.parts.next()?;
        let label = part.label();
        Some(part.reader().map(|reader| {
            self.current = Some(Current {
                records: JsonRecords::new(&label, reader),
                file_task: task_from_file_name(&label),
            });
        }))
    }
}

impl SessionSource for LongBenchSource {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        loop {
            let Some(current) = self.current.as_mut() else {
                if let Err(e) = self.open_next()? {
                    return Some(Err(e));
                }
                continue;
            };
            let rec = match current.records.next() {
                None => {
                    self.current = None;
                    continue;
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(rec)) => rec,
            };
            match convert_record(&rec, current.file_task.as_deref()) {
                Err(e) => return Some(Err(e)),
                Ok((key, outcome)) => {
                    if self.seen.insert(key) {
                        return Some(Ok(outcome));
                    }
                    self.duplicates += 1;
                }
            }
        }
    }

    fn finish(&mut self, report: &mut Report) {
        // Duplicates were read too: count them among the records.
        report.records += self.duplicates;
        report.duplicates += self.duplicates;
    }
}

/// Converts one record; returns its deduplication key and its outcome.
fn convert_record(rec: &RawRecord, file_task: Option<&str>) -> Result<(String, Outcome)> {
    let value: Value = rec.parse()?;
    let Value::Object(obj) = value else {
        return Err(rec.bad("wrong shape", "a LongBench record must be a JSON object"));
    };
    if obj.contains_key("question") && obj.contains_key("choice_A") {
        convert_v2(rec, &obj)
    } else if obj.contains_key("context") {
        convert_v1(rec, &obj, file_task)
    } else {
        Err(rec.bad(
            "wrong shape",
            "not a LongBench record: expected v1 keys (context, input, answers) \
             or v2 keys (context, question, choice_A..choice_D)",
        ))
    }
}

/// A string field: missing or null is `None`, anything but a string is an error.
fn text<'a>(rec: &RawRecord, obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(rec.bad("wrong shape", format!("`{key}` must be a string"))),
    }
}

fn required<'a>(rec: &RawRecord, obj: &'a Map<String, Value>, key: &str) -> Result<&'a str> {
    text(rec, obj, key)?.ok_or_else(|| rec.bad("wrong shape", format!("`{key}` is missing")))
}

/// The record's `_id` (a string or a number), if it has one.
fn record_id(rec: &RawRecord, obj: &Map<String, Value>) -> Result<Option<String>> {
    match obj.get("_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(rec.bad("wrong shape", "`_id` must be a string")),
    }
}

/// `_id`, else an id derived from the prompt's content (so the same content
/// gets the same id, which is also how such records are deduplicated).
fn session_id(id: Option<String>, prefix: &str, parts: &[&str]) -> String {
    id.unwrap_or_else(|| ids::content_id(prefix, parts.join("\u{0}").as_bytes()))
}

/// `answers[0]` (v1 answers are a list; a lone string is taken as is).
fn first_answer(rec: &RawRecord, obj: &Map<String, Value>) -> Result<Option<String>> {
    match obj.get("answers") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(items)) => match items.first() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Ok(Some(other.to_string())),
        },
        Some(_) => Err(rec.bad("wrong shape", "`answers` must be a list of strings")),
    }
}

/// The record's task: `dataset`, else the file's name; `_e` names map to
/// their base task.
fn resolve_task(dataset: Option<&str>, file_task: Option<&str>) -> (String, &'static Task) {
    let by_dataset = dataset
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| (d, templates::v1_task(d)));
    let by_file = file_task.map(|f| (f, templates::v1_task(f)));
    match (by_dataset, by_file) {
        (Some((_, Some(task))), _) | (None, Some((_, Some(task)))) => (task.name.to_string(), task),
        (Some((name, None)), _) => (name.to_string(), &GENERIC),
        // A file name that is no task (e.g. `sample.jsonl`) says nothing.
        (None, _) => ("unknown".to_string(), &GENERIC),
    }
}

fn single_turn(
    id: String,
    prompt: String,
    reply: Option<String>,
    budget: u32,
    source: String,
) -> Outcome {
    Outcome::Session(vec![TraceRow {
        request_id: ids::request_id(&id, 0),
        session_id: id,
        turn: 0,
        messages: vec![Message::new("user", prompt)],
        reference_output: reply,
        output_tokens: Some(budget),
        source,
        ..Default::default()
    }])
}

fn convert_v1(
    rec: &RawRecord,
    obj: &Map<String, Value>,
    file_task: Option<&str>,
) -> Result<(String, Outcome)> {
    let context = text(rec, obj, "context")?.unwrap_or_default();
    let input = text(rec, obj, "input")?.unwrap_or_default();
    let reply = first_answer(rec, obj)?;
    let dataset = text(rec, obj, "dataset")?;
    let id = session_id(record_id(rec, obj)?, "longbench", &[context, input]);
    if context.trim().is_empty() && input.trim().is_empty() {
        return Ok((id, Outcome::Skipped("empty context and input".into())));
    }
    let (task_name, task) = resolve_task(dataset, file_task);
    let prompt = templates::v1_prompt(task, context, input);
    let outcome = single_turn(
        id.clone(),
        prompt,
        reply,
        task.max_new_tokens,
        format!("longbench/{task_name}"),
    );
    Ok((id, outcome))
}

fn convert_v2(rec: &RawRecord, obj: &Map<String, Value>) -> Result<(String, Outcome)> {
    let q = V2Question {
        context: text(rec, obj, "context")?.unwrap_or_default(),
        question: required(rec, obj, "question")?,
        choices: [
            required(rec, obj, "choice_A")?,
            required(rec, obj, "choice_B")?,
            required(rec, obj, "choice_C")?,
            required(rec, obj, "choice_D")?,
        ],
    };
    let answer = text(rec, obj, "answer")?.map(|a| a.trim().to_string());
    let domain = text(rec, obj, "domain")?
        .map(str::trim)
        .filter(|d| !d.is_empty());
    let mut parts = vec![q.context, q.question];
    parts.extend(q.choices);
    let id = session_id(record_id(rec, obj)?, "longbench-v2", &parts);
    if q.context.trim().is_empty() && q.question.trim().is_empty() {
        return Ok((id, Outcome::Skipped("empty context and question".into())));
    }
    let source = match domain {
        Some(d) => format!("longbench-v2/{d}"),
        None => "longbench-v2".to_string(),
    };
    let outcome = single_turn(
        id.clone(),
        templates::v2_prompt(&q),
        answer,
        V2_MAX_NEW_TOKENS,
        source,
    );
    Ok((id, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;

    fn rec(json: &str) -> RawRecord {
        RawRecord {
            bytes: json.as_bytes().to_vec(),
            location: Location::file("t.jsonl"),
        }
    }

    fn row(json: &str, file_task: Option<&str>) -> TraceRow {
        match convert_record(&rec(json), file_task).expect("converts").1 {
            Outcome::Session(mut rows) => {
                assert_eq!(rows.len(), 1);
                rows.remove(0)
            }
            Outcome::Skipped(r) => panic!("skipped: {r}"),
        }
    }

    #[test]
    fn v1_record_uses_its_task_template_and_budget() {
        let r = row(
            r#"{"input":"Who?","context":"A story.","answers":["Ann","Anne"],"length":2,
                "dataset":"narrativeqa","language":"en","all_classes":null,"_id":"abc","extra":1}"#,
            None,
        );
        assert_eq!(r.session_id, "abc");
        assert_eq!(r.request_id, "abc#0");
        assert_eq!(r.source, "longbench/narrativeqa");
        assert_eq!(r.output_tokens, Some(128));
        assert_eq!(r.reference_output.as_deref(), Some("Ann"));
        let prompt = &r.messages[0].content;
        assert!(prompt.starts_with("You are given a story"));
        assert!(prompt.contains("Story: A story.\n\n"));
        assert!(prompt.ends_with("Question: Who?\n\nAnswer:"));
    }

    #[test]
    fn task_falls_back_to_file_name_then_generic() {
        let r = row(
            r#"{"input":"q","context":"c","answers":[]}"#,
            Some("hotpotqa_e"),
        );
        assert_eq!(r.source, "longbench/hotpotqa");
        assert_eq!(r.output_tokens, Some(32));
        assert_eq!(r.reference_output, None);
        assert!(r.session_id.starts_with("longbench-"));
        let r = row(
            r#"{"input":"q","context":"c","dataset":"mystery"}"#,
            Some("qasper"),
        );
        assert_eq!(r.source, "longbench/mystery");
        assert_eq!(r.messages[0].content, "c\n\nQuestion: q\nAnswer:");
        assert_eq!(r.output_tokens, Some(GENERIC.max_new_tokens));
        let r = row(r#"{"context":"c"}"#, Some("sample"));
        assert_eq!(r.source, "longbench/unknown");
    }

    #[test]
    fn same_content_same_id_without_id() {
        let a = convert_record(&rec(r#"{"input":"q","context":"c"}"#), None)
            .expect("a")
            .0;
        let b = convert_record(&rec(r#"{"context":"c","input":"q","answers":["x"]}"#), None)
            .expect("b")
            .0;
        let c = convert_record(&rec(r#"{"context":"cq","input":""}"#), None)
            .expect("c")
            .0;
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn v2_record() {
        let r = row(
            r#"{"_id":"v2a","domain":"Single-Document QA","sub_domain":"x","difficulty":"easy",
                "length":"short","question":"Which?","choice_A":"one","choice_B":"two",
                "choice_C":"three","choice_D":"four","answer":"C","context":" The doc. "}"#,
            None,
        );
        assert_eq!(r.source, "longbench-v2/Single-Document QA");
        assert_eq!(r.reference_output.as_deref(), Some("C"));
        assert_eq!(r.output_tokens, Some(V2_MAX_NEW_TOKENS));
        assert!(r.messages[0].content.contains("<text>\nThe doc.\n</text>"));
        assert!(r.messages[0].content.contains("(C) three\n"));
    }

    #[test]
    fn empty_records_are_skipped() {
        for json in [
            r#"{"input":" ","context":"","_id":"e"}"#,
            r#"{"question":"","choice_A":"a","choice_B":"b","choice_C":"c","choice_D":"d","context":""}"#,
        ] {
            let (_, o) = convert_record(&rec(json), None).expect("parses");
            assert!(matches!(o, Outcome::Skipped(_)), "{json}");
        }
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for bad in [
            "[1]",
            r#"{"input":"q"}"#,
            r#"{"context":5}"#,
            r#"{"context":"c","answers":{"a":1}}"#,
            r#"{"context":"c","_id":[1]}"#,
            r#"{"question":"q","choice_A":"a","context":"c"}"#,
            "{\"context\": ",
        ] {
            let err = convert_record(&rec(bad), None).expect_err(bad);
            assert!(matches!(err, Error::BadRecord { .. }), "{bad}: {err}");
        }
    }
}
