//! ClockEye Webhooks: delivers ClockEye's events to customers' endpoints, signed, retried,
//! never lost. The folders name the audiences and the engine's stages; a delivery flows
//! `http → engine::ingest → engine::scheduler → engine::dispatch → engine::worker →
//! engine::retry → store`. `serve.rs` wires the threads on one screen; `cli` holds the command
//! line's one clap definition (`cli::args`) and the integrator commands.
//!
//! The library API is what receivers use: `catalog` (the event types and samples), `signing`
//! and `verify` (the `receiver` folder). Everything else is private to the executable.

mod cli;
mod config;
mod engine;
mod error;
mod http;
mod ids;
mod logging;
mod model;
mod receiver;
mod serve;
mod store;
mod time;

pub use receiver::{catalog, signing, verify};

/// The `clockeye-webhooks` executable (src/main.rs calls only this); not part of the library API.
#[doc(hidden)]
pub fn main() -> std::process::ExitCode {
    cli::main()
}

/// The clock and RFC 3339 parsing, for this crate's own integration tests (they compare the
/// service's times); not part of the library API.
#[doc(hidden)]
pub mod test_support {
    pub use crate::time::{now_ms, parse_rfc3339};
}
