//! The stub's replies, changed where gdbstub's are not what the debugger
//! needs.

use super::packet;

/// The first packets of the stub's output among which its `qSupported`
/// reply is looked for.
pub(super) const ADVERTISE_WITHIN: u8 = 8;

/// The stub's output held until its `qSupported` reply has passed: once
/// `held` ends with a packet, what to write (with `QPassSignals+` added
/// if it is that reply) and whether it was; `None` while more is to come.
/// To
/// lldb, `qXfer:libraries-svr4` is not offered: lldb 16 loaded only the
/// first library of the list (the vdso) and then no breakpoint in libc
/// resolved; it walks the loader's list well on its own.
pub(super) fn advertised(held: &[u8], lldb: bool) -> Option<(Vec<u8>, bool)> {
    let start = held.iter().position(|&b| b == b'$')?;
    let hash = start + held[start..].iter().position(|&b| b == b'#')?;
    if held.len() < hash + 3 {
        return None;
    }
    let body = &held[start + 1..hash];
    let mut out = held[..start].to_vec();
    if !body.starts_with(b"PacketSize=") {
        // Not the reply: as it is.
        return Some((held.to_vec(), false));
    }
    let mut new = body.to_vec();
    if lldb {
        let text = String::from_utf8_lossy(&new).replace(";qXfer:libraries-svr4:read+", "");
        new = text.into_bytes();
    }
    new.extend_from_slice(b";QPassSignals+");
    out.extend_from_slice(&packet(&new));
    out.extend_from_slice(&held[hash + 3..]);
    Some((out, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gdb::link::tests::checksum;

    #[test]
    fn qsupported_reply_advertises_pass_signals_with_its_checksum() {
        let reply = b"+$PacketSize=100;swbreak+#00+";
        let mut held = Vec::new();
        let mut got = None;
        for &b in reply.iter() {
            held.push(b);
            if let Some((r, found)) = advertised(&held, false) {
                assert!(found);
                got = Some(r);
                break;
            }
        }
        let got = String::from_utf8(got.expect("a whole reply")).unwrap();
        let body = "PacketSize=100;swbreak+;QPassSignals+";
        assert_eq!(got, format!("+${body}#{}", checksum(body)));
        // Anything else first goes as it is.
        assert_eq!(
            advertised(b"$OK#9a", false).unwrap(),
            (b"$OK#9a".to_vec(), false)
        );
        // Not offered to lldb.
        let reply = b"$PacketSize=100;qXfer:libraries-svr4:read+;swbreak+#00";
        let got = String::from_utf8(advertised(reply, true).unwrap().0).unwrap();
        let body = "PacketSize=100;swbreak+;QPassSignals+";
        assert_eq!(got, format!("${body}#{}", checksum(body)));
    }
}
