//! Built-in engines, one per file.

pub mod exit_gate;
