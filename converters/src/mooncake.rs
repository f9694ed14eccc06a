//! `trace convert mooncake`: Mooncake request traces.
//!
//! Input: JSON Lines (or a JSON array) of
//! `{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}`,
//! `hash_ids` naming 512-token prompt blocks. Each record is one
//! single-turn, token-only session `<file stem>-<line>`, written in arrival
//! order. See `docs/formats/mooncake.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use traces::TraceRow;

use crate::input::{JsonRecords, RawRecord, expand_inputs, open as open_file};
use crate::timestamp::{
    ArrivalOrder, EMPTY_PROMPT, Item, Items, OpenFile, Timed, hash_ids_mismatch, line_id,
    units_to_nanos,
};
use crate::{Result, SessionSource, ids};

/// Tokens per `hash_ids` block in Mooncake traces.
pub const BLOCK_SIZE: u32 = 512;

/// Options of `trace convert mooncake`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct Options {
    /// Keep records whose `hash_ids` do not hold exactly
    /// ceil(input_length / 512) ids, instead of treating them as bad records.
    #[arg(long)]
    pub allow_hash_mismatch: bool,
}

/// Opens the inputs as a source of sessions, in arrival order.
pub fn open(inputs: &[PathBuf], opts: &Options) -> Result<Box<dyn SessionSource>> {
    let files = expand_inputs(inputs, &["jsonl", "json"])?;
    let allow_mismatch = opts.allow_hash_mismatch;
    let open_one: OpenFile = Box::new(move |path: &Path| -> Result<Items> {
        let path_buf = path.to_path_buf();
        let records = JsonRecords::new(path, open_file(path)?);
        Ok(Box::new(records.map(move |rec| {
            convert_record(&rec?, &path_buf, allow_mismatch)
        })))
    });
    Ok(Box::new(ArrivalOrder::open(
        &files,
        open_one,
        Some(BLOCK_SIZE),
    )?))
}

#[derive(Deserialize)]
struct Record {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Option<Vec<u64>>,
}

/// One Mooncake record as a request, or the reason it has nothing to send.
fn convert_record(rec: &RawRecord, path: &Path, allow_mismatch: bool) -> Result<Item> {
    let r: Record = rec.parse()?;
    let at = units_to_nanos(r.timestamp, 1_000_000).ok_or_else(|| {
        rec.bad(
            "bad timestamp",
            format!(
                "`timestamp` must be non-negative milliseconds, found {}",
                r.timestamp
            ),
        )
    })?;
    if let Some(ids) = &r.hash_ids
        && !allow_mismatch
        && let Some(why) = hash_ids_mismatch(ids, r.input_length, BLOCK_SIZE)
    {
        return Err(rec.bad("hash_ids length mismatch", why));
    }
    if r.input_length == 0 {
        return Ok(Item::Skipped(EMPTY_PROMPT.into()));
    }
    let session_id = line_id(path, rec.location.line.unwrap_or(0));
    Ok(Item::Request(Timed {
        at,
        row: Box::new(TraceRow {
            request_id: ids::request_id(&session_id, 0),
            session_id,
            turn: 0,
            input_tokens: Some(r.input_length),
            output_tokens: Some(r.output_length),
            hash_ids: r.hash_ids,
            source: "mooncake".into(),
            ..Default::default()
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Location};

    fn rec(json: &str) -> RawRecord {
        RawRecord {
            bytes: json.as_bytes().to_vec(),
            location: Location {
                file: "dir/conv.jsonl".into(),
                line: Some(12),
                record: Some(11),
            },
        }
    }

    fn convert(json: &str) -> Result<Item> {
        convert_record(&rec(json), Path::new("dir/conv.jsonl"), false)
    }

    #[test]
    fn record_becomes_a_token_only_request() {
        let item = convert(
            r#"{"timestamp": 27, "input_length": 513, "output_length": 9, "hash_ids": [0, 7]}"#,
        )
        .expect("converts");
        let Item::Request(t) = item else {
            panic!("skipped")
        };
        assert_eq!(t.at, 27_000_000);
        assert_eq!(t.row.session_id, "conv-000012");
        assert_eq!(t.row.request_id, "conv-000012#0");
        assert_eq!(t.row.input_tokens, Some(513));
        assert_eq!(t.row.output_tokens, Some(9));
        assert_eq!(t.row.hash_ids, Some(vec![0, 7]));
        assert!(t.row.messages.is_empty());
    }

    #[test]
    fn hash_ids_must_cover_the_prompt() {
        let json =
            r#"{"timestamp": 0, "input_length": 1025, "output_length": 1, "hash_ids": [1, 2]}"#;
        let err = convert(json).expect_err("mismatch");
        assert!(
            matches!(&err, Error::BadRecord { kind, .. } if kind == "hash_ids length mismatch")
        );
        assert!(err.to_string().contains("dir/conv.jsonl:12"), "{err}");
        let kept = convert_record(&rec(json), Path::new("dir/conv.jsonl"), true).expect("kept");
        assert!(matches!(kept, Item::Request(_)));
    }

    #[test]
    fn wrong_shapes_are_bad_records() {
        for json in [
            r#"{"timestamp": 0, "input_length": -5, "output_length": 1, "hash_ids": []}"#,
            r#"{"timestamp": 0, "input_length": "12", "output_length": 1}"#,
            r#"{"timestamp": -3, "input_length": 1, "output_length": 1, "hash_ids": [1]}"#,
            r#"{"input_length": 1, "output_length": 1}"#,
            r#"[1, 2]"#,
        ] {
            assert!(
                matches!(convert(json), Err(Error::BadRecord { .. })),
                "{json}"
            );
        }
    }

    #[test]
    fn empty_prompt_is_skipped() {
        let item =
            convert(r#"{"timestamp": 0, "input_length": 0, "output_length": 4, "hash_ids": []}"#)
                .expect("converts");
        assert!(matches!(item, Item::Skipped(r) if r == EMPTY_PROMPT));
    }
}
