//! Integration tests: they drive the real `trace` executable and read its
//! output back with the `traces` crate (and, in `interop`, with Python's
//! Polars and DuckDB).

mod fake_hub;
mod util;

mod chat_formats;
mod cli;
mod interop;
mod longbench;
mod mock;
mod real_server;
mod replay;
mod replay_faults;
mod replay_modes;
mod report;
mod sharegpt;
mod swe_agent;
mod synth;
mod timed_traces;
mod tokenize;
