//! Built-in engines, one per file.

pub mod counter;
pub mod exit_gate;
pub mod probe;
pub mod recorder;
