//! Integration tests: longbench.
