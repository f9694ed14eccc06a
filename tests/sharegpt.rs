//! Integration tests: sharegpt.
