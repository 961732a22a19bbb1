//! Graceful shutdown in reverse start order, with a deadline: stop taking new
//! work (`/readyz` 503), let what is in flight finish, stop the HTTP server.

use actix_web::dev::ServerHandle;
use actix_web::web;
use callvisor_actors::events;

use crate::startup::AppState;

/// Waits for SIGTERM or SIGINT.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => log::info!("{} signal=SIGTERM", events::SHUTDOWN_STARTED),
                    _ = int.recv() => log::info!("{} signal=SIGINT", events::SHUTDOWN_STARTED),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                log::info!("{} signal=ctrl_c", events::SHUTDOWN_STARTED);
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        log::info!("{} signal=ctrl_c", events::SHUTDOWN_STARTED);
    }
}

/// Shuts one instance down; cloneable, and a second call waits like the first.
#[derive(Clone)]
pub struct ShutdownHandle {
    state: web::Data<AppState>,
    server: ServerHandle,
}

impl ShutdownHandle {
    pub(crate) fn new(state: web::Data<AppState>, server: ServerHandle) -> Self {
        Self { state, server }
    }

    /// Stops taking work, then stops the server gracefully.
    pub async fn shutdown(&self) {
        if self.state.lifecycle.start_draining() {
            log::info!(
                "{} instance={} phase=draining",
                events::SHUTDOWN_STARTED,
                self.state.instance_id
            );
        }
        self.server.stop(true).await;
        log::info!(
            "{} instance={}",
            events::SHUTDOWN_COMPLETE,
            self.state.instance_id
        );
    }
}
