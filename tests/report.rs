//! Integration tests: `trace report` and `trace compare` on real runs of
//! `trace replay` against `trace mock`, their figures recomputed with
//! DuckDB and Polars (tests/report/check_report.py), and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;

use crate::util::*;

fn python() -> PathBuf {
    venv_python()
}

fn agent_trace(dir: &Path, users: u32, turns: u32) -> PathBuf {
    let trace = dir.join("agent.parquet");
    trace_ok([
        "synth",
        "agent",
        "--users",
        &users.to_string(),
        "--turns",
        &turns.to_string(),
        "--system-prefix-tokens",
        "60",
        "--user-prefix-tokens",
        "20",
        "--turn-input-tokens",
        "30",
        "--turn-output-tokens",
        "6",
        "--context-window",
        "200",
        "-o",
        trace.to_str().expect("utf8"),
    ]);
    trace
}

/// One replay into its own results folder; returns the run folder.
fn replay(trace: &Path, url: &str, results: &Path, extra: &[&str]) -> PathBuf {
    let out = run_replay(trace, url, results, extra);
    replay_rows(&out, results).0
}

fn check_with_python(report: &Path, runs: &[&Path], at_least: u64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report/check_report.py");
    let out = Command::new(python())
        .arg(script)
        .arg(report)
        .args(runs)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check_report.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: u64 = stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("checked N figures");
    assert!(checked >= at_least, "only {checked} figures were compared");
}

/// Two runs shared by the tests below: a multi-turn qps sweep with two
/// rounds, faults and an SLO, and a users run.
struct Runs {
    _dir: tempfile::TempDir,
    qps: PathBuf,
    users: PathBuf,
}

fn runs() -> Arc<Runs> {
    static RUNS: std::sync::OnceLock<Arc<Runs>> = std::sync::OnceLock::new();
    RUNS.get_or_init(|| {
        let dir = tempdir();
        let trace = agent_trace(dir.path(), 6, 4);
        let mock = MockProcess::start(&[
            "--ttft-ms",
            "4",
            "--itl-ms",
            "1",
            "--faults",
            "500=0.05,reset=0.03,usage-missing=0.04",
            "--fault-seed",
            "7",
        ]);
        let qps = replay(
            &trace,
            &mock.url,
            &dir.path().join("a"),
            &[
                "--qps",
                "20,40",
                "--requests",
                "24",
                "--rounds",
                "2",
                "--slo",
                "ttft_ms=6,e2e_ms=40",
                "--metrics-interval",
                "100ms",
                "--seed",
                "3",
            ],
        );
        let users = replay(
            &trace,
            &mock.url,
            &dir.path().join("b"),
            &[
                "--users",
                "6",
                "--user-arrival",
                "steady:0.3",
                "--no-metrics",
            ],
        );
        Arc::new(Runs {
            _dir: dir,
            qps,
            users,
        })
    })
    .clone()
}

#[test]
fn report_figures_equal_duckdb_and_polars() {
    let r = runs();
    let dir = tempdir();
    let json = dir.path().join("report.json");
    trace_ok([
        "report",
        r.qps.to_str().expect("utf8"),
        r.users.to_str().expect("utf8"),
        "--format",
        "json",
        "--by",
        "source,turn",
        "-o",
        json.to_str().expect("utf8"),
    ]);
    let report = read_json(&json);
    let levels = report["levels"].as_array().expect("levels");
    // qps 20 and 40 in two rounds, and the users level.
    assert_eq!(levels.len(), 5, "{levels:#?}");
    assert!(
        levels
            .iter()
            .any(|l| l["errors"].as_object().is_some_and(|e| !e.is_empty())),
        "the faults produced errors"
    );
    assert!(!report["rounds"].as_array().expect("rounds").is_empty());
    assert!(!report["turns"].as_array().expect("turns").is_empty());
    assert_eq!(report["users"].as_array().expect("users").len(), 6);
    assert_eq!(report["slo"]["ttft_ms"], 6.0, "the SLO comes from run.json");
    check_with_python(&json, &[&r.qps, &r.users], 200);
}

#[test]
fn report_agrees_with_the_replays_own_summary() {
    let r = runs();
    let report = report_json(&[r.qps.to_str().expect("utf8")]);
    let summary = read_json(&r.qps.join("summary.json"));
    let levels = summary["levels"].as_array().expect("summary levels");
    for s in levels {
        let l = report["levels"]
            .as_array()
            .expect("levels")
            .iter()
            .find(|l| l["load_value"] == s["load_value"] && l["round"] == s["round"])
            .expect("the level is in the report");
        for (a, b) in [
            ("requests", "requests"),
            ("ok", "ok"),
            ("achieved_rate", "achieved_rate"),
            ("output_tokens_per_s", "output_tokens_per_s"),
            ("goodput", "goodput"),
        ] {
            let (x, y) = (l[a].as_f64(), s[b].as_f64());
            let same = match (x, y) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                (None, None) => true,
                _ => false,
            };
            assert!(same, "{a}: report {x:?} vs summary {y:?}");
        }
        let p99 = |v: &Value| v["p99"].as_f64();
        assert_eq!(
            p99(&l["ttft_ms"]).map(|x| (x * 1e6).round()),
            s["ttft_ms"]["percentiles"]["p99"]
                .as_f64()
                .map(|x| (x * 1e6).round())
        );
    }
}

#[test]
fn every_format_is_written_and_readable() {
    let r = runs();
    let dir = tempdir();
    let run = r.qps.to_str().expect("utf8");
    let table = trace_ok(["report", run]);
    for needle in [
        "Levels",
        "TTFT (ms)",
        "Saturation",
        "Rounds",
        "Latency by turn",
    ] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
    let md = trace_ok(["report", run, "--format", "md"]);
    assert!(md.contains("## Levels") && md.contains("|---|"), "{md}");
    let csv = trace_ok(["report", run, "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "header + 4 levels:\n{csv}");
    let cols = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == cols), "{csv}");
    let html = dir.path().join("r.html");
    let xlsx = dir.path().join("r.xlsx");
    let plots = dir.path().join("plots");
    trace_ok([
        "report",
        run,
        "--format",
        "html",
        "-o",
        html.to_str().expect("utf8"),
        "--plot",
        plots.to_str().expect("utf8"),
    ]);
    trace_ok([
        "report",
        run,
        "--format",
        "xlsx",
        "-o",
        xlsx.to_str().expect("utf8"),
    ]);
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("<svg") && page.contains("</html>"));
    assert!(
        !page.contains("src=\"http"),
        "self-contained: no remote resources"
    );
    let check = r#"
import sys, zipfile, xml.dom.minidom, pathlib
z = zipfile.ZipFile(sys.argv[1])
sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
assert len(sheets) >= 3, z.namelist()
pngs = sorted(pathlib.Path(sys.argv[2]).glob("*.png"))
svgs = sorted(pathlib.Path(sys.argv[2]).glob("*.svg"))
assert len(pngs) >= 4 and len(svgs) == len(pngs), (pngs, svgs)
for p in pngs:
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
for s in svgs:
    xml.dom.minidom.parse(str(s))
print(len(sheets), len(pngs))
"#;
    let out = Command::new(python())
        .args(["-c", check])
        .arg(&xlsx)
        .arg(&plots)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server that ends every reply at its end of sequence whatever
/// `ignore_eos` says (as one without that option does): the replay's
/// summary, the report (equal to DuckDB's figures) and the comparison with
/// a server that honours it all say how many replies came back short.
#[test]
fn replies_cut_short_by_the_server_are_counted_and_noted() {
    let dir = tempdir();
    // 12 agent sessions of 5 turns, outputs of 1 to 12 tokens; the
    // servers' end of sequence comes at 6.
    let trace = dir.path().join("t.parquet");
    trace_ok([
        "synth",
        "agent",
        "--users",
        "12",
        "--turns",
        "5",
        "--system-prefix-tokens",
        "40",
        "--user-prefix-tokens",
        "10",
        "--turn-input-tokens",
        "20",
        "--turn-output-tokens",
        "1:12",
        "--seed",
        "5",
        "-o",
        trace.to_str().expect("utf8"),
    ]);
    let extra = ["--concurrency", "4", "--no-metrics"];
    let mock = |always: bool| {
        let mut args = vec!["--ttft-ms", "2", "--itl-ms", "1", "--eos-after", "6"];
        if always {
            args.push("--eos-always");
        }
        MockProcess::start(&args)
    };
    let deaf = mock(true);
    let results = dir.path().join("a");
    let out = run_replay(&trace, &deaf.url, &results, &extra);
    let (cut, rows) = replay_rows(&out, &results);
    let ok: Vec<_> = rows
        .iter()
        .filter(|r| r.status == Some(traces::results::Status::Ok))
        .collect();
    assert_eq!(ok.len(), 60);
    let (mut short, mut got, mut asked) = (0, 0u64, 0u64);
    for r in &ok {
        let max = r.max_tokens.expect("max_tokens sent");
        let n = r.completion_tokens.expect("usage reported");
        assert_eq!(n, max.min(6), "{}: asked {max}", r.request_id);
        // The server says why each reply ended.
        if n < max {
            assert_eq!(r.finish_reason.as_deref(), Some("stop"), "{r:?}");
        } else if max < 6 {
            assert_eq!(r.finish_reason.as_deref(), Some("length"), "{r:?}");
        }
        short += usize::from(n < max);
        got += u64::from(n);
        asked += u64::from(max);
    }
    assert!((10..50).contains(&short), "{short} of 60 were cut");
    assert!(ok.iter().any(|r| r.turn > 0), "multi-turn sessions");
    let fill = 100.0 * got as f64 / asked as f64;
    let summary = read_json(&cut.join("summary.json"));
    assert_eq!(summary["levels"][0]["stopped_short"], short);
    assert_eq!(summary["levels"][0]["finish_reasons"]["stop"], short);
    let summary_fill = summary["levels"][0]["output_fill_pct"].as_f64();
    assert!(
        summary_fill.is_some_and(|f| (f - fill).abs() < 1e-9),
        "{summary_fill:?} {fill}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{short} of 60 ok requests ended before the max_tokens they asked for ({fill:.0}%"
        )) && stdout.contains("ignores ignore_eos"),
        "{stdout}"
    );
    let json = dir.path().join("report.json");
    let run = cut.to_str().expect("utf8");
    trace_ok([
        "report",
        run,
        "--format",
        "json",
        "-o",
        json.to_str().expect("utf8"),
    ]);
    let report = read_json(&json);
    assert_eq!(report["levels"][0]["stopped_short"], short);
    // The report counts the finish reasons the parts hold.
    let reasons = &report["levels"][0]["finish_reasons"];
    assert_eq!(reasons["stop"], short, "{reasons}");
    assert_eq!(
        reasons["length"].as_u64(),
        Some(60 - short as u64),
        "{reasons}"
    );
    let text = trace_ok(["report", run]);
    let stop_pct = 100.0 * short as f64 / 60.0;
    assert!(
        text.contains("Finish reasons") && text.contains(&format!("stop {stop_pct:.1}%")),
        "{text}"
    );
    let notes = report["notes"].to_string();
    assert!(
        notes.contains(&format!("{short} of 60 ok requests ended before")),
        "{notes}"
    );
    check_with_python(&json, &[&cut], 50);

    // A server that honours ignore_eos: full replies, no note.
    let honest = mock(false);
    let results = dir.path().join("b");
    let out = run_replay(&trace, &honest.url, &results, &extra);
    let (full, _) = replay_rows(&out, &results);
    let summary = read_json(&full.join("summary.json"));
    assert_eq!(summary["levels"][0]["stopped_short"], 0);
    assert_eq!(summary["levels"][0]["output_fill_pct"], 100.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("ended before"), "{stdout}");
    let full = full.to_str().expect("utf8");
    assert!(
        !report_of_run(Path::new(full))["notes"]
            .to_string()
            .contains("ended before")
    );
    let cmp = trace_ok(["compare", full, run]);
    assert!(
        cmp.contains(&format!(
            "(100% in {}",
            Path::new(full)
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
        )) && cmp.contains("compare unlike work"),
        "{cmp}"
    );
}

#[test]
fn compare_flags_a_slower_server_and_not_itself() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 80, 32, 8, &[]);
    let fast = MockProcess::start(&["--ttft-ms", "5", "--itl-ms", "1"]);
    let slow = MockProcess::start(&["--ttft-ms", "30", "--itl-ms", "1"]);
    let extra = ["--concurrency", "4", "--requests", "80", "--no-metrics"];
    let a = replay(&trace, &fast.url, &dir.path().join("a"), &extra);
    let b = replay(&trace, &slow.url, &dir.path().join("b"), &extra);
    let (a, b) = (a.to_str().expect("utf8"), b.to_str().expect("utf8"));
    let out = trace_ok(["compare", a, b, "--format", "json"]);
    let cmp: Value = serde_json::from_str(&out).expect("json");
    let metric = |cmp: &Value, name: &str| {
        cmp["levels"][0]["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["metric"] == name)
            .cloned()
            .expect("metric present")
    };
    let ttft = metric(&cmp, "ttft_p50_ms");
    assert_eq!(ttft["flag"][1], "worse", "{ttft:#}");
    let delta = ttft["delta"][1].as_f64().expect("delta");
    assert!(
        (20.0..35.0).contains(&delta),
        "TTFT p50 grew by about 25 ms: {delta}"
    );
    // The same run under another name: no change at all, nothing flagged.
    let copy = dir.path().join("a-copy");
    copy_dir(Path::new(a), &copy);
    let same: Value = serde_json::from_str(&trace_ok([
        "compare",
        a,
        copy.to_str().expect("utf8"),
        "--format",
        "json",
    ]))
    .expect("json");
    let ttft = metric(&same, "ttft_p50_ms");
    assert_eq!(ttft["delta"][1], 0.0, "{ttft:#}");
    assert!(!same.to_string().contains("\"worse\""), "{same:#}");
    // The same folder twice is told apart by a suffix.
    let twice: Value =
        serde_json::from_str(&trace_ok(["compare", a, a, "--format", "json"])).expect("json");
    let name = twice["runs"][0]["run_id"].as_str().expect("run id");
    assert_eq!(twice["runs"][1]["run_id"], format!("{name}#2"));
    let text = trace_ok(["compare", a, b]);
    assert!(text.contains("WORSE"), "{text}");
}

#[test]
fn bad_input_gets_a_clear_message() {
    let r = runs();
    let dir = tempdir();
    // Not a run at all.
    let err = trace_err(["report", dir.path().to_str().expect("utf8")]);
    assert!(err.contains("not a replay run folder"), "{err}");
    // A folder of runs names them.
    let parent = r.qps.parent().expect("results folder");
    let err = trace_err(["report", parent.to_str().expect("utf8")]);
    assert!(
        err.contains("a folder of 1 runs") && err.contains("give one"),
        "{err}"
    );
    // A run killed before its first part.
    let empty = dir.path().join("killed");
    std::fs::create_dir_all(empty.join("requests")).expect("mkdir");
    let err = trace_err(["report", empty.to_str().expect("utf8")]);
    assert!(err.contains("no finished requests"), "{err}");
    // A run killed mid-way: parts, no run.json.
    let partial = dir.path().join("partial");
    std::fs::create_dir_all(partial.join("requests")).expect("mkdir");
    for part in files_in(&r.qps.join("requests")).iter().take(2) {
        std::fs::copy(
            r.qps.join("requests").join(part),
            partial.join("requests").join(part),
        )
        .expect("copy part");
    }
    let report = report_json(&[partial.to_str().expect("utf8")]);
    let notes = report["notes"].to_string();
    assert!(notes.contains("no run.json"), "{notes}");
    // It counts the requests of the parts that are there, warm-up included.
    let in_parts: i64 = files_in(&partial.join("requests"))
        .iter()
        .map(|p| {
            let file = std::fs::File::open(partial.join("requests").join(p)).expect("open part");
            parquet::file::reader::SerializedFileReader::new(file)
                .map(|r| {
                    parquet::file::reader::FileReader::metadata(&r)
                        .file_metadata()
                        .num_rows()
                })
                .expect("a parquet part")
        })
        .sum();
    assert!(in_parts > 0);
    assert_eq!(report["runs"][0]["rows"], in_parts, "{}", report["runs"]);
    assert!(
        notes.contains(&format!("the {in_parts} finished requests")),
        "{notes}"
    );
    // A results file of another format version.
    let old = dir.path().join("old");
    std::fs::create_dir_all(old.join("requests")).expect("mkdir");
    write_part_with_version(&old.join("requests/part-00000.parquet"), "0");
    let err = trace_err(["report", old.to_str().expect("utf8")]);
    assert!(err.contains("results format version 0"), "{err}");
    // An unknown --by column lists the real ones.
    let err = trace_err(["report", r.qps.to_str().expect("utf8"), "--by", "nope"]);
    assert!(err.contains("nope") && err.contains("ttft_ms"), "{err}");
}

#[test]
fn a_run_where_nothing_succeeded_is_reported_not_a_crash() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 10, 16, 4, &[]);
    let mock = MockProcess::start(&["--faults", "503=1"]);
    let out = run_replay(
        &trace,
        &mock.url,
        &dir.path().join("r"),
        &["--qps", "50", "--requests", "10", "--no-metrics"],
    );
    let run = only_run_dir(&dir.path().join("r"));
    assert!(out.status.code().is_some(), "replay ended");
    let report = report_json(&[run.to_str().expect("utf8")]);
    let level = &report["levels"][0];
    assert_eq!(level["ok"], 0);
    assert_eq!(level["errors"]["http_error"], 10);
    assert_eq!(level["ttft_ms"]["p99"], Value::Null);
    assert!(report["notes"].to_string().contains("no request succeeded"));
    let sat = report["saturation"][0]["statement"]
        .as_str()
        .expect("statement");
    assert!(sat.contains("even the lowest level"), "{sat}");
    let table = trace_ok(["report", run.to_str().expect("utf8")]);
    assert!(table.contains("http_error 503"), "{table}");
}

#[test]
fn saturation_is_found_on_a_server_with_little_capacity() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 20, 32, 16, &[]);
    // One sequence at a time, 5 ms per decode step: about 12 requests/s.
    let mock = MockProcess::start(&["--max-running", "1", "--decode-step-ms", "5"]);
    let run = replay(
        &trace,
        &mock.url,
        &dir.path().join("r"),
        &[
            "--qps",
            "2,100",
            "--arrival",
            "constant",
            "--requests",
            "12",
            "--no-metrics",
        ],
    );
    let report = report_json(&[run.to_str().expect("utf8")]);
    let sat = &report["saturation"][0];
    assert_eq!(sat["highest_passing"], 2.0, "{sat:#}");
    assert_eq!(sat["first_failing"], 100.0, "{sat:#}");
    let rec = sat["recommended"].as_f64().expect("recommended rate");
    assert!(rec > 0.5 && rec < 2.0, "{rec}");
    assert!(
        sat["statement"]
            .as_str()
            .is_some_and(|s| s.contains("saturates between 2 and 100")),
        "{sat:#}"
    );
}

/// A level sent in one burst (`--qps inf`) has no span of scheduled time to
/// cut, so the timeline leaves it out, while a timed level beside it in the
/// same run is cut as usual.
#[test]
fn a_level_sent_in_one_burst_has_no_timeline() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 30, 32, 8, &[]);
    let mock = MockProcess::start(&["--decode-step-ms", "1"]);
    let results = dir.path().join("r");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &[
            "--qps",
            "inf,100",
            "--arrival",
            "constant",
            "--requests",
            "30",
            "--no-metrics",
        ],
    );
    let (run, rows) = replay_rows(&out, &results);
    assert_eq!(rows.len(), 60);
    let report = report_json(&[run.to_str().expect("utf8")]);
    let slices = report["timeline"].as_array().expect("a timeline");
    assert_eq!(slices.len(), 3, "{slices:#?}");
    for s in slices {
        assert_eq!(s["load_value"], 100.0, "{s:#}");
    }
    // A run of one burst alone has no timeline section at all.
    let results = dir.path().join("burst");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &["--qps", "inf", "--requests", "30", "--no-metrics"],
    );
    let (run, rows) = replay_rows(&out, &results);
    stop_mock(mock);
    assert_eq!(rows.len(), 30);
    let report = report_json(&[run.to_str().expect("utf8")]);
    assert_eq!(report["timeline"].as_array().map(Vec::len), Some(0));
    let text = trace_ok(["report", run.to_str().expect("utf8")]);
    assert!(text.contains("Latency"), "{text}");
    assert!(!text.contains("over each level's time"), "{text}");
}

/// One open-loop level alone: no lower level to hold its latency against,
/// yet a server whose queue grows through it is caught by the TTFT trend.
#[test]
fn a_server_falling_behind_its_arrivals_fails_even_a_single_level() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 30, 32, 16, &[]);
    // One sequence at a time, 5 ms per decode step: about 12 requests/s.
    let mock = MockProcess::start(&["--max-running", "1", "--decode-step-ms", "5"]);
    let flags = |rate: &'static str, n: &'static str| {
        [
            "--qps",
            rate,
            "--arrival",
            "constant",
            "--requests",
            n,
            "--no-metrics",
        ]
    };
    let results = dir.path().join("over");
    let out = run_replay(&trace, &mock.url, &results, &flags("60", "30"));
    let (over, _) = replay_rows(&out, &results);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = read_json(&over.join("summary.json"))["levels"][0].clone();
    let rise = summary["ttft_rise_ms"].as_f64().expect("a rise");
    // 30 arrivals in 0.5 s served one by one for about 2.5 s.
    assert!(rise > 1000.0, "{summary:#}");
    assert_eq!(summary["fell_behind"], true);
    assert!(
        stdout.contains("qps 60 (round 1): DEGRADED") && stdout.contains("the server fell behind"),
        "{stdout}"
    );
    let report_path = dir.path().join("over.json");
    trace_ok([
        "report",
        over.to_str().expect("utf8"),
        "--format",
        "json",
        "-o",
        report_path.to_str().expect("utf8"),
    ]);
    let report = read_json(&report_path);
    let l = &report["levels"][0];
    assert!((l["ttft_rise_ms"].as_f64().expect("a rise") - rise).abs() < 1e-6 * rise);
    assert_eq!(l["fell_behind"], true);
    let sat = report["saturation"][0]["statement"]
        .as_str()
        .expect("a statement");
    assert!(
        sat.contains("even the lowest level (60) failed: TTFT rose by"),
        "{sat}"
    );
    // The timeline shows the queue: 30 requests make three slices of
    // scheduled time, and each waited longer than the one before.
    let slices = report["timeline"].as_array().expect("a timeline");
    assert_eq!(slices.len(), 3, "{slices:#?}");
    let p50s: Vec<f64> = slices
        .iter()
        .map(|s| s["ttft_ms"]["p50"].as_f64().expect("a TTFT"))
        .collect();
    assert!(p50s[0] < p50s[1] && p50s[1] < p50s[2], "{p50s:?}");
    assert_eq!(
        slices
            .iter()
            .map(|s| s["requests"].as_u64())
            .sum::<Option<u64>>(),
        Some(30)
    );
    assert_eq!(slices[0]["group"], "0-0.161 s", "{slices:#?}");

    // Well under capacity the TTFT stays flat.
    let results = dir.path().join("under");
    let out = run_replay(&trace, &mock.url, &results, &flags("3", "12"));
    let (under, _) = replay_rows(&out, &results);
    let summary = read_json(&under.join("summary.json"))["levels"][0].clone();
    assert_eq!(summary["fell_behind"], false, "{summary:#}");
    assert!(
        summary["ttft_rise_ms"]
            .as_f64()
            .is_some_and(|r| r.abs() < 250.0),
        "{summary:#}"
    );
    stop_mock(mock);

    // A server that runs every request at once keeps up with the same
    // level; `trace compare` says that the other fell behind.
    let wide = MockProcess::start(&["--decode-step-ms", "5"]);
    let results = dir.path().join("wide");
    let out = run_replay(&trace, &wide.url, &results, &flags("60", "30"));
    let (kept_up, _) = replay_rows(&out, &results);
    stop_mock(wide);
    assert_eq!(
        read_json(&kept_up.join("summary.json"))["levels"][0]["fell_behind"],
        false
    );
    let cmp = trace_ok([
        "compare",
        kept_up.to_str().expect("utf8"),
        over.to_str().expect("utf8"),
    ]);
    assert!(
        cmp.contains("fell behind their arrivals where the others kept up, at qps 60 ("),
        "{cmp}"
    );
}

/// run.json holds how busy the replayer and its machine were per level;
/// the report names a level at which either was busy enough to matter.
#[test]
fn a_busy_replayer_is_noted_in_the_report() {
    let r = runs();
    let run = read_json(&r.qps.join("run.json"));
    for l in run["levels"].as_array().expect("levels") {
        let pct = |k: &str| l[k].as_f64().unwrap_or_else(|| panic!("{k} in {l}"));
        assert!(l["client_cpu_s"].as_f64().is_some_and(|c| c >= 0.0), "{l}");
        assert!((0.0..=100.5).contains(&pct("client_cpu_pct")), "{l}");
        assert!((0.0..=100.0).contains(&pct("machine_cpu_pct")), "{l}");
    }
    let dir = tempdir();
    let copy = dir.path().join("busy");
    copy_dir(&r.qps, &copy);
    let mut edited = run.clone();
    edited["levels"][0]["client_cpu_pct"] = 93.0.into();
    edited["levels"][1]["client_cpu_pct"] = 10.0.into();
    edited["levels"][1]["machine_cpu_pct"] = 88.0.into();
    for l in edited["levels"]
        .as_array_mut()
        .expect("levels")
        .iter_mut()
        .skip(2)
    {
        l["client_cpu_pct"] = 5.0.into();
        l["machine_cpu_pct"] = 20.0.into();
    }
    std::fs::write(copy.join("run.json"), edited.to_string()).expect("write");
    let notes = report_of_run(&copy)["notes"].clone();
    let busy = notes
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.contains("the replayer itself"))
        .unwrap_or_else(|| panic!("no busy note: {notes}"));
    // The report names levels as its other notes do: `qps 20`, `qps 20 (round 2)`.
    let (first, second) = (&run["levels"][0], &run["levels"][1]);
    assert_eq!(
        (first["round"].as_u64(), second["round"].as_u64()),
        (Some(1), Some(2))
    );
    let value = first["load_value"].as_f64().expect("value");
    assert_eq!(second["load_value"].as_f64(), Some(value));
    assert!(
        busy.contains(&format!(
            "the replayer itself kept 93% of its machine's CPU busy during qps {value};"
        )),
        "{busy}"
    );
    assert!(
        busy.contains(&format!(
            "machine was 88% busy during qps {value} (round 2), the replayer's share 10%:"
        )),
        "{busy}"
    );
    let third = run["levels"][2]["load_value"].as_f64().expect("value");
    assert!(!busy.contains(&format!("qps {third}")), "{busy}");
}

/// Runs written before results format 3 have no finish reasons: the
/// report reads them beside a version 3 run (a regression: runs of two
/// versions did not stack), gives the new run's reasons and none for the
/// old ones (not every reply as `none`), and their other figures alike.
#[test]
fn finish_reasons_are_reported_for_runs_that_kept_them() {
    let r = runs();
    let dir = tempdir();
    let mut args = vec![r.qps.to_str().expect("utf8").to_string()];
    for version in [2, 1] {
        let old = dir.path().join(format!("v{version}"));
        copy_dir(&r.qps, &old);
        let mut parts = 0;
        for e in std::fs::read_dir(old.join("requests")).expect("parts") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "parquet") {
                downgrade_results_part(&p, version);
                parts += 1;
            }
        }
        assert!(parts > 0);
        args.push(old.to_str().expect("utf8").to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = report_json(&args);
    let levels = report["levels"].as_array().expect("levels");
    let of = |run: &str| -> Vec<&Value> { levels.iter().filter(|l| l["run_id"] == run).collect() };
    let new = of(r.qps.file_name().and_then(|n| n.to_str()).expect("name"));
    assert!(!new.is_empty(), "{levels:?}");
    for l in &new {
        let reasons = l["finish_reasons"].as_object().expect("reasons");
        let counted: u64 = reasons.values().filter_map(|n| n.as_u64()).sum();
        assert_eq!(Some(counted), l["ok"].as_u64(), "{l}");
        assert!(reasons.contains_key("length"), "{l}");
    }
    for run in ["v2", "v1"] {
        let old = of(run);
        assert_eq!(old.len(), new.len(), "{run}");
        for (o, n) in old.iter().zip(&new) {
            assert_eq!(o["finish_reasons"], serde_json::json!({}), "{o}");
            for k in ["ok", "requests", "ttft_ms", "errors"] {
                assert_eq!(o[k], n[k], "{run} {k}");
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A minimal `requests` part whose results.schema_version is `version`.
fn write_part_with_version(path: &Path, version: &str) {
    write_stub_parquet(path, traces::results::KEY_RESULTS_VERSION, version);
}

/// The README's three one-line queries over `results/*/requests/*.parquet`
/// run as written (from a folder holding `results/`) and print every level.
#[test]
fn readme_queries_work_as_written() {
    let r = runs();
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let queries: Vec<&str> = readme
        .lines()
        .filter(|l| l.contains("results/*/requests/*.parquet"))
        .filter(|l| l.starts_with("python -c") || l.starts_with("duckdb -c"))
        .collect();
    assert_eq!(queries.len(), 3, "{queries:#?}");
    let dir = tempdir();
    copy_dir(
        &r.qps,
        &dir.path()
            .join("results")
            .join(r.qps.file_name().expect("name")),
    );
    for q in queries {
        let stdout = venv_sh(q, dir.path());
        for level in ["20", "40"] {
            assert!(stdout.contains(level), "{q}\n{stdout}");
        }
    }
}

/// The HTML report opens in headless Chromium, offline, and shows its charts.
#[test]
fn html_report_shows_its_charts_in_a_browser() {
    let r = runs();
    let dir = tempdir();
    let html = dir.path().join("report.html");
    trace_ok([
        "report",
        r.qps.to_str().expect("utf8"),
        "--format",
        "html",
        "-o",
        html.to_str().expect("utf8"),
    ]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-html.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(&html)
        .arg(dir.path().join("shot.png"))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "check-html.sh failed (is chromium installed? scripts/test.sh installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svgs: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count of <svg> elements");
    assert!(svgs >= 4, "only {svgs} charts rendered");
    let shot = std::fs::read(dir.path().join("shot.png")).expect("screenshot written");
    assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n");
}

/// A server that streams several tokens a chunk (a stream interval, or
/// speculative decoding) makes ITL a per-chunk figure: the replay and the
/// report say how many tokens a chunk carried and that TPOT is the one to
/// compare; a server that streams one token a chunk gets no such note.
#[test]
fn a_server_streaming_several_tokens_a_chunk_is_noted() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 24, 32, 17, &[]);
    let mock = MockProcess::start(&["--tokens-per-chunk", "4", "--decode-step-ms", "4"]);
    let results = dir.path().join("chunked");
    let out = run_replay(
        &trace,
        &mock.url,
        &results,
        &["--concurrency", "2", "--no-metrics"],
    );
    stop_mock(mock);
    let (run, rows) = replay_rows(&out, &results);
    assert_eq!(rows.len(), 24);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 17 tokens: the first alone, then 4, 4, 4 and 4: five chunks.
    assert!(
        stdout.contains("the server streamed several tokens a chunk (concurrency 2 (round 1): 3.40 tokens a chunk"),
        "{stdout}"
    );
    let level = read_json(&run.join("summary.json"))["levels"][0].clone();
    let per_chunk = level["tokens_per_chunk"]
        .as_f64()
        .expect("tokens per chunk");
    assert!((per_chunk - 17.0 / 5.0).abs() < 1e-12, "{per_chunk}");
    let p50 = |m: &str| level[m]["percentiles"]["p50"].as_f64().expect("a p50");
    assert!(p50("itl_ms") > 2.5 * p50("tpot_ms"), "{level:#}");
    let report_path = dir.path().join("chunked.json");
    trace_ok([
        "report",
        run.to_str().expect("utf8"),
        "--format",
        "json",
        "-o",
        report_path.to_str().expect("utf8"),
    ]);
    let report = read_json(&report_path);
    assert_eq!(
        report["levels"][0]["tokens_per_chunk"].as_f64(),
        Some(per_chunk)
    );
    let notes = report["notes"].to_string();
    assert!(notes.contains("3.40 tokens a chunk"), "{notes}");

    // Compared with a server that streams a token a chunk, the ITL
    // difference is named as one of chunking.
    let plain = MockProcess::start(&["--decode-step-ms", "4"]);
    let results = dir.path().join("plain");
    let out = run_replay(
        &trace,
        &plain.url,
        &results,
        &["--concurrency", "2", "--no-metrics"],
    );
    stop_mock(plain);
    let (plain_run, _) = replay_rows(&out, &results);
    let cmp = trace_ok([
        "compare",
        plain_run.to_str().expect("utf8"),
        run.to_str().expect("utf8"),
    ]);
    assert!(
        cmp.contains("the servers streamed different numbers of tokens a chunk at concurrency 2 (")
            && cmp.contains(": 1.00; ")
            && cmp.contains(": 3.40)"),
        "{cmp}"
    );

    // One token a chunk: 1.0, and no note.
    let r = runs();
    let report_path = dir.path().join("plain.json");
    trace_ok([
        "report",
        r.qps.to_str().expect("utf8"),
        "--format",
        "json",
        "-o",
        report_path.to_str().expect("utf8"),
    ]);
    let report = read_json(&report_path);
    for l in report["levels"].as_array().expect("levels") {
        assert_eq!(l["tokens_per_chunk"].as_f64(), Some(1.0), "{l:#}");
    }
    assert!(!report["notes"].to_string().contains("tokens a chunk"));
}

/// A server that sends no usage leaves the replayer counting chunks, which
/// is short when a chunk carries several tokens; the replay and the report
/// say so, and `--tokenizer` counts the reply's text instead, from which
/// TPOT, tokens per chunk and the output fill follow.
#[test]
fn replies_without_usage_are_counted_by_the_tokenizer_when_given() {
    let dir = tempdir();
    let trace = synth_random_trace(&dir.path().join("t.parquet"), 12, 32, 17, &[]);
    let mock = MockProcess::start(&["--tokens-per-chunk", "4", "--decode-step-ms", "2"]);
    let flags = ["--concurrency", "2", "--no-metrics", "--no-usage"];

    let results = dir.path().join("chunks");
    let out = run_replay(&trace, &mock.url, &results, &flags);
    let (run, rows) = replay_rows(&out, &results);
    let chunks_run = run.clone();
    assert_eq!(rows.len(), 12);
    for r in &rows {
        assert_eq!(r.tokens_source.as_deref(), Some("counted"), "{r:?}");
        // 17 tokens in 5 chunks: the first alone, then 4 a chunk.
        assert_eq!(r.completion_tokens, Some(5), "{r:?}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the server reported no usage for 12 of 12 ok requests: for all of them the prompt tokens are unknown")
            && stdout.contains("and completion_tokens count the chunks")
            && stdout.contains("the run did not ask for usage: replay without --no-usage"),
        "{stdout}"
    );
    let level = read_json(&run.join("summary.json"))["levels"][0].clone();
    assert_eq!(level["tokens_counted_locally"], 12, "{level:#}");
    assert_eq!(level["tokens_tokenized"], 0, "{level:#}");
    let report = report_json(&[run.to_str().expect("utf8")]);
    assert_eq!(report["levels"][0]["tokens_counted"], 12);
    assert!(report["levels"][0]["tokens_per_chunk"].is_null());
    assert!(
        report["notes"]
            .to_string()
            .contains("reported no usage for 12 of 12 ok requests"),
        "{:#}",
        report["notes"]
    );

    // With the tokenizer: the mock's words are one Llama 3 token each.
    let tok = crate::tokenize::llama3();
    let tok = tok.to_str().expect("utf8");
    let results = dir.path().join("tokenized");
    let mut with = flags.to_vec();
    with.extend(["--tokenizer", tok]);
    let out = run_replay(&trace, &mock.url, &results, &with);
    let (run, rows) = replay_rows(&out, &results);
    assert_eq!(rows.len(), 12);
    for r in &rows {
        assert_eq!(r.tokens_source.as_deref(), Some("tokenized"), "{r:?}");
        assert_eq!(r.completion_tokens, Some(17), "{r:?}");
        let (ttft, e2e, tpot) = (
            r.ttft_ms.expect("ttft"),
            r.e2e_ms.expect("e2e"),
            r.tpot_ms.expect("tpot"),
        );
        assert!((tpot - (e2e - ttft) / 16.0).abs() < 1e-9, "{r:?}");
        // About the 32 tokens asked (the replayer's words are one token
        // each in most vocabularies), plus Llama 3's begin-of-text.
        assert!(
            r.prompt_tokens.is_some_and(|n| (30..=36).contains(&n)),
            "{r:?}"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "reported no usage for 12 of 12 ok requests: for all of them --tokenizer counted the \
             prompt and output tokens"
        ) && !stdout.contains("count the chunks"),
        "{stdout}"
    );
    let level = read_json(&run.join("summary.json"))["levels"][0].clone();
    assert_eq!(level["tokens_tokenized"], 12, "{level:#}");
    assert_eq!(level["tokens_counted_locally"], 0, "{level:#}");
    let per_chunk = level["tokens_per_chunk"]
        .as_f64()
        .expect("tokens per chunk");
    assert!((per_chunk - 17.0 / 5.0).abs() < 1e-12, "{per_chunk}");
    assert!(
        stdout.contains("3.40 tokens a chunk"),
        "the chunking is seen through the tokenizer's counts: {stdout}"
    );
    let config = read_json(&run.join("run.json"))["config"]["tokenizer"].clone();
    assert_eq!(config["source"], "file", "{config:#}");
    assert_eq!(
        config["tokenizer_sha256"].as_str().map(str::len),
        Some(64),
        "{config:#}"
    );
    let report = report_json(&[run.to_str().expect("utf8")]);
    assert_eq!(report["levels"][0]["tokens_counted"], 0);
    assert_eq!(report["levels"][0]["tokens_tokenized"], 12);
    assert_eq!(report["levels"][0]["output_fill_pct"].as_f64(), Some(100.0));
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("--tokenizer counted the prompt and output tokens")
            && !notes.contains("count the chunks"),
        "{notes}"
    );

    // Compared, the run whose output was counted as chunks is named (first,
    // so that its id is its folder's name).
    let cmp = trace_ok([
        "compare",
        chunks_run.to_str().expect("utf8"),
        run.to_str().expect("utf8"),
    ]);
    let chunks_id = chunks_run
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a run id");
    assert!(
        cmp.contains(&format!(
            "had their output counted as chunks or not at all (12 in {chunks_id})"
        )),
        "{cmp}"
    );

    // A tokenizer that cannot be loaded stops the run before anything is
    // sent or written.
    let results = dir.path().join("bad");
    let missing = dir.path().join("nope/tokenizer.json");
    let mut bad = flags.to_vec();
    bad.extend(["--tokenizer", missing.to_str().expect("utf8")]);
    let out = run_replay(&trace, &mock.url, &results, &bad);
    stop_mock(mock);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tokenizer") && err.contains("nope"), "{err}");
    assert!(!results.exists() || files_in(&results).is_empty());
}
