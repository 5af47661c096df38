//! End-to-end tests: the real `inboxgw` binary, a stateful fake Telegram Bot API, a webhook
//! receiver that verifies signatures with the official `standardwebhooks` crate, and (for the
//! scale-out cases) real PostgreSQL and Redis servers — driven over HTTP as a customer would.

mod cli;
mod delivery;
mod meta;
mod postgres;
mod ratelimit;
mod social;
mod support;
mod telegram;
