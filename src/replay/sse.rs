//! An incremental parser of Server-Sent Events, fed the response body in
//! whatever pieces the network delivers. Lines may be split across pieces,
//! end in `\n`, `\r\n` or `\r`; `:` comments and keep-alives are ignored;
//! several `data:` lines of one event are joined with `\n`.

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The previous piece ended with `\r`: a `\n` starting the next is part of it.
    pending_cr: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `on_event` with the data of every complete event.
    pub fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(&[u8])) {
        let mut i = 0;
        if self.pending_cr && bytes.first() == Some(&b'\n') {
            i = 1;
        }
        self.pending_cr = false;
        while i < bytes.len() {
            match memchr::memchr2(b'\n', b'\r', &bytes[i..]) {
                None => {
                    self.line.extend_from_slice(&bytes[i..]);
                    break;
                }
                Some(k) => {
                    self.line.extend_from_slice(&bytes[i..i + k]);
                    let end = i + k;
                    if bytes[end] == b'\r' {
                        if end + 1 < bytes.len() {
                            if bytes[end + 1] == b'\n' {
                                i = end + 2;
                            } else {
                                i = end + 1;
                            }
                        } else {
                            self.pending_cr = true;
                            i = end + 1;
                        }
                    } else {
                        i = end + 1;
                    }
                    self.end_line(&mut on_event);
                }
            }
        }
    }

    /// Ends the stream: an event without its closing blank line is still delivered.
    pub fn finish(&mut self, mut on_event: impl FnMut(&[u8])) {
        if !self.line.is_empty() {
            self.end_line(&mut on_event);
        }
        if self.has_data {
            on_event(&self.data);
            self.data.clear();
            self.has_data = false;
        }
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(&[u8])) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                on_event(&self.data);
                self.data.clear();
                self.has_data = false;
            }
            return;
        }
        if line[0] == b':' {
            self.line = line;
            self.line.clear();
            return;
        }
        let (field, value) = match memchr::memchr(b':', &line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        self.line = line;
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(pieces: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece, |d| out.push(String::from_utf8_lossy(d).into_owned()));
        }
        p.finish(|d| out.push(String::from_utf8_lossy(d).into_owned()));
        out
    }

    #[test]
    fn splits_anywhere_and_all_line_ends() {
        let whole = b"data: {\"a\":1}\n\n: keep-alive\n\ndata:{\"b\":2}\r\n\r\ndata: x\rdata: y\r\r\ndata: [DONE]\n\n";
        let expected = vec!["{\"a\":1}", "{\"b\":2}", "x\ny", "[DONE]"];
        assert_eq!(events(&[whole]), expected);
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(events(&[a, b]), expected, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(events(&bytes), expected);
    }

    #[test]
    fn other_fields_and_unterminated_event() {
        assert_eq!(
            events(&[b"event: message\nid: 3\nretry: 10\ndata: z"]),
            vec!["z"]
        );
        assert!(events(&[b"\n\n: only comments\n\n"]).is_empty());
    }
}
