//! Stable identifiers for records that carry none.

use sha2::{Digest, Sha256};

/// A stable id derived from a record's bytes: the same record gives the same
/// id in every run and on every machine.
pub fn content_id(prefix: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(prefix.len() + 17);
    hex.push_str(prefix);
    if !prefix.is_empty() {
        hex.push('-');
    }
    for b in &digest[..8] {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The request id of a session's turn.
pub fn request_id(session_id: &str, turn: u32) -> String {
    format!("{session_id}#{turn}")
}
