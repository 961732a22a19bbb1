//! Identifiers parsed at the edge: nothing past the HTTP/WebSocket boundary
//! takes a bare `String` for a CallSid, a StreamSid, a tenant or a phone number.

use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a Twilio-style SID with the expected prefix.
    #[error("not a valid {kind}: {reason}")]
    Invalid {
        /// What was being parsed.
        kind: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Longest SID accepted; Twilio's are 34 characters, others (SIP call ids) are kept short too.
const MAX_SID_LEN: usize = 64;

fn check_token(value: &str, kind: &'static str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Invalid {
            kind,
            reason: "empty",
        });
    }
    if value.len() > MAX_SID_LEN {
        return Err(IdError::Invalid {
            kind,
            reason: "too long",
        });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(IdError::Invalid {
            kind,
            reason: "only letters, digits, '_' and '-' are allowed",
        });
    }
    Ok(())
}

macro_rules! sid_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check_token(value, $kind)?;
                Ok(Self(value.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

sid_type!(
    /// A call's identifier: Twilio's `CA…`, or the `rtc_…` id of a SIP call.
    CallSid,
    "call sid"
);
sid_type!(
    /// A Twilio media stream's identifier (`MZ…`).
    StreamSid,
    "stream sid"
);
sid_type!(
    /// A tenant (`profiles.id`, a UUID in text form).
    TenantId,
    "tenant id"
);

/// A phone number in E.164 form: `+` and 7 to 15 digits, the first not zero.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

impl E164 {
    /// Normalises common spellings (`tel:` prefix, spaces, dashes, dots,
    /// parentheses, a `00` international prefix) and validates the result.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        const KIND: &str = "E.164 phone number";
        let raw = raw.trim();
        let raw = raw.strip_prefix("tel:").unwrap_or(raw);
        let mut out = String::with_capacity(16);
        for (i, c) in raw.chars().enumerate() {
            match c {
                '+' if i == 0 => out.push('+'),
                '0'..='9' => out.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(IdError::Invalid {
                        kind: KIND,
                        reason: "unexpected character",
                    })
                }
            }
        }
        if let Some(rest) = out.strip_prefix("00") {
            out = format!("+{rest}");
        }
        let Some(digits) = out.strip_prefix('+') else {
            return Err(IdError::Invalid {
                kind: KIND,
                reason: "must start with + and a country code",
            });
        };
        if !(7..=15).contains(&digits.len()) {
            return Err(IdError::Invalid {
                kind: KIND,
                reason: "must have 7 to 15 digits",
            });
        }
        if digits.starts_with('0') {
            return Err(IdError::Invalid {
                kind: KIND,
                reason: "country code cannot start with 0",
            });
        }
        Ok(Self(out))
    }

    /// The number as text, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for E164 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_normalises_common_spellings() {
        for raw in [
            "+1 (555) 123-4567",
            "tel:+15551234567",
            "0015551234567",
            "+1.555.123.4567",
        ] {
            assert_eq!(
                E164::parse(raw).map(|n| n.0),
                Ok("+15551234567".to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn e164_refuses_what_it_cannot_trust() {
        for raw in [
            "",
            "5551234567",
            "+0123456789",
            "+1",
            "+1234567890123456",
            "+1555abc4567",
            "+1+5551234567",
        ] {
            assert!(E164::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn sids_refuse_junk() {
        assert!(CallSid::parse("CA0123456789abcdef0123456789abcdef").is_ok());
        assert!(CallSid::parse("").is_err());
        assert!(CallSid::parse("CA1\"><script>").is_err());
        assert!(CallSid::parse(&"A".repeat(65)).is_err());
    }
}
