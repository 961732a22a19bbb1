//! A call world with `features.openai_sip` on and a driver that posts signed
//! OpenAI webhooks to it.

use std::time::Duration;

use callvisor_standins::{SipDriver, StandInsConfig};
use diesel::sql_types::{Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};
use serde_json::Value;

use super::calls::CallWorld;

/// The project's webhook secret (`whsec_` + base64 of "callvisor-test-webhook-secret").
pub const WEBHOOK_SECRET: &str = "whsec_Y2FsbHZpc29yLXRlc3Qtd2ViaG9vay1zZWNyZXQ=";

/// Starts a call world that takes SIP calls.
pub async fn start() -> CallWorld {
    start_with(&[]).await
}

/// [`start`] with extra environment.
pub async fn start_with(extra: &[(&str, &str)]) -> CallWorld {
    let mut env = vec![
        ("CALLVISOR__FEATURES__OPENAI_SIP", "true"),
        ("OPENAI_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    env.extend_from_slice(extra);
    CallWorld::start_with(StandInsConfig::default(), &env).await
}

/// A driver aimed at the world's webhook, signing with [`WEBHOOK_SECRET`].
pub fn driver(world: &CallWorld) -> SipDriver {
    SipDriver::new(
        format!("{}/openai/webhook", world.app.address),
        WEBHOOK_SECRET,
    )
}

/// A fresh OpenAI call id.
pub fn call_id() -> String {
    format!("rtc_{}", uuid::Uuid::new_v4().simple())
}

/// Waits until the OpenAI stand-in got `action` for `call_id`; returns its body.
pub async fn wait_for_control(world: &CallWorld, call_id: &str, action: &str) -> Value {
    let openai = &world.standins.openai;
    let seen = callvisor_standins::wait_until(Duration::from_secs(5), || {
        openai
            .call_controls(call_id)
            .iter()
            .any(|(a, _)| a == action)
    })
    .await;
    assert!(
        seen,
        "no {action} for {call_id}: {:?}",
        openai.call_controls(call_id)
    );
    openai
        .call_controls(call_id)
        .into_iter()
        .find(|(a, _)| a == action)
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// The call's `channel`, if it has a row.
pub fn channel(world: &CallWorld, call_sid: &str) -> Option<String> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        channel: Option<String>,
    }
    diesel::sql_query("SELECT channel FROM call_logs WHERE call_sid = $1")
        .bind::<Text, _>(call_sid)
        .get_result::<Row>(&mut world.db().connect())
        .ok()
        .and_then(|r| r.channel)
}

/// Runs one SQL statement on the world's database.
pub fn exec(world: &CallWorld, sql: &str) {
    diesel::sql_query(sql)
        .execute(&mut world.db().connect())
        .unwrap();
}
