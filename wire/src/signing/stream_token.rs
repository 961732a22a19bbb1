//! The media-stream token: lets any callvisor instance accept Twilio's media WebSocket.
//!
//! When callvisor answers a call with `<Connect><Stream>`, it puts this token in a
//! `<Parameter>`. Twilio echoes it in the stream's `start` message, next to the `CallSid`
//! and our tenant parameter. Whichever instance receives the WebSocket checks the token
//! with the shared server secret alone: no shared memory, no database round-trip.
//!
//! Format: `v1.<expires_at>.<mac>`, where `expires_at` is unix seconds in plain decimal and
//! `mac` is base64url without padding of HMAC-SHA256 over
//! `"callvisor-stream-token\0v1\0" || len(call_sid) || call_sid || len(tenant_id) || tenant_id || expires_at`
//! (lengths as 8-byte big-endian, `expires_at` as 8-byte big-endian two's complement). The
//! length prefixes make the input unambiguous for any field contents, and the label keeps
//! these MACs from ever colliding with another use of the same secret. The token holds only
//! ASCII letters, digits, `-`, `_` and `.`: safe in URLs and XML attributes unescaped.
//!
//! Expiry: the token is valid while `now < expires_at`; at `now == expires_at` it is expired.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{constant_time_eq, hmac_sha256, parse_unsigned_decimal};

/// Version tag, first field of every token.
const VERSION: &str = "v1";

/// Domain-separation label at the start of the MAC input.
const MAC_LABEL: &[u8] = b"callvisor-stream-token\0v1\0";

/// Longest token [`verify`] will look at; real ones are about 60 bytes.
pub const MAX_TOKEN_LEN: usize = 128;

/// What a stream token vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamClaims {
    /// Twilio `CallSid` the stream belongs to (`CA…`).
    pub call_sid: String,
    /// Tenant that owns the call.
    pub tenant_id: String,
    /// Unix seconds; the token is rejected from this second on. Must not be negative.
    pub expires_at: i64,
}

/// Why a stream token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a `v1.<digits>.<base64url>` token of the right size.
    #[error("stream token is malformed")]
    Malformed,
    /// Well-formed, but not minted by us for this call and tenant.
    #[error("stream token signature does not match")]
    BadSignature,
    /// Authentic, but `now >= expires_at`.
    #[error("stream token has expired")]
    Expired,
}

/// Mints the token for `claims`.
///
/// A negative `expires_at` yields a token that never verifies (it reads as malformed).
#[must_use]
pub fn issue(secret: &[u8], claims: &StreamClaims) -> String {
    let mac = token_mac(
        secret,
        &claims.call_sid,
        &claims.tenant_id,
        claims.expires_at,
    )
    .map(|mac| URL_SAFE_NO_PAD.encode(mac))
    .unwrap_or_default();
    format!("{VERSION}.{}.{mac}", claims.expires_at)
}

/// Checks `token` against the `CallSid` and tenant the stream presented, at time `now_unix`.
///
/// Order of checks: shape ([`TokenError::Malformed`]), then MAC in constant time
/// ([`TokenError::BadSignature`]), then expiry ([`TokenError::Expired`]), so only authentic
/// tokens can be reported as expired. Returns the claims the token proved.
///
/// # Errors
///
/// [`TokenError`] saying which of those checks failed.
pub fn verify(
    secret: &[u8],
    token: &str,
    call_sid: &str,
    tenant_id: &str,
    now_unix: i64,
) -> Result<StreamClaims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut fields = token.split('.');
    let (Some(version), Some(expires), Some(mac_b64), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(TokenError::Malformed);
    };
    if version != VERSION {
        return Err(TokenError::Malformed);
    }
    let expires_at = parse_unsigned_decimal(expires).ok_or(TokenError::Malformed)?;
    let presented = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .map_err(|_| TokenError::Malformed)?;
    if presented.len() != 32 {
        return Err(TokenError::Malformed);
    }

    let expected =
        token_mac(secret, call_sid, tenant_id, expires_at).ok_or(TokenError::BadSignature)?;
    if !constant_time_eq(&expected, &presented) {
        return Err(TokenError::BadSignature);
    }
    if now_unix >= expires_at {
        return Err(TokenError::Expired);
    }
    Ok(StreamClaims {
        call_sid: call_sid.to_owned(),
        tenant_id: tenant_id.to_owned(),
        expires_at,
    })
}

fn token_mac(secret: &[u8], call_sid: &str, tenant_id: &str, expires_at: i64) -> Option<[u8; 32]> {
    let call_sid_len = (call_sid.len() as u64).to_be_bytes();
    let tenant_len = (tenant_id.len() as u64).to_be_bytes();
    let expires = expires_at.to_be_bytes();
    hmac_sha256(
        secret,
        &[
            MAC_LABEL,
            &call_sid_len,
            call_sid.as_bytes(),
            &tenant_len,
            tenant_id.as_bytes(),
            &expires,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"server-secret-for-tests";
    const NOW: i64 = 1_750_000_000;

    fn claims() -> StreamClaims {
        StreamClaims {
            call_sid: "CA0123456789abcdef0123456789abcdef".to_owned(),
            tenant_id: "tenant-42".to_owned(),
            expires_at: NOW + 60,
        }
    }

    #[test]
    fn round_trip_returns_the_claims() {
        // Arrange
        let claims = claims();
        let token = issue(SECRET, &claims);
        // Act
        let verified = verify(SECRET, &token, &claims.call_sid, &claims.tenant_id, NOW);
        // Assert
        assert_eq!(verified, Ok(claims));
    }

    #[test]
    fn token_is_compact_and_url_and_xml_safe() {
        let token = issue(SECRET, &claims());
        assert!(token.starts_with(&format!("v1.{}.", NOW + 60)));
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
    }

    #[test]
    fn rejects_another_call_sid_or_tenant() {
        let c = claims();
        let token = issue(SECRET, &c);
        assert_eq!(
            verify(SECRET, &token, "CA_other", &c.tenant_id, NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, &token, &c.call_sid, "tenant-43", NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(b"another-secret", &token, &c.call_sid, &c.tenant_id, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        // "ab"+"c" and "a"+"bc" must not share a MAC.
        let token = issue(
            SECRET,
            &StreamClaims {
                call_sid: "ab".to_owned(),
                tenant_id: "c".to_owned(),
                expires_at: NOW + 1,
            },
        );
        assert_eq!(
            verify(SECRET, &token, "a", "bc", NOW),
            Err(TokenError::BadSignature)
        );
        assert!(verify(SECRET, &token, "ab", "c", NOW).is_ok());
    }

    #[test]
    fn rejects_forged_mac_and_moved_expiry() {
        let c = claims();
        let token = issue(SECRET, &c);
        let forged = format!("v1.{}.{}", c.expires_at, URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(
            verify(SECRET, &forged, &c.call_sid, &c.tenant_id, NOW),
            Err(TokenError::BadSignature)
        );
        // Same MAC, later expiry: the MAC covers the expiry.
        let mac = token.rsplit('.').next().unwrap_or_default();
        let extended = format!("v1.{}.{mac}", c.expires_at + 3600);
        assert_eq!(
            verify(SECRET, &extended, &c.call_sid, &c.tenant_id, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expires_at_the_expiry_second() {
        let c = claims();
        let token = issue(SECRET, &c);
        let at = |now| verify(SECRET, &token, &c.call_sid, &c.tenant_id, now);
        assert!(at(c.expires_at - 1).is_ok());
        assert_eq!(at(c.expires_at), Err(TokenError::Expired));
        assert_eq!(at(c.expires_at + 1), Err(TokenError::Expired));
        assert_eq!(at(i64::MAX), Err(TokenError::Expired));
    }

    #[test]
    fn expired_forgery_reports_bad_signature() {
        let c = claims();
        let forged = format!("v1.1.{}", URL_SAFE_NO_PAD.encode([1u8; 32]));
        assert_eq!(
            verify(SECRET, &forged, &c.call_sid, &c.tenant_id, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_never_panic() {
        let c = claims();
        let good = issue(SECRET, &c);
        let mac = good.rsplit('.').next().unwrap_or_default().to_owned();
        let huge = "v1.".repeat(100_000);
        let cases = [
            String::new(),
            ".".to_owned(),
            "..".to_owned(),
            "garbage".to_owned(),
            "v1".to_owned(),
            format!("v2.{}.{mac}", c.expires_at),
            format!("V1.{}.{mac}", c.expires_at),
            format!("v1.+{}.{mac}", c.expires_at),
            format!("v1.-{}.{mac}", c.expires_at),
            format!("v1..{mac}"),
            format!("v1.99999999999999999999.{mac}"),
            format!("v1.{}.", c.expires_at),
            format!("v1.{}.{mac}=", c.expires_at),
            format!("v1.{}.{mac}.", c.expires_at),
            format!("v1.{}.{mac}AA", c.expires_at),
            format!("v1.{}.{}", c.expires_at, "+".repeat(43)),
            format!("v1.{}.{}", c.expires_at, URL_SAFE_NO_PAD.encode([0u8; 31])),
            format!("v1.{}.ü{mac}", c.expires_at),
            huge,
        ];
        for token in cases {
            assert_eq!(
                verify(SECRET, &token, &c.call_sid, &c.tenant_id, NOW),
                Err(TokenError::Malformed),
                "{token:.40}"
            );
        }
    }

    #[test]
    fn negative_expiry_yields_an_unusable_token() {
        let c = StreamClaims {
            expires_at: -5,
            ..claims()
        };
        let token = issue(SECRET, &c);
        assert_eq!(
            verify(SECRET, &token, &c.call_sid, &c.tenant_id, -10),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn empty_and_non_ascii_fields_round_trip() {
        for (call_sid, tenant_id, secret) in [
            ("", "", &b""[..]),
            ("CA☎", "tenant-ñ-日本", "sécret".as_bytes()),
        ] {
            let c = StreamClaims {
                call_sid: call_sid.to_owned(),
                tenant_id: tenant_id.to_owned(),
                expires_at: NOW + 1,
            };
            let token = issue(secret, &c);
            assert_eq!(verify(secret, &token, call_sid, tenant_id, NOW), Ok(c));
        }
    }
}
