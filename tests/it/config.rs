//! Configuration: layering, the old engine's names, every problem at once,
//! only what enabled features need, and no secret in `Debug`.

use std::collections::BTreeMap;
use std::path::Path;

use callvisor::config::{self, AppEnv, Purpose};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const COMPLETE: &[(&str, &str)] = &[
    (
        "DATABASE_URL",
        "postgres://u:db-password-42@127.0.0.1:5432/x",
    ),
    ("OPENAI_API_KEY", "sk-secret-openai-1"),
    ("TWILIO_ACCOUNT_SID", "AC123"),
    ("TWILIO_AUTH_TOKEN", "twilio-secret-token-1"),
    ("ADMIN_TOKEN", "admin-secret-token-123456"),
    ("PUBLIC_URL", "https://engine.example.com"),
    (
        "STREAM_TOKEN_SECRET",
        "stream-secret-0123456789abcdef0123456789",
    ),
];

fn load(pairs: &[(&str, &str)]) -> Result<config::Settings, config::ConfigError> {
    config::load_from(Path::new("config"), &env(pairs), Purpose::Serve)
}

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut all = COMPLETE.to_vec();
    all.extend_from_slice(extra);
    all
}

#[test]
fn environment_overrides_files_which_override_defaults() {
    // Arrange: test.toml sets port 0 and drain 2 over default.toml's 8080 and 20.
    let files_only = load(&with(&[("APP_ENV", "test")])).unwrap();
    // Act
    let overridden = load(&with(&[
        ("APP_ENV", "test"),
        ("PORT", "1234"),
        ("CALLVISOR__CALLS__DRAIN_SECONDS", "7"),
    ]))
    .unwrap();
    // Assert
    assert_eq!(files_only.app_env, AppEnv::Test);
    assert_eq!(files_only.server.port, 0);
    assert_eq!(files_only.calls.drain_seconds, 2);
    assert_eq!(
        files_only.calls.persistence_batch_size, 256,
        "default.toml value"
    );
    assert_eq!(overridden.server.port, 1234);
    assert_eq!(overridden.calls.drain_seconds, 7);
}

/// `APP_ENV` chosen on purpose: a development machine with real-looking settings.
const DEV: (&str, &str) = ("APP_ENV", "development");

#[test]
fn app_env_defaults_to_development_for_a_process_that_looks_like_one() {
    // Test keys and a loopback PUBLIC_URL: a laptop.
    let settings = load(&with(&[("PUBLIC_URL", "http://127.0.0.1:8080")])).unwrap();
    assert_eq!(settings.app_env, AppEnv::Development);
    assert_eq!(settings.server.port, 8080);
}

#[test]
fn a_process_with_production_credentials_and_no_app_env_refuses_to_start() {
    let loopback = ("PUBLIC_URL", "http://127.0.0.1:8080");
    // Each sign alone is enough; the message names it, not its value.
    for (case, extra, sign) in [
        ("public URL", vec![], "PUBLIC_URL is not a loopback address"),
        (
            "live Stripe key",
            vec![loopback, ("STRIPE_SECRET_KEY", "sk_live_stripe-secret-7")],
            "STRIPE_SECRET_KEY is a live key",
        ),
        (
            "real-looking Twilio token",
            vec![
                loopback,
                ("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef"),
            ],
            "TWILIO_AUTH_TOKEN has the shape of a real one",
        ),
    ] {
        let error = load(&with(&extra)).unwrap_err();
        let message = error.to_string();
        let app_env: Vec<_> = error
            .issues()
            .iter()
            .filter(|i| i.variable == "APP_ENV")
            .collect();
        assert_eq!(app_env.len(), 1, "{case}: {message}");
        assert!(app_env[0].problem.contains(sign), "{case}: {message}");
        assert!(
            app_env[0].problem.contains("APP_ENV=production"),
            "{case}: {message}"
        );
        assert!(message.contains("APP_ENV=(not set)"), "{case}: {message}");
        for secret in ["stripe-secret-7", "0123456789abcdef0123456789abcdef"] {
            assert!(!message.contains(secret), "{case}: {message}");
        }
        // Saying which environment it is settles it.
        let mut chosen = extra.clone();
        chosen.push(DEV);
        assert!(load(&with(&chosen)).is_ok(), "{case} with APP_ENV set");
    }
}

#[test]
fn production_refuses_plain_http_and_ws_urls_naming_every_one() {
    let insecure = [
        ("PUBLIC_URL", "http://engine.example.com"),
        ("OPENAI_BASE_URL", "http://api.openai.example/v1"),
        ("OPENAI_REALTIME_URL", "ws://api.openai.example/v1/realtime"),
        ("TWILIO_API_BASE", "http://api.twilio.example/2010-04-01"),
        ("STRIPE_API_BASE", "http://api.stripe.example"),
    ];
    let mut production = vec![("APP_ENV", "production")];
    production.extend_from_slice(&insecure);
    let error = load(&with(&production)).unwrap_err();
    let message = error.to_string();
    for (variable, _) in insecure {
        let issues: Vec<_> = error
            .issues()
            .iter()
            .filter(|i| i.variable == variable)
            .collect();
        assert_eq!(issues.len(), 1, "{variable} once in:\n{message}");
        assert!(
            issues[0].problem.contains("in production"),
            "{variable}: {message}"
        );
    }
    // The same URLs are fine outside production (stand-ins, a laptop).
    let mut test = vec![("APP_ENV", "test")];
    test.extend_from_slice(&insecure);
    assert!(load(&with(&test)).is_ok());
    // And the secure ones are fine in production.
    assert!(load(&with(&[("APP_ENV", "production")])).is_ok());
}

#[test]
fn features_that_switch_on_nothing_yet_require_no_secrets() {
    // `billing` builds nothing yet; `openai_sip` now does and needs its secret
    // (tests/it/sip.rs checks that).
    let settings = load(&with(&[
        ("APP_ENV", "production"),
        ("CALLVISOR__FEATURES__BILLING", "true"),
    ]));
    assert!(
        settings.is_ok(),
        "{:?}",
        settings.err().map(|e| e.to_string())
    );
}

#[actix_web::test]
async fn twilio_voice_off_removes_the_twilio_routes() {
    use crate::helpers::app::{settings_from, test_env, TestApp};
    use crate::helpers::db::TestDb;

    let paths = [
        (actix_web::http::Method::POST, "/twilio/voice"),
        (actix_web::http::Method::POST, "/incoming-call-realtime"),
        (actix_web::http::Method::GET, "/twilio/media"),
        (actix_web::http::Method::GET, "/twilio-media"),
        (actix_web::http::Method::POST, "/twilio/status"),
    ];
    let statuses = |app: &TestApp| {
        let address = app.address.clone();
        let paths = paths.clone();
        async move {
            let mut out = Vec::new();
            for (method, path) in paths {
                let response = awc::Client::new()
                    .request(method, format!("{address}{path}"))
                    .send()
                    .await
                    .unwrap();
                out.push((path, response.status().as_u16()));
            }
            out
        }
    };
    // Arrange: the same service with the feature on and off.
    let on = TestApp::spawn().await;
    let db = TestDb::migrated();
    let mut env = test_env(&db.url);
    env.insert("CALLVISOR__FEATURES__TWILIO_VOICE".into(), "false".into());
    let mut off = TestApp::spawn_with(settings_from(&env)).await;
    off.db = Some(db);

    // Act
    let with_feature = statuses(&on).await;
    let without = statuses(&off).await;

    // Assert: there (refused unsigned, but routed) with it, gone without it.
    assert!(
        with_feature.iter().all(|(_, status)| *status != 404),
        "{with_feature:?}"
    );
    assert!(
        without.iter().all(|(_, status)| *status == 404),
        "{without:?}"
    );
    let (status, _) = off.get_json("/healthz").await;
    assert_eq!(status, 200, "the rest is still served");
    on.shutdown.shutdown().await;
    off.shutdown.shutdown().await;
}

#[test]
fn the_old_engines_names_keep_working() {
    let defaults = load(&with(&[DEV])).unwrap();
    assert_eq!(defaults.openai.realtime_model, "gpt-realtime");
    assert_eq!(defaults.openai.model_mini, "gpt-5-mini");

    let settings = load(&with(&[
        DEV,
        ("OPENAI_REALTIME_MODEL", "gpt-realtime-mini"),
        ("OPENAI_MODEL_MINI", "gpt-5-nano"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:9001/v1"),
        ("OPENAI_REALTIME_URL", "ws://127.0.0.1:9002/v1/realtime"),
        ("TWILIO_API_BASE", "http://127.0.0.1:9003/2010-04-01"),
        ("STRIPE_API_BASE", "http://127.0.0.1:9004"),
        ("LOG_DIR", "/tmp/callvisor-logs"),
        ("STRIPE_USAGE_PRICE_ID", "price_123"),
    ]))
    .unwrap();
    assert_eq!(settings.openai.realtime_model, "gpt-realtime-mini");
    assert_eq!(settings.openai.model_mini, "gpt-5-nano");
    assert_eq!(settings.openai.base_url, "http://127.0.0.1:9001/v1");
    assert_eq!(
        settings.openai.realtime_url,
        "ws://127.0.0.1:9002/v1/realtime"
    );
    assert_eq!(settings.twilio.api_base, "http://127.0.0.1:9003/2010-04-01");
    assert_eq!(settings.stripe.api_base, "http://127.0.0.1:9004");
    assert_eq!(settings.logging.dir.as_deref(), Some("/tmp/callvisor-logs"));
    assert_eq!(settings.stripe.usage_price_id.as_deref(), Some("price_123"));
    assert_eq!(settings.twilio.account_sid.as_deref(), Some("AC123"));
    assert_eq!(
        settings.openai.api_key.as_ref().map(|k| k.expose()),
        Some("sk-secret-openai-1")
    );
}

#[test]
fn every_missing_or_malformed_setting_is_reported_at_once() {
    // Arrange: production, nothing set, two malformed values.
    let result = load(&[
        ("APP_ENV", "production"),
        ("PORT", "eighty"),
        ("CALLVISOR__CALLS__DRAIN_SECONDS", "-1"),
        ("OPENAI_REALTIME_URL", "https://not-a-websocket"),
    ]);
    // Act
    let error = result.unwrap_err();
    let message = error.to_string();
    let variables: Vec<&str> = error.issues().iter().map(|i| i.variable.as_str()).collect();
    // Assert: every one named, in one message.
    for expected in [
        "DATABASE_URL",
        "OPENAI_API_KEY",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "PUBLIC_URL",
        "ADMIN_TOKEN",
        "STREAM_TOKEN_SECRET",
        "PORT",
        "CALLVISOR__CALLS__DRAIN_SECONDS",
        "OPENAI_REALTIME_URL",
    ] {
        assert!(
            variables.contains(&expected),
            "{expected} missing from:\n{message}"
        );
        assert!(message.contains(expected));
    }
    assert!(message.contains("APP_ENV=production"));
    // Features that are off require nothing.
    assert!(!variables.contains(&"STRIPE_SECRET_KEY"), "{message}");
    assert!(!variables.contains(&"OPENAI_WEBHOOK_SECRET"), "{message}");
}

#[test]
fn only_enabled_features_are_required() {
    let admin_off = load(&[
        ("DATABASE_URL", "postgres://127.0.0.1/x"),
        ("CALLVISOR__FEATURES__ADMIN", "false"),
        ("CALLVISOR__FEATURES__TWILIO_VOICE", "false"),
        ("CALLVISOR__FEATURES__SUMMARIES", "false"),
    ]);
    assert!(
        admin_off.is_ok(),
        "{:?}",
        admin_off.err().map(|e| e.to_string())
    );

    let summaries_on = load(&[
        ("DATABASE_URL", "postgres://127.0.0.1/x"),
        ("CALLVISOR__FEATURES__ADMIN", "false"),
        ("CALLVISOR__FEATURES__TWILIO_VOICE", "false"),
    ])
    .unwrap_err();
    let variables: Vec<&str> = summaries_on
        .issues()
        .iter()
        .map(|i| i.variable.as_str())
        .collect();
    assert_eq!(variables, ["OPENAI_API_KEY"]);

    // `migrate` needs the database alone.
    let migrate = config::load_from(
        Path::new("config"),
        &env(&[
            ("DATABASE_URL", "postgres://127.0.0.1/x"),
            ("APP_ENV", "production"),
        ]),
        Purpose::Migrate,
    );
    assert!(
        migrate.is_ok(),
        "{:?}",
        migrate.err().map(|e| e.to_string())
    );
}

#[test]
fn production_cannot_switch_signature_checks_off() {
    let dev = load(&with(&[
        DEV,
        ("CALLVISOR__SERVER__VERIFY_SIGNATURES", "false"),
    ]))
    .unwrap();
    assert!(!dev.server.verify_signatures);

    let prod = load(&with(&[
        ("APP_ENV", "production"),
        ("CALLVISOR__SERVER__VERIFY_SIGNATURES", "false"),
    ]))
    .unwrap_err();
    assert!(
        prod.issues()
            .iter()
            .any(|i| i.variable == "CALLVISOR__SERVER__VERIFY_SIGNATURES"),
        "{prod}"
    );
}

#[test]
fn unknown_settings_and_environments_are_errors_not_ignored() {
    let error = load(&with(&[
        ("APP_ENV", "staging"),
        ("CALLVISOR__SERVER__PROT", "1"),
    ]))
    .unwrap_err();
    let variables: Vec<&str> = error.issues().iter().map(|i| i.variable.as_str()).collect();
    assert!(variables.contains(&"APP_ENV"), "{error}");
    assert!(variables.contains(&"CALLVISOR__SERVER__PROT"), "{error}");
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let settings = load(&with(&[
        DEV,
        ("OPENAI_WEBHOOK_SECRET", "whsec_webhook-secret-9"),
        ("STRIPE_SECRET_KEY", "sk_live_stripe-secret-7"),
    ]))
    .unwrap();
    let debug = format!("{settings:?}");
    for secret in [
        "db-password-42",
        "sk-secret-openai-1",
        "twilio-secret-token-1",
        "admin-secret-token-123456",
        "stream-secret-0123456789",
        "webhook-secret-9",
        "stripe-secret-7",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
    }
    // A too-short secret is reported without its value.
    let error = load(&with(&[("ADMIN_TOKEN", "short-secret")])).unwrap_err();
    assert!(!error.to_string().contains("short-secret"), "{error}");
}

#[test]
fn rate_limits_and_trusted_proxies_are_read_and_checked_at_start_up() {
    // Arrange + Act
    let settings = load(&with(&[
        ("APP_ENV", "development"),
        (
            "CALLVISOR__SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.1.7",
        ),
        ("CALLVISOR__RATE_LIMITS__TWILIO_PER_SECOND", "0.5"),
    ]))
    .unwrap();
    // Assert: a bare address is a /32; a rate may be fractional.
    let proxies: Vec<String> = settings
        .server
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32"]);
    assert!((settings.rate_limits.twilio_per_second - 0.5).abs() < f64::EPSILON);
    assert!(
        load(&with(&[("APP_ENV", "development")]))
            .unwrap()
            .server
            .trusted_proxies
            .is_empty(),
        "no proxy is trusted by default"
    );
    // A bucket that cannot exist, a negative rate, a network that is not one.
    let err = load(&with(&[
        ("APP_ENV", "development"),
        ("CALLVISOR__RATE_LIMITS__ADMIN_BURST", "0"),
        ("CALLVISOR__RATE_LIMITS__PROBES_PER_SECOND", "-1"),
    ]))
    .unwrap_err();
    let variables: Vec<&str> = err.issues().iter().map(|i| i.variable.as_str()).collect();
    assert_eq!(
        variables,
        [
            "CALLVISOR__RATE_LIMITS__ADMIN_BURST",
            "CALLVISOR__RATE_LIMITS__PROBES_PER_SECOND"
        ],
        "{err}"
    );
    let err = load(&with(&[
        ("APP_ENV", "development"),
        ("CALLVISOR__SERVER__TRUSTED_PROXIES", "10.0.0.0/33"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("trusted_proxies"), "{err}");
}

#[test]
fn a_zero_bound_is_refused_not_taken_to_mean_refuse_everything() {
    // Arrange: bounds that would refuse every media socket or drop all audio.
    let result = load(&with(&[
        ("CALLVISOR__CALLS__STREAM_START_TIMEOUT_MS", "0"),
        ("CALLVISOR__CALLS__STREAM_MAX_AWAITING_START", "0"),
        ("CALLVISOR__CALLS__MAX_HELD_AUDIO_BYTES", "0"),
        ("CALLVISOR__CALLS__SHUTDOWN_FLUSH_SECONDS", "0"),
    ]));
    // Act
    let error = result.unwrap_err();
    let variables: Vec<&str> = error.issues().iter().map(|i| i.variable.as_str()).collect();
    // Assert
    for expected in [
        "CALLVISOR__CALLS__STREAM_START_TIMEOUT_MS",
        "CALLVISOR__CALLS__STREAM_MAX_AWAITING_START",
        "CALLVISOR__CALLS__MAX_HELD_AUDIO_BYTES",
        "CALLVISOR__CALLS__SHUTDOWN_FLUSH_SECONDS",
    ] {
        assert!(variables.contains(&expected), "{expected}: {error}");
    }
}
