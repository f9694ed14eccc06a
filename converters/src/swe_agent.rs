//! `trace convert swe-agent`: SWE-agent and mini-SWE-agent trajectories, one
//! session per trajectory, one turn per model call.
//!
//! A trajectory is a JSON object. Two of its keys can give the calls:
//!
//! - `trajectory`: the steps. SWE-agent 1.x records each step's `query`,
//!   the prompt of its own call; some earlier versions recorded `messages`,
//!   the context after the step (the next call's prompt). Either gives the
//!   prompts *as sent*: history processors may have cut old observations
//!   short, so the prompts need not grow append-only. The turns are built
//!   from these ("steps" layout): a prompt that extends the previous prompt
//!   and reply adds only its new messages; one that does not is written
//!   whole with `reset_context`. A step's `execution_time` (the action's
//!   run time) becomes the next turn's `think_ms`.
//! - `history`: every message as the agent appended it. Older trajectories
//!   have only this ("history" layout): each assistant message is a model
//!   call's reply, and the messages before it since the previous reply are
//!   the call's new input, as for `trace convert openai`.
//!
//! A mini-SWE-agent trajectory has neither, only `messages`, the
//! conversation as appended: it is read as a history.
//!
//! See `docs/formats/swe-agent.md`.

use std::collections::VecDeque;
use std::path::PathBuf;

use serde_json::{Map, Value};
use traces::{Message, TraceRow};

use crate::input::{JsonSource, RawRecord, RecordConverter, expand_tree};
use crate::openai::{MessageParser, build_turns};
use crate::{Outcome, Report, Result, SessionSource, ids};

const SOURCE: &str = "swe-agent";

/// Options of `trace convert swe-agent`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {
    /// Build the turns from `history` (every message as the agent appended
    /// it, nothing cut short) even where the steps record the prompts as
    /// they were sent.
    #[arg(long)]
    pub from_history: bool,
}

/// Opens the inputs: trajectory files (any name), or folders searched
/// through their subfolders for `*.traj` and `*.traj.json` files (SWE-agent
/// and mini-SWE-agent write one folder per task instance, beside other JSON
/// such as `preds.json`).
pub fn open(inputs: &[PathBuf], opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_tree(inputs, &[".traj", ".traj.json"])?;
    Ok(Box::new(JsonSource::new(
        files,
        Trajectories {
            opts: opts.clone(),
            counts: Counts::default(),
        },
    )))
}

/// What the source noticed, for the report.
#[derive(Debug, Default)]
struct Counts {
    steps_layout: u64,
    history_layout: u64,
    mini_layout: u64,
    /// Trajectories whose `info.model_stats.api_calls` differs from their turns.
    calls_differ: u64,
    dropped_parts: u64,
}

/// Converts each trajectory file's object, counting what it saw.
struct Trajectories {
    opts: Options,
    counts: Counts,
}

impl RecordConverter for Trajectories {
    fn convert(&mut self, rec: RawRecord, out: &mut VecDeque<Outcome>) -> Result<()> {
        out.extend(convert_record(&rec, &self.opts, &mut self.counts)?);
        Ok(())
    }

    fn finish(&mut self, report: &mut Report) {
        let c = &self.counts;
        let notes = [
            (
                "trajectories read from their steps' prompts as sent",
                c.steps_layout,
            ),
            (
                "trajectories read from their appended history",
                c.history_layout,
            ),
            (
                "mini-SWE-agent trajectories (one `messages` list)",
                c.mini_layout,
            ),
            (
                "trajectories whose model calls (info.model_stats.api_calls) differ from their turns",
                c.calls_differ,
            ),
            (
                "image/audio/file content parts left out (text parts kept)",
                c.dropped_parts,
            ),
        ];
        for (what, n) in notes {
            if n > 0 {
                report.note(what, n);
            }
        }
    }
}

/// Converts one trajectory (one JSON object): one session, or one per
/// agent of a history that several agents wrote.
fn convert_record(rec: &RawRecord, opts: &Options, counts: &mut Counts) -> Result<Vec<Outcome>> {
    let value: Value = rec.parse()?;
    let Value::Object(obj) = value else {
        return Err(rec.bad(
            "wrong shape",
            "a SWE-agent trajectory must be a JSON object with `trajectory` or `history`",
        ));
    };
    let stem = session_stem(rec);
    if !obj.contains_key("trajectory") && !obj.contains_key("history") {
        if let Some(Value::Array(messages)) = obj.get("messages") {
            // mini-SWE-agent: the conversation as appended, one list.
            let outcomes = from_history(rec, &stem, messages, &[], counts)?;
            counts.mini_layout += 1;
            return Ok(check_calls(&obj, outcomes, counts));
        }
        if obj.contains_key("role") {
            return Err(rec.bad(
                "wrong shape",
                "not a SWE-agent trajectory but a message: a file that is one array of \
                 messages (as mini-SWE-agent wrote before 1.0) is read by `trace convert openai`",
            ));
        }
        return Err(rec.bad(
            "wrong shape",
            "not a SWE-agent trajectory: the object has neither `trajectory` nor `history` \
             (nor mini-SWE-agent's `messages`)",
        ));
    }
    let steps = match obj.get("trajectory") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(steps)) => steps.as_slice(),
        Some(_) => return Err(rec.bad("wrong shape", "`trajectory` must be a list of steps")),
    };
    let history = match obj.get("history") {
        None | Some(Value::Null) => None,
        Some(Value::Array(h)) => Some(h.as_slice()),
        Some(_) => return Err(rec.bad("wrong shape", "`history` must be a list of messages")),
    };
    let prompts = if opts.from_history && history.is_some() {
        None
    } else if every_step_has(steps, "query") {
        Some(StepPrompts::Query)
    } else if every_step_has(steps, "messages") {
        Some(StepPrompts::Messages)
    } else {
        None
    };
    let outcomes = if let Some(prompts) = prompts {
        let session = from_steps(rec, &stem, steps, prompts, history, counts)?;
        counts.steps_layout += 1;
        vec![session]
    } else if let Some(history) = history {
        let sessions = from_history(rec, &stem, history, steps, counts)?;
        if sessions.iter().any(|s| matches!(s, Outcome::Session(_))) {
            counts.history_layout += 1;
        }
        sessions
    } else if steps.is_empty() {
        return Ok(vec![Outcome::Skipped("no model call".into())]);
    } else {
        return Err(rec.bad(
            "wrong shape",
            "the trajectory has neither `history` nor steps that record their prompts \
             (`query` or `messages`)",
        ));
    };
    Ok(check_calls(&obj, outcomes, counts))
}

/// The session id of a trajectory file: its name without `.traj` or
/// `.traj.json` (SWE-agent names the file after the task instance).
fn session_stem(rec: &RawRecord) -> String {
    let name = rec
        .location
        .file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let cut = [".traj.json", ".traj", ".jsonl", ".json"]
        .iter()
        .find(|s| lower.ends_with(*s))
        .map_or(name.len(), |s| name.len() - s.len());
    match &name[..cut] {
        "" => ids::content_id(SOURCE, &rec.bytes),
        stem => stem.to_string(),
    }
}

/// Counts a trajectory whose turns differ from its recorded model calls.
fn check_calls(
    obj: &Map<String, Value>,
    outcomes: Vec<Outcome>,
    counts: &mut Counts,
) -> Vec<Outcome> {
    let turns: usize = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Session(rows) => rows.len(),
            Outcome::Skipped(_) => 0,
        })
        .sum();
    if api_calls(obj).is_some_and(|calls| turns as u64 != calls) {
        counts.calls_differ += 1;
    }
    outcomes
}

/// `info.model_stats.api_calls`, where recorded and non-zero (a replayed
/// demonstration records 0).
fn api_calls(obj: &Map<String, Value>) -> Option<u64> {
    obj.get("info")?
        .get("model_stats")?
        .get("api_calls")?
        .as_u64()
        .filter(|&n| n > 0)
}

/// Parses a list of SWE-agent messages into normalised messages.
fn parse_messages(
    items: &[Value],
    counts: &mut Counts,
    at: impl Fn(usize, &str) -> String,
) -> std::result::Result<Vec<Message>, String> {
    let mut parser = MessageParser::new(&mut counts.dropped_parts);
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parser.message(&with_call_id(item)).map_err(|m| at(i, &m)))
        .collect()
}

/// SWE-agent writes a tool result's id as a list, `tool_call_ids`; the
/// message with its first id as `tool_call_id`, the OpenAI spelling.
fn with_call_id(item: &Value) -> std::borrow::Cow<'_, Value> {
    let first = item
        .get("tool_call_ids")
        .and_then(Value::as_array)
        .and_then(|ids| ids.first())
        .filter(|id| id.is_string());
    match (first, item.get("tool_call_id")) {
        (Some(id), None | Some(Value::Null)) => {
            let mut owned = item.clone();
            if let Value::Object(o) = &mut owned {
                o.insert("tool_call_id".into(), id.clone());
            }
            std::borrow::Cow::Owned(owned)
        }
        _ => std::borrow::Cow::Borrowed(item),
    }
}

/// Milliseconds of a step's `execution_time` (seconds), if recorded.
fn execution_ms(step: &Value) -> Option<f64> {
    step.get("execution_time")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s * 1000.0)
}

/// Which key of the steps records the prompts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StepPrompts {
    /// `query`: the messages sent for the step's own call (SWE-agent 1.x).
    Query,
    /// `messages`: the context after the step, i.e. the next call's prompt.
    Messages,
}

/// Whether every step records its prompt under `key`: a non-empty list of
/// objects with a `role` (SWE-agent writes `[{}]` for a step that made no
/// call).
fn every_step_has(steps: &[Value], key: &str) -> bool {
    !steps.is_empty()
        && steps.iter().all(|s| {
            s.get(key).and_then(Value::as_array).is_some_and(|items| {
                !items.is_empty() && items.iter().all(|m| m.get("role").is_some())
            })
        })
}

/// The steps layouts. The calls' contexts X_0..X_n: X_k is the prompt of
/// call k and X_n the context after the last call, so the reply of call k
/// is the last assistant message of X_k+1. With `query`, X_k is step k's
/// query and X_n the history (else the last step's `response`); with
/// `messages`, X_0 is step 0's context up to its reply and X_k step k-1's.
fn from_steps(
    rec: &RawRecord,
    stem: &str,
    steps: &[Value],
    prompts: StepPrompts,
    history: Option<&[Value]>,
    counts: &mut Counts,
) -> Result<Outcome> {
    let key = match prompts {
        StepPrompts::Query => "query",
        StepPrompts::Messages => "messages",
    };
    let mut contexts: Vec<(Vec<Message>, String)> = Vec::with_capacity(steps.len() + 1);
    for (k, step) in steps.iter().enumerate() {
        let items = step
            .get(key)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let messages = parse_messages(items, counts, |i, m| {
            format!("trajectory[{k}].{key}[{i}] {m}")
        })
        .map_err(|m| rec.bad("wrong shape", m))?;
        contexts.push((messages, format!("trajectory[{k}].{key}")));
    }
    match prompts {
        StepPrompts::Messages => {
            let (first, label) = &contexts[0];
            let Some(reply_at) = first.iter().rposition(|m| m.role == "assistant") else {
                return Err(rec.bad(
                    "wrong shape",
                    format!("{label} holds no assistant message (the step's action)"),
                ));
            };
            let prompt0 = (first[..reply_at].to_vec(), label.clone());
            contexts.insert(0, prompt0);
        }
        StepPrompts::Query => {
            let after = match history {
                Some(h) if !h.is_empty() => {
                    parse_messages(h, counts, |i, m| format!("history[{i}] {m}"))
                        .map_err(|m| rec.bad("wrong shape", m))?
                }
                _ => {
                    let last = &steps[steps.len() - 1];
                    let text = last.get("response").and_then(Value::as_str).unwrap_or("");
                    vec![Message::new("assistant", text)]
                }
            };
            contexts.push((after, "history".into()));
        }
    }
    let calls = contexts.len() - 1;
    let mut rows: Vec<TraceRow> = Vec::with_capacity(calls);
    // The previous call's prompt followed by its reply: what the session
    // holds when the next turn begins.
    let mut held: Vec<Message> = Vec::new();
    for k in 0..calls {
        let prompt = &contexts[k].0;
        let (after, label) = &contexts[k + 1];
        let Some(reply) = after.iter().rev().find(|m| m.role == "assistant") else {
            return Err(rec.bad(
                "wrong shape",
                format!("{label} holds no assistant message (the reply of call {k})"),
            ));
        };
        let extends = k > 0 && prompt.len() > held.len() && prompt.starts_with(&held);
        let (messages, reset) = if k == 0 || extends {
            (prompt[held.len()..].to_vec(), false)
        } else {
            (prompt.clone(), true)
        };
        let turn = k as u32;
        rows.push(TraceRow {
            request_id: ids::request_id(stem, turn),
            session_id: stem.to_string(),
            turn,
            think_ms: k.checked_sub(1).and_then(|p| execution_ms(&steps[p])),
            messages,
            reset_context: reset,
            reference_output: (!reply.content.is_empty()).then(|| reply.content.clone()),
            reference_tool_calls: reply.tool_calls.clone(),
            source: SOURCE.to_string(),
            ..Default::default()
        });
        held.clear();
        held.extend_from_slice(prompt);
        // What the replayer appends as the recorded reply.
        let mut sent_reply = Message::new("assistant", reply.content.clone());
        sent_reply.tool_calls = reply.tool_calls.clone();
        held.push(sent_reply);
    }
    if rows
        .first()
        .is_none_or(|r| !r.messages.iter().any(|m| m.role == "user"))
    {
        return Ok(Outcome::Skipped("no user turn".into()));
    }
    Ok(Outcome::Session(rows))
}

/// The history layout: one session per agent named in the messages (one
/// session when there is one agent), built as OpenAI conversations are,
/// up to the agent's last reply.
fn from_history(
    rec: &RawRecord,
    stem: &str,
    history: &[Value],
    steps: &[Value],
    counts: &mut Counts,
) -> Result<Vec<Outcome>> {
    let messages = parse_messages(history, counts, |i, m| format!("history[{i}] {m}"))
        .map_err(|m| rec.bad("wrong shape", m))?;
    let agent_of = |v: &Value| {
        v.get("agent")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut agents: Vec<String> = Vec::new();
    for v in history {
        let a = agent_of(v);
        if !agents.contains(&a) {
            agents.push(a);
        }
    }
    let mut sessions = Vec::new();
    let mut skipped = None;
    for agent in &agents {
        let mut own: Vec<Message> = history
            .iter()
            .zip(&messages)
            .filter(|(v, _)| agent_of(v) == *agent)
            .map(|(_, m)| m.clone())
            .collect();
        // Messages after the agent's last reply (the final observation)
        // were never sent.
        own.truncate(
            own.iter()
                .rposition(|m| m.role == "assistant")
                .map_or(0, |i| i + 1),
        );
        let session_id = match agents.len() {
            1 => stem.to_string(),
            _ => format!("{stem}/{agent}"),
        };
        match build_turns(&session_id, SOURCE, own, false) {
            Outcome::Session(mut session) => {
                // One agent whose calls match the steps one to one: the
                // steps' run times are the pauses between its calls.
                if agents.len() == 1 && session.len() == steps.len() {
                    for (row, step) in session.iter_mut().skip(1).zip(steps) {
                        row.think_ms = execution_ms(step);
                    }
                }
                sessions.push(Outcome::Session(session));
            }
            Outcome::Skipped(why) => skipped = Some(why),
        }
    }
    if sessions.is_empty() {
        return Ok(vec![Outcome::Skipped(
            skipped.unwrap_or_else(|| "no model call".into()),
        )]);
    }
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;

    fn convert(json: &str, opts: &Options) -> (Result<Vec<Outcome>>, Counts) {
        let rec = RawRecord {
            bytes: json.as_bytes().to_vec(),
            location: Location::file("dir/run-7.traj"),
        };
        let mut counts = Counts::default();
        (convert_record(&rec, opts, &mut counts), counts)
    }

    fn sessions(json: &str, opts: &Options) -> Vec<Vec<TraceRow>> {
        let (outcomes, _) = convert(json, opts);
        outcomes
            .expect("converts")
            .into_iter()
            .map(|o| match o {
                Outcome::Session(rows) => rows,
                Outcome::Skipped(why) => panic!("skipped: {why}"),
            })
            .collect()
    }

    const CALL: &str =
        r#"[{"id":"c1","type":"function","function":{"name":"bash","arguments":"{}"}}]"#;

    /// Three calls; the third step's context cuts the first observation short.
    fn steps_json(cut: bool) -> String {
        let sys = r#"{"role":"system","content":"S"}"#;
        let user = r#"{"role":"user","content":[{"type":"text","text":"fix it"}]}"#;
        let a = |n: u32| format!(r#"{{"role":"assistant","content":"a{n}","tool_calls":{CALL}}}"#);
        let o =
            |text: &str| format!(r#"{{"role":"tool","content":"{text}","tool_call_ids":["c1"]}}"#);
        let first = if cut { o("(cut)") } else { o("out0") };
        format!(
            r#"{{"trajectory":[
              {{"execution_time":0.5,"messages":[{sys},{user},{a0},{o0}]}},
              {{"execution_time":1.25,"messages":[{sys},{user},{a0},{o0},{a1},{o1}]}},
              {{"messages":[{sys},{user},{a0},{first},{a1},{o1},{a2},{o2}]}}],
              "history":[{sys},{user},{a0},{o0},{a1},{o1},{a2},{o2}],
              "info":{{"model_stats":{{"api_calls":3}}}}}}"#,
            a0 = a(0),
            a1 = a(1),
            a2 = a(2),
            o0 = o("out0"),
            o1 = o("out1"),
            o2 = o("out2"),
        )
    }

    #[test]
    fn steps_give_the_prompts_as_sent() {
        let rows = sessions(&steps_json(false), &Options::default()).remove(0);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].session_id, "run-7");
        assert_eq!(rows[0].request_id, "run-7#0");
        let roles = |r: &TraceRow| {
            r.messages
                .iter()
                .map(|m| m.role.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(roles(&rows[0]), ["system", "user"]);
        assert_eq!(rows[0].messages[1].content, "fix it");
        assert_eq!(rows[0].reference_output.as_deref(), Some("a0"));
        assert!(
            rows[0]
                .reference_tool_calls
                .as_deref()
                .is_some_and(|c| c.contains("\"c1\""))
        );
        assert_eq!(rows[0].think_ms, None);
        assert_eq!(roles(&rows[1]), ["tool"]);
        assert_eq!(rows[1].messages[0].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(rows[1].think_ms, Some(500.0));
        assert_eq!(rows[2].think_ms, Some(1250.0));
        assert_eq!(rows[2].reference_output.as_deref(), Some("a2"));
        assert!(
            rows.iter()
                .all(|r| !r.reset_context && r.source == "swe-agent")
        );
    }

    /// SWE-agent 1.x: each step's `query` is the prompt of its own call.
    #[test]
    fn steps_with_queries_give_the_prompts_as_sent() {
        let sys = r#"{"role":"system","content":"S"}"#;
        let user = r#"{"role":"user","content":[{"type":"text","text":"fix it","cache_control":{"type":"ephemeral"}}]}"#;
        let a = |n: u32| format!(r#"{{"role":"assistant","content":"a{n}","tool_calls":{CALL}}}"#);
        let o = |n: u32| format!(r#"{{"role":"tool","content":"out{n}","tool_call_ids":["c1"]}}"#);
        let step = |query: String, response: &str| {
            format!(r#"{{"query":[{query}],"response":"{response}","execution_time":0.25}}"#)
        };
        let steps = [
            step(format!("{sys},{user}"), "a0"),
            step(format!("{sys},{user},{},{}", a(0), o(0)), "a1"),
            step(
                format!("{sys},{user},{},{},{},{}", a(0), o(0), a(1), o(1)),
                "a2 raw",
            ),
        ]
        .join(",");
        let history = format!(
            "{sys},{user},{},{},{},{},{},{}",
            a(0),
            o(0),
            a(1),
            o(1),
            a(2),
            o(2)
        );
        let with_history = format!(r#"{{"trajectory":[{steps}],"history":[{history}]}}"#);
        let rows = sessions(&with_history, &Options::default()).remove(0);
        assert_eq!(rows.len(), 3);
        let contents = |r: &TraceRow| {
            r.messages
                .iter()
                .map(|m| m.content.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(contents(&rows[0]), ["S", "fix it"]);
        assert_eq!(contents(&rows[1]), ["out0"]);
        assert_eq!(contents(&rows[2]), ["out1"]);
        let replies: Vec<_> = rows.iter().map(|r| r.reference_output.as_deref()).collect();
        assert_eq!(replies, [Some("a0"), Some("a1"), Some("a2")]);
        assert!(
            rows.iter()
                .all(|r| r.reference_tool_calls.is_some() && !r.reset_context)
        );
        assert_eq!(rows[2].think_ms, Some(250.0));
        // Without a history, the last reply is the last step's response.
        let bare = format!(r#"{{"trajectory":[{steps}]}}"#);
        let rows = sessions(&bare, &Options::default()).remove(0);
        assert_eq!(rows[2].reference_output.as_deref(), Some("a2 raw"));
        assert_eq!(rows[2].reference_tool_calls, None);
        // A step that made no call (`[{}]`): the history is used instead.
        let no_call = with_history.replacen(&format!("[{sys},{user}]"), "[{}]", 1);
        let (_, counts) = convert(&no_call, &Options::default());
        assert_eq!((counts.history_layout, counts.steps_layout), (1, 0));
    }

    #[test]
    fn a_prompt_cut_short_is_written_whole_with_reset_context() {
        // The cut shows in step 2's context, the prompt of call 3 (none
        // here): prompts 0..2 still grow. Cut step 1 instead.
        let json = steps_json(false).replacen(
            r#"{"role":"tool","content":"out0","tool_call_ids":["c1"]},{"role":"assistant","content":"a1""#,
            r#"{"role":"tool","content":"(cut)","tool_call_ids":["c1"]},{"role":"assistant","content":"a1""#,
            1,
        );
        let rows = sessions(&json, &Options::default()).remove(0);
        assert!(!rows[1].reset_context);
        assert!(rows[2].reset_context);
        let contents: Vec<&str> = rows[2]
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(contents, ["S", "fix it", "a0", "(cut)", "a1", "out1"]);
    }

    #[test]
    fn history_is_used_when_asked_or_when_steps_lack_prompts() {
        let opts = Options { from_history: true };
        let rows = sessions(&steps_json(true), &opts).remove(0);
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| !r.reset_context));
        // One agent whose calls match the steps: their run times are the pauses.
        assert_eq!(rows[1].think_ms, Some(500.0));
        let (_, counts) = convert(&steps_json(true), &opts);
        assert_eq!((counts.history_layout, counts.steps_layout), (1, 0));
    }

    #[test]
    fn each_agent_of_a_history_is_a_session() {
        let json = r#"{"history":[
            {"role":"system","content":"S","agent":"main"},
            {"role":"user","content":"q","agent":"main"},
            {"role":"assistant","content":"a","agent":"main"},
            {"role":"user","content":"review","agent":"reviewer"},
            {"role":"assistant","content":"ok","agent":"reviewer"},
            {"role":"user","content":"q2","agent":"main"},
            {"role":"assistant","content":"a2","agent":"main"}],
            "info":{"model_stats":{"api_calls":3}}}"#;
        let s = sessions(json, &Options::default());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].len(), 2);
        assert_eq!(s[0][0].session_id, "run-7/main");
        assert_eq!(s[1][0].session_id, "run-7/reviewer");
        assert_eq!(s[1][0].reference_output.as_deref(), Some("ok"));
        let (_, counts) = convert(json, &Options::default());
        assert_eq!(counts.calls_differ, 0);
    }

    #[test]
    fn calls_that_differ_from_the_recorded_count_are_noted() {
        let json = steps_json(false).replace(r#""api_calls":3"#, r#""api_calls":5"#);
        let (_, counts) = convert(&json, &Options::default());
        assert_eq!(counts.calls_differ, 1);
    }

    #[test]
    fn mini_swe_agent_messages_are_one_session() {
        let json = r#"{"info":{"model_stats":{"api_calls":2}},"trajectory_format":"mini-swe-agent-1.1",
            "messages":[{"role":"system","content":"S"},{"role":"user","content":"task"},
            {"role":"assistant","content":"ls","extra":{}},{"role":"user","content":"out"},
            {"role":"assistant","content":"submit"},{"role":"user","content":"done"}]}"#;
        let (outcomes, counts) = convert(json, &Options::default());
        let rows = match outcomes.expect("converts").remove(0) {
            Outcome::Session(rows) => rows,
            other => panic!("{other:?}"),
        };
        assert_eq!(rows.len(), 2, "the final observation is never sent");
        assert_eq!(rows[0].session_id, "run-7");
        assert_eq!(rows[1].reference_output.as_deref(), Some("submit"));
        assert_eq!((counts.mini_layout, counts.calls_differ), (1, 0));
    }

    #[test]
    fn session_ids_are_file_names_without_their_trajectory_suffix() {
        let id = |file: &str| {
            session_stem(&RawRecord {
                bytes: b"{}".to_vec(),
                location: Location::file(file),
            })
        };
        assert_eq!(id("a/django__django-1.traj"), "django__django-1");
        assert_eq!(id("a/x.TRAJ.json"), "x");
        assert_eq!(id("runs.jsonl"), "runs");
        assert!(id(".traj").starts_with("swe-agent-"));
    }

    #[test]
    fn empty_trajectories_are_skipped() {
        for json in [
            r#"{"trajectory":[],"history":[]}"#,
            r#"{"history":[{"role":"system","content":"S"}]}"#,
            r#"{"trajectory":[]}"#,
        ] {
            let (outcomes, _) = convert(json, &Options::default());
            match outcomes.expect("ok").as_slice() {
                [Outcome::Skipped(_)] => {}
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_shapes_are_errors_naming_the_place() {
        for (json, says) in [
            ("[1]", "JSON object"),
            (r#"{"role":"user","content":"x"}"#, "trace convert openai"),
            (r#"{"steps":[]}"#, "neither"),
            (r#"{"trajectory":{}}"#, "`trajectory`"),
            (r#"{"history":"x"}"#, "`history`"),
            (
                r#"{"history":[{"role":"alien","content":"x"}]}"#,
                "history[0]",
            ),
            (
                r#"{"trajectory":[{"messages":[{"role":"user","content":"q"}]}]}"#,
                "trajectory[0].messages holds no assistant",
            ),
            (
                r#"{"trajectory":[{"messages":[{"role":"user","content":5},{"role":"assistant","content":"a"}]}]}"#,
                "trajectory[0].messages[0]",
            ),
        ] {
            match convert(json, &Options::default()).0 {
                Err(crate::Error::BadRecord { kind, message, .. }) => {
                    assert_eq!(kind, "wrong shape", "{json}");
                    assert!(message.contains(says), "{json}: {message}");
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }
}
