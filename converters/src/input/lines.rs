//! Line-by-line text input, with 1-based line numbers and CRLF handled.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Iterates over the lines of a text file: `(line_number, text)`.
pub struct TextLines<R> {
    path: PathBuf,
    reader: R,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> TextLines<R> {
    pub fn new(path: &Path, reader: R) -> Self {
        TextLines {
            path: path.to_path_buf(),
            reader,
            line: 0,
            buf: Vec::new(),
        }
    }
}

impl<R: BufRead> Iterator for TextLines<R> {
    type Item = Result<(u64, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                    self.buf.pop();
                }
                if self.line == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
                    self.buf.drain(..3);
                }
                match String::from_utf8(std::mem::take(&mut self.buf)) {
                    Ok(s) => Some(Ok((self.line, s))),
                    Err(_) => Some(Err(Error::bad(
                        crate::Location {
                            file: self.path.clone(),
                            line: Some(self.line),
                            record: None,
                        },
                        "invalid UTF-8",
                        "line is not valid UTF-8",
                    ))),
                }
            }
            Err(source) => Some(Err(Error::Io {
                path: self.path.clone(),
                source,
            })),
        }
    }
}
