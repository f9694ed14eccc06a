//! A [`SessionSource`] over the records of several JSON/JSONL files.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use super::{JsonRecords, RawRecord, open};
use crate::{Outcome, Result, SessionSource};

/// Reads each file's records in turn and converts each with `convert`.
pub struct JsonSource<F> {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<JsonRecords<BufReader<File>>>,
    convert: F,
}

impl<F> JsonSource<F>
where
    F: FnMut(RawRecord) -> Result<Outcome>,
{
    pub fn new(files: Vec<PathBuf>, convert: F) -> Self {
        JsonSource {
            files: files.into_iter(),
            current: None,
            convert,
        }
    }
}

impl<F> SessionSource for JsonSource<F>
where
    F: FnMut(RawRecord) -> Result<Outcome>,
{
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        loop {
            if let Some(records) = self.current.as_mut() {
                match records.next() {
                    Some(Ok(rec)) => return Some((self.convert)(rec)),
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.current = None,
                }
            }
            let path = self.files.next()?;
            match open(&path) {
                Ok(reader) => self.current = Some(JsonRecords::new(&path, reader)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
