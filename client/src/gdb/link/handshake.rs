//! The debugger's handshake, kept for the next session on the link
//! ([`Handshake`]), and that session's replies to it dropped
//! ([`Swallow`]).

/// The packets that set a connection up (`qSupported`, `QStartNoAckMode`,
/// `!`), as the debugger sent them. gdbstub ends its session when the
/// process exits or the debugger detaches, and a new stub knows nothing of
/// what was agreed: with `--multi` it is given the same packets again
/// ([`Link::replay_handshake`]), and its replies are dropped, so it speaks
/// as the first did (multiprocess thread ids, no acks) to a debugger that
/// never knew.
#[derive(Default)]
pub(super) struct Handshake {
    /// Packets read so far (the handshake is among the first
    /// [`HANDSHAKE_WITHIN`]; after those nothing more is looked at).
    seen: u8,
    /// The packet being read (bounded: a handshake packet is small).
    partial: Option<Vec<u8>>,
    /// Its checksum digits still to come, once `#` is read.
    sum_left: u8,
    pub(super) packets: Vec<Vec<u8>>,
}

/// Longest handshake packet kept (gdb's `qSupported` is ~200 bytes).
pub(super) const HANDSHAKE_MAX: usize = 4096;

/// The first packets of the debugger's, among which its handshake is.
pub(super) const HANDSHAKE_WITHIN: u8 = 16;

impl Handshake {
    pub(super) fn feed(&mut self, b: u8) {
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
    pub(super) fn is_lldb(&self) -> bool {
        const LLDB: &[u8] = b"xmlRegisters=i386,arm";
        self.packets
            .iter()
            .any(|p| p.starts_with(b"$qSupported") && p.windows(LLDB.len()).any(|w| w == LLDB))
    }

    /// Whether the debugger's `qSupported` offered `feature` (`name+`).
    pub(super) fn offered(&self, feature: &[u8]) -> bool {
        self.packets.iter().any(|p| {
            p.starts_with(b"$qSupported")
                && p[..p.len().saturating_sub(3)]
                    .split(|b| *b == b';' || *b == b':')
                    .any(|f| f == feature)
        })
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

/// Dropping the stub's replies to a replayed handshake: acks (`+`)
/// between them, and `count` packets.
#[derive(Default)]
pub(super) struct Swallow {
    pub(super) count: usize,
    in_packet: bool,
    sum_left: u8,
}

impl Swallow {
    /// Drop the replies to `count` packets.
    pub(super) fn replies(count: usize) -> Swallow {
        Swallow {
            count,
            ..Default::default()
        }
    }

    /// Whether byte `b` of the stub's output is dropped.
    pub(super) fn drops(&mut self, b: u8) -> bool {
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
