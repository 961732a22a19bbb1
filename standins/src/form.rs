//! `application/x-www-form-urlencoded`, the body encoding of Twilio's webhooks and REST API.
//!
//! A few lines of our own rather than a crate: the stand-ins need the exact pairs in order,
//! repeated keys included (Twilio repeats `StatusCallbackEvent`), which serde-based decoders
//! fold into maps.

/// Decodes `a=1&b=x+y&c=%2B1` into pairs, in order, repeated keys kept.
///
/// Lenient like the servers we imitate: a `%` not followed by two hex digits is kept
/// literally, invalid UTF-8 is replaced, empty segments (`a=1&&b=2`) are skipped and a key
/// without `=` gets an empty value.
#[must_use]
pub fn parse_form(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Encodes pairs as a form body (`+` for space, `%XX` for everything but `A-Za-z0-9-_.*`).
#[must_use]
pub fn encode_form(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode(key, &mut out);
        out.push('=');
        percent_encode(value, &mut out);
    }
    out
}

/// The first value of `name` among `pairs`.
#[must_use]
pub fn form_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let high = bytes.get(i + 1).copied().and_then(hex_value);
                let low = bytes.get(i + 2).copied().and_then(hex_value);
                if let (Some(high), Some(low)) = (high, low) {
                    out.push(high << 4 | low);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                for nibble in [byte >> 4, byte & 0x0f] {
                    if let Some(&digit) = HEX.get(usize::from(nibble)) {
                        out.push(char::from(digit));
                    }
                }
            }
        }
    }
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
