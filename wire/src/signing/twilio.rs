//! `X-Twilio-Signature`: proof that a webhook really comes from Twilio.
//!
//! Twilio signs each webhook with the account's primary Auth Token:
//! `base64(HMAC-SHA1(auth_token, url + key1 + value1 + key2 + value2 …))`, parameters sorted
//! by key and, for a repeated key, by value. JSON-body webhooks sign the URL alone and carry
//! `bodySHA256=<hex sha256(body)>` in its query instead.
//!
//! The URL must be the public one Twilio requested (scheme, host, path, query), not the one
//! a proxy forwarded internally; the caller rebuilds it. Because Twilio may have signed the
//! URL with or without the scheme's default port, [`verify`] accepts both spellings, as the
//! official validators do (twilio-node `webhooks.ts`, twilio-python `request_validator.py`).
//! [`expected_signature`] is also what the simulated Twilio caller signs its requests with,
//! so the two sides cannot drift apart.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{constant_time_eq, hex_lower, hmac_sha1};

/// Name of the HTTP header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Name of the query parameter in which Twilio puts the body hash of a JSON-body webhook.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// The signature Twilio sends for a form-encoded request to `url` carrying `params`.
///
/// Parameters are sorted by key, then by value; an identical key/value pair given twice
/// counts once, as in twilio-node and twilio-python (both collect values into a set).
/// Returns an empty string only if the HMAC cannot be keyed, which HMAC never refuses.
#[must_use]
pub fn expected_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    signature_mac(auth_token, url, params)
        .map(|mac| STANDARD.encode(mac))
        .unwrap_or_default()
}

/// Checks `header_sig` (the `X-Twilio-Signature` value) for a form-encoded webhook.
///
/// `url` is the full public URL, query included; `params` are the decoded POST fields.
/// Also accepts the signature of `url` with the scheme's default port (`:443` for https,
/// `:80` for http) added when absent or removed when present. A non-default port is never
/// removed. The comparison runs in constant time.
#[must_use]
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header_sig: &str) -> bool {
    let as_given = signature_matches(auth_token, url, params, header_sig);
    let other_spelling = default_port_variant(url)
        .is_some_and(|alt| signature_matches(auth_token, &alt, params, header_sig));
    as_given | other_spelling
}

/// Checks a JSON-body webhook: `url` already carries Twilio's `bodySHA256` query parameter.
///
/// The signature covers the URL alone (no parameters appended, default-port spellings
/// accepted as in [`verify`]); then the lower-case hex SHA-256 of `raw_body` must equal
/// `bodySHA256` (compared case-insensitively). A URL without `bodySHA256` never verifies.
#[must_use]
pub fn verify_with_body(auth_token: &str, url: &str, raw_body: &[u8], header_sig: &str) -> bool {
    let Some(claimed) = query_param(url, BODY_SHA256_PARAM) else {
        return false;
    };
    let signed = verify(auth_token, url, &[], header_sig);
    let body_matches = constant_time_eq(
        body_sha256_hex(raw_body).as_bytes(),
        claimed.to_ascii_lowercase().as_bytes(),
    );
    signed & body_matches
}

/// Lower-case hex SHA-256 of a body: the value Twilio puts in `bodySHA256`.
#[must_use]
pub fn body_sha256_hex(raw_body: &[u8]) -> String {
    hex_lower(&Sha256::digest(raw_body))
}

/// The raw HMAC over `url` followed by the sorted, de-duplicated parameters.
fn signature_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Option<[u8; 20]> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    // Tuple order is exactly "by key, then by value"; byte order equals code-point order.
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + 2 * sorted.len());
    parts.push(url.as_bytes());
    for (key, value) in sorted {
        parts.push(key.as_bytes());
        parts.push(value.as_bytes());
    }
    hmac_sha1(auth_token.as_bytes(), &parts)
}

fn signature_matches(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header_sig: &str,
) -> bool {
    signature_mac(auth_token, url, params)
        .is_some_and(|mac| constant_time_eq(STANDARD.encode(mac).as_bytes(), header_sig.as_bytes()))
}

/// The other spelling of `url` Twilio may have signed: the scheme's default port added
/// when the URL names no port, or removed when it names exactly the default one.
///
/// `None` for schemes other than http(s), a non-default or empty port, or a URL we cannot
/// split into scheme and authority; the URL is then only tried as given.
fn default_port_variant(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        return None;
    };
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at_checked(authority_len)?;
    // Userinfo may contain ':' as well; the host starts after the last '@'.
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => authority.split_at_checked(at + 1)?,
        None => ("", authority),
    };
    if host_port.is_empty() {
        return None;
    }
    // An IPv6 literal ("[::1]") has colons too, but its last one is followed by ']'.
    match host_port.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (port == default_port).then(|| format!("{scheme}://{userinfo}{host}{tail}"))
        }
        Some((_, "")) => None,
        _ => Some(format!(
            "{scheme}://{userinfo}{host_port}:{default_port}{tail}"
        )),
    }
}

/// The raw value of the first `name=value` pair in the query of `url` (fragment excluded).
fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = url.split_once('?')?;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const DOCS_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    /// twilio-python `tests/unit/test_request_validator.py` fixture.
    fn python_suite_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ])
    }

    #[test]
    fn matches_the_current_twilio_docs_example() {
        // Arrange: twilio.com/docs/usage/webhooks/webhooks-security worked example.
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        // Act + Assert
        assert_eq!(
            expected_signature("12345", DOCS_URL, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify(
            "12345",
            DOCS_URL,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn matches_the_older_twilio_docs_example() {
        // Earlier revision of the same page used +14158675310 as Caller/From.
        let params = pairs(&[
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Digits", "1234"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        assert_eq!(
            expected_signature("12345", DOCS_URL, &params),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
    }

    #[test]
    fn matches_the_twilio_python_suite_vectors() {
        let params = python_suite_params();
        assert_eq!(
            expected_signature("12345", DOCS_URL, &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        // Repeated key: values sorted ("Digits1234Digits5678").
        let repeated = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            expected_signature("12345", DOCS_URL, &repeated),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn accepts_the_default_port_added_by_twilio() {
        // twilio-python: signatures of the URL with :443 / :80 spelled out.
        let params = python_suite_params();
        assert!(verify(
            "12345",
            DOCS_URL,
            &params,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        let http = DOCS_URL.replacen("https", "http", 1);
        assert!(verify(
            "12345",
            &http,
            &params,
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
    }

    #[test]
    fn accepts_the_default_port_removed_by_twilio() {
        let params = python_suite_params();
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(verify(
            "12345",
            with_port,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn never_strips_a_non_default_port_or_swaps_defaults() {
        let params = python_suite_params();
        let odd_port = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
        assert!(!verify(
            "12345",
            odd_port,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // :80 is not https's default, so it is not stripped either.
        let wrong_default = "https://mycompany.com:80/myapp.php?foo=1&bar=2";
        assert!(!verify(
            "12345",
            wrong_default,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // A non-default port stays verifiable as given.
        let sig = expected_signature("12345", odd_port, &params);
        assert!(verify("12345", odd_port, &params, &sig));
    }

    #[test]
    fn port_variants_handle_userinfo_ipv6_and_odd_urls() {
        assert_eq!(
            default_port_variant("https://u:p@h.example/x").as_deref(),
            Some("https://u:p@h.example:443/x")
        );
        assert_eq!(
            default_port_variant("https://u:p@h.example:443?q=1").as_deref(),
            Some("https://u:p@h.example?q=1")
        );
        assert_eq!(
            default_port_variant("http://[::1]/v").as_deref(),
            Some("http://[::1]:80/v")
        );
        assert_eq!(
            default_port_variant("http://[::1]:80").as_deref(),
            Some("http://[::1]")
        );
        assert_eq!(
            default_port_variant("HTTPS://H.example").as_deref(),
            Some("HTTPS://H.example:443")
        );
        for none in [
            "",
            "no scheme",
            "wss://h/x",
            "https://",
            "https:///p",
            "https://h:/p",
        ] {
            assert_eq!(default_port_variant(none), None, "{none:?}");
        }
    }

    #[test]
    fn parameter_order_does_not_matter_and_duplicates_count_once() {
        let a = pairs(&[("B", "2"), ("A", "1"), ("A", "0")]);
        let b = pairs(&[("A", "0"), ("A", "1"), ("B", "2"), ("A", "1")]);
        assert_eq!(
            expected_signature("t", "https://x.com/v", &a),
            expected_signature("t", "https://x.com/v", &b)
        );
    }

    #[test]
    fn rejects_tampering_and_wrong_credentials() {
        let params = python_suite_params();
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        let mut tampered = params.clone();
        tampered.push(("Extra".to_owned(), "1".to_owned()));
        assert!(!verify("12345", DOCS_URL, &tampered, good));
        assert!(!verify("54321", DOCS_URL, &params, good));
        assert!(!verify(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            good
        ));
        assert!(!verify(
            "12345",
            &DOCS_URL.replacen("https", "http", 1),
            &params,
            good
        ));
        assert!(!verify(
            "12345",
            DOCS_URL,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8"
        ));
        assert!(!verify("12345", DOCS_URL, &params, ""));
        assert!(!verify(
            "12345",
            DOCS_URL,
            &params,
            " RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn signs_non_ascii_and_empty_inputs() {
        // Expected values computed independently with Python's hmac/hashlib.
        let params = pairs(&[
            ("Body", "héllo ☎ 👋"),
            ("From", "+15551230000"),
            ("Ünïcode", "日本"),
        ]);
        let url = "https://example.com/voice?t=ü";
        assert_eq!(
            expected_signature("toké", url, &params),
            "TA1DFG+uNR2+kRkO4/aJFiGsg8k="
        );
        assert!(verify("toké", url, &params, "TA1DFG+uNR2+kRkO4/aJFiGsg8k="));
        assert_eq!(
            expected_signature("", "", &[]),
            "+9sdGxiqbAgyS31ktx+3Y3BpDh0="
        );
        assert!(verify("", "", &[], "+9sdGxiqbAgyS31ktx+3Y3BpDh0="));
    }

    #[test]
    fn verifies_the_twilio_python_json_body_vector() {
        // Arrange: twilio-python suite, body hash appended to the docs URL.
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(body_sha256_hex(body), hash);
        let url = format!("{DOCS_URL}&bodySHA256={hash}");
        // Act + Assert
        assert!(verify_with_body(
            "12345",
            &url,
            body,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert!(!verify_with_body(
            "12345",
            &url,
            br#"{"property": "value", "boolean": false}"#,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert!(!verify_with_body(
            "12345",
            &url,
            body,
            "a9nBmqA0ju/hNViExpshrM61xv4"
        ));
    }

    #[test]
    fn json_body_round_trip_with_non_ascii_and_empty_bodies() {
        for body in ["{\"text\":\"¿Qué tal? 電話\"}".as_bytes(), b""] {
            let url = format!(
                "https://x.example/status?a=1&bodySHA256={}#frag",
                body_sha256_hex(body)
            );
            let sig = expected_signature("tok", &url, &[]);
            assert!(verify_with_body("tok", &url, body, &sig));
            // Default-port spelling of the same URL is accepted too.
            let with_port = url.replacen("x.example", "x.example:443", 1);
            assert!(verify_with_body("tok", &with_port, body, &sig));
            assert!(!verify_with_body("tok", &url, b"other", &sig));
        }
    }

    #[test]
    fn json_body_hash_is_case_insensitive_but_required() {
        let body = b"{}";
        let upper = format!(
            "https://x.example/s?bodySHA256={}",
            body_sha256_hex(body).to_ascii_uppercase()
        );
        let sig = expected_signature("tok", &upper, &[]);
        assert!(verify_with_body("tok", &upper, body, &sig));

        for url in [
            "https://x.example/s",
            "https://x.example/s?bodySHA256",
            "https://x.example/s?bodySHA256=",
            "https://x.example/s?bodysha256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "https://x.example/s#bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        ] {
            let sig = expected_signature("tok", url, &[]);
            assert!(!verify_with_body("tok", url, body, &sig), "{url}");
        }
    }
}
