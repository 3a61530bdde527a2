//! What a probe asks the kernel to take at the hit (tracefs fetch
//! arguments, [`crate::Task::fetch_at`]) so that what it reads from the
//! program's memory is what was there at the probe point, not what is
//! there when the server takes the sample: `str()` and `buf()` of an
//! address held in a register (plus a constant), and USDT arguments kept
//! in memory (`8@-16(%rbp)`). The text of an argument is its name: the
//! engine asks for it when it places the point, and finds its value in a
//! hit under the same text.

use super::program::{BinOp, Builtin, Expr};
use super::resolve::UsdtArg;
use crate::BreakpointHit;

/// The longest array tracefs fetches (`:u8[64]`); a longer `buf()` is
/// read after the hit.
const MAX_ARRAY: u32 = 64;

/// tracefs's name of register `i` of [`BreakpointHit::REGISTERS`].
fn reg_name(i: usize) -> Option<&'static str> {
    Some(match *BreakpointHit::REGISTERS.get(i)? {
        "rax" => "%ax",
        "rbx" => "%bx",
        "rcx" => "%cx",
        "rdx" => "%dx",
        "rsi" => "%si",
        "rdi" => "%di",
        "rbp" => "%bp",
        "rsp" => "%sp",
        "rip" => "%ip",
        "eflags" => "%flags",
        "cs" => "%cs",
        "ss" => "%ss",
        "r8" => "%r8",
        "r9" => "%r9",
        "r10" => "%r10",
        "r11" => "%r11",
        "r12" => "%r12",
        "r13" => "%r13",
        "r14" => "%r14",
        "r15" => "%r15",
        _ => return None,
    })
}

/// The System V argument registers' tracefs names.
const ARG_REGS: [&str; 6] = ["%di", "%si", "%dx", "%cx", "%r8", "%r9"];

/// Where a point's hit finds things.
#[derive(Clone, Copy)]
pub struct At<'a> {
    /// A USDT marker's argument places (else a function's registers).
    pub usdt: Option<&'a [UsdtArg]>,
    /// A return probe's hit (retval is `%ax`; arguments mean nothing).
    pub ret: bool,
}

/// A value `e` has at the hit, as a tracefs fetch argument and a constant
/// to add to it: a register (an argument's, a named one, the return
/// value) or a USDT argument in memory, plus or minus constants.
fn base(e: &Expr, at: At<'_>) -> Option<(String, i64)> {
    match e {
        Expr::Arg(i) if !at.ret => match at.usdt {
            None => Some((ARG_REGS.get(usize::from(*i))?.to_string(), 0)),
            Some(spec) => match *spec.get(usize::from(*i))? {
                UsdtArg::Reg { reg, size: 8 | -8 } => Some((reg_name(reg)?.to_string(), 0)),
                UsdtArg::Mem {
                    reg,
                    off,
                    size: 8 | -8,
                } => Some((format!("{off:+}({})", reg_name(reg)?), 0)),
                _ => None,
            },
        },
        Expr::Reg(i) => Some((reg_name(*i)?.to_string(), 0)),
        Expr::Builtin(Builtin::Retval) if at.ret => Some(("%ax".to_string(), 0)),
        Expr::Bin(BinOp::Add, a, b) => match (&**a, &**b) {
            (x, Expr::Int(c)) | (Expr::Int(c), x) => {
                let (f, k) = base(x, at)?;
                Some((f, k.checked_add(*c)?))
            }
            _ => None,
        },
        Expr::Bin(BinOp::Sub, a, b) => match &**b {
            Expr::Int(c) => {
                let (f, k) = base(a, at)?;
                Some((f, k.checked_sub(*c)?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The fetch argument giving `e`'s value at the hit, if the kernel can
/// take it: a `str()` (a string, which the kernel bounds), a `buf()` of at
/// most 64 bytes.
pub fn of(e: &Expr, at: At<'_>) -> Option<String> {
    match e {
        Expr::StrAt(addr, _) => {
            let (f, off) = base(addr, at)?;
            Some(format!("{off:+}({f}):string"))
        }
        Expr::Buf(addr, n) if (1..=MAX_ARRAY).contains(n) => {
            let (f, off) = base(addr, at)?;
            Some(format!("{off:+}({f}):u8[{n}]"))
        }
        _ => None,
    }
}

/// The fetch argument giving a USDT argument kept in memory.
pub fn usdt_mem(a: &UsdtArg) -> Option<String> {
    let UsdtArg::Mem { reg, off, size } = *a else {
        return None;
    };
    let ty = match size {
        1 => "u8",
        2 => "u16",
        4 => "u32",
        -1 => "s8",
        -2 => "s16",
        -4 => "s32",
        -8 => "s64",
        _ => "u64",
    };
    Some(format!("{off:+}({}):{ty}", reg_name(reg)?))
}

/// Every fetch argument `e` (and what it contains) needs.
pub fn collect(e: &Expr, at: At<'_>, out: &mut Vec<String>) {
    if let Some(f) = of(e, at) {
        out.push(f);
    }
    match e {
        Expr::Bin(_, a, b) => {
            collect(a, at, out);
            collect(b, at, out);
        }
        Expr::Un(_, a) | Expr::StrAt(a, _) | Expr::Buf(a, _) => collect(a, at, out),
        Expr::Int(_) | Expr::Str(_) | Expr::Builtin(_) | Expr::Arg(_) | Expr::Reg(_) => {}
        Expr::Ustack(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str) -> usize {
        BreakpointHit::REGISTERS
            .iter()
            .position(|r| *r == name)
            .expect("a register")
    }

    #[test]
    fn arguments_registers_and_offsets() {
        let f = At {
            usdt: None,
            ret: false,
        };
        let s = |a: Expr| Expr::StrAt(Box::new(a), 64);
        assert_eq!(of(&s(Expr::Arg(0)), f).as_deref(), Some("+0(%di):string"));
        let plus = Expr::Bin(BinOp::Add, Box::new(Expr::Arg(1)), Box::new(Expr::Int(8)));
        assert_eq!(of(&s(plus), f).as_deref(), Some("+8(%si):string"));
        let minus = Expr::Bin(
            BinOp::Sub,
            Box::new(Expr::Reg(reg("rsp"))),
            Box::new(Expr::Int(16)),
        );
        assert_eq!(of(&s(minus), f).as_deref(), Some("-16(%sp):string"));
        assert_eq!(
            of(&Expr::Buf(Box::new(Expr::Arg(2)), 16), f).as_deref(),
            Some("+0(%dx):u8[16]")
        );
        assert_eq!(of(&Expr::Buf(Box::new(Expr::Arg(2)), 65), f), None);
        // Products, and the return value at an entry, are not fetched.
        let times = Expr::Bin(BinOp::Mul, Box::new(Expr::Arg(0)), Box::new(Expr::Int(2)));
        assert_eq!(of(&s(times), f), None);
        assert_eq!(of(&s(Expr::Builtin(Builtin::Retval)), f), None);
        let r = At {
            usdt: None,
            ret: true,
        };
        assert_eq!(
            of(&s(Expr::Builtin(Builtin::Retval)), r).as_deref(),
            Some("+0(%ax):string")
        );
    }

    #[test]
    fn usdt_arguments() {
        let spec = [
            UsdtArg::Reg {
                reg: reg("rax"),
                size: 8,
            },
            UsdtArg::Mem {
                reg: reg("rbp"),
                off: -16,
                size: 8,
            },
            UsdtArg::Mem {
                reg: reg("rbp"),
                off: -4,
                size: -4,
            },
        ];
        let u = At {
            usdt: Some(&spec),
            ret: false,
        };
        let s = |i| Expr::StrAt(Box::new(Expr::Arg(i)), 64);
        assert_eq!(of(&s(0), u).as_deref(), Some("+0(%ax):string"));
        assert_eq!(of(&s(1), u).as_deref(), Some("+0(-16(%bp)):string"));
        assert_eq!(of(&s(2), u), None, "a 4-byte value is no address");
        assert_eq!(usdt_mem(&spec[1]).as_deref(), Some("-16(%bp):u64"));
        assert_eq!(usdt_mem(&spec[2]).as_deref(), Some("-4(%bp):s32"));
        assert_eq!(usdt_mem(&spec[0]), None);
    }
}
