//! `trace synth random`: not written yet.

use crate::{Error, Result, SessionSource};

/// Options of `trace synth random`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {}

/// A source of the generated sessions.
pub fn generate(_opts: &Options) -> Result<Box<dyn SessionSource>> {
    Err(Error::Usage("trace synth random is not written yet".into()))
}
