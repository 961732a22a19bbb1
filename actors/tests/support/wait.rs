//! Waiting on a condition instead of sleeping for a guess: a check polled
//! every few milliseconds until it holds or a generous deadline passes.
// Every actor-test binary compiles `support`; not every one waits.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Polls `check` every 5 ms until it holds (true) or `timeout` passed (false).
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}
