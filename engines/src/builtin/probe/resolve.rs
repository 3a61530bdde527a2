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

use object::{Object, ObjectSegment, ObjectSymbol};
use rustc_hash::FxHashMap;

use crate::sys::Tid;

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug)]
struct Mapping {
    start: u64,
    end: u64,
    exec: bool,
    offset: u64,
    dev: (u64, u64),
    inode: u64,
    path: String,
}

fn mappings(pid: Tid) -> Result<Vec<Mapping>, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("reading the maps of process {pid}: {e}"))?;
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
    Ok(out)
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
            elf.symbols
                .entry(name.to_string())
                .or_insert_with(|| s.address());
        }
        for seg in file.segments() {
            let (off, size) = seg.file_range();
            elf.segments.push((seg.address(), off, size));
        }
        Ok(elf)
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
    fn refuses_what_is_not_elf() {
        let e = Elf::parse(b"#!/bin/sh\necho not an ELF file\n", "/tmp/script").unwrap_err();
        assert!(e.contains("is not an ELF file"), "{e}");
        let e = Elf::parse(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0], "/tmp/short").unwrap_err();
        assert!(e.contains("/tmp/short"), "{e}");
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
