//! `trace convert prompts`: plain lists of prompts.
//!
//! Input: JSON Lines or a JSON array whose elements are `{"text": ...}` or
//! `{"prompt": ...}` objects or bare strings, or a text file with one prompt
//! per line. One single-turn session per prompt. See `docs/formats/prompts.md`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use traces::{Message, TraceRow};

use crate::input::{self, JsonRecords, RawRecord, TextLines, expand_inputs};
use crate::openai::record_id;
use crate::{Error, Outcome, Result, SessionSource, ids};

const SOURCE: &str = "prompts";

/// Options of `trace convert prompts`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {}

/// Opens the inputs (files, or folders of `.txt`/`.json`/`.jsonl` files) as a source of sessions.
pub fn open(inputs: &[PathBuf], _opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_inputs(inputs, &["txt", "json", "jsonl"])?;
    Ok(Box::new(PromptSource {
        files: files.into_iter(),
        current: None,
    }))
}

/// The file being read.
enum Reader {
    Json(JsonRecords<BufReader<File>>),
    Text(TextLines<BufReader<File>>),
}

struct PromptSource {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<Reader>,
}

impl SessionSource for PromptSource {
    fn next_outcome(&mut self) -> Option<Result<Outcome>> {
        loop {
            let next = match self.current.as_mut() {
                Some(Reader::Json(records)) => {
                    records.next().map(|r| r.and_then(|r| convert_json(&r)))
                }
                Some(Reader::Text(lines)) => next_line(lines),
                None => None,
            };
            if next.is_some() {
                return next;
            }
            let path = self.files.next()?;
            match open_reader(&path) {
                Ok(reader) => self.current = Some(reader),
                Err(e) => {
                    self.current = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Opens `path` as JSON or as text: `.txt` files, and files whose first
/// non-space byte cannot start a JSON record, are text.
fn open_reader(path: &Path) -> Result<Reader> {
    let is_txt = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"));
    if !is_txt && matches!(first_byte(path)?, Some(b'[' | b'{' | b'"')) {
        return Ok(Reader::Json(JsonRecords::new(path, input::open(path)?)));
    }
    Ok(Reader::Text(TextLines::new(path, input::open(path)?)))
}

/// The first byte of the file that is not whitespace or a UTF-8 byte order mark.
fn first_byte(path: &Path) -> Result<Option<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = input::open(path)?;
    let mut at_start = true;
    loop {
        let buf = reader.fill_buf().map_err(io)?;
        if buf.is_empty() {
            return Ok(None);
        }
        let mut skip = 0;
        if at_start && buf.starts_with(b"\xEF\xBB\xBF") {
            skip = 3;
        }
        at_start = false;
        if let Some(b) = buf[skip..].iter().find(|b| !b.is_ascii_whitespace()) {
            return Ok(Some(*b));
        }
        let len = buf.len();
        reader.consume(len);
    }
}

/// The next non-blank line's outcome.
fn next_line(lines: &mut TextLines<BufReader<File>>) -> Option<Result<Outcome>> {
    for line in lines {
        match line {
            Ok((_, text)) if text.trim().is_empty() => continue,
            Ok((_, text)) => return Some(Ok(prompt_outcome(text, None))),
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

/// One element of a JSON prompt list.
fn convert_json(rec: &RawRecord) -> Result<Outcome> {
    let value: Value = rec.parse()?;
    match value {
        Value::String(text) => Ok(prompt_outcome(text, None)),
        Value::Object(obj) => {
            let text = prompt_of(&obj).map_err(|m| rec.bad("wrong shape", m))?;
            Ok(prompt_outcome(text, record_id(&obj)))
        }
        _ => Err(rec.bad(
            "wrong shape",
            "a prompt must be a string or an object with a `text` or `prompt` key",
        )),
    }
}

/// The prompt of an object: its `prompt` key, else its `text` key (null counts as empty).
fn prompt_of(obj: &Map<String, Value>) -> Result<String, String> {
    for key in ["prompt", "text"] {
        match obj.get(key) {
            None => continue,
            Some(Value::Null) => return Ok(String::new()),
            Some(Value::String(s)) => return Ok(s.clone()),
            Some(_) => return Err(format!("`{key}` must be a string")),
        }
    }
    Err("the object has neither a `text` nor a `prompt` key".into())
}

/// A single-turn session for `text`; its id is `id` or derived from the text.
fn prompt_outcome(text: String, id: Option<String>) -> Outcome {
    if text.trim().is_empty() {
        return Outcome::Skipped("empty prompt".into());
    }
    let session_id = id.unwrap_or_else(|| ids::content_id(SOURCE, text.as_bytes()));
    Outcome::Session(vec![TraceRow {
        request_id: ids::request_id(&session_id, 0),
        session_id,
        turn: 0,
        messages: vec![Message::new("user", text)],
        source: SOURCE.to_string(),
        ..Default::default()
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;

    fn rec(json: &str) -> RawRecord {
        RawRecord {
            bytes: json.as_bytes().to_vec(),
            location: Location::file("t.jsonl"),
        }
    }

    #[test]
    fn objects_strings_and_ids() {
        let Outcome::Session(rows) =
            convert_json(&rec(r#"{"id":3,"prompt":"p","x":1}"#)).expect("ok")
        else {
            panic!("skipped")
        };
        assert_eq!(rows[0].request_id, "3#0");
        assert_eq!(rows[0].messages, vec![Message::new("user", "p")]);
        let Outcome::Session(a) = convert_json(&rec(r#""same""#)).expect("ok") else {
            panic!()
        };
        let Outcome::Session(b) = convert_json(&rec(r#"{"text":"same"}"#)).expect("ok") else {
            panic!()
        };
        assert_eq!(a[0].session_id, b[0].session_id);
        assert!(a[0].session_id.starts_with("prompts-"));
    }

    #[test]
    fn empty_is_skipped_and_wrong_shape_is_an_error() {
        for empty in [r#"{"text":"  "}"#, r#""""#, r#"{"prompt":null}"#] {
            assert!(matches!(
                convert_json(&rec(empty)).expect("ok"),
                Outcome::Skipped(_)
            ));
        }
        for bad in [r#"{"question":"q"}"#, r#"{"text":5}"#, "7", "[\"a\"]"] {
            assert!(convert_json(&rec(bad)).is_err(), "{bad}");
        }
    }
}
