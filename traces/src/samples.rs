//! Small sample inputs bundled into the binary, so that the README's first
//! command works on a fresh machine with nothing downloaded.

/// 40 conversations from FastChat's `data/dummy_conversation.json`
/// (lm-sys/FastChat @ c478bbf3, Apache-2.0), in ShareGPT JSON.
pub const SHAREGPT_SAMPLE: &str = include_str!("../samples/sharegpt_sample.json");
