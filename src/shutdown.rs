//! Graceful shutdown in reverse start order, with a deadline: stop taking new
//! work (`/readyz` 503), let what is in flight finish, stop the HTTP server.

use actix_web::dev::ServerHandle;
use actix_web::web;
use std::time::Duration;

use callvisor_actors::events;
use callvisor_actors::supervisor::messages::DrainAll;
use callvisor_actors::supervisor::DEFAULT_FINISH_TIMEOUT;

use crate::calls::spill;
use crate::state::AppState;

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

    /// Stops taking calls (`/readyz` 503), lets live calls go on for the
    /// drain time, ends the rest, flushes every buffered transcript segment
    /// (within `calls.shutdown_flush_seconds`, then the rest is spilled to a
    /// file), then stops the HTTP server gracefully.
    pub async fn shutdown(&self) {
        if self.state.lifecycle.start_draining() {
            log::info!(
                "{} instance={} phase=draining",
                events::SHUTDOWN_STARTED,
                self.state.instance_id
            );
        }
        let calls = &self.state.calls;
        let grace = Duration::from_secs(self.state.settings.calls.drain_seconds);
        let _ = calls
            .supervisor
            .send(DrainAll {
                grace,
                finish_timeout: DEFAULT_FINISH_TIMEOUT,
            })
            .await;
        // Bounded: a database that is down must not keep the process alive;
        // what is not written by the deadline is spilled to a file.
        spill::flush_or_spill(
            &calls.persistence,
            Duration::from_secs(self.state.settings.calls.shutdown_flush_seconds),
            &self.state.settings.calls.spill_dir,
            &self.state.instance_id,
        )
        .await;
        self.server.stop(true).await;
        calls.stop();
        self.state.pool.stop();
        log::info!(
            "{} instance={}",
            events::SHUTDOWN_COMPLETE,
            self.state.instance_id
        );
    }
}
