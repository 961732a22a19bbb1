//! The schema refuses bad data itself, whatever code writes it.

use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::PgConnection;

use crate::helpers::db::TestDb;

fn refused(conn: &mut PgConnection, sql: &str) -> DatabaseErrorKind {
    match conn.batch_execute(sql) {
        Err(Error::DatabaseError(kind, _)) => kind,
        other => panic!("expected a database error for {sql}, got {other:?}"),
    }
}

fn setup() -> (TestDb, PgConnection) {
    let db = TestDb::migrated();
    let mut conn = db.connect();
    conn.batch_execute(
        "INSERT INTO profiles (phone_number, is_subscribed) VALUES ('+15550000001', true);
         INSERT INTO call_logs (call_sid, user_id)
             SELECT 'CA1', id FROM profiles WHERE phone_number = '+15550000001';",
    )
    .unwrap();
    (db, conn)
}

#[test]
fn a_tenant_is_created_from_phone_number_and_subscription_alone() {
    let (_db, mut conn) = setup();
    conn.batch_execute(
        "INSERT INTO profiles (phone_number, is_subscribed) VALUES ('+15550000002', false)",
    )
    .unwrap();
}

#[test]
fn a_duplicate_tenant_phone_number_is_refused() {
    let (_db, mut conn) = setup();
    let kind = refused(
        &mut conn,
        "INSERT INTO profiles (phone_number, is_subscribed) VALUES ('+15550000001', true)",
    );
    assert!(
        matches!(kind, DatabaseErrorKind::UniqueViolation),
        "{kind:?}"
    );
}

#[test]
fn a_malformed_phone_number_is_refused() {
    let (_db, mut conn) = setup();
    for bad in ["5550000003", "+0550000003", "+1555abc0003", ""] {
        let kind = refused(
            &mut conn,
            &format!("INSERT INTO profiles (phone_number, is_subscribed) VALUES ('{bad}', true)"),
        );
        assert!(
            matches!(kind, DatabaseErrorKind::CheckViolation),
            "{bad}: {kind:?}"
        );
    }
}

#[test]
fn a_second_reservation_for_one_call_is_refused() {
    let (_db, mut conn) = setup();
    conn.batch_execute("INSERT INTO reservation_requests (call_sid) VALUES ('CA1')")
        .unwrap();
    let kind = refused(
        &mut conn,
        "INSERT INTO reservation_requests (call_sid) VALUES ('CA1')",
    );
    assert!(
        matches!(kind, DatabaseErrorKind::UniqueViolation),
        "{kind:?}"
    );
}

#[test]
fn reservation_answers_must_be_an_object() {
    let (_db, mut conn) = setup();
    for bad in ["'[1,2]'", "'\"text\"'", "'null'", "'42'"] {
        let kind = refused(
            &mut conn,
            &format!(
                "INSERT INTO reservation_requests (call_sid, answers) VALUES ('CA1', {bad}::jsonb)"
            ),
        );
        assert!(
            matches!(kind, DatabaseErrorKind::CheckViolation),
            "{bad}: {kind:?}"
        );
    }
    conn.batch_execute(
        "INSERT INTO reservation_requests (call_sid, answers) VALUES ('CA1', '{\"party\": 4}')",
    )
    .unwrap();
}

#[test]
fn a_bad_reservation_date_or_time_is_refused() {
    let (_db, mut conn) = setup();
    for (date, time) in [
        ("'2026-02-30'", "'19:00'"),
        ("'tomorrow evening'", "'19:00'"),
        ("'2026-12-24'", "'25:00'"),
        ("'2026-12-24'", "'19:00:30'"),
        ("'2026-12-24'", "'seven pm'"),
    ] {
        assert!(
            conn.batch_execute(&format!(
                "INSERT INTO reservation_requests (call_sid, requested_date, requested_time) \
                 VALUES ('CA1', {date}, {time})"
            ))
            .is_err(),
            "{date} {time} was accepted"
        );
    }
    conn.batch_execute(
        "INSERT INTO reservation_requests (call_sid, requested_date, requested_time) \
         VALUES ('CA1', '2026-12-24', '19:30')",
    )
    .unwrap();
}

#[test]
fn an_sms_is_recorded_with_its_time_and_decisions_need_one() {
    let (_db, mut conn) = setup();
    conn.batch_execute("INSERT INTO reservation_requests (call_sid) VALUES ('CA1')")
        .unwrap();
    let kind = refused(
        &mut conn,
        "UPDATE reservation_requests SET sms_body_sent = 'Confirmed' WHERE call_sid = 'CA1'",
    );
    assert!(
        matches!(kind, DatabaseErrorKind::CheckViolation),
        "{kind:?}"
    );
    let kind = refused(
        &mut conn,
        "UPDATE reservation_requests SET status = 'approved' WHERE call_sid = 'CA1'",
    );
    assert!(
        matches!(kind, DatabaseErrorKind::CheckViolation),
        "{kind:?}"
    );
    conn.batch_execute(
        "UPDATE reservation_requests SET status = 'approved', sms_body_sent = 'Confirmed', \
         sms_sent_at = now() WHERE call_sid = 'CA1'",
    )
    .unwrap();
}

#[test]
fn an_unknown_pool_status_is_refused() {
    let (_db, mut conn) = setup();
    let kind = refused(
        &mut conn,
        "INSERT INTO phone_numbers (phone_number, status) VALUES ('+15550000009', 'broken')",
    );
    assert!(
        matches!(kind, DatabaseErrorKind::CheckViolation),
        "{kind:?}"
    );
}

#[test]
fn an_in_use_number_must_carry_a_complete_lease() {
    let (_db, mut conn) = setup();
    let kind = refused(
        &mut conn,
        "INSERT INTO phone_numbers (phone_number, status) VALUES ('+15550000009', 'in_use')",
    );
    assert!(
        matches!(kind, DatabaseErrorKind::CheckViolation),
        "{kind:?}"
    );
    conn.batch_execute(
        "INSERT INTO phone_numbers (phone_number, status, lease_holder, lease_instance, lease_expires_at) \
         VALUES ('+15550000009', 'in_use', 'CA1', 'i1', now() + interval '1 minute')",
    )
    .unwrap();
}

#[test]
fn transcripts_are_an_array_and_segments_unique_per_call_and_sequence() {
    let (_db, mut conn) = setup();
    let kind = refused(
        &mut conn,
        "UPDATE call_logs SET transcript = '{}' WHERE call_sid = 'CA1'",
    );
    assert!(
        matches!(kind, DatabaseErrorKind::CheckViolation),
        "{kind:?}"
    );
    conn.batch_execute(
        "INSERT INTO transcript_segments (call_sid, seq, role, text, spoken_at) VALUES ('CA1', 0, 'user', 'hi', now())",
    )
    .unwrap();
    let kind = refused(
        &mut conn,
        "INSERT INTO transcript_segments (call_sid, seq, role, text, spoken_at) VALUES ('CA1', 0, 'assistant', 'hello', now())",
    );
    assert!(
        matches!(kind, DatabaseErrorKind::UniqueViolation),
        "{kind:?}"
    );
    let kind = refused(
        &mut conn,
        "INSERT INTO transcript_segments (call_sid, seq, role, text, spoken_at) VALUES ('CA-unknown', 0, 'user', 'x', now())",
    );
    assert!(
        matches!(kind, DatabaseErrorKind::ForeignKeyViolation),
        "{kind:?}"
    );
}
