//! Fixtures for the pool, admin and campaign tests: real `callvisor serve`
//! processes on 127.0.0.1 sharing one database (so an instance can be killed
//! without warning, and its log stream read), the Twilio REST stand-in, an
//! admin client, signed Twilio webhooks and a few SQL shortcuts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callvisor_standins::{TwilioRest, TwilioRestConfig};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{PgConnection, QueryableByName, RunQueryDsl};
use serde_json::Value;

use super::app::test_env;

/// The admin token of `test_env`.
pub const ADMIN_TOKEN: &str = "admin-test-token-0123456789";
/// The Twilio auth token of `test_env` (signs webhooks, authenticates REST).
pub const TWILIO_AUTH_TOKEN: &str = "twilio-test-auth-token";
/// The Twilio account of `test_env`.
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// `PUBLIC_URL` of `config/test.toml`: webhook signatures are over it.
pub const PUBLIC_URL: &str = "http://127.0.0.1";

/// The Twilio REST stand-in with the app's credentials and `numbers` owned.
pub fn twilio(numbers: &[&str]) -> TwilioRest {
    TwilioRest::start(TwilioRestConfig {
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: TWILIO_AUTH_TOKEN.to_owned(),
        numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
        ..TwilioRestConfig::default()
    })
    .expect("twilio stand-in starts")
}

/// A `callvisor serve` process.
pub struct Instance {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    /// Its `instance=` name (from `SERVICE_LISTENING`).
    pub instance_id: String,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    /// Starts `callvisor serve` on `database_url`, talking to `twilio`, with
    /// test settings plus `extra` environment.
    pub async fn start(database_url: &str, twilio_base: &str, extra: &[(&str, &str)]) -> Self {
        let mut env = test_env(database_url);
        env.insert("TWILIO_API_BASE".into(), twilio_base.into());
        env.insert("PORT".into(), "0".into());
        env.insert("RUST_LOG".into(), "info,actix_server=warn".into());
        // No Realtime session may be opened against the real API from here.
        env.insert("CALLVISOR__CALLS__PREOPEN_REALTIME".into(), "false".into());
        env.insert("CALLVISOR__FEATURES__SUMMARIES".into(), "false".into());
        env.insert("CALLVISOR__DATABASE__POOL_SIZE".into(), "8".into());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let mut child = Command::new(env!("CARGO_BIN_EXE_callvisor"))
            .arg("serve")
            .env_clear()
            .envs(&env)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CALLVISOR_CONFIG_DIR", format!("{root}/config"))
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("callvisor starts");
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().expect("stderr piped");
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let mut instance = Self {
            address: String::new(),
            instance_id: String::new(),
            child,
            logs,
        };
        let line = instance
            .wait_for_log(Duration::from_secs(30), |l| l.contains("SERVICE_LISTENING"))
            .await
            .unwrap_or_else(|| panic!("callvisor did not start:\n{}", instance.dump()));
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_default()
                .to_owned()
        };
        instance.address = format!("http://127.0.0.1:{}", field("port="));
        instance.instance_id = field("instance=");
        instance
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The log, for an assertion message.
    pub fn dump(&self) -> String {
        self.logs().join("\n")
    }

    /// Lines containing `needle`, once there are at least `want` of them or
    /// five seconds passed: the child's last lines may still be in its pipe.
    pub async fn count_lines(&self, needle: &str, want: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = self.logs().iter().filter(|l| l.contains(needle)).count();
            if n >= want || Instant::now() > deadline {
                return n;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a log line matching `pred`.
    pub async fn wait_for_log(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| pred(l)) {
                return Some(line);
            }
            if Instant::now() > deadline {
                return None;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process without warning (SIGKILL): nothing is released.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An admin client of this instance.
    pub fn admin(&self) -> Admin {
        Admin::new(&self.address)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Admin API requests with the right token (or a chosen one).
#[derive(Clone)]
pub struct Admin {
    address: String,
    client: awc::Client,
    token: Option<String>,
}

impl Admin {
    /// A client of `address` with the test admin token.
    pub fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(20))
                .finish(),
            token: Some(ADMIN_TOKEN.to_owned()),
        }
    }

    /// The same client with another token (`None`: no Authorization header).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    async fn send(
        &self,
        method: actix_web::http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = &self.token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let mut response = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        }
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response.body().limit(16 << 20).await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    /// GET.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(actix_web::http::Method::GET, path, None).await
    }

    /// POST a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(actix_web::http::Method::POST, path, Some(body))
            .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(actix_web::http::Method::DELETE, path, None).await
    }
}

/// A Twilio webhook POST, signed over `PUBLIC_URL` + `path` as Twilio signs.
pub async fn twilio_webhook(address: &str, path: &str, params: &[(&str, &str)]) -> (u16, String) {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = callvisor_wire::signing::twilio::expected_signature(
        TWILIO_AUTH_TOKEN,
        &format!("{PUBLIC_URL}{path}"),
        &owned,
    );
    let mut response = awc::Client::new()
        .post(format!("{address}{path}"))
        .insert_header(("X-Twilio-Signature", signature))
        .send_form(&owned)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.body().await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The voice webhook for a new inbound call to `to`; returns the CallSid and TwiML.
pub async fn inbound_call(address: &str, to: &str) -> (String, String) {
    let call_sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let (status, twiml) = twilio_webhook(
        address,
        "/twilio/voice",
        &[
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", &call_sid),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
            ("From", "+15557654321"),
            ("To", to),
        ],
    )
    .await;
    assert_eq!(status, 200, "{twiml}");
    (call_sid, twiml)
}

/// Twilio's final status callback for a call, posted to `callback` (the path
/// and query the call's `StatusCallback` named, as Twilio posts it there).
pub async fn call_ended(address: &str, callback: &str, call_sid: &str, status: &str, seconds: i32) {
    let duration = seconds.to_string();
    let (code, body) = twilio_webhook(
        address,
        callback,
        &[
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", call_sid),
            ("CallStatus", status),
            ("CallDuration", &duration),
        ],
    )
    .await;
    assert!(code < 300, "status callback: {code} {body}");
}

/// Creates a tenant; returns its id.
pub fn tenant(
    conn: &mut PgConnection,
    phone: &str,
    plan: &str,
    max_calls: i32,
    handoff: Option<&str>,
) -> String {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    diesel::sql_query(format!(
        "INSERT INTO profiles (phone_number, is_subscribed, plan, max_concurrent_calls, handoff_number)
         VALUES ('{phone}', true, '{plan}', {max_calls}, {})
         RETURNING id::text AS id",
        handoff.map_or("NULL".to_owned(), |h| format!("'{h}'"))
    ))
    .get_result::<Id>(conn)
    .unwrap()
    .id
}

/// Adds shared numbers `+1555020NNNN` for `0..count` (offset `first`).
pub fn shared_numbers(conn: &mut PgConnection, first: usize, count: usize) -> Vec<String> {
    let numbers: Vec<String> = (first..first + count)
        .map(|i| format!("+1555020{i:04}"))
        .collect();
    for n in &numbers {
        conn.batch_execute(&format!(
            "INSERT INTO phone_numbers (phone_number) VALUES ('{n}')"
        ))
        .unwrap();
    }
    numbers
}

/// One number of SQL.
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(sql).get_result::<N>(conn).unwrap().n
}

/// Rows of `(text, text)` from SQL selecting `a` and `b`.
pub fn pairs(conn: &mut PgConnection, sql: &str) -> Vec<(String, String)> {
    #[derive(QueryableByName)]
    struct P {
        #[diesel(sql_type = Text)]
        a: String,
        #[diesel(sql_type = Text)]
        b: String,
    }
    diesel::sql_query(sql)
        .load::<P>(conn)
        .unwrap()
        .into_iter()
        .map(|p| (p.a, p.b))
        .collect()
}

/// Waits until `check` holds (polling every 25 ms); false on timeout.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}
