//! A started program's standard streams carried over the call
//! (`SpawnRequest.stdio = STDIO_PIPES`).
//!
//! The server makes three pipes; the program gets their far ends as its
//! descriptors 0, 1 and 2. What it writes comes to the client as
//! `Event.output` among the engine's reports, in the order it happened:
//! at every report [`crate::remote::Hub`] first takes what the stopped
//! program had written ([`Stdio::drain`], on the tracer thread, a
//! non-blocking read), and a task ([`forward`]) takes what it writes
//! between reports. Both read under one lock and publish before letting
//! go of it, so the two never reorder. Output is read only while the
//! engine's queues have room: past that it waits in the pipe, and a
//! program whose pipe is full waits with it, so nothing is dropped. The
//! `Stdin` call writes the program's standard input ([`Stdio::write_stdin`]).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncWriteExt;
use utrace_proto::Bytes;

/// Bytes taken from a pipe at once (one `Event.output`).
pub const CHUNK: usize = 64 * 1024;

/// Bytes taken from the pipes at one report, at most (the rest comes
/// with the next report, or through the forwarder).
const PER_DRAIN: usize = 4 * CHUNK;

/// The server's ends of a program's three pipes, or of its terminal.
pub struct Stdio {
    /// The read ends of its stdout and stderr (a terminal's near end and
    /// none); `None` once at end of file or closed for the client.
    outputs: Mutex<[Option<File>; 2]>,
    stdin: tokio::sync::Mutex<Option<Input>>,
    /// The terminal's near end, for resizing (pipes have none).
    pty: Option<OwnedFd>,
    /// Duplicates of the read ends, for the forwarder's readiness (the
    /// same pipes).
    watch: Mutex<Option<[OwnedFd; 2]>>,
    /// An output was closed for the client (the forwarder lets go of
    /// it), or the engine ended (the forwarder ends).
    changed: tokio::sync::Notify,
}

/// Where the program's input is written.
enum Input {
    Pipe(tokio::net::unix::pipe::Sender),
    /// The terminal's near end, written when writable.
    Pty(AsyncFd<OwnedFd>),
}

/// The program's ends: its stdin, stdout and stderr.
pub struct ChildEnds {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The output pipes, locked: taken at a report and by the forwarder.
pub struct Outputs<'a>(MutexGuard<'a, [Option<File>; 2]>);

/// What one read of an output gave.
pub enum Chunk {
    /// Bytes the program wrote to `fd` (1 or 2).
    Data(u32, Bytes),
    /// Nothing waiting now.
    Empty,
}

fn nonblocking(fd: &impl AsFd) -> std::io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map(drop)
        .map_err(std::io::Error::from)
}

/// Write all of `data` to a non-blocking terminal end, waiting while it
/// is full.
async fn write_all(w: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut ready = w.writable().await?;
        match ready
            .try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(std::io::Error::from))
        {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}

/// Set a terminal's size.
fn set_window(fd: &OwnedFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize through a valid pointer, on a
    // descriptor we own.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(fd), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

impl Stdio {
    /// Make the pipes: the server's ends, and the program's.
    pub fn pipes() -> std::io::Result<(Arc<Stdio>, ChildEnds)> {
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        for fd in [&out_r, &err_r] {
            nonblocking(fd)?;
        }
        let watch = [out_r.try_clone()?, err_r.try_clone()?];
        let stdin = tokio::net::unix::pipe::Sender::from_owned_fd(in_w)?;
        Ok((
            Arc::new(Stdio {
                outputs: Mutex::new([Some(File::from(out_r)), Some(File::from(err_r))]),
                stdin: tokio::sync::Mutex::new(Some(Input::Pipe(stdin))),
                pty: None,
                watch: Mutex::new(Some(watch)),
                changed: tokio::sync::Notify::new(),
            }),
            ChildEnds {
                stdin: in_r,
                stdout: out_w,
                stderr: err_w,
            },
        ))
    }

    /// Make a pseudo-terminal of `rows` x `cols`: the server's end, and
    /// the program's (its far end three times; the program makes it its
    /// controlling terminal, `SpawnOptions::controlling_tty`).
    pub fn pty(rows: u16, cols: u16) -> std::io::Result<(Arc<Stdio>, ChildEnds)> {
        use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
        use std::os::unix::fs::OpenOptionsExt;
        let err = std::io::Error::from;
        let master =
            posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(err)?;
        grantpt(&master).map_err(err)?;
        unlockpt(&master).map_err(err)?;
        let name = ptsname_r(&master).map_err(err)?;
        let far = OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
                .open(&name)?,
        );
        let near = master.as_fd().try_clone_to_owned()?;
        nonblocking(&near)?;
        set_window(&near, rows, cols)?;
        let writer = near.try_clone()?;
        // SAFETY: the AsyncFd owns the OwnedFd: the descriptor stays open,
        // and the same, for the AsyncFd's whole life.
        let writer =
            unsafe { AsyncFd::register_with_interest(writer, tokio::io::Interest::WRITABLE) }
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        let watch = [near.try_clone()?, near.try_clone()?];
        Ok((
            Arc::new(Stdio {
                outputs: Mutex::new([Some(File::from(near.try_clone()?)), None]),
                stdin: tokio::sync::Mutex::new(Some(Input::Pty(writer))),
                pty: Some(near),
                watch: Mutex::new(Some(watch)),
                changed: tokio::sync::Notify::new(),
            }),
            ChildEnds {
                stdin: far.try_clone()?,
                stdout: far.try_clone()?,
                stderr: far,
            },
        ))
    }

    /// Resize the terminal (the program gets SIGWINCH); nothing for pipes.
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        match &self.pty {
            Some(near) => set_window(near, rows, cols),
            None => Ok(()),
        }
    }

    /// Whether the program's streams are a terminal.
    pub fn is_pty(&self) -> bool {
        self.pty.is_some()
    }

    /// Lock the output pipes.
    pub fn outputs(&self) -> Outputs<'_> {
        Outputs(self.outputs.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Write `data` to the program's stdin (waiting while its pipe is
    /// full); `close` closes it after. `BrokenPipe` once the program (and
    /// every copy of the pipe) has closed it.
    pub async fn write_stdin(&self, data: &[u8], close: bool) -> std::io::Result<()> {
        let mut stdin = self.stdin.lock().await;
        match stdin.as_mut() {
            Some(Input::Pipe(w)) => w.write_all(data).await?,
            Some(Input::Pty(w)) => write_all(w, data).await?,
            None if data.is_empty() => {}
            None => {
                return Err(std::io::Error::new(
                    ErrorKind::BrokenPipe,
                    "the program's stdin was closed",
                ))
            }
        }
        // A terminal has no end of file: closing it would hang it up.
        if close && !self.is_pty() {
            *stdin = None;
        }
        Ok(())
    }

    /// The engine carrying these streams has ended: the forwarder ends
    /// (it is told so, not left to find out).
    pub fn engine_ended(&self) {
        self.changed.notify_one();
    }

    /// The client's copy of output `fd` (1 or 2) is gone: close the
    /// program's pipe, so its next write fails as it would locally (a
    /// terminal's near end closed hangs it up: SIGHUP).
    pub fn close_output(&self, fd: u32) {
        if let Some(slot) = (fd as usize).checked_sub(1).filter(|i| *i < 2) {
            self.outputs().0[slot] = None;
            self.changed.notify_one();
        }
    }
}

impl Outputs<'_> {
    /// Read what waits in one of the pipes, stdout first; `Empty` when
    /// neither has anything now.
    pub fn read(&mut self) -> Chunk {
        for (i, slot) in self.0.iter_mut().enumerate() {
            let Some(f) = slot else {
                continue;
            };
            let mut buf = vec![0u8; CHUNK];
            match f.read(&mut buf) {
                Ok(0) => *slot = None,
                Ok(n) => {
                    buf.truncate(n);
                    return Chunk::Data(i as u32 + 1, Bytes::from(buf));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!(%e, fd = i + 1, "reading the program's output");
                    *slot = None;
                }
            }
        }
        Chunk::Empty
    }

    /// Take what waits, while `room()`, handing each chunk to `f`: at
    /// most [`PER_DRAIN`] bytes. True when the pipes were found empty
    /// (nothing left behind).
    pub fn drain(&mut self, room: impl Fn() -> bool, mut f: impl FnMut(u32, Bytes)) -> bool {
        let mut taken = 0;
        while taken < PER_DRAIN && room() {
            match self.read() {
                Chunk::Data(fd, data) => {
                    taken += data.len();
                    f(fd, data);
                }
                Chunk::Empty => return true,
            }
        }
        false
    }
}

/// Move the program's output to the client as it comes (between reports;
/// at reports the hub takes it itself): wait until a pipe is readable,
/// then `publish` what waits while `room()`; while there is no room, look
/// again every 5 ms. A pipe done (end of file, or closed for the client)
/// is let go at once, so the program's next write to it fails. Ends when
/// both pipes are done or `ended()` (checked when
/// [`Stdio::engine_ended`] says so: no timer wakes the server while the
/// program is quiet).
pub async fn forward(
    stdio: Arc<Stdio>,
    room: impl Fn() -> bool,
    ended: impl Fn() -> bool,
    publish: impl Fn(&mut Outputs<'_>) -> bool,
) {
    let Some(fds) = stdio.watch.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let mut watches = fds.map(|fd| {
        // SAFETY: the AsyncFd owns the OwnedFd: the descriptor stays open,
        // and the same, for the AsyncFd's whole life.
        let w = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        if let Err(e) = &w {
            tracing::warn!(%e, "cannot watch the program's output pipe");
        }
        w.ok()
    });
    loop {
        if ended() {
            return;
        }
        {
            // Let go of the duplicates of pipes the hub is done with.
            let o = stdio.outputs();
            for (w, f) in watches.iter_mut().zip(o.0.iter()) {
                if f.is_none() {
                    *w = None;
                }
            }
        }
        if watches.iter().all(Option::is_none) {
            return;
        }
        let [out, err] = &watches;
        let ready = tokio::select! {
            r = readable(out) => r,
            r = readable(err) => r,
            // An output closed for the client, or the engine ended.
            _ = stdio.changed.notified() => continue,
        };
        let mut ready = ready.ok();
        loop {
            if ended() {
                return;
            }
            if !room() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            // Edge-triggered readiness: cleared only once the pipes were
            // found empty, or the next write would go unseen.
            let empty = publish(&mut stdio.outputs());
            if empty {
                if let Some(r) = ready.as_mut() {
                    r.clear_ready();
                }
                break;
            }
        }
    }
}

/// `w` readable; never, without one.
async fn readable(
    w: &Option<AsyncFd<OwnedFd>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>> {
    match w {
        Some(w) => w.readable().await,
        None => std::future::pending().await,
    }
}
