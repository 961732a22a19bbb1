//! Build, then run (zero2prod's shape): [`Application::build`] waits for the
//! database, migrates it, builds the pools and binds the listener, so the
//! bound port is known before serving; [`Application::run_until_stopped`]
//! serves until a stop signal and shuts down gracefully. `main` and the tests
//! take the same path (tests with port 0).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use callvisor_actors::events;

use crate::calls::CallSystem;
use crate::config::{AppEnv, Settings};
use crate::db::{self, migrate};
use crate::shutdown;
use crate::state::{AppState, Lifecycle};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// No `DATABASE_URL`.
    #[error("DATABASE_URL is not set")]
    NoDatabaseUrl,
    /// The database stayed away or migrations failed.
    #[error(transparent)]
    Database(#[from] db::DbError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A built, listening, not yet serving service.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Waits for the database (retrying with backoff), applies migrations,
    /// builds the pools and binds `server.host:server.port`.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let url = settings
            .database
            .url
            .as_ref()
            .ok_or(StartupError::NoDatabaseUrl)?
            .expose()
            .to_owned();
        let patience = Duration::from_secs(settings.database.startup_retry_seconds);
        let applied = {
            let url = url.clone();
            web::block(move || {
                let mut conn = migrate::connect_with_retry(&url, patience)?;
                migrate::run_pending(&mut conn)
            })
            .await
            .map_err(db::DbError::from)??
        };
        if !applied.is_empty() {
            log::info!(
                "{} versions={}",
                events::MIGRATIONS_APPLIED,
                applied.join(",")
            );
        }

        let timeout = Duration::from_secs(settings.database.connect_timeout_seconds.max(1));
        let db = db::build_async_pool(&url, settings.database.pool_size, timeout)?;
        let sync_db = db::build_sync_pool(&url, settings.database.sync_pool_size, timeout);
        // What a previous run could not write before it stopped goes in first.
        crate::calls::spill::replay_at_start(&db, &settings.calls.spill_dir).await;
        if settings.app_env == AppEnv::Development && !settings.server.verify_signatures {
            log::warn!(
                "{} env=development reason=\"server.verify_signatures is false\"",
                events::SIGNATURE_CHECKS_OFF
            );
        }

        let instance_id = instance_id();
        let calls = CallSystem::start(&settings, db.clone(), &instance_id);
        let pool = crate::pool::PoolSystem::start(&settings, db.clone(), &instance_id);
        let rate_limits = Arc::new(crate::http::rate_limit::RateLimits::new(
            &settings.rate_limits,
            settings.server.trusted_proxies.clone(),
        ));
        rate_limits.spawn_sweeper();
        let state = web::Data::new(AppState {
            settings: Arc::new(settings.clone()),
            db,
            sync_db,
            lifecycle: Arc::new(Lifecycle::default()),
            instance_id,
            expected_migration: migrate::latest_version(),
            calls,
            pool,
            rate_limits,
            readiness: crate::http::readiness::ReadinessCache::default(),
        });

        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr).map_err(|source| StartupError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?
            .port();

        let app_state = state.clone();
        let max_body = settings.server.max_body_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::FormConfig::default().limit(max_body))
                .app_data(web::JsonConfig::default().limit(max_body))
                .configure(crate::http::routes)
        })
        // Signals are ours: shutdown drains calls before the server stops.
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_timeout_seconds);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                addr: format!("port {port}"),
                source,
            })?
            .run();
        log::info!(
            "{} port={port} env={} instance={}",
            events::SERVICE_LISTENING,
            settings.app_env.as_str(),
            state.instance_id
        );
        Ok(Self {
            port,
            server,
            state,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state (tests read the pools through it).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle that shuts this instance down gracefully, as SIGTERM does.
    pub fn shutdown_handle(&self) -> shutdown::ShutdownHandle {
        shutdown::ShutdownHandle::new(self.state.clone(), self.server.handle())
    }

    /// Serves until SIGTERM/SIGINT (then shuts down gracefully) or until the
    /// server is stopped through a [`shutdown::ShutdownHandle`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.shutdown_handle();
        let server = actix_web::rt::spawn(self.server);
        let on_signal = actix_web::rt::spawn(async move {
            shutdown::signal().await;
            handle.shutdown().await;
        });
        let result = server.await.map_err(std::io::Error::other)?;
        on_signal.abort();
        result
    }

    /// The server's own handle.
    pub fn server_handle(&self) -> ServerHandle {
        self.server.handle()
    }
}

/// A name unique to this process: host, pid and a random suffix.
fn instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        suffix.get(..6).unwrap_or(&suffix)
    )
}
