//! The pool's policy, through the admin API of a real instance: dedicated
//! numbers first, then the least-used shared ones; `maintenance` and
//! `reserved` never handed out; exhaustion refused with `pool_exhausted` and a
//! `POOL_EXHAUSTED` line; numbers bought when the pool is dry or below its
//! minimum; idle shared numbers released, dedicated ones never.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::helpers::db::TestDb;
use crate::helpers::pool::{
    count, eventually, inbound_call, pairs, shared_numbers, tenant, twilio, Instance,
};

#[actix_web::test]
async fn dedicated_first_then_least_used_shared_and_never_maintenance_or_reserved() {
    // Arrange: an enterprise tenant with one dedicated number, a standard
    // tenant, and six shared numbers of known usage.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let enterprise = tenant(&mut conn, "+15550500001", "enterprise", 100, None);
    let standard = tenant(&mut conn, "+15550500002", "standard", 100, None);
    conn.batch_execute(&format!(
        "INSERT INTO phone_numbers (phone_number, dedicated_to, total_minutes) VALUES
             ('+15550510000', '{enterprise}', 900);
         INSERT INTO phone_numbers (phone_number, total_minutes, last_used_at, status) VALUES
             ('+15550510001', 5, now() - interval '1 hour', 'available'),
             ('+15550510002', 1, now() - interval '1 hour', 'available'),
             ('+15550510003', 1, now() - interval '2 hours', 'available'),
             ('+15550510004', 3, NULL, 'available'),
             ('+15550510005', 0, NULL, 'maintenance'),
             ('+15550510006', 0, NULL, 'reserved');"
    ))
    .unwrap();
    let stand_in = twilio(&[]);
    let instance = Instance::start(&db.url, &stand_in.base_url(), &[]).await;
    let admin = instance.admin();
    let allocate = |tenant: &str, holder: &str| {
        let (admin, body) = (
            admin.clone(),
            json!({ "tenant_id": tenant, "holder": holder }),
        );
        async move { admin.post("/admin/pool/allocations", &body).await }
    };

    // Act + Assert: the enterprise tenant gets its own number first...
    let (status, first) = allocate(&enterprise, "e1").await;
    assert_eq!(
        (status, first["phone_number"].as_str()),
        (201, Some("+15550510000")),
        "{first}"
    );
    assert_eq!(first["dedicated"], true);
    // ...then shared ones, least minutes first, older last use breaking ties.
    let (_, second) = allocate(&enterprise, "e2").await;
    assert_eq!(second["phone_number"], "+15550510003");
    assert_eq!(second["dedicated"], false);
    let mut order = Vec::new();
    for k in 0..3 {
        let (status, body) = allocate(&standard, &format!("s{k}")).await;
        assert_eq!(status, 201, "{body}");
        order.push(body["phone_number"].as_str().unwrap().to_owned());
    }
    assert_eq!(order, ["+15550510002", "+15550510004", "+15550510001"]);

    // The same holder asking again gets its lease back, not a second number.
    let (status, again) = allocate(&standard, "s0").await;
    assert_eq!(
        (status, again["phone_number"].as_str()),
        (201, Some("+15550510002"))
    );

    // Nothing left for the standard tenant: maintenance, reserved and the
    // other tenant's dedicated number (even once free) are never handed out.
    let (status, _) = admin.delete("/admin/pool/allocations/e1").await;
    assert_eq!(status, 200);
    let (status, refused) = allocate(&standard, "s3").await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"], "pool_exhausted");
    assert!(refused["message"].as_str().unwrap().contains(&standard));
    let line = instance
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("POOL_EXHAUSTED") && l.contains(&format!("tenant={standard}"))
        })
        .await;
    assert!(
        line.is_some(),
        "no POOL_EXHAUSTED line:\n{}",
        instance.dump()
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM phone_numbers WHERE phone_number IN ('+15550510005', '+15550510006') AND status <> 'in_use' AND lease_holder IS NULL"),
        2
    );
    // Its own dedicated number is the enterprise tenant's again.
    let (_, back) = allocate(&enterprise, "e3").await;
    assert_eq!(back["phone_number"], "+15550510000");
}

#[actix_web::test]
async fn a_dry_pool_buys_a_number_for_the_request_up_to_its_cap() {
    // Arrange: no number at all; buying allowed up to two numbers.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let standard = tenant(&mut conn, "+15550520001", "standard", 100, None);
    let stand_in = twilio(&[]);
    let instance = Instance::start(
        &db.url,
        &stand_in.base_url(),
        &[
            ("CALLVISOR__POOL__AUTO_PROVISION", "true"),
            ("CALLVISOR__POOL__MIN_AVAILABLE", "0"),
            ("CALLVISOR__POOL__MAX_NUMBERS", "2"),
            ("CALLVISOR__POOL__PROVISION_AREA_CODE", "415"),
        ],
    )
    .await;
    let admin = instance.admin();

    // Act
    let mut got = Vec::new();
    for k in 0..3 {
        got.push(
            admin
                .post(
                    "/admin/pool/allocations",
                    &json!({ "tenant_id": standard, "holder": format!("h{k}") }),
                )
                .await,
        );
    }

    // Assert: two bought on the spot (and leased to the request), the third refused.
    for (status, body) in &got[..2] {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body["bought"], true);
    }
    assert_eq!(got[2].0, 503);
    assert_eq!(got[2].1["error"], "pool_exhausted");
    let bought = stand_in.numbers();
    assert_eq!(bought.len(), 2);
    let purchases: Vec<_> = stand_in
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/IncomingPhoneNumbers.json"))
        .collect();
    assert_eq!(purchases.len(), 2);
    assert_eq!(
        purchases[0].param("VoiceUrl"),
        Some("http://127.0.0.1/twilio/voice")
    );
    assert!(purchases[0]
        .param("PhoneNumber")
        .unwrap()
        .starts_with("+1415"));
    let rows = pairs(
        &mut conn,
        "SELECT phone_number AS a, provider_sid AS b FROM phone_numbers ORDER BY phone_number",
    );
    assert_eq!(rows.len(), 2);
    for (number, sid) in rows {
        assert!(bought
            .iter()
            .any(|b| b.phone_number == number && b.sid == sid));
    }
    assert!(instance.count_lines("NUMBER_BOUGHT", 1).await >= 1);
}

#[actix_web::test]
async fn the_pool_is_topped_up_to_its_minimum_of_free_numbers() {
    // Arrange: one free shared number, a minimum of three.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    shared_numbers(&mut conn, 0, 1);
    let stand_in = twilio(&[]);

    // Act
    let instance = Instance::start(
        &db.url,
        &stand_in.base_url(),
        &[
            ("CALLVISOR__POOL__AUTO_PROVISION", "true"),
            ("CALLVISOR__POOL__MIN_AVAILABLE", "3"),
            ("CALLVISOR__POOL__MAX_NUMBERS", "10"),
        ],
    )
    .await;

    // Assert: two bought (searched on sale, then bought), then no more.
    assert!(
        eventually(Duration::from_secs(10), || {
            count(
                &mut conn,
                "SELECT count(*) AS n FROM phone_numbers WHERE status = 'available'",
            ) == 3
        })
        .await,
        "{}",
        instance.dump()
    );
    let line = instance
        .wait_for_log(Duration::from_secs(5), |l| l.contains("POOL_TOPPED_UP"))
        .await
        .unwrap();
    assert!(line.contains("bought=2"), "{line}");
    // Then no more: take one free number out of service. The round that
    // replaces it shows rounds went on after the top-up; buying exactly one
    // then shows none of them bought while nothing was missing.
    conn.batch_execute(
        "UPDATE phone_numbers SET status = 'maintenance' WHERE phone_number =
             (SELECT min(phone_number) FROM phone_numbers WHERE status = 'available')",
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || stand_in.numbers().len() >= 3).await,
        "the number taken out was not replaced\n{}",
        instance.dump()
    );
    assert_eq!(
        stand_in.numbers().len(),
        3,
        "bought exactly the two missing, then the one taken out"
    );
    let searches = stand_in
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/AvailablePhoneNumbers/US/Local.json"))
        .count();
    assert_eq!(searches, 3);
}

#[actix_web::test]
async fn idle_shared_numbers_are_released_but_never_dedicated_ones() {
    // Arrange: four numbers on the account, imported; one dedicated; all
    // idle for two days except one shared number used a minute ago.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let enterprise = tenant(&mut conn, "+15550530001", "enterprise", 100, None);
    let owned = [
        "+14155550100",
        "+14155550101",
        "+14155550102",
        "+14155550103",
    ];
    let stand_in = twilio(&owned);
    let setup = Instance::start(&db.url, &stand_in.base_url(), &[]).await;
    let (status, imported) = setup.admin().post("/admin/pool/import", &json!({})).await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["added"].as_array().unwrap().len(), 4);
    let (status, body) = setup
        .admin()
        .post(
            "/admin/pool/numbers/+14155550100/assign",
            &json!({ "tenant_id": enterprise }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    drop(setup);
    conn.batch_execute(
        "UPDATE phone_numbers SET created_at = now() - interval '2 days', last_used_at = NULL;
         UPDATE phone_numbers SET last_used_at = now() - interval '1 minute'
             WHERE phone_number = '+14155550103';",
    )
    .unwrap();

    // Act: an instance releasing numbers idle for an hour, keeping one free.
    let instance = Instance::start(
        &db.url,
        &stand_in.base_url(),
        &[
            ("CALLVISOR__POOL__IDLE_RELEASE_SECONDS", "3600"),
            ("CALLVISOR__POOL__MIN_AVAILABLE", "1"),
        ],
    )
    .await;

    // Assert: the two idle shared numbers are gone from the pool and the account.
    assert!(
        eventually(Duration::from_secs(10), || {
            count(&mut conn, "SELECT count(*) AS n FROM phone_numbers") == 2
        })
        .await,
        "{}",
        instance.dump()
    );
    let left = pairs(
        &mut conn,
        "SELECT phone_number AS a, COALESCE(dedicated_to::text, '-') AS b FROM phone_numbers ORDER BY 1",
    );
    assert_eq!(
        left,
        [
            ("+14155550100".to_owned(), enterprise.clone()),
            ("+14155550103".to_owned(), "-".to_owned())
        ]
    );
    let mut on_account: Vec<String> = stand_in
        .numbers()
        .into_iter()
        .map(|n| n.phone_number)
        .collect();
    on_account.sort();
    assert_eq!(on_account, ["+14155550100", "+14155550103"]);
    assert_eq!(instance.count_lines("NUMBER_IDLE_RELEASED", 2).await, 2);
}

#[actix_web::test]
async fn one_claim_leases_exactly_one_number_whatever_the_plan() {
    // Arrange: many free numbers (a plan where PostgreSQL could re-run a
    // joined LIMIT 1 subquery per row would lease several at once).
    let db = TestDb::migrated();
    let mut sync = db.connect();
    shared_numbers(&mut sync, 0, 200);
    let tenant_id = tenant(&mut sync, "+15550540001", "standard", 100, None);
    sync.batch_execute("ANALYZE phone_numbers").unwrap();
    let pool = callvisor::db::build_async_pool(&db.url, 1, Duration::from_secs(5)).unwrap();
    let mut conn = pool.get().await.unwrap();
    let tenant_id = uuid::Uuid::parse_str(&tenant_id).unwrap();

    for k in 0..3 {
        // Act
        let holder = format!("h{k}");
        let claim = callvisor::db::numbers::Claim {
            tenant_id,
            holder: &holder,
            instance_id: "i1",
            use_dedicated: false,
            use_shared: true,
            ttl_seconds: 60.0,
        };
        let leased = callvisor::db::numbers::claim(&mut conn, &claim)
            .await
            .unwrap();

        // Assert
        assert!(leased.is_some());
        assert_eq!(
            count(
                &mut sync,
                "SELECT count(*) AS n FROM phone_numbers WHERE status = 'in_use'"
            ),
            k + 1
        );
    }
}

#[actix_web::test]
async fn importing_the_account_skips_tenants_business_numbers() {
    // Arrange: the account owns a tenant's business number and a spare one.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let business = "+14155550200";
    tenant(&mut conn, business, "standard", 100, None);
    let stand_in = twilio(&[business, "+14155550201"]);
    let instance = Instance::start(&db.url, &stand_in.base_url(), &[]).await;

    // Act
    let (status, imported) = instance
        .admin()
        .post("/admin/pool/import", &json!({}))
        .await;

    // Assert: the spare number is shared; the business number is not in the pool.
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["added"], json!(["+14155550201"]));
    assert_eq!(imported["skipped_tenant_numbers"], json!([business]));
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM phone_numbers WHERE phone_number = '{business}'")
        ),
        0
    );
}

#[actix_web::test]
async fn a_tenants_business_number_in_the_pool_is_never_lent_to_another_tenant() {
    // Arrange: two tenants' business numbers got into the pool (an old
    // import, an operator's mistake): one shared, one dedicated to a third tenant.
    let db = TestDb::migrated();
    let mut sync = db.connect();
    let owner = tenant(&mut sync, "+15550560001", "standard", 100, None);
    tenant(&mut sync, "+15550560002", "standard", 100, None);
    let other = tenant(&mut sync, "+15550560003", "enterprise", 100, None);
    sync.batch_execute(&format!(
        "INSERT INTO phone_numbers (phone_number) VALUES ('+15550560001');
         INSERT INTO phone_numbers (phone_number, dedicated_to) VALUES ('+15550560002', '{other}');"
    ))
    .unwrap();
    let pool = callvisor::db::build_async_pool(&db.url, 1, Duration::from_secs(5)).unwrap();
    let mut conn = pool.get().await.unwrap();
    let claim = |tenant: &str, holder: &'static str| callvisor::db::numbers::Claim {
        tenant_id: uuid::Uuid::parse_str(tenant).unwrap(),
        holder,
        instance_id: "i1",
        use_dedicated: true,
        use_shared: true,
        ttl_seconds: 60.0,
    };

    // Act
    let lent = callvisor::db::numbers::claim(&mut conn, &claim(&other, "o1"))
        .await
        .unwrap();
    let own = callvisor::db::numbers::claim(&mut conn, &claim(&owner, "w1"))
        .await
        .unwrap();

    // Assert: the other tenant gets neither; the owner may call from its own.
    assert!(lent.is_none(), "{lent:?}");
    assert_eq!(own.map(|l| l.phone_number).as_deref(), Some("+15550560001"));
}

#[actix_web::test]
async fn a_call_to_a_dedicated_number_reaches_its_tenant_but_a_shared_one_reaches_nobody() {
    // Arrange: an enterprise tenant with a dedicated pool number, and a shared number.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let enterprise = tenant(&mut conn, "+15550570001", "enterprise", 100, None);
    conn.batch_execute(&format!(
        "INSERT INTO phone_numbers (phone_number, dedicated_to) VALUES ('+15550570100', '{enterprise}');
         INSERT INTO phone_numbers (phone_number) VALUES ('+15550570200');"
    ))
    .unwrap();
    let stand_in = twilio(&[]);
    let instance = Instance::start(&db.url, &stand_in.base_url(), &[]).await;

    // Act
    let (dedicated_sid, dedicated) = inbound_call(&instance.address, "+15550570100").await;
    let (shared_sid, shared) = inbound_call(&instance.address, "+15550570200").await;

    // Assert: the dedicated number's call is the tenant's, on record as such.
    assert!(dedicated.contains("<Connect>"), "{dedicated}");
    assert!(dedicated.contains(&enterprise), "{dedicated}");
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM call_logs WHERE call_sid = '{dedicated_sid}' AND user_id = '{enterprise}'")
        ),
        1
    );
    // A shared number is nobody's: as before, `unknown_number`.
    assert!(
        shared.contains("<Hangup/>") && !shared.contains("<Connect>"),
        "{shared}"
    );
    let line = instance
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("CALL_REJECTED") && l.contains(&shared_sid)
        })
        .await
        .unwrap();
    assert!(line.contains("reason=unknown_number"), "{line}");
}

#[actix_web::test]
async fn a_tenants_business_number_in_the_pool_is_never_retired_nor_counted_free() {
    // Arrange: a tenant's business number and a spare number, both in the
    // pool and idle for two days.
    let db = TestDb::migrated();
    let mut sync = db.connect();
    tenant(&mut sync, "+15550580001", "standard", 100, None);
    sync.batch_execute(
        "INSERT INTO phone_numbers (phone_number, provider_sid, created_at) VALUES
             ('+15550580001', 'PNbusiness', now() - interval '2 days'),
             ('+15550580002', 'PNspare', now() - interval '2 days');",
    )
    .unwrap();
    let pool = callvisor::db::build_async_pool(&db.url, 1, Duration::from_secs(5)).unwrap();
    let mut conn = pool.get().await.unwrap();

    // Act
    let census = callvisor::db::numbers::census(&mut conn).await.unwrap();
    let retiring = callvisor::db::numbers::take_idle(&mut conn, 3600.0, 0, 10)
        .await
        .unwrap();

    // Assert: only the spare is free for the pool and released at Twilio.
    assert_eq!((census.free_shared, census.total), (1, 2));
    let numbers: Vec<&str> = retiring.iter().map(|r| r.phone_number.as_str()).collect();
    assert_eq!(numbers, ["+15550580002"]);
}
