//! What a socket is connected to, asked of the kernel's `sock_diag`
//! netlink family in the socket's own network namespace (strace's `-yy`):
//! `TCP:[127.0.0.1:40069->127.0.0.1:57306]`, `UNIX-STREAM:[4429->4430]`,
//! `NETLINK:[ROUTE:1764]`.
//!
//! strace asks from its own namespace, so a containerised program's
//! sockets are never found; here the query socket is opened inside the
//! namespace of the thread whose descriptor it is (a short-lived thread
//! `setns`es into it and opens it), one per namespace, at most
//! [`MAX_NAMESPACES`] kept. The messages are four fixed C structs, built
//! and read by offset here (the `netlink-packet-sock-diag` crate has no
//! netlink-socket diagnostics, which `NETLINK:[…]` needs).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::sys::socket::{self, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

use crate::sys::Tid;

/// Namespaces whose query socket is kept. A kept socket keeps its
/// namespace alive, so only a few, and only while a decoder asks.
pub const MAX_NAMESPACES: usize = 4;
/// Dump messages read for one query at most (a machine with more sockets
/// of one protocol than this shows the plain `PROTO:[INODE]`).
const MAX_MESSAGES: usize = 1 << 20;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const UDIAG_SHOW_NAME: u32 = 1;
const UDIAG_SHOW_PEER: u32 = 4;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const NDIAG_PROTO_ALL: u8 = 255;

/// How strace finds a protocol's sockets: the kernel's name for it (the
/// socket's `system.sockprotoname` attribute) and what to ask.
#[derive(Clone, Copy)]
enum Kind {
    Inet { family: u8, protocol: u8 },
    Unix,
    Netlink,
}

/// strace's table of the protocols it describes.
const PROTOCOLS: &[(&str, Kind)] = {
    const fn inet(family: i32, protocol: i32) -> Kind {
        Kind::Inet {
            family: family as u8,
            protocol: protocol as u8,
        }
    }
    use libc::{AF_INET as V4, AF_INET6 as V6};
    &[
        ("UNIX", Kind::Unix),
        ("UNIX-STREAM", Kind::Unix),
        ("TCP", inet(V4, libc::IPPROTO_TCP)),
        ("UDP", inet(V4, libc::IPPROTO_UDP)),
        ("UDPLITE", inet(V4, libc::IPPROTO_UDPLITE)),
        ("DCCP", inet(V4, libc::IPPROTO_DCCP)),
        ("SCTP", inet(V4, libc::IPPROTO_SCTP)),
        ("L2TP/IP", inet(V4, 115)),
        ("PING", inet(V4, libc::IPPROTO_ICMP)),
        ("RAW", inet(V4, libc::IPPROTO_RAW)),
        ("TCPv6", inet(V6, libc::IPPROTO_TCP)),
        ("UDPv6", inet(V6, libc::IPPROTO_UDP)),
        ("UDPLITEv6", inet(V6, libc::IPPROTO_UDPLITE)),
        ("DCCPv6", inet(V6, libc::IPPROTO_DCCP)),
        ("SCTPv6", inet(V6, libc::IPPROTO_SCTP)),
        ("L2TP/IPv6", inet(V6, 115)),
        ("PINGv6", inet(V6, libc::IPPROTO_ICMP)),
        ("RAWv6", inet(V6, libc::IPPROTO_RAW)),
        ("NETLINK", Kind::Netlink),
    ]
};

/// Netlink protocols by number, as strace names them (`NETLINK_` left
/// out).
const NETLINK_PROTOCOLS: &[&str] = &[
    "ROUTE",
    "UNUSED",
    "USERSOCK",
    "FIREWALL",
    "SOCK_DIAG",
    "NFLOG",
    "XFRM",
    "SELINUX",
    "ISCSI",
    "AUDIT",
    "FIB_LOOKUP",
    "CONNECTOR",
    "NETFILTER",
    "IP6_FW",
    "DNRTMSG",
    "KOBJECT_UEVENT",
    "GENERIC",
    "",
    "SCSITRANSPORT",
    "ECRYPTFS",
    "RDMA",
    "CRYPTO",
    "SMC",
];

/// Query sockets, one per network namespace (by the namespace's inode).
#[derive(Default)]
pub struct SockDiag {
    sockets: Vec<(u64, OwnedFd)>,
}

impl std::fmt::Debug for SockDiag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockDiag")
            .field("namespaces", &self.sockets.len())
            .finish()
    }
}

impl SockDiag {
    /// What socket `inode`, descriptor `fd` of thread `tid`, is as strace's
    /// `-yy` shows it: `TCP:[SRC->DST]`, or `PROTO:[INODE]` when the kernel
    /// does not say more; `None` for a protocol strace does not describe.
    pub fn describe(&mut self, tid: Tid, fd: i32, inode: u64) -> Option<String> {
        let attr = crate::sys::getxattr(&format!("/proc/{tid}/fd/{fd}"), "system.sockprotoname")?;
        let (name, kind) = PROTOCOLS
            .iter()
            .find(|(name, _)| name.as_bytes() == attr.as_slice())?;
        let found = self.query(tid, kind, inode, name);
        Some(found.unwrap_or_else(|| format!("{name}:[{inode}]")))
    }

    fn query(&mut self, tid: Tid, kind: &Kind, inode: u64, name: &str) -> Option<String> {
        let ns = std::fs::metadata(format!("/proc/{tid}/ns/net")).ok()?.ino();
        let at = match self.sockets.iter().position(|(n, _)| *n == ns) {
            Some(at) => at,
            None => {
                let sock = open_in(tid, ns)?;
                if self.sockets.len() >= MAX_NAMESPACES {
                    self.sockets.remove(0);
                }
                self.sockets.push((ns, sock));
                self.sockets.len() - 1
            }
        };
        let fd = self.sockets[at].1.as_raw_fd();
        match ask(fd, kind, inode, name) {
            Ok(found) => found,
            Err(()) => {
                // A dump left half read, or a socket gone bad: a new one
                // next time.
                self.sockets.remove(at);
                None
            }
        }
    }
}

/// A `sock_diag` socket in the network namespace `ns` of thread `tid`.
fn open_in(tid: Tid, ns: u64) -> Option<OwnedFd> {
    let own = std::fs::metadata("/proc/thread-self/ns/net").ok()?.ino();
    if own == ns {
        return diag_socket();
    }
    let file = std::fs::File::open(format!("/proc/{tid}/ns/net")).ok()?;
    // setns changes the calling thread's namespace: a thread of its own,
    // which ends once it has the socket (a socket stays in the namespace
    // it was made in).
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| tracing::debug!(tid, "sock_diag: setns: {e}"))
                .ok()?;
            diag_socket()
        })
        .join()
        .ok()
        .flatten()
    })
}

fn diag_socket() -> Option<OwnedFd> {
    let sock = socket::socket(
        socket::AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .map_err(|e| tracing::debug!("sock_diag socket: {e}"))
    .ok()?;
    // A reply never comes later than this; a query never waits longer.
    let second = nix::sys::time::TimeVal::new(1, 0);
    socket::setsockopt(&sock, socket::sockopt::ReceiveTimeout, &second).ok()?;
    Some(sock)
}

/// The request for `kind`: a dump of the protocol's sockets, or for a unix
/// socket the one with `inode`.
fn request(kind: &Kind, inode: u64) -> Vec<u8> {
    let (flags, body) = match *kind {
        Kind::Inet { family, protocol } => {
            // inet_diag_req_v2: family, protocol, ext, pad, states, the
            // 48-byte socket id.
            let mut b = vec![family, protocol, 0, 0];
            b.extend_from_slice(&u32::MAX.to_ne_bytes());
            b.extend_from_slice(&[0; 48]);
            (NLM_F_REQUEST | NLM_F_DUMP, b)
        }
        Kind::Unix => {
            // unix_diag_req: family, protocol, pad, states, inode, show,
            // cookie (all ones: any).
            let mut b = vec![libc::AF_UNIX as u8, 0, 0, 0];
            b.extend_from_slice(&u32::MAX.to_ne_bytes());
            b.extend_from_slice(&(inode as u32).to_ne_bytes());
            b.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER).to_ne_bytes());
            b.extend_from_slice(&[0xff; 8]);
            (NLM_F_REQUEST, b)
        }
        Kind::Netlink => {
            // netlink_diag_req: family, protocol, pad, inode, show, cookie.
            let mut b = vec![libc::AF_NETLINK as u8, NDIAG_PROTO_ALL, 0, 0];
            b.extend_from_slice(&[0; 16]);
            (NLM_F_REQUEST | NLM_F_DUMP, b)
        }
    };
    let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&[0; 8]); // sequence, port
    msg.extend_from_slice(&body);
    msg
}

/// Ask socket `fd` about `inode`: the details if found, `Ok(None)` if
/// not, `Err` if the socket cannot be used again (its dump not read to its
/// end).
fn ask(fd: i32, kind: &Kind, inode: u64, name: &str) -> Result<Option<String>, ()> {
    let req = request(kind, inode);
    socket::sendto(fd, &req, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|_| ())?;
    let dump = !matches!(kind, Kind::Unix);
    let mut buf = vec![0u8; 32 * 1024];
    let mut found = None;
    let mut seen = 0usize;
    loop {
        let n = match socket::recv(fd, &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Err(()),
        };
        let mut rest = &buf[..n.min(buf.len())];
        while rest.len() >= NLMSG_HDRLEN {
            let len = u32_at(rest, 0) as usize;
            let kind_of = u16::from_ne_bytes([rest[4], rest[5]]);
            if len < NLMSG_HDRLEN || len > rest.len() {
                return Err(());
            }
            match kind_of {
                NLMSG_DONE => return Ok(found),
                // A unix socket not found (ENOENT), or no such family.
                NLMSG_ERROR => return if dump { Err(()) } else { Ok(None) },
                SOCK_DIAG_BY_FAMILY if found.is_none() => {
                    found = parse(kind, &rest[NLMSG_HDRLEN..len], inode, name);
                }
                _ => {}
            }
            seen += 1;
            if seen > MAX_MESSAGES {
                return Err(());
            }
            rest = &rest[align4(len).min(rest.len())..];
        }
        if !dump {
            return Ok(found);
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

fn parse(kind: &Kind, m: &[u8], inode: u64, name: &str) -> Option<String> {
    match kind {
        Kind::Inet { .. } => inet(m, inode, name),
        Kind::Unix => unix(m, inode, name),
        Kind::Netlink => netlink(m, inode, name),
    }
}

/// `inet_diag_msg`: family at 0, ports at 4 and 6 (big-endian), addresses
/// at 8 and 24 (16 bytes each), inode at 68.
fn inet(m: &[u8], inode: u64, name: &str) -> Option<String> {
    if m.len() < 72 || u64::from(u32_at(m, 68)) != inode {
        return None;
    }
    let port = |at: usize| u16::from_be_bytes([m[at], m[at + 1]]);
    let addr = |at: usize| -> Option<String> {
        match i32::from(m[0]) {
            libc::AF_INET => {
                Some(Ipv4Addr::new(m[at], m[at + 1], m[at + 2], m[at + 3]).to_string())
            }
            libc::AF_INET6 => {
                let b: [u8; 16] = m[at..at + 16].try_into().ok()?;
                Some(format!("[{}]", Ipv6Addr::from(b)))
            }
            _ => None,
        }
    };
    let (sport, dport) = (port(4), port(6));
    let (src, dst) = (addr(8)?, addr(24)?);
    let width = if i32::from(m[0]) == libc::AF_INET {
        4
    } else {
        16
    };
    let peer = dport != 0 || m[24..24 + width].iter().any(|&b| b != 0);
    Some(if peer {
        format!("{name}:[{src}:{sport}->{dst}:{dport}]")
    } else {
        format!("{name}:[{src}:{sport}]")
    })
}

/// `unix_diag_msg` (family, type, state, pad, inode at 4, cookie), then
/// attributes: the bound name and the peer's inode. strace's
/// `UNIX:[INODE->PEER,"PATH"]`; neither known: not found.
fn unix(m: &[u8], inode: u64, name: &str) -> Option<String> {
    if m.len() < 16 || u64::from(u32_at(m, 4)) != inode {
        return None;
    }
    let (mut path, mut peer) = (None, 0u32);
    let mut rest = &m[16..];
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]);
        if len < 4 || len > rest.len() {
            break;
        }
        let data = &rest[4..len];
        match kind {
            UNIX_DIAG_NAME if path.is_none() => path = Some(data.to_vec()),
            UNIX_DIAG_PEER if data.len() >= 4 => peer = u32_at(data, 0),
            _ => {}
        }
        rest = &rest[align4(len).min(rest.len())..];
    }
    let path = path.filter(|p| !p.is_empty());
    if peer == 0 && path.is_none() {
        return None;
    }
    let mut s = format!("{name}:[{inode}");
    if peer != 0 {
        s.push_str(&format!("->{peer}"));
    }
    if let Some(p) = path {
        s.push(',');
        match p.split_first() {
            Some((0, abstract_name)) => {
                s.push('@');
                s.push_str(&quoted(abstract_name));
            }
            _ => s.push_str(&quoted(&p)),
        }
    }
    s.push(']');
    Some(s)
}

/// `netlink_diag_msg`: family, type, protocol at 2, state, port id at 4,
/// inode at 16.
fn netlink(m: &[u8], inode: u64, name: &str) -> Option<String> {
    if m.len() < 24 || u64::from(u32_at(m, 16)) != inode {
        return None;
    }
    let portid = u32_at(m, 4);
    Some(match NETLINK_PROTOCOLS.get(usize::from(m[2])) {
        Some(p) if !p.is_empty() => format!("{name}:[{p}:{portid}]"),
        _ => format!("{name}:[{}]", m[2]),
    })
}

/// A path as strace quotes it: up to its first NUL, C escapes.
fn quoted(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    super::format::quote(&b[..end], false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::{UnixDatagram, UnixStream};

    fn inode_of(fd: i32) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("link");
        let s = link.to_string_lossy().into_owned();
        s.trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .expect("inode")
    }

    fn describe(fd: i32) -> Option<String> {
        let tid = std::process::id() as Tid;
        SockDiag::default().describe(tid, fd, inode_of(fd))
    }

    /// Real sockets of this process, described as strace -yy does.
    #[test]
    fn describes_tcp_unix_and_udp_sockets() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert_eq!(
            describe(l.as_raw_fd()).as_deref(),
            Some(format!("TCP:[127.0.0.1:{port}]").as_str())
        );
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mine = c.local_addr().expect("addr").port();
        assert_eq!(
            describe(c.as_raw_fd()).as_deref(),
            Some(format!("TCP:[127.0.0.1:{mine}->127.0.0.1:{port}]").as_str())
        );
        let (a, b) = UnixStream::pair().expect("pair");
        let (ia, ib) = (inode_of(a.as_raw_fd()), inode_of(b.as_raw_fd()));
        assert_eq!(
            describe(a.as_raw_fd()).as_deref(),
            Some(format!("UNIX-STREAM:[{ia}->{ib}]").as_str())
        );
        let d = UnixDatagram::unbound().expect("dgram");
        let id = inode_of(d.as_raw_fd());
        // Neither bound nor connected: nothing more than the inode.
        assert_eq!(
            describe(d.as_raw_fd()).as_deref(),
            Some(format!("UNIX:[{id}]").as_str())
        );
        let u = std::net::UdpSocket::bind("[::1]:0").expect("udp6");
        let up = u.local_addr().expect("addr").port();
        assert_eq!(
            describe(u.as_raw_fd()).as_deref(),
            Some(format!("UDPv6:[[::1]:{up}]").as_str())
        );
    }

    #[test]
    fn parses_what_the_kernel_sends_and_refuses_short_messages() {
        assert_eq!(inet(&[0; 10], 1, "TCP"), None);
        assert_eq!(unix(&[0; 3], 1, "UNIX"), None);
        assert_eq!(netlink(&[0; 23], 1, "NETLINK"), None);
        let mut m = vec![0u8; 24];
        m[2] = 0; // NETLINK_ROUTE
        m[4..8].copy_from_slice(&77u32.to_ne_bytes());
        m[16..20].copy_from_slice(&9u32.to_ne_bytes());
        assert_eq!(
            netlink(&m, 9, "NETLINK").as_deref(),
            Some("NETLINK:[ROUTE:77]")
        );
        m[2] = 200;
        assert_eq!(netlink(&m, 9, "NETLINK").as_deref(), Some("NETLINK:[200]"));
        // A unix message with a name attribute that claims more than there
        // is: the attribute is left out, nothing read past the end.
        let mut u = vec![libc::AF_UNIX as u8, 0, 0, 0];
        u.extend_from_slice(&5u32.to_ne_bytes());
        u.extend_from_slice(&[0; 8]);
        u.extend_from_slice(&200u16.to_ne_bytes());
        u.extend_from_slice(&UNIX_DIAG_NAME.to_ne_bytes());
        u.extend_from_slice(b"/x");
        assert_eq!(unix(&u, 5, "UNIX"), None);
        assert_eq!(quoted(b"\0a\"b\n"), "\"\"");
        assert_eq!(quoted(b"a\"b\n\x01"), "\"a\\\"b\\n\\1\"");
    }
}
