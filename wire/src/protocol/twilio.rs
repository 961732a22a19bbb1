//! Twilio Media Streams messages (bidirectional `<Connect><Stream>`), both directions.
//!
//! The engine side parses what Twilio sends ([`parse_inbound`]) and writes `media`, `mark`
//! and `clear` back ([`write_media`], [`write_mark`], [`write_clear`]). The simulated caller
//! used by tests and benchmarks plays Twilio's part with the `write_connected` … `write_stop`
//! writers and [`parse_outbound`].
//!
//! Design: an inbound frame arrives every 20 ms per call, so parsing is one serde pass into a
//! flat struct of borrowed optional fields, then a match on `event`. The base64 μ-law
//! payload is borrowed from the frame and checked against the base64 alphabet, never
//! decoded. Writers append exactly Twilio's documented shapes to a caller-owned `String`.

use std::borrow::Cow;

use serde::Deserialize;

use super::json::{push_escaped, push_string, push_u64_string, LenientU64, Text};
use super::{check_size, is_base64, ProtocolError};

/// Largest Twilio → server frame accepted (64 KiB). Real frames are ~300 bytes (media) to a
/// few KiB (`start` with custom parameters); anything bigger is not Twilio.
pub const MAX_TWILIO_FRAME_BYTES: usize = 64 * 1024;

/// Largest server → Twilio frame [`parse_outbound`] accepts (4 MiB): the engine may forward a
/// whole OpenAI audio delta as one `media` message.
pub const MAX_TWILIO_OUTBOUND_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// A message Twilio sends on a media stream, borrowing from the frame text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioInbound<'a> {
    /// `connected`: the first message on the socket.
    Connected,
    /// `start`: the stream's identifiers and `<Parameter>` values.
    Start(StartInfo<'a>),
    /// `media`: 20 ms of caller audio.
    Media {
        /// Top-level `streamSid`, if present.
        stream_sid: Option<&'a str>,
        /// `media.track` (`inbound` for `<Connect>`), if present.
        track: Option<&'a str>,
        /// `media.chunk`: the chunk number, counting from 1.
        chunk: u64,
        /// `media.timestamp`: milliseconds since the stream started.
        timestamp: u64,
        /// `media.payload`: base64 μ-law 8 kHz mono, checked for the base64 alphabet, not decoded.
        payload: &'a str,
    },
    /// `mark`: a mark we sent has played (or was discarded by `clear`).
    Mark {
        /// `mark.name`, as we sent it.
        name: Cow<'a, str>,
    },
    /// `dtmf`: the caller pressed a key.
    Dtmf {
        /// `dtmf.digit`: `0`-`9`, `*` or `#`.
        digit: Cow<'a, str>,
    },
    /// `stop`: the stream ended; the socket closes next.
    Stop,
    /// Any other `event`, tolerated so that new Twilio events do not break calls.
    Unknown {
        /// The `event` value.
        event: &'a str,
    },
}

/// The content of a `start` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo<'a> {
    /// `start.streamSid` (falls back to the top-level `streamSid`).
    pub stream_sid: &'a str,
    /// `start.callSid`.
    pub call_sid: &'a str,
    /// `start.accountSid`, if present (Twilio always sends it; clones may not).
    pub account_sid: Option<&'a str>,
    /// `start.customParameters`: the `<Parameter>` name/value pairs, in frame order.
    pub custom_parameters: CustomParameters<'a>,
    /// `start.mediaFormat.encoding`, e.g. `audio/x-mulaw`.
    pub encoding: Option<Cow<'a, str>>,
    /// `start.mediaFormat.sampleRate`, e.g. 8000.
    pub sample_rate: Option<u64>,
    /// `start.mediaFormat.channels`, e.g. 1.
    pub channels: Option<u64>,
}

/// `<Parameter>` name/value pairs from `start.customParameters`, in frame order.
///
/// A small list rather than a map: there are a handful of entries, read once per call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomParameters<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl CustomParameters<'_> {
    /// The value of the first parameter called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_ref())
    }

    /// All pairs, in frame order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// The number of pairs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when Twilio sent no parameters.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Owned copies of the pairs, for keeping beyond the frame's lifetime.
    #[must_use]
    pub fn to_owned_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CustomParameters<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> serde::de::Visitor<'de> for PairsVisitor<'a> {
            type Value = CustomParameters<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of string parameters")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::new();
                while let Some((Text(key), Text(value))) = map.next_entry::<Text, Text>()? {
                    pairs.push((key, value));
                }
                Ok(CustomParameters(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor(std::marker::PhantomData))
    }
}

/// A message the engine sends to Twilio, as parsed by the simulated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioOutbound<'a> {
    /// `media`: audio to play to the caller (base64, checked, not decoded).
    Media {
        /// `media.payload`.
        payload: &'a str,
    },
    /// `mark`: ask Twilio to echo `name` once the audio queued before it has played.
    Mark {
        /// `mark.name`.
        name: Cow<'a, str>,
    },
    /// `clear`: drop all queued audio (barge-in).
    Clear,
    /// Any other `event`.
    Unknown {
        /// The `event` value.
        event: &'a str,
    },
}

/// Every Twilio frame, flattened: one serde pass fills whichever parts are present.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFrame<'a> {
    #[serde(borrow)]
    event: Option<&'a str>,
    #[serde(borrow)]
    stream_sid: Option<&'a str>,
    #[serde(borrow)]
    start: Option<RawStart<'a>>,
    #[serde(borrow)]
    media: Option<RawMedia<'a>>,
    #[serde(borrow)]
    mark: Option<RawMark<'a>>,
    #[serde(borrow)]
    dtmf: Option<RawDtmf<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStart<'a> {
    #[serde(borrow)]
    stream_sid: Option<&'a str>,
    #[serde(borrow)]
    account_sid: Option<&'a str>,
    #[serde(borrow)]
    call_sid: Option<&'a str>,
    #[serde(borrow)]
    custom_parameters: Option<CustomParameters<'a>>,
    #[serde(borrow)]
    media_format: Option<RawMediaFormat<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMediaFormat<'a> {
    #[serde(borrow)]
    encoding: Option<Text<'a>>,
    sample_rate: Option<LenientU64>,
    channels: Option<LenientU64>,
}

#[derive(Deserialize)]
struct RawMedia<'a> {
    #[serde(borrow)]
    track: Option<&'a str>,
    chunk: Option<LenientU64>,
    timestamp: Option<LenientU64>,
    #[serde(borrow)]
    payload: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawMark<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawDtmf<'a> {
    #[serde(borrow)]
    digit: Option<Text<'a>>,
}

/// Only the event name, for tolerating unknown events whose other fields do not fit
/// [`RawFrame`].
#[derive(Deserialize)]
struct RawEventName<'a> {
    #[serde(borrow)]
    event: Option<&'a str>,
}

/// Events [`parse_inbound`] maps to a variant other than `Unknown`.
const INBOUND_EVENTS: [&str; 6] = ["connected", "start", "media", "mark", "dtmf", "stop"];

/// Events [`parse_outbound`] maps to a variant other than `Unknown`.
const OUTBOUND_EVENTS: [&str; 3] = ["media", "mark", "clear"];

/// Parses `text` into a [`RawFrame`]; if that fails only because an unknown event carries
/// fields of unexpected types, returns `Err(Ok(event))` so the caller can tolerate it.
fn parse_frame<'a>(
    text: &'a str,
    known: &[&str],
) -> Result<RawFrame<'a>, Result<&'a str, ProtocolError>> {
    match serde_json::from_str::<RawFrame<'a>>(text) {
        Ok(frame) => Ok(frame),
        Err(err) => match serde_json::from_str::<RawEventName<'a>>(text) {
            Ok(RawEventName { event: Some(event) }) if !known.contains(&event) => Err(Ok(event)),
            _ => Err(Err(ProtocolError::from(err))),
        },
    }
}

/// Borrows a base64 payload, rejecting escaped or non-base64 text.
fn borrowed_base64<'a>(
    payload: Option<Text<'a>>,
    field: &'static str,
) -> Result<&'a str, ProtocolError> {
    match payload {
        None => Err(ProtocolError::MissingField(field)),
        Some(Text(Cow::Borrowed(b64))) if is_base64(b64) => Ok(b64),
        // An escape (e.g. `\/`) or a character outside the alphabet.
        Some(_) => Err(ProtocolError::BadPayload("audio payload is not base64")),
    }
}

/// Parses one text frame from Twilio. Unknown events give [`TwilioInbound::Unknown`].
///
/// # Errors
/// [`ProtocolError::TooLarge`] above [`MAX_TWILIO_FRAME_BYTES`], [`ProtocolError::Json`] for
/// malformed JSON, [`ProtocolError::MissingField`] when a known event lacks a required field
/// (`media.payload`, `start.callSid`, …), [`ProtocolError::BadPayload`] for non-base64 audio.
pub fn parse_inbound(text: &str) -> Result<TwilioInbound<'_>, ProtocolError> {
    check_size(text, MAX_TWILIO_FRAME_BYTES)?;
    let frame = match parse_frame(text, &INBOUND_EVENTS) {
        Ok(frame) => frame,
        Err(Ok(event)) => return Ok(TwilioInbound::Unknown { event }),
        Err(Err(err)) => return Err(err),
    };
    let event = frame.event.ok_or(ProtocolError::MissingField("event"))?;
    match event {
        "media" => {
            let media = frame.media.ok_or(ProtocolError::MissingField("media"))?;
            Ok(TwilioInbound::Media {
                stream_sid: frame.stream_sid,
                track: media.track,
                chunk: media
                    .chunk
                    .ok_or(ProtocolError::MissingField("media.chunk"))?
                    .0,
                timestamp: media
                    .timestamp
                    .ok_or(ProtocolError::MissingField("media.timestamp"))?
                    .0,
                payload: borrowed_base64(media.payload, "media.payload")?,
            })
        }
        "mark" => {
            let mark = frame.mark.ok_or(ProtocolError::MissingField("mark"))?;
            let Text(name) = mark.name.ok_or(ProtocolError::MissingField("mark.name"))?;
            Ok(TwilioInbound::Mark { name })
        }
        "start" => {
            let start = frame.start.ok_or(ProtocolError::MissingField("start"))?;
            let format = start.media_format;
            Ok(TwilioInbound::Start(StartInfo {
                stream_sid: start
                    .stream_sid
                    .or(frame.stream_sid)
                    .ok_or(ProtocolError::MissingField("start.streamSid"))?,
                call_sid: start
                    .call_sid
                    .ok_or(ProtocolError::MissingField("start.callSid"))?,
                account_sid: start.account_sid,
                custom_parameters: start.custom_parameters.unwrap_or_default(),
                encoding: format
                    .as_ref()
                    .and_then(|f| f.encoding.as_ref())
                    .map(|Text(e)| e.clone()),
                sample_rate: format.as_ref().and_then(|f| f.sample_rate).map(|n| n.0),
                channels: format.as_ref().and_then(|f| f.channels).map(|n| n.0),
            }))
        }
        "dtmf" => {
            let dtmf = frame.dtmf.ok_or(ProtocolError::MissingField("dtmf"))?;
            let Text(digit) = dtmf
                .digit
                .ok_or(ProtocolError::MissingField("dtmf.digit"))?;
            Ok(TwilioInbound::Dtmf { digit })
        }
        "connected" => Ok(TwilioInbound::Connected),
        "stop" => Ok(TwilioInbound::Stop),
        other => Ok(TwilioInbound::Unknown { event: other }),
    }
}

/// Parses one frame the engine sent to Twilio (for the simulated caller).
///
/// # Errors
/// As [`parse_inbound`], with the limit [`MAX_TWILIO_OUTBOUND_FRAME_BYTES`].
pub fn parse_outbound(text: &str) -> Result<TwilioOutbound<'_>, ProtocolError> {
    parse_outbound_with_sid(text).map(|(_, message)| message)
}

/// Like [`parse_outbound`], also returning the top-level `streamSid` so the simulated caller
/// can check the engine addressed the right stream (Twilio ignores messages for other streams).
///
/// # Errors
/// As [`parse_outbound`].
pub fn parse_outbound_with_sid(
    text: &str,
) -> Result<(Option<&str>, TwilioOutbound<'_>), ProtocolError> {
    check_size(text, MAX_TWILIO_OUTBOUND_FRAME_BYTES)?;
    let frame = match parse_frame(text, &OUTBOUND_EVENTS) {
        Ok(frame) => frame,
        Err(Ok(event)) => return Ok((None, TwilioOutbound::Unknown { event })),
        Err(Err(err)) => return Err(err),
    };
    let event = frame.event.ok_or(ProtocolError::MissingField("event"))?;
    let message = match event {
        "media" => {
            let media = frame.media.ok_or(ProtocolError::MissingField("media"))?;
            TwilioOutbound::Media {
                payload: borrowed_base64(media.payload, "media.payload")?,
            }
        }
        "mark" => {
            let mark = frame.mark.ok_or(ProtocolError::MissingField("mark"))?;
            let Text(name) = mark.name.ok_or(ProtocolError::MissingField("mark.name"))?;
            TwilioOutbound::Mark { name }
        }
        "clear" => TwilioOutbound::Clear,
        other => TwilioOutbound::Unknown { event: other },
    };
    Ok((frame.stream_sid, message))
}

/// Appends `{"event":"<event>","streamSid":"<sid>"` (the message stays open).
fn open(buf: &mut String, event: &str, stream_sid: &str) {
    buf.push_str("{\"event\":\"");
    buf.push_str(event);
    buf.push_str("\",\"streamSid\":");
    push_string(buf, stream_sid);
}

/// Appends `{"event":"<event>","sequenceNumber":"<seq>","streamSid":"<sid>"` (stays open).
fn open_sequenced(buf: &mut String, event: &str, seq: u64, stream_sid: &str) {
    buf.push_str("{\"event\":\"");
    buf.push_str(event);
    buf.push_str("\",\"sequenceNumber\":");
    push_u64_string(buf, seq);
    buf.push_str(",\"streamSid\":");
    push_string(buf, stream_sid);
}

/// Appends `{"event":"media","streamSid":…,"media":{"payload":…}}`: audio for Twilio to
/// queue and play (base64 μ-law 8 kHz). Allocates nothing when `buf` has capacity.
pub fn write_media(buf: &mut String, stream_sid: &str, payload_b64: &str) {
    buf.reserve(64 + stream_sid.len() + payload_b64.len());
    open(buf, "media", stream_sid);
    buf.push_str(",\"media\":{\"payload\":\"");
    push_escaped(buf, payload_b64);
    buf.push_str("\"}}");
}

/// Appends `{"event":"mark","streamSid":…,"mark":{"name":…}}`: Twilio echoes the mark once
/// the audio queued before it has played, or when `clear` discards it.
pub fn write_mark(buf: &mut String, stream_sid: &str, name: &str) {
    buf.reserve(64 + stream_sid.len() + name.len());
    open(buf, "mark", stream_sid);
    buf.push_str(",\"mark\":{\"name\":");
    push_string(buf, name);
    buf.push_str("}}");
}

/// Appends `{"event":"clear","streamSid":…}`: Twilio drops all queued audio (barge-in) and
/// returns the pending marks.
pub fn write_clear(buf: &mut String, stream_sid: &str) {
    open(buf, "clear", stream_sid);
    buf.push('}');
}

/// Simulated caller: appends Twilio's first message,
/// `{"event":"connected","protocol":"Call","version":"1.0.0"}`.
pub fn write_connected(buf: &mut String) {
    buf.push_str("{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}");
}

/// Simulated caller: appends a `start` message (sequence number 1) for an inbound μ-law
/// 8 kHz mono stream carrying `params` as `customParameters`.
pub fn write_start(
    buf: &mut String,
    stream_sid: &str,
    call_sid: &str,
    account_sid: &str,
    params: &[(&str, &str)],
) {
    open_sequenced(buf, "start", 1, stream_sid);
    buf.push_str(",\"start\":{\"streamSid\":");
    push_string(buf, stream_sid);
    buf.push_str(",\"accountSid\":");
    push_string(buf, account_sid);
    buf.push_str(",\"callSid\":");
    push_string(buf, call_sid);
    buf.push_str(",\"tracks\":[\"inbound\"],\"customParameters\":{");
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            buf.push(',');
        }
        push_string(buf, name);
        buf.push(':');
        push_string(buf, value);
    }
    buf.push_str(
        "},\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\",\"sampleRate\":8000,\"channels\":1}}}",
    );
}

/// Simulated caller: appends an inbound `media` message; `seq`, `chunk` and `timestamp_ms`
/// are written as strings, as Twilio does.
pub fn write_inbound_media(
    buf: &mut String,
    stream_sid: &str,
    seq: u64,
    chunk: u64,
    timestamp_ms: u64,
    payload: &str,
) {
    buf.reserve(160 + stream_sid.len() + payload.len());
    open_sequenced(buf, "media", seq, stream_sid);
    buf.push_str(",\"media\":{\"track\":\"inbound\",\"chunk\":");
    push_u64_string(buf, chunk);
    buf.push_str(",\"timestamp\":");
    push_u64_string(buf, timestamp_ms);
    buf.push_str(",\"payload\":\"");
    push_escaped(buf, payload);
    buf.push_str("\"}}");
}

/// Simulated caller: appends the echo of a mark the engine sent.
pub fn write_inbound_mark(buf: &mut String, stream_sid: &str, seq: u64, name: &str) {
    open_sequenced(buf, "mark", seq, stream_sid);
    buf.push_str(",\"mark\":{\"name\":");
    push_string(buf, name);
    buf.push_str("}}");
}

/// Simulated caller: appends a `dtmf` message for a key press.
pub fn write_dtmf(buf: &mut String, stream_sid: &str, seq: u64, digit: &str) {
    open_sequenced(buf, "dtmf", seq, stream_sid);
    buf.push_str(",\"dtmf\":{\"track\":\"inbound_track\",\"digit\":");
    push_string(buf, digit);
    buf.push_str("}}");
}

/// Simulated caller: appends the `stop` message sent before Twilio closes the socket.
pub fn write_stop(buf: &mut String, stream_sid: &str, seq: u64, account_sid: &str, call_sid: &str) {
    open_sequenced(buf, "stop", seq, stream_sid);
    buf.push_str(",\"stop\":{\"accountSid\":");
    push_string(buf, account_sid);
    buf.push_str(",\"callSid\":");
    push_string(buf, call_sid);
    buf.push_str("}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "MZ00000000000000000000000000000001";
    const CALL: &str = "CA00000000000000000000000000000001";
    const ACCOUNT: &str = "AC00000000000000000000000000000001";
    /// 160 bytes of μ-law silence (0xFF), base64: 53 groups of `////` and `/w==`.
    const SILENCE: &str = concat!(
        "////////////////////////////////////////////////////////////////////////////////",
        "////////////////////////////////////////////////////////////////////////////////",
        "////////////////////////////////////////////////////",
        "/w=="
    );

    fn written(write: impl FnOnce(&mut String)) -> String {
        let mut buf = String::new();
        write(&mut buf);
        serde_json::from_str::<serde_json::Value>(&buf).expect("writer produced invalid JSON");
        buf
    }

    #[test]
    fn silence_fixture_is_one_twilio_frame() {
        assert_eq!(SILENCE.len(), 216);
        assert!(is_base64(SILENCE));
    }

    #[test]
    fn engine_writers_produce_twilio_shapes_exactly() {
        assert_eq!(
            written(|b| write_media(b, SID, "AAAA")),
            format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"AAAA"}}}}"#)
        );
        assert_eq!(
            written(|b| write_mark(b, SID, "resp_42:chunk_17")),
            format!(
                r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"resp_42:chunk_17"}}}}"#
            )
        );
        assert_eq!(
            written(|b| write_clear(b, SID)),
            format!(r#"{{"event":"clear","streamSid":"{SID}"}}"#)
        );
    }

    #[test]
    fn caller_writers_produce_twilio_shapes_exactly() {
        assert_eq!(
            written(write_connected),
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#
        );
        assert_eq!(
            written(|b| write_inbound_media(b, SID, 3, 1, 5, "AAAA")),
            format!(
                r#"{{"event":"media","sequenceNumber":"3","streamSid":"{SID}","media":{{"track":"inbound","chunk":"1","timestamp":"5","payload":"AAAA"}}}}"#
            )
        );
        assert_eq!(
            written(|b| write_stop(b, SID, 9, ACCOUNT, CALL)),
            format!(
                r#"{{"event":"stop","sequenceNumber":"9","streamSid":"{SID}","stop":{{"accountSid":"{ACCOUNT}","callSid":"{CALL}"}}}}"#
            )
        );
        assert_eq!(
            written(|b| write_start(b, SID, CALL, ACCOUNT, &[("tenant", "t1")])),
            format!(
                r#"{{"event":"start","sequenceNumber":"1","streamSid":"{SID}","start":{{"streamSid":"{SID}","accountSid":"{ACCOUNT}","callSid":"{CALL}","tracks":["inbound"],"customParameters":{{"tenant":"t1"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#
            )
        );
    }

    #[test]
    fn connected_round_trips() {
        let text = written(write_connected);
        assert_eq!(parse_inbound(&text).unwrap(), TwilioInbound::Connected);
    }

    #[test]
    fn start_round_trips_with_parameters() {
        // Arrange
        let params = [
            ("tenant_id", "t_123"),
            ("call_row_id", "c_456"),
            ("note", "say \"hi\"\n"),
        ];
        let text = written(|b| write_start(b, SID, CALL, ACCOUNT, &params));

        // Act
        let TwilioInbound::Start(start) = parse_inbound(&text).unwrap() else {
            panic!("expected start");
        };

        // Assert
        assert_eq!(start.stream_sid, SID);
        assert_eq!(start.call_sid, CALL);
        assert_eq!(start.account_sid, Some(ACCOUNT));
        assert_eq!(start.encoding.as_deref(), Some("audio/x-mulaw"));
        assert_eq!((start.sample_rate, start.channels), (Some(8000), Some(1)));
        assert_eq!(start.custom_parameters.len(), 3);
        assert_eq!(start.custom_parameters.get("tenant_id"), Some("t_123"));
        assert_eq!(start.custom_parameters.get("note"), Some("say \"hi\"\n"));
        assert_eq!(start.custom_parameters.get("absent"), None);
        let pairs: Vec<_> = start.custom_parameters.iter().collect();
        assert_eq!(pairs, params.to_vec());
        assert_eq!(start.custom_parameters.to_owned_pairs().len(), 3);
    }

    #[test]
    fn start_without_parameters_or_format_is_accepted() {
        let text =
            format!(r#"{{"event":"start","streamSid":"{SID}","start":{{"callSid":"{CALL}"}}}}"#);
        let TwilioInbound::Start(start) = parse_inbound(&text).unwrap() else {
            panic!("expected start");
        };
        assert_eq!(start.stream_sid, SID);
        assert!(start.custom_parameters.is_empty());
        assert_eq!(start.account_sid, None);
        assert_eq!(start.encoding, None);
    }

    #[test]
    fn media_round_trips_and_borrows_the_payload() {
        // Arrange
        let text = written(|b| write_inbound_media(b, SID, 3, 17, 340, SILENCE));

        // Act
        let parsed = parse_inbound(&text).unwrap();

        // Assert
        let TwilioInbound::Media {
            stream_sid,
            track,
            chunk,
            timestamp,
            payload,
        } = parsed
        else {
            panic!("expected media");
        };
        assert_eq!(stream_sid, Some(SID));
        assert_eq!(track, Some("inbound"));
        assert_eq!((chunk, timestamp), (17, 340));
        assert_eq!(payload, SILENCE);
        let input = text.as_bytes().as_ptr_range();
        assert!(input.contains(&payload.as_ptr()), "payload was copied");
    }

    #[test]
    fn media_counters_may_be_numbers() {
        let text = format!(
            r#"{{"event":"media","streamSid":"{SID}","media":{{"chunk":2,"timestamp":20,"payload":"AAAA"}}}}"#
        );
        let parsed = parse_inbound(&text).unwrap();
        assert!(matches!(
            parsed,
            TwilioInbound::Media {
                chunk: 2,
                timestamp: 20,
                track: None,
                ..
            }
        ));
    }

    #[test]
    fn mark_dtmf_and_stop_round_trip() {
        let mark = written(|b| write_inbound_mark(b, SID, 4, "resp_1:chunk_2"));
        assert_eq!(
            parse_inbound(&mark).unwrap(),
            TwilioInbound::Mark {
                name: Cow::Borrowed("resp_1:chunk_2")
            }
        );
        let dtmf = written(|b| write_dtmf(b, SID, 5, "#"));
        assert_eq!(
            parse_inbound(&dtmf).unwrap(),
            TwilioInbound::Dtmf {
                digit: Cow::Borrowed("#")
            }
        );
        let stop = written(|b| write_stop(b, SID, 9, ACCOUNT, CALL));
        assert_eq!(parse_inbound(&stop).unwrap(), TwilioInbound::Stop);
    }

    #[test]
    fn mark_names_with_escapes_round_trip() {
        let name = "a\"b\\c\u{1}é";
        let text = written(|b| write_inbound_mark(b, SID, 4, name));
        let TwilioInbound::Mark { name: parsed } = parse_inbound(&text).unwrap() else {
            panic!("expected mark");
        };
        assert_eq!(parsed, name);
    }

    #[test]
    fn outbound_messages_round_trip() {
        let media = written(|b| write_media(b, SID, SILENCE));
        assert_eq!(
            parse_outbound_with_sid(&media).unwrap(),
            (Some(SID), TwilioOutbound::Media { payload: SILENCE })
        );
        let mark = written(|b| write_mark(b, SID, "m\"1"));
        assert_eq!(
            parse_outbound(&mark).unwrap(),
            TwilioOutbound::Mark {
                name: Cow::Borrowed("m\"1")
            }
        );
        let clear = written(|b| write_clear(b, SID));
        assert_eq!(parse_outbound(&clear).unwrap(), TwilioOutbound::Clear);
        assert_eq!(
            parse_outbound(r#"{"event":"bogus","streamSid":5}"#).unwrap(),
            TwilioOutbound::Unknown { event: "bogus" }
        );
    }

    #[test]
    fn writers_append_and_reuse_the_buffer() {
        // Arrange
        let mut buf = String::with_capacity(512);
        let capacity = buf.capacity();

        // Act
        write_clear(&mut buf, SID);
        write_media(&mut buf, SID, SILENCE);
        let appended = buf.len();
        buf.clear();
        write_media(&mut buf, SID, SILENCE);

        // Assert
        assert!(appended > buf.len());
        assert_eq!(buf.capacity(), capacity, "reused buffer reallocated");
    }

    #[test]
    fn unknown_events_are_tolerated() {
        assert_eq!(
            parse_inbound(r#"{"event":"future","x":[1,{"y":null}]}"#).unwrap(),
            TwilioInbound::Unknown { event: "future" }
        );
        // Fields of unexpected types on an unknown event are not an error either.
        assert_eq!(
            parse_inbound(r#"{"event":"future","media":"not an object","streamSid":7}"#).unwrap(),
            TwilioInbound::Unknown { event: "future" }
        );
    }

    #[test]
    fn malformed_json_is_a_json_error() {
        for bad in [
            "",
            "{",
            "null",
            "[]",
            "\"media\"",
            r#"{"event":"media""#,
            r#"{"event":5}"#,
            r#"{"event":"media","media":"AAAA"}"#,
            r#"{"event":"media","media":{"payload":5,"chunk":"1","timestamp":"1"}}"#,
            r#"{"event":"media","media":{"payload":"AAAA","chunk":"x","timestamp":"1"}}"#,
            r#"{"event":"start","start":{"callSid":"CA1","streamSid":"MZ1","customParameters":{"a":1}}}"#,
            "{\"event\":\"media\"} trailing",
        ] {
            assert!(
                matches!(parse_inbound(bad), Err(ProtocolError::Json(_))),
                "{bad:?} gave {:?}",
                parse_inbound(bad)
            );
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let cases = [
            (r#"{"streamSid":"MZ1"}"#, "event"),
            (r#"{"event":"media"}"#, "media"),
            (r#"{"event":"media","media":null}"#, "media"),
            (
                r#"{"event":"media","media":{"chunk":"1","timestamp":"1"}}"#,
                "media.payload",
            ),
            (
                r#"{"event":"media","media":{"timestamp":"1","payload":"AAAA"}}"#,
                "media.chunk",
            ),
            (
                r#"{"event":"media","media":{"chunk":"1","payload":"AAAA"}}"#,
                "media.timestamp",
            ),
            (
                r#"{"event":"start","start":{"callSid":"CA1"}}"#,
                "start.streamSid",
            ),
            (
                r#"{"event":"start","start":{"streamSid":"MZ1"}}"#,
                "start.callSid",
            ),
            (r#"{"event":"start"}"#, "start"),
            (r#"{"event":"mark","mark":{}}"#, "mark.name"),
            (
                r#"{"event":"dtmf","dtmf":{"track":"inbound_track"}}"#,
                "dtmf.digit",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(
                parse_inbound(text),
                Err(ProtocolError::MissingField(field)),
                "{text}"
            );
        }
        assert_eq!(
            parse_outbound(r#"{"event":"media","media":{}}"#),
            Err(ProtocolError::MissingField("media.payload"))
        );
    }

    #[test]
    fn non_base64_payloads_are_rejected() {
        for payload in ["AAA", "AA\\\"A", "AA-_", "AAA\\/", "A A=", "\\u0041AAA"] {
            let text = format!(
                r#"{{"event":"media","media":{{"chunk":"1","timestamp":"1","payload":"{payload}"}}}}"#
            );
            assert!(
                matches!(parse_inbound(&text), Err(ProtocolError::BadPayload(_))),
                "{payload:?} gave {:?}",
                parse_inbound(&text)
            );
        }
        let outbound = r#"{"event":"media","media":{"payload":"not base64!"}}"#;
        assert!(matches!(
            parse_outbound(outbound),
            Err(ProtocolError::BadPayload(_))
        ));
    }

    #[test]
    fn oversized_frames_are_rejected_before_parsing() {
        let text = format!(
            r#"{{"event":"media","media":{{"chunk":"1","timestamp":"1","payload":"{}"}}}}"#,
            "A".repeat(MAX_TWILIO_FRAME_BYTES)
        );
        assert_eq!(
            parse_inbound(&text),
            Err(ProtocolError::TooLarge {
                limit: MAX_TWILIO_FRAME_BYTES,
                actual: text.len()
            })
        );
        let outbound = "x".repeat(MAX_TWILIO_OUTBOUND_FRAME_BYTES + 1);
        assert!(matches!(
            parse_outbound(&outbound),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn deeply_nested_junk_is_a_clean_error() {
        // serde_json skips unknown values iteratively, so depth costs no stack: balanced junk
        // in an unknown field is ignored, unbalanced junk is a JSON error.
        for depth in [200, 20_000] {
            let junk = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let text = format!(r#"{{"event":"media","junk":{junk}}}"#);
            assert_eq!(
                parse_inbound(&text),
                Err(ProtocolError::MissingField("media"))
            );
            let text = format!(
                r#"{{"event":"media","junk":{junk},"media":{{"chunk":"1","timestamp":"0","payload":"AAAA"}}}}"#
            );
            assert!(matches!(
                parse_inbound(&text),
                Ok(TwilioInbound::Media {
                    payload: "AAAA",
                    ..
                })
            ));
            let text = format!(r#"{{"event":"future","junk":{}}}"#, "{\"a\":".repeat(depth));
            assert!(matches!(
                parse_inbound(&text),
                Err(ProtocolError::Json(_) | ProtocolError::TooLarge { .. })
            ));
            let text = format!(r#"{{"event":"media","media":{}}}"#, "[".repeat(depth));
            assert!(matches!(parse_inbound(&text), Err(ProtocolError::Json(_))));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: truncations and byte flips of valid frames.
        let mut frames = Vec::new();
        let mut buf = String::new();
        write_start(&mut buf, SID, CALL, ACCOUNT, &[("k", "v\"é")]);
        frames.push(std::mem::take(&mut buf));
        write_inbound_media(&mut buf, SID, 3, 1, 5, SILENCE);
        frames.push(std::mem::take(&mut buf));
        write_inbound_mark(&mut buf, SID, 4, "m");
        frames.push(std::mem::take(&mut buf));
        for frame in &frames {
            for cut in 0..frame.len() {
                if let Some(prefix) = frame.get(..cut) {
                    let _ = parse_inbound(prefix);
                    let _ = parse_outbound(prefix);
                }
            }
            let bytes = frame.as_bytes();
            for i in (0..bytes.len()).step_by(3) {
                for replacement in [b'"', b'\\', b'{', b']', b'0', b'\n'] {
                    let mut mutated = bytes.to_vec();
                    if let Some(byte) = mutated.get_mut(i) {
                        *byte = replacement;
                    }
                    if let Ok(text) = std::str::from_utf8(&mutated) {
                        let _ = parse_inbound(text);
                        let _ = parse_outbound(text);
                    }
                }
            }
        }
    }
}
