//! Analysis of `trace replay` results with Polars: per-level summaries,
//! saturation, rounds, sessions and users, comparisons between runs,
//! charts, and reports in several formats.
//!
//! The pipeline: [`run::RunFiles`] finds a run's Parquet parts and run.json,
//! [`compute`] turns them into a [`model::Report`] in one batched pass,
//! and [`render`] / [`plots`] lay the report out.

pub mod compare;
pub mod compute;
pub mod error;
pub mod model;
pub mod notes;
pub mod plots;
pub mod render;
pub mod run;

pub use error::{Error, Result};
pub use model::{Comparison, Report};
