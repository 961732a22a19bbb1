//! How much audio a call may keep, in bytes and in time, and how what is
//! dropped is counted.
//!
//! Caller audio that arrives before the agent's session is configured
//! (`session.updated`) is held in a [`HeldAudio`]: at most `max_ms` of audio
//! and `max_bytes` of base64, whichever is reached first. When it is full the
//! **oldest** audio goes: what is kept then ends where the live audio that
//! follows begins, so the agent hears the caller's latest words without a gap
//! (dropping the newest would splice old words onto live ones, a cut in the
//! middle of a sentence that voice detection takes for speech). Holding the
//! newest two seconds also bounds how stale held audio can be, however long
//! the session takes to open.
//!
//! Drops are counted in a [`DropBurst`]: a run of drops is reported once,
//! with its frames and bytes, when it ends, never one line per frame.
//! Durations come from the payload's length (no base64 decode). Pure, no I/O.

use std::collections::VecDeque;

use bytestring::ByteString;

use super::barge_in::mulaw_ms_from_base64;

/// Base64 length of a 20 ms μ-law frame (160 bytes): the least a held frame
/// is charged, so that many tiny frames cannot slip under the byte bound
/// (each one also holds its whole received text frame).
pub const FRAME_B64_BYTES: usize = 216;

/// The bounds of held caller audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldLimits {
    /// Base64 bytes held at most.
    pub max_bytes: usize,
    /// Milliseconds of audio held at most.
    pub max_ms: u64,
}

/// Frames and bytes dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Frames (or chunks) dropped.
    pub frames: u64,
    /// Their base64 bytes.
    pub bytes: u64,
}

/// Counts drops and closes them into bursts, each reported once.
#[derive(Debug, Default)]
pub struct DropBurst {
    open: Dropped,
    total: Dropped,
    reports: u64,
}

impl DropBurst {
    /// One frame of `bytes` was dropped.
    pub fn drop_frame(&mut self, bytes: usize) {
        let bytes = bytes as u64;
        self.open.frames += 1;
        self.open.bytes += bytes;
        self.total.frames += 1;
        self.total.bytes += bytes;
    }

    /// Ends the current burst: its counts, once, or `None` if nothing was
    /// dropped since the last one ended.
    pub fn close(&mut self) -> Option<Dropped> {
        if self.open.frames == 0 {
            return None;
        }
        self.reports += 1;
        Some(std::mem::take(&mut self.open))
    }

    /// Everything dropped so far, reported or not.
    pub fn total(&self) -> Dropped {
        self.total
    }

    /// Bursts reported so far.
    pub fn reports(&self) -> u64 {
        self.reports
    }
}

/// Caller audio held until the agent's session is ready, bounded by [`HoldLimits`].
#[derive(Debug)]
pub struct HeldAudio {
    frames: VecDeque<ByteString>,
    /// Bytes charged (see [`FRAME_B64_BYTES`]).
    charged: usize,
    ms: u64,
    limits: HoldLimits,
    drops: DropBurst,
}

fn charge(payload: &str) -> usize {
    payload.len().max(FRAME_B64_BYTES)
}

impl HeldAudio {
    /// An empty hold with these bounds.
    pub fn new(limits: HoldLimits) -> Self {
        Self {
            frames: VecDeque::new(),
            charged: 0,
            ms: 0,
            limits,
            drops: DropBurst::default(),
        }
    }

    /// Holds `payload`, dropping the oldest frames to make room. A frame that
    /// alone exceeds a bound is dropped itself.
    pub fn push(&mut self, payload: ByteString) {
        let (bytes, ms) = (charge(&payload), mulaw_ms_from_base64(&payload));
        if bytes > self.limits.max_bytes || ms > self.limits.max_ms {
            self.drops.drop_frame(payload.len());
            return;
        }
        while self.charged + bytes > self.limits.max_bytes || self.ms + ms > self.limits.max_ms {
            let Some(oldest) = self.frames.pop_front() else {
                break;
            };
            self.charged -= charge(&oldest);
            self.ms -= mulaw_ms_from_base64(&oldest);
            self.drops.drop_frame(oldest.len());
        }
        self.charged += bytes;
        self.ms += ms;
        self.frames.push_back(payload);
    }

    /// Takes everything held, oldest first.
    pub fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, ByteString> {
        self.charged = 0;
        self.ms = 0;
        self.frames.drain(..)
    }

    /// Frames held.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Base64 bytes held (as sent, not as charged).
    pub fn bytes(&self) -> usize {
        self.frames.iter().map(|f| f.len()).sum()
    }

    /// Milliseconds of audio held.
    pub fn ms(&self) -> u64 {
        self.ms
    }

    /// What was dropped.
    pub fn drops(&mut self) -> &mut DropBurst {
        &mut self.drops
    }

    /// What was dropped (read only).
    pub fn drop_counts(&self) -> &DropBurst {
        &self.drops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20 ms frame whose text says which one it is.
    fn frame(i: usize) -> ByteString {
        ByteString::from(format!("{i:0>216}"))
    }

    #[test]
    fn the_time_bound_keeps_the_newest_audio() {
        // Arrange: 2 s of audio, bytes plentiful.
        let mut held = HeldAudio::new(HoldLimits {
            max_bytes: 1 << 20,
            max_ms: 2_000,
        });
        // Act: 3 s arrive.
        for i in 0..150 {
            held.push(frame(i));
        }
        // Assert: the last 100 frames, in order; 50 dropped, not yet reported.
        assert_eq!(
            (held.frames(), held.ms(), held.bytes()),
            (100, 2_000, 21_600)
        );
        let kept: Vec<ByteString> = held.drain().collect();
        assert_eq!(kept.first(), Some(&frame(50)));
        assert_eq!(kept.last(), Some(&frame(149)));
        assert_eq!(
            held.drops().total(),
            Dropped {
                frames: 50,
                bytes: 50 * 216
            }
        );
        assert_eq!(held.drop_counts().reports(), 0);
    }

    #[test]
    fn the_byte_bound_holds_for_tiny_and_for_huge_frames() {
        let mut held = HeldAudio::new(HoldLimits {
            max_bytes: 10 * FRAME_B64_BYTES,
            max_ms: 60_000,
        });
        // Tiny frames are charged as whole frames: ten at most.
        for _ in 0..25 {
            held.push(ByteString::from_static("AAAA"));
        }
        assert_eq!(held.frames(), 10);
        // A frame larger than the whole bound is dropped itself; what is held stays.
        held.push(ByteString::from("A".repeat(11 * FRAME_B64_BYTES)));
        assert_eq!(held.frames(), 10);
        assert_eq!(
            held.drops().total(),
            Dropped {
                frames: 16,
                bytes: 15 * 4 + 11 * 216
            }
        );
    }

    #[test]
    fn a_burst_is_reported_once_with_its_counts() {
        let mut burst = DropBurst::default();
        assert_eq!(burst.close(), None, "nothing dropped, nothing to report");
        burst.drop_frame(216);
        burst.drop_frame(216);
        assert_eq!(
            burst.close(),
            Some(Dropped {
                frames: 2,
                bytes: 432
            })
        );
        assert_eq!(burst.close(), None, "reported once");
        burst.drop_frame(10);
        assert_eq!(burst.close().map(|d| d.frames), Some(1));
        assert_eq!(burst.reports(), 2);
        assert_eq!(burst.total().frames, 3);
    }
}
