//! What the caller actually heard, counted from acknowledged marks.
//!
//! Every chunk of agent audio sent to Twilio is followed by a numbered mark;
//! Twilio echoes a mark once everything queued before it has played (or when
//! a `clear` discards it). So the newest acknowledged mark tells exactly how
//! much of an answer was heard: that, not wall-clock time, is the
//! `audio_end_ms` a truncate needs. Pure bookkeeping, no I/O.

use std::collections::VecDeque;

use bytestring::ByteString;

/// μ-law at 8 kHz: 8 bytes of audio per millisecond.
const MULAW_BYTES_PER_MS: u64 = 8;

/// Milliseconds of μ-law audio in a base64 payload, without decoding it.
pub fn mulaw_ms_from_base64(payload: &str) -> u64 {
    let len = payload.len() as u64;
    let padding = payload.bytes().rev().take(2).filter(|b| *b == b'=').count() as u64;
    let bytes = (len / 4 * 3).saturating_sub(padding);
    bytes / MULAW_BYTES_PER_MS
}

/// A mark sent and not yet acknowledged.
#[derive(Debug, Clone)]
struct PendingMark {
    mark: u64,
    item_id: ByteString,
    /// Milliseconds of this item sent up to and including the chunk before the mark.
    end_ms: u64,
    /// Base64 bytes of the chunk before the mark.
    bytes: usize,
}

/// What to do about a caller who started speaking over the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    /// The assistant item being played.
    pub item_id: ByteString,
    /// How much of it the caller heard.
    pub audio_end_ms: u64,
}

/// Agent audio in flight to the caller.
#[derive(Debug, Default)]
pub struct Playback {
    next_mark: u64,
    pending: VecDeque<PendingMark>,
    /// The item audio is being sent for, and how much of it was sent.
    sending: Option<(ByteString, u64)>,
    /// The newest acknowledged point: an item and how much of it played.
    heard: Option<(ByteString, u64)>,
    /// Base64 bytes sent and not yet acknowledged: in the socket's queue, on
    /// the wire, or in Twilio's buffer waiting to be played.
    in_flight: usize,
}

impl Playback {
    /// Records a chunk of `item_id`'s audio sent to Twilio; returns the mark
    /// number to send right after it.
    pub fn audio_sent(&mut self, item_id: &ByteString, payload_b64: &str) -> u64 {
        let ms = mulaw_ms_from_base64(payload_b64);
        let sent = match &mut self.sending {
            Some((item, sent)) if item == item_id => {
                *sent += ms;
                *sent
            }
            _ => {
                self.sending = Some((item_id.clone(), ms));
                ms
            }
        };
        let mark = self.next_mark;
        self.next_mark += 1;
        self.pending.push_back(PendingMark {
            mark,
            item_id: item_id.clone(),
            end_ms: sent,
            bytes: payload_b64.len(),
        });
        self.in_flight += payload_b64.len();
        mark
    }

    /// Twilio acknowledged `mark`: everything up to it has played (marks are
    /// acknowledged in order). Unknown or stale marks (after a clear) are ignored.
    pub fn mark_played(&mut self, mark: u64) {
        while let Some(front) = self.pending.front() {
            if front.mark > mark {
                break;
            }
            if let Some(done) = self.pending.pop_front() {
                self.in_flight = self.in_flight.saturating_sub(done.bytes);
                self.heard = Some((done.item_id, done.end_ms));
            }
        }
    }

    /// True when nothing sent is still waiting to be played.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Base64 bytes of agent audio sent and not yet played.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight
    }

    /// The caller started speaking. If agent audio is unplayed, returns what to
    /// truncate, and forgets the unplayed audio (the caller side is cleared).
    pub fn speech_started(&mut self) -> Option<Interruption> {
        let playing = self.pending.front()?.item_id.clone();
        let audio_end_ms = match &self.heard {
            Some((item, ms)) if *item == playing => *ms,
            _ => 0,
        };
        self.pending.clear();
        self.sending = None;
        self.in_flight = 0;
        Some(Interruption {
            item_id: playing,
            audio_end_ms,
        })
    }

    /// Forgets audio in flight (a new socket or a new agent connection) but
    /// keeps numbering marks from where it was, so a late mark of the old
    /// stream can never be taken for one of the new.
    pub fn forget_unplayed(&mut self) {
        self.pending.clear();
        self.sending = None;
        self.heard = None;
        self.in_flight = 0;
    }

    /// Parses our mark names (`m<number>`).
    pub fn parse_mark(name: &str) -> Option<u64> {
        name.strip_prefix('m')?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 160 bytes of μ-law (20 ms) in base64.
    fn chunk_20ms() -> String {
        "/".repeat(216) + "=="
    }

    fn item(id: &str) -> ByteString {
        ByteString::from(id.to_owned())
    }

    #[test]
    fn base64_length_gives_milliseconds_without_decoding() {
        assert_eq!(mulaw_ms_from_base64(&"A".repeat(216)), 20); // 162 bytes -> 20 ms
        assert_eq!(mulaw_ms_from_base64("AAAA"), 0);
        assert_eq!(mulaw_ms_from_base64(""), 0);
        assert_eq!(mulaw_ms_from_base64(&"A".repeat(1068)), 100); // 801 bytes
    }

    #[test]
    fn heard_audio_is_what_acknowledged_marks_cover() {
        // Arrange: five 20 ms chunks of one answer sent, two acknowledged.
        let mut playback = Playback::default();
        let marks: Vec<u64> = (0..5)
            .map(|_| playback.audio_sent(&item("item_1"), &"A".repeat(216)))
            .collect();
        playback.mark_played(marks[1]);
        // Act
        let cut = playback.speech_started();
        // Assert
        assert_eq!(
            cut,
            Some(Interruption {
                item_id: item("item_1"),
                audio_end_ms: 40
            })
        );
        assert!(playback.is_idle());
    }

    #[test]
    fn nothing_unplayed_means_no_interruption() {
        let mut playback = Playback::default();
        let mark = playback.audio_sent(&item("item_1"), &chunk_20ms());
        playback.mark_played(mark);
        assert_eq!(playback.speech_started(), None);
    }

    #[test]
    fn all_sent_but_none_played_truncates_at_zero() {
        let mut playback = Playback::default();
        playback.audio_sent(&item("item_1"), &"A".repeat(216));
        let cut = playback.speech_started().map(|c| c.audio_end_ms);
        assert_eq!(cut, Some(0));
    }

    #[test]
    fn a_new_answer_counts_from_zero_and_stale_marks_are_ignored() {
        let mut playback = Playback::default();
        let first = playback.audio_sent(&item("item_1"), &"A".repeat(216));
        playback.speech_started(); // cleared: mark `first` will come back, stale
        let second = playback.audio_sent(&item("item_2"), &"A".repeat(216));
        playback.audio_sent(&item("item_2"), &"A".repeat(216));
        playback.mark_played(first);
        assert!(!playback.is_idle());
        playback.mark_played(second);
        let cut = playback.speech_started();
        assert_eq!(
            cut,
            Some(Interruption {
                item_id: item("item_2"),
                audio_end_ms: 20
            })
        );
    }

    #[test]
    fn marks_stay_unique_after_forgetting() {
        let mut playback = Playback::default();
        let old = playback.audio_sent(&item("item_1"), &"A".repeat(216));
        playback.forget_unplayed();
        let new = playback.audio_sent(&item("item_2"), &"A".repeat(216));
        assert!(new > old);
        playback.mark_played(old); // the old socket's late mark
        assert!(!playback.is_idle(), "a stale mark does not count as played");
    }

    #[test]
    fn bytes_in_flight_are_those_not_yet_acknowledged() {
        let mut playback = Playback::default();
        let marks: Vec<u64> = (0..3)
            .map(|_| playback.audio_sent(&item("item_1"), &chunk_20ms()))
            .collect();
        assert_eq!(playback.in_flight_bytes(), 3 * 218);
        playback.mark_played(marks[1]);
        assert_eq!(playback.in_flight_bytes(), 218);
        playback.speech_started(); // cleared: nothing of it will play
        assert_eq!(playback.in_flight_bytes(), 0);
    }

    #[test]
    fn mark_names_round_trip() {
        assert_eq!(Playback::parse_mark("m17"), Some(17));
        assert_eq!(Playback::parse_mark("x17"), None);
        assert_eq!(Playback::parse_mark("m"), None);
        assert_eq!(Playback::parse_mark("m-1"), None);
    }
}
