//! Which refusals become `RATE_LIMITED` lines: a flood must not become a
//! flood of log lines. Per class and window: the first refusal of a source is
//! logged at once (up to [`MAX_SOURCES`] sources), the rest of that source's
//! refusals are counted and logged as one line when the window closes, and
//! refusals of sources beyond the cap are summed into one more line. So a
//! window gives at most `2 * MAX_SOURCES + 1` lines per class, whatever the
//! traffic, and memory holds at most [`MAX_SOURCES`] sources.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Reference;

/// Sources named individually per class and window.
pub const MAX_SOURCES: usize = 20;

/// A line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A source's first refusal in the window.
    First {
        /// The source.
        source: IpAddr,
    },
    /// More refusals of a source that was named.
    Repeated {
        /// The source.
        source: IpAddr,
        /// Refusals since its first line.
        rejected: u64,
    },
    /// Refusals of sources that were not named (the cap was reached).
    Others {
        /// How many.
        rejected: u64,
    },
}

struct Window<I> {
    started: Option<I>,
    named: HashMap<IpAddr, u64>,
    others: u64,
}

/// The sampler of one class.
pub struct Sampler<I> {
    window: Duration,
    state: Mutex<Window<I>>,
}

impl<I: Reference> Sampler<I> {
    /// A sampler whose windows last `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            state: Mutex::new(Window {
                started: None,
                named: HashMap::new(),
                others: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Window<I>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a refusal of `source`; the line to log now, if any.
    pub fn record(&self, source: IpAddr) -> Option<Line> {
        let mut state = self.state();
        if let Some(n) = state.named.get_mut(&source) {
            *n += 1;
            return None;
        }
        if state.named.len() < MAX_SOURCES {
            state.named.insert(source, 0);
            return Some(Line::First { source });
        }
        state.others += 1;
        None
    }

    /// Closes the window once it is `window` old (called about once a second);
    /// the counts to log.
    pub fn tick(&self, now: I) -> Vec<Line> {
        let mut state = self.state();
        let Some(started) = state.started else {
            state.started = Some(now);
            return Vec::new();
        };
        if Duration::from(now.duration_since(started)) < self.window {
            return Vec::new();
        }
        state.started = Some(now);
        let mut lines: Vec<Line> = state
            .named
            .drain()
            .filter(|(_, n)| *n > 0)
            .map(|(source, rejected)| Line::Repeated { source, rejected })
            .collect();
        if state.others > 0 {
            lines.push(Line::Others {
                rejected: state.others,
            });
            state.others = 0;
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::{Clock, FakeRelativeClock};
    use std::net::Ipv4Addr;

    fn source(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn a_hundred_refusals_of_one_source_make_two_lines() {
        let clock = FakeRelativeClock::default();
        let sampler = Sampler::new(Duration::from_secs(10));
        assert!(sampler.tick(clock.now()).is_empty());
        let now: Vec<Line> = (0..100).filter_map(|_| sampler.record(source(1))).collect();
        assert_eq!(now, [Line::First { source: source(1) }]);
        clock.advance(Duration::from_secs(9));
        assert!(sampler.tick(clock.now()).is_empty(), "window still open");
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            sampler.tick(clock.now()),
            [Line::Repeated {
                source: source(1),
                rejected: 99
            }]
        );
        // A new window names the source again at its first refusal.
        assert_eq!(
            sampler.record(source(1)),
            Some(Line::First { source: source(1) })
        );
    }

    #[test]
    fn a_flood_of_sources_is_capped_and_summed() {
        let clock = FakeRelativeClock::default();
        let sampler = Sampler::new(Duration::from_secs(10));
        let _ = sampler.tick(clock.now());
        let first = (0..10_000u32)
            .filter_map(|i| sampler.record(source(i)))
            .count();
        assert_eq!(first, MAX_SOURCES);
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            sampler.tick(clock.now()),
            [Line::Others {
                rejected: 10_000 - MAX_SOURCES as u64
            }]
        );
    }
}
