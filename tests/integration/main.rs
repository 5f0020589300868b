//! One integration test binary (each extra file in `tests/` would be another slow link).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod accounts;
mod attributes;
mod auth_cache;
mod events;
mod failover;
mod fuzz;
mod gate;
mod guests;
mod harness;
mod hostile;
mod limits;
mod listener;
mod lockout;
mod no_revival;
mod outage;
mod password_policy;
mod pg;
mod pg_tls;
mod process;
mod replicas;
mod self_service;
mod server_limits;
mod session_limits;
mod sessions;
mod smtp;
mod store_conformance;
mod streams;
mod tls;
mod totp;
mod users;
