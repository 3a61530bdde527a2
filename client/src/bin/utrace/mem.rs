//! `utrace mem read|write`: a process's memory, through one batch on a
//! one-shot engine.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use utrace_client::pb;

use crate::batch::{parse_hex, parse_u64, run_once, single_failure, Target};
use crate::server::Connection;

/// `utrace mem`.
#[derive(Subcommand, Debug)]
pub enum MemCmd {
    /// Read LEN bytes at ADDR and print them (hexdump -C style by default).
    /// A read that stops short prints what it got and fails.
    Read(ReadCmd),
    /// Write bytes, given in hex, at ADDR (read-only text too).
    Write(WriteCmd),
}

/// `utrace mem read`.
#[derive(Args, Debug)]
pub struct ReadCmd {
    #[command(flatten)]
    pub target: Target,
    /// The address: decimal or 0x… hex.
    #[arg(value_name = "ADDR", value_parser = addr)]
    pub addr: u64,
    /// Bytes to read: decimal or 0x… hex.
    #[arg(value_name = "LEN", value_parser = len)]
    pub len: u32,
    /// Print the bytes as one line of hex digits.
    #[arg(long, conflicts_with = "raw")]
    pub hex: bool,
    /// Write the bytes themselves to standard output.
    #[arg(long)]
    pub raw: bool,
}

/// `utrace mem write`.
#[derive(Args, Debug)]
pub struct WriteCmd {
    #[command(flatten)]
    pub target: Target,
    /// The address: decimal or 0x… hex.
    #[arg(value_name = "ADDR", value_parser = addr)]
    pub addr: u64,
    /// The bytes in hex, e.g. 90cc or "de ad be ef".
    #[arg(value_name = "HEXBYTES", value_parser = hex_bytes)]
    pub bytes: HexBytes,
}

/// Bytes given in hex on the command line.
#[derive(Clone, Debug)]
pub struct HexBytes(pub Vec<u8>);

fn addr(s: &str) -> Result<u64, String> {
    parse_u64(s).ok_or_else(|| format!("{s:?} is not an address: give decimal or 0x… hex"))
}

fn len(s: &str) -> Result<u32, String> {
    let n =
        parse_u64(s).ok_or_else(|| format!("{s:?} is not a length: give decimal or 0x… hex"))?;
    u32::try_from(n).map_err(|_| format!("{n} bytes is too many for one read"))
}

fn hex_bytes(s: &str) -> Result<HexBytes, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("hex:")
        .or_else(|| s.strip_prefix("0x"))
        .unwrap_or(s);
    let bytes = parse_hex(s)?;
    if bytes.is_empty() {
        return Err("no bytes to write".into());
    }
    Ok(HexBytes(bytes))
}

/// `hexdump -C`, with absolute addresses: 16 bytes a line, hex in two
/// groups of 8, the printable ASCII between bars; then the end address.
/// Nothing for no bytes.
pub fn hexdump(addr: u64, data: &[u8]) -> String {
    let mut out = String::new();
    if data.is_empty() {
        return out;
    }
    for (n, chunk) in data.chunks(16).enumerate() {
        let at = addr.wrapping_add(16 * n as u64);
        let _ = write!(out, "{at:016x}  ");
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
            if j == 7 {
                out.push(' ');
            }
        }
        out.push_str(" |");
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
    let _ = writeln!(out, "{:016x}", addr.wrapping_add(data.len() as u64));
    out
}

fn print_bytes(cmd: &ReadCmd, addr: u64, data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        Ok(())
    } else if cmd.raw {
        crate::write_stdout(data)
    } else if cmd.hex {
        let mut text: String = data.iter().map(|b| format!("{b:02x}")).collect();
        text.push('\n');
        crate::write_stdout(text.as_bytes())
    } else {
        crate::write_stdout(hexdump(addr, data).as_bytes())
    }
}

/// `utrace mem read|write`.
pub async fn run(conn: &mut Connection, cmd: MemCmd) -> Result<u8, String> {
    match cmd {
        MemCmd::Read(r) => {
            let op = pb::op::Op::ReadMemory(pb::ReadMemory {
                addr: r.addr,
                len: r.len,
            });
            let results = run_once(conn, &r.target, vec![pb::Op { op: Some(op) }], false).await?;
            let read = results.read(0).map_err(|f| single_failure(&f))?;
            print_bytes(&r, read.addr, read.data)?;
            match results.failure(0) {
                Some(f) => Err(single_failure(&f)),
                None => Ok(0),
            }
        }
        MemCmd::Write(w) => {
            let op = pb::op::Op::WriteMemory(pb::WriteMemory {
                addr: w.addr,
                data: w.bytes.0.into(),
            });
            let results = run_once(conn, &w.target, vec![pb::Op { op: Some(op) }], false).await?;
            results.done(0).map_err(|f| single_failure(&f))?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hexdump_like_hexdump_c() {
        let data: Vec<u8> = (0x41..0x41 + 18).collect();
        let text = hexdump(0x7ffc_0000_0010, &data);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "00007ffc00000010  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|"
        );
        assert_eq!(
            lines[1],
            "00007ffc00000020  51 52                                             |QR|"
        );
        assert_eq!(lines[2], "00007ffc00000022");
        assert_eq!(lines.len(), 3);
        assert_eq!(hexdump(16, &[]), "");
        assert_eq!(
            hexdump(16, &[0, b'a']).lines().next(),
            Some("0000000000000010  00 61                                             |.a|")
        );
    }

    #[test]
    fn command_line_values() {
        assert_eq!(addr("0x10"), Ok(16));
        assert!(addr("sixteen").is_err());
        assert_eq!(len("4096"), Ok(4096));
        assert!(len("0x100000000").is_err());
        assert_eq!(hex_bytes("0x90cc").map(|b| b.0), Ok(vec![0x90, 0xcc]));
        assert_eq!(hex_bytes("de ad").map(|b| b.0), Ok(vec![0xde, 0xad]));
        assert!(hex_bytes("").is_err());
        assert!(hex_bytes("abc").is_err());
    }
}
