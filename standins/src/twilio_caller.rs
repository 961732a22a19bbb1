//! A simulated Twilio that places a call into callvisor the way Twilio does.
//!
//! 1. **Voice webhook**: `POST` form-encoded with Twilio's inbound parameters, signed with
//!    `X-Twilio-Signature` over the URL Twilio would have called (configurable separately
//!    from the URL actually connected to), or with a wrong signature, or none.
//! 2. **TwiML**: the answer is read with [`super::twiml`]; the verbs are reported.
//! 3. **Media stream**: for `<Connect><Stream>`, a WebSocket to the stream URL (optionally
//!    rewritten to a local server): `connected`, `start` (with the `<Parameter>`s as
//!    `customParameters`), then one tagged 20 ms μ-law `media` frame every 20 ms on a timer
//!    that does not drift (frame k is due at start + k·20 ms; late frames go out at once and
//!    the lateness is recorded).
//! 4. **Playback**: `media` from the engine is queued and "played" in real time, `mark`s
//!    come back once the audio before them has played, `clear` drops the queue and returns
//!    pending marks at once ([`super::playback`]). Messages for another `streamSid` are
//!    ignored, as Twilio ignores them.
//! 5. **End**: `stop` then close, an abrupt socket loss, or whenever the test says; every
//!    call is bounded by [`CallerConfig::timeout`].
//!
//! Everything is timestamped relative to the stream start and returned as a
//! [`CallReport`]. Echoed audio is matched to the frame it came from through the frame tags
//! of [`super::audio`], giving lost / reordered / duplicated frames and per-frame round trips.
//!
//! Runs on the current thread (awc is not `Send`): call it from an actix System.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use awc::error::WsProtocolError as ProtocolError;
use awc::ws::{CloseCode, CloseReason as WsCloseReason, Frame, Message};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytestring::ByteString;
use callvisor_wire::protocol::twilio::{
    parse_outbound_with_sid, write_connected, write_dtmf, write_inbound_mark, write_inbound_media,
    write_start, write_stop, TwilioOutbound,
};
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};

use super::audio::{tagged_frame_base64, FrameTag, TagScanner, FRAME_BYTES, FRAME_MS};
use super::form::encode_form;
use super::playback::Playback;
use super::server::{lock, new_sid, wait_until};
use super::twiml::{parse_twiml, Twiml};
use callvisor_wire::signing::twilio::{expected_signature, SIGNATURE_HEADER};

/// WebSocket frame limit: the engine may forward a large audio delta as one `media`.
const WS_FRAME_LIMIT: usize = 8 * 1024 * 1024;

/// Largest TwiML body read.
const MAX_TWIML_BYTES: usize = 1024 * 1024;

/// A frame sent more than this late counts in [`CallReport::late_frames`].
const LATE_FRAME_US: u64 = 10_000;

/// Bounds of the per-event lists in the report.
const MAX_EVENTS: usize = 50_000;
const MAX_NOTES: usize = 200;

/// How long a clean close waits for the server's close frame after `stop`.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What `X-Twilio-Signature` the webhook carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SignatureMode {
    /// The correct signature for `sign_url` and the parameters.
    #[default]
    Valid,
    /// A signature made with the wrong Auth Token.
    Wrong,
    /// No header at all.
    Missing,
}

/// How the call ends once the caller has spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// `after_audio` after the last frame: send `stop`, then close the socket cleanly.
    Stop {
        /// Wait after the last frame (lets echoes and marks arrive).
        after_audio: Duration,
    },
    /// `after_audio` after the last frame: drop the TCP connection, no `stop`, no close frame.
    Abrupt {
        /// Wait after the last frame.
        after_audio: Duration,
    },
    /// Keep the socket open until [`CallerSession::hang_up`] / [`CallerSession::drop_connection`],
    /// the server closes it, or the overall timeout.
    Manual,
}

impl Default for CallEnd {
    fn default() -> Self {
        CallEnd::Stop {
            after_audio: Duration::from_millis(500),
        }
    }
}

/// One simulated call.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    /// The URL the webhook is POSTed to.
    pub webhook_url: String,
    /// The URL Twilio would have signed (callvisor's `PUBLIC_URL` + path); default `webhook_url`.
    pub sign_url: Option<String>,
    /// Auth Token used for signing (and for the media-stream upgrade signature).
    pub auth_token: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `From` / `Caller`.
    pub from: String,
    /// `To` / `Called`.
    pub to: String,
    /// `CallSid`; a fresh `CA…` when `None`.
    pub call_sid: Option<String>,
    /// `CallToken`, sent when set.
    pub call_token: Option<String>,
    /// `Direction` (default `inbound`; `outbound-api` for REST-created calls).
    pub direction: String,
    /// More webhook parameters (`CallerCountry`, …).
    pub extra_params: Vec<(String, String)>,
    /// Which signature to send.
    pub signature: SignatureMode,
    /// Replaces the scheme and host of the `<Stream url>`, e.g. `ws://127.0.0.1:8080`
    /// (TwiML names the public `wss://` host; tests connect locally).
    pub stream_url_override: Option<String>,
    /// How long the caller speaks: ceil(speak_for / 20 ms) media frames.
    pub speak_for: Duration,
    /// The tag in every frame; random when `None`.
    pub call_tag: Option<u32>,
    /// How the call ends.
    pub end: CallEnd,
    /// Bound on the whole call, webhook included (default 30 s).
    pub timeout: Duration,
    /// Bound on the webhook request (Twilio's is 15 s).
    pub webhook_timeout: Duration,
}

impl CallerConfig {
    /// A call to `webhook_url` signed with `auth_token`; 1 s of audio, `stop` 500 ms later.
    #[must_use]
    pub fn new(webhook_url: impl Into<String>, auth_token: impl Into<String>) -> Self {
        CallerConfig {
            webhook_url: webhook_url.into(),
            sign_url: None,
            auth_token: auth_token.into(),
            account_sid: format!("AC{}", "0".repeat(32)),
            from: "+15005550006".to_owned(),
            to: "+15005550001".to_owned(),
            call_sid: None,
            call_token: None,
            direction: "inbound".to_owned(),
            extra_params: Vec::new(),
            signature: SignatureMode::Valid,
            stream_url_override: None,
            speak_for: Duration::from_secs(1),
            call_tag: None,
            end: CallEnd::default(),
            timeout: Duration::from_secs(30),
            webhook_timeout: Duration::from_secs(15),
        }
    }
}

/// Why a call could not be placed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// The configuration cannot work.
    #[error("invalid caller configuration: {0}")]
    Config(String),
    /// The voice webhook could not be reached (connection refused, bad URL, I/O error).
    #[error("voice webhook request failed: {0}")]
    Webhook(String),
    /// The overall timeout expired before the webhook answered.
    #[error("timed out waiting for the voice webhook")]
    Timeout,
}

/// How the call (or its attempt) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CloseReason {
    /// The webhook answered a non-2xx status; no TwiML was run.
    WebhookRejected {
        /// The HTTP status.
        status: u16,
    },
    /// The webhook's answer is not valid TwiML (Twilio: error 12100).
    TwimlInvalid {
        /// Why.
        error: String,
    },
    /// The TwiML has no `<Connect><Stream>`: no stream was opened.
    NoStream,
    /// The stream WebSocket could not be opened.
    ConnectFailed {
        /// Why.
        error: String,
        /// The HTTP status of a refused upgrade, if that was the reason.
        status: Option<u16>,
    },
    /// The caller sent `stop` and closed the socket.
    StopSent,
    /// The caller dropped the socket without `stop` or a close frame.
    AbruptClose,
    /// The server sent a close frame.
    ServerClosed {
        /// Close code.
        code: Option<u16>,
        /// Close description.
        description: Option<String>,
    },
    /// The connection ended without a close frame (server crash or network loss).
    ServerDropped {
        /// The error seen, if any.
        error: Option<String>,
    },
    /// The overall timeout expired with the stream still open.
    Timeout,
}

/// One `media` message received from the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaEvent {
    /// µs since the stream started.
    pub at_us: u64,
    /// Decoded audio bytes.
    pub bytes: usize,
    /// Indices of this call's frames found in it (an echo), in order.
    pub frames: Vec<u32>,
}

/// A `mark` the engine sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkEvent {
    /// `mark.name`.
    pub name: String,
    /// µs since the stream started.
    pub received_at_us: u64,
}

/// A mark the caller sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkAck {
    /// `mark.name`.
    pub name: String,
    /// µs since the stream started.
    pub at_us: u64,
    /// `true` if returned by a `clear` rather than by playback.
    pub by_clear: bool,
}

/// A `clear` the engine sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClearEvent {
    /// µs since the stream started.
    pub at_us: u64,
    /// Unplayed audio discarded, in ms.
    pub discarded_ms: u64,
    /// Pending marks it returned.
    pub marks_released: usize,
}

/// Round-trip statistics of echoed frames, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RttSummary {
    /// Frames measured.
    pub count: usize,
    /// Minimum.
    pub min_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Maximum.
    pub max_us: u64,
    /// Mean.
    pub mean_us: u64,
}

/// Everything that happened on one simulated call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallReport {
    /// `CallSid`.
    pub call_sid: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `MZ…`, once a stream opened.
    pub stream_sid: Option<String>,
    /// The tag in this call's frames.
    pub call_tag: u32,
    /// HTTP status of the voice webhook.
    pub webhook_status: Option<u16>,
    /// Its `Content-Type`.
    pub webhook_content_type: Option<String>,
    /// The TwiML, parsed.
    pub twiml: Option<Twiml>,
    /// The TwiML verbs, in order (`Say`, `Connect`, `Hangup`, …).
    pub verbs: Vec<String>,
    /// Why the TwiML was refused, if it was.
    pub twiml_error: Option<String>,
    /// The `<Stream url>` as the TwiML gave it.
    pub stream_url: Option<String>,
    /// The URL actually connected to (after `stream_url_override`).
    pub connected_url: Option<String>,
    /// `<Parameter>`s sent as `customParameters`.
    pub custom_parameters: Vec<(String, String)>,
    /// `true` once the stream WebSocket was open.
    pub stream_opened: bool,
    /// Frames the configuration asked for.
    pub frames_planned: u32,
    /// Frames sent.
    pub frames_sent: u32,
    /// Distinct frames of this call that came back.
    pub frames_echoed: u32,
    /// Frames that came back more than once (extra copies).
    pub duplicate_echoes: u32,
    /// Echoed frames that arrived after a later frame had.
    pub out_of_order_echoes: u32,
    /// Sent frames that never came back; empty when nothing at all was echoed (no echo
    /// in this conversation), so check `frames_echoed` too.
    pub lost_frames: Vec<u32>,
    /// Tagged frames from another call (cross-talk) or not sent by this call.
    pub foreign_frames: u32,
    /// (frame index, round trip in µs) for each echoed frame, in arrival order.
    pub echo_rtt_us: Vec<(u32, u64)>,
    /// Round-trip statistics.
    pub rtt: Option<RttSummary>,
    /// Frames sent more than 10 ms after their slot.
    pub late_frames: u32,
    /// Worst sending lateness, in µs.
    pub max_send_lateness_us: u64,
    /// `media` messages received.
    pub media_received: u64,
    /// Audio bytes received.
    pub media_bytes_received: u64,
    /// The `media` messages, bounded.
    pub media_events: Vec<MediaEvent>,
    /// `mark`s received.
    pub marks_received: Vec<MarkEvent>,
    /// Marks sent back.
    pub marks_acked: Vec<MarkAck>,
    /// `clear`s received.
    pub clears: Vec<ClearEvent>,
    /// Audio the caller has heard, in ms.
    pub audio_played_ms: u64,
    /// Audio discarded by clears, in ms.
    pub audio_discarded_ms: u64,
    /// Outbound audio still queued at the end (or now), in ms.
    pub audio_queued_ms: u64,
    /// Engine messages ignored because their `streamSid` was missing or not this stream's.
    pub messages_for_other_streams: u64,
    /// DTMF digits sent.
    pub dtmf_sent: Vec<String>,
    /// `true` once `stop` was sent.
    pub stop_sent: bool,
    /// Fidelity complaints (non-`wss` stream URL, query string, odd-sized media, …).
    pub warnings: Vec<String>,
    /// Engine messages that could not be parsed, bounded.
    pub protocol_errors: Vec<String>,
    /// Stream duration so far / in total, in ms.
    pub stream_duration_ms: u64,
    /// How it ended; `None` while the call is live.
    pub close: Option<CloseReason>,
}

fn note(list: &mut Vec<String>, text: String) {
    if list.len() < MAX_NOTES && !list.contains(&text) {
        list.push(text);
    }
}

/// The report being built, plus the state needed to build it.
#[derive(Debug)]
struct Recorder {
    report: CallReport,
    stream_sid: String,
    started: Option<Instant>,
    ended: Option<Instant>,
    playback: Playback,
    scanner: TagScanner,
    sent_at_us: Vec<u64>,
    echo_seen: Vec<bool>,
    max_echo_index: Option<u32>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Recorder {
    fn new(report: CallReport, stream_sid: String) -> Self {
        Recorder {
            report,
            stream_sid,
            started: None,
            ended: None,
            playback: Playback::new(),
            scanner: TagScanner::new(),
            sent_at_us: Vec::new(),
            echo_seen: Vec::new(),
            max_echo_index: None,
        }
    }

    fn us(&self, at: Instant) -> u64 {
        self.started
            .map_or(0, |start| micros(at.saturating_duration_since(start)))
    }

    fn frame_sent(&mut self, index: u32, scheduled: Instant, sent: Instant) {
        let lateness = micros(sent.saturating_duration_since(scheduled));
        if lateness > LATE_FRAME_US {
            self.report.late_frames += 1;
        }
        self.report.max_send_lateness_us = self.report.max_send_lateness_us.max(lateness);
        self.report.frames_sent = index + 1;
        let at = self.us(sent);
        self.sent_at_us.push(at);
        self.echo_seen.push(false);
    }

    fn next_mark_due(&self) -> Option<Instant> {
        let start = self.started?;
        self.playback
            .next_due()
            .map(|us| start + Duration::from_micros(us))
    }

    fn take_due_marks(&mut self, now: Instant) -> Vec<String> {
        let at = self.us(now);
        self.playback.take_due_marks(at)
    }

    fn mark_acked(&mut self, name: String, at: Instant, by_clear: bool) {
        let at_us = self.us(at);
        if self.report.marks_acked.len() < MAX_EVENTS {
            self.report.marks_acked.push(MarkAck {
                name,
                at_us,
                by_clear,
            });
        }
    }

    /// Handles one text frame from the engine; returns marks to send back at once, each with
    /// `true` if the clear returned it (`false`: its audio had already played).
    fn engine_text(&mut self, text: &str, now: Instant) -> Vec<(String, bool)> {
        let at = self.us(now);
        let (sid, message) = match parse_outbound_with_sid(text) {
            Ok(parsed) => parsed,
            Err(err) => {
                note(&mut self.report.protocol_errors, err.to_string());
                return Vec::new();
            }
        };
        if let TwilioOutbound::Unknown { event } = message {
            note(
                &mut self.report.warnings,
                format!("unknown event `{event}` from the engine"),
            );
            return Vec::new();
        }
        if sid != Some(self.stream_sid.as_str()) {
            self.report.messages_for_other_streams += 1;
            note(
                &mut self.report.warnings,
                "engine message with a missing or foreign streamSid (Twilio ignores these)"
                    .to_owned(),
            );
            return Vec::new();
        }
        match message {
            TwilioOutbound::Media { payload } => {
                let Ok(bytes) = STANDARD.decode(payload) else {
                    note(
                        &mut self.report.protocol_errors,
                        "media payload is not base64".to_owned(),
                    );
                    return Vec::new();
                };
                self.media(&bytes, at);
                Vec::new()
            }
            TwilioOutbound::Mark { name } => {
                if self.report.marks_received.len() < MAX_EVENTS {
                    self.report.marks_received.push(MarkEvent {
                        name: name.to_string(),
                        received_at_us: at,
                    });
                }
                self.playback.push_mark(at, name.into_owned());
                Vec::new()
            }
            TwilioOutbound::Clear => {
                // Marks whose audio has played by now were echoed by playback before the
                // clear arrived, even if our timer has not fired yet.
                let mut acks: Vec<(String, bool)> = self
                    .playback
                    .take_due_marks(at)
                    .into_iter()
                    .map(|name| (name, false))
                    .collect();
                let cleared = self.playback.clear(at);
                if self.report.clears.len() < MAX_EVENTS {
                    self.report.clears.push(ClearEvent {
                        at_us: at,
                        discarded_ms: cleared.discarded_us / 1000,
                        marks_released: cleared.released_marks.len(),
                    });
                }
                acks.extend(cleared.released_marks.into_iter().map(|name| (name, true)));
                acks
            }
            TwilioOutbound::Unknown { .. } => Vec::new(),
        }
    }

    fn media(&mut self, bytes: &[u8], at: u64) {
        self.report.media_received += 1;
        self.report.media_bytes_received += bytes.len() as u64;
        if !bytes.len().is_multiple_of(FRAME_BYTES) {
            note(
                &mut self.report.warnings,
                "media payload not a multiple of 160 bytes (Twilio plays odd sizes with jitter)"
                    .to_owned(),
            );
        }
        self.playback.push_audio(at, bytes.len());
        let mut tags: Vec<FrameTag> = Vec::new();
        self.scanner.scan(bytes, &mut tags);
        let mut frames = Vec::new();
        for tag in tags {
            let seen = usize::try_from(tag.index)
                .ok()
                .and_then(|i| self.echo_seen.get_mut(i));
            match seen {
                Some(seen) if tag.call_tag == self.report.call_tag => {
                    if *seen {
                        self.report.duplicate_echoes += 1;
                    } else {
                        *seen = true;
                        self.report.frames_echoed += 1;
                        let sent = usize::try_from(tag.index)
                            .ok()
                            .and_then(|i| self.sent_at_us.get(i))
                            .copied()
                            .unwrap_or(at);
                        if self.report.echo_rtt_us.len() < MAX_EVENTS {
                            self.report
                                .echo_rtt_us
                                .push((tag.index, at.saturating_sub(sent)));
                        }
                        if self.max_echo_index.is_some_and(|max| tag.index < max) {
                            self.report.out_of_order_echoes += 1;
                        }
                        self.max_echo_index = self.max_echo_index.max(Some(tag.index));
                    }
                    frames.push(tag.index);
                }
                _ => self.report.foreign_frames += 1,
            }
        }
        if self.report.media_events.len() < MAX_EVENTS {
            self.report.media_events.push(MediaEvent {
                at_us: at,
                bytes: bytes.len(),
                frames,
            });
        }
    }

    /// The report with its derived fields computed for `now`.
    fn snapshot(&self, now: Instant) -> CallReport {
        let mut report = self.report.clone();
        let at = self.us(self.ended.unwrap_or(now));
        report.stream_duration_ms = at / 1000;
        report.audio_played_ms = self.playback.played_us(at) / 1000;
        report.audio_discarded_ms = self.playback.discarded_us() / 1000;
        report.audio_queued_ms = self.playback.queued_us(at) / 1000;
        if report.frames_echoed > 0 {
            report.lost_frames = self
                .echo_seen
                .iter()
                .enumerate()
                .filter(|(_, seen)| !**seen)
                .filter_map(|(i, _)| u32::try_from(i).ok())
                .collect();
        }
        report.rtt = rtt_summary(&report.echo_rtt_us);
        report
    }
}

fn rtt_summary(samples: &[(u32, u64)]) -> Option<RttSummary> {
    let mut values: Vec<u64> = samples.iter().map(|(_, rtt)| *rtt).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let pick = |p: usize| {
        let i = (values.len() - 1) * p / 100;
        values.get(i).copied().unwrap_or_default()
    };
    let sum: u64 = values.iter().sum();
    Some(RttSummary {
        count: values.len(),
        min_us: values.first().copied().unwrap_or_default(),
        p50_us: pick(50),
        p95_us: pick(95),
        p99_us: pick(99),
        max_us: values.last().copied().unwrap_or_default(),
        mean_us: sum / values.len() as u64,
    })
}

/// What a test can tell a live call.
#[derive(Debug)]
enum Command {
    HangUp,
    Drop,
    Dtmf(String),
}

/// A call in progress: read what has arrived so far, steer it, wait for its end.
#[derive(Debug)]
pub struct CallerSession {
    call_sid: String,
    recorder: Arc<Mutex<Recorder>>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    done: Option<oneshot::Receiver<()>>,
}

/// Places one call and waits for it to end (bounded by `config.timeout`).
///
/// # Errors
/// [`CallerError`] if the webhook could not be called at all; everything that happened
/// after an HTTP answer (a 403, bad TwiML, a refused stream) is in the report instead.
pub async fn place_call(config: CallerConfig) -> Result<CallReport, CallerError> {
    Ok(CallerSession::start(config).await?.wait().await)
}

/// The webhook parameters Twilio sends for an inbound call.
fn webhook_params(config: &CallerConfig, call_sid: &str) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("AccountSid", config.account_sid.as_str()),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Called", config.to.as_str()),
        ("Caller", config.from.as_str()),
        ("Direction", config.direction.as_str()),
        ("From", config.from.as_str()),
        ("To", config.to.as_str()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    if let Some(token) = &config.call_token {
        params.push(("CallToken".to_owned(), token.clone()));
    }
    params.extend(config.extra_params.iter().cloned());
    params
}

/// Replaces the scheme and authority of `url` with `base` (`ws://127.0.0.1:8080`).
fn rewrite_stream_url(url: &str, base: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let tail = url
        .get(after_scheme..)
        .and_then(|rest| rest.find(['/', '?']).and_then(|i| rest.get(i..)))
        .unwrap_or("");
    format!("{}{tail}", base.trim_end_matches('/'))
}

fn http_client(timeout: Duration) -> awc::Client {
    awc::Client::builder()
        .max_http_version(awc::http::Version::HTTP_11)
        .timeout(timeout)
        .finish()
}

impl CallerSession {
    /// Calls the webhook, reads the TwiML and, for `<Connect><Stream>`, opens the stream and
    /// starts talking in a task on the current thread.
    ///
    /// # Errors
    /// As [`place_call`].
    pub async fn start(config: CallerConfig) -> Result<CallerSession, CallerError> {
        if config.webhook_url.is_empty() {
            return Err(CallerError::Config("webhook_url is empty".to_owned()));
        }
        if config.timeout.is_zero() {
            return Err(CallerError::Config("timeout is zero".to_owned()));
        }
        let deadline = Instant::now() + config.timeout;
        let call_sid = config.call_sid.clone().unwrap_or_else(|| new_sid("CA"));
        let call_tag = config.call_tag.unwrap_or_else(|| {
            let bytes = *uuid::Uuid::new_v4().as_bytes();
            u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
        });
        let frames = u32::try_from(config.speak_for.as_millis().div_ceil(u128::from(FRAME_MS)))
            .unwrap_or(u32::MAX);
        let stream_sid = new_sid("MZ");
        let report = CallReport {
            call_sid: call_sid.clone(),
            account_sid: config.account_sid.clone(),
            call_tag,
            frames_planned: frames,
            ..CallReport::default()
        };
        let recorder = Arc::new(Mutex::new(Recorder::new(report, stream_sid.clone())));
        let finished = |close: CloseReason| {
            let mut rec = lock(&recorder);
            rec.report.close = Some(close);
            rec.ended = Some(Instant::now());
        };

        // 1. The voice webhook.
        let params = webhook_params(&config, &call_sid);
        let sign_url = config.sign_url.as_deref().unwrap_or(&config.webhook_url);
        let client = http_client(config.webhook_timeout.min(config.timeout));
        let mut request = client
            .post(&config.webhook_url)
            .insert_header(("User-Agent", "TwilioProxy/1.1"))
            .insert_header((
                "I-Twilio-Idempotency-Token",
                uuid::Uuid::new_v4().to_string(),
            ))
            .content_type("application/x-www-form-urlencoded");
        match config.signature {
            SignatureMode::Valid => {
                let signature = expected_signature(&config.auth_token, sign_url, &params);
                request = request.insert_header((SIGNATURE_HEADER, signature));
            }
            SignatureMode::Wrong => {
                let wrong_token = format!("{}-wrong", config.auth_token);
                let signature = expected_signature(&wrong_token, sign_url, &params);
                request = request.insert_header((SIGNATURE_HEADER, signature));
            }
            SignatureMode::Missing => {}
        }
        let exchange = async {
            let mut response = request
                .send_body(encode_form(&params))
                .await
                .map_err(|e| CallerError::Webhook(e.to_string()))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("Content-Type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response
                .body()
                .limit(MAX_TWIML_BYTES)
                .await
                .map_err(|e| CallerError::Webhook(e.to_string()))?;
            Ok::<_, CallerError>((status, content_type, body))
        };
        let (status, content_type, body) = tokio::time::timeout_at(deadline, exchange)
            .await
            .map_err(|_| CallerError::Timeout)??;
        {
            let mut rec = lock(&recorder);
            rec.report.webhook_status = Some(status);
            rec.report.webhook_content_type.clone_from(&content_type);
        }
        if !(200..300).contains(&status) {
            finished(CloseReason::WebhookRejected { status });
            return Ok(Self::ended(call_sid, recorder));
        }
        if !content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("text/xml") || ct.starts_with("application/xml"))
        {
            note(
                &mut lock(&recorder).report.warnings,
                format!("TwiML answered with Content-Type {content_type:?} (Twilio wants text/xml or application/xml)"),
            );
        }

        // 2. The TwiML.
        let twiml = match parse_twiml(&String::from_utf8_lossy(&body)) {
            Ok(twiml) => twiml,
            Err(err) => {
                lock(&recorder).report.twiml_error = Some(err.to_string());
                finished(CloseReason::TwimlInvalid {
                    error: err.to_string(),
                });
                return Ok(Self::ended(call_sid, recorder));
            }
        };
        let stream = twiml.connect_stream().cloned();
        {
            let mut rec = lock(&recorder);
            rec.report.verbs = twiml.verb_names();
            if twiml.has("Start") {
                note(
                    &mut rec.report.warnings,
                    "<Start><Stream> (unidirectional) is not simulated".to_owned(),
                );
            }
            rec.report.twiml = Some(twiml);
        }
        let Some(stream) = stream else {
            finished(CloseReason::NoStream);
            return Ok(Self::ended(call_sid, recorder));
        };

        // 3. The media stream.
        let url = match &config.stream_url_override {
            Some(base) => rewrite_stream_url(&stream.url, base),
            None => stream.url.clone(),
        };
        {
            let mut rec = lock(&recorder);
            if !stream.url.starts_with("wss://") {
                note(
                    &mut rec.report.warnings,
                    "stream URL is not wss:// (Twilio refuses it: error 31922)".to_owned(),
                );
            }
            if stream.url.contains('?') {
                note(
                    &mut rec.report.warnings,
                    "stream URL has a query string (Twilio does not support it; use <Parameter>)"
                        .to_owned(),
                );
            }
            rec.report.stream_url = Some(stream.url.clone());
            rec.report.connected_url = Some(url.clone());
            rec.report.custom_parameters.clone_from(&stream.parameters);
        }
        let upgrade_signature = expected_signature(&config.auth_token, &stream.url, &[]);
        let connect = http_client(config.timeout)
            .ws(url.as_str())
            .max_frame_size(WS_FRAME_LIMIT)
            .set_header(SIGNATURE_HEADER, upgrade_signature)
            .set_header("User-Agent", "Twilio.TmeWs/1.0")
            .connect();
        let framed = match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok((_response, framed))) => framed,
            Ok(Err(err)) => {
                let status = match &err {
                    awc::error::WsClientError::InvalidResponseStatus(status) => {
                        Some(status.as_u16())
                    }
                    _ => None,
                };
                finished(CloseReason::ConnectFailed {
                    error: err.to_string(),
                    status,
                });
                return Ok(Self::ended(call_sid, recorder));
            }
            Err(_) => {
                finished(CloseReason::Timeout);
                return Ok(Self::ended(call_sid, recorder));
            }
        };
        {
            let mut rec = lock(&recorder);
            rec.report.stream_opened = true;
            rec.report.stream_sid = Some(stream_sid.clone());
        }
        let plan = StreamPlan {
            stream_sid,
            call_sid: call_sid.clone(),
            account_sid: config.account_sid.clone(),
            parameters: stream.parameters,
            call_tag,
            frames,
            end: config.end,
            deadline,
        };
        let (command_tx, command_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let task_recorder = Arc::clone(&recorder);
        actix_rt::spawn(async move {
            let close = stream_loop(framed, &plan, &task_recorder, command_rx).await;
            {
                let mut rec = lock(&task_recorder);
                rec.report.close = Some(close);
                rec.ended = Some(Instant::now());
            }
            let _ = done_tx.send(());
        });
        Ok(CallerSession {
            call_sid,
            recorder,
            commands: Some(command_tx),
            done: Some(done_rx),
        })
    }

    /// A session that ended before any stream opened.
    fn ended(call_sid: String, recorder: Arc<Mutex<Recorder>>) -> CallerSession {
        CallerSession {
            call_sid,
            recorder,
            commands: None,
            done: None,
        }
    }

    /// The call's `CallSid`.
    #[must_use]
    pub fn call_sid(&self) -> &str {
        &self.call_sid
    }

    /// What has happened so far.
    #[must_use]
    pub fn snapshot(&self) -> CallReport {
        lock(&self.recorder).snapshot(Instant::now())
    }

    /// `true` once the call has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        lock(&self.recorder).report.close.is_some()
    }

    fn send(&self, command: Command) -> bool {
        self.commands
            .as_ref()
            .is_some_and(|tx| tx.send(command).is_ok())
    }

    /// Sends `stop` and closes the socket now. `false` if the call already ended.
    pub fn hang_up(&self) -> bool {
        self.send(Command::HangUp)
    }

    /// Drops the socket now, without `stop` or a close frame. `false` if already ended.
    pub fn drop_connection(&self) -> bool {
        self.send(Command::Drop)
    }

    /// Sends a `dtmf` message (`0`-`9`, `*`, `#`). `false` if the call already ended.
    pub fn send_dtmf(&self, digit: &str) -> bool {
        self.send(Command::Dtmf(digit.to_owned()))
    }

    /// Polls the live report every 5 ms until `condition` holds; `false` on timeout.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&CallReport) -> bool,
    ) -> bool {
        wait_until(timeout, || condition(&self.snapshot())).await
    }

    /// Waits for the call to end (bounded by the configured timeout) and returns the report.
    pub async fn wait(mut self) -> CallReport {
        if let Some(done) = self.done.take() {
            // An error means the task is gone (its System stopped): report what we have.
            let _ = done.await;
        }
        self.snapshot()
    }
}

/// What the stream loop needs to know.
#[derive(Debug)]
struct StreamPlan {
    stream_sid: String,
    call_sid: String,
    account_sid: String,
    parameters: Vec<(String, String)>,
    call_tag: u32,
    frames: u32,
    end: CallEnd,
    deadline: Instant,
}

async fn send_text<S>(ws: &mut S, text: String) -> Result<(), String>
where
    S: Sink<Message, Error = ProtocolError> + Unpin,
{
    ws.send(Message::Text(ByteString::from(text)))
        .await
        .map_err(|e| e.to_string())
}

/// Runs the open stream until it ends; returns how.
async fn stream_loop<S>(
    mut ws: S,
    plan: &StreamPlan,
    recorder: &Mutex<Recorder>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> CloseReason
where
    S: Stream<Item = Result<Frame, ProtocolError>> + Sink<Message, Error = ProtocolError> + Unpin,
{
    let dropped = |error: String| CloseReason::ServerDropped { error: Some(error) };
    let mut text = String::new();
    write_connected(&mut text);
    if let Err(e) = send_text(&mut ws, std::mem::take(&mut text)).await {
        return dropped(e);
    }
    let parameters: Vec<(&str, &str)> = plan
        .parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    write_start(
        &mut text,
        &plan.stream_sid,
        &plan.call_sid,
        &plan.account_sid,
        &parameters,
    );
    if let Err(e) = send_text(&mut ws, std::mem::take(&mut text)).await {
        return dropped(e);
    }
    let start = Instant::now();
    lock(recorder).started = Some(start);
    let frame_period = Duration::from_millis(FRAME_MS);
    let slot = |k: u32| start + frame_period * k;
    let audio_end = slot(plan.frames);
    let end_at = match plan.end {
        CallEnd::Stop { after_audio } | CallEnd::Abrupt { after_audio } => {
            Some(audio_end + after_audio)
        }
        CallEnd::Manual => None,
    };
    let mut seq: u64 = 2;
    let mut next_frame: u32 = 0;
    let mut commands_open = true;
    loop {
        let next_frame_at = (next_frame < plan.frames).then(|| slot(next_frame));
        let mark_due = lock(recorder).next_mark_due();
        tokio::select! {
            biased;
            () = sleep_until(plan.deadline) => return CloseReason::Timeout,
            () = sleep_until(next_frame_at.unwrap_or(plan.deadline)), if next_frame_at.is_some() => {
                let now = Instant::now();
                while next_frame < plan.frames && slot(next_frame) <= now {
                    let payload = tagged_frame_base64(plan.call_tag, next_frame);
                    write_inbound_media(
                        &mut text,
                        &plan.stream_sid,
                        seq,
                        u64::from(next_frame) + 1,
                        u64::from(next_frame) * FRAME_MS,
                        &payload,
                    );
                    if let Err(e) = send_text(&mut ws, std::mem::take(&mut text)).await {
                        return dropped(e);
                    }
                    lock(recorder).frame_sent(next_frame, slot(next_frame), Instant::now());
                    seq += 1;
                    next_frame += 1;
                }
            }
            () = sleep_until(mark_due.unwrap_or(plan.deadline)), if mark_due.is_some() => {
                let due = lock(recorder).take_due_marks(Instant::now());
                for name in due {
                    write_inbound_mark(&mut text, &plan.stream_sid, seq, &name);
                    seq += 1;
                    if let Err(e) = send_text(&mut ws, std::mem::take(&mut text)).await {
                        return dropped(e);
                    }
                    lock(recorder).mark_acked(name, Instant::now(), false);
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    let released = {
                        let body = String::from_utf8_lossy(&bytes);
                        lock(recorder).engine_text(&body, Instant::now())
                    };
                    for (name, by_clear) in released {
                        write_inbound_mark(&mut text, &plan.stream_sid, seq, &name);
                        seq += 1;
                        if let Err(e) = send_text(&mut ws, std::mem::take(&mut text)).await {
                            return dropped(e);
                        }
                        lock(recorder).mark_acked(name, Instant::now(), by_clear);
                    }
                }
                Some(Ok(Frame::Ping(payload))) => {
                    if let Err(e) = ws.send(Message::Pong(payload)).await {
                        return dropped(e.to_string());
                    }
                }
                Some(Ok(Frame::Pong(_))) => {}
                Some(Ok(Frame::Binary(_) | Frame::Continuation(_))) => {
                    note(
                        &mut lock(recorder).report.warnings,
                        "binary or fragmented frame from the engine (Twilio expects JSON text)".to_owned(),
                    );
                }
                Some(Ok(Frame::Close(reason))) => {
                    // Answer the close handshake; the server ends the connection.
                    let _ = ws.send(Message::Close(reason.clone())).await;
                    return CloseReason::ServerClosed {
                        code: reason.as_ref().map(|r| u16::from(r.code)),
                        description: reason.and_then(|r| r.description),
                    };
                }
                Some(Err(e)) => return dropped(e.to_string()),
                None => return CloseReason::ServerDropped { error: None },
            },
            command = commands.recv(), if commands_open => match command {
                Some(Command::HangUp) => return stop_and_close(ws, plan, seq, recorder).await,
                Some(Command::Drop) => return CloseReason::AbruptClose,
                Some(Command::Dtmf(digit)) => {
                    write_dtmf(&mut text, &plan.stream_sid, seq, &digit);
                    seq += 1;
                    if let Err(e) = send_text(&mut ws, std::mem::take(&mut text)).await {
                        return dropped(e);
                    }
                    lock(recorder).report.dtmf_sent.push(digit);
                }
                None => {
                    commands_open = false;
                    if plan.end == CallEnd::Manual {
                        // Nobody can tell this call to end any more: hang up now.
                        return stop_and_close(ws, plan, seq, recorder).await;
                    }
                }
            },
            () = sleep_until(end_at.unwrap_or(plan.deadline)), if end_at.is_some() => {
                return match plan.end {
                    CallEnd::Abrupt { .. } => CloseReason::AbruptClose,
                    CallEnd::Stop { .. } | CallEnd::Manual => {
                        stop_and_close(ws, plan, seq, recorder).await
                    }
                };
            }
        }
    }
}

/// Sends `stop`, then a close frame, and waits briefly for the server's close.
async fn stop_and_close<S>(
    mut ws: S,
    plan: &StreamPlan,
    seq: u64,
    recorder: &Mutex<Recorder>,
) -> CloseReason
where
    S: Stream<Item = Result<Frame, ProtocolError>> + Sink<Message, Error = ProtocolError> + Unpin,
{
    let mut text = String::new();
    write_stop(
        &mut text,
        &plan.stream_sid,
        seq,
        &plan.account_sid,
        &plan.call_sid,
    );
    if let Err(e) = send_text(&mut ws, text).await {
        return CloseReason::ServerDropped { error: Some(e) };
    }
    lock(recorder).report.stop_sent = true;
    let close = Message::Close(Some(WsCloseReason::from(CloseCode::Normal)));
    if ws.send(close).await.is_err() {
        return CloseReason::StopSent;
    }
    let grace = (Instant::now() + CLOSE_GRACE).min(plan.deadline);
    loop {
        tokio::select! {
            () = sleep_until(grace) => break,
            frame = ws.next() => match frame {
                Some(Ok(Frame::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    CloseReason::StopSent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_are_rewritten_to_the_local_server() {
        assert_eq!(
            rewrite_stream_url(
                "wss://engine.example.com/twilio/media",
                "ws://127.0.0.1:8080"
            ),
            "ws://127.0.0.1:8080/twilio/media"
        );
        assert_eq!(
            rewrite_stream_url("wss://engine.example.com:443/a/b?x=1", "ws://127.0.0.1:9/"),
            "ws://127.0.0.1:9/a/b?x=1"
        );
        assert_eq!(rewrite_stream_url("wss://host", "ws://h:1"), "ws://h:1");
    }

    #[test]
    fn webhook_parameters_are_twilios() {
        let mut config = CallerConfig::new("http://x/voice", "tok");
        config.call_token = Some("tok123".to_owned());
        let params = webhook_params(&config, "CA1");
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("ApiVersion"), Some("2010-04-01"));
        assert_eq!(get("CallStatus"), Some("ringing"));
        assert_eq!(get("Direction"), Some("inbound"));
        assert_eq!(get("Called"), get("To"));
        assert_eq!(get("Caller"), get("From"));
        assert_eq!(get("CallSid"), Some("CA1"));
        assert_eq!(get("CallToken"), Some("tok123"));
    }

    fn recorder(frames_sent: u32) -> (Recorder, Instant) {
        let report = CallReport {
            call_tag: 77,
            ..CallReport::default()
        };
        let mut rec = Recorder::new(report, "MZ1".to_owned());
        let start = Instant::now();
        rec.started = Some(start);
        for i in 0..frames_sent {
            let at = start + Duration::from_millis(20) * i;
            rec.frame_sent(i, at, at);
        }
        (rec, start)
    }

    fn media_json(stream_sid: &str, bytes: &[u8]) -> String {
        let mut text = String::new();
        callvisor_wire::protocol::twilio::write_media(
            &mut text,
            stream_sid,
            &STANDARD.encode(bytes),
        );
        text
    }

    #[test]
    fn echoes_are_matched_to_frames_with_losses_reorders_and_foreigners() {
        // Arrange: 10 frames sent.
        let (mut rec, start) = recorder(10);
        let frame = |call: u32, i: u32| super::super::audio::tagged_frame(call, i);

        // Act: echoes of 0, 2, 1 (out of order), 2 again (duplicate), a foreign frame, and
        // frames 3+4 merged into one payload; 5..9 never come back.
        let at = |ms: u64| start + Duration::from_millis(ms);
        for (ms, payload) in [
            (30, frame(77, 0).to_vec()),
            (70, frame(77, 2).to_vec()),
            (71, frame(77, 1).to_vec()),
            (72, frame(77, 2).to_vec()),
            (73, frame(99, 0).to_vec()),
            (110, [frame(77, 3), frame(77, 4)].concat()),
        ] {
            assert!(rec
                .engine_text(&media_json("MZ1", &payload), at(ms))
                .is_empty());
        }
        // A message for another stream is ignored.
        rec.engine_text(&media_json("MZother", &frame(77, 5)), at(120));

        // Assert
        let report = rec.snapshot(at(200));
        assert_eq!(report.frames_echoed, 5);
        assert_eq!(report.duplicate_echoes, 1);
        assert_eq!(report.out_of_order_echoes, 1);
        assert_eq!(report.foreign_frames, 1);
        assert_eq!(report.lost_frames, [5, 6, 7, 8, 9]);
        assert_eq!(report.messages_for_other_streams, 1);
        assert_eq!(report.media_received, 6);
        assert_eq!(report.echo_rtt_us[0], (0, 30_000));
        assert_eq!(report.echo_rtt_us[2], (1, 51_000));
        assert_eq!(report.media_events[5].frames, [3, 4]);
        let rtt = report.rtt.unwrap();
        assert_eq!((rtt.count, rtt.min_us, rtt.max_us), (5, 30_000, 51_000));
    }

    #[test]
    fn marks_wait_for_playback_and_clear_releases_them() {
        // Arrange: 100 ms of agent audio, then a mark.
        let (mut rec, start) = recorder(0);
        let at = |ms: u64| start + Duration::from_millis(ms);
        let audio = [0x9Fu8; 800];
        rec.engine_text(&media_json("MZ1", &audio), at(0));
        let mut mark = String::new();
        callvisor_wire::protocol::twilio::write_mark(&mut mark, "MZ1", "resp_1:1");
        rec.engine_text(&mark, at(1));
        rec.engine_text(&media_json("MZ1", &audio), at(2));
        let mut mark2 = String::new();
        callvisor_wire::protocol::twilio::write_mark(&mut mark2, "MZ1", "resp_1:2");
        rec.engine_text(&mark2, at(3));

        // Assert: the first mark is due when its 100 ms have played.
        assert_eq!(rec.next_mark_due(), Some(at(100)));
        assert!(rec.take_due_marks(at(99)).is_empty());
        assert_eq!(rec.take_due_marks(at(100)), ["resp_1:1"]);

        // Act: barge-in at 150 ms.
        let mut clear = String::new();
        callvisor_wire::protocol::twilio::write_clear(&mut clear, "MZ1");
        let released = rec.engine_text(&clear, at(150));

        // Assert
        assert_eq!(released, [("resp_1:2".to_owned(), true)]);
        let report = rec.snapshot(at(300));
        assert_eq!(report.clears.len(), 1);
        assert_eq!(report.clears[0].discarded_ms, 50);
        assert_eq!(report.clears[0].marks_released, 1);
        assert_eq!(report.audio_played_ms, 150);
        assert_eq!(report.audio_discarded_ms, 50);
        assert_eq!(report.marks_received.len(), 2);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }

    #[test]
    fn a_clear_still_plays_out_marks_already_due() {
        let (mut rec, start) = recorder(0);
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut mark = String::new();
        rec.engine_text(&media_json("MZ1", &[0x9F; 800]), at(0));
        callvisor_wire::protocol::twilio::write_mark(&mut mark, "MZ1", "m1");
        rec.engine_text(&mark, at(0));
        rec.engine_text(&media_json("MZ1", &[0x9F; 800]), at(0));
        mark.clear();
        callvisor_wire::protocol::twilio::write_mark(&mut mark, "MZ1", "m2");
        rec.engine_text(&mark, at(0));
        let mut clear = String::new();
        callvisor_wire::protocol::twilio::write_clear(&mut clear, "MZ1");
        // m1 became due at 100 ms but the timer has not run yet when the clear arrives.
        let acks = rec.engine_text(&clear, at(150));
        assert_eq!(acks, [("m1".to_owned(), false), ("m2".to_owned(), true)]);
        assert_eq!(rec.snapshot(at(150)).clears[0].marks_released, 1);
    }

    #[test]
    fn odd_sized_and_broken_messages_are_reported() {
        let (mut rec, start) = recorder(0);
        rec.engine_text(&media_json("MZ1", &[0xFF; 100]), start);
        rec.engine_text("{not json", start);
        rec.engine_text(r#"{"event":"bogus","streamSid":"MZ1"}"#, start);
        let report = rec.snapshot(start);
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        assert_eq!(report.protocol_errors.len(), 1);
    }

    #[test]
    fn rtt_percentiles() {
        let samples: Vec<(u32, u64)> = (1..=100).map(|i| (i, u64::from(i) * 10)).collect();
        let summary = rtt_summary(&samples).unwrap();
        assert_eq!(summary.min_us, 10);
        assert_eq!(summary.p50_us, 500);
        assert_eq!(summary.p95_us, 950);
        assert_eq!(summary.p99_us, 990);
        assert_eq!(summary.max_us, 1000);
        assert_eq!(summary.mean_us, 505);
        assert_eq!(rtt_summary(&[]), None);
    }
}
