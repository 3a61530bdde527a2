//! Architecture-specific facts: register layout and names, the syscall ABI,
//! the audit arch used by seccomp. Everything else in the crate is portable;
//! aarch64 adds a sibling module with the same items.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("utrace-engines supports x86_64 today; aarch64 is the next port (see arch/mod.rs)");

/// Which kernel register set a register lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegSet {
    /// `NT_PRSTATUS`: general-purpose registers, cached per stop.
    General,
    /// `NT_PRFPREG`: x87/SSE state, cached per stop.
    Float,
    /// Debug registers, read and written through `PEEKUSER`/`POKEUSER`.
    Debug,
}

/// One register: its name, set, byte offset within that set and size.
#[derive(Clone, Copy, Debug)]
pub struct RegDesc {
    pub name: &'static str,
    pub set: RegSet,
    pub offset: usize,
    pub size: usize,
}

/// Look a register up by its usual name (case-insensitive).
pub fn register(name: &str) -> Option<&'static RegDesc> {
    REGISTERS.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}
