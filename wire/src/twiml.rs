//! TwiML answers, built as text with every value XML-escaped.

const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#;
const TAIL: &str = "</Response>";

/// Escapes text for an XML attribute or element.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 text.
            c if c.is_control() && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// End the call without a word.
pub fn hang_up() -> String {
    format!("{HEAD}<Hangup/>{TAIL}")
}

/// Twilio's `<Say language>` for a tenant language, where Twilio has a voice for it.
fn say_language(language: &str) -> Option<&'static str> {
    match language.split('-').next().unwrap_or(language) {
        "en" => Some("en-US"),
        "fr" => Some("fr-FR"),
        "ja" => Some("ja-JP"),
        "es" => Some("es-ES"),
        "de" => Some("de-DE"),
        _ => None,
    }
}

/// Say `text`, then hang up.
pub fn say_and_hang_up(text: &str, language: Option<&str>) -> String {
    let lang = language
        .and_then(say_language)
        .map(|l| format!(r#" language="{l}""#))
        .unwrap_or_default();
    format!("{HEAD}<Say{lang}>{}</Say><Hangup/>{TAIL}", escape(text))
}

/// Connect the call's audio to a bidirectional media stream at `url` with `parameters`.
pub fn connect_stream(url: &str, parameters: &[(&str, &str)]) -> String {
    let mut out = format!(r#"{HEAD}<Connect><Stream url="{}">"#, escape(url));
    for (name, value) in parameters {
        out.push_str(&format!(
            r#"<Parameter name="{}" value="{}"/>"#,
            escape(name),
            escape(value)
        ));
    }
    out.push_str("</Stream></Connect>");
    out.push_str(TAIL);
    out
}

/// Hand the call to `to`, showing `caller_id`.
pub fn dial(to: &str, caller_id: Option<&str>) -> String {
    let caller_id = caller_id
        .map(|c| format!(r#" callerId="{}""#, escape(c)))
        .unwrap_or_default();
    format!(
        r#"{HEAD}<Dial{caller_id} timeout="20"><Number>{}</Number></Dial>{TAIL}"#,
        escape(to)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let xml = connect_stream("wss://x/twilio/media", &[("t", "a\"b<c>&'")]);
        assert!(
            xml.contains(r#"value="a&quot;b&lt;c&gt;&amp;&apos;""#),
            "{xml}"
        );
        assert!(say_and_hang_up("Tom & Jerry", Some("fr"))
            .contains(r#"<Say language="fr-FR">Tom &amp; Jerry</Say>"#));
        assert_eq!(escape("a\u{0}b"), "ab");
    }

    #[test]
    fn shapes_match_twilio() {
        assert_eq!(
            hang_up(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>"#
        );
        assert_eq!(
            dial("+15550001111", Some("+15550002222")),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+15550002222" timeout="20"><Number>+15550001111</Number></Dial></Response>"#
        );
    }
}
