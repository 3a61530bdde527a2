//! A `utraced` daemon (the real binary) on a private socket, for tests
//! that need several client processes on one server, or kill the server.

use std::process::{Child, Command, Stdio};

use super::users::Scratch;

/// A running `utraced`; killed when dropped.
pub struct Daemon {
    pub dir: Scratch,
    server: Option<Child>,
    pub uri: String,
}

impl Daemon {
    /// Start one listening on `unix://SCRATCH/s.sock` (its log in
    /// `SCRATCH/server.log`), once its socket exists.
    pub fn start(tag: &str) -> Daemon {
        Self::start_with_env(tag, &[])
    }

    /// [`Daemon::start`] with these variables added to its environment.
    pub fn start_with_env(tag: &str, env: &[(&str, &str)]) -> Daemon {
        Self::start_with(tag, env, &[])
    }

    /// [`Daemon::start`] with `env` and more arguments.
    pub fn start_with(tag: &str, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let dir = Scratch::new(tag);
        let sock = dir.path("s.sock");
        let log = std::fs::File::create(dir.path("server.log")).expect("server log");
        let server = Command::new(super::users::utraced_bin())
            .envs(env.iter().copied())
            .args(["--listen", &format!("unix://{sock}")])
            .args(args)
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start utraced");
        super::wait_listening(&sock);
        Daemon {
            dir,
            server: Some(server),
            uri: format!("unix://{sock}"),
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.server.as_ref().map_or(0, Child::id)
    }

    /// Send `sig` to the server and wait for it; its log.
    pub fn stop(&mut self, sig: i32) -> String {
        let mut server = self.server.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(server.id() as i32, sig) };
        super::wait_child(&mut server);
        std::fs::read_to_string(self.dir.path("server.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}
