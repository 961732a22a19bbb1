//! OpenAI Realtime API (GA, `gpt-realtime`) events over WebSocket, both directions.
//!
//! The engine parses server events ([`parse_server_event`]) and writes client events
//! (`write_input_audio_append`, `write_truncate`, …, and [`session_update_json`] once per
//! session). The Realtime stand-in used by tests plays OpenAI's part with
//! [`parse_client_event`] and the server-event writers (`write_session_created`, …).
//!
//! Design: audio deltas arrive many times a second per call and can be large, so parsing is
//! one serde pass into a flat struct of borrowed optional fields followed by a match on
//! `type`; the base64 audio `delta` is borrowed from the frame (a `Cow` that only copies if
//! the server escaped something) and never decoded. Both the GA event names
//! (`response.output_audio.delta`, …) and their beta aliases (`response.audio.delta`, …) are
//! accepted; every other event type is [`ServerEvent::Other`]. Hot writers append to a
//! caller-owned `String`; the once-per-session `session.update` goes through serde because
//! its tool schemas are arbitrary JSON.
//!
//! Greeting: the agent speaks first by sending `response.create` whose
//! `response.instructions` is `Greet the caller with exactly: <greeting>` ([`write_greeting`]).
//! Response-level instructions override the session's for that one response only, so the
//! greeting is spoken verbatim without adding a fake user turn to the conversation.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::json::{push_escaped, push_string, push_u64, Text};
use super::{check_size, is_base64, ProtocolError};

/// Largest server event accepted (4 MiB): audio deltas can carry seconds of audio.
pub const MAX_REALTIME_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Largest client event the stand-in accepts (16 MiB): OpenAI allows 15 MiB of audio per
/// `input_audio_buffer.append`.
pub const MAX_REALTIME_CLIENT_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Prefix of the response instructions that make the agent speak the greeting first.
pub const GREETING_INSTRUCTIONS_PREFIX: &str = "Greet the caller with exactly: ";

// ---------------------------------------------------------------------------------------
// Server events (OpenAI → engine)
// ---------------------------------------------------------------------------------------

/// A server event, borrowing from the frame text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent<'a> {
    /// `session.created`: the first event on a new session.
    SessionCreated,
    /// `session.updated`: a `session.update` was applied; audio may now be appended.
    SessionUpdated,
    /// `response.output_audio.delta` (GA) or `response.audio.delta` (beta): model audio.
    AudioDelta {
        /// `response_id`.
        response_id: &'a str,
        /// `item_id`: the assistant item, needed to truncate it on barge-in.
        item_id: &'a str,
        /// `delta`: base64 audio in the session's output format, not decoded.
        delta: Cow<'a, str>,
    },
    /// `response.output_audio.done` (GA) or `response.audio.done` (beta).
    AudioDone {
        /// `response_id`.
        response_id: &'a str,
        /// `item_id`.
        item_id: &'a str,
    },
    /// `input_audio_buffer.speech_started`: the caller started talking (barge-in trigger).
    SpeechStarted {
        /// `audio_start_ms`: milliseconds into the session's input audio.
        audio_start_ms: u64,
        /// `item_id`: the user item that will hold this speech.
        item_id: &'a str,
    },
    /// `input_audio_buffer.speech_stopped`: the caller stopped talking.
    SpeechStopped {
        /// `audio_end_ms`: milliseconds into the session's input audio.
        audio_end_ms: u64,
        /// `item_id`: the user item.
        item_id: &'a str,
    },
    /// `conversation.item.input_audio_transcription.completed`: what the caller said.
    InputTranscriptionCompleted {
        /// `item_id`: the user item.
        item_id: &'a str,
        /// `transcript`.
        transcript: Cow<'a, str>,
    },
    /// `response.output_audio_transcript.done` (GA) or `response.audio_transcript.done`
    /// (beta): what the agent said.
    OutputTranscriptDone {
        /// `response_id`.
        response_id: &'a str,
        /// `item_id`: the assistant item.
        item_id: &'a str,
        /// `transcript`.
        transcript: Cow<'a, str>,
    },
    /// `response.function_call_arguments.done`: the model wants a tool run.
    FunctionCallArgumentsDone {
        /// `call_id`: echo it in the `function_call_output` item.
        call_id: &'a str,
        /// `name`: the tool's name.
        name: &'a str,
        /// `arguments`: the arguments as JSON text (not parsed here).
        arguments: Cow<'a, str>,
        /// `item_id`: the function-call item.
        item_id: &'a str,
        /// `response_id`.
        response_id: &'a str,
    },
    /// `response.created`: a response started.
    ResponseCreated {
        /// `response.id`.
        response_id: &'a str,
    },
    /// `response.done`: a response finished, with its token usage.
    ResponseDone {
        /// `response.id`.
        response_id: &'a str,
        /// `response.status`: `completed`, `cancelled`, `failed`, `incomplete`, …
        status: Option<&'a str>,
        /// `response.status_details.reason`, e.g. `turn_detected` or `client_cancelled`.
        status_reason: Option<&'a str>,
        /// `response.usage`, for cost accounting.
        usage: Option<Usage>,
    },
    /// `response.output_item.added`: a response produced a new item.
    OutputItemAdded {
        /// `response_id`.
        response_id: Option<&'a str>,
        /// `item.id`.
        item_id: &'a str,
        /// `item.type`: `message`, `function_call`, …
        item_type: Option<&'a str>,
        /// `item.role`, for messages.
        role: Option<&'a str>,
    },
    /// `error`: the server rejected something; the session usually continues.
    Error {
        /// `error.type`, e.g. `invalid_request_error`.
        error_type: Option<&'a str>,
        /// `error.code`, if any.
        code: Option<&'a str>,
        /// `error.message`.
        message: Cow<'a, str>,
        /// `error.param`, if any.
        param: Option<Cow<'a, str>>,
        /// `error.event_id`: the client event that caused the error, if known.
        event_id: Option<&'a str>,
    },
    /// Any other event type, tolerated.
    Other {
        /// The `type` value.
        kind: &'a str,
    },
}

/// Token usage of one response (`response.done.response.usage`); absent counts are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `total_tokens`.
    pub total_tokens: u64,
    /// `input_tokens` (text + audio, cached included).
    pub input_tokens: u64,
    /// `output_tokens` (text + audio).
    pub output_tokens: u64,
    /// `input_token_details.text_tokens`.
    pub input_text_tokens: u64,
    /// `input_token_details.audio_tokens`.
    pub input_audio_tokens: u64,
    /// `input_token_details.cached_tokens`.
    pub input_cached_tokens: u64,
    /// `output_token_details.text_tokens`.
    pub output_text_tokens: u64,
    /// `output_token_details.audio_tokens`.
    pub output_audio_tokens: u64,
}

/// Every server event we map, flattened: one serde pass fills whichever fields are present.
#[derive(Deserialize)]
struct RawServerEvent<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    response_id: Option<&'a str>,
    #[serde(borrow)]
    item_id: Option<&'a str>,
    #[serde(borrow)]
    call_id: Option<&'a str>,
    #[serde(borrow)]
    name: Option<&'a str>,
    #[serde(borrow)]
    delta: Option<Text<'a>>,
    #[serde(borrow)]
    transcript: Option<Text<'a>>,
    #[serde(borrow)]
    arguments: Option<Text<'a>>,
    audio_start_ms: Option<u64>,
    audio_end_ms: Option<u64>,
    #[serde(borrow)]
    response: Option<RawResponse<'a>>,
    #[serde(borrow)]
    item: Option<RawItem<'a>>,
    #[serde(borrow)]
    error: Option<RawError<'a>>,
}

#[derive(Deserialize)]
struct RawResponse<'a> {
    #[serde(borrow)]
    id: Option<&'a str>,
    #[serde(borrow)]
    status: Option<&'a str>,
    #[serde(borrow)]
    status_details: Option<RawStatusDetails<'a>>,
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct RawStatusDetails<'a> {
    #[serde(borrow)]
    reason: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawUsage {
    total_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_token_details: Option<RawTokenDetails>,
    output_token_details: Option<RawTokenDetails>,
}

#[derive(Deserialize)]
struct RawTokenDetails {
    text_tokens: Option<u64>,
    audio_tokens: Option<u64>,
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct RawItem<'a> {
    #[serde(borrow)]
    id: Option<&'a str>,
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    role: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawError<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    code: Option<&'a str>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
    #[serde(borrow)]
    param: Option<Text<'a>>,
    #[serde(borrow)]
    event_id: Option<&'a str>,
}

/// Only the `type`, for tolerating unknown events whose other fields do not fit.
#[derive(Deserialize)]
struct RawKind<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
}

/// Server event types [`parse_server_event`] maps to a variant other than `Other`.
const SERVER_EVENTS: [&str; 16] = [
    "session.created",
    "session.updated",
    "response.output_audio.delta",
    "response.audio.delta",
    "response.output_audio.done",
    "response.audio.done",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "conversation.item.input_audio_transcription.completed",
    "response.output_audio_transcript.done",
    "response.audio_transcript.done",
    "response.function_call_arguments.done",
    "response.created",
    "response.done",
    "response.output_item.added",
    "error",
];

/// Client event types [`parse_client_event`] maps to a variant other than `Other`.
const CLIENT_EVENTS: [&str; 6] = [
    "session.update",
    "response.cancel",
    "input_audio_buffer.append",
    "conversation.item.truncate",
    "conversation.item.create",
    "response.create",
];

/// Parses `text` as `T`; if that fails for an event whose `type` is not in `known`, returns
/// `Err(Ok(kind))` so the caller can tolerate it instead of failing.
fn parse_or_kind<'a, T: Deserialize<'a>>(
    text: &'a str,
    known: &[&str],
) -> Result<T, Result<&'a str, ProtocolError>> {
    match serde_json::from_str::<T>(text) {
        Ok(raw) => Ok(raw),
        Err(err) => match serde_json::from_str::<RawKind<'a>>(text) {
            Ok(RawKind { kind: Some(kind) }) if !known.contains(&kind) => Err(Ok(kind)),
            _ => Err(Err(ProtocolError::from(err))),
        },
    }
}

/// `Some(value)` or a [`ProtocolError::MissingField`] naming `field`.
fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ProtocolError> {
    value.ok_or(ProtocolError::MissingField(field))
}

/// Parses one server event. Unknown types give [`ServerEvent::Other`].
///
/// # Errors
/// [`ProtocolError::TooLarge`] above [`MAX_REALTIME_FRAME_BYTES`], [`ProtocolError::Json`]
/// for malformed JSON or mistyped fields of a known event, [`ProtocolError::MissingField`]
/// when a known event lacks a field it needs (`delta`, `item_id`, `response.id`, …).
pub fn parse_server_event(text: &str) -> Result<ServerEvent<'_>, ProtocolError> {
    check_size(text, MAX_REALTIME_FRAME_BYTES)?;
    let raw: RawServerEvent<'_> = match parse_or_kind(text, &SERVER_EVENTS) {
        Ok(raw) => raw,
        Err(Ok(kind)) => return Ok(ServerEvent::Other { kind }),
        Err(Err(err)) => return Err(err),
    };
    let kind = required(raw.kind, "type")?;
    let event = match kind {
        "response.output_audio.delta" | "response.audio.delta" => ServerEvent::AudioDelta {
            response_id: required(raw.response_id, "response_id")?,
            item_id: required(raw.item_id, "item_id")?,
            delta: required(raw.delta, "delta")?.0,
        },
        "response.output_audio.done" | "response.audio.done" => ServerEvent::AudioDone {
            response_id: required(raw.response_id, "response_id")?,
            item_id: required(raw.item_id, "item_id")?,
        },
        "input_audio_buffer.speech_started" => ServerEvent::SpeechStarted {
            audio_start_ms: required(raw.audio_start_ms, "audio_start_ms")?,
            item_id: required(raw.item_id, "item_id")?,
        },
        "input_audio_buffer.speech_stopped" => ServerEvent::SpeechStopped {
            audio_end_ms: required(raw.audio_end_ms, "audio_end_ms")?,
            item_id: required(raw.item_id, "item_id")?,
        },
        "conversation.item.input_audio_transcription.completed" => {
            ServerEvent::InputTranscriptionCompleted {
                item_id: required(raw.item_id, "item_id")?,
                transcript: required(raw.transcript, "transcript")?.0,
            }
        }
        "response.output_audio_transcript.done" | "response.audio_transcript.done" => {
            ServerEvent::OutputTranscriptDone {
                response_id: required(raw.response_id, "response_id")?,
                item_id: required(raw.item_id, "item_id")?,
                transcript: required(raw.transcript, "transcript")?.0,
            }
        }
        "response.function_call_arguments.done" => ServerEvent::FunctionCallArgumentsDone {
            call_id: required(raw.call_id, "call_id")?,
            name: required(raw.name, "name")?,
            arguments: required(raw.arguments, "arguments")?.0,
            item_id: required(raw.item_id, "item_id")?,
            response_id: required(raw.response_id, "response_id")?,
        },
        "response.created" => {
            let response = required(raw.response, "response")?;
            ServerEvent::ResponseCreated {
                response_id: required(response.id, "response.id")?,
            }
        }
        "response.done" => {
            let response = required(raw.response, "response")?;
            ServerEvent::ResponseDone {
                response_id: required(response.id, "response.id")?,
                status: response.status,
                status_reason: response.status_details.and_then(|d| d.reason),
                usage: response.usage.map(usage_from_raw),
            }
        }
        "response.output_item.added" => {
            let item = required(raw.item, "item")?;
            ServerEvent::OutputItemAdded {
                response_id: raw.response_id,
                item_id: required(item.id, "item.id")?,
                item_type: item.kind,
                role: item.role,
            }
        }
        "error" => {
            let error = required(raw.error, "error")?;
            ServerEvent::Error {
                error_type: error.kind,
                code: error.code,
                message: required(error.message, "error.message")?.0,
                param: error.param.map(|Text(p)| p),
                event_id: error.event_id,
            }
        }
        "session.created" => ServerEvent::SessionCreated,
        "session.updated" => ServerEvent::SessionUpdated,
        other => ServerEvent::Other { kind: other },
    };
    Ok(event)
}

fn usage_from_raw(raw: RawUsage) -> Usage {
    let input = raw.input_token_details;
    let output = raw.output_token_details;
    Usage {
        total_tokens: raw.total_tokens.unwrap_or(0),
        input_tokens: raw.input_tokens.unwrap_or(0),
        output_tokens: raw.output_tokens.unwrap_or(0),
        input_text_tokens: input.as_ref().and_then(|d| d.text_tokens).unwrap_or(0),
        input_audio_tokens: input.as_ref().and_then(|d| d.audio_tokens).unwrap_or(0),
        input_cached_tokens: input.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0),
        output_text_tokens: output.as_ref().and_then(|d| d.text_tokens).unwrap_or(0),
        output_audio_tokens: output.as_ref().and_then(|d| d.audio_tokens).unwrap_or(0),
    }
}

// ---------------------------------------------------------------------------------------
// Client events (engine → OpenAI)
// ---------------------------------------------------------------------------------------

/// Appends `{"type":"<kind>"` (the message stays open).
fn open_client(buf: &mut String, kind: &str) {
    buf.push_str("{\"type\":\"");
    buf.push_str(kind);
    buf.push('"');
}

/// Appends `{"type":"input_audio_buffer.append","audio":"<b64>"}`: caller audio in the
/// session's input format (base64 μ-law straight from Twilio). Allocates nothing when `buf`
/// has capacity; the server sends no acknowledgement.
pub fn write_input_audio_append(buf: &mut String, audio_b64: &str) {
    buf.reserve(48 + audio_b64.len());
    open_client(buf, "input_audio_buffer.append");
    buf.push_str(",\"audio\":\"");
    push_escaped(buf, audio_b64);
    buf.push_str("\"}");
}

/// Appends `conversation.item.truncate` for an assistant item: the caller heard only the
/// first `audio_end_ms` of content part `content_index`, so the server drops the rest of the
/// audio and its transcript.
pub fn write_truncate(buf: &mut String, item_id: &str, content_index: u32, audio_end_ms: u64) {
    open_client(buf, "conversation.item.truncate");
    buf.push_str(",\"item_id\":");
    push_string(buf, item_id);
    buf.push_str(",\"content_index\":");
    push_u64(buf, u64::from(content_index));
    buf.push_str(",\"audio_end_ms\":");
    push_u64(buf, audio_end_ms);
    buf.push('}');
}

/// Appends a `conversation.item.create` carrying a `function_call_output` item: the result
/// of tool call `call_id`, as JSON text sent as an escaped string. Follow it with
/// [`write_response_create`] so the model reacts to the result.
pub fn write_function_call_output(buf: &mut String, call_id: &str, output_json_text: &str) {
    open_client(buf, "conversation.item.create");
    buf.push_str(",\"item\":{\"type\":\"function_call_output\",\"call_id\":");
    push_string(buf, call_id);
    buf.push_str(",\"output\":");
    push_string(buf, output_json_text);
    buf.push_str("}}");
}

/// Appends `{"type":"response.create"}`: ask the model to respond now.
pub fn write_response_create(buf: &mut String) {
    open_client(buf, "response.create");
    buf.push('}');
}

/// Appends `response.create` with `response.instructions`, which override the session's
/// instructions for this one response.
pub fn write_response_create_with_instructions(buf: &mut String, instructions: &str) {
    open_client(buf, "response.create");
    buf.push_str(",\"response\":{\"instructions\":");
    push_string(buf, instructions);
    buf.push_str("}}");
}

/// Appends the greeting request: `response.create` with `response.instructions` =
/// `Greet the caller with exactly: <greeting>` (see the module docs for why).
pub fn write_greeting(buf: &mut String, greeting: &str) {
    open_client(buf, "response.create");
    buf.push_str(",\"response\":{\"instructions\":\"");
    push_escaped(buf, GREETING_INSTRUCTIONS_PREFIX);
    push_escaped(buf, greeting);
    buf.push_str("\"}}");
}

/// Appends `{"type":"response.cancel"}`: stop the in-progress response (an error comes back,
/// harmlessly, if there is none).
pub fn write_response_cancel(buf: &mut String) {
    open_client(buf, "response.cancel");
    buf.push('}');
}

/// Appends `conversation.item.create` with a message item of `role` and one content part.
fn write_text_item(buf: &mut String, role: &str, content_type: &str, text: &str) {
    open_client(buf, "conversation.item.create");
    buf.push_str(",\"item\":{\"type\":\"message\",\"role\":\"");
    buf.push_str(role);
    buf.push_str("\",\"content\":[{\"type\":\"");
    buf.push_str(content_type);
    buf.push_str("\",\"text\":");
    push_string(buf, text);
    buf.push_str("}]}}");
}

/// Appends a user message item (`input_text` content), e.g. to restore what the caller said
/// after reconnecting to a fresh session.
pub fn write_user_text_item(buf: &mut String, text: &str) {
    write_text_item(buf, "user", "input_text", text);
}

/// Appends an assistant message item (`output_text` content, the GA type for assistant
/// text), e.g. to restore what the agent said after reconnecting to a fresh session.
pub fn write_assistant_text_item(buf: &mut String, text: &str) {
    write_text_item(buf, "assistant", "output_text", text);
}

// ---------------------------------------------------------------------------------------
// Session configuration (once per session; serde is fine here)
// ---------------------------------------------------------------------------------------

/// Everything [`session_update_json`] needs to configure a session for a phone call.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Realtime model id, e.g. `gpt-realtime`.
    pub model: String,
    /// System instructions for the agent.
    pub instructions: String,
    /// Output voice, e.g. `marin`; fixed once the session has produced audio.
    pub voice: String,
    /// Caller's language as a BCP-47 tag (`en`, `fr-CA`, `rw`, `ja`); its primary subtag is
    /// sent as the transcription language.
    pub language: String,
    /// Words the agent speaks first, if any (sent with [`write_greeting`], not in the session).
    pub greeting: Option<String>,
    /// Functions the model may call.
    pub tools: Vec<ToolSpec>,
    /// Input transcription model, e.g. `gpt-4o-mini-transcribe`.
    pub transcription_model: String,
    /// Server voice-activity detection settings.
    pub vad: VadConfig,
}

impl Default for SessionConfig {
    /// `gpt-realtime`, voice `marin`, English, the [`default_tools`], no instructions or greeting.
    fn default() -> Self {
        SessionConfig {
            model: "gpt-realtime".to_owned(),
            instructions: String::new(),
            voice: "marin".to_owned(),
            language: "en".to_owned(),
            greeting: None,
            tools: default_tools(),
            transcription_model: "gpt-4o-mini-transcribe".to_owned(),
            vad: VadConfig::default(),
        }
    }
}

/// `server_vad` turn detection settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Speech probability threshold, 0.0–1.0 (higher needs louder speech; default 0.5).
    pub threshold: f64,
    /// Audio kept before detected speech, in ms (default 300).
    pub prefix_padding_ms: u32,
    /// Silence that ends a turn, in ms (default 500).
    pub silence_duration_ms: u32,
}

impl Default for VadConfig {
    /// OpenAI's defaults: 0.5, 300 ms, 500 ms.
    fn default() -> Self {
        VadConfig {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
        }
    }
}

/// A function tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Function name, e.g. `end_call`.
    pub name: String,
    /// When and why the model should call it.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

#[derive(Serialize)]
struct SessionUpdateOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    session: SessionOut<'a>,
}

#[derive(Serialize)]
struct SessionOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    model: &'a str,
    output_modalities: [&'static str; 1],
    instructions: &'a str,
    audio: AudioOut<'a>,
    tools: Vec<ToolOut<'a>>,
    tool_choice: &'static str,
}

#[derive(Serialize)]
struct AudioOut<'a> {
    input: AudioInputOut<'a>,
    output: AudioOutputOut<'a>,
}

#[derive(Serialize)]
struct AudioInputOut<'a> {
    format: FormatOut,
    turn_detection: TurnDetectionOut,
    transcription: TranscriptionOut<'a>,
}

#[derive(Serialize)]
struct AudioOutputOut<'a> {
    format: FormatOut,
    voice: &'a str,
}

#[derive(Serialize)]
struct FormatOut {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// G.711 μ-law, what Twilio speaks: no transcoding in either direction.
const PCMU: FormatOut = FormatOut { kind: "audio/pcmu" };

#[derive(Serialize)]
struct TurnDetectionOut {
    #[serde(rename = "type")]
    kind: &'static str,
    threshold: f64,
    prefix_padding_ms: u32,
    silence_duration_ms: u32,
    create_response: bool,
    interrupt_response: bool,
}

#[derive(Serialize)]
struct TranscriptionOut<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<String>,
}

#[derive(Serialize)]
struct ToolOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

/// The languages OpenAI's speech-to-text documents (ISO-639-1). A code outside this list
/// may get the whole `session.update` rejected, so it is not sent: transcription then
/// detects the language itself (Kinyarwanda, `rw`, is such a case).
const TRANSCRIPTION_LANGUAGES: &[&str] = &[
    "af", "ar", "az", "be", "bg", "bs", "ca", "cs", "cy", "da", "de", "el", "en", "es", "et", "fa",
    "fi", "fr", "gl", "he", "hi", "hr", "hu", "hy", "id", "is", "it", "ja", "kk", "kn", "ko", "lt",
    "lv", "mi", "mk", "mr", "ms", "ne", "nl", "no", "pl", "pt", "ro", "ru", "sk", "sl", "sr", "sv",
    "sw", "ta", "th", "tl", "tr", "uk", "ur", "vi", "zh",
];

/// The ISO-639-1 code the transcription API wants from a BCP-47 tag: its primary subtag,
/// lowercased (`en-US` → `en`). `None` (field omitted: auto-detect) unless that code is one
/// the API documents.
fn transcription_language(tag: &str) -> Option<String> {
    let primary = tag
        .trim()
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    TRANSCRIPTION_LANGUAGES
        .contains(&primary.as_str())
        .then_some(primary)
}

/// The GA `session.update` event for `config`: μ-law in and out, audio-only output,
/// `server_vad` that creates and interrupts responses, input transcription, the tools with
/// `tool_choice: auto`. No `temperature` and no beta fields (the GA API rejects them).
#[must_use]
pub fn session_update_json(config: &SessionConfig) -> String {
    let message = SessionUpdateOut {
        kind: "session.update",
        session: SessionOut {
            kind: "realtime",
            model: &config.model,
            output_modalities: ["audio"],
            instructions: &config.instructions,
            audio: AudioOut {
                input: AudioInputOut {
                    format: PCMU,
                    turn_detection: TurnDetectionOut {
                        kind: "server_vad",
                        threshold: config.vad.threshold,
                        prefix_padding_ms: config.vad.prefix_padding_ms,
                        silence_duration_ms: config.vad.silence_duration_ms,
                        create_response: true,
                        interrupt_response: true,
                    },
                    transcription: TranscriptionOut {
                        model: &config.transcription_model,
                        language: transcription_language(&config.language),
                    },
                },
                output: AudioOutputOut {
                    format: PCMU,
                    voice: &config.voice,
                },
            },
            tools: config
                .tools
                .iter()
                .map(|tool| ToolOut {
                    kind: "function",
                    name: &tool.name,
                    description: &tool.description,
                    parameters: &tool.parameters,
                })
                .collect(),
            tool_choice: "auto",
        },
    };
    // Serializing plain structs, strings, numbers and a `Value` into a `String` cannot fail
    // (serde_json fails only on non-string map keys or a failing writer).
    match serde_json::to_string(&message) {
        Ok(json) => json,
        Err(err) => {
            log::error!("SESSION_UPDATE_SERIALIZE_FAILED error={err}");
            String::new()
        }
    }
}

/// The three tools every agent gets: `create_reservation`, `transfer_to_human`, `end_call`.
#[must_use]
pub fn default_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "create_reservation".to_owned(),
            description: "Record a reservation for the caller. Ask for the date and time (and \
                the party size and name if relevant) first, read the details back, and call \
                this only after the caller confirms. Tell the caller the result."
                .to_owned(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "customer_name": {"type": "string", "description": "Name for the reservation."},
                    "customer_phone": {"type": "string", "description": "Callback number in E.164 format, e.g. +14155550123, if the caller gives one."},
                    "requested_date": {"type": "string", "description": "Date of the reservation, YYYY-MM-DD."},
                    "requested_time": {"type": "string", "description": "Local time of the reservation, 24-hour HH:mm."},
                    "party_size": {"type": "integer", "minimum": 1, "description": "Number of people."},
                    "notes": {"type": "string", "description": "Anything else the caller asked for."}
                },
                "required": ["requested_date", "requested_time"]
            }),
        },
        ToolSpec {
            name: "transfer_to_human".to_owned(),
            description: "Transfer the call to a human member of staff. Use it when the caller \
                asks for a person, or when you cannot help. Tell the caller you are \
                transferring them before calling it."
                .to_owned(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why the caller needs a human, in one sentence."}
                },
                "required": ["reason"]
            }),
        },
        ToolSpec {
            name: "end_call".to_owned(),
            description: "Hang up. Use it once the conversation is finished and you have said \
                goodbye, or when the caller asks to end the call."
                .to_owned(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why the call is ending, e.g. caller said goodbye."}
                },
                "required": ["reason"]
            }),
        },
    ]
}

// ---------------------------------------------------------------------------------------
// Client events as the Realtime stand-in sees them
// ---------------------------------------------------------------------------------------

/// A client event, as parsed by the Realtime stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent<'a> {
    /// `session.update`.
    SessionUpdate(Box<SessionUpdateInfo<'a>>),
    /// `input_audio_buffer.append` (audio checked for base64, not decoded).
    InputAudioAppend {
        /// `audio`.
        audio: &'a str,
    },
    /// `conversation.item.truncate`.
    ItemTruncate {
        /// `item_id`.
        item_id: &'a str,
        /// `content_index`.
        content_index: u32,
        /// `audio_end_ms`.
        audio_end_ms: u64,
    },
    /// `conversation.item.create`.
    ItemCreate {
        /// `item.type`: `message`, `function_call_output`, …
        item_type: &'a str,
        /// `item.call_id`, for function-call outputs.
        call_id: Option<&'a str>,
        /// `item.output`, for function-call outputs.
        output: Option<Cow<'a, str>>,
        /// `item.role`, for messages.
        role: Option<&'a str>,
        /// `item.content[0].type`, for messages (`input_text`, `output_text`, …).
        content_type: Option<&'a str>,
        /// `item.content[0].text`, for messages.
        text: Option<Cow<'a, str>>,
    },
    /// `response.create`.
    ResponseCreate {
        /// `response.instructions`, if given.
        instructions: Option<Cow<'a, str>>,
    },
    /// `response.cancel`.
    ResponseCancel,
    /// Any other event type.
    Other {
        /// The `type` value.
        kind: &'a str,
    },
}

/// The parts of a `session.update` the stand-in checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionUpdateInfo<'a> {
    /// `session.type` (GA requires `realtime`).
    pub session_type: Option<&'a str>,
    /// `session.model`.
    pub model: Option<&'a str>,
    /// `session.instructions`.
    pub instructions: Option<Cow<'a, str>>,
    /// `session.audio.input.format.type`, e.g. `audio/pcmu`.
    pub input_format_type: Option<&'a str>,
    /// `session.audio.output.format.type`, e.g. `audio/pcmu`.
    pub output_format_type: Option<&'a str>,
    /// `session.audio.output.voice` (a name, or the `id` of a custom voice).
    pub voice: Option<Cow<'a, str>>,
    /// `session.audio.input.turn_detection.type`, e.g. `server_vad`.
    pub turn_detection_type: Option<&'a str>,
    /// `session.audio.input.transcription.model`.
    pub transcription_model: Option<&'a str>,
    /// `session.audio.input.transcription.language`.
    pub transcription_language: Option<&'a str>,
    /// `session.tools[].name`, in order.
    pub tool_names: Vec<&'a str>,
    /// The first beta-only session field present (`temperature`, `input_audio_format`, …),
    /// which the GA server rejects.
    pub beta_field: Option<&'static str>,
}

#[derive(Deserialize)]
struct RawClientEvent<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    audio: Option<Text<'a>>,
    #[serde(borrow)]
    item_id: Option<&'a str>,
    content_index: Option<u32>,
    audio_end_ms: Option<u64>,
    #[serde(borrow)]
    session: Option<RawSession<'a>>,
    #[serde(borrow)]
    item: Option<RawClientItem<'a>>,
    #[serde(borrow)]
    response: Option<RawResponseParams<'a>>,
}

#[derive(Deserialize)]
struct RawSession<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    model: Option<&'a str>,
    #[serde(borrow)]
    instructions: Option<Text<'a>>,
    #[serde(borrow)]
    audio: Option<RawAudio<'a>>,
    #[serde(borrow)]
    tools: Option<Vec<RawTool<'a>>>,
    // Beta-only fields, recorded only to be reported.
    temperature: Option<IgnoredAny>,
    modalities: Option<IgnoredAny>,
    input_audio_format: Option<IgnoredAny>,
    output_audio_format: Option<IgnoredAny>,
    input_audio_transcription: Option<IgnoredAny>,
    input_audio_noise_reduction: Option<IgnoredAny>,
    turn_detection: Option<IgnoredAny>,
    voice: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawAudio<'a> {
    #[serde(borrow)]
    input: Option<RawAudioDirection<'a>>,
    #[serde(borrow)]
    output: Option<RawAudioDirection<'a>>,
}

#[derive(Deserialize)]
struct RawAudioDirection<'a> {
    #[serde(borrow)]
    format: Option<RawTyped<'a>>,
    #[serde(borrow)]
    voice: Option<RawVoice<'a>>,
    #[serde(borrow)]
    turn_detection: Option<RawTyped<'a>>,
    #[serde(borrow)]
    transcription: Option<RawTranscription<'a>>,
}

/// Any object of which only `type` matters.
#[derive(Deserialize)]
struct RawTyped<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawVoice<'a> {
    Name(#[serde(borrow)] Text<'a>),
    Custom {
        #[serde(borrow)]
        id: Text<'a>,
    },
}

#[derive(Deserialize)]
struct RawTranscription<'a> {
    #[serde(borrow)]
    model: Option<&'a str>,
    #[serde(borrow)]
    language: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawTool<'a> {
    #[serde(borrow)]
    name: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawClientItem<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    role: Option<&'a str>,
    #[serde(borrow)]
    call_id: Option<&'a str>,
    #[serde(borrow)]
    output: Option<Text<'a>>,
    #[serde(borrow)]
    content: Option<Vec<RawContent<'a>>>,
}

#[derive(Deserialize)]
struct RawContent<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawResponseParams<'a> {
    #[serde(borrow)]
    instructions: Option<Text<'a>>,
}

/// Parses one client event (for the Realtime stand-in). Unknown types give
/// [`ClientEvent::Other`].
///
/// # Errors
/// [`ProtocolError::TooLarge`] above [`MAX_REALTIME_CLIENT_FRAME_BYTES`],
/// [`ProtocolError::Json`], [`ProtocolError::MissingField`] (`audio`, `item_id`, `item.type`,
/// …), [`ProtocolError::BadPayload`] for audio that is not base64.
pub fn parse_client_event(text: &str) -> Result<ClientEvent<'_>, ProtocolError> {
    check_size(text, MAX_REALTIME_CLIENT_FRAME_BYTES)?;
    let raw: RawClientEvent<'_> = match parse_or_kind(text, &CLIENT_EVENTS) {
        Ok(raw) => raw,
        Err(Ok(kind)) => return Ok(ClientEvent::Other { kind }),
        Err(Err(err)) => return Err(err),
    };
    let kind = required(raw.kind, "type")?;
    let event = match kind {
        "input_audio_buffer.append" => match required(raw.audio, "audio")? {
            Text(Cow::Borrowed(audio)) if is_base64(audio) => {
                ClientEvent::InputAudioAppend { audio }
            }
            _ => return Err(ProtocolError::BadPayload("audio is not base64")),
        },
        "conversation.item.truncate" => ClientEvent::ItemTruncate {
            item_id: required(raw.item_id, "item_id")?,
            content_index: required(raw.content_index, "content_index")?,
            audio_end_ms: required(raw.audio_end_ms, "audio_end_ms")?,
        },
        "conversation.item.create" => {
            let item = required(raw.item, "item")?;
            let first = item.content.and_then(|parts| parts.into_iter().next());
            let (content_type, text) = match first {
                Some(part) => (part.kind, part.text.map(|Text(t)| t)),
                None => (None, None),
            };
            ClientEvent::ItemCreate {
                item_type: required(item.kind, "item.type")?,
                call_id: item.call_id,
                output: item.output.map(|Text(o)| o),
                role: item.role,
                content_type,
                text,
            }
        }
        "response.create" => ClientEvent::ResponseCreate {
            instructions: raw.response.and_then(|r| r.instructions).map(|Text(i)| i),
        },
        "response.cancel" => ClientEvent::ResponseCancel,
        "session.update" => {
            ClientEvent::SessionUpdate(Box::new(session_info(required(raw.session, "session")?)))
        }
        other => ClientEvent::Other { kind: other },
    };
    Ok(event)
}

fn session_info(session: RawSession<'_>) -> SessionUpdateInfo<'_> {
    let beta_fields = [
        ("temperature", session.temperature.is_some()),
        ("modalities", session.modalities.is_some()),
        ("input_audio_format", session.input_audio_format.is_some()),
        ("output_audio_format", session.output_audio_format.is_some()),
        (
            "input_audio_transcription",
            session.input_audio_transcription.is_some(),
        ),
        (
            "input_audio_noise_reduction",
            session.input_audio_noise_reduction.is_some(),
        ),
        ("turn_detection", session.turn_detection.is_some()),
        ("voice", session.voice.is_some()),
    ];
    let (input, output) = match session.audio {
        Some(audio) => (audio.input, audio.output),
        None => (None, None),
    };
    let (input_format_type, turn_detection_type, transcription) = match input {
        Some(input) => (
            input.format.and_then(|f| f.kind),
            input.turn_detection.and_then(|t| t.kind),
            input.transcription,
        ),
        None => (None, None, None),
    };
    let (output_format_type, voice) = match output {
        Some(output) => (
            output.format.and_then(|f| f.kind),
            output.voice.map(|voice| match voice {
                RawVoice::Name(Text(name)) => name,
                RawVoice::Custom { id: Text(id) } => id,
            }),
        ),
        None => (None, None),
    };
    SessionUpdateInfo {
        session_type: session.kind,
        model: session.model,
        instructions: session.instructions.map(|Text(i)| i),
        input_format_type,
        output_format_type,
        voice,
        turn_detection_type,
        transcription_model: transcription.as_ref().and_then(|t| t.model),
        transcription_language: transcription.as_ref().and_then(|t| t.language),
        tool_names: session
            .tools
            .unwrap_or_default()
            .into_iter()
            .filter_map(|tool| tool.name)
            .collect(),
        beta_field: beta_fields
            .iter()
            .find(|(_, present)| *present)
            .map(|(name, _)| *name),
    }
}

// ---------------------------------------------------------------------------------------
// Server events as the Realtime stand-in writes them
// ---------------------------------------------------------------------------------------

/// Source of the stand-in's `event_id`s (`event_1`, `event_2`, …), unique per process.
static NEXT_EVENT_ID: AtomicU64 = AtomicU64::new(1);

/// Appends `{"type":"<kind>","event_id":"event_<n>"` (the message stays open).
fn open_server(buf: &mut String, kind: &str) {
    open_client(buf, kind);
    buf.push_str(",\"event_id\":\"event_");
    push_u64(buf, NEXT_EVENT_ID.fetch_add(1, Ordering::Relaxed));
    buf.push('"');
}

/// Appends `,"<key>":"<escaped value>"`.
fn push_field(buf: &mut String, key: &str, value: &str) {
    buf.push_str(",\"");
    buf.push_str(key);
    buf.push_str("\":");
    push_string(buf, value);
}

/// Appends `,"session":{…}` with the identity fields of a GA session object.
fn push_session(buf: &mut String, session_id: &str, model: &str) {
    buf.push_str(",\"session\":{\"object\":\"realtime.session\",\"type\":\"realtime\"");
    push_field(buf, "id", session_id);
    push_field(buf, "model", model);
    buf.push_str(",\"output_modalities\":[\"audio\"]}");
}

/// Stand-in: appends `session.created` (the first event on a session).
pub fn write_session_created(buf: &mut String, session_id: &str, model: &str) {
    open_server(buf, "session.created");
    push_session(buf, session_id, model);
    buf.push('}');
}

/// Stand-in: appends `session.updated` (a `session.update` was applied).
pub fn write_session_updated(buf: &mut String, session_id: &str, model: &str) {
    open_server(buf, "session.updated");
    push_session(buf, session_id, model);
    buf.push('}');
}

/// Stand-in: appends `response.output_audio.delta` (GA name) carrying base64 audio.
pub fn write_audio_delta(buf: &mut String, response_id: &str, item_id: &str, delta_b64: &str) {
    buf.reserve(160 + response_id.len() + item_id.len() + delta_b64.len());
    open_server(buf, "response.output_audio.delta");
    push_field(buf, "response_id", response_id);
    push_field(buf, "item_id", item_id);
    buf.push_str(",\"output_index\":0,\"content_index\":0,\"delta\":\"");
    push_escaped(buf, delta_b64);
    buf.push_str("\"}");
}

/// Stand-in: appends `response.output_audio.done`.
pub fn write_audio_done(buf: &mut String, response_id: &str, item_id: &str) {
    open_server(buf, "response.output_audio.done");
    push_field(buf, "response_id", response_id);
    push_field(buf, "item_id", item_id);
    buf.push_str(",\"output_index\":0,\"content_index\":0}");
}

/// Stand-in: appends `input_audio_buffer.speech_started`.
pub fn write_speech_started(buf: &mut String, item_id: &str, audio_start_ms: u64) {
    open_server(buf, "input_audio_buffer.speech_started");
    buf.push_str(",\"audio_start_ms\":");
    push_u64(buf, audio_start_ms);
    push_field(buf, "item_id", item_id);
    buf.push('}');
}

/// Stand-in: appends `input_audio_buffer.speech_stopped`.
pub fn write_speech_stopped(buf: &mut String, item_id: &str, audio_end_ms: u64) {
    open_server(buf, "input_audio_buffer.speech_stopped");
    buf.push_str(",\"audio_end_ms\":");
    push_u64(buf, audio_end_ms);
    push_field(buf, "item_id", item_id);
    buf.push('}');
}

/// Stand-in: appends `conversation.item.input_audio_transcription.completed`.
pub fn write_input_transcription_completed(buf: &mut String, item_id: &str, transcript: &str) {
    open_server(buf, "conversation.item.input_audio_transcription.completed");
    push_field(buf, "item_id", item_id);
    buf.push_str(",\"content_index\":0");
    push_field(buf, "transcript", transcript);
    buf.push('}');
}

/// Stand-in: appends `response.output_audio_transcript.done` (GA name).
pub fn write_output_transcript_done(
    buf: &mut String,
    response_id: &str,
    item_id: &str,
    transcript: &str,
) {
    open_server(buf, "response.output_audio_transcript.done");
    push_field(buf, "response_id", response_id);
    push_field(buf, "item_id", item_id);
    buf.push_str(",\"output_index\":0,\"content_index\":0");
    push_field(buf, "transcript", transcript);
    buf.push('}');
}

/// Stand-in: appends `response.function_call_arguments.done`; `arguments_json` is sent as
/// an escaped string, as the real server does.
pub fn write_function_call_arguments_done(
    buf: &mut String,
    response_id: &str,
    item_id: &str,
    call_id: &str,
    name: &str,
    arguments_json: &str,
) {
    open_server(buf, "response.function_call_arguments.done");
    push_field(buf, "response_id", response_id);
    push_field(buf, "item_id", item_id);
    buf.push_str(",\"output_index\":0");
    push_field(buf, "call_id", call_id);
    push_field(buf, "name", name);
    push_field(buf, "arguments", arguments_json);
    buf.push('}');
}

/// Stand-in: appends `response.output_item.added` for an item of `item_type` (`message`
/// with `role`, or `function_call` with `role` `None`).
pub fn write_output_item_added(
    buf: &mut String,
    response_id: &str,
    item_id: &str,
    item_type: &str,
    role: Option<&str>,
) {
    open_server(buf, "response.output_item.added");
    push_field(buf, "response_id", response_id);
    buf.push_str(",\"output_index\":0,\"item\":{\"object\":\"realtime.item\"");
    push_field(buf, "id", item_id);
    push_field(buf, "type", item_type);
    buf.push_str(",\"status\":\"in_progress\"");
    if let Some(role) = role {
        push_field(buf, "role", role);
        buf.push_str(",\"content\":[]");
    }
    buf.push_str("}}");
}

/// Stand-in: appends `response.created` (status `in_progress`).
pub fn write_response_created(buf: &mut String, response_id: &str) {
    open_server(buf, "response.created");
    buf.push_str(",\"response\":{\"object\":\"realtime.response\"");
    push_field(buf, "id", response_id);
    buf.push_str(
        ",\"status\":\"in_progress\",\"status_details\":null,\"output\":[],\"usage\":null}}",
    );
}

/// Stand-in: appends `response.done` with `status` (`completed`, `cancelled`, …) and no usage.
pub fn write_response_done(buf: &mut String, response_id: &str, status: &str) {
    write_response_done_inner(buf, response_id, status, None);
}

/// Stand-in: appends `response.done` with `status` and token `usage`.
pub fn write_response_done_with_usage(
    buf: &mut String,
    response_id: &str,
    status: &str,
    usage: &Usage,
) {
    write_response_done_inner(buf, response_id, status, Some(usage));
}

fn write_response_done_inner(
    buf: &mut String,
    response_id: &str,
    status: &str,
    usage: Option<&Usage>,
) {
    open_server(buf, "response.done");
    buf.push_str(",\"response\":{\"object\":\"realtime.response\"");
    push_field(buf, "id", response_id);
    push_field(buf, "status", status);
    buf.push_str(",\"status_details\":null,\"output\":[],\"usage\":");
    match usage {
        None => buf.push_str("null"),
        Some(usage) => {
            let numbers = [
                ("{\"total_tokens\":", usage.total_tokens),
                (",\"input_tokens\":", usage.input_tokens),
                (",\"output_tokens\":", usage.output_tokens),
                (
                    ",\"input_token_details\":{\"text_tokens\":",
                    usage.input_text_tokens,
                ),
                (",\"audio_tokens\":", usage.input_audio_tokens),
                (",\"cached_tokens\":", usage.input_cached_tokens),
                (
                    "},\"output_token_details\":{\"text_tokens\":",
                    usage.output_text_tokens,
                ),
                (",\"audio_tokens\":", usage.output_audio_tokens),
            ];
            for (prefix, n) in numbers {
                buf.push_str(prefix);
                push_u64(buf, n);
            }
            buf.push_str("}}");
        }
    }
    buf.push_str("}}");
}

/// Stand-in: appends an `error` event of type `invalid_request_error`.
pub fn write_error(buf: &mut String, code: &str, message: &str) {
    open_server(buf, "error");
    buf.push_str(",\"error\":{\"type\":\"invalid_request_error\"");
    push_field(buf, "code", code);
    push_field(buf, "message", message);
    buf.push_str(",\"param\":null,\"event_id\":null}}");
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    const AUDIO: &str = "//////////8=";

    fn written(write: impl FnOnce(&mut String)) -> String {
        let mut buf = String::new();
        write(&mut buf);
        serde_json::from_str::<Value>(&buf).expect("writer produced invalid JSON");
        buf
    }

    fn value(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// The value at a JSON pointer (`/session/type`), or `null`.
    fn at(value: &Value, pointer: &str) -> Value {
        value.pointer(pointer).cloned().unwrap_or(Value::Null)
    }

    // --- server events: writer → parser round trips -----------------------------------

    #[test]
    fn session_events_round_trip() {
        let created = written(|b| write_session_created(b, "sess_1", "gpt-realtime"));
        assert_eq!(
            parse_server_event(&created).unwrap(),
            ServerEvent::SessionCreated
        );
        let updated = written(|b| write_session_updated(b, "sess_1", "gpt-realtime"));
        assert_eq!(
            parse_server_event(&updated).unwrap(),
            ServerEvent::SessionUpdated
        );
        assert_eq!(at(&value(&updated), "/session/type"), "realtime");
    }

    #[test]
    fn audio_delta_round_trips_and_borrows() {
        // Arrange
        let text = written(|b| write_audio_delta(b, "resp_1", "item_1", AUDIO));

        // Act
        let event = parse_server_event(&text).unwrap();

        // Assert
        let ServerEvent::AudioDelta {
            response_id,
            item_id,
            delta,
        } = event
        else {
            panic!("expected an audio delta, got {event:?}");
        };
        assert_eq!((response_id, item_id), ("resp_1", "item_1"));
        let Cow::Borrowed(delta) = delta else {
            panic!("delta was copied");
        };
        assert_eq!(delta, AUDIO);
        assert!(text.as_bytes().as_ptr_range().contains(&delta.as_ptr()));
        assert!(text.starts_with("{\"type\":\"response.output_audio.delta\",\"event_id\":\"event_"));
    }

    #[test]
    fn beta_audio_names_are_aliases() {
        let delta = r#"{"type":"response.audio.delta","event_id":"e","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"AAAA"}"#;
        assert_eq!(
            parse_server_event(delta).unwrap(),
            ServerEvent::AudioDelta {
                response_id: "r",
                item_id: "i",
                delta: Cow::Borrowed("AAAA")
            }
        );
        let done = r#"{"type":"response.audio.done","response_id":"r","item_id":"i"}"#;
        assert_eq!(
            parse_server_event(done).unwrap(),
            ServerEvent::AudioDone {
                response_id: "r",
                item_id: "i"
            }
        );
        let transcript = r#"{"type":"response.audio_transcript.done","response_id":"r","item_id":"i","transcript":"hi"}"#;
        assert!(matches!(
            parse_server_event(transcript).unwrap(),
            ServerEvent::OutputTranscriptDone { transcript, .. } if transcript == "hi"
        ));
    }

    #[test]
    fn audio_done_and_speech_events_round_trip() {
        let done = written(|b| write_audio_done(b, "resp_1", "item_1"));
        assert_eq!(
            parse_server_event(&done).unwrap(),
            ServerEvent::AudioDone {
                response_id: "resp_1",
                item_id: "item_1"
            }
        );
        let started = written(|b| write_speech_started(b, "item_2", 1830));
        assert_eq!(
            parse_server_event(&started).unwrap(),
            ServerEvent::SpeechStarted {
                audio_start_ms: 1830,
                item_id: "item_2"
            }
        );
        let stopped = written(|b| write_speech_stopped(b, "item_2", 2400));
        assert_eq!(
            parse_server_event(&stopped).unwrap(),
            ServerEvent::SpeechStopped {
                audio_end_ms: 2400,
                item_id: "item_2"
            }
        );
    }

    #[test]
    fn transcripts_round_trip_with_escapes() {
        let said = "Je voudrais réserver « pour 4 », s'il vous plaît.\n\"Merci\" 日本語 \\ ok";
        let input = written(|b| write_input_transcription_completed(b, "item_3", said));
        assert_eq!(
            parse_server_event(&input).unwrap(),
            ServerEvent::InputTranscriptionCompleted {
                item_id: "item_3",
                transcript: Cow::Owned(said.to_owned())
            }
        );
        let output = written(|b| write_output_transcript_done(b, "resp_2", "item_4", "Bonjour !"));
        let event = parse_server_event(&output).unwrap();
        assert_eq!(
            event,
            ServerEvent::OutputTranscriptDone {
                response_id: "resp_2",
                item_id: "item_4",
                transcript: Cow::Borrowed("Bonjour !")
            }
        );
        assert!(matches!(
            event,
            ServerEvent::OutputTranscriptDone {
                transcript: Cow::Borrowed(_),
                ..
            }
        ));
    }

    #[test]
    fn function_call_arguments_round_trip() {
        let args = r#"{"requested_date":"2026-06-01","requested_time":"19:30","party_size":4}"#;
        let text = written(|b| {
            write_function_call_arguments_done(
                b,
                "resp_5",
                "item_5",
                "call_abc",
                "create_reservation",
                args,
            )
        });
        assert_eq!(
            parse_server_event(&text).unwrap(),
            ServerEvent::FunctionCallArgumentsDone {
                call_id: "call_abc",
                name: "create_reservation",
                arguments: Cow::Owned(args.to_owned()),
                item_id: "item_5",
                response_id: "resp_5"
            }
        );
    }

    #[test]
    fn response_lifecycle_round_trips() {
        let created = written(|b| write_response_created(b, "resp_6"));
        assert_eq!(
            parse_server_event(&created).unwrap(),
            ServerEvent::ResponseCreated {
                response_id: "resp_6"
            }
        );
        let done = written(|b| write_response_done(b, "resp_6", "cancelled"));
        assert_eq!(
            parse_server_event(&done).unwrap(),
            ServerEvent::ResponseDone {
                response_id: "resp_6",
                status: Some("cancelled"),
                status_reason: None,
                usage: None
            }
        );
        let usage = Usage {
            total_tokens: 100,
            input_tokens: 60,
            output_tokens: 40,
            input_text_tokens: 10,
            input_audio_tokens: 50,
            input_cached_tokens: 5,
            output_text_tokens: 8,
            output_audio_tokens: 32,
        };
        let with_usage =
            written(|b| write_response_done_with_usage(b, "resp_7", "completed", &usage));
        assert!(matches!(
            parse_server_event(&with_usage).unwrap(),
            ServerEvent::ResponseDone { usage: Some(u), status: Some("completed"), .. } if u == usage
        ));
    }

    #[test]
    fn response_done_reads_reason_and_partial_usage() {
        let text = r#"{"type":"response.done","event_id":"e","response":{"object":"realtime.response","id":"resp_8","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},"output":[{"type":"message","content":[{"type":"output_audio","transcript":"He\"llo"}]}],"usage":{"total_tokens":7,"input_tokens":3,"output_tokens":4}}}"#;
        assert_eq!(
            parse_server_event(text).unwrap(),
            ServerEvent::ResponseDone {
                response_id: "resp_8",
                status: Some("cancelled"),
                status_reason: Some("turn_detected"),
                usage: Some(Usage {
                    total_tokens: 7,
                    input_tokens: 3,
                    output_tokens: 4,
                    ..Usage::default()
                })
            }
        );
    }

    #[test]
    fn output_item_added_round_trips() {
        let message = written(|b| {
            write_output_item_added(b, "resp_9", "item_9", "message", Some("assistant"))
        });
        assert_eq!(
            parse_server_event(&message).unwrap(),
            ServerEvent::OutputItemAdded {
                response_id: Some("resp_9"),
                item_id: "item_9",
                item_type: Some("message"),
                role: Some("assistant")
            }
        );
        let call =
            written(|b| write_output_item_added(b, "resp_9", "item_10", "function_call", None));
        assert!(matches!(
            parse_server_event(&call).unwrap(),
            ServerEvent::OutputItemAdded {
                role: None,
                item_type: Some("function_call"),
                ..
            }
        ));
    }

    #[test]
    fn error_round_trips() {
        let text = written(|b| {
            write_error(
                b,
                "response_cancel_not_active",
                "Cancellation failed: \"no\" response",
            )
        });
        assert_eq!(
            parse_server_event(&text).unwrap(),
            ServerEvent::Error {
                error_type: Some("invalid_request_error"),
                code: Some("response_cancel_not_active"),
                message: Cow::Owned("Cancellation failed: \"no\" response".to_owned()),
                param: None,
                event_id: None
            }
        );
    }

    #[test]
    fn unknown_server_events_are_other() {
        for (text, kind) in [
            (
                r#"{"type":"rate_limits.updated","rate_limits":[{"name":"requests","limit":1}]}"#,
                "rate_limits.updated",
            ),
            (
                r#"{"type":"conversation.item.added","item":{"id":5}}"#,
                "conversation.item.added",
            ),
            (
                r#"{"type":"response.output_audio_transcript.delta","delta":"he"}"#,
                "response.output_audio_transcript.delta",
            ),
            (
                r#"{"type":"future.event","delta":{"nested":true},"name":[1]}"#,
                "future.event",
            ),
        ] {
            assert_eq!(
                parse_server_event(text).unwrap(),
                ServerEvent::Other { kind },
                "{text}"
            );
        }
    }

    // --- server events: malformed input ------------------------------------------------

    #[test]
    fn malformed_server_events_are_json_errors() {
        for bad in [
            "",
            "{",
            "null",
            "42",
            r#"{"type":7}"#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":5}"#,
            r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":-5,"item_id":"i"}"#,
            r#"{"type":"response.done","response":"resp_1"}"#,
            r#"{"type":"error","error":{"message":"a"}} x"#,
        ] {
            assert!(
                matches!(parse_server_event(bad), Err(ProtocolError::Json(_))),
                "{bad:?} gave {:?}",
                parse_server_event(bad)
            );
        }
    }

    #[test]
    fn missing_server_fields_are_named() {
        for (text, field) in [
            (r#"{"event_id":"e"}"#, "type"),
            (
                r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i"}"#,
                "delta",
            ),
            (
                r#"{"type":"response.output_audio.delta","response_id":"r","delta":"AAAA"}"#,
                "item_id",
            ),
            (
                r#"{"type":"response.output_audio.delta","item_id":"i","delta":"AAAA"}"#,
                "response_id",
            ),
            (
                r#"{"type":"input_audio_buffer.speech_started","item_id":"i"}"#,
                "audio_start_ms",
            ),
            (
                r#"{"type":"response.function_call_arguments.done","call_id":"c","name":"n","item_id":"i","response_id":"r"}"#,
                "arguments",
            ),
            (r#"{"type":"response.created"}"#, "response"),
            (
                r#"{"type":"response.done","response":{"status":"completed"}}"#,
                "response.id",
            ),
            (
                r#"{"type":"response.output_item.added","item":{"type":"message"}}"#,
                "item.id",
            ),
            (r#"{"type":"error"}"#, "error"),
            (
                r#"{"type":"error","error":{"type":"server_error","message":null}}"#,
                "error.message",
            ),
        ] {
            assert_eq!(
                parse_server_event(text),
                Err(ProtocolError::MissingField(field)),
                "{text}"
            );
        }
    }

    #[test]
    fn oversized_and_deeply_nested_server_events_are_clean_errors() {
        let big = format!(
            r#"{{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"{}"}}"#,
            "A".repeat(MAX_REALTIME_FRAME_BYTES)
        );
        assert!(matches!(
            parse_server_event(&big),
            Err(ProtocolError::TooLarge {
                limit: MAX_REALTIME_FRAME_BYTES,
                ..
            })
        ));
        // Unknown values are skipped iteratively (no stack use): balanced junk is ignored,
        // unbalanced junk is a JSON error.
        let depth = 1_000_000;
        let deep = format!(
            r#"{{"type":"future","x":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert_eq!(
            parse_server_event(&deep),
            Ok(ServerEvent::Other { kind: "future" })
        );
        let deep = format!(r#"{{"type":"session.updated","x":{}}}"#, "[".repeat(depth));
        assert!(matches!(
            parse_server_event(&deep),
            Err(ProtocolError::Json(_))
        ));
        let deep = format!(
            r#"{{"type":"error","error":{}}}"#,
            "{\"a\":".repeat(depth / 10)
        );
        assert!(matches!(
            parse_server_event(&deep),
            Err(ProtocolError::Json(_))
        ));
    }

    #[test]
    fn mutated_server_events_never_panic() {
        let mut frames = Vec::new();
        let mut buf = String::new();
        write_audio_delta(&mut buf, "resp_1", "item_1", AUDIO);
        frames.push(std::mem::take(&mut buf));
        write_response_done_with_usage(&mut buf, "resp_1", "completed", &Usage::default());
        frames.push(std::mem::take(&mut buf));
        write_function_call_arguments_done(
            &mut buf,
            "r",
            "i",
            "c",
            "end_call",
            "{\"reason\":\"bye\"}",
        );
        frames.push(std::mem::take(&mut buf));
        for frame in &frames {
            for cut in 0..frame.len() {
                if let Some(prefix) = frame.get(..cut) {
                    let _ = parse_server_event(prefix);
                    let _ = parse_client_event(prefix);
                }
            }
            let bytes = frame.as_bytes();
            for i in 0..bytes.len() {
                for replacement in [b'"', b'\\', b'}', b'[', b'9', b'-'] {
                    let mut mutated = bytes.to_vec();
                    if let Some(byte) = mutated.get_mut(i) {
                        *byte = replacement;
                    }
                    if let Ok(text) = std::str::from_utf8(&mutated) {
                        let _ = parse_server_event(text);
                    }
                }
            }
        }
    }

    // --- client events: exact shapes and round trips -------------------------------------

    #[test]
    fn client_writers_produce_documented_shapes() {
        assert_eq!(
            written(|b| write_input_audio_append(b, AUDIO)),
            format!(r#"{{"type":"input_audio_buffer.append","audio":"{AUDIO}"}}"#)
        );
        assert_eq!(
            written(|b| write_truncate(b, "item_1", 0, 1830)),
            r#"{"type":"conversation.item.truncate","item_id":"item_1","content_index":0,"audio_end_ms":1830}"#
        );
        assert_eq!(
            written(|b| write_function_call_output(b, "call_abc", r#"{"ok":true}"#)),
            r#"{"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"call_abc","output":"{\"ok\":true}"}}"#
        );
        assert_eq!(
            written(write_response_create),
            r#"{"type":"response.create"}"#
        );
        assert_eq!(
            written(write_response_cancel),
            r#"{"type":"response.cancel"}"#
        );
        assert_eq!(
            written(|b| write_response_create_with_instructions(b, "Say \"hi\"")),
            r#"{"type":"response.create","response":{"instructions":"Say \"hi\""}}"#
        );
        assert_eq!(
            written(|b| write_greeting(b, "Hello, Luigi's!")),
            r#"{"type":"response.create","response":{"instructions":"Greet the caller with exactly: Hello, Luigi's!"}}"#
        );
        assert_eq!(
            written(|b| write_user_text_item(b, "hi")),
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}}"#
        );
        assert_eq!(
            written(|b| write_assistant_text_item(b, "hello")),
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"hello"}]}}"#
        );
    }

    #[test]
    fn audio_append_round_trips_and_borrows() {
        let text = written(|b| write_input_audio_append(b, AUDIO));
        let ClientEvent::InputAudioAppend { audio } = parse_client_event(&text).unwrap() else {
            panic!("expected append");
        };
        assert_eq!(audio, AUDIO);
        assert!(text.as_bytes().as_ptr_range().contains(&audio.as_ptr()));
    }

    #[test]
    fn client_items_round_trip() {
        let truncate = written(|b| write_truncate(b, "item_1", 2, 1830));
        assert_eq!(
            parse_client_event(&truncate).unwrap(),
            ClientEvent::ItemTruncate {
                item_id: "item_1",
                content_index: 2,
                audio_end_ms: 1830
            }
        );
        let output = written(|b| write_function_call_output(b, "call_1", r#"{"ok":true}"#));
        assert_eq!(
            parse_client_event(&output).unwrap(),
            ClientEvent::ItemCreate {
                item_type: "function_call_output",
                call_id: Some("call_1"),
                output: Some(Cow::Owned(r#"{"ok":true}"#.to_owned())),
                role: None,
                content_type: None,
                text: None
            }
        );
        let user = written(|b| write_user_text_item(b, "Table for \"two\""));
        assert!(matches!(
            parse_client_event(&user).unwrap(),
            ClientEvent::ItemCreate { item_type: "message", role: Some("user"), content_type: Some("input_text"), text: Some(t), .. } if t == "Table for \"two\""
        ));
        let assistant = written(|b| write_assistant_text_item(b, "Sure."));
        assert!(matches!(
            parse_client_event(&assistant).unwrap(),
            ClientEvent::ItemCreate {
                role: Some("assistant"),
                content_type: Some("output_text"),
                text: Some(Cow::Borrowed("Sure.")),
                ..
            }
        ));
    }

    #[test]
    fn response_requests_round_trip() {
        assert_eq!(
            parse_client_event(&written(write_response_create)).unwrap(),
            ClientEvent::ResponseCreate { instructions: None }
        );
        assert_eq!(
            parse_client_event(&written(write_response_cancel)).unwrap(),
            ClientEvent::ResponseCancel
        );
        let greeting = written(|b| write_greeting(b, "Bonjour, ici \"Chez Marie\"."));
        let ClientEvent::ResponseCreate {
            instructions: Some(instructions),
        } = parse_client_event(&greeting).unwrap()
        else {
            panic!("expected response.create with instructions");
        };
        assert_eq!(
            instructions,
            "Greet the caller with exactly: Bonjour, ici \"Chez Marie\"."
        );
        let custom = written(|b| write_response_create_with_instructions(b, "Ask again."));
        assert_eq!(
            parse_client_event(&custom).unwrap(),
            ClientEvent::ResponseCreate {
                instructions: Some(Cow::Borrowed("Ask again."))
            }
        );
    }

    #[test]
    fn unknown_and_malformed_client_events() {
        assert_eq!(
            parse_client_event(r#"{"type":"input_audio_buffer.commit"}"#).unwrap(),
            ClientEvent::Other {
                kind: "input_audio_buffer.commit"
            }
        );
        assert_eq!(
            parse_client_event(r#"{"type":"input_audio_buffer.append"}"#),
            Err(ProtocolError::MissingField("audio"))
        );
        assert_eq!(
            parse_client_event(r#"{"type":"conversation.item.create","item":{"role":"user"}}"#),
            Err(ProtocolError::MissingField("item.type"))
        );
        assert!(matches!(
            parse_client_event(r#"{"type":"input_audio_buffer.append","audio":"not base64"}"#),
            Err(ProtocolError::BadPayload(_))
        ));
        assert!(matches!(
            parse_client_event(
                r#"{"type":"conversation.item.truncate","item_id":"i","content_index":-1,"audio_end_ms":1}"#
            ),
            Err(ProtocolError::Json(_))
        ));
        assert!(matches!(
            parse_client_event("{"),
            Err(ProtocolError::Json(_))
        ));
    }

    // --- session configuration -------------------------------------------------------------

    fn sample_config() -> SessionConfig {
        SessionConfig {
            model: "gpt-realtime".to_owned(),
            instructions: "You are the receptionist for \"Chez Marie\".".to_owned(),
            voice: "marin".to_owned(),
            language: "fr-CA".to_owned(),
            greeting: Some("Bonjour !".to_owned()),
            tools: default_tools(),
            transcription_model: "gpt-4o-mini-transcribe".to_owned(),
            vad: VadConfig::default(),
        }
    }

    #[test]
    fn session_update_has_the_ga_shape() {
        // Arrange
        let config = sample_config();

        // Act
        let text = session_update_json(&config);

        // Assert
        assert!(text.starts_with(r#"{"type":"session.update","session":{"type":"realtime","model":"gpt-realtime","output_modalities":["audio"],"instructions":"#), "{text}");
        let session = at(&value(&text), "/session");
        assert_eq!(at(&session, "/instructions"), config.instructions);
        assert_eq!(
            at(&session, "/audio"),
            json!({
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {
                        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                        "silence_duration_ms": 500, "create_response": true, "interrupt_response": true
                    },
                    "transcription": {"model": "gpt-4o-mini-transcribe", "language": "fr"}
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}
            })
        );
        assert_eq!(at(&session, "/tool_choice"), "auto");
        let names: Vec<_> = at(&session, "/tools")
            .as_array()
            .unwrap()
            .iter()
            .map(|t| at(t, "/name"))
            .collect();
        assert_eq!(
            names,
            ["create_reservation", "transfer_to_human", "end_call"]
        );
        assert_eq!(at(&session, "/tools/0/type"), "function");
        for banned in [
            "temperature",
            "\"modalities\"",
            "input_audio_format",
            "greeting",
        ] {
            assert!(!text.contains(banned), "{banned} in {text}");
        }
    }

    #[test]
    fn session_update_round_trips_through_the_stand_in_parser() {
        let text = session_update_json(&sample_config());
        let ClientEvent::SessionUpdate(info) = parse_client_event(&text).unwrap() else {
            panic!("expected session.update");
        };
        assert_eq!(info.session_type, Some("realtime"));
        assert_eq!(info.model, Some("gpt-realtime"));
        assert_eq!(info.input_format_type, Some("audio/pcmu"));
        assert_eq!(info.output_format_type, Some("audio/pcmu"));
        assert_eq!(info.voice.as_deref(), Some("marin"));
        assert_eq!(info.turn_detection_type, Some("server_vad"));
        assert_eq!(info.transcription_model, Some("gpt-4o-mini-transcribe"));
        assert_eq!(info.transcription_language, Some("fr"));
        assert_eq!(
            info.tool_names,
            ["create_reservation", "transfer_to_human", "end_call"]
        );
        assert_eq!(info.beta_field, None);
        assert_eq!(
            info.instructions.as_deref(),
            Some("You are the receptionist for \"Chez Marie\".")
        );
    }

    #[test]
    fn stand_in_flags_beta_sessions_and_custom_voices() {
        let beta = r#"{"type":"session.update","session":{"modalities":["text","audio"],"input_audio_format":"g711_ulaw","temperature":0.8}}"#;
        let ClientEvent::SessionUpdate(info) = parse_client_event(beta).unwrap() else {
            panic!("expected session.update");
        };
        assert_eq!(info.beta_field, Some("temperature"));
        assert_eq!(info.session_type, None);
        let custom = r#"{"type":"session.update","session":{"type":"realtime","audio":{"output":{"voice":{"id":"voice_123"}}}}}"#;
        let ClientEvent::SessionUpdate(info) = parse_client_event(custom).unwrap() else {
            panic!("expected session.update");
        };
        assert_eq!(info.voice.as_deref(), Some("voice_123"));
    }

    #[test]
    fn transcription_language_is_the_primary_subtag() {
        assert_eq!(transcription_language("en").as_deref(), Some("en"));
        assert_eq!(transcription_language("en-US").as_deref(), Some("en"));
        assert_eq!(transcription_language(" FR_ca ").as_deref(), Some("fr"));
        assert_eq!(
            transcription_language("rw"),
            None,
            "not documented: auto-detect"
        );
        assert_eq!(transcription_language("ja-JP").as_deref(), Some("ja"));
        assert_eq!(
            transcription_language("fil"),
            None,
            "Filipino is documented as tl"
        );
        for bad in ["", "-", "e", "english", "e1", "日本"] {
            assert_eq!(transcription_language(bad), None, "{bad:?}");
        }
        let mut config = sample_config();
        config.language = String::new();
        let text = session_update_json(&config);
        assert!(value(&text)
            .pointer("/session/audio/input/transcription/language")
            .is_none());
    }

    #[test]
    fn default_tools_are_valid_function_schemas() {
        let tools = default_tools();
        assert_eq!(tools.len(), 3);
        for tool in &tools {
            assert!(!tool.description.is_empty(), "{}", tool.name);
            assert_eq!(at(&tool.parameters, "/type"), "object", "{}", tool.name);
            let properties = at(&tool.parameters, "/properties");
            let properties = properties.as_object().unwrap();
            for required in at(&tool.parameters, "/required").as_array().unwrap() {
                assert!(
                    properties.contains_key(required.as_str().unwrap()),
                    "{}",
                    tool.name
                );
            }
        }
        let [reservation, transfer, end] = tools.as_slice() else {
            panic!("expected three tools");
        };
        let reservation = &reservation.parameters;
        assert_eq!(
            at(reservation, "/required"),
            json!(["requested_date", "requested_time"])
        );
        assert_eq!(at(reservation, "/properties/party_size/type"), "integer");
        for key in [
            "customer_name",
            "customer_phone",
            "requested_date",
            "requested_time",
            "notes",
        ] {
            let pointer = format!("/properties/{key}/type");
            assert_eq!(at(reservation, &pointer), "string", "{key}");
        }
        assert_eq!(at(&transfer.parameters, "/required"), json!(["reason"]));
        assert_eq!(at(&end.parameters, "/required"), json!(["reason"]));
    }

    #[test]
    fn server_event_ids_are_unique() {
        let a = value(&written(|b| write_speech_started(b, "i", 0)));
        let b = value(&written(|b| write_speech_started(b, "i", 0)));
        assert_ne!(at(&a, "/event_id"), at(&b, "/event_id"));
    }

    #[test]
    fn hot_writers_reuse_the_buffer() {
        let mut buf = String::with_capacity(256);
        let capacity = buf.capacity();
        for _ in 0..100 {
            buf.clear();
            write_input_audio_append(&mut buf, AUDIO);
        }
        assert_eq!(buf.capacity(), capacity);
    }
}
