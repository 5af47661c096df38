//! Persistence behind the [`Store`] trait, with SQLite and PostgreSQL implementations.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[macro_use]
mod rows;
#[macro_use]
mod db;
mod cipher;
mod inbound_batch;
mod messages;
mod model;
mod open;
mod outbox;
mod pending;
mod sql_store;
mod store;

pub use cipher::Cipher;
pub use model::*;
pub use open::{StoreConfig, migrate, open, open_and_migrate};
pub use store::Store;
