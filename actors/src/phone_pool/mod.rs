//! PhonePoolActor: the allocation policy of the phone-number pool.
//!
//! PostgreSQL (behind [`NumberLeases`]) is the truth, so several instances
//! never hand out the same number: every claim is one atomic statement, and a
//! number is held through a lease with an expiry that the holding instance
//! renews. This actor decides the policy around that truth:
//!
//! - **Which numbers a tenant may use**: its dedicated numbers first when its
//!   plan is a dedicated plan, then the least-used shared number when its plan
//!   may use the shared pool (the "hybrid" strategy is just the default lists).
//! - **Exhaustion**: buy one through the [`NumberProvider`] when
//!   auto-provisioning is on and the pool is under its cap, else refuse with
//!   [`PoolError::Exhausted`] and a `POOL_EXHAUSTED` line.
//! - **Leases**: it remembers the holders it granted and renews their leases
//!   every `renew_every` while they are held (at most `max_hold`). If this
//!   instance dies, renewals stop and the numbers come back by themselves when
//!   the leases run out; any instance's background round frees them.
//! - **Background rounds**: free expired leases, top up to `min_available`
//!   free shared numbers, release shared numbers idle longer than
//!   `idle_release_after` (never a dedicated one, never below the minimum).
//!   Buying and releasing take a pool-wide lock in the store, so two instances
//!   do not both fill the same gap.
//!
//! A *permanent* singleton on its own arbiter under `actix::Supervisor`:
//! `started` arms the timers, so a restart re-arms them. Its state is only the
//! list of leases to renew; losing it (a panic) means those leases expire,
//! which is the same safe outcome as a crash.

pub mod messages;

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::Mutex;

use crate::error_chain::Chain;
use crate::events;
use crate::ids::TenantId;
use crate::pool_ports::{BoughtNumber, ClaimRequest, LeasedNumber, NumberLeases, NumberProvider};
use crate::ports::PortError;
use messages::{
    Allocate, Allocation, HeldLease, ListHeld, MaintenanceReport, PoolError, Release,
    RunMaintenance,
};

/// How long the pool-wide provisioning lock is taken for (longer than a few
/// REST round trips; a dead holder's lock lapses after it).
const PROVISIONING_LOCK: Duration = Duration::from_secs(60);
/// How often an allocation that found the pool dry asks again for the
/// pool-wide provisioning lock another instance holds, before it answers
/// `Exhausted` (the holder frees or buys a number within a round or a purchase).
const PROVISIONING_LOCK_ATTEMPTS: u32 = 10;
/// The wait between those asks.
const PROVISIONING_LOCK_RETRY: Duration = Duration::from_millis(200);

/// Idle numbers released per background round at most.
const IDLE_RELEASE_BATCH: u32 = 10;

/// Longest holder name (it is stored and logged).
const MAX_HOLDER_LEN: usize = 64;

/// The pool's policy: configuration, not code.
#[derive(Debug, Clone)]
pub struct PoolPolicy {
    /// Plans whose tenants use their dedicated numbers first.
    pub dedicated_plans: Vec<String>,
    /// Plans whose tenants may use the shared pool.
    pub shared_plans: Vec<String>,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often held leases are renewed (kept at most a third of `lease_ttl`).
    pub renew_every: Duration,
    /// Longest time one lease is renewed.
    pub max_hold: Duration,
    /// Buy numbers when exhausted and to keep `min_available` free.
    pub auto_provision: bool,
    /// Free shared numbers to keep.
    pub min_available: u32,
    /// Numbers the pool may hold in all.
    pub max_numbers: u32,
    /// Release free shared numbers idle this long (`None`: never).
    pub idle_release_after: Option<Duration>,
    /// Time between background rounds.
    pub maintenance_every: Duration,
}

impl PoolPolicy {
    /// Whether a tenant on `plan` may use (its dedicated numbers, the shared pool).
    pub fn scope(&self, plan: &str) -> (bool, bool) {
        (
            self.dedicated_plans.iter().any(|p| p == plan),
            self.shared_plans.iter().any(|p| p == plan),
        )
    }

    fn renew_interval(&self) -> Duration {
        self.renew_every
            .min(self.lease_ttl / 3)
            .max(Duration::from_millis(50))
    }
}

/// Whether `holder` is an acceptable lease holder name.
pub fn valid_holder(holder: &str) -> bool {
    !holder.is_empty()
        && holder.len() <= MAX_HOLDER_LEN
        && holder
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'))
}

struct Held {
    phone_number: String,
    tenant_id: TenantId,
    since: Instant,
}

/// The pool's allocation policy over a shared lease store.
pub struct PhonePoolActor {
    instance_id: String,
    leases: Arc<dyn NumberLeases>,
    provider: Arc<dyn NumberProvider>,
    policy: PoolPolicy,
    held: HashMap<String, Held>,
    /// Held while this instance provisions (a purchase, or a maintenance
    /// round's top-up and idle release): one at a time, shared with the
    /// in-flight futures. An allocation waits for it rather than being refused
    /// while a round that may free or buy a number is running.
    buying: Rc<Mutex<()>>,
    renewing: bool,
    maintaining: Rc<Cell<bool>>,
}

impl PhonePoolActor {
    /// A pool for `instance_id` over `leases`, buying from `provider`.
    pub fn new(
        instance_id: impl Into<String>,
        leases: Arc<dyn NumberLeases>,
        provider: Arc<dyn NumberProvider>,
        policy: PoolPolicy,
    ) -> Self {
        Self {
            instance_id: instance_id.into(),
            leases,
            provider,
            policy,
            held: HashMap::new(),
            buying: Rc::new(Mutex::new(())),
            renewing: false,
            maintaining: Rc::new(Cell::new(false)),
        }
    }

    fn renew(&mut self, ctx: &mut Context<Self>) {
        if self.renewing || self.held.is_empty() {
            return;
        }
        let max_hold = self.policy.max_hold;
        let abandoned: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.since.elapsed() > max_hold)
            .map(|(holder, _)| holder.clone())
            .collect();
        for holder in abandoned {
            if let Some(h) = self.held.remove(&holder) {
                log::warn!(
                    "{} number={} holder={holder} tenant={} held_s={}",
                    events::NUMBER_LEASE_ABANDONED,
                    h.phone_number,
                    h.tenant_id,
                    h.since.elapsed().as_secs()
                );
            }
        }
        let holders: Vec<String> = self.held.keys().cloned().collect();
        if holders.is_empty() {
            return;
        }
        self.renewing = true;
        let renew = self
            .leases
            .renew(&self.instance_id, holders.clone(), self.policy.lease_ttl);
        ctx.spawn(renew.into_actor(self).map(move |result, act, _ctx| {
            act.renewing = false;
            match result {
                Ok(kept) => {
                    for holder in holders.iter().filter(|h| !kept.contains(h)) {
                        // Released elsewhere (a status callback) or expired and taken.
                        if let Some(h) = act.held.remove(holder) {
                            log::info!(
                                "{} number={} holder={holder} tenant={} instance={}",
                                events::NUMBER_LEASE_GONE,
                                h.phone_number,
                                h.tenant_id,
                                act.instance_id
                            );
                        }
                    }
                }
                Err(e) => fail(&act.instance_id, "renew", &e),
            }
        }));
    }

    fn maintain(&mut self, ctx: &mut Context<Self>) {
        if self.maintaining.get() {
            return;
        }
        self.maintaining.set(true);
        let round = maintenance_round(
            self.leases.clone(),
            self.provider.clone(),
            self.policy.clone(),
            self.instance_id.clone(),
            self.buying.clone(),
        );
        let maintaining = self.maintaining.clone();
        ctx.spawn(round.into_actor(self).map(move |_report, _act, _ctx| {
            maintaining.set(false);
        }));
    }
}

impl Actor for PhonePoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.policy.renew_interval(), |act, ctx| act.renew(ctx));
        ctx.run_interval(self.policy.maintenance_every, |act, ctx| act.maintain(ctx));
    }
}

impl actix::Supervised for PhonePoolActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // In-flight futures died with the old context; their flags must not stick.
        self.renewing = false;
        self.buying = Rc::new(Mutex::new(()));
        self.maintaining.set(false);
    }
}

impl Handler<Allocate> for PhonePoolActor {
    type Result = ResponseActFuture<Self, Result<Allocation, PoolError>>;

    fn handle(&mut self, msg: Allocate, _ctx: &mut Self::Context) -> Self::Result {
        if !valid_holder(&msg.holder) {
            return Box::pin(fut::ready(Err(PoolError::InvalidHolder)));
        }
        let (use_dedicated, use_shared) = self.policy.scope(&msg.plan);
        let request = ClaimRequest {
            tenant_id: msg.tenant_id.clone(),
            holder: msg.holder.clone(),
            instance_id: self.instance_id.clone(),
            use_dedicated,
            use_shared,
            ttl: self.policy.lease_ttl,
        };
        let may_buy = self.policy.auto_provision && use_shared;
        let work = allocate(
            self.leases.clone(),
            self.provider.clone(),
            request,
            may_buy.then_some(self.policy.max_numbers),
            self.buying.clone(),
        );
        Box::pin(work.into_actor(self).map(move |result, act, _ctx| {
            match result {
                Ok((leased, bought)) => {
                    log::info!(
                        "{} number={} holder={} tenant={} plan={} dedicated={} bought={bought} instance={}",
                        events::NUMBER_ALLOCATED,
                        leased.phone_number,
                        msg.holder,
                        msg.tenant_id,
                        msg.plan,
                        leased.dedicated,
                        act.instance_id
                    );
                    act.held.insert(
                        msg.holder.clone(),
                        Held {
                            phone_number: leased.phone_number.clone(),
                            tenant_id: msg.tenant_id.clone(),
                            since: Instant::now(),
                        },
                    );
                    Ok(Allocation {
                        phone_number: leased.phone_number,
                        holder: msg.holder,
                        dedicated: leased.dedicated,
                        bought,
                        expires_at: leased.expires_at,
                    })
                }
                Err(PoolError::Exhausted) => {
                    log::warn!(
                        "{} tenant={} plan={} holder={} dedicated_allowed={use_dedicated} shared_allowed={use_shared} auto_provision={may_buy} instance={}",
                        events::POOL_EXHAUSTED,
                        msg.tenant_id,
                        msg.plan,
                        msg.holder,
                        act.instance_id
                    );
                    Err(PoolError::Exhausted)
                }
                Err(e) => {
                    log::warn!(
                        "{} task=allocate tenant={} holder={} error={:?}",
                        events::POOL_MAINTENANCE_FAILED,
                        msg.tenant_id,
                        msg.holder,
                        Chain(&e)
                    );
                    Err(e)
                }
            }
        }))
    }
}

/// Claims a number; when none is free and buying is allowed (`Some(cap)`),
/// buys one under the pool-wide lock and leases it to the same request.
async fn allocate(
    leases: Arc<dyn NumberLeases>,
    provider: Arc<dyn NumberProvider>,
    request: ClaimRequest,
    buy_cap: Option<u32>,
    buying: Rc<Mutex<()>>,
) -> Result<(LeasedNumber, bool), PoolError> {
    let unavailable = |e: PortError| PoolError::Unavailable(e);
    if let Some(number) = leases.claim(request.clone()).await.map_err(unavailable)? {
        return Ok((number, false));
    }
    let Some(cap) = buy_cap else {
        return Err(PoolError::Exhausted);
    };
    // Wait for a purchase or maintenance round running here: it may free or
    // buy the number this request needs (the claim below looks again).
    let _provisioning = buying.lock().await;
    let instance = request.instance_id.clone();
    let result = async {
        // Another instance may be provisioning: wait a little for its lock
        // (it holds it for one purchase or one round), then give up.
        let mut attempt = 0;
        while !leases
            .lock_provisioning(&instance, PROVISIONING_LOCK)
            .await
            .map_err(unavailable)?
        {
            attempt += 1;
            if attempt >= PROVISIONING_LOCK_ATTEMPTS {
                return Err(PoolError::Exhausted);
            }
            if let Some(number) = leases.claim(request.clone()).await.map_err(unavailable)? {
                return Ok((number, false));
            }
            actix_rt::time::sleep(PROVISIONING_LOCK_RETRY).await;
        }
        let bought = async {
            // Someone may have freed or bought one while we waited.
            if let Some(number) = leases.claim(request.clone()).await.map_err(unavailable)? {
                return Ok((number, false));
            }
            let census = leases.census().await.map_err(unavailable)?;
            if census.total >= cap {
                return Err(PoolError::Exhausted);
            }
            let number = buy(&*provider, &instance, "exhausted").await?;
            match leases
                .add_bought(number.clone(), Some(request.clone()))
                .await
            {
                Ok(Some(leased)) => Ok((leased, true)),
                Ok(None) => Err(PoolError::Exhausted),
                Err(e) => {
                    log::error!(
                        "{} number={} instance={instance} reason=not_recorded error={:?}",
                        events::NUMBER_PURCHASE_FAILED,
                        number.phone_number,
                        Chain(&e)
                    );
                    Err(PoolError::Unavailable(e))
                }
            }
        }
        .await;
        let _ = leases.unlock_provisioning(&instance).await;
        bought
    }
    .await;
    result
}

async fn buy(
    provider: &dyn NumberProvider,
    instance: &str,
    reason: &str,
) -> Result<BoughtNumber, PoolError> {
    match provider.buy().await {
        Ok(number) => {
            log::info!(
                "{} number={} provider_sid={} reason={reason} instance={instance}",
                events::NUMBER_BOUGHT,
                number.phone_number,
                number.provider_sid.as_deref().unwrap_or("-")
            );
            Ok(number)
        }
        Err(e) => {
            log::error!(
                "{} reason={reason} instance={instance} error={:?}",
                events::NUMBER_PURCHASE_FAILED,
                Chain(&e)
            );
            Err(PoolError::Exhausted)
        }
    }
}

/// One background round: expired leases, then (under the pool-wide lock)
/// top-up and idle release.
async fn maintenance_round(
    leases: Arc<dyn NumberLeases>,
    provider: Arc<dyn NumberProvider>,
    policy: PoolPolicy,
    instance: String,
    buying: Rc<Mutex<()>>,
) -> MaintenanceReport {
    let mut report = MaintenanceReport::default();
    match leases.reclaim_expired().await {
        Ok(expired) => {
            for lease in &expired {
                log::warn!(
                    "{} number={} holder={} lease_instance={} instance={instance}",
                    events::NUMBER_LEASE_EXPIRED,
                    lease.phone_number,
                    lease.holder,
                    lease.instance_id
                );
            }
            report.expired = expired.len();
        }
        Err(e) => fail(&instance, "reclaim_expired", &e),
    }
    let top_up = policy.auto_provision && policy.min_available > 0;
    if !top_up && policy.idle_release_after.is_none() {
        return report;
    }
    // An allocation is buying: this round can wait for the next tick.
    let Ok(_provisioning) = buying.try_lock() else {
        report.skipped = true;
        return report;
    };
    match leases.lock_provisioning(&instance, PROVISIONING_LOCK).await {
        Ok(true) => {
            if top_up {
                report.bought = top_up_round(&*leases, &*provider, &policy, &instance).await;
            }
            if let Some(idle_for) = policy.idle_release_after {
                report.idle_released =
                    idle_round(&*leases, &*provider, &policy, &instance, idle_for).await;
            }
            if let Err(e) = leases.unlock_provisioning(&instance).await {
                fail(&instance, "unlock_provisioning", &e);
            }
        }
        Ok(false) => report.skipped = true,
        Err(e) => fail(&instance, "lock_provisioning", &e),
    }
    report
}

/// A background failure is logged at most once per this period (the
/// database being away would otherwise log every round).
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(30);

thread_local! {
    /// When a background failure was last logged on this (the pool's)
    /// thread, and how many were not logged since.
    static LAST_FAILURE: Cell<(Option<Instant>, u32)> = const { Cell::new((None, 0)) };
}

fn fail(instance: &str, task: &str, e: &PortError) {
    let (last, quiet) = LAST_FAILURE.with(Cell::get);
    if last.is_some_and(|t| t.elapsed() < FAILURE_LOG_PERIOD) {
        LAST_FAILURE.with(|c| c.set((last, quiet.saturating_add(1))));
        return;
    }
    LAST_FAILURE.with(|c| c.set((Some(Instant::now()), 0)));
    log::warn!(
        "{} task={task} instance={instance} not_logged_since={quiet} error={:?}",
        events::POOL_MAINTENANCE_FAILED,
        Chain(e)
    );
}

async fn top_up_round(
    leases: &dyn NumberLeases,
    provider: &dyn NumberProvider,
    policy: &PoolPolicy,
    instance: &str,
) -> usize {
    let census = match leases.census().await {
        Ok(census) => census,
        Err(e) => {
            fail(instance, "census", &e);
            return 0;
        }
    };
    let missing = policy.min_available.saturating_sub(census.free_shared);
    let room = policy.max_numbers.saturating_sub(census.total);
    let wanted = missing.min(room);
    let mut bought = 0;
    for _ in 0..wanted {
        let Ok(number) = buy(provider, instance, "top_up").await else {
            break;
        };
        match leases.add_bought(number.clone(), None).await {
            Ok(_) => bought += 1,
            Err(e) => {
                log::error!(
                    "{} number={} instance={instance} reason=not_recorded error={:?}",
                    events::NUMBER_PURCHASE_FAILED,
                    number.phone_number,
                    Chain(&e)
                );
                break;
            }
        }
    }
    if wanted > 0 {
        log::info!(
            "{} bought={bought} wanted={wanted} free_before={} total_before={} min_available={} max_numbers={} instance={instance}",
            events::POOL_TOPPED_UP,
            census.free_shared,
            census.total,
            policy.min_available,
            policy.max_numbers
        );
    }
    bought
}

async fn idle_round(
    leases: &dyn NumberLeases,
    provider: &dyn NumberProvider,
    policy: &PoolPolicy,
    instance: &str,
    idle_for: Duration,
) -> usize {
    let retiring = match leases
        .take_idle(idle_for, policy.min_available, IDLE_RELEASE_BATCH)
        .await
    {
        Ok(numbers) => numbers,
        Err(e) => {
            fail(instance, "take_idle", &e);
            return 0;
        }
    };
    let mut released = 0;
    for number in retiring {
        match provider.release(&number).await {
            Ok(()) => match leases.retire(&number.phone_number).await {
                Ok(()) => {
                    released += 1;
                    log::info!(
                        "{} number={} provider_sid={} idle_s={} instance={instance}",
                        events::NUMBER_IDLE_RELEASED,
                        number.phone_number,
                        number.provider_sid.as_deref().unwrap_or("-"),
                        idle_for.as_secs()
                    );
                }
                Err(e) => fail(instance, "retire", &e),
            },
            Err(e) => {
                log::warn!(
                    "{} number={} instance={instance} error={:?}",
                    events::NUMBER_RELEASE_FAILED,
                    number.phone_number,
                    Chain(&e)
                );
                if let Err(e) = leases.restore(&number.phone_number).await {
                    fail(instance, "restore", &e);
                }
            }
        }
    }
    released
}

impl Handler<Release> for PhonePoolActor {
    type Result = ResponseActFuture<Self, Result<Option<String>, PoolError>>;

    fn handle(&mut self, msg: Release, _ctx: &mut Self::Context) -> Self::Result {
        // Stop renewing first: a renewal racing the release finds nothing.
        let held = self.held.remove(&msg.holder);
        let release = self.leases.release(&msg.holder, msg.call_seconds);
        Box::pin(release.into_actor(self).map(move |result, act, _ctx| {
            match result {
                Ok(number) => {
                    if let Some(number) = &number {
                        log::info!(
                            "{} number={number} holder={} tenant={} call_s={} instance={}",
                            events::NUMBER_RELEASED,
                            msg.holder,
                            held.as_ref().map_or("-", |h| h.tenant_id.as_str()),
                            msg.call_seconds
                                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                            act.instance_id
                        );
                    }
                    Ok(number)
                }
                Err(e) => {
                    // Keep renewing what we could not free; the caller may retry.
                    if let Some(h) = held {
                        act.held.insert(msg.holder.clone(), h);
                    }
                    Err(PoolError::Unavailable(e))
                }
            }
        }))
    }
}

impl Handler<ListHeld> for PhonePoolActor {
    type Result = MessageResult<ListHeld>;

    fn handle(&mut self, _msg: ListHeld, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.held
                .iter()
                .map(|(holder, h)| HeldLease {
                    holder: holder.clone(),
                    phone_number: h.phone_number.clone(),
                    tenant_id: h.tenant_id.clone(),
                    held_for: h.since.elapsed(),
                })
                .collect(),
        )
    }
}

impl Handler<RunMaintenance> for PhonePoolActor {
    type Result = ResponseActFuture<Self, MaintenanceReport>;

    fn handle(&mut self, _msg: RunMaintenance, _ctx: &mut Self::Context) -> Self::Result {
        if self.maintaining.replace(true) {
            return Box::pin(fut::ready(MaintenanceReport {
                skipped: true,
                ..MaintenanceReport::default()
            }));
        }
        let round = maintenance_round(
            self.leases.clone(),
            self.provider.clone(),
            self.policy.clone(),
            self.instance_id.clone(),
            self.buying.clone(),
        );
        let maintaining = self.maintaining.clone();
        Box::pin(round.into_actor(self).map(move |report, _act, _ctx| {
            maintaining.set(false);
            report
        }))
    }
}
