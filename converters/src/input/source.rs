//! A [`SessionSource`] over the records of several JSON/JSONL files.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use super::{JsonRecords, RawRecord, open};
use crate::{Outcome, Report, Result, SessionSource};

/// What a [`JsonSource`] does with each record.
///
/// A closure `FnMut(RawRecord) -> Result<Outcome>` is one (a record gives
/// one outcome). A format whose record can give several sessions, or that
/// counts what it saw for the report, implements it on its own type.
pub trait RecordConverter {
    /// Converts one record, pushing its outcomes in order onto `out`.
    fn convert(&mut self, rec: RawRecord, out: &mut VecDeque<Outcome>) -> Result<()>;

    /// Adds what the converter counted to the report, at the end.
    fn finish(&mut self, _report: &mut Report) {}
}

impl<F> RecordConverter for F
where
    F: FnMut(RawRecord) -> Result<Outcome>,
{
    fn convert(&mut self, rec: RawRecord, out: &mut VecDeque<Outcome>) -> Result<()> {
        out.push_back(self(rec)?);
        Ok(())
    }
}

/// Reads each file's records in turn and converts each with `convert`.
pub struct JsonSource<C> {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<JsonRecords<BufReader<File>>>,
    /// Outcomes of a record not handed out yet.
    queued: VecDeque<Outcome>,
    convert: C,
}

impl<C: RecordConverter> JsonSource<C> {
    pub fn new(files: Vec<PathBuf>, convert: C) -> Self {
        JsonSource {
            files: files.into_iter(),
            current: None,
            queued: VecDeque::new(),
            convert,
        }
    }
}

impl<C: RecordConverter> SessionSource for JsonSource<C> {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        loop {
            if let Some(outcome) = self.queued.pop_front() {
                return Some(Ok(outcome));
            }
            if let Some(records) = self.current.as_mut() {
                match records.next() {
                    Some(Ok(rec)) => match self.convert.convert(rec, &mut self.queued) {
                        Ok(()) => continue,
                        Err(e) => return Some(Err(e)),
                    },
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

    fn finish(&mut self, report: &mut Report) {
        self.convert.finish(report);
    }
}
