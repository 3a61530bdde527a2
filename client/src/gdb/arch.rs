//! The x86_64 Linux target as gdb and lldb see it: our own target
//! description (gdbstub's x86_64 `Arch` has no `orig_rax`, `fs_base` or
//! `gs_base`) and the `g` packet that matches it, register by register.
//!
//! Register numbers, in `g` order: 0–15 the general registers (`rax rbx rcx
//! rdx rsi rdi rbp rsp r8`–`r15`), 16 `rip`, 17 `eflags`, 18–23 `cs ss ds
//! es fs gs`, 24–31 `st0`–`st7`, 32–39 `fctrl fstat ftag fiseg fioff foseg
//! fooff fop`, 40–55 `xmm0`–`xmm15`, 56 `mxcsr`, 57 `orig_rax`, 58
//! `fs_base`, 59 `gs_base`: gdb's own numbering for amd64 Linux, so its
//! `amd64` ABI code finds every register where it expects it.
//!
//! Values come from the server by name (`GetRegisters` for the 8-byte ones,
//! `GetRegisterBytes` for x87 and SSE). The x87 tag word is the full one
//! gdb expects, computed from FXSAVE's abridged tag and the registers'
//! contents as the hardware would (Intel SDM vol. 1, 8.1.7).

use std::collections::HashMap;

use gdbstub::arch::{Arch, Registers};

/// gdbstub's view of the target.
pub enum X86_64Linux {}

impl Arch for X86_64Linux {
    type Usize = u64;
    type Registers = Regs;
    type BreakpointKind = usize;
    type RegId = ();

    fn target_description_xml() -> Option<&'static str> {
        Some(TARGET_XML)
    }
}

/// The general registers in `g` order (then `rip`, `eflags`).
pub const GPRS: [&str; 16] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];
/// Segment registers, 32 bits each in the `g` packet.
pub const SEGMENTS: [&str; 6] = ["cs", "ss", "ds", "es", "fs", "gs"];
/// Registers the server gives as 8-byte values.
pub const WORDS: [&str; 30] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs", "orig_rax", "fs_base",
    "gs_base", "fip", "fdp", "mxcsr",
];
/// Registers the server gives as bytes (any width).
pub const WIDE: [&str; 28] = [
    "fcw", "fsw", "ftw", "fop", "st0", "st1", "st2", "st3", "st4", "st5", "st6", "st7", "xmm0",
    "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
    "xmm12", "xmm13", "xmm14", "xmm15",
];

/// One thread's registers, as gdb numbers them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub gpr: [u64; 16],
    pub rip: u64,
    pub eflags: u32,
    pub seg: [u32; 6],
    pub st: [[u8; 10]; 8],
    pub fctrl: u32,
    pub fstat: u32,
    /// The full tag word (2 bits per physical register).
    pub ftag: u32,
    pub fiseg: u32,
    pub fioff: u32,
    pub foseg: u32,
    pub fooff: u32,
    pub fop: u32,
    pub xmm: [[u8; 16]; 16],
    pub mxcsr: u32,
    pub orig_rax: u64,
    pub fs_base: u64,
    pub gs_base: u64,
}

impl Registers for Regs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        let mut put = |b: &[u8]| b.iter().for_each(|b| write_byte(Some(*b)));
        for r in &self.gpr {
            put(&r.to_le_bytes());
        }
        put(&self.rip.to_le_bytes());
        put(&self.eflags.to_le_bytes());
        for s in &self.seg {
            put(&s.to_le_bytes());
        }
        for st in &self.st {
            put(st);
        }
        for v in [
            self.fctrl, self.fstat, self.ftag, self.fiseg, self.fioff, self.foseg, self.fooff,
            self.fop,
        ] {
            put(&v.to_le_bytes());
        }
        for x in &self.xmm {
            put(x);
        }
        put(&self.mxcsr.to_le_bytes());
        put(&self.orig_rax.to_le_bytes());
        put(&self.fs_base.to_le_bytes());
        put(&self.gs_base.to_le_bytes());
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        if bytes.len() != G_PACKET_LEN {
            return Err(());
        }
        let mut at = 0;
        let mut take = |n: usize| {
            let s = &bytes[at..at + n];
            at += n;
            s
        };
        let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
        let u32_ = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes"));
        for r in &mut self.gpr {
            *r = u64_(take(8));
        }
        self.rip = u64_(take(8));
        self.eflags = u32_(take(4));
        for s in &mut self.seg {
            *s = u32_(take(4));
        }
        for st in &mut self.st {
            st.copy_from_slice(take(10));
        }
        for v in [
            &mut self.fctrl,
            &mut self.fstat,
            &mut self.ftag,
            &mut self.fiseg,
            &mut self.fioff,
            &mut self.foseg,
            &mut self.fooff,
            &mut self.fop,
        ] {
            *v = u32_(take(4));
        }
        for x in &mut self.xmm {
            x.copy_from_slice(take(16));
        }
        self.mxcsr = u32_(take(4));
        self.orig_rax = u64_(take(8));
        self.fs_base = u64_(take(8));
        self.gs_base = u64_(take(8));
        Ok(())
    }
}

/// Bytes of a `g` packet.
pub const G_PACKET_LEN: usize = 16 * 8 + 8 + 4 + 6 * 4 + 8 * 10 + 8 * 4 + 16 * 16 + 4 + 3 * 8;

impl Regs {
    /// From the server's answers: `words` (8-byte values by name) and
    /// `wide` (bytes by name). A register missing from either is an error
    /// naming it.
    pub fn from_server(
        words: &HashMap<String, u64>,
        wide: &HashMap<String, utrace_proto::Bytes>,
    ) -> Result<Regs, String> {
        let w = |n: &str| {
            words
                .get(n)
                .copied()
                .ok_or_else(|| format!("the server sent no {n}"))
        };
        let b = |n: &str, len: usize| -> Result<&[u8], String> {
            wide.get(n)
                .map(|v| &v[..])
                .filter(|v| v.len() == len)
                .ok_or_else(|| format!("the server sent no {len}-byte {n}"))
        };
        let mut r = Regs::default();
        for (i, n) in GPRS.iter().enumerate() {
            r.gpr[i] = w(n)?;
        }
        r.rip = w("rip")?;
        r.eflags = w("eflags")? as u32;
        for (i, n) in SEGMENTS.iter().enumerate() {
            r.seg[i] = w(n)? as u32;
        }
        for i in 0..8 {
            r.st[i].copy_from_slice(b(&format!("st{i}"), 10)?);
        }
        let u16_ = |s: &[u8]| u32::from(u16::from_le_bytes([s[0], s[1]]));
        r.fctrl = u16_(b("fcw", 2)?);
        r.fstat = u16_(b("fsw", 2)?);
        r.ftag = full_tag(b("ftw", 2)?[0], r.fstat, &r.st);
        let fip = w("fip")?;
        let fdp = w("fdp")?;
        r.fioff = fip as u32;
        r.fiseg = ((fip >> 32) & 0xffff) as u32;
        r.fooff = fdp as u32;
        r.foseg = ((fdp >> 32) & 0xffff) as u32;
        r.fop = u16_(b("fop", 2)?) & 0x7ff;
        for i in 0..16 {
            r.xmm[i].copy_from_slice(b(&format!("xmm{i}"), 16)?);
        }
        r.mxcsr = w("mxcsr")? as u32;
        r.orig_rax = w("orig_rax")?;
        r.fs_base = w("fs_base")?;
        r.gs_base = w("gs_base")?;
        Ok(r)
    }

    /// What changed from `old` to `self`, as the server's writes: 8-byte
    /// registers by value, the others as bytes.
    #[allow(clippy::type_complexity)]
    pub fn changes_from(&self, old: &Regs) -> (Vec<(String, u64)>, Vec<(String, Vec<u8>)>) {
        let mut words = Vec::new();
        let mut wide = Vec::new();
        for (i, n) in GPRS.iter().enumerate() {
            if self.gpr[i] != old.gpr[i] {
                words.push((n.to_string(), self.gpr[i]));
            }
        }
        let mut word = |n: &str, new: u64, old: u64| {
            if new != old {
                words.push((n.to_string(), new));
            }
        };
        word("rip", self.rip, old.rip);
        word("eflags", self.eflags.into(), old.eflags.into());
        for (i, n) in SEGMENTS.iter().enumerate() {
            word(n, self.seg[i].into(), old.seg[i].into());
        }
        word("orig_rax", self.orig_rax, old.orig_rax);
        word("fs_base", self.fs_base, old.fs_base);
        word("gs_base", self.gs_base, old.gs_base);
        word("mxcsr", self.mxcsr.into(), old.mxcsr.into());
        let fip = |r: &Regs| u64::from(r.fioff) | u64::from(r.fiseg & 0xffff) << 32;
        let fdp = |r: &Regs| u64::from(r.fooff) | u64::from(r.foseg & 0xffff) << 32;
        word("fip", fip(self), fip(old));
        word("fdp", fdp(self), fdp(old));
        let mut bytes = |n: String, new: &[u8], old: &[u8]| {
            if new != old {
                wide.push((n, new.to_vec()));
            }
        };
        for i in 0..8 {
            bytes(format!("st{i}"), &self.st[i], &old.st[i]);
        }
        for i in 0..16 {
            bytes(format!("xmm{i}"), &self.xmm[i], &old.xmm[i]);
        }
        let u16b = |v: u32| (v as u16).to_le_bytes();
        bytes("fcw".into(), &u16b(self.fctrl), &u16b(old.fctrl));
        bytes("fsw".into(), &u16b(self.fstat), &u16b(old.fstat));
        bytes("fop".into(), &u16b(self.fop), &u16b(old.fop));
        if self.ftag != old.ftag {
            // FXSAVE keeps one bit per physical register: not empty.
            let abridged = (0..8).fold(0u16, |a, p| {
                if (self.ftag >> (2 * p)) & 3 != 3 {
                    a | 1 << p
                } else {
                    a
                }
            });
            wide.push(("ftw".into(), abridged.to_le_bytes().to_vec()));
        }
        (words, wide)
    }
}

/// The full x87 tag word from FXSAVE's abridged one: per physical
/// register, empty (3) if its bit is clear, else from the value it holds:
/// zero (1), special (2: NaN, infinity, denormal, unnormal) or valid (0).
pub fn full_tag(abridged: u8, fsw: u32, st: &[[u8; 10]; 8]) -> u32 {
    let top = ((fsw >> 11) & 7) as usize;
    let mut tag = 0u32;
    for p in 0..8 {
        let t = if abridged & (1 << p) == 0 {
            3
        } else {
            let v = &st[(p + 8 - top) % 8];
            let exp = u16::from_le_bytes([v[8], v[9]]) & 0x7fff;
            let mantissa = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
            let integer = mantissa >> 63 == 1;
            if exp == 0x7fff {
                2
            } else if exp == 0 {
                if mantissa == 0 {
                    1
                } else {
                    2
                }
            } else if integer {
                0
            } else {
                2
            }
        };
        tag |= t << (2 * p);
    }
    tag
}

/// The target description: gdb's amd64 Linux features, our registers.
const TARGET_XML: &str = r#"<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
  <architecture>i386:x86-64</architecture>
  <osabi>GNU/Linux</osabi>
  <feature name="org.gnu.gdb.i386.core">
    <flags id="i386_eflags" size="4">
      <field name="CF" start="0" end="0"/>
      <field name="" start="1" end="1"/>
      <field name="PF" start="2" end="2"/>
      <field name="AF" start="4" end="4"/>
      <field name="ZF" start="6" end="6"/>
      <field name="SF" start="7" end="7"/>
      <field name="TF" start="8" end="8"/>
      <field name="IF" start="9" end="9"/>
      <field name="DF" start="10" end="10"/>
      <field name="OF" start="11" end="11"/>
      <field name="NT" start="14" end="14"/>
      <field name="RF" start="16" end="16"/>
      <field name="VM" start="17" end="17"/>
      <field name="AC" start="18" end="18"/>
      <field name="VIF" start="19" end="19"/>
      <field name="VIP" start="20" end="20"/>
      <field name="ID" start="21" end="21"/>
    </flags>
    <reg name="rax" bitsize="64" type="int64" regnum="0"/>
    <reg name="rbx" bitsize="64" type="int64"/>
    <reg name="rcx" bitsize="64" type="int64"/>
    <reg name="rdx" bitsize="64" type="int64"/>
    <reg name="rsi" bitsize="64" type="int64"/>
    <reg name="rdi" bitsize="64" type="int64"/>
    <reg name="rbp" bitsize="64" type="data_ptr"/>
    <reg name="rsp" bitsize="64" type="data_ptr"/>
    <reg name="r8" bitsize="64" type="int64"/>
    <reg name="r9" bitsize="64" type="int64"/>
    <reg name="r10" bitsize="64" type="int64"/>
    <reg name="r11" bitsize="64" type="int64"/>
    <reg name="r12" bitsize="64" type="int64"/>
    <reg name="r13" bitsize="64" type="int64"/>
    <reg name="r14" bitsize="64" type="int64"/>
    <reg name="r15" bitsize="64" type="int64"/>
    <reg name="rip" bitsize="64" type="code_ptr"/>
    <reg name="eflags" bitsize="32" type="i386_eflags"/>
    <reg name="cs" bitsize="32" type="int32"/>
    <reg name="ss" bitsize="32" type="int32"/>
    <reg name="ds" bitsize="32" type="int32"/>
    <reg name="es" bitsize="32" type="int32"/>
    <reg name="fs" bitsize="32" type="int32"/>
    <reg name="gs" bitsize="32" type="int32"/>
    <reg name="st0" bitsize="80" type="i387_ext"/>
    <reg name="st1" bitsize="80" type="i387_ext"/>
    <reg name="st2" bitsize="80" type="i387_ext"/>
    <reg name="st3" bitsize="80" type="i387_ext"/>
    <reg name="st4" bitsize="80" type="i387_ext"/>
    <reg name="st5" bitsize="80" type="i387_ext"/>
    <reg name="st6" bitsize="80" type="i387_ext"/>
    <reg name="st7" bitsize="80" type="i387_ext"/>
    <reg name="fctrl" bitsize="32" type="int" group="float"/>
    <reg name="fstat" bitsize="32" type="int" group="float"/>
    <reg name="ftag" bitsize="32" type="int" group="float"/>
    <reg name="fiseg" bitsize="32" type="int" group="float"/>
    <reg name="fioff" bitsize="32" type="int" group="float"/>
    <reg name="foseg" bitsize="32" type="int" group="float"/>
    <reg name="fooff" bitsize="32" type="int" group="float"/>
    <reg name="fop" bitsize="32" type="int" group="float"/>
  </feature>
  <feature name="org.gnu.gdb.i386.sse">
    <vector id="v8bf16" type="bfloat16" count="8"/>
    <vector id="v8h" type="ieee_half" count="8"/>
    <vector id="v4f" type="ieee_single" count="4"/>
    <vector id="v2d" type="ieee_double" count="2"/>
    <vector id="v16i8" type="int8" count="16"/>
    <vector id="v8i16" type="int16" count="8"/>
    <vector id="v4i32" type="int32" count="4"/>
    <vector id="v2i64" type="int64" count="2"/>
    <union id="vec128">
      <field name="v8_bfloat16" type="v8bf16"/>
      <field name="v8_half" type="v8h"/>
      <field name="v4_float" type="v4f"/>
      <field name="v2_double" type="v2d"/>
      <field name="v16_int8" type="v16i8"/>
      <field name="v8_int16" type="v8i16"/>
      <field name="v4_int32" type="v4i32"/>
      <field name="v2_int64" type="v2i64"/>
      <field name="uint128" type="uint128"/>
    </union>
    <flags id="i386_mxcsr" size="4">
      <field name="IE" start="0" end="0"/>
      <field name="DE" start="1" end="1"/>
      <field name="ZE" start="2" end="2"/>
      <field name="OE" start="3" end="3"/>
      <field name="UE" start="4" end="4"/>
      <field name="PE" start="5" end="5"/>
      <field name="DAZ" start="6" end="6"/>
      <field name="IM" start="7" end="7"/>
      <field name="DM" start="8" end="8"/>
      <field name="ZM" start="9" end="9"/>
      <field name="OM" start="10" end="10"/>
      <field name="UM" start="11" end="11"/>
      <field name="PM" start="12" end="12"/>
      <field name="FZ" start="15" end="15"/>
    </flags>
    <reg name="xmm0" bitsize="128" type="vec128" regnum="40"/>
    <reg name="xmm1" bitsize="128" type="vec128"/>
    <reg name="xmm2" bitsize="128" type="vec128"/>
    <reg name="xmm3" bitsize="128" type="vec128"/>
    <reg name="xmm4" bitsize="128" type="vec128"/>
    <reg name="xmm5" bitsize="128" type="vec128"/>
    <reg name="xmm6" bitsize="128" type="vec128"/>
    <reg name="xmm7" bitsize="128" type="vec128"/>
    <reg name="xmm8" bitsize="128" type="vec128"/>
    <reg name="xmm9" bitsize="128" type="vec128"/>
    <reg name="xmm10" bitsize="128" type="vec128"/>
    <reg name="xmm11" bitsize="128" type="vec128"/>
    <reg name="xmm12" bitsize="128" type="vec128"/>
    <reg name="xmm13" bitsize="128" type="vec128"/>
    <reg name="xmm14" bitsize="128" type="vec128"/>
    <reg name="xmm15" bitsize="128" type="vec128"/>
    <reg name="mxcsr" bitsize="32" type="i386_mxcsr" group="vector"/>
  </feature>
  <feature name="org.gnu.gdb.i386.linux">
    <reg name="orig_rax" bitsize="64" type="int" group="system" regnum="57"/>
  </feature>
  <feature name="org.gnu.gdb.i386.segments">
    <reg name="fs_base" bitsize="64" type="int"/>
    <reg name="gs_base" bitsize="64" type="int"/>
  </feature>
</target>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_packet_round_trips() {
        let mut r = Regs::default();
        r.gpr[3] = 0x1122_3344_5566_7788;
        r.rip = 0x40_1000;
        r.eflags = 0x246;
        r.st[2] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        r.xmm[15] = [0xab; 16];
        r.gs_base = 7;
        let mut bytes = Vec::new();
        r.gdb_serialize(|b| bytes.push(b.unwrap()));
        assert_eq!(bytes.len(), G_PACKET_LEN);
        let mut back = Regs::default();
        back.gdb_deserialize(&bytes).unwrap();
        assert_eq!(back, r);
        assert!(back.gdb_deserialize(&bytes[1..]).is_err());
    }

    #[test]
    fn full_tag_from_abridged() {
        let mut st = [[0u8; 10]; 8];
        // TOP = 6: st0 is physical 6, st1 physical 7.
        let fsw = 6 << 11;
        st[0] = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]; // 1.0: valid
        st[1] = [0; 10]; // +0: zero
        let tag = full_tag(0b1100_0000, fsw, &st);
        assert_eq!(tag, 0b0100_1111_1111_1111);
        // All empty.
        assert_eq!(full_tag(0, 0, &st), 0xffff);
    }

    #[test]
    fn changes_are_only_what_changed() {
        let old = Regs::default();
        let mut new = old.clone();
        new.gpr[0] = 5;
        new.xmm[1] = [1; 16];
        new.ftag = 0xfffc;
        let (words, wide) = new.changes_from(&old);
        assert_eq!(words, vec![("rax".to_string(), 5)]);
        assert_eq!(wide.len(), 2);
        assert_eq!(wide[0], ("xmm1".to_string(), vec![1; 16]));
        assert_eq!(wide[1], ("ftw".to_string(), vec![1, 0]));
    }
}
