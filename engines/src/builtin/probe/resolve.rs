//! Where a probe point is in a process: the file it names among the
//! process's mappings (a path, a library's short name, or the main
//! executable), a symbol of that file's ELF symbol tables (the `object`
//! crate reads them), and the address the code is mapped at.
//!
//! Everything is read through `/proc/PID/...` (`maps`, `root/`, `exe`,
//! `map_files/`), so names are the process's own in its mount namespace,
//! whatever the tracer's. Symbol tables are cached by file (device,
//! inode, size, mtime): many clients probing one library parse it once.

use std::sync::{Arc, Mutex};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use rustc_hash::FxHashMap;

use crate::sys::Tid;

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub exec: bool,
    /// The file offset mapped at `start`.
    pub offset: u64,
    pub dev: (u64, u64),
    /// 0: not a file's.
    pub inode: u64,
    /// As the kernel names it: a path, `[vdso]`, `[stack]`, or empty.
    pub path: String,
}

/// Process `pid`'s mappings, in address order.
pub fn mappings(pid: Tid) -> Result<Vec<Mapping>, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("reading the maps of process {pid}: {e}"))?;
    Ok(parse_maps(&text))
}

/// The mappings of a `/proc/PID/maps` text.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    let mut out = Vec::new();
    for l in text.lines() {
        let mut f = l.splitn(6, ' ');
        let (Some(range), Some(perms), Some(off), Some(dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let path = f.next().unwrap_or("").trim_start().to_string();
        let Some((start, end)) = range
            .split_once('-')
            .and_then(|(a, b)| Some((hex(a)?, hex(b)?)))
        else {
            continue;
        };
        let Some(dev) = dev
            .split_once(':')
            .and_then(|(a, b)| Some((hex(a)?, hex(b)?)))
        else {
            continue;
        };
        out.push(Mapping {
            start,
            end,
            exec: perms.contains('x'),
            offset: hex(off).unwrap_or(0),
            dev,
            inode: inode.parse().unwrap_or(0),
            path,
        });
    }
    out
}

/// A point placed: its address and the file as the process maps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub addr: u64,
    pub file: String,
}

/// Why a point could not be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unplaced {
    /// The file is not mapped (yet): a library not loaded.
    NotLoaded(String),
    /// The file or the symbol does not exist.
    Missing(String),
    /// Anything else, said for a person.
    Error(String),
}

impl std::fmt::Display for Unplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unplaced::NotLoaded(s) | Unplaced::Missing(s) | Unplaced::Error(s) => f.write_str(s),
        }
    }
}

/// A file's identity: mapped files with the same one are the same file.
type FileId = ((u64, u64), u64);

fn id_of(m: &Mapping) -> FileId {
    (m.dev, m.inode)
}

/// The file `binary` names in `maps` (see [`crate::builtin::probe`]).
fn find_file<'m>(pid: Tid, maps: &'m [Mapping], binary: &str) -> Result<&'m Mapping, Unplaced> {
    let files = || {
        maps.iter()
            .filter(|m| m.inode != 0 && m.path.starts_with('/'))
    };
    let by_stat = |path: &str| -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(path).ok()?;
        let (ma, mi) = (libc::major(md.dev()), libc::minor(md.dev()));
        Some(((u64::from(ma), u64::from(mi)), md.ino()))
    };
    if binary.is_empty() {
        let id = by_stat(&format!("/proc/{pid}/exe")).ok_or_else(|| {
            Unplaced::Error(format!("process {pid}: its executable cannot be read"))
        })?;
        return files()
            .find(|m| id_of(m) == id)
            .ok_or_else(|| Unplaced::Error(format!("process {pid} maps no executable file")));
    }
    if binary.contains('/') {
        if let Some(m) = files().find(|m| m.path == binary) {
            return Ok(m);
        }
        // Another name of the same file (a symlink, `/bin` for `/usr/bin`),
        // resolved in the process's own root.
        let Some(id) = by_stat(&format!("/proc/{pid}/root{binary}")) else {
            return Err(Unplaced::Missing(format!(
                "{binary}: no such file in process {pid}'s file system"
            )));
        };
        return files().find(|m| id_of(m) == id).ok_or_else(|| {
            Unplaced::NotLoaded(format!("{binary} is not mapped by process {pid}"))
        });
    }
    // A short name: "libc" is libc.so.6, "c" too, as in bpftrace.
    let lib = if binary.starts_with("lib") {
        binary.to_string()
    } else {
        format!("lib{binary}")
    };
    let matches = |m: &&Mapping| {
        let base = m.path.rsplit('/').next().unwrap_or("");
        base == binary
            || base.starts_with(&format!("{lib}.so"))
            || base.starts_with(&format!("{lib}-"))
    };
    let mut found: Vec<&Mapping> = Vec::new();
    for m in files().filter(matches) {
        if !found.iter().any(|f| id_of(f) == id_of(m)) {
            found.push(m);
        }
    }
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(Unplaced::NotLoaded(format!(
            "no library named {binary} is loaded in process {pid}"
        ))),
        many => Err(Unplaced::Error(format!(
            "{binary} names {} files in process {pid}: {}; give the path",
            many.len(),
            many.iter()
                .map(|m| m.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// What a probe needs of one ELF file.
#[derive(Debug, Default)]
struct Elf {
    /// Defined symbols with an address, by name (versions stripped); the
    /// first of a name wins, .symtab before .dynsym.
    symbols: FxHashMap<String, u64>,
    /// Loaded segments: (virtual address, file offset, bytes in the file).
    segments: Vec<(u64, u64, u64)>,
    /// Its USDT markers (`.note.stapsdt`).
    markers: Vec<Marker>,
    /// Functions (start, size, mangled name), by start: for naming the
    /// addresses of a stack. .symtab's name wins at an address.
    functions: Vec<(u64, u64, Arc<str>)>,
}

/// A USDT (SystemTap SDT) marker of an ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Marker {
    provider: String,
    name: String,
    /// Its `nop`'s virtual address (adjusted for prelinking).
    pc: u64,
    /// Its semaphore's virtual address (0: none).
    semaphore: u64,
    /// Where its arguments are, as the note says (`-4@%edi 8@-8(%rbp)`).
    args: String,
}

/// Where a USDT argument is, at the marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsdtArg {
    /// In a register (index in [`crate::BreakpointHit::REGISTERS`]), of
    /// `size` bytes (negative: signed).
    Reg { reg: usize, size: i8 },
    /// In memory at a register plus an offset.
    Mem { reg: usize, off: i64, size: i8 },
    /// A constant.
    Const(i64),
}

/// The 64-bit register an x86 register name (any width) is part of.
fn reg64(name: &str) -> Option<usize> {
    let full = match name {
        "rax" | "eax" | "ax" | "al" => "rax",
        "rbx" | "ebx" | "bx" | "bl" => "rbx",
        "rcx" | "ecx" | "cx" | "cl" => "rcx",
        "rdx" | "edx" | "dx" | "dl" => "rdx",
        "rsi" | "esi" | "si" | "sil" => "rsi",
        "rdi" | "edi" | "di" | "dil" => "rdi",
        "rbp" | "ebp" | "bp" | "bpl" => "rbp",
        "rsp" | "esp" | "sp" | "spl" => "rsp",
        "rip" => "rip",
        n => {
            let base = n.trim_end_matches(['d', 'w', 'b']);
            match base {
                "r8" | "r9" | "r10" | "r11" | "r12" | "r13" | "r14" | "r15" => base,
                _ => return None,
            }
        }
    };
    crate::BreakpointHit::REGISTERS
        .iter()
        .position(|r| *r == full)
}

/// Parse a marker's argument string (`8@%rax -4@$5 8@-16(%rbp)`).
pub fn usdt_args(spec: &str) -> Result<Vec<UsdtArg>, String> {
    spec.split_whitespace()
        .map(|a| {
            let bad = || format!("USDT argument {a:?} is not in a form this server reads");
            let (size, loc) = a.split_once('@').ok_or_else(bad)?;
            let size: i8 = size.parse().map_err(|_| bad())?;
            if let Some(c) = loc.strip_prefix('$') {
                return c.parse().map(UsdtArg::Const).map_err(|_| bad());
            }
            if let Some(r) = loc.strip_prefix('%') {
                return Ok(UsdtArg::Reg {
                    reg: reg64(r).ok_or_else(bad)?,
                    size,
                });
            }
            let (off, rest) = loc.split_once('(').ok_or_else(bad)?;
            let r = rest
                .strip_suffix(')')
                .and_then(|r| r.strip_prefix('%'))
                .ok_or_else(bad)?;
            let off = if off.is_empty() {
                0
            } else {
                off.parse().map_err(|_| bad())?
            };
            Ok(UsdtArg::Mem {
                reg: reg64(r).ok_or_else(bad)?,
                off,
                size,
            })
        })
        .collect()
}

/// The markers of a `.note.stapsdt` section's bytes; `base` the address
/// of `.stapsdt.base` (if any) to adjust prelinked addresses.
fn parse_markers(data: &[u8], base: Option<u64>) -> Vec<Marker> {
    let mut out = Vec::new();
    let u32_at = |d: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |d: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
    };
    let mut at = 0usize;
    while let (Some(namesz), Some(descsz), Some(kind)) =
        (u32_at(data, at), u32_at(data, at + 4), u32_at(data, at + 8))
    {
        let name_at = at + 12;
        let desc_at = name_at + (namesz as usize).next_multiple_of(4);
        let next = desc_at + (descsz as usize).next_multiple_of(4);
        let (Some(name), Some(desc)) = (
            data.get(name_at..name_at + namesz as usize),
            data.get(desc_at..desc_at + descsz as usize),
        ) else {
            break;
        };
        if name == b"stapsdt\0" && kind == 3 {
            if let (Some(pc), Some(note_base), Some(semaphore)) =
                (u64_at(desc, 0), u64_at(desc, 8), u64_at(desc, 16))
            {
                let mut strs = desc.get(24..).unwrap_or(&[]).split(|b| *b == 0);
                let mut next_str =
                    || String::from_utf8_lossy(strs.next().unwrap_or(&[])).into_owned();
                let (provider, name, args) = (next_str(), next_str(), next_str());
                let adjust = |a: u64| match base {
                    Some(b) if note_base != 0 && a != 0 => {
                        a.wrapping_add(b).wrapping_sub(note_base)
                    }
                    _ => a,
                };
                out.push(Marker {
                    provider,
                    name,
                    pc: adjust(pc),
                    semaphore: adjust(semaphore),
                    args,
                });
            }
        }
        at = next;
    }
    out
}

impl Elf {
    fn parse(data: &[u8], path: &str) -> Result<Elf, String> {
        let file = object::File::parse(data)
            .map_err(|e| format!("{path} is not an ELF file this server can read: {e}"))?;
        if !matches!(file, object::File::Elf64(_)) {
            return Err(format!("{path} is not a 64-bit ELF file"));
        }
        let mut elf = Elf::default();
        for s in file.symbols().chain(file.dynamic_symbols()) {
            if !s.is_definition() || s.address() == 0 {
                continue;
            }
            let Ok(name) = s.name() else { continue };
            let name = name.split('@').next().unwrap_or(name);
            if s.kind() == object::SymbolKind::Text && !name.is_empty() {
                elf.functions.push((s.address(), s.size(), name.into()));
            }
            elf.symbols
                .entry(name.to_string())
                .or_insert_with(|| s.address());
        }
        // Stable: at one address the first (a .symtab name) stays first.
        elf.functions.sort_by_key(|f| f.0);
        elf.functions.dedup_by_key(|f| f.0);
        for seg in file.segments() {
            let (off, size) = seg.file_range();
            elf.segments.push((seg.address(), off, size));
        }
        if let Some(notes) = file.section_by_name(".note.stapsdt") {
            let base = file.section_by_name(".stapsdt.base").map(|s| s.address());
            if let Ok(data) = notes.data() {
                elf.markers = parse_markers(data, base);
            }
        }
        Ok(elf)
    }

    /// Virtual address of file offset `off`.
    fn vaddr(&self, off: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|(_, o, n)| *o <= off && off < o + n)
            .map(|(a, o, _)| off - o + a)
    }

    /// The function holding virtual address `vaddr`: its mangled name and
    /// start. A symbol of no size holds addresses up to the next one.
    fn function_at(&self, vaddr: u64) -> Option<(&Arc<str>, u64)> {
        let i = self.functions.partition_point(|f| f.0 <= vaddr);
        let (start, size, name) = self.functions.get(i.checked_sub(1)?)?;
        (*size == 0 || vaddr < start + size).then_some((name, *start))
    }

    /// File offset of virtual address `vaddr`.
    fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|(a, _, n)| *a <= vaddr && vaddr < a + n)
            .map(|(a, off, _)| vaddr - a + off)
    }
}

/// Parsed files, by identity and version; a few dozen at most.
#[allow(clippy::type_complexity)]
static CACHE: std::sync::LazyLock<Mutex<FxHashMap<(FileId, i64, u64), Arc<Elf>>>> =
    std::sync::LazyLock::new(Default::default);

const CACHE_FILES: usize = 32;

/// The parsed ELF file of mapping `m`, read through `path` (its
/// `/proc/PID/map_files/` entry).
fn elf_of(path: &str, m: &Mapping) -> Result<Arc<Elf>, Unplaced> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).map_err(|e| Unplaced::Error(format!("{}: {e}", m.path)))?;
    let key = (id_of(m), md.mtime(), md.size());
    let cache = || CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = cache().get(&key) {
        return Ok(Arc::clone(e));
    }
    let data = std::fs::read(path).map_err(|e| Unplaced::Error(format!("{}: {e}", m.path)))?;
    let elf = Arc::new(Elf::parse(&data, &m.path).map_err(Unplaced::Error)?);
    let mut c = cache();
    if c.len() >= CACHE_FILES {
        c.clear();
    }
    c.insert(key, Arc::clone(&elf));
    Ok(elf)
}

/// A demangled symbol, as bpftrace shows one: Rust's (legacy and v0, the
/// hash kept) and C++'s; others as they are.
fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return d.to_string();
    }
    if name.starts_with("_Z") {
        if let Ok(d) = cpp_demangle::Symbol::new(name) {
            if let Ok(s) = d.demangle(&cpp_demangle::DemangleOptions::default()) {
                return s;
            }
        }
    }
    name.to_string()
}

/// Names the addresses of a process's stacks: the mapping, the ELF
/// file's function and the offset in it. Remembers what it found (up to
/// [`Symbolizer::MAX_ADDRS`] addresses); reads the process's maps again
/// when an address is in none it knows (a library mapped since), at most
/// every 100 ms.
#[derive(Debug)]
pub struct Symbolizer {
    pid: Tid,
    maps: Vec<Mapping>,
    read_at: Option<std::time::Instant>,
    known: FxHashMap<u64, super::agg::Frame>,
}

impl Symbolizer {
    /// Addresses remembered; past that, each new one is looked up anew.
    pub const MAX_ADDRS: usize = 1 << 16;

    pub fn new(pid: Tid) -> Symbolizer {
        Symbolizer {
            pid,
            maps: Vec::new(),
            read_at: None,
            known: FxHashMap::default(),
        }
    }

    /// What is at `addr`.
    pub fn frame(&mut self, addr: u64) -> super::agg::Frame {
        if let Some(f) = self.known.get(&addr) {
            return f.clone();
        }
        let f = self.look_up(addr);
        if self.known.len() < Self::MAX_ADDRS {
            self.known.insert(addr, f.clone());
        }
        f
    }

    fn mapping(&mut self, addr: u64) -> Option<Mapping> {
        let find = |maps: &[Mapping]| {
            maps.iter()
                .find(|m| m.start <= addr && addr < m.end)
                .cloned()
        };
        if let Some(m) = find(&self.maps) {
            return Some(m);
        }
        if self
            .read_at
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_millis(100))
        {
            return None;
        }
        self.read_at = Some(std::time::Instant::now());
        self.maps = mappings(self.pid).ok()?;
        find(&self.maps)
    }

    fn look_up(&mut self, addr: u64) -> super::agg::Frame {
        let mut f = super::agg::Frame::default();
        let Some(m) = self.mapping(addr) else {
            return f;
        };
        f.binary = m.path.as_str().into();
        if m.inode == 0 {
            return f;
        }
        let path = format!("/proc/{}/map_files/{:x}-{:x}", self.pid, m.start, m.end);
        let Ok(elf) = elf_of(&path, &m) else {
            return f;
        };
        let Some(vaddr) = elf.vaddr(addr - m.start + m.offset) else {
            return f;
        };
        if let Some((name, start)) = elf.function_at(vaddr) {
            f.symbol = demangle(name).into();
            f.offset = vaddr - start;
        }
        f
    }
}

/// A USDT marker's place in a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerPlace {
    pub at: Placed,
    /// Where its arguments are.
    pub args: Vec<UsdtArg>,
    /// Its semaphore as a file offset (0: none): the kernel's uprobe
    /// increments it (`ref_ctr_offset`), so the program runs the marker.
    pub ref_ctr: u64,
}

/// Where USDT marker `provider`:`name` of `binary` is in process `pid`
/// (every place: a marker inlined several times is at each). An empty
/// `provider` matches any (the name must then be one provider's only).
pub fn usdt(
    pid: Tid,
    binary: &str,
    provider: &str,
    name: &str,
) -> Result<Vec<MarkerPlace>, Unplaced> {
    let maps = mappings(pid).map_err(Unplaced::Error)?;
    let m = find_file(pid, &maps, binary)?;
    let path = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    let elf = elf_of(&path, m)?;
    let found: Vec<&Marker> = elf
        .markers
        .iter()
        .filter(|k| k.name == name && (provider.is_empty() || k.provider == provider))
        .collect();
    match found.as_slice() {
        [] => {
            return Err(Unplaced::Missing(format!(
                "no USDT marker {provider}:{name} in {} ({} markers{})",
                m.path,
                elf.markers.len(),
                if elf.markers.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        elf.markers
                            .iter()
                            .take(8)
                            .map(|k| format!("{}:{}", k.provider, k.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )))
        }
        many if many.iter().any(|k| k.provider != many[0].provider) => {
            return Err(Unplaced::Error(format!(
                "USDT marker {name} of {} is in several providers; name one",
                m.path
            )));
        }
        _ => {}
    }
    found
        .into_iter()
        .map(|marker| {
            let ref_ctr = if marker.semaphore == 0 {
                0
            } else {
                elf.file_offset(marker.semaphore).ok_or_else(|| {
                    Unplaced::Error(format!(
                        "USDT marker {}:{} of {}: its semaphore at {:#x} is outside the \
                         file's loaded segments",
                        marker.provider, marker.name, m.path, marker.semaphore
                    ))
                })?
            };
            let args = usdt_args(&marker.args).map_err(Unplaced::Error)?;
            let foff = elf.file_offset(marker.pc).ok_or_else(|| {
                Unplaced::Error(format!(
                    "USDT marker {}:{} of {} is at {:#x}, outside its loaded segments",
                    marker.provider, marker.name, m.path, marker.pc
                ))
            })?;
            Ok(MarkerPlace {
                at: in_exec_mapping(pid, &maps, m, foff)?,
                args,
                ref_ctr,
            })
        })
        .collect()
}

/// The address of file offset `foff` of `m`'s file in an executable
/// mapping of `pid`.
fn in_exec_mapping(pid: Tid, maps: &[Mapping], m: &Mapping, foff: u64) -> Result<Placed, Unplaced> {
    let exec = maps
        .iter()
        .filter(|x| id_of(x) == id_of(m) && x.exec)
        .find(|x| x.offset <= foff && foff < x.offset + (x.end - x.start))
        .ok_or_else(|| {
            Unplaced::Error(format!(
                "offset {foff:#x} of {} is not in an executable mapping of process {pid}",
                m.path
            ))
        })?;
    Ok(Placed {
        addr: exec.start + (foff - exec.offset),
        file: m.path.clone(),
    })
}

/// Where `binary`:`symbol`+`offset` is in process `pid` (a file offset
/// when there is no symbol). A function starting with `endbr64` is probed
/// after it unless `exact` (a uprobe on `endbr64` is single-stepped: ten
/// times the cost).
pub fn function(
    pid: Tid,
    binary: &str,
    symbol: Option<&str>,
    offset: u64,
    exact: bool,
) -> Result<Placed, Unplaced> {
    let maps = mappings(pid).map_err(Unplaced::Error)?;
    let m = find_file(pid, &maps, binary)?;
    let path = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    let elf = elf_of(&path, m)?;
    let mut foff = match symbol {
        Some(name) => {
            let vaddr = *elf.symbols.get(name).ok_or_else(|| {
                Unplaced::Missing(format!(
                    "no symbol {name:?} in {} ({} symbols; is it static, inlined or stripped?)",
                    m.path,
                    elf.symbols.len()
                ))
            })?;
            let foff = elf.file_offset(vaddr).ok_or_else(|| {
                Unplaced::Error(format!(
                    "symbol {name} of {} is at {vaddr:#x}, outside its loaded segments",
                    m.path
                ))
            })?;
            foff + offset
        }
        None => offset,
    };
    if symbol.is_some() && offset == 0 && !exact && starts_with_endbr64(&path, foff) {
        foff += 4;
    }
    in_exec_mapping(pid, &maps, m, foff)
}

fn starts_with_endbr64(path: &str, foff: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|f| f.read_exact_at(&mut b, foff))
        .is_ok()
        && b == [0xf3, 0x0f, 0x1e, 0xfa]
}

/// Check that `addr` is in an executable mapping of `pid`.
pub fn address(pid: Tid, addr: u64) -> Result<Placed, Unplaced> {
    let maps = mappings(pid).map_err(Unplaced::Error)?;
    match maps.iter().find(|m| m.start <= addr && addr < m.end) {
        Some(m) if m.exec => Ok(Placed {
            addr,
            file: m.path.clone(),
        }),
        Some(m) => Err(Unplaced::Error(format!(
            "address {addr:#x} is in a mapping that is not executable ({})",
            if m.path.is_empty() {
                "anonymous"
            } else {
                &m.path
            }
        ))),
        None => Err(Unplaced::Error(format!(
            "address {addr:#x} is outside every mapping of process {pid}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_libc_function_in_this_process() {
        let pid = std::process::id() as Tid;
        let p = function(pid, "libc", Some("getpid"), 0, false).expect("getpid in libc");
        let real = libc::getpid as *const () as usize as u64;
        // Probed at the function, or just after its endbr64.
        assert!(p.addr == real || p.addr == real + 4, "{p:?} vs {real:#x}");
        assert!(p.file.contains("libc"), "{p:?}");
        let exact = function(pid, "libc", Some("getpid"), 0, true).expect("exact");
        assert_eq!(exact.addr, real);
    }

    #[test]
    fn reads_usdt_argument_specs() {
        let rdi = reg64("rdi").expect("rdi");
        let rbp = reg64("rbp").expect("rbp");
        let r8 = reg64("r8").expect("r8");
        assert_eq!(
            usdt_args("8@%rdi -4@%edi 4@%r8d -8@-16(%rbp) 8@(%rdi) -4@$5").expect("parses"),
            vec![
                UsdtArg::Reg { reg: rdi, size: 8 },
                UsdtArg::Reg { reg: rdi, size: -4 },
                UsdtArg::Reg { reg: r8, size: 4 },
                UsdtArg::Mem {
                    reg: rbp,
                    off: -16,
                    size: -8
                },
                UsdtArg::Mem {
                    reg: rdi,
                    off: 0,
                    size: 8
                },
                UsdtArg::Const(5),
            ]
        );
        assert!(usdt_args("8@%xmm0").is_err());
        assert!(usdt_args("garbage").is_err());
    }

    #[test]
    fn refuses_what_is_not_elf() {
        let e = Elf::parse(b"#!/bin/sh\necho not an ELF file\n", "/tmp/script").unwrap_err();
        assert!(e.contains("is not an ELF file"), "{e}");
        let e = Elf::parse(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0], "/tmp/short").unwrap_err();
        assert!(e.contains("/tmp/short"), "{e}");
    }

    #[test]
    fn demangles_rust_and_cpp_as_bpftrace_shows_them() {
        // Rust's legacy mangling keeps its hash, as bpftrace shows it.
        assert_eq!(
            demangle("_ZN12probe_target4call17hc3dc3d3be20d3316E"),
            "probe_target::call::hc3dc3d3be20d3316"
        );
        assert_eq!(demangle("_ZN3foo3barEi"), "foo::bar(int)");
        assert_eq!(
            demangle("_ZNSt6vectorIiSaIiEE9push_backEOi"),
            "std::vector<int, std::allocator<int> >::push_back(int&&)"
        );
        assert_eq!(demangle("malloc"), "malloc");
    }

    #[test]
    fn names_what_is_missing() {
        let pid = std::process::id() as Tid;
        let e = function(pid, "libc", Some("no_such_function_here"), 0, false).unwrap_err();
        assert!(e.to_string().contains("no symbol"), "{e}");
        let e = function(pid, "libnotloaded", Some("x"), 0, false).unwrap_err();
        assert!(matches!(e, Unplaced::NotLoaded(_)), "{e:?}");
        let e = address(pid, 8).unwrap_err();
        assert!(e.to_string().contains("outside every mapping"), "{e}");
        let stack = &e as *const _ as u64;
        let e = address(pid, stack).unwrap_err();
        assert!(e.to_string().contains("not executable"), "{e}");
    }
}
