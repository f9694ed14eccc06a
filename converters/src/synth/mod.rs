//! Synthetic workload generators: they yield sessions like any converter.

pub mod agent;
pub mod random;
