//! `trace synth agent`: not written yet.

use crate::{Error, Result, SessionSource};

/// Options of `trace synth agent`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {}

/// A source of the generated sessions.
pub fn generate(_opts: &Options) -> Result<Box<dyn SessionSource>> {
    Err(Error::Usage("trace synth agent is not written yet".into()))
}
