//! Caller audio held by a socket while its call's actor is being found:
//! bounded in bytes (a frame's size is the sender's choice, a frame count is
//! no bound), in order, counted when dropped so the drop is logged once.

use bytestring::ByteString;

/// Held payloads (slices of the received frames, not copies).
#[derive(Debug)]
pub struct HeldAudio {
    frames: Vec<ByteString>,
    bytes: usize,
    max_bytes: usize,
    dropped: u64,
}

impl HeldAudio {
    /// Holds at most `max_bytes` of base64 payload.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            frames: Vec::with_capacity(16),
            bytes: 0,
            max_bytes,
            dropped: 0,
        }
    }

    /// Holds `payload`, or drops (and counts) it when the bound is reached.
    pub fn push(&mut self, payload: ByteString) {
        if self.bytes.saturating_add(payload.len()) > self.max_bytes {
            self.dropped += 1;
            return;
        }
        self.bytes += payload.len();
        self.frames.push(payload);
    }

    /// Payloads dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The held payloads, in order.
    pub fn into_frames(self) -> Vec<ByteString> {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_in_bytes_and_drops_are_counted() {
        let mut held = HeldAudio::new(500);
        held.push(ByteString::from("a".repeat(216)));
        held.push(ByteString::from("b".repeat(216)));
        held.push(ByteString::from("c".repeat(216))); // 648 > 500
        held.push(ByteString::from("d".repeat(60)));
        assert_eq!(held.dropped(), 1);
        assert_eq!(held.bytes(), 492);
        let frames = held.into_frames();
        assert_eq!(frames.len(), 3);
        assert!(frames[2].starts_with('d'));
    }
}
