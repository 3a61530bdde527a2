//! Finding an address among a process's mappings (read by the engine
//! layer's `/proc/PID/maps` reader, which probes use too).

pub use utrace_engines::builtin::probe::resolve::{parse_maps as parse, Mapping as Map};

/// The mapping holding `addr` (`maps` in address order, as the kernel
/// lists them).
pub fn find(maps: &[Map], addr: u64) -> Option<&Map> {
    let i = maps.partition_point(|m| m.end <= addr);
    maps.get(i).filter(|m| m.start <= addr)
}

/// Where `path`'s first byte is mapped (its mapping at file offset 0):
/// the base strace counts a frame's offset from.
pub fn base(maps: &[Map], path: &str) -> Option<u64> {
    maps.iter()
        .filter(|m| m.path == path && m.offset == 0)
        .map(|m| m.start)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_found_in_the_maps() {
        let text = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fe:01 393 /usr/bin/echo
55d0c0a02000-55d0c0a07000 r-xp 00002000 fe:01 393 /usr/bin/echo
55d0c1c00000-55d0c1c21000 rw-p 00000000 00:00 0 \x20\x20\x20\x20\x20[heap]
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
";
        let maps = parse(text);
        let m = find(&maps, 0x55d0c0a02100).unwrap();
        assert_eq!((m.offset, m.path.as_str()), (0x2000, "/usr/bin/echo"));
        assert_eq!(find(&maps, 0x55d0c1c00010).unwrap().path, "[heap]");
        assert!(find(&maps, 0x7f0000000010).is_none(), "unmapped");
        assert!(find(&maps, 0x1000).is_none());
        assert_eq!(base(&maps, "/usr/bin/echo"), Some(0x55d0c0a00000));
    }
}
