//! Who is calling: peer credentials of each connection, and the kernel's
//! ptrace rule applied on the caller's behalf.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a client reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Unix,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
        }
    }
}

/// One client connection: an id (engines belong to it) and credentials.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Connection id, unique for the server's life.
    pub conn: u64,
    pub uid: u32,
    pub gid: u32,
    /// The client's pid (0 when unknown, e.g. over TCP).
    pub pid: i32,
    pub transport: Transport,
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id.
pub fn next_conn_id() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

impl Peer {
    /// The caller is root: it may trace any process (but the server's own
    /// family, which the engine layer refuses for everyone).
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// The rule this caller is held to, in words.
    pub fn rule(&self) -> String {
        if self.is_root() {
            "root: may trace any process except the server and its ancestors".into()
        } else {
            format!(
                "may trace processes whose real, effective and saved uids are {} and gids are {}, and that are dumpable",
                self.uid, self.gid
            )
        }
    }

    /// The kernel's ptrace access rule (ptrace_may_access without
    /// CAP_SYS_PTRACE), applied for this caller to `pid`. `Err` says why not.
    pub fn may_trace(&self, pid: i32) -> Result<(), String> {
        if self.is_root() {
            return Ok(());
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|_| format!("no process with pid {pid}"))?;
        let ids = |field: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let uids = ids("Uid:");
        let gids = ids("Gid:");
        if uids.iter().take(3).any(|u| *u != self.uid) {
            return Err(format!(
                "pid {pid} runs as uid {} (real/effective/saved {:?}); you are uid {}",
                uids.get(1).copied().unwrap_or(0),
                &uids[..uids.len().min(3)],
                self.uid
            ));
        }
        if gids.iter().take(3).any(|g| *g != self.gid) {
            return Err(format!(
                "pid {pid} runs with gids {:?}; your gid is {}",
                &gids[..gids.len().min(3)],
                self.gid
            ));
        }
        // A non-dumpable process's /proc entries belong to root.
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(format!("/proc/{pid}"))
            .map(|m| m.uid())
            .map_err(|_| format!("no process with pid {pid}"))?;
        if owner != self.uid {
            return Err(format!(
                "pid {pid} is not dumpable (setuid/setgid or PR_SET_DUMPABLE 0)"
            ));
        }
        Ok(())
    }

    /// Whether the caller may see a traced process in ListTasks.
    pub fn may_see(&self, pid: i32) -> bool {
        self.is_root() || self.may_trace(pid).is_ok()
    }
}

/// Supplementary groups of a process (the client's, for Spawn).
pub fn groups_of(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Groups:").map(|v| {
                    v.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
            })
        })
        .unwrap_or_default()
}

/// The uid owning a loopback TCP connection, from /proc/net/tcp{,6}: the
/// socket whose local address is the client's and remote address is ours.
pub fn tcp_peer_uid(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    let (file, p, l) = match (peer, local) {
        (SocketAddr::V4(p), SocketAddr::V4(l)) => (
            "/proc/net/tcp",
            format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(p.ip().octets()),
                p.port()
            ),
            format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(l.ip().octets()),
                l.port()
            ),
        ),
        (SocketAddr::V6(p), SocketAddr::V6(l)) => {
            let hex6 = |ip: std::net::Ipv6Addr| {
                ip.octets()
                    .chunks(4)
                    .map(|c| format!("{:08X}", u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect::<String>()
            };
            (
                "/proc/net/tcp6",
                format!("{}:{:04X}", hex6(*p.ip()), p.port()),
                format!("{}:{:04X}", hex6(*l.ip()), l.port()),
            )
        }
        _ => return None,
    };
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 7 && f[1] == p && f[2] == l).then(|| f[7].parse().ok())?
    })
}
