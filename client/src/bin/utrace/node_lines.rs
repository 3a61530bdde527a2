//! Output of one server among several (`utrace --server A --server B …`):
//! each line prefixed with the server's name, and written whole, so the
//! lines of servers traced at once never cut into each other.

use std::io::Write;

/// A writer that passes on complete lines only, each as `[NODE] line`,
/// several at a time in one `write_all` (one lock of a standard stream).
/// A last line without its newline is written, with one, when dropped.
pub struct NodeLines<W: Write> {
    inner: W,
    prefix: Vec<u8>,
    partial: Vec<u8>,
}

impl<W: Write> NodeLines<W> {
    /// Lines to `inner`, prefixed `[node] `.
    pub fn new(inner: W, node: &str) -> Self {
        NodeLines {
            inner,
            prefix: format!("[{node}] ").into_bytes(),
            partial: Vec::new(),
        }
    }
}

impl<W: Write> Write for NodeLines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(buf.len());
        };
        let chunk = prefixed(&self.prefix, &self.partial[..=end]);
        self.partial.drain(..=end);
        self.inner.write_all(&chunk)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Drop for NodeLines<W> {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let _ = self.inner.write_all(&prefixed(&self.prefix, &self.partial));
            let _ = self.inner.flush();
        }
    }
}

/// `text`'s lines, each after `prefix` (a last line without its newline
/// gets one).
fn prefixed(prefix: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + prefix.len() * 4);
    for line in text.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(prefix);
        out.extend_from_slice(line);
    }
    if !out.is_empty() && out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    out
}

/// `text`'s lines as `[node] line`.
pub fn lines_of(node: &str, text: &str) -> String {
    let prefix = format!("[{node}] ");
    String::from_utf8_lossy(&prefixed(prefix.as_bytes(), text.as_bytes())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_each_prefixed() {
        let mut out = Vec::new();
        {
            let mut w = NodeLines::new(&mut out, "a");
            w.write_all(b"one\ntw").unwrap();
            w.write_all(b"o\nthree\nfo").unwrap();
            w.write_all(b"ur").unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[a] one\n[a] two\n[a] three\n[a] four\n"
        );
        assert_eq!(lines_of("b", "x\ny"), "[b] x\n[b] y\n");
        assert_eq!(lines_of("b", ""), "");
    }
}
