//! The command line of `trace tokenize`, and its validated form.

use std::path::PathBuf;

use anyhow::bail;

/// Options of `trace tokenize`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenizeArgs {
    /// The trace to tokenize.
    #[arg(value_name = "TRACE")]
    pub trace: PathBuf,
    /// The tokenized trace to write (may be TRACE itself). Written to a temporary file and
    /// renamed on success.
    #[arg(short, long, value_name = "OUT.parquet")]
    pub output: PathBuf,
    /// A `tokenizer.json`, a folder holding `tokenizer.json` (and `tokenizer_config.json`),
    /// or a Hugging Face hub model id such as `org/model`.
    #[arg(long, value_name = "ID_OR_PATH")]
    pub tokenizer: String,
    /// Hub revision (branch, tag or commit) of a hub model id.
    #[arg(long, value_name = "REV", default_value = "main")]
    pub revision: String,
    /// How prompts are built: `auto` (the chat template of the tokenizer folder or hub
    /// model, plain concatenation if it has none), `none` (plain concatenation), or the
    /// path of a Jinja template file (or of a `tokenizer_config.json` holding one).
    #[arg(long, value_name = "auto|none|PATH", default_value = "auto")]
    pub chat_template: String,
    /// Redo the work even if TRACE was already tokenized with this tokenizer.
    #[arg(long)]
    pub force: bool,
    /// Give token-only rows (`input_tokens` but no user message) real text with exactly
    /// `input_tokens` prompt tokens; equal `hash_ids` become identical text blocks.
    #[arg(long)]
    pub materialize: bool,
    /// Seed of the text `--materialize` writes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub write: crate::cli::WriteArgs,
}

/// Where the chat template comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChoice {
    /// The tokenizer's own, if it has one.
    Auto,
    /// Plain concatenation of the messages.
    None,
    /// A Jinja file, or a JSON file with a `chat_template` key.
    File(PathBuf),
}

impl TokenizeArgs {
    pub fn template_choice(&self) -> TemplateChoice {
        match self.chat_template.trim() {
            "auto" | "" => TemplateChoice::Auto,
            "none" => TemplateChoice::None,
            path => TemplateChoice::File(PathBuf::from(path)),
        }
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.tokenizer.trim().is_empty() {
            bail!("--tokenizer: give a tokenizer.json, a folder or a hub model id");
        }
        if self.revision.trim().is_empty() {
            bail!("--revision must not be empty");
        }
        if self.threads == Some(0) {
            bail!("--threads must be at least 1");
        }
        Ok(())
    }
}
