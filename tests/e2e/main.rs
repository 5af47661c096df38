//! End-to-end tests: the real `inboxgw` binary, a stateful fake Telegram Bot API, a webhook
//! receiver that verifies signatures with the official `standardwebhooks` crate, and (for the
//! scale-out case) a real PostgreSQL server — driven over HTTP as a customer would.

mod cli;
mod delivery;
mod postgres;
mod support;
mod telegram;
