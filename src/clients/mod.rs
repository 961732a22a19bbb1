//! HTTP clients of the vendors' REST APIs (awc). Every base URL comes from
//! configuration, so local stand-ins can replace the vendors. awc clients hold
//! `Rc`s: one per worker thread, made on first use.

pub mod openai_calls;
pub mod openai_rest;
pub mod twilio_account;
pub mod twilio_numbers;
pub mod twilio_rest;

use std::time::Duration;

/// How long one REST request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

thread_local! {
    static CLIENT: awc::Client = awc::Client::builder().timeout(REQUEST_TIMEOUT).finish();
}

/// This thread's HTTP client.
pub(crate) fn client() -> awc::Client {
    callvisor_actors::tls::install_provider();
    CLIENT.with(Clone::clone)
}

/// A failed REST call. Transport and decoding failures keep only awc's
/// message: awc's errors are not `Send`, and this error crosses threads (in
/// port errors and actor answers), so the text is taken here, at the edge.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestError {
    /// No answer (connection refused, timeout, ...).
    #[error("request failed: {0}")]
    Transport(String),
    /// An answer with an error status; `body` is the vendor's error text, shortened.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A 2xx answer we could not read.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl RestError {
    /// Worth retrying: transport failures, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Decode(_) => false,
        }
    }
}

/// Reads an error answer's body, shortened for a log line.
pub(crate) async fn error_from<S>(mut response: awc::ClientResponse<S>) -> RestError
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let status = response.status().as_u16();
    let body = response.body().limit(64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let body = text.chars().take(300).collect();
    RestError::Status { status, body }
}
