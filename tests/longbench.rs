//! Integration tests: longbench.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};

use traces::TraceRow;

use crate::fake_hub::{FakeHub, Reply};
use crate::util::{fixture, read_rows, shared_data, tempdir, trace_bin, trace_err, trace_ok};

fn lb(rel: &str) -> String {
    fixture(&format!("longbench/{rel}")).display().to_string()
}

/// Converts `inputs` with `extra` flags; returns the rows and the JSON report.
fn convert(inputs: &[String], extra: &[&str]) -> (Vec<TraceRow>, serde_json::Value) {
    let dir = tempdir();
    let out = dir.path().join("out.parquet");
    let mut args: Vec<String> = vec!["convert".into(), "longbench".into()];
    args.extend(inputs.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-o".into(), out.display().to_string(), "--json".into()]);
    let stdout = trace_ok(&args);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    (read_rows(&out), report)
}

fn by_id(rows: &[TraceRow]) -> HashMap<&str, &TraceRow> {
    rows.iter().map(|r| (r.session_id.as_str(), r)).collect()
}

#[test]
fn real_qasper_record_both_layouts() {
    let mut prompts = Vec::new();
    for file in [
        "longbench/qasper_rec0.longbench_canonical.jsonl",
        "longbench/qasper_rec0.spectralKV_verbatim.jsonl",
    ] {
        let (rows, report) = convert(&[shared_data(file).display().to_string()], &[]);
        assert_eq!(report["sessions_written"], 1, "{file}");
        let r = &rows[0];
        assert_eq!(
            r.session_id,
            "3ac3eef636db11635a21a61804cb28e92c546a5686dd1e12"
        );
        assert_eq!(r.turn, 0);
        assert_eq!(r.source, "longbench/qasper");
        assert_eq!(r.output_tokens, Some(128));
        assert_eq!(
            r.reference_output.as_deref(),
            Some("Ground truth is not established in the paper")
        );
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.messages[0].role, "user");
        let p = &r.messages[0].content;
        assert!(p.starts_with("You are given a scientific article and a question."));
        assert!(p.contains("Article: 10pt\n1.10pt\n[ Characterizing Political Fake News"));
        assert!(
            p.ends_with("Question: How is the ground truth for fake news established?\n\nAnswer:")
        );
        assert!(p.len() > 15_000);
        prompts.push(p.clone());
    }
    // The extra keys of the vendored copy change nothing.
    assert_eq!(prompts[0], prompts[1]);
}

#[test]
fn same_record_in_two_files_is_kept_once() {
    let files: Vec<String> = [
        "longbench/qasper_rec0.longbench_canonical.jsonl",
        "longbench/qasper_rec0.spectralKV_verbatim.jsonl",
    ]
    .iter()
    .map(|f| shared_data(f).display().to_string())
    .collect();
    let (rows, report) = convert(&files, &[]);
    assert_eq!(rows.len(), 1);
    assert_eq!(report["duplicates"], 1);
    assert_eq!(report["records"], 2);
}

#[test]
fn folder_of_task_files_with_an_overlap() {
    let (rows, report) = convert(&[lb("two_tasks")], &[]);
    assert_eq!(report["duplicates"], 1, "{report}");
    assert_eq!(report["renamed_ids"], 0);
    assert_eq!(rows.len(), 4);
    let ids: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
    assert_eq!(ids, ["hp-001", "hp-002", "hp-003", "hpe-101"]);
    for r in &rows {
        // The `_e` file and the record without `dataset` map to the base task.
        assert_eq!(r.source, "longbench/hotpotqa");
        assert_eq!(r.output_tokens, Some(32));
        let p = &r.messages[0].content;
        assert!(p.starts_with("Answer the question based on the given passages."));
        assert!(p.contains("The following are given passages.\nPassage 1:\n"));
    }
    let rows = by_id(&rows);
    assert_eq!(
        rows["hp-002"].reference_output.as_deref(),
        Some("Marta Quill")
    );
    assert!(
        rows["hpe-101"].messages[0]
            .content
            .ends_with("Question: What did the bridge replace?\nAnswer:")
    );
}

#[test]
fn chinese_record() {
    let (rows, _) = convert(&[lb("multifieldqa_zh.jsonl")], &[]);
    let r = &rows[0];
    assert_eq!(r.source, "longbench/multifieldqa_zh");
    assert_eq!(r.output_tokens, Some(64));
    assert_eq!(r.reference_output.as_deref(), Some("一八九二年"));
    let p = &r.messages[0].content;
    assert!(p.starts_with("阅读以下文字并用中文简短回答：\n\n青石镇位于两条河流的交汇处。"));
    assert!(p.ends_with("问题：这座桥是哪一年建成的？\n回答："));
}

#[test]
fn v2_array_and_mixed_with_v1() {
    let (rows, _) = convert(&[lb("v2_data.json")], &[]);
    assert_eq!(rows.len(), 2);
    let rows = by_id(&rows);
    let r = rows["v2-0001"];
    assert_eq!(r.source, "longbench-v2/Single-Document QA");
    assert_eq!(r.reference_output.as_deref(), Some("B"));
    assert_eq!(r.output_tokens, Some(128));
    let p = &r.messages[0].content;
    assert!(p.starts_with(
        "Please read the following text and answer the question below.\n\n<text>\nThe keeper"
    ));
    assert!(p.contains("What is the correct answer to this question: Why does the keeper leave the island?\nChoices:\n(A) To buy oil\n(B) His daughter is ill\n"));
    assert!(p.ends_with("\"The correct answer is (insert answer here)\"."));
    assert_eq!(
        rows["v2-0002"].source,
        "longbench-v2/Code Repository Understanding"
    );

    let (rows, _) = convert(&[lb("v2_data.json"), lb("multifieldqa_zh.jsonl")], &[]);
    let sources: HashSet<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(sources.len(), 3);
}

#[test]
fn bad_json_line_fails_or_is_skipped() {
    let dir = tempdir();
    let out = dir.path().join("out.parquet");
    let err = trace_err([
        "convert",
        "longbench",
        &lb("bad_line.jsonl"),
        "-o",
        &out.display().to_string(),
    ]);
    assert!(err.contains("bad_line.jsonl:2"), "{err}");
    assert!(err.contains("--skip-bad"), "{err}");
    assert!(!out.exists());

    let (rows, report) = convert(&[lb("bad_line.jsonl")], &["--skip-bad"]);
    let ids: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
    assert_eq!(ids, ["ok-1", "ok-2"]);
    assert_eq!(report["bad"]["invalid JSON"], 1, "{report}");
}

#[test]
fn records_without_id_are_deduplicated_by_content() {
    let (rows, report) = convert(&[lb("no_id.jsonl")], &[]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].reference_output.as_deref(), Some("Pim"));
    assert!(rows[0].session_id.starts_with("longbench-"));
    assert_ne!(rows[0].session_id, rows[1].session_id);
    assert_eq!(report["duplicates"], 1);
    assert_eq!(report["skipped"]["empty context and input"], 1);
    // Stable ids: a second run gives the same.
    let (again, _) = convert(&[lb("no_id.jsonl")], &[]);
    assert_eq!(rows[0].session_id, again[0].session_id);
}

#[test]
fn sample_across_files_never_repeats_a_record() {
    let inputs = [
        lb("two_tasks"),
        lb("multifieldqa_zh.jsonl"),
        lb("v2_data.json"),
    ];
    // 4 + 1 + 2 unique records; hp-002 appears twice in the files.
    for seed in 0..12 {
        let seed = seed.to_string();
        let (rows, report) = convert(&inputs, &["--sample", "3", "--seed", &seed]);
        assert_eq!(rows.len(), 3);
        let ids: HashSet<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
        assert_eq!(ids.len(), 3, "seed {seed}");
        assert!(
            ids.iter().all(|id| !id.contains('~')),
            "seed {seed}: {ids:?}"
        );
        assert_eq!(report["renamed_ids"], 0);
    }
    let (rows, _) = convert(&inputs, &["--sample", "50"]);
    assert_eq!(rows.len(), 7);
    let contexts: HashSet<&str> = rows
        .iter()
        .map(|r| r.messages[0].content.as_str())
        .collect();
    assert_eq!(contexts.len(), 7);
}

#[test]
fn needs_inputs_or_hub_but_not_both() {
    let dir = tempdir();
    let out = dir.path().join("o.parquet").display().to_string();
    let err = trace_err(["convert", "longbench", "-o", &out]);
    assert!(err.contains("--hub"), "{err}");
    let err = trace_err([
        "convert",
        "longbench",
        &lb("no_id.jsonl"),
        "--hub",
        "-o",
        &out,
    ]);
    assert!(err.contains("not both"), "{err}");
}

// ---- the hub download, against a local stand-in for the hub -------------

const COMMIT_V1: &str = "0123456789abcdef0123456789abcdef01234567";
const COMMIT_V2: &str = "89abcdef0123456789abcdef0123456789abcdef";
const TOKEN: &str = "hf_test_token_123";

/// What the stand-in hub serves: v1's `data.zip`, v2's `data.json` when
/// given, behind `token` when given.
struct HubFiles {
    zip: Vec<u8>,
    v2: Option<Vec<u8>>,
    token: Option<String>,
}

/// The hub as LongBench's downloads meet it: v1's `data.zip` is an LFS file,
/// so its `resolve` URL redirects to a blob URL with the `X-Linked-Etag`
/// and `X-Repo-Commit` headers; v2's `data.json` is served directly; both
/// answer `Range` requests with 206.
fn longbench_hub(files: HubFiles) -> FakeHub {
    FakeHub::start(move |req| {
        let authorized = files.token.as_deref().is_none_or(|t| req.has_token(t));
        match req.path.as_str() {
            path if !authorized && path.contains("/resolve/") => Reply::error(
                401,
                None,
                "Access to dataset THUDM/LongBench is restricted. You must be authenticated to access it.",
            ),
            "/datasets/THUDM/LongBench/resolve/main/data.zip" => Reply::with(
                302,
                &[
                    (
                        "Location",
                        &format!("{}/lfs/longbench-data.zip", req.endpoint),
                    ),
                    ("X-Repo-Commit", COMMIT_V1),
                    ("X-Linked-Etag", "\"5eed5eed\""),
                    ("X-Linked-Size", &files.zip.len().to_string()),
                ],
                b"",
            ),
            "/lfs/longbench-data.zip" => Reply::ranged(req, &files.zip, &[]),
            "/datasets/THUDM/LongBench-v2/resolve/main/data.json" => match &files.v2 {
                Some(v2) => Reply::ranged(
                    req,
                    v2,
                    &[("X-Repo-Commit", COMMIT_V2), ("ETag", "\"v2etag\"")],
                ),
                None => Reply::error(404, None, "Repository not found"),
            },
            _ => Reply::error(404, None, "Repository not found"),
        }
    })
}

/// Runs `trace convert longbench --hub ...` with only the hub variables given.
fn hub_run(
    hf_home: &Path,
    endpoint: &str,
    token: Option<&str>,
    offline: bool,
    args: &[&str],
) -> (Output, std::path::PathBuf) {
    let out = hf_home.join("out.parquet");
    let _ = std::fs::remove_file(&out);
    let mut cmd = Command::new(trace_bin());
    cmd.args(["convert", "longbench", "--hub"])
        .args(args)
        .args(["-o", &out.display().to_string(), "--json"]);
    for var in [
        "HF_TOKEN",
        "HF_HUB_OFFLINE",
        "HF_HUB_CACHE",
        "HF_ENDPOINT",
        "HF_HOME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HF_HOME", hf_home).env("HF_ENDPOINT", endpoint);
    if let Some(t) = token {
        cmd.env("HF_TOKEN", t);
    }
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    }
    (cmd.output().expect("trace runs"), out)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok_rows(o: &Output, out: &Path) -> Vec<TraceRow> {
    assert!(o.status.success(), "trace failed:\n{}", stderr(o));
    read_rows(out)
}

fn sorted_ids(rows: &[TraceRow]) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|r| r.session_id.clone()).collect();
    ids.sort();
    ids
}

#[test]
fn hub_download_with_token_then_offline_from_cache() {
    let zip = std::fs::read(fixture("longbench/hub/data.zip")).expect("zip fixture");
    let v2 = std::fs::read(fixture("longbench/v2_data.json")).expect("v2 fixture");
    let home = tempdir();
    let hub = longbench_hub(HubFiles {
        zip,
        v2: Some(v2),
        token: Some(TOKEN.into()),
    });

    // Gated: no token, a clear refusal, nothing written.
    let (o, out) = hub_run(home.path(), &hub.endpoint, None, false, &["qasper"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("HTTP 401") && err.contains("HF_TOKEN"),
        "{err}"
    );
    assert!(err.contains("restricted"), "{err}");
    assert!(!out.exists());

    // With the token: v1 tasks from the zip (one stored, one deflated) and v2.
    let (o, out) = hub_run(
        home.path(),
        &hub.endpoint,
        Some(TOKEN),
        false,
        &["qasper", "qasper_e", "v2"],
    );
    let rows = ok_rows(&o, &out);
    assert_eq!(
        sorted_ids(&rows),
        ["q-1", "q-2", "qe-9", "v2-0001", "v2-0002"]
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report");
    assert_eq!(report["duplicates"], 1);
    let rows_by_id = by_id(&rows);
    assert_eq!(rows_by_id["qe-9"].source, "longbench/qasper");
    assert_eq!(
        rows_by_id["q-1"].reference_output.as_deref(),
        Some("the Harbour corpus")
    );
    assert_eq!(rows_by_id["v2-0002"].reference_output.as_deref(), Some("C"));
    let requests = hub.requests();
    assert!(requests.iter().any(|(p, _)| p == "/lfs/longbench-data.zip"));
    assert!(
        requests
            .iter()
            .filter(|(p, _)| p.contains("/resolve/"))
            .skip(1)
            .all(|(_, auth)| auth.as_deref() == Some(&*format!("Bearer {TOKEN}"))),
        "{requests:?}"
    );
    // The hub's cache layout under HF_HOME.
    let snapshot = home
        .path()
        .join("hub/datasets--THUDM--LongBench/snapshots")
        .join(COMMIT_V1)
        .join("data.zip");
    assert!(snapshot.exists());
    let main_ref = home.path().join("hub/datasets--THUDM--LongBench/refs/main");
    assert_eq!(std::fs::read_to_string(main_ref).expect("ref"), COMMIT_V1);
    let endpoint = hub.endpoint.clone();
    drop(hub);

    // Offline, the hub gone: everything comes from the cache.
    let (o, out) = hub_run(
        home.path(),
        &endpoint,
        None,
        true,
        &["qasper", "qasper_e", "v2"],
    );
    assert_eq!(
        sorted_ids(&ok_rows(&o, &out)),
        ["q-1", "q-2", "qe-9", "v2-0001", "v2-0002"]
    );
    // Without task names: every v1 task the cached zip holds.
    let (o, out) = hub_run(home.path(), &endpoint, None, true, &[]);
    let rows = ok_rows(&o, &out);
    assert_eq!(sorted_ids(&rows), ["q-1", "q-2", "t-1"]);
    assert_eq!(by_id(&rows)["t-1"].output_tokens, Some(64));
    // An unknown task names those that exist.
    let (o, _) = hub_run(home.path(), &endpoint, None, true, &["qasperr"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("qasperr") && err.contains("qasper_e"), "{err}");

    // Offline with an empty cache: a clear error.
    let empty = tempdir();
    let (o, out) = hub_run(empty.path(), &endpoint, None, true, &["qasper"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("HF_HUB_OFFLINE") && err.contains("not in the Hugging Face cache"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn hub_missing_repo_and_unreachable_hub() {
    let zip = std::fs::read(fixture("longbench/hub/data.zip")).expect("zip fixture");
    let home = tempdir();
    let hub = longbench_hub(HubFiles {
        zip,
        v2: None,
        token: None,
    });
    let (o, _) = hub_run(home.path(), &hub.endpoint, None, false, &["v2"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("THUDM/LongBench-v2") && err.contains("HTTP 404"),
        "{err}"
    );
    drop(hub);

    // Nothing listens on port 1 of the loopback address.
    let (o, _) = hub_run(home.path(), "http://127.0.0.1:1", None, false, &["qasper"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("cannot reach the hub at http://127.0.0.1:1"),
        "{err}"
    );
}
