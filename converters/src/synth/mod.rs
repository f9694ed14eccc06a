//! Synthetic workload generators: they yield sessions like any converter.
//!
//! Their rows are token-only: `input_tokens`, `output_tokens` and `hash_ids`
//! (see [`blocks`]) describe each prompt, and the materialiser writes text
//! that matches them.

pub mod agent;
pub mod arrivals;
pub mod blocks;
pub mod random;
pub mod spec;
