//! The owner of one TCP socket of this network namespace, asked of the
//! kernel by its addresses (`NETLINK_SOCK_DIAG`, an exact lookup, as `ss`
//! does for one socket). `/proc/net/tcp` gives the same answer by
//! walking the whole established-socket table: 1.5 ms a read on a
//! machine whose table has 262,144 buckets, for each connection checked.

use std::net::{IpAddr, SocketAddr};

use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

/// `SOCK_DIAG_BY_FAMILY`, the request type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
/// `TCP_LISTEN` in `idiag_state`: a listener is never a connection's end.
const TCP_LISTEN: u8 = 10;
/// The size of `struct nlmsghdr`.
const NLMSG_HDR: usize = 16;
/// Where `idiag_uid` is in `struct inet_diag_msg` (family, state, timer,
/// retrans: 4 bytes; the socket id: 48; expires, rqueue, wqueue: 12).
const UID_AT: usize = 64;

/// The kernel could not be asked (no `inet_diag`, or an answer that could
/// not be read): the caller may look another way.
#[derive(Debug, PartialEq, Eq)]
pub struct CannotAsk;

/// The uid owning the TCP socket whose own address is `local` and whose
/// peer is `remote`: `Ok(None)` when this namespace has none (a listener
/// does not count), as the kernel says for certain; [`CannotAsk`] when
/// it could not say.
pub fn tcp_socket_uid(local: SocketAddr, remote: SocketAddr) -> Result<Option<u32>, CannotAsk> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .map_err(|_| CannotAsk)?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // An IPv4 connection's end may be an IPv4 socket, or a dual-stack
    // IPv6 one that sees the addresses v4-mapped.
    let families: &[(u8, bool)] = match (local.ip(), remote.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            &[(libc::AF_INET as u8, false), (libc::AF_INET6 as u8, true)]
        }
        _ => &[(libc::AF_INET6 as u8, false)],
    };
    for &(family, mapped) in families {
        let req = request(family, mapped, local, remote).ok_or(CannotAsk)?;
        sendto(raw, &req, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|_| CannotAsk)?;
        let mut buf = [0u8; 8192];
        let n = recv(raw, &mut buf, MsgFlags::empty()).map_err(|_| CannotAsk)?;
        match answer(&buf[..n], &req) {
            Answer::Uid(uid) => return Ok(Some(uid)),
            Answer::NotFound => continue,
            Answer::Unusable => return Err(CannotAsk),
        }
    }
    Ok(None)
}

/// The words of `ip` as `inet_diag_sockid` holds them (network order, 16
/// bytes; an IPv4 address in the first word, or v4-mapped).
fn addr_bytes(ip: IpAddr, mapped: bool) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    match (ip, mapped) {
        (IpAddr::V4(a), false) => out[..4].copy_from_slice(&a.octets()),
        (IpAddr::V4(a), true) => out = a.to_ipv6_mapped().octets(),
        (IpAddr::V6(a), false) => out = a.octets(),
        (IpAddr::V6(_), true) => return None,
    }
    Some(out)
}

/// The lookup request: `nlmsghdr` and `inet_diag_req_v2` for the socket
/// whose source is `local` and destination `remote`.
fn request(family: u8, mapped: bool, local: SocketAddr, remote: SocketAddr) -> Option<Vec<u8>> {
    let mut r = Vec::with_capacity(NLMSG_HDR + 56);
    let len = (NLMSG_HDR + 56) as u32;
    r.extend_from_slice(&len.to_ne_bytes());
    r.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    r.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    r.extend_from_slice(&1u32.to_ne_bytes()); // seq
    r.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel's
    r.push(family);
    r.push(libc::IPPROTO_TCP as u8);
    r.push(0); // no extensions
    r.push(0);
    r.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    r.extend_from_slice(&local.port().to_be_bytes());
    r.extend_from_slice(&remote.port().to_be_bytes());
    r.extend_from_slice(&addr_bytes(local.ip(), mapped)?);
    r.extend_from_slice(&addr_bytes(remote.ip(), mapped)?);
    r.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    r.extend_from_slice(&u32::MAX.to_ne_bytes()); // no cookie
    r.extend_from_slice(&u32::MAX.to_ne_bytes());
    Some(r)
}

enum Answer {
    Uid(u32),
    /// No such socket in this family.
    NotFound,
    /// An answer that cannot be read, or an error other than "none".
    Unusable,
}

/// The kernel's answer to `req`: the socket's uid, if it is the socket
/// asked for (its id as requested, not a listener).
fn answer(buf: &[u8], req: &[u8]) -> Answer {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
    };
    let Some(kind) = buf.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
        return Answer::Unusable;
    };
    if kind == NLMSG_ERROR {
        // The error is negated errno in the first word of the payload.
        return match word(NLMSG_HDR).map(|e| e as i32) {
            Some(e) if e == -libc::ENOENT => Answer::NotFound,
            _ => Answer::Unusable,
        };
    }
    let msg = NLMSG_HDR;
    // The socket id in the answer (ports and addresses) is the request's.
    let asked = &req[NLMSG_HDR + 8..NLMSG_HDR + 8 + 36];
    let got = buf.get(msg + 4..msg + 4 + 36);
    if kind != SOCK_DIAG_BY_FAMILY || got != Some(asked) {
        return Answer::Unusable;
    }
    if buf.get(msg + 1) == Some(&TCP_LISTEN) {
        return Answer::NotFound;
    }
    match word(msg + UID_AT) {
        Some(uid) => Answer::Uid(uid),
        None => Answer::Unusable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback connection made here: both its ends are this process's
    /// uid's, found from either side; a pair of addresses no socket has
    /// is found by neither lookup.
    #[test]
    fn both_ends_of_a_loopback_connection_are_ours() {
        let me = nix::unistd::geteuid().as_raw();
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = std::net::TcpListener::bind(bind) else {
                continue; // no IPv6 here
            };
            let server_addr = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(server_addr).unwrap();
            let (accepted, peer) = listener.accept().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            // The client's end, asked for as the server sees it.
            assert_eq!(tcp_socket_uid(peer, server_addr), Ok(Some(me)), "{bind}");
            assert_eq!(tcp_socket_uid(server_addr, peer), Ok(Some(me)), "{bind}");
            drop(accepted);
        }
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let nowhere: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(tcp_socket_uid(nobody, nowhere), Ok(None));
    }
}
