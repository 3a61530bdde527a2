//! Primitive formats: numbers, pointers, quoted strings and buffers, the
//! byte readers the structure decoders use, flags and enums.

use std::fmt::Write as _;
use std::mem::size_of;

use super::decode::Ctx;
use super::names::{ACCESS_MODES, OPEN_FLAGS};
use super::table::{Flags, Names};
pub(super) fn hex(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

pub(super) fn ptr(v: u64) -> String {
    if v == 0 {
        "NULL".into()
    } else {
        format!("{v:#x}")
    }
}

/// How named constants are printed (strace's `-X`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Xlat {
    /// Names (`O_RDONLY|O_CLOEXEC`): strace's default, `-X abbrev`.
    #[default]
    Abbrev,
    /// Numbers (`0x80000`): `-X raw`.
    Raw,
    /// Both (`0x80000 /* O_RDONLY|O_CLOEXEC */`): `-X verbose`.
    Verbose,
}

thread_local! {
    /// The style of the call being decoded (set for its decoding by
    /// [`XlatScope`]; decoding runs on one thread, call by call).
    static XLAT: std::cell::Cell<Xlat> = const { std::cell::Cell::new(Xlat::Abbrev) };
}

/// The style of the call being decoded.
pub(super) fn style() -> Xlat {
    XLAT.with(|x| x.get())
}

/// Print constants as `style` says until dropped.
pub(super) struct XlatScope(Xlat);

impl XlatScope {
    pub(super) fn new(style: Xlat) -> XlatScope {
        XlatScope(XLAT.with(|x| x.replace(style)))
    }
}

impl Drop for XlatScope {
    fn drop(&mut self) {
        XLAT.with(|x| x.set(self.0));
    }
}

/// A constant as the style says: its number `raw`, its name(s) `named`
/// (made only when shown), or both; a number with no name is the number
/// alone in every style.
pub(super) fn xlat(raw: String, named: impl FnOnce() -> String) -> String {
    match XLAT.with(|x| x.get()) {
        Xlat::Raw => raw,
        Xlat::Abbrev => named(),
        Xlat::Verbose => {
            let named = named();
            if named == raw {
                raw
            } else {
                format!("{raw} /* {named} */")
            }
        }
    }
}

pub(super) fn dirfd(v: u64) -> String {
    let fd = v as i32;
    if fd == libc::AT_FDCWD {
        xlat(fd.to_string(), || "AT_FDCWD".into())
    } else {
        fd.to_string()
    }
}

/// An octal mode as strace's `%#03o`: `0644`, `000`, `007`.
pub(super) fn mode_octal(m: u32) -> String {
    if m == 0 {
        "000".into()
    } else {
        format!("{:0>3}", format!("0{m:o}"))
    }
}

/// Quote bytes as strace does: C escapes, octal for the rest (three digits
/// when an octal digit follows), or every byte as `\xNN` with `force_hex`.
pub(super) fn quote(bytes: &[u8], force_hex: bool) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for (i, &c) in bytes.iter().enumerate() {
        if force_hex {
            let _ = write!(s, "\\x{c:02x}");
            continue;
        }
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x0b => s.push_str("\\v"),
            0x0c => s.push_str("\\f"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let octal_follows = bytes.get(i + 1).is_some_and(|n| (b'0'..=b'7').contains(n));
                if octal_follows {
                    let _ = write!(s, "\\{c:03o}");
                } else {
                    let _ = write!(s, "\\{c:o}");
                }
            }
        }
    }
    s.push('"');
    s
}

/// A NUL-terminated string of at most `limit` bytes, `...` if longer.
pub(super) fn string_at(c: &mut Ctx<'_>, addr: u64, limit: usize) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    let read = c.mem.string(addr, limit);
    quote_read(c, addr, read)
}

/// A string read at `addr` (see `Tracee::string`) as strace shows it:
/// quoted, `...` if cut, the address if unreadable.
pub(super) fn quote_read(c: &Ctx<'_>, addr: u64, read: Option<(Vec<u8>, bool)>) -> String {
    match read {
        Some((bytes, true)) => quote(&bytes, c.hex(&bytes)),
        Some((bytes, false)) => quote(&bytes, c.hex(&bytes)) + "...",
        None => ptr(addr),
    }
}

/// `len` bytes at `addr`, at most the string limit of them, `...` if more.
pub(super) fn buffer_at(c: &mut Ctx<'_>, addr: u64, len: usize, force_hex: bool) -> String {
    if addr == 0 && len != 0 {
        return "NULL".into();
    }
    let shown = len.min(c.limit);
    match c.mem.bytes(addr, shown) {
        Some(b) if shown < len => quote(&b, force_hex || c.hex(&b)) + "...",
        Some(b) => quote(&b, force_hex || c.hex(&b)),
        None => ptr(addr),
    }
}

pub(super) fn u16_at(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_ne_bytes)
}

pub(super) fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

pub(super) fn i32_at(b: &[u8], off: usize) -> i32 {
    u32_at(b, off) as i32
}

pub(super) fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// A C string in a fixed-size field.
pub(super) fn c_field(b: &[u8], off: usize, len: usize) -> &[u8] {
    let field = b.get(off..(off + len).min(b.len())).unwrap_or(&[]);
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    &field[..end]
}

/// A struct of `size` bytes read at entry, formatted by `f`.
pub(super) fn in_struct(c: &mut Ctx<'_>, addr: u64, size: usize, f: fn(&[u8]) -> String) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    match c.mem.bytes(addr, size) {
        Some(b) => f(&b),
        None => ptr(addr),
    }
}

/// A struct of `size` bytes the kernel wrote, formatted by `f`: shown only
/// if the call succeeded, else as the pointer.
pub(super) fn out_struct(
    c: &mut Ctx<'_>,
    addr: u64,
    size: usize,
    f: impl FnOnce(&[u8]) -> String,
) -> String {
    if addr == 0 {
        return "NULL".into();
    }
    if c.success().is_none() {
        return ptr(addr);
    }
    match c.mem.bytes(addr, size) {
        Some(b) => f(&b),
        None => ptr(addr),
    }
}

pub(super) fn flags(v: u64, f: &Flags) -> String {
    xlat(hex(v), || flag_names(v, f))
}

fn flag_names(v: u64, f: &Flags) -> String {
    if v == 0 {
        return f.zero.to_string();
    }
    let mut parts = Vec::new();
    let mut rest = v;
    for &(bits, name) in f.names {
        if bits != 0 && rest & bits == bits {
            parts.push(name.to_string());
            rest &= !bits;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

pub(super) fn enum_lookup(v: u64, names: &Names) -> Option<&'static str> {
    names.iter().find(|(n, _)| *n == v).map(|(_, s)| *s)
}

pub(super) fn enum_name(v: u64, names: &Names) -> String {
    match enum_lookup(v, names) {
        // A named value's number is hex, as strace's (`0x2 /* SIG_SETMASK */`).
        Some(s) => xlat(hex(v as u32 as u64), || s.to_string()),
        None => (v as i64 as i32).to_string(),
    }
}

pub(super) fn open_flags(v: u64) -> String {
    let v = v as u32 as u64;
    xlat(hex(v), || open_flag_names(v))
}

fn open_flag_names(v: u64) -> String {
    let acc = v & libc::O_ACCMODE as u64;
    let mode = match enum_lookup(acc, ACCESS_MODES) {
        Some(n) => n.to_string(),
        None => format!("{acc:#x}"),
    };
    let rest = v & !(libc::O_ACCMODE as u64);
    if rest == 0 {
        mode
    } else {
        format!("{mode}|{}", flag_names(rest, &OPEN_FLAGS))
    }
}

pub(super) fn fd_pair(b: &[u8]) -> String {
    format!("[{}, {}]", i32_at(b, 0), i32_at(b, size_of::<i32>()))
}
