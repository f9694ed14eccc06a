//! The command line of `trace replay` (the raw, first stage of arguments).

use std::path::PathBuf;

use super::client::Api;
use super::workload::History;

/// Options of `trace replay`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayArgs {
    /// The trace to replay (Parquet, from `trace convert`/`synth`/`tokenize`).
    #[arg(value_name = "TRACE")]
    pub trace: Option<PathBuf>,
    /// Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000 (`/v1` is added if missing).
    /// Several (comma-separated or repeated): replicas without a router;
    /// each session goes to one of them (see --route), all its turns to the same.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub endpoint: Option<Vec<String>>,
    /// With several endpoints, which one a session goes to: round-robin (session i to server i mod N, the same every run) or least-busy (the server with the fewest sessions in progress when it starts, as a load balancer would).
    #[arg(long, value_name = "POLICY")]
    pub route: Option<String>,
    /// Model name sent in every request (default: the first model `GET /v1/models` of the first endpoint lists). Several (comma-separated or repeated), e.g. a base model and its LoRA adapters: sessions take them in turn, every turn of a session naming the same; the `model` column says which.
    #[arg(long, value_delimiter = ',')]
    pub model: Option<Vec<String>>,
    /// Endpoint kind.
    #[arg(long, value_enum)]
    pub api: Option<Api>,
    /// A run file (YAML) describing the whole run; flags given here override it.
    #[arg(long, value_name = "run.yaml")]
    pub config: Option<PathBuf>,

    /// Open loop: target rates in requests (session starts) per second, e.g. `1,5,10` or `inf`.
    #[arg(long, value_delimiter = ',', value_name = "RATES")]
    pub qps: Option<Vec<String>>,
    /// Arrival process of `--qps`: poisson, gamma, constant, or burst:SIZE (groups of SIZE requests at once, a group every SIZE/rate seconds).
    #[arg(long, value_name = "KIND")]
    pub arrival: Option<String>,
    /// Shape of gamma arrivals (below 1 burstier than Poisson, above 1 more regular).
    #[arg(long)]
    pub burstiness: Option<f64>,
    /// Closed loop: numbers of requests in flight, e.g. `1,4,16`.
    #[arg(long, value_delimiter = ',', value_name = "N")]
    pub concurrency: Option<Vec<usize>>,
    /// With `--qps`: at most N requests in flight; arrivals wait for a slot (the wait is recorded as lateness).
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<usize>,
    /// Replay the trace's own `arrival_ms` timestamps.
    #[arg(long)]
    pub trace_time: bool,
    /// With `--trace-time`: speed-up factor (2 = twice as fast).
    #[arg(long, value_name = "X")]
    pub time_scale: Option<f64>,
    /// Session traces: N users, each running one session's turns in order
    /// (under --duration, or with --requests above N, another session
    /// whenever one ends, until the level's end or --requests sessions).
    #[arg(long, value_name = "N", value_delimiter = ',')]
    pub users: Option<Vec<usize>>,
    /// How users arrive: burst, steady:SECONDS, poisson:RATE.
    #[arg(long, value_name = "SPEC")]
    pub user_arrival: Option<String>,
    /// Find the rates: a level at concurrency 1, one with every session at
    /// once (`--qps inf`, at most `--max-concurrency` or 256 in flight),
    /// then N-2 `--qps` levels spread evenly between the session rates
    /// those two sustained (N >= 3).
    #[arg(long, value_name = "N")]
    pub sweep: Option<usize>,
    /// Replay at the levels an earlier run used (its run.json: mode, rates
    /// or counts, arrivals, caps; a sweep's probes and chosen rates), with
    /// its --requests/--duration (and --level-drain), --rounds, --warmup and --seed unless
    /// given (and its --isolate-levels), so that `trace compare` matches every level of the two runs.
    #[arg(long, value_name = "RUN_DIR")]
    pub levels_from: Option<PathBuf>,

    /// Length of each level, e.g. 60s, 5m.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// With `--duration`: how long the requests still in flight at a
    /// level's end may run on before they are cancelled (recorded with
    /// status `level_drain`), so that an overloaded level's queue does not hold up
    /// the run; default: each runs to its end (or `--timeout`).
    #[arg(long, value_name = "DURATION")]
    pub level_drain: Option<String>,
    /// Sessions started per level (= requests for single-turn traces); default: the whole trace once.
    #[arg(long, value_name = "N")]
    pub requests: Option<usize>,
    /// The first N sessions of each level are warm-up: sent, recorded with `warmup = true`, left out of the summary.
    #[arg(long, value_name = "N")]
    pub warmup: Option<usize>,
    /// Replay each level's requests this many times (round 1 cold, round 2 warm cache, ...).
    #[arg(long)]
    pub rounds: Option<u32>,

    /// History of multi-turn sessions: the trace's recorded replies or the server's live ones.
    #[arg(long, value_enum)]
    pub history: Option<History>,
    /// Multiply the trace's think times (the pauses between a session's
    /// turns, e.g. an agent's tool runs) by X; 0 sends each turn as soon as
    /// the previous reply has ended.
    #[arg(long, value_name = "X")]
    pub think_scale: Option<f64>,
    /// Output tokens of every request (default: the trace's, else 128).
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Do not send `ignore_eos`/`min_tokens` (servers that reject them, e.g. hosted APIs).
    #[arg(long)]
    pub no_ignore_eos: bool,
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Extra HTTP header `Name: value` (repeatable).
    #[arg(long = "header", value_name = "K:V")]
    pub headers: Vec<String>,
    /// Extra JSON merged into every request body.
    #[arg(long, value_name = "JSON")]
    pub extra_body: Option<String>,
    /// API key (default: $OPENAI_API_KEY). Never written to the results.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Per-request timeout, e.g. 600s.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// A new connection per request (connection setup then counts in TTFT).
    #[arg(long)]
    pub fresh_connections: bool,
    /// POST this URL before each level (not before its later rounds) to
    /// empty the server's prefix cache, so a level does not find earlier
    /// levels' prompts cached: `/reset_prefix_cache` for vLLM (started with
    /// VLLM_SERVER_DEV_MODE=1), `/flush_cache` for SGLang; a path is taken
    /// from the endpoint's root.
    #[arg(long, value_name = "URL")]
    pub cache_reset: Option<String>,
    /// Start every prompt with a short tag of its own for each level (the
    /// same in the level's later rounds, new in every run), so that no
    /// level finds an earlier level's or run's prompts in the prefix cache,
    /// on any server (llama.cpp, TGI and hosted APIs have no reset
    /// endpoint); sessions a level runs again get a new tag too. Adds a few
    /// tokens to each prompt.
    #[arg(long)]
    pub isolate_levels: bool,
    /// Do not ask for the usage chunk (`stream_options.include_usage`).
    #[arg(long)]
    pub no_usage: bool,
    /// Ask for whole replies (`"stream": false`), as a client that does not
    /// stream sees the server: E2E only, no TTFT, TPOT or ITL.
    #[arg(long)]
    pub no_stream: bool,
    /// Count the prompt and output tokens of replies that come without
    /// usage with this tokenizer (the served model's: a `tokenizer.json`, a
    /// folder holding one with its chat template, or a hub model id),
    /// instead of leaving the prompt unknown and counting chunks, which is
    /// short when the server streams several tokens a chunk.
    #[arg(long, value_name = "ID_OR_PATH")]
    pub tokenizer: Option<String>,
    /// Hub revision (branch, tag or commit) of a `--tokenizer` hub model id.
    #[arg(long, value_name = "REV")]
    pub tokenizer_revision: Option<String>,

    /// SLOs for goodput, e.g. `ttft_ms=500,tpot_ms=50,e2e_ms=10000`.
    #[arg(long, value_name = "SPEC")]
    pub slo: Option<String>,
    /// SLOs in a YAML file (`ttft_ms: 500` ...).
    #[arg(long, value_name = "FILE")]
    pub slo_file: Option<PathBuf>,
    /// Exit with status 3 when a level missed an SLO.
    #[arg(long)]
    pub fail_on_slo: bool,
    /// Percentiles shown in the tables, e.g. `50,90,99` (in rising order, repeats dropped).
    #[arg(long, value_delimiter = ',', value_name = "P")]
    pub percentiles: Option<Vec<f64>>,

    /// Prometheus endpoints to scrape during the run (default: the server's /metrics).
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    pub metrics_endpoint: Option<Vec<String>>,
    /// Scrape interval, e.g. 1s.
    #[arg(long, value_name = "DURATION")]
    pub metrics_interval: Option<String>,
    /// Keep only these metric names (exact, or a prefix ending in `*`).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub metrics_names: Option<Vec<String>>,
    /// Metric names flavor of the server: vllm, sglang, tgi, llamacpp,
    /// mindie, or generic (the default: every engine's names are known;
    /// naming one warns when the endpoint exposes none of its series).
    #[arg(long, value_name = "KIND")]
    pub backend: Option<String>,
    /// Do not scrape metrics.
    #[arg(long)]
    pub no_metrics: bool,

    /// Folder that receives the run folder.
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
    /// Name appended to the run folder's timestamp.
    #[arg(long)]
    pub name: Option<String>,
    /// Seed of the arrival schedules.
    #[arg(long)]
    pub seed: Option<u64>,
    /// After Ctrl-C or SIGTERM, how long in-flight requests may finish before they are cancelled.
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<String>,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print what each level would send (sessions, requests, how long its
    /// arrivals last, prompt and output tokens) and exit without contacting
    /// the server or writing anything.
    #[arg(long)]
    #[serde(skip)]
    pub dry_run: bool,
}
