//! What the HTTP stand-ins share: binding, running inside the caller's actix System,
//! stopping on drop, and small response helpers.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};

/// Seconds a stopping stand-in waits for open connections (graceful stop is not used, so
/// this only bounds the rare case of a worker that is slow to exit).
pub(crate) const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

/// Binds a listener; `127.0.0.1:0` picks a free port.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// A running actix-web server that stops when dropped.
#[derive(Debug)]
pub(crate) struct RunningServer {
    handle: ServerHandle,
    addr: SocketAddr,
}

impl RunningServer {
    /// Spawns `server` on the current actix System.
    ///
    /// # Errors
    /// An error when there is no actix System on this thread (outside `#[actix_web::test]`,
    /// `actix_rt::System::new().block_on` or `#[actix_web::main]`).
    pub(crate) fn spawn(server: Server, addr: SocketAddr) -> io::Result<Self> {
        if actix_rt::System::try_current().is_none() {
            return Err(io::Error::other(
                "stand-ins must be started inside an actix System",
            ));
        }
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(RunningServer { handle, addr })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection and waits for the workers to exit.
    pub(crate) async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // The stop command is queued as soon as `stop` is called; the returned future only
        // waits for completion, so dropping it is fine.
        drop(self.handle.stop(false));
    }
}

/// Locks a mutex, ignoring poisoning: the stand-ins' state stays usable for assertions
/// even if a test thread panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `condition` every 5 ms until it holds or `timeout` passes; `true` if it held.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `127.0.0.1:0`: loopback, any free port.
#[must_use]
pub fn any_local_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A fresh Twilio-style SID: `prefix` + 32 lower-case hex digits.
#[must_use]
pub fn new_sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
