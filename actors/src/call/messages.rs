//! What a call's actors say to each other. Each message is an enum of
//! named-field variants, one enum per direction, so each actor exposes a
//! single `Recipient` per peer: commands are verbs, reports past events.

use actix::prelude::*;
use bytestring::ByteString;

use super::audio_bounds::Dropped;
use crate::ids::StreamSid;
use crate::ports::EndReason;

/// Identifies one Twilio socket, so a call replaced by a newer socket ignores
/// the old one's last words.
pub type SocketId = u64;

/// Reports from the Twilio socket to its call.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum FromTwilio {
    /// 20 ms of caller audio: base64 μ-law, a slice of the received frame (not a copy).
    Audio {
        /// The base64 text as Twilio sent it.
        payload: ByteString,
    },
    /// Twilio played (or cleared) everything queued before this mark.
    MarkPlayed {
        /// The mark's name as we sent it.
        name: ByteString,
    },
    /// The caller pressed a key.
    Dtmf {
        /// The key.
        digit: String,
    },
    /// Twilio sent `stop`: the call is over or was redirected.
    Stopped {
        /// Which socket.
        socket: SocketId,
    },
    /// The socket closed (after `stop`, or lost without one).
    SocketClosed {
        /// Which socket.
        socket: SocketId,
    },
}

/// Commands from a call to its Twilio socket.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum ToTwilio {
    /// Play this agent audio, then send mark `m<mark>` (both in one flush).
    Audio {
        /// Base64 μ-law, forwarded untouched.
        payload: ByteString,
        /// The mark number to send after it.
        mark: u64,
    },
    /// Drop whatever is queued and unplayed (barge-in).
    Clear,
    /// Close the socket; the call is over on our side.
    Close,
}

/// Reports from a Realtime connection to its call. `generation` tells events
/// of a replaced connection from the current one's.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FromRealtime {
    /// Which connection of this call (1 for the first, +1 per reconnect).
    pub generation: u32,
    /// What happened.
    pub event: RealtimeEvent,
}

/// What a Realtime connection reports.
#[derive(Debug)]
pub enum RealtimeEvent {
    /// `session.updated`: configured; caller audio now flows.
    Ready,
    /// A chunk of the agent's answer.
    AgentAudio {
        /// The assistant item it belongs to.
        item_id: ByteString,
        /// Base64 μ-law, a slice of the received frame.
        payload: ByteString,
    },
    /// The caller started speaking (server VAD); `item_id` will hold the words.
    SpeechStarted {
        /// The user item.
        item_id: ByteString,
    },
    /// The caller's words, transcribed (possibly after the agent already answered).
    UserTranscript {
        /// The user item they belong to.
        item_id: ByteString,
        /// The text.
        text: String,
    },
    /// The agent's words, transcribed.
    AgentTranscript {
        /// The text.
        text: String,
    },
    /// The agent called a tool.
    ToolCall {
        /// Echoed back with the output.
        call_id: String,
        /// Which tool.
        name: String,
        /// JSON object as text.
        arguments: String,
    },
    /// The current response is complete (`response.done`).
    ResponseDone,
    /// The API reported an error event (the session goes on).
    Error {
        /// The API's message.
        message: String,
    },
    /// Caller audio could not be written upstream (the connection's writer
    /// was backed up past its bound): one report per run of drops, when it ends.
    AudioDropped {
        /// What the run dropped.
        dropped: Dropped,
    },
    /// The connection failed to open or dropped; not sent when we closed it.
    Closed {
        /// Why, for the log.
        reason: String,
    },
}

/// Commands from a call to its Realtime connection.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum ToRealtime {
    /// Caller audio for `input_audio_buffer.append` (held until the session is configured).
    Audio {
        /// Base64 μ-law, forwarded untouched.
        payload: ByteString,
    },
    /// The caller heard only `audio_end_ms` of `item_id`.
    Truncate {
        /// The assistant item.
        item_id: ByteString,
        /// Milliseconds heard.
        audio_end_ms: u64,
    },
    /// A tool's result; `respond` asks the agent to go on speaking.
    ToolOutput {
        /// From the tool call.
        call_id: String,
        /// JSON text.
        output: String,
        /// Send `response.create` after it.
        respond: bool,
    },
    /// Tell the agent something as context (e.g. a tool's result that came
    /// back after the connection it was asked on was replaced).
    Note {
        /// The text, given as a user message.
        text: String,
        /// Send `response.create` after it.
        respond: bool,
    },
    /// Close the connection (the call is ending); no `Closed` report follows.
    Close,
    /// A call's actor takes over a pre-opened session: events go to `owner`
    /// from now on, starting with those held while parked.
    Adopt {
        /// The call's actor.
        owner: Recipient<FromRealtime>,
        /// Its generation for this connection.
        generation: u32,
    },
}

/// Who a Twilio socket says it is in its `start`: a hand-over must say the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIdentity {
    /// `start.streamSid`.
    pub stream_sid: StreamSid,
    /// `start.accountSid`, when sent.
    pub account_sid: Option<String>,
}

/// A second Twilio socket for a live call asks to carry it (from the
/// supervisor). Granted only as Twilio could ask: same streamSid and
/// accountSid as the current socket, and the current socket closed or silent.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), HandOverRefused>")]
pub struct HandOver {
    /// The new socket's recipient.
    pub twilio: Recipient<ToTwilio>,
    /// The new socket's id.
    pub socket: SocketId,
    /// What the new socket's `start` said.
    pub identity: StreamIdentity,
}

/// Why a hand-over was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandOverRefused {
    /// The current socket is alive, or the new one is another stream.
    #[error("the call is carried by another stream")]
    InUse,
    /// The call is ending.
    #[error("the call has ended")]
    Ending,
}

/// Commands from the supervisor to a call.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum CallCommand {
    /// End the call now.
    End {
        /// Why.
        reason: EndReason,
    },
    /// The call was handed to a human by someone else (an operator through
    /// the admin API): stop the agent, record where it went.
    Transferred {
        /// The number dialled.
        to: String,
    },
}

/// Asks a call for its audio counters (tests, diagnostics).
#[derive(Debug, Message)]
#[rtype(result = "CallStats")]
pub struct GetCallStats;

/// A call's audio counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// The current agent connection's session is configured: caller audio flows.
    pub agent_ready: bool,
    /// Caller frames held until the agent's session is ready.
    pub held_frames: usize,
    /// Their base64 bytes.
    pub held_bytes: usize,
    /// Their milliseconds.
    pub held_ms: u64,
    /// Caller audio dropped from the hold (too much, too old).
    pub held_dropped: Dropped,
    /// `AUDIO_DROPPED` lines written for the hold.
    pub held_drop_reports: u64,
    /// Agent audio sent to Twilio and not yet played, in base64 bytes.
    pub agent_in_flight_bytes: usize,
    /// Agent audio dropped because too much was in flight.
    pub agent_dropped: Dropped,
    /// `AUDIO_DROPPED` lines written for agent audio.
    pub agent_drop_reports: u64,
    /// Caller audio the Realtime writer dropped, as reported to the call.
    pub upstream_dropped: Dropped,
    /// `AUDIO_DROPPED` lines written for those reports.
    pub upstream_drop_reports: u64,
}

/// Asks a Realtime connection for its writer's counters (tests, diagnostics).
#[derive(Debug, Message)]
#[rtype(result = "UpstreamStats")]
pub struct GetUpstreamStats;

/// A Realtime connection's writer counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamStats {
    /// Bytes queued in the writer, not yet handed to the socket.
    pub queued_bytes: usize,
    /// Caller audio appends written.
    pub appends: u64,
    /// Caller audio dropped (backlog over its bound, or before `session.updated`).
    pub dropped: Dropped,
    /// Runs of drops reported to the call.
    pub drop_reports: u64,
}
