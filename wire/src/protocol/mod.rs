//! Wire protocols on the audio path: Twilio Media Streams and the OpenAI Realtime API (GA).
//!
//! Every call receives one Twilio frame every 20 ms and forwards it to OpenAI, and every
//! audio delta from OpenAI goes back the other way; with hundreds of calls this is the
//! hottest code in the service. Three decisions keep it cheap:
//!
//! * **Borrowed one-pass parsing.** Each parser runs one serde pass into a flat struct of
//!   optional, borrowed fields and then matches on the event name. Identifiers and base64
//!   audio borrow from the input frame (`&'a str`); free text that may carry JSON escapes is
//!   a `Cow<'a, str>`, borrowed unless an escape forced a copy. No `serde_json::Value` is
//!   ever built for a frame.
//! * **Audio stays base64.** Twilio and OpenAI both speak base64 G.711 μ-law, so payloads are
//!   checked against the base64 alphabet ([`is_base64`]) and forwarded untouched, never
//!   decoded.
//! * **Writers append to a reusable `String`.** The hot writers take `&mut String` and append
//!   one complete JSON message; a caller that keeps one buffer per connection (clearing it
//!   before each message) allocates nothing once the buffer has grown to size. The socket
//!   actors then hand the text to their WebSocket as a `ByteString` made by [`frame_text`],
//!   which copies it into a reused `BytesMut` instead of a fresh allocation.
//!
//! Unknown event names are tolerated (`Unknown` / `Other` variants) because both vendors add
//! events over time; malformed JSON, missing required fields, oversized frames and non-base64
//! audio are a [`ProtocolError`], never a panic.

use std::fmt::Write as _;

pub mod json;
pub mod realtime;
pub mod twilio;

/// `json` as a WebSocket text payload, copied through `out` rather than into a fresh
/// allocation: `out`'s buffer comes back once the previous frame has been encoded and
/// dropped, so steady-state frames allocate nothing (`ByteString::from(&str)` allocates
/// one per frame). The UTF-8 check is a fast ASCII scan; it cannot fail for a `str`.
pub fn frame_text(out: &mut bytes::BytesMut, json: &str) -> bytestring::ByteString {
    out.extend_from_slice(json.as_bytes());
    bytestring::ByteString::try_from(out.split().freeze()).unwrap_or_default()
}

/// Longest serde error message kept in [`ProtocolError::Json`]; serde may quote the offending
/// value, which can be an entire audio payload.
const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// Why a wire frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is not valid JSON, or a field has the wrong JSON type (serde's message,
    /// shortened to a bounded length).
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A field the event needs is absent or null; the name is the JSON path, e.g. `media.payload`.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// The frame is longer than the protocol's size limit and was not parsed.
    #[error("frame too large: {actual} bytes (limit {limit})")]
    TooLarge {
        /// The limit in bytes for this kind of frame.
        limit: usize,
        /// The frame's length in bytes.
        actual: usize,
    },
    /// A field is present but its content is unusable, e.g. audio that is not base64.
    #[error("bad payload: {0}")]
    BadPayload(&'static str),
}

impl From<serde_json::Error> for ProtocolError {
    fn from(err: serde_json::Error) -> Self {
        let mut message = err.to_string();
        if message.len() > MAX_ERROR_MESSAGE_CHARS {
            let cut = message.floor_char_boundary(MAX_ERROR_MESSAGE_CHARS);
            message.truncate(cut);
            // Writing to a `String` cannot fail.
            let _ = write!(message, "… at line {} column {}", err.line(), err.column());
        }
        ProtocolError::Json(message)
    }
}

/// Returns `true` if `s` is canonical padded base64 (standard alphabet `A-Z a-z 0-9 + /`,
/// length a multiple of 4, at most two trailing `=`). The empty string is valid.
///
/// This is a byte scan, not a decode: it rejects anything that could break the JSON we
/// forward or that Twilio/OpenAI would refuse, at a cost of one pass over ~216 bytes per
/// 20 ms frame.
#[must_use]
pub fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body = bytes
        .strip_suffix(b"==")
        .or_else(|| bytes.strip_suffix(b"="))
        .unwrap_or(bytes);
    // Branch-free per byte and folded per chunk so that it vectorises (a per-byte `all`
    // cost ~11 instructions a byte, measured with callgrind).
    let ok = |b: u8| {
        (b.is_ascii_uppercase())
            | (b.is_ascii_lowercase())
            | (b.is_ascii_digit())
            | (b == b'+')
            | (b == b'/')
    };
    let mut chunks = body.chunks_exact(json::SCAN_CHUNK);
    let all = chunks
        .by_ref()
        .all(|chunk| chunk.iter().fold(true, |acc, &b| acc & ok(b)));
    all && chunks.remainder().iter().all(|&b| ok(b))
}

/// Rejects `text` before parsing if it is longer than `limit` bytes.
fn check_size(text: &str, limit: usize) -> Result<(), ProtocolError> {
    if text.len() > limit {
        return Err(ProtocolError::TooLarge {
            limit,
            actual: text.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_accepts_canonical_padded_text() {
        for ok in ["", "AAAA", "//8=", "/w==", "+/+/", "QUJDRA=="] {
            assert!(is_base64(ok), "{ok:?} should be valid");
        }
    }

    #[test]
    fn base64_rejects_other_text() {
        for bad in [
            "A", "AAA", "AA=A", "====", "A===", "AAA\"", "AA\\n", "AA A", "AAé=", "-_AA",
        ] {
            assert!(!is_base64(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn json_error_messages_are_bounded() {
        // Arrange: a type error whose message quotes a long string.
        let long = "x".repeat(10_000);
        let err = serde_json::from_str::<u64>(&format!("\"{long}\"")).unwrap_err();

        // Act
        let ProtocolError::Json(message) = ProtocolError::from(err) else {
            panic!("expected a Json error");
        };

        // Assert
        assert!(
            message.chars().count() < MAX_ERROR_MESSAGE_CHARS + 50,
            "{message}"
        );
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn size_check_reports_limit_and_actual() {
        assert_eq!(check_size("abcd", 4), Ok(()));
        assert_eq!(
            check_size("abcde", 4),
            Err(ProtocolError::TooLarge {
                limit: 4,
                actual: 5
            })
        );
    }
}
