//! Outbound campaigns against the Twilio REST stand-in, with this test playing
//! the carrier: it watches the calls the service creates and ends each one
//! with a status callback. Concurrency stays within the pool, every outcome
//! is recorded, every number comes back, and a campaign whose instance is
//! killed is finished by another without calling anyone twice.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use callvisor_standins::TwilioRest;
use serde_json::{json, Value};

use crate::helpers::db::TestDb;
use crate::helpers::pool::{
    call_ended, count, pairs, shared_numbers, tenant, twilio, Instance, PUBLIC_URL,
};

/// Twilio outcomes handed out in turn.
const OUTCOMES: [&str; 4] = ["completed", "busy", "no-answer", "completed"];

/// The carrier's side of the campaign: which calls exist and which ended.
#[derive(Default)]
struct Carrier {
    /// CallSid → where its status goes (`StatusCallback`'s path and query),
    /// for every call the service created.
    created: HashMap<String, String>,
    /// Calls ended so far (status callback sent).
    ended: HashSet<String>,
    /// Most calls live at once.
    max_live: usize,
    /// Calls per `To`.
    per_number: HashMap<String, usize>,
    /// `To` numbers this carrier leaves alone (another part of the test ends them).
    ignored: HashSet<String>,
}

impl Carrier {
    /// Looks at the stand-in's calls; records new ones and checks concurrency.
    fn observe(&mut self, stand_in: &TwilioRest) {
        for call in stand_in.calls() {
            if call.direction == "outbound-api"
                && !self.created.contains_key(&call.sid)
                && !self.ignored.contains(&call.to)
            {
                *self.per_number.entry(call.to.clone()).or_default() += 1;
                let callback = call.status_callback.clone().expect("a StatusCallback");
                let path = callback
                    .strip_prefix(PUBLIC_URL)
                    .expect("a StatusCallback under PUBLIC_URL")
                    .to_owned();
                self.created.insert(call.sid.clone(), path);
            }
        }
        self.max_live = self.max_live.max(self.live().len());
    }

    fn live(&self) -> Vec<String> {
        let mut live: Vec<String> = self
            .created
            .keys()
            .filter(|sid| !self.ended.contains(*sid))
            .cloned()
            .collect();
        live.sort();
        live
    }

    /// Ends up to `n` live calls through `address`'s status callback.
    async fn end_some(&mut self, address: &str, n: usize) {
        for sid in self.live().into_iter().take(n) {
            let k = self.ended.len();
            let outcome = OUTCOMES[k % OUTCOMES.len()];
            let seconds = if outcome == "completed" {
                30 + k as i32
            } else {
                0
            };
            call_ended(address, &self.created[&sid], &sid, outcome, seconds).await;
            self.ended.insert(sid);
        }
    }
}

fn targets(first: usize, n: usize) -> Vec<String> {
    (first..first + n)
        .map(|i| format!("+1555080{i:04}"))
        .collect()
}

async fn campaign(address: &str, id: &str) -> Value {
    let (status, body) = crate::helpers::pool::Admin::new(address)
        .get(&format!("/admin/campaigns/{id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[actix_web::test]
async fn thirty_calls_over_a_pool_of_five_keep_five_at_once_and_record_every_outcome() {
    // Arrange: five shared numbers, a tenant allowed many calls.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let pool = shared_numbers(&mut conn, 0, 5);
    let tenant_id = tenant(&mut conn, "+15550900001", "standard", 100, None);
    let stand_in = twilio(&[]);
    let instance = Instance::start(&db.url, &stand_in.base_url(), &[]).await;
    let numbers = targets(0, 30);
    let mut submitted: Vec<Value> = numbers.iter().map(|n| json!(n)).collect();
    submitted.insert(3, json!("not a number"));
    submitted.insert(7, json!(numbers[0].clone()));

    // Act
    let (status, created) = instance
        .admin()
        .post(
            "/admin/campaigns",
            &json!({ "tenant_id": tenant_id, "numbers": submitted, "max_concurrency": 10, "name": "spring" }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut carrier = Carrier::default();
    let deadline = Instant::now() + Duration::from_secs(40);
    while carrier.ended.len() < 30 {
        if Instant::now() > deadline {
            let state = pairs(
                &mut conn,
                "SELECT status AS a, count(*)::text AS b FROM campaign_targets GROUP BY status
                 UNION ALL SELECT 'campaign ' || status, COALESCE(finished_at::text, '-') FROM campaigns
                 UNION ALL SELECT 'call ' || call_sid, status || ' ' || (ended_at IS NULL)::text FROM call_logs
                 UNION ALL SELECT 'number ' || phone_number, status || ' ' || COALESCE(lease_holder, '-') FROM phone_numbers",
            );
            panic!("stuck: {state:#?}\n{}", instance.dump());
        }
        carrier.observe(&stand_in);
        assert!(carrier.live().len() <= 5, "more calls than pool numbers");
        // Let the pool fill up before calls end (the last ones end as they come).
        if carrier.live().len() == 5 || carrier.created.len() == 30 {
            carrier.end_some(&instance.address, 2).await;
        }
        actix_web::rt::time::sleep(Duration::from_millis(30)).await;
    }

    // Assert: the bad entries were reported, not dropped silently.
    assert_eq!(created["accepted"], 30);
    assert_eq!(
        created["rejected"],
        json!([
            { "index": 3, "input": "not a number", "reason": "invalid_phone_number" },
            { "index": 7, "input": numbers[0], "reason": "duplicate" }
        ])
    );
    // Five at once at most (and the pool was used to the full), each number
    // called once, every call shaped for the AI bridge and the callbacks.
    assert_eq!(carrier.max_live, 5);
    assert_eq!(carrier.per_number.len(), 30);
    assert!(carrier.per_number.values().all(|n| *n == 1));
    for params in stand_in.calls_created() {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("Url"),
            Some(format!("http://127.0.0.1/twilio/voice?campaign={id}").as_str())
        );
        let target = get("StatusCallback")
            .and_then(|c| c.strip_prefix("http://127.0.0.1/twilio/status?target="))
            .and_then(|t| uuid::Uuid::parse_str(t).ok());
        assert!(target.is_some(), "{:?}", get("StatusCallback"));
        let events: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "StatusCallbackEvent")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(events, ["initiated", "ringing", "answered", "completed"]);
        assert!(pool.iter().any(|p| Some(p.as_str()) == get("From")));
    }
    // Every outcome recorded, the campaign complete, every number back.
    let body = campaign(&instance.address, &id).await;
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["progress"]["done"], 30);
    let expected = |outcome: &str| {
        (0..30)
            .filter(|k| OUTCOMES[k % OUTCOMES.len()] == outcome)
            .count()
    };
    assert_eq!(
        body["progress"]["by_status"],
        json!({ "pending": 0, "claimed": 0, "dialing": 0, "calling": 0,
                "completed": expected("completed"), "busy": expected("busy"),
                "no-answer": expected("no-answer"), "failed": 0, "canceled": 0, "uncertain": 0 })
    );
    let targets = body["targets"].as_array().unwrap();
    assert!(targets
        .iter()
        .all(|t| t["call_sid"].is_string() && t["attempts"] == 1));
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM phone_numbers WHERE status = 'available'"
        ),
        5
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT sum(total_calls)::bigint AS n FROM phone_numbers"
        ),
        30
    );
    // Rotation spread the calls over the pool: every number carried some.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM phone_numbers WHERE total_calls >= 1"
        ),
        5
    );
    // The calls are on record, ended, as outbound calls of the tenant.
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM call_logs WHERE user_id = '{tenant_id}' AND direction = 'outbound' AND ended_at IS NOT NULL AND number_used IS NOT NULL")
        ),
        30
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM call_logs WHERE call_sid LIKE 'pending-%'"
        ),
        0
    );
    instance
        .count_lines(&format!("CAMPAIGN_FINISHED campaign={id}"), 1)
        .await;
    let logs = instance.dump();
    assert!(logs.contains(&format!("CAMPAIGN_STARTED campaign={id}")));
    assert!(
        logs.contains(&format!("CAMPAIGN_FINISHED campaign={id}")) || {
            // The last outcome may have been the one that completed it (no runner line).
            body["status"] == "completed"
        }
    );
}

#[actix_web::test]
async fn a_campaign_survives_its_instance_being_killed_without_calling_anyone_twice() {
    // Arrange
    let db = TestDb::migrated();
    let mut conn = db.connect();
    shared_numbers(&mut conn, 0, 5);
    let tenant_id = tenant(&mut conn, "+15550910001", "standard", 100, None);
    let stand_in = twilio(&[]);
    let fast_recovery = [
        ("CALLVISOR__CAMPAIGNS__CLAIM_TIMEOUT_SECONDS", "2"),
        ("CALLVISOR__CAMPAIGNS__DIAL_TIMEOUT_SECONDS", "4"),
    ];
    let mut first = Instance::start(&db.url, &stand_in.base_url(), &fast_recovery).await;
    let numbers = targets(100, 30);
    let (status, created) = first
        .admin()
        .post(
            "/admin/campaigns",
            &json!({ "tenant_id": tenant_id, "numbers": numbers, "max_concurrency": 10 }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut carrier = Carrier::default();

    // Act: the first instance places calls; kill it with five under way.
    let deadline = Instant::now() + Duration::from_secs(20);
    while carrier.created.len() < 10 {
        assert!(Instant::now() < deadline, "stuck:\n{}", first.dump());
        carrier.observe(&stand_in);
        if carrier.live().len() == 5 && carrier.created.len() < 10 {
            carrier.end_some(&first.address, 5).await;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    carrier.observe(&stand_in);
    let at_kill = pairs(
        &mut conn,
        &format!("SELECT status AS a, count(*)::text AS b FROM campaign_targets WHERE campaign_id = '{id}' GROUP BY status ORDER BY 1"),
    );
    // Another instance takes over; the calls under way end on it.
    let second = Instance::start(&db.url, &stand_in.base_url(), &fast_recovery).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        carrier.observe(&stand_in);
        assert!(carrier.live().len() <= 5, "more calls than pool numbers");
        let done = count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM campaign_targets WHERE campaign_id = '{id}' AND ended_at IS NOT NULL"),
        );
        if done == 30 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stuck (at kill: {at_kill:?}):\n{}",
            second.dump()
        );
        carrier.end_some(&second.address, 2).await;
        actix_web::rt::time::sleep(Duration::from_millis(30)).await;
    }

    // Assert: nobody was called twice; every target has an outcome; a target
    // left `uncertain` (its request may have left before the kill) was not retried.
    assert!(
        carrier.per_number.values().all(|n| *n == 1),
        "called twice: {:?}",
        carrier.per_number
    );
    let body = campaign(&second.address, &id).await;
    assert_eq!(body["status"], "completed", "{body}");
    let by_status = &body["progress"]["by_status"];
    for target in body["targets"].as_array().unwrap() {
        let to = target["to_number"].as_str().unwrap();
        let calls = carrier.per_number.get(to).copied().unwrap_or(0);
        if target["status"] == "uncertain" {
            // Its request may have reached Twilio before the kill: never repeated.
            assert!(calls <= 1, "{target}");
        } else {
            assert_eq!(calls, 1, "{target} (at kill: {at_kill:?})");
        }
    }
    assert!(by_status["uncertain"].as_u64().unwrap() <= 1, "{by_status}");
    assert!(
        second.count_lines("CAMPAIGN_CALL_PLACED", 1).await >= 1,
        "the second instance carried on"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM phone_numbers WHERE status = 'available'"
        ),
        5
    );
}

#[actix_web::test]
async fn admission_claims_one_target_at_a_time_within_the_campaigns_concurrency() {
    // Arrange: a campaign of five allowed two calls at once.
    let db = TestDb::migrated();
    let mut sync = db.connect();
    let tenant_id = tenant(&mut sync, "+15550920001", "standard", 100, None);
    let pool = callvisor::db::build_async_pool(&db.url, 1, Duration::from_secs(5)).unwrap();
    let mut conn = pool.get().await.unwrap();
    let tenant_id = uuid::Uuid::parse_str(&tenant_id).unwrap();
    let id =
        callvisor::db::campaigns::create(&mut conn, tenant_id, None, 2, "test", &targets(0, 5))
            .await
            .unwrap();

    // Act
    let mut admitted = Vec::new();
    for _ in 0..4 {
        admitted.push(
            callvisor::db::campaigns::admit_next(&mut conn, id, "i1")
                .await
                .unwrap(),
        );
    }

    // Assert: two admitted, one target and one placeholder call each; then full.
    use callvisor::db::campaigns::Admission;
    assert!(matches!(admitted[0], Admission::Admitted { .. }));
    assert!(matches!(admitted[1], Admission::Admitted { .. }));
    assert!(matches!(admitted[2], Admission::CampaignFull));
    assert!(matches!(admitted[3], Admission::CampaignFull));
    assert_eq!(
        pairs(&mut sync, "SELECT status AS a, count(*)::text AS b FROM campaign_targets GROUP BY status ORDER BY 1"),
        [("claimed".to_owned(), "2".to_owned()), ("pending".to_owned(), "3".to_owned())]
    );
    assert_eq!(
        count(&mut sync, "SELECT count(*) AS n FROM call_logs WHERE call_sid LIKE 'pending-%' AND direction = 'outbound'"),
        2
    );
}

#[actix_web::test]
async fn a_status_that_overtakes_the_rest_answer_still_records_the_outcome() {
    // Arrange: Twilio's REST answers late, so the call exists (and ends) before
    // the runner hears its CallSid.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    shared_numbers(&mut conn, 0, 1);
    let tenant_id = tenant(&mut conn, "+15550920001", "standard", 10, None);
    let stand_in = twilio(&[]);
    stand_in.delay_answers(Duration::from_secs(3));
    let instance = Instance::start(&db.url, &stand_in.base_url(), &[]).await;
    let (status, created) = instance
        .admin()
        .post(
            "/admin/campaigns",
            &json!({ "tenant_id": tenant_id, "numbers": ["+15550920100"] }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut carrier = Carrier::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while carrier.created.is_empty() {
        assert!(Instant::now() < deadline, "no call:\n{}", instance.dump());
        carrier.observe(&stand_in);
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }

    // Act: the call ends at once (the carrier's first outcome, `completed`);
    // its status arrives while the REST answer is still on its way.
    carrier.end_some(&instance.address, 1).await;
    let sid = carrier.ended.iter().next().unwrap().clone();
    let target = format!(
        "SELECT status AS a, COALESCE(call_sid, '-') AS b FROM campaign_targets WHERE campaign_id = '{id}'"
    );
    assert!(
        !instance.dump().contains("CAMPAIGN_CALL_PLACED"),
        "the REST answer came before the status: the race was not exercised"
    );
    assert_eq!(
        pairs(&mut conn, &target),
        [("completed".to_owned(), sid.clone())],
        "recorded before the REST answer"
    );
    assert_eq!(
        instance.count_lines("CAMPAIGN_CALL_PLACED", 1).await,
        1,
        "the REST answer arrived:\n{}",
        instance.dump()
    );

    // Assert: the outcome stands (the late answer did not reopen the target),
    // the call's record is the real CallSid's, ended, and the number is back.
    assert_eq!(
        pairs(&mut conn, &target),
        [("completed".to_owned(), sid.clone())]
    );
    let calls = pairs(
        &mut conn,
        "SELECT call_sid AS a, status || ' ' || (ended_at IS NOT NULL)::text AS b FROM call_logs",
    );
    assert_eq!(calls, [(sid, "completed true".to_owned())]);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM phone_numbers WHERE status = 'available' AND total_calls = 1"
        ),
        1
    );
    assert_eq!(
        campaign(&instance.address, &id).await["status"],
        "completed"
    );
}

#[actix_web::test]
async fn an_uncertain_target_is_dialled_again_only_when_an_operator_says_so() {
    // Arrange: Twilio answers the first call request with a 500, so whether a
    // call was placed is unknown: the target becomes `uncertain`.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    shared_numbers(&mut conn, 0, 2);
    let tenant_id = tenant(&mut conn, "+15550930001", "standard", 10, None);
    let stand_in = twilio(&[]);
    stand_in.fail_next(1, 500);
    let instance = Instance::start(&db.url, &stand_in.base_url(), &[]).await;
    let admin = instance.admin();
    let (status, created) = admin
        .post(
            "/admin/campaigns",
            &json!({ "tenant_id": tenant_id, "numbers": ["+15550930100"] }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = campaign(&instance.address, &id).await;
        if body["status"] == "completed" {
            break body;
        }
        assert!(Instant::now() < deadline, "{body}\n{}", instance.dump());
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["targets"][0]["status"], "uncertain", "{body}");
    let target = body["targets"][0]["id"].as_str().unwrap().to_owned();
    // Not on its own: once a later campaign (another tenant's) was dialled,
    // runner rounds went by, and still the one (failed) request.
    const WITNESS: &str = "+15550930200";
    let witness = tenant(&mut conn, "+15550930002", "standard", 10, None);
    let (status, body) = admin
        .post(
            "/admin/campaigns",
            &json!({ "tenant_id": witness, "numbers": [WITNESS] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let to = |params: &Vec<(String, String)>, number: &str| {
        params.iter().any(|(k, v)| k == "To" && v == number)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stand_in.calls_created().iter().any(|p| to(p, WITNESS)) {
        assert!(
            Instant::now() < deadline,
            "witness not dialled:\n{}",
            instance.dump()
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let witness_call = stand_in
        .calls()
        .into_iter()
        .find(|c| c.to == WITNESS)
        .unwrap();
    let callback = witness_call.status_callback.unwrap();
    call_ended(
        &instance.address,
        callback.strip_prefix(PUBLIC_URL).unwrap(),
        &witness_call.sid,
        "completed",
        5,
    )
    .await;
    assert_eq!(
        stand_in
            .calls_created()
            .iter()
            .filter(|p| to(p, "+15550930100"))
            .count(),
        1
    );

    // Act: an unknown target, then the operator's retry.
    let (status, body) = admin
        .post(
            &format!(
                "/admin/campaigns/{id}/targets/{}/retry",
                uuid::Uuid::new_v4()
            ),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("target_not_found"))
    );
    let (status, body) = admin
        .post(
            &format!("/admin/campaigns/{id}/targets/{target}/retry"),
            &json!({}),
        )
        .await;

    // Assert: pending again, the campaign running again, and the call placed.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "running", "{body}");
    let mut carrier = Carrier {
        ignored: HashSet::from([WITNESS.to_owned()]),
        ..Carrier::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while carrier.created.is_empty() {
        assert!(
            Instant::now() < deadline,
            "not re-dialled:\n{}",
            instance.dump()
        );
        carrier.observe(&stand_in);
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    carrier.end_some(&instance.address, 1).await;
    let body = campaign(&instance.address, &id).await;
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["targets"][0]["status"], "completed", "{body}");
    assert_eq!(carrier.per_number["+15550930100"], 1);
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM audit_log WHERE action = 'campaign.target.retry' AND target = '{target}'")
        ),
        1
    );
    // Only uncertain targets: a completed one is refused.
    let (status, body) = admin
        .post(
            &format!("/admin/campaigns/{id}/targets/{target}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("target_not_uncertain"))
    );
}
