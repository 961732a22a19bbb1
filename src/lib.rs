//! callvisor: a call engine for AI phone agents (Twilio <-> OpenAI Realtime on
//! actix actors, PostgreSQL through Diesel). `main.rs` is a thin shell over
//! this library so that tests and binaries share everything.

pub mod calls;
pub mod campaigns;
pub mod cli;
pub mod clients;
pub mod config;
pub mod db;
pub mod http;
pub mod logging;
pub mod pool;
pub mod secret;
pub mod shutdown;
pub mod startup;
pub mod state;
