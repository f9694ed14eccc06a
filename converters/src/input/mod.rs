//! Reading input files record by record, in bounded memory.

mod json;
mod lines;
mod parallel;
mod scan;
mod source;

pub use json::{JsonLayout, JsonRecords, RawRecord};
pub use lines::TextLines;
pub use parallel::{ParallelJsonSource, ParallelOptions};
pub use scan::Scan;
pub use source::{JsonSource, RecordConverter};

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::{Error, Result};

/// Opens a file for buffered reading, naming it in the error.
pub fn open(path: &Path) -> Result<BufReader<File>> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(BufReader::with_capacity(1 << 20, file))
}

/// Expands folders into the files they hold (sorted, non-recursive, hidden files skipped),
/// keeping files as they are.
pub fn expand_inputs(
    inputs: &[std::path::PathBuf],
    extensions: &[&str],
) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let rd = std::fs::read_dir(input).map_err(|source| Error::Io {
                path: input.clone(),
                source,
            })?;
            let mut files = Vec::new();
            for entry in rd {
                let entry = entry.map_err(|source| Error::Io {
                    path: input.clone(),
                    source,
                })?;
                let p = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !p.is_file() {
                    continue;
                }
                let ext_ok = extensions.is_empty()
                    || p.extension()
                        .map(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
                        .unwrap_or(false);
                if ext_ok {
                    files.push(p);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: folder holds no input files ({})",
                    input.display(),
                    extensions.join(", ")
                )));
            }
            out.extend(files);
        } else {
            if !input.exists() {
                return Err(Error::Io {
                    path: input.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
            out.push(input.clone());
        }
    }
    Ok(out)
}

/// Like [`expand_inputs`], but a folder is searched through its subfolders
/// too (in sorted order; hidden files and folders skipped) for files whose
/// names end in one of `suffixes` (ASCII case ignored), as tools that write
/// one folder per task lay out their output. Files named on the command
/// line are taken whatever their names.
pub fn expand_tree(
    inputs: &[std::path::PathBuf],
    suffixes: &[&str],
) -> Result<Vec<std::path::PathBuf>> {
    fn walk(dir: &Path, suffixes: &[&str], out: &mut Vec<std::path::PathBuf>) -> Result<()> {
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            if !name.starts_with('.') {
                entries.push((entry.path(), name));
            }
        }
        entries.sort();
        for (p, name) in entries {
            if p.is_dir() {
                walk(&p, suffixes, out)?;
            } else if p.is_file() && suffixes.iter().any(|s| name.ends_with(s)) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = out.len();
            walk(input, suffixes, &mut out)?;
            if out.len() == before {
                return Err(Error::Usage(format!(
                    "{}: folder holds no input files (*{}), in it or below",
                    input.display(),
                    suffixes.join(", *")
                )));
            }
        } else {
            out.extend(expand_inputs(std::slice::from_ref(input), &[])?);
        }
    }
    Ok(out)
}
