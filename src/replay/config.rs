//! The second stage of arguments: the command line and the run file merged
//! and validated into a [`RunConfig`] of typed values before any work starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

use super::args::ReplayArgs;
use super::client::Api;
use super::schedule::{Arrival, Rate};
use super::workload::History;
pub use traces::results::Slo;

/// How users of a session trace arrive.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum UserArrival {
    Burst,
    Steady { seconds: f64 },
    Poisson { rate: f64 },
}

/// One load level of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadMode {
    Qps {
        rate: Rate,
        arrival: Arrival,
        max_concurrency: Option<usize>,
    },
    Concurrency(usize),
    TraceTime {
        scale: f64,
    },
    Users {
        n: usize,
        arrival: UserArrival,
    },
}

impl LoadMode {
    pub fn name(&self) -> &'static str {
        match self {
            LoadMode::Qps { .. } => "qps",
            LoadMode::Concurrency(_) => "concurrency",
            LoadMode::TraceTime { .. } => "trace",
            LoadMode::Users { .. } => "users",
        }
    }

    pub fn value(&self) -> f64 {
        match *self {
            LoadMode::Qps { rate, .. } => rate.value(),
            LoadMode::Concurrency(n) => n as f64,
            LoadMode::TraceTime { scale } => scale,
            LoadMode::Users { n, .. } => n as f64,
        }
    }

    /// The target request rate, where the mode has one.
    pub fn target_rate(&self) -> Option<f64> {
        match *self {
            LoadMode::Qps {
                rate: Rate::PerSecond(r),
                ..
            } => Some(r),
            _ => None,
        }
    }
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub trace: PathBuf,
    /// The first server's base URL (`.../v1`) and request URL.
    pub base_url: String,
    pub url: String,
    /// Every server, in `--endpoint` order.
    pub servers: Vec<Server>,
    /// `--route`: which server a session goes to.
    pub route: super::route::Route,
    /// `--model`: the models sent, in turn by session (empty: the first
    /// model the first server lists).
    pub models: Vec<String>,
    pub api: Api,
    pub levels: Vec<LoadMode>,
    /// `--sweep N`: the levels in all; `levels` holds the two probes until
    /// they have run, then the rates chosen after them.
    pub sweep: Option<usize>,
    /// What a sweep's probes measured, once they have run.
    pub probed: Option<super::sweep::Probed>,
    /// `--max-concurrency` as given (a sweep's chosen levels take it).
    pub max_concurrency: Option<usize>,
    pub duration: Option<Duration>,
    pub requests: Option<usize>,
    pub warmup: usize,
    pub rounds: u32,
    pub history: History,
    /// Factor on every `think_ms` (finite, >= 0).
    pub think_scale: f64,
    pub max_tokens: Option<u32>,
    pub default_max_tokens: u32,
    pub ignore_eos: bool,
    pub temperature: Option<f64>,
    pub headers: Vec<(String, String)>,
    pub extra_body: Option<Map<String, Value>>,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub fresh_connections: bool,
    /// `--cache-reset`, resolved to the URLs to POST (a path: one on
    /// every server).
    pub cache_reset: Option<Vec<String>>,
    /// `--isolate-levels`: each level's prompts start with a tag of its own.
    pub isolate_levels: bool,
    pub include_usage: bool,
    /// `--no-stream` unset: replies are streamed and timed chunk by chunk.
    pub stream: bool,
    /// `--tokenizer` and its revision: counts the output tokens of replies
    /// without usage.
    pub tokenizer: Option<(String, String)>,
    /// What identifies the loaded `--tokenizer` (set when it is loaded).
    pub tokenizer_identity: Option<Value>,
    pub slo: Slo,
    pub fail_on_slo: bool,
    pub percentiles: Vec<f64>,
    pub metrics_endpoints: Vec<String>,
    pub metrics_interval: Duration,
    pub metrics_names: Option<Vec<String>>,
    pub backend: super::metrics::Backend,
    pub scrape_metrics: bool,
    pub results_dir: PathBuf,
    pub name: Option<String>,
    pub seed: u64,
    pub drain_timeout: Duration,
    /// `--level-drain`: how long requests in flight at a `--duration`
    /// level's end may run on; `None`: to their end.
    pub level_drain: Option<Duration>,
    pub quiet: bool,
    /// The arguments as given (command line over run file), secrets removed.
    pub arguments: Value,
}

/// Parses `90`, `90s`, `500ms`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("`{s}` is not a duration (e.g. 500ms, 60s, 5m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)"),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        bail!("`{s}` is not a valid duration");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Where a YAML comment starts on a line: `#` at the start or after
/// whitespace, outside quotes.
fn comment_start(line: &str) -> Option<usize> {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

/// Replaces `${NAME}` by the environment variable NAME (an error if unset),
/// outside YAML comments.
pub fn substitute_env(text: &str, origin: &Path) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let cut = comment_start(line).unwrap_or(line.len());
        out.push_str(
            &substitute_line(&line[..cut], origin)
                .with_context(|| format!("{}:{}", origin.display(), n + 1))?,
        );
        out.push_str(&line[cut..]);
    }
    Ok(out)
}

fn substitute_line(text: &str, origin: &Path) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            bail!("{}: unclosed `${{` in the run file", origin.display());
        };
        let name = &after[..end];
        let value = std::env::var(name).with_context(|| {
            format!(
                "{}: the run file uses ${{{name}}} but the environment variable {name} is not set",
                origin.display()
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Brings list and map values written naturally in YAML into the shapes of
/// the command-line fields (`qps: [1, 5]` → strings, `slo: {ttft_ms: 1}` → spec).
fn normalise_file_value(map: &mut Map<String, Value>) {
    let to_list = |v: &Value| -> Value {
        match v {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|x| match x {
                        Value::String(s) => Value::String(s.clone()),
                        other => Value::String(other.to_string()),
                    })
                    .collect(),
            ),
            Value::String(s) => Value::Array(
                s.split(',')
                    .map(|p| Value::String(p.trim().to_string()))
                    .collect(),
            ),
            other => Value::Array(vec![Value::String(other.to_string())]),
        }
    };
    for key in [
        "endpoint",
        "model",
        "qps",
        "metrics_endpoint",
        "metrics_names",
    ] {
        if let Some(v) = map.get(key).map(to_list) {
            map.insert(key.into(), v);
        }
    }
    for key in ["concurrency", "users"] {
        if let Some(v) = map.get(key).map(to_list) {
            let nums: Vec<Value> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            s.as_str()
                                .and_then(|s| s.parse::<u64>().ok())
                                .map(Value::from)
                                .unwrap_or(Value::Null)
                        })
                        .collect()
                })
                .unwrap_or_default();
            map.insert(key.into(), Value::Array(nums));
        }
    }
    if let Some(Value::Object(o)) = map.get("slo").cloned() {
        let spec: Vec<String> = o.iter().map(|(k, v)| format!("{k}={v}")).collect();
        map.insert("slo".into(), Value::String(spec.join(",")));
    }
    if let Some(Value::Object(o)) = map.get("headers").cloned() {
        let list: Vec<Value> = o
            .iter()
            .map(|(k, v)| Value::String(format!("{k}: {}", v.as_str().unwrap_or(&v.to_string()))))
            .collect();
        map.insert("headers".into(), Value::Array(list));
    }
    if let Some(v @ Value::Object(_)) = map.get("extra_body").cloned() {
        map.insert("extra_body".into(), Value::String(v.to_string()));
    }
    for key in [
        "duration",
        "level_drain",
        "timeout",
        "metrics_interval",
        "drain_timeout",
    ] {
        if let Some(Value::Number(n)) = map.get(key).cloned() {
            map.insert(key.into(), Value::String(format!("{n}s")));
        }
    }
}

/// Merges the run file (if any) under the command line.
pub fn merge_run_file(cli: ReplayArgs) -> anyhow::Result<ReplayArgs> {
    let Some(path) = cli.config.clone() else {
        return Ok(cli);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the run file {}", path.display()))?;
    let text = substitute_env(&text, &path)?;
    let file: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{}: not valid YAML", path.display()))?;
    let mut merged = match file {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => bail!(
            "{}: the run file must be a mapping of options",
            path.display()
        ),
    };
    normalise_file_value(&mut merged);
    // Paths in the run file are relative to the file.
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for key in ["trace", "slo_file", "results_dir"] {
        if let Some(Value::String(p)) = merged.get(key).cloned()
            && Path::new(&p).is_relative()
        {
            merged.insert(
                key.into(),
                Value::String(base.join(p).display().to_string()),
            );
        }
    }
    let cli_value = serde_json::to_value(&cli)?;
    // A load mode on the command line replaces the file's, whichever it was.
    const MODES: [&str; 6] = [
        "qps",
        "concurrency",
        "trace_time",
        "users",
        "sweep",
        "levels_from",
    ];
    let given = |v: &Value| match v {
        Value::Null | Value::Bool(false) => false,
        Value::Array(a) => !a.is_empty(),
        _ => true,
    };
    if MODES.iter().any(|k| cli_value.get(*k).is_some_and(given)) {
        for k in MODES {
            merged.remove(k);
        }
    }
    if let Value::Object(cli_map) = cli_value {
        for (k, v) in cli_map {
            let given = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Array(a) => !a.is_empty(),
                _ => true,
            };
            if given {
                merged.insert(k, v);
            }
        }
    }
    serde_json::from_value(Value::Object(merged))
        .with_context(|| format!("{}: invalid run file", path.display()))
}

fn parse_rate(s: &str) -> anyhow::Result<Rate> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity") {
        return Ok(Rate::Infinite);
    }
    let r: f64 = t
        .parse()
        .with_context(|| format!("--qps: `{s}` is not a rate (a number or `inf`)"))?;
    if !(r.is_finite() && r > 0.0) {
        bail!("--qps: `{s}` must be a positive rate");
    }
    Ok(Rate::PerSecond(r))
}

/// What `--levels-from` takes from an earlier run's run.json: its levels,
/// and how long each ran, in how many rounds, with what warm-up and seed
/// (used unless given on the command line, so the two runs send the same
/// schedule).
struct EarlierRun {
    levels: Vec<LoadMode>,
    requests: Option<usize>,
    duration: Option<Duration>,
    rounds: Option<u32>,
    warmup: Option<usize>,
    seed: Option<u64>,
    isolate_levels: bool,
    /// Its `--level-drain`, taken with its duration.
    level_drain: Option<Duration>,
}

fn earlier_run(run: &Path) -> anyhow::Result<EarlierRun> {
    let path = if run.is_dir() {
        run.join("run.json")
    } else {
        run.to_path_buf()
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "--levels-from: cannot read {} (give a run folder of `trace replay`)",
            path.display()
        )
    })?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("--levels-from: {} is not JSON", path.display()))?;
    let levels = levels_of_run(&v, &path)?;
    let config = |key: &str| v.pointer(&format!("/config/{key}"));
    let int = |key: &str| config(key).and_then(Value::as_u64);
    Ok(EarlierRun {
        levels,
        requests: int("requests").and_then(|n| usize::try_from(n).ok()),
        duration: config("duration_s")
            .and_then(Value::as_f64)
            .filter(|d| d.is_finite() && *d > 0.0)
            .map(Duration::from_secs_f64),
        rounds: int("rounds").and_then(|n| u32::try_from(n).ok()),
        warmup: int("warmup").and_then(|n| usize::try_from(n).ok()),
        seed: int("seed"),
        isolate_levels: config("isolate_levels").and_then(Value::as_bool) == Some(true),
        level_drain: config("level_drain_s")
            .and_then(Value::as_f64)
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(Duration::from_secs_f64),
    })
}

/// The levels an earlier run used, from its run.json `v` (`config.levels`,
/// as [`RunConfig::describe`] writes them), read from `path`.
fn levels_of_run(v: &Value, path: &Path) -> anyhow::Result<Vec<LoadMode>> {
    let levels = v
        .pointer("/config/levels")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .with_context(|| format!("--levels-from: {} lists no levels", path.display()))?;
    levels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            level_of_json(l).with_context(|| {
                format!("--levels-from: {}: level {} ({l})", path.display(), i + 1)
            })
        })
        .collect()
}

fn level_of_json(l: &Value) -> anyhow::Result<LoadMode> {
    let count = |k: &str| -> anyhow::Result<usize> {
        l.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .with_context(|| format!("`{k}` is not a positive whole number"))
    };
    let positive = |v: Option<&Value>, k: &str| -> anyhow::Result<f64> {
        v.and_then(Value::as_f64)
            .filter(|x| x.is_finite() && *x > 0.0)
            .with_context(|| format!("`{k}` is not a positive number"))
    };
    match l.get("load_mode").and_then(Value::as_str) {
        Some("qps") => {
            let rate = match l.get("rate") {
                Some(Value::String(s)) => parse_rate(s)?,
                r => Rate::PerSecond(positive(r, "rate")?),
            };
            let a = l.get("arrival");
            let arrival = match a.and_then(|a| a.get("kind")).and_then(Value::as_str) {
                None | Some("poisson") => Arrival::Poisson,
                Some("constant") => Arrival::Constant,
                Some("gamma") => Arrival::Gamma {
                    burstiness: positive(a.and_then(|a| a.get("burstiness")), "burstiness")?,
                },
                Some("burst") => Arrival::Burst {
                    size: a
                        .and_then(|a| a.get("size"))
                        .and_then(Value::as_u64)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| *n > 0)
                        .context("`size` of a burst arrival is not a positive whole number")?,
                },
                Some(other) => bail!("unknown arrival `{other}`"),
            };
            let max_concurrency = match l.get("max_concurrency") {
                None | Some(Value::Null) => None,
                Some(_) => Some(count("max_concurrency")?),
            };
            Ok(LoadMode::Qps {
                rate,
                arrival,
                max_concurrency,
            })
        }
        Some("concurrency") => Ok(LoadMode::Concurrency(count("concurrency")?)),
        Some("trace") => Ok(LoadMode::TraceTime {
            scale: positive(l.get("time_scale"), "time_scale")?,
        }),
        Some("users") => {
            let a = l.get("user_arrival");
            let arrival = match a.and_then(|a| a.get("kind")).and_then(Value::as_str) {
                None | Some("burst") => UserArrival::Burst,
                Some("steady") => UserArrival::Steady {
                    seconds: positive(a.and_then(|a| a.get("seconds")), "seconds")?,
                },
                Some("poisson") => UserArrival::Poisson {
                    rate: positive(a.and_then(|a| a.get("rate")), "rate")?,
                },
                Some(other) => bail!("unknown user arrival `{other}`"),
            };
            Ok(LoadMode::Users {
                n: count("users")?,
                arrival,
            })
        }
        other => bail!("unknown load mode {other:?}"),
    }
}

/// `burst:SIZE`: groups of SIZE arrivals at once.
fn parse_burst(s: &str) -> anyhow::Result<Arrival> {
    let size = s
        .strip_prefix("burst:")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .with_context(|| {
            format!("--arrival: `{s}` needs a group size, e.g. burst:8 (8 requests at once)")
        })?;
    Ok(Arrival::Burst { size })
}

pub fn parse_user_arrival(s: &str) -> anyhow::Result<UserArrival> {
    let t = s.trim();
    if t == "burst" {
        return Ok(UserArrival::Burst);
    }
    let bad = || format!("--user-arrival: `{s}` is not burst, steady:SECONDS or poisson:RATE");
    let (kind, value) = t.split_once(':').with_context(bad)?;
    let v: f64 = value
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(bad)?;
    match kind {
        "steady" => Ok(UserArrival::Steady { seconds: v }),
        "poisson" => Ok(UserArrival::Poisson { rate: v }),
        _ => bail!(bad()),
    }
}

/// `--percentiles` (default p50, p90, p99): each in 0..=100, returned
/// rising and without repeats, the order of the summary table's columns and
/// what the selection in `analysis::compute::stats::quantiles_of` expects.
fn percentile_list(given: Option<&[f64]>) -> anyhow::Result<Vec<f64>> {
    let mut percentiles = given.map_or_else(|| vec![50.0, 90.0, 99.0], <[f64]>::to_vec);
    for p in &percentiles {
        if !(0.0..=100.0).contains(p) {
            bail!("--percentiles: {p} is not between 0 and 100");
        }
    }
    percentiles.sort_by(f64::total_cmp);
    percentiles.dedup();
    Ok(percentiles)
}

pub fn parse_slo(spec: Option<&str>, file: Option<&Path>) -> anyhow::Result<Slo> {
    let mut slo = Slo::default();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the SLO file {}", path.display()))?;
        slo = serde_yaml_ng::from_str(&text).with_context(|| {
            format!(
                "{}: expected ttft_ms/tpot_ms/e2e_ms numbers",
                path.display()
            )
        })?;
    }
    if let Some(spec) = spec {
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part
                .split_once('=')
                .with_context(|| format!("--slo: `{part}` is not KEY=MS"))?;
            let v: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0)
                .with_context(|| format!("--slo: `{part}` needs a positive number of ms"))?;
            match k.trim() {
                "ttft_ms" | "ttft" => slo.ttft_ms = Some(v),
                "tpot_ms" | "tpot" => slo.tpot_ms = Some(v),
                "e2e_ms" | "e2e" => slo.e2e_ms = Some(v),
                other => bail!("--slo: unknown objective `{other}` (ttft_ms, tpot_ms, e2e_ms)"),
            }
        }
    }
    Ok(slo)
}

impl RunConfig {
    /// The request URL, or with several servers their names.
    pub fn servers_text(&self) -> String {
        match self.servers.as_slice() {
            [one] => one.url.clone(),
            many => format!(
                "{} endpoints ({}; {})",
                many.len(),
                many.iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                match self.route {
                    super::route::Route::RoundRobin => "sessions in turn",
                    super::route::Route::LeastBusy => "each session to the least busy",
                }
            ),
        }
    }
}

/// One server of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// As `--endpoint` gave it (without a trailing `/`): the `endpoint`
    /// column of the results.
    pub name: String,
    /// Base URL, ending in `/v1` unless a path was given.
    pub base_url: String,
    /// The chat or completions URL requests are posted to.
    pub url: String,
}

fn base_url(endpoint: &str) -> anyhow::Result<String> {
    let e = endpoint.trim().trim_end_matches('/');
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        bail!("--endpoint: `{endpoint}` must start with http:// or https://");
    }
    let after_scheme = &e[e.find("://").map_or(0, |i| i + 3)..];
    Ok(if after_scheme.contains('/') {
        e.to_string()
    } else {
        format!("{e}/v1")
    })
}

/// Validates merged arguments into a run configuration.
pub fn resolve(args: ReplayArgs) -> anyhow::Result<RunConfig> {
    let trace = args
        .trace
        .clone()
        .context("give the trace to replay (trace replay TRACE --endpoint URL ...)")?;
    let given = args
        .endpoint
        .clone()
        .filter(|e| !e.is_empty())
        .context("--endpoint: give the server's base URL, e.g. http://127.0.0.1:8000")?;
    let api = args.api.unwrap_or(Api::Chat);
    let mut servers: Vec<Server> = Vec::with_capacity(given.len());
    for e in &given {
        let base = base_url(e)?;
        let server = Server {
            name: e.trim().trim_end_matches('/').to_string(),
            url: match api {
                Api::Chat => format!("{base}/chat/completions"),
                Api::Completions => format!("{base}/completions"),
            },
            base_url: base,
        };
        if servers.iter().any(|s| s.url == server.url) {
            bail!("--endpoint: `{e}` is given twice");
        }
        servers.push(server);
    }
    let base = servers[0].base_url.clone();
    let url = servers[0].url.clone();
    let mut models: Vec<String> = Vec::new();
    for m in args.model.iter().flatten() {
        let m = m.trim();
        if m.is_empty() {
            bail!("--model: an empty model name");
        }
        if models.iter().any(|k| k == m) {
            bail!("--model: `{m}` is given twice");
        }
        models.push(m.to_string());
    }
    let route = match args.route.as_deref() {
        None => super::route::Route::default(),
        Some(r) => super::route::Route::parse(r)
            .with_context(|| format!("--route: `{r}` is not round-robin or least-busy"))?,
    };
    let arrival = match args.arrival.as_deref().unwrap_or("poisson") {
        "poisson" => Arrival::Poisson,
        burst if burst.starts_with("burst") => parse_burst(burst)?,
        "constant" => Arrival::Constant,
        "gamma" => {
            let k = args
                .burstiness
                .context("--arrival gamma needs --burstiness K")?;
            if !(k.is_finite() && k > 0.0) {
                bail!("--burstiness must be a positive number");
            }
            Arrival::Gamma { burstiness: k }
        }
        other => bail!("--arrival: `{other}` is not poisson, gamma, constant or burst:SIZE"),
    };
    if args.burstiness.is_some() && !matches!(arrival, Arrival::Gamma { .. }) {
        bail!("--burstiness is the shape of gamma arrivals: give it with --arrival gamma");
    }
    let mut modes = 0;
    let mut levels = Vec::new();
    if let Some(qps) = &args.qps {
        modes += 1;
        for q in qps {
            levels.push(LoadMode::Qps {
                rate: parse_rate(q)?,
                arrival,
                max_concurrency: args.max_concurrency,
            });
        }
    }
    if let Some(c) = &args.concurrency {
        modes += 1;
        for &n in c {
            if n == 0 {
                bail!("--concurrency: levels must be at least 1");
            }
            levels.push(LoadMode::Concurrency(n));
        }
    }
    if args.trace_time {
        modes += 1;
        let scale = args.time_scale.unwrap_or(1.0);
        if !(scale.is_finite() && scale > 0.0) {
            bail!("--time-scale must be a positive number");
        }
        levels.push(LoadMode::TraceTime { scale });
    }
    if let Some(users) = &args.users {
        modes += 1;
        let arrival = parse_user_arrival(args.user_arrival.as_deref().unwrap_or("burst"))?;
        for &n in users {
            if n == 0 {
                bail!("--users: levels must be at least 1");
            }
            levels.push(LoadMode::Users { n, arrival });
        }
    }
    if let Some(n) = args.sweep {
        modes += 1;
        if n < super::sweep::MIN_LEVELS {
            bail!(
                "--sweep: {n} levels are too few; a sweep has at least {} (two probes and one rate between them)",
                super::sweep::MIN_LEVELS
            );
        }
        levels.extend(super::sweep::probes(arrival, args.max_concurrency));
    }
    let earlier = match &args.levels_from {
        Some(run) => {
            modes += 1;
            let e = earlier_run(run)?;
            levels.extend(e.levels.iter().copied());
            Some(e)
        }
        None => None,
    };
    if modes == 0 {
        bail!(
            "choose a load: --qps RATES, --concurrency N, --trace-time, --users N, --sweep N or --levels-from RUN_DIR"
        );
    }
    if modes > 1 {
        bail!(
            "choose one load mode: --qps, --concurrency, --trace-time, --users, --sweep or --levels-from"
        );
    }
    if args.max_concurrency == Some(0) {
        bail!("--max-concurrency must be at least 1");
    }
    let mut duration = args
        .duration
        .as_deref()
        .map(parse_duration)
        .transpose()
        .context("--duration")?;
    if args.requests == Some(0) {
        bail!("--requests must be at least 1");
    }
    let mut requests = args.requests;
    let mut rounds = args.rounds;
    let mut warmup = args.warmup;
    let mut seed = args.seed;
    if let Some(e) = &earlier {
        // The earlier run's length, unless this one sets its own.
        if duration.is_none() && requests.is_none() {
            duration = e.duration;
            requests = e.requests;
        }
        rounds = rounds.or(e.rounds);
        warmup = warmup.or(e.warmup);
        seed = seed.or(e.seed);
    }
    // The earlier run's tags work on any server, so its levels ran cold
    // here too; a reset URL is the earlier server's and is not taken.
    let isolate_levels = args.isolate_levels || earlier.as_ref().is_some_and(|e| e.isolate_levels);
    let tokenizer = match (&args.tokenizer, &args.tokenizer_revision) {
        (Some(t), rev) if !t.trim().is_empty() => {
            let rev = rev.as_deref().unwrap_or("main").trim();
            if rev.is_empty() {
                bail!("--tokenizer-revision must not be empty");
            }
            Some((t.trim().to_string(), rev.to_string()))
        }
        (Some(_), _) => bail!("--tokenizer: give a tokenizer.json, a folder or a hub model id"),
        (None, Some(_)) => bail!("--tokenizer-revision needs --tokenizer"),
        (None, None) => None,
    };
    let rounds = rounds.unwrap_or(1);
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("--header: `{h}` is not `Name: value`"))?;
        if k.trim().is_empty() {
            bail!("--header: `{h}` has no name");
        }
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let extra_body = match &args.extra_body {
        None => None,
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => bail!("--extra-body: expected a JSON object, e.g. '{{\"top_p\": 0.9}}'"),
        },
    };
    let timeout = parse_duration(args.timeout.as_deref().unwrap_or("600s")).context("--timeout")?;
    let slo = parse_slo(args.slo.as_deref(), args.slo_file.as_deref())?;
    let percentiles = percentile_list(args.percentiles.as_deref())?;
    let metrics_interval = parse_duration(args.metrics_interval.as_deref().unwrap_or("1s"))
        .context("--metrics-interval")?;
    if metrics_interval.is_zero() {
        bail!("--metrics-interval must be positive");
    }
    // Default: every server's /metrics.
    let metrics_endpoints = args.metrics_endpoint.clone().unwrap_or_else(|| {
        servers
            .iter()
            .map(|s| format!("{}/metrics", s.base_url.trim_end_matches("/v1")))
            .collect()
    });
    let backend = match args.backend.as_deref() {
        // Every engine's table: the names do not collide, so the series of
        // any known engine get their canonical names without a flag.
        None => super::metrics::Backend::Generic,
        Some(b) => {
            <super::metrics::Backend as clap::ValueEnum>::from_str(b, true).map_err(|_| {
                anyhow::anyhow!(
                    "--backend: `{b}` is not vllm, sglang, tgi, llamacpp, mindie or generic"
                )
            })?
        }
    };
    let think_scale = args.think_scale.unwrap_or(1.0);
    if !think_scale.is_finite() || think_scale < 0.0 {
        bail!("--think-scale must be a number >= 0 (0: no pause between turns), not {think_scale}");
    }
    let drain_timeout = parse_duration(args.drain_timeout.as_deref().unwrap_or("30s"))
        .context("--drain-timeout")?;
    let level_drain = match args.level_drain.as_deref() {
        // The earlier run's, when its duration was taken too.
        None if args.duration.is_none() && args.requests.is_none() => {
            earlier.as_ref().and_then(|e| e.level_drain)
        }
        None => None,
        Some(_) if duration.is_none() => {
            bail!("--level-drain needs --duration (without it a level ends when its requests do)")
        }
        Some(d) => Some(parse_duration(d).context("--level-drain")?),
    };
    let cache_reset = args
        .cache_reset
        .as_deref()
        .map(|u| super::cache_reset::resolve(u, &servers))
        .transpose()?;

    let mut resolved = serde_json::to_value(&args)?;
    if let Value::Object(m) = &mut resolved {
        m.remove("api_key");
        m.insert("api_key_set".into(), Value::Bool(args.api_key.is_some()));
        m.insert(
            "headers".into(),
            Value::Array(
                headers
                    .iter()
                    .map(|(k, _)| Value::String(format!("{k}: <redacted>")))
                    .collect(),
            ),
        );
    }
    Ok(RunConfig {
        trace,
        base_url: base,
        url,
        servers,
        route,
        models,
        api,
        levels,
        sweep: args.sweep,
        probed: None,
        max_concurrency: args.max_concurrency,
        duration,
        requests,
        warmup: warmup.unwrap_or(0),
        rounds,
        history: args.history.unwrap_or(History::Recorded),
        think_scale,
        max_tokens: args.max_tokens,
        default_max_tokens: 128,
        ignore_eos: !args.no_ignore_eos,
        temperature: args.temperature,
        headers,
        extra_body,
        api_key: args.api_key.clone(),
        timeout,
        fresh_connections: args.fresh_connections,
        cache_reset,
        isolate_levels,
        include_usage: !args.no_usage,
        stream: !args.no_stream,
        tokenizer,
        tokenizer_identity: None,
        slo,
        fail_on_slo: args.fail_on_slo,
        percentiles,
        metrics_endpoints,
        metrics_interval,
        metrics_names: args.metrics_names.clone(),
        backend,
        scrape_metrics: !args.no_metrics,
        results_dir: args
            .results_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("results")),
        name: args.name.clone(),
        seed: seed.unwrap_or(0),
        drain_timeout,
        level_drain,
        quiet: args.quiet,
        arguments: resolved,
    })
}

/// A number for JSON, with an unbounded rate as `"inf"` (JSON has no
/// infinity: serde would write null).
pub fn json_number(v: f64) -> Value {
    if v.is_infinite() {
        Value::from("inf")
    } else {
        Value::from(v)
    }
}

/// A level as run.json's `config.levels` lists it (read back by `--levels-from`).
fn level_json(m: &LoadMode) -> Value {
    match *m {
        LoadMode::Qps {
            rate,
            arrival,
            max_concurrency,
        } => serde_json::json!({
            "load_mode": "qps", "rate": json_number(rate.value()),
            "arrival": match arrival {
                Arrival::Poisson => serde_json::json!({"kind": "poisson"}),
                Arrival::Constant => serde_json::json!({"kind": "constant"}),
                Arrival::Gamma { burstiness } => serde_json::json!({"kind": "gamma", "burstiness": burstiness}),
                Arrival::Burst { size } => serde_json::json!({"kind": "burst", "size": size}),
            },
            "max_concurrency": max_concurrency,
        }),
        LoadMode::Concurrency(n) => {
            serde_json::json!({"load_mode": "concurrency", "concurrency": n})
        }
        LoadMode::TraceTime { scale } => {
            serde_json::json!({"load_mode": "trace", "time_scale": scale})
        }
        LoadMode::Users { n, arrival } => {
            serde_json::json!({"load_mode": "users", "users": n, "user_arrival": arrival})
        }
    }
}

impl RunConfig {
    /// The effective settings, defaults applied and secrets left out, for `run.json`.
    pub fn describe(&self) -> Value {
        let levels: Vec<Value> = self.levels.iter().map(level_json).collect();
        serde_json::json!({
            "trace": self.trace.display().to_string(),
            "url": self.url,
            "endpoints": self.servers.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "route": self.route,
            "api": self.api,
            "models": self.models,
            "levels": levels,
            "sweep": self.sweep.map(|n| serde_json::json!({"levels": n, "probed": self.probed})),
            "duration_s": self.duration.map(|d| d.as_secs_f64()),
            "requests": self.requests,
            "warmup": self.warmup,
            "rounds": self.rounds,
            "history": self.history,
            "think_scale": self.think_scale,
            "max_tokens": self.max_tokens,
            "default_max_tokens": self.default_max_tokens,
            "ignore_eos": self.ignore_eos,
            "temperature": self.temperature,
            "header_names": self.headers.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            "extra_body": self.extra_body,
            "api_key_set": self.api_key.is_some(),
            "timeout_s": self.timeout.as_secs_f64(),
            "fresh_connections": self.fresh_connections,
            "cache_reset": self.cache_reset,
            "isolate_levels": self.isolate_levels,
            "include_usage": self.include_usage,
            "stream": self.stream,
            "tokenizer": self.tokenizer_identity,
            "slo": self.slo,
            "fail_on_slo": self.fail_on_slo,
            "percentiles": self.percentiles,
            "metrics": {
                "enabled": self.scrape_metrics,
                "endpoints": self.metrics_endpoints,
                "interval_s": self.metrics_interval.as_secs_f64(),
                "names": self.metrics_names,
                "backend": self.backend.as_str(),
            },
            "seed": self.seed,
            "drain_timeout_s": self.drain_timeout.as_secs_f64(),
            "level_drain_s": self.level_drain.map(|d| d.as_secs_f64()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").expect("ok"), Duration::from_secs(90));
        assert_eq!(
            parse_duration("500ms").expect("ok"),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("2m").expect("ok"), Duration::from_secs(120));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn env_substitution() {
        let path = std::env::var("PATH").expect("PATH is set");
        let s = substitute_env("p: ${PATH}!", Path::new("r.yaml")).expect("ok");
        assert_eq!(s, format!("p: {path}!"));
        let e =
            substitute_env("${TRACE_TEST_UNSET_VAR_X}", Path::new("r.yaml")).expect_err("unset");
        assert!(format!("{e:#}").contains("TRACE_TEST_UNSET_VAR_X"));
        assert!(substitute_env("${OPEN", Path::new("r.yaml")).is_err());
        let kept = substitute_env(
            "a: 1 # uses ${NOT_SET_ANYWHERE}\n# ${ALSO_NOT}\n",
            Path::new("r.yaml"),
        )
        .expect("comments are left alone");
        assert_eq!(kept, "a: 1 # uses ${NOT_SET_ANYWHERE}\n# ${ALSO_NOT}\n");
    }

    #[test]
    fn levels_read_back_as_run_json_writes_them() {
        let levels = [
            LoadMode::Qps {
                rate: Rate::PerSecond(2.5),
                arrival: Arrival::Gamma { burstiness: 0.5 },
                max_concurrency: Some(8),
            },
            LoadMode::Qps {
                rate: Rate::Infinite,
                arrival: Arrival::Constant,
                max_concurrency: None,
            },
            LoadMode::Qps {
                rate: Rate::PerSecond(4.0),
                arrival: Arrival::Burst { size: 6 },
                max_concurrency: None,
            },
            LoadMode::Concurrency(4),
            LoadMode::TraceTime { scale: 2.0 },
            LoadMode::Users {
                n: 3,
                arrival: UserArrival::Steady { seconds: 1.5 },
            },
            LoadMode::Users {
                n: 2,
                arrival: UserArrival::Poisson { rate: 0.5 },
            },
        ];
        for m in levels {
            assert_eq!(level_of_json(&level_json(&m)).expect("reads back"), m);
        }
        let bad = [
            serde_json::json!({"load_mode": "qps", "rate": -1}),
            serde_json::json!({"load_mode": "concurrency", "concurrency": 0}),
            serde_json::json!({"load_mode": "warp"}),
            serde_json::json!({"load_mode": "qps", "rate": 1, "arrival": {"kind": "gamma"}}),
        ];
        for b in bad {
            assert!(level_of_json(&b).is_err(), "{b}");
        }
    }

    #[test]
    fn slo_and_user_arrival_specs() {
        let s = parse_slo(Some("ttft_ms=500,tpot=40"), None).expect("ok");
        assert_eq!(s.ttft_ms, Some(500.0));
        assert_eq!(s.tpot_ms, Some(40.0));
        assert!(parse_slo(Some("ttft_ms=-1"), None).is_err());
        assert!(parse_slo(Some("speed=1"), None).is_err());
        assert_eq!(
            parse_user_arrival("steady:2").expect("ok"),
            UserArrival::Steady { seconds: 2.0 }
        );
        assert!(parse_user_arrival("poisson:0").is_err());
    }

    #[test]
    fn percentiles_rise_without_repeats() {
        assert_eq!(percentile_list(None).expect("ok"), [50.0, 90.0, 99.0]);
        let given = [99.0, 50.0, 99.0, 0.0, 50.0];
        assert_eq!(
            percentile_list(Some(&given)).expect("ok"),
            [0.0, 50.0, 99.0]
        );
        assert!(percentile_list(Some(&[101.0])).is_err());
        assert!(percentile_list(Some(&[f64::NAN])).is_err());
    }

    #[test]
    fn endpoint_urls() {
        assert_eq!(
            base_url("http://127.0.0.1:8000").expect("ok"),
            "http://127.0.0.1:8000/v1"
        );
        assert_eq!(base_url("http://h:1/v1/").expect("ok"), "http://h:1/v1");
        assert!(base_url("127.0.0.1:8000").is_err());
    }
}
