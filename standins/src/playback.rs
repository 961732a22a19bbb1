//! Twilio's outbound playback, as a pure timeline: what a caller hears, and when marks return.
//!
//! Twilio queues the `media` the engine sends and plays it in real time (N bytes of μ-law
//! last N/8 ms); a `mark` comes back once all audio queued before it has played, at once if
//! nothing is queued; `clear` discards the unplayed audio and returns every pending mark
//! immediately. This struct models exactly that with times passed in (microseconds since
//! the stream started), so it is tested without sleeping and the simulated caller only
//! has to wake up at [`Playback::next_due`].

use std::collections::VecDeque;

use super::audio::MICROS_PER_MULAW_BYTE;

/// The outcome of a `clear`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    /// Unplayed audio thrown away, in microseconds.
    pub discarded_us: u64,
    /// Marks returned by the clear, in the order they were sent.
    pub released_marks: Vec<String>,
}

/// Queued outbound audio and pending marks on a time line.
#[derive(Debug, Clone, Default)]
pub struct Playback {
    /// When everything queued so far will have played.
    busy_until_us: u64,
    /// Marks not yet returned: (time their audio has played, name), in order.
    pending_marks: VecDeque<(u64, String)>,
    /// All audio ever queued.
    queued_total_us: u64,
    /// Audio thrown away by `clear`.
    discarded_total_us: u64,
}

impl Playback {
    /// Nothing queued.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `bytes` of μ-law received at `now_us`; it plays after what is already queued.
    pub fn push_audio(&mut self, now_us: u64, bytes: usize) {
        let duration = u64::try_from(bytes)
            .unwrap_or(u64::MAX)
            .saturating_mul(MICROS_PER_MULAW_BYTE);
        let start = self.busy_until_us.max(now_us);
        self.busy_until_us = start.saturating_add(duration);
        self.queued_total_us = self.queued_total_us.saturating_add(duration);
    }

    /// Queues a mark received at `now_us`: due when the audio queued before it has played.
    pub fn push_mark(&mut self, now_us: u64, name: String) {
        let due = self.busy_until_us.max(now_us);
        self.pending_marks.push_back((due, name));
    }

    /// Removes and returns, in order, the marks whose audio has played by `now_us`.
    pub fn take_due_marks(&mut self, now_us: u64) -> Vec<String> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.pending_marks.front() {
            if *at > now_us {
                break;
            }
            if let Some((_, name)) = self.pending_marks.pop_front() {
                due.push(name);
            }
        }
        due
    }

    /// When the next pending mark becomes due, if any.
    #[must_use]
    pub fn next_due(&self) -> Option<u64> {
        self.pending_marks.front().map(|(at, _)| *at)
    }

    /// `clear` at `now_us`: unplayed audio is dropped and every pending mark returns now.
    pub fn clear(&mut self, now_us: u64) -> Cleared {
        let discarded_us = self.busy_until_us.saturating_sub(now_us);
        self.busy_until_us = self.busy_until_us.min(now_us);
        self.discarded_total_us = self.discarded_total_us.saturating_add(discarded_us);
        Cleared {
            discarded_us,
            released_marks: self.pending_marks.drain(..).map(|(_, name)| name).collect(),
        }
    }

    /// Audio still waiting to play at `now_us`, in microseconds.
    #[must_use]
    pub fn queued_us(&self, now_us: u64) -> u64 {
        self.busy_until_us.saturating_sub(now_us)
    }

    /// Audio the caller has heard by `now_us`, in microseconds.
    #[must_use]
    pub fn played_us(&self, now_us: u64) -> u64 {
        self.queued_total_us
            .saturating_sub(self.discarded_total_us)
            .saturating_sub(self.queued_us(now_us))
    }

    /// Audio thrown away by `clear` so far, in microseconds.
    #[must_use]
    pub fn discarded_us(&self) -> u64 {
        self.discarded_total_us
    }

    /// The number of marks not yet returned.
    #[must_use]
    pub fn pending_marks(&self) -> usize {
        self.pending_marks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;

    #[test]
    fn a_mark_with_nothing_queued_is_due_at_once() {
        let mut playback = Playback::new();
        playback.push_mark(5 * MS, "m0".to_owned());
        assert_eq!(playback.next_due(), Some(5 * MS));
        assert_eq!(playback.take_due_marks(5 * MS), ["m0"]);
        assert_eq!(playback.next_due(), None);
    }

    #[test]
    fn marks_return_when_the_audio_before_them_has_played() {
        // Arrange: 100 ms of audio at t=0, a mark, 40 ms more, a second mark.
        let mut playback = Playback::new();
        playback.push_audio(0, 800);
        playback.push_mark(0, "after_100".to_owned());
        playback.push_audio(10 * MS, 320);
        playback.push_mark(10 * MS, "after_140".to_owned());

        // Act + Assert
        assert_eq!(playback.next_due(), Some(100 * MS));
        assert!(playback.take_due_marks(99 * MS).is_empty());
        assert_eq!(playback.take_due_marks(100 * MS), ["after_100"]);
        assert_eq!(playback.next_due(), Some(140 * MS));
        assert_eq!(playback.take_due_marks(500 * MS), ["after_140"]);
        assert_eq!(playback.played_us(500 * MS), 140 * MS);
    }

    #[test]
    fn audio_arriving_after_a_gap_starts_when_it_arrives() {
        let mut playback = Playback::new();
        playback.push_audio(0, 160);
        playback.push_audio(50 * MS, 160);
        playback.push_mark(50 * MS, "m".to_owned());
        assert_eq!(playback.next_due(), Some(70 * MS));
        assert_eq!(playback.queued_us(60 * MS), 10 * MS);
        assert_eq!(playback.played_us(60 * MS), 30 * MS);
    }

    #[test]
    fn clear_discards_unplayed_audio_and_releases_marks_in_order() {
        // Arrange: 1 s of audio in 20 ms frames, a mark after each.
        let mut playback = Playback::new();
        for i in 0..50 {
            playback.push_audio(0, 160);
            playback.push_mark(0, format!("m{i}"));
        }
        assert_eq!(playback.take_due_marks(300 * MS).len(), 15);

        // Act
        let cleared = playback.clear(310 * MS);

        // Assert
        assert_eq!(cleared.discarded_us, 690 * MS);
        assert_eq!(cleared.released_marks.len(), 35);
        assert_eq!(
            cleared.released_marks.first().map(String::as_str),
            Some("m15")
        );
        assert_eq!(
            cleared.released_marks.last().map(String::as_str),
            Some("m49")
        );
        assert_eq!(playback.pending_marks(), 0);
        assert_eq!(playback.played_us(2000 * MS), 310 * MS);
        assert_eq!(playback.discarded_us(), 690 * MS);

        // New audio after the clear plays from the clear on.
        playback.push_audio(320 * MS, 160);
        playback.push_mark(320 * MS, "next".to_owned());
        assert_eq!(playback.next_due(), Some(340 * MS));
    }

    #[test]
    fn clear_with_nothing_queued_discards_nothing() {
        let mut playback = Playback::new();
        playback.push_audio(0, 160);
        let cleared = playback.clear(100 * MS);
        assert_eq!(cleared.discarded_us, 0);
        assert!(cleared.released_marks.is_empty());
        assert_eq!(playback.played_us(100 * MS), 20 * MS);
    }
}
