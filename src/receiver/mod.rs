//! The library API receivers use: the event catalog, signing, and verification with diagnosis.

pub mod catalog;
pub mod signing;
pub mod verify;
