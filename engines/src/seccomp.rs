//! The seccomp-bpf filter for kernel-side syscall filtering: `SECCOMP_RET_TRACE`
//! for the syscalls some engine wants, `ALLOW` for the rest.

use crate::arch::AUDIT_ARCH;
use crate::event::SyscallSet;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
/// `offsetof(struct seccomp_data, nr)` and `arch`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// x32 syscalls carry this bit in their number.
const X32_BIT: u32 = 0x4000_0000;
/// The sign bit: a negative syscall number.
const NEGATIVE_BIT: u32 = 0x8000_0000;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Build the filter program for `set`.
///
/// - Calls of another ABI (i386, x32) are sent to the tracer: their numbers
///   differ, so the core filters them in user space rather than guess.
/// - Negative numbers (a tracer's `-1` to skip a call; the kernel runs the
///   filter again after a tracer changes the number) are allowed.
/// - Each wanted number is a two-instruction test (`jeq; ret TRACE`), so no
///   jump is ever longer than one instruction whatever the set's size.
pub fn filter_for(set: &SyscallSet) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, RET_TRACE), // another ABI
        stmt(BPF_LD_W_ABS, OFF_NR),
        jump(BPF_JSET_K, NEGATIVE_BIT, 0, 1),
        stmt(BPF_RET_K, RET_ALLOW), // negative: a skipped call
        jump(BPF_JSET_K, X32_BIT, 0, 1),
        stmt(BPF_RET_K, RET_TRACE), // x32
    ];
    if set.is_all() {
        p.push(stmt(BPF_RET_K, RET_TRACE));
        return p;
    }
    for nr in set.iter() {
        p.push(jump(BPF_JEQ_K, nr as u32, 0, 1));
        p.push(stmt(BPF_RET_K, RET_TRACE));
    }
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the subset of classic BPF the filter uses.
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let mut pc = 0usize;
        let mut acc = 0u32;
        loop {
            let i = p[pc];
            match i.code {
                BPF_LD_W_ABS => acc = if i.k == OFF_ARCH { arch } else { nr },
                BPF_JEQ_K => {
                    pc += if acc == i.k { i.jt } else { i.jf } as usize;
                }
                BPF_JSET_K => {
                    pc += if acc & i.k != 0 { i.jt } else { i.jf } as usize;
                }
                BPF_RET_K => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn traces_only_the_set() {
        let set = SyscallSet::from_names(["openat", "write"]).unwrap();
        let p = filter_for(&set);
        assert_eq!(run(&p, AUDIT_ARCH, 257), RET_TRACE);
        assert_eq!(run(&p, AUDIT_ARCH, 1), RET_TRACE);
        assert_eq!(run(&p, AUDIT_ARCH, 110), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH, 0), RET_ALLOW);
    }

    #[test]
    fn negative_numbers_allowed_other_abis_traced() {
        let p = filter_for(&SyscallSet::from_names(["openat"]).unwrap());
        assert_eq!(run(&p, AUDIT_ARCH, u32::MAX), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH, X32_BIT | 257), RET_TRACE);
        assert_eq!(run(&p, 0x4000_0003, 5), RET_TRACE);
    }

    #[test]
    fn all_traces_everything_but_negative() {
        let p = filter_for(&SyscallSet::all());
        assert_eq!(run(&p, AUDIT_ARCH, 39), RET_TRACE);
        assert_eq!(run(&p, AUDIT_ARCH, u32::MAX), RET_ALLOW);
    }

    #[test]
    fn large_sets_fit() {
        let mut set = SyscallSet::empty();
        for nr in 0..450 {
            set.insert(nr);
        }
        let p = filter_for(&set);
        assert!(p.len() < 4096);
        assert_eq!(run(&p, AUDIT_ARCH, 449), RET_TRACE);
        assert_eq!(run(&p, AUDIT_ARCH, 451), RET_ALLOW);
    }
}
