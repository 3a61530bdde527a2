//! The bridge's inputs: bytes from the debugger and stops from the server,
//! so that the blocking stub can wait for whichever comes first.
//!
//! The server's reports come on a bounded channel ([`INBOX`]) from the
//! task that reads the Session stream, each followed by a poke of an
//! eventfd ([`Inbox`]). The debugger's socket (or stdin with `--stdio`) is
//! read by the stub's own thread: it waits on that descriptor and the
//! eventfd at once (`poll`), so a packet reaches the stub with no thread
//! between them (a thread hop costs tens of microseconds on a small VM,
//! and gdb sends several packets per step). A debugger stream with no
//! descriptor is read on a thread of its own into the channel ([`pump`]).
//! gdbstub reads packet bytes through [`Link`] (its `Connection`), and the
//! event loop takes stops from the same link ([`Link::next_input`]).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::sync::mpsc;

use gdbstub::conn::{Connection, ConnectionExt};
use utrace_proto::v1 as pb;

mod checksum;
mod handshake;
mod intercept;
mod rewrite;

use checksum::{Checksums, Refusal};
use handshake::{Handshake, Swallow};
pub use intercept::Taken;
use intercept::{General, Intercept, ReadWatch};
use rewrite::Replies;
pub use rewrite::Stopped;

/// Inputs waiting at most (the debugger's reader then waits; reports are
/// few: each holds its thread until decided).
pub const INBOX: usize = 256;

/// What the bridge and the link share, one setting and the other reading:
/// one value, made by the link ([`Link::common`]).
#[derive(Debug)]
pub struct Common {
    /// The debugged process (0: none), set by the bridge; the link answers
    /// lldb's and gdb's questions about it.
    pub pid: AtomicU32,
    /// The process gdb's last `Hg` named (`Hgp PID.TID`; 0: none), read by
    /// the link: gdbstub keeps only the thread, and the bridge's breakpoint
    /// packets name no thread (after a fork gdb takes its breakpoints out
    /// of the child, `Hg` on the child, before it detaches it).
    pub general: AtomicU32,
    /// Forks reported to the debugger and not settled yet, counted by the
    /// bridge: while any is, a `D;PID` detaches that one process.
    pub forking: AtomicU32,
    /// The signals gdb lets through without a stop (`handle SIG nostop
    /// noprint pass`: `QPassSignals`), a bit per Linux signal (bit `n -
    /// 1`): the bridge resumes a held report of these at once, delivering
    /// the signal, with no round trip to gdb (a program taking many
    /// signals runs at its speed, as under gdbserver).
    pub passed: AtomicU64,
    /// The signals gdb lets the program have (`QProgramSignals`; all until
    /// it says), bits as `passed`: others are not delivered, at a resume
    /// or when the bridge leaves a signal stop.
    pub program: AtomicU64,
    /// The threads as of the last stop, in the order gdb is to list them
    /// (`qXfer:threads`, lldb's `threads:` and `jThreadsInfo`).
    pub threads: Mutex<Vec<u32>>,
    /// The program of the exec being reported, taken by its stop reply.
    pub exec: Mutex<Option<String>>,
    /// What the bridge says of the stop it is reporting ([`Stopped`]),
    /// taken by the stop reply that names its thread.
    pub expedite: Mutex<Option<Stopped>>,
}

impl Default for Common {
    fn default() -> Common {
        Common {
            pid: AtomicU32::new(0),
            general: AtomicU32::new(0),
            forking: AtomicU32::new(0),
            passed: AtomicU64::new(0),
            program: AtomicU64::new(u64::MAX),
            threads: Mutex::default(),
            exec: Mutex::default(),
            expedite: Mutex::default(),
        }
    }
}

impl Common {
    /// Whether gdb passes Linux signal `signo` without a stop.
    pub fn passes(&self, signo: i32) -> bool {
        has(&self.passed, signo)
    }

    /// Whether gdb lets the program have Linux signal `signo`.
    pub fn lets_have(&self, signo: i32) -> bool {
        has(&self.program, signo)
    }

    /// The debugged process.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// The thread list as of the last stop.
    pub fn threads(&self) -> Vec<u32> {
        lock(&self.threads).clone()
    }
}

/// `m` locked (a panic elsewhere while it was held leaves the value
/// usable: each is written whole).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether signal `signo`'s bit is set in `bits`.
fn has(bits: &AtomicU64, signo: i32) -> bool {
    (1..=64).contains(&signo) && bits.load(Ordering::SeqCst) & (1 << (signo - 1)) != 0
}

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

/// The sending side of the bridge's inbox: each input is queued, then the
/// link's eventfd poked (the link waits on it beside the debugger's
/// descriptor).
#[derive(Clone, Debug)]
pub struct Inbox {
    tx: mpsc::Sender<Input>,
    wake: Arc<EventFd>,
}

/// The link that read an [`Inbox`] is gone.
#[derive(Debug, thiserror::Error)]
#[error("the bridge's link is gone")]
pub struct LinkGone;

impl Inbox {
    /// Queue `input` (waiting while the inbox is full); `Err` once the
    /// link is gone.
    pub async fn send(&self, input: Input) -> Result<(), LinkGone> {
        self.tx.send(input).await.map_err(|_| LinkGone)?;
        self.poke();
        Ok(())
    }

    /// [`Inbox::send`] from a thread outside the runtime.
    pub fn blocking_send(&self, input: Input) -> Result<(), LinkGone> {
        self.tx.blocking_send(input).map_err(|_| LinkGone)?;
        self.poke();
        Ok(())
    }

    fn poke(&self) {
        // Non-blocking; the counter cannot fill up (2^64 - 2 pokes).
        let _ = self.wake.write(1);
    }
}

/// A new inbox: its sending side and the link's receiving side.
pub fn inbox() -> std::io::Result<(Inbox, Receiving)> {
    let (tx, rx) = mpsc::channel(INBOX);
    let wake = Arc::new(EventFd::from_value_and_flags(
        0,
        EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
    )?);
    Ok((
        Inbox {
            tx,
            wake: wake.clone(),
        },
        Receiving { rx, wake },
    ))
}

/// The link's side of an [`Inbox`].
#[derive(Debug)]
pub struct Receiving {
    rx: mpsc::Receiver<Input>,
    wake: Arc<EventFd>,
}

/// What [`Link::next_input`] found.
#[derive(Debug)]
pub enum Next {
    Byte(u8),
    Report(Box<pb::Event>),
}

/// The debugger's connection, and the reports that came while it was read.
pub struct Link {
    /// How long the last wait for input took (a short one: the next is
    /// looked for before the thread sleeps, [`crate::spin`]).
    last_wait: std::time::Duration,
    rx: mpsc::Receiver<Input>,
    /// Poked after each input queued on `rx`.
    wake: Arc<EventFd>,
    /// The debugger's stream, read here (`None`: read by [`pump`], or
    /// ended).
    input: Option<Arc<OwnedFd>>,
    bytes: VecDeque<u8>,
    reports: VecDeque<Box<pb::Event>>,
    /// Buffered: gdbstub writes a packet in pieces, then flushes it.
    out: std::io::BufWriter<Box<dyn Write + Send>>,
    /// Why the inbox ended, once it has.
    closed: Option<String>,
    /// Where the debugger's bytes are in a packet, for [`ReadWatch`].
    read_watch: ReadWatch,
    /// The debugger's packets, checked before anything else reads them.
    checksums: Checksums,
    /// The debugger's handshake, for the next session on this link.
    handshake: Handshake,
    /// Replies of the stub still to drop (to a replayed handshake).
    swallow: Swallow,
    /// Packets answered or changed here (gdbstub lacks them).
    pass: Intercept,
    /// The process gdb's last `Hg` named.
    general: General,
    /// The stub's replies on their way out (some changed).
    replies: Replies,
    /// [`Link::send`]'s buffer, kept between calls.
    scratch: Vec<u8>,
    /// What the link shares with the bridge.
    common: Arc<Common>,
    /// The `qXfer:threads` document being read.
    threads_doc: Option<String>,
    /// lldb said it ends register packets with `;thread:TID;`
    /// (`QThreadSuffixSupported`): each becomes an `Hg` and the packet.
    suffixed: bool,
}

/// The monitor command a `D;PID` becomes while a fork is unsettled: the
/// bridge leaves that process alone ([`super::target::Bridge`]'s
/// `MonitorCmd`), and gdbstub answers `OK` as to the `D`.
pub const LEAVE: &str = "utrace-leave ";

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

impl Link {
    /// A link taking reports from `inbox` and the debugger's bytes from
    /// `input` (`None`: they come through the inbox, from [`pump`]),
    /// writing to `out`.
    pub fn new(inbox: Receiving, input: Option<OwnedFd>, out: Box<dyn Write + Send>) -> Link {
        let common = Arc::new(Common::default());
        let replies = Replies::new(common.clone());
        Link {
            last_wait: std::time::Duration::MAX,
            rx: inbox.rx,
            wake: inbox.wake,
            input: input.map(Arc::new),
            bytes: VecDeque::new(),
            reports: VecDeque::new(),
            out: std::io::BufWriter::new(out),
            closed: None,
            read_watch: ReadWatch::Out,
            checksums: Checksums::default(),
            handshake: Handshake::default(),
            swallow: Swallow::default(),
            pass: Intercept::default(),
            general: General::new(common.clone()),
            replies,
            scratch: Vec::new(),
            common,
            threads_doc: None,
            suffixed: false,
        }
    }

    /// What the link shares with the bridge.
    pub fn common(&self) -> Arc<Common> {
        self.common.clone()
    }

    /// The debugged process, and whether thread ids are written with it
    /// (`pPID.TID`): as the last stop reply wrote them, else as agreed.
    fn ids(&self) -> (u32, Option<u32>) {
        let pid = self.common.pid();
        let with = match &self.replies.last {
            Some(l) => l.pid,
            None => self.handshake.offered(b"multiprocess+").then_some(pid),
        };
        (pid, with)
    }

    /// Answer a packet taken from the debugger, for gdbstub; or what
    /// gdbstub is to read instead.
    fn answer(&mut self, taken: Taken) -> Option<Vec<u8>> {
        let body = match taken {
            // After a fork gdb detaches the side it does not follow; the
            // bridge is told by a monitor command, which gdbstub answers
            // `OK` (it would end the whole session at a `D`). A `D;PID`
            // with no fork pending is a detach as any.
            Taken::Detach(pid) => {
                let mut body = b"D;".to_vec();
                if self.common.forking.load(Ordering::SeqCst) > 0 {
                    let cmd: String = LEAVE
                        .bytes()
                        .chain(pid)
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    body = format!("qRcmd,{cmd}").into_bytes();
                } else {
                    body.extend(pid);
                }
                return Some(packet(&body));
            }
            Taken::PassSignals(list) => {
                self.common
                    .passed
                    .store(intercept::signal_bits(&list), Ordering::SeqCst);
                b"OK".to_vec()
            }
            // Signals not listed are not delivered when the bridge
            // decides alone (a signal stop pending at detach), nor when
            // gdb resumes with one.
            Taken::ProgramSignals(list) => {
                self.common
                    .program
                    .store(intercept::signal_bits(&list), Ordering::SeqCst);
                b"OK".to_vec()
            }
            Taken::ProcessInfo(rest) if rest.is_empty() => {
                super::lldb::process_info(self.common.pid())
            }
            Taken::ListThreadsInStopReply(rest) if rest.is_empty() => {
                self.replies.list_threads = true;
                b"OK".to_vec()
            }
            Taken::ThreadSuffix(rest) if rest.is_empty() => {
                self.suffixed = true;
                b"OK".to_vec()
            }
            Taken::ThreadsInfo(rest) if rest.is_empty() => {
                let (pid, _) = self.ids();
                let tids = self.common.threads();
                let last = self.replies.last.as_ref();
                let stop = last.map(|l| super::lldb::ThreadStop {
                    tid: l.tid,
                    signal: stop_signal(&l.body),
                    reason: l.said.as_ref().and_then(|s| s.reason),
                    regs: l.said.as_ref().map_or("", |s| s.regs.as_str()),
                });
                super::threads::escaped(
                    super::lldb::threads_info(pid, &tids, stop.as_ref()).as_bytes(),
                )
            }
            // The last stop's reply for its thread; no reason for another
            // (all-stop: it was stopped for that one).
            Taken::ThreadStopInfo(tid) => {
                let tid = std::str::from_utf8(&tid)
                    .ok()
                    .and_then(|t| u32::from_str_radix(t, 16).ok());
                match (tid, &self.replies.last) {
                    (None, _) => b"E01".to_vec(),
                    (Some(t), Some(l)) if l.tid == t => l.body.clone(),
                    (Some(t), _) => {
                        let (_, with) = self.ids();
                        format!("T00thread:{};", rewrite::format_id(with, t)).into_bytes()
                    }
                }
            }
            // Passed on; lldb is answered `X09`, as by lldb-server.
            Taken::Kill(_) => {
                self.replies.kill_pending = self.replies.lldb;
                return Some(std::mem::take(&mut self.pass.raw));
            }
            // `;thread:TID;` at the end: gdbstub reads the thread from an
            // `Hg` (whose reply is dropped) and the packet without it.
            Taken::Registers(letter, rest) => {
                if matches!(letter, b'G' | b'P') {
                    // The last stop's registers are no more (lldb's
                    // inferior calls write them): later answers leave
                    // them out, and lldb reads them.
                    if let Some(l) = &mut self.replies.last {
                        l.forget_registers();
                    }
                }
                const SUFFIX: &[u8] = b";thread:";
                let at = rest.windows(SUFFIX.len()).position(|w| w == SUFFIX);
                let raw = std::mem::take(&mut self.pass.raw);
                let Some(at) = at.filter(|_| self.suffixed) else {
                    return Some(raw);
                };
                let id = rest[at + SUFFIX.len()..]
                    .strip_suffix(b";")
                    .unwrap_or(&rest[at + SUFFIX.len()..]);
                let mut hg = b"Hg".to_vec();
                hg.extend_from_slice(id);
                let mut plain = vec![letter];
                plain.extend_from_slice(&rest[..at]);
                self.swallow.count += 1;
                let mut both = packet(&hg);
                both.extend(packet(&plain));
                return Some(both);
            }
            // Not the packet its head looked like: gdbstub's to answer.
            Taken::ProcessInfo(_)
            | Taken::ListThreadsInStopReply(_)
            | Taken::ThreadSuffix(_)
            | Taken::ThreadsInfo(_) => return Some(std::mem::take(&mut self.pass.raw)),
            Taken::MemoryRegionInfo(addr) => {
                let pid = self.common.pid();
                super::regions::region_info(pid, &addr).into_bytes()
            }
            Taken::Threads(spec) => {
                // Made at the first window and kept for the rest (gdb reads
                // it in pieces).
                if spec.starts_with(b"0,") || self.threads_doc.is_none() {
                    let pid = self.common.pid();
                    let tids = self.common.threads();
                    let multi = self.handshake.offered(b"multiprocess+");
                    self.threads_doc = Some(super::threads::document(pid, &tids, multi));
                }
                let doc = self.threads_doc.as_deref().unwrap_or_default();
                super::threads::window(doc.as_bytes(), &spec)
            }
        };
        self.reply_now(&body);
        None
    }

    /// Answer the debugger's packet with `body` now (its ack first, unless
    /// acks are off).
    fn reply_now(&mut self, body: &[u8]) {
        let ack: &[u8] = if self.no_ack() { b"" } else { b"+" };
        self.write_now(&[ack, &packet(body)].concat());
    }

    /// The debugger and the stub send no acks (`QStartNoAckMode`).
    fn no_ack(&self) -> bool {
        self.handshake
            .packets
            .iter()
            .any(|p| p.starts_with(b"$QStartNoAckMode#"))
    }

    /// Write `bytes` to the debugger now, after what the stub wrote
    /// before (a broken connection shows at the next read).
    fn write_now(&mut self, bytes: &[u8]) {
        let _ = self.out.write_all(bytes).and_then(|()| self.out.flush());
    }

    /// Give the next session's stub the debugger's handshake again
    /// (`qSupported`, `QStartNoAckMode`, `!`, as first sent); its replies
    /// to it are not sent.
    pub fn replay_handshake(&mut self) {
        let packets = &self.handshake.packets;
        self.swallow = Swallow::replies(packets.len());
        for p in packets.iter().rev() {
            for b in p.iter().rev() {
                self.bytes.push_front(*b);
            }
        }
    }

    /// Write the stub's bytes, less those of replies being dropped, and
    /// with the replies changed that the link changes ([`Replies`]).
    fn send(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // gdbstub writes a reply a byte at a time: nothing per byte but
        // the state machines (lldb is looked for only while the qSupported
        // reply is still to come).
        let lldb = self.replies.advertising() && self.handshake.is_lldb();
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        if self.swallow.count == 0 {
            self.replies.feed_all(buf, lldb, &mut out);
        } else {
            for &b in buf {
                if !self.swallow.drops(b) {
                    self.replies.feed(b, lldb, &mut out);
                }
            }
        }
        let r = self.out.write_all(&out);
        self.scratch = out;
        r
    }

    fn take(&mut self, i: Input) {
        match i {
            Input::Bytes(b) => {
                let no_ack = self.no_ack();
                let mut checked = Vec::with_capacity(b.len());
                for x in b {
                    match self.checksums.feed(x, no_ack, &mut checked) {
                        None => {}
                        Some(Refusal::Nak) => self.write_now(b"-"),
                        Some(Refusal::TooLong) => self.reply_now(b"E01"),
                    }
                }
                let mut on = Vec::with_capacity(checked.len());
                for x in checked {
                    self.handshake.feed(x);
                    self.general.feed(x);
                    if let Some(taken) = self.pass.feed(x, &mut on) {
                        if let Some(instead) = self.answer(taken) {
                            on.extend(instead);
                        }
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

    /// Take what the inbox holds, without waiting: whether anything was.
    fn drain(&mut self) -> bool {
        let mut any = false;
        loop {
            match self.rx.try_recv() {
                Ok(i) => {
                    self.take(i);
                    any = true;
                }
                Err(mpsc::error::TryRecvError::Empty) => return any,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    // Every sender gone (the bridge keeps one while it
                    // runs): with no debugger stream of its own, the end.
                    if self.closed.is_none() && self.input.is_none() {
                        self.closed = Some("the bridge's inputs are gone".into());
                    }
                    return any;
                }
            }
        }
    }

    /// Read what the debugger sent (`poll` said there is something, or
    /// its end).
    fn read_debugger(&mut self, fd: &OwnedFd) {
        let mut buf = [0u8; 16 * 1024];
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => {
                self.input = None;
                self.take(Input::DebuggerGone);
            }
            Ok(n) => self.take(Input::Bytes(buf[..n].to_vec())),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => {
                self.input = None;
                self.take(Input::DebuggerGone);
            }
        }
    }

    /// Wait for the next input (`wait`), or take what is there now.
    fn poll_inputs(&mut self, wait: bool) {
        if self.drain() && wait {
            return;
        }
        if wait && self.input.is_some() {
            let start = std::time::Instant::now();
            let hot = self.last_wait <= crate::spin::HOT;
            if !(hot && crate::spin::look(|| self.has_input())) {
                self.wait_inputs(true);
            }
            self.last_wait = start.elapsed();
            return;
        }
        self.wait_inputs(wait);
    }

    /// Whether an input is there now (taken from the descriptors).
    fn has_input(&mut self) -> bool {
        self.wait_inputs(false);
        !self.bytes.is_empty() || !self.reports.is_empty() || self.closed.is_some()
    }

    /// Wait for the next input on the descriptors (`wait`), or take what
    /// is there now.
    fn wait_inputs(&mut self, wait: bool) {
        let Some(fd) = self.input.clone() else {
            if wait {
                match self.rx.blocking_recv() {
                    Some(i) => self.take(i),
                    None => self.closed = Some("the bridge's inputs are gone".into()),
                }
            }
            return;
        };
        loop {
            let (debugger, woken) = {
                let mut fds = [
                    PollFd::new(fd.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
                ];
                let timeout = if wait {
                    PollTimeout::NONE
                } else {
                    PollTimeout::ZERO
                };
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        self.closed = Some(format!("waiting for the debugger: {e}"));
                        return;
                    }
                }
                let ready = |p: &PollFd<'_>| !p.revents().unwrap_or(PollFlags::empty()).is_empty();
                (ready(&fds[0]), ready(&fds[1]))
            };
            if woken {
                let _ = self.wake.read();
            }
            if debugger {
                self.read_debugger(&fd);
            }
            let reports = self.drain();
            if !wait || debugger || reports {
                return;
            }
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
            self.poll_inputs(true);
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
            self.poll_inputs(true);
        }
    }
}

/// The link, shared: gdbstub owns its connection and drops it when a
/// session ends (the program exited, the debugger detached), and with
/// `--multi` the same debugger's next session goes on over the same link.
/// One user at a time: the stub, then the next.
///
/// gdbstub writes a reply a byte at a time (`Connection::write`, for
/// each hex digit of an `m` reply and each byte of a `vFile:pread`'s
/// data). Those bytes wait in this handle's own buffer, with no lock
/// taken, until the stub flushes (at the end of each reply) or the
/// handle is used to read or locked: the link's state machines then see
/// them as one slice. A 16 KiB `vFile:pread` reply took 0.8 ms as 16,000
/// locked one-byte writes.
pub struct Shared {
    link: Arc<Mutex<Link>>,
    /// The stub's bytes not given to the link yet.
    pending: Vec<u8>,
}

impl Clone for Shared {
    /// Another handle on the same link (with nothing of this one's
    /// pending).
    fn clone(&self) -> Shared {
        Shared {
            link: Arc::clone(&self.link),
            pending: Vec::new(),
        }
    }
}

/// Past this many pending bytes, a write goes to the link at once.
const PENDING_MAX: usize = 64 * 1024;

impl Shared {
    pub fn new(link: Link) -> Shared {
        Shared {
            link: Arc::new(Mutex::new(link)),
            pending: Vec::new(),
        }
    }

    /// The link (a panic elsewhere while it was held leaves it usable:
    /// its queues are consistent between calls), with this handle's
    /// pending bytes given to it first, so that nothing written through
    /// the link comes before them. A write error there shows at the next
    /// flush or read (the connection is broken).
    pub fn lock(&mut self) -> MutexGuard<'_, Link> {
        self.give().0
    }

    /// The link locked, this handle's pending bytes given to it, and how
    /// that went.
    fn give(&mut self) -> (MutexGuard<'_, Link>, std::io::Result<()>) {
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        let sent = if self.pending.is_empty() {
            Ok(())
        } else {
            link.send(&self.pending)
        };
        // The buffer is kept for the next reply.
        self.pending.clear();
        (link, sent)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        drop(self.lock());
    }
}

impl Connection for Shared {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        self.pending.push(byte);
        if self.pending.len() >= PENDING_MAX {
            drop(self.lock());
        }
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= PENDING_MAX {
            drop(self.lock());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        let (mut link, sent) = self.give();
        sent.and_then(|()| link.out.flush())
    }
}

impl ConnectionExt for Shared {
    fn read(&mut self) -> Result<u8, Self::Error> {
        self.lock().read_byte()
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        let mut link = self.lock();
        link.poll_inputs(false);
        Ok(link.bytes.front().copied())
    }
}

/// The signal of stop reply `body` (`TNN…`, gdb's number), 0 if none.
fn stop_signal(body: &[u8]) -> u8 {
    body.get(1..3)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| u8::from_str_radix(d, 16).ok())
        .unwrap_or(0)
}

/// Read `r` on a thread of its own into `tx`, until it ends (for a
/// debugger stream with no descriptor to wait on).
pub fn pump(mut r: impl Read + Send + 'static, tx: Inbox) {
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

    pub(crate) fn checksum(body: &str) -> String {
        format!("{:02x}", body.bytes().fold(0u8, |a, b| a.wrapping_add(b)))
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

    /// A packet with a bad checksum never reaches the stub: the
    /// debugger is asked for it again (`-`), and the good one that
    /// follows is read.
    #[test]
    fn a_packet_with_a_bad_checksum_is_asked_for_again() {
        let (tx, rx) = inbox().unwrap();
        let sink = Sink::default();
        let mut link = Shared::new(Link::new(rx, None, Box::new(sink.clone())));
        let good = format!("$m0,4#{}", checksum("m0,4"));
        tx.blocking_send(Input::Bytes(format!("$m0,4#00{good}").into_bytes()))
            .unwrap();
        let mut read = String::new();
        while read.len() < good.len() {
            read.push(link.read().unwrap() as char);
        }
        assert_eq!(read, good);
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"-");
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
        let (tx, rx) = inbox().unwrap();
        let sink = Sink::default();
        let mut link = Shared::new(Link::new(rx, None, Box::new(sink.clone())));
        let pk = |body: &str| format!("${body}#{}", checksum(body));
        let hello = format!(
            "+{}{}+{}{}{}{}",
            pk("qSupported:multiprocess+;swbreak+"),
            pk("vMustReplyEmpty"),
            pk("QStartNoAckMode"),
            pk("!"),
            pk("Hgp0.0"),
            pk("qSupported:again")
        );
        tx.blocking_send(Input::Bytes(hello.as_bytes().to_vec()))
            .unwrap();
        let mut read = String::new();
        while read.len() < hello.len() {
            read.push(link.read().unwrap() as char);
        }
        assert_eq!(read, hello, "the first session reads it as it came");
        // The next session's stub reads the handshake first (each kind
        // once, as first sent), then what the debugger sends next.
        link.lock().replay_handshake();
        tx.blocking_send(Input::Bytes(pk("vRun;70").into_bytes()))
            .unwrap();
        let want = format!(
            "{}{}{}{}",
            pk("qSupported:multiprocess+;swbreak+"),
            pk("QStartNoAckMode"),
            pk("!"),
            pk("vRun;70")
        );
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
}
