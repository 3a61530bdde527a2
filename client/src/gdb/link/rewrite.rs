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
    /// Shared with the bridge: the program an exec stop is about, what
    /// the bridge says of a stop, the thread list.
    pub(super) common: std::sync::Arc<super::Common>,
    /// The debugger is lldb (as its `qSupported` told).
    pub(super) lldb: bool,
    /// lldb asked for the thread list in stop replies
    /// (`QListThreadsInStopReply`): each carries `threads:`.
    pub(super) list_threads: bool,
    /// The last stop reply sent, as sent, with what the bridge said of
    /// it: lldb's `qThreadStopInfo` and `jThreadsInfo` are answered from
    /// it.
    pub(super) last: Option<LastStop>,
    /// lldb sent `k`: gdbstub's `OK` to it becomes lldb-server's `X09`
    /// (the process was killed by SIGKILL), which lldb expects.
    pub(super) kill_pending: bool,
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
        Replies::new(Default::default())
    }
}

impl Replies {
    pub(super) fn new(common: std::sync::Arc<super::Common>) -> Replies {
        Replies {
            state: State::Out,
            held: Vec::new(),
            common,
            lldb: false,
            list_threads: false,
            last: None,
            kill_pending: false,
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
            (Start, _) if b == b'T' || self.advertise_left > 0 || self.kill_pending => {
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

    /// [`Replies::feed`] for each byte of `buf`, with the bytes of a
    /// packet that passes as it is (and those between packets) copied a
    /// run at a time: a `vFile:pread` or `m` reply is kilobytes, and
    /// only its `#` changes the state.
    pub(super) fn feed_all(&mut self, buf: &[u8], lldb: bool, out: &mut Vec<u8>) {
        let mut rest = buf;
        while let Some((&b, tail)) = rest.split_first() {
            let stop = match self.state {
                State::Pass => b'#',
                State::Out => b'$',
                _ => {
                    self.feed(b, lldb, out);
                    rest = tail;
                    continue;
                }
            };
            let run = rest.iter().position(|&c| c == stop).unwrap_or(rest.len());
            out.extend_from_slice(&rest[..run]);
            rest = &rest[run..];
            if let Some((&b, tail)) = rest.split_first() {
                self.feed(b, lldb, out);
                rest = tail;
            }
        }
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
        if self.kill_pending {
            self.kill_pending = false;
            if body == b"OK" {
                return Some(b"X09".to_vec());
            }
        }
        if body.first() == Some(&b'T') {
            let changed = fork_child(body).or_else(|| self.exec_stop(body));
            let now = changed.as_deref().unwrap_or(body);
            let (new, said) = self.expedited(now);
            let mut new = new.or(changed);
            if self.list_threads {
                let mut with = new.take().unwrap_or_else(|| body.to_vec());
                self.add_threads(&mut with);
                new = Some(with);
            }
            let sent = new.as_deref().unwrap_or(body);
            self.last = thread_id(sent).map(|(pid, tid)| LastStop {
                pid,
                tid,
                body: sent.to_vec(),
                said,
            });
            return new;
        }
        None
    }

    /// A stop reply with the registers the bridge left for its thread
    /// (see [`Expedite`]), after the signal number, as gdbserver writes
    /// them: gdb then needs no `g` packet at the stop. To lldb it also
    /// says why (`reason:`), as lldb-server does. With what the bridge
    /// said, taken (once).
    fn expedited(&mut self, body: &[u8]) -> (Option<Vec<u8>>, Option<Stopped>) {
        let mut slot = super::lock(&self.common.expedite);
        let named = match (slot.as_ref(), thread_id(body)) {
            (Some(s), Some((_, tid))) => s.tid == tid,
            _ => false,
        };
        if !named || body.len() < 3 {
            return (None, None);
        }
        let Some(said) = slot.take() else {
            return (None, None);
        };
        let mut new = body[..3].to_vec();
        new.extend_from_slice(said.regs.as_bytes());
        new.extend_from_slice(&body[3..]);
        const REASON: &[u8] = b"reason:";
        if let (true, Some(why)) = (self.lldb, said.reason) {
            if !new.windows(REASON.len()).any(|w| w == REASON) {
                new.extend_from_slice(format!("reason:{why};").as_bytes());
            }
        }
        (Some(new), Some(said))
    }

    /// `threads:ID,ID,…;` at the end of stop reply `body`, the ids in the
    /// form its `thread:` has (`pPID.TID` or `TID`).
    fn add_threads(&self, body: &mut Vec<u8>) {
        let Some((pid, _)) = thread_id(body) else {
            return;
        };
        let tids = self.common.threads();
        let ids: Vec<String> = tids.iter().map(|t| format_id(pid, *t)).collect();
        body.extend_from_slice(format!("threads:{};", ids.join(",")).as_bytes());
    }

    /// An exec stop as the debugger knows it: gdbstub has no exec stop
    /// reason, so the bridge reports a library stop (`library:;`) and
    /// leaves the program's path here; gdb reads `exec:HEXPATH;`
    /// (`exec-events`, then it loads the new program), lldb
    /// `reason:exec;` (lldb-server's way).
    fn exec_stop(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        const KEY: &[u8] = b"library:;";
        let at = body.windows(KEY.len()).position(|w| w == KEY)?;
        let path = super::lock(&self.common.exec).take()?;
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

/// The thread a stop reply names (`thread:pPID.TID;` or `thread:TID;`,
/// hex): its process (`None` without one) and thread.
pub(super) fn thread_id(body: &[u8]) -> Option<(Option<u32>, u32)> {
    const KEY: &[u8] = b"thread:";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let end = at + body[at..].iter().position(|b| *b == b';')?;
    let id = std::str::from_utf8(&body[at..end]).ok()?;
    match id.strip_prefix('p') {
        Some(both) => {
            let (pid, tid) = both.split_once('.')?;
            Some((
                Some(u32::from_str_radix(pid, 16).ok()?),
                u32::from_str_radix(tid, 16).ok()?,
            ))
        }
        None => Some((None, u32::from_str_radix(id, 16).ok()?)),
    }
}

/// A thread id as the debugger writes them: `pPID.TID` when it speaks
/// multiprocess (`pid` known), else `TID`.
pub(super) fn format_id(pid: Option<u32>, tid: u32) -> String {
    match pid {
        Some(p) => format!("p{p:x}.{tid:x}"),
        None => format!("{tid:x}"),
    }
}

/// The last stop reply the debugger was sent.
#[derive(Clone, Debug)]
pub(super) struct LastStop {
    /// Its process, when ids are written `pPID.TID`.
    pub(super) pid: Option<u32>,
    pub(super) tid: u32,
    /// The reply's body, as sent.
    pub(super) body: Vec<u8>,
    /// What the bridge said of it (registers, reason).
    pub(super) said: Option<Stopped>,
}

impl LastStop {
    /// Its registers as they were no longer: out of the reply kept, and
    /// of what the bridge said.
    pub(super) fn forget_registers(&mut self) {
        if let Some(s) = &mut self.said {
            s.regs.clear();
        }
        if self.body.len() > 3 {
            let mut body = self.body[..3].to_vec();
            for pair in self.body[3..].split(|b| *b == b';') {
                let key = pair.split(|b| *b == b':').next().unwrap_or_default();
                let register = key.len() == 2 && key.iter().all(u8::is_ascii_hexdigit);
                if !register && !pair.is_empty() {
                    body.extend_from_slice(pair);
                    body.push(b';');
                }
            }
            self.body = body;
        }
    }
}

/// What the bridge says of the stop it reports, for the stop reply: its
/// thread, the registers to carry (`NN:HEX;` pairs in gdb's numbering: the
/// frame, stack and program pointers, as gdbserver expedites), and why it
/// stopped in lldb's words (`breakpoint`, `trace`, `signal`…), which lldb
/// reads from `reason:`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    pub tid: u32,
    pub regs: String,
    pub reason: Option<&'static str>,
}

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
    new.extend_from_slice(b";QPassSignals+;QProgramSignals+;exec-events+;qXfer:threads:read+");
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

    /// A session's output fed in slices of every size gives what it gives
    /// byte by byte: the advertised `qSupported` reply, a stop reply
    /// changed, kilobyte replies with `$` inside (binary file data), acks.
    #[test]
    fn replies_fed_a_slice_at_a_time_are_those_fed_a_byte_at_a_time() {
        let data: String = (0..3000).map(|i| ['a', '$', '7', '}'][i % 4]).collect();
        let stream = format!(
            "+$PacketSize=4000;swbreak+#00+$OK#9a+$F{};{data}#00+\
             $T05thread:p1f.1f;#00+$m{}#00++$W00#b7",
            data.len(),
            "0f".repeat(2000),
        );
        let mut whole = Replies::default();
        let want = through(&mut whole, &stream, false);
        assert!(want.contains("QPassSignals+"), "{want}");
        for size in [1, 2, 3, 7, 64, 1000, stream.len()] {
            let mut r = Replies::default();
            let mut out = Vec::new();
            for chunk in stream.as_bytes().chunks(size) {
                r.feed_all(chunk, false, &mut out);
            }
            assert_eq!(String::from_utf8(out).unwrap(), want, "slices of {size}");
        }
    }

    #[test]
    fn qsupported_reply_advertises_pass_signals_with_its_checksum() {
        let body =
            "PacketSize=100;swbreak+;QPassSignals+;QProgramSignals+;exec-events+;qXfer:threads:read+";
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
        *r.common.exec.lock().unwrap() = Some("/bin/ls".into());
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
        *r.common.exec.lock().unwrap() = Some("/bin/ls".into());
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
        let said = Stopped {
            tid: 0x2a,
            regs: regs.into(),
            reason: Some("breakpoint"),
        };
        *r.common.expedite.lock().unwrap() = Some(said.clone());
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
        *r.common.expedite.lock().unwrap() = Some(said.clone());
        let want = format!("T05{regs}thread:2a;");
        assert_eq!(
            through(&mut r, "$T05thread:2a;#00", false),
            format!("${want}#{}", checksum(&want))
        );
        // To lldb: why, as lldb-server says it, and (once asked) every
        // thread's id; the reply kept for lldb's later questions.
        r.lldb = true;
        r.list_threads = true;
        *r.common.threads.lock().unwrap() = vec![0x10, 0x2a];
        *r.common.expedite.lock().unwrap() = Some(said.clone());
        let want =
            format!("T05{regs}thread:p10.2a;swbreak:;reason:breakpoint;threads:p10.10,p10.2a;");
        assert_eq!(
            through(&mut r, "$T05thread:p10.2a;swbreak:;#00", false),
            format!("${want}#{}", checksum(&want))
        );
        let mut last = r.last.clone().unwrap();
        assert_eq!(
            (last.pid, last.tid, last.said.clone()),
            (Some(0x10), 0x2a, Some(said))
        );
        assert_eq!(last.body, want.as_bytes());
        // Written since: the registers are left out.
        last.forget_registers();
        assert_eq!(
            String::from_utf8(last.body).unwrap(),
            "T05thread:p10.2a;swbreak:;reason:breakpoint;threads:p10.10,p10.2a;"
        );
        assert_eq!(last.said.unwrap().regs, "");
    }

    #[test]
    fn lldbs_kill_is_answered_as_lldb_server_does() {
        let mut r = Replies {
            advertise_left: 0,
            kill_pending: true,
            ..Default::default()
        };
        assert_eq!(through(&mut r, "$OK#9a", true), "$X09#c1");
        assert_eq!(through(&mut r, "$OK#9a", true), "$OK#9a");
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
