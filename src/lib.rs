//! Rust core of `plane_connector`.
//!
//! Every module here is plain Rust; only `python` (behind the `python` feature that maturin turns
//! on) knows about PyO3, so `cargo test` exercises the core without an interpreter.

pub mod signature;

#[cfg(feature = "python")]
mod python;
