//! PhonePoolActor against an in-memory lease store and a probe provider: the
//! plan decides which numbers a tenant may use, a dry pool buys only when
//! allowed and under its cap, renewals keep leases alive and notice the ones
//! freed elsewhere, and a stopped instance's leases simply lapse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use callvisor_actors::ids::TenantId;
use callvisor_actors::phone_pool::messages::{Allocate, ListHeld, PoolError, Release};
use callvisor_actors::phone_pool::{PhonePoolActor, PoolPolicy};
use callvisor_actors::pool_ports::{
    BoughtNumber, ClaimRequest, ExpiredLease, LeasedNumber, NumberLeases, NumberProvider,
    PoolCensus, RetiringNumber,
};
use callvisor_actors::ports::{PortError, PortFuture};
use chrono::Utc;

#[allow(dead_code)] // the Realtime stand-in in `support` is for other tests
mod support;
use support::wait::eventually;

#[derive(Clone, Debug)]
struct Row {
    number: String,
    dedicated_to: Option<String>,
    holder: Option<String>,
    renewals: u32,
}

/// The store: first free row in order, dedicated ones first.
#[derive(Default)]
struct Memory {
    rows: Mutex<Vec<Row>>,
    claims: Mutex<Vec<ClaimRequest>>,
    /// How long an idle-release query takes (a slow database).
    idle_query: Mutex<Duration>,
    /// Idle-release queries started.
    idle_queries: Mutex<u32>,
}

impl Memory {
    fn with(rows: &[(&str, Option<&str>)]) -> Arc<Self> {
        Arc::new(Self {
            rows: Mutex::new(
                rows.iter()
                    .map(|(n, d)| Row {
                        number: (*n).to_owned(),
                        dedicated_to: d.map(str::to_owned),
                        holder: None,
                        renewals: 0,
                    })
                    .collect(),
            ),
            claims: Mutex::default(),
            idle_query: Mutex::default(),
            idle_queries: Mutex::default(),
        })
    }

    fn free(&self, holder: &str) {
        for row in self.rows.lock().unwrap().iter_mut() {
            if row.holder.as_deref() == Some(holder) {
                row.holder = None;
            }
        }
    }
}

fn ready<T: 'static>(value: T) -> PortFuture<T> {
    Box::pin(async move { value })
}

impl NumberLeases for Memory {
    fn claim(&self, req: ClaimRequest) -> PortFuture<Result<Option<LeasedNumber>, PortError>> {
        self.claims.lock().unwrap().push(req.clone());
        let mut rows = self.rows.lock().unwrap();
        let tenant = req.tenant_id.to_string();
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|i| rows[*i].dedicated_to.is_none());
        let pick = order.into_iter().find(|i| {
            let row = &rows[*i];
            row.holder.is_none()
                && match &row.dedicated_to {
                    Some(t) => req.use_dedicated && *t == tenant,
                    None => req.use_shared,
                }
        });
        let leased = pick.map(|i| {
            rows[i].holder = Some(req.holder.clone());
            LeasedNumber {
                phone_number: rows[i].number.clone(),
                dedicated: rows[i].dedicated_to.is_some(),
                expires_at: Utc::now(),
            }
        });
        ready(Ok(leased))
    }

    fn renew(
        &self,
        _instance_id: &str,
        holders: Vec<String>,
        _ttl: Duration,
    ) -> PortFuture<Result<Vec<String>, PortError>> {
        let mut rows = self.rows.lock().unwrap();
        let mut kept = Vec::new();
        for row in rows.iter_mut() {
            if let Some(h) = &row.holder {
                if holders.contains(h) {
                    row.renewals += 1;
                    kept.push(h.clone());
                }
            }
        }
        ready(Ok(kept))
    }

    fn release(
        &self,
        holder: &str,
        _call_seconds: Option<u64>,
    ) -> PortFuture<Result<Option<String>, PortError>> {
        let mut rows = self.rows.lock().unwrap();
        let found = rows
            .iter_mut()
            .find(|r| r.holder.as_deref() == Some(holder))
            .map(|r| {
                r.holder = None;
                r.number.clone()
            });
        ready(Ok(found))
    }

    fn reclaim_expired(&self) -> PortFuture<Result<Vec<ExpiredLease>, PortError>> {
        ready(Ok(Vec::new()))
    }

    fn census(&self) -> PortFuture<Result<PoolCensus, PortError>> {
        let rows = self.rows.lock().unwrap();
        let free_shared = rows
            .iter()
            .filter(|r| r.holder.is_none() && r.dedicated_to.is_none())
            .count() as u32;
        ready(Ok(PoolCensus {
            free_shared,
            total: rows.len() as u32,
        }))
    }

    fn lock_provisioning(&self, _: &str, _: Duration) -> PortFuture<Result<bool, PortError>> {
        ready(Ok(true))
    }

    fn unlock_provisioning(&self, _: &str) -> PortFuture<Result<(), PortError>> {
        ready(Ok(()))
    }

    fn add_bought(
        &self,
        number: BoughtNumber,
        lease: Option<ClaimRequest>,
    ) -> PortFuture<Result<Option<LeasedNumber>, PortError>> {
        let mut rows = self.rows.lock().unwrap();
        rows.push(Row {
            number: number.phone_number.clone(),
            dedicated_to: None,
            holder: lease.as_ref().map(|l| l.holder.clone()),
            renewals: 0,
        });
        ready(Ok(lease.map(|_| LeasedNumber {
            phone_number: number.phone_number,
            dedicated: false,
            expires_at: Utc::now(),
        })))
    }

    fn take_idle(
        &self,
        _: Duration,
        _: u32,
        _: u32,
    ) -> PortFuture<Result<Vec<RetiringNumber>, PortError>> {
        *self.idle_queries.lock().unwrap() += 1;
        let takes = *self.idle_query.lock().unwrap();
        Box::pin(async move {
            actix_rt::time::sleep(takes).await;
            Ok(Vec::new())
        })
    }

    fn retire(&self, _: &str) -> PortFuture<Result<(), PortError>> {
        ready(Ok(()))
    }

    fn restore(&self, _: &str) -> PortFuture<Result<(), PortError>> {
        ready(Ok(()))
    }
}

/// Sells `+1555099000N` numbers and counts purchases.
#[derive(Default)]
struct Shop {
    sold: Mutex<u32>,
}

impl NumberProvider for Shop {
    fn buy(&self) -> PortFuture<Result<BoughtNumber, PortError>> {
        let mut sold = self.sold.lock().unwrap();
        *sold += 1;
        ready(Ok(BoughtNumber {
            phone_number: format!("+1555099000{sold}"),
            provider_sid: None,
        }))
    }

    fn release(&self, _: &RetiringNumber) -> PortFuture<Result<(), PortError>> {
        ready(Ok(()))
    }
}

fn policy(auto_provision: bool, max_numbers: u32) -> PoolPolicy {
    PoolPolicy {
        dedicated_plans: vec!["enterprise".into()],
        shared_plans: vec!["standard".into(), "enterprise".into()],
        lease_ttl: Duration::from_millis(600),
        renew_every: Duration::from_millis(100),
        max_hold: Duration::from_secs(60),
        auto_provision,
        min_available: 0,
        max_numbers,
        idle_release_after: None,
        maintenance_every: Duration::from_secs(60),
    }
}

const ENTERPRISE: &str = "00000000-0000-4000-8000-00000000000e";
const STANDARD: &str = "00000000-0000-4000-8000-00000000000s";

fn allocate(tenant: &str, plan: &str, holder: &str) -> Allocate {
    Allocate {
        tenant_id: TenantId::parse(tenant).unwrap(),
        plan: plan.into(),
        holder: holder.into(),
    }
}

#[actix_web::test]
async fn plans_decide_which_numbers_and_a_dry_pool_buys_only_under_its_cap() {
    // Arrange
    let store = Memory::with(&[("+15550000001", Some(ENTERPRISE)), ("+15550000002", None)]);
    let shop = Arc::new(Shop::default());
    let pool = PhonePoolActor::new("i1", store.clone(), shop.clone(), policy(true, 3)).start();

    // Act
    let e = pool
        .send(allocate(ENTERPRISE, "enterprise", "a"))
        .await
        .unwrap()
        .unwrap();
    let s = pool
        .send(allocate(STANDARD, "standard", "b"))
        .await
        .unwrap()
        .unwrap();
    let bought = pool
        .send(allocate(STANDARD, "standard", "c"))
        .await
        .unwrap()
        .unwrap();
    let capped = pool
        .send(allocate(STANDARD, "standard", "d"))
        .await
        .unwrap();
    let bad = pool.send(allocate(STANDARD, "standard", "")).await.unwrap();

    // Assert
    assert_eq!(
        (e.phone_number.as_str(), e.dedicated),
        ("+15550000001", true)
    );
    assert_eq!((s.phone_number.as_str(), s.bought), ("+15550000002", false));
    assert_eq!(
        (bought.phone_number.as_str(), bought.bought),
        ("+15550990001", true)
    );
    assert_eq!(capped, Err(PoolError::Exhausted));
    assert_eq!(bad, Err(PoolError::InvalidHolder));
    assert_eq!(*shop.sold.lock().unwrap(), 1, "nothing bought over the cap");
    let claims = store.claims.lock().unwrap();
    assert!(claims[0].use_dedicated && claims[0].use_shared);
    assert!(!claims[1].use_dedicated && claims[1].use_shared);
}

#[actix_web::test]
async fn without_auto_provisioning_a_dry_pool_refuses() {
    let store = Memory::with(&[("+15550000002", None)]);
    let shop = Arc::new(Shop::default());
    let pool = PhonePoolActor::new("i1", store, shop.clone(), policy(false, 10)).start();
    pool.send(allocate(STANDARD, "standard", "a"))
        .await
        .unwrap()
        .unwrap();
    let refused = pool
        .send(allocate(STANDARD, "standard", "b"))
        .await
        .unwrap();
    assert_eq!(refused, Err(PoolError::Exhausted));
    assert_eq!(*shop.sold.lock().unwrap(), 0);
}

#[actix_web::test]
async fn held_leases_are_renewed_until_released_here_or_elsewhere() {
    // Arrange
    let store = Memory::with(&[("+15550000001", None), ("+15550000002", None)]);
    let pool = PhonePoolActor::new(
        "i1",
        store.clone(),
        Arc::new(Shop::default()),
        policy(false, 10),
    )
    .start();
    pool.send(allocate(STANDARD, "standard", "a"))
        .await
        .unwrap()
        .unwrap();
    pool.send(allocate(STANDARD, "standard", "b"))
        .await
        .unwrap()
        .unwrap();

    // Both are renewed while held (every 100 ms here).
    assert!(
        eventually(Duration::from_secs(5), || store
            .rows
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.renewals >= 2))
        .await,
        "renewed while held: {:?}",
        store.rows.lock().unwrap()
    );

    // Act: "a" is released through the actor, "b" by someone else (a status callback).
    let freed = pool
        .send(Release {
            holder: "a".into(),
            call_seconds: Some(61),
        })
        .await
        .unwrap()
        .unwrap();
    store.free("b");

    // Assert: "a" came back; a later renewal noticed "b" was freed elsewhere
    // (so the actor holds neither).
    assert_eq!(freed.as_deref(), Some("+15550000001"));
    let mut held = pool.send(ListHeld).await.unwrap();
    for _ in 0..1000 {
        if held.is_empty() {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
        held = pool.send(ListHeld).await.unwrap();
    }
    assert!(held.is_empty(), "still held: {held:?}");
}

#[actix_web::test]
async fn a_dry_pool_waits_for_a_running_maintenance_round_then_buys() {
    // Arrange: the only number is held; maintenance rounds run often and each
    // spends a while in its idle-release query, holding the provisioning turn.
    let store = Memory::with(&[("+15550000002", None)]);
    *store.idle_query.lock().unwrap() = Duration::from_millis(300);
    let shop = Arc::new(Shop::default());
    let mut policy = policy(true, 5);
    policy.idle_release_after = Some(Duration::from_secs(3600));
    policy.maintenance_every = Duration::from_millis(20);
    let pool = PhonePoolActor::new("i1", store.clone(), shop.clone(), policy).start();
    pool.send(allocate(STANDARD, "standard", "a"))
        .await
        .unwrap()
        .unwrap();
    for _ in 0..500 {
        if *store.idle_queries.lock().unwrap() > 0 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        *store.idle_queries.lock().unwrap() > 0,
        "a round is running"
    );

    // Act: a request finds the pool dry while that round runs.
    let second = pool
        .send(allocate(STANDARD, "standard", "b"))
        .await
        .unwrap();

    // Assert: it waited for the round and bought, instead of `Exhausted`.
    let second = second.expect("a number once the round is over");
    assert!(second.bought, "{second:?}");
    assert_eq!(*shop.sold.lock().unwrap(), 1);
}
