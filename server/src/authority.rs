//! `:authority` for clients on a Unix socket.
//!
//! gRPC clients built on gRPC core (Python grpcio ≥ 1.57, C++, Ruby) send
//! the socket's path, percent-encoded (`run%2Futraced%2Futraced.sock`), as
//! the HTTP/2 `:authority` of every call on a `unix:` channel; grpc-java
//! sends the raw path. Neither is a valid authority, and the server's
//! HTTP/2 stack (h2) refuses such a request with `RST_STREAM(PROTOCOL_ERROR)`
//! (the client sees `INTERNAL: Stream removed`). On a Unix socket the
//! authority means nothing, so this layer, between the socket and h2,
//! replaces an authority that is a filesystem path (raw or percent-encoded)
//! with `localhost`. Anything else reaches h2 as it came, malformed or not.
//!
//! How: the client's byte stream is parsed frame by frame (RFC 9113 §4).
//! Header blocks (HEADERS and its CONTINUATIONs) are decoded with the
//! client's HPACK state mirrored here (`loona-hpack`). If the connection's
//! first header block carries a valid authority (tonic, grpc-go), that
//! block and everything after it pass through untouched and parsing stops:
//! such a connection costs one header block's decoding. If it carries a
//! path, this connection's header blocks are all decoded and encoded again
//! from then on, with literals that never index (RFC 7541 §6.2.2), so h2's
//! dynamic table stays empty and never disagrees with the client's; every
//! other frame passes through as it came.
//!
//! Bounds: a header block (collected across CONTINUATIONs) and what it
//! decodes to are at most [`MAX_BLOCK`] bytes; past that the connection is
//! closed (h2's own limit on a header list is smaller, so no request it
//! would accept is lost). Input that does not parse before anything was
//! rewritten is handed to h2 as it is, to refuse with its own error.

use std::borrow::Cow;

use tracing::debug;

/// The HTTP/2 client connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame types and flags used here (RFC 9113 §6).
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame payload written: the size every HTTP/2 peer must accept
/// (h2's default `SETTINGS_MAX_FRAME_SIZE`).
const MAX_FRAME: usize = 16_384;
/// Largest header block collected, and largest header list decoded from
/// one (name and value bytes plus 32 per field, as RFC 7541 counts them).
pub const MAX_BLOCK: usize = 64 * 1024;
/// The HPACK dynamic table the client may use: h2 advertises no
/// `SETTINGS_HEADER_TABLE_SIZE`, so the protocol's default.
const TABLE_SIZE: usize = 4096;
/// What a path authority becomes.
const LOCALHOST: &[u8] = b"localhost";

/// Why a connection's stream could not be carried on.
#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error("HTTP/2 header block over {MAX_BLOCK} bytes")]
    TooLarge,
    #[error("HTTP/2 frames out of order: {0}")]
    Protocol(&'static str),
    #[error("HPACK header block does not decode: {0}")]
    Hpack(String),
}

impl From<FixError> for std::io::Error {
    fn from(e: FixError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Before the first header block is decided.
    Probe,
    /// The client's authority is a path: every header block is encoded
    /// again.
    Rewrite,
    /// Nothing to do: bytes pass as they come.
    Raw,
}

#[derive(Debug)]
enum State {
    /// Reading the preface (bytes seen so far).
    Preface(usize),
    /// Reading a frame header.
    Header,
    /// Passing `left` payload bytes of a frame through.
    Pass(usize),
    /// Collecting a HEADERS or CONTINUATION payload of `len` bytes.
    Collect(usize),
}

/// The first HEADERS frame of a block being collected.
#[derive(Debug)]
struct Open {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    /// The frames as they came (passed on as they are if the block needs
    /// nothing).
    raw: Vec<u8>,
}

/// The client-to-server half of one connection, with path authorities
/// replaced. Feed it what the socket gives ([`Self::feed`]), hand on what
/// [`Self::output`] holds; once [`Self::is_raw`], bytes need not go
/// through it at all.
pub struct AuthorityFix {
    mode: Mode,
    state: State,
    hdr: [u8; 9],
    hdr_len: usize,
    payload: Vec<u8>,
    /// The header block collected so far, and its first frame.
    block: Vec<u8>,
    open: Option<Open>,
    decoder: loona_hpack::Decoder<'static>,
    out: Vec<u8>,
    /// How many header blocks had their authority replaced.
    pub rewritten: u64,
}

impl Default for AuthorityFix {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthorityFix {
    pub fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        AuthorityFix {
            mode: Mode::Probe,
            state: State::Preface(0),
            hdr: [0; 9],
            hdr_len: 0,
            payload: Vec::new(),
            block: Vec::new(),
            open: None,
            decoder,
            out: Vec::new(),
            rewritten: 0,
        }
    }

    /// Nothing more to parse: what the socket gives can go to h2 directly
    /// (once [`Self::output`] is drained).
    pub fn is_raw(&self) -> bool {
        self.mode == Mode::Raw
    }

    /// Bytes ready for h2.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Take `input` from the client.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), FixError> {
        while !input.is_empty() {
            if self.mode == Mode::Raw {
                self.out.extend_from_slice(input);
                return Ok(());
            }
            match self.state {
                State::Preface(seen) => {
                    let n = input.len().min(PREFACE.len() - seen);
                    let (now, rest) = input.split_at(n);
                    self.out.extend_from_slice(now);
                    input = rest;
                    if now != &PREFACE[seen..seen + n] {
                        // Not HTTP/2 with prior knowledge: h2 will say so.
                        self.mode = Mode::Raw;
                    } else if seen + n == PREFACE.len() {
                        self.state = State::Header;
                    } else {
                        self.state = State::Preface(seen + n);
                    }
                }
                State::Header => {
                    let n = input.len().min(9 - self.hdr_len);
                    self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&input[..n]);
                    self.hdr_len += n;
                    input = &input[n..];
                    if self.hdr_len == 9 {
                        self.hdr_len = 0;
                        self.frame_header()?;
                    }
                }
                State::Pass(left) => {
                    let n = input.len().min(left);
                    self.out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if left == n {
                        State::Header
                    } else {
                        State::Pass(left - n)
                    };
                }
                State::Collect(len) => {
                    let n = input.len().min(len - self.payload.len());
                    self.payload.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.payload.len() == len {
                        self.state = State::Header;
                        self.frame_payload()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn frame_header(&mut self) -> Result<(), FixError> {
        let h = self.hdr;
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let kind = h[3];
        let in_block = self.open.is_some();
        if kind == HEADERS || kind == CONTINUATION {
            if (kind == HEADERS) == in_block {
                return self.give_up(FixError::Protocol(
                    "CONTINUATION outside a header block, or HEADERS inside one",
                ));
            }
            if len > MAX_BLOCK {
                return self.give_up(FixError::TooLarge);
            }
            self.payload.clear();
            self.state = State::Collect(len);
            if len == 0 {
                self.state = State::Header;
                self.frame_payload()?;
            }
            return Ok(());
        }
        if in_block {
            return self.give_up(FixError::Protocol(
                "a frame other than CONTINUATION inside a header block",
            ));
        }
        self.out.extend_from_slice(&h);
        self.state = if len == 0 {
            State::Header
        } else {
            State::Pass(len)
        };
        Ok(())
    }

    /// A HEADERS or CONTINUATION payload is in `self.payload`.
    fn frame_payload(&mut self) -> Result<(), FixError> {
        let h = self.hdr;
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let p = std::mem::take(&mut self.payload);
        if kind == HEADERS {
            let mut frag: &[u8] = &p;
            let mut pad = 0;
            if flags & PADDED != 0 {
                let Some((&n, rest)) = frag.split_first() else {
                    return self
                        .give_up_with(FixError::Protocol("PADDED HEADERS without a length"), &p);
                };
                pad = usize::from(n);
                frag = rest;
            }
            let mut priority = None;
            if flags & PRIORITY != 0 {
                if frag.len() < 5 {
                    return self
                        .give_up_with(FixError::Protocol("HEADERS too short for PRIORITY"), &p);
                }
                let mut pr = [0u8; 5];
                pr.copy_from_slice(&frag[..5]);
                priority = Some(pr);
                frag = &frag[5..];
            }
            if pad > frag.len() {
                return self.give_up_with(FixError::Protocol("HEADERS padding past its end"), &p);
            }
            frag = &frag[..frag.len() - pad];
            self.block.clear();
            self.block.extend_from_slice(frag);
            let mut raw = Vec::with_capacity(9 + p.len());
            raw.extend_from_slice(&h);
            raw.extend_from_slice(&p);
            self.open = Some(Open {
                stream,
                end_stream: flags & END_STREAM != 0,
                priority,
                raw,
            });
        } else {
            let Some(open) = self.open.as_mut() else {
                return Err(FixError::Protocol("CONTINUATION outside a header block"));
            };
            if open.stream != stream {
                return self.give_up_with(FixError::Protocol("CONTINUATION of another stream"), &p);
            }
            if self.block.len() + p.len() > MAX_BLOCK {
                return self.give_up_with(FixError::TooLarge, &p);
            }
            open.raw.extend_from_slice(&h);
            open.raw.extend_from_slice(&p);
            self.block.extend_from_slice(&p);
        }
        if flags & END_HEADERS != 0 {
            self.end_block()?;
        }
        Ok(())
    }

    /// A whole header block is in: decode it, and pass it on as it came or
    /// encoded again.
    fn end_block(&mut self) -> Result<(), FixError> {
        let open = self.open.take().expect("a block is open");
        let block = std::mem::take(&mut self.block);
        if self.mode == Mode::Probe && quick_verdict(&block) == Some(false) {
            // No path authority, seen without decoding the block: it and
            // everything after go to h2 as they came.
            self.out.extend_from_slice(&open.raw);
            self.mode = Mode::Raw;
            return Ok(());
        }
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut size = 0usize;
        let mut path_authority = false;
        let decoded = self
            .decoder
            .decode_with_cb(&block, |name: Cow<[u8]>, value: Cow<[u8]>| {
                size = size.saturating_add(name.len() + value.len() + 32);
                if size > MAX_BLOCK {
                    return;
                }
                let mut value = value.into_owned();
                if &*name == b":authority" && is_path(&value) {
                    path_authority = true;
                    value = LOCALHOST.to_vec();
                }
                fields.push((name.into_owned(), value));
            });
        if let Err(e) = decoded {
            let e = FixError::Hpack(format!("{e:?}"));
            if self.mode == Mode::Probe {
                // Let h2 refuse it with its own error.
                debug!(error = %e, "a header block that does not decode: passed on as it is");
                self.out.extend_from_slice(&open.raw);
                self.mode = Mode::Raw;
                return Ok(());
            }
            return Err(e);
        }
        if size > MAX_BLOCK {
            if self.mode == Mode::Probe {
                // h2 refuses a header list this large itself.
                self.out.extend_from_slice(&open.raw);
                self.mode = Mode::Raw;
                return Ok(());
            }
            return Err(FixError::TooLarge);
        }
        if self.mode == Mode::Probe {
            if !path_authority {
                self.out.extend_from_slice(&open.raw);
                self.mode = Mode::Raw;
                return Ok(());
            }
            debug!("the client sends a path as :authority: its header blocks are rewritten");
            self.mode = Mode::Rewrite;
        }
        if path_authority {
            self.rewritten += 1;
        }
        let mut enc = Vec::with_capacity(block.len() * 2);
        for (n, v) in &fields {
            literal_never_indexed(&mut enc, n, v);
        }
        emit_block(&mut self.out, &open, &enc);
        Ok(())
    }

    /// Input that does not parse: before anything was rewritten, h2 gets it
    /// as it came (and refuses it itself); after, the connection ends.
    fn give_up(&mut self, e: FixError) -> Result<(), FixError> {
        self.give_up_with(e, &[])
    }

    fn give_up_with(&mut self, e: FixError, payload: &[u8]) -> Result<(), FixError> {
        if self.mode != Mode::Probe {
            return Err(e);
        }
        debug!(error = %e, "HTTP/2 input passed on as it is");
        if let Some(open) = self.open.take() {
            self.out.extend_from_slice(&open.raw);
        }
        self.out.extend_from_slice(&self.hdr);
        self.out.extend_from_slice(payload);
        self.mode = Mode::Raw;
        Ok(())
    }
}

/// Whether a connection's first header block carries a path as
/// `:authority`, told from the block's field representations (RFC 7541
/// §6), decoding only the names given as literals and the authority's
/// value, with a Huffman table built once per thread: `Some(false)` for
/// tonic's and grpc-go's blocks. `None` whenever it cannot tell (a
/// reference to the dynamic table, a string that is cut short or not
/// valid Huffman code): the block is then decoded whole, as before.
///
/// (loona-hpack builds its Huffman decoding table anew for every string
/// it decodes, which made the whole decode cost 138 µs per connection in
/// a release build, most of a connection's time in this layer.)
fn quick_verdict(block: &[u8]) -> Option<bool> {
    let mut i = 0;
    let mut path = false;
    while i < block.len() {
        let b = block[i];
        let name_index = if b & 0x80 != 0 {
            // Indexed field: `:authority` from the static table has an
            // empty value; a dynamic entry could be anything.
            let idx = hpack_int(block, &mut i, 7)?;
            if idx == 0 || idx > STATIC_ENTRIES {
                return None;
            }
            continue;
        } else if b & 0x40 != 0 {
            // Literal with incremental indexing.
            hpack_int(block, &mut i, 6)?
        } else if b & 0x20 != 0 {
            // A dynamic table size update.
            hpack_int(block, &mut i, 5)?;
            continue;
        } else {
            // Literal without indexing, or never indexed.
            hpack_int(block, &mut i, 4)?
        };
        let is_authority = match name_index {
            0 => {
                let (huffman, name) = hpack_string(block, &mut i)?;
                if huffman {
                    huffman_decode(name)? == b":authority"
                } else {
                    name == b":authority"
                }
            }
            1 => true,
            n if n <= STATIC_ENTRIES => false,
            _ => return None,
        };
        let (huffman, value) = hpack_string(block, &mut i)?;
        if is_authority {
            let value = if huffman {
                huffman_decode(value)?
            } else {
                value.to_vec()
            };
            path |= is_path(&value);
        }
    }
    Some(path)
}

/// Entries in HPACK's static table (RFC 7541 Appendix A).
const STATIC_ENTRIES: u64 = 61;

thread_local! {
    /// One Huffman decoder per thread, its table built once.
    static HUFFMAN: std::cell::RefCell<loona_hpack::huffman::HuffmanDecoder> =
        std::cell::RefCell::new(loona_hpack::huffman::HuffmanDecoder::new());
}

/// A Huffman-coded string (RFC 7541 §5.2, Appendix B) decoded with this
/// thread's decoder; `None` if it is not valid.
fn huffman_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    HUFFMAN.with(|h| h.borrow_mut().decode(bytes).ok())
}

/// An HPACK integer with an `n`-bit prefix at `*i` (RFC 7541 §5.1);
/// `None` if it is cut short or larger than 2^32.
fn hpack_int(block: &[u8], i: &mut usize, n: u32) -> Option<u64> {
    let max = (1u64 << n) - 1;
    let mut v = u64::from(*block.get(*i)?) & max;
    *i += 1;
    if v < max {
        return Some(v);
    }
    let mut shift = 0;
    loop {
        let b = *block.get(*i)?;
        *i += 1;
        v += u64::from(b & 0x7f) << shift;
        if v > u64::from(u32::MAX) {
            return None;
        }
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 28 {
            // Five continuation bytes already: past 2^32 however it goes
            // on (zeros included, which would never end otherwise).
            return None;
        }
    }
}

/// An HPACK string literal at `*i` (§5.2): whether it is Huffman-coded,
/// and its bytes as sent.
fn hpack_string<'a>(block: &'a [u8], i: &mut usize) -> Option<(bool, &'a [u8])> {
    let huffman = *block.get(*i)? & 0x80 != 0;
    let len = usize::try_from(hpack_int(block, i, 7)?).ok()?;
    let bytes = block.get(*i..i.checked_add(len)?)?;
    *i += len;
    Some((huffman, bytes))
}

/// Whether an authority is a filesystem path: raw (`/run/x.sock`) or
/// percent-encoded (`run%2Fx.sock`, as gRPC core sends it). Control
/// characters never are.
fn is_path(v: &[u8]) -> bool {
    if v.is_empty() || v.iter().any(|b| b.is_ascii_control()) {
        return false;
    }
    v[0] == b'/'
        || v.windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'2' && w[2] | 0x20 == b'f')
}

/// One field as a literal that is never indexed, with a literal name
/// (RFC 7541 §6.2.3): no dynamic table on either side.
fn literal_never_indexed(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x10);
    string(out, name);
    string(out, value);
}

/// A string literal, not Huffman-coded (RFC 7541 §5.2).
fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, s.len(), 7, 0);
    out.extend_from_slice(s);
}

/// An integer with an `n`-bit prefix (RFC 7541 §5.1); `first` holds the
/// bits above the prefix.
fn integer(out: &mut Vec<u8>, mut v: usize, n: u8, first: u8) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block as HEADERS (with the original's END_STREAM and
/// priority) and as many CONTINUATIONs as it needs.
fn emit_block(out: &mut Vec<u8>, open: &Open, block: &[u8]) {
    let pr = open.priority.as_ref().map_or(0, |_| 5);
    let first = block.len().min(MAX_FRAME - pr);
    let (head, mut rest) = block.split_at(first);
    let mut flags = 0;
    if open.end_stream {
        flags |= END_STREAM;
    }
    if open.priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(out, pr + head.len(), HEADERS, flags, open.stream);
    if let Some(p) = &open.priority {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(head);
    while !rest.is_empty() {
        let n = rest.len().min(MAX_FRAME);
        let (chunk, r) = rest.split_at(n);
        rest = r;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        frame_header(out, n, CONTINUATION, flags, open.stream);
        out.extend_from_slice(chunk);
    }
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What grpcio 1.85 sent on `unix:///tmp/hp/x.sock` for a call to
    /// `/x.Y/Z` (captured from a socket: preface, SETTINGS, WINDOW_UPDATE,
    /// SETTINGS ack, HEADERS).
    const GRPCIO: &str = concat!(
        "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a0000240400000000000002000000000003000000",
        "00000400400000000500400000000600004000fe0300000001000004080000000000003f0001000000040100",
        "0000000000d901040000000140053a70617468062f782e592f5a400a3a617574686f7269747911746d702532",
        "466870253246782e736f636b8386400c636f6e74656e742d74797065106170706c69636174696f6e2f677270",
        "634002746508747261696c6572734014677270632d6163636570742d656e636f64696e67176964656e746974",
        "792c206465666c6174652c20677a6970400c677270632d74696d656f757405313530306d400a757365722d61",
        "67656e7430677270632d707974686f6e2f312e38352e3320677270632d632f35382e302e3020286c696e7578",
        "3b2063687474703229",
    );

    /// What a tonic 0.14 client sent for its first call (captured from a
    /// socket): preface, SETTINGS, WINDOW_UPDATE, HEADERS with Huffman-coded
    /// values (`:authority` `utraced.invalid`).
    const TONIC: &str = concat!(
        "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a0000180400000000000002000000000004000400",
        "00000500100000000600004000000004080000000000003f00010000480104000000018386418bb5360c8591",
        "7355dc741a4f049462d4d832157ee15f7d83216c6339909de347547f4082497f864d833505b11f5f8b1d75d0",
        "620d263d4c4d65647a8949ea311802e16977ff0000050000000000010000000000000000000100000001",
    );

    /// The header block of a capture (its first HEADERS frame's payload).
    fn first_block(capture: &[u8]) -> Vec<u8> {
        let mut i = 24;
        loop {
            let len = (usize::from(capture[i]) << 16)
                | (usize::from(capture[i + 1]) << 8)
                | usize::from(capture[i + 2]);
            if capture[i + 3] == HEADERS {
                return capture[i + 9..i + 9 + len].to_vec();
            }
            i += 9 + len;
        }
    }

    #[test]
    fn the_quick_verdict_agrees_with_a_whole_decode() {
        // tonic: Huffman-coded values, a host name: no path, decided
        // without decoding the block.
        let tonic = hex(TONIC);
        assert_eq!(quick_verdict(&first_block(&tonic)), Some(false));
        let mut f = AuthorityFix::new();
        f.feed(&tonic).unwrap();
        assert!(f.is_raw() && f.rewritten == 0);
        assert_eq!(
            f.output().as_slice(),
            tonic.as_slice(),
            "passed on as it came"
        );
        // grpcio: a percent-encoded path, raw literal.
        assert_eq!(quick_verdict(&first_block(&hex(GRPCIO))), Some(true));
        // Fields the walk does not follow: a dynamic-table reference, a
        // name that is not valid Huffman code (EOS), a value that is not
        // either, a cut-short string, an oversized integer.
        for block in [
            &[0xbe][..],
            &[0x40, 0x81, 0xff, 0x01, b'a'][..],
            &[0x41, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x41, 0x05, b'a'][..],
            &[0x41, 0x7f, 0xff, 0xff, 0xff, 0xff, 0x7f][..],
            &[
                0x41, 0x7f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
            ][..],
        ] {
            assert_eq!(quick_verdict(block), None, "{block:x?}");
        }
        // Raw literals of every kind, path or not, by index or by name.
        let field = |first: u8, name: Option<&[u8]>, value: &[u8]| {
            let mut b = vec![first];
            if let Some(n) = name {
                string(&mut b, n);
            }
            string(&mut b, value);
            b
        };
        for (block, path) in [
            (field(0x41, None, b"localhost:50051"), false),
            (field(0x01, None, b"/run/x.sock"), true),
            (field(0x11, None, b"run%2fx.sock"), true),
            (field(0x40, Some(b":authority"), b"/x"), true),
            (field(0x00, Some(b"x-other"), b"/not/an/authority"), false),
            (
                [&[0x81, 0x20][..], &field(0x41, None, b"h")].concat(),
                false,
            ),
        ] {
            assert_eq!(quick_verdict(&block), Some(path), "{block:x?}");
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Frames of `bytes` after the preface: (type, flags, stream, payload).
    fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut b = &bytes[PREFACE.len()..];
        let mut v = Vec::new();
        while b.len() >= 9 {
            let len = usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
            let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
            if b.len() < 9 + len {
                break;
            }
            v.push((b[3], b[4], stream, b[9..9 + len].to_vec()));
            b = &b[9 + len..];
        }
        v
    }

    fn decode_all(blocks: &[Vec<u8>]) -> Vec<Vec<(String, String)>> {
        let mut d = loona_hpack::Decoder::new();
        blocks
            .iter()
            .map(|b| {
                d.decode(b)
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                    .collect()
            })
            .collect()
    }

    /// A client connection: preface, SETTINGS, then `blocks` as HEADERS
    /// frames on streams 1, 3, … (each followed by a DATA frame).
    fn client(blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut v = PREFACE.to_vec();
        frame_header(&mut v, 0, 0x4, 0, 0);
        for (i, b) in blocks.iter().enumerate() {
            let s = 1 + 2 * i as u32;
            frame_header(&mut v, b.len(), HEADERS, END_HEADERS, s);
            v.extend_from_slice(b);
            frame_header(&mut v, 5, 0x0, END_STREAM, s);
            v.extend_from_slice(&[0, 0, 0, 0, 0]);
        }
        v
    }

    fn run(input: &[u8], chunk: usize) -> (Vec<u8>, AuthorityFix) {
        let mut f = AuthorityFix::new();
        for c in input.chunks(chunk) {
            f.feed(c).unwrap();
        }
        (std::mem::take(f.output()), f)
    }

    fn headers_of(out: &[u8]) -> Vec<Vec<(String, String)>> {
        let blocks: Vec<Vec<u8>> = frames(out)
            .into_iter()
            .filter(|f| f.0 == HEADERS)
            .map(|f| f.3)
            .collect();
        decode_all(&blocks)
    }

    #[test]
    fn grpcio_path_authority_becomes_localhost() {
        let input = hex(GRPCIO);
        let (out, f) = run(&input, 7);
        assert_eq!(f.rewritten, 1);
        let h = headers_of(&out);
        assert_eq!(h.len(), 1);
        let get = |n: &str| h[0].iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get(":authority").as_deref(), Some("localhost"));
        assert_eq!(get(":path").as_deref(), Some("/x.Y/Z"));
        assert_eq!(get("content-type").as_deref(), Some("application/grpc"));
        // The frames before it (SETTINGS, WINDOW_UPDATE) as they came.
        assert_eq!(&out[..PREFACE.len()], PREFACE);
        assert_eq!(frames(&out)[0], frames(&input)[0]);
    }

    #[test]
    fn a_valid_authority_passes_untouched_and_parsing_stops() {
        let mut e = loona_hpack::Encoder::new();
        let b1 = e.encode([
            (&b":authority"[..], &b"localhost:50051"[..]),
            (b":path", b"/a"),
        ]);
        let b2 = e.encode([
            (&b":authority"[..], &b"localhost:50051"[..]),
            (b":path", b"/b"),
        ]);
        let input = client(&[b1, b2]);
        for chunk in [1, 3, 4096] {
            let (out, f) = run(&input, chunk);
            assert_eq!(out, input, "byte for byte");
            assert!(f.is_raw());
            assert_eq!(f.rewritten, 0);
        }
    }

    #[test]
    fn after_a_path_every_block_is_rewritten_and_stays_decodable() {
        // The client indexes its fields: later blocks refer to entries of
        // its dynamic table, which h2's (empty) table must never need.
        let mut e = loona_hpack::Encoder::new();
        let path = b"/run/utraced/utraced.sock";
        let blocks: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                let p = format!("/utrace.v1.Tracer/M{i}");
                e.encode([
                    (&b":authority"[..], &path[..]),
                    (b":path", p.as_bytes()),
                    (b"x-custom", b"same every time"),
                ])
            })
            .collect();
        let input = client(&blocks);
        for chunk in [1, 2, 9, 10, 100, 1 << 20] {
            let (out, f) = run(&input, chunk);
            assert_eq!(f.rewritten, 20, "chunk {chunk}");
            let h = headers_of(&out);
            for (i, fields) in h.iter().enumerate() {
                assert_eq!(fields[0], (":authority".into(), "localhost".into()));
                assert_eq!(fields[1].1, format!("/utrace.v1.Tracer/M{i}"));
                assert_eq!(fields[2].1, "same every time");
            }
            // DATA frames untouched, in their places.
            let kinds: Vec<u8> = frames(&out).iter().map(|f| f.0).collect();
            assert_eq!(kinds.len(), 1 + 2 * 20);
            assert!(kinds[1..].chunks(2).all(|k| k == [HEADERS, 0x0]));
        }
    }

    #[test]
    fn padding_priority_and_continuations() {
        let mut e = loona_hpack::Encoder::new();
        let long = vec![b'v'; 40_000];
        let block = e.encode([
            (&b":authority"[..], &b"tmp%2Fx.sock"[..]),
            (b"x-long", &long[..]),
        ]);
        let mut input = PREFACE.to_vec();
        // HEADERS, PADDED|PRIORITY|END_STREAM, with the first 100 bytes;
        // the rest in CONTINUATIONs of 16,000.
        let (first, rest) = block.split_at(100);
        let mut p = vec![3u8];
        p.extend_from_slice(&[0, 0, 0, 0, 15]);
        p.extend_from_slice(first);
        p.extend_from_slice(&[0, 0, 0]);
        frame_header(
            &mut input,
            p.len(),
            HEADERS,
            PADDED | PRIORITY | END_STREAM,
            1,
        );
        input.extend_from_slice(&p);
        let chunks: Vec<&[u8]> = rest.chunks(16_000).collect();
        for (i, c) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            frame_header(
                &mut input,
                c.len(),
                CONTINUATION,
                if last { END_HEADERS } else { 0 },
                1,
            );
            input.extend_from_slice(c);
        }
        let (out, f) = run(&input, 333);
        assert_eq!(f.rewritten, 1);
        let fr = frames(&out);
        assert_eq!(fr[0].0, HEADERS);
        assert_eq!(
            fr[0].1 & (END_STREAM | PRIORITY | PADDED | END_HEADERS),
            END_STREAM | PRIORITY
        );
        assert_eq!(&fr[0].3[..5], &[0, 0, 0, 0, 15]);
        assert!(fr.iter().all(|f| f.3.len() <= MAX_FRAME));
        assert_eq!(fr.last().unwrap().1 & END_HEADERS, END_HEADERS);
        let mut whole = fr[0].3[5..].to_vec();
        for f in &fr[1..] {
            assert_eq!(f.0, CONTINUATION);
            whole.extend_from_slice(&f.3);
        }
        let h = decode_all(&[whole]);
        assert_eq!(h[0][0].1, "localhost");
        assert_eq!(h[0][1].1.len(), 40_000);
    }

    #[test]
    fn malformed_authorities_stay_malformed() {
        for bad in [&b"exa mple"[..], b"host\x01", b"%2", b""] {
            assert!(!is_path(bad), "{bad:?}");
        }
        for path in [&b"/run/x.sock"[..], b"run%2Fx.sock", b"%2frun%2fx"] {
            assert!(is_path(path), "{path:?}");
        }
    }

    #[test]
    fn a_header_bomb_ends_the_connection() {
        // One large indexed field, then a block that refers to it many
        // times: small on the wire, megabytes decoded.
        let mut e = loona_hpack::Encoder::new();
        let big = vec![b'x'; 3000];
        let b1 = e.encode([(&b":authority"[..], &b"/x.sock"[..]), (b"x-big", &big[..])]);
        let mut b2 = Vec::new();
        for _ in 0..5000 {
            b2.push(0x80 | 62); // indexed: the newest dynamic entry
        }
        let input = client(&[b1, b2]);
        let mut f = AuthorityFix::new();
        let r = f.feed(&input);
        assert!(matches!(r, Err(FixError::TooLarge)), "{r:?}");
    }

    #[test]
    fn garbage_never_panics() {
        // A small deterministic generator: frames with random headers and
        // payloads after a valid preface.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let mut input = PREFACE.to_vec();
            let n = (next() % 600) as usize;
            for _ in 0..n {
                let r = next();
                input.push(match r % 4 {
                    0 => HEADERS,
                    1 => CONTINUATION,
                    _ => r as u8,
                });
                if r % 7 == 0 {
                    input.extend_from_slice(&[0, 0, 9, HEADERS, END_HEADERS, 0, 0, 0, 1]);
                }
            }
            let mut f = AuthorityFix::new();
            for c in input.chunks(1 + (next() % 50) as usize) {
                if f.feed(c).is_err() {
                    break;
                }
            }
        }
    }
}
