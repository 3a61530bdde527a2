//! What the link reads in the debugger's bytes before gdbstub does: the
//! packets it answers itself ([`Taken`]), the process gdb's `Hg` names,
//! and read watchpoints renamed ([`ReadWatch`]).

use std::collections::VecDeque;
use std::sync::Arc;

/// Reading the debugger's packets for those the link answers or changes
/// itself ([`Taken`]): the bytes of a packet that may be one are held
/// until it is told (the rest go on to gdbstub).
#[derive(Default)]
pub(super) struct Intercept {
    state: PassState,
    /// The last packet taken, whole (`$…#xx`), to pass on as it came.
    pub(super) raw: Vec<u8>,
}

/// A packet the link answers, gdbstub lacking it: its kind and what
/// follows its head.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// gdb's `QPassSignals:LIST`.
    PassSignals(Vec<u8>),
    /// lldb's `qMemoryRegionInfo:ADDR`.
    MemoryRegionInfo(Vec<u8>),
    /// gdb's `D;PID` (multiprocess detach): gdbstub ends its session at
    /// any `D`, but after a fork gdb detaches one process and goes on
    /// with the other.
    Detach(Vec<u8>),
    /// gdb's `qXfer:threads:read::OFF,LEN`.
    Threads(Vec<u8>),
    /// gdb's `QProgramSignals:LIST`.
    ProgramSignals(Vec<u8>),
    /// lldb's `qProcessInfo`.
    ProcessInfo(Vec<u8>),
    /// lldb's `QListThreadsInStopReply`.
    ListThreadsInStopReply(Vec<u8>),
    /// lldb's `jThreadsInfo`.
    ThreadsInfo(Vec<u8>),
    /// lldb's `qThreadStopInfoTID`.
    ThreadStopInfo(Vec<u8>),
    /// lldb's `QThreadSuffixSupported`.
    ThreadSuffix(Vec<u8>),
    /// `k`, passed on (see `Replies::kill_pending`).
    Kill(Vec<u8>),
    /// A register packet (`g`, `G`, `p`, `P`: its letter), which lldb
    /// ends with `;thread:TID;` once told `QThreadSuffixSupported`.
    Registers(u8, Vec<u8>),
}

/// The heads of the packets taken, in [`Taken`]'s order.
pub(super) const HEADS: [&[u8]; 15] = [
    b"$QPassSignals:",
    b"$qMemoryRegionInfo:",
    b"$D;",
    b"$qXfer:threads:read::",
    b"$QProgramSignals:",
    b"$qProcessInfo",
    b"$QListThreadsInStopReply",
    b"$jThreadsInfo",
    b"$qThreadStopInfo",
    b"$QThreadSuffixSupported",
    b"$k",
    b"$g;",
    b"$G",
    b"$p",
    b"$P",
];

#[derive(Default)]
pub(super) enum PassState {
    /// Between packets.
    #[default]
    Out,
    /// A packet's first bytes, while they read as one of [`HEADS`].
    Head(Vec<u8>),
    /// Another packet: passed on until its end.
    Pass,
    /// Its checksum's digits still to pass on.
    Sum(u8),
    /// A packet taken whole (bounded), with its head's index.
    Take(usize, Vec<u8>),
    /// Its checksum's digits still to read.
    TakeSum(usize, Vec<u8>, u8),
}

/// Longest packet taken (gdb's `QPassSignals` lists ~150 signals: ~600
/// bytes); longer ones go to gdbstub, which refuses them.
pub(super) const PASS_MAX: usize = 4096;

impl Intercept {
    /// Take byte `b` from the debugger: the bytes to pass on in `out`; a
    /// whole packet taken when one ends.
    pub(super) fn feed(&mut self, b: u8, out: &mut Vec<u8>) -> Option<Taken> {
        use PassState::*;
        match std::mem::take(&mut self.state) {
            Out if b == b'$' => self.state = Head(vec![b]),
            Out => out.push(b),
            Head(mut h) => {
                h.push(b);
                if let Some(k) = HEADS.iter().position(|head| *head == h.as_slice()) {
                    self.state = Take(k, h);
                } else if HEADS.iter().any(|head| head.starts_with(&h)) {
                    self.state = Head(h);
                } else {
                    out.extend_from_slice(&h);
                    self.state = if b == b'#' { Sum(2) } else { Pass };
                }
            }
            Pass => {
                out.push(b);
                self.state = if b == b'#' { Sum(2) } else { Pass };
            }
            Sum(n) => {
                out.push(b);
                self.state = if n > 1 { Sum(n - 1) } else { Out };
            }
            Take(k, mut t) => {
                if b == b'#' {
                    t.push(b);
                    self.state = TakeSum(k, t, 2);
                } else if t.len() >= PASS_MAX {
                    // Not ours to judge: gdbstub refuses what it does not know.
                    out.extend_from_slice(&t);
                    out.push(b);
                    self.state = Pass;
                } else {
                    t.push(b);
                    self.state = Take(k, t);
                }
            }
            TakeSum(k, mut t, n) => {
                t.push(b);
                if n > 1 {
                    self.state = TakeSum(k, t, n - 1);
                } else {
                    let rest = t[HEADS[k].len()..t.len() - 3].to_vec();
                    self.raw = t;
                    return Some(match k {
                        0 => Taken::PassSignals(rest),
                        1 => Taken::MemoryRegionInfo(rest),
                        2 => Taken::Detach(rest),
                        3 => Taken::Threads(rest),
                        4 => Taken::ProgramSignals(rest),
                        5 => Taken::ProcessInfo(rest),
                        6 => Taken::ListThreadsInStopReply(rest),
                        7 => Taken::ThreadsInfo(rest),
                        8 => Taken::ThreadStopInfo(rest),
                        9 => Taken::ThreadSuffix(rest),
                        10 => Taken::Kill(rest),
                        // Its `;` is the suffix's.
                        11 => Taken::Registers(b'g', [b";".as_slice(), &rest].concat()),
                        _ => Taken::Registers(HEADS[k][1], rest),
                    });
                }
            }
        }
        None
    }
}

/// The Linux signals of a `QPassSignals`/`QProgramSignals` list (gdb's
/// numbers in hex, `;`-separated), a bit per signal (bit `n - 1`).
pub(super) fn signal_bits(list: &[u8]) -> u64 {
    let mut bits = 0u64;
    for n in String::from_utf8_lossy(list).split(';') {
        let linux = u8::from_str_radix(n.trim(), 16)
            .ok()
            .and_then(|g| crate::gdb::signals::to_linux(gdbstub::common::Signal(g)));
        if let Some(l @ 1..=64) = linux {
            bits |= 1 << (l - 1);
        }
    }
    bits
}

/// The process gdb's last `Hg` named (`Hgp PID.TID`, multiprocess), as
/// the link reads it: gdbstub keeps only the thread, and the bridge's
/// breakpoint packets name no thread at all (after a fork gdb takes its
/// breakpoints out of the child, `Hg` on the child, before it detaches
/// it). 0: none named.
pub(super) struct General {
    /// The body of the packet being read, while it may be an `Hg`.
    body: Option<Vec<u8>>,
    /// Where the process named goes (`Common::general`).
    common: Arc<super::Common>,
}

impl General {
    pub(super) fn new(common: Arc<super::Common>) -> General {
        General { body: None, common }
    }

    /// Look at byte `b` of the debugger's (it goes on to gdbstub as it
    /// is).
    pub(super) fn feed(&mut self, b: u8) {
        match (&mut self.body, b) {
            (_, b'$') => self.body = Some(Vec::new()),
            (Some(body), b'#') => {
                if let Some(pid) = hg_pid(body) {
                    self.common
                        .general
                        .store(pid, std::sync::atomic::Ordering::SeqCst);
                }
                self.body = None;
            }
            (Some(body), _) if body.len() < 40 && (body.len() > 1 || b"Hg"[body.len()] == b) => {
                body.push(b)
            }
            (Some(_), _) => self.body = None,
            (None, _) => {}
        }
    }
}

/// The pid of `Hgp PID.TID` (hex), 0 for `Hg TID` or `Hgp0.TID`.
fn hg_pid(body: &[u8]) -> Option<u32> {
    let rest = body.strip_prefix(b"Hg")?;
    let Some(ids) = rest.strip_prefix(b"p") else {
        return Some(0);
    };
    let pid = ids.split(|b| *b == b'.').next()?;
    u32::from_str_radix(std::str::from_utf8(pid).ok()?, 16).ok()
}

/// x86 has no read-only watchpoint. gdbserver answers gdb's `Z3`/`z3` as
/// unsupported (an empty reply), and gdb then inserts an access watchpoint
/// (`Z4`) instead, knowing it cannot tell a read from a write (it ignores
/// the hits that changed the value). gdbstub answers every watchpoint type
/// it hands the target, and an error (not an empty reply) makes gdb give
/// up; so the bridge renames type 3 to 9 in the debugger's bytes, a type
/// gdbstub answers with an empty reply, and fixes the packet's checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum ReadWatch {
    /// Between packets.
    #[default]
    Out,
    /// Just after `$`.
    Start,
    /// Just after `$Z` or `$z`.
    Type,
    /// In a packet's body; `renamed` if its type was changed.
    Body { renamed: bool },
    /// In its checksum: the first digit, held back if it must change.
    Sum { renamed: bool, first: Option<u8> },
}

impl ReadWatch {
    /// Take byte `b` from the debugger, and put what gdbstub is to read
    /// in `out`.
    pub(super) fn feed(&mut self, b: u8, out: &mut VecDeque<u8>) {
        use ReadWatch::*;
        *self = match (*self, b) {
            (_, b'$') if !matches!(self, Sum { .. }) => Start,
            (Out, _) => Out,
            (Start, b'Z' | b'z') => Type,
            (Type, b'3') => {
                out.push_back(b'9');
                *self = Body { renamed: true };
                return;
            }
            (Start | Type, b'#') => Sum {
                renamed: false,
                first: None,
            },
            (Start | Type, _) => Body { renamed: false },
            (Body { renamed }, b'#') => Sum {
                renamed,
                first: None,
            },
            (Body { renamed }, _) => Body { renamed },
            (
                Sum {
                    renamed,
                    first: None,
                },
                _,
            ) => {
                *self = Sum {
                    renamed,
                    first: Some(b),
                };
                if !renamed {
                    out.push_back(b);
                }
                return;
            }
            (Sum { renamed: false, .. }, _) => Out,
            (
                Sum {
                    renamed: true,
                    first: Some(hi),
                },
                lo,
            ) => {
                *self = Out;
                let digits = [hi, lo];
                match std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                {
                    // '9' is '3' + 6.
                    Some(sum) => out.extend(format!("{:02x}", sum.wrapping_add(6)).bytes()),
                    // Not a checksum: gdbstub will ask again.
                    None => out.extend(digits),
                }
                return;
            }
        };
        out.push_back(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gdb::link::tests::checksum;
    use std::sync::atomic::Ordering;

    fn through(s: &str) -> String {
        let mut f = ReadWatch::Out;
        let mut out = VecDeque::new();
        for b in s.bytes() {
            f.feed(b, &mut out);
        }
        String::from_utf8(out.into_iter().collect()).unwrap()
    }

    #[test]
    fn read_watchpoints_become_an_unknown_type_with_a_good_checksum() {
        for body in ["Z3,55550000a030,4", "z3,7ffd0,8", "Z3,fa,1"] {
            let renamed = body.replacen('3', "9", 1);
            assert_eq!(
                through(&format!("+${body}#{}", checksum(body))),
                format!("+${renamed}#{}", checksum(&renamed))
            );
        }
        // Everything else passes as it is, split anywhere.
        let others = "+$Z2,1000,8#7c\x03$m3,4#00$#00$X1000,2:}\x03$#aa$Z3";
        assert_eq!(
            &through(others)[..others.len() - 1],
            &others[..others.len() - 1]
        );
    }

    #[test]
    fn pass_signals_packets_are_answered_here_and_the_rest_passes() {
        let mut p = Intercept::default();
        let mut out = Vec::new();
        let mut lists = Vec::new();
        let input =
            "+$QPassSignals:e;1e;97;#aa$QPass#00$qSupported:x#11\x03$QPassSignals:#f3$m1,2#00";
        for b in input.bytes() {
            if let Some(Taken::PassSignals(l)) = p.feed(b, &mut out) {
                lists.push(String::from_utf8(l).unwrap());
            }
        }
        assert_eq!(lists, ["e;1e;97;", ""]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "+$QPass#00$qSupported:x#11\x03$m1,2#00"
        );
        // gdb's 14 (SIGALRM, Linux 14) and 30 (SIGUSR1, Linux 10); 0x97
        // is gdb's "unknown", ignored.
        let c = super::super::Common::default();
        c.passed.store(signal_bits(b"e;1e;97;"), Ordering::SeqCst);
        assert!(c.passes(14) && c.passes(10));
        assert!(!c.passes(12) && !c.passes(0));
        c.passed.store(signal_bits(b""), Ordering::SeqCst);
        assert!(!c.passes(10));
        assert!(c.lets_have(10), "every signal, until gdb says");
    }

    #[test]
    fn detach_packets_are_taken_and_hg_names_a_process() {
        let mut p = Intercept::default();
        let mut out = Vec::new();
        let mut taken = Vec::new();
        for b in "$D;1f#00$D#44$Hgp1f.20#00".bytes() {
            if let Some(t) = p.feed(b, &mut out) {
                taken.push(t);
            }
        }
        assert_eq!(taken, [Taken::Detach(b"1f".to_vec())]);
        assert_eq!(String::from_utf8(out).unwrap(), "$D#44$Hgp1f.20#00");
        let mut g = General::new(Arc::default());
        let pid = |g: &General| g.common.general.load(Ordering::SeqCst);
        for (packets, want) in [
            ("$Hgp1f.20#00", 0x1f),
            ("$m1,2#00$Hg0#00", 0),
            ("$Hgp7940.7940#f5+$g#67", 0x7940),
            ("$HcP1.1#00$Hgpzz.1#00", 0x7940),
            ("$X10,2:Hgp5.5#00", 0x7940),
        ] {
            for b in packets.bytes() {
                g.feed(b);
            }
            assert_eq!(pid(&g), want, "after {packets}");
        }
    }
}
