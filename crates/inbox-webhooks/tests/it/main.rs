//! The crate's one integration-test binary: the signer against the Standard Webhooks vector and
//! the official libraries, the SSRF guard, the sender against a real receiver, and the delivery
//! worker against the real SQLite store and receiver.

mod guard;
mod python_interop;
mod sender;
mod signer;
mod support;
mod worker;
