//! The admin API: bearer token in constant time (401 without, 403 wrong),
//! every change audited, bad input answered with a stable code and changing
//! nothing, tenant scopes that never show another tenant's data, per-tenant
//! usage and cost from configured prices, and hand-off to a human by the
//! agent's tool and by an operator.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use serde_json::{json, Value};

use crate::helpers::calls::CallWorld;
use crate::helpers::db::TestDb;
use crate::helpers::pool::{count, pairs, tenant, twilio, Admin, Instance};

#[actix_web::test]
async fn the_admin_api_wants_the_bearer_token() {
    // Arrange
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let stand_in = twilio(&[]);
    let instance = Instance::start(&db.url, &stand_in.base_url(), &[]).await;
    let admin = instance.admin();
    let anonymous = admin.with_token(None);
    let wrong = admin.with_token(Some("admin-test-token-0123456780"));
    let body = json!({ "phone_number": "+15550600001" });

    // Act + Assert: no token, another scheme, a wrong token.
    for (path, post) in [
        ("/admin/pool", false),
        ("/admin/calls", false),
        ("/admin/usage", false),
        ("/admin/no-such-thing", false),
        ("/admin/pool/numbers", true),
    ] {
        let (status, err) = if post {
            anonymous.post(path, &body).await
        } else {
            anonymous.get(path).await
        };
        assert_eq!(
            (status, err["error"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
        let (status, err) = if post {
            wrong.post(path, &body).await
        } else {
            wrong.get(path).await
        };
        assert_eq!(
            (status, err["error"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
    }
    let response = awc::Client::new()
        .get(format!("{}/admin/pool", instance.address))
        .insert_header(("Authorization", "Basic YWRtaW46YWRtaW4="))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response
            .headers()
            .get("WWW-Authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"callvisor-admin\"")
    );
    // Nothing was changed or audited by the refused requests.
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM phone_numbers"),
        0
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM audit_log"), 0);
    assert_eq!(instance.count_lines("ADMIN_AUTH_FAILED", 11).await, 11);
    assert!(
        !instance.dump().contains("admin-test-token"),
        "a token in the logs"
    );

    // The right token.
    let (status, pool) = admin.get("/admin/pool").await;
    assert_eq!(status, 200, "{pool}");
    assert_eq!(pool["counts"]["total"], 0);
}

fn audit_actions(conn: &mut diesel::PgConnection) -> Vec<(String, String)> {
    pairs(
        conn,
        "SELECT action AS a, actor || ' ' || COALESCE(target, '-') AS b FROM audit_log ORDER BY id",
    )
}

#[actix_web::test]
async fn every_change_is_audited_and_bad_input_changes_nothing() {
    // Arrange
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let standard = tenant(&mut conn, "+15550610001", "standard", 5, None);
    let enterprise = tenant(&mut conn, "+15550610002", "enterprise", 5, None);
    let stand_in = twilio(&["+14155550100"]);
    let instance = Instance::start(&db.url, &stand_in.base_url(), &[]).await;
    let admin = instance.admin();
    let number = "+15550620001";

    // Act + Assert: bad input, each with its code, none changing anything.
    let bad: Vec<(u16, &str, (u16, Value))> = vec![
        (400, "invalid_phone_number", admin.post("/admin/pool/numbers", &json!({ "phone_number": "555-0100" })).await),
        (400, "invalid_json", admin.post("/admin/pool/numbers", &json!({ "phone_number": number, "colour": "red" })).await),
        (400, "invalid_json", admin.post("/admin/pool/numbers", &json!({ "number": number })).await),
        (400, "invalid_status", admin.post("/admin/pool/numbers", &json!({ "phone_number": number, "status": "broken" })).await),
        (422, "status_not_settable", admin.post("/admin/pool/numbers", &json!({ "phone_number": number, "status": "in_use" })).await),
        (422, "tenant_not_found", admin.post("/admin/pool/numbers", &json!({ "phone_number": number, "dedicated_to": "6f1b3c1e-0000-4000-8000-000000000000" })).await),
        (400, "invalid_tenant", admin.post("/admin/pool/numbers", &json!({ "phone_number": number, "dedicated_to": "acme" })).await),
        (422, "plan_not_dedicated", admin.post("/admin/pool/numbers", &json!({ "phone_number": number, "dedicated_to": standard })).await),
        (404, "number_not_found", admin.delete(&format!("/admin/pool/numbers/{number}")).await),
        (400, "invalid_phone_number", admin.delete("/admin/pool/numbers/abc").await),
        (400, "invalid_campaign_id", admin.get("/admin/campaigns/42").await),
        (404, "campaign_not_found", admin.get("/admin/campaigns/6f1b3c1e-0000-4000-8000-000000000000").await),
        (400, "invalid_call_sid", admin.post("/admin/calls/CA%20x/hangup", &json!({})).await),
        (404, "call_not_found", admin.post("/admin/calls/CA00000000000000000000000000000001/hangup", &json!({})).await),
        (422, "no_valid_numbers", admin.post("/admin/campaigns", &json!({ "tenant_id": standard, "numbers": ["12", 7] })).await),
        (400, "invalid_concurrency", admin.post("/admin/campaigns", &json!({ "tenant_id": standard, "numbers": ["+15550700001"], "max_concurrency": 0 })).await),
        (400, "invalid_month", admin.get("/admin/usage?month=2026-13").await),
        (400, "invalid_tenant", admin.get("/admin/pool?tenant=nobody").await),
        (400, "invalid_holder", admin.delete("/admin/pool/allocations/a%20b").await),
    ];
    for (i, (status, code, (got, body))) in bad.iter().enumerate() {
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(*code)),
            "case {i}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "case {i}: {body}"
        );
    }
    let response = awc::Client::new()
        .post(format!("{}/admin/pool/numbers", instance.address))
        .insert_header(("Authorization", "Bearer admin-test-token-0123456789"))
        .insert_header(("Content-Type", "application/json"))
        .send_body("{not json")
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM phone_numbers"),
        0
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM campaigns"), 0);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM audit_log"), 0);

    // Act: changes, one operator named by X-Admin-Actor for one of them.
    let (status, added) = admin
        .post(
            "/admin/pool/numbers",
            &json!({ "phone_number": "+1 (555) 062-0001" }),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["phone_number"], number);
    assert_eq!(added["status"], "available");
    let (status, dup) = admin
        .post("/admin/pool/numbers", &json!({ "phone_number": number }))
        .await;
    assert_eq!(
        (status, dup["error"].as_str()),
        (409, Some("number_exists"))
    );
    let named = awc::Client::new()
        .post(format!(
            "{}/admin/pool/numbers/{number}/assign",
            instance.address
        ))
        .insert_header(("Authorization", "Bearer admin-test-token-0123456789"))
        .insert_header(("X-Admin-Actor", "alice"))
        .send_json(&json!({ "tenant_id": enterprise }))
        .await
        .unwrap();
    assert_eq!(named.status().as_u16(), 200);
    let (status, body) = admin
        .post(
            &format!("/admin/pool/numbers/{number}/status"),
            &json!({ "status": "maintenance" }),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("maintenance")),
        "{body}"
    );
    let (status, body) = admin
        .post(
            &format!("/admin/pool/numbers/{number}/unassign"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["dedicated_to"].clone()),
        (200, Value::Null),
        "{body}"
    );
    let (status, body) = admin.post("/admin/pool/import", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    // A leased number cannot be removed or parked meanwhile.
    let (status, lease) = admin
        .post(
            "/admin/pool/allocations",
            &json!({ "tenant_id": standard, "holder": "ops-1" }),
        )
        .await;
    assert_eq!(
        (status, lease["phone_number"].as_str()),
        (201, Some("+14155550100")),
        "{lease}"
    );
    let (status, body) = admin.delete("/admin/pool/numbers/+14155550100").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("number_in_use"))
    );
    let (status, body) = admin
        .post(
            "/admin/pool/numbers/+14155550100/status",
            &json!({ "status": "maintenance" }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("number_in_use"))
    );
    let (status, _) = admin.delete("/admin/pool/allocations/ops-1").await;
    assert_eq!(status, 200);
    let (status, body) = admin.delete(&format!("/admin/pool/numbers/{number}")).await;
    assert_eq!((status, body["removed"].as_str()), (200, Some(number)));

    // Assert: one audit row per change, none for refusals.
    let actions = audit_actions(&mut conn);
    let expected = [
        ("pool.number.add", format!("admin {number}")),
        ("pool.number.assign", format!("admin:alice {number}")),
        ("pool.number.status", format!("admin {number}")),
        ("pool.number.unassign", format!("admin {number}")),
        ("pool.import", "admin -".to_owned()),
        ("pool.allocate", "admin +14155550100".to_owned()),
        ("pool.release", "admin +14155550100".to_owned()),
        ("pool.number.remove", format!("admin {number}")),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), b.clone()))
        .collect();
    assert_eq!(actions, expected);
    let (status, audit) = admin.get("/admin/audit?limit=3").await;
    assert_eq!(status, 200);
    assert_eq!(audit["entries"][0]["action"], "pool.number.remove");
    assert_eq!(audit["entries"].as_array().unwrap().len(), 3);
    assert_eq!(
        instance.count_lines("ADMIN_ACTION", expected.len()).await,
        expected.len()
    );
}

#[actix_web::test]
async fn a_tenant_scope_never_shows_another_tenants_data() {
    // Arrange: two enterprise tenants, each with a dedicated number, live and
    // finished calls, and a campaign.
    let db = TestDb::migrated();
    let mut conn = db.connect();
    let one = tenant(&mut conn, "+15550630001", "enterprise", 5, None);
    let two = tenant(&mut conn, "+15550630002", "enterprise", 5, None);
    conn.batch_execute(&format!(
        "INSERT INTO phone_numbers (phone_number, dedicated_to) VALUES
             ('+15550640001', '{one}'), ('+15550640002', '{two}');
         INSERT INTO phone_numbers (phone_number) VALUES ('+15550640003');
         INSERT INTO call_logs (call_sid, user_id, direction, instance_id, heartbeat_at) VALUES
             ('CA00000000000000000000000000000011', '{one}', 'inbound', 'other-instance', now()),
             ('CA00000000000000000000000000000021', '{two}', 'inbound', 'other-instance', now());
         INSERT INTO call_logs (call_sid, user_id, direction, started_at, ended_at, duration_seconds) VALUES
             ('CA00000000000000000000000000000012', '{one}', 'inbound', now() - interval '5 minutes', now(), 61),
             ('CA00000000000000000000000000000013', '{one}', 'inbound', now() - interval '5 minutes', now(), 30),
             ('CA00000000000000000000000000000014', '{one}', 'outbound', now() - interval '5 minutes', now(), 125),
             ('CA00000000000000000000000000000022', '{two}', 'inbound', now() - interval '5 minutes', now(), 600);"
    ))
    .unwrap();
    let stand_in = twilio(&[]);
    let instance = Instance::start(&db.url, &stand_in.base_url(), &[]).await;
    let admin = instance.admin();
    let mut campaigns = Vec::new();
    for t in [&one, &two] {
        let (status, body) = admin
            .post(
                "/admin/campaigns",
                &json!({ "tenant_id": t, "numbers": ["+15550700001"], "name": format!("c-{t}") }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        campaigns.push(body["id"].as_str().unwrap().to_owned());
    }

    // Act
    let scoped = |path: &str| {
        format!(
            "{path}{}tenant={one}",
            if path.contains('?') { "&" } else { "?" }
        )
    };
    let (_, pool) = admin.get(&scoped("/admin/pool")).await;
    let (_, calls) = admin.get(&scoped("/admin/calls")).await;
    let (_, list) = admin.get(&scoped("/admin/campaigns")).await;
    let (own_status, _) = admin
        .get(&scoped(&format!("/admin/campaigns/{}", campaigns[0])))
        .await;
    let (other_status, other) = admin
        .get(&scoped(&format!("/admin/campaigns/{}", campaigns[1])))
        .await;
    let (_, usage) = admin.get(&scoped("/admin/usage")).await;
    let (unknown_status, unknown) = admin
        .get("/admin/pool?tenant=6f1b3c1e-0000-4000-8000-000000000000")
        .await;

    // Assert: only tenant one's numbers, calls, campaigns and usage.
    let numbers: Vec<&str> = pool["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["phone_number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["+15550640001"]);
    assert_eq!(pool["counts"]["total"], 1);
    // (Its campaign may be calling already: those calls are its own too.)
    let calls = calls["calls"].as_array().unwrap();
    assert!(
        calls.iter().all(|c| c["tenant_id"] == one.as_str()),
        "{calls:?}"
    );
    assert!(calls
        .iter()
        .any(|c| c["call_sid"] == "CA00000000000000000000000000000011"));
    assert!(!calls
        .iter()
        .any(|c| c["call_sid"] == "CA00000000000000000000000000000021"));
    let ids: Vec<&str> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [campaigns[0].as_str()]);
    assert_eq!(own_status, 200);
    assert_eq!(
        (other_status, other["error"].as_str()),
        (404, Some("campaign_not_found"))
    );
    let rows = usage["tenants"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["tenant_id"], one.as_str());
    assert_eq!(row["calls"], json!({ "inbound": 2, "outbound": 1 }));
    // 61 s + 30 s inbound: 2 + 1 billed minutes; 125 s outbound: 3.
    assert_eq!(row["minutes"], json!({ "inbound": 3, "outbound": 3 }));
    assert_eq!(row["numbers"], 2, "its own number and its dedicated one");
    // 2 × $1.15 + 3 × $0.0085 + 3 × $0.013
    assert_eq!(row["cost_usd"]["total"].as_f64(), Some(2.3645));
    assert_eq!(usage["total_cost_usd"].as_f64(), Some(2.3645));
    assert_eq!(
        (unknown_status, unknown["error"].as_str()),
        (404, Some("tenant_not_found"))
    );
    let (_, audit) = admin.get(&scoped("/admin/audit")).await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["details"]["tenant_id"], one.as_str());
    // Unscoped, the operator sees both.
    let (_, all_calls) = admin.get("/admin/calls").await;
    let all_calls = all_calls["calls"].as_array().unwrap();
    for sid in [
        "CA00000000000000000000000000000011",
        "CA00000000000000000000000000000021",
    ] {
        assert!(all_calls.iter().any(|c| c["call_sid"] == sid));
    }
    let (_, all_usage) = admin.get("/admin/usage").await;
    assert_eq!(all_usage["tenants"].as_array().unwrap().len(), 2);
}

fn dial_of(updates: &[Vec<(String, String)>]) -> String {
    updates
        .iter()
        .flatten()
        .find(|(k, _)| k == "Twiml")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[actix_web::test]
async fn transfer_dials_the_tenants_hand_off_number_by_tool_and_by_operator() {
    // Arrange: the call world (its tenant's hand-off number is +15550177777).
    let world = CallWorld::start().await;
    let admin = Admin::new(&world.app.address);
    let mut caller = world.caller();
    caller.speak_for = Duration::from_secs(4);
    caller.end = callvisor_standins::CallEnd::Stop {
        after_audio: Duration::from_millis(300),
    };
    let by_tool = callvisor_standins::CallerSession::start(caller)
        .await
        .unwrap();
    assert!(
        world
            .standins
            .realtime
            .wait_for_sessions(1, Duration::from_secs(5))
            .await
    );

    // Act 1: the agent calls transfer_to_human.
    world
        .standins
        .realtime
        .emit_tool_call("transfer_to_human", r#"{"reason":"wants a person"}"#)
        .await;

    // Assert 1
    let sid = by_tool.call_sid().to_owned();
    assert!(
        callvisor_standins::wait_until(Duration::from_secs(5), || {
            !world.standins.twilio.call_updates(&sid).is_empty()
        })
        .await
    );
    let twiml = dial_of(&world.standins.twilio.call_updates(&sid));
    assert!(twiml.contains("<Number>+15550177777</Number>"), "{twiml}");

    // Act 2: an operator transfers a call live on another instance (its
    // record is all this instance knows of it).
    let live = "CA00000000000000000000000000000777";
    let mut conn = diesel::Connection::establish(&world.app.db.as_ref().unwrap().url).unwrap();
    let conn: &mut diesel::PgConnection = &mut conn;
    conn.batch_execute(&format!(
        "INSERT INTO call_logs (call_sid, user_id, caller_number, recipient_number, direction, instance_id, heartbeat_at)
         VALUES ('{live}', '{}', '+15557654321', '+15550100001', 'inbound', 'another-instance', now())",
        world.tenant_id
    ))
    .unwrap();
    let (status, body) = admin
        .post(&format!("/admin/calls/{live}/transfer"), &json!({}))
        .await;

    // Assert 2: the <Dial> to the tenant's number, caller ID the number called.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["to"], "+15550177777");
    let twiml = dial_of(&world.standins.twilio.call_updates(live));
    assert!(twiml.contains("<Dial"), "{twiml}");
    assert!(twiml.contains("<Number>+15550177777</Number>"), "{twiml}");
    assert!(twiml.contains(r#"callerId="+15550100001""#), "{twiml}");
    assert_eq!(
        pairs(conn, &format!("SELECT COALESCE(transferred_to, '-') AS a, action AS b FROM call_logs, audit_log WHERE call_sid = '{live}'")),
        [("+15550177777".to_owned(), "call.transfer".to_owned())]
    );

    // A tenant without a hand-off number: refused, nothing sent.
    let nobody = "CA00000000000000000000000000000778";
    conn.batch_execute(&format!(
        "INSERT INTO profiles (id, phone_number, is_subscribed) VALUES ('6f1b3c1e-0000-4000-8000-0000000000aa', '+15550100009', true);
         INSERT INTO call_logs (call_sid, user_id, direction, heartbeat_at)
         VALUES ('{nobody}', '6f1b3c1e-0000-4000-8000-0000000000aa', 'inbound', now())"
    ))
    .unwrap();
    let (status, body) = admin
        .post(&format!("/admin/calls/{nobody}/transfer"), &json!({}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("no_handoff_number")),
        "{body}"
    );
    assert!(world.standins.twilio.call_updates(nobody).is_empty());

    // And an operator can hang a live call up the same way.
    let (status, body) = admin
        .post(&format!("/admin/calls/{nobody}/hangup"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let updates = world.standins.twilio.call_updates(nobody);
    assert!(updates
        .iter()
        .flatten()
        .any(|(k, v)| k == "Status" && v == "completed"));
    let _ = by_tool.wait().await;
    world.stop().await;
}
