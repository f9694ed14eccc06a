//! Shared parts of the timestamped production-trace converters (Mooncake,
//! Azure, BurstGPT, Bailian): date-time parsing, CSV columns read by header
//! name, and emitting single-request sessions in arrival order.
//!
//! Times are kept as integer nanoseconds ([`Nanos`]) until the final
//! `arrival_ms` is computed as an offset from the earliest request, so the
//! 100 ns resolution of the Azure 2023 timestamps survives: an absolute epoch
//! time in f64 milliseconds would round it away.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use traces::TraceRow;

use crate::input::open;
use crate::{Error, Location, Outcome, Result, SessionSource};

/// Nanoseconds since the Unix epoch (or since a trace's own zero).
pub type Nanos = i64;

const NANOS_PER_SEC: i64 = 1_000_000_000;

// ---------------------------------------------------------------- date-times

/// Days from 1970-01-01 to the given proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Shift the year to start in March so the leap day is the year's last.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let shifted_month = if m > 2 { m - 3 } else { m + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A cursor over the ASCII bytes of a date-time.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize, what: &str) -> Result<u32, String> {
        let end = self.pos + n;
        let slice = self
            .bytes
            .get(self.pos..end)
            .filter(|s| s.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| format!("expected {n} digits of {what}"))?;
        self.pos = end;
        Ok(slice
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
    }

    fn expect(&mut self, options: &[u8], what: &str) -> Result<u8, String> {
        match self.bytes.get(self.pos) {
            Some(b) if options.contains(b) => {
                self.pos += 1;
                Ok(*b)
            }
            _ => Err(format!("expected {what}")),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Fractional seconds after a '.', as nanoseconds (digits past the 9th are dropped).
    fn fraction(&mut self) -> Result<i64, String> {
        let start = self.pos;
        let mut nanos: i64 = 0;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            if self.pos - start < 9 {
                nanos = nanos * 10 + i64::from(d - b'0');
            }
            self.pos += 1;
        }
        let len = self.pos - start;
        if len == 0 {
            return Err("expected digits after '.'".into());
        }
        for _ in len..9 {
            nanos *= 10;
        }
        Ok(nanos)
    }

    /// A UTC offset (`Z`, `+HH:MM`, `+HHMM`, `+HH`, or nothing = UTC), in seconds.
    fn offset(&mut self) -> Result<i64, String> {
        let sign = match self.peek() {
            None => return Ok(0),
            Some(b'Z' | b'z') => {
                self.pos += 1;
                return Ok(0);
            }
            Some(b'+') => 1,
            Some(b'-') => -1,
            Some(_) => return Err("expected a UTC offset (Z, +HH:MM) or the end".into()),
        };
        self.pos += 1;
        let hours = self.digits(2, "offset hours")?;
        if self.peek() == Some(b':') {
            self.pos += 1;
        }
        let minutes = if self.peek().is_some() {
            self.digits(2, "offset minutes")?
        } else {
            0
        };
        if hours > 23 || minutes > 59 {
            return Err("UTC offset out of range".into());
        }
        Ok(sign * (i64::from(hours) * 3600 + i64::from(minutes) * 60))
    }
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH:MM|±HHMM|±HH]` into
/// nanoseconds since the Unix epoch. The fraction may have any number of
/// digits (or be absent); a time without an offset is taken as UTC.
pub fn parse_datetime(text: &str) -> Result<Nanos, String> {
    let text = text.trim();
    let mut c = Cursor {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let fail = |e: String| format!("bad date-time {text:?}: {e}");
    let year = c.digits(4, "the year").map_err(fail)?;
    c.expect(b"-", "'-'").map_err(fail)?;
    let month = c.digits(2, "the month").map_err(fail)?;
    c.expect(b"-", "'-'").map_err(fail)?;
    let day = c.digits(2, "the day").map_err(fail)?;
    c.expect(b" T", "' ' or 'T' between date and time")
        .map_err(fail)?;
    let hour = c.digits(2, "the hour").map_err(fail)?;
    c.expect(b":", "':'").map_err(fail)?;
    let minute = c.digits(2, "the minute").map_err(fail)?;
    c.expect(b":", "':'").map_err(fail)?;
    let second = c.digits(2, "the second").map_err(fail)?;
    let nanos = if c.peek() == Some(b'.') {
        c.pos += 1;
        c.fraction().map_err(fail)?
    } else {
        0
    };
    let offset = c.offset().map_err(fail)?;
    if c.peek().is_some() {
        return Err(fail("unexpected characters at the end".into()));
    }
    let year = i64::from(year);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(fail("no such date".into()));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(fail("no such time of day".into()));
    }
    let seconds = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second)
        - offset;
    seconds
        .checked_mul(NANOS_PER_SEC)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(|| fail("out of the supported range (years 1678 to 2261)".into()))
}

/// A non-negative time in `unit_nanos` units (1e9 for seconds, 1e6 for
/// milliseconds) as nanoseconds, rounded; `None` when negative, not finite
/// or too large to hold. The whole and fractional parts are scaled
/// separately, so an epoch time in seconds keeps the precision its f64 has.
pub fn units_to_nanos(value: f64, unit_nanos: i64) -> Option<Nanos> {
    if !value.is_finite() || value < 0.0 || value * unit_nanos as f64 >= 9.0e18 {
        return None;
    }
    let whole = value.trunc();
    let fraction = ((value - whole) * unit_nanos as f64).round() as i64;
    Some(whole as i64 * unit_nanos + fraction)
}

/// Milliseconds from `origin` to `at`, keeping sub-millisecond precision.
pub fn offset_ms(at: Nanos, origin: Nanos) -> f64 {
    (i128::from(at) - i128::from(origin)) as f64 / 1e6
}

/// The trace id of a record that has none: `<file stem>-<line, 6+ digits>`.
pub fn line_id(path: &Path, line: u64) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{stem}-{line:06}")
}

/// Why `hash_ids` does not have exactly one id per `block`-token block of
/// `input` tokens (`None` when it does): the message of a "hash_ids length
/// mismatch" error.
pub fn hash_ids_mismatch(hash_ids: &[u64], input: u32, block: u32) -> Option<String> {
    let expected = u64::from(input).div_ceil(u64::from(block));
    (hash_ids.len() as u64 != expected).then(|| {
        format!(
            "{} hash_ids for input_length {input} (expected ceil({input}/{block}) = {expected}; \
             --allow-hash-mismatch keeps such records)",
            hash_ids.len()
        )
    })
}

/// The skip reason shared by all timed formats for a request with no prompt.
pub const EMPTY_PROMPT: &str = "empty prompt (0 input tokens)";

// ---------------------------------------------------------------- CSV

/// A CSV file whose columns are found by header name (case-insensitive).
pub struct CsvFile {
    path: PathBuf,
    reader: csv::Reader<LfLines<BufReader<File>>>,
    columns: HashMap<String, usize>,
    header: Vec<String>,
}

impl CsvFile {
    /// Opens `path` and reads its header line.
    pub fn open(path: &Path) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(LfLines::new(open(path)?));
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| fatal(path, 1, format!("cannot read the CSV header: {e}")))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let columns = header
            .iter()
            .enumerate()
            .map(|(i, h)| (h.to_ascii_lowercase(), i))
            .collect();
        Ok(CsvFile {
            path: path.to_path_buf(),
            reader,
            columns,
            header,
        })
    }

    /// The index of a column, if the header has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.get(&name.to_ascii_lowercase()).copied()
    }

    /// The index of a column the format needs: a fatal error naming the file when missing.
    pub fn require(&self, name: &str) -> Result<usize> {
        self.column(name).ok_or_else(|| {
            fatal(
                &self.path,
                1,
                format!(
                    "the CSV header has no {name:?} column (it has: {})",
                    self.header.join(", ")
                ),
            )
        })
    }

    /// The data rows, with their locations.
    pub fn rows(self) -> CsvRows {
        CsvRows {
            path: self.path,
            records: self.reader.into_records(),
            index: 0,
            last_line: 1,
        }
    }
}

/// A reader that turns CRLF line ends into LF: the `csv` crate numbers the
/// lines of CRLF files one short, and the line is what errors name.
pub struct LfLines<R> {
    inner: R,
    line: Vec<u8>,
    pos: usize,
}

impl<R: BufRead> LfLines<R> {
    pub fn new(inner: R) -> Self {
        LfLines {
            inner,
            line: Vec::new(),
            pos: 0,
        }
    }
}

impl<R: BufRead> Read for LfLines<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.line.len() {
            self.line.clear();
            self.pos = 0;
            self.inner.read_until(b'\n', &mut self.line)?;
            if self.line.ends_with(b"\r\n") {
                let n = self.line.len();
                self.line.remove(n - 2);
            }
        }
        let n = out.len().min(self.line.len() - self.pos);
        out[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn fatal(path: &Path, line: u64, message: String) -> Error {
    Error::Fatal {
        location: Location {
            file: path.to_path_buf(),
            line: Some(line),
            record: None,
        },
        message,
    }
}

/// Iterator over the data rows of a [`CsvFile`].
pub struct CsvRows {
    path: PathBuf,
    records: csv::StringRecordsIntoIter<LfLines<BufReader<File>>>,
    index: u64,
    last_line: u64,
}

impl Iterator for CsvRows {
    type Item = Result<CsvRow>;

    fn next(&mut self) -> Option<Self::Item> {
        let result = self.records.next()?;
        let line = match &result {
            Ok(r) => r.position().map(|p| p.line()),
            Err(e) => e.position().map(|p| p.line()),
        }
        .unwrap_or(self.last_line + 1);
        self.last_line = line;
        let location = Location {
            file: self.path.clone(),
            line: Some(line),
            record: Some(self.index),
        };
        self.index += 1;
        Some(match result {
            Ok(record) => Ok(CsvRow { location, record }),
            Err(e) => match e.into_kind() {
                csv::ErrorKind::Io(source) => Err(Error::Io {
                    path: self.path.clone(),
                    source,
                }),
                csv::ErrorKind::Utf8 { .. } => Err(Error::bad(
                    location,
                    "invalid UTF-8",
                    "the row is not valid UTF-8",
                )),
                other => Err(Error::bad(
                    location,
                    "invalid CSV",
                    format!("invalid CSV row: {other:?}"),
                )),
            },
        })
    }
}

/// One CSV data row and where it is.
pub struct CsvRow {
    pub location: Location,
    pub record: csv::StringRecord,
}

impl CsvRow {
    /// The trimmed text of column `idx` (named `name` in errors).
    pub fn text(&self, idx: usize, name: &str) -> Result<&str> {
        self.record.get(idx).map(str::trim).ok_or_else(|| {
            self.bad(
                "missing column",
                format!("the row has no {name:?} value (too few columns)"),
            )
        })
    }

    /// Column `idx` as a token count (a non-negative integer).
    pub fn count(&self, idx: usize, name: &str) -> Result<u32> {
        let text = self.text(idx, name)?;
        text.parse::<u32>().map_err(|_| {
            self.bad(
                "bad number",
                format!("{name:?} must be a non-negative integer, found {text:?}"),
            )
        })
    }

    /// A [`Error::BadRecord`] at this row.
    pub fn bad(&self, kind: &str, message: impl Into<String>) -> Error {
        Error::bad(self.location.clone(), kind, message)
    }
}

// ---------------------------------------------------------------- arrival order

/// A request read from a trace, its arrival not yet relative to the trace start.
#[derive(Debug, Clone)]
pub struct Timed {
    pub at: Nanos,
    pub row: Box<TraceRow>,
}

/// What one record of a timed trace became.
#[derive(Debug, Clone)]
pub enum Item {
    Request(Timed),
    Skipped(String),
}

/// The records of one file, in file order.
pub type Items = Box<dyn Iterator<Item = Result<Item>>>;

/// Opens one input file as its records.
pub type OpenFile = Box<dyn Fn(&Path) -> Result<Items>>;

/// Single-request sessions from several files, merged in arrival order.
///
/// A first pass over each file finds the earliest request and whether the
/// file is already in time order. Ordered files (the usual case) are then
/// streamed again and merged, holding one record per file; a file out of
/// order is read into memory and sorted (stable). Ties keep file order, then
/// the order of the inputs. Records without a time (skips, bad records) are
/// passed on as soon as they are read.
pub struct ArrivalOrder {
    streams: Vec<Items>,
    heads: Vec<Option<Result<Item>>>,
    origin: Nanos,
    block_size: Option<u32>,
}

struct Scan {
    earliest: Option<Nanos>,
    ordered: bool,
}

impl ArrivalOrder {
    pub fn open(files: &[PathBuf], open_file: OpenFile, block_size: Option<u32>) -> Result<Self> {
        let mut streams: Vec<Items> = Vec::with_capacity(files.len());
        let mut origin: Option<Nanos> = None;
        for file in files {
            let scan = scan(open_file(file)?)?;
            origin = match (origin, scan.earliest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if scan.ordered {
                streams.push(open_file(file)?);
            } else {
                streams.push(Box::new(sorted_in_memory(open_file(file)?)?.into_iter()));
            }
        }
        let heads = streams.iter_mut().map(|s| s.next()).collect();
        Ok(ArrivalOrder {
            streams,
            heads,
            origin: origin.unwrap_or(0),
            block_size,
        })
    }

    /// Takes stream `i`'s head and reads its next record.
    fn take(&mut self, i: usize) -> Option<Result<Item>> {
        let next = self.streams[i].next();
        std::mem::replace(&mut self.heads[i], next)
    }

    fn outcome(&self, item: Result<Item>) -> Result<Outcome> {
        match item? {
            Item::Skipped(reason) => Ok(Outcome::Skipped(reason)),
            Item::Request(Timed { at, mut row }) => {
                row.arrival_ms = Some(offset_ms(at, self.origin));
                Ok(Outcome::Session(vec![*row]))
            }
        }
    }
}

/// Earliest request time of a file and whether its requests are in time order.
/// Bad records are left for the second pass to report in place.
fn scan(items: Items) -> Result<Scan> {
    let mut earliest: Option<Nanos> = None;
    let mut last: Option<Nanos> = None;
    let mut ordered = true;
    for item in items {
        match item {
            Ok(Item::Request(t)) => {
                ordered &= last.is_none_or(|l| l <= t.at);
                last = Some(t.at);
                earliest = Some(earliest.map_or(t.at, |e| e.min(t.at)));
            }
            Ok(Item::Skipped(_)) | Err(Error::BadRecord { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Scan { earliest, ordered })
}

/// A file's records with its requests sorted by time (stable); records
/// without a time come first, in file order.
fn sorted_in_memory(items: Items) -> Result<Vec<Result<Item>>> {
    let mut untimed = Vec::new();
    let mut requests = Vec::new();
    for item in items {
        match item {
            Ok(Item::Request(t)) => requests.push(t),
            Err(e @ (Error::Io { .. } | Error::Fatal { .. })) => return Err(e),
            other => untimed.push(other),
        }
    }
    requests.sort_by_key(|t| t.at);
    untimed.extend(requests.into_iter().map(|t| Ok(Item::Request(t))));
    Ok(untimed)
}

impl SessionSource for ArrivalOrder {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        let untimed = self
            .heads
            .iter()
            .position(|h| matches!(h, Some(Err(_) | Ok(Item::Skipped(_)))));
        let pick = untimed.or_else(|| {
            self.heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| match h {
                    Some(Ok(Item::Request(t))) => Some((t.at, i)),
                    _ => None,
                })
                .min()
                .map(|(_, i)| i)
        })?;
        let item = self.take(pick)?;
        Some(self.outcome(item))
    }

    fn block_size(&self) -> Option<u32> {
        self.block_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn crlf_becomes_lf() {
        let mut text = String::new();
        let mut r = LfLines::new(std::io::BufReader::with_capacity(
            2,
            "a,b\r\nc\r\r\n\nd".as_bytes(),
        ));
        r.read_to_string(&mut text).expect("reads");
        assert_eq!(text, "a,b\nc\r\n\nd");
    }

    #[test]
    fn hash_ids_cover_the_prompt_block_by_block() {
        assert_eq!(hash_ids_mismatch(&[1, 2], 513, 512), None);
        assert_eq!(hash_ids_mismatch(&[1], 512, 512), None);
        assert_eq!(hash_ids_mismatch(&[], 0, 16), None);
        let why = hash_ids_mismatch(&[1, 2, 3], 512, 512).expect("one too many");
        assert!(why.starts_with("3 hash_ids for input_length 512"), "{why}");
        assert!(why.contains("ceil(512/512) = 1"), "{why}");
        assert!(hash_ids_mismatch(&[1], 17, 16).is_some());
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn azure_2023_keeps_seven_digits() {
        let a = parse_datetime("2023-11-16 18:15:46.6805900").expect("parses");
        let b = parse_datetime("2023-11-16 18:15:46.6805901").expect("parses");
        assert_eq!(b - a, 100);
        // 2023-11-16T18:15:46Z is 1700158546 s after the epoch.
        assert_eq!(a, 1_700_158_546 * NANOS_PER_SEC + 680_590_000);
    }

    #[test]
    fn offsets_and_missing_fraction() {
        let zero = parse_datetime("2024-05-10 00:00:00+00:00").expect("parses");
        let frac = parse_datetime("2024-05-10 00:00:00.009930+00:00").expect("parses");
        assert_eq!(frac - zero, 9_930_000);
        let plus2 = parse_datetime("2024-05-10T02:00:00+02:00").expect("parses");
        assert_eq!(plus2, zero);
        let minus = parse_datetime("2024-05-09 19:30:00-0430").expect("parses");
        assert_eq!(minus, zero);
        assert_eq!(parse_datetime("2024-05-10T00:00:00Z"), Ok(zero));
        assert_eq!(parse_datetime("2024-05-10 00:00:00"), Ok(zero));
    }

    #[test]
    fn rejects_malformed_date_times() {
        for bad in [
            "",
            "2024-05-10",
            "2024-13-01 00:00:00",
            "2023-02-29 00:00:00",
            "2024-05-10 24:00:00",
            "2024-05-10 00:00:00.",
            "2024-05-10 00:00:00+0",
            "2024-05-10 00:00:00 UTC",
            "1700000000",
            "2024-05-10 00:00:0٣",
            "9999-12-31 23:59:59",
            "0001-01-01 00:00:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn unit_conversion_rejects_negative_and_huge() {
        assert_eq!(units_to_nanos(1.5, 1_000_000_000), Some(1_500_000_000));
        assert_eq!(units_to_nanos(27.0, 1_000_000), Some(27 * MS));
        assert_eq!(units_to_nanos(-1.0, 1_000_000), None);
        assert_eq!(units_to_nanos(f64::NAN, 1_000_000), None);
        assert_eq!(units_to_nanos(1e20, 1_000_000_000), None);
        assert_eq!(
            units_to_nanos(1_700_000_010.123_456, 1_000_000_000),
            Some(1_700_000_010_123_456_001)
        );
    }

    fn request(at: Nanos, id: &str) -> Result<Item> {
        Ok(Item::Request(Timed {
            at,
            row: Box::new(TraceRow {
                session_id: id.into(),
                ..Default::default()
            }),
        }))
    }

    fn drain(mut order: ArrivalOrder) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        while let Some(outcome) = order.next_outcome() {
            if let Ok(Outcome::Session(rows)) = outcome {
                out.push((
                    rows[0].session_id.clone(),
                    rows[0].arrival_ms.unwrap_or(-1.0),
                ));
            }
        }
        out
    }

    #[test]
    fn merges_files_and_sorts_unordered_ones_stably() {
        let open_file: OpenFile = Box::new(|path: &Path| {
            let items: Vec<Result<Item>> = if path == Path::new("a") {
                vec![request(5 * MS, "a1"), request(7 * MS, "a2")]
            } else {
                vec![
                    request(9 * MS, "b1"),
                    Ok(Item::Skipped("x".into())),
                    request(5 * MS, "b2"),
                    request(5 * MS, "b3"),
                ]
            };
            Ok(Box::new(items.into_iter()) as Items)
        });
        let order = ArrivalOrder::open(&["a".into(), "b".into()], open_file, None).expect("opens");
        let got = drain(order);
        let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a1", "b2", "b3", "a2", "b1"]);
        assert_eq!(got[0].1, 0.0);
        assert_eq!(got[4].1, 4.0);
    }
}
