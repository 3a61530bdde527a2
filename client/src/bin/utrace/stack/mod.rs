//! `utrace trace -k`: the stack of each call, printed after its line as
//! strace prints it:
//!
//! ```text
//!  > /usr/lib/x86_64-linux-gnu/libc.so.6(__open64_nocancel+0x41) [0xfd001]
//!  > /usr/bin/echo() [0x23ad]
//! ```
//!
//! (the file, the symbol at or before the address and the distance from
//! it, the address's offset from where the file is mapped).
//!
//! The server sends, with each call's entry, the thread's `rip`, `rsp` and
//! `rbp` and the stack from `rsp` up ([`expedite`]); this process walks it
//! with the call-frame information of the files the process maps
//! (`.eh_frame`, through gimli), else the frame-pointer chain, and names
//! the frames from the files' symbols (through object). The files and
//! `/proc/PID/maps` are read here, with this user's rights: as with
//! `utrace gdb`, the client runs beside the process (a daemon on the same
//! machine). Frames above the stack sent (deeper than
//! [`STACK_BYTES`]) are not shown.

mod elf;
mod maps;

use std::collections::HashMap;

use utrace_client::pb;

/// The stack sent with each call, from `rsp` up (less where the stack ends
/// first).
pub const STACK_BYTES: u32 = 32 * 1024;

/// Frames shown at most (strace's limit too).
const MAX_FRAMES: usize = 256;

/// Files kept parsed at most; past it the cache starts over (a process
/// maps a few dozen; a `-f` tree running many programs, more).
const MAX_MODULES: usize = 256;

/// What each report carries for `-k`.
pub fn expedite() -> pb::Expedite {
    pb::Expedite {
        registers: vec!["rip".into(), "rsp".into(), "rbp".into()],
        memory: vec![pb::MemRef {
            register: "rsp".into(),
            len: STACK_BYTES,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The maps of the processes traced, and the files read so far.
#[derive(Default)]
pub struct Stacks {
    maps: HashMap<u32, Vec<maps::Map>>,
    modules: HashMap<String, Option<elf::Module>>,
    ctx: Option<Box<gimli::UnwindContext<usize>>>,
}

/// The stack sent with a report.
struct Stack<'a> {
    at: u64,
    bytes: &'a [u8],
}

impl Stack<'_> {
    fn word(&self, addr: u64) -> Option<u64> {
        let i = usize::try_from(addr.checked_sub(self.at)?).ok()?;
        let b = self.bytes.get(i..i.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

impl Stacks {
    /// Process `pid`'s mappings may have changed (an mmap, an exec): read
    /// them again when next needed.
    pub fn forget(&mut self, pid: u32) {
        self.maps.remove(&pid);
    }

    /// The lines of the stack a report of process `pid` carries (none if
    /// it carries none).
    pub fn lines(&mut self, pid: u32, x: &pb::Expedited) -> Vec<String> {
        let reg = |n: &str| x.registers.get(n).copied();
        let (Some(pc), Some(sp), Some(bp)) = (reg("rip"), reg("rsp"), reg("rbp")) else {
            return Vec::new();
        };
        let stack = Stack {
            at: sp,
            bytes: x.memory.first().map_or(&[][..], |m| &m[..]),
        };
        self.walk(pid, pc, sp, bp, &stack)
    }

    fn walk(
        &mut self,
        pid: u32,
        mut pc: u64,
        mut sp: u64,
        mut bp: u64,
        stack: &Stack<'_>,
    ) -> Vec<String> {
        let mut ctx = self.ctx.take().unwrap_or_default();
        let mut out = Vec::new();
        for depth in 0..MAX_FRAMES {
            // A caller's return address is just past its call: look up
            // the call itself.
            let lookup = if depth == 0 { pc } else { pc.wrapping_sub(1) };
            let Some(map) = self.map_of(pid, lookup).filter(|m| !m.path.is_empty()) else {
                out.push(format!(" > unexpected_backtracing_error [0x{pc:x}]"));
                break;
            };
            let base = self.base_of(pid, &map);
            let offset = pc.wrapping_sub(base);
            let module = match map.path.starts_with('[') || map.inode == 0 {
                true => None,
                false => self.module(pid, &map.path),
            };
            let Some(module) = module else {
                out.push(format!(" > {}() [0x{offset:x}]", map.path));
                break;
            };
            let addr = lookup.wrapping_sub(base).wrapping_add(module.link_base);
            let at = offset.wrapping_add(module.link_base);
            out.push(match module.symbol(addr) {
                Some((name, start)) => format!(
                    " > {}({name}+0x{:x}) [0x{offset:x}]",
                    map.path,
                    at.wrapping_sub(start)
                ),
                None => format!(" > {}() [0x{offset:x}]", map.path),
            });
            // The caller: by the file's unwinding rule, else by the frame
            // pointer.
            let (ra, caller_sp, caller_bp) = match module.rule(addr, &mut ctx) {
                Some(r) => {
                    let from = match r.cfa_register {
                        7 => sp,
                        6 => bp,
                        _ => break,
                    };
                    let cfa = from.wrapping_add(r.cfa_offset as u64);
                    let Some(ra) = stack.word(cfa.wrapping_add(r.ra_at as u64)) else {
                        break;
                    };
                    let caller_bp = match r.rbp_at {
                        Some(at) => match stack.word(cfa.wrapping_add(at as u64)) {
                            Some(v) => v,
                            None => break,
                        },
                        None => bp,
                    };
                    (ra, cfa, caller_bp)
                }
                None => match (stack.word(bp.wrapping_add(8)), stack.word(bp)) {
                    (Some(ra), Some(caller_bp)) => (ra, bp.wrapping_add(16), caller_bp),
                    _ => break,
                },
            };
            // The outermost frame returns to 0; a stack that does not grow
            // toward the callers is a walk gone wrong.
            if ra == 0 || caller_sp <= sp {
                break;
            }
            (pc, sp, bp) = (ra, caller_sp, caller_bp);
        }
        self.ctx = Some(ctx);
        out
    }

    /// The mapping holding `addr` in process `pid` (its maps read again
    /// once if they hold none).
    fn map_of(&mut self, pid: u32, addr: u64) -> Option<maps::Map> {
        for fresh in [false, true] {
            if fresh || !self.maps.contains_key(&pid) {
                let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
                self.maps.insert(pid, maps::parse(&text));
            }
            if let Some(m) = maps::find(self.maps.get(&pid)?, addr) {
                return Some(m.clone());
            }
        }
        None
    }

    /// Where `map`'s file starts in memory.
    fn base_of(&self, pid: u32, map: &maps::Map) -> u64 {
        self.maps
            .get(&pid)
            .and_then(|all| maps::base(all, &map.path))
            .unwrap_or(map.start.wrapping_sub(map.offset))
    }

    /// The file at `path` (as process `pid` sees it), read once.
    fn module(&mut self, pid: u32, path: &str) -> Option<&elf::Module> {
        if !self.modules.contains_key(path) {
            if self.modules.len() >= MAX_MODULES {
                self.modules.clear();
            }
            // Beside the process, or through its root (a container's).
            let loaded = elf::Module::load(std::path::Path::new(path)).or_else(|_| {
                elf::Module::load(std::path::Path::new(&format!("/proc/{pid}/root{path}")))
            });
            self.modules.insert(path.to_string(), loaded.ok());
        }
        self.modules.get(path)?.as_ref()
    }
}
