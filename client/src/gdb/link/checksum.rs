//! The debugger's packets checked before anything else reads them: a
//! packet whose checksum is wrong is refused with `-` (the debugger sends
//! it again), as gdbserver does, instead of reaching gdbstub, which ends
//! the session at the first one. In no-ack mode there is no `-` to send:
//! the packet is taken as it came (gdbserver does the same), its checksum
//! put right, and the mismatch logged. Bytes between packets other than
//! acks and `^C` are skipped.

use crate::gdb::target::{tracing_debug, tracing_warn};

/// The longest packet kept to be checked: above the packet size the
/// bridge offers (`PacketSize`), so a debugger that keeps to it is never
/// refused. A longer packet is dropped whole and answered `E01`.
pub(super) const CHECKED_MAX: usize = 64 * 1024;

/// Where the debugger's bytes are.
#[derive(Default)]
enum State {
    /// Between packets: acks, `^C`.
    #[default]
    Out,
    /// In a packet's body, after its `$`.
    Body,
    /// Its checksum's digits read so far.
    Sum(u8),
    /// A packet too long to keep: skipped to its checksum's end.
    Skip,
    SkipSum(u8),
}

/// What checking the debugger's bytes asks of the link besides passing
/// the good ones on.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A packet's checksum was wrong: answer `-`.
    Nak,
    /// A packet was too long: answer `$E01#a6`.
    TooLong,
}

#[derive(Default)]
pub(super) struct Checksums {
    state: State,
    /// The packet being read, from its `$`.
    packet: Vec<u8>,
}

impl Checksums {
    /// Take byte `b` of the debugger's: what passes goes to `out` (a
    /// packet only once it is whole and checked). `no_ack`: the debugger
    /// and the stub agreed to send no acks.
    pub(super) fn feed(&mut self, b: u8, no_ack: bool, out: &mut Vec<u8>) -> Option<Refusal> {
        match self.state {
            State::Out if b == b'$' => {
                self.packet.clear();
                self.packet.push(b);
                self.state = State::Body;
            }
            State::Out if matches!(b, b'+' | b'-' | 0x03) => out.push(b),
            // Anything else between packets is noise (gdbstub would end
            // the session at it; gdbserver skips it too).
            State::Out => tracing_debug(&format!("skipped byte {b:#04x} between packets")),
            State::Body if self.packet.len() >= CHECKED_MAX => {
                self.packet.clear();
                self.state = if b == b'#' {
                    State::SkipSum(0)
                } else {
                    State::Skip
                };
            }
            State::Body => {
                self.packet.push(b);
                if b == b'#' {
                    self.state = State::Sum(0);
                }
            }
            State::Sum(n) => {
                self.packet.push(b);
                if n == 0 {
                    self.state = State::Sum(1);
                } else {
                    self.state = State::Out;
                    return self.checked(no_ack, out);
                }
            }
            State::Skip => {
                if b == b'#' {
                    self.state = State::SkipSum(0);
                }
            }
            State::SkipSum(n) => {
                if n == 0 {
                    self.state = State::SkipSum(1);
                } else {
                    self.state = State::Out;
                    tracing_warn(&format!(
                        "the debugger sent a packet over {CHECKED_MAX} bytes: answered E01"
                    ));
                    return Some(Refusal::TooLong);
                }
            }
        }
        None
    }

    /// The whole packet read (`$…#xx`): passed on if its checksum is
    /// right (or put right, in no-ack mode).
    fn checked(&mut self, no_ack: bool, out: &mut Vec<u8>) -> Option<Refusal> {
        let p = &mut self.packet;
        let body = &p[1..p.len() - 3];
        let sum = body.iter().fold(0u8, |a, &c| a.wrapping_add(c));
        let digits = &p[p.len() - 2..];
        let sent = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| u8::from_str_radix(d, 16).ok());
        if sent == Some(sum) {
            out.extend_from_slice(p);
            return None;
        }
        let head = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        if !no_ack {
            tracing_warn(&format!(
                "a packet from the debugger had a bad checksum ({:?}, {sum:02x} expected): \
                 asked for it again (`{head}…`)",
                String::from_utf8_lossy(digits)
            ));
            return Some(Refusal::Nak);
        }
        tracing_warn(&format!(
            "a packet from the debugger had a bad checksum ({:?}, {sum:02x} expected) \
             in no-ack mode: taken as it came (`{head}…`)",
            String::from_utf8_lossy(digits)
        ));
        let n = p.len();
        p[n - 2..].copy_from_slice(format!("{sum:02x}").as_bytes());
        out.extend_from_slice(p);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(c: &mut Checksums, s: &[u8], no_ack: bool) -> (Vec<u8>, Vec<Refusal>) {
        let mut out = Vec::new();
        let mut said = Vec::new();
        for &b in s {
            said.extend(c.feed(b, no_ack, &mut out));
        }
        (out, said)
    }

    #[test]
    fn good_packets_and_acks_pass_bad_ones_are_refused_or_put_right() {
        let mut c = Checksums::default();
        // Good: passed as they came, with the acks and ^C between.
        let good = b"+$qSupported:multiprocess+#c6\x03$m0,4#fd-";
        assert_eq!(through(&mut c, good, false), (good.to_vec(), vec![]));
        // Bad, acks on: dropped and refused with `-`.
        let (out, said) = through(&mut c, b"$m0,4#00$g#67", false);
        assert_eq!(
            (out.as_slice(), said),
            (b"$g#67".as_slice(), vec![Refusal::Nak])
        );
        // Noise between packets is skipped.
        let (out, said) = through(&mut c, b"\x00\xff}*#\r\n$g#67", false);
        assert_eq!((out.as_slice(), said), (b"$g#67".as_slice(), vec![]));
        // Digits that are not hex are a bad checksum too.
        let (out, said) = through(&mut c, b"$g#zz", false);
        assert_eq!((out, said), (vec![], vec![Refusal::Nak]));
        // No-ack mode: taken, its checksum put right.
        let (out, said) = through(&mut c, b"$m0,4#00", true);
        assert_eq!((out.as_slice(), said), (b"$m0,4#fd".as_slice(), vec![]));
    }

    #[test]
    fn a_packet_too_long_is_dropped_whole_and_the_next_read() {
        let mut c = Checksums::default();
        let mut long = b"$X0,0:".to_vec();
        long.resize(CHECKED_MAX + 10, b'a');
        long.extend_from_slice(b"#00$g#67");
        let (out, said) = through(&mut c, &long, false);
        assert_eq!(
            (out.as_slice(), said),
            (b"$g#67".as_slice(), vec![Refusal::TooLong])
        );
    }
}
