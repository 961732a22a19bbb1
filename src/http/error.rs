//! One error type for every HTTP answer that is an error (Twilio webhooks and
//! the admin API alike): a status, a stable snake_case code and a message, as
//! the JSON body `{"error": "<stable_code>", "message": "...", "details": ...}`
//! (`details` only when set). The cause, when there is one, is kept as the
//! error's `source()`: a 5xx never echoes it to the client, and it is logged
//! once, here, with its chain (`outer: inner: root`) when the answer is built.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use callvisor_actors::error_chain::{error_chain_fmt, Chain};
use callvisor_actors::events;

use crate::db::DbError;

/// An error answered to an HTTP client.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    details: Option<serde_json::Value>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    /// An error with any status (the helpers below cover the common ones).
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            source: None,
        }
    }

    /// 400: malformed input.
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 403: wrong credentials or signature.
    pub fn forbidden(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404: no such thing (or not in the tenant scope).
    pub fn not_found(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409: conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: well-formed but not acceptable.
    pub fn unprocessable(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 503: a dependency is down, a resource is exhausted or the instance is draining.
    pub fn unavailable(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 500 `internal`: a bug or an unexpected failure. `message` is logged,
    /// never sent.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Keeps `source` as the cause: logged with its chain, sent only in a 4xx
    /// message that quotes it.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Adds machine-readable details to the body (`"details"`).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The whole chain, so a `{:?}` anywhere shows the cause (zero2prod's style).
impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self, f)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A query that failed is a 500 (`internal`); a database that cannot be
/// reached is a 503 (`database_unavailable`).
impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Query(_) | DbError::Migration(_) => Self::internal("database").with_source(e),
            other => {
                Self::unavailable("database_unavailable", "database unavailable").with_source(other)
            }
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        Self::from(DbError::from(e))
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            log::error!(
                "{} code={} error={:?}",
                events::HTTP_INTERNAL_ERROR,
                self.code,
                Chain(self)
            );
            "internal error"
        } else {
            if self.status.is_server_error() && self.source.is_some() {
                log::warn!(
                    "{} status={} code={} error={:?}",
                    events::HTTP_UNAVAILABLE,
                    self.status.as_u16(),
                    self.code,
                    Chain(self)
                );
            }
            &self.message
        };
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"callvisor-admin\""));
        }
        response.json(Body {
            error: self.code,
            message,
            details: self.details.as_ref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_failure_is_a_500_that_keeps_its_cause_out_of_the_body() {
        let e = ApiError::from(DbError::from(diesel::result::Error::NotFound));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            Chain(&e).to_string(),
            "internal: database: database query failed: Record not found"
        );
        let body = actix_web::body::to_bytes(e.error_response().into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .and_then(Result::ok)
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("Record not found"), "{body}");
        assert!(body.contains("\"error\":\"internal\""), "{body}");
    }

    #[test]
    fn an_unreachable_database_is_a_503() {
        let e = ApiError::from(DbError::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), "database_unavailable");
    }
}
