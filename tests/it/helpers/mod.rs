//! Shared test fixtures.

pub mod app;
pub mod db;
pub mod proxy;
