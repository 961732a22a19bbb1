//! callvisor's actor system and the wire protocols its actors speak.
//!
//! This crate knows nothing of HTTP routes or the database: the service crate
//! wires real implementations in through recipients and small traits.

pub mod events;
pub mod ids;
pub mod protocol;
