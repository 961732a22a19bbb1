//! The call system: the actors' singletons (CallSupervisor, PersistenceActor)
//! on their own arbiters, the ports they use implemented over PostgreSQL and
//! the vendors' APIs, and the background work around live calls (heartbeats
//! that keep them counted across instances, summaries).

pub mod plan;
pub mod sip;
pub mod sip_call;
pub mod spill;
pub mod store;
pub mod stream_auth;
pub mod summaries;
pub mod tools;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::Notify;

use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;
use callvisor_actors::ids::{CallSid, TenantId};
use callvisor_actors::persistence::PersistenceActor;
use callvisor_actors::ports::{CallDeps, CallTuning, HoldLimits, RealtimeEndpoint};
use callvisor_actors::realtime::{preopen, RealtimeActor};
use callvisor_actors::supervisor::messages::ListCalls;
use callvisor_actors::supervisor::CallSupervisor;
use callvisor_actors::twilio_stream::{StartGate, StreamSettings};
use callvisor_wire::protocol::realtime::SessionConfig;

use crate::clients::openai_rest::OpenAiRest;
use crate::clients::twilio_account::TwilioAccount;
use crate::config::{AppEnv, Settings};
use crate::db::{call_logs, AsyncPool};
use crate::secret::Secret;
use store::{DbCallStore, DbTranscriptSink};
use stream_auth::{StreamGuard, StreamSecret};
use summaries::SummaryWorker;
use tools::DbTools;

/// How often live calls' heartbeats are renewed (well within
/// [`call_logs::LIVE_CALL_STALE_SECONDS`]).
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(20);

/// Calls without heartbeat finished per round at most (the rest next round).
const HEARTBEAT_LOST_BATCH: i64 = 100;

/// The running call system of one instance.
pub struct CallSystem {
    /// Live calls of this instance.
    pub supervisor: Addr<CallSupervisor>,
    /// The transcript writer.
    pub persistence: Addr<PersistenceActor>,
    /// Issues and checks media-stream tokens.
    pub streams: Arc<StreamSecret>,
    /// What each call's actors are given.
    pub deps: CallDeps,
    /// Media sockets waiting for `start`, process-wide, up to a cap.
    pub start_gate: Arc<StartGate>,
    /// Each media socket's limits and `start` checks.
    pub stream_settings: StreamSettings,
    /// Pre-open Realtime sessions while the phone rings, parked this long.
    preopen_timeout: Option<Duration>,
    arbiters: Vec<Arbiter>,
}

impl CallSystem {
    /// Starts the singletons and the background work. Must run inside an actix System.
    pub fn start(settings: &Settings, pool: AsyncPool, instance_id: &str) -> Self {
        let secret = match &settings.stream.token_secret {
            Some(secret) => secret.expose().as_bytes().to_vec(),
            None => {
                // Validation requires the secret in production; elsewhere one
                // instance can make its own (tokens then work on it alone).
                if settings.app_env != AppEnv::Production {
                    log::warn!(
                        "{} env={} effect=\"media streams are accepted by this instance only\"",
                        events::STREAM_SECRET_GENERATED,
                        settings.app_env.as_str()
                    );
                }
                uuid::Uuid::new_v4().as_bytes().repeat(2)
            }
        };
        let streams = Arc::new(StreamSecret::new(secret, settings.stream.token_ttl_seconds));
        let summary_nudge = Arc::new(Notify::new());
        let api_key = settings
            .openai
            .api_key
            .clone()
            .unwrap_or_else(|| Secret::new(""));
        let twilio = TwilioAccount::new(
            &settings.twilio.api_base,
            settings.twilio.account_sid.as_deref().unwrap_or_default(),
            settings
                .twilio
                .auth_token
                .clone()
                .unwrap_or_else(|| Secret::new("")),
        );
        let deps = CallDeps {
            store: Arc::new(DbCallStore::new(
                pool.clone(),
                settings.openai.clone(),
                settings.features.summaries,
                summary_nudge.clone(),
            )),
            tools: Arc::new(DbTools::new(pool.clone())),
            control: Arc::new(twilio),
            authority: Arc::new(StreamGuard::new(streams.clone(), pool.clone(), instance_id)),
            realtime: RealtimeEndpoint {
                url: settings.openai.realtime_url.clone(),
                api_key: Arc::from(api_key.expose()),
            },
            tuning: CallTuning {
                max_reconnects: settings.calls.realtime_max_reconnects,
                connect_timeout: Duration::from_millis(settings.calls.realtime_connect_timeout_ms),
                held_audio: HoldLimits {
                    max_bytes: settings.calls.max_held_audio_bytes,
                    max_ms: settings.calls.max_held_audio_ms,
                },
                max_agent_audio_bytes: settings.calls.max_agent_audio_bytes,
                max_upstream_queued_bytes: settings.calls.max_upstream_queued_bytes,
                max_call_duration: Duration::from_secs(settings.calls.max_call_seconds),
                handover_grace: Duration::from_millis(settings.calls.stream_handover_grace_ms),
                handover_silence: Duration::from_millis(settings.calls.stream_handover_silence_ms),
                ..CallTuning::default()
            },
        };
        let stream_settings = StreamSettings {
            idle_timeout: deps.tuning.twilio_idle_timeout,
            start_timeout: Duration::from_millis(settings.calls.stream_start_timeout_ms),
            max_held_bytes: settings.calls.stream_max_held_bytes,
            account_sid: settings.twilio.account_sid.as_deref().map(Arc::from),
        };

        let persistence_arbiter = Arbiter::new();
        let sink = Arc::new(DbTranscriptSink::new(pool.clone()));
        let batch = settings.calls.persistence_batch_size;
        let interval = Duration::from_millis(settings.calls.persistence_flush_ms);
        let persistence =
            actix::Supervisor::start_in_arbiter(&persistence_arbiter.handle(), move |_| {
                PersistenceActor::new(sink, batch, interval)
            });

        let supervisor_arbiter = Arbiter::new();
        let supervisor = {
            let (deps, persistence) = (deps.clone(), persistence.clone());
            CallSupervisor::start_in_arbiter(&supervisor_arbiter.handle(), move |_| {
                CallSupervisor::new(deps, persistence)
            })
        };

        let background = Arbiter::new();
        if settings.features.summaries {
            let worker = SummaryWorker {
                pool: pool.clone(),
                client: OpenAiRest::new(
                    &settings.openai.base_url,
                    api_key,
                    &settings.openai.model_mini,
                ),
                instance_id: instance_id.to_owned(),
                retry_base_seconds: i64::try_from(settings.calls.summary_retry_seconds)
                    .unwrap_or(60),
                nudge: summary_nudge,
            };
            background.spawn_fn(move || {
                actix_rt::spawn(worker.run());
            });
        }
        {
            let (supervisor, instance_id) = (supervisor.clone(), instance_id.to_owned());
            let summary_after = settings.features.summaries.then_some(0);
            background.spawn_fn(move || {
                actix_rt::spawn(heartbeats(pool, supervisor, instance_id, summary_after));
            });
        }

        Self {
            supervisor,
            persistence,
            streams,
            deps,
            start_gate: StartGate::new(settings.calls.stream_max_awaiting_start),
            stream_settings,
            preopen_timeout: settings
                .calls
                .preopen_realtime
                .then(|| Duration::from_secs(settings.calls.preopen_timeout_seconds)),
            arbiters: vec![persistence_arbiter, supervisor_arbiter, background],
        }
    }
}

impl CallSystem {
    /// Opens the agent's session for a call that is about to connect (on this
    /// worker thread), unless pre-opening is switched off.
    pub fn preopen(&self, call_sid: &CallSid, tenant: &TenantId, session: SessionConfig) {
        let Some(park_timeout) = self.preopen_timeout else {
            return;
        };
        let tuning = &self.deps.tuning;
        let actor = RealtimeActor::parked(
            call_sid.clone(),
            tenant.clone(),
            self.deps.realtime.clone(),
            session,
            tuning.connect_timeout,
            tuning.max_upstream_queued_bytes,
            park_timeout,
        )
        .start();
        preopen::park(call_sid.as_str(), actor);
        log::info!(
            "{} call_sid={call_sid} tenant={tenant}",
            events::REALTIME_PREOPENED
        );
    }

    /// Stops the singletons' and the background work's threads (after a drain).
    pub fn stop(&self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// Renews the heartbeat of this instance's live calls, so that per-tenant
/// limits count them on every instance (and stop counting them if this one
/// dies); then finishes the calls whose instance did die (any instance may).
///
/// The sweep runs only once this instance has renewed its own heartbeats
/// without a failure for [`call_logs::LIVE_CALL_STALE_SECONDS`]: after a
/// database outage every instance needs a round to catch up, and a call whose
/// owner simply has not caught up yet must not be taken for a dead one.
async fn heartbeats(
    pool: AsyncPool,
    supervisor: Addr<CallSupervisor>,
    instance_id: String,
    summary_after_seconds: Option<i64>,
) {
    let settled = Duration::from_secs(call_logs::LIVE_CALL_STALE_SECONDS.unsigned_abs());
    let mut healthy_since: Option<Instant> = None;
    loop {
        actix_rt::time::sleep(HEARTBEAT_INTERVAL).await;
        let Ok(calls) = supervisor.send(ListCalls).await else {
            healthy_since = None;
            continue;
        };
        let sids: Vec<String> = calls.iter().map(|c| c.call_sid.to_string()).collect();
        let mut conn = match pool.get().await {
            Ok(conn) => conn,
            Err(e) => {
                healthy_since = None;
                heartbeat_failed(&e);
                continue;
            }
        };
        if let Err(e) = call_logs::heartbeat(&mut conn, &instance_id, &sids).await {
            healthy_since = None;
            heartbeat_failed(&e);
            continue;
        }
        let since = *healthy_since.get_or_insert_with(Instant::now);
        if since.elapsed() < settled {
            continue;
        }
        match call_logs::finish_heartbeat_lost(
            &mut conn,
            HEARTBEAT_LOST_BATCH,
            summary_after_seconds,
        )
        .await
        {
            Ok(lost) => {
                for call in lost {
                    log::warn!(
                        "{} call_sid={} tenant={} instance={} last_heartbeat={}",
                        events::CALL_HEARTBEAT_LOST,
                        call.call_sid,
                        call.tenant_id
                            .map_or_else(|| "-".to_owned(), |t| t.to_string()),
                        call.instance_id.as_deref().unwrap_or("-"),
                        call.heartbeat_at.to_rfc3339()
                    );
                }
            }
            Err(e) => heartbeat_failed(&e),
        }
    }
}

fn heartbeat_failed(error: &dyn std::error::Error) {
    log::warn!(
        "{} task=heartbeat error={:?}",
        events::DB_UNAVAILABLE,
        Chain(error)
    );
}
