//! The report's sections as tables of typed cells (numbers stay numbers), laid out by the
//! HTML page and the spreadsheet alike so both show the same figures.

use crate::model::{Dist, GroupStats, LevelKey, LevelStats, Report, ServerFigures, UserStats};

/// One value. `None` figures stay empty (no zeros made up).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(u64),
    Num(Option<f64>),
    Bool(Option<bool>),
}

impl Cell {
    fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    fn opt_text(s: &Option<String>) -> Cell {
        Cell::Text(s.clone().unwrap_or_default())
    }
}

/// A titled table: `name` is the sheet name and HTML anchor.
#[derive(Debug, Clone)]
pub struct TypedTable {
    pub name: &'static str,
    pub title: &'static str,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl TypedTable {
    fn new(name: &'static str, title: &'static str, headers: Vec<String>) -> TypedTable {
        TypedTable {
            name,
            title,
            headers,
            rows: Vec::new(),
        }
    }
}

const KEY_HEADERS: [&str; 4] = ["run", "load mode", "load", "round"];
const DIST_FIGURES: [&str; 9] = [
    "count", "mean", "std", "min", "p50", "p90", "p95", "p99", "max",
];

fn headers(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

fn key_cells(k: &LevelKey) -> Vec<Cell> {
    vec![
        Cell::text(&k.run_id),
        Cell::text(&k.load_mode),
        Cell::Num(Some(k.load_value)),
        Cell::Int(u64::from(k.round)),
    ]
}

fn dist_cells(d: &Dist) -> Vec<Cell> {
    vec![
        Cell::Int(d.count),
        Cell::Num(d.mean),
        Cell::Num(d.std),
        Cell::Num(d.min),
        Cell::Num(d.p50),
        Cell::Num(d.p90),
        Cell::Num(d.p95),
        Cell::Num(d.p99),
        Cell::Num(d.max),
    ]
}

fn dist_headers(metric: &str) -> Vec<String> {
    DIST_FIGURES
        .iter()
        .map(|f| format!("{metric} {f}"))
        .collect()
}

pub fn runs(report: &Report) -> TypedTable {
    let mut t = TypedTable::new(
        "runs",
        "Runs",
        headers(&[&[
            "run",
            "path",
            "request parts",
            "server metric parts",
            "run.json",
            "interrupted",
            "started at",
            "endpoint",
            "model",
            "trace",
            "rows",
        ]]),
    );
    for r in &report.runs {
        t.rows.push(vec![
            Cell::text(&r.run_id),
            Cell::text(&r.path),
            Cell::Int(r.request_parts as u64),
            Cell::Int(r.server_metric_parts as u64),
            Cell::Bool(Some(r.has_run_json)),
            Cell::Bool(r.interrupted),
            Cell::opt_text(&r.started_at),
            Cell::opt_text(&r.endpoint),
            Cell::opt_text(&r.model),
            Cell::opt_text(&r.trace),
            Cell::Int(r.rows),
        ]);
    }
    t
}

const LEVEL_HEADERS: [&str; 19] = [
    "requests",
    "ok",
    "warm-up requests",
    "success %",
    "errors",
    "duration s",
    "target rate /s",
    "arrivals",
    "achieved rate /s",
    "request rate /s",
    "input tokens/s",
    "output tokens/s",
    "lateness p50 ms",
    "lateness p99 ms",
    "arrival lateness p99 ms",
    "client behind",
    "cached token ratio",
    "goodput /s",
    "SLO attainment %",
];

fn level_cells(l: &LevelStats) -> Vec<Cell> {
    vec![
        Cell::Int(l.requests),
        Cell::Int(l.ok),
        Cell::Int(l.warmup_requests),
        Cell::Num(Some(l.success_pct)),
        Cell::Int(l.errors.values().sum()),
        Cell::Num(Some(l.duration_s)),
        Cell::Num(l.target_rate),
        Cell::Int(l.arrivals),
        Cell::Num(Some(l.achieved_rate)),
        Cell::Num(Some(l.request_rate)),
        Cell::Num(Some(l.input_tokens_per_s)),
        Cell::Num(Some(l.output_tokens_per_s)),
        Cell::Num(l.lateness_p50_ms),
        Cell::Num(l.lateness_p99_ms),
        Cell::Num(l.arrival_lateness_p99_ms),
        Cell::Bool(Some(l.client_behind)),
        Cell::Num(l.cached_token_ratio),
        Cell::Num(l.goodput),
        Cell::Num(l.slo_attainment_pct),
    ]
}

/// Levels: counts, rates and lateness. With `wide`, every distribution
/// figure and the server's figures follow as more columns (the spreadsheet);
/// without, they are the separate [`latency`] and [`server`] tables.
pub fn levels(report: &Report, wide: bool) -> TypedTable {
    let mut h = headers(&[&KEY_HEADERS, &LEVEL_HEADERS]);
    if wide {
        for m in LATENCY_METRICS {
            h.extend(dist_headers(m.0));
        }
        h.extend(SERVER_HEADERS.iter().map(|s| format!("server {s}")));
    }
    let mut t = TypedTable::new("levels", "Load levels", h);
    for l in &report.levels {
        let mut row = key_cells(&l.key);
        row.extend(level_cells(l));
        if wide {
            for m in LATENCY_METRICS {
                row.extend(dist_cells((m.1)(l)));
            }
            row.extend(server_cells(l.server.as_ref()));
        }
        t.rows.push(row);
    }
    t
}

type DistOf = fn(&LevelStats) -> &Dist;

const LATENCY_METRICS: [(&str, DistOf); 4] = [
    ("TTFT ms", |l| &l.ttft_ms),
    ("TPOT ms", |l| &l.tpot_ms),
    ("ITL ms", |l| &l.itl_ms),
    ("E2E ms", |l| &l.e2e_ms),
];

/// Every distribution of every level, one row per level and metric.
pub fn latency(report: &Report) -> TypedTable {
    let mut t = TypedTable::new(
        "latency",
        "Latency distributions",
        headers(&[&KEY_HEADERS, &["metric"], &DIST_FIGURES]),
    );
    for l in &report.levels {
        for (name, dist) in LATENCY_METRICS {
            let mut row = key_cells(&l.key);
            row.push(Cell::text(name));
            row.extend(dist_cells(dist(l)));
            t.rows.push(row);
        }
    }
    t
}

const SERVER_HEADERS: [&str; 15] = [
    "samples",
    "window start ms",
    "window end ms",
    "prefix cache hit rate",
    "hit rate source",
    "running mean",
    "running max",
    "waiting mean",
    "waiting max",
    "KV usage mean",
    "KV usage max",
    "prompt tokens",
    "generation tokens",
    "preemptions",
    "requests finished",
];

fn server_cells(s: Option<&ServerFigures>) -> Vec<Cell> {
    let Some(s) = s else {
        return vec![Cell::Num(None); SERVER_HEADERS.len()];
    };
    vec![
        Cell::Int(s.samples),
        Cell::Num(Some(s.window_start_ms)),
        Cell::Num(Some(s.window_end_ms)),
        Cell::Num(s.prefix_cache_hit_rate),
        Cell::opt_text(&s.prefix_cache_hit_rate_source),
        Cell::Num(s.running_mean),
        Cell::Num(s.running_max),
        Cell::Num(s.waiting_mean),
        Cell::Num(s.waiting_max),
        Cell::Num(s.kv_usage_mean),
        Cell::Num(s.kv_usage_max),
        Cell::Num(s.prompt_tokens),
        Cell::Num(s.generation_tokens),
        Cell::Num(s.preemptions),
        Cell::Num(s.requests_finished),
    ]
}

/// The server's own figures, for levels that have them.
pub fn server(report: &Report) -> TypedTable {
    let mut t = TypedTable::new(
        "server",
        "Server metrics",
        headers(&[&KEY_HEADERS, &["server"], &SERVER_HEADERS]),
    );
    for l in &report.levels {
        for (name, s) in l.server_rows() {
            let mut row = key_cells(&l.key);
            row.push(Cell::text(name));
            row.extend(server_cells(Some(s)));
            t.rows.push(row);
        }
    }
    t
}

/// Requests that were not ok, by status and HTTP code.
pub fn errors(report: &Report) -> TypedTable {
    let mut t = TypedTable::new(
        "errors",
        "Errors",
        headers(&[&KEY_HEADERS, &["error", "requests"]]),
    );
    for l in &report.levels {
        let detail = if l.errors_detail.is_empty() {
            &l.errors
        } else {
            &l.errors_detail
        };
        for (what, n) in detail {
            let mut row = key_cells(&l.key);
            row.push(Cell::text(what));
            row.push(Cell::Int(*n));
            t.rows.push(row);
        }
    }
    t
}

/// Ok replies by `finish_reason`, per level.
pub fn finishes(report: &Report) -> TypedTable {
    let mut t = TypedTable::new(
        "finish_reasons",
        "Finish reasons",
        headers(&[&KEY_HEADERS, &["finish reason", "requests", "share %"]]),
    );
    for l in &report.levels {
        let total: u64 = l.finish_reasons.values().sum();
        for (what, n) in &l.finish_reasons {
            let mut row = key_cells(&l.key);
            row.push(Cell::text(what));
            row.push(Cell::Int(*n));
            row.push(Cell::Num(Some(100.0 * *n as f64 / total.max(1) as f64)));
            t.rows.push(row);
        }
    }
    t
}

pub fn saturation(report: &Report) -> TypedTable {
    let mut t = TypedTable::new(
        "saturation",
        "Saturation",
        headers(&[&[
            "run",
            "load mode",
            "criterion",
            "highest passing",
            "first failing",
            "recommended",
            "headroom %",
            "statement",
        ]]),
    );
    for s in &report.saturation {
        t.rows.push(vec![
            Cell::text(&s.run_id),
            Cell::text(&s.load_mode),
            Cell::text(&s.criterion),
            Cell::Num(s.highest_passing),
            Cell::Num(s.first_failing),
            Cell::Num(s.recommended),
            Cell::Num(Some(s.headroom_pct)),
            Cell::text(&s.statement),
        ]);
    }
    t
}

/// Each level's verdict in the saturation search, with the reasons.
pub fn verdicts(report: &Report) -> TypedTable {
    let mut t = TypedTable::new(
        "verdicts",
        "Saturation verdicts per level",
        headers(&[&["run", "load mode", "load", "passed", "reasons"]]),
    );
    for s in &report.saturation {
        for v in &s.levels {
            t.rows.push(vec![
                Cell::text(&s.run_id),
                Cell::text(&s.load_mode),
                Cell::Num(Some(v.load_value)),
                Cell::Bool(Some(v.passed)),
                Cell::text(v.reasons.join("; ")),
            ]);
        }
    }
    t
}

pub fn rounds(report: &Report) -> TypedTable {
    let mut t = TypedTable::new(
        "rounds",
        "Rounds against round 1",
        headers(&[&[
            "run",
            "load mode",
            "load",
            "round",
            "pairs",
            "TTFT p50 round 1 ms",
            "TTFT p50 this round ms",
            "TTFT delta mean ms",
            "TTFT delta p50 ms",
            "cached tokens round 1",
            "cached tokens this round",
            "cached ratio round 1",
            "cached ratio this round",
        ]]),
    );
    for r in &report.rounds {
        t.rows.push(vec![
            Cell::text(&r.run_id),
            Cell::text(&r.load_mode),
            Cell::Num(Some(r.load_value)),
            Cell::Int(u64::from(r.round)),
            Cell::Int(r.pairs),
            Cell::Num(r.ttft_first_p50_ms),
            Cell::Num(r.ttft_this_p50_ms),
            Cell::Num(r.ttft_delta_mean_ms),
            Cell::Num(r.ttft_delta_p50_ms),
            Cell::Num(r.cached_tokens_first),
            Cell::Num(r.cached_tokens_this),
            Cell::Num(r.cached_ratio_first),
            Cell::Num(r.cached_ratio_this),
        ]);
    }
    t
}

/// Groups (turns, prompt buckets, `--by` values). With `wide`, every
/// distribution figure; without, the usual few.
pub fn groups(
    name: &'static str,
    title: &'static str,
    group_header: &str,
    groups: &[GroupStats],
    wide: bool,
) -> TypedTable {
    let mut h = headers(&[
        &KEY_HEADERS,
        &[
            group_header,
            "requests",
            "ok",
            "compactions",
            "prompt tokens mean",
        ],
    ]);
    if wide {
        for m in ["TTFT ms", "TPOT ms", "E2E ms"] {
            h.extend(dist_headers(m));
        }
    } else {
        h.extend(headers(&[&[
            "TTFT mean ms",
            "TTFT p50 ms",
            "TTFT p90 ms",
            "TTFT p99 ms",
            "TPOT p50 ms",
            "TPOT p99 ms",
            "E2E p50 ms",
            "E2E p99 ms",
        ]]));
    }
    let mut t = TypedTable::new(name, title, h);
    for g in groups {
        let mut row = key_cells(&g.key);
        row.extend([
            Cell::text(&g.group),
            Cell::Int(g.requests),
            Cell::Int(g.ok),
            Cell::Int(g.compactions),
            Cell::Num(g.prompt_tokens_mean),
        ]);
        if wide {
            for d in [&g.ttft_ms, &g.tpot_ms, &g.e2e_ms] {
                row.extend(dist_cells(d));
            }
        } else {
            row.extend([
                Cell::Num(g.ttft_ms.mean),
                Cell::Num(g.ttft_ms.p50),
                Cell::Num(g.ttft_ms.p90),
                Cell::Num(g.ttft_ms.p99),
                Cell::Num(g.tpot_ms.p50),
                Cell::Num(g.tpot_ms.p99),
                Cell::Num(g.e2e_ms.p50),
                Cell::Num(g.e2e_ms.p99),
            ]);
        }
        t.rows.push(row);
    }
    t
}

pub fn turns(report: &Report, wide: bool) -> TypedTable {
    groups("turns", "Latency by turn", "turn", &report.turns, wide)
}

pub fn prompt_buckets(report: &Report, wide: bool) -> TypedTable {
    groups(
        "prompt_buckets",
        "Latency by prompt tokens",
        "prompt tokens",
        &report.prompt_buckets,
        wide,
    )
}

pub fn timeline(report: &Report, wide: bool) -> TypedTable {
    groups(
        "timeline",
        "Latency over each level's time",
        "seconds into the level",
        &report.timeline,
        wide,
    )
}

pub fn by(report: &Report, wide: bool) -> TypedTable {
    match &report.by {
        Some(b) => groups("by", "Grouped by", &b.columns.join(", "), &b.groups, wide),
        None => groups("by", "Grouped by", "group", &[], wide),
    }
}

/// Users, slowest first by TTFT p99 (users without one last), at most
/// `limit`; returns the table and how many users were left out.
pub fn users(report: &Report, limit: Option<usize>) -> (TypedTable, usize) {
    let mut t = TypedTable::new(
        "users",
        "Users",
        headers(&[
            &KEY_HEADERS,
            &[
                "user",
                "requests",
                "errors",
                "compactions",
                "TTFT p50 ms",
                "TTFT p99 ms",
                "TPOT p50 ms",
                "TPOT p99 ms",
                "span s",
                "output tokens/s",
            ],
        ]),
    );
    let mut users: Vec<&UserStats> = report.users.iter().collect();
    users.sort_by(|a, b| {
        let key = |u: &UserStats| u.ttft_p99_ms.unwrap_or(f64::NEG_INFINITY);
        key(b).total_cmp(&key(a))
    });
    let shown = limit.unwrap_or(users.len()).min(users.len());
    for u in &users[..shown] {
        let mut row = key_cells(&u.key);
        row.extend([
            Cell::Int(u64::from(u.user_id)),
            Cell::Int(u.requests),
            Cell::Int(u.errors),
            Cell::Int(u.compactions),
            Cell::Num(u.ttft_p50_ms),
            Cell::Num(u.ttft_p99_ms),
            Cell::Num(u.tpot_p50_ms),
            Cell::Num(u.tpot_p99_ms),
            Cell::Num(u.span_s),
            Cell::Num(u.output_tokens_per_s),
        ]);
        t.rows.push(row);
    }
    (t, users.len() - shown)
}

/// Report-wide facts: version, percentile definition, SLO, notes.
pub fn notes(report: &Report) -> TypedTable {
    let mut t = TypedTable::new("notes", "Notes", headers(&[&["item", "value"]]));
    let mut add = |item: &str, value: Cell| t.rows.push(vec![Cell::text(item), value]);
    add(
        "report version",
        Cell::Int(u64::from(report.report_version)),
    );
    add(
        "percentile definition",
        Cell::text(&report.percentile_definition),
    );
    add("SLO TTFT ms", Cell::Num(report.slo.ttft_ms));
    add("SLO TPOT ms", Cell::Num(report.slo.tpot_ms));
    add("SLO E2E ms", Cell::Num(report.slo.e2e_ms));
    for n in &report.notes {
        add("note", Cell::text(n));
    }
    t
}
