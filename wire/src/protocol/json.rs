//! Small JSON helpers shared by the Twilio and Realtime codecs.
//!
//! Writing: the hot writers build messages by appending literal fragments and escaped
//! strings to a caller's reusable `String` rather than going through serde, so a message
//! costs a few `push_str` calls and no allocation once the buffer has capacity. Escaping has
//! a fast path: base64 audio and identifiers never need escaping, so one byte scan decides
//! that the string is copied as is.
//!
//! Reading: serde's `Cow<str>` only borrows for a field typed exactly `Cow<str>` marked
//! `#[serde(borrow)]`; inside an `Option` it always copies. [`Text`] is a string that
//! borrows whenever the input has no escapes, wherever it is nested, and [`LenientU64`]
//! accepts Twilio's numbers-as-strings as well as plain numbers.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Returns `true` for bytes that must be escaped inside a JSON string.
fn needs_escape(b: u8) -> bool {
    // Non-short-circuit `|`: branch-free, so the chunked scan below vectorises.
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Bytes per step of the branch-free scans: a few SIMD compares each.
pub(crate) const SCAN_CHUNK: usize = 32;

/// `true` if any byte of `bytes` needs escaping. A per-byte `any` stops at each byte and
/// does not vectorise; folding whole chunks does (a 216-byte audio payload went from
/// ~11 instructions per byte to under one, measured with callgrind).
fn any_needs_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(SCAN_CHUNK);
    let hit = chunks
        .by_ref()
        .any(|chunk| chunk.iter().fold(false, |acc, &b| acc | needs_escape(b)));
    hit || chunks.remainder().iter().any(|&b| needs_escape(b))
}

/// Appends `s` JSON-escaped, without surrounding quotes.
pub fn push_escaped(buf: &mut String, s: &str) {
    let bytes = s.as_bytes();
    if !any_needs_escape(bytes) {
        buf.push_str(s);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        // Escaped bytes are ASCII, so `start..i` always falls on char boundaries.
        buf.push_str(s.get(start..i).unwrap_or_default());
        match b {
            b'"' => buf.push_str("\\\""),
            b'\\' => buf.push_str("\\\\"),
            b'\n' => buf.push_str("\\n"),
            b'\r' => buf.push_str("\\r"),
            b'\t' => buf.push_str("\\t"),
            0x08 => buf.push_str("\\b"),
            0x0c => buf.push_str("\\f"),
            _ => {
                buf.push_str("\\u00");
                buf.push(hex_digit(b >> 4));
                buf.push(hex_digit(b & 0x0f));
            }
        }
        start = i + 1;
    }
    buf.push_str(s.get(start..).unwrap_or_default());
}

/// The lowercase hex digit for a nibble (`0..=15`).
fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

/// Appends `s` as a quoted, escaped JSON string.
pub fn push_string(buf: &mut String, s: &str) {
    buf.push('"');
    push_escaped(buf, s);
    buf.push('"');
}

/// Appends a decimal number (no allocation: `fmt` writes straight into the buffer).
pub fn push_u64(buf: &mut String, n: u64) {
    // Writing to a `String` cannot fail.
    let _ = write!(buf, "{n}");
}

/// Appends a number as a quoted JSON string, the way Twilio sends counters.
pub fn push_u64_string(buf: &mut String, n: u64) {
    buf.push('"');
    push_u64(buf, n);
    buf.push('"');
}

/// A JSON string that borrows from the input unless it contained escapes.
#[derive(Debug)]
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}

/// An unsigned integer sent either as a JSON number or as a decimal string.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LenientU64(pub(crate) u64);

impl<'de> Deserialize<'de> for LenientU64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct U64Visitor;

        impl Visitor<'_> for U64Visitor {
            type Value = LenientU64;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an unsigned integer or a decimal string")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LenientU64(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(LenientU64)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse::<u64>()
                    .map(LenientU64)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }

        deserializer.deserialize_any(U64Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut buf = String::new();
        push_string(&mut buf, s);
        buf
    }

    #[test]
    fn plain_strings_are_copied_verbatim() {
        assert_eq!(escaped("MZ0123abc+/=="), "\"MZ0123abc+/==\"");
        assert_eq!(escaped(""), "\"\"");
        assert_eq!(escaped("héllo 日本"), "\"héllo 日本\"");
    }

    #[test]
    fn special_characters_are_escaped_and_round_trip() {
        let nasty = "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}j</script>é\"";
        let json = escaped(nasty);
        assert!(
            json.contains("\\u0001") && json.contains("\\u001f"),
            "{json}"
        );
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, nasty);
    }

    #[test]
    fn every_control_and_ascii_byte_round_trips() {
        let all: String = (0u8..=0x7f).map(char::from).collect();
        let back: String = serde_json::from_str(&escaped(&all)).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        let mut buf = String::new();
        push_u64(&mut buf, 0);
        buf.push(',');
        push_u64_string(&mut buf, u64::MAX);
        assert_eq!(buf, "0,\"18446744073709551615\"");
    }

    #[test]
    fn text_borrows_without_escapes_and_copies_with_them() {
        let plain: Option<Text<'_>> = serde_json::from_str("\"abc\"").unwrap();
        assert!(matches!(plain, Some(Text(Cow::Borrowed("abc")))));
        let escaped: Option<Text<'_>> = serde_json::from_str("\"a\\nb\"").unwrap();
        assert!(matches!(escaped, Some(Text(Cow::Owned(ref s))) if s == "a\nb"));
        assert!(serde_json::from_str::<Text<'_>>("5").is_err());
    }

    #[test]
    fn lenient_u64_takes_numbers_and_decimal_strings() {
        assert_eq!(serde_json::from_str::<LenientU64>("\"42\"").unwrap().0, 42);
        assert_eq!(serde_json::from_str::<LenientU64>("42").unwrap().0, 42);
        for bad in ["\"-1\"", "-1", "1.5", "\"x\"", "\"\"", "null", "[]"] {
            assert!(serde_json::from_str::<LenientU64>(bad).is_err(), "{bad}");
        }
    }
}
