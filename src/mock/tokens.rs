//! Prompt tokens (counted exactly with a tokenizer, or approximated) and
//! the prefix-cache block hashes of a prompt; the words the mock "generates".

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// Bytes per token of the approximation used without a tokenizer.
pub const APPROX_BYTES_PER_TOKEN: usize = 4;

/// What the engine needs to know about a prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptInfo {
    pub tokens: u32,
    /// Chained hashes of the prompt's full blocks, in order.
    pub blocks: Vec<u64>,
}

/// A prompt as the API received it.
#[derive(Debug, Clone)]
pub enum Prompt {
    Text(String),
    TokenIds(Vec<u32>),
}

/// Counts prompt tokens: a real tokenizer, or ceil(UTF-8 bytes / 4).
#[derive(Clone)]
pub struct Counter {
    tokenizer: Option<Arc<tokenizers::Tokenizer>>,
    block_size: usize,
}

impl Counter {
    pub fn new(tokenizer: Option<&Path>, block_size: u32) -> anyhow::Result<Counter> {
        let tokenizer = match tokenizer {
            Some(path) => Some(Arc::new(
                tokenizers::Tokenizer::from_file(path)
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(|| format!("cannot load tokenizer {}", path.display()))?,
            )),
            None => None,
        };
        Ok(Counter {
            tokenizer,
            block_size: block_size.max(1) as usize,
        })
    }

    /// True when counting needs a real tokenizer (slow: run it off the runtime).
    pub fn is_exact(&self) -> bool {
        self.tokenizer.is_some()
    }

    /// Counts and hashes `prompt`. Fails only if the tokenizer fails.
    pub fn count(&self, prompt: &Prompt) -> Result<PromptInfo, String> {
        match (prompt, &self.tokenizer) {
            (Prompt::TokenIds(ids), _) => Ok(self.of_ids(ids)),
            (Prompt::Text(text), Some(tok)) => {
                let enc = tok
                    .encode(text.as_str(), false)
                    .map_err(|e| e.to_string())?;
                Ok(self.of_ids(enc.get_ids()))
            }
            (Prompt::Text(text), None) => Ok(self.approximate(text.as_bytes())),
        }
    }

    fn of_ids(&self, ids: &[u32]) -> PromptInfo {
        let mut blocks = Vec::with_capacity(ids.len() / self.block_size);
        let mut prev = 0u64;
        for chunk in ids.chunks_exact(self.block_size) {
            prev = chain(prev, |h| chunk.hash(h));
            blocks.push(prev);
        }
        PromptInfo {
            tokens: ids.len().min(u32::MAX as usize) as u32,
            blocks,
        }
    }

    fn approximate(&self, bytes: &[u8]) -> PromptInfo {
        let tokens = bytes.len().div_ceil(APPROX_BYTES_PER_TOKEN);
        let block_bytes = self.block_size * APPROX_BYTES_PER_TOKEN;
        let mut blocks = Vec::with_capacity(bytes.len() / block_bytes);
        let mut prev = 0u64;
        for chunk in bytes.chunks_exact(block_bytes) {
            prev = chain(prev, |h| chunk.hash(h));
            blocks.push(prev);
        }
        PromptInfo {
            tokens: tokens.min(u32::MAX as usize) as u32,
            blocks,
        }
    }
}

fn chain(prev: u64, feed: impl FnOnce(&mut DefaultHasher)) -> u64 {
    let mut h = DefaultHasher::new();
    prev.hash(&mut h);
    feed(&mut h);
    h.finish()
}

/// Common English words, each one token in the usual BPE vocabularies; the
/// reply is these words in turn, so its text is plain ASCII.
const WORDS: [&str; 32] = [
    " the", " of", " and", " to", " in", " is", " that", " for", " it", " as", " was", " with",
    " be", " by", " on", " not", " he", " this", " are", " or", " his", " from", " at", " which",
    " but", " have", " an", " had", " they", " you", " were", " one",
];

/// The text of reply token `i`.
pub fn word(i: u32) -> &'static str {
    WORDS[i as usize % WORDS.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approximation_counts_bytes_over_four_and_chains_blocks() {
        let c = Counter::new(None, 2).expect("no tokenizer");
        let info = c
            .count(&Prompt::Text("abcdefghijklmnopq".into()))
            .expect("counts");
        assert_eq!(info.tokens, 5); // 17 bytes
        assert_eq!(info.blocks.len(), 2); // 8-byte blocks
        let other = c
            .count(&Prompt::Text("Xbcdefghijklmnopq".into()))
            .expect("counts");
        assert_ne!(info.blocks[1], other.blocks[1], "hashes are chained");
        let ids = c
            .count(&Prompt::TokenIds(vec![1, 2, 3, 4, 5]))
            .expect("counts");
        assert_eq!((ids.tokens, ids.blocks.len()), (5, 2));
        assert_eq!(
            c.count(&Prompt::Text(String::new()))
                .expect("counts")
                .tokens,
            0
        );
    }
}
