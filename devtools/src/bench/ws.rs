//! WebSocket framing (RFC 6455) for the benchmark's load generator and echo stand-in, from
//! actix-http's codec, plus just enough HTTP/1.1 for the upgrade handshake.
//!
//! Why not the framework's whole WebSocket client/actor stack: the load generator drives
//! hundreds of calls from a few threads and must stay cheap next to the server it measures,
//! so each call is one plain task over a `TcpStream` with reused buffers. Only the framing
//! comes from actix-http: [`Codec`] decodes straight out of the read buffer (a payload is a
//! slice of it, unmasked in place), and [`Parser::write_message`] (what the codec's encoder
//! calls) encodes into the call's write buffer from a borrowed payload, where the encoder
//! would want an owned `Message` (a fresh string per frame). One `write` per batch of frames.

use actix_codec::Decoder as _;
use actix_http::ws::{hash_key, Parser};
pub use actix_http::ws::{Codec, Frame, OpCode, ProtocolError};
use bytes::BytesMut;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
#[must_use]
pub fn accept_key(key: &str) -> String {
    String::from_utf8_lossy(&hash_key(key.trim().as_bytes())).into_owned()
}

/// Appends one final (unfragmented) frame; `masked` from a client (a fresh random mask),
/// not from a server.
pub fn encode_frame(out: &mut BytesMut, opcode: OpCode, payload: &[u8], masked: bool) {
    Parser::write_message(out, payload, opcode, true, masked);
}

/// Decodes the next complete frame from the front of `buf`, removing it; `Ok(None)` until
/// one is complete. `codec` is in client mode on the caller's side (frames must be
/// unmasked) and server mode on the echo's (frames must be masked).
///
/// # Errors
/// A protocol violation: wrong masking, a bad opcode or length, an oversized frame.
pub fn decode_frame(codec: &mut Codec, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
    codec.decode(buf)
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
    use actix_http::ws::Item;

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
            // A client masks and a server reads masked frames; a server does not mask and a
            // client reads unmasked ones.
            for masked in [false, true] {
                let mut codec = Codec::new().max_size(1 << 20);
                if !masked {
                    codec = codec.client_mode();
                }
                let mut buf = BytesMut::new();
                encode_frame(&mut buf, OpCode::Binary, &payload, masked);
                let whole = buf.len();
                buf.extend_from_slice(b"\x89\x00");
                // Incomplete frames wait for more bytes.
                let mut partial = BytesMut::from(&buf[..whole - 1]);
                assert!(decode_frame(&mut codec, &mut partial).unwrap().is_none());
                let frame = decode_frame(&mut codec, &mut buf).unwrap().unwrap();
                assert_eq!(frame, Frame::Binary(payload.clone().into()), "len {len}");
                assert_eq!(&buf[..], b"\x89\x00");
            }
        }
    }

    #[test]
    fn masking_is_enforced_both_ways() {
        let mut masked = BytesMut::new();
        encode_frame(&mut masked, OpCode::Text, b"hi", true);
        let mut client = Codec::new().client_mode();
        assert!(decode_frame(&mut client, &mut masked.clone()).is_err());
        let mut server = Codec::new();
        assert_eq!(
            decode_frame(&mut server, &mut masked).unwrap(),
            Some(Frame::Text("hi".into()))
        );
        let mut plain = BytesMut::new();
        encode_frame(&mut plain, OpCode::Text, b"hi", false);
        assert!(decode_frame(&mut Codec::new(), &mut plain).is_err());
    }

    #[test]
    fn a_fragment_is_reported_as_a_continuation() {
        let mut buf = BytesMut::new();
        Parser::write_message(&mut buf, b"par", OpCode::Text, false, false);
        let mut client = Codec::new().client_mode();
        assert!(matches!(
            decode_frame(&mut client, &mut buf).unwrap(),
            Some(Frame::Continuation(Item::FirstText(_)))
        ));
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
