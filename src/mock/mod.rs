//! `trace mock`: an OpenAI-compatible server that behaves like an inference engine.

/// Options of `trace mock`.
#[derive(Debug, Clone, clap::Args)]
pub struct MockArgs {}

pub fn run(_args: MockArgs) -> anyhow::Result<()> {
    anyhow::bail!("trace mock is not written yet")
}
