//! Just enough RFC 6455 (and HTTP/1.1) for the benchmark's load generator and echo
//! stand-in: the upgrade handshake, unfragmented frames, masking.
//!
//! Why not the framework's WebSocket stack: the load generator drives hundreds of calls
//! from a few threads and must stay cheap next to the server it measures, so each call is
//! one plain task over a `TcpStream` with reused buffers, and a frame is encoded straight
//! into the call's write buffer (one `write` per batch of frames). Fragmented messages are
//! not reassembled: neither actix nor the common Node `ws` library fragments text frames,
//! and a fragment is reported as a protocol error rather than misread.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;

/// The GUID RFC 6455 appends to `Sec-WebSocket-Key`.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
#[must_use]
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(WS_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Appends one final (unfragmented) frame; `mask` is required from a client, absent from a server.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(
                payload
                    .iter()
                    .zip(key.iter().cycle())
                    .map(|(byte, k)| byte ^ k),
            );
        }
        None => out.extend_from_slice(payload),
    }
}

/// A frame found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHead {
    /// The opcode.
    pub opcode: u8,
    /// FIN bit: `false` means a fragment.
    pub fin: bool,
    /// Where the (unmasked) payload lies in the buffer.
    pub payload: std::ops::Range<usize>,
    /// Bytes the whole frame takes.
    pub len: usize,
}

/// Decodes the frame at the start of `buf`, unmasking its payload in place.
/// `Ok(None)` when the frame is not complete yet.
///
/// # Errors
/// A length that does not fit in memory.
pub fn decode_frame(buf: &mut [u8]) -> Result<Option<FrameHead>, &'static str> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let len = usize::try_from(len).map_err(|_| "frame too large")?;
    let key = if masked {
        let Some(key) = buf
            .get(at..at + 4)
            .and_then(|k| <[u8; 4]>::try_from(k).ok())
        else {
            return Ok(None);
        };
        at += 4;
        Some(key)
    } else {
        None
    };
    let end = at.checked_add(len).ok_or("frame too large")?;
    let Some(payload) = buf.get_mut(at..end) else {
        return Ok(None);
    };
    if let Some(key) = key {
        for (byte, k) in payload.iter_mut().zip(key.iter().cycle()) {
            *byte ^= k;
        }
    }
    Ok(Some(FrameHead {
        opcode: b0 & 0x0f,
        fin: b0 & 0x80 != 0,
        payload: at..end,
        len: end,
    }))
}

/// The end of an HTTP head (`\r\n\r\n`) in `buf`: the index just after it.
#[must_use]
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A header's value in an HTTP head (case-insensitive name).
#[must_use]
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// The status code of an HTTP response head.
#[must_use]
pub fn status_code(head: &str) -> Option<u16> {
    head.split(' ').nth(1)?.parse().ok()
}

/// Decodes a `Transfer-Encoding: chunked` body; `None` if it is incomplete or malformed.
#[must_use]
pub fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(body.get(..line_end)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = body.get(line_end + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_round_trip_masked_and_unmasked_at_every_length_class() {
        for len in [0usize, 5, 125, 126, 300, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut buf = Vec::new();
                encode_frame(&mut buf, OP_TEXT, &payload, mask);
                buf.extend_from_slice(b"next");
                // Incomplete frames wait for more bytes.
                let mut partial = buf[..buf.len() - 5].to_vec();
                assert_eq!(decode_frame(&mut partial).unwrap(), None);
                let head = decode_frame(&mut buf).unwrap().unwrap();
                assert_eq!(head.opcode, OP_TEXT);
                assert!(head.fin);
                assert_eq!(&buf[head.payload.clone()], &payload[..]);
                assert_eq!(&buf[head.len..], b"next");
            }
        }
    }

    #[test]
    fn http_helpers_read_heads_and_chunked_bodies() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n";
        assert_eq!(head_end(head.as_bytes()), Some(head.len()));
        assert_eq!(status_code(head), Some(200));
        assert_eq!(header(head, "content-length"), Some("5"));
        assert_eq!(header(head, "missing"), None);
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
        assert_eq!(dechunk(b"3\r\nab"), None);
    }
}
