//! Splitting a JSON input into records without parsing it whole.
//!
//! Three layouts are recognised from the first bytes: a JSON array of
//! records, JSON Lines (one record per line), or a sequence of (possibly
//! pretty-printed) values, of which a single object is the common case.
//! Records are cut out by a byte scanner that tracks strings and nesting,
//! so memory stays bounded by the largest record, whatever the file's size.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::{Error, Location, Result};

/// How the records of a JSON file are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLayout {
    /// `[record, record, ...]`
    Array,
    /// one record per line
    Lines,
    /// values one after another; a single object is one such value
    Values,
}

/// The bytes of one record and where it came from.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub bytes: Vec<u8>,
    pub location: Location,
}

impl RawRecord {
    /// Parses the record, mapping errors to [`Error::BadRecord`] with the place.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.bytes).map_err(|e| self.json_error(e))
    }

    /// A [`Error::BadRecord`] for a serde_json error on this record.
    pub fn json_error(&self, e: serde_json::Error) -> Error {
        let kind = match e.classify() {
            serde_json::error::Category::Data => "wrong shape",
            _ => "invalid JSON",
        };
        let mut location = self.location.clone();
        if let (Some(line), true) = (location.line, e.line() > 0) {
            location.line = Some(line + e.line() as u64 - 1);
        }
        Error::bad(location, kind, format!("{kind}: {e}"))
    }

    /// A [`Error::BadRecord`] at this record.
    pub fn bad(&self, kind: &str, message: impl Into<String>) -> Error {
        Error::bad(self.location.clone(), kind, message)
    }
}

/// Iterator over the records of a JSON or JSONL file.
pub struct JsonRecords<R> {
    path: PathBuf,
    reader: R,
    layout: Option<JsonLayout>,
    /// 1-based line of the next unread byte.
    line: u64,
    index: u64,
    done: bool,
    scratch: Vec<u8>,
    /// Length of the last record, to size the next one's buffer (records
    /// of a file tend to be alike; growing a buffer by doubling copies it).
    last_len: usize,
}

impl<R: BufRead> JsonRecords<R> {
    pub fn new(path: &Path, reader: R) -> Self {
        JsonRecords {
            path: path.to_path_buf(),
            reader,
            layout: None,
            line: 1,
            index: 0,
            done: false,
            scratch: Vec::new(),
            last_len: 0,
        }
    }

    /// The layout, once the first record has been read.
    pub fn layout(&self) -> Option<JsonLayout> {
        self.layout
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn fatal(&self, message: impl Into<String>) -> Error {
        Error::Fatal {
            location: Location {
                file: self.path.clone(),
                line: Some(self.line),
                record: Some(self.index),
            },
            message: message.into(),
        }
    }

    /// Skips whitespace (and a UTF-8 BOM) and returns the next byte without consuming it.
    fn peek_non_ws(&mut self) -> Result<Option<u8>> {
        loop {
            let buf = self.reader.fill_buf().map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
            if buf.is_empty() {
                return Ok(None);
            }
            let mut i = 0;
            let mut newlines = 0;
            while i < buf.len() {
                match buf[i] {
                    b'\n' => newlines += 1,
                    b' ' | b'\t' | b'\r' => {}
                    0xEF if self.index == 0 && buf[i..].starts_with(b"\xEF\xBB\xBF") => {
                        i += 2;
                    }
                    _ => break,
                }
                i += 1;
            }
            let len = buf.len();
            let found = if i < len { Some(buf[i]) } else { None };
            self.reader.consume(i.min(len));
            self.line += newlines;
            if found.is_some() {
                return Ok(found);
            }
        }
    }

    fn consume_byte(&mut self) {
        self.reader.consume(1);
    }

    /// Reads one JSON value starting at the next byte into `out`; returns
    /// the number of raw newlines it spanned.
    fn read_value(&mut self, out: &mut Vec<u8>) -> Result<u64> {
        out.clear();
        let start_line = self.line;
        let mut depth: u32 = 0;
        let mut in_str = false;
        let mut started = false;
        let mut scalar = false;
        loop {
            let buf = self.reader.fill_buf().map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
            if buf.is_empty() {
                if scalar && !in_str {
                    return Ok(self.line - start_line);
                }
                return Err(Error::Fatal {
                    location: Location {
                        file: self.path.clone(),
                        line: Some(start_line),
                        record: Some(self.index),
                    },
                    message: "the file ends inside this record (truncated or unbalanced JSON)"
                        .into(),
                });
            }
            let mut i = 0;
            let mut end: Option<usize> = None;
            while i < buf.len() {
                if in_str {
                    // Only quotes end a string, and chat text has far fewer
                    // of them than escapes: look for the next quote and
                    // tell an escaped one by the backslashes before it.
                    match memchr::memchr(b'"', &buf[i..]) {
                        None => i = buf.len(),
                        Some(k) => {
                            i += k + 1;
                            if backslashes_before(buf, i - 1, out).is_multiple_of(2) {
                                in_str = false;
                                if depth == 0 {
                                    end = Some(i);
                                    break;
                                }
                            }
                        }
                    }
                    continue;
                }
                let b = buf[i];
                if !started {
                    started = true;
                    match b {
                        b'{' | b'[' => depth = 1,
                        b'"' => in_str = true,
                        _ => scalar = true,
                    }
                    i += 1;
                    continue;
                }
                if scalar {
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') {
                        end = Some(i);
                        break;
                    }
                    i += 1;
                    continue;
                }
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            let take = end.unwrap_or(buf.len());
            if out.is_empty() && out.capacity() < take {
                // Nothing to keep: a new buffer, not a `realloc` that
                // would copy the old one's stale bytes.
                *out = Vec::with_capacity(take + take / 4);
            }
            out.extend_from_slice(&buf[..take]);
            let newlines = memchr::memchr_iter(b'\n', &buf[..take]).count() as u64;
            self.reader.consume(take);
            self.line += newlines;
            if end.is_some() {
                return Ok(self.line - start_line);
            }
        }
    }

    /// An empty buffer for the next record.
    fn record_buffer(&self) -> Vec<u8> {
        Vec::with_capacity(self.last_len + self.last_len / 4)
    }

    fn record(&mut self, bytes: Vec<u8>, line: u64) -> RawRecord {
        self.last_len = bytes.len();
        let location = Location {
            file: self.path.clone(),
            line: Some(line),
            record: Some(self.index),
        };
        self.index += 1;
        RawRecord { bytes, location }
    }

    /// Reads the rest of the current line; true when it holds only whitespace.
    fn rest_of_line_blank(&mut self) -> Result<bool> {
        let mut rest = Vec::new();
        self.reader
            .read_until(b'\n', &mut rest)
            .map_err(|e| self.io(e))?;
        if rest.last() == Some(&b'\n') {
            self.line += 1;
        }
        Ok(rest.iter().all(|b| b.is_ascii_whitespace()))
    }

    fn next_line_record(&mut self) -> Result<Option<RawRecord>> {
        // Lines are read into a reused buffer; the record gets an exact copy.
        let mut line = std::mem::take(&mut self.scratch);
        let record = loop {
            line.clear();
            let n = match self.reader.read_until(b'\n', &mut line) {
                Ok(n) => n,
                Err(e) => break Err(self.io(e)),
            };
            if n == 0 {
                break Ok(None);
            }
            let line_no = self.line;
            self.line += 1;
            let trimmed = line.trim_ascii();
            if !trimmed.is_empty() {
                break Ok(Some((trimmed.to_vec(), line_no)));
            }
        };
        self.scratch = line;
        Ok(record?.map(|(bytes, line_no)| self.record(bytes, line_no)))
    }

    fn next_record(&mut self) -> Result<Option<RawRecord>> {
        match self.layout {
            None => {
                let Some(first) = self.peek_non_ws()? else {
                    return Ok(None);
                };
                if first == b'[' {
                    self.layout = Some(JsonLayout::Array);
                    self.consume_byte();
                    return self.next_array_element(true);
                }
                let line = self.line;
                let mut bytes = std::mem::take(&mut self.scratch);
                let spanned = self.read_value(&mut bytes)?;
                if spanned == 0 {
                    self.layout = Some(JsonLayout::Lines);
                    let blank = self.rest_of_line_blank()?;
                    let rec = self.record(bytes, line);
                    if !blank {
                        return Err(rec.bad(
                            "invalid JSON",
                            "unexpected characters after the record on its line",
                        ));
                    }
                    Ok(Some(rec))
                } else {
                    self.layout = Some(JsonLayout::Values);
                    Ok(Some(self.record(bytes, line)))
                }
            }
            Some(JsonLayout::Lines) => self.next_line_record(),
            Some(JsonLayout::Values) => {
                if self.peek_non_ws()?.is_none() {
                    return Ok(None);
                }
                let line = self.line;
                let mut bytes = self.record_buffer();
                self.read_value(&mut bytes)?;
                Ok(Some(self.record(bytes, line)))
            }
            Some(JsonLayout::Array) => self.next_array_element(false),
        }
    }

    fn next_array_element(&mut self, first: bool) -> Result<Option<RawRecord>> {
        if !first {
            match self.peek_non_ws()? {
                Some(b',') => self.consume_byte(),
                Some(b']') => {
                    self.consume_byte();
                    return self.end_of_array();
                }
                Some(b) => {
                    return Err(self.fatal(format!(
                        "expected ',' or ']' after record {}, found '{}'",
                        self.index.saturating_sub(1),
                        char::from(b).escape_default()
                    )));
                }
                None => return Err(self.fatal("the file ends inside the JSON array (missing ']')")),
            }
        }
        match self.peek_non_ws()? {
            // `[]`, or a trailing comma before `]`
            Some(b']') => {
                self.consume_byte();
                self.end_of_array()
            }
            Some(_) => {
                let line = self.line;
                let mut bytes = self.record_buffer();
                self.read_value(&mut bytes)?;
                Ok(Some(self.record(bytes, line)))
            }
            None => Err(self.fatal("the file ends inside the JSON array (missing ']')")),
        }
    }

    fn end_of_array(&mut self) -> Result<Option<RawRecord>> {
        match self.peek_non_ws()? {
            None => Ok(None),
            Some(_) => Err(self.fatal("unexpected data after the end of the JSON array")),
        }
    }
}

impl<R: BufRead> Iterator for JsonRecords<R> {
    type Item = Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                if !matches!(e, Error::BadRecord { .. }) {
                    self.done = true;
                }
                Some(Err(e))
            }
        }
    }
}

/// How many backslashes stand right before `buf[at]`; a run that reaches
/// the start of `buf` goes on at the end of `before` (the record's bytes read
/// from earlier buffers). An odd count escapes the byte at `at`.
pub(super) fn backslashes_before(buf: &[u8], at: usize, before: &[u8]) -> usize {
    let run = |bytes: &[u8]| bytes.iter().rev().take_while(|&&b| b == b'\\').count();
    let n = run(&buf[..at]);
    if n == at { n + run(before) } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &str) -> (Vec<Result<String>>, Option<JsonLayout>) {
        let mut it = JsonRecords::new(Path::new("t.json"), input.as_bytes());
        let mut out = Vec::new();
        for r in it.by_ref() {
            out.push(r.map(|r| String::from_utf8(r.bytes).expect("utf8")));
        }
        (out, it.layout())
    }

    fn ok(input: &str) -> Vec<String> {
        split(input)
            .0
            .into_iter()
            .map(|r| r.expect("record"))
            .collect()
    }

    #[test]
    fn array_of_objects_with_tricky_strings() {
        let recs = ok(r#" [ {"a": "x]}\"{"}, {"b": [1, {"c": "\\"}]} ,{}] "#);
        assert_eq!(
            recs,
            vec![r#"{"a": "x]}\"{"}"#, r#"{"b": [1, {"c": "\\"}]}"#, "{}"]
        );
    }

    #[test]
    fn jsonl_and_single_object() {
        let (recs, layout) = split("{\"a\":1}\r\n\n{\"b\":2}\n");
        assert_eq!(layout, Some(JsonLayout::Lines));
        assert_eq!(recs.len(), 2);
        let (recs, layout) = split("{\n \"a\": [1,\n 2]\n}\n");
        assert_eq!(layout, Some(JsonLayout::Values));
        assert_eq!(recs.len(), 1);
    }

    #[test]
    fn jsonl_bad_line_is_recoverable() {
        let (recs, _) = split("{\"a\":1}\n{\"a\":\n{\"b\":2}\n");
        assert_eq!(recs.len(), 3);
        assert!(recs[0].is_ok() && recs[2].is_ok());
    }

    #[test]
    fn truncated_array_is_fatal() {
        let (recs, _) = split("[{\"a\":1}, {\"b\": \"unterminated");
        assert!(recs[0].is_ok());
        assert!(matches!(recs[1], Err(Error::Fatal { .. })));
        assert_eq!(recs.len(), 2);
        let (recs, _) = split("[{\"a\":1} {\"b\":2}]");
        assert!(matches!(recs[1], Err(Error::Fatal { .. })));
    }

    #[test]
    fn line_numbers_point_at_records() {
        let mut it = JsonRecords::new(
            Path::new("t.json"),
            "[\n {\"a\":1},\n\n {\"b\":2}\n]".as_bytes(),
        );
        let a = it.next().expect("a").expect("ok");
        let b = it.next().expect("b").expect("ok");
        assert_eq!(a.location.line, Some(2));
        assert_eq!(b.location.line, Some(4));
        assert_eq!(b.location.record, Some(1));
        assert!(it.next().is_none());
    }

    #[test]
    fn empty_inputs() {
        assert!(ok("").is_empty());
        assert!(ok("  [ ]  ").is_empty());
        assert!(ok("\u{feff}[]").is_empty());
    }

    #[test]
    fn small_buffer_splits_everywhere() {
        let input = r#"[{"k": "a\\\"b"}, {"k": "c"}]"#;
        let reader = std::io::BufReader::with_capacity(1, input.as_bytes());
        let recs: Vec<_> = JsonRecords::new(Path::new("t"), reader)
            .map(|r| String::from_utf8(r.expect("ok").bytes).expect("utf8"))
            .collect();
        assert_eq!(recs, vec![r#"{"k": "a\\\"b"}"#, r#"{"k": "c"}"#]);
    }

    #[test]
    fn runs_of_backslashes_before_quotes_at_every_buffer_size() {
        // Texts with 0 to 7 backslashes before a quote, written by serde_json
        // (so 0 to 15 backslashes before escaped and closing quotes in the
        // JSON), split at every buffer size.
        let texts: Vec<String> = (0..8)
            .flat_map(|n| {
                let run = "\\".repeat(n);
                [
                    run.clone(),
                    format!("a{run}\"b"),
                    format!("\"{run}"),
                    format!("{run}\"\"{run}x"),
                ]
            })
            .collect();
        let records: Vec<String> = texts
            .iter()
            .map(|t| serde_json::json!({ "k": t, "v": [t] }).to_string())
            .collect();
        let input = format!("[{}]", records.join(",\n "));
        for capacity in 1..=19 {
            let reader = std::io::BufReader::with_capacity(capacity, input.as_bytes());
            let got: Vec<String> = JsonRecords::new(Path::new("t"), reader)
                .map(|r| String::from_utf8(r.expect("ok").bytes).expect("utf8"))
                .collect();
            assert_eq!(got, records, "buffer of {capacity} bytes");
        }
        // `x` + three backslashes, the quote at 4; a run that starts in the
        // bytes before the buffer; one that stops at another byte.
        let bs = b'\\';
        assert_eq!(backslashes_before(&[b'x', bs, bs, bs, b'"'], 4, b""), 3);
        assert_eq!(backslashes_before(&[bs, bs, b'"'], 2, &[b'x', bs, bs]), 4);
        assert_eq!(backslashes_before(b"\"", 0, &[bs, bs]), 2);
        assert_eq!(backslashes_before(b"a\"", 1, &[bs]), 0);
    }
}
