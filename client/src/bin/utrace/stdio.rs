//! A daemon's program with the user's streams: `utrace trace` through a
//! daemon starts the program with its stdio carried over the call
//! (`SpawnRequest.stdio`): pipes, or a pseudo-terminal of its own when
//! utrace runs on a terminal (as `ssh -t` does). Its output comes among
//! the trace's reports (written by [`crate::trace`]); its input is fed
//! from ours here, with the terminal's size and whichever of our outputs
//! went away.

use std::io::{IsTerminal, Read};

use nix::sys::termios::{self, SetArg, Termios};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, warn};
use utrace_client::pb;

/// How the program's streams are carried: a terminal when ours are
/// terminals (stdin and stdout), pipes otherwise.
pub fn mode() -> pb::Stdio {
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        pb::Stdio::Pty
    } else {
        pb::Stdio::Pipes
    }
}

/// Our terminal's size (stdout's), if it is one.
pub fn window() -> Option<pb::WindowSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize through a valid pointer.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then(|| pb::WindowSize {
        rows: u32::from(ws.ws_row),
        cols: u32::from(ws.ws_col),
    })
}

/// Our terminal in raw mode while the program has a terminal of its own:
/// what is typed goes to it as typed (Ctrl-C interrupts the program, not
/// utrace), and its terminal echoes and edits lines. Output processing is
/// kept, so utrace's own lines still end their lines. Restored when
/// dropped.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Enter raw mode on stdin's terminal; `None` if it is not one.
    pub fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        raw.output_flags = saved.output_flags;
        if let Err(e) = termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw) {
            warn!(%e, "cannot put the terminal in raw mode");
            return None;
        }
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// Feed the standard input of a daemon's program from ours, and tell the
/// server which of our outputs went away (sent to the returned channel)
/// and, for a terminal, our terminal's new sizes. Our stdin is read on a
/// thread of its own, a blocking read nothing waits for at exit; not at
/// all when it is a terminal we do not have (a background job would be
/// stopped by SIGTTIN): the program then waits for input, as it would
/// reading its terminal in the background.
/// Without `input`, the program's stdin is closed at once instead (it
/// reads end-of-file).
pub fn feed_stdin(
    mut client: utrace_client::Client,
    engine_id: u64,
    pty: bool,
    input: bool,
) -> tokio::sync::mpsc::Sender<u32> {
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::StdinRequest>(8);
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel::<u32>(2);
    let _ = tx.try_send(pb::StdinRequest {
        engine_id,
        ..Default::default()
    });
    let stdin = std::io::stdin();
    let background = stdin.is_terminal()
        && nix::unistd::tcgetpgrp(&stdin).is_ok_and(|fg| fg != nix::unistd::getpgrp());
    if !input {
        let _ = tx.try_send(pb::StdinRequest {
            close: true,
            ..Default::default()
        });
    } else if background {
        debug!("in the background: the program's stdin is not fed from the terminal");
    } else {
        read_stdin(tx.clone());
    }
    let mut winch = if pty {
        signal(SignalKind::window_change())
            .map_err(|e| debug!(%e, "no SIGWINCH handler: the program's terminal keeps its size"))
            .ok()
    } else {
        None
    };
    tokio::spawn(async move {
        loop {
            let req = tokio::select! {
                fd = closed_rx.recv() => match fd {
                    Some(fd) => pb::StdinRequest {
                        closed_output: fd,
                        ..Default::default()
                    },
                    None => break,
                },
                Some(()) = async { winch.as_mut()?.recv().await } => pb::StdinRequest {
                    window: window(),
                    ..Default::default()
                },
            };
            if tx.send(req).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let input = tokio_stream::wrappers::ReceiverStream::new(rx);
        if let Err(s) = client.stdin(input).await {
            debug!("the program's stdin: {}", s.message());
        }
    });
    closed_tx
}

/// Read our stdin on a thread of its own into `tx`, then close.
fn read_stdin(tx: tokio::sync::mpsc::Sender<pb::StdinRequest>) {
    let reader = std::thread::Builder::new()
        .name("utrace-stdin".into())
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            let mut stdin = std::io::stdin().lock();
            loop {
                let data = match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => buf[..n].to_vec(),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        debug!(%e, "reading stdin for the program");
                        break;
                    }
                };
                let req = pb::StdinRequest {
                    data: data.into(),
                    ..Default::default()
                };
                if tx.blocking_send(req).is_err() {
                    return;
                }
            }
            let _ = tx.blocking_send(pb::StdinRequest {
                close: true,
                ..Default::default()
            });
        });
    if let Err(e) = reader {
        warn!(%e, "cannot start the thread that feeds the program's stdin");
    }
}
