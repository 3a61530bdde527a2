//! The bridge's inbox: bytes from the debugger and stops from the server,
//! on one bounded channel ([`INBOX`]), so the blocking stub can wait for
//! whichever comes first.
//!
//! A thread reads the debugger's stream (a socket, or stdin with
//! `--stdio`) and a task reads the server's Session stream; both send here.
//! gdbstub reads packet bytes through [`Link`] (its `Connection`), and the
//! event loop takes stops from the same queue ([`Link::next_input`]).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

use gdbstub::conn::{Connection, ConnectionExt};
use utrace_proto::v1 as pb;

/// Inputs waiting at most (the debugger's reader then waits; reports are
/// few: each holds its thread until decided).
pub const INBOX: usize = 256;

/// What arrives for the bridge.
#[derive(Debug)]
pub enum Input {
    /// Bytes from the debugger.
    Bytes(Vec<u8>),
    /// The debugger closed its side.
    DebuggerGone,
    /// A report of the bridge's engine.
    Report(Box<pb::Event>),
    /// The Session stream ended (the server went away), with why.
    ServerGone(String),
}

/// What [`Link::next_input`] found.
#[derive(Debug)]
pub enum Next {
    Byte(u8),
    Report(Box<pb::Event>),
}

/// The debugger's connection, and the reports that came while it was read.
pub struct Link {
    rx: mpsc::Receiver<Input>,
    bytes: VecDeque<u8>,
    reports: VecDeque<Box<pb::Event>>,
    /// Buffered: gdbstub writes a packet in pieces, then flushes it.
    out: std::io::BufWriter<Box<dyn Write + Send>>,
    /// Why the inbox ended, once it has.
    closed: Option<String>,
    /// Where the debugger's bytes are in a packet, for [`ReadWatch`].
    read_watch: ReadWatch,
    /// The debugger's handshake, for the next session on this link.
    handshake: Handshake,
    /// Replies of the stub still to drop (to a replayed handshake).
    swallow: Swallow,
    /// `QPassSignals`, answered here (gdbstub lacks it).
    pass: PassSignals,
    /// gdbstub's `qSupported` reply is still to come: `QPassSignals+` is
    /// added to it, and the output is held packet by packet until it has
    /// passed (lldb asks `QStartNoAckMode` first), for
    /// [`ADVERTISE_WITHIN`] packets at most.
    advertise: Option<Vec<u8>>,
    advertise_left: u8,
    /// The debugged process (0: none), for the packets the link answers.
    pid: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

/// The signals gdb lets through without a stop (`handle SIG nostop
/// noprint pass`: `QPassSignals`), as a bit per Linux signal number (bit
/// `n - 1`): shared by the link, which reads gdb's packet, and the
/// bridge, which resumes a held signal report of these at once, delivering
/// the signal, with no round trip to gdb (a program taking many signals,
/// SIGPROF or SIGALRM, runs at its speed, as under gdbserver).
pub type Passed = Arc<std::sync::atomic::AtomicU64>;

/// Reading the debugger's packets for those the link answers itself
/// ([`Taken`]): the bytes of a packet that may be one are held until it is
/// told (the rest go on to gdbstub).
#[derive(Default)]
struct PassSignals {
    state: PassState,
    passed: Passed,
}

/// A packet the link answers, gdbstub lacking it: its kind and what
/// follows its head.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// gdb's `QPassSignals:LIST`.
    PassSignals(Vec<u8>),
    /// lldb's `qMemoryRegionInfo:ADDR`.
    MemoryRegionInfo(Vec<u8>),
}

/// The heads of the packets taken.
const HEADS: [&[u8]; 2] = [b"$QPassSignals:", b"$qMemoryRegionInfo:"];

#[derive(Default)]
enum PassState {
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
const PASS_MAX: usize = 4096;

impl PassSignals {
    /// Take byte `b` from the debugger: the bytes to pass on in `out`; a
    /// whole packet taken when one ends.
    fn feed(&mut self, b: u8, out: &mut Vec<u8>) -> Option<Taken> {
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
            TakeSum(k, t, n) => {
                if n > 1 {
                    self.state = TakeSum(k, t, n - 1);
                } else {
                    let rest = t[HEADS[k].len()..].to_vec();
                    return Some(match k {
                        0 => Taken::PassSignals(rest),
                        _ => Taken::MemoryRegionInfo(rest),
                    });
                }
            }
        }
        None
    }

    /// Set the signals passed from a `QPassSignals` list (gdb's numbers in
    /// hex, `;`-separated; the list replaces the last).
    fn set(&self, list: &[u8]) {
        let mut bits = 0u64;
        for n in String::from_utf8_lossy(list).split(';') {
            let linux = u8::from_str_radix(n.trim(), 16)
                .ok()
                .and_then(|g| super::signals::to_linux(gdbstub::common::Signal(g)));
            if let Some(l @ 1..=64) = linux {
                bits |= 1 << (l - 1);
            }
        }
        self.passed.store(bits, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Whether Linux signal `signo` is in `passed`.
pub fn is_passed(passed: &Passed, signo: i32) -> bool {
    (1..=64).contains(&signo)
        && passed.load(std::sync::atomic::Ordering::SeqCst) & (1 << (signo - 1)) != 0
}

/// The packets that set a connection up (`qSupported`, `QStartNoAckMode`,
/// `!`), as the debugger sent them. gdbstub ends its session when the
/// process exits or the debugger detaches, and a new stub knows nothing of
/// what was agreed: with `--multi` it is given the same packets again
/// ([`Link::replay_handshake`]), and its replies are dropped, so it speaks
/// as the first did (multiprocess thread ids, no acks) to a debugger that
/// never knew.
#[derive(Default)]
struct Handshake {
    /// Packets read so far (the handshake is among the first
    /// [`HANDSHAKE_WITHIN`]; after those nothing more is looked at).
    seen: u8,
    /// The packet being read (bounded: a handshake packet is small).
    partial: Option<Vec<u8>>,
    /// Its checksum digits still to come, once `#` is read.
    sum_left: u8,
    packets: Vec<Vec<u8>>,
}

/// Longest handshake packet kept (gdb's `qSupported` is ~200 bytes).
const HANDSHAKE_MAX: usize = 4096;

/// The first packets of the debugger's, among which its handshake is.
const HANDSHAKE_WITHIN: u8 = 16;

impl Handshake {
    fn feed(&mut self, b: u8) {
        if self.seen >= HANDSHAKE_WITHIN {
            return;
        }
        if let Some(p) = &mut self.partial {
            p.push(b);
            if self.sum_left > 0 {
                self.sum_left -= 1;
                if self.sum_left == 0 {
                    let p = self.partial.take().unwrap_or_default();
                    self.seen += 1;
                    self.keep(p);
                }
            } else if b == b'#' {
                self.sum_left = 2;
            } else if p.len() > HANDSHAKE_MAX {
                self.partial = None;
            }
        } else if b == b'$' {
            self.partial = Some(vec![b]);
        }
    }

    /// Whether the debugger is lldb: its `qSupported` offers
    /// `xmlRegisters=i386,arm,mips,arc` (gdb's offers `xmlRegisters=i386`
    /// alone, and `qRelocInsn+`, which lldb never does).
    fn is_lldb(&self) -> bool {
        const LLDB: &[u8] = b"xmlRegisters=i386,arm";
        self.packets
            .iter()
            .any(|p| p.starts_with(b"$qSupported") && p.windows(LLDB.len()).any(|w| w == LLDB))
    }

    /// Keep `p` (`$…#xx`) if it sets the connection up, once of each kind.
    fn keep(&mut self, p: Vec<u8>) {
        let body = &p[1..p.len().saturating_sub(3)];
        let kind = |b: &[u8]| -> Option<u8> {
            if b.starts_with(b"qSupported") {
                Some(0)
            } else if b == b"QStartNoAckMode" {
                Some(1)
            } else if b == b"!" {
                Some(2)
            } else {
                None
            }
        };
        let Some(k) = kind(body) else { return };
        if !self
            .packets
            .iter()
            .any(|q| kind(&q[1..q.len().saturating_sub(3)]) == Some(k))
        {
            self.packets.push(p);
        }
    }
}

/// `body` as a packet: `$body#xx`, `xx` its checksum (the sum of its
/// bytes, modulo 256, in hex).
fn packet(body: &[u8]) -> Vec<u8> {
    let sum = body.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(b'$');
    out.extend_from_slice(body);
    out.extend_from_slice(format!("#{sum:02x}").as_bytes());
    out
}

/// The first packets of the stub's output among which its `qSupported`
/// reply is looked for.
const ADVERTISE_WITHIN: u8 = 8;

/// The stub's output held until its `qSupported` reply has passed: once
/// `held` ends with a packet, what to write (with `QPassSignals+` added
/// if it is that reply) and whether it was; `None` while more is to come.
/// To
/// lldb, `qXfer:libraries-svr4` is not offered: lldb 16 loaded only the
/// first library of the list (the vdso) and then no breakpoint in libc
/// resolved; it walks the loader's list well on its own.
fn advertised(held: &[u8], lldb: bool) -> Option<(Vec<u8>, bool)> {
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

/// Dropping the stub's replies to a replayed handshake: acks (`+`)
/// between them, and `count` packets.
#[derive(Default)]
struct Swallow {
    count: usize,
    in_packet: bool,
    sum_left: u8,
}

impl Swallow {
    /// Whether byte `b` of the stub's output is dropped.
    fn drops(&mut self, b: u8) -> bool {
        if self.count == 0 {
            return false;
        }
        if self.sum_left > 0 {
            self.sum_left -= 1;
            if self.sum_left == 0 {
                self.in_packet = false;
                self.count -= 1;
            }
        } else if self.in_packet {
            if b == b'#' {
                self.sum_left = 2;
            }
        } else if b == b'$' {
            self.in_packet = true;
        }
        true
    }
}

/// x86 has no read-only watchpoint. gdbserver answers gdb's `Z3`/`z3` as
/// unsupported (an empty reply), and gdb then inserts an access watchpoint
/// (`Z4`) instead, knowing it cannot tell a read from a write (it ignores
/// the hits that changed the value). gdbstub answers every watchpoint type
/// it hands the target, and an error (not an empty reply) makes gdb give
/// up; so the bridge renames type 3 to 9 in the debugger's bytes, a type
/// gdbstub answers with an empty reply, and fixes the packet's checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ReadWatch {
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
    fn feed(&mut self, b: u8, out: &mut VecDeque<u8>) {
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

impl Link {
    pub fn new(rx: mpsc::Receiver<Input>, out: Box<dyn Write + Send>) -> Link {
        Link {
            rx,
            bytes: VecDeque::new(),
            reports: VecDeque::new(),
            out: std::io::BufWriter::new(out),
            closed: None,
            read_watch: ReadWatch::Out,
            handshake: Handshake::default(),
            swallow: Swallow::default(),
            pass: PassSignals::default(),
            advertise: Some(Vec::new()),
            advertise_left: ADVERTISE_WITHIN,
            pid: Default::default(),
        }
    }

    /// The signals gdb passes (see [`Passed`]).
    pub fn passed(&self) -> Passed {
        self.pass.passed.clone()
    }

    /// Answer a packet taken from the debugger, for gdbstub.
    fn answer(&mut self, taken: Taken) {
        let body = match taken {
            Taken::PassSignals(list) => {
                self.pass.set(&list);
                "OK".to_string()
            }
            Taken::MemoryRegionInfo(addr) => {
                let pid = self.pid.load(std::sync::atomic::Ordering::SeqCst);
                super::regions::region_info(pid, &addr)
            }
        };
        let no_ack = self
            .handshake
            .packets
            .iter()
            .any(|p| p.starts_with(b"$QStartNoAckMode#"));
        let ack: &[u8] = if no_ack { b"" } else { b"+" };
        // A broken connection shows at the next read.
        let _ = self
            .out
            .write_all(ack)
            .and_then(|()| self.out.write_all(&packet(body.as_bytes())))
            .and_then(|()| self.out.flush());
    }

    /// The debugged process's pid, as the bridge sets it (0: none).
    pub fn pid(&self) -> std::sync::Arc<std::sync::atomic::AtomicU32> {
        self.pid.clone()
    }

    /// Give the next session's stub the debugger's handshake again
    /// (`qSupported`, `QStartNoAckMode`, `!`, as first sent); its replies
    /// to it are not sent.
    pub fn replay_handshake(&mut self) {
        let packets = &self.handshake.packets;
        self.swallow = Swallow {
            count: packets.len(),
            ..Default::default()
        };
        for p in packets.iter().rev() {
            for b in p.iter().rev() {
                self.bytes.push_front(*b);
            }
        }
    }

    /// Write the stub's bytes, less those of replies being dropped.
    fn send(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.swallow.count == 0 && self.advertise.is_none() {
            return self.out.write_all(buf);
        }
        for &b in buf {
            if self.swallow.drops(b) {
                continue;
            }
            match &mut self.advertise {
                None => self.out.write_all(&[b])?,
                Some(held) => {
                    held.push(b);
                    let lldb = self.handshake.is_lldb();
                    if let Some((reply, found)) = advertised(held, lldb) {
                        held.clear();
                        self.advertise_left = self.advertise_left.saturating_sub(1);
                        if found || self.advertise_left == 0 {
                            self.advertise = None;
                        }
                        self.out.write_all(&reply)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn take(&mut self, i: Input) {
        match i {
            Input::Bytes(b) => {
                let mut on = Vec::with_capacity(b.len());
                for x in b {
                    self.handshake.feed(x);
                    if let Some(taken) = self.pass.feed(x, &mut on) {
                        self.answer(taken);
                    }
                    for y in on.drain(..) {
                        self.read_watch.feed(y, &mut self.bytes);
                    }
                }
            }
            Input::Report(r) => self.reports.push_back(r),
            Input::DebuggerGone => self.closed = Some("the debugger closed the connection".into()),
            Input::ServerGone(why) => self.closed = Some(why),
        }
    }

    /// Wait for the next input.
    fn receive(&mut self) {
        match self.rx.blocking_recv() {
            Some(i) => self.take(i),
            None => self.closed = Some("the bridge's inputs are gone".into()),
        }
    }

    fn gone(&self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            self.closed.clone().unwrap_or_else(|| "closed".into()),
        )
    }

    /// The next byte from the debugger (reports that come meanwhile wait).
    pub fn read_byte(&mut self) -> std::io::Result<u8> {
        loop {
            if let Some(b) = self.bytes.pop_front() {
                return Ok(b);
            }
            if self.closed.is_some() {
                return Err(self.gone());
            }
            self.receive();
        }
    }

    /// The next byte or report, whichever is first (bytes first when both
    /// are waiting: an interrupt must not wait behind reports).
    pub fn next_input(&mut self) -> std::io::Result<Next> {
        loop {
            if let Some(b) = self.bytes.pop_front() {
                return Ok(Next::Byte(b));
            }
            if let Some(r) = self.reports.pop_front() {
                return Ok(Next::Report(r));
            }
            if self.closed.is_some() {
                return Err(self.gone());
            }
            self.receive();
        }
    }
}

/// The link, shared: gdbstub owns its connection and drops it when a
/// session ends (the program exited, the debugger detached), and with
/// `--multi` the same debugger's next session goes on over the same link.
/// One user at a time: the stub, then the next.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Link>>);

impl Shared {
    pub fn new(link: Link) -> Shared {
        Shared(Arc::new(Mutex::new(link)))
    }

    /// The link (a panic elsewhere while it was held leaves it usable:
    /// its queues are consistent between calls).
    pub fn lock(&self) -> MutexGuard<'_, Link> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Connection for Shared {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        self.lock().send(&[byte])
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.lock().send(buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.lock().out.flush()
    }
}

impl ConnectionExt for Shared {
    fn read(&mut self) -> Result<u8, Self::Error> {
        self.lock().read_byte()
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        let mut link = self.lock();
        while let Ok(i) = link.rx.try_recv() {
            link.take(i);
        }
        Ok(link.bytes.front().copied())
    }
}

/// Read `r` on a thread of its own into `tx`, until it ends.
pub fn pump(mut r: impl Read + Send + 'static, tx: mpsc::Sender<Input>) {
    std::thread::Builder::new()
        .name("gdb-in".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.blocking_send(Input::DebuggerGone);
                        return;
                    }
                    Ok(n) => {
                        if tx.blocking_send(Input::Bytes(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .expect("spawn the debugger reader");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(s: &str) -> String {
        let mut f = ReadWatch::Out;
        let mut out = VecDeque::new();
        for b in s.bytes() {
            f.feed(b, &mut out);
        }
        String::from_utf8(out.into_iter().collect()).unwrap()
    }

    fn checksum(body: &str) -> String {
        format!("{:02x}", body.bytes().fold(0u8, |a, b| a.wrapping_add(b)))
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

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_new_session_gets_the_handshake_and_its_replies_are_dropped() {
        let mut h = Handshake::default();
        for b in b"$qSupported:multiprocess+;qRelocInsn+;xmlRegisters=i386#00".iter() {
            h.feed(*b);
        }
        assert!(!h.is_lldb(), "gdb");
        let mut h = Handshake::default();
        for b in b"$qSupported:xmlRegisters=i386,arm,mips,arc;multiprocess+#2e".iter() {
            h.feed(*b);
        }
        assert!(h.is_lldb(), "lldb");
        let (tx, rx) = mpsc::channel(4);
        let sink = Sink::default();
        let mut link = Shared::new(Link::new(rx, Box::new(sink.clone())));
        let hello = "+$qSupported:multiprocess+;swbreak+#c4$vMustReplyEmpty#3a+\
                     $QStartNoAckMode#b0$!#21$Hgp0.0#ad$qSupported:again#00";
        tx.try_send(Input::Bytes(hello.as_bytes().to_vec()))
            .unwrap();
        let mut read = String::new();
        while read.len() < hello.len() {
            read.push(link.read().unwrap() as char);
        }
        assert_eq!(read, hello, "the first session reads it as it came");
        // The next session's stub reads the handshake first (each kind
        // once, as first sent), then what the debugger sends next.
        link.lock().replay_handshake();
        tx.try_send(Input::Bytes(b"$vRun;70#00".to_vec())).unwrap();
        let want = "$qSupported:multiprocess+;swbreak+#c4$QStartNoAckMode#b0$!#21$vRun;70#00";
        let mut replayed = String::new();
        while replayed.len() < want.len() {
            replayed.push(link.read().unwrap() as char);
        }
        assert_eq!(replayed, want);
        // Its replies to those three (acks between) are not sent; the
        // rest is.
        link.write_all(b"+$PacketSize=10000;multiprocess+#12+$OK#9a")
            .unwrap();
        link.write_all(b"$OK#9a").unwrap();
        link.write_all(b"$T05thread:p1.1;#aa").unwrap();
        link.flush().unwrap();
        assert_eq!(
            String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(),
            "$T05thread:p1.1;#aa"
        );
    }

    #[test]
    fn pass_signals_packets_are_answered_here_and_the_rest_passes() {
        let mut p = PassSignals::default();
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
        p.set(b"e;1e;97;");
        assert!(is_passed(&p.passed, 14) && is_passed(&p.passed, 10));
        assert!(!is_passed(&p.passed, 12) && !is_passed(&p.passed, 0));
        p.set(b"");
        assert!(!is_passed(&p.passed, 10));
    }

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
