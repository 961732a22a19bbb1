//! `Stripe-Signature`: proof that a billing webhook comes from Stripe.
//!
//! The header reads `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`; each `v1` is
//! `hex(HMAC-SHA256(endpoint_secret, "{t}.{raw body}"))`. Unlike Standard Webhooks, the
//! whole `whsec_…` string is the key, verbatim, and the MAC is hex, not base64. Several
//! `v1` entries appear while a secret is being rolled; any match passes. Subscription
//! state changes hinge on these events, so they are verified before any parsing.

use super::{constant_time_eq, hex_lower, hmac_sha256, parse_unsigned_decimal, within_tolerance};

/// Name of the HTTP header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Default allowed clock difference, as in Stripe's SDKs (5 minutes).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Why a `Stripe-Signature` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StripeSigError {
    /// The endpoint secret is empty (a configuration fault).
    #[error("stripe endpoint secret is empty")]
    BadSecret,
    /// No single valid `t=<unix seconds>` item in the header.
    #[error("stripe signature header has no usable timestamp")]
    MalformedHeader,
    /// The header carries no `v1=` signature.
    #[error("stripe signature header has no v1 signature")]
    NoV1Signature,
    /// No `v1` signature matches the payload.
    #[error("stripe signature does not match")]
    BadSignature,
    /// Authentic, but `t` is further from now than the tolerance (either direction).
    #[error("stripe signature timestamp is outside the tolerance window")]
    TimestampOutOfTolerance,
}

/// Verifies a `Stripe-Signature` header against the raw body; returns its timestamp.
///
/// Checks in Stripe's SDK order: secret, header shape, any `v1` equal to the expected
/// hex in constant time, then `|now_unix - t| <= tolerance_secs` (a negative tolerance
/// counts as 0; unlike Stripe's SDKs, timestamps from the future are bounded too).
/// Items are comma-separated `key=value`, surrounding spaces ignored, unknown keys
/// (such as `v0`) skipped.
///
/// # Errors
///
/// [`StripeSigError`] naming the first check that failed.
pub fn verify(
    endpoint_secret: &str,
    raw_body: &[u8],
    header: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<i64, StripeSigError> {
    if endpoint_secret.is_empty() {
        return Err(StripeSigError::BadSecret);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            // A second `t` is ambiguous: refuse rather than guess which one was signed.
            "t" if timestamp.is_some() => return Err(StripeSigError::MalformedHeader),
            "t" => {
                timestamp =
                    Some(parse_unsigned_decimal(value).ok_or(StripeSigError::MalformedHeader)?);
            }
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(StripeSigError::MalformedHeader)?;
    if signatures.is_empty() {
        return Err(StripeSigError::NoV1Signature);
    }

    let expected =
        signature_hex(endpoint_secret, raw_body, timestamp).ok_or(StripeSigError::BadSignature)?;
    let mut matched = false;
    for candidate in signatures {
        matched |= constant_time_eq(expected.as_bytes(), candidate.as_bytes());
    }
    if !matched {
        return Err(StripeSigError::BadSignature);
    }
    if !within_tolerance(now_unix, timestamp, tolerance_secs) {
        return Err(StripeSigError::TimestampOutOfTolerance);
    }
    Ok(timestamp)
}

/// A `Stripe-Signature` header value, `t={t},v1={hex}`, as Stripe would send it.
///
/// For tests and the Stripe stand-in. An empty secret still signs, but [`verify`]
/// refuses it.
#[must_use]
pub fn sign(endpoint_secret: &str, raw_body: &[u8], t: i64) -> String {
    let signature = signature_hex(endpoint_secret, raw_body, t).unwrap_or_default();
    format!("t={t},v1={signature}")
}

fn signature_hex(endpoint_secret: &str, raw_body: &[u8], t: i64) -> Option<String> {
    let t = t.to_string();
    hmac_sha256(endpoint_secret.as_bytes(), &[t.as_bytes(), b".", raw_body])
        .map(|mac| hex_lower(&mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const T: i64 = 1_492_774_577;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"customer.subscription.updated"}"#;

    #[test]
    fn sign_matches_an_independent_computation() {
        // Expected hex from Python: hmac.new(b"whsec_test_secret",
        // b'1492774577.{"id":"evt_1","type":"customer.subscription.updated"}', sha256).
        assert_eq!(
            sign(SECRET, BODY, T),
            "t=1492774577,v1=\
             8764f74300c739f564b335a44351e676caad774d403716df825cb21b7ef13f58"
        );
    }

    #[test]
    fn round_trip_returns_the_timestamp() {
        let header = sign(SECRET, BODY, T);
        assert_eq!(
            verify(SECRET, BODY, &header, T, DEFAULT_TOLERANCE_SECS),
            Ok(T)
        );
    }

    #[test]
    fn secret_is_used_verbatim_not_base64_decoded() {
        // "whsec_" + base64 would decode fine; Stripe still keys with the whole string.
        let secret = "whsec_c2VjcmV0";
        let header = sign(secret, BODY, T);
        let expected =
            hmac_sha256(secret.as_bytes(), &[b"1492774577.", BODY]).map(|m| hex_lower(&m));
        assert_eq!(Some(header), expected.map(|hex| format!("t={T},v1={hex}")));
    }

    #[test]
    fn accepts_any_v1_among_several_and_ignores_v0() {
        let good = sign(SECRET, BODY, T);
        let good_v1 = good
            .split_once(",v1=")
            .map(|(_, v1)| v1)
            .unwrap_or_default();
        let header = format!("t={T}, v1={}, v1={good_v1}, v0=deadbeef", "0".repeat(64));
        assert_eq!(verify(SECRET, BODY, &header, T, 300), Ok(T));
        let reordered = format!("v0=zz,v1={good_v1},t={T}");
        assert_eq!(verify(SECRET, BODY, &reordered, T, 300), Ok(T));
    }

    #[test]
    fn rejects_wrong_signatures() {
        let header = sign(SECRET, BODY, T);
        assert_eq!(
            verify("whsec_other", BODY, &header, T, 300),
            Err(StripeSigError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, b"{}", &header, T, 300),
            Err(StripeSigError::BadSignature)
        );
        // Same v1 replayed under another timestamp.
        let moved = header.replacen("t=1492774577", "t=1492774578", 1);
        assert_eq!(
            verify(SECRET, BODY, &moved, T, 300),
            Err(StripeSigError::BadSignature)
        );
        // Upper-case hex is not what Stripe sends.
        let hex = header
            .split_once(",v1=")
            .map(|(_, v1)| v1)
            .unwrap_or_default();
        let upper = format!("t={T},v1={}", hex.to_ascii_uppercase());
        assert_eq!(
            verify(SECRET, BODY, &upper, T, 300),
            Err(StripeSigError::BadSignature)
        );
        // Only v0 carries the right value.
        let v0_only = header.replacen("v1=", "v0=", 1) + ",v1=00";
        assert_eq!(
            verify(SECRET, BODY, &v0_only, T, 300),
            Err(StripeSigError::BadSignature)
        );
    }

    #[test]
    fn tolerance_is_checked_both_ways_after_the_signature() {
        let header = sign(SECRET, BODY, T);
        assert_eq!(verify(SECRET, BODY, &header, T + 300, 300), Ok(T));
        assert_eq!(verify(SECRET, BODY, &header, T - 300, 300), Ok(T));
        assert_eq!(
            verify(SECRET, BODY, &header, T + 301, 300),
            Err(StripeSigError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(SECRET, BODY, &header, T - 301, 300),
            Err(StripeSigError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(SECRET, BODY, &header, T + 1, -5),
            Err(StripeSigError::TimestampOutOfTolerance)
        );
        // A stale forgery reports the signature, not the clock.
        let stale_forgery = format!("t=1,v1={}", "0".repeat(64));
        assert_eq!(
            verify(SECRET, BODY, &stale_forgery, T, 300),
            Err(StripeSigError::BadSignature)
        );
    }

    #[test]
    fn malformed_headers_never_panic() {
        let v1 = format!("v1={}", "a".repeat(64));
        for header in [
            String::new(),
            ",,,".to_owned(),
            "garbage".to_owned(),
            v1.clone(),
            format!("t=,{v1}"),
            format!("t=abc,{v1}"),
            format!("t=-5,{v1}"),
            format!("t=+5,{v1}"),
            format!("t=99999999999999999999,{v1}"),
            format!("t=1,t=2,{v1}"),
            format!("t=ü,{v1}"),
        ] {
            assert_eq!(
                verify(SECRET, BODY, &header, T, 300),
                Err(StripeSigError::MalformedHeader),
                "{header:?}"
            );
        }
        for header in [
            format!("t={T}"),
            format!("t={T},v0=abc"),
            format!("t={T},v1"),
        ] {
            assert_eq!(
                verify(SECRET, BODY, &header, T, 300),
                Err(StripeSigError::NoV1Signature),
                "{header:?}"
            );
        }
        let huge = format!("t={T},{}", "v1=x,".repeat(50_000));
        assert_eq!(
            verify(SECRET, BODY, &huge, T, 300),
            Err(StripeSigError::BadSignature)
        );
    }

    #[test]
    fn empty_secret_is_refused() {
        let header = sign("", BODY, T);
        assert_eq!(
            verify("", BODY, &header, T, 300),
            Err(StripeSigError::BadSecret)
        );
    }

    #[test]
    fn round_trips_non_ascii_and_empty_bodies() {
        for body in ["{\"customer\":\"Zoë Ünïcode 電話\"}".as_bytes(), b""] {
            let header = sign(SECRET, body, T);
            assert_eq!(verify(SECRET, body, &header, T, 300), Ok(T));
            assert_eq!(
                verify(SECRET, b"tampered", &header, T, 300),
                Err(StripeSigError::BadSignature)
            );
        }
    }
}
