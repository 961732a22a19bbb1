//! Standard Webhooks signatures, as used by OpenAI's `realtime.call.incoming` webhook.
//!
//! The sender signs `"{webhook-id}.{webhook-timestamp}.{raw body}"` with HMAC-SHA256 and
//! sends `webhook-signature: v1,<base64>` (several space-separated entries while secrets
//! rotate). The timestamp bounds replay; `webhook-id` is also the idempotency key callers
//! should dedupe on. Key handling follows OpenAI's SDK: a `whsec_` secret is base64 after
//! the prefix, any other secret is used as raw bytes. Verify the raw body before parsing it.

use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::{constant_time_eq, hmac_sha256, parse_unsigned_decimal, within_tolerance};

/// Name of the header carrying the message id.
pub const ID_HEADER: &str = "webhook-id";
/// Name of the header carrying the unix-seconds timestamp.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Name of the header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Default allowed clock difference in either direction (the SDKs' 5 minutes).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Prefix marking a base64-encoded secret.
const SECRET_PREFIX: &str = "whsec_";

/// Lenient decoder for the secret only: dashboards show it with padding, but a copied
/// value may lose it. Signatures themselves are compared as exact strings.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a Standard Webhooks request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// `webhook-id`, `webhook-timestamp` or `webhook-signature` is absent or empty.
    #[error("webhook signature headers are missing")]
    MissingHeader,
    /// `webhook-timestamp` is not plain unix seconds.
    #[error("webhook timestamp is not a unix time")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance allows (either direction).
    #[error("webhook timestamp is outside the tolerance window")]
    TimestampOutOfTolerance,
    /// No `v1` entry matches the expected signature.
    #[error("webhook signature does not match")]
    BadSignature,
    /// The configured secret is empty, or `whsec_` followed by invalid base64.
    #[error("webhook secret is unusable")]
    BadSecret,
}

/// Verifies one webhook delivery.
///
/// `webhook_id`, `timestamp` and `signature_header` are the raw header values (pass `""`
/// for an absent header); `raw_body` is the body exactly as received. Checks, in order:
/// the secret ([`WebhookError::BadSecret`], a configuration fault), presence of the
/// headers, the timestamp's syntax and `|now_unix - timestamp| <= tolerance_secs`
/// (a negative tolerance counts as 0), then the signatures: any `v1,<base64>` entry equal
/// to the expected one in constant time passes; entries of other versions are ignored.
///
/// # Errors
///
/// [`WebhookError`] naming the first check that failed.
pub fn verify(
    secret: &str,
    webhook_id: &str,
    timestamp: &str,
    raw_body: &[u8],
    signature_header: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let key = decode_secret(secret)?;
    if webhook_id.is_empty() || timestamp.is_empty() || signature_header.trim().is_empty() {
        return Err(WebhookError::MissingHeader);
    }
    let sent_at = parse_unsigned_decimal(timestamp).ok_or(WebhookError::BadTimestamp)?;
    if !within_tolerance(now_unix, sent_at, tolerance_secs) {
        return Err(WebhookError::TimestampOutOfTolerance);
    }
    let expected = signature_b64(&key, webhook_id, timestamp, raw_body)?;
    let mut matched = false;
    for entry in signature_header.split(' ') {
        if let Some(("v1", candidate)) = entry.split_once(',') {
            matched |= constant_time_eq(expected.as_bytes(), candidate.as_bytes());
        }
    }
    if matched {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// The `webhook-signature` value (`v1,<base64>`) for a delivery sent at `timestamp`.
///
/// The matching `webhook-timestamp` header is `timestamp.to_string()`. Used by tests and
/// the OpenAI stand-in.
///
/// # Errors
///
/// [`WebhookError::BadSecret`] when the secret is empty or not valid base64 after `whsec_`.
pub fn sign(
    secret: &str,
    webhook_id: &str,
    timestamp: i64,
    raw_body: &[u8],
) -> Result<String, WebhookError> {
    let key = decode_secret(secret)?;
    let signature = signature_b64(&key, webhook_id, &timestamp.to_string(), raw_body)?;
    Ok(format!("v1,{signature}"))
}

/// HMAC key for `secret`: base64 after `whsec_`, raw bytes otherwise; never empty.
fn decode_secret(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let key = match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => SECRET_BASE64
            .decode(encoded)
            .map_err(|_| WebhookError::BadSecret)?,
        None => secret.as_bytes().to_vec(),
    };
    if key.is_empty() {
        return Err(WebhookError::BadSecret);
    }
    Ok(key)
}

fn signature_b64(
    key: &[u8],
    webhook_id: &str,
    timestamp: &str,
    raw_body: &[u8],
) -> Result<String, WebhookError> {
    let mac = hmac_sha256(
        key,
        &[
            webhook_id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            raw_body,
        ],
    )
    .ok_or(WebhookError::BadSecret)?;
    Ok(STANDARD.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference vector from the standard-webhooks repository's test suites.
    const REF_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const REF_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const REF_TS: i64 = 1_614_265_330;
    const REF_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const REF_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn verify_ref(header: &str) -> Result<(), WebhookError> {
        verify(
            REF_SECRET,
            REF_ID,
            "1614265330",
            REF_BODY,
            header,
            REF_TS,
            DEFAULT_TOLERANCE_SECS,
        )
    }

    #[test]
    fn reproduces_the_reference_vector() {
        assert_eq!(
            sign(REF_SECRET, REF_ID, REF_TS, REF_BODY),
            Ok(REF_SIG.to_owned())
        );
        assert_eq!(verify_ref(REF_SIG), Ok(()));
    }

    #[test]
    fn accepts_any_matching_v1_entry() {
        let bare = REF_SIG.strip_prefix("v1,").unwrap_or_default();
        let rotated = format!("v1,Zm9v v2,{bare} {REF_SIG}");
        assert_eq!(verify_ref(&rotated), Ok(()));
        assert_eq!(verify_ref(&format!("  {REF_SIG}  ")), Ok(()));
    }

    #[test]
    fn rejects_wrong_signatures() {
        assert_eq!(verify_ref("v1,Zm9v"), Err(WebhookError::BadSignature));
        // Right bytes under another version tag do not count.
        assert_eq!(
            verify_ref(&REF_SIG.replacen("v1,", "v2,", 1)),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify_ref(REF_SIG.trim_end_matches('=')),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(verify_ref("garbage"), Err(WebhookError::BadSignature));
        let other_body = verify(
            REF_SECRET,
            REF_ID,
            "1614265330",
            br#"{"test": 2432232315}"#,
            REF_SIG,
            REF_TS,
            DEFAULT_TOLERANCE_SECS,
        );
        assert_eq!(other_body, Err(WebhookError::BadSignature));
        let other_id = verify(
            REF_SECRET,
            "msg_other",
            "1614265330",
            REF_BODY,
            REF_SIG,
            REF_TS,
            DEFAULT_TOLERANCE_SECS,
        );
        assert_eq!(other_id, Err(WebhookError::BadSignature));
    }

    #[test]
    fn missing_headers_are_reported() {
        for (id, ts, sig) in [
            ("", "1614265330", REF_SIG),
            (REF_ID, "", REF_SIG),
            (REF_ID, "1614265330", ""),
            (REF_ID, "1614265330", "   "),
        ] {
            assert_eq!(
                verify(REF_SECRET, id, ts, REF_BODY, sig, REF_TS, 300),
                Err(WebhookError::MissingHeader)
            );
        }
    }

    #[test]
    fn timestamp_must_be_unix_seconds_within_tolerance() {
        let at = |ts: &str, now: i64| verify(REF_SECRET, REF_ID, ts, REF_BODY, REF_SIG, now, 300);
        for bad in [
            "abc",
            "+1614265330",
            " 1614265330",
            "1614265330.5",
            "99999999999999999999",
        ] {
            assert_eq!(at(bad, REF_TS), Err(WebhookError::BadTimestamp), "{bad:?}");
        }
        assert_eq!(at("1614265330", REF_TS + 300), Ok(()));
        assert_eq!(at("1614265330", REF_TS - 300), Ok(()));
        assert_eq!(
            at("1614265330", REF_TS + 301),
            Err(WebhookError::TimestampOutOfTolerance)
        );
        assert_eq!(
            at("1614265330", REF_TS - 301),
            Err(WebhookError::TimestampOutOfTolerance)
        );
        assert_eq!(
            at("1614265330", i64::MIN),
            Err(WebhookError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn secret_handling_follows_openai() {
        for bad in ["", "whsec_", "whsec_not base64!"] {
            assert_eq!(
                sign(bad, REF_ID, REF_TS, REF_BODY),
                Err(WebhookError::BadSecret)
            );
            assert_eq!(
                verify(bad, REF_ID, "1614265330", REF_BODY, REF_SIG, REF_TS, 300),
                Err(WebhookError::BadSecret)
            );
        }
        // Missing padding is tolerated in the secret ("secrets" is "c2VjcmV0cw==").
        assert_eq!(
            sign("whsec_c2VjcmV0cw", REF_ID, REF_TS, REF_BODY),
            sign("whsec_c2VjcmV0cw==", REF_ID, REF_TS, REF_BODY)
        );
        assert!(sign("whsec_c2VjcmV0cw", REF_ID, REF_TS, REF_BODY).is_ok());
        // Without the prefix the secret is raw bytes, so the same text signs differently.
        let raw = sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", REF_ID, REF_TS, REF_BODY);
        assert!(raw.is_ok());
        assert_ne!(raw, Ok(REF_SIG.to_owned()));
    }

    #[test]
    fn round_trips_non_ascii_and_empty_bodies() {
        for (secret, body) in [
            ("whsec_c2VjcmV0", "{\"name\":\"Zoë 電話 ☎\"}".as_bytes()),
            ("plain-secret", b""),
        ] {
            let header = sign(secret, "wh_1", 1_750_287_078, body);
            let header = header.unwrap_or_default();
            assert_eq!(
                verify(
                    secret,
                    "wh_1",
                    "1750287078",
                    body,
                    &header,
                    1_750_287_078,
                    300
                ),
                Ok(())
            );
            assert_eq!(
                verify(
                    secret,
                    "wh_1",
                    "1750287078",
                    b"x",
                    &header,
                    1_750_287_078,
                    300
                ),
                Err(WebhookError::BadSignature)
            );
        }
    }
}
