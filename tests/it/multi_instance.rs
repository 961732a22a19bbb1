//! Several `callvisor serve` processes on 127.0.0.1 sharing one database:
//! the pool never hands one number to two holders, a killed instance's
//! numbers come back by themselves, and a tenant's concurrency limit holds
//! whichever instance its calls land on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use crate::helpers::db::TestDb;
use crate::helpers::pool::{
    call_ended, count, eventually, inbound_call, pairs, shared_numbers, tenant, twilio, Instance,
};

#[derive(diesel::QueryableByName)]
struct Sample {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    in_use: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    shared_holders: i64,
}

/// Allocation requests in all.
const REQUESTS: usize = 2_000;
/// Pool size.
const NUMBERS: usize = 50;
/// Requests in flight at once, over all instances (more than the pool holds,
/// so that exhaustion is exercised too).
const IN_FLIGHT: usize = 96;

#[actix_web::test]
async fn two_thousand_allocations_over_three_instances_never_share_a_number() {
    // Arrange: 50 shared numbers, two standard tenants, three instances.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let numbers = shared_numbers(&mut conn, 0, NUMBERS);
    let tenants = [
        tenant(&mut conn, "+15550300001", "standard", 10_000, None),
        tenant(&mut conn, "+15550300002", "standard", 10_000, None),
    ];
    let stand_in = twilio(&[]);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start(&db.url, &stand_in.base_url(), &[]).await);
    }
    let admins: Vec<_> = instances.iter().map(Instance::admin).collect();
    // Who holds what, as the callers believe it: checked at every grant.
    let holding: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let max_held = Arc::new(AtomicUsize::new(0));
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let started = Instant::now();
    // The database's own view, sampled while the requests run: how many
    // numbers are leased at once, and whether any holder ever held two.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (done, url) = (done.clone(), db.url.clone());
        actix_web::rt::spawn(async move {
            use diesel_async::RunQueryDsl as _;
            let pool = callvisor::db::build_async_pool(&url, 1, Duration::from_secs(5)).unwrap();
            let mut conn = pool.get().await.unwrap();
            let (mut max_in_use, mut samples) = (0i64, 0usize);
            while !std::sync::atomic::AtomicBool::load(&done, Ordering::Relaxed) {
                let row: Sample = diesel::sql_query(
                    "SELECT count(*) FILTER (WHERE status = 'in_use') AS in_use,
                            count(*) - count(DISTINCT lease_holder)
                                - count(*) FILTER (WHERE lease_holder IS NULL) AS shared_holders
                     FROM phone_numbers",
                )
                .get_result(&mut conn)
                .await
                .unwrap();
                assert_eq!(row.shared_holders, 0, "a holder held two numbers");
                max_in_use = max_in_use.max(row.in_use);
                samples += 1;
                actix_web::rt::time::sleep(Duration::from_millis(5)).await;
            }
            (max_in_use, samples)
        })
    };

    // Act
    let outcomes: Vec<(usize, bool, u16)> = futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let (holding, violations, max_held) =
                (holding.clone(), violations.clone(), max_held.clone());
            let allocate_on = admins[i % 3].clone();
            // Released on another instance than the one that leased it, half the time.
            let release_on = admins[(i + i / 2) % 3].clone();
            let tenant = tenants[i % 2].clone();
            async move {
                let holder = format!("req-{i}");
                let (status, body) = allocate_on
                    .post(
                        "/admin/pool/allocations",
                        &json!({ "tenant_id": tenant, "holder": holder }),
                    )
                    .await;
                if status != 201 {
                    let exhausted = status == 503 && body["error"] == "pool_exhausted";
                    assert!(exhausted, "request {i}: {status} {body}");
                    return (i, false, status);
                }
                let number = body["phone_number"].as_str().unwrap().to_owned();
                {
                    let mut held = holding.lock().unwrap();
                    if let Some(other) = held.insert(number.clone(), holder.clone()) {
                        violations
                            .lock()
                            .unwrap()
                            .push(format!("{number} handed to {holder} while {other} held it"));
                    }
                    max_held.fetch_max(held.len(), Ordering::Relaxed);
                }
                actix_web::rt::time::sleep(Duration::from_millis(5 + (i % 8) as u64 * 5)).await;
                // Forget it before giving it back: the next holder may get it at once.
                holding.lock().unwrap().remove(&number);
                let (status, body) = release_on
                    .delete(&format!(
                        "/admin/pool/allocations/{holder}?call_seconds={}",
                        i % 130
                    ))
                    .await;
                assert_eq!(status, 200, "release {holder}: {body}");
                assert_eq!(body["phone_number"], number.as_str());
                (i, true, 201)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (db_max_in_use, samples) = sampler.await.unwrap();

    // Assert
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:#?}");
    let granted = outcomes.iter().filter(|(_, ok, _)| *ok).count();
    let exhausted = outcomes
        .iter()
        .filter(|(_, ok, s)| !ok && *s == 503)
        .count();
    assert_eq!(
        granted + exhausted,
        REQUESTS,
        "every request got a number or pool_exhausted"
    );
    assert!(granted >= REQUESTS / 2, "granted {granted} of {REQUESTS}");
    assert!(max_held.load(Ordering::Relaxed) <= NUMBERS);
    // Every number is back, and the usage counts add up.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM phone_numbers WHERE status = 'available'"
        ),
        NUMBERS as i64
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT COALESCE(sum(total_calls), 0)::bigint AS n FROM phone_numbers"
        ),
        granted as i64
    );
    let minutes: i64 = outcomes
        .iter()
        .filter(|(_, ok, _)| *ok)
        .map(|(i, _, _)| ((i % 130) as i64 + 59) / 60)
        .sum();
    assert_eq!(
        count(
            &mut conn,
            "SELECT COALESCE(sum(total_minutes), 0)::bigint AS n FROM phone_numbers"
        ),
        minutes
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM audit_log WHERE action IN ('pool.allocate', 'pool.release')"
        ),
        2 * granted as i64
    );
    // Work spread over the pool and over the instances.
    assert!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM phone_numbers WHERE total_calls > 0"
        ) as usize
            == numbers.len()
    );
    for instance in &instances {
        let allocated = instance
            .logs()
            .iter()
            .filter(|l| l.contains("NUMBER_ALLOCATED"))
            .count();
        assert!(allocated > 0, "{} allocated nothing", instance.instance_id);
    }
    assert!(db_max_in_use <= NUMBERS as i64);
    if exhausted > 0 {
        assert_eq!(
            db_max_in_use, NUMBERS as i64,
            "pool_exhausted with free numbers left"
        );
    }
    eprintln!(
        "POOL_LOAD requests={REQUESTS} granted={granted} exhausted={exhausted} elapsed_ms={} \
         max_held_by_callers={} max_in_use_in_db={db_max_in_use} db_samples={samples}",
        elapsed.as_millis(),
        max_held.load(Ordering::Relaxed)
    );
}

#[actix_web::test]
async fn a_killed_instance_gives_its_numbers_back_after_the_lease_while_others_keep_theirs() {
    // Arrange: 9 numbers, three instances each holding three (test lease: 3 s).
    let db = TestDb::migrated();
    let mut conn = db.connect();
    shared_numbers(&mut conn, 0, 9);
    let tenant_id = tenant(&mut conn, "+15550310001", "standard", 100, None);
    let stand_in = twilio(&[]);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start(&db.url, &stand_in.base_url(), &[]).await);
    }
    let mut held: Vec<Vec<String>> = vec![Vec::new(); 3];
    for (i, instance) in instances.iter().enumerate() {
        for k in 0..3 {
            let (status, body) = instance
                .admin()
                .post(
                    "/admin/pool/allocations",
                    &json!({ "tenant_id": tenant_id, "holder": format!("i{i}-h{k}") }),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            held[i].push(body["phone_number"].as_str().unwrap().to_owned());
        }
    }
    let leased_to = |conn: &mut diesel::PgConnection| -> HashMap<String, String> {
        pairs(
            conn,
            "SELECT phone_number AS a, lease_holder AS b FROM phone_numbers WHERE status = 'in_use'",
        )
        .into_iter()
        .collect()
    };
    assert_eq!(leased_to(&mut conn).len(), 9);

    // Act: instance 0 dies without releasing anything.
    let killed_at = Instant::now();
    instances[0].kill();

    // Assert: its three numbers come back once their lease ran out (never
    // before), the survivors' six stay leased to the same holders throughout.
    let returned = eventually(Duration::from_secs(15), || {
        let now = leased_to(&mut conn);
        assert_eq!(
            held[1]
                .iter()
                .chain(&held[2])
                .filter(|n| now.contains_key(*n))
                .count(),
            6,
            "a live instance lost a lease: {now:?}"
        );
        held[0].iter().all(|n| !now.contains_key(n))
    })
    .await;
    assert!(returned, "the killed instance's numbers did not come back");
    assert!(
        killed_at.elapsed() >= Duration::from_millis(2_000),
        "returned before the lease could have expired"
    );
    let mut expired_lines = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while expired_lines < 3 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        expired_lines = instances[1..]
            .iter()
            .flat_map(|i| i.logs())
            .filter(|l| l.contains("NUMBER_LEASE_EXPIRED"))
            .count();
    }
    assert_eq!(expired_lines, 3, "one NUMBER_LEASE_EXPIRED line per number");
    // The survivors' leases are still renewed well after the killed one's ran
    // out: each is renewed more than a second (two renewal intervals) after
    // now, so its expiry (renewal + 3 s lease) passes now + 4 s.
    let renewed_well_after = |conn: &mut diesel::PgConnection, since: &str| {
        count(
            conn,
            &format!(
                "SELECT count(*) AS n FROM phone_numbers WHERE status = 'in_use'
                 AND lease_expires_at >= '{since}'::timestamptz + interval '4 seconds'"
            ),
        )
    };
    let since = pairs(&mut conn, "SELECT 'now' AS a, now()::text AS b")[0]
        .1
        .clone();
    assert!(
        eventually(Duration::from_secs(15), || renewed_well_after(
            &mut conn, &since
        ) == 6)
        .await,
        "the survivors' leases were not renewed: {:?}",
        leased_to(&mut conn)
    );
    let now = leased_to(&mut conn);
    for (i, numbers) in held.iter().enumerate().skip(1) {
        for (k, number) in numbers.iter().enumerate() {
            assert_eq!(now.get(number), Some(&format!("i{i}-h{k}")));
        }
    }
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM phone_numbers WHERE status = 'in_use' AND lease_expires_at > now()"),
        6
    );
    // And a survivor can hand the freed numbers out again.
    let (status, body) = instances[1]
        .admin()
        .post(
            "/admin/pool/allocations",
            &json!({ "tenant_id": tenant_id }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(held[0].contains(&body["phone_number"].as_str().unwrap().to_owned()));
}

#[actix_web::test]
async fn a_tenants_limit_holds_with_its_calls_on_two_instances_inbound_and_outbound() {
    // Arrange: a tenant allowed 3 calls at once; two instances; a pool of 5.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    shared_numbers(&mut conn, 0, 5);
    let tenant_number = "+15550320001";
    let tenant_id = tenant(&mut conn, tenant_number, "standard", 3, None);
    let stand_in = twilio(&[]);
    let a = Instance::start(&db.url, &stand_in.base_url(), &[]).await;
    let b = Instance::start(&db.url, &stand_in.base_url(), &[]).await;

    // Act: inbound calls alternate between the instances.
    let (first, twiml1) = inbound_call(&a.address, tenant_number).await;
    let (_, twiml2) = inbound_call(&b.address, tenant_number).await;
    let (_, twiml3) = inbound_call(&a.address, tenant_number).await;
    let (_, twiml4) = inbound_call(&b.address, tenant_number).await;

    // Assert: three connect, the fourth (on either instance) hears "busy".
    for twiml in [&twiml1, &twiml2, &twiml3] {
        assert!(twiml.contains("<Connect>"), "{twiml}");
    }
    assert!(
        twiml4.contains("<Say") && twiml4.contains("<Hangup/>") && !twiml4.contains("<Connect>"),
        "{twiml4}"
    );

    // Act: a campaign of three numbers for the same tenant, on instance B.
    let campaign_numbers = ["+15550400001", "+15550400002", "+15550400003"];
    let (status, body) = b
        .admin()
        .post(
            "/admin/campaigns",
            &json!({ "tenant_id": tenant_id, "numbers": campaign_numbers, "max_concurrency": 3 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let campaign_id = body["id"].as_str().unwrap().to_owned();
    // Runners take running campaigns oldest first: once another tenant's
    // later campaign is dialled, a round has tried this one before it.
    let witness = tenant(&mut conn, "+15550320002", "standard", 10, None);
    witnessed_round(&b, &stand_in, &witness, "+15550410001").await;

    // Assert: no outbound call while the tenant is at its limit.
    assert_eq!(
        dialled(&stand_in, &campaign_numbers),
        0,
        "dialled over the limit"
    );
    assert_eq!(
        admitted(&mut conn, &campaign_id),
        0,
        "admitted over the limit"
    );

    // Act: one inbound call ends (its status callback lands on B).
    call_ended(&b.address, "/twilio/status", &first, "completed", 42).await;

    // Assert: exactly one outbound call goes out, then no more.
    assert!(
        eventually(Duration::from_secs(5), || dialled(
            &stand_in,
            &campaign_numbers
        ) == 1)
        .await
    );
    witnessed_round(&b, &stand_in, &witness, "+15550410002").await;
    assert_eq!(
        dialled(&stand_in, &campaign_numbers),
        1,
        "dialled over the limit"
    );
    assert_eq!(
        admitted(&mut conn, &campaign_id),
        1,
        "admitted over the limit"
    );
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM call_logs WHERE user_id = '{tenant_id}' AND ended_at IS NULL"
            )
        ),
        3
    );
}

/// Calls the service asked Twilio for to any of `numbers`.
fn dialled(stand_in: &callvisor_standins::TwilioRest, numbers: &[&str]) -> usize {
    stand_in
        .calls_created()
        .iter()
        .filter(|params| {
            params
                .iter()
                .any(|(k, v)| k == "To" && numbers.contains(&v.as_str()))
        })
        .count()
}

/// Targets of a campaign admitted (no longer `pending`), in any instance's round.
fn admitted(conn: &mut diesel::PgConnection, campaign_id: &str) -> i64 {
    count(
        conn,
        &format!(
            "SELECT count(*) AS n FROM campaign_targets
             WHERE campaign_id = '{campaign_id}' AND status <> 'pending'"
        ),
    )
}

/// Starts a one-number campaign for `tenant_id` on `instance` and waits until
/// `to` is dialled: the event proving a campaign runner's round (oldest
/// campaign first) went past every campaign created before it.
async fn witnessed_round(
    instance: &Instance,
    stand_in: &callvisor_standins::TwilioRest,
    tenant_id: &str,
    to: &str,
) {
    let (status, body) = instance
        .admin()
        .post(
            "/admin/campaigns",
            &json!({ "tenant_id": tenant_id, "numbers": [to] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        eventually(Duration::from_secs(10), || dialled(stand_in, &[to]) == 1).await,
        "the witness campaign was not dialled:\n{}",
        instance.dump()
    );
}
