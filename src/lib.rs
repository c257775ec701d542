//! ClockEye Webhooks: delivers ClockEye's events to customers' endpoints, signed, retried,
//! never lost. The folders name the audiences and the engine's stages; a delivery flows
//! `http → engine::ingest → engine::scheduler → engine::dispatch → engine::worker →
//! engine::retry → store`. `serve.rs` wires the threads on one screen; `cli` holds the command
//! line's one clap definition (`cli::args`) and the integrator commands; receivers use the
//! library API: `catalog`, `signing` and `verify` (the `receiver` folder).

pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod http;
pub mod logging;
pub mod model;
pub mod receiver;
pub mod serve;
pub mod store;
pub mod time;

pub use receiver::{catalog, signing, verify};

/// The `clockeye-webhooks` executable (src/main.rs calls only this); not part of the library API.
#[doc(hidden)]
pub fn main() -> std::process::ExitCode {
    cli::main()
}
