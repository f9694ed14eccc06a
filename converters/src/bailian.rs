//! `trace convert bailian`: not written yet.

use std::path::PathBuf;

use crate::{Error, Result, SessionSource};

/// Options of `trace convert bailian`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {}

/// Opens the inputs as a source of sessions.
pub fn open(_inputs: &[PathBuf], _opts: &Options) -> Result<Box<dyn SessionSource>> {
    Err(Error::Usage(
        "the bailian converter is not written yet".into(),
    ))
}
