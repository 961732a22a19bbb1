//! Stable event names: the first word of every log line, the monitoring feed's
//! vocabulary. Operators alert on these strings, so they never change meaning;
//! new ones are added, old ones are not renamed.

/// The service is starting (settings loaded).
pub const SERVICE_STARTING: &str = "SERVICE_STARTING";
/// The HTTP server is listening.
pub const SERVICE_LISTENING: &str = "SERVICE_LISTENING";
/// Start-up failed; the process exits.
pub const SERVICE_FAILED: &str = "SERVICE_FAILED";
/// Configuration is missing or malformed.
pub const CONFIG_INVALID: &str = "CONFIG_INVALID";
/// A check that production cannot skip is off (development only).
pub const SIGNATURE_CHECKS_OFF: &str = "SIGNATURE_CHECKS_OFF";
/// The database could not be reached (start-up retries, readiness).
pub const DB_UNAVAILABLE: &str = "DB_UNAVAILABLE";
/// An HTTP request was answered 500: the cause's chain is logged, never sent.
pub const HTTP_INTERNAL_ERROR: &str = "HTTP_INTERNAL_ERROR";
/// An HTTP request was answered 503 because a dependency failed (the cause's chain).
pub const HTTP_UNAVAILABLE: &str = "HTTP_UNAVAILABLE";
/// Migrations were applied.
pub const MIGRATIONS_APPLIED: &str = "MIGRATIONS_APPLIED";
/// A stop signal arrived; the instance stops taking calls.
pub const SHUTDOWN_STARTED: &str = "SHUTDOWN_STARTED";
/// Everything is flushed; the process exits.
pub const SHUTDOWN_COMPLETE: &str = "SHUTDOWN_COMPLETE";
/// Log lines were dropped because the log reader could not keep up (`count=`):
/// the service went on rather than wait for it.
pub const LOG_LINES_DROPPED: &str = "LOG_LINES_DROPPED";

// Calls.
/// A call's actor started (its stream was accepted).
pub const CALL_STARTED: &str = "CALL_STARTED";
/// A call's record is written.
pub const CALL_ENDED: &str = "CALL_ENDED";
/// A call reached `calls.max_call_seconds` and is being ended (`max_duration`).
pub const CALL_MAX_DURATION: &str = "CALL_MAX_DURATION";
/// A call nobody heart-beat any more (its instance died, Twilio's final status
/// never came) was finished from what the database holds.
pub const CALL_HEARTBEAT_LOST: &str = "CALL_HEARTBEAT_LOST";
/// The voice webhook refused a call (unknown number, unsubscribed, over limit, call already ended, bad signature).
pub const CALL_REJECTED: &str = "CALL_REJECTED";
/// A call's plan could not be loaded; the call ends.
pub const CALL_SETUP_FAILED: &str = "CALL_SETUP_FAILED";
/// A call's record could not be written after retries (the status callback will).
pub const CALL_FINISH_FAILED: &str = "CALL_FINISH_FAILED";
/// The caller pressed a key.
pub const CALL_DTMF: &str = "CALL_DTMF";
/// The caller heard the apology (the agent was unreachable).
pub const CALL_APOLOGY: &str = "CALL_APOLOGY";
/// The apology could not be requested.
pub const CALL_APOLOGY_FAILED: &str = "CALL_APOLOGY_FAILED";
/// The call was handed to a human.
pub const CALL_TRANSFERRED: &str = "CALL_TRANSFERRED";
/// A transfer was asked for and failed.
pub const CALL_TRANSFER_FAILED: &str = "CALL_TRANSFER_FAILED";
/// A transfer was asked for but the tenant has no hand-off number.
pub const TRANSFER_UNAVAILABLE: &str = "TRANSFER_UNAVAILABLE";
/// The agent called a tool.
pub const TOOL_CALLED: &str = "TOOL_CALLED";
/// The caller spoke over the agent: playback cleared, answer truncated.
pub const BARGE_IN: &str = "BARGE_IN";
/// Audio was dropped at a bound (`direction=held|agent|upstream`): one line
/// per run of drops, with its `frames=` and `bytes=`, never one per frame.
pub const AUDIO_DROPPED: &str = "AUDIO_DROPPED";

// The Twilio socket.
/// A media stream was refused (bad token, draining, ...); nothing opened upstream.
pub const STREAM_REJECTED: &str = "STREAM_REJECTED";
/// A second socket for a live call took it over (a hand-over: same
/// streamSid/accountSid, the first socket closed or silent).
pub const STREAM_REPLACED: &str = "STREAM_REPLACED";
/// The call records could not be read to admit a media stream; it was refused.
pub const STREAM_CLAIM_FAILED: &str = "STREAM_CLAIM_FAILED";
/// A pre-opened Realtime session was closed because its call's socket was refused.
pub const REALTIME_PREOPEN_DISCARDED: &str = "REALTIME_PREOPEN_DISCARDED";
/// A Twilio frame could not be parsed; skipped.
pub const TWILIO_FRAME_INVALID: &str = "TWILIO_FRAME_INVALID";
/// A Twilio socket went silent and was closed.
pub const TWILIO_IDLE_TIMEOUT: &str = "TWILIO_IDLE_TIMEOUT";

// The Realtime connection.
/// Connected to the Realtime API.
pub const REALTIME_CONNECTED: &str = "REALTIME_CONNECTED";
/// The session is configured; audio flows.
pub const REALTIME_READY: &str = "REALTIME_READY";
/// The connection failed or dropped.
pub const REALTIME_CLOSED: &str = "REALTIME_CLOSED";
/// Reconnecting within the restart budget.
pub const REALTIME_RECONNECTING: &str = "REALTIME_RECONNECTING";
/// A Realtime session was opened while the phone rang.
pub const REALTIME_PREOPENED: &str = "REALTIME_PREOPENED";
/// The call adopted its pre-opened session.
pub const REALTIME_ADOPTED: &str = "REALTIME_ADOPTED";
/// A pre-opened session was not adopted in time (the socket went elsewhere) and closed.
pub const REALTIME_PREOPEN_EXPIRED: &str = "REALTIME_PREOPEN_EXPIRED";
/// Over the restart budget: the call gives up on the agent.
pub const REALTIME_FAILED: &str = "REALTIME_FAILED";
/// The API sent an `error` event.
pub const REALTIME_ERROR: &str = "REALTIME_ERROR";
/// A Realtime event could not be parsed; skipped.
pub const REALTIME_EVENT_INVALID: &str = "REALTIME_EVENT_INVALID";

// Persistence and shutdown.
/// A transcript batch could not be written; it is kept and retried.
pub const PERSISTENCE_RETRY: &str = "PERSISTENCE_RETRY";
/// At shutdown the flush missed its deadline: what could not be written went
/// to a spill file (`segments=`, `calls=`, `path=`), replayed on next start.
pub const PERSISTENCE_SPILLED: &str = "PERSISTENCE_SPILLED";
/// Segments could be neither written nor spilled: they are lost (`segments=`, `calls=`).
pub const PERSISTENCE_LOST: &str = "PERSISTENCE_LOST";
/// A spill file was written to the database at start and removed.
pub const PERSISTENCE_SPILL_REPLAYED: &str = "PERSISTENCE_SPILL_REPLAYED";
/// A spill file could not be replayed; it is kept for the next start.
pub const PERSISTENCE_SPILL_REPLAY_FAILED: &str = "PERSISTENCE_SPILL_REPLAY_FAILED";
/// Draining began: no new calls.
pub const DRAIN_STARTED: &str = "DRAIN_STARTED";
/// Draining finished.
pub const DRAIN_FINISHED: &str = "DRAIN_FINISHED";

// Service-side events of the call path.
/// The voice webhook answered with a media stream.
pub const CALL_ANSWERED: &str = "CALL_ANSWERED";
/// A final status callback finished a call.
pub const CALL_STATUS: &str = "CALL_STATUS";
/// The agent took a reservation request.
pub const RESERVATION_REQUESTED: &str = "RESERVATION_REQUESTED";
/// A reservation request could not be stored.
pub const RESERVATION_FAILED: &str = "RESERVATION_FAILED";
/// A call's summary is stored.
pub const SUMMARY_WRITTEN: &str = "SUMMARY_WRITTEN";
/// A summary could not be made; it is retried.
pub const SUMMARY_FAILED: &str = "SUMMARY_FAILED";
/// A summary was given up: its call record is gone, or it failed on every attempt.
pub const SUMMARY_ABANDONED: &str = "SUMMARY_ABANDONED";
/// No STREAM_TOKEN_SECRET: a random one is used by this process (development and test only).
pub const STREAM_SECRET_GENERATED: &str = "STREAM_SECRET_GENERATED";

// The phone-number pool, campaigns and the admin API.
/// No number could be handed out (none free, no purchase possible).
pub const POOL_EXHAUSTED: &str = "POOL_EXHAUSTED";
/// A number was leased to a holder (an outbound call, an operator).
pub const NUMBER_ALLOCATED: &str = "NUMBER_ALLOCATED";
/// A leased number was given back.
pub const NUMBER_RELEASED: &str = "NUMBER_RELEASED";
/// A lease ran out without renewal (its instance died) and the number is free again.
pub const NUMBER_LEASE_EXPIRED: &str = "NUMBER_LEASE_EXPIRED";
/// This instance found one of its leases gone (released elsewhere or expired and taken).
pub const NUMBER_LEASE_GONE: &str = "NUMBER_LEASE_GONE";
/// A lease was held longer than allowed and is no longer renewed.
pub const NUMBER_LEASE_ABANDONED: &str = "NUMBER_LEASE_ABANDONED";
/// A number was bought through Twilio REST and added to the pool.
pub const NUMBER_BOUGHT: &str = "NUMBER_BOUGHT";
/// Buying a number failed.
pub const NUMBER_PURCHASE_FAILED: &str = "NUMBER_PURCHASE_FAILED";
/// The pool was topped up to its minimum of free numbers.
pub const POOL_TOPPED_UP: &str = "POOL_TOPPED_UP";
/// A shared number idle too long was released back to the carrier.
pub const NUMBER_IDLE_RELEASED: &str = "NUMBER_IDLE_RELEASED";
/// Releasing an idle number failed; it stays in the pool.
pub const NUMBER_RELEASE_FAILED: &str = "NUMBER_RELEASE_FAILED";
/// A background pool round could not reach the database.
pub const POOL_MAINTENANCE_FAILED: &str = "POOL_MAINTENANCE_FAILED";
/// An outbound campaign was created.
pub const CAMPAIGN_STARTED: &str = "CAMPAIGN_STARTED";
/// A campaign placed one call.
pub const CAMPAIGN_CALL_PLACED: &str = "CAMPAIGN_CALL_PLACED";
/// A campaign call could not be placed.
pub const CAMPAIGN_CALL_FAILED: &str = "CAMPAIGN_CALL_FAILED";
/// A campaign call's outcome was recorded.
pub const CAMPAIGN_CALL_OUTCOME: &str = "CAMPAIGN_CALL_OUTCOME";
/// A campaign target was left `uncertain` (a call may have been placed; not repeated).
pub const CAMPAIGN_CALL_UNCERTAIN: &str = "CAMPAIGN_CALL_UNCERTAIN";
/// Every target of a campaign has an outcome (or it was canceled).
pub const CAMPAIGN_FINISHED: &str = "CAMPAIGN_FINISHED";
/// A campaign round could not reach the database.
pub const CAMPAIGN_RUNNER_FAILED: &str = "CAMPAIGN_RUNNER_FAILED";
/// An operator changed something through the admin API (also in `audit_log`).
pub const ADMIN_ACTION: &str = "ADMIN_ACTION";
/// An admin request was refused for its credentials.
pub const ADMIN_AUTH_FAILED: &str = "ADMIN_AUTH_FAILED";
/// A source went over a rate limit (`class=`, `source=`): its first refusal,
/// then one line per window with the count refused meanwhile (sampled).
pub const RATE_LIMITED: &str = "RATE_LIMITED";

// Calls through OpenAI SIP (SIP trunks, WhatsApp).
/// An OpenAI webhook was refused (`reason=` missing headers, bad or stale signature); nothing was done.
pub const SIP_WEBHOOK_REFUSED: &str = "SIP_WEBHOOK_REFUSED";
/// An OpenAI webhook delivery (`webhook_id=`) was seen before: answered 200, nothing done.
pub const SIP_WEBHOOK_DUPLICATE: &str = "SIP_WEBHOOK_DUPLICATE";
/// A SIP/WhatsApp call was accepted through OpenAI (`latency_ms=` since its webhook arrived).
pub const SIP_CALL_ACCEPTED: &str = "SIP_CALL_ACCEPTED";
/// A SIP/WhatsApp call was rejected (`reason=`, `sip_status=`); nothing was opened for it.
pub const SIP_CALL_REJECTED: &str = "SIP_CALL_REJECTED";
/// An accept, reject, refer or hang-up request to OpenAI failed (`action=`).
pub const SIP_CONTROL_FAILED: &str = "SIP_CONTROL_FAILED";
/// OpenAI reported a SIP call's end (`realtime.call.ended`); its record is finished.
pub const SIP_CALL_ENDED: &str = "SIP_CALL_ENDED";
/// A SIP/WhatsApp call's actors started on its sideband socket (no Twilio socket).
pub const SIP_SIDEBAND_ATTACHED: &str = "SIP_SIDEBAND_ATTACHED";
