//! Stateful fake platform servers: axum apps on `127.0.0.1:0` with in-memory state that speak a
//! platform's real wire format and error envelope, so adapters (and the official SDKs, in the
//! fidelity tests) can be pointed at them instead of the internet.
//!
//! Each fake offers a Rust control API for tests (seed accounts and users, push inbound
//! messages, inject failures, inspect recorded requests) and implements
//! [`FakeControl`](crate::conformance::FakeControl) for the shared conformance suite. A fake runs
//! until its last handle is dropped or the test's runtime ends.

pub mod bluesky;
mod common;
pub mod graph;
pub mod instagram;
pub mod meta;
pub mod reddit;
pub mod telegram;
pub mod x;
