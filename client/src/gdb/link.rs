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
        }
    }

    fn take(&mut self, i: Input) {
        match i {
            Input::Bytes(b) => {
                for x in b {
                    self.read_watch.feed(x, &mut self.bytes);
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

impl Connection for Link {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        self.out.write_all(&[byte])
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.out.flush()
    }
}

impl ConnectionExt for Link {
    fn read(&mut self) -> Result<u8, Self::Error> {
        self.read_byte()
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        while let Ok(i) = self.rx.try_recv() {
            self.take(i);
        }
        Ok(self.bytes.front().copied())
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
}
