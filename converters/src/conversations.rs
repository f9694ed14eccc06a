//! `trace convert conversations`: not written yet.

use std::path::PathBuf;

use crate::{Error, Result, SessionSource};

/// Options of `trace convert conversations`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {}

/// Opens the inputs as a source of sessions.
pub fn open(_inputs: &[PathBuf], _opts: &Options) -> Result<Box<dyn SessionSource>> {
    Err(Error::Usage(
        "the conversations converter is not written yet".into(),
    ))
}
