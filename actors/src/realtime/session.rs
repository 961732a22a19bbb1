//! The connect request: where, with which model.

/// The WebSocket URL with `model` as a query parameter (kept if the URL already has a query).
pub fn realtime_url(base: &str, model: &str) -> String {
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
}
