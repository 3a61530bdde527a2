//! `qXfer:libraries-svr4`: the objects the dynamic loader has loaded, from
//! its own list (`r_debug.r_map`, the `link_map` chain), read in a few
//! batches. Without it gdb walks the list itself, a memory packet (a round
//! trip) per field, at every library event of the loader. The document is
//! gdbserver's: `main-lm` names the program's own entry (the first), and
//! each later entry with a name is a `<library>`.

use gdbstub::target::{TargetError, TargetResult};
use utrace_proto::v1 as pb;

use super::target::{tracing_debug, window, Bridge, BridgeError};

/// auxv keys (`elf.h`).
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
/// Program header types.
const PT_DYNAMIC: u32 = 2;
const PT_PHDR: u32 = 6;
/// The dynamic entry that points at `r_debug`.
const DT_DEBUG: u64 = 21;
const DT_NULL: u64 = 0;
/// At most this many program headers, dynamic entries and libraries
/// (memory the program may have scribbled on must not loop us forever).
const MAX_PHDRS: u64 = 256;
const MAX_DYN: usize = 1024;
const MAX_LIBRARIES: usize = 4096;

impl gdbstub::target::ext::libraries::LibrariesSvr4 for Bridge {
    fn get_libraries_svr4(
        &self,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let mut doc = self.svr4.lock().unwrap_or_else(|e| e.into_inner());
        // gdb reads from 0 at each library event, then in pieces: the list
        // is made again at 0 and kept for the pieces.
        if offset == 0 || doc.is_none() {
            let made = self.svr4_document().map_err(|e| {
                tracing_debug(&format!("qXfer:libraries-svr4: {e}"));
                TargetError::NonFatal
            })?;
            *doc = Some(made.into_bytes());
        }
        Ok(window(
            doc.as_deref().unwrap_or_default(),
            offset,
            length,
            buf,
        ))
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// `s` as XML attribute text.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// One loaded object: its `link_map` and fields.
struct Entry {
    lm: u64,
    l_addr: u64,
    l_name: u64,
    l_ld: u64,
}

impl Bridge {
    /// Read `reads` (address, length) in one batch: each one's bytes
    /// (shorter where the memory ends).
    fn read_many(&self, reads: &[(u64, u32)]) -> Result<Vec<Vec<u8>>, BridgeError> {
        let ops = reads
            .iter()
            .map(|&(addr, len)| pb::Op {
                op: Some(pb::op::Op::ReadMemory(pb::ReadMemory { addr, len })),
            })
            .collect();
        let res = self.batch(self.any_stopped(), false, ops)?;
        Ok((0..reads.len())
            .map(|i| res.read(i).map(|m| m.data.to_vec()).unwrap_or_default())
            .collect())
    }

    fn read_one(&self, addr: u64, len: u32) -> Result<Vec<u8>, BridgeError> {
        Ok(self.read_many(&[(addr, len)])?.pop().unwrap_or_default())
    }

    /// The program's `r_debug` address (0 until the loader has set it up).
    fn r_debug(&self) -> Result<u64, BridgeError> {
        let auxv = std::fs::read(format!("/proc/{}/auxv", self.pid))
            .map_err(|e| BridgeError::Server(format!("auxv: {e}")))?;
        let (mut phdr, mut phent, mut phnum) = (0, 56, 0);
        for pair in auxv.chunks_exact(16) {
            match u64_at(pair, 0) {
                AT_PHDR => phdr = u64_at(pair, 8),
                AT_PHENT => phent = u64_at(pair, 8),
                AT_PHNUM => phnum = u64_at(pair, 8),
                _ => {}
            }
        }
        if phdr == 0 || phnum == 0 || phnum > MAX_PHDRS || !(56..=256).contains(&phent) {
            return Ok(0);
        }
        let headers = self.read_one(phdr, (phnum * phent) as u32)?;
        let (mut bias, mut dynamic) = (None, None);
        for h in headers.chunks_exact(phent as usize) {
            // Elf64_Phdr: p_type @0, p_vaddr @16, p_memsz @40.
            match u32_at(h, 0) {
                PT_PHDR => bias = Some(phdr.wrapping_sub(u64_at(h, 16))),
                PT_DYNAMIC => dynamic = Some((u64_at(h, 16), u64_at(h, 40))),
                _ => {}
            }
        }
        // A static program has no PT_DYNAMIC, and no loader list.
        let Some((vaddr, size)) = dynamic else {
            return Ok(0);
        };
        let at = bias.unwrap_or(0).wrapping_add(vaddr);
        let len = size.min((MAX_DYN * 16) as u64) as u32;
        let entries = self.read_one(at, len)?;
        for e in entries.chunks_exact(16) {
            match u64_at(e, 0) {
                DT_DEBUG => return Ok(u64_at(e, 8)),
                DT_NULL => break,
                _ => {}
            }
        }
        Ok(0)
    }

    /// The `library-list-svr4` document, gdbserver's way.
    fn svr4_document(&self) -> Result<String, BridgeError> {
        let r_debug = self.r_debug()?;
        let mut entries = Vec::new();
        if r_debug != 0 {
            // r_debug: r_version @0, r_map @8.
            let mut lm = u64_at(&self.read_one(r_debug, 16)?, 8);
            let mut prev = 0;
            while lm != 0 && entries.len() < MAX_LIBRARIES {
                // link_map: l_addr @0, l_name @8, l_ld @16, l_next @24,
                // l_prev @32.
                let m = self.read_one(lm, 40)?;
                if m.len() < 40 || u64_at(&m, 32) != prev {
                    // Torn or scribbled on: what was read so far.
                    break;
                }
                entries.push(Entry {
                    lm,
                    l_addr: u64_at(&m, 0),
                    l_name: u64_at(&m, 8),
                    l_ld: u64_at(&m, 16),
                });
                prev = lm;
                lm = u64_at(&m, 24);
            }
        }
        // Every name in one batch.
        let names: Vec<String> = if entries.len() > 1 {
            let ops = entries[1..]
                .iter()
                .map(|e| pb::Op {
                    op: Some(pb::op::Op::ReadString(pb::ReadString {
                        addr: e.l_name,
                        max_len: 4096,
                    })),
                })
                .collect();
            let res = self.batch(self.any_stopped(), false, ops)?;
            (0..entries.len() - 1)
                .map(|i| res.string(i).map(|s| s.into_owned()).unwrap_or_default())
                .collect()
        } else {
            Vec::new()
        };
        let mut doc = String::from("<library-list-svr4 version=\"1.0\"");
        if let Some(main) = entries.first() {
            doc.push_str(&format!(" main-lm=\"{:#x}\"", main.lm));
        }
        doc.push('>');
        for (e, name) in entries.iter().skip(1).zip(&names) {
            if name.is_empty() {
                continue;
            }
            // `lmid`: the namespace's r_debug (gdb 13 refuses the whole
            // list without it, and walks the loader's list itself).
            doc.push_str(&format!(
                "<library name=\"{}\" lm=\"{:#x}\" l_addr=\"{:#x}\" l_ld=\"{:#x}\" \
                 lmid=\"{r_debug:#x}\"/>",
                escape(name),
                e.lm,
                e.l_addr,
                e.l_ld
            ));
        }
        doc.push_str("</library-list-svr4>");
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_escaped_for_xml() {
        assert_eq!(
            super::escape("/opt/a&b/<x>\"'.so"),
            "/opt/a&amp;b/&lt;x&gt;&quot;&apos;.so"
        );
    }
}
