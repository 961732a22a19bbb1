//! Shared test fixtures.

pub mod app;
pub mod calls;
pub mod db;
pub mod pool;
pub mod proxy;
pub mod raw_stream;
pub mod sip;
