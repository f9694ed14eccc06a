//! What a report holds. Every figure here is computed by `crate::compute`
//! from the run's Parquet files; the renderers (`crate::render`,
//! `crate::plots`) only lay it out. `trace report --format json` prints this
//! structure as is.

use std::collections::BTreeMap;

use serde::Serialize;
pub use traces::results::Slo;

/// The percentiles every distribution carries.
pub const PERCENTILES: [f64; 4] = [50.0, 90.0, 95.0, 99.0];

/// How percentiles are computed, stated in every report.
pub const PERCENTILE_DEFINITION: &str = "linear interpolation between closest ranks: \
     position (n - 1) * p of the sorted values, as DuckDB's quantile_cont, \
     Polars' quantile(p, 'linear') and NumPy's default";

/// Version of the report's JSON layout.
pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub report_version: u32,
    pub percentile_definition: String,
    pub runs: Vec<RunInfo>,
    /// SLO used for goodput and attainment (from `--slo`, else each run's run.json).
    pub slo: Slo,
    pub levels: Vec<LevelStats>,
    pub saturation: Vec<Saturation>,
    /// Round k (k ≥ 2) against round 1, request by request.
    pub rounds: Vec<RoundDelta>,
    /// Latency by turn, for multi-turn runs.
    pub turns: Vec<GroupStats>,
    /// Per level of a multi-turn run, the spread of its sessions' spans and turns.
    pub session_spans: Vec<SessionSpans>,
    /// Latency by prompt-token bucket (`prompt_tokens`, else the target length).
    pub prompt_buckets: Vec<GroupStats>,
    /// Each level cut into slices of its time (by when requests were
    /// scheduled), with the latency of each slice.
    pub timeline: Vec<GroupStats>,
    /// Per-user aggregates, for `--users` runs.
    pub users: Vec<UserStats>,
    /// Per level of a `--users` run, the spread of its users' spans.
    pub user_spans: Vec<UserSpans>,
    /// `--by` groups.
    pub by: Option<ByTable>,
    /// Things the reader should know (partial runs, missing files, ...).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub path: String,
    pub request_parts: usize,
    pub server_metric_parts: usize,
    /// run.json was found (a run killed with `kill -9` has only parts).
    pub has_run_json: bool,
    pub interrupted: Option<bool>,
    pub started_at: Option<String>,
    pub endpoint: Option<String>,
    pub model: Option<String>,
    pub trace: Option<String>,
    pub rows: u64,
    /// The run was a `trace replay --sweep`.
    pub sweep: Option<SweepInfo>,
}

/// A `--sweep N` run: its first two levels (concurrency 1 and `qps inf`)
/// are probes, and its other `qps` levels were chosen between the session
/// rates they sustained.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SweepInfo {
    pub levels: u64,
    /// Sessions per second at concurrency 1 (missing if the probes did not finish).
    pub sync_rate: Option<f64>,
    /// Sessions per second with every session sent at once.
    pub max_rate: Option<f64>,
}

/// Distribution of one metric: sample standard deviation (n - 1), and the
/// `PERCENTILES` keyed `p50`, `p90`, `p95`, `p99`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Dist {
    pub count: u64,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// Serializes a level's value, with an unbounded rate (`--qps inf`) as
/// the string `"inf"`: JSON has no infinity, and serde would write null.
pub fn ser_load_value<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_infinite() {
        s.serialize_str("inf")
    } else {
        s.serialize_f64(*v)
    }
}

/// The identity of a load level within a run.
#[derive(Debug, Clone, Serialize, PartialEq, PartialOrd)]
pub struct LevelKey {
    pub run_id: String,
    pub load_mode: String,
    #[serde(serialize_with = "ser_load_value")]
    pub load_value: f64,
    pub round: u32,
}

impl LevelKey {
    /// `qps 5`, `concurrency 16 (round 2)`.
    pub fn label(&self) -> String {
        let mut s = format!("{} {}", self.load_mode, fmt_value(self.load_value));
        if self.round > 1 {
            s.push_str(&format!(" (round {})", self.round));
        }
        s
    }

    /// The same level in another run.
    pub fn same_level(&self, other: &LevelKey) -> bool {
        self.load_mode == other.load_mode
            && self.load_value.to_bits() == other.load_value.to_bits()
            && self.round == other.round
    }
}

/// `x` rounded to `digits` significant digits (a measured rate as a person
/// would write it, e.g. 10.354 to 10.4 with 3).
pub fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

pub fn fmt_value(v: f64) -> String {
    if v.is_infinite() {
        "inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelStats {
    #[serde(flatten)]
    pub key: LevelKey,
    /// Requests outside warm-up (warm-up requests are left out everywhere).
    pub requests: u64,
    pub ok: u64,
    pub warmup_requests: u64,
    /// `status` → count of requests that were not ok.
    pub errors: BTreeMap<String, u64>,
    /// `status http_code` → count (`http_error 503`).
    pub errors_detail: BTreeMap<String, u64>,
    /// Ok requests by the `finish_reason` of their reply (`length`, `stop`,
    /// `tool_calls`, ...; `none` when the server gave none). Empty for runs
    /// written before results format 3, which did not keep it.
    pub finish_reasons: BTreeMap<String, u64>,
    pub success_pct: f64,
    /// First scheduled send to last byte, seconds.
    pub duration_s: f64,
    /// The level's first scheduled send and last byte, on the run clock.
    pub first_scheduled_ms: f64,
    pub last_end_ms: f64,
    /// Target arrivals per second (`qps` levels).
    pub target_rate: Option<f64>,
    /// Session starts (first turns): the arrivals of the schedule.
    pub arrivals: u64,
    /// Session starts per second, as `trace replay` reports it.
    pub achieved_rate: f64,
    /// All requests per second.
    pub request_rate: f64,
    pub input_tokens_per_s: f64,
    pub output_tokens_per_s: f64,
    pub ttft_ms: Dist,
    pub tpot_ms: Dist,
    pub itl_ms: Dist,
    pub e2e_ms: Dist,
    pub lateness_p50_ms: Option<f64>,
    pub lateness_p99_ms: Option<f64>,
    /// Lateness of first turns only: the schedule the client itself kept.
    pub arrival_lateness_p99_ms: Option<f64>,
    /// Lateness p99 of arrivals over 10 ms in an uncapped open-loop level.
    pub client_behind: bool,
    /// Σ cached_tokens / Σ prompt_tokens over ok requests that reported cached tokens.
    pub cached_token_ratio: Option<f64>,
    /// Ok requests meeting every SLO, per second.
    pub goodput: Option<f64>,
    /// Share of requests that were ok and met every SLO, %.
    pub slo_attainment_pct: Option<f64>,
    /// Ok requests whose completion tokens (from the server's usage) fell
    /// short of the `max_tokens` they asked for.
    pub stopped_short: u64,
    /// Ok requests without usage whose `completion_tokens` count chunks
    /// (`tokens_source = 'counted'`).
    pub tokens_counted: u64,
    /// Ok requests without usage whose output tokens `replay --tokenizer`
    /// counted (`tokens_source = 'tokenized'`).
    pub tokens_tokenized: u64,
    /// Ok requests without usage and no token count at all
    /// (`tokens_source` null: whole replies without `--tokenizer`).
    pub tokens_unknown: u64,
    /// Σ completion_tokens / Σ max_tokens of those requests and the ones
    /// that got their full length, %.
    pub output_fill_pct: Option<f64>,
    /// Σ completion_tokens / Σ token-bearing chunks over ok requests whose
    /// tokens the server reported (a chunk is the first token or one gap
    /// of `itl_ms` after it): above 1 when the server streams several
    /// tokens a chunk, so that ITL is per chunk, not per token.
    pub tokens_per_chunk: Option<f64>,
    /// Open loop (`qps`, `trace`): how much the least-squares line of the
    /// arrivals' TTFT (first turns, ok) against their scheduled time rose
    /// from the first arrival to the last, ms.
    pub ttft_rise_ms: Option<f64>,
    /// The rise says the server fell behind its arrivals
    /// (`notes::fell_behind`).
    pub fell_behind: bool,
    pub server: Option<ServerFigures>,
    /// With metrics from several servers (`replay --endpoint A,B`): each
    /// one's figures, by its metrics URL; `server` sums them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub server_by_endpoint: BTreeMap<String, ServerFigures>,
}

impl LevelStats {
    /// The server figures to show: `all` servers, then each one when
    /// there are several; none without metrics.
    pub fn server_rows(&self) -> impl Iterator<Item = (&str, &ServerFigures)> {
        let each = self.server_by_endpoint.iter().map(|(e, s)| (e.as_str(), s));
        self.server.iter().map(|s| ("all", s)).chain(each)
    }
}

/// The server's own view of a level, from `server_metrics` between the
/// level's start and end (counter deltas, gauge means and maxima).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerFigures {
    pub window_start_ms: f64,
    pub window_end_ms: f64,
    pub samples: u64,
    /// Δhits / Δqueries (or Δhits / Δprompt tokens, or the server's own gauge).
    pub prefix_cache_hit_rate: Option<f64>,
    pub prefix_cache_hit_rate_source: Option<String>,
    pub running_mean: Option<f64>,
    pub running_max: Option<f64>,
    pub waiting_mean: Option<f64>,
    pub waiting_max: Option<f64>,
    pub kv_usage_mean: Option<f64>,
    pub kv_usage_max: Option<f64>,
    pub prompt_tokens: Option<f64>,
    pub generation_tokens: Option<f64>,
    pub preemptions: Option<f64>,
    pub requests_finished: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Saturation {
    pub run_id: String,
    pub load_mode: String,
    /// `slo` or `success-and-latency`.
    pub criterion: String,
    /// Highest level that passed, if any.
    pub highest_passing: Option<f64>,
    /// Lowest level that failed, if any.
    pub first_failing: Option<f64>,
    /// Recommended operating point: requests/s for open loop, in-flight
    /// requests for closed loop.
    pub recommended: Option<f64>,
    pub headroom_pct: f64,
    /// One line, with the evidence.
    pub statement: String,
    /// Level → passed, with why not.
    pub levels: Vec<LevelVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelVerdict {
    #[serde(serialize_with = "ser_load_value")]
    pub load_value: f64,
    pub passed: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoundDelta {
    pub run_id: String,
    pub load_mode: String,
    #[serde(serialize_with = "ser_load_value")]
    pub load_value: f64,
    pub round: u32,
    /// Requests ok in both round 1 and this round.
    pub pairs: u64,
    pub ttft_first_p50_ms: Option<f64>,
    pub ttft_this_p50_ms: Option<f64>,
    /// this round − round 1, per request.
    pub ttft_delta_mean_ms: Option<f64>,
    pub ttft_delta_p50_ms: Option<f64>,
    pub cached_tokens_first: Option<f64>,
    pub cached_tokens_this: Option<f64>,
    pub cached_ratio_first: Option<f64>,
    pub cached_ratio_this: Option<f64>,
}

/// Latency of one group (a turn, a prompt bucket, a `--by` value).
#[derive(Debug, Clone, Serialize)]
pub struct GroupStats {
    #[serde(flatten)]
    pub key: LevelKey,
    /// The group's value (`turn 3`, `1024-2047`).
    pub group: String,
    /// Sort key of the group (turn number, bucket lower bound).
    pub order: f64,
    pub requests: u64,
    pub ok: u64,
    pub compactions: u64,
    pub prompt_tokens_mean: Option<f64>,
    pub ttft_ms: Dist,
    pub tpot_ms: Dist,
    pub e2e_ms: Dist,
}

/// How long a level's users took, first send to last byte (for agent
/// users that each ran one session: its run time under that load).
#[derive(Debug, Clone, Serialize)]
pub struct UserSpans {
    #[serde(flatten)]
    pub key: LevelKey,
    /// Users with a span (at least one request that ended after it was sent).
    pub users: u64,
    pub span_s: Dist,
}

/// The sessions of a multi-turn level: each one's span (first send to
/// last byte, think times included) and turns run.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSpans {
    #[serde(flatten)]
    pub key: LevelKey,
    pub sessions: u64,
    /// Sessions with a turn that was not ok (a failed turn ends its session).
    pub failed: u64,
    pub turns: Dist,
    pub span_s: Dist,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserStats {
    #[serde(flatten)]
    pub key: LevelKey,
    pub user_id: u32,
    pub requests: u64,
    pub errors: u64,
    pub compactions: u64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub tpot_p50_ms: Option<f64>,
    pub tpot_p99_ms: Option<f64>,
    /// The user's own span, first send to last byte, in seconds: for an
    /// agent user that ran one session (no `--duration`), its run time.
    pub span_s: Option<f64>,
    /// Completion tokens over the user's own span.
    pub output_tokens_per_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ByTable {
    pub columns: Vec<String>,
    pub groups: Vec<GroupStats>,
}

/// `trace compare`: the same levels of several runs side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub report_version: u32,
    pub percentile_definition: String,
    pub noise_definition: String,
    /// Runs in the order given; the first is the baseline.
    pub runs: Vec<RunInfo>,
    pub levels: Vec<ComparedLevel>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComparedLevel {
    pub load_mode: String,
    #[serde(serialize_with = "ser_load_value")]
    pub load_value: f64,
    pub round: u32,
    pub metrics: Vec<ComparedMetric>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComparedMetric {
    pub metric: String,
    /// Whether a larger value is better (throughput) or worse (latency).
    pub higher_is_better: bool,
    /// One value per run (None where the run lacks the level or the figure).
    pub values: Vec<Option<f64>>,
    /// Standard error of each run's value, from the run's own spread.
    pub noise: Vec<Option<f64>>,
    /// value − baseline, per run (the baseline's own is 0).
    pub delta: Vec<Option<f64>>,
    /// delta / baseline, %.
    pub delta_pct: Vec<Option<f64>>,
    /// The change exceeds the noise: `better`, `worse` or empty.
    pub flag: Vec<String>,
}
