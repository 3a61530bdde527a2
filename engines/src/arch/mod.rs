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

/// Every register's name, for messages: runs of numbered ones written
/// `xmm0-xmm15`.
pub fn register_names() -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(String, u32, u32)> = None;
    let flush = |run: &mut Option<(String, u32, u32)>, out: &mut Vec<String>| {
        if let Some((stem, a, b)) = run.take() {
            out.push(if a == b {
                format!("{stem}{a}")
            } else {
                format!("{stem}{a}-{stem}{b}")
            });
        }
    };
    for r in REGISTERS {
        let digits = r.name.len() - r.name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (stem, num) = r.name.split_at(r.name.len() - digits);
        // r8-r15 and friends are names of their own, not a run of "r".
        let num = (!stem.is_empty() && stem != "r" && digits > 0)
            .then(|| num.parse::<u32>().ok())
            .flatten();
        match (num, &mut run) {
            (Some(n), Some((s, _, b))) if s == stem && *b + 1 == n => *b = n,
            (Some(n), _) => {
                flush(&mut run, &mut out);
                run = Some((stem.to_string(), n, n));
            }
            (None, _) => {
                flush(&mut run, &mut out);
                out.push(r.name.to_string());
            }
        }
    }
    flush(&mut run, &mut out);
    out.join(", ")
}

/// Look a register up by its usual name (case-insensitive).
pub fn register(name: &str) -> Option<&'static RegDesc> {
    REGISTERS.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}
