//! The connect request: where, with which model.

/// The WebSocket URL with `model` as a query parameter (kept if the URL already has a query).
/// A SIP call's sideband URL (`…?call_id=rtc_…`) is used as is: the call's session
/// already has its model, and OpenAI documents the sideband connect without one.
pub fn realtime_url(base: &str, model: &str) -> String {
    let query = base.split_once('?').map_or("", |(_, q)| q);
    if query.split('&').any(|pair| pair.starts_with("call_id=")) {
        return base.to_owned();
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut url = String::with_capacity(base.len() + model.len() + 8);
    url.push_str(base);
    url.push(separator);
    url.push_str("model=");
    for byte in model.bytes() {
        // Model ids are [A-Za-z0-9._-]; anything else is percent-encoded.
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_goes_in_the_query() {
        assert_eq!(
            realtime_url("wss://api.openai.com/v1/realtime", "gpt-realtime"),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime"
        );
        assert_eq!(
            realtime_url("ws://127.0.0.1:9/v1/realtime?x=1", "a b"),
            "ws://127.0.0.1:9/v1/realtime?x=1&model=a%20b"
        );
    }

    #[test]
    fn a_sideband_url_keeps_its_call_id_alone() {
        assert_eq!(
            realtime_url(
                "wss://api.openai.com/v1/realtime?call_id=rtc_1",
                "gpt-realtime"
            ),
            "wss://api.openai.com/v1/realtime?call_id=rtc_1"
        );
    }
}
