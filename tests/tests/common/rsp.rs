//! A frontend speaking the GDB remote protocol itself over TCP, for tests
//! and benches that send packets gdb would not (or time single packets):
//! it acks every reply (no no-ack mode, so a bad checksum is answered
//! `-`). Shared by `tests/gdb_protocol.rs` and `benches/gdb.rs`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Rsp {
    s: TcpStream,
    /// Bytes read and not taken yet.
    pub buf: Vec<u8>,
}

/// A packet body's checksum, two hex digits.
pub fn checksum(body: &[u8]) -> String {
    format!("{:02x}", body.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

impl Rsp {
    /// Connected to `addr` (`HOST:PORT`), reads bounded at 20 s, its first
    /// ack sent.
    pub fn connect(addr: &str) -> Result<Rsp, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        let mut r = Rsp { s, buf: Vec::new() };
        r.send_raw(b"+")?;
        Ok(r)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.s
            .write_all(bytes)
            .map_err(|e| format!("write to the server: {e}"))
    }

    /// Read what comes next into [`Rsp::buf`].
    pub fn more(&mut self) -> Result<(), String> {
        let mut b = [0u8; 65536];
        let n = self
            .s
            .read(&mut b)
            .map_err(|e| format!("read from the server: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        self.buf.extend_from_slice(&b[..n]);
        Ok(())
    }

    /// The next reply's body (acks before it skipped), acked. Binary
    /// bodies (`vFile:pread`) come as they are: their `#` is escaped.
    pub fn reply(&mut self) -> Result<Vec<u8>, String> {
        loop {
            let skip = self.buf.iter().take_while(|&&b| b == b'+').count();
            self.buf.drain(..skip);
            if let Some(end) = self.buf.iter().position(|&b| b == b'#') {
                if self.buf.len() >= end + 3 {
                    if self.buf[0] != b'$' {
                        return Err(format!(
                            "not a packet: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        ));
                    }
                    let body = self.buf[1..end].to_vec();
                    self.buf.drain(..end + 3);
                    self.send_raw(b"+")?;
                    return Ok(body);
                }
            }
            self.more()?;
        }
    }

    /// Send packet `body`; its reply's body.
    pub fn ask_bytes(&mut self, body: &[u8]) -> Result<Vec<u8>, String> {
        let mut p = Vec::with_capacity(body.len() + 4);
        p.push(b'$');
        p.extend_from_slice(body);
        p.push(b'#');
        p.extend_from_slice(checksum(body).as_bytes());
        self.send_raw(&p)?;
        self.reply()
    }

    /// Send packet `body`; its reply, as text.
    pub fn ask(&mut self, body: &str) -> Result<String, String> {
        Ok(String::from_utf8_lossy(&self.ask_bytes(body.as_bytes())?).into_owned())
    }

    /// The thread a stop reply names (`thread:ID;`).
    pub fn stop_thread(stop: &str) -> Option<String> {
        stop.split("thread:")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .map(str::to_string)
    }
}

/// `body` with gdb's run-length encoding (`X*N`: X repeated N - 29 more
/// times) expanded.
pub fn unrle(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '*' {
            let n = chars.next().map_or(0, |n| (n as u32).saturating_sub(29));
            if let Some(last) = out.chars().last() {
                for _ in 0..n {
                    out.push(last);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
