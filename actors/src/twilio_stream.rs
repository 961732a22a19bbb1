//! TwilioStreamActor: the Twilio Media Streams socket, and nothing else.
//!
//! It parses Twilio's frames into typed [`FromTwilio`] reports for its call
//! and writes `media`, `mark` and `clear` for it. On `start` it checks the
//! stream token (missing, forged, expired or bound to another call: the
//! socket is closed and nothing is opened upstream; a session pre-opened for
//! that CallSid is closed too), then asks the [`StreamAuthority`] whether
//! this stream may carry the call (not when the call has ended, or is carried
//! by another live stream anywhere), then asks the
//! [`CallSupervisor`](crate::supervisor::CallSupervisor) for the call's
//! actor, which is started on this socket's worker thread (or, for a call
//! already live here, decides whether this is a genuine hand-over). Caller
//! audio that arrives meanwhile is held, in order, bounded in bytes and time.
//!
//! A socket is a stranger until its `start` passes: it must send `start`
//! within [`StreamSettings::start_timeout`], it holds a [`StartSlot`] of the
//! process-wide [`StartGate`] meanwhile, and a few bad frames close it.
//!
//! `ws::WebsocketContext` (actix-web-actors, deprecated upstream for
//! actix-ws) appears in this file only, so a later swap touches one module.
//!
//! Liveness: `last_seen` is refreshed by every inbound frame (Twilio sends
//! media every 20 ms, so Ping/Pong alone would be the wrong signal); a socket
//! silent for the idle timeout is closed.

pub mod gate;
mod held;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use bytes::BytesMut;
use bytestring::ByteString;

use crate::call::messages::{FromTwilio, SocketId, ToTwilio};
use crate::error_chain::Chain;
use crate::events;
use crate::ids::{CallSid, StreamSid, TenantId};
use crate::ports::{StreamAuthority, StreamClaim, TokenError};
use crate::realtime::preopen;
use crate::supervisor::messages::AttachStream;
use callvisor_wire::protocol::twilio::{self, TwilioInbound};
use callvisor_wire::protocol::{frame_text, json};
pub use gate::{GateFull, StartGate, StartSlot};
use held::HeldAudio;

/// How often liveness is checked and a ping sent.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Name of the `<Parameter>` carrying the tenant.
pub const TENANT_PARAMETER: &str = "tenant_id";
/// Name of the `<Parameter>` carrying the stream token.
pub const TOKEN_PARAMETER: &str = "stream_token";
/// Largest base64 media payload accepted. Twilio sends 20 ms of 8 kHz μ-law:
/// 160 bytes, 216 base64 characters; anything near this bound is not Twilio.
pub const MAX_MEDIA_PAYLOAD_BYTES: usize = 2048;
/// Bad frames (unparseable, binary, oversized payload) that close a socket
/// before its `start` passed: Twilio sends none.
pub const MAX_INVALID_BEFORE_START: u64 = 5;
/// Bad frames that close a socket carrying a call (more patience: the call
/// is someone's conversation, and one odd frame must not end it).
pub const MAX_INVALID_AFTER_START: u64 = 50;

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);
/// Sockets refused before their `start` named a call, process-wide: a flood
/// of strangers is logged sampled (the first few, then every hundredth).
static STRANGERS_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Stranger refusals logged one by one before the log is sampled.
const STRANGERS_LOGGED: u64 = 10;

/// A socket's limits and the checks its `start` must pass (configuration).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// A socket silent this long is closed.
    pub idle_timeout: Duration,
    /// `start` must arrive, and the call be found, within this time.
    pub start_timeout: Duration,
    /// Caller audio held while the call is found, in base64 bytes.
    pub max_held_bytes: usize,
    /// When set, `start.accountSid` must equal it (our Twilio account).
    pub account_sid: Option<Arc<str>>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(5),
            // 300 Twilio frames: six seconds of audio.
            max_held_bytes: 300 * 216,
            account_sid: None,
        }
    }
}

enum State {
    /// Waiting for Twilio's `start`.
    AwaitingStart,
    /// Token accepted; waiting for the call's actor. Audio is held.
    Attaching { held: HeldAudio },
    /// Audio flows to the call.
    Live { call: Recipient<FromTwilio> },
    /// Refused or finished.
    Closed,
}

/// One Twilio media socket.
pub struct TwilioStreamActor {
    socket: SocketId,
    authority: Arc<dyn StreamAuthority>,
    supervisor: Recipient<AttachStream>,
    settings: StreamSettings,
    /// This socket's place among those waiting for `start`; `None` once it left.
    slot: Option<StartSlot>,
    state: State,
    /// Set once `start` named them (validated ids only: nothing unvalidated is logged).
    call_sid: Option<CallSid>,
    tenant: Option<TenantId>,
    stream_sid: Option<StreamSid>,
    last_seen: Instant,
    invalid_frames: u64,
    /// Reused for every outgoing frame's JSON.
    buf: String,
    /// Reused for every outgoing frame's bytes: its allocation comes back once the
    /// encoder has copied the previous frame, so writing allocates nothing.
    out: BytesMut,
    /// Reused for mark names (`m<number>`).
    mark_name: String,
    told_call: bool,
}

impl TwilioStreamActor {
    /// A socket that checks tokens with `authority` and attaches through
    /// `supervisor`; `slot` is its place in the [`StartGate`].
    pub fn new(
        authority: Arc<dyn StreamAuthority>,
        supervisor: Recipient<AttachStream>,
        settings: StreamSettings,
        slot: StartSlot,
    ) -> Self {
        Self {
            socket: NEXT_SOCKET.fetch_add(1, Ordering::Relaxed),
            authority,
            supervisor,
            settings,
            slot: Some(slot),
            state: State::AwaitingStart,
            call_sid: None,
            tenant: None,
            stream_sid: None,
            last_seen: Instant::now(),
            invalid_frames: 0,
            buf: String::with_capacity(512),
            out: BytesMut::with_capacity(1024),
            mark_name: String::with_capacity(24),
            told_call: false,
        }
    }

    fn call_sid(&self) -> &str {
        self.call_sid.as_ref().map_or("-", CallSid::as_str)
    }

    fn tenant(&self) -> &str {
        self.tenant.as_ref().map_or("-", TenantId::as_str)
    }

    /// Closes the socket with 1008 and `reason`; nothing more is done for it.
    fn refuse(&mut self, ctx: &mut ws::WebsocketContext<Self>, reason: &str) {
        let sampled = self.call_sid.is_none().then(|| {
            let n = STRANGERS_REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
            (n, n <= STRANGERS_LOGGED || n.is_multiple_of(100))
        });
        if sampled.is_none_or(|(_, log)| log) {
            log::warn!(
                "{} call_sid={} tenant={} socket={} reason={reason:?} invalid_frames={} strangers_refused={}",
                events::STREAM_REJECTED,
                self.call_sid(),
                self.tenant(),
                self.socket,
                self.invalid_frames,
                sampled.map_or(0, |(n, _)| n)
            );
        }
        if let State::Attaching { held } = &self.state {
            self.log_dropped(held);
        }
        self.slot = None;
        self.state = State::Closed;
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    /// Refuses the socket and closes a session pre-opened for its call here:
    /// nobody will adopt it, and it is paid for while it waits.
    fn refuse_and_discard(&mut self, ctx: &mut ws::WebsocketContext<Self>, reason: &str) {
        if let Some(call_sid) = &self.call_sid {
            if preopen::discard(call_sid.as_str()) {
                log::info!(
                    "{} call_sid={} tenant={} reason=stream_refused",
                    events::REALTIME_PREOPEN_DISCARDED,
                    call_sid,
                    self.tenant()
                );
            }
        }
        self.refuse(ctx, reason);
    }

    /// One line per attach phase, not per frame.
    fn log_dropped(&self, held: &HeldAudio) {
        if held.dropped() > 0 {
            log::warn!(
                "{} call_sid={} tenant={} direction=attaching frames={} held_bytes={}",
                events::AUDIO_DROPPED,
                self.call_sid(),
                self.tenant(),
                held.dropped(),
                held.bytes()
            );
        }
    }

    /// Counts a bad frame; on a call logs the first and every 1000th; closes
    /// the socket over the limit (a few before `start`, more on a call).
    fn bad_frame(&mut self, ctx: &mut ws::WebsocketContext<Self>, error: &dyn std::fmt::Display) {
        self.invalid_frames += 1;
        let before_start = matches!(self.state, State::AwaitingStart);
        // A stranger's frames are not logged one by one: its (sampled)
        // refusal line carries the count.
        if !before_start && (self.invalid_frames == 1 || self.invalid_frames.is_multiple_of(1000)) {
            log::warn!(
                "{} call_sid={} tenant={} count={} error={:?}",
                events::TWILIO_FRAME_INVALID,
                self.call_sid(),
                self.tenant(),
                self.invalid_frames,
                error.to_string()
            );
        }
        let limit = if before_start {
            MAX_INVALID_BEFORE_START
        } else {
            MAX_INVALID_AFTER_START
        };
        if self.invalid_frames >= limit && !matches!(self.state, State::Closed) {
            if let State::Live { call } = &self.state {
                // The call learns its socket is gone (as for any close).
                call.do_send(FromTwilio::SocketClosed {
                    socket: self.socket,
                });
                self.told_call = true;
            }
            self.refuse(ctx, "bad_frames");
        }
    }

    fn on_text(&mut self, text: ByteString, ctx: &mut ws::WebsocketContext<Self>) {
        let frame = match twilio::parse_inbound(&text) {
            Ok(frame) => frame,
            Err(e) => return self.bad_frame(ctx, &e),
        };
        match frame {
            TwilioInbound::Media { payload, .. } => {
                if payload.len() > MAX_MEDIA_PAYLOAD_BYTES {
                    return self.bad_frame(ctx, &"media payload larger than Twilio sends");
                }
                let payload = text.slice_ref(payload);
                match &mut self.state {
                    State::Live { call } => call.do_send(FromTwilio::Audio { payload }),
                    State::Attaching { held } => held.push(payload),
                    State::AwaitingStart | State::Closed => {}
                }
            }
            TwilioInbound::Mark { name } => {
                if let State::Live { call } = &self.state {
                    let name = match name {
                        std::borrow::Cow::Borrowed(n) => text.slice_ref(n),
                        std::borrow::Cow::Owned(n) => ByteString::from(n),
                    };
                    call.do_send(FromTwilio::MarkPlayed { name });
                }
            }
            TwilioInbound::Start(info) => self.on_start(&info, ctx),
            TwilioInbound::Stop => {
                if let State::Live { call } = &self.state {
                    call.do_send(FromTwilio::Stopped {
                        socket: self.socket,
                    });
                    // `stop` is the end; the close that follows need not be reported.
                    self.told_call = true;
                }
                ctx.close(Some(ws::CloseCode::Normal.into()));
                ctx.stop();
            }
            TwilioInbound::Dtmf { digit } => {
                if let State::Live { call } = &self.state {
                    call.do_send(FromTwilio::Dtmf {
                        digit: digit.into_owned(),
                    });
                }
            }
            TwilioInbound::Connected | TwilioInbound::Unknown { .. } => {}
        }
    }

    fn on_start(&mut self, info: &twilio::StartInfo<'_>, ctx: &mut ws::WebsocketContext<Self>) {
        if !matches!(self.state, State::AwaitingStart) {
            return; // a repeated start changes nothing
        }
        // Leaving AwaitingStart, whatever comes next.
        self.slot = None;
        let ids = (
            CallSid::parse(info.call_sid),
            StreamSid::parse(info.stream_sid),
        );
        let (Ok(call_sid), Ok(stream_sid)) = ids else {
            return self.refuse(ctx, "malformed call or stream id");
        };
        self.call_sid = Some(call_sid.clone());
        if let Some(expected) = &self.settings.account_sid {
            if info.account_sid != Some(&**expected) {
                return self.refuse_and_discard(ctx, "account_mismatch");
            }
        }
        let tenant = info.custom_parameters.get(TENANT_PARAMETER);
        let token = info.custom_parameters.get(TOKEN_PARAMETER);
        let (Some(tenant), Some(token)) = (tenant, token) else {
            return self.refuse_and_discard(ctx, "missing tenant or stream token");
        };
        let Ok(tenant_id) = TenantId::parse(tenant) else {
            return self.refuse_and_discard(ctx, "malformed tenant id");
        };
        if let Err(e) = self
            .authority
            .check(token, call_sid.as_str(), tenant_id.as_str())
        {
            let reason = match e {
                TokenError::Malformed => "malformed stream token",
                TokenError::BadSignature => "stream token not valid for this call",
                TokenError::Expired => "stream token expired",
            };
            return self.refuse_and_discard(ctx, reason);
        }
        self.tenant = Some(tenant_id.clone());
        self.stream_sid = Some(stream_sid.clone());
        self.state = State::Attaching {
            held: HeldAudio::new(self.settings.max_held_bytes),
        };
        let account_sid = info.account_sid.map(str::to_owned);
        let claim = self.authority.claim(StreamClaim {
            call_sid: call_sid.clone(),
            tenant_id: tenant_id.clone(),
            stream_sid: stream_sid.clone(),
        });
        let attach = AttachStream {
            call_sid,
            tenant_id,
            stream_sid,
            account_sid,
            twilio: ctx.address().recipient(),
            socket: self.socket,
            arbiter: Arbiter::current(),
        };
        ctx.spawn(
            claim
                .into_actor(self)
                .map(move |claimed, act, ctx| match claimed {
                    Ok(()) if matches!(act.state, State::Attaching { .. }) => {
                        act.attach(attach, ctx);
                    }
                    Ok(()) => {}
                    Err(refusal) => {
                        if let Some(cause) = std::error::Error::source(&refusal) {
                            log::warn!(
                                "{} call_sid={} tenant={} error={:?}",
                                events::STREAM_CLAIM_FAILED,
                                act.call_sid(),
                                act.tenant(),
                                Chain(cause)
                            );
                        }
                        if matches!(act.state, State::Attaching { .. }) {
                            act.refuse_and_discard(ctx, refusal.reason());
                        }
                    }
                }),
        );
    }

    /// The stream may carry its call: ask the supervisor for the call's actor.
    fn attach(&mut self, attach: AttachStream, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.spawn(
            self.supervisor
                .send(attach)
                .into_actor(self)
                .map(|reply, act, ctx| {
                    if !matches!(act.state, State::Attaching { .. }) {
                        // Refused meanwhile (attach timeout): a call started for
                        // this socket finds it gone and ends by itself.
                        return;
                    }
                    match reply {
                        Ok(Ok(call)) => {
                            let State::Attaching { held } =
                                std::mem::replace(&mut act.state, State::Closed)
                            else {
                                return;
                            };
                            act.log_dropped(&held);
                            for payload in held.into_frames() {
                                call.do_send(FromTwilio::Audio { payload });
                            }
                            act.state = State::Live { call };
                        }
                        // The call is live on another socket here: the first one keeps it.
                        Ok(Err(e)) => act.refuse(ctx, e.reason()),
                        Err(_) => act.refuse(ctx, "supervisor unavailable"),
                    }
                }),
        );
    }
}

impl Actor for TwilioStreamActor {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A stranger gets `start_timeout` to authenticate, and as long again
        // to be attached: held audio is bounded in time too.
        let start_timeout = self.settings.start_timeout;
        ctx.run_later(start_timeout, move |act, ctx| match act.state {
            State::AwaitingStart => act.refuse(ctx, "start_timeout"),
            State::Attaching { .. } => {
                ctx.run_later(start_timeout, |act, ctx| {
                    if matches!(act.state, State::Attaching { .. }) {
                        act.refuse(ctx, "attach_timeout");
                    }
                });
            }
            State::Live { .. } | State::Closed => {}
        });
        ctx.run_interval(HEARTBEAT_INTERVAL, |act, ctx| {
            if act.last_seen.elapsed() > act.settings.idle_timeout {
                log::warn!(
                    "{} call_sid={} tenant={} idle_ms={}",
                    events::TWILIO_IDLE_TIMEOUT,
                    act.call_sid(),
                    act.tenant(),
                    act.last_seen.elapsed().as_millis()
                );
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.slot = None;
        // Exactly once: the call learns its socket is gone.
        if !self.told_call {
            self.told_call = true;
            if let State::Live { call } = &self.state {
                call.do_send(FromTwilio::SocketClosed {
                    socket: self.socket,
                });
            }
        }
        Running::Stop
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for TwilioStreamActor {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(text, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Pong(_) | ws::Message::Nop) => {}
            Ok(ws::Message::Binary(_) | ws::Message::Continuation(_)) => {
                self.bad_frame(ctx, &"binary or fragmented frame");
            }
            Err(e) => {
                log::warn!(
                    "{} call_sid={} tenant={} error={:?}",
                    events::TWILIO_FRAME_INVALID,
                    self.call_sid(),
                    self.tenant(),
                    Chain(&e)
                );
                ctx.stop();
            }
        }
    }
}

impl Handler<ToTwilio> for TwilioStreamActor {
    type Result = ();

    fn handle(&mut self, msg: ToTwilio, ctx: &mut Self::Context) {
        let Some(stream_sid) = &self.stream_sid else {
            return;
        };
        match msg {
            ToTwilio::Audio { payload, mark } => {
                // Media and its mark are queued together and go out in one flush
                // (the context encodes everything queued in one poll into one write).
                self.buf.clear();
                twilio::write_media(&mut self.buf, stream_sid.as_str(), &payload);
                let media = frame_text(&mut self.out, &self.buf);
                self.mark_name.clear();
                self.mark_name.push('m');
                json::push_u64(&mut self.mark_name, mark);
                self.buf.clear();
                twilio::write_mark(&mut self.buf, stream_sid.as_str(), &self.mark_name);
                let mark = frame_text(&mut self.out, &self.buf);
                ctx.text(media);
                ctx.text(mark);
            }
            ToTwilio::Clear => {
                self.buf.clear();
                twilio::write_clear(&mut self.buf, stream_sid.as_str());
                ctx.text(frame_text(&mut self.out, &self.buf));
            }
            ToTwilio::Close => {
                // Replaced or ended by the call: it knows, do not report back.
                self.told_call = true;
                self.state = State::Closed;
                ctx.close(Some(ws::CloseCode::Normal.into()));
                ctx.stop();
            }
        }
    }
}
