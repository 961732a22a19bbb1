//! CallActor: one call's state machine.
//!
//! It owns the call's [`RealtimeActor`] and talks to its Twilio socket through
//! a recipient. It forwards caller audio upstream and agent audio downstream
//! (marking every chunk), keeps the barge-in bookkeeping, records the
//! transcript, runs tool calls, reconnects the agent within a restart budget,
//! and runs the end-of-call sequence exactly once: flush the transcript,
//! write the call's record, tell the supervisor, stop.
//!
//! Bounds: caller audio is held here until the agent's session is configured
//! (its `Ready`), in bytes and time ([`audio_bounds`]); agent audio sent to
//! Twilio and not yet played (its mark not acknowledged) is bounded in bytes,
//! which bounds everything queued towards the Twilio socket; the Realtime
//! writer bounds its own backlog. Every run of drops is one `AUDIO_DROPPED`
//! line. A call longer than `max_call_duration` ends (`max_duration`).
//!
//! Supervision: a work unit with an *auto-shutdown on a significant child*:
//! when the Twilio socket ends, the call ends. The RealtimeActor is
//! *transient* (restarted within [`RestartBudget`]); over budget, the caller
//! hears an apology and the call ends cleanly. The actor is built around
//! messages, not around a socket, so other channels can drive it.

pub mod audio_bounds;
pub mod barge_in;
pub mod media;
pub mod messages;
pub mod phase;
pub mod restart;
mod tools;
pub mod transcript;

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytestring::ByteString;
use chrono::{DateTime, Utc};

use crate::error_chain::Chain;
use crate::events;
use crate::ids::{CallSid, TenantId};
use crate::persistence::{AppendSegment, Flush, PersistenceActor};
use crate::ports::{CallDeps, CallEnd, CallPlan, EndReason, Role, Segment};
use crate::realtime::{preopen, Opening, RealtimeActor};
use crate::supervisor::messages::CallEnded;
use audio_bounds::{DropBurst, Dropped, HeldAudio};
use barge_in::Playback;
use messages::{
    CallCommand, CallStats, FromRealtime, FromTwilio, GetCallStats, HandOver, HandOverRefused,
    RealtimeEvent, SocketId, StreamIdentity, ToRealtime, ToTwilio,
};
use phase::CallPhase;
use restart::RestartBudget;
use transcript::Transcript;

/// Attempts at writing the call's record before leaving it to the status callback.
const FINISH_ATTEMPTS: u32 = 5;
/// How long the agent's connection stays open after a call ends, for the
/// transcripts of what was said last.
const TRANSCRIPT_GRACE: std::time::Duration = std::time::Duration::from_millis(750);
/// How long the end of a call waits for its transcript to be written.
const FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often the call checks that its two sockets' actors are alive.
const LIVENESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Attempts at loading the call's plan before giving up on the call.
const PLAN_ATTEMPTS: u32 = 3;
/// How long Twilio gets to stop the stream after the apology was requested.
const APOLOGY_STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One live call.
pub struct CallActor {
    actor_id: u64,
    call_sid: CallSid,
    tenant_id: TenantId,
    deps: CallDeps,
    persistence: Addr<PersistenceActor>,
    supervisor: Recipient<CallEnded>,
    twilio: Recipient<ToTwilio>,
    socket: SocketId,
    /// What the current socket's `start` said (a hand-over must say the same);
    /// `None` when the media is elsewhere (a SIP call: no socket to hand over).
    identity: Option<StreamIdentity>,
    /// When the current socket last sent anything (Twilio sends every 20 ms).
    last_inbound: Instant,
    /// The current socket closed without `stop`: waiting for a hand-over.
    socket_lost: bool,
    phase: CallPhase,
    plan: Option<Arc<CallPlan>>,
    realtime: Option<Addr<RealtimeActor>>,
    generation: u32,
    /// The current connection reported `Ready` (its session is configured).
    realtime_ready: bool,
    /// Caller audio that arrived before the current connection was ready.
    held: HeldAudio,
    /// Agent audio dropped because too much was unplayed.
    agent_drops: DropBurst,
    /// Caller audio the Realtime writer dropped (as it reported).
    upstream_drops: Dropped,
    upstream_drop_reports: u64,
    playback: Playback,
    /// The answer the caller interrupted: its late audio is dropped, not played after the clear.
    interrupted_item: Option<ByteString>,
    /// What was said so far, in order (the sink has it too).
    transcript: Transcript,
    budget: RestartBudget,
    started_at: DateTime<Utc>,
    started: Instant,
    transferred_to: Option<String>,
    /// The agent asked to end the call: end once its last words have played.
    end_after_playback: bool,
    /// A response is being spoken (audio arrived, `response.done` not yet).
    agent_speaking: bool,
    /// The caller is being told the agent is unreachable (see
    /// `apologise_and_end`), and why: the reason the call will end with.
    apologising: Option<EndReason>,
    /// Tool calls that arrived before the plan (a pre-opened session can be
    /// that quick): run once it is loaded, in order.
    deferred_tools: Vec<(String, String, String)>,
}

impl CallActor {
    /// A call reporting to `supervisor`, writing through `persistence`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        actor_id: u64,
        call_sid: CallSid,
        tenant_id: TenantId,
        deps: CallDeps,
        persistence: Addr<PersistenceActor>,
        supervisor: Recipient<CallEnded>,
        twilio: Recipient<ToTwilio>,
        socket: SocketId,
        identity: Option<StreamIdentity>,
    ) -> Self {
        let budget = RestartBudget::new(deps.tuning.max_reconnects, deps.tuning.reconnect_window);
        let held = HeldAudio::new(deps.tuning.held_audio);
        Self {
            actor_id,
            call_sid,
            tenant_id,
            deps,
            persistence,
            supervisor,
            twilio,
            socket,
            identity,
            last_inbound: Instant::now(),
            socket_lost: false,
            phase: CallPhase::Connecting,
            plan: None,
            realtime: None,
            generation: 0,
            realtime_ready: false,
            held,
            agent_drops: DropBurst::default(),
            upstream_drops: Dropped::default(),
            upstream_drop_reports: 0,
            playback: Playback::default(),
            interrupted_item: None,
            transcript: Transcript::default(),
            budget,
            started_at: Utc::now(),
            started: Instant::now(),
            transferred_to: None,
            end_after_playback: false,
            agent_speaking: false,
            deferred_tools: Vec::new(),
            apologising: None,
        }
    }

    /// Opens a Realtime connection (the first, or a replacement).
    fn open_realtime(&mut self, ctx: &mut Context<Self>, opening: Opening) {
        let Some(plan) = &self.plan else { return };
        self.generation += 1;
        self.realtime_ready = false;
        // The old connection's items mean nothing to the new one.
        self.playback.forget_unplayed();
        self.interrupted_item = None;
        let actor = RealtimeActor::new(
            self.call_sid.clone(),
            self.tenant_id.clone(),
            self.deps.realtime.clone(),
            plan.session.clone(),
            opening,
            ctx.address().recipient(),
            self.generation,
            self.deps.tuning.connect_timeout,
            self.deps.tuning.max_upstream_queued_bytes,
        )
        .start();
        self.realtime = Some(actor);
    }

    /// The current connection is configured: what was held goes first.
    fn on_ready(&mut self) {
        self.realtime_ready = true;
        if let Some(rt) = &self.realtime {
            for payload in self.held.drain() {
                rt.do_send(ToRealtime::Audio { payload });
            }
        }
        if let Some(dropped) = self.held.drops().close() {
            self.log_dropped("held", dropped);
        }
    }

    /// One `AUDIO_DROPPED` line for a run of drops.
    fn log_dropped(&self, direction: &str, dropped: Dropped) {
        log::warn!(
            "{} call_sid={} tenant={} direction={direction} frames={} bytes={}",
            events::AUDIO_DROPPED,
            self.call_sid,
            self.tenant_id,
            dropped.frames,
            dropped.bytes
        );
    }

    /// Agent audio for Twilio, unless too much is unplayed already.
    fn send_agent_audio(&mut self, item_id: ByteString, payload: ByteString) {
        let in_flight = self.playback.in_flight_bytes();
        if in_flight.saturating_add(payload.len()) > self.deps.tuning.max_agent_audio_bytes {
            self.agent_drops.drop_frame(payload.len());
            return;
        }
        if let Some(dropped) = self.agent_drops.close() {
            self.log_dropped("agent", dropped);
        }
        let mark = self.playback.audio_sent(&item_id, &payload);
        self.twilio.do_send(ToTwilio::Audio { payload, mark });
    }

    /// The Realtime writer dropped caller audio (any connection of this call:
    /// the last run of a closed one is reported as it closes).
    fn on_upstream_dropped(&mut self, dropped: Dropped) {
        self.upstream_drops.frames += dropped.frames;
        self.upstream_drops.bytes += dropped.bytes;
        self.upstream_drop_reports += 1;
        self.log_dropped("upstream", dropped);
    }

    /// Runs of drops still open when the call ends are reported now.
    fn report_open_drops(&mut self) {
        if let Some(dropped) = self.held.drops().close() {
            self.log_dropped("held", dropped);
        }
        if let Some(dropped) = self.agent_drops.close() {
            self.log_dropped("agent", dropped);
        }
    }

    fn record(&mut self, role: Role, item_id: Option<ByteString>, text: &str) {
        let Some((seq, text)) = self.transcript.record(role, item_id, text) else {
            return;
        };
        let segment = Segment {
            call_sid: self.call_sid.clone(),
            seq,
            role,
            text,
            at: Utc::now(),
        };
        self.persistence.do_send(AppendSegment { segment });
    }

    fn on_realtime(&mut self, event: RealtimeEvent, ctx: &mut Context<Self>) {
        match event {
            RealtimeEvent::AgentAudio { item_id, payload } => {
                if self.phase.is_ending() || self.interrupted_item.as_ref() == Some(&item_id) {
                    return;
                }
                self.agent_speaking = true;
                self.send_agent_audio(item_id, payload);
            }
            // After `end_call` the goodbye is not interrupted: the call is ending.
            RealtimeEvent::SpeechStarted { .. } if self.end_after_playback => {}
            RealtimeEvent::SpeechStarted { item_id } => {
                self.transcript.reserve(item_id);
                if let Some(cut) = self.playback.speech_started() {
                    // Clear first: the caller must stop hearing the agent at once.
                    self.twilio.do_send(ToTwilio::Clear);
                    self.interrupted_item = Some(cut.item_id.clone());
                    log::info!(
                        "{} call_sid={} tenant={} item_id={} audio_end_ms={}",
                        events::BARGE_IN,
                        self.call_sid,
                        self.tenant_id,
                        cut.item_id,
                        cut.audio_end_ms
                    );
                    if let Some(rt) = &self.realtime {
                        rt.do_send(ToRealtime::Truncate {
                            item_id: cut.item_id,
                            audio_end_ms: cut.audio_end_ms,
                        });
                    }
                }
            }
            RealtimeEvent::Ready => {
                if self.phase == CallPhase::Connecting {
                    self.phase = CallPhase::Talking;
                }
                self.on_ready();
            }
            RealtimeEvent::AudioDropped { dropped } => self.on_upstream_dropped(dropped),
            RealtimeEvent::UserTranscript { item_id, text } => {
                self.record(Role::User, Some(item_id), &text)
            }
            RealtimeEvent::AgentTranscript { text } => self.record(Role::Assistant, None, &text),
            RealtimeEvent::ToolCall {
                call_id,
                name,
                arguments,
            } if self.plan.is_none() => self.deferred_tools.push((call_id, name, arguments)),
            RealtimeEvent::ToolCall {
                call_id,
                name,
                arguments,
            } => self.on_tool_call(call_id, name, arguments, ctx),
            RealtimeEvent::ResponseDone => {
                self.agent_speaking = false;
                self.finish_if_said_goodbye(ctx);
            }
            RealtimeEvent::Error { .. } => {}
            RealtimeEvent::Closed { reason } => self.on_upstream_closed(reason, ctx),
        }
    }

    fn on_upstream_closed(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.realtime = None;
        // Caller audio is held again until the replacement is ready.
        self.realtime_ready = false;
        // Ending, or talking to a human now: the agent is not needed any more.
        if self.phase.is_ending() || self.phase == CallPhase::Transferring {
            return;
        }
        match self.budget.try_take(Instant::now()) {
            Some(attempt) => {
                let delay = RestartBudget::backoff(attempt);
                log::warn!(
                    "{} call_sid={} tenant={} attempt={attempt} delay_ms={} reason={reason:?}",
                    events::REALTIME_RECONNECTING,
                    self.call_sid,
                    self.tenant_id,
                    delay.as_millis()
                );
                ctx.run_later(delay, |act, ctx| {
                    if act.phase.is_ending() || act.realtime.is_some() {
                        return;
                    }
                    let turns = act.transcript.said();
                    act.open_realtime(ctx, Opening::Restore(turns));
                });
            }
            None => {
                log::error!(
                    "{} call_sid={} tenant={} reason={reason:?}",
                    events::REALTIME_FAILED,
                    self.call_sid,
                    self.tenant_id
                );
                self.apologise_and_end(EndReason::UpstreamFailed, ctx);
            }
        }
    }

    /// The current socket is gone without `stop`: Twilio may open a new one
    /// (a hand-over) within the grace; otherwise the call ends.
    fn on_socket_lost(&mut self, ctx: &mut Context<Self>) {
        if self.socket_lost || self.phase.is_ending() {
            return;
        }
        self.socket_lost = true;
        let socket = self.socket;
        ctx.run_later(self.deps.tuning.handover_grace, move |act, ctx| {
            if act.socket_lost && act.socket == socket {
                act.end(EndReason::SocketLost, ctx);
            }
        });
    }

    /// Grants a hand-over only as Twilio could ask for it (see [`HandOver`]).
    fn hand_over(&mut self, msg: HandOver) -> Result<(), HandOverRefused> {
        if self.phase.is_ending() {
            return Err(HandOverRefused::Ending);
        }
        let silent = self.last_inbound.elapsed() >= self.deps.tuning.handover_silence;
        if self.identity.as_ref() != Some(&msg.identity) || !(self.socket_lost || silent) {
            return Err(HandOverRefused::InUse);
        }
        let old = std::mem::replace(&mut self.twilio, msg.twilio);
        let old_socket = std::mem::replace(&mut self.socket, msg.socket);
        old.do_send(ToTwilio::Close);
        let old_lost = std::mem::replace(&mut self.socket_lost, false);
        self.last_inbound = Instant::now();
        // The new socket has played nothing of ours; mark numbers go on
        // rising so a late mark of the old socket cannot match.
        self.playback.forget_unplayed();
        log::info!(
            "{} call_sid={} tenant={} socket={} replaced={old_socket} old_lost={old_lost}",
            events::STREAM_REPLACED,
            self.call_sid,
            self.tenant_id,
            self.socket
        );
        Ok(())
    }

    /// Ends the call once the agent asked to and its last words have played.
    fn finish_if_said_goodbye(&mut self, ctx: &mut Context<Self>) {
        if self.end_after_playback && !self.agent_speaking && self.playback.is_idle() {
            self.end(EndReason::AgentEnded, ctx);
        }
    }

    /// The agent cannot be reached: the caller hears an apology, the call ends.
    ///
    /// Order matters: the apology (a Twilio call update) must reach Twilio
    /// while the stream is still open. Closing the socket first would let
    /// Twilio run past `</Connect>` and hang up before the apology plays. So
    /// the socket stays open; Twilio's redirect stops the stream itself, and
    /// if it does not within [`APOLOGY_STOP_LIMIT`], the call is ended here.
    fn apologise_and_end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        if self.apologising.is_some() || self.phase.is_ending() {
            return;
        }
        self.apologising = Some(reason);
        let apology = self.plan.as_ref().map_or_else(
            || {
                "We are sorry, we cannot take your call right now. Please call again later."
                    .to_owned()
            },
            |p| p.apology.clone(),
        );
        let language = self.plan.as_ref().map(|p| p.session.language.clone());
        let control = self.deps.control.clone();
        let call_sid = self.call_sid.clone();
        let work = async move {
            control
                .say_and_hang_up(&call_sid, &apology, language.as_deref())
                .await
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(()) => {
                        log::info!(
                            "{} call_sid={} tenant={}",
                            events::CALL_APOLOGY,
                            act.call_sid,
                            act.tenant_id
                        );
                        ctx.run_later(APOLOGY_STOP_LIMIT, move |act, ctx| act.end(reason, ctx));
                    }
                    Err(e) => {
                        log::error!(
                            "{} call_sid={} tenant={} error={:?}",
                            events::CALL_APOLOGY_FAILED,
                            act.call_sid,
                            act.tenant_id,
                            Chain(&e)
                        );
                        act.end(reason, ctx);
                    }
                }),
        );
    }

    /// The end-of-call sequence; runs once whatever triggers it.
    fn end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        if self.phase.is_ending() {
            return;
        }
        self.phase = CallPhase::Ending;
        self.report_open_drops();
        let reason = match (self.apologising, reason, &self.transferred_to) {
            // Twilio stopping the stream for the apology is still that failure.
            (Some(apology_reason), _, _) => apology_reason,
            (None, EndReason::TwilioStopped | EndReason::SocketLost, Some(_)) => {
                EndReason::Transferred
            }
            (None, reason, _) => reason,
        };
        if !matches!(reason, EndReason::TwilioStopped | EndReason::SocketLost) {
            self.twilio.do_send(ToTwilio::Close);
        }
        let ended_at = Utc::now();
        // The caller's last words may still be being transcribed: keep the
        // agent's connection (no audio flows any more) for a short grace and
        // record what arrives, then close it and write everything.
        let grace = if self.realtime.is_some() {
            TRANSCRIPT_GRACE
        } else {
            std::time::Duration::ZERO
        };
        ctx.run_later(grace, move |act, ctx| act.finish(reason, ended_at, ctx));
    }

    /// The second half of [`Self::end`]: flush, write the record, stop.
    fn finish(&mut self, reason: EndReason, ended_at: DateTime<Utc>, ctx: &mut Context<Self>) {
        if let Some(rt) = self.realtime.take() {
            rt.do_send(ToRealtime::Close);
        }
        // Nothing from that connection is this call's business any more.
        self.generation += 1;
        let end = CallEnd {
            call_sid: self.call_sid.clone(),
            tenant_id: self.tenant_id.clone(),
            started_at: self.started_at,
            ended_at,
            reason,
            transferred_to: self.transferred_to.clone(),
            segments: self.transcript.segments(),
        };
        let flush = self.persistence.send(Flush);
        let store = self.deps.store.clone();
        let work = async move {
            // Everything said is written before the record that summarises it
            // (bounded: a database that stays away must not keep the call open;
            // the segments stay buffered and the transcript is rebuilt later).
            let _ = actix_rt::time::timeout(FLUSH_LIMIT, flush).await;
            let mut attempt = 1;
            loop {
                match store.finish_call(end.clone()).await {
                    Ok(()) => return Ok(end),
                    Err(e) if attempt >= FINISH_ATTEMPTS => return Err((end, e)),
                    Err(_) => {
                        actix_rt::time::sleep(RestartBudget::backoff(attempt)).await;
                        attempt += 1;
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            match result {
                Ok(end) => log::info!(
                    "{} call_sid={} tenant={} reason={} duration_ms={} segments={}",
                    events::CALL_ENDED,
                    act.call_sid,
                    act.tenant_id,
                    end.reason.as_str(),
                    act.started.elapsed().as_millis(),
                    end.segments
                ),
                Err((end, e)) => log::error!(
                    "{} call_sid={} tenant={} reason={} error={:?}",
                    events::CALL_FINISH_FAILED,
                    act.call_sid,
                    act.tenant_id,
                    end.reason.as_str(),
                    Chain(&e)
                ),
            }
            act.phase = CallPhase::Ended;
            act.supervisor.do_send(CallEnded {
                call_sid: act.call_sid.clone(),
                actor_id: act.actor_id,
            });
            ctx.stop();
        }));
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        log::info!(
            "{} call_sid={} tenant={}",
            events::CALL_STARTED,
            self.call_sid,
            self.tenant_id
        );
        // A session opened while the phone rang is connected and configured;
        // adopting it starts its greeting.
        if let Some(session) = preopen::take(self.call_sid.as_str()) {
            self.generation = 1;
            let adopt = session.send(ToRealtime::Adopt {
                owner: ctx.address().recipient(),
                generation: self.generation,
            });
            // It may have stopped between being parked and being taken.
            ctx.spawn(adopt.into_actor(self).map(|result, act, ctx| {
                if result.is_err() && act.generation == 1 {
                    act.generation += 1;
                    act.on_upstream_closed("the pre-opened session had stopped".to_owned(), ctx);
                }
            }));
            log::info!(
                "{} call_sid={} tenant={}",
                events::REALTIME_ADOPTED,
                self.call_sid,
                self.tenant_id
            );
            self.realtime = Some(session);
        }
        let store = self.deps.store.clone();
        let (call_sid, tenant_id) = (self.call_sid.clone(), self.tenant_id.clone());
        let load = async move {
            let mut attempt = 1;
            loop {
                match store.load_plan(&call_sid, &tenant_id).await {
                    Ok(plan) => return Ok(plan),
                    Err(e) if attempt >= PLAN_ATTEMPTS => return Err(e),
                    Err(_) => {
                        actix_rt::time::sleep(RestartBudget::backoff(attempt)).await;
                        attempt += 1;
                    }
                }
            }
        };
        ctx.spawn(load.into_actor(self).map(|result, act, ctx| match result {
            Ok(plan) => {
                act.plan = Some(Arc::new(plan));
                if !act.phase.is_ending() && act.realtime.is_none() {
                    act.open_realtime(ctx, Opening::Greet);
                }
                for (call_id, name, arguments) in std::mem::take(&mut act.deferred_tools) {
                    act.on_tool_call(call_id, name, arguments, ctx);
                }
            }
            Err(e) => {
                log::error!(
                    "{} call_sid={} tenant={} error={:?}",
                    events::CALL_SETUP_FAILED,
                    act.call_sid,
                    act.tenant_id,
                    Chain(&e)
                );
                // The caller may already hear a pre-opened greeting: say sorry, do not just cut.
                act.apologise_and_end(EndReason::SetupFailed, ctx);
            }
        }));
        // A runaway call (a caller who never hangs up, a stream Twilio never
        // stops) ends through the normal end path.
        ctx.run_later(self.deps.tuning.max_call_duration, |act, ctx| {
            if act.phase.is_ending() {
                return;
            }
            log::warn!(
                "{} call_sid={} tenant={} limit_s={}",
                events::CALL_MAX_DURATION,
                act.call_sid,
                act.tenant_id,
                act.deps.tuning.max_call_duration.as_secs()
            );
            act.end(EndReason::MaxDuration, ctx);
        });
        // A socket actor that died without telling us (it stopped while
        // attaching, or a parked session that stopped before its adoption)
        // must not leave the call open and silent.
        ctx.run_interval(LIVENESS_INTERVAL, |act, ctx| {
            if act.phase.is_ending() {
                return;
            }
            if !act.twilio.connected() {
                act.on_socket_lost(ctx);
                return;
            }
            if act.realtime.as_ref().is_some_and(|rt| !rt.connected()) {
                // Its own `Closed` report, if any, belongs to a generation we leave behind.
                act.generation += 1;
                act.on_upstream_closed("the connection's actor stopped".to_owned(), ctx);
            }
        });
    }
}

impl Handler<FromTwilio> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: FromTwilio, ctx: &mut Self::Context) {
        // A replaced socket is told to close first, so what still arrives is
        // (nearly always) the current socket's: it is alive.
        if matches!(
            msg,
            FromTwilio::Audio { .. } | FromTwilio::MarkPlayed { .. } | FromTwilio::Dtmf { .. }
        ) {
            self.last_inbound = Instant::now();
        }
        match msg {
            // After `end_call`, or once the call is ending, the caller is not
            // listened to: no new answer may start.
            FromTwilio::Audio { .. } if self.end_after_playback || self.phase.is_ending() => {}
            FromTwilio::Audio { payload } => match &self.realtime {
                Some(rt) if self.realtime_ready => rt.do_send(ToRealtime::Audio { payload }),
                // Not configured yet (or reconnecting): held, bounded.
                _ => self.held.push(payload),
            },
            FromTwilio::MarkPlayed { name } => {
                if let Some(mark) = Playback::parse_mark(&name) {
                    self.playback.mark_played(mark);
                }
                self.finish_if_said_goodbye(ctx);
            }
            // Which key was pressed is the caller's secret (a PIN, a card
            // number): the line says that one was, never which.
            FromTwilio::Dtmf { .. } => {
                log::info!(
                    "{} call_sid={} tenant={}",
                    events::CALL_DTMF,
                    self.call_sid,
                    self.tenant_id
                );
            }
            FromTwilio::Stopped { socket } if socket == self.socket => {
                self.end(EndReason::TwilioStopped, ctx)
            }
            FromTwilio::SocketClosed { socket } if socket == self.socket => {
                self.on_socket_lost(ctx)
            }
            // From a socket that was replaced: not this call's end.
            FromTwilio::Stopped { .. } | FromTwilio::SocketClosed { .. } => {}
        }
    }
}

impl Handler<FromRealtime> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: FromRealtime, ctx: &mut Self::Context) {
        // Drops are this call's whichever connection had them.
        if let RealtimeEvent::AudioDropped { dropped } = msg.event {
            self.on_upstream_dropped(dropped);
            return;
        }
        // A replaced connection's late events are not this conversation's.
        if msg.generation != self.generation {
            return;
        }
        if !self.phase.is_ending() {
            self.on_realtime(msg.event, ctx);
            return;
        }
        // Ending: only the last transcripts still count (see `end`).
        match msg.event {
            RealtimeEvent::UserTranscript { item_id, text } => {
                self.record(Role::User, Some(item_id), &text)
            }
            RealtimeEvent::AgentTranscript { text } => self.record(Role::Assistant, None, &text),
            _ => {}
        }
    }
}

impl Handler<CallCommand> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallCommand, ctx: &mut Self::Context) {
        match msg {
            CallCommand::End { reason } => self.end(reason, ctx),
            CallCommand::Transferred { to } => {
                if !self.phase.is_ending() {
                    self.transferred_to = Some(to);
                    self.phase = CallPhase::Transferring;
                }
            }
        }
    }
}

impl Handler<GetCallStats> for CallActor {
    type Result = MessageResult<GetCallStats>;

    fn handle(&mut self, _msg: GetCallStats, _ctx: &mut Self::Context) -> Self::Result {
        let held = self.held.drop_counts();
        MessageResult(CallStats {
            agent_ready: self.realtime_ready,
            held_frames: self.held.frames(),
            held_bytes: self.held.bytes(),
            held_ms: self.held.ms(),
            held_dropped: held.total(),
            held_drop_reports: held.reports(),
            agent_in_flight_bytes: self.playback.in_flight_bytes(),
            agent_dropped: self.agent_drops.total(),
            agent_drop_reports: self.agent_drops.reports(),
            upstream_dropped: self.upstream_drops,
            upstream_drop_reports: self.upstream_drop_reports,
        })
    }
}

impl Handler<HandOver> for CallActor {
    type Result = Result<(), HandOverRefused>;

    fn handle(&mut self, msg: HandOver, _ctx: &mut Self::Context) -> Self::Result {
        self.hand_over(msg)
    }
}
