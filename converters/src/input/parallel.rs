//! A [`SessionSource`] that cuts JSON records out of the input on one
//! thread and converts them on several, handing the outcomes on in input
//! order.
//!
//! The splitter thread groups raw records into batches of about
//! [`ParallelOptions::batch_bytes`]. For each batch it queues a one-shot
//! receiver on the *ordered* channel, then the batch itself on the *work*
//! channel that the converter threads share. The consumer takes the
//! receivers in order and waits on each, so outcomes come out exactly as a
//! one-threaded reader would give them, errors (with their file, line and
//! record index) included. Both channels are bounded: at most
//! `ordered_batches` batches are in flight, whatever the input's size.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{JsonRecords, RawRecord, open};
use crate::{Error, Outcome, Result, SessionSource};

/// Converts one raw record; shared by the converter threads.
type Convert = dyn Fn(&RawRecord) -> Result<Outcome> + Send + Sync;

/// Sizes of the parallel pipeline.
#[derive(Debug, Clone)]
pub struct ParallelOptions {
    /// Converter threads (at least 1).
    pub workers: usize,
    /// A batch is sent once its records hold this many bytes...
    pub batch_bytes: usize,
    /// ... or this many records.
    pub batch_records: usize,
    /// Batches split but not yet taken by the consumer (at least 1).
    pub ordered_batches: usize,
}

impl Default for ParallelOptions {
    fn default() -> Self {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        ParallelOptions {
            workers,
            batch_bytes: 1 << 20,
            batch_records: 1024,
            ordered_batches: 2 * workers + 2,
        }
    }
}

/// What the splitter read: a record, or the error in its place.
type Split = Result<RawRecord>;

/// A batch for the converter threads, and where its outcomes go.
struct Job {
    items: Vec<Split>,
    done: SyncSender<Vec<Result<Outcome>>>,
}

/// The consumer's handle on one batch, in input order.
struct Pending {
    file: PathBuf,
    outcomes: Receiver<Vec<Result<Outcome>>>,
}

/// Reads each file's records in turn, converting them in parallel.
pub struct ParallelJsonSource {
    ordered: Option<Receiver<Pending>>,
    current: std::vec::IntoIter<Result<Outcome>>,
    splitter: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    /// The file of the last batch, to name in an error.
    last_file: PathBuf,
}

impl ParallelJsonSource {
    pub fn new(
        files: Vec<PathBuf>,
        options: &ParallelOptions,
        convert: impl Fn(&RawRecord) -> Result<Outcome> + Send + Sync + 'static,
    ) -> Result<Self> {
        let last_file = files.first().cloned().unwrap_or_default();
        let spawn_error = |source| Error::Io {
            path: last_file.clone(),
            source,
        };
        let workers_wanted = options.workers.max(1);
        let (ordered_tx, ordered) = sync_channel::<Pending>(options.ordered_batches.max(1));
        let (jobs_tx, jobs) = sync_channel::<Job>(workers_wanted);
        let jobs = Arc::new(Mutex::new(jobs));
        let convert: Arc<Convert> = Arc::new(convert);
        let mut workers = Vec::with_capacity(workers_wanted);
        for i in 0..workers_wanted {
            let jobs = Arc::clone(&jobs);
            let convert = Arc::clone(&convert);
            let handle = std::thread::Builder::new()
                .name(format!("trace-convert-{i}"))
                .spawn(move || convert_batches(&jobs, convert.as_ref()))
                .map_err(spawn_error)?;
            workers.push(handle);
        }
        let splitter = Splitter {
            ordered: ordered_tx,
            jobs: jobs_tx,
            batch_bytes: options.batch_bytes.max(1),
            batch_records: options.batch_records.max(1),
        };
        let splitter = std::thread::Builder::new()
            .name("trace-split".into())
            .spawn(move || splitter.run(files))
            .map_err(spawn_error)?;
        Ok(ParallelJsonSource {
            ordered: Some(ordered),
            current: Vec::new().into_iter(),
            splitter: Some(splitter),
            workers,
            last_file,
        })
    }

    /// Called when the splitter has sent everything: `None` at a normal
    /// end, an error if it died.
    fn end(&mut self) -> Option<Result<Outcome>> {
        self.ordered = None;
        let handle = self.splitter.take()?;
        match handle.join() {
            Ok(()) => None,
            Err(_) => Some(Err(self.thread_died("the record splitter thread"))),
        }
    }

    fn thread_died(&self, which: &str) -> Error {
        Error::Io {
            path: self.last_file.clone(),
            source: std::io::Error::other(format!("{which} stopped unexpectedly (a bug)")),
        }
    }
}

impl SessionSource for ParallelJsonSource {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        loop {
            if let Some(outcome) = self.current.next() {
                return Some(outcome);
            }
            let next = self.ordered.as_ref()?.recv();
            let Ok(pending) = next else {
                return self.end();
            };
            self.last_file = pending.file;
            match pending.outcomes.recv() {
                Ok(outcomes) => self.current = outcomes.into_iter(),
                Err(_) => {
                    // Nothing after a lost batch can be trusted: stop here.
                    self.ordered = None;
                    return Some(Err(self.thread_died("a record converter thread")));
                }
            }
        }
    }
}

impl Drop for ParallelJsonSource {
    fn drop(&mut self) {
        // Closing the ordered channel stops the splitter at its next batch,
        // which closes the work channel and so stops the converters.
        self.ordered = None;
        self.current = Vec::new().into_iter();
        if let Some(splitter) = self.splitter.take() {
            let _ = splitter.join();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// The splitter thread's state.
struct Splitter {
    ordered: SyncSender<Pending>,
    jobs: SyncSender<Job>,
    batch_bytes: usize,
    batch_records: usize,
}

impl Splitter {
    fn run(self, files: Vec<PathBuf>) {
        for path in files {
            if !self.split_file(path) {
                return;
            }
        }
    }

    /// Sends the records of one file in batches; false when nothing more
    /// should be read (a fatal error, or the consumer is gone).
    fn split_file(&self, path: PathBuf) -> bool {
        let reader = match open(&path) {
            Ok(reader) => reader,
            Err(e) => {
                self.send(path, vec![Err(e)]);
                return false;
            }
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        for item in JsonRecords::new(&path, reader) {
            let fatal = matches!(&item, Err(e) if !matches!(e, Error::BadRecord { .. }));
            bytes += item.as_ref().map_or(0, |r| r.bytes.len());
            batch.push(item);
            if fatal {
                self.send(path, batch);
                return false;
            }
            if (bytes >= self.batch_bytes || batch.len() >= self.batch_records)
                && !self.send(path.clone(), std::mem::take(&mut batch))
            {
                return false;
            }
            if batch.is_empty() {
                bytes = 0;
            }
        }
        batch.is_empty() || self.send(path, batch)
    }

    /// Queues one batch; false when the consumer is gone.
    fn send(&self, file: PathBuf, items: Vec<Split>) -> bool {
        let (done, outcomes) = sync_channel(1);
        self.ordered.send(Pending { file, outcomes }).is_ok()
            && self.jobs.send(Job { items, done }).is_ok()
    }
}

/// A converter thread: converts batches until the work channel closes.
fn convert_batches(jobs: &Mutex<Receiver<Job>>, convert: &Convert) {
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(Job { items, done }) = job else {
            return;
        };
        let outcomes = items
            .into_iter()
            .map(|item| item.and_then(|record| convert(&record)))
            .collect();
        // The consumer may be gone (it stopped early); that is fine.
        let _ = done.send(outcomes);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::input::JsonSource;

    /// A record's first value as a one-row session named by its location.
    fn convert(rec: &RawRecord) -> Result<Outcome> {
        let v: serde_json::Value = rec.parse()?;
        if v.get("skip").is_some() {
            return Ok(Outcome::Skipped("asked to".into()));
        }
        let name = format!(
            "{}:{:?}:{:?}:{}",
            rec.location.file.display(),
            rec.location.line,
            rec.location.record,
            v
        );
        Ok(Outcome::Session(vec![traces::TraceRow {
            session_id: name,
            ..Default::default()
        }]))
    }

    /// Every outcome as text, errors (and their causes) included, in order.
    fn drain(source: &mut dyn SessionSource) -> Vec<String> {
        std::iter::from_fn(|| source.next_outcome())
            .map(|o| match o {
                Ok(Outcome::Session(rows)) => rows[0].session_id.clone(),
                Ok(Outcome::Skipped(why)) => format!("skipped: {why}"),
                Err(e @ Error::BadRecord { .. }) => format!("bad: {e}"),
                Err(e) => {
                    let cause = std::error::Error::source(&e).map(|c| c.to_string());
                    format!("error: {e}: {}", cause.unwrap_or_default())
                }
            })
            .collect()
    }

    fn small_batches(workers: usize) -> ParallelOptions {
        ParallelOptions {
            workers,
            batch_bytes: 40,
            batch_records: 3,
            ordered_batches: 2,
        }
    }

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(text.as_bytes()).expect("write");
        path
    }

    /// JSONL with bad lines (recoverable), then an array that breaks off (fatal).
    fn inputs(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut jsonl = String::new();
        for i in 0..200 {
            match i % 17 {
                5 => jsonl.push_str("{\"broken\": \n"),
                11 => jsonl.push_str("{\"skip\": 1}\n"),
                13 => jsonl.push_str("{\"a\": 1} trailing\n"),
                _ => jsonl.push_str(&format!("{{\"n\": {i}, \"s\": \"{}\"}}\n", "x".repeat(i))),
            }
        }
        let array = "[\n {\"k\": 1},\n {\"k\": 2},\n {\"k\": \"unterminated";
        vec![
            write(dir, "a.jsonl", &jsonl),
            write(dir, "b.json", "[{\"k\": 0}]"),
            write(dir, "c.json", array),
            write(dir, "d.json", "[{\"never\": \"read\"}]"),
        ]
    }

    #[test]
    fn outcomes_match_the_one_threaded_reader_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = inputs(dir.path());
        let mut sequential = JsonSource::new(files.clone(), |rec| convert(&rec));
        let mut expected = drain(&mut sequential);
        // The conversion stops at the first error that is not a bad record
        // (here the truncated array); the parallel reader reads no further.
        let fatal = expected
            .iter()
            .position(|o| o.starts_with("error: "))
            .expect("a fatal error");
        expected.truncate(fatal + 1);
        assert!(
            expected[fatal].contains("c.json:4 (record 2)"),
            "{}",
            expected[fatal]
        );
        assert_eq!(
            expected.iter().filter(|o| o.starts_with("bad: ")).count(),
            23
        );
        assert!(expected.len() > 200, "{}", expected.len());
        for workers in [1, 2, 5] {
            for options in [small_batches(workers), ParallelOptions::default()] {
                let mut parallel =
                    ParallelJsonSource::new(files.clone(), &options, convert).expect("spawn");
                let got = drain(&mut parallel);
                assert!(
                    got == expected,
                    "{options:?}: {} outcomes, not {}",
                    got.len(),
                    expected.len()
                );
            }
        }
    }

    #[test]
    fn a_missing_file_is_an_error_after_the_files_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = write(dir.path(), "good.json", "[{\"k\": 1}, {\"k\": 2}]");
        let files = vec![good, dir.path().join("missing.json")];
        let mut parallel =
            ParallelJsonSource::new(files, &small_batches(2), convert).expect("spawn");
        let got = drain(&mut parallel);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got[2].starts_with("error: ") && got[2].contains("missing.json"),
            "{got:?}"
        );
    }

    #[test]
    fn stopping_early_does_not_hang_or_read_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text: String = (0..50_000).map(|i| format!("{{\"n\": {i}}}\n")).collect();
        let file = write(dir.path(), "big.jsonl", &text);
        let mut parallel =
            ParallelJsonSource::new(vec![file], &small_batches(3), convert).expect("spawn");
        for _ in 0..10 {
            assert!(matches!(parallel.next_outcome(), Some(Ok(_))));
        }
        drop(parallel);
    }

    #[test]
    fn a_panicking_converter_is_an_error_not_a_short_trace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text: String = (0..100).map(|i| format!("{{\"n\": {i}}}\n")).collect();
        let file = write(dir.path(), "p.jsonl", &text);
        let panicky = |rec: &RawRecord| {
            assert!(rec.location.record != Some(50), "converter bug on purpose");
            convert(rec)
        };
        let mut parallel =
            ParallelJsonSource::new(vec![file], &small_batches(2), panicky).expect("spawn");
        let got = drain(&mut parallel);
        let last = got.last().expect("outcomes");
        assert!(
            last.contains("converter thread stopped unexpectedly"),
            "{last}"
        );
        assert!(got.len() <= 51, "{}", got.len());
        assert!(
            got[..got.len() - 1].iter().all(|o| !o.starts_with("error")),
            "{got:?}"
        );
    }
}
