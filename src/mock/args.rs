//! The command line of `trace mock` and its validated form, [`Config`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::faults::FaultRates;

/// Whose metric names `/metrics` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MetricsFlavor {
    /// vLLM (`vllm:num_requests_running`, ...).
    #[default]
    Vllm,
    /// SGLang (`sglang:num_running_reqs`, ...).
    Sglang,
    /// Hugging Face TGI (`tgi_queue_size`, ...).
    Tgi,
    /// llama.cpp server (`llamacpp:requests_processing`, ...).
    Llamacpp,
}

/// Options of `trace mock`. `MockArgs::default()` equals the command-line defaults.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct MockArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to bind (0 picks a free one; the bound address is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Served model name. When set, requests naming another model (or a `--lora` adapter) get 404.
    #[arg(long)]
    pub model: Option<String>,
    /// LoRA adapters served beside the model (comma-separated or repeated), as vLLM's `--lora-modules` does: listed by /v1/models, accepted as a request's model and named in its reply.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub lora: Vec<String>,
    /// Require `Authorization: Bearer KEY` on /v1/* (401 otherwise).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Count prompt tokens with this tokenizer.json (default: ceil(UTF-8 bytes / 4)).
    #[arg(long, value_name = "tokenizer.json")]
    pub tokenizer: Option<PathBuf>,
    /// Longest prompt + completion accepted (400 beyond).
    #[arg(long, default_value_t = 131_072)]
    pub max_model_len: u32,
    /// Completion tokens when a request gives neither max_tokens nor max_completion_tokens.
    #[arg(long, default_value_t = 256)]
    pub default_max_tokens: u32,
    /// Without `ignore_eos`, stop after this many tokens (never before `min_tokens`).
    #[arg(long, value_name = "TOKENS")]
    pub eos_after: Option<u32>,
    /// With `--eos-after`, stop there even when a request asks for
    /// `ignore_eos` or `min_tokens`: a server without those options.
    #[arg(long, requires = "eos_after")]
    pub eos_always: bool,
    /// Fixed time to first token, counted from admission (= arrival unless queued).
    #[arg(long, value_name = "MS")]
    pub ttft_ms: Option<f64>,
    /// Fixed gap between tokens (deadlines are absolute, so errors do not add up).
    #[arg(long, value_name = "MS")]
    pub itl_ms: Option<f64>,
    /// Most requests running at once; the others wait in a FIFO queue.
    #[arg(long, default_value_t = 256)]
    pub max_running: u32,
    /// Prefill speed of uncached prompt tokens, tokens per second.
    #[arg(long, default_value_t = 16_000.0)]
    pub prefill_tps: f64,
    /// Load speed of prompt tokens found in the external (CPU/disk) tier, tokens per second.
    #[arg(long, default_value_t = 80_000.0)]
    pub external_tps: f64,
    /// Decode step time with one running request, ms.
    #[arg(long, default_value_t = 10.0)]
    pub decode_step_ms: f64,
    /// Extra decode step time per running request, ms.
    #[arg(long, default_value_t = 0.05)]
    pub decode_ms_per_seq: f64,
    /// Tokens per streamed chunk after the first, which goes out alone: a
    /// server's stream interval (vLLM, SGLang `--stream-interval`) or the
    /// several tokens a speculative-decoding step accepts. The last chunk
    /// carries what is left.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub tokens_per_chunk: u32,
    /// Tokens per prefix-cache block.
    #[arg(long, default_value_t = 16)]
    pub block_size: u32,
    /// Fast (GPU) tier capacity in blocks; also the KV-cache size for usage (0: no fast tier).
    #[arg(long, default_value_t = 8192)]
    pub gpu_blocks: u32,
    /// External (CPU/disk) tier capacity in blocks (0: no external tier).
    #[arg(long, default_value_t = 32_768)]
    pub cpu_blocks: u32,
    /// Metric names of /metrics.
    #[arg(long, value_enum, default_value_t = MetricsFlavor::Vllm)]
    pub metrics_flavor: MetricsFlavor,
    /// Fault rates, e.g. `429=0.05,500=0.01,503=0.01,reset=0.01,stall=0.01,malformed=0.01,no-done=0.01,usage-missing=0.01,usage-wrong=0.01,close=0.01`.
    #[arg(long, value_name = "KIND=RATE,...")]
    pub faults: Option<String>,
    /// Seed of the fault draws.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// How long a `stall` fault holds the stream before dropping the connection, ms.
    #[arg(long, default_value_t = 300_000)]
    pub stall_ms: u64,
    /// Write one record per request here (`.parquet`, else JSON lines).
    #[arg(long, value_name = "FILE")]
    pub log_requests: Option<PathBuf>,
}

impl Default for MockArgs {
    fn default() -> Self {
        MockArgs {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            model: None,
            lora: Vec::new(),
            api_key: None,
            tokenizer: None,
            max_model_len: 131_072,
            default_max_tokens: 256,
            eos_after: None,
            eos_always: false,
            ttft_ms: None,
            itl_ms: None,
            max_running: 256,
            prefill_tps: 16_000.0,
            external_tps: 80_000.0,
            decode_step_ms: 10.0,
            decode_ms_per_seq: 0.05,
            tokens_per_chunk: 1,
            block_size: 16,
            gpu_blocks: 8192,
            cpu_blocks: 32_768,
            metrics_flavor: MetricsFlavor::Vllm,
            faults: None,
            fault_seed: 0,
            stall_ms: 300_000,
            log_requests: None,
        }
    }
}

impl MockArgs {
    /// The address `--host`/`--port` name.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

/// How the log file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Jsonl,
    Parquet,
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub model: Option<String>,
    /// `--lora`: adapter names served beside the model.
    pub loras: Vec<String>,
    pub api_key: Option<String>,
    pub tokenizer: Option<PathBuf>,
    pub max_model_len: u32,
    pub default_max_tokens: u32,
    pub eos_after: Option<u32>,
    pub eos_always: bool,
    pub ttft: Option<Duration>,
    pub itl: Option<Duration>,
    pub max_running: u32,
    pub prefill_tps: f64,
    pub external_tps: f64,
    pub decode_step: Duration,
    pub decode_per_seq: Duration,
    pub tokens_per_chunk: u32,
    pub block_size: u32,
    pub gpu_blocks: u32,
    pub cpu_blocks: u32,
    pub flavor: MetricsFlavor,
    pub faults: FaultRates,
    pub fault_seed: u64,
    pub stall: Duration,
    pub log: Option<(PathBuf, LogFormat)>,
}

fn millis(name: &str, ms: f64) -> anyhow::Result<Duration> {
    if !ms.is_finite() || !(0.0..=86_400_000.0).contains(&ms) {
        bail!("--{name} must be between 0 and 86400000 ms, got {ms}");
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

fn positive(name: &str, v: f64) -> anyhow::Result<f64> {
    if !v.is_finite() || v <= 0.0 {
        bail!("--{name} must be a positive number, got {v}");
    }
    Ok(v)
}

impl Config {
    pub fn from_args(args: &MockArgs) -> anyhow::Result<Config> {
        if args.max_running == 0 {
            bail!("--max-running must be at least 1");
        }
        if args.block_size == 0 {
            bail!("--block-size must be at least 1");
        }
        if args.tokens_per_chunk == 0 {
            bail!("--tokens-per-chunk must be at least 1");
        }
        if args.default_max_tokens == 0 {
            bail!("--default-max-tokens must be at least 1");
        }
        if args.eos_after == Some(0) {
            bail!("--eos-after must be at least 1");
        }
        if args.model.as_deref() == Some("") {
            bail!("--model must not be empty");
        }
        if args.lora.iter().any(|l| l.trim().is_empty()) {
            bail!("--lora: an empty adapter name");
        }
        let faults = match &args.faults {
            Some(spec) => FaultRates::parse(spec).context("bad --faults")?,
            None => FaultRates::default(),
        };
        let log = args.log_requests.as_ref().map(|p| {
            let parquet = p
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
            let format = if parquet {
                LogFormat::Parquet
            } else {
                LogFormat::Jsonl
            };
            (p.clone(), format)
        });
        Ok(Config {
            model: args.model.clone(),
            loras: args.lora.iter().map(|l| l.trim().to_string()).collect(),
            api_key: args.api_key.clone(),
            tokenizer: args.tokenizer.clone(),
            max_model_len: args.max_model_len,
            default_max_tokens: args.default_max_tokens,
            eos_after: args.eos_after,
            eos_always: args.eos_always,
            ttft: args.ttft_ms.map(|v| millis("ttft-ms", v)).transpose()?,
            itl: args.itl_ms.map(|v| millis("itl-ms", v)).transpose()?,
            max_running: args.max_running,
            prefill_tps: positive("prefill-tps", args.prefill_tps)?,
            external_tps: positive("external-tps", args.external_tps)?,
            decode_step: millis("decode-step-ms", args.decode_step_ms)?,
            decode_per_seq: millis("decode-ms-per-seq", args.decode_ms_per_seq)?,
            tokens_per_chunk: args.tokens_per_chunk,
            block_size: args.block_size,
            gpu_blocks: args.gpu_blocks,
            cpu_blocks: args.cpu_blocks,
            flavor: args.metrics_flavor,
            faults,
            fault_seed: args.fault_seed,
            stall: Duration::from_millis(args.stall_ms),
            log,
        })
    }

    /// The name reported in responses and metrics labels.
    pub fn model_name(&self) -> &str {
        self.model.as_deref().unwrap_or("mock")
    }

    /// The model a request names, if this server serves it: the model
    /// (any name when `--model` was not given) or one of the adapters.
    pub fn serves(&self, asked: &str) -> bool {
        self.loras.iter().any(|l| l == asked) || self.model.as_deref().is_none_or(|m| m == asked)
    }

    /// The model a reply names: the adapter asked for, else the model.
    pub fn reply_model<'a>(&'a self, asked: Option<&'a str>) -> &'a str {
        match asked {
            Some(a) if self.loras.iter().any(|l| l == a) => a,
            _ => self.model_name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: MockArgs,
    }

    #[test]
    fn default_equals_the_command_line_defaults() {
        let parsed = Wrap::try_parse_from(["mock"]).expect("parses").args;
        assert_eq!(parsed, MockArgs::default());
    }

    #[test]
    fn rejects_bad_numbers() {
        let args = MockArgs {
            itl_ms: Some(-1.0),
            ..MockArgs::default()
        };
        assert!(Config::from_args(&args).is_err());
        let args = MockArgs {
            max_running: 0,
            ..MockArgs::default()
        };
        assert!(Config::from_args(&args).is_err());
        let args = MockArgs {
            prefill_tps: f64::NAN,
            ..MockArgs::default()
        };
        assert!(Config::from_args(&args).is_err());
    }
}
