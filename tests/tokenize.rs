//! Integration tests: tokenize.
