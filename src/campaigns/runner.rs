//! The campaign runner: every instance runs one, on its own arbiter, and they
//! share the work through the database.
//!
//! Each round: recover targets that dead instances left behind, keep this
//! instance's ringing calls counted as live, then for every running campaign
//! admit due targets while the tenant (across instances) and the campaign
//! have room, and dial each admitted target:
//!
//! 1. lease a caller number from the PhonePoolActor (dedicated first, then
//!    the least-used shared one: rotation spreads the load); none free puts
//!    the target back for later;
//! 2. mark it `dialing` (only if still ours): from here on it is never
//!    dialled again automatically;
//! 3. `POST Calls.json` with `Url` = the voice webhook with `?campaign=<id>`
//!    (the answered call gets the same AI bridge as an inbound one) and the
//!    status callback, which records the outcome and frees the number;
//! 4. record the CallSid, or: put back (nothing sent, or Twilio said 429),
//!    fail (Twilio refused), or `uncertain` (a call may exist).
//!
//! Concurrency is bounded three ways: the tenant's live-call limit, the
//! campaign's `max_concurrency`, and the pool (a call holds its number until
//! its outcome).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use tokio::sync::Notify;
use uuid::Uuid;

use callvisor_actors::error_chain::Chain;
use callvisor_actors::events;
use callvisor_actors::ids::TenantId;
use callvisor_actors::phone_pool::messages::{Allocate, PoolError, Release};
use callvisor_actors::phone_pool::PhonePoolActor;
use callvisor_actors::redact::Masked;

use crate::clients::twilio_account::TwilioAccount;
use crate::clients::twilio_numbers::{DialError, NewCall};
use crate::config::CampaignSettings;
use crate::db::campaigns::{self as store, Admission, Admitted};
use crate::db::AsyncPool;

/// Dials in flight on one instance at most.
const MAX_DIALS_IN_FLIGHT: usize = 32;
/// Running campaigns looked at per round.
const CAMPAIGNS_PER_ROUND: i64 = 100;
/// Attempts at recording a CallSid when the database is briefly away.
const RECORD_ATTEMPTS: u32 = 5;
/// Extra wait after the ring timeout before a number whose call may exist
/// (outcome unknown) is given back.
const UNCERTAIN_HOLD_MARGIN: Duration = Duration::from_secs(30);

/// How long this instance stops admitting a campaign's targets after the
/// pool had no number for it (a freed number is used within this).
const EXHAUSTED_BACKOFF: Duration = Duration::from_secs(1);

/// A failure is logged at most once per this period.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(30);

/// One instance's campaign runner.
pub struct CampaignRunner {
    /// The runtime pool.
    pub db: AsyncPool,
    /// This instance's PhonePoolActor.
    pub pool: Addr<PhonePoolActor>,
    /// Twilio REST.
    pub twilio: TwilioAccount,
    /// Tunables.
    pub settings: CampaignSettings,
    /// `PUBLIC_URL/twilio/voice` (`?campaign=<id>` is added).
    pub voice_url: String,
    /// `PUBLIC_URL/twilio/status`.
    pub status_callback: String,
    /// This instance.
    pub instance_id: String,
    /// Wakes the runner before its next tick.
    pub nudge: Arc<Notify>,
}

/// Decrements the in-flight count when a dial ends, however it ends.
struct InFlight(Rc<Cell<usize>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl CampaignRunner {
    /// Runs rounds forever (until its arbiter stops).
    pub async fn run(self) {
        let this = Rc::new(Running {
            runner: self,
            dry: RefCell::new(HashMap::new()),
            last_failure: Cell::new((None, 0)),
        });
        let in_flight = Rc::new(Cell::new(0usize));
        loop {
            let tick = Duration::from_millis(this.runner.settings.tick_ms.max(10));
            tokio::select! {
                () = actix_rt::time::sleep(tick) => {}
                () = this.runner.nudge.notified() => {}
            }
            this.clone().round(&in_flight).await;
        }
    }
}

/// A runner at work: its settings and what it learnt this life.
struct Running {
    runner: CampaignRunner,
    /// Campaigns the pool had no number for, and until when they wait.
    dry: RefCell<HashMap<Uuid, Instant>>,
    /// When a failure was last logged, and how many were not logged since.
    last_failure: Cell<(Option<Instant>, u32)>,
}

impl std::ops::Deref for Running {
    type Target = CampaignRunner;

    fn deref(&self) -> &CampaignRunner {
        &self.runner
    }
}

impl Running {
    fn is_dry(&self, campaign: Uuid) -> bool {
        let mut dry = self.dry.borrow_mut();
        dry.retain(|_, until| *until > Instant::now());
        dry.contains_key(&campaign)
    }

    /// Logs a failure, at most once per [`FAILURE_LOG_PERIOD`] (the database
    /// being away would otherwise log every round).
    fn failed(&self, task: &str, e: impl std::error::Error) {
        let (last, quiet) = self.last_failure.get();
        if last.is_some_and(|t| t.elapsed() < FAILURE_LOG_PERIOD) {
            self.last_failure.set((last, quiet.saturating_add(1)));
            return;
        }
        self.last_failure.set((Some(Instant::now()), 0));
        log::warn!(
            "{} task={task} instance={} not_logged_since={quiet} error={:?}",
            events::CAMPAIGN_RUNNER_FAILED,
            self.instance_id,
            Chain(&e)
        );
    }

    async fn round(self: Rc<Self>, in_flight: &Rc<Cell<usize>>) {
        let mut conn = match self.db.get().await {
            Ok(conn) => conn,
            Err(e) => return self.failed("connect", e),
        };
        let s = &self.settings;
        match store::recover_stale(
            &mut conn,
            s.claim_timeout_seconds as f64,
            s.dial_timeout_seconds as f64,
            s.max_call_seconds as f64,
        )
        .await
        {
            Ok(recovery) => {
                for t in &recovery.put_back {
                    log::warn!(
                        "{} campaign={} target={} to={} left_by={} action=put_back",
                        events::CAMPAIGN_CALL_FAILED,
                        t.campaign_id,
                        t.id,
                        Masked(&t.to_number),
                        t.instance_id.as_deref().unwrap_or("-")
                    );
                }
                for t in recovery.uncertain.iter().chain(&recovery.abandoned) {
                    log::warn!(
                        "{} campaign={} target={} to={} left_by={} instance={}",
                        events::CAMPAIGN_CALL_UNCERTAIN,
                        t.campaign_id,
                        t.id,
                        Masked(&t.to_number),
                        t.instance_id.as_deref().unwrap_or("-"),
                        self.instance_id
                    );
                }
            }
            Err(e) => return self.failed("recover", e),
        }
        if let Err(e) = store::heartbeat_calling(&mut conn, &self.instance_id).await {
            self.failed("heartbeat", e);
        }
        let campaigns = match store::running(&mut conn, CAMPAIGNS_PER_ROUND).await {
            Ok(campaigns) => campaigns,
            Err(e) => return self.failed("list", e),
        };
        for campaign in campaigns {
            match store::complete_if_done(&mut conn, campaign).await {
                Ok(true) => {
                    log::info!("{} campaign={campaign}", events::CAMPAIGN_FINISHED);
                    continue;
                }
                Ok(false) => {}
                Err(e) => return self.failed("complete", e),
            }
            while in_flight.get() < MAX_DIALS_IN_FLIGHT && !self.is_dry(campaign) {
                match store::admit_next(&mut conn, campaign, &self.instance_id).await {
                    Ok(Admission::Admitted {
                        target,
                        tenant_id,
                        plan,
                    }) => {
                        in_flight.set(in_flight.get() + 1);
                        let guard = InFlight(in_flight.clone());
                        let this = self.clone();
                        actix_rt::spawn(async move {
                            this.dial(target, tenant_id, plan).await;
                            drop(guard);
                        });
                    }
                    Ok(Admission::Unsubscribed { tenant_id }) => {
                        log::warn!(
                            "{} campaign={campaign} tenant={tenant_id} reason=not_subscribed",
                            events::CAMPAIGN_FINISHED
                        );
                        break;
                    }
                    Ok(_) => break,
                    Err(e) => return self.failed("admit", e),
                }
            }
        }
    }

    /// Puts an admitted target back at once, first in line (the pool was dry).
    async fn put_back_now(&self, target: &Admitted) {
        match self.db.get().await {
            Ok(mut conn) => {
                if let Err(e) = store::put_back(
                    &mut conn,
                    target.id,
                    &self.instance_id,
                    0.0,
                    false,
                    i32::MAX,
                    "pool_exhausted",
                )
                .await
                {
                    self.failed("put_back", e);
                }
            }
            Err(e) => self.failed("put_back", e),
        }
    }

    /// Puts an admitted target back (nothing was sent), to be retried later.
    async fn put_back(&self, target: &Admitted, count_attempt: bool, error: &str) {
        match self.db.get().await {
            Ok(mut conn) => {
                if let Err(e) = store::put_back(
                    &mut conn,
                    target.id,
                    &self.instance_id,
                    self.settings.retry_seconds as f64,
                    count_attempt,
                    i32::try_from(self.settings.max_attempts).unwrap_or(i32::MAX),
                    error,
                )
                .await
                {
                    // Recovery puts it back after the claim timeout.
                    self.failed("put_back", e);
                }
            }
            Err(e) => self.failed("put_back", e),
        }
    }

    async fn release(&self, holder: &str) {
        let release = self.pool.send(Release {
            holder: holder.to_owned(),
            call_seconds: None,
        });
        match release.await {
            Ok(Ok(_)) => {}
            // The lease lapses by itself when it cannot be freed now.
            Ok(Err(e)) => self.failed("release", e),
            Err(e) => self.failed("release", e),
        }
    }

    async fn dial(self: Rc<Self>, target: Admitted, tenant_id: Uuid, plan: String) {
        let holder = store::holder_for(target.id);
        let tenant = tenant_id.to_string();
        let Ok(tenant_key) = TenantId::parse(&tenant) else {
            return self.put_back(&target, false, "tenant id unusable").await;
        };
        let allocation = self
            .pool
            .send(Allocate {
                tenant_id: tenant_key,
                plan,
                holder: holder.clone(),
            })
            .await;
        let from = match allocation {
            Ok(Ok(allocation)) => allocation.phone_number,
            Ok(Err(PoolError::Exhausted)) => {
                // Not the target's fault: not counted, first in line again,
                // and the campaign waits a moment for a number to come free.
                self.dry
                    .borrow_mut()
                    .insert(target.campaign_id, Instant::now() + EXHAUSTED_BACKOFF);
                return self.put_back_now(&target).await;
            }
            Ok(Err(e)) => return self.put_back(&target, false, &Chain(&e).to_string()).await,
            Err(e) => return self.put_back(&target, false, &Chain(&e).to_string()).await,
        };

        let marked = match self.db.get().await {
            Ok(mut conn) => {
                store::mark_dialing(&mut conn, target.id, &self.instance_id, &from).await
            }
            Err(e) => Err(crate::db::DbError::Pool(e)),
        };
        match marked {
            Ok(true) => {}
            Ok(false) => {
                // Recovered by another instance meanwhile: it is theirs now.
                self.release(&holder).await;
                return;
            }
            Err(e) => {
                self.failed("mark_dialing", &e);
                self.release(&holder).await;
                return;
            }
        }

        let url = format!("{}?campaign={}", self.voice_url, target.campaign_id);
        // Naming the target lets a status that overtakes the REST answer find it.
        let status_callback = format!(
            "{}?{}={}",
            self.status_callback,
            super::TARGET_PARAMETER,
            target.id
        );
        let call = NewCall {
            to: &target.to_number,
            from: &from,
            url: &url,
            status_callback: &status_callback,
            timeout_seconds: self.settings.ring_timeout_seconds,
        };
        match self.twilio.create_call(&call).await {
            Ok(call_sid) => self.placed(&target, &tenant, &from, &call_sid).await,
            Err(e) => self.not_placed(&target, &tenant, &from, &holder, e).await,
        }
        if let Ok(mut conn) = self.db.get().await {
            if let Ok(true) = store::complete_if_done(&mut conn, target.campaign_id).await {
                log::info!(
                    "{} campaign={} tenant={tenant}",
                    events::CAMPAIGN_FINISHED,
                    target.campaign_id
                );
            }
        }
    }

    async fn placed(&self, target: &Admitted, tenant: &str, from: &str, call_sid: &str) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let recorded = match self.db.get().await {
                Ok(mut conn) => store::mark_calling(&mut conn, target.id, call_sid).await,
                Err(e) => Err(crate::db::DbError::Pool(e)),
            };
            match recorded {
                Ok(_) => break,
                Err(e) if attempt >= RECORD_ATTEMPTS => {
                    // The target stays `dialing` and becomes `uncertain`: never re-dialled.
                    self.failed("mark_calling", e);
                    break;
                }
                Err(_) => actix_rt::time::sleep(Duration::from_millis(200 << attempt)).await,
            }
        }
        log::info!(
            "{} call_sid={call_sid} tenant={tenant} campaign={} target={} to={} from={from} attempt={}",
            events::CAMPAIGN_CALL_PLACED,
            target.campaign_id,
            target.id,
            Masked(&target.to_number),
            target.attempts
        );
    }

    async fn not_placed(
        &self,
        target: &Admitted,
        tenant: &str,
        from: &str,
        holder: &str,
        error: DialError,
    ) {
        let retry = matches!(
            error,
            DialError::NotSent(_) | DialError::Refused { status: 429, .. }
        );
        log::warn!(
            "{} call_sid=- tenant={tenant} campaign={} target={} to={} from={from} retry={retry} error={:?}",
            events::CAMPAIGN_CALL_FAILED,
            target.campaign_id,
            target.id,
            Masked(&target.to_number),
            error.to_string()
        );
        match error {
            DialError::NotSent(_) | DialError::Refused { status: 429, .. } => {
                self.put_back(target, true, &error.to_string()).await;
                self.release(holder).await;
            }
            DialError::Refused { .. } => {
                self.end_without_call(target, "failed", &error.to_string())
                    .await;
                self.release(holder).await;
            }
            DialError::Unknown(_) => {
                log::warn!(
                    "{} call_sid=- tenant={tenant} campaign={} target={} to={} from={from}",
                    events::CAMPAIGN_CALL_UNCERTAIN,
                    target.campaign_id,
                    target.id,
                    Masked(&target.to_number)
                );
                self.end_without_call(target, "uncertain", &error.to_string())
                    .await;
                // A call may be ringing from this number: keep it until it cannot be.
                let hold =
                    Duration::from_secs(self.settings.ring_timeout_seconds) + UNCERTAIN_HOLD_MARGIN;
                actix_rt::time::sleep(hold).await;
                self.release(holder).await;
            }
        }
    }

    async fn end_without_call(&self, target: &Admitted, status: &str, error: &str) {
        match self.db.get().await {
            Ok(mut conn) => {
                if let Err(e) = store::end_without_call(&mut conn, target.id, status, error).await {
                    self.failed("end_without_call", e);
                }
            }
            Err(e) => self.failed("end_without_call", e),
        }
    }
}
