//! x86_64: `user_regs_struct`, `user_fpregs_struct`, debug registers.

use super::{RegDesc, RegSet};

/// `AUDIT_ARCH_X86_64`, as seen by seccomp filters and `PTRACE_GET_SYSCALL_INFO`.
pub const AUDIT_ARCH: u32 = 0xc000_003e;
/// Bytes in `user_regs_struct` (27 words).
pub const GENERAL_REGS_SIZE: usize = 27 * 8;
/// Bytes in `user_fpregs_struct`.
pub const FLOAT_REGS_SIZE: usize = 512;
/// `offsetof(struct user, u_debugreg)`.
const DEBUGREG_OFFSET: usize = 848;

/// Hardware breakpoint and watchpoint slots (`dr0`-`dr3`).
pub const DEBUG_SLOTS: usize = 4;

/// The `PEEKUSER`/`POKEUSER` offset of debug register `index` (0-7).
pub const fn debugreg_offset(index: usize) -> usize {
    DEBUGREG_OFFSET + index * 8
}

/// How a debug-register slot fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchKind {
    /// Executing the instruction at the address (a hardware breakpoint:
    /// the thread stops before it runs).
    Execute,
    /// Writing any of the bytes (the thread stops after the write).
    Write,
    /// Reading or writing any of the bytes (x86 has no read-only kind).
    ReadWrite,
}

/// `dr7`'s bits that enable slot `slot` with `kind` over `len` bytes (1,
/// 2, 4 or 8; 1 for `Execute`): the local-enable bit, and the slot's R/W
/// and LEN fields (Intel SDM vol. 3, 18.2.4).
pub const fn dr7_bits(slot: usize, kind: WatchKind, len: u8) -> u64 {
    let rw: u64 = match kind {
        WatchKind::Execute => 0b00,
        WatchKind::Write => 0b01,
        WatchKind::ReadWrite => 0b11,
    };
    let ln: u64 = match len {
        2 => 0b01,
        4 => 0b11,
        8 => 0b10,
        _ => 0b00,
    };
    (1 << (2 * slot)) | (rw << (16 + 4 * slot)) | (ln << (18 + 4 * slot))
}

/// `dr7`'s bits that belong to slot `slot` (enables, R/W, LEN).
pub const fn dr7_slot_mask(slot: usize) -> u64 {
    (0b11 << (2 * slot)) | (0b1111 << (16 + 4 * slot))
}

/// Offsets (bytes) into the general register set used by the core.
pub mod gp {
    pub const RAX: usize = 10 * 8;
    pub const ORIG_RAX: usize = 15 * 8;
    pub const RIP: usize = 16 * 8;
    pub const EFLAGS: usize = 18 * 8;
    pub const RSP: usize = 19 * 8;
    /// Syscall arguments in ABI order: rdi, rsi, rdx, r10, r8, r9.
    pub const ARGS: [usize; 6] = [14 * 8, 13 * 8, 12 * 8, 7 * 8, 9 * 8, 8 * 8];
}

/// The trap flag in `eflags` (single-step).
pub const EFLAGS_TF: u64 = 1 << 8;

const fn g(name: &'static str, index: usize) -> RegDesc {
    RegDesc {
        name,
        set: RegSet::General,
        offset: index * 8,
        size: 8,
    }
}

const fn f(name: &'static str, offset: usize, size: usize) -> RegDesc {
    RegDesc {
        name,
        set: RegSet::Float,
        offset,
        size,
    }
}

const fn d(name: &'static str, index: usize) -> RegDesc {
    RegDesc {
        name,
        set: RegSet::Debug,
        offset: DEBUGREG_OFFSET + index * 8,
        size: 8,
    }
}

/// Every register by name, in the order `registers()` lists them.
pub static REGISTERS: &[RegDesc] = &[
    g("rax", 10),
    g("rbx", 5),
    g("rcx", 11),
    g("rdx", 12),
    g("rsi", 13),
    g("rdi", 14),
    g("rbp", 4),
    g("rsp", 19),
    g("r8", 9),
    g("r9", 8),
    g("r10", 7),
    g("r11", 6),
    g("r12", 3),
    g("r13", 2),
    g("r14", 1),
    g("r15", 0),
    g("rip", 16),
    g("eflags", 18),
    g("orig_rax", 15),
    g("cs", 17),
    g("ss", 20),
    g("ds", 23),
    g("es", 24),
    g("fs", 25),
    g("gs", 26),
    g("fs_base", 21),
    g("gs_base", 22),
    f("fcw", 0, 2),
    f("fsw", 2, 2),
    f("ftw", 4, 2),
    f("fop", 6, 2),
    f("fip", 8, 8),
    f("fdp", 16, 8),
    f("mxcsr", 24, 4),
    f("mxcsr_mask", 28, 4),
    f("st0", 32, 10),
    f("st1", 48, 10),
    f("st2", 64, 10),
    f("st3", 80, 10),
    f("st4", 96, 10),
    f("st5", 112, 10),
    f("st6", 128, 10),
    f("st7", 144, 10),
    f("xmm0", 160, 16),
    f("xmm1", 176, 16),
    f("xmm2", 192, 16),
    f("xmm3", 208, 16),
    f("xmm4", 224, 16),
    f("xmm5", 240, 16),
    f("xmm6", 256, 16),
    f("xmm7", 272, 16),
    f("xmm8", 288, 16),
    f("xmm9", 304, 16),
    f("xmm10", 320, 16),
    f("xmm11", 336, 16),
    f("xmm12", 352, 16),
    f("xmm13", 368, 16),
    f("xmm14", 384, 16),
    f("xmm15", 400, 16),
    d("dr0", 0),
    d("dr1", 1),
    d("dr2", 2),
    d("dr3", 3),
    d("dr6", 6),
    d("dr7", 7),
];
