//! μ-law frames the simulated caller sends, tagged so that echoed audio can be traced back.
//!
//! Each 20 ms frame (160 bytes of G.711 μ-law, 8 kHz) starts with an 11-byte tag:
//! a 3-byte magic `00 A5 5A`, the call's tag (u32, big-endian) and the frame index (u32,
//! big-endian); the remaining 149 bytes are μ-law silence (`0xFF`). The echo stand-in and
//! a correct engine pass the bytes through untouched, so every frame that comes back names
//! the call and the frame it came from: lost, reordered, duplicated and foreign (another
//! call's) frames are all visible. The [`TagScanner`] finds tags at any byte offset and
//! across payload boundaries, so an engine that re-chunks audio is still traceable.
//!
//! `0x00` is the loudest negative μ-law sample: neither silence nor the stand-in's agent
//! tone contains it, so the magic does not occur by accident in stand-in audio.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;

/// Bytes in one 20 ms μ-law frame at 8 kHz.
pub const FRAME_BYTES: usize = 160;

/// Milliseconds of audio in one frame.
pub const FRAME_MS: u64 = 20;

/// Microseconds of audio per μ-law byte (8000 samples per second, one byte each).
pub const MICROS_PER_MULAW_BYTE: u64 = 125;

/// μ-law silence.
pub const MULAW_SILENCE: u8 = 0xFF;

/// First bytes of every tagged frame.
const TAG_MAGIC: [u8; 3] = [0x00, 0xA5, 0x5A];

/// Length of the tag at the start of a frame: magic, call tag, frame index.
pub const TAG_LEN: usize = 11;

/// What a tagged frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FrameTag {
    /// The per-call tag (tells calls apart).
    pub call_tag: u32,
    /// The frame's index in its call, counting from 0.
    pub index: u32,
}

/// The 160-byte frame number `index` of the call tagged `call_tag`.
#[must_use]
pub fn tagged_frame(call_tag: u32, index: u32) -> [u8; FRAME_BYTES] {
    let mut frame = [MULAW_SILENCE; FRAME_BYTES];
    let mut tag = [0u8; TAG_LEN];
    let (magic, rest) = tag.split_at_mut(TAG_MAGIC.len());
    magic.copy_from_slice(&TAG_MAGIC);
    let (call, idx) = rest.split_at_mut(4);
    call.copy_from_slice(&call_tag.to_be_bytes());
    idx.copy_from_slice(&index.to_be_bytes());
    if let Some(head) = frame.get_mut(..TAG_LEN) {
        head.copy_from_slice(&tag);
    }
    frame
}

/// [`tagged_frame`] as base64, the form a Twilio `media.payload` carries.
#[must_use]
pub fn tagged_frame_base64(call_tag: u32, index: u32) -> String {
    STANDARD.encode(tagged_frame(call_tag, index))
}

/// Reads the tag at the very start of `bytes`, if there is one.
#[must_use]
pub fn read_tag(bytes: &[u8]) -> Option<FrameTag> {
    let tag = bytes.get(..TAG_LEN)?;
    let (magic, rest) = tag.split_at(TAG_MAGIC.len());
    if magic != TAG_MAGIC {
        return None;
    }
    let (call, idx) = rest.split_at(4);
    Some(FrameTag {
        call_tag: u32::from_be_bytes(call.try_into().ok()?),
        index: u32::from_be_bytes(idx.try_into().ok()?),
    })
}

/// Reads the tag of a base64 payload's first frame (decoding only what it needs).
#[must_use]
pub fn read_tag_base64(payload_b64: &str) -> Option<FrameTag> {
    // 16 base64 characters are 12 bytes, enough for the 11-byte tag.
    let head = payload_b64.get(..16)?;
    let bytes = STANDARD.decode(head).ok()?;
    read_tag(&bytes)
}

/// Finds frame tags in a stream of audio delivered in arbitrary pieces.
///
/// Keeps the last `TAG_LEN - 1` bytes of each piece so a tag split across two payloads is
/// still found, and never reports a tag twice.
#[derive(Debug, Default, Clone)]
pub struct TagScanner {
    carry: Vec<u8>,
}

impl TagScanner {
    /// A scanner that has seen nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans the next piece of the stream, appending the tags found to `found`.
    pub fn scan(&mut self, bytes: &[u8], found: &mut Vec<FrameTag>) {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        let mut start = 0;
        while start + TAG_LEN <= data.len() {
            let window = data.get(start..).unwrap_or_default();
            match window.iter().position(|&b| b == TAG_MAGIC[0]) {
                Some(offset) if start + offset + TAG_LEN <= data.len() => {
                    let at = start + offset;
                    if let Some(tag) = data.get(at..).and_then(read_tag) {
                        found.push(tag);
                        start = at + TAG_LEN;
                    } else {
                        start = at + 1;
                    }
                }
                Some(offset) => {
                    start += offset;
                    break;
                }
                None => {
                    start = data.len();
                    break;
                }
            }
        }
        // Keep what could still begin a tag completed by the next piece.
        let keep_from = start.max(data.len().saturating_sub(TAG_LEN - 1));
        self.carry = data.get(keep_from..).unwrap_or_default().to_vec();
    }
}

/// The number of bytes a canonical padded base64 text decodes to (no decoding done).
#[must_use]
pub fn base64_decoded_len(b64: &str) -> usize {
    let padding = b64.bytes().rev().take_while(|&b| b == b'=').count().min(2);
    (b64.len() / 4 * 3).saturating_sub(padding)
}

/// Milliseconds of μ-law audio in `bytes` bytes, rounded down.
#[must_use]
pub fn mulaw_ms(bytes: u64) -> u64 {
    bytes / 8
}

/// One 20 ms frame of the stand-in agent's "voice": a 400 Hz square wave in μ-law.
#[must_use]
pub fn agent_tone_frame() -> [u8; FRAME_BYTES] {
    let mut frame = [0u8; FRAME_BYTES];
    for (i, byte) in frame.iter_mut().enumerate() {
        // 8000 Hz / 400 Hz = 20 samples per period: 10 high, 10 low (μ-law ±~2000).
        *byte = if (i / 10) % 2 == 0 { 0x9F } else { 0x1F };
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_the_rest_is_silence() {
        let frame = tagged_frame(0xDEAD_BEEF, 1234);
        assert_eq!(
            read_tag(&frame),
            Some(FrameTag {
                call_tag: 0xDEAD_BEEF,
                index: 1234
            })
        );
        assert!(frame[TAG_LEN..].iter().all(|&b| b == MULAW_SILENCE));
        let b64 = tagged_frame_base64(7, u32::MAX);
        assert_eq!(b64.len(), 216);
        assert_eq!(
            read_tag_base64(&b64),
            Some(FrameTag {
                call_tag: 7,
                index: u32::MAX
            })
        );
        assert_eq!(base64_decoded_len(&b64), FRAME_BYTES);
    }

    #[test]
    fn untagged_audio_has_no_tag() {
        assert_eq!(read_tag(&[MULAW_SILENCE; FRAME_BYTES]), None);
        assert_eq!(read_tag(&agent_tone_frame()), None);
        assert_eq!(read_tag(&[0x00, 0xA5]), None);
        assert_eq!(read_tag_base64("////"), None);
        assert_eq!(read_tag_base64("not base64 at all!!"), None);
        let mut found = Vec::new();
        let mut scanner = TagScanner::new();
        for _ in 0..10 {
            scanner.scan(&agent_tone_frame(), &mut found);
            scanner.scan(&[MULAW_SILENCE; 37], &mut found);
        }
        assert!(found.is_empty());
    }

    #[test]
    fn scanner_finds_tags_at_any_offset_and_across_pieces() {
        // Arrange: 20 frames concatenated, then cut into odd-sized pieces.
        let mut stream = Vec::new();
        for i in 0..20 {
            stream.extend_from_slice(&tagged_frame(42, i));
        }
        stream.insert(0, 0x00); // misalign everything by one byte
        for piece in [1usize, 5, 7, 11, 13, 160, 333] {
            // Act
            let mut scanner = TagScanner::new();
            let mut found = Vec::new();
            for chunk in stream.chunks(piece) {
                scanner.scan(chunk, &mut found);
            }
            // Assert
            let indices: Vec<u32> = found.iter().map(|t| t.index).collect();
            assert_eq!(indices, (0..20).collect::<Vec<_>>(), "piece size {piece}");
            assert!(found.iter().all(|t| t.call_tag == 42));
        }
    }

    #[test]
    fn decoded_length_counts_padding() {
        assert_eq!(base64_decoded_len(""), 0);
        assert_eq!(base64_decoded_len("AAAA"), 3);
        assert_eq!(base64_decoded_len("AAA="), 2);
        assert_eq!(base64_decoded_len("AA=="), 1);
        assert_eq!(mulaw_ms(160), 20);
    }
}
