//! The stub's replies, changed where gdbstub's are not what the debugger
//! needs.

use super::packet;

/// The first packets of the stub's output among which its `qSupported`
/// reply is looked for.
const ADVERTISE_WITHIN: u8 = 8;

/// The stub's output on its way to the debugger. Packets that may change
/// (stop replies, and the first few while the `qSupported` reply is still
/// to come) are held from `$` to their checksum and written changed or as
/// they were; the rest pass byte by byte.
pub(super) struct Replies {
    state: State,
    held: Vec<u8>,
    /// The program an exec stop is about (see [`ExecPath`]).
    pub(super) exec: ExecPath,
    /// The registers a stop reply carries (see [`Expedite`]).
    pub(super) expedite: Expedite,
    /// The debugger is lldb (as its `qSupported` told).
    lldb: bool,
    /// Packets still to look at for the `qSupported` reply; 0: seen, or
    /// given up.
    advertise_left: u8,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Between packets.
    #[default]
    Out,
    /// Just after a packet's `$`.
    Start,
    /// A packet that passes as it is; then its checksum digits.
    Pass,
    PassSum(u8),
    /// A packet held; then its checksum digits.
    Hold,
    HoldSum(u8),
}

impl Default for Replies {
    fn default() -> Replies {
        Replies {
            state: State::Out,
            held: Vec::new(),
            exec: ExecPath::default(),
            expedite: Expedite::default(),
            lldb: false,
            advertise_left: ADVERTISE_WITHIN,
        }
    }
}

impl Replies {
    /// Whether the `qSupported` reply is still looked for.
    pub(super) fn advertising(&self) -> bool {
        self.advertise_left > 0
    }

    /// Take byte `b` of the stub's; what is ready to write goes to `out`.
    /// `lldb`: the debugger is lldb (looked for only while
    /// [`Replies::advertising`]; its exec stops are told apart by the
    /// stop reply's own keys).
    pub(super) fn feed(&mut self, b: u8, lldb: bool, out: &mut Vec<u8>) {
        use State::*;
        self.state = match (self.state, b) {
            (Out, b'$') => {
                self.held.push(b);
                Start
            }
            (Out, _) => {
                out.push(b);
                Out
            }
            (Start, _) if b == b'T' || self.advertise_left > 0 => {
                self.held.push(b);
                if b == b'#' {
                    HoldSum(2)
                } else {
                    Hold
                }
            }
            (Start, _) => {
                out.append(&mut self.held);
                out.push(b);
                if b == b'#' {
                    PassSum(2)
                } else {
                    Pass
                }
            }
            (Pass, b'#') => {
                out.push(b);
                PassSum(2)
            }
            (Pass, _) => {
                out.push(b);
                Pass
            }
            (PassSum(n), _) => {
                out.push(b);
                if n > 1 {
                    PassSum(n - 1)
                } else {
                    Out
                }
            }
            (Hold, _) => {
                self.held.push(b);
                if b == b'#' {
                    HoldSum(2)
                } else {
                    Hold
                }
            }
            (HoldSum(n), _) => {
                self.held.push(b);
                if n > 1 {
                    HoldSum(n - 1)
                } else {
                    let held = std::mem::take(&mut self.held);
                    let body = &held[1..held.len() - 3];
                    match self.rewritten(body, lldb) {
                        Some(new) => out.extend_from_slice(&packet(&new)),
                        None => out.extend_from_slice(&held),
                    }
                    Out
                }
            }
        };
    }

    /// What a whole packet's body becomes, if it changes.
    fn rewritten(&mut self, body: &[u8], lldb: bool) -> Option<Vec<u8>> {
        if self.advertise_left > 0 {
            self.advertise_left -= 1;
            if body.starts_with(b"PacketSize=") {
                self.advertise_left = 0;
                self.lldb = lldb;
                return Some(advertised(body, lldb));
            }
        }
        if body.first() == Some(&b'T') {
            let changed = fork_child(body).or_else(|| self.exec_stop(body));
            let now = changed.as_deref().unwrap_or(body);
            return self.expedited(now).or(changed);
        }
        None
    }

    /// A stop reply with the registers the bridge left for its thread
    /// (see [`Expedite`]), after the signal number, as gdbserver writes
    /// them: gdb then needs no `g` packet at the stop.
    fn expedited(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        let mut slot = self.expedite.lock().unwrap_or_else(|e| e.into_inner());
        let (tid, regs) = slot.as_ref()?;
        let thread = format!(".{tid:x};");
        let plain = format!("thread:{tid:x};");
        let text = String::from_utf8_lossy(body);
        let named = text
            .split("thread:")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .is_some_and(|id| {
                format!("thread:{id};") == plain || format!("{id};").ends_with(&thread)
            });
        if !named || body.len() < 3 {
            return None;
        }
        let mut new = body[..3].to_vec();
        new.extend_from_slice(regs.as_bytes());
        new.extend_from_slice(&body[3..]);
        *slot = None;
        Some(new)
    }

    /// An exec stop as the debugger knows it: gdbstub has no exec stop
    /// reason, so the bridge reports a library stop (`library:;`) and
    /// leaves the program's path here; gdb reads `exec:HEXPATH;`
    /// (`exec-events`, then it loads the new program), lldb
    /// `reason:exec;` (lldb-server's way).
    fn exec_stop(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        const KEY: &[u8] = b"library:;";
        let at = body.windows(KEY.len()).position(|w| w == KEY)?;
        let path = self.exec.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        let mut new = body[..at].to_vec();
        if self.lldb {
            new.extend_from_slice(b"reason:exec;");
        } else {
            new.extend_from_slice(b"exec:");
            new.extend(path.bytes().flat_map(|b| {
                let hex = format!("{b:02x}");
                hex.into_bytes()
            }));
            new.push(b';');
        }
        new.extend_from_slice(&body[at + KEY.len()..]);
        Some(new)
    }
}

/// The program of the exec the bridge is reporting, for the stop reply
/// (see `Replies::exec_stop`); taken by it.
pub type ExecPath = std::sync::Arc<std::sync::Mutex<Option<String>>>;

/// The registers of the stop the bridge is reporting: its thread, and
/// `NN:HEX;` pairs in gdb's numbering (the frame, stack and program
/// pointers, as gdbserver expedites). Taken by the stop reply that names
/// that thread.
pub type Expedite = std::sync::Arc<std::sync::Mutex<Option<(u32, String)>>>;

/// The `qSupported` reply with `QPassSignals+` added (the link answers
/// it), and `exec-events+` (see `Replies::exec_stop`). To lldb, `qXfer:libraries-svr4` is not offered: lldb 16 loaded
/// only the first library of the list (the vdso) and then no breakpoint in
/// libc resolved; it walks the loader's list well on its own.
fn advertised(body: &[u8], lldb: bool) -> Vec<u8> {
    let mut new = body.to_vec();
    if lldb {
        let text = String::from_utf8_lossy(&new).replace(";qXfer:libraries-svr4:read+", "");
        new = text.into_bytes();
    }
    new.extend_from_slice(b";QPassSignals+;exec-events+;qXfer:threads:read+");
    new
}

/// A fork stop reply with the child's own pid: gdbstub writes the new
/// thread as `fork:pPARENT.CHILD` (it knows one process), and gdb would
/// take the child for a thread of the parent. A new process's first
/// thread has the process's id: `fork:pCHILD.CHILD`.
fn fork_child(body: &[u8]) -> Option<Vec<u8>> {
    const KEY: &[u8] = b"fork:p";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let end = at + body[at..].iter().position(|b| *b == b';')?;
    let id = &body[at..end];
    let dot = id.iter().position(|b| *b == b'.')?;
    let child = &id[dot + 1..];
    let mut new = body[..at].to_vec();
    new.extend_from_slice(child);
    new.push(b'.');
    new.extend_from_slice(child);
    new.extend_from_slice(&body[end..]);
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gdb::link::tests::checksum;

    fn through(r: &mut Replies, s: &str, lldb: bool) -> String {
        let mut out = Vec::new();
        for b in s.bytes() {
            r.feed(b, lldb, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn qsupported_reply_advertises_pass_signals_with_its_checksum() {
        let body = "PacketSize=100;swbreak+;QPassSignals+;exec-events+;qXfer:threads:read+";
        let mut r = Replies::default();
        // Anything else first goes as it is.
        assert_eq!(through(&mut r, "+$OK#9a", false), "+$OK#9a");
        assert_eq!(
            through(&mut r, "+$PacketSize=100;swbreak+#00+", false),
            format!("+${body}#{}+", checksum(body))
        );
        // Once only.
        let again = "$PacketSize=100;swbreak+#00";
        assert_eq!(through(&mut r, again, false), again);
        // Not offered to lldb.
        let mut r = Replies::default();
        let reply = "$PacketSize=100;qXfer:libraries-svr4:read+;swbreak+#00";
        assert_eq!(
            through(&mut r, reply, true),
            format!("${body}#{}", checksum(body))
        );
    }

    #[test]
    fn an_exec_stop_names_the_program_to_gdb_and_is_an_exec_to_lldb() {
        let mut r = Replies::default();
        through(&mut r, "$PacketSize=100#00", false);
        *r.exec.lock().unwrap() = Some("/bin/ls".into());
        let stop = "T05thread:p10.10;library:;";
        let want = "T05thread:p10.10;exec:2f62696e2f6c73;";
        assert_eq!(
            through(&mut r, &format!("${stop}#00"), false),
            format!("${want}#{}", checksum(want))
        );
        // Taken: a library stop with no exec pending is one.
        assert_eq!(
            through(&mut r, &format!("${stop}#00"), false),
            format!("${stop}#00")
        );
        let mut r = Replies::default();
        through(&mut r, "$PacketSize=100#00", true);
        *r.exec.lock().unwrap() = Some("/bin/ls".into());
        let want = "T05thread:p10.10;reason:exec;";
        assert_eq!(
            through(&mut r, &format!("${stop}#00"), false),
            format!("${want}#{}", checksum(want))
        );
    }

    #[test]
    fn a_stop_reply_carries_its_threads_registers() {
        let mut r = Replies {
            advertise_left: 0,
            ..Default::default()
        };
        let regs = "06:0100000000000000;07:0200000000000000;10:0300000000000000;";
        *r.expedite.lock().unwrap() = Some((0x2a, regs.into()));
        // Another thread's stop: as it is, the registers kept.
        let other = "$T05thread:p10.2b;#00";
        assert_eq!(through(&mut r, other, false), other);
        let want = format!("T05{regs}thread:p10.2a;swbreak:;");
        assert_eq!(
            through(&mut r, "$T05thread:p10.2a;swbreak:;#00", false),
            format!("${want}#{}", checksum(&want))
        );
        // Once.
        let again = "$T05thread:p10.2a;#00";
        assert_eq!(through(&mut r, again, false), again);
        *r.expedite.lock().unwrap() = Some((0x2a, regs.into()));
        let want = format!("T05{regs}thread:2a;");
        assert_eq!(
            through(&mut r, "$T05thread:2a;#00", false),
            format!("${want}#{}", checksum(&want))
        );
    }

    #[test]
    fn a_fork_stop_names_the_child_process() {
        let mut r = Replies {
            advertise_left: 0,
            ..Default::default()
        };
        let stop = "T05thread:p10.11;fork:p10.2a;";
        let want = "T05thread:p10.11;fork:p2a.2a;";
        assert_eq!(
            through(&mut r, &format!("$m1,2#00${stop}#00$OK#9a"), false),
            format!("$m1,2#00${want}#{}$OK#9a", checksum(want))
        );
        // Other stops, and data that only looks like one, pass.
        let other = "$T05thread:p10.11;swbreak:;#00$mfork:p1.2;#00";
        assert_eq!(through(&mut r, other, false), other);
    }
}
