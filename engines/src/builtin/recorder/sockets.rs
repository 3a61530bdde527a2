//! What a socket is connected to, as strace's `-yy` shows it:
//! `TCP:[127.0.0.1:40069->127.0.0.1:57306]`, `UNIX-STREAM:[4429->4430]`,
//! `NETLINK:[ROUTE:1764]`.
//!
//! strace dumps every socket of the protocol through the kernel's
//! `sock_diag` at each descriptor it prints, from its own network
//! namespace. On the server's tracer thread, shared by every client, a
//! dump of a busy machine's sockets would stall everyone's tracing. So an
//! inet or netlink socket is asked about itself instead: a copy of the
//! traced thread's descriptor (`pidfd_getfd`, which the server as its
//! tracer may take) answers `getsockname`, `getpeername` and
//! `SO_PROTOCOL`, in whatever namespace it lives. A unix socket's peer
//! is known only to `unix_diag`, asked for that one inode (no dump), on a
//! query socket opened in the traced thread's own network namespace (a
//! short-lived thread `setns`es into it and opens it), one per namespace,
//! at most [`MAX_NAMESPACES`] kept. The query and its reply are two fixed
//! C structs, built and read by offset here.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::sys::socket::{
    self, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, SockaddrStorage,
};

use crate::sys::Tid;

/// Namespaces whose query socket is kept. A kept socket keeps its
/// namespace alive, so only a few, and only while a decoder asks.
pub const MAX_NAMESPACES: usize = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
const UDIAG_SHOW_NAME: u32 = 1;
const UDIAG_SHOW_PEER: u32 = 4;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;

/// The protocols strace describes, by the kernel's name for each (the
/// socket's `system.sockprotoname` attribute), and how they are asked.
#[derive(Clone, Copy)]
enum Kind {
    Inet,
    Unix,
    Netlink,
}

/// strace's table of the protocols it describes (an inet socket of any
/// of them, IPv4 or IPv6, is asked the same way: its address says which).
const PROTOCOLS: &[(&str, Kind)] = &[
    ("UNIX", Kind::Unix),
    ("UNIX-STREAM", Kind::Unix),
    ("TCP", Kind::Inet),
    ("UDP", Kind::Inet),
    ("UDPLITE", Kind::Inet),
    ("DCCP", Kind::Inet),
    ("SCTP", Kind::Inet),
    ("L2TP/IP", Kind::Inet),
    ("PING", Kind::Inet),
    ("RAW", Kind::Inet),
    ("TCPv6", Kind::Inet),
    ("UDPv6", Kind::Inet),
    ("UDPLITEv6", Kind::Inet),
    ("DCCPv6", Kind::Inet),
    ("SCTPv6", Kind::Inet),
    ("L2TP/IPv6", Kind::Inet),
    ("PINGv6", Kind::Inet),
    ("RAWv6", Kind::Inet),
    ("NETLINK", Kind::Netlink),
];

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
    /// `-yy` shows it: `TCP:[SRC->DST]`, or `PROTO:[INODE]` when there is
    /// no more to say (not bound, gone); `None` for a protocol strace does
    /// not describe.
    pub fn describe(&mut self, tid: Tid, fd: i32, inode: u64) -> Option<String> {
        let attr = crate::sys::getxattr(&format!("/proc/{tid}/fd/{fd}"), "system.sockprotoname")?;
        let (name, kind) = PROTOCOLS
            .iter()
            .find(|(name, _)| name.as_bytes() == attr.as_slice())?;
        let found = match kind {
            Kind::Unix => self.unix(tid, inode, name),
            Kind::Inet => copy_of(tid, fd, inode).and_then(|s| inet(&s, name)),
            Kind::Netlink => copy_of(tid, fd, inode).and_then(|s| netlink(&s, name)),
        };
        Some(found.unwrap_or_else(|| format!("{name}:[{inode}]")))
    }

    /// A unix socket's peer and name, asked of `unix_diag` in `tid`'s
    /// network namespace.
    fn unix(&mut self, tid: Tid, inode: u64, name: &str) -> Option<String> {
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
        match ask(fd, inode, name) {
            Ok(found) => found,
            Err(()) => {
                // A socket gone bad: a new one next time.
                self.sockets.remove(at);
                None
            }
        }
    }
}

/// A copy of descriptor `fd` of `tid`'s process, if it is still socket
/// `inode` (another thread may have closed and reused the number).
fn copy_of(tid: Tid, fd: i32, inode: u64) -> Option<OwnedFd> {
    let (pidfd, _) = crate::sys::pidfd_of(tid).ok()?;
    let copy = crate::sys::pidfd_getfd(&pidfd, fd)
        .map_err(|e| tracing::debug!(tid, fd, "-yy: pidfd_getfd: {e}"))
        .ok()?;
    let same = nix::sys::stat::fstat(&copy).is_ok_and(|st| st.st_ino == inode);
    same.then_some(copy)
}

/// An inet socket's addresses, `NAME:[SRC:PORT]` or
/// `NAME:[SRC:PORT->DST:PORT]` (IPv6 addresses in brackets); `None` for
/// one not bound (strace's dump does not list it).
fn inet(sock: &OwnedFd, name: &str) -> Option<String> {
    // An address's text, and whether it is the unspecified one, port 0
    // (the family is the address's own).
    let text = |a: &SockaddrStorage| -> Option<(String, bool)> {
        if let Some(a) = a.as_sockaddr_in() {
            let ip = a.ip();
            let none = ip.is_unspecified() && a.port() == 0;
            return Some((format!("{ip}:{}", a.port()), none));
        }
        let a = a.as_sockaddr_in6()?;
        let ip = a.ip();
        let none = ip.is_unspecified() && a.port() == 0;
        Some((format!("[{ip}]:{}", a.port()), none))
    };
    let local: SockaddrStorage = socket::getsockname(sock.as_raw_fd()).ok()?;
    let (src, unbound) = text(&local)?;
    if unbound {
        return None;
    }
    let peer = socket::getpeername::<SockaddrStorage>(sock.as_raw_fd())
        .ok()
        .and_then(|p| text(&p))
        .filter(|(_, none)| !none);
    Some(match peer {
        Some((dst, _)) => format!("{name}:[{src}->{dst}]"),
        None => format!("{name}:[{src}]"),
    })
}

/// A netlink socket's protocol and port, `NAME:[ROUTE:PORTID]`; `None` for
/// one not bound (port 0).
fn netlink(sock: &OwnedFd, name: &str) -> Option<String> {
    let local: SockaddrStorage = socket::getsockname(sock.as_raw_fd()).ok()?;
    let portid = local.as_netlink_addr()?.pid();
    if portid == 0 {
        return None;
    }
    let protocol = crate::sys::socket_protocol(sock).ok()?;
    Some(
        match usize::try_from(protocol)
            .ok()
            .and_then(|p| NETLINK_PROTOCOLS.get(p))
        {
            Some(p) if !p.is_empty() => format!("{name}:[{p}:{portid}]"),
            _ => format!("{name}:[{protocol}]"),
        },
    )
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

/// `unix_diag`'s request for the socket with `inode`: family, protocol,
/// pad, states, inode, what to show (its name and its peer), cookie (all
/// ones: any).
fn request(inode: u64) -> Vec<u8> {
    let mut body = vec![libc::AF_UNIX as u8, 0, 0, 0];
    body.extend_from_slice(&u32::MAX.to_ne_bytes());
    body.extend_from_slice(&(inode as u32).to_ne_bytes());
    body.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER).to_ne_bytes());
    body.extend_from_slice(&[0xff; 8]);
    let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&[0; 8]); // sequence, port
    msg.extend_from_slice(&body);
    msg
}

/// Ask socket `fd` about unix socket `inode` (one reply: the socket, or
/// an error if there is none): the details if found, `Err` if the query
/// socket failed.
fn ask(fd: i32, inode: u64, name: &str) -> Result<Option<String>, ()> {
    let req = request(inode);
    socket::sendto(fd, &req, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|_| ())?;
    let mut buf = vec![0u8; 8 * 1024];
    let n = loop {
        match socket::recv(fd, &mut buf, MsgFlags::empty()) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Err(()),
        }
    };
    let m = &buf[..n.min(buf.len())];
    if m.len() < NLMSG_HDRLEN {
        return Err(());
    }
    let len = (u32_at(m, 0) as usize).min(m.len());
    match u16::from_ne_bytes([m[4], m[5]]) {
        SOCK_DIAG_BY_FAMILY if len >= NLMSG_HDRLEN => Ok(unix(&m[NLMSG_HDRLEN..len], inode, name)),
        // No such socket (ENOENT): not bound, or gone.
        _ => Ok(None),
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
        assert_eq!(unix(&[0; 3], 1, "UNIX"), None);
        // A unix message with a name attribute that claims more than there
        // is: the attribute is left out, nothing read past the end.
        let mut u = vec![libc::AF_UNIX as u8, 0, 0, 0];
        u.extend_from_slice(&5u32.to_ne_bytes());
        u.extend_from_slice(&[0; 8]);
        u.extend_from_slice(&200u16.to_ne_bytes());
        u.extend_from_slice(&UNIX_DIAG_NAME.to_ne_bytes());
        u.extend_from_slice(b"/x");
        assert_eq!(unix(&u, 5, "UNIX"), None);
        // A name and a peer.
        let mut u = vec![libc::AF_UNIX as u8, 0, 0, 0];
        u.extend_from_slice(&5u32.to_ne_bytes());
        u.extend_from_slice(&[0; 8]);
        u.extend_from_slice(&8u16.to_ne_bytes());
        u.extend_from_slice(&UNIX_DIAG_PEER.to_ne_bytes());
        u.extend_from_slice(&6u32.to_ne_bytes());
        u.extend_from_slice(&7u16.to_ne_bytes());
        u.extend_from_slice(&UNIX_DIAG_NAME.to_ne_bytes());
        u.extend_from_slice(b"\0ab\0");
        assert_eq!(unix(&u, 5, "UNIX").as_deref(), Some("UNIX:[5->6,@\"ab\"]"));
        assert_eq!(quoted(b"\0a\"b\n"), "\"\"");
        assert_eq!(quoted(b"a\"b\n\x01"), "\"a\\\"b\\n\\1\"");
    }

    /// A netlink socket, bound and not.
    #[test]
    fn describes_netlink_sockets() {
        let sock = socket::socket(
            socket::AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .expect("netlink");
        let inode = inode_of(sock.as_raw_fd());
        assert_eq!(
            describe(sock.as_raw_fd()).as_deref(),
            Some(format!("NETLINK:[{inode}]").as_str())
        );
        socket::bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 0)).expect("bind");
        let got = describe(sock.as_raw_fd()).expect("described");
        assert!(got.starts_with("NETLINK:[ROUTE:"), "{got}");
    }
}
