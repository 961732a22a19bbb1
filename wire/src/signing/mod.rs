//! Request signing and verification for every party that calls callvisor.
//!
//! Twilio (webhooks and the media-stream token we mint for it), OpenAI (Standard Webhooks)
//! and Stripe each authenticate their requests with an HMAC. This module holds those
//! algorithms as pure functions: no I/O, no clock (callers pass `now`), no global state and
//! no panics, so handlers and the test stand-ins share one implementation and every branch
//! is unit-testable. Every comparison of a secret-derived value runs in constant time,
//! so a forger learns nothing from response timing.
//!
//! Verification works on the raw bytes exactly as received; parse JSON or forms only after
//! a function here has accepted them.

pub mod standard_webhooks;
pub mod stream_token;
pub mod stripe;
pub mod twilio;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Compares two byte strings in constant time with respect to their contents.
///
/// Only the lengths may leak (a length mismatch returns `false` at once), which is fine
/// for MACs and their encodings, whose length is public.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// HMAC-SHA1 of the concatenation of `parts` under `key`.
///
/// `None` only if the HMAC constructor rejects the key, which it never does (HMAC accepts
/// keys of any length); callers treat `None` as "does not verify" instead of panicking.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 20]> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`; `None` as for [`hmac_sha1`].
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// Lower-case hexadecimal encoding (Stripe signatures, Twilio's `bodySHA256`).
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            if let Some(&digit) = DIGITS.get(usize::from(nibble)) {
                out.push(char::from(digit));
            }
        }
    }
    out
}

/// Parses a non-negative decimal made only of ASCII digits (no sign, no spaces).
///
/// Stricter than `str::parse::<i64>`, which also accepts a leading `+`: the wire formats
/// here carry plain digits, and accepting exactly one spelling keeps tokens canonical.
pub(crate) fn parse_unsigned_decimal(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `true` when `a` and `b` are at most `tolerance_secs` apart; a negative tolerance counts as 0.
pub(crate) fn within_tolerance(a: i64, b: i64, tolerance_secs: i64) -> bool {
    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    a.abs_diff(b) <= tolerance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_plain_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac.map(|m| hex_lower(&m)).as_deref(),
            Some("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202_case_2() {
        let mac = hmac_sha1(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(
            mac.map(|m| hex_lower(&m)).as_deref(),
            Some("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
    }

    #[test]
    fn hmac_accepts_empty_and_oversized_keys() {
        assert!(hmac_sha256(b"", &[b"x"]).is_some());
        assert!(hmac_sha1(&[7u8; 1000], &[b"x"]).is_some());
    }

    #[test]
    fn hex_lower_encodes_every_nibble() {
        assert_eq!(hex_lower(&[]), "");
        assert_eq!(hex_lower(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn parse_unsigned_decimal_is_strict() {
        assert_eq!(parse_unsigned_decimal("0"), Some(0));
        assert_eq!(parse_unsigned_decimal("1614265330"), Some(1_614_265_330));
        assert_eq!(
            parse_unsigned_decimal("9223372036854775807"),
            Some(i64::MAX)
        );
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1e3",
            "9223372036854775808",
            "١٢",
        ] {
            assert_eq!(parse_unsigned_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn within_tolerance_is_symmetric_and_overflow_free() {
        assert!(within_tolerance(100, 400, 300));
        assert!(within_tolerance(400, 100, 300));
        assert!(!within_tolerance(100, 401, 300));
        assert!(!within_tolerance(i64::MIN, i64::MAX, 300));
        assert!(within_tolerance(5, 5, -10));
        assert!(!within_tolerance(5, 6, -10));
    }
}
