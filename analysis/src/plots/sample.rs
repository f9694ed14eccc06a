//! A hand-built report with every section filled, for the renderers' tests:
//! run `run-a` at qps 1..32 in two rounds with server metrics, turns, prompt
//! buckets and 25 users, and a run whose id is an HTML injection attempt.

use std::collections::BTreeMap;

use crate::model::*;

pub const HOSTILE_RUN: &str = "<script>alert(1)</script>";
pub const LOADS_A: [f64; 6] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
pub const LOADS_B: [f64; 3] = [1.0, 2.0, 4.0];
pub const USERS: usize = 25;

pub fn dist(p50: f64) -> Dist {
    Dist {
        count: 100,
        mean: Some(p50 * 1.1),
        std: Some(p50 * 0.3),
        min: Some(p50 * 0.5),
        p50: Some(p50),
        p90: Some(p50 * 1.5),
        p95: Some(p50 * 1.8),
        p99: Some(p50 * 2.5),
        max: Some(p50 * 3.0),
    }
}

pub fn key(run: &str, load: f64, round: u32) -> LevelKey {
    LevelKey {
        run_id: run.to_string(),
        load_mode: "qps".to_string(),
        load_value: load,
        round,
    }
}

fn level(run: &str, load: f64, round: u32, server: bool) -> LevelStats {
    let saturated = load > 8.0;
    let achieved = load.min(8.0 + 4.0 * f64::from(round)) * (0.97 - 0.02 * f64::from(round));
    let ttft = 40.0 + 2.0 * load.powf(1.5) / f64::from(round);
    let mut errors = BTreeMap::new();
    let mut errors_detail = BTreeMap::new();
    if saturated {
        errors.insert("http_error".to_string(), 10);
        errors_detail.insert("http_error 503".to_string(), 10);
    }
    LevelStats {
        key: key(run, load, round),
        requests: 100,
        ok: if saturated { 90 } else { 100 },
        warmup_requests: 5,
        errors,
        errors_detail,
        success_pct: if saturated { 90.0 } else { 100.0 },
        duration_s: 100.0 / achieved,
        first_scheduled_ms: 0.0,
        last_end_ms: 100_000.0 / achieved,
        target_rate: Some(load),
        arrivals: 34,
        achieved_rate: achieved,
        request_rate: achieved * 3.0,
        input_tokens_per_s: achieved * 3000.0,
        output_tokens_per_s: achieved * 300.0,
        ttft_ms: dist(ttft),
        tpot_ms: dist(12.0 + load * 0.5),
        itl_ms: dist(11.0 + load * 0.5),
        e2e_ms: dist(ttft + 1200.0 + load * 40.0),
        lateness_p50_ms: Some(0.2 + load * 0.05),
        lateness_p99_ms: Some(1.0 + load * 0.4),
        arrival_lateness_p99_ms: Some(0.8 + load * 0.3),
        client_behind: false,
        cached_token_ratio: Some(if round > 1 { 0.8 } else { 0.3 }),
        goodput: Some(achieved * 0.9),
        slo_attainment_pct: Some(if saturated { 70.0 } else { 99.0 }),
        stopped_short: 0,
        finish_reasons: [("length".to_string(), 90), ("stop".to_string(), 10)].into(),
        tokens_counted: 0,
        tokens_tokenized: 0,
        tokens_unknown: 0,
        output_fill_pct: Some(100.0),
        tokens_per_chunk: Some(1.0),
        ttft_rise_ms: None,
        fell_behind: false,
        server: server.then(|| ServerFigures {
            window_start_ms: 0.0,
            window_end_ms: 60_000.0,
            samples: 60,
            prefix_cache_hit_rate: Some(if round > 1 { 0.85 } else { 0.35 }),
            prefix_cache_hit_rate_source: Some("vllm:prefix_cache_hits".to_string()),
            running_mean: Some(load.min(10.0) * 1.5),
            running_max: Some(load.min(10.0) * 2.5),
            waiting_mean: Some(if saturated { load - 8.0 } else { 0.0 }),
            waiting_max: Some(if saturated { (load - 8.0) * 2.0 } else { 1.0 }),
            kv_usage_mean: Some((load / 40.0).min(0.95)),
            kv_usage_max: Some((load / 30.0).min(1.0)),
            prompt_tokens: Some(300_000.0),
            generation_tokens: Some(30_000.0),
            preemptions: Some(0.0),
            requests_finished: Some(100.0),
        }),
        server_by_endpoint: Default::default(),
    }
}

fn group(k: &LevelKey, name: String, order: f64, tokens: f64) -> GroupStats {
    GroupStats {
        key: k.clone(),
        group: name,
        order,
        requests: 20,
        ok: 20,
        compactions: u64::from(tokens > 2500.0),
        prompt_tokens_mean: Some(tokens),
        ttft_ms: dist(30.0 + tokens * 0.02 * k.load_value.sqrt()),
        tpot_ms: dist(12.0),
        e2e_ms: dist(1200.0 + tokens * 0.03),
    }
}

fn run(id: &str, interrupted: bool) -> RunInfo {
    RunInfo {
        run_id: id.to_string(),
        path: format!("results/{id}"),
        request_parts: 3,
        server_metric_parts: 1,
        has_run_json: !interrupted,
        interrupted: Some(interrupted),
        started_at: Some("2025-11-25T00:00:00Z".to_string()),
        endpoint: Some("http://127.0.0.1:8000/v1".to_string()),
        model: Some("Qwen/Qwen3-8B".to_string()),
        trace: Some("agents.parquet".to_string()),
        rows: 1800,
        sweep: None,
    }
}

fn saturation(run: &str, loads: &[f64]) -> Saturation {
    Saturation {
        run_id: run.to_string(),
        load_mode: "qps".to_string(),
        criterion: "slo".to_string(),
        highest_passing: Some(8.0),
        first_failing: Some(16.0),
        recommended: Some(7.2),
        headroom_pct: 10.0,
        statement: format!("{run}: saturates above qps 8 (TTFT p99 within SLO at 8, not at 16)"),
        levels: loads
            .iter()
            .map(|&v| LevelVerdict {
                load_value: v,
                passed: v <= 8.0,
                reasons: if v <= 8.0 {
                    Vec::new()
                } else {
                    vec!["TTFT p99 over SLO".to_string(), "success 90%".to_string()]
                },
            })
            .collect(),
    }
}

/// Every section filled.
pub fn report() -> Report {
    let mut levels = Vec::new();
    let mut rounds = Vec::new();
    for round in [1, 2] {
        for &v in &LOADS_A {
            levels.push(level("run-a", v, round, true));
            if round == 2 {
                rounds.push(RoundDelta {
                    run_id: "run-a".to_string(),
                    load_mode: "qps".to_string(),
                    load_value: v,
                    round,
                    pairs: 95,
                    ttft_first_p50_ms: Some(80.0),
                    ttft_this_p50_ms: Some(45.0),
                    ttft_delta_mean_ms: Some(-33.0),
                    ttft_delta_p50_ms: Some(-35.0),
                    cached_tokens_first: Some(300.0),
                    cached_tokens_this: Some(2400.0),
                    cached_ratio_first: Some(0.1),
                    cached_ratio_this: Some(0.8),
                });
            }
        }
    }
    for &v in &LOADS_B {
        levels.push(level(HOSTILE_RUN, v, 1, false));
    }
    let mut turns = Vec::new();
    let mut prompt_buckets = Vec::new();
    let mut timeline = Vec::new();
    for load in [2.0, 8.0] {
        let k = key("run-a", load, 1);
        for t in 1..=6u32 {
            let tokens = 500.0 * f64::from(t);
            turns.push(group(&k, format!("turn {t}"), f64::from(t), tokens));
        }
        for (lo, hi) in [(0, 1023), (1024, 2047), (2048, 4095), (4096, 8191)] {
            let mid = f64::from(lo + hi) / 2.0;
            prompt_buckets.push(group(&k, format!("{lo}-{hi}"), f64::from(lo), mid));
        }
        // The higher load's queue grows over the level.
        for s in 0..5u32 {
            let (from, to) = (f64::from(s) * 12.0, f64::from(s + 1) * 12.0);
            let tokens = 1000.0 + load * 100.0 * f64::from(s) * (load - 2.0);
            timeline.push(group(
                &k,
                format!("{from}-{to} s"),
                (from + to) / 2.0,
                tokens,
            ));
        }
    }
    let users: Vec<UserStats> = (0..USERS as u32)
        .map(|u| UserStats {
            key: key("run-a", 4.0, 1),
            user_id: u,
            requests: 12,
            errors: u64::from(u % 7 == 0),
            compactions: u64::from(u % 3 == 0),
            ttft_p50_ms: Some(40.0 + f64::from(u)),
            // User 24 has no TTFT at all: listed last.
            ttft_p99_ms: (u != 24).then(|| 90.0 + f64::from(u) * 3.0),
            tpot_p50_ms: Some(12.0),
            tpot_p99_ms: Some(20.0),
            span_s: Some(40.0),
            output_tokens_per_s: Some(30.0),
        })
        .collect();
    let k = key("run-a", 4.0, 1);
    Report {
        report_version: REPORT_VERSION,
        percentile_definition: PERCENTILE_DEFINITION.to_string(),
        runs: vec![run("run-a", false), run(HOSTILE_RUN, true)],
        slo: Slo {
            ttft_ms: Some(200.0),
            tpot_ms: Some(50.0),
            e2e_ms: None,
        },
        levels,
        saturation: vec![
            saturation("run-a", &LOADS_A),
            saturation(HOSTILE_RUN, &LOADS_B),
        ],
        rounds,
        turns,
        session_spans: vec![crate::model::SessionSpans {
            key: k.clone(),
            sessions: 20,
            failed: 1,
            turns: crate::compute::stats::dist_of(vec![3.0, 4.0, 4.0, 5.0]),
            span_s: crate::compute::stats::dist_of(vec![30.0, 41.5, 44.0, 52.0]),
        }],
        prompt_buckets,
        timeline,
        user_spans: crate::compute::user_spans(&users),
        users,
        by: Some(ByTable {
            columns: vec!["source".to_string()],
            groups: vec![
                group(&k, "sharegpt".to_string(), 0.0, 800.0),
                group(&k, "longbench".to_string(), 1.0, 6000.0),
            ],
        }),
        notes: vec![format!("{HOSTILE_RUN} was interrupted: no run.json")],
    }
}
