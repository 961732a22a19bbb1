//! Helpers shared by actor tests.
pub mod realtime;
pub mod wait;
