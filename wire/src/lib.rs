//! The wire formats callvisor speaks and the signatures that guard them,
//! with no I/O: the engine (`callvisor-actors`, `callvisor`) and the
//! stand-ins (`callvisor-standins`) both build on it, so neither has to
//! depend on the other to agree on a byte.
//!
//! - [`protocol`]: Twilio Media Streams and OpenAI Realtime frames, parsed
//!   borrowed in one pass and written into reused buffers (the audio path).
//! - [`signing`]: Twilio's `X-Twilio-Signature`, the media-stream token,
//!   Standard Webhooks (OpenAI) and `Stripe-Signature`; constant-time compares.
//! - [`twiml`]: the TwiML answers the engine writes (every value XML-escaped).

pub mod protocol;
pub mod signing;
pub mod twiml;
