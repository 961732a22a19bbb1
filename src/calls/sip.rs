//! Calls that reach OpenAI over SIP (a SIP trunk, or WhatsApp through a SIP
//! provider): reading the `realtime.call.incoming` event's SIP headers, and
//! the session a call is accepted with.
//!
//! The number called is the user part of the `To` header's URI (`sip:`,
//! `sips:` or `tel:`, with or without a display name and `<…>`); a trunk that
//! drops the `+` is forgiven. The channel is `whatsapp` when the INVITE came
//! from Meta (a header named `x-wa-meta-…`, or a `From`/`Contact`/`Via`/
//! `P-Asserted-Identity` naming the `wa.meta.vc` domain), `sip` otherwise.

use callvisor_actors::ids::E164;
use callvisor_wire::protocol::realtime::{session_update_json, SessionConfig};
use serde::Deserialize;
use serde_json::Value;

/// One SIP header of the INVITE, as OpenAI forwards it (untrusted metadata).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SipHeader {
    /// Header name, as sent.
    pub name: String,
    /// Header value, as sent.
    pub value: String,
}

/// Which network a call came from (`call_logs.channel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A SIP trunk.
    Sip,
    /// WhatsApp Business Calling (Meta's SIP, through a provider).
    WhatsApp,
}

impl Channel {
    /// The value stored in `call_logs.channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sip => "sip",
            Self::WhatsApp => "whatsapp",
        }
    }
}

/// Meta's SIP domain: INVITEs from WhatsApp name it.
const WHATSAPP_DOMAIN: &str = "wa.meta.vc";
/// Prefix of Meta's own SIP headers.
const WHATSAPP_HEADER_PREFIX: &str = "x-wa-meta-";
/// Headers whose URI says where the INVITE came from.
const ORIGIN_HEADERS: &[&str] = &["from", "contact", "via", "p-asserted-identity"];

/// The first header called `name` (case-insensitively, as SIP wants).
pub fn header<'a>(headers: &'a [SipHeader], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.trim().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// The E.164 number in a `To`/`From` value: `sip:+1800…@host;params`,
/// `"Shop" <sips:+33…@host>;tag=x`, `tel:+250…`, or the bare number.
pub fn number_from_uri(value: &str) -> Option<E164> {
    let value = value.trim();
    // Inside `<…>` when there is a display name or header parameters.
    let uri = match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    };
    let uri = uri.trim();
    let lower = uri.to_ascii_lowercase();
    let rest = ["sips:", "sip:", "tel:"]
        .iter()
        .find(|scheme| lower.starts_with(*scheme))
        .map_or(uri, |scheme| &uri[scheme.len()..]);
    // The user part: before `@`, without its `;params` (`;user=phone`, `;phone-context=`).
    let user = rest.split('@').next().unwrap_or(rest);
    let user = user.split(';').next().unwrap_or(user).trim();
    if user.is_empty() {
        return None;
    }
    E164::parse(user)
        .or_else(|_| E164::parse(&format!("+{user}")))
        .ok()
}

/// `whatsapp` when any header says the call came from Meta, else `sip`.
pub fn channel(headers: &[SipHeader]) -> Channel {
    let from_meta = headers.iter().any(|h| {
        let name = h.name.trim().to_ascii_lowercase();
        name.starts_with(WHATSAPP_HEADER_PREFIX)
            || (ORIGIN_HEADERS.contains(&name.as_str())
                && h.value.to_ascii_lowercase().contains(WHATSAPP_DOMAIN))
    });
    if from_meta {
        Channel::WhatsApp
    } else {
        Channel::Sip
    }
}

/// The body of `POST /v1/realtime/calls/{call_id}/accept`: the same session a
/// Twilio call is configured with (`type: "realtime"`, model, instructions,
/// voice, transcription, turn detection, tools), minus the audio formats,
/// which SIP negotiates itself (SDP).
pub fn accept_body(session: &SessionConfig) -> Value {
    let update: Value = serde_json::from_str(&session_update_json(session)).unwrap_or_default();
    let mut body = update
        .get("session")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({ "type": "realtime", "model": session.model }));
    for side in ["input", "output"] {
        if let Some(audio) = body
            .get_mut("audio")
            .and_then(|a| a.get_mut(side))
            .and_then(Value::as_object_mut)
        {
            audio.remove("format");
        }
    }
    body
}

/// The sideband socket of `call_id`: the Realtime URL with `call_id` as its query.
pub fn sideband_url(realtime_url: &str, call_id: &str) -> String {
    let separator = if realtime_url.contains('?') { '&' } else { '?' };
    format!("{realtime_url}{separator}call_id={call_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> SipHeader {
        SipHeader {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn numbers_come_out_of_every_uri_shape() {
        for (value, want) in [
            ("sip:+18005550100@sip.example.com", "+18005550100"),
            (
                "<sip:+18005550100@sip.example.com;transport=tls>;tag=abc",
                "+18005550100",
            ),
            (
                "\"Chez Test\" <sips:+33142000000@pbx.example.fr>",
                "+33142000000",
            ),
            ("tel:+250788000000", "+250788000000"),
            ("<tel:+81-3-1234-5678;phone-context=+81>", "+81312345678"),
            (
                "sip:18005550100@trunk.example.com;user=phone",
                "+18005550100",
            ),
            ("SIP:+15550100001@x", "+15550100001"),
        ] {
            assert_eq!(
                number_from_uri(value).map(|n| n.to_string()).as_deref(),
                Some(want),
                "{value}"
            );
        }
        for value in ["sip:reception@example.com", "sip:@example.com", "", "<>"] {
            assert!(number_from_uri(value).is_none(), "{value}");
        }
    }

    #[test]
    fn whatsapp_is_told_apart_by_meta_headers_or_domain() {
        let trunk = [
            h("From", "sip:+1425@sip.example.com"),
            h("To", "sip:+1800@x"),
        ];
        assert_eq!(channel(&trunk), Channel::Sip);
        let meta_header = [
            h("From", "sip:+1425@sbc.example.com"),
            h("X-WA-Meta-Call-Id", "1"),
        ];
        assert_eq!(channel(&meta_header), Channel::WhatsApp);
        let meta_domain = [h("from", "<sip:+250788@wa.meta.vc>;tag=1")];
        assert_eq!(channel(&meta_domain), Channel::WhatsApp);
        // The domain in an unrelated header (the called party's own) does not count.
        let to_only = [h("To", "sip:+1800@wa.meta.vc")];
        assert_eq!(channel(&to_only), Channel::Sip);
        assert_eq!(header(&trunk, "to"), Some("sip:+1800@x"));
    }

    #[test]
    fn the_accept_body_is_a_ga_session_without_audio_formats() {
        let session = SessionConfig {
            instructions: "Be kind.".into(),
            voice: "cedar".into(),
            ..SessionConfig::default()
        };
        let body = accept_body(&session);
        assert_eq!(body["type"], "realtime");
        assert_eq!(body["model"], "gpt-realtime");
        assert_eq!(body["instructions"], "Be kind.");
        assert_eq!(body["audio"]["output"]["voice"], "cedar");
        assert!(body["audio"]["output"].get("format").is_none());
        assert!(body["audio"]["input"].get("format").is_none());
        assert_eq!(
            body["audio"]["input"]["turn_detection"]["type"],
            "server_vad"
        );
        assert_eq!(body["tools"].as_array().map(Vec::len), Some(3));
    }
}
