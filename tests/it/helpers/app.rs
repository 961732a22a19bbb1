//! The service on port 0 against its own throwaway database, exactly as
//! `main` starts it (`Application::build` then `run_until_stopped`).

use std::collections::BTreeMap;
use std::path::Path;

use callvisor::config::{self, Purpose, Settings};
use callvisor::shutdown::ShutdownHandle;
use callvisor::startup::Application;
use callvisor::state::AppState;

use super::db::TestDb;

/// Environment every test app starts from: what `config/test.toml` leaves to
/// the environment (secrets), set to harmless values.
pub fn test_env(database_url: &str) -> BTreeMap<String, String> {
    [
        ("APP_ENV", "test"),
        ("DATABASE_URL", database_url),
        ("OPENAI_API_KEY", "sk-test-key"),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        ("TWILIO_AUTH_TOKEN", "twilio-test-auth-token"),
        ("ADMIN_TOKEN", "admin-test-token-0123456789"),
        (
            "STREAM_TOKEN_SECRET",
            "stream-test-secret-0123456789abcdef0123",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Loads settings from the repository's `config/` with the given environment.
pub fn settings_from(env: &BTreeMap<String, String>) -> Settings {
    config::load_from(Path::new("config"), env, Purpose::Serve)
        .unwrap_or_else(|e| panic!("test settings invalid: {e}"))
}

/// A running service.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    /// Shared state (pools, lifecycle).
    pub state: actix_web::web::Data<AppState>,
    /// Graceful shutdown, as SIGTERM.
    pub shutdown: ShutdownHandle,
    /// Its database; dropped with the app.
    pub db: Option<TestDb>,
}

impl TestApp {
    /// Starts the service on a fresh migrated database.
    pub async fn spawn() -> Self {
        let db = TestDb::migrated();
        let settings = settings_from(&test_env(&db.url));
        let mut app = Self::spawn_with(settings).await;
        app.db = Some(db);
        app
    }

    /// Starts the service with given settings (the caller owns the database).
    pub async fn spawn_with(settings: Settings) -> Self {
        let _ = callvisor::logging::init(None);
        let app = Application::build(settings).await.expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        let shutdown = app.shutdown_handle();
        actix_web::rt::spawn(app.run_until_stopped());
        Self {
            address,
            state,
            shutdown,
            db: None,
        }
    }

    /// GET a path; returns status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let mut response = awc::Client::new()
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let body = response
            .json::<serde_json::Value>()
            .await
            .expect("json body");
        (status, body)
    }
}
