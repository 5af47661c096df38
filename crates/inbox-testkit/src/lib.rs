//! Test-only helpers shared by every crate's tests: fake platform servers, the `Platform`
//! conformance suite, real PostgreSQL and Redis servers on loopback, a signature-verifying
//! webhook receiver, and the policy for what a test does when a required tool is missing.
//!
//! Not a stable API: it changes with the tests that use it.

pub mod conformance;
pub mod fakes;
pub mod memory_platform;
pub mod receiver;
pub mod requirements;
pub mod services;
