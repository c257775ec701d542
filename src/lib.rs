//! ClockEye Webhooks: delivers ClockEye's events to customers' endpoints, signed, retried,
//! never lost. The data flows one way:
//! `api → ingest → store (outbox) → scheduler → workers → retry policy → store`.
//! `main.rs` wires the threads; `cli` holds the command line's one clap definition
//! (`cli::args`) and the integrator commands (listen, verify, send and the API client);
//! receivers can use `verify`.

pub mod api;
pub mod attempt_request;
pub mod backup;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod dispatch;
pub mod edge;
pub mod error;
pub mod faults;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod net;
pub mod openapi;
pub mod owner;
pub mod pages;
pub mod purge;
pub mod retry;
pub mod scheduler;
pub mod signing;
pub mod store;
pub mod tcp;
pub mod time;
pub mod verify;
pub mod worker;
