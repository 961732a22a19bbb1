//! `application/x-www-form-urlencoded`, the body encoding of Twilio's webhooks and REST API.
//!
//! The `form_urlencoded` crate (the WHATWG rules `url` uses) does the coding; these helpers
//! only fix the shape the stand-ins want: the exact pairs in order as owned strings, repeated
//! keys included (Twilio repeats `StatusCallbackEvent`), which serde-based decoders fold
//! into maps.

/// Decodes `a=1&b=x+y&c=%2B1` into pairs, in order, repeated keys kept.
///
/// Lenient like the servers we imitate: a `%` not followed by two hex digits is kept
/// literally, invalid UTF-8 is replaced, empty segments (`a=1&&b=2`) are skipped and a key
/// without `=` gets an empty value.
#[must_use]
pub fn parse_form(input: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(input.as_bytes())
        .into_owned()
        .collect()
}

/// Encodes pairs as a form body (`+` for space, `%XX` for everything but `A-Za-z0-9-_.*`).
#[must_use]
pub fn encode_form(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The first value of `name` among `pairs`.
#[must_use]
pub fn form_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn decodes_plus_percent_and_repeated_keys() {
        assert_eq!(
            parse_form("To=%2B15551230000&Twiml=%3CResponse%3E+%3C%2FResponse%3E&E=a&E=b&&k"),
            pairs(&[
                ("To", "+15551230000"),
                ("Twiml", "<Response> </Response>"),
                ("E", "a"),
                ("E", "b"),
                ("k", ""),
            ])
        );
    }

    #[test]
    fn keeps_broken_escapes_literally() {
        assert_eq!(
            parse_form("a=100%&b=%zz&c=%e2%98%8e"),
            pairs(&[("a", "100%"), ("b", "%zz"), ("c", "☎")])
        );
    }

    #[test]
    fn encodes_like_twilio_clients_do() {
        assert_eq!(
            encode_form(&pairs(&[
                ("To", "+1 555"),
                ("Safe", "aZ09-_.*"),
                ("x", "~/&=")
            ])),
            "To=%2B1+555&Safe=aZ09-_.*&x=%7E%2F%26%3D"
        );
    }

    #[test]
    fn encoding_round_trips() {
        let original = pairs(&[
            ("Body", "héllo & <bye> +1 ☎"),
            ("Empty", ""),
            ("a=b", "c&d"),
        ]);
        let encoded = encode_form(&original);
        assert!(!encoded.contains(' '), "{encoded}");
        assert_eq!(parse_form(&encoded), original);
        assert_eq!(form_value(&original, "Empty"), Some(""));
        assert_eq!(form_value(&original, "missing"), None);
    }
}
