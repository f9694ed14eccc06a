//! `trace tokenize`: exact, parallel token counts.

/// Options of `trace tokenize`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenizeArgs {}

pub fn run(_args: TokenizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("trace tokenize is not written yet")
}
