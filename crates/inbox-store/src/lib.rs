//! Persistence behind the [`Store`] trait, with SQLite and PostgreSQL implementations.
#![warn(missing_docs)]

mod model;
mod store;

pub use model::*;
pub use store::Store;
