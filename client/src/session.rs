//! Synchronous engines: one `Session` stream on which the client spawns or
//! attaches, receives reports, and decides the ones that hold the task.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use utrace_client::{pb, Client, Decision, SessionEvent};
//!
//! let mut client = Client::connect("unix:///run/utraced/utraced.sock").await?;
//! let mut session = client.session().await?;
//! let attached = session
//!     .spawn(pb::SpawnRequest {
//!         argv: vec!["/bin/cat".into(), "/etc/hostname".into()],
//!         engine: Some(pb::EngineSpec {
//!             events: vec![pb::EventKind::SyscallEntry as i32],
//!             syscalls: vec!["openat".into()],
//!             sync: true,
//!             // The path (second argument, rsi) comes with each report.
//!             expedite: Some(pb::Expedite {
//!                 memory: vec![pb::MemRef { register: "rsi".into(), len: 4096, string: true, offset: 0 }],
//!                 ..Default::default()
//!             }),
//!             ..Default::default()
//!         }),
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("pid {}", attached.pid);
//! while let Some(ev) = session.next().await {
//!     if let SessionEvent::Report(report) = ev? {
//!         if report.held {
//!             session.decide(Decision::resume(&report)).await?;
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::pb;

/// Messages the client may have in flight to the server before `send`
/// waits.
const SEND_QUEUE: usize = 256;

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The server refused this message (the session goes on).
    #[error("{code}: {message}")]
    Refused {
        /// A gRPC code name, e.g. `INVALID_ARGUMENT`.
        code: String,
        message: String,
        /// The engine and report concerned (0 when none).
        engine_id: u64,
        seq: u64,
    },
    /// The stream failed (the server went away, or refused the call).
    #[error("session stream failed: {0}")]
    Stream(#[from] Status),
    /// The server ended the session.
    #[error("the session ended")]
    Ended,
}

impl From<pb::SessionError> for SessionError {
    fn from(e: pb::SessionError) -> Self {
        SessionError::Refused {
            code: e.code,
            message: e.message,
            engine_id: e.engine_id,
            seq: e.seq,
        }
    }
}

/// Something the server sent that no call was waiting for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// Reports are nearly every message: boxing the large variant would cost
// an allocation per report to save stack in the rare others.
#[allow(clippy::large_enum_variant)]
pub enum SessionEvent {
    /// A report; when `held`, the task waits for a [`Decision`].
    Report(pb::Event),
    /// The results of a decision's batch (`in_reply_to` is the id
    /// [`Session::decide`] returned).
    BatchReply {
        in_reply_to: u64,
        reply: pb::BatchReply,
    },
    /// A message sent without waiting (a decision, a mask change) was
    /// refused, or a decision's syscall change failed.
    Error {
        in_reply_to: u64,
        error: pb::SessionError,
    },
    /// An engine has nothing more to report (its processes are gone, or it
    /// was detached): its last message.
    Ended(pb::EngineEnded),
    /// A report of the probe [`Session::probe`] started with id
    /// `in_reply_to` (events, snapshots, then the final snapshot and
    /// `ended`).
    Probe {
        in_reply_to: u64,
        report: pb::ProbeReport,
    },
}

/// Builders for [`pb::Decision`].
pub struct Decision;

impl Decision {
    fn base(report: &pb::Event, action: pb::Action) -> pb::Decision {
        pb::Decision {
            seq: report.seq,
            engine_id: report.engine_id,
            action: action as i32,
            ..Default::default()
        }
    }

    /// Let the task go (as far as this engine is concerned).
    pub fn resume(report: &pb::Event) -> pb::Decision {
        Self::base(report, pb::Action::Resume)
    }

    /// Single-step the task, then report a step.
    pub fn step(report: &pb::Event) -> pb::Decision {
        Self::base(report, pb::Action::Step)
    }

    /// Keep holding it, with no deadline (decide the same report later).
    pub fn hold(report: &pb::Event) -> pb::Decision {
        Self::base(report, pb::Action::Hold)
    }

    /// At a syscall entry: do not run the call; the task sees `ret`
    /// (negative: `-errno`), and the task resumes.
    pub fn skip_syscall(report: &pb::Event, ret: i64) -> pb::Decision {
        pb::Decision {
            skip_syscall: true,
            syscall_return: Some(ret),
            ..Self::resume(report)
        }
    }

    /// At a syscall exit: the task sees `ret` instead, and resumes.
    pub fn set_return(report: &pb::Event, ret: i64) -> pb::Decision {
        pb::Decision {
            syscall_return: Some(ret),
            ..Self::resume(report)
        }
    }

    /// At a signal report: do not deliver the signal, and resume.
    pub fn suppress_signal(report: &pb::Event) -> pb::Decision {
        pb::Decision {
            suppress_signal: true,
            ..Self::resume(report)
        }
    }
}

/// A Session stream (see the module docs).
pub struct Session {
    tx: mpsc::Sender<pb::ClientMessage>,
    rx: Streaming<pb::ServerMessage>,
    next_id: u64,
    /// Messages read while a call waited for its own answer.
    backlog: VecDeque<SessionEvent>,
}

impl Session {
    pub(crate) async fn open(
        client: &mut pb::tracer_client::TracerClient<crate::Transport>,
    ) -> Result<Session, Status> {
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        let inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Session {
            tx,
            rx: inbound,
            next_id: 1,
            backlog: VecDeque::new(),
        })
    }

    /// Send `msg` tagged with a fresh id; returns the id.
    async fn send(&mut self, msg: pb::client_message::Msg) -> Result<u64, SessionError> {
        let id = self.next_id;
        self.next_id += 1;
        self.tx
            .send(pb::ClientMessage { msg: Some(msg), id })
            .await
            .map_err(|_| SessionError::Ended)?;
        Ok(id)
    }

    /// Read until the answer to message `id`; everything else is kept for
    /// [`Session::next`].
    async fn answer(&mut self, id: u64) -> Result<pb::server_message::Msg, SessionError> {
        loop {
            let m = self.rx.message().await?.ok_or(SessionError::Ended)?;
            let Some(msg) = m.msg else { continue };
            if m.in_reply_to == id && id != 0 {
                return match msg {
                    pb::server_message::Msg::Error(e) => Err(e.into()),
                    other => Ok(other),
                };
            }
            if let Some(ev) = event(m.in_reply_to, msg) {
                self.backlog.push_back(ev);
            }
        }
    }

    async fn attached(&mut self, id: u64) -> Result<pb::Attached, SessionError> {
        match self.answer(id).await? {
            pb::server_message::Msg::Attached(a) => Ok(a),
            _ => Err(SessionError::Stream(Status::internal(
                "the server answered a spawn or attach with something else than `attached`",
            ))),
        }
    }

    /// Start a program under a new engine of this session (set
    /// `engine.sync` for reports that wait for decisions).
    pub async fn spawn(&mut self, req: pb::SpawnRequest) -> Result<pb::Attached, SessionError> {
        let id = self.send(pb::client_message::Msg::Spawn(req)).await?;
        self.attached(id).await
    }

    /// Attach a new engine of this session to process `pid`.
    pub async fn attach(
        &mut self,
        pid: u32,
        engine: pb::EngineSpec,
    ) -> Result<pb::Attached, SessionError> {
        let id = self
            .send(pb::client_message::Msg::Attach(pb::AttachRequest {
                pid,
                engine: Some(engine),
            }))
            .await?;
        self.attached(id).await
    }

    /// Decide a held report, without waiting: a refusal, or the decision's
    /// batch results, come back through [`Session::next`] with the
    /// returned id.
    pub async fn decide(&mut self, d: pb::Decision) -> Result<u64, SessionError> {
        self.send(pb::client_message::Msg::Decide(d)).await
    }

    /// Run a batch and wait for its results (reports arriving meanwhile are
    /// kept for [`Session::next`]).
    pub async fn batch(&mut self, b: pb::BatchRequest) -> Result<pb::BatchReply, SessionError> {
        let id = self.send(pb::client_message::Msg::Batch(b)).await?;
        match self.answer(id).await? {
            pb::server_message::Msg::BatchReply(r) => Ok(r),
            _ => Err(SessionError::Stream(Status::internal(
                "the server answered a batch with something else than `batch_reply`",
            ))),
        }
    }

    /// Start a probe in this session (as [`crate::Client::probe`] does) and
    /// wait for its `started`; returns it and the id its later reports
    /// carry ([`SessionEvent::Probe`]).
    pub async fn probe(
        &mut self,
        req: pb::ProbeRequest,
    ) -> Result<(u64, pb::ProbeStarted), SessionError> {
        let id = self.send(pb::client_message::Msg::Probe(req)).await?;
        match self.answer(id).await? {
            pb::server_message::Msg::Probe(pb::ProbeReport {
                kind: Some(pb::probe_report::Kind::Started(s)),
            }) => Ok((id, s)),
            _ => Err(SessionError::Stream(Status::internal(
                "the server answered a probe with something else than `started`",
            ))),
        }
    }

    /// Change an engine's event mask and syscall set, without waiting.
    pub async fn set_events(&mut self, s: pb::SetEvents) -> Result<u64, SessionError> {
        self.send(pb::client_message::Msg::SetEvents(s)).await
    }

    /// The next report, batch reply or refusal; `None` when the server has
    /// ended the session.
    pub async fn next(&mut self) -> Option<Result<SessionEvent, SessionError>> {
        if let Some(ev) = self.backlog.pop_front() {
            return Some(Ok(ev));
        }
        loop {
            match self.rx.message().await {
                Ok(Some(m)) => {
                    if let Some(ev) = m.msg.and_then(|msg| event(m.in_reply_to, msg)) {
                        return Some(Ok(ev));
                    }
                }
                Ok(None) => return None,
                Err(e) => return Some(Err(e.into())),
            }
        }
    }

    /// End the session: the server detaches its engines (holds released,
    /// breakpoints removed) and the tracees run on.
    pub fn close(self) {
        drop(self);
    }
}

fn event(in_reply_to: u64, msg: pb::server_message::Msg) -> Option<SessionEvent> {
    use pb::server_message::Msg;
    match msg {
        Msg::Report(e) => Some(SessionEvent::Report(e)),
        Msg::BatchReply(reply) => Some(SessionEvent::BatchReply { in_reply_to, reply }),
        Msg::Error(error) => Some(SessionEvent::Error { in_reply_to, error }),
        Msg::Ended(e) => Some(SessionEvent::Ended(e)),
        Msg::Probe(report) => Some(SessionEvent::Probe {
            in_reply_to,
            report,
        }),
        // An `attached` no call waits for (its caller gave up): nothing to say.
        Msg::Attached(_) => None,
    }
}
