//! strace's `-yy`: what a descriptor's `/proc` link does not say. A
//! socket's protocol and addresses (`TCP:[127.0.0.1:22->10.0.0.5:51234]`,
//! [`sockets`](super::sockets)), a device's number (`/dev/null<char 1:3>`),
//! the process a pidfd refers to (`pid:1234`).

use super::sockets::SockDiag;
use crate::sys::Tid;

/// What `-yy` adds to a descriptor's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Detail {
    /// A socket, as strace writes it (`UNIX-STREAM:[4429->4430]`).
    Socket(String),
    /// A block or character device and its numbers.
    Device { block: bool, major: u32, minor: u32 },
    /// A pidfd's process, in the server's pid namespace.
    Pid(i32),
}

/// The state `-yy` keeps: the `sock_diag` sockets.
#[derive(Debug, Default)]
pub struct Details {
    diag: SockDiag,
}

impl Details {
    /// What descriptor `fd` of `tid`, whose link reads `link`, is beyond
    /// its path; `None` when `-yy` shows the path alone.
    pub(super) fn of(&mut self, tid: Tid, fd: i32, link: &[u8]) -> Option<Detail> {
        if let Some(inode) = socket_inode(link) {
            return self.diag.describe(tid, fd, inode).map(Detail::Socket);
        }
        if link == b"anon_inode:[pidfd]" || link.starts_with(b"pidfd:") {
            return pidfd_pid(tid, fd).map(Detail::Pid);
        }
        if link.first() == Some(&b'/') {
            // The file itself, through the link (the path may not name it
            // in the server's mount namespace), from the kernel's cache.
            let st = crate::sys::stat_cached(&format!("/proc/{tid}/fd/{fd}"))?;
            let kind = st.mode & libc::S_IFMT;
            if matches!(kind, libc::S_IFBLK | libc::S_IFCHR) {
                return Some(Detail::Device {
                    block: kind == libc::S_IFBLK,
                    major: st.rdev_major,
                    minor: st.rdev_minor,
                });
            }
        }
        None
    }
}

/// The inode in a socket's link, `socket:[INODE]`.
fn socket_inode(link: &[u8]) -> Option<u64> {
    let inner = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner)
        .ok()?
        .parse()
        .ok()
        .filter(|&i| i != 0)
}

/// The `Pid:` line of a pidfd's `fdinfo` (-1 once its process is reaped:
/// then not shown).
fn pidfd_pid(tid: Tid, fd: i32) -> Option<i32> {
    let info = crate::sys::read_small(&format!("/proc/{tid}/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&p: &i32| p > 0)
}

/// Whether the file descriptor `fd` of `tid` refers to has no name left
/// (its link ends ` (deleted)` because it was unlinked, not because that
/// is its name).
pub(super) fn unlinked(tid: Tid, fd: i32) -> bool {
    crate::sys::stat_cached(&format!("/proc/{tid}/fd/{fd}")).is_some_and(|st| st.nlink == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn devices_pidfds_and_plain_files() {
        let tid = std::process::id() as Tid;
        let null = std::fs::File::open("/dev/null").expect("null");
        let mut d = Details::default();
        assert_eq!(
            d.of(tid, null.as_raw_fd(), b"/dev/null"),
            Some(Detail::Device {
                block: false,
                major: 1,
                minor: 3
            })
        );
        let me = crate::sys::pidfd_open(tid).expect("pidfd");
        assert_eq!(
            d.of(tid, me.as_raw_fd(), b"anon_inode:[pidfd]"),
            Some(Detail::Pid(tid))
        );
        let file = std::fs::File::open("/proc/self/exe").expect("exe");
        assert_eq!(d.of(tid, file.as_raw_fd(), b"/some/file"), None);
        // A file unlinked while open: its link reads `… (deleted)`.
        let path = std::env::temp_dir().join(format!("utrace-unlinked-{tid}"));
        let open = std::fs::File::create(&path).expect("create");
        assert!(!unlinked(tid, open.as_raw_fd()));
        std::fs::remove_file(&path).expect("unlink");
        assert!(unlinked(tid, open.as_raw_fd()));
        assert_eq!(socket_inode(b"socket:[12]"), Some(12));
        assert_eq!(socket_inode(b"socket:[x]"), None);
        assert_eq!(socket_inode(b"pipe:[12]"), None);
    }
}
