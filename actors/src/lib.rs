//! callvisor's actor system and the wire protocols its actors speak.
//!
//! ```text
//! Twilio ──ws──> TwilioStreamActor ──FromTwilio──> CallActor ──ToRealtime──> RealtimeActor ──ws──> OpenAI
//!        <─────                   <──ToTwilio────           <─FromRealtime──               <─────
//!                                                     │
//!                      CallSupervisor ────────────────┤ starts (on the socket's thread), replaces, drains
//!                      PersistenceActor <─────────────┘ transcript segments, batched
//! ```
//!
//! Who supervises whom, in OTP's words:
//! - **CallSupervisor** (one per process): `simple_one_for_one` over
//!   *temporary* CallActors; a call is never restarted.
//! - **CallActor**: a work unit that shuts down when its significant child, the
//!   Twilio socket, ends; its **RealtimeActor** is *transient*, restarted
//!   within a [`call::restart::RestartBudget`], then the caller hears an apology.
//! - **PersistenceActor**: a *permanent* singleton on its own arbiter.
//! - **PhonePoolActor**: a *permanent* singleton on its own arbiter; its
//!   truth is the database (leases), so a restart loses nothing but renewals.
//!
//! This crate knows nothing of HTTP routes or the database: the service
//! implements the traits in [`ports`] and wires them in.

pub mod call;
pub mod error_chain;
pub mod events;
pub mod ids;
pub mod persistence;
pub mod phone_pool;
pub mod pool_ports;
pub mod ports;
pub mod realtime;
pub mod redact;
pub mod supervisor;
pub mod tls;
pub mod twilio_stream;
