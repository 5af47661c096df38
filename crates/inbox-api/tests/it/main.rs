//! The API's integration tests: every route exercised in process through the real router
//! and common layers, over a temporary SQLite store and in-memory platforms.

mod common;

mod accounts;
mod connect;
mod conversations;
mod errors;
mod messages;
mod openapi;
mod ops;
mod ratelimit;
mod send;
mod tenancy;
mod webhooks;
mod zernio;
