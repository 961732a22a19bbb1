//! Twilio's webhook signature, checked against the public URL Twilio called
//! (`PUBLIC_URL` + path + query: behind a proxy the internal URL differs).

use actix_web::HttpRequest;
use callvisor_actors::events;
use callvisor_actors::redact::Escaped;

use super::error::ApiError;
use crate::state::AppState;
use callvisor_wire::signing::twilio;

/// The URL Twilio requested, rebuilt from `PUBLIC_URL`.
pub fn public_request_url(public_url: &str, req: &HttpRequest) -> String {
    let base = public_url.trim_end_matches('/');
    match req.uri().path_and_query() {
        Some(pq) => format!("{base}{pq}"),
        None => format!("{base}{}", req.path()),
    }
}

/// The media-stream WebSocket URL (`wss://` for an `https://` public URL).
pub fn media_stream_url(public_url: &str) -> String {
    let base = public_url.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{base}/twilio/media")
}

/// Refuses a request whose `X-Twilio-Signature` does not match (403), unless
/// checks are off (development only; validation enforces that).
pub fn verify(
    req: &HttpRequest,
    params: &[(String, String)],
    state: &AppState,
) -> Result<(), ApiError> {
    let settings = &state.settings;
    if !settings.server.verify_signatures {
        return Ok(());
    }
    let (Some(token), Some(public_url)) =
        (&settings.twilio.auth_token, &settings.server.public_url)
    else {
        return Err(ApiError::unavailable(
            "unavailable",
            "Twilio signature cannot be checked: TWILIO_AUTH_TOKEN or PUBLIC_URL missing",
        ));
    };
    let signature = req
        .headers()
        .get(twilio::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let call_sid = params
        .iter()
        .find(|(k, _)| k == "CallSid")
        .map_or("-", |(_, v)| v.as_str());
    let url = public_request_url(public_url, req);
    match signature {
        Some(sig) if twilio::verify(token.expose(), &url, params, sig) => Ok(()),
        found => {
            let reason = if found.is_some() {
                "bad_signature"
            } else {
                "missing_signature"
            };
            // Both values come from an unauthenticated request: escaped.
            log::warn!(
                "{} call_sid={} reason={reason} path={}",
                events::CALL_REJECTED,
                Escaped(call_sid),
                Escaped(req.path())
            );
            Err(ApiError::forbidden("forbidden", "invalid Twilio signature"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_url_follows_the_public_scheme() {
        assert_eq!(
            media_stream_url("https://e.example.com/"),
            "wss://e.example.com/twilio/media"
        );
        assert_eq!(
            media_stream_url("http://127.0.0.1:8080"),
            "ws://127.0.0.1:8080/twilio/media"
        );
    }
}
