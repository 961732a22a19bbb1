//! The Realtime stand-in's per-session behaviour, without sockets: what it records and what
//! it answers to each client event or test command.
//!
//! `Conversation` turns one client frame (or one command from the test) into the server
//! events to send, and writes what happened into the session's [`SessionRecord`]. The
//! WebSocket actor in `realtime_server` only moves frames; this split keeps every rule here
//! unit-testable and the actor small.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use callvisor_wire::protocol::realtime::{
    self as rt, parse_client_event, ClientEvent, SessionUpdateInfo, Usage,
    GREETING_INSTRUCTIONS_PREFIX,
};
use callvisor_wire::protocol::ProtocolError;
use serde::Serialize;
use serde_json::{json, Value};

use super::audio::{agent_tone_frame, base64_decoded_len, mulaw_ms, FRAME_BYTES, FRAME_MS};

/// GA client event types; anything else is answered with an `invalid_value` error.
const GA_CLIENT_EVENTS: [&str; 11] = [
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
];

/// Longest list kept for unbounded per-event records (errors, unknown events).
const MAX_SMALL_RECORDS: usize = 1000;

/// Source of `event_id`s for events this module writes itself.
static NEXT_EVENT_ID: AtomicU64 = AtomicU64::new(1);

/// What the stand-in does with caller audio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum RealtimeMode {
    /// Every `input_audio_buffer.append` is answered at once by one
    /// `response.output_audio.delta` carrying the very same base64 audio (response
    /// `resp_echo`, item `item_echo`): order kept, nothing dropped, merged or split.
    Echo,
    /// A conversation: greeting on `response.create`, a caller turn (with transcript) and
    /// an agent reply after every `caller_turn_ms` of caller audio.
    #[default]
    Scripted,
}

/// Parameters of [`RealtimeMode::Scripted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptConfig {
    /// Transcript of the answer to the first `response.create` without greeting
    /// instructions (with `Greet the caller with exactly: X` the transcript is X).
    pub greeting_transcript: String,
    /// Audio per agent response, in ms (20 ms per delta; default 1000 = 50 deltas).
    pub response_audio_ms: u32,
    /// Caller audio per caller turn, in ms (default 1000; 0 disables caller turns).
    pub caller_turn_ms: u32,
    /// Pause between audio deltas; zero (the default) sends a whole response at once, as
    /// the real API does when it generates faster than real time. A non-zero pace keeps a
    /// response in progress, so it can be cancelled or interrupted.
    pub delta_interval: Duration,
    /// Send caller transcripts only once a `session.update` configured input transcription
    /// (as the real API does). Default `true`.
    pub require_transcription_config: bool,
}

impl Default for ScriptConfig {
    fn default() -> Self {
        ScriptConfig {
            greeting_transcript: "Hello, thanks for calling. How can I help?".to_owned(),
            response_audio_ms: 1000,
            caller_turn_ms: 1000,
            delta_interval: Duration::ZERO,
            require_transcription_config: true,
        }
    }
}

/// A `session.update` as the stand-in understood it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordedSessionUpdate {
    /// `session.type`.
    pub session_type: Option<String>,
    /// `session.model`.
    pub model: Option<String>,
    /// `session.instructions`.
    pub instructions: Option<String>,
    /// `session.audio.input.format.type`.
    pub input_format: Option<String>,
    /// `session.audio.output.format.type`.
    pub output_format: Option<String>,
    /// `session.audio.output.voice`.
    pub voice: Option<String>,
    /// `session.audio.input.turn_detection.type`.
    pub turn_detection: Option<String>,
    /// `session.audio.input.transcription.model`.
    pub transcription_model: Option<String>,
    /// `session.audio.input.transcription.language`.
    pub transcription_language: Option<String>,
    /// `session.tools[].name`.
    pub tools: Vec<String>,
    /// A beta-only field that was present (the GA server rejects it).
    pub beta_field: Option<String>,
    /// `true` if applied (answered with `session.updated`), `false` if answered with an error.
    pub accepted: bool,
}

impl RecordedSessionUpdate {
    fn from_info(info: &SessionUpdateInfo<'_>) -> Self {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        RecordedSessionUpdate {
            session_type: owned(info.session_type),
            model: owned(info.model),
            instructions: info.instructions.as_deref().map(str::to_owned),
            input_format: owned(info.input_format_type),
            output_format: owned(info.output_format_type),
            voice: info.voice.as_deref().map(str::to_owned),
            turn_detection: owned(info.turn_detection_type),
            transcription_model: owned(info.transcription_model),
            transcription_language: owned(info.transcription_language),
            tools: info.tool_names.iter().map(|t| (*t).to_owned()).collect(),
            beta_field: owned(info.beta_field),
            accepted: false,
        }
    }
}

/// A `conversation.item.truncate` received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TruncateRecord {
    /// `item_id`.
    pub item_id: String,
    /// `content_index`.
    pub content_index: u32,
    /// `audio_end_ms`.
    pub audio_end_ms: u64,
    /// `true` if answered with `conversation.item.truncated`; `false` if the item is not an
    /// assistant item of this session or `audio_end_ms` exceeds its audio (an error).
    pub accepted: bool,
}

/// A `conversation.item.create` received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemRecord {
    /// `item.type` (`message`, `function_call_output`, …).
    pub item_type: String,
    /// `item.role`, for messages.
    pub role: Option<String>,
    /// `item.content[0].type`, for messages.
    pub content_type: Option<String>,
    /// `item.content[0].text`, for messages.
    pub text: Option<String>,
    /// `item.call_id`, for function-call outputs.
    pub call_id: Option<String>,
    /// `item.output`, for function-call outputs.
    pub output: Option<String>,
    /// For function-call outputs: whether `call_id` names a tool call this session emitted.
    pub call_id_known: bool,
}

/// What a response carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ResponseKind {
    /// An assistant message with audio and a transcript.
    Audio,
    /// A function call.
    FunctionCall,
    /// Nothing (echo mode's answer to `response.create`).
    Empty,
}

/// A response the stand-in produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseRecord {
    /// `resp_N`.
    pub response_id: String,
    /// The output item (`item_aN`, `item_fN`), if any.
    pub item_id: Option<String>,
    /// What it carried.
    pub kind: ResponseKind,
    /// The transcript spoken, for audio responses.
    pub transcript: Option<String>,
    /// Audio sent, in ms.
    pub audio_ms: u64,
    /// `in_progress`, `completed` or `cancelled`.
    pub status: String,
    /// `turn_detected` / `client_cancelled` for cancelled responses.
    pub reason: Option<String>,
}

/// A tool call the stand-in emitted (`response.function_call_arguments.done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCallRecord {
    /// The response that carried it.
    pub response_id: String,
    /// The `function_call` item.
    pub item_id: String,
    /// The fresh `call_id`.
    pub call_id: String,
    /// Function name.
    pub name: String,
    /// Arguments (JSON text).
    pub arguments: String,
}

/// Everything recorded about one Realtime WebSocket session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    /// Position among the sessions this server accepted, from 0.
    pub index: usize,
    /// `sess_…`.
    pub session_id: String,
    /// `?model=` of the connect URL.
    pub model: Option<String>,
    /// `?call_id=` of the connect URL (SIP sideband sessions).
    pub call_id: Option<String>,
    /// The `OpenAI-Beta` header, if the client sent one (the GA API wants none).
    pub openai_beta_header: Option<String>,
    /// The session's current mode.
    pub mode: RealtimeMode,
    /// Every `session.update`, in order.
    pub session_updates: Vec<RecordedSessionUpdate>,
    /// `input_audio_buffer.append` events received.
    pub appends: u64,
    /// Audio bytes received in appends (decoded size).
    pub audio_bytes: u64,
    /// Appends received before any `session.update` was applied (the real API would have
    /// read them as 24 kHz PCM).
    pub appends_before_session_update: u64,
    /// The appended base64 payloads, in order, up to the server's limit.
    pub appended_payloads: Vec<String>,
    /// Payloads not kept because the limit was reached.
    pub payloads_not_kept: u64,
    /// `conversation.item.truncate` events.
    pub truncates: Vec<TruncateRecord>,
    /// `conversation.item.create` events.
    pub items_created: Vec<ItemRecord>,
    /// `response.create` events.
    pub response_creates: u64,
    /// `response.instructions` of each `response.create`, in order.
    pub response_instructions: Vec<Option<String>>,
    /// `response.cancel` events.
    pub response_cancels: u64,
    /// Responses produced, in order.
    pub responses: Vec<ResponseRecord>,
    /// Tool calls emitted, in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Caller turns completed (scripted mode).
    pub caller_turns: u32,
    /// `input_audio_buffer.speech_started` events sent.
    pub speech_started_sent: u32,
    /// Codes of the `error` events sent.
    pub errors_sent: Vec<String>,
    /// Client frames that could not be parsed (reason), bounded.
    pub protocol_errors: Vec<String>,
    /// Event types received that the stand-in does not act on, bounded.
    pub other_events: Vec<String>,
    /// Server events sent.
    pub events_sent: u64,
    /// `true` once the socket is gone.
    pub closed: bool,
    /// Why it ended: `client_close`, `client_gone`, `dropped_by_standin`,
    /// `closed_by_standin`, `server_stopped`.
    pub close_reason: Option<String>,
}

impl SessionRecord {
    /// The last `session.update` that was applied.
    #[must_use]
    pub fn applied_session(&self) -> Option<&RecordedSessionUpdate> {
        self.session_updates.iter().rev().find(|u| u.accepted)
    }
}

fn push_bounded(list: &mut Vec<String>, value: String) {
    if list.len() < MAX_SMALL_RECORDS {
        list.push(value);
    }
}

/// A response being spoken.
#[derive(Debug)]
struct Active {
    response_id: String,
    item_id: String,
    transcript: String,
    remaining_deltas: u32,
    record: usize,
}

/// What a test can make a session do (see `RealtimeServer`'s methods).
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
pub enum SessionCommand {
    /// Close the TCP connection abruptly: no close frame, as a network failure would.
    Drop,
    /// Close cleanly with a close frame (code 1000).
    Close,
    /// Send `input_audio_buffer.speech_started` (interrupting a paced response).
    SpeechStarted,
    /// Emit a response carrying one function call with a fresh `call_id`.
    ToolCall {
        /// Function name.
        name: String,
        /// Arguments as JSON text.
        arguments: String,
    },
    /// Speak a response with this transcript now, unprompted.
    AgentResponse {
        /// The transcript.
        transcript: String,
    },
    /// Switch this session's mode.
    SetMode(RealtimeMode),
    /// Send this text frame as is (any server event a test needs).
    Raw(String),
}

/// One session's conversation state.
#[derive(Debug)]
pub(crate) struct Conversation {
    mode: RealtimeMode,
    script: ScriptConfig,
    session_id: String,
    model: String,
    max_payloads: usize,
    configured: bool,
    transcription: bool,
    next_response: u64,
    next_user_item: u64,
    next_client_item: u64,
    input_bytes: u64,
    turn_bytes: u64,
    last_turn_end_ms: u64,
    input_bytes_at_last_response: u64,
    active: Option<Active>,
    /// Audio bytes sent per assistant item, for validating truncates.
    assistant_audio: HashMap<String, u64>,
    tone_b64: String,
}

/// Appends one event written by a protocol writer.
fn emit(out: &mut Vec<String>, write: impl FnOnce(&mut String)) {
    let mut event = String::new();
    write(&mut event);
    out.push(event);
}

/// Appends a JSON event with a fresh `event_id`.
fn emit_json(out: &mut Vec<String>, kind: &str, mut fields: Value) {
    if let Value::Object(map) = &mut fields {
        map.insert("type".to_owned(), Value::String(kind.to_owned()));
        map.insert(
            "event_id".to_owned(),
            Value::String(format!(
                "event_sb{}",
                NEXT_EVENT_ID.fetch_add(1, Ordering::Relaxed)
            )),
        );
    }
    out.push(fields.to_string());
}

impl Conversation {
    pub(crate) fn new(
        mode: RealtimeMode,
        script: ScriptConfig,
        session_id: String,
        model: String,
        max_payloads: usize,
    ) -> Self {
        Conversation {
            mode,
            script,
            session_id,
            model,
            max_payloads,
            configured: false,
            transcription: false,
            next_response: 1,
            next_user_item: 1,
            next_client_item: 1,
            input_bytes: 0,
            turn_bytes: 0,
            last_turn_end_ms: 0,
            input_bytes_at_last_response: 0,
            active: None,
            assistant_audio: HashMap::new(),
            tone_b64: STANDARD.encode(agent_tone_frame()),
        }
    }

    /// The pause between deltas, when responses are paced.
    pub(crate) fn pace(&self) -> Option<Duration> {
        (!self.script.delta_interval.is_zero()).then_some(self.script.delta_interval)
    }

    /// `true` while a paced response still has deltas to send.
    pub(crate) fn speaking(&self) -> bool {
        self.active.is_some()
    }

    /// The first event: `session.created`.
    pub(crate) fn open(&mut self, rec: &mut SessionRecord, out: &mut Vec<String>) {
        rec.mode = self.mode;
        emit(out, |b| {
            rt::write_session_created(b, &self.session_id, &self.model);
        });
        rec.events_sent += 1;
    }

    /// Handles one client text frame.
    pub(crate) fn client_text(
        &mut self,
        text: &str,
        rec: &mut SessionRecord,
        out: &mut Vec<String>,
    ) {
        let before = out.len();
        match parse_client_event(text) {
            Ok(event) => self.client_event(event, rec, out),
            Err(err) => {
                push_bounded(&mut rec.protocol_errors, err.to_string());
                let (code, param) = match &err {
                    ProtocolError::MissingField(field) => {
                        ("missing_required_parameter", Some(*field))
                    }
                    ProtocolError::BadPayload(_) => ("invalid_value", Some("audio")),
                    ProtocolError::TooLarge { .. } => ("invalid_request", None),
                    ProtocolError::Json(_) => ("invalid_json", None),
                };
                self.error(rec, out, code, &err.to_string(), param);
            }
        }
        rec.events_sent += (out.len() - before) as u64;
    }

    fn error(
        &self,
        rec: &mut SessionRecord,
        out: &mut Vec<String>,
        code: &str,
        message: &str,
        param: Option<&str>,
    ) {
        push_bounded(&mut rec.errors_sent, code.to_owned());
        emit_json(
            out,
            "error",
            json!({"error": {"type": "invalid_request_error", "code": code, "message": message, "param": param, "event_id": null}}),
        );
    }

    fn client_event(
        &mut self,
        event: ClientEvent<'_>,
        rec: &mut SessionRecord,
        out: &mut Vec<String>,
    ) {
        match event {
            ClientEvent::InputAudioAppend { audio } => self.append(audio, rec, out),
            ClientEvent::SessionUpdate(info) => self.session_update(&info, rec, out),
            ClientEvent::ItemTruncate {
                item_id,
                content_index,
                audio_end_ms,
            } => {
                let sent_ms = self.assistant_audio.get(item_id).map(|&b| mulaw_ms(b));
                let accepted = sent_ms.is_some_and(|ms| audio_end_ms <= ms);
                rec.truncates.push(TruncateRecord {
                    item_id: item_id.to_owned(),
                    content_index,
                    audio_end_ms,
                    accepted,
                });
                match sent_ms {
                    Some(_) if accepted => emit_json(
                        out,
                        "conversation.item.truncated",
                        json!({"item_id": item_id, "content_index": content_index, "audio_end_ms": audio_end_ms}),
                    ),
                    Some(ms) => self.error(
                        rec,
                        out,
                        "invalid_value",
                        &format!("Audio content of {ms}ms is already shorter than {audio_end_ms}ms"),
                        Some("audio_end_ms"),
                    ),
                    None => self.error(
                        rec,
                        out,
                        "invalid_value",
                        &format!("Item with item_id '{item_id}' not found or not an assistant item with audio"),
                        Some("item_id"),
                    ),
                }
            }
            ClientEvent::ItemCreate {
                item_type,
                call_id,
                output,
                role,
                content_type,
                text,
            } => {
                let call_id_known =
                    call_id.is_some_and(|id| rec.tool_calls.iter().any(|t| t.call_id == id));
                rec.items_created.push(ItemRecord {
                    item_type: item_type.to_owned(),
                    role: role.map(str::to_owned),
                    content_type: content_type.map(str::to_owned),
                    text: text.as_deref().map(str::to_owned),
                    call_id: call_id.map(str::to_owned),
                    output: output.as_deref().map(str::to_owned),
                    call_id_known,
                });
                let id = format!("item_c{}", self.next_client_item);
                self.next_client_item += 1;
                let item = json!({"id": id, "object": "realtime.item", "type": item_type, "status": "completed", "role": role, "call_id": call_id});
                emit_json(
                    out,
                    "conversation.item.added",
                    json!({"previous_item_id": null, "item": item.clone()}),
                );
                emit_json(
                    out,
                    "conversation.item.done",
                    json!({"previous_item_id": null, "item": item}),
                );
            }
            ClientEvent::ResponseCreate { instructions } => {
                rec.response_creates += 1;
                rec.response_instructions
                    .push(instructions.as_deref().map(str::to_owned));
                if self.active.is_some() {
                    let message = "Conversation already has an active response in progress";
                    self.error(
                        rec,
                        out,
                        "conversation_already_has_active_response",
                        message,
                        None,
                    );
                    return;
                }
                match self.mode {
                    RealtimeMode::Echo => self.empty_response(rec, out),
                    RealtimeMode::Scripted => {
                        let transcript = match instructions
                            .as_deref()
                            .and_then(|i| i.strip_prefix(GREETING_INSTRUCTIONS_PREFIX))
                        {
                            Some(greeting) => greeting.to_owned(),
                            None if rec.responses.is_empty() => {
                                self.script.greeting_transcript.clone()
                            }
                            None => format!("agent response {}", self.next_response),
                        };
                        self.start_audio_response(transcript, rec, out);
                    }
                }
            }
            ClientEvent::ResponseCancel => {
                rec.response_cancels += 1;
                if self.active.is_some() {
                    self.cancel("client_cancelled", rec, out);
                } else {
                    self.error(
                        rec,
                        out,
                        "response_cancel_not_active",
                        "Cancellation failed: no active response found",
                        None,
                    );
                }
            }
            ClientEvent::Other { kind } => {
                push_bounded(&mut rec.other_events, kind.to_owned());
                match kind {
                    "input_audio_buffer.commit" => {
                        if self.turn_bytes == 0 {
                            self.error(
                                rec,
                                out,
                                "input_audio_buffer_commit_empty",
                                "Error committing input audio buffer: buffer is empty.",
                                None,
                            );
                        } else {
                            let item = self.next_user_item_id();
                            self.turn_bytes = 0;
                            emit_json(
                                out,
                                "input_audio_buffer.committed",
                                json!({"previous_item_id": null, "item_id": item}),
                            );
                        }
                    }
                    "input_audio_buffer.clear" => {
                        self.turn_bytes = 0;
                        emit_json(out, "input_audio_buffer.cleared", json!({}));
                    }
                    known if GA_CLIENT_EVENTS.contains(&known) => {}
                    unknown => self.error(
                        rec,
                        out,
                        "invalid_value",
                        &format!(
                            "Invalid value: '{unknown}'. Supported values are: {}.",
                            GA_CLIENT_EVENTS.join(", ")
                        ),
                        Some("type"),
                    ),
                }
            }
        }
    }

    fn session_update(
        &mut self,
        info: &SessionUpdateInfo<'_>,
        rec: &mut SessionRecord,
        out: &mut Vec<String>,
    ) {
        let mut update = RecordedSessionUpdate::from_info(info);
        let problem = if let Some(field) = info.beta_field {
            Some((
                "unknown_parameter",
                format!("Unknown parameter: 'session.{field}'."),
                format!("session.{field}"),
            ))
        } else {
            match info.session_type {
                None => Some((
                    "missing_required_parameter",
                    "Missing required parameter: 'session.type'.".to_owned(),
                    "session.type".to_owned(),
                )),
                Some("realtime") => None,
                Some(other) => Some((
                    "invalid_value",
                    format!("Invalid value: '{other}'. Supported values are: 'realtime'."),
                    "session.type".to_owned(),
                )),
            }
        };
        if let Some((code, message, param)) = problem {
            rec.session_updates.push(update);
            self.error(rec, out, code, &message, Some(&param));
            return;
        }
        update.accepted = true;
        self.configured = true;
        self.transcription |= info.transcription_model.is_some();
        rec.session_updates.push(update);
        emit(out, |b| {
            rt::write_session_updated(b, &self.session_id, &self.model);
        });
    }

    fn append(&mut self, audio: &str, rec: &mut SessionRecord, out: &mut Vec<String>) {
        let bytes = base64_decoded_len(audio) as u64;
        rec.appends += 1;
        rec.audio_bytes += bytes;
        if !self.configured {
            rec.appends_before_session_update += 1;
        }
        if rec.appended_payloads.len() < self.max_payloads {
            rec.appended_payloads.push(audio.to_owned());
        } else {
            rec.payloads_not_kept += 1;
        }
        self.input_bytes += bytes;
        self.turn_bytes += bytes;
        match self.mode {
            RealtimeMode::Echo => {
                *self
                    .assistant_audio
                    .entry("item_echo".to_owned())
                    .or_default() += bytes;
                emit(out, |b| {
                    rt::write_audio_delta(b, "resp_echo", "item_echo", audio)
                });
            }
            RealtimeMode::Scripted => {
                let turn_bytes = u64::from(self.script.caller_turn_ms) * 8;
                while turn_bytes > 0 && self.turn_bytes >= turn_bytes {
                    self.turn_bytes -= turn_bytes;
                    self.caller_turn(rec, out);
                }
            }
        }
    }

    fn next_user_item_id(&mut self) -> String {
        let id = format!("item_u{}", self.next_user_item);
        self.next_user_item += 1;
        id
    }

    fn input_ms(&self) -> u64 {
        mulaw_ms(self.input_bytes)
    }

    /// A completed caller turn: speech started/stopped, committed, transcript, agent reply.
    fn caller_turn(&mut self, rec: &mut SessionRecord, out: &mut Vec<String>) {
        rec.caller_turns += 1;
        let turn = rec.caller_turns;
        let item = self.next_user_item_id();
        let end_ms = self.input_ms();
        let start_ms = self.last_turn_end_ms;
        self.last_turn_end_ms = end_ms;
        rec.speech_started_sent += 1;
        emit(out, |b| rt::write_speech_started(b, &item, start_ms));
        if self.active.is_some() {
            self.cancel("turn_detected", rec, out);
        }
        emit(out, |b| rt::write_speech_stopped(b, &item, end_ms));
        emit_json(
            out,
            "input_audio_buffer.committed",
            json!({"previous_item_id": null, "item_id": item}),
        );
        if self.transcription || !self.script.require_transcription_config {
            emit(out, |b| {
                rt::write_input_transcription_completed(b, &item, &format!("caller turn {turn}"));
            });
        }
        self.start_audio_response(format!("agent reply {turn}"), rec, out);
    }

    /// Starts an audio response; sends all of it unless responses are paced.
    fn start_audio_response(
        &mut self,
        transcript: String,
        rec: &mut SessionRecord,
        out: &mut Vec<String>,
    ) {
        if self.active.is_some() {
            self.cancel("turn_detected", rec, out);
        }
        let n = self.next_response;
        self.next_response += 1;
        let response_id = format!("resp_{n}");
        let item_id = format!("item_a{n}");
        emit(out, |b| rt::write_response_created(b, &response_id));
        emit(out, |b| {
            rt::write_output_item_added(b, &response_id, &item_id, "message", Some("assistant"));
        });
        self.assistant_audio.insert(item_id.clone(), 0);
        rec.responses.push(ResponseRecord {
            response_id: response_id.clone(),
            item_id: Some(item_id.clone()),
            kind: ResponseKind::Audio,
            transcript: Some(transcript.clone()),
            audio_ms: 0,
            status: "in_progress".to_owned(),
            reason: None,
        });
        let deltas =
            u32::try_from(u64::from(self.script.response_audio_ms) / FRAME_MS).unwrap_or(u32::MAX);
        self.active = Some(Active {
            response_id,
            item_id,
            transcript,
            remaining_deltas: deltas,
            record: rec.responses.len() - 1,
        });
        if self.pace().is_none() {
            self.finish_active(rec, out);
        }
    }

    /// Sends one delta of the active response, finishing it after the last; `true` while
    /// more remain.
    pub(crate) fn tick(&mut self, rec: &mut SessionRecord, out: &mut Vec<String>) -> bool {
        let before = out.len();
        let more = match self.active.as_mut() {
            Some(active) if active.remaining_deltas > 0 => {
                active.remaining_deltas -= 1;
                let (response_id, item_id, record) = (
                    active.response_id.clone(),
                    active.item_id.clone(),
                    active.record,
                );
                self.send_delta(&response_id, &item_id, record, rec, out);
                true
            }
            Some(_) => {
                self.finish_active(rec, out);
                false
            }
            None => false,
        };
        rec.events_sent += (out.len() - before) as u64;
        more
    }

    fn send_delta(
        &mut self,
        response_id: &str,
        item_id: &str,
        record: usize,
        rec: &mut SessionRecord,
        out: &mut Vec<String>,
    ) {
        emit(out, |b| {
            rt::write_audio_delta(b, response_id, item_id, &self.tone_b64)
        });
        *self.assistant_audio.entry(item_id.to_owned()).or_default() += FRAME_BYTES as u64;
        if let Some(response) = rec.responses.get_mut(record) {
            response.audio_ms += FRAME_MS;
        }
    }

    /// Sends what is left of the active response and its closing events.
    fn finish_active(&mut self, rec: &mut SessionRecord, out: &mut Vec<String>) {
        let Some(active) = self.active.take() else {
            return;
        };
        for _ in 0..active.remaining_deltas {
            self.send_delta(
                &active.response_id,
                &active.item_id,
                active.record,
                rec,
                out,
            );
        }
        let audio_ms = rec.responses.get(active.record).map_or(0, |r| r.audio_ms);
        emit(out, |b| {
            rt::write_audio_done(b, &active.response_id, &active.item_id)
        });
        emit(out, |b| {
            rt::write_output_transcript_done(
                b,
                &active.response_id,
                &active.item_id,
                &active.transcript,
            );
        });
        emit_json(
            out,
            "response.output_item.done",
            json!({"response_id": active.response_id, "output_index": 0, "item": {
                "id": active.item_id, "object": "realtime.item", "type": "message", "status": "completed",
                "role": "assistant", "content": [{"type": "output_audio", "transcript": active.transcript}]}}),
        );
        let usage = self.usage(audio_ms, &active.transcript);
        emit(out, |b| {
            rt::write_response_done_with_usage(b, &active.response_id, "completed", &usage)
        });
        if let Some(response) = rec.responses.get_mut(active.record) {
            response.status = "completed".to_owned();
        }
    }

    /// Deterministic, plausible token counts (10 input audio tokens per second of caller
    /// audio since the previous response, 20 output audio tokens per second, one text
    /// token per transcript word). Not OpenAI's real rates.
    fn usage(&mut self, audio_ms: u64, transcript: &str) -> Usage {
        let input_ms = mulaw_ms(self.input_bytes - self.input_bytes_at_last_response);
        self.input_bytes_at_last_response = self.input_bytes;
        let input_audio_tokens = input_ms / 100;
        let output_audio_tokens = audio_ms / 50;
        let output_text_tokens = transcript.split_whitespace().count() as u64;
        Usage {
            total_tokens: input_audio_tokens + output_audio_tokens + output_text_tokens,
            input_tokens: input_audio_tokens,
            output_tokens: output_audio_tokens + output_text_tokens,
            input_text_tokens: 0,
            input_audio_tokens,
            input_cached_tokens: 0,
            output_text_tokens,
            output_audio_tokens,
        }
    }

    /// Cancels the active response: `response.done` with status `cancelled`.
    fn cancel(&mut self, reason: &str, rec: &mut SessionRecord, out: &mut Vec<String>) {
        let Some(active) = self.active.take() else {
            return;
        };
        emit_json(
            out,
            "response.done",
            json!({"response": {"object": "realtime.response", "id": active.response_id, "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": reason}, "output": [], "usage": null}}),
        );
        if let Some(response) = rec.responses.get_mut(active.record) {
            response.status = "cancelled".to_owned();
            response.reason = Some(reason.to_owned());
        }
    }

    /// `response.created` + `response.done` with no output (echo mode).
    fn empty_response(&mut self, rec: &mut SessionRecord, out: &mut Vec<String>) {
        let response_id = format!("resp_{}", self.next_response);
        self.next_response += 1;
        emit(out, |b| rt::write_response_created(b, &response_id));
        emit(out, |b| {
            rt::write_response_done(b, &response_id, "completed")
        });
        rec.responses.push(ResponseRecord {
            response_id,
            item_id: None,
            kind: ResponseKind::Empty,
            transcript: None,
            audio_ms: 0,
            status: "completed".to_owned(),
            reason: None,
        });
    }

    /// Applies a test command (except `Drop` and `Close`, which the socket handles).
    pub(crate) fn command(
        &mut self,
        command: SessionCommand,
        rec: &mut SessionRecord,
        out: &mut Vec<String>,
    ) {
        let before = out.len();
        match command {
            SessionCommand::Drop | SessionCommand::Close => {}
            SessionCommand::SpeechStarted => {
                let item = self.next_user_item_id();
                rec.speech_started_sent += 1;
                let at = self.input_ms();
                emit(out, |b| rt::write_speech_started(b, &item, at));
                if self.active.is_some() {
                    self.cancel("turn_detected", rec, out);
                }
            }
            SessionCommand::ToolCall { name, arguments } => {
                self.finish_active(rec, out);
                let n = self.next_response;
                self.next_response += 1;
                let response_id = format!("resp_{n}");
                let item_id = format!("item_f{n}");
                let call_id = format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
                emit(out, |b| rt::write_response_created(b, &response_id));
                emit(out, |b| {
                    rt::write_output_item_added(b, &response_id, &item_id, "function_call", None)
                });
                emit(out, |b| {
                    rt::write_function_call_arguments_done(
                        b,
                        &response_id,
                        &item_id,
                        &call_id,
                        &name,
                        &arguments,
                    );
                });
                emit_json(
                    out,
                    "response.output_item.done",
                    json!({"response_id": response_id, "output_index": 0, "item": {
                        "id": item_id, "object": "realtime.item", "type": "function_call", "status": "completed",
                        "name": name, "call_id": call_id, "arguments": arguments}}),
                );
                let usage = self.usage(0, &arguments);
                emit(out, |b| {
                    rt::write_response_done_with_usage(b, &response_id, "completed", &usage)
                });
                rec.responses.push(ResponseRecord {
                    response_id: response_id.clone(),
                    item_id: Some(item_id.clone()),
                    kind: ResponseKind::FunctionCall,
                    transcript: None,
                    audio_ms: 0,
                    status: "completed".to_owned(),
                    reason: None,
                });
                rec.tool_calls.push(ToolCallRecord {
                    response_id,
                    item_id,
                    call_id,
                    name,
                    arguments,
                });
            }
            SessionCommand::AgentResponse { transcript } => {
                self.start_audio_response(transcript, rec, out)
            }
            SessionCommand::SetMode(mode) => {
                self.mode = mode;
                rec.mode = mode;
            }
            SessionCommand::Raw(text) => out.push(text),
        }
        rec.events_sent += (out.len() - before) as u64;
    }
}

#[cfg(test)]
mod tests {
    use callvisor_wire::protocol::realtime::{
        parse_server_event, session_update_json, write_greeting, write_input_audio_append,
        write_truncate, ServerEvent, SessionConfig,
    };

    use super::*;
    use crate::audio::tagged_frame_base64;

    fn conversation(mode: RealtimeMode, script: ScriptConfig) -> (Conversation, SessionRecord) {
        (
            Conversation::new(
                mode,
                script,
                "sess_t".to_owned(),
                "gpt-realtime".to_owned(),
                1000,
            ),
            SessionRecord::default(),
        )
    }

    fn kinds(out: &[String]) -> Vec<String> {
        out.iter()
            .map(|e| {
                let v: Value = serde_json::from_str(e).unwrap();
                v["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn send(
        conv: &mut Conversation,
        rec: &mut SessionRecord,
        write: impl FnOnce(&mut String),
    ) -> Vec<String> {
        let mut text = String::new();
        write(&mut text);
        let mut out = Vec::new();
        conv.client_text(&text, rec, &mut out);
        out
    }

    fn configure(conv: &mut Conversation, rec: &mut SessionRecord) {
        let out = send(conv, rec, |b| {
            b.push_str(&session_update_json(&SessionConfig::default()))
        });
        assert_eq!(kinds(&out), ["session.updated"]);
    }

    #[test]
    fn echo_returns_each_append_as_one_delta_with_the_same_audio() {
        let (mut conv, mut rec) = conversation(RealtimeMode::Echo, ScriptConfig::default());
        for i in 0..100 {
            let audio = tagged_frame_base64(9, i);
            let out = send(&mut conv, &mut rec, |b| write_input_audio_append(b, &audio));
            assert_eq!(out.len(), 1);
            let ServerEvent::AudioDelta {
                response_id,
                item_id,
                delta,
            } = parse_server_event(&out[0]).unwrap()
            else {
                panic!("expected a delta");
            };
            assert_eq!(
                (response_id, item_id, delta.as_ref()),
                ("resp_echo", "item_echo", audio.as_str())
            );
        }
        assert_eq!(rec.appends, 100);
        assert_eq!(rec.audio_bytes, 16_000);
        assert_eq!(rec.appends_before_session_update, 100);
        assert_eq!(rec.appended_payloads.len(), 100);
        // 2 s echoed: truncating the echo item at 2000 ms is fine, at 2001 it is not.
        let ok = send(&mut conv, &mut rec, |b| {
            write_truncate(b, "item_echo", 0, 2000)
        });
        assert_eq!(kinds(&ok), ["conversation.item.truncated"]);
        let bad = send(&mut conv, &mut rec, |b| {
            write_truncate(b, "item_echo", 0, 2001)
        });
        assert_eq!(kinds(&bad), ["error"]);
        assert_eq!(
            rec.truncates.iter().map(|t| t.accepted).collect::<Vec<_>>(),
            [true, false]
        );
    }

    #[test]
    fn scripted_greeting_then_caller_turns_with_transcripts() {
        // Arrange
        let (mut conv, mut rec) = conversation(RealtimeMode::Scripted, ScriptConfig::default());
        configure(&mut conv, &mut rec);

        // Act: the greeting.
        let out = send(&mut conv, &mut rec, |b| {
            write_greeting(b, "Hi, Luigi's here!")
        });

        // Assert
        let k = kinds(&out);
        assert_eq!(k.first().map(String::as_str), Some("response.created"));
        assert_eq!(
            k.iter()
                .filter(|t| *t == "response.output_audio.delta")
                .count(),
            50
        );
        assert_eq!(k.last().map(String::as_str), Some("response.done"));
        let transcript = out.iter().find_map(|e| match parse_server_event(e) {
            Ok(ServerEvent::OutputTranscriptDone { transcript, .. }) => {
                Some(transcript.into_owned())
            }
            _ => None,
        });
        assert_eq!(transcript.as_deref(), Some("Hi, Luigi's here!"));

        // Act: 2.5 s of caller audio → two caller turns.
        let mut turn_events = Vec::new();
        for i in 0..125 {
            let audio = tagged_frame_base64(1, i);
            turn_events.extend(send(&mut conv, &mut rec, |b| {
                write_input_audio_append(b, &audio)
            }));
        }

        // Assert
        let transcripts: Vec<String> = turn_events
            .iter()
            .filter_map(|e| match parse_server_event(e) {
                Ok(ServerEvent::InputTranscriptionCompleted { transcript, .. }) => {
                    Some(format!("caller: {transcript}"))
                }
                Ok(ServerEvent::OutputTranscriptDone { transcript, .. }) => {
                    Some(format!("agent: {transcript}"))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            transcripts,
            [
                "caller: caller turn 1",
                "agent: agent reply 1",
                "caller: caller turn 2",
                "agent: agent reply 2"
            ]
        );
        assert_eq!(rec.caller_turns, 2);
        let ids: Vec<&str> = rec
            .responses
            .iter()
            .map(|r| r.response_id.as_str())
            .collect();
        assert_eq!(ids, ["resp_1", "resp_2", "resp_3"]);
        assert!(rec
            .responses
            .iter()
            .all(|r| r.status == "completed" && r.audio_ms == 1000));
        let started: Vec<ServerEvent<'_>> = turn_events
            .iter()
            .filter_map(|e| parse_server_event(e).ok())
            .filter(|e| {
                matches!(
                    e,
                    ServerEvent::SpeechStarted { .. } | ServerEvent::SpeechStopped { .. }
                )
            })
            .collect();
        assert_eq!(
            started,
            [
                ServerEvent::SpeechStarted {
                    audio_start_ms: 0,
                    item_id: "item_u1"
                },
                ServerEvent::SpeechStopped {
                    audio_end_ms: 1000,
                    item_id: "item_u1"
                },
                ServerEvent::SpeechStarted {
                    audio_start_ms: 1000,
                    item_id: "item_u2"
                },
                ServerEvent::SpeechStopped {
                    audio_end_ms: 2000,
                    item_id: "item_u2"
                },
            ]
        );
    }

    #[test]
    fn transcripts_need_transcription_to_be_configured() {
        let (mut conv, mut rec) = conversation(RealtimeMode::Scripted, ScriptConfig::default());
        let mut out = Vec::new();
        for i in 0..50 {
            let audio = tagged_frame_base64(1, i);
            out.extend(send(&mut conv, &mut rec, |b| {
                write_input_audio_append(b, &audio)
            }));
        }
        let k = kinds(&out);
        assert!(k.contains(&"input_audio_buffer.speech_started".to_owned()));
        assert!(!k.contains(&"conversation.item.input_audio_transcription.completed".to_owned()));
        assert_eq!(rec.appends_before_session_update, 50);
    }

    #[test]
    fn beta_or_untyped_session_updates_are_refused() {
        let (mut conv, mut rec) = conversation(RealtimeMode::Scripted, ScriptConfig::default());
        let beta = send(&mut conv, &mut rec, |b| {
            b.push_str(r#"{"type":"session.update","session":{"input_audio_format":"g711_ulaw"}}"#);
        });
        assert_eq!(kinds(&beta), ["error"]);
        let untyped = send(&mut conv, &mut rec, |b| {
            b.push_str(r#"{"type":"session.update","session":{"instructions":"x"}}"#);
        });
        assert_eq!(kinds(&untyped), ["error"]);
        assert_eq!(
            rec.errors_sent,
            ["unknown_parameter", "missing_required_parameter"]
        );
        assert_eq!(rec.session_updates.len(), 2);
        assert!(rec.applied_session().is_none());
        configure(&mut conv, &mut rec);
        let applied = rec.applied_session().unwrap();
        assert_eq!(applied.input_format.as_deref(), Some("audio/pcmu"));
        assert_eq!(applied.voice.as_deref(), Some("marin"));
        assert_eq!(
            applied.tools,
            ["create_reservation", "transfer_to_human", "end_call"]
        );
    }

    #[test]
    fn paced_responses_can_be_interrupted_and_cancelled() {
        // Arrange: paced responses stay in progress between ticks.
        let script = ScriptConfig {
            delta_interval: Duration::from_millis(20),
            ..ScriptConfig::default()
        };
        let (mut conv, mut rec) = conversation(RealtimeMode::Scripted, script);
        configure(&mut conv, &mut rec);
        let out = send(&mut conv, &mut rec, rt::write_response_create);
        assert_eq!(
            kinds(&out),
            ["response.created", "response.output_item.added"]
        );
        let mut out = Vec::new();
        for _ in 0..10 {
            assert!(conv.tick(&mut rec, &mut out));
        }
        assert_eq!(out.len(), 10);

        // A second response.create while speaking is an error.
        let busy = send(&mut conv, &mut rec, rt::write_response_create);
        assert_eq!(
            rec.errors_sent,
            ["conversation_already_has_active_response"]
        );
        assert_eq!(kinds(&busy), ["error"]);

        // Act: barge-in.
        let mut out = Vec::new();
        conv.command(SessionCommand::SpeechStarted, &mut rec, &mut out);

        // Assert
        assert_eq!(
            kinds(&out),
            ["input_audio_buffer.speech_started", "response.done"]
        );
        let ServerEvent::ResponseDone {
            status,
            status_reason,
            ..
        } = parse_server_event(&out[1]).unwrap()
        else {
            panic!("expected response.done");
        };
        assert_eq!(
            (status, status_reason),
            (Some("cancelled"), Some("turn_detected"))
        );
        assert_eq!(rec.responses[0].audio_ms, 200);
        assert!(!conv.speaking());
        let cancel = send(&mut conv, &mut rec, rt::write_response_cancel);
        assert_eq!(kinds(&cancel), ["error"]);
        // Truncating the interrupted item within what was sent is accepted.
        let ok = send(&mut conv, &mut rec, |b| {
            write_truncate(b, "item_a1", 0, 180)
        });
        assert_eq!(kinds(&ok), ["conversation.item.truncated"]);
        let unknown = send(&mut conv, &mut rec, |b| write_truncate(b, "item_zz", 0, 1));
        assert_eq!(kinds(&unknown), ["error"]);
    }

    #[test]
    fn tool_calls_have_fresh_call_ids_and_outputs_are_matched() {
        let (mut conv, mut rec) = conversation(RealtimeMode::Scripted, ScriptConfig::default());
        let mut out = Vec::new();
        conv.command(
            SessionCommand::ToolCall {
                name: "end_call".to_owned(),
                arguments: r#"{"reason":"bye"}"#.to_owned(),
            },
            &mut rec,
            &mut out,
        );
        conv.command(
            SessionCommand::ToolCall {
                name: "end_call".to_owned(),
                arguments: "{}".to_owned(),
            },
            &mut rec,
            &mut out,
        );
        let calls: Vec<(String, String, String)> = out
            .iter()
            .filter_map(|e| match parse_server_event(e) {
                Ok(ServerEvent::FunctionCallArgumentsDone {
                    call_id,
                    name,
                    arguments,
                    ..
                }) => Some((call_id.to_owned(), name.to_owned(), arguments.into_owned())),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 2);
        assert_ne!(calls[0].0, calls[1].0);
        assert_eq!(calls[0].2, r#"{"reason":"bye"}"#);
        assert_eq!(rec.tool_calls.len(), 2);
        let call_id = calls[0].0.clone();
        let reply = send(&mut conv, &mut rec, |b| {
            rt::write_function_call_output(b, &call_id, r#"{"ok":true}"#)
        });
        assert_eq!(
            kinds(&reply),
            ["conversation.item.added", "conversation.item.done"]
        );
        let stray = send(&mut conv, &mut rec, |b| {
            rt::write_function_call_output(b, "call_nope", "{}")
        });
        assert_eq!(stray.len(), 2);
        assert_eq!(
            rec.items_created
                .iter()
                .map(|i| i.call_id_known)
                .collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(
            rec.items_created[0].output.as_deref(),
            Some(r#"{"ok":true}"#)
        );
    }

    #[test]
    fn malformed_and_unknown_client_events_get_errors() {
        let (mut conv, mut rec) = conversation(RealtimeMode::Echo, ScriptConfig::default());
        assert_eq!(
            kinds(&send(&mut conv, &mut rec, |b| b.push('{'))),
            ["error"]
        );
        assert_eq!(
            kinds(&send(&mut conv, &mut rec, |b| b.push_str(
                r#"{"type":"input_audio_buffer.append","audio":"!!"}"#
            ))),
            ["error"]
        );
        assert_eq!(
            kinds(&send(&mut conv, &mut rec, |b| b
                .push_str(r#"{"type":"transcription_session.update"}"#))),
            ["error"]
        );
        assert!(send(&mut conv, &mut rec, |b| b
            .push_str(r#"{"type":"conversation.item.retrieve","item_id":"x"}"#))
        .is_empty());
        assert_eq!(
            kinds(&send(&mut conv, &mut rec, |b| b
                .push_str(r#"{"type":"input_audio_buffer.commit"}"#))),
            ["error"]
        );
        assert_eq!(
            rec.errors_sent,
            [
                "invalid_json",
                "invalid_value",
                "invalid_value",
                "input_audio_buffer_commit_empty"
            ]
        );
        assert_eq!(rec.protocol_errors.len(), 2);
        assert_eq!(rec.events_sent, 4);
        // Echo mode answers response.create without audio.
        assert_eq!(
            kinds(&send(&mut conv, &mut rec, rt::write_response_create)),
            ["response.created", "response.done"]
        );
    }
}
