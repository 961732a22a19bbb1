//! The media-stream checks: the token, over the shared server secret (any
//! instance can accept any call's socket without shared memory), and the
//! admission of the stream against the call's row in PostgreSQL (an ended
//! call admits nothing; a call carried by a live stream admits no other).

use std::sync::Arc;
use std::time::Duration;

use callvisor_actors::ports::{PortError, PortFuture, StreamAuthority, StreamClaim, StreamRefusal};

use crate::db::{call_logs, AsyncPool, DbError};
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

    /// Ok when `token` was issued for this CallSid and tenant and has not expired.
    pub fn check(&self, token: &str, call_sid: &str, tenant_id: &str) -> Result<(), TokenError> {
        let now = chrono::Utc::now().timestamp();
        stream_token::verify(&self.secret, token, call_sid, tenant_id, now).map(|_| ())
    }
}

/// Attempts at asking the database before a stream is refused as unanswerable.
const CLAIM_ATTEMPTS: u32 = 3;

async fn try_claim(
    pool: &AsyncPool,
    claim: &StreamClaim,
    tenant: uuid::Uuid,
    instance_id: &str,
) -> Result<call_logs::StreamClaimOutcome, StreamRefusal> {
    let unavailable =
        |e: DbError| StreamRefusal::Unavailable(PortError::with_source("database", e));
    let mut conn = pool.get().await.map_err(|e| unavailable(e.into()))?;
    call_logs::claim_stream(
        &mut conn,
        claim.call_sid.as_str(),
        tenant,
        claim.stream_sid.as_str(),
        instance_id,
    )
    .await
    .map_err(unavailable)
}

/// The token check, then the admission against `call_logs` (the actors' port).
pub struct StreamGuard {
    secret: Arc<StreamSecret>,
    pool: AsyncPool,
    instance_id: String,
}

impl StreamGuard {
    /// Checks tokens with `secret`, admits streams for `instance_id` over `pool`.
    pub fn new(secret: Arc<StreamSecret>, pool: AsyncPool, instance_id: &str) -> Self {
        Self {
            secret,
            pool,
            instance_id: instance_id.to_owned(),
        }
    }
}

impl StreamAuthority for StreamGuard {
    fn check(&self, token: &str, call_sid: &str, tenant_id: &str) -> Result<(), TokenError> {
        self.secret.check(token, call_sid, tenant_id)
    }

    fn claim(&self, claim: StreamClaim) -> PortFuture<Result<(), StreamRefusal>> {
        let pool = self.pool.clone();
        let instance_id = self.instance_id.clone();
        Box::pin(async move {
            let tenant = uuid::Uuid::parse_str(claim.tenant_id.as_str())
                .map_err(|_| StreamRefusal::NoRecord)?;
            // A busy pool during a burst of calls is not a refusal: try again
            // (the socket's attach deadline bounds the whole wait).
            let mut attempt = 1;
            let outcome = loop {
                match try_claim(&pool, &claim, tenant, &instance_id).await {
                    Ok(outcome) => break outcome,
                    Err(e) if attempt >= CLAIM_ATTEMPTS => return Err(e),
                    Err(_) => {
                        actix_rt::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                        attempt += 1;
                    }
                }
            };
            match outcome {
                call_logs::StreamClaimOutcome::Claimed => Ok(()),
                call_logs::StreamClaimOutcome::Ended => Err(StreamRefusal::CallEnded),
                call_logs::StreamClaimOutcome::InUse => Err(StreamRefusal::InUse),
                call_logs::StreamClaimOutcome::NoRecord => Err(StreamRefusal::NoRecord),
            }
        })
    }
}
