//! Dataset converters and synthetic workload generators.
//!
//! Every input format is a module that turns its files into *sessions*
//! (`Vec<TraceRow>`, one row per turn) through the [`SessionSource`] trait;
//! [`pipeline::run`] applies the common options (limit, sample, length
//! filters, `--skip-bad`), keeps ids unique, counts what was skipped and why,
//! and streams the rows into a [`traces::TraceWriter`]. No async, no network
//! (except the Hugging Face hub download of LongBench).

pub mod error;
pub mod hub_env;
pub mod ids;
pub mod input;
pub mod pipeline;
pub mod report;

pub use error::{Error, Location, Result};
pub use pipeline::{CommonOptions, Outcome, SessionSource};
pub use report::Report;

pub mod azure;
pub mod bailian;
pub mod burstgpt;
pub mod conversations;
pub mod longbench;
pub mod mooncake;
pub mod openai;
pub mod prompts;
pub mod sharegpt;
pub mod swe_agent;
pub mod synth;
pub mod timestamp;
