//! The media-stream token check, over the shared server secret: any instance
//! can accept any call's socket without shared memory.

use callvisor_actors::ports::StreamAuthority;

use callvisor_wire::signing::stream_token::{self, StreamClaims, TokenError};

/// Issues and checks stream tokens with one secret.
pub struct StreamSecret {
    secret: Vec<u8>,
    ttl_seconds: i64,
}

impl StreamSecret {
    /// A secret; tokens live `ttl_seconds`.
    pub fn new(secret: Vec<u8>, ttl_seconds: u64) -> Self {
        Self {
            secret,
            ttl_seconds: i64::try_from(ttl_seconds).unwrap_or(i64::MAX),
        }
    }

    /// A token binding `call_sid` and `tenant_id` until the TTL runs out.
    pub fn issue(&self, call_sid: &str, tenant_id: &str) -> String {
        let expires_at = chrono::Utc::now()
            .timestamp()
            .saturating_add(self.ttl_seconds);
        stream_token::issue(
            &self.secret,
            &StreamClaims {
                call_sid: call_sid.to_owned(),
                tenant_id: tenant_id.to_owned(),
                expires_at,
            },
        )
    }
}

impl StreamAuthority for StreamSecret {
    fn check(&self, token: &str, call_sid: &str, tenant_id: &str) -> Result<(), String> {
        let now = chrono::Utc::now().timestamp();
        stream_token::verify(&self.secret, token, call_sid, tenant_id, now)
            .map(|_| ())
            .map_err(|e| {
                match e {
                    TokenError::Malformed => "malformed stream token",
                    TokenError::BadSignature => "stream token not valid for this call",
                    TokenError::Expired => "stream token expired",
                }
                .to_owned()
            })
    }
}
