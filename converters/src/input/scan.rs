//! A strict, minimal JSON reader for the converters' fastest paths.
//!
//! It reads objects, arrays, strings and `null` by hand, which on the
//! string-heavy records of chat datasets costs about a third less than
//! serde_json (bench/README.md): the record is checked to be UTF-8 once
//! (SIMD), string ends and escapes are found eight bytes at a time, and a
//! string without escapes is borrowed, not copied.
//!
//! It accepts only what JSON allows, but not all of it: numbers, `true` and
//! `false` are not read at all. Every method returns `None` both for
//! invalid JSON and for what it does not read, so a caller gives up and
//! hands the record to its serde_json path, which either reads it or says
//! what is wrong with it. A result from here must therefore equal what the
//! serde_json path gives for the same bytes; the converters' tests check
//! that on their samples.

use std::borrow::Cow;

use super::json::backslashes_before;

/// A position in one record's text.
pub struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    /// A reader at the start of `bytes`, or `None` when they are not UTF-8.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        let text = simdutf8::basic::from_utf8(bytes).ok()?;
        Some(Scan { text, pos: 0 })
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips JSON whitespace and returns the next byte, not consuming it.
    pub fn peek(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.pos) {
            self.pos += 1;
        }
        bytes.get(self.pos).copied()
    }

    /// Consumes `byte` if it comes next (after whitespace).
    pub fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.pos += usize::from(next);
        next
    }

    /// Consumes the literal `null` if it comes next.
    pub fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes()[self.pos..].starts_with(b"null") {
            self.pos += 4;
            return true;
        }
        false
    }

    /// True when only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Reads the string that comes next, unescaped; borrowed when it holds
    /// no escapes.
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        if !self.eat(b'"') {
            return None;
        }
        let text = self.text;
        let bytes = text.as_bytes();
        let start = self.pos;
        let mut i = next_special(bytes, start)?;
        if bytes[i] == b'"' {
            self.pos = i + 1;
            return text.get(start..i).map(Cow::Borrowed);
        }
        // Escaped: decoded straight into a string sized by the raw text up
        // to the closing quote (escapes only shrink it), so each byte is
        // copied once and the buffer never grows.
        let mut out = String::with_capacity(closing_quote(bytes, i)? - start);
        let mut run = start;
        loop {
            match bytes[i] {
                b'"' => {
                    out.push_str(text.get(run..i)?);
                    self.pos = i + 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    out.push_str(text.get(run..i)?);
                    i = unescape(bytes, i + 1, &mut out)?;
                    run = i;
                }
                _ => return None, // a control character, not allowed raw
            }
            i = next_special(bytes, i)?;
        }
    }
}

/// The index of the quote that closes the string in which `from` lies: the
/// first quote at or after `from` with an even run of backslashes before
/// it. Only a size hint; the string is still checked as it is decoded.
fn closing_quote(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let quote = at + memchr::memchr(b'"', bytes.get(at..)?)?;
        if backslashes_before(bytes, quote, &[]).is_multiple_of(2) {
            return Some(quote);
        }
        at = quote + 1;
    }
}

/// The index of the first quote, backslash or control character at or
/// after `i`.
///
/// Eight bytes at a time: chat text has an escape every few dozen bytes,
/// too often for a `memchr` call per escape to pay off. In each word, a
/// byte's high bit is set in `(x - 0x01..) & !x` when the byte of `x` is
/// zero and in `(w - 0x20..) & !w` when the byte of `w` is below 0x20; a
/// borrow can only set bits above a true match, so the lowest set bit is
/// exact.
fn next_special(bytes: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTE: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASH: u64 = u64::from_ne_bytes([b'\\'; 8]);
    const SPACE: u64 = u64::from_ne_bytes([0x20; 8]);
    while let Some(word) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let q = w ^ QUOTE;
        let b = w ^ BACKSLASH;
        let found = ((q.wrapping_sub(ONES) & !q)
            | (b.wrapping_sub(ONES) & !b)
            | (w.wrapping_sub(SPACE) & !w))
            & HIGH;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = bytes.get(i..)?;
    rest.iter()
        .position(|&b| matches!(b, b'"' | b'\\' | 0..=0x1f))
        .map(|k| i + k)
}

/// Decodes the escape whose letter is at `at` into `out`; returns the index
/// after it.
fn unescape(bytes: &[u8], at: usize, out: &mut String) -> Option<usize> {
    let c = match *bytes.get(at)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let first = hex4(bytes, at + 1)?;
            let (c, next) = match first {
                0xD800..=0xDBFF => {
                    // A leading surrogate must be followed by a trailing one.
                    if bytes.get(at + 5..at + 7)? != b"\\u" {
                        return None;
                    }
                    let second = hex4(bytes, at + 7)?;
                    if !(0xDC00..=0xDFFF).contains(&second) {
                        return None;
                    }
                    let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                    (char::from_u32(code)?, at + 11)
                }
                0xDC00..=0xDFFF => return None,
                _ => (char::from_u32(first)?, at + 5),
            };
            out.push(c);
            return Some(next);
        }
        _ => return None,
    };
    out.push(c);
    Some(at + 1)
}

/// The four hex digits at `at` as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..at + 4)?.iter().try_fold(0u32, |n, &b| {
        let digit = (b as char).to_digit(16)?;
        Some(n * 16 + digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The string at the start of `json`, as the scanner reads it.
    fn scan(json: &str) -> Option<String> {
        Scan::new(json.as_bytes())?.string().map(Cow::into_owned)
    }

    #[test]
    fn strings_decode_like_serde_json() {
        let cases = [
            r#""plain""#,
            r#""""#,
            r#""tab\tnew\nline\r \"q\" \\ \/ \b \f""#,
            r#""caf\u00e9 \u6570\u636e \ud83d\ude80 \u0000""#,
            "\"raw UTF-8: café 数据 🚀\"",
            r#""\\\\""#,
            r#""end\\""#,
            r#""runs \\\" and \\\\" "#,
            r#""\n""#,
        ];
        for json in cases {
            let want: String = serde_json::from_str(json).expect(json);
            assert_eq!(scan(json).as_deref(), Some(want.as_str()), "{json}");
        }
    }

    #[test]
    fn strings_serde_json_rejects_are_refused() {
        let cases = [
            "\"raw\ttab\"",
            "\"raw\nnewline\"",
            r#""bad \x escape""#,
            r#""short \u12""#,
            r#""not hex \u12g4""#,
            r#""lone \ud83d leading""#,
            r#""lone \ude80 trailing""#,
            r#""pair \ud83d\u0041 broken""#,
            r#""unterminated"#,
            r#""ends in escape\"#,
        ];
        for json in cases {
            assert!(
                serde_json::from_str::<String>(json).is_err(),
                "serde_json accepts {json}"
            );
            assert_eq!(scan(json), None, "{json}");
        }
        assert!(Scan::new(b"\"\xff\"").is_none(), "not UTF-8");
    }

    #[test]
    fn next_special_finds_exactly_the_first() {
        // Every byte value at every offset of a buffer longer than a word,
        // after a filler that is never special, with or without a second
        // special byte later on.
        for value in 0..=255u8 {
            for at in 0..20 {
                for later in [None, Some(b'"'), Some(0x01)] {
                    let mut buf = vec![b'a'; 24];
                    buf[at] = value;
                    if let Some(l) = later {
                        buf[22] = l;
                    }
                    let naive = buf
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
                    assert_eq!(next_special(&buf, 0), naive, "{value:#x} at {at}");
                }
            }
        }
        assert_eq!(next_special(b"abc", 3), None);
        assert_eq!(next_special(b"abc", 4), None);
    }

    #[test]
    fn borrowed_without_escapes() {
        let json = br#"  "no escapes"  "#;
        let mut s = Scan::new(json).expect("UTF-8");
        assert!(matches!(s.string(), Some(Cow::Borrowed("no escapes"))));
        assert!(s.at_end());
    }

    #[test]
    fn punctuation_and_null() {
        let mut s = Scan::new(b" { \"k\" : null , \"n\": nul }").expect("UTF-8");
        assert!(s.eat(b'{'));
        assert_eq!(s.string().as_deref(), Some("k"));
        assert!(s.eat(b':'));
        assert!(s.null());
        assert!(s.eat(b','));
        assert_eq!(s.string().as_deref(), Some("n"));
        assert!(s.eat(b':'));
        assert!(!s.null(), "`nul` is not null");
        assert!(!s.at_end());
    }
}
