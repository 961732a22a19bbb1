//! A world for call tests: the stand-ins (Realtime, OpenAI REST, Twilio REST),
//! a fresh database with one subscribed tenant, and the service configured
//! against them; plus a simulated Twilio caller aimed at it.

use std::time::{Duration, Instant};

use callvisor_standins::{CallerConfig, StandIns, StandInsConfig};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};

use super::app::{settings_from, test_env, TestApp};
use super::db::TestDb;
use super::raw_stream::RawStream;

/// The URL Twilio is told to call: signatures are checked against it.
pub const PUBLIC_URL: &str = "https://callvisor.test";
/// The tenant's number.
pub const TENANT_NUMBER: &str = "+15550100001";
/// A number no tenant owns.
pub const UNKNOWN_NUMBER: &str = "+15550199999";
/// An unsubscribed tenant's number.
pub const UNSUBSCRIBED_NUMBER: &str = "+15550100002";
/// The auth token the app checks Twilio signatures with (see `test_env`).
pub const TWILIO_AUTH_TOKEN: &str = "twilio-test-auth-token";
/// The secret stream tokens are signed with (see `test_env`).
pub const STREAM_SECRET: &str = "stream-test-secret-0123456789abcdef0123";
/// The greeting configured for the tenant.
pub const GREETING: &str = "Welcome to Chez Test, how can I help?";

/// The service, its stand-ins and its database.
pub struct CallWorld {
    /// The running service.
    pub app: TestApp,
    /// The vendors' stand-ins.
    pub standins: StandIns,
    /// The subscribed tenant's id.
    pub tenant_id: String,
}

/// One `call_logs` row, as tests read it.
#[derive(Debug, QueryableByName)]
pub struct CallRow {
    /// Status.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Seconds.
    #[diesel(sql_type = Nullable<Integer>)]
    pub duration_seconds: Option<i32>,
    /// `[{"role","text","at"}]`
    #[diesel(sql_type = Jsonb)]
    pub transcript: serde_json::Value,
    /// The summary.
    #[diesel(sql_type = Nullable<Text>)]
    pub summary: Option<String>,
    /// Why it ended.
    #[diesel(sql_type = Nullable<Text>)]
    pub end_reason: Option<String>,
    /// Ended?
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub ended: bool,
    /// Caller.
    #[diesel(sql_type = Nullable<Text>)]
    pub caller_number: Option<String>,
    /// Called.
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient_number: Option<String>,
    /// Hand-off.
    #[diesel(sql_type = Nullable<Text>)]
    pub transferred_to: Option<String>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl CallWorld {
    /// Starts everything with default stand-ins and settings.
    pub async fn start() -> Self {
        Self::start_with(StandInsConfig::default(), &[]).await
    }

    /// Starts everything with given stand-in settings and extra environment.
    pub async fn start_with(mut config: StandInsConfig, extra_env: &[(&str, &str)]) -> Self {
        // The Twilio stand-in authenticates REST calls with the app's credentials.
        config.twilio.account_sid = "AC00000000000000000000000000000000".to_owned();
        config.twilio.auth_token = TWILIO_AUTH_TOKEN.to_owned();
        let standins = StandIns::start_with(config).await.expect("stand-ins start");
        let db = TestDb::migrated();
        let tenant_id = seed_tenants(&db);
        let mut env = test_env(&db.url);
        env.insert("PUBLIC_URL".into(), PUBLIC_URL.into());
        for (key, value) in standins.env() {
            env.insert(key.into(), value);
        }
        for (key, value) in extra_env {
            env.insert((*key).into(), (*value).into());
        }
        let mut app = TestApp::spawn_with(settings_from(&env)).await;
        app.db = Some(db);
        Self {
            app,
            standins,
            tenant_id,
        }
    }

    /// A simulated Twilio call to the tenant, aimed at this app.
    pub fn caller(&self) -> CallerConfig {
        let mut config = CallerConfig::new(
            format!("{}/twilio/voice", self.app.address),
            TWILIO_AUTH_TOKEN,
        );
        config.sign_url = Some(format!("{PUBLIC_URL}/twilio/voice"));
        config.to = TENANT_NUMBER.to_owned();
        config.from = "+15550123456".to_owned();
        config.stream_url_override = Some(self.app.address.replacen("http://", "ws://", 1));
        config.timeout = Duration::from_secs(60);
        config
    }

    /// Runs the voice webhook for a new call as Twilio would; returns the
    /// CallSid and the stream's `<Parameter>`s.
    pub async fn answer(&self) -> (String, Vec<(String, String)>) {
        let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
        let (status, body) = self
            .signed_post("/twilio/voice", &voice_params(&call_sid))
            .await;
        assert_eq!(status, 200, "{body}");
        let twiml = callvisor_standins::twiml::parse_twiml(&body).unwrap();
        let stream = twiml.connect_stream().expect("a stream").parameters.clone();
        (call_sid, stream)
    }

    /// POSTs a form to `path` signed as Twilio signs it (over `PUBLIC_URL` +
    /// `path`); returns the status and the body.
    pub async fn signed_post(&self, path: &str, params: &[(String, String)]) -> (u16, String) {
        let signature = callvisor_wire::signing::twilio::expected_signature(
            TWILIO_AUTH_TOKEN,
            &format!("{PUBLIC_URL}{path}"),
            params,
        );
        let mut response = awc::Client::new()
            .post(format!("{}{path}", self.app.address))
            .insert_header(("X-Twilio-Signature", signature))
            .send_form(&params)
            .await
            .expect("webhook answers");
        let status = response.status().as_u16();
        let body = response.body().await.expect("a body");
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Asserts the agent hears the caller within five seconds: a Realtime
    /// session has received caller audio. A session alone is not enough: the
    /// one pre-opened by the webhook exists before any socket attaches, and
    /// audio reaches it only once the call's actor adopted it and the socket
    /// is live (its held frames are forwarded then).
    pub async fn wait_for_agent(&self) {
        let realtime = &self.standins.realtime;
        let heard = callvisor_standins::wait_until(Duration::from_secs(5), || {
            let opened = usize::try_from(realtime.sessions_opened()).unwrap_or(usize::MAX);
            (0..opened).any(|i| realtime.with_session(i, |s| s.appends > 0) == Some(true))
        })
        .await;
        assert!(heard, "no Realtime session heard the caller");
    }

    /// A call that gets all the way through: webhook, socket, and the agent
    /// hearing the caller. It is the event "nothing happened" assertions wait
    /// for: whatever an earlier refused webhook or socket would have set off
    /// (a pre-opened session, a call in the supervisor, its Realtime connect)
    /// was set off before this call's and goes the same way, so it shows by
    /// the time this call's agent hears it. Returns the CallSid and the live socket.
    pub async fn control_call(&self) -> (String, RawStream) {
        let (call_sid, params) = self.answer().await;
        let mut stream = RawStream::connect(&self.app.address).await;
        stream.start(&call_sid, &params).await;
        stream.media(5).await;
        self.wait_for_agent().await;
        (call_sid, stream)
    }

    /// Ends a [`Self::control_call`] as Twilio does (`stop`, then the close)
    /// and waits for its row to be ended, so stopping the world is quick.
    pub async fn end_control_call(&self, call_sid: &str, mut stream: RawStream) {
        let mut stop = String::new();
        callvisor_wire::protocol::twilio::write_stop(
            &mut stop,
            &stream.stream_sid.clone(),
            99,
            "AC00000000000000000000000000000000",
            call_sid,
        );
        stream.send(stop).await;
        self.wait_for_row(call_sid, Duration::from_secs(10), |r| r.ended)
            .await;
        stream.close().await;
    }

    /// Rows of `table` about calls other than `call_sid`.
    pub fn count_other_calls(&self, table: &str, call_sid: &str) -> i64 {
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM {table} WHERE call_sid <> $1"
        ))
        .bind::<Text, _>(call_sid)
        .get_result::<Count>(&mut self.db().connect())
        .map(|c| c.n)
        .unwrap_or(-1)
    }

    pub fn db(&self) -> &TestDb {
        self.app.db.as_ref().expect("database")
    }

    /// The call's row, if any.
    pub fn call_row(&self, call_sid: &str) -> Option<CallRow> {
        diesel::sql_query(
            "SELECT status, duration_seconds, transcript, summary, end_reason, ended_at IS NOT NULL AS ended,
                    caller_number, recipient_number, transferred_to
             FROM call_logs WHERE call_sid = $1",
        )
        .bind::<Text, _>(call_sid)
        .get_result(&mut self.db().connect())
        .ok()
    }

    /// Waits until the call's row satisfies `done`, or panics after `timeout`.
    pub async fn wait_for_row(
        &self,
        call_sid: &str,
        timeout: Duration,
        done: impl Fn(&CallRow) -> bool,
    ) -> CallRow {
        let deadline = Instant::now() + timeout;
        loop {
            let row = self.call_row(call_sid);
            if let Some(row) = row {
                if done(&row) {
                    return row;
                }
                assert!(
                    Instant::now() < deadline,
                    "call {call_sid} never got there: {row:?}"
                );
            } else {
                assert!(Instant::now() < deadline, "call {call_sid} has no row");
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Rows in a table.
    pub fn count(&self, table: &str) -> i64 {
        diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result::<Count>(&mut self.db().connect())
            .map(|c| c.n)
            .unwrap_or(-1)
    }

    /// `(role, text)` of the stored segments of a call, in order.
    pub fn segments(&self, call_sid: &str) -> Vec<(String, String)> {
        #[derive(QueryableByName)]
        struct Seg {
            #[diesel(sql_type = Text)]
            role: String,
            #[diesel(sql_type = Text)]
            text: String,
        }
        diesel::sql_query(
            "SELECT role, text FROM transcript_segments WHERE call_sid = $1 ORDER BY seq",
        )
        .bind::<Text, _>(call_sid)
        .load::<Seg>(&mut self.db().connect())
        .unwrap()
        .into_iter()
        .map(|s| (s.role, s.text))
        .collect()
    }

    /// Stops the app (gracefully) and the stand-ins.
    pub async fn stop(self) {
        self.app.shutdown.shutdown().await;
        self.standins.stop().await;
    }
}

/// The voice webhook's form for a new inbound call to the tenant, as Twilio sends it.
pub fn voice_params(call_sid: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", "+15550123456"),
        ("To", TENANT_NUMBER),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// `(role, text)` pairs of a stored transcript.
pub fn transcript_pairs(transcript: &serde_json::Value) -> Vec<(String, String)> {
    transcript
        .as_array()
        .expect("transcript is an array")
        .iter()
        .map(|s| {
            assert!(s["at"].is_string(), "every segment has a time: {s}");
            (
                s["role"].as_str().unwrap().to_owned(),
                s["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// One subscribed tenant with a prompt and greeting, one unsubscribed; returns the first's id.
fn seed_tenants(db: &TestDb) -> String {
    let mut conn = db.connect();
    conn.batch_execute(&format!(
        "INSERT INTO profiles (phone_number, is_subscribed, handoff_number, max_concurrent_calls)
             VALUES ('{TENANT_NUMBER}', true, '+15550177777', 100);
         INSERT INTO profiles (phone_number, is_subscribed) VALUES ('{UNSUBSCRIBED_NUMBER}', false);
         INSERT INTO user_prompts (user_id, system_prompt, config_metadata)
             SELECT id, 'You are the receptionist of Chez Test.', '{{\"greeting_message\": \"{GREETING}\"}}'
             FROM profiles WHERE phone_number = '{TENANT_NUMBER}';"
    ))
    .unwrap();
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    diesel::sql_query(format!(
        "SELECT id::text AS id FROM profiles WHERE phone_number = '{TENANT_NUMBER}'"
    ))
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id
}
