//! What the CallSupervisor answers to.

use std::time::Duration;

use actix::prelude::*;

use crate::call::messages::{FromTwilio, SocketId, ToTwilio};
use crate::ids::{CallSid, StreamSid, TenantId};
use crate::ports::EndReason;

/// Why a stream could not be attached to a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The instance is shutting down and takes no new calls.
    #[error("instance is draining")]
    Draining,
    /// The call is live on another socket that is neither closed nor silent,
    /// or the new socket is another stream (see [`crate::call::messages::HandOver`]).
    #[error("the call is carried by another stream")]
    InUse,
    /// The call is ending or ended.
    #[error("the call has ended")]
    Ended,
}

impl AttachError {
    /// The `reason=` logged and sent as the close frame's description.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Draining => "draining",
            Self::InUse => "stream_in_use",
            Self::Ended => "call_ended",
        }
    }
}

/// A Twilio socket passed its token check and wants its call (from a TwilioStreamActor).
/// A new call's actor is started on `arbiter`, the socket's own worker thread.
#[derive(Debug, Message)]
#[rtype(result = "Result<Recipient<FromTwilio>, AttachError>")]
pub struct AttachStream {
    /// The call.
    pub call_sid: CallSid,
    /// Its tenant (checked by the token).
    pub tenant_id: TenantId,
    /// Twilio's stream.
    pub stream_sid: StreamSid,
    /// `start.accountSid`, when sent.
    pub account_sid: Option<String>,
    /// Where the call writes audio, marks and clears.
    pub twilio: Recipient<ToTwilio>,
    /// The socket's id.
    pub socket: SocketId,
    /// The socket's worker thread.
    pub arbiter: ArbiterHandle,
}

/// A call's actor finished its end-of-call sequence (from a CallActor).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CallEnded {
    /// The call.
    pub call_sid: CallSid,
    /// Which actor instance (a replaced registration must not remove its successor).
    pub actor_id: u64,
}

/// The live calls of this instance.
#[derive(Debug, Message)]
#[rtype(result = "Vec<LiveCall>")]
pub struct ListCalls;

/// One live call.
#[derive(Debug, Clone)]
pub struct LiveCall {
    /// The call.
    pub call_sid: CallSid,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Seconds since its stream started.
    pub seconds: u64,
}

/// End one call now (admin hang-up, final status callback). Answers whether it was live here.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct HangUp {
    /// The call.
    pub call_sid: CallSid,
    /// Why.
    pub reason: EndReason,
}

/// An operator handed a call to a human through the carrier; the call, if
/// live here, records it. Answers whether it was live here.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Transferred {
    /// The call.
    pub call_sid: CallSid,
    /// The number dialled.
    pub to: String,
}

/// Stop taking calls; let live ones go on for `grace`, then end them; resolves
/// when every call has finished its end-of-call sequence (or `grace` plus
/// `finish_timeout` passed).
#[derive(Debug, Message)]
#[rtype(result = "DrainReport")]
pub struct DrainAll {
    /// How long live calls may go on.
    pub grace: Duration,
    /// How long ended calls get to write their records.
    pub finish_timeout: Duration,
}

/// How a drain went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Calls live when the drain began.
    pub live_at_start: usize,
    /// Calls ended by the drain deadline rather than by themselves.
    pub ended_by_deadline: usize,
    /// Calls still registered when the drain gave up.
    pub left: usize,
}
