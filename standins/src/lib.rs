//! Local stand-ins for the vendors callvisor talks to, following their documented wire
//! formats, so that tests, the demo and the benchmark run without OpenAI or Twilio.
//!
//! | stand-in | plays | callvisor setting |
//! | --- | --- | --- |
//! | [`RealtimeServer`] | OpenAI Realtime GA WebSocket | `OPENAI_REALTIME_URL` = `ws://127.0.0.1:P/v1/realtime` |
//! | [`OpenAiRest`] | OpenAI HTTP (summaries, SIP call controls) | `OPENAI_BASE_URL` = `http://127.0.0.1:P/v1` |
//! | [`TwilioRest`] | Twilio REST (call updates, calls, numbers) | `TWILIO_API_BASE` = `http://127.0.0.1:P/2010-04-01` |
//! | [`place_call`] / [`CallerSession`] | Twilio placing a call: webhook, TwiML, media stream | points at callvisor |
//!
//! Every server binds `127.0.0.1:0` by default, runs on the caller's actix System
//! (`#[actix_web::test]`, `#[actix_web::main]`), records what it receives for assertions,
//! and stops when its handle is dropped or `.stop().await` is called. [`StandIns::start`]
//! starts the three servers together.
//!
//! # How faithful each one is
//!
//! **Realtime** ([`realtime_server`], [`realtime_script`]). Strict: `Authorization: Bearer`
//! required (401), `model` or `call_id` query required (400), GA `session.update` only
//! (`session.type: "realtime"` required; beta fields such as `input_audio_format` or
//! `temperature` are refused with an `error` event, as the GA server does); unknown client
//! event types, malformed JSON, non-base64 audio, a `response.create` while a response is
//! active, a `response.cancel` with none, and a truncate of an unknown item or beyond the
//! audio actually sent all get `error` events. Caller transcripts are only sent once input
//! transcription was configured. It records whether an `OpenAI-Beta` header was sent and
//! how many appends arrived before the session was configured (the real API would misread
//! them as 24 kHz PCM) rather than refusing them. Lenient / simplified: no VAD (caller turns
//! are counted in bytes of appended audio), fixed tone audio, deterministic fake token
//! usage, no session expiry, no rate limits, `session.updated` echoes only the session's
//! identity, not the merged configuration.
//!
//! **OpenAI REST** ([`openai_rest`]). Strict: Bearer key, JSON body with `model`,
//! `messages` (with valid roles) or `input`; errors in OpenAI's
//! `{"error":{"message","type","param","code"}}` shape. Lenient: any model name, answers are
//! a deterministic "summary" (a prefix + the start of the user's text), no streaming.
//!
//! **Twilio REST** ([`twilio_rest`]). Strict: Basic auth with the configured account,
//! account in the path, form bodies, `.json` paths, required parameters, `Status` values,
//! TwiML in `Twiml` well-formed, no redirect of a finished call. Lenient: updates of
//! unknown (inbound) calls are accepted, no status callbacks are sent, created calls are
//! not dialled, nothing is rate-limited.
//!
//! **Simulated caller** ([`twilio_caller`]). Faithful to the webhook (parameters,
//! signature over a configurable public URL, `TwilioProxy` user agent), to the media-stream
//! message shapes and sequence numbers, to real-time pacing and to playback/mark/`clear`
//! semantics; it ignores engine messages for another `streamSid`, as Twilio does. It warns
//! rather than fails on what Twilio would refuse (non-`wss` stream URL — tests use `ws://` —,
//! query strings on the stream URL, odd-sized media, a non-XML content type). It does not
//! speak `<Say>`, follow `<Redirect>`/`action` URLs or run `<Start><Stream>` forks.

pub mod audio;
#[cfg(test)]
mod caller_tests;
pub mod form;
pub mod openai_rest;
pub mod playback;
pub mod realtime_script;
pub mod realtime_server;
mod server;
pub mod sip_driver;
pub mod twilio_caller;
pub mod twilio_rest;
pub mod twiml;

use std::io;

pub use openai_rest::{OpenAiRequest, OpenAiRest, OpenAiRestConfig};
pub use realtime_server::{
    RealtimeConfig, RealtimeMode, RealtimeServer, ScriptConfig, SessionCommand, SessionRecord,
    SessionTarget,
};
pub use server::{any_local_port, new_sid, wait_until};
pub use sip_driver::{Delivery, SipDriver};
pub use twilio_caller::{
    place_call, CallEnd, CallReport, CallerConfig, CallerError, CallerSession, CloseReason,
    SignatureMode,
};
pub use twilio_rest::{TwilioRequest, TwilioRest, TwilioRestConfig};

/// Configuration of all three servers.
#[derive(Debug, Clone, Default)]
pub struct StandInsConfig {
    /// The Realtime WebSocket stand-in.
    pub realtime: RealtimeConfig,
    /// The OpenAI REST stand-in.
    pub openai: OpenAiRestConfig,
    /// The Twilio REST stand-in.
    pub twilio: TwilioRestConfig,
}

/// The Realtime, OpenAI REST and Twilio REST stand-ins, running together.
#[derive(Debug)]
pub struct StandIns {
    /// OpenAI Realtime (WebSocket).
    pub realtime: RealtimeServer,
    /// OpenAI REST.
    pub openai: OpenAiRest,
    /// Twilio REST.
    pub twilio: TwilioRest,
}

impl StandIns {
    /// Starts all three on free loopback ports with default settings.
    ///
    /// # Errors
    /// A server could not bind, or there is no actix System on this thread.
    pub async fn start() -> io::Result<StandIns> {
        Self::start_with(StandInsConfig::default()).await
    }

    /// Starts all three with `config`.
    ///
    /// # Errors
    /// As [`StandIns::start`].
    pub async fn start_with(config: StandInsConfig) -> io::Result<StandIns> {
        Ok(StandIns {
            realtime: RealtimeServer::start(config.realtime)?,
            openai: OpenAiRest::start(config.openai)?,
            twilio: TwilioRest::start(config.twilio)?,
        })
    }

    /// `OPENAI_REALTIME_URL`: `ws://127.0.0.1:P/v1/realtime`.
    #[must_use]
    pub fn openai_realtime_url(&self) -> String {
        self.realtime.url()
    }

    /// `OPENAI_BASE_URL`: `http://127.0.0.1:P/v1`.
    #[must_use]
    pub fn openai_base_url(&self) -> String {
        self.openai.base_url()
    }

    /// `TWILIO_API_BASE`: `http://127.0.0.1:P/2010-04-01`.
    #[must_use]
    pub fn twilio_api_base(&self) -> String {
        self.twilio.base_url()
    }

    /// The three settings as (environment variable, value) pairs.
    #[must_use]
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OPENAI_REALTIME_URL", self.openai_realtime_url()),
            ("OPENAI_BASE_URL", self.openai_base_url()),
            ("TWILIO_API_BASE", self.twilio_api_base()),
        ]
    }

    /// Stops all three and waits for them.
    pub async fn stop(self) {
        self.realtime.stop().await;
        self.openai.stop().await;
        self.twilio.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn all_three_start_with_the_url_shapes_callvisor_wants() {
        let standins = StandIns::start().await.unwrap();
        let realtime = standins.openai_realtime_url();
        assert!(
            realtime.starts_with("ws://127.0.0.1:") && realtime.ends_with("/v1/realtime"),
            "{realtime}"
        );
        let openai = standins.openai_base_url();
        assert!(
            openai.starts_with("http://127.0.0.1:") && openai.ends_with("/v1"),
            "{openai}"
        );
        let twilio = standins.twilio_api_base();
        assert!(
            twilio.starts_with("http://127.0.0.1:") && twilio.ends_with("/2010-04-01"),
            "{twilio}"
        );
        assert_eq!(standins.env().len(), 3);
        standins.stop().await;
    }
}
