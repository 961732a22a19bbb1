//! Formats an error with its whole `source()` chain, so a cause is logged once,
//! where the error is handled, as `outer: inner: root` (zero2prod's
//! `error_chain_fmt`). Error types keep their cause as a source and leave it
//! out of their own Display, so no link is printed twice.

use std::error::Error;
use std::fmt;

/// Writes `e` and each of its sources, separated by `": "`.
pub fn error_chain_fmt(e: &dyn Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{e}")?;
    let mut current = e.source();
    while let Some(cause) = current {
        write!(f, ": {cause}")?;
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

    #[test]
    fn an_error_without_source_is_itself() {
        assert_eq!(Chain(&Root).to_string(), "root cause");
    }
}
