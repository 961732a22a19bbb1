//! The process-wide cap on media sockets that have not sent `start` yet.
//!
//! Such a socket is unauthenticated (its token comes in `start`), so without a
//! cap a stranger could hold any number of them. The HTTP handler takes a
//! [`StartSlot`] before upgrading (over the cap it answers 503); the socket
//! gives the slot back when it leaves `AwaitingStart` or stops. The slot is a
//! drop guard, so the count goes down exactly once whatever ends the wait.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts sockets waiting for `start`, up to a cap.
#[derive(Debug)]
pub struct StartGate {
    waiting: AtomicUsize,
    cap: usize,
    refused: AtomicU64,
}

/// The gate is full; `refused` counts refusals so far (for sampled logging).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{cap} media sockets already wait for their start")]
pub struct GateFull {
    /// The cap.
    pub cap: usize,
    /// Refusals since the process started, this one included.
    pub refused: u64,
}

impl StartGate {
    /// A gate letting `cap` sockets wait at once.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            waiting: AtomicUsize::new(0),
            cap,
            refused: AtomicU64::new(0),
        })
    }

    /// A slot, unless `cap` sockets already wait.
    pub fn try_enter(self: &Arc<Self>) -> Result<StartSlot, GateFull> {
        let cap = self.cap;
        match self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            }) {
            Ok(_) => Ok(StartSlot(self.clone())),
            Err(_) => Err(GateFull {
                cap,
                refused: self.refused.fetch_add(1, Ordering::Relaxed) + 1,
            }),
        }
    }

    /// Sockets waiting for `start` now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

/// One socket's place in the [`StartGate`]; given back when dropped.
#[derive(Debug)]
pub struct StartSlot(Arc<StartGate>);

impl Drop for StartSlot {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_and_every_slot_is_given_back_once() {
        let gate = StartGate::new(2);
        let a = gate.try_enter();
        let b = gate.try_enter();
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(gate.try_enter().err().map(|e| e.refused), Some(1));
        assert_eq!(gate.waiting(), 2);
        drop(a);
        assert_eq!(gate.waiting(), 1);
        let c = gate.try_enter();
        assert!(c.is_ok());
        drop((b, c));
        assert_eq!(gate.waiting(), 0);
    }
}
