//! The report's sections as tables of text cells.

use crate::model::{Comparison, Dist, GroupStats, LevelKey, Report, fmt_value};

use super::{Table, csv_cell};

/// How many users the text report lists (the slowest first).
const USERS_SHOWN: usize = 10;

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if !x.is_finite() => fmt_value(x),
        Some(x) if x.abs() >= 1000.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 100.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.1}"))
}

/// The level's name, with the run when several runs are reported.
fn level_cells(k: &LevelKey, many_runs: bool) -> Vec<String> {
    let mut c = Vec::new();
    if many_runs {
        c.push(k.run_id.clone());
    }
    c.push(format!("{} {}", k.load_mode, fmt_value(k.load_value)));
    c.push(k.round.to_string());
    c
}

fn level_columns(many_runs: bool) -> Vec<&'static str> {
    let mut c = Vec::new();
    if many_runs {
        c.push("run");
    }
    c.extend(["level", "round"]);
    c
}

fn with(mut base: Vec<&'static str>, more: &[&'static str]) -> Vec<&'static str> {
    base.extend_from_slice(more);
    base
}

fn dist_cells(d: &Dist) -> Vec<String> {
    vec![
        d.count.to_string(),
        num(d.mean),
        num(d.std),
        num(d.min),
        num(d.p50),
        num(d.p90),
        num(d.p95),
        num(d.p99),
        num(d.max),
    ]
}

const DIST_COLUMNS: [&str; 9] = ["n", "mean", "std", "min", "p50", "p90", "p95", "p99", "max"];

pub fn report_tables(r: &Report) -> Vec<Table> {
    let many = r.runs.len() > 1;
    let mut tables = vec![runs_table(r)];
    tables.push(levels_table(r, many));
    for (name, get) in [
        (
            "TTFT (ms)",
            (|l| &l.ttft_ms) as fn(&crate::model::LevelStats) -> &Dist,
        ),
        ("TPOT (ms)", |l| &l.tpot_ms),
        ("ITL (ms)", |l| &l.itl_ms),
        ("E2E (ms)", |l| &l.e2e_ms),
    ] {
        let mut t = Table::new(name, &with(level_columns(many), &DIST_COLUMNS));
        for l in &r.levels {
            let mut row = level_cells(&l.key, many);
            row.extend(dist_cells(get(l)));
            t.rows.push(row);
        }
        tables.push(t);
    }
    if let Some(t) = errors_table(r, many) {
        tables.push(t);
    }
    if let Some(t) = finishes_table(r, many) {
        tables.push(t);
    }
    if let Some(t) = server_table(r, many) {
        tables.push(t);
    }
    if !r.saturation.is_empty() {
        let mut t = Table::new("Saturation", &[]);
        t.footer = Some(
            r.saturation
                .iter()
                .map(|s| s.statement.clone())
                .collect::<Vec<_>>()
                .join("\n  "),
        );
        tables.push(t);
    }
    if !r.rounds.is_empty() {
        let mut t = Table::new(
            "Rounds (each round against round 1, same requests)",
            &with(
                level_columns(many),
                &[
                    "pairs",
                    "ttft p50 r1",
                    "ttft p50",
                    "Δttft mean",
                    "Δttft p50",
                    "cached r1",
                    "cached",
                    "cached% r1",
                    "cached%",
                ],
            ),
        );
        for d in &r.rounds {
            let key = LevelKey {
                run_id: d.run_id.clone(),
                load_mode: d.load_mode.clone(),
                load_value: d.load_value,
                round: d.round,
            };
            let mut row = level_cells(&key, many);
            row.extend([
                d.pairs.to_string(),
                num(d.ttft_first_p50_ms),
                num(d.ttft_this_p50_ms),
                num(d.ttft_delta_mean_ms),
                num(d.ttft_delta_p50_ms),
                num(d.cached_tokens_first),
                num(d.cached_tokens_this),
                pct(d.cached_ratio_first.map(|x| 100.0 * x)),
                pct(d.cached_ratio_this.map(|x| 100.0 * x)),
            ]);
            t.rows.push(row);
        }
        tables.push(t);
    }
    if !r.turns.is_empty() {
        let mut t = group_table("Latency by turn", "turn", &r.turns, many);
        let lines = session_lines(r);
        t.footer = (!lines.is_empty()).then(|| lines.join("\n  "));
        tables.push(t);
    }
    if !r.prompt_buckets.is_empty() {
        tables.push(group_table(
            "Latency by prompt tokens",
            "prompt tokens",
            &r.prompt_buckets,
            many,
        ));
    }
    if !r.timeline.is_empty() {
        tables.push(group_table(
            "Latency over each level's time (by scheduled send)",
            "seconds in",
            &r.timeline,
            many,
        ));
    }
    if !r.users.is_empty() {
        tables.push(users_table(r, many));
    }
    if let Some(by) = &r.by {
        let title = format!("By {}", by.columns.join(", "));
        tables.push(group_table(&title, "group", &by.groups, many));
    }
    let mut notes = Table::new("Notes", &[]);
    let mut lines = r.notes.clone();
    if r.slo.is_set() {
        let parts: Vec<String> = [
            ("TTFT", r.slo.ttft_ms),
            ("TPOT", r.slo.tpot_ms),
            ("E2E", r.slo.e2e_ms),
        ]
        .iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n} ≤ {} ms", fmt_value(v))))
        .collect();
        lines.push(format!(
            "SLO: {} (goodput = ok requests meeting all of them, per second)",
            parts.join(", ")
        ));
    }
    lines.push(format!("Percentiles: {}.", r.percentile_definition));
    lines.push(
        "Warm-up requests are left out; latency figures cover ok requests, lateness all requests."
            .into(),
    );
    notes.footer = Some(lines.join("\n  "));
    tables.push(notes);
    tables
}

fn runs_table(r: &Report) -> Table {
    let mut t = Table::new(
        "Runs",
        &["run", "requests", "parts", "run.json", "endpoint", "model"],
    );
    for i in &r.runs {
        t.rows.push(vec![
            i.run_id.clone(),
            i.rows.to_string(),
            i.request_parts.to_string(),
            match (i.has_run_json, i.interrupted) {
                (false, _) => "missing (killed?)".into(),
                (true, Some(true)) => "interrupted".into(),
                (true, _) => "yes".into(),
            },
            i.endpoint.clone().unwrap_or_else(|| "-".into()),
            i.model.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

fn levels_table(r: &Report, many: bool) -> Table {
    let mut cols = with(
        level_columns(many),
        &[
            "reqs",
            "ok%",
            "target/s",
            "actual/s",
            "req/s",
            "in tok/s",
            "out tok/s",
            "ttft p50",
            "ttft p99",
            "tpot p50",
            "e2e p50",
            "e2e p99",
            "late p50",
            "late p99",
            "cached%",
        ],
    );
    let slo = r.slo.is_set();
    if slo {
        cols.extend(["goodput/s", "slo%"]);
    }
    let mut t = Table::new("Levels", &cols);
    for l in &r.levels {
        let mut row = level_cells(&l.key, many);
        row.extend([
            l.requests.to_string(),
            pct(Some(l.success_pct)),
            num(l.target_rate),
            num(Some(l.achieved_rate)),
            num(Some(l.request_rate)),
            num(Some(l.input_tokens_per_s)),
            num(Some(l.output_tokens_per_s)),
            num(l.ttft_ms.p50),
            num(l.ttft_ms.p99),
            num(l.tpot_ms.p50),
            num(l.e2e_ms.p50),
            num(l.e2e_ms.p99),
            num(l.lateness_p50_ms),
            num(l.lateness_p99_ms),
            pct(l.cached_token_ratio.map(|x| 100.0 * x)),
        ]);
        if slo {
            row.extend([num(l.goodput), pct(l.slo_attainment_pct)]);
        }
        t.rows.push(row);
    }
    let behind: Vec<String> = r
        .levels
        .iter()
        .filter(|l| l.client_behind)
        .map(|l| l.key.label())
        .collect();
    if !behind.is_empty() {
        t.footer = Some(format!(
            "CLIENT BEHIND at {}: arrival lateness p99 over 10 ms; the load generator, not the server, limited these levels",
            behind.join(", ")
        ));
    }
    t
}

fn errors_table(r: &Report, many: bool) -> Option<Table> {
    let mut t = Table::new("Errors", &with(level_columns(many), &["error", "count"]));
    for l in &r.levels {
        for (kind, n) in &l.errors_detail {
            let mut row = level_cells(&l.key, many);
            row.extend([kind.clone(), n.to_string()]);
            t.rows.push(row);
        }
    }
    (!t.rows.is_empty()).then_some(t)
}

/// Ok replies by `finish_reason`, one row per level: `length` is a reply
/// that reached its `max_tokens`, `stop` one the model ended.
fn finishes_table(r: &Report, many: bool) -> Option<Table> {
    let mut t = Table::new(
        "Finish reasons (ok replies)",
        &with(level_columns(many), &["ok", "finish reasons"]),
    );
    for l in &r.levels {
        if l.finish_reasons.is_empty() {
            continue;
        }
        let mut row = level_cells(&l.key, many);
        row.extend([l.ok.to_string(), finish_shares(&l.finish_reasons)]);
        t.rows.push(row);
    }
    (!t.rows.is_empty()).then_some(t)
}

/// `length 95.0%, stop 5.0%`: the reasons, most frequent first.
fn finish_shares(counts: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    let mut v: Vec<(&String, &u64)> = counts.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} {:.1}%", 100.0 * **n as f64 / total.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

fn server_table(r: &Report, many: bool) -> Option<Table> {
    // Several servers: a row for all of them, then one per server.
    let several = r.levels.iter().any(|l| !l.server_by_endpoint.is_empty());
    let mut columns = level_columns(many);
    if several {
        columns.push("server");
    }
    let mut t = Table::new(
        "Server (from its metrics, over each level)",
        &with(
            columns,
            &[
                "samples",
                "prefix hit%",
                "running mean",
                "running max",
                "waiting mean",
                "waiting max",
                "kv% mean",
                "kv% max",
                "preemptions",
            ],
        ),
    );
    for l in &r.levels {
        for (name, s) in l.server_rows() {
            let mut row = level_cells(&l.key, many);
            if several {
                row.push(name.to_string());
            }
            row.extend([
                s.samples.to_string(),
                pct(s.prefix_cache_hit_rate.map(|x| 100.0 * x)),
                num(s.running_mean),
                num(s.running_max),
                num(s.waiting_mean),
                num(s.waiting_max),
                pct(s.kv_usage_mean.map(|x| 100.0 * x)),
                pct(s.kv_usage_max.map(|x| 100.0 * x)),
                num(s.preemptions),
            ]);
            t.rows.push(row);
        }
    }
    (!t.rows.is_empty()).then_some(t)
}

fn group_table(title: &str, what: &'static str, groups: &[GroupStats], many: bool) -> Table {
    let mut t = Table::new(
        title,
        &with(
            level_columns(many),
            &[
                what,
                "reqs",
                "ok",
                "compactions",
                "prompt tok",
                "ttft p50",
                "ttft p99",
                "tpot p50",
                "e2e p50",
                "e2e p99",
            ],
        ),
    );
    for g in groups {
        let mut row = level_cells(&g.key, many);
        row.extend([
            g.group.clone(),
            g.requests.to_string(),
            g.ok.to_string(),
            g.compactions.to_string(),
            num(g.prompt_tokens_mean),
            num(g.ttft_ms.p50),
            num(g.ttft_ms.p99),
            num(g.tpot_ms.p50),
            num(g.e2e_ms.p50),
            num(g.e2e_ms.p99),
        ]);
        t.rows.push(row);
    }
    t
}

fn users_table(r: &Report, many: bool) -> Table {
    let mut t = Table::new(
        "Users (slowest TTFT p99 first)",
        &with(
            level_columns(many),
            &[
                "user",
                "reqs",
                "errors",
                "compactions",
                "ttft p50",
                "ttft p99",
                "tpot p50",
                "tpot p99",
                "span s",
                "out tok/s",
            ],
        ),
    );
    let mut users: Vec<_> = r.users.iter().collect();
    users.sort_by(|a, b| {
        b.ttft_p99_ms
            .unwrap_or(f64::INFINITY)
            .total_cmp(&a.ttft_p99_ms.unwrap_or(f64::INFINITY))
    });
    for u in users.iter().take(USERS_SHOWN) {
        let mut row = level_cells(&u.key, many);
        row.extend([
            u.user_id.to_string(),
            u.requests.to_string(),
            u.errors.to_string(),
            u.compactions.to_string(),
            num(u.ttft_p50_ms),
            num(u.ttft_p99_ms),
            num(u.tpot_p50_ms),
            num(u.tpot_p99_ms),
            num(u.span_s),
            num(u.output_tokens_per_s),
        ]);
        t.rows.push(row);
    }
    let mut footer = spans_lines(r);
    if users.len() > USERS_SHOWN {
        footer.push(format!(
            "{} more users in --format json or xlsx",
            users.len() - USERS_SHOWN
        ));
    }
    t.footer = (!footer.is_empty()).then(|| footer.join("\n  "));
    t
}

/// A level as the lines under a table name it: with the run when the
/// report covers several.
fn level_name(key: &LevelKey, many: bool) -> String {
    if many {
        format!("{} {}", key.run_id, key.label())
    } else {
        key.label()
    }
}

/// One line per multi-turn level: its sessions, how many a failed turn
/// ended, their turns and how long they took, first send to last byte.
pub fn session_lines(r: &Report) -> Vec<String> {
    let many = r.runs.len() > 1;
    r.session_spans
        .iter()
        .map(|s| {
            let level = level_name(&s.key, many);
            format!(
                "{level}: {} sessions ({} ended by a failed turn), turns p50 {}, max {}; span (first send to last byte) p50 {} s, p90 {} s, max {} s",
                s.sessions,
                s.failed,
                s.turns.p50.map_or("-".into(), |t| fmt_value((t * 100.0).round() / 100.0)),
                s.turns.max.map_or("-".into(), fmt_value),
                num(s.span_s.p50),
                num(s.span_s.p90),
                num(s.span_s.max)
            )
        })
        .collect()
}

/// One line per level: how long its users took, first send to last byte.
pub fn spans_lines(r: &Report) -> Vec<String> {
    let many = r.runs.len() > 1;
    r.user_spans
        .iter()
        .filter(|s| s.users > 0)
        .map(|s| {
            let level = level_name(&s.key, many);
            format!(
                "{level}: the {} users' spans (first send to last byte) p50 {} s, p90 {} s, max {} s",
                s.users,
                num(s.span_s.p50),
                num(s.span_s.p90),
                num(s.span_s.max)
            )
        })
        .collect()
}

/// `--format csv`: one row per level with every figure.
pub fn levels_csv(r: &Report) -> String {
    let mut header: Vec<String> = [
        "run_id",
        "load_mode",
        "load_value",
        "round",
        "requests",
        "ok",
        "warmup_requests",
        "success_pct",
        "duration_s",
        "target_rate",
        "achieved_rate",
        "request_rate",
        "input_tokens_per_s",
        "output_tokens_per_s",
    ]
    .map(String::from)
    .to_vec();
    for m in ["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"] {
        for s in DIST_COLUMNS {
            let s = if s == "n" { "count" } else { s };
            header.push(format!("{m}_{s}"));
        }
    }
    header.extend(
        [
            "lateness_p50_ms",
            "lateness_p99_ms",
            "arrival_lateness_p99_ms",
            "client_behind",
            "cached_token_ratio",
            "goodput",
            "slo_attainment_pct",
            "prefix_cache_hit_rate",
            "errors",
            "finish_reasons",
            "stopped_short",
            "output_fill_pct",
            "tokens_per_chunk",
            "tokens_counted",
            "tokens_tokenized",
            "tokens_unknown",
            "ttft_rise_ms",
            "fell_behind",
        ]
        .map(String::from),
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    let mut out = header.join(",");
    out.push('\n');
    for l in &r.levels {
        let mut row = vec![
            csv_cell(&l.key.run_id),
            csv_cell(&l.key.load_mode),
            l.key.load_value.to_string(),
            l.key.round.to_string(),
            l.requests.to_string(),
            l.ok.to_string(),
            l.warmup_requests.to_string(),
            l.success_pct.to_string(),
            l.duration_s.to_string(),
            opt(l.target_rate),
            l.achieved_rate.to_string(),
            l.request_rate.to_string(),
            l.input_tokens_per_s.to_string(),
            l.output_tokens_per_s.to_string(),
        ];
        for d in [&l.ttft_ms, &l.tpot_ms, &l.itl_ms, &l.e2e_ms] {
            row.push(d.count.to_string());
            for v in [d.mean, d.std, d.min, d.p50, d.p90, d.p95, d.p99, d.max] {
                row.push(opt(v));
            }
        }
        let (errors, finishes) = (
            counts_cell(&l.errors_detail),
            counts_cell(&l.finish_reasons),
        );
        row.extend([
            opt(l.lateness_p50_ms),
            opt(l.lateness_p99_ms),
            opt(l.arrival_lateness_p99_ms),
            l.client_behind.to_string(),
            opt(l.cached_token_ratio),
            opt(l.goodput),
            opt(l.slo_attainment_pct),
            opt(l.server.as_ref().and_then(|s| s.prefix_cache_hit_rate)),
            csv_cell(&errors),
            csv_cell(&finishes),
            l.stopped_short.to_string(),
            opt(l.output_fill_pct),
            opt(l.tokens_per_chunk),
            l.tokens_counted.to_string(),
            l.tokens_tokenized.to_string(),
            l.tokens_unknown.to_string(),
            opt(l.ttft_rise_ms),
            l.fell_behind.to_string(),
        ]);
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// `kind:n;kind:n`: a level's counts in one CSV cell.
fn counts_cell(counts: &std::collections::BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k}:{n}"))
        .collect::<Vec<_>>()
        .join(";")
}

pub fn comparison_tables(c: &Comparison) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut runs = Table::new("Runs (the first is the baseline)", &["#", "run", "path"]);
    for (i, r) in c.runs.iter().enumerate() {
        runs.rows
            .push(vec![(i + 1).to_string(), r.run_id.clone(), r.path.clone()]);
    }
    tables.push(runs);
    let mut cols: Vec<String> = vec!["metric".into(), "#1".into()];
    for i in 1..c.runs.len() {
        cols.push(format!("#{}", i + 1));
        cols.push(format!("Δ#{}", i + 1));
        cols.push(format!("Δ%#{}", i + 1));
        cols.push(String::new());
    }
    for l in &c.levels {
        let title = LevelKey {
            run_id: String::new(),
            load_mode: l.load_mode.clone(),
            load_value: l.load_value,
            round: l.round,
        }
        .label();
        let mut t = Table {
            title,
            columns: cols.clone(),
            ..Table::default()
        };
        for m in &l.metrics {
            let mut row = vec![m.metric.clone(), num(m.values.first().copied().flatten())];
            for i in 1..c.runs.len() {
                row.push(num(m.values.get(i).copied().flatten()));
                row.push(num(m.delta.get(i).copied().flatten()));
                row.push(pct(m.delta_pct.get(i).copied().flatten()));
                row.push(match m.flag.get(i).map(String::as_str) {
                    Some("better") => "better".into(),
                    Some("worse") => "WORSE".into(),
                    _ => String::new(),
                });
            }
            t.rows.push(row);
        }
        tables.push(t);
    }
    let mut notes = Table::new("Notes", &[]);
    let mut lines = c.notes.clone();
    lines.push(format!("Noise: {}.", c.noise_definition));
    lines.push(format!("Percentiles: {}.", c.percentile_definition));
    notes.footer = Some(lines.join("\n  "));
    tables.push(notes);
    tables
}
