//! A string that must never reach a log line: `Debug` and `Display` print a
//! placeholder, and the value is read only through an explicit `expose()`.

use serde::{Deserialize, Deserializer};

/// A secret value (API key, auth token, signing secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself; every call site is a place a secret leaves the box.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Deserializes an optional secret where the empty string means "not set".
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    let value = String::deserialize(d)?;
    Ok((!value.is_empty()).then_some(Secret(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("sk-live-123");
        assert!(!format!("{secret:?}").contains("sk-live"));
        assert!(!format!("{secret}").contains("sk-live"));
        assert_eq!(secret.expose(), "sk-live-123");
    }
}
