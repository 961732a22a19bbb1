//! Formats an error with its whole `source()` chain, so a cause is logged once,
//! where the error is handled, as `outer: inner: root` (zero2prod's
//! `error_chain_fmt`). Error types keep their cause as a source and leave it
//! out of their own Display, so no link is printed twice.

use std::error::Error;
use std::fmt;

/// Writes `e` and each of its sources, separated by `": "`. A cause whose text
/// its parent already ends with is not written again: some libraries' errors
/// (tokio-postgres, deadpool) both print their cause and return it as source.
pub fn error_chain_fmt(e: &dyn Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    // Error paths only: the texts are needed to see the repeats.
    let mut parent = e.to_string();
    f.write_str(&parent)?;
    let mut current = e.source();
    while let Some(cause) = current {
        let text = cause.to_string();
        if !parent.ends_with(text.as_str()) {
            write!(f, ": {text}")?;
        }
        parent = text;
        current = cause.source();
    }
    Ok(())
}

/// An error shown with its chain: `Display` gives `outer: inner: root`, and
/// `Debug` the same text quoted and escaped, for `error={:?}` log fields.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self.0, f)
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only on error paths: the allocation buys the escaping of `str`'s Debug.
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("root cause")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("inner step")]
    struct Inner(#[source] Root);

    #[derive(Debug, thiserror::Error)]
    #[error("outer \"task\"")]
    struct Outer(#[source] Inner);

    #[test]
    fn the_chain_names_every_cause_in_order() {
        let e = Outer(Inner(Root));
        assert_eq!(
            Chain(&e).to_string(),
            "outer \"task\": inner step: root cause"
        );
    }

    #[test]
    fn the_debug_form_is_quoted_and_escaped() {
        let e = Outer(Inner(Root));
        assert_eq!(
            format!("{:?}", Chain(&e)),
            "\"outer \\\"task\\\": inner step: root cause\""
        );
    }

    /// Prints its cause and also returns it as its source.
    #[derive(Debug, thiserror::Error)]
    #[error("pool: {0}")]
    struct Echoing(#[source] Inner);

    #[test]
    fn a_cause_already_printed_by_its_parent_is_not_repeated() {
        let e = Echoing(Inner(Root));
        assert_eq!(Chain(&e).to_string(), "pool: inner step: root cause");
    }

    #[test]
    fn an_error_without_source_is_itself() {
        assert_eq!(Chain(&Root).to_string(), "root cause");
    }
}
