//! The Realtime connection's restart budget: at most `max` reconnects within
//! `window` (OTP's intensity and period). Over budget, the call gives up on
//! the agent and apologises instead of looping. Pure, clock injected.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Reconnects allowed in a sliding window.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    max: u32,
    window: Duration,
    taken: VecDeque<Instant>,
}

impl RestartBudget {
    /// A budget of `max` restarts per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            taken: VecDeque::new(),
        }
    }

    /// Takes one restart if the budget allows; returns the attempt number (1-based).
    pub fn try_take(&mut self, now: Instant) -> Option<u32> {
        while let Some(first) = self.taken.front() {
            if now.duration_since(*first) >= self.window {
                self.taken.pop_front();
            } else {
                break;
            }
        }
        if self.taken.len() as u32 >= self.max {
            return None;
        }
        self.taken.push_back(now);
        Some(self.taken.len() as u32)
    }

    /// The pause before attempt `n`: 100 ms doubling, capped at 2 s.
    pub fn backoff(attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(5);
        Duration::from_millis((100 * factor).min(2_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refills_as_the_window_slides() {
        let start = Instant::now();
        let mut budget = RestartBudget::new(2, Duration::from_secs(30));
        assert_eq!(budget.try_take(start), Some(1));
        assert_eq!(budget.try_take(start + Duration::from_secs(1)), Some(2));
        assert_eq!(budget.try_take(start + Duration::from_secs(2)), None);
        // 30.5 s on, the first restart left the window, the second has not.
        assert_eq!(
            budget.try_take(start + Duration::from_millis(30_500)),
            Some(2)
        );
    }

    #[test]
    fn a_zero_budget_never_restarts() {
        let mut budget = RestartBudget::new(0, Duration::from_secs(30));
        assert_eq!(budget.try_take(Instant::now()), None);
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(RestartBudget::backoff(1), Duration::from_millis(100));
        assert_eq!(RestartBudget::backoff(2), Duration::from_millis(200));
        assert_eq!(RestartBudget::backoff(30), Duration::from_millis(2_000));
    }
}
