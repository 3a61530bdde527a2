//! lldb's `qMemoryRegionInfo:ADDR`: the mapping of the process that holds
//! an address, or the hole it is in, from `/proc/PID/maps` (read beside the
//! process, as auxv and the executable's path are, with this user's
//! rights). gdbstub lacks the packet; the link answers it ([`super::link`]).
//! lldb uses it for `memory region`, and to tell code from data.

/// The reply to `qMemoryRegionInfo:` + `addr` (hex) for process `pid`, in
/// lldb-server's format: `start:S;size:N;permissions:rwx;name:HEX;` for a
/// mapping, `start:S;size:N;` for the hole up to the next one; `E01` with
/// no process or a malformed address, `E02` when the maps cannot be read.
pub fn region_info(pid: u32, addr: &[u8]) -> String {
    let Some(addr) = std::str::from_utf8(addr)
        .ok()
        .and_then(|a| u64::from_str_radix(a, 16).ok())
    else {
        return "E01".into();
    };
    if pid == 0 {
        return "E01".into();
    }
    match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(maps) => region_in(&maps, addr),
        Err(_) => "E02".into(),
    }
}

/// [`region_info`] from the text of a `maps` file.
fn region_in(maps: &str, addr: u64) -> String {
    let mut next = None;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-').and_then(|(s, e)| {
            Some((
                u64::from_str_radix(s, 16).ok()?,
                u64::from_str_radix(e, 16).ok()?,
            ))
        }) else {
            continue;
        };
        if addr < start {
            next = Some(next.map_or(start, |n: u64| n.min(start)));
            continue;
        }
        if addr >= end {
            continue;
        }
        let rwx: String = perms
            .chars()
            .take(3)
            .filter(|c| matches!(c, 'r' | 'w' | 'x'))
            .collect();
        // offset, device, inode, then the path (which may hold spaces).
        let name = f.skip(3).collect::<Vec<_>>().join(" ");
        let mut out = format!("start:{start:x};size:{:x};permissions:{rwx};", end - start);
        if !name.is_empty() {
            let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
            out.push_str(&format!("name:{hex};"));
        }
        return out;
    }
    // A hole: up to the next mapping, or to the end of the address space.
    let size = match next {
        Some(n) => n - addr,
        None => u64::MAX - addr + 1,
    };
    format!("start:{addr:x};size:{size:x};")
}

#[cfg(test)]
mod tests {
    use super::region_in;

    const MAPS: &str = "\
555555554000-555555556000 r--p 00000000 fe:01 123 /usr/bin/my prog
555555556000-555555558000 r-xp 00002000 fe:01 123 /usr/bin/my prog
7ffff7ff9000-7ffff7ffd000 ---p 00000000 00:00 0
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn mappings_holes_and_the_end() {
        let name: String = "/usr/bin/my prog"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            region_in(MAPS, 0x555555556010),
            format!("start:555555556000;size:2000;permissions:rx;name:{name};")
        );
        assert_eq!(
            region_in(MAPS, 0x7ffff7ff9000),
            "start:7ffff7ff9000;size:4000;permissions:;"
        );
        assert!(region_in(MAPS, 0x7ffffffde008).contains("permissions:rw;name:5b737461636b5d;"));
        // Below the first mapping, between two, past the last.
        assert_eq!(region_in(MAPS, 0x1000), "start:1000;size:555555553000;");
        assert_eq!(
            region_in(MAPS, 0x555555558000),
            "start:555555558000;size:2aaaa2aa1000;"
        );
        assert_eq!(
            region_in(MAPS, 0x7ffffffff000),
            format!(
                "start:7ffffffff000;size:{:x};",
                u64::MAX - 0x7ffffffff000 + 1
            )
        );
        assert_eq!(super::region_info(0, b"1000"), "E01");
        assert_eq!(super::region_info(1, b"zz"), "E01");
    }
}
