//! What the actors need from the outside world, as small traits the service
//! crate implements (with PostgreSQL, Twilio REST, ...). The actors never name
//! a database or HTTP type; tests implement these with in-memory probes.
//!
//! Implementations are shared by every worker thread (`Send + Sync`), while the
//! futures they return run on the calling actor's thread (`LocalBoxFuture`), so
//! they may use per-thread clients such as awc's.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;

pub use crate::call::audio_bounds::HoldLimits;
use crate::ids::{CallSid, StreamSid, TenantId};
use callvisor_wire::protocol::realtime::SessionConfig;
pub use callvisor_wire::signing::stream_token::TokenError;

/// A future returned by a port.
pub type PortFuture<T> = LocalBoxFuture<'static, T>;

/// A port's failure: what the port was doing (never a secret), and the cause
/// as the error's `source()`, logged with its chain where the failure is handled.
///
/// The cause must be `Send + Sync` although port futures are local: a port's
/// error travels on in actor answers ([`StreamRefusal`], the pool's
/// `PoolError`) that cross threads. Implementations convert non-`Send` errors
/// (awc's) at their edge into their own `Send` error types. The cause sits in
/// an `Arc` so the answers that carry it stay `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}")]
pub struct PortError {
    what: Cow<'static, str>,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PortError {
    /// A failure with no underlying error (the port's own refusal).
    pub fn new(what: impl Into<Cow<'static, str>>) -> Self {
        Self {
            what: what.into(),
            source: None,
        }
    }

    /// A failure caused by `source`.
    pub fn with_source(
        what: impl Into<Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            what: what.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// What failed, without the cause.
    pub fn what(&self) -> &str {
        &self.what
    }
}

/// Equal when they say the same (the causes compared by their text): for tests
/// that compare actor answers.
impl PartialEq for PortError {
    fn eq(&self, other: &Self) -> bool {
        self.what == other.what
            && self.source.as_ref().map(ToString::to_string)
                == other.source.as_ref().map(ToString::to_string)
    }
}

impl Eq for PortError {}

/// Everything a call needs from its tenant's configuration.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// The call.
    pub call_sid: CallSid,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The customer on the line (E.164 when known): who called, or on an
    /// outbound call who was called (not our pool number).
    pub caller: Option<String>,
    /// Our number on the call: the one called, or the pool number called from.
    pub recipient: Option<String>,
    /// The Realtime session: prompt, greeting, voice, language, tools.
    pub session: SessionConfig,
    /// Where `transfer_to_human` sends the caller; `None` means the agent says it cannot.
    pub handoff_number: Option<String>,
    /// The number a transfer shows: one of ours (the number called, or the pool
    /// number an outbound call went out on).
    pub caller_id: Option<String>,
    /// What the caller hears if the agent cannot be reached, in their language.
    pub apology: String,
}

/// Who said a transcript segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The caller.
    User,
    /// The agent.
    Assistant,
}

impl Role {
    /// The name stored in `transcript_segments.role` and `call_logs.transcript`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One thing said during a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The call.
    pub call_sid: CallSid,
    /// Position in the call's transcript, from 0.
    pub seq: u32,
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub text: String,
    /// When the transcript of it was complete.
    pub at: DateTime<Utc>,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Twilio sent `stop` (the caller hung up or the call was redirected).
    TwilioStopped,
    /// The media socket closed without `stop`.
    SocketLost,
    /// The agent called `end_call`.
    AgentEnded,
    /// An operator hung up (admin API) or a final status callback arrived.
    HungUp,
    /// The call was handed to a human.
    Transferred,
    /// The agent could not be reached; the caller heard an apology.
    UpstreamFailed,
    /// The instance was shutting down and the drain time ran out.
    Shutdown,
    /// The call's configuration could not be loaded.
    SetupFailed,
    /// The call reached the longest a call may last ([`CallTuning::max_call_duration`]).
    MaxDuration,
}

impl EndReason {
    /// The name stored in `call_logs.end_reason` and logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TwilioStopped => "twilio_stop",
            Self::SocketLost => "socket_lost",
            Self::AgentEnded => "agent_ended",
            Self::HungUp => "hung_up",
            Self::Transferred => "transferred",
            Self::UpstreamFailed => "upstream_failed",
            Self::Shutdown => "shutdown",
            Self::SetupFailed => "setup_failed",
            Self::MaxDuration => "max_duration",
        }
    }
}

/// A finished call, handed to [`CallStore::finish_call`] once.
#[derive(Debug, Clone)]
pub struct CallEnd {
    /// The call.
    pub call_sid: CallSid,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// When the media stream started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Why.
    pub reason: EndReason,
    /// Where the call was transferred, if it was.
    pub transferred_to: Option<String>,
    /// Segments said, in order (also already in the transcript sink).
    pub segments: usize,
}

/// Call records: the plan when a call starts, the record when it ends.
pub trait CallStore: Send + Sync {
    /// Loads what a call needs. Fails for an unknown or unsubscribed tenant.
    fn load_plan(
        &self,
        call_sid: &CallSid,
        tenant: &TenantId,
    ) -> PortFuture<Result<CallPlan, PortError>>;
    /// Writes the end of a call (idempotent: a second call for one CallSid changes nothing).
    fn finish_call(&self, end: CallEnd) -> PortFuture<Result<(), PortError>>;
}

/// Where transcript segments go, a batch at a time.
pub trait TranscriptSink: Send + Sync {
    /// Writes a batch in one statement. Idempotent per (call, seq), so a retry is safe.
    fn write(&self, batch: Vec<Segment>) -> PortFuture<Result<(), PortError>>;
}

/// A tool call from the agent that the service carries out (reservations, ...).
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// The call it came from.
    pub call_sid: CallSid,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The customer's number, when known ([`CallPlan::caller`]).
    pub caller: Option<String>,
    /// The tool's name.
    pub name: String,
    /// Its arguments, a JSON object as text (as the model sent it).
    pub arguments: String,
}

/// Runs data tools; call-control tools (`transfer_to_human`, `end_call`) are the CallActor's.
pub trait ToolRunner: Send + Sync {
    /// Runs a tool; the result is the JSON text returned to the model.
    fn run(&self, call: ToolCall) -> PortFuture<String>;
}

/// Acts on the live phone call through the carrier (Twilio REST).
pub trait CallControl: Send + Sync {
    /// Replaces the call's instructions with a spoken message (in `language`,
    /// a BCP 47 tag, when the carrier has a voice for it) and a hang-up.
    fn say_and_hang_up(
        &self,
        call_sid: &CallSid,
        text: &str,
        language: Option<&str>,
    ) -> PortFuture<Result<(), PortError>>;
    /// Redirects the call to a human (`<Dial>`), showing `caller_id`.
    fn transfer(
        &self,
        call_sid: &CallSid,
        to: &str,
        caller_id: Option<&str>,
    ) -> PortFuture<Result<(), PortError>>;
    /// Hangs the call up.
    fn hang_up(&self, call_sid: &CallSid) -> PortFuture<Result<(), PortError>>;
}

/// Checks a media stream's token before anything is opened for it.
pub trait StreamAuthority: Send + Sync {
    /// Ok when `token` was issued for this CallSid and tenant and has not expired.
    fn check(&self, token: &str, call_sid: &str, tenant_id: &str) -> Result<(), TokenError>;
    /// After the token passed: may this stream carry its call? Answers no for a
    /// call that has ended (on any instance) and for a call whose record names
    /// another live stream, or names this stream live on another instance.
    /// Records the stream on the call otherwise. Nothing is opened upstream
    /// before this answers yes.
    fn claim(&self, claim: StreamClaim) -> PortFuture<Result<(), StreamRefusal>>;
}

/// A media stream asking for its call (see [`StreamAuthority::claim`]).
#[derive(Debug, Clone)]
pub struct StreamClaim {
    /// The call (checked by the token).
    pub call_sid: CallSid,
    /// Its tenant (checked by the token).
    pub tenant_id: TenantId,
    /// Twilio's id of this stream.
    pub stream_sid: StreamSid,
}

/// Why a stream may not carry its call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefusal {
    /// The call has ended: its token opens nothing any more.
    #[error("the call has ended")]
    CallEnded,
    /// The call is carried by another live stream (or on another instance).
    #[error("the call is carried by another stream")]
    InUse,
    /// No record of this call for this tenant.
    #[error("no record of this call")]
    NoRecord,
    /// The records could not be read; refused rather than guessed.
    #[error("call records unavailable")]
    Unavailable(#[source] PortError),
}

impl StreamRefusal {
    /// The `reason=` logged and sent as the close frame's description.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::CallEnded => "call_ended",
            Self::InUse => "stream_in_use",
            Self::NoRecord => "no_call_record",
            Self::Unavailable(_) => "records_unavailable",
        }
    }
}

/// Where the Realtime API is and how to reach it.
#[derive(Clone)]
pub struct RealtimeEndpoint {
    /// `wss://…/v1/realtime` (the model is added as `?model=`).
    pub url: String,
    /// `Bearer` credential.
    pub api_key: Arc<str>,
}

impl std::fmt::Debug for RealtimeEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealtimeEndpoint")
            .field("url", &self.url)
            .field("api_key", &"[REDACTED]")
            .finish()
    }
}

/// Everything a call's actors are given at start: the ports and the settings.
#[derive(Clone)]
pub struct CallDeps {
    /// Call records.
    pub store: Arc<dyn CallStore>,
    /// Data tools.
    pub tools: Arc<dyn ToolRunner>,
    /// The carrier.
    pub control: Arc<dyn CallControl>,
    /// Stream tokens.
    pub authority: Arc<dyn StreamAuthority>,
    /// The Realtime API.
    pub realtime: RealtimeEndpoint,
    /// Tunables.
    pub tuning: CallTuning,
}

/// Tunables of a call (configuration, with sane defaults).
#[derive(Debug, Clone)]
pub struct CallTuning {
    /// Reconnects allowed within `reconnect_window`.
    pub max_reconnects: u32,
    /// The window of the reconnect budget.
    pub reconnect_window: std::time::Duration,
    /// How long one Realtime connection attempt may take.
    pub connect_timeout: std::time::Duration,
    /// A Twilio socket silent this long is dead (Twilio sends media every 20 ms).
    pub twilio_idle_timeout: std::time::Duration,
    /// Caller audio the call holds until the agent's session is configured
    /// (`session.updated`), also while it reconnects: bytes and milliseconds.
    pub held_audio: HoldLimits,
    /// Agent audio sent to Twilio and not yet played (acknowledged by its
    /// mark), in base64 bytes; past it, agent audio is dropped.
    pub max_agent_audio_bytes: usize,
    /// Bytes waiting in a Realtime connection's writer; past it, caller audio
    /// is dropped (control events still go).
    pub max_upstream_queued_bytes: usize,
    /// The longest a call may last: then it ends (`max_duration`).
    pub max_call_duration: std::time::Duration,
    /// A call whose socket was lost without `stop` waits this long for
    /// Twilio's new socket (a hand-over) before it ends.
    pub handover_grace: std::time::Duration,
    /// A new socket may take over a call whose current socket is still open
    /// only when no frame came from it for this long.
    pub handover_silence: std::time::Duration,
}

impl Default for CallTuning {
    fn default() -> Self {
        Self {
            max_reconnects: 3,
            reconnect_window: std::time::Duration::from_secs(60),
            connect_timeout: std::time::Duration::from_secs(5),
            twilio_idle_timeout: std::time::Duration::from_secs(10),
            held_audio: HoldLimits {
                max_bytes: 24 * 1024,
                max_ms: 2_000,
            },
            max_agent_audio_bytes: 640 * 1024,
            max_upstream_queued_bytes: 64 * 1024,
            max_call_duration: std::time::Duration::from_secs(4 * 3600),
            handover_grace: std::time::Duration::from_secs(2),
            handover_silence: std::time::Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Chain;

    #[test]
    fn a_port_error_keeps_its_cause_through_a_refusal() {
        let io = std::io::Error::other("connection reset");
        let refusal = StreamRefusal::Unavailable(PortError::with_source("database", io));
        assert_eq!(
            Chain(&refusal).to_string(),
            "call records unavailable: database: connection reset"
        );
        assert!(std::error::Error::source(&PortError::new("refused")).is_none());
    }
}
