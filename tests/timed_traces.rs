//! Integration tests: timed_traces.
