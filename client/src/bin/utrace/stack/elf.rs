//! What `-k` needs of one ELF file: where its segments are, its call-frame
//! information (`.eh_frame`, with `.eh_frame_hdr`'s search table when
//! there is one) and its symbols. Parsed with `object`; unwound with
//! `gimli`. The file is read by this process, with its user's rights (a
//! daemon never parses a traced program's files).

use gimli::{BaseAddresses, EhFrame, EhFrameHdr, LittleEndian, UnwindContext, UnwindSection};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// A section's bytes and address.
struct Section {
    addr: u64,
    data: Vec<u8>,
}

/// How to find a frame's caller from its CFA, as the file's call-frame
/// information says at an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The canonical frame address: this register (gimli's x86-64 number:
    /// 7 rsp, 6 rbp) plus an offset.
    pub cfa_register: u16,
    pub cfa_offset: i64,
    /// Where the return address is saved, from the CFA.
    pub ra_at: i64,
    /// Where rbp is saved, from the CFA (none: unchanged).
    pub rbp_at: Option<i64>,
}

/// One ELF file.
pub struct Module {
    /// The address its first segment has in the file's own numbering, page
    /// aligned (0 for shared objects and PIE programs): a memory address
    /// minus where the file's first byte is mapped, plus this, is the
    /// file's own address.
    pub link_base: u64,
    text: u64,
    eh_frame: Option<Section>,
    eh_frame_hdr: Option<Section>,
    /// Defined symbols by address (the symbol table, else the dynamic
    /// one: as libdw, which strace uses, chooses).
    symbols: Vec<(u64, String)>,
}

impl Module {
    /// Read and parse the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Module, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
        let link_base = file
            .segments()
            .map(|s| s.address().saturating_sub(s.file_range().0))
            .min()
            .unwrap_or(0)
            & !0xfff;
        let section = |name: &str| -> Option<Section> {
            let s = file.section_by_name(name)?;
            Some(Section {
                addr: s.address(),
                data: s.data().ok()?.to_vec(),
            })
        };
        // The symbol table, else the dynamic one; of symbols at one
        // address, a weak one before a global one before a local one, else
        // the first listed (libdw's choice, so the names are strace's).
        let listed = |syms: &mut dyn Iterator<Item = object::Symbol<'_, '_>>| {
            let mut v: Vec<(u64, u8, usize, String)> = syms
                .enumerate()
                .filter(|(_, s)| {
                    s.is_definition()
                        && matches!(
                            s.kind(),
                            object::SymbolKind::Text
                                | object::SymbolKind::Data
                                | object::SymbolKind::Unknown
                        )
                })
                .filter_map(|(i, s)| {
                    let bind = if s.is_weak() {
                        2
                    } else if s.is_global() {
                        1
                    } else {
                        0
                    };
                    Some((s.address(), bind, i, s.name().ok()?.to_string()))
                })
                .filter(|(_, _, _, n)| !n.is_empty())
                .collect();
            v.sort_by_key(|(a, bind, i, _)| (*a, std::cmp::Reverse(*bind), *i));
            v.dedup_by_key(|(a, ..)| *a);
            v.into_iter().map(|(a, _, _, n)| (a, n)).collect::<Vec<_>>()
        };
        let mut symbols = listed(&mut file.symbols());
        if symbols.is_empty() {
            symbols = listed(&mut file.dynamic_symbols());
        }
        Ok(Module {
            link_base,
            text: file.section_by_name(".text").map_or(0, |s| s.address()),
            eh_frame: section(".eh_frame"),
            eh_frame_hdr: section(".eh_frame_hdr"),
            symbols,
        })
    }

    /// The symbol at or before file address `addr`: its name and address.
    pub fn symbol(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.symbols.partition_point(|(a, _)| *a <= addr);
        let (a, name) = self.symbols.get(i.checked_sub(1)?)?;
        Some((name.as_str(), *a))
    }

    /// The unwinding rule at file address `addr`, if the call-frame
    /// information covers it with one this walker follows (a CFA from rsp
    /// or rbp, the return address saved at an offset from it).
    pub fn rule(&self, addr: u64, ctx: &mut UnwindContext<usize>) -> Option<Rule> {
        let eh = self.eh_frame.as_ref()?;
        let eh_frame = EhFrame::new(&eh.data, LittleEndian);
        let mut bases = BaseAddresses::default()
            .set_eh_frame(eh.addr)
            .set_text(self.text);
        let row = match &self.eh_frame_hdr {
            Some(hdr) => {
                bases = bases.set_eh_frame_hdr(hdr.addr);
                let parsed = EhFrameHdr::new(&hdr.data, LittleEndian)
                    .parse(&bases, 8)
                    .ok()?;
                match parsed.table() {
                    Some(table) => table
                        .unwind_info_for_address(
                            &eh_frame,
                            &bases,
                            ctx,
                            addr,
                            EhFrame::cie_from_offset,
                        )
                        .ok()?,
                    None => eh_frame
                        .unwind_info_for_address(&bases, ctx, addr, EhFrame::cie_from_offset)
                        .ok()?,
                }
            }
            None => eh_frame
                .unwind_info_for_address(&bases, ctx, addr, EhFrame::cie_from_offset)
                .ok()?,
        };
        let (cfa_register, cfa_offset) = match row.cfa() {
            gimli::CfaRule::RegisterAndOffset { register, offset } => (register.0, *offset),
            gimli::CfaRule::Expression(_) => return None,
        };
        let ra_at = match row.register(gimli::X86_64::RA) {
            gimli::RegisterRule::Offset(n) => n,
            _ => return None,
        };
        let rbp_at = match row.register(gimli::X86_64::RBP) {
            gimli::RegisterRule::Offset(n) => Some(n),
            _ => None,
        };
        Some(Rule {
            cfa_register,
            cfa_offset,
            ra_at,
            rbp_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test program's own file: its symbols and call-frame
    /// information are found where `main`-side code is.
    #[test]
    fn a_file_gives_its_symbols_and_unwinding_rules() {
        let exe = std::env::current_exe().unwrap();
        let m = Module::load(&exe).unwrap();
        let me = a_file_gives_its_symbols_and_unwinding_rules as *const () as u64;
        // This process's own mapping of its file: its address in the file.
        let maps = super::super::maps::parse(&std::fs::read_to_string("/proc/self/maps").unwrap());
        let path = exe.display().to_string();
        let base = super::super::maps::base(&maps, &path).unwrap();
        let addr = me - base + m.link_base;
        let (name, at) = m.symbol(addr).unwrap();
        assert!(name.contains("a_file_gives_its_symbols"), "{name}");
        assert_eq!(at, addr, "the function's own start");
        let mut ctx = UnwindContext::new();
        let r = m.rule(addr, &mut ctx).unwrap();
        // At a function's first instruction: the CFA is rsp + 8, the
        // return address just under it.
        assert_eq!((r.cfa_register, r.cfa_offset, r.ra_at), (7, 8, -8));
        assert!(Module::load(std::path::Path::new("/nonexistent")).is_err());
    }
}
