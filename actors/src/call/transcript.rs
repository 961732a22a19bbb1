//! The call's transcript, in the order things were said.
//!
//! The caller's words are transcribed asynchronously: their transcript can
//! arrive after the agent has already answered them. So a caller's turn takes
//! its place when the caller starts speaking (`speech_started`, which names
//! the user item) and its text fills that place when it arrives; the agent's
//! turns take theirs when their transcript is done. A segment's `seq` is its
//! place, so ordering by `seq` is the order spoken. Pure, no I/O.

use bytestring::ByteString;

use crate::ports::Role;

#[derive(Debug, Clone)]
struct Turn {
    role: Role,
    item_id: Option<ByteString>,
    text: Option<String>,
}

/// What was said so far.
#[derive(Debug, Default)]
pub struct Transcript {
    turns: Vec<Turn>,
}

impl Transcript {
    /// The caller started speaking into `item_id`: keep its place.
    pub fn reserve(&mut self, item_id: ByteString) {
        if !self
            .turns
            .iter()
            .any(|t| t.item_id.as_ref() == Some(&item_id))
        {
            self.turns.push(Turn {
                role: Role::User,
                item_id: Some(item_id),
                text: None,
            });
        }
    }

    /// Records words; returns their place and cleaned text, or `None` for
    /// nothing worth storing. NUL characters are dropped (PostgreSQL text
    /// cannot hold them).
    pub fn record(
        &mut self,
        role: Role,
        item_id: Option<ByteString>,
        text: &str,
    ) -> Option<(u32, String)> {
        let text = text.replace('\0', "");
        if text.trim().is_empty() {
            return None;
        }
        let reserved = item_id.as_ref().and_then(|id| {
            self.turns
                .iter()
                .position(|t| t.item_id.as_ref() == Some(id) && t.text.is_none())
        });
        let place = match reserved {
            Some(place) => place,
            None => {
                self.turns.push(Turn {
                    role,
                    item_id,
                    text: None,
                });
                self.turns.len() - 1
            }
        };
        if let Some(turn) = self.turns.get_mut(place) {
            turn.text = Some(text.clone());
        }
        Some((u32::try_from(place).unwrap_or(u32::MAX), text))
    }

    /// The turns with words, in order (the context a new connection is given).
    pub fn said(&self) -> Vec<(Role, String)> {
        self.turns
            .iter()
            .filter_map(|t| t.text.clone().map(|text| (t.role, text)))
            .collect()
    }

    /// How many turns have words.
    pub fn segments(&self) -> usize {
        self.turns.iter().filter(|t| t.text.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ByteString {
        ByteString::from(s.to_owned())
    }

    #[test]
    fn a_late_caller_transcript_keeps_its_place_before_the_answer() {
        let mut t = Transcript::default();
        assert_eq!(
            t.record(Role::Assistant, None, "Hello").map(|r| r.0),
            Some(0)
        );
        t.reserve(id("item_u1"));
        // The agent's answer is transcribed before the caller's question.
        assert_eq!(
            t.record(Role::Assistant, None, "We open at noon")
                .map(|r| r.0),
            Some(2)
        );
        assert_eq!(
            t.record(Role::User, Some(id("item_u1")), "When do you open?")
                .map(|r| r.0),
            Some(1)
        );
        assert_eq!(
            t.said(),
            vec![
                (Role::Assistant, "Hello".to_owned()),
                (Role::User, "When do you open?".to_owned()),
                (Role::Assistant, "We open at noon".to_owned()),
            ]
        );
    }

    #[test]
    fn empty_text_and_nul_bytes_are_not_stored() {
        let mut t = Transcript::default();
        assert_eq!(t.record(Role::User, None, "  "), None);
        assert_eq!(
            t.record(Role::User, None, "a\0b").map(|r| r.1),
            Some("ab".to_owned())
        );
        assert_eq!(t.segments(), 1);
    }

    #[test]
    fn an_unreserved_or_repeated_item_appends() {
        let mut t = Transcript::default();
        t.reserve(id("u1"));
        t.reserve(id("u1"));
        assert_eq!(
            t.record(Role::User, Some(id("u1")), "one").map(|r| r.0),
            Some(0)
        );
        assert_eq!(
            t.record(Role::User, Some(id("u1")), "again").map(|r| r.0),
            Some(1)
        );
        assert_eq!(
            t.record(Role::User, Some(id("u9")), "never reserved")
                .map(|r| r.0),
            Some(2)
        );
    }
}
