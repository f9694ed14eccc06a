//! The command line: clap definitions only. Validation happens in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "trace",
    version,
    about = "Turn LLM chat datasets into replayable Parquet traces and replay them against LLM servers",
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert a dataset into a trace.
    Convert(ConvertArgs),
    /// Generate a synthetic trace.
    Synth(SynthArgs),
    /// Show what a trace holds.
    Inspect(InspectArgs),
    /// Mix several traces into one benchmark set, by weight.
    Mix(MixArgs),
    /// Count tokens exactly (in parallel) and optionally materialise token-only rows as text.
    Tokenize(crate::tokenize::TokenizeArgs),
    /// Replay a trace against an OpenAI-compatible endpoint and record every request.
    Replay(Box<crate::replay::ReplayArgs>),
    /// Run an OpenAI-compatible mock inference server (for tests, demos and fault drills).
    Mock(crate::mock::MockArgs),
    /// Replay a bundled agent trace against the built-in mock server: a first run that needs nothing.
    Demo(DemoArgs),
    /// Summarise replay runs: per level rates, latency distributions, errors,
    /// goodput, saturation, rounds, sessions, users; tables, JSON, CSV,
    /// Markdown, HTML, xlsx, and charts with --plot
    Report(crate::commands::report::ReportArgs),
    /// Compare runs level by level, flagging changes larger than their noise
    Compare(crate::commands::report::CompareArgs),
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    #[command(subcommand)]
    pub format: ConvertFormat,
}

/// Where a conversion writes and what it keeps.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// The trace to write (Parquet). Written to a temporary file and renamed on success.
    #[arg(short, long, value_name = "OUT.parquet")]
    pub output: PathBuf,
    /// Keep only the first N sessions.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Keep a uniform random sample of N sessions, in input order.
    #[arg(long, value_name = "N")]
    pub sample: Option<u64>,
    /// Seed of `--sample` (and of any other randomness).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Drop sessions with a request longer than this many input tokens (where lengths are known).
    #[arg(long, value_name = "TOKENS")]
    pub max_input_tokens: Option<u32>,
    /// Drop sessions with a request asking for more than this many output tokens (where known).
    #[arg(long, value_name = "TOKENS")]
    pub max_output_tokens: Option<u32>,
    /// Skip records that do not parse or have the wrong shape (counted), instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// Print the conversion report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// How every command that writes a trace writes it.
#[derive(Debug, Clone, Copy, Args)]
pub struct WriteArgs {
    /// Compression of the trace's columns: snappy (fast), zstd (smallest files, slower), lz4 or none.
    #[arg(long, value_name = "CODEC", default_value_t = traces::Codec::default(),
          value_parser = clap::builder::TypedValueParser::try_map(
              clap::builder::PossibleValuesParser::new(traces::Codec::names()),
              |s| s.parse::<traces::Codec>()))]
    pub compression: traces::Codec,
}

#[derive(Debug, Subcommand)]
pub enum ConvertFormat {
    /// ShareGPT conversations (JSON array, JSONL or one object).
    Sharegpt(Input<converters::sharegpt::Options>),
    /// LongBench v1 (JSONL, a file or a folder of task files) or v2 (JSON).
    Longbench(Input<converters::longbench::Options>),
    /// Conversation-history JSON: `[{"prompt_content", "cut_chat_history": [...]}]`.
    Conversations(Input<converters::conversations::Options>),
    /// OpenAI messages: JSONL of `{"messages": [...]}` or bare arrays of messages.
    Openai(Input<converters::openai::Options>),
    /// SWE-agent and mini-SWE-agent trajectories (`*.traj`, `*.traj.json`): one session per run, one turn per model call.
    #[command(name = "swe-agent")]
    SweAgent(Input<converters::swe_agent::Options>),
    /// Plain prompt lists: JSONL/JSON of `{"text"}`/`{"prompt"}`, or one prompt per line.
    Prompts(Input<converters::prompts::Options>),
    /// Mooncake traces (JSONL: timestamp, input_length, output_length, hash_ids).
    Mooncake(Input<converters::mooncake::Options>),
    /// Azure LLM inference traces (CSV, 2023 and 2024 layouts).
    Azure(Input<converters::azure::Options>),
    /// BurstGPT traces (CSV, v1 and v3 layouts).
    Burstgpt(Input<converters::burstgpt::Options>),
    /// Alibaba Bailian traces (JSONL/CSV with chat_id, parent_chat_id, hash_ids).
    Bailian(Input<converters::bailian::Options>),
}

#[derive(Debug, Args)]
pub struct Input<O: Args> {
    /// Input files (or folders, where the format allows).
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub format: O,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    #[command(subcommand)]
    pub kind: SynthKind,
}

#[derive(Debug, Subcommand)]
pub enum SynthKind {
    /// Random prompts of given lengths, optionally with shared prefixes.
    Random(Synth<converters::synth::random::Options>),
    /// Multi-turn agent sessions with a growing context and compaction.
    Agent(Synth<converters::synth::agent::Options>),
}

#[derive(Debug, Args)]
pub struct Synth<O: Args> {
    #[command(flatten)]
    pub generator: O,
    /// The trace to write (Parquet).
    #[arg(short, long, value_name = "OUT.parquet")]
    pub output: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The trace to inspect.
    pub trace: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MixArgs {
    /// Traces with their weights, `PATH:WEIGHT` (weights are normalised).
    #[arg(value_name = "TRACE:WEIGHT", required = true)]
    pub inputs: Vec<String>,
    /// The mixed trace to write.
    #[arg(short, long, value_name = "OUT.parquet")]
    pub output: PathBuf,
    /// Sessions in the mix (default: as many as the inputs allow without repeating one).
    #[arg(long, value_name = "N")]
    pub sessions: Option<u64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder that receives the demo trace and the run folder.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
}
