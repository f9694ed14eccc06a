//! Integration tests: `trace synth random` and `trace synth agent`, run
//! through the binary and read back from the Parquet they write.

use std::ffi::OsString;
use std::path::Path;

use traces::{TraceReader, TraceRow};

use crate::util::*;

/// Runs `trace synth <kind> ARGS -o out --json`; returns the JSON report.
fn synth(kind: &str, out: &Path, args: &[&str]) -> serde_json::Value {
    let mut all: Vec<OsString> = vec!["synth".into(), kind.into()];
    all.extend(args.iter().map(Into::into));
    all.extend(["-o".into(), out.into(), "--json".into()]);
    serde_json::from_str(&trace_ok(all)).expect("json report")
}

/// Runs a synth command that must fail; returns stderr.
fn synth_err(kind: &str, out: &Path, args: &[&str]) -> String {
    let mut all: Vec<OsString> = vec!["synth".into(), kind.into()];
    all.extend(args.iter().map(Into::into));
    all.extend(["-o".into(), out.into()]);
    trace_err(all)
}

fn ids(row: &TraceRow) -> &[u64] {
    row.hash_ids.as_deref().expect("hash_ids")
}

fn block_size(path: &Path) -> Option<u32> {
    TraceReader::open(path)
        .expect("opens")
        .metadata()
        .block_size
}

#[test]
fn random_writes_prefix_sharing_requests() {
    let dir = tempdir();
    let out = dir.path().join("r.parquet");
    let args = [
        "--requests",
        "60",
        "--input-len",
        "200",
        "--output-len",
        "50",
        "--range-ratio",
        "0.25",
        "--prefix-len",
        "64",
        "--num-prefixes",
        "3",
        "--seed",
        "5",
    ];
    let report = synth("random", &out, &args);
    assert_eq!(report["sessions_written"], 60);
    assert_eq!(report["rows_written"], 60);
    let rows = read_rows(&out);
    assert_eq!(rows.len(), 60);
    assert_eq!(block_size(&out), Some(16));
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.session_id, format!("random-{i}"));
        assert_eq!(r.turn, 0);
        assert_eq!(r.source, "synthetic/random");
        assert!(r.messages.is_empty() && r.arrival_ms.is_none());
        let input = r.input_tokens.expect("input");
        assert!((64 + 150..=64 + 250).contains(&input), "{input}");
        assert!((37..=62).contains(&r.output_tokens.expect("output")));
        assert_eq!(ids(r).len(), input.div_ceil(16) as usize);
    }
    // 64 prefix tokens = 4 blocks, shared by requests i and i + 3 only.
    for i in 3..60 {
        assert_eq!(ids(&rows[i])[..4], ids(&rows[i - 3])[..4]);
        assert_ne!(ids(&rows[i])[4], ids(&rows[i - 3])[4]);
        assert_ne!(ids(&rows[i])[0], ids(&rows[i - 1])[0]);
    }
    // Dense ids: every id below the largest is used.
    let max = rows
        .iter()
        .flat_map(|r| ids(r).iter())
        .max()
        .copied()
        .expect("ids");
    let mut seen = vec![false; max as usize + 1];
    rows.iter()
        .flat_map(|r| ids(r).iter())
        .for_each(|&i| seen[i as usize] = true);
    assert!(seen.iter().all(|&b| b));
}

#[test]
fn same_seed_same_rows_other_seed_other_rows() {
    let dir = tempdir();
    let run = |kind: &str, name: &str, seed: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["--seed", seed];
        args.extend_from_slice(extra);
        synth(kind, &out, &args);
        read_rows(&out)
    };
    let random = ["--requests", "30", "--range-ratio", "0.5"];
    let a = run("random", "a.parquet", "1", &random);
    assert_eq!(a, run("random", "b.parquet", "1", &random));
    assert_ne!(a, run("random", "c.parquet", "2", &random));
    let agent = [
        "--users",
        "6",
        "--turns",
        "2:5",
        "--range-ratio",
        "0.3",
        "--think-ms",
        "500:3000",
        "--user-arrival",
        "poisson:2",
    ];
    let a = run("agent", "d.parquet", "1", &agent);
    assert_eq!(a, run("agent", "e.parquet", "1", &agent));
    assert_ne!(a, run("agent", "f.parquet", "2", &agent));
}

#[test]
fn agent_sessions_grow_compact_and_overflow() {
    let dir = tempdir();
    let out = dir.path().join("agent.parquet");
    // Base = 1000 + 500 + 800 + 400 = 2700; each turn adds 1200 of history.
    // Window 6000: turns 0-2 fit (2700, 3900, 5100 with output), turn 3
    // compacts (user prefix 500 -> 2000), turn 5 compacts again (3500), and
    // turn 6 compacts to 5000, after which its base of 7200 no longer fits:
    // overflow ends the session.
    let args = [
        "--users",
        "4",
        "--turns",
        "20",
        "--system-prefix-tokens",
        "1000",
        "--user-prefix-tokens",
        "500",
        "--turn-input-tokens",
        "800",
        "--turn-output-tokens",
        "400",
        "--context-window",
        "6000",
        "--compaction-increment",
        "1500",
        "--think-ms",
        "2000",
        "--user-arrival",
        "steady:30",
        "--block-size",
        "100",
    ];
    let report = synth("agent", &out, &args);
    assert_eq!(report["sessions_written"], 4);
    let rows = read_rows(&out);
    assert_eq!(block_size(&out), Some(100));
    let user0: Vec<&TraceRow> = rows
        .iter()
        .filter(|r| r.session_id == "agent-user-0")
        .collect();
    let lens: Vec<u32> = user0
        .iter()
        .map(|r| r.input_tokens.expect("input"))
        .collect();
    assert_eq!(lens, [2300, 3500, 4700, 3800, 5000, 5300, 6800]);
    let resets: Vec<bool> = user0.iter().map(|r| r.reset_context).collect();
    assert_eq!(resets, [false, false, false, true, false, true, true]);
    let overflow: Vec<bool> = user0.iter().map(|r| r.overflow).collect();
    assert_eq!(overflow, [false, false, false, false, false, false, true]);
    // Consecutive turns share the previous prompt exactly (full blocks).
    assert_eq!(ids(user0[1])[..23], ids(user0[0])[..23]);
    assert_eq!(ids(user0[2])[..35], ids(user0[1])[..35]);
    // Compaction keeps system + user prefix (15 blocks) and drops history.
    assert_eq!(ids(user0[3])[..15], ids(user0[2])[..15]);
    assert_ne!(ids(user0[3])[15], ids(user0[2])[15]);
    // Every user shares the 10 system blocks, and nothing else.
    let firsts: Vec<&TraceRow> = rows.iter().filter(|r| r.turn == 0).collect();
    assert_eq!(firsts.len(), 4);
    for (k, f) in firsts.iter().enumerate() {
        assert_eq!(f.session_id, format!("agent-user-{k}"));
        assert_eq!(ids(f)[..10], ids(firsts[0])[..10]);
        if k > 0 {
            assert_ne!(ids(f)[10], ids(firsts[0])[10]);
        }
        assert_eq!(f.arrival_ms, Some(30_000.0 * k as f64));
        assert_eq!(f.think_ms, None);
    }
    for r in rows.iter().filter(|r| r.turn > 0) {
        assert_eq!(r.think_ms, Some(2000.0));
        assert_eq!(r.arrival_ms, None);
        assert_eq!(r.request_id, format!("{}#{}", r.session_id, r.turn));
    }
    assert!(
        rows.iter()
            .all(|r| r.messages.is_empty() && r.source == "synthetic/agent")
    );
    // `trace inspect` counts the overflows and resets.
    let v: serde_json::Value = serde_json::from_str(&trace_ok([
        "inspect".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]))
    .expect("json");
    assert_eq!(v["overflow_rows"], 4);
    assert_eq!(v["reset_context_rows"], 12);
    assert_eq!(v["block_size"], 100);
}

#[test]
fn agent_with_a_real_system_prompt_file() {
    let dir = tempdir();
    let out = dir.path().join("agent.parquet");
    let prompt = fixture("synth/agent_system_prompt.txt");
    let text = std::fs::read_to_string(&prompt).expect("fixture");
    let estimate = text.len().div_ceil(4) as u32;
    let mut args: Vec<OsString> = ["synth", "agent", "--system-prefix-source"]
        .iter()
        .map(Into::into)
        .collect();
    args.push(prompt.clone().into());
    for a in [
        "--users",
        "2",
        "--turns",
        "8",
        "--user-prefix-tokens",
        "100",
        "--turn-input-tokens",
        "50",
        "--turn-output-tokens",
        "50",
        "--context-window",
        "600",
        "--compaction-increment",
        "20",
        "-o",
    ] {
        args.push(a.into());
    }
    args.push(out.clone().into());
    trace_ok(args);
    let rows = read_rows(&out);
    assert_eq!(rows[0].input_tokens, Some(estimate + 150));
    for r in &rows {
        let carries = r.turn == 0 || r.reset_context;
        assert_eq!(r.messages.len(), carries as usize, "{}", r.request_id);
        if carries {
            assert_eq!(r.messages[0].role, "system");
            assert_eq!(r.messages[0].content, text);
        }
    }
    assert!(rows.iter().any(|r| r.turn > 0 && r.reset_context));
}

#[test]
fn poisson_arrivals_follow_the_rate() {
    let dir = tempdir();
    let out = dir.path().join("p.parquet");
    let args = [
        "--users",
        "2000",
        "--turns",
        "1",
        "--user-arrival",
        "poisson:5",
        "--seed",
        "3",
        "--system-prefix-tokens",
        "10",
        "--user-prefix-tokens",
        "10",
        "--turn-input-tokens",
        "10",
        "--turn-output-tokens",
        "10",
    ];
    synth("agent", &out, &args);
    let arrivals: Vec<f64> = read_rows(&out)
        .iter()
        .filter_map(|r| r.arrival_ms)
        .collect();
    assert_eq!(arrivals.len(), 2000);
    assert_eq!(arrivals[0], 0.0);
    assert!(arrivals.windows(2).all(|w| w[1] >= w[0]));
    let mean_gap_s = arrivals[1999] / 1000.0 / 1999.0;
    assert!((mean_gap_s - 0.2).abs() < 0.02, "mean gap {mean_gap_s}");
}

#[test]
fn bad_options_fail_naming_the_flag_and_write_nothing() {
    let dir = tempdir();
    let out = dir.path().join("x.parquet");
    let missing = dir.path().join("no-such-prompt.txt");
    let missing = missing.to_str().expect("utf-8 path");
    let cases: [(&str, &[&str], &str); 8] = [
        ("random", &["--requests", "0"], "--requests"),
        ("random", &["--range-ratio", "1.5"], "--range-ratio"),
        ("agent", &["--users", "0"], "--users"),
        ("agent", &["--range-ratio", "1"], "--range-ratio"),
        ("agent", &["--context-window", "1000"], "--context-window"),
        (
            "agent",
            &["--user-arrival", "poisson:fast"],
            "--user-arrival",
        ),
        ("agent", &["--user-arrival", "sometimes"], "--user-arrival"),
        (
            "agent",
            &["--system-prefix-source", missing],
            "--system-prefix-source",
        ),
    ];
    for (kind, args, flag) in cases {
        let err = synth_err(kind, &out, args);
        assert!(err.contains(flag), "{kind} {args:?}: {err}");
        assert!(
            files_in(dir.path()).is_empty(),
            "{kind} {args:?} left a file"
        );
    }
}
