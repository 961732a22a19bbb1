//! What a log line may show of a value.
//!
//! Log lines are the monitoring feed and leave the trust boundary (log
//! shippers, dashboards, support tickets), so they carry neither personal data
//! nor anything a caller can shape into a line of its own:
//! - [`Masked`] shows a phone number's last four digits only (the full number
//!   stays in the database, where access is controlled);
//! - [`Escaped`] prints a value as-is when it is made of safe characters and
//!   quoted with escapes otherwise, so a `\n` (`%0A` in a form) or a
//!   ` tenant=other` inside a value cannot forge a line or a field.
//!
//! Both are `Display` wrappers over borrowed text: nothing is allocated.

use std::fmt;

/// How many trailing digits of a phone number a log line may show.
pub const VISIBLE_DIGITS: usize = 4;

/// A phone number as a log line shows it: `…4321`.
#[derive(Clone, Copy)]
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.chars().filter(char::is_ascii_digit).count();
        if digits <= VISIBLE_DIGITS {
            // Too short to show any of it: a short code or garbage.
            return f.write_str("…");
        }
        f.write_str("…")?;
        let mut skip = digits - VISIBLE_DIGITS;
        for c in self.0.chars().filter(char::is_ascii_digit) {
            if skip > 0 {
                skip -= 1;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A value as a log line shows it: bare when every character is safe in a
/// `key=value` field, else quoted with Rust's escapes (`"a\nb"`).
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

fn is_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '+' | '@' | ',')
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.is_empty() && self.0.chars().all(is_safe) {
            f.write_str(self.0)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_show_their_last_four_digits_only() {
        assert_eq!(Masked("+15557654321").to_string(), "…4321");
        assert_eq!(Masked("tel:+33 1 23 45 67 89").to_string(), "…6789");
        assert_eq!(Masked("1234").to_string(), "…");
        assert_eq!(Masked("").to_string(), "…");
        assert_eq!(Masked("+1555\n765 FORGED 4321").to_string(), "…4321");
    }

    #[test]
    fn unsafe_values_are_quoted_and_escaped() {
        assert_eq!(Escaped("completed").to_string(), "completed");
        assert_eq!(Escaped("CA0123").to_string(), "CA0123");
        assert_eq!(
            Escaped("x\nCALL_ENDED call_sid=forged").to_string(),
            "\"x\\nCALL_ENDED call_sid=forged\""
        );
        assert_eq!(Escaped("a tenant=b").to_string(), "\"a tenant=b\"");
        assert_eq!(Escaped("").to_string(), "\"\"");
        assert!(!Escaped("\u{1b}[31m").to_string().contains('\u{1b}'));
    }
}
