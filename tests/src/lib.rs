//! Shared helpers for the end-to-end tests live in `tests/tests/common`; this crate builds the tracee programs in `src/bin/`.

/// With `UTRACE_TRACEE_WAIT=1` in the environment, a tracee reads one line
/// from stdin before it starts its work, so a test can attach to it first
/// (and still read its stdout).
pub fn wait_if_asked() {
    if std::env::var_os("UTRACE_TRACEE_WAIT").is_some_and(|v| v == "1") {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}

/// Print one line on stdout and flush it at once (a test reads the
/// tracee's output line by line while it runs).
pub fn line(s: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").expect("write a line on stdout");
    out.flush().expect("flush stdout");
}
