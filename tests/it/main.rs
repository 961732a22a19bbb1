//! The single integration-test binary (one link, one place for helpers):
//! every module is one feature, tested against a real PostgreSQL and real
//! sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod admin;
mod call_load;
mod call_recovery;
mod calls;
mod campaigns;
mod config;
mod constraints;
mod health;
mod leaks;
mod log_hygiene;
mod malformed;
mod migrations;
mod multi_instance;
mod pool;
mod rate_limits;
mod shutdown;
mod sip;
mod stream_auth;
mod stream_hijack;
mod stream_limits;
mod stream_preopen;
mod tools;
mod webhooks;
