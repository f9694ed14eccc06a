//! `trace replay`: the timed replayer.

/// Options of `trace replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {}

pub fn run(_args: ReplayArgs) -> anyhow::Result<()> {
    anyhow::bail!("trace replay is not written yet")
}
