//! Who is calling: each connection's identity, taken once when it is
//! accepted and never looked up again from a pid that may be reused.
//!
//! Over a Unix socket: `SO_PEERCRED` (uid, gid, pid), `SO_PEERGROUPS`
//! (supplementary groups) and, for the capability sets and the user
//! namespace, the peer's `/proc` status read through a pidfd
//! (`SO_PEERPIDFD`, or `pidfd_open` of the pid on kernels before 6.5) that
//! is checked after the read: if the process is gone, what was read may be
//! another's, and the peer is taken to hold no capabilities. Over loopback
//! TCP: the uid owning the client's socket (see [`tcp_peer_uid`]), with no
//! capabilities.
//!
//! What a peer may do is [`utrace_engines::access::check`] with its
//! [`Owner`]: the kernel's own ptrace rule.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::debug;
use utrace_engines::access::{self, Owner};
use utrace_engines::sys;

/// How a client reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Unix,
    Tcp,
    Tls,
    /// The embedded server's in-process door ([`crate::Local`]).
    Local,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Local => "local",
        }
    }
}

/// One client connection: an id (engines belong to it) and credentials.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Connection id, unique for the server's life.
    pub conn: u64,
    /// The client's pid (0 when unknown, e.g. over TCP).
    pub pid: i32,
    pub transport: Transport,
    /// The credentials its engines act with.
    pub owner: Arc<Owner>,
    /// Every call of this connection is refused with this status (past its
    /// uid's budget; a certificate mapped to no user).
    pub refused: Option<(tonic::Code, Arc<str>)>,
    /// It may only observe (an identity so configured for TLS).
    pub observe_only: bool,
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id.
pub fn next_conn_id() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

impl Peer {
    /// The peer of an accepted Unix socket `fd`, whose `SO_PEERCRED` said
    /// `uid`, `gid`, `pid`.
    pub fn unix(fd: RawFd, uid: u32, gid: u32, pid: i32) -> Peer {
        let groups = match sys::peer_groups(fd) {
            Ok(g) => g,
            Err(e) => {
                debug!(%e, "SO_PEERGROUPS failed; the peer's only group is its gid");
                vec![gid]
            }
        };
        let owner = unix_owner(fd, uid, gid, pid, groups);
        Peer {
            conn: next_conn_id(),
            pid,
            transport: Transport::Unix,
            owner: Arc::new(owner),
            refused: None,
            observe_only: false,
        }
    }

    /// A loopback TCP peer: the user owning its socket, as that user's
    /// login credentials (primary gid and groups from the user database),
    /// with no capabilities.
    pub fn tcp(uid: u32) -> Peer {
        Self::user(uid, Transport::Tcp)
    }

    /// A TLS peer whose certificate maps to `uid` (see `tls.rs`): that
    /// user's login credentials, no capabilities.
    pub fn tls(uid: u32, observe_only: bool) -> Peer {
        let mut p = Self::user(uid, Transport::Tls);
        p.observe_only = observe_only;
        p
    }

    /// A TLS peer whose certificate (`names`) maps to no user: every call
    /// is refused, saying so. Counted in the budgets as uid `u32::MAX`.
    pub fn unmapped(names: &str) -> Peer {
        let mut p = Self::user(u32::MAX, Transport::Tls);
        p.refused = Some((
            tonic::Code::Unauthenticated,
            format!(
                "your certificate ({names}) is mapped to no user on this server (--tls-identities)"
            )
            .into(),
        ));
        p
    }

    fn user(uid: u32, transport: Transport) -> Peer {
        let (gid, groups) = user_groups(uid);
        let mut owner = Owner::user(uid, gid);
        owner.groups = groups;
        Peer {
            conn: next_conn_id(),
            pid: 0,
            transport,
            owner: Arc::new(owner),
            refused: None,
            observe_only: false,
        }
    }

    /// Its effective uid and gid (`SO_PEERCRED`, or the mapped user).
    pub fn uid(&self) -> u32 {
        self.owner.uid
    }

    pub fn gid(&self) -> u32 {
        self.owner.gid
    }

    /// The caller may trace anything: root with `CAP_SYS_PTRACE` and every
    /// capability the server has, in the server's user namespace.
    pub fn is_root(&self) -> bool {
        self.owner.is_privileged()
    }

    /// This connection is from the server's own process (the `utrace`
    /// command's embedded server): what the program it starts inherits
    /// (stdio, descriptors, working directory) is its own already.
    pub fn is_in_process(&self) -> bool {
        matches!(self.transport, Transport::Unix | Transport::Local)
            && self.pid == std::process::id() as i32
    }

    /// The rule this caller is held to, in words.
    pub fn rule(&self) -> String {
        if self.is_root() {
            return "root: may trace any process except the server and its ancestors".into();
        }
        let caps = if self.owner.cap_permitted == 0 {
            "that hold no capabilities".to_string()
        } else {
            format!(
                "whose capabilities are among yours ({})",
                access::cap_names(self.owner.cap_permitted)
            )
        };
        format!(
            "may trace processes whose real, effective and saved uids are {} and gids are {}, that are dumpable, and {caps} (the kernel's ptrace rule)",
            self.uid(),
            self.gid()
        )
    }

    /// Whether the caller may see a traced process in ListTasks: whether
    /// it could trace it.
    pub fn may_see(&self, pid: i32) -> bool {
        access::check(&self.owner, pid).is_ok()
    }
}

/// The owner behind a Unix socket: capability sets and user namespace from
/// the peer's `/proc` status, trusted only if a pidfd of the peer shows it
/// was alive after the read (so its pid was not reused meanwhile) and the
/// status's euid is the one `SO_PEERCRED` gave.
fn unix_owner(fd: RawFd, uid: u32, gid: u32, pid: i32, groups: Vec<u32>) -> Owner {
    let pidfd = sys::peer_pidfd(fd).or_else(|e| {
        if pid > 0 && matches!(e, sys::Errno::ENOPROTOOPT | sys::Errno::EINVAL) {
            // Before Linux 6.5: a pidfd taken now. The pid may have been
            // reused already (the peer exited at once); the uid check
            // below catches reuse by another user.
            sys::pidfd_open(pid)
        } else {
            Err(e)
        }
    });
    let read = pidfd.ok().and_then(|pidfd| {
        // SO_PEERCRED's pid and SO_PEERPIDFD's pidfd name the same process
        // (the socket's peer pid, fixed at connect). The number may have
        // been freed and reused since; the liveness check below rules
        // that out: a process that is still alive after the read has held
        // its number all along. A peer this pid namespace cannot see has
        // pid 0, and no /proc entry here to read.
        let pid = (pid > 0).then_some(pid)?;
        let o = Owner::of_process(pid)?;
        (sys::pidfd_alive(&pidfd) && o.uid == uid).then_some(o)
    });
    match read {
        Some(o) => Owner {
            pid: (pid > 0).then_some(pid),
            uid,
            gid,
            groups,
            cap_effective: o.cap_effective,
            cap_permitted: o.cap_permitted,
            cap_bounding: o.cap_bounding,
            userns: o.userns,
        },
        None => {
            debug!(
                pid,
                uid, "the peer's process is gone: no capabilities, namespace unknown"
            );
            Owner {
                pid: None,
                uid,
                gid,
                groups,
                cap_effective: 0,
                cap_permitted: 0,
                cap_bounding: 0,
                userns: None,
            }
        }
    }
}

/// `uid`'s primary gid and groups from the user database (`getpwuid_r`,
/// `getgrouplist`), or `uid` itself and no other group when it has no
/// entry.
fn user_groups(uid: u32) -> (u32, Vec<u32>) {
    let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else {
        return (uid, vec![uid]);
    };
    let gid = user.gid.as_raw();
    let groups = std::ffi::CString::new(user.name.as_bytes())
        .ok()
        .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|| vec![gid]);
    (gid, groups)
}

/// The socket-table form of `addr` in `/proc/net/tcp` (IPv4) or
/// `/proc/net/tcp6` (IPv6, where an IPv4 address appears v4-mapped):
/// each 32-bit word in host order, as hex.
fn proc_net_addr(ip: IpAddr, port: u16, v6_table: bool) -> Option<String> {
    let words: Vec<[u8; 4]> = match (ip, v6_table) {
        (IpAddr::V4(a), false) => vec![a.octets()],
        (IpAddr::V4(a), true) => {
            let m = a.to_ipv6_mapped().octets();
            m.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
        }
        (IpAddr::V6(a), true) => a
            .octets()
            .chunks(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect(),
        (IpAddr::V6(a), false) => vec![a.to_ipv4_mapped()?.octets()],
    };
    let hex: String = words
        .iter()
        .map(|w| format!("{:08X}", u32::from_le_bytes(*w)))
        .collect();
    Some(format!("{hex}:{port:04X}"))
}

/// The uid owning the client end of a loopback TCP connection: the socket
/// whose local address is the client's and remote address is ours. The
/// client's socket may be IPv4 or IPv6 (a dual-stack socket connecting to
/// an IPv4 address shows it v4-mapped in `tcp6`), whatever ours is, so
/// both tables are searched. `None` when no such socket is found (the
/// client is in another network namespace, or already gone).
pub fn tcp_peer_uid(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    // The kernel's exact lookup; the tables only when it cannot be asked
    // (no `inet_diag`). A socket it says is not there is not looked for
    // again: walking the tables costs milliseconds, and a client that
    // connects and closes at once would make the daemon pay them.
    if let Ok(found) = crate::sockdiag::tcp_socket_uid(peer, local) {
        return found;
    }
    let peer_ip = canonical(peer.ip());
    let local_ip = canonical(local.ip());
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let (Some(p), Some(l)) = (
            proc_net_addr(peer_ip, peer.port(), v6),
            proc_net_addr(local_ip, local.port(), v6),
        ) else {
            continue;
        };
        let Some(text) = read_table(file) else {
            continue;
        };
        let found = text.lines().skip(1).find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 7 && f[1] == p && f[2] == l).then(|| f[7].parse().ok())?
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

/// A `/proc/net` table, read in 64 KiB reads: the kernel makes the text
/// afresh for each `read`, and `read_to_string` starts at 32 bytes (a
/// dozen reads for a small table, hundreds of microseconds).
fn read_table(path: &str) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut text = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(text).ok()
}

/// An IPv4 address given as v4-mapped IPv6 is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_table_addresses() {
        let lo4: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(proc_net_addr(lo4, 0x1F4B, false).unwrap(), "0100007F:1F4B");
        // v4-mapped in tcp6: ::ffff:127.0.0.1
        assert_eq!(
            proc_net_addr(lo4, 80, true).unwrap(),
            "0000000000000000FFFF00000100007F:0050"
        );
        let lo6: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            proc_net_addr(lo6, 80, true).unwrap(),
            "00000000000000000000000001000000:0050"
        );
        assert!(proc_net_addr(lo6, 80, false).is_none());
        assert_eq!(canonical("::ffff:127.0.0.1".parse().unwrap()), lo4);
    }
}
