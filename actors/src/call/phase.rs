//! The call's state machine; transitions only move forward.

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallPhase {
    /// Loading the plan and opening the agent's session.
    Connecting,
    /// Audio flows both ways.
    Talking,
    /// Redirected to a human; waiting for Twilio to stop the stream.
    Transferring,
    /// Flushing the transcript and writing the call's record.
    Ending,
    /// Done; the actor stops.
    Ended,
}

impl CallPhase {
    /// True once the end-of-call sequence started (it runs exactly once).
    pub fn is_ending(self) -> bool {
        self >= Self::Ending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_is_the_last_stretch() {
        assert!(!CallPhase::Talking.is_ending());
        assert!(!CallPhase::Transferring.is_ending());
        assert!(CallPhase::Ending.is_ending());
        assert!(CallPhase::Ended.is_ending());
    }
}
