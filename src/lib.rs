//! Rust core of `plane_connector`.
//!
//! Every module here is plain Rust; only `python` (behind the `python` feature that maturin turns
//! on) knows about PyO3, so `cargo test` exercises the core without an interpreter.

// CoreError::Http carries the facts a caller needs (status, message, body excerpt, retry facts);
// errors are off the hot path, so boxing them buys nothing but indirection.
#![allow(clippy::result_large_err)]

pub mod client;
pub mod errors;
pub mod pager;
pub mod ratelimit;
pub mod retry;
pub mod runtime;
pub mod signature;
pub mod tls;
pub mod url;

#[cfg(feature = "python")]
mod python;
