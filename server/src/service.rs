//! The `utrace.v1.Tracer` service. Handlers validate, authorize, and send
//! commands to the tracer thread; they never touch ptrace themselves.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, info_span, Instrument};
use utrace_engines::{Credentials, SpawnOptions, Tracer};
use utrace_proto::v1 as pb;

use crate::convert::{self, status};
use crate::peer::Peer;
use crate::registry::Registry;
use crate::remote::{Hub, RemoteEngine, Subscription};
use crate::Limits;

/// The service state shared by every listener.
pub struct TracerService {
    pub(crate) tracer: Tracer,
    pub(crate) registry: Arc<Registry>,
    pub(crate) limits: Limits,
    pub(crate) observe_only: Vec<u32>,
    pub(crate) listen: Vec<String>,
}

/// The caller, from the connection (every listener attaches a [`Peer`]).
fn peer<T>(req: &Request<T>) -> Result<Peer, Status> {
    req.extensions()
        .get::<Peer>()
        .cloned()
        .ok_or_else(|| Status::internal("connection without peer identity"))
}

fn span(method: &'static str, p: &Peer) -> tracing::Span {
    info_span!(
        "rpc",
        method,
        conn = p.conn,
        uid = p.uid,
        client_pid = p.pid
    )
}

/// A stream of one engine's events; detaches the engine when dropped if it
/// belongs to this call (Trace).
pub struct EventStream {
    rx: mpsc::Receiver<pb::Event>,
    /// Reports lost to a full queue and not yet told to the client.
    dropped: Arc<std::sync::atomic::AtomicU64>,
    engine_id: u64,
    first: Option<pb::Event>,
    detach_on_drop: Option<Arc<Registry>>,
}

impl Stream for EventStream {
    type Item = Result<pb::Event, Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(ev) = self.first.take() {
            return Poll::Ready(Some(Ok(ev)));
        }
        let id = self.engine_id;
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(mut ev)) => {
                ev.engine_id = id;
                Poll::Ready(Some(Ok(ev)))
            }
            Poll::Ready(None) => {
                // The engine is done. Reports lost after the last delivered
                // one are told in a final event with no kind.
                let lost = self.dropped.swap(0, std::sync::atomic::Ordering::AcqRel);
                if lost == 0 {
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(pb::Event {
                    engine_id: id,
                    dropped_before: lost,
                    ..Default::default()
                })))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let Some(reg) = self.detach_on_drop.take() {
            reg.detach_later(self.engine_id);
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl TracerService {
    /// Spawn for `p` with engine spec `spec`; returns (pid, engine id, first
    /// queue).
    async fn do_spawn(
        &self,
        p: &Peer,
        req: pb::SpawnRequest,
        spec: Option<&pb::EngineSpec>,
        field: &str,
        engine_field: &str,
    ) -> Result<(u32, u64, Subscription), Status> {
        if req.argv.is_empty() || req.argv[0].is_empty() {
            return Err(Status::invalid_argument(format!(
                "{field}argv: empty; give the program and its arguments, e.g. [\"/bin/ls\", \"/\"]"
            )));
        }
        let cfg = convert::engine_config(
            spec,
            engine_field,
            self.limits.queue_len,
            self.limits.max_queue_len,
        )?;
        // SAFETY: geteuid has no preconditions.
        let server_uid = unsafe { libc::geteuid() };
        let credentials = if p.uid == server_uid {
            None
        } else if server_uid == 0 {
            Some(Credentials {
                uid: p.uid,
                gid: p.gid,
                groups: crate::peer::groups_of(p.pid),
            })
        } else {
            return Err(Status::permission_denied(format!(
                "this server runs as uid {server_uid} and cannot start programs as your uid {}",
                p.uid
            )));
        };
        let mut opts = SpawnOptions::new(req.argv);
        opts.env = req.env.into_iter().collect();
        opts.cwd = (!req.cwd.is_empty()).then(|| req.cwd.into());
        opts.stop_at_entry = req.stop_at_entry;
        opts.kernel_filter = !req.no_kernel_filter;
        opts.credentials = credentials;
        let (hub, rx) = Hub::new(cfg.queue_len, cfg.spec.wanted);
        let engine = RemoteEngine::new(Arc::clone(&hub), cfg.spec);
        let spawned = self
            .tracer
            .spawn(opts, Box::new(engine), cfg.options)
            .await
            .map_err(status)?;
        self.registry
            .insert(spawned.engine, p, spawned.pid as u32, hub, None);
        info!(pid = spawned.pid, engine = spawned.engine.0, "spawned");
        Ok((spawned.pid as u32, spawned.engine.0, rx))
    }

    async fn do_attach(
        &self,
        p: &Peer,
        pid: u32,
        spec: Option<&pb::EngineSpec>,
        field: &str,
    ) -> Result<(u64, Vec<u32>, Subscription), Status> {
        if pid == 0 {
            return Err(Status::invalid_argument(format!(
                "{field}: pid 0 is not a process; give the pid to attach to"
            )));
        }
        let cfg = convert::engine_config(
            spec,
            "engine",
            self.limits.queue_len,
            self.limits.max_queue_len,
        )?;
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(Status::not_found(format!(
                "{field}: no process with pid {pid}"
            )));
        }
        p.may_trace(pid as i32).map_err(|why| {
            Status::permission_denied(format!("not permitted to trace pid {pid}: {why}"))
        })?;
        let (hub, rx) = Hub::new(cfg.queue_len, cfg.spec.wanted);
        let engine = RemoteEngine::new(Arc::clone(&hub), cfg.spec);
        let at = self
            .tracer
            .attach(pid as i32, Box::new(engine), cfg.options)
            .await
            .map_err(status)?;
        self.registry.insert(at.engine, p, pid, hub, None);
        info!(pid, engine = at.engine.0, "attached");
        Ok((at.engine.0, at.tids.iter().map(|t| *t as u32).collect(), rx))
    }
}

#[tonic::async_trait]
impl pb::tracer_server::Tracer for TracerService {
    async fn spawn(
        &self,
        req: Request<pb::SpawnRequest>,
    ) -> Result<Response<pb::SpawnReply>, Status> {
        let p = peer(&req)?;
        let span = span("Spawn", &p);
        async {
            let mut r = req.into_inner();
            let engine = r.engine.take();
            let (pid, engine_id, rx) = self.do_spawn(&p, r, engine.as_ref(), "", "engine").await?;
            // The first queue waits for the client's Events call.
            self.registry.set_pending(engine_id, rx);
            Ok(Response::new(pb::SpawnReply { pid, engine_id }))
        }
        .instrument(span)
        .await
    }

    async fn attach(
        &self,
        req: Request<pb::AttachRequest>,
    ) -> Result<Response<pb::AttachReply>, Status> {
        let p = peer(&req)?;
        let span = span("Attach", &p);
        async {
            let r = req.into_inner();
            let (engine_id, tids, rx) = self.do_attach(&p, r.pid, r.engine.as_ref(), "pid").await?;
            self.registry.set_pending(engine_id, rx);
            Ok(Response::new(pb::AttachReply { engine_id, tids }))
        }
        .instrument(span)
        .await
    }

    async fn detach(
        &self,
        req: Request<pb::DetachRequest>,
    ) -> Result<Response<pb::DetachReply>, Status> {
        let p = peer(&req)?;
        let span = span("Detach", &p);
        async {
            let id = req.into_inner().engine_id;
            self.registry.check_owner(id, &p)?;
            self.registry.remove(id);
            match self.tracer.detach(utrace_engines::EngineId(id)).await {
                Ok(()) | Err(utrace_engines::Error::NoSuchEngine(_)) => {}
                Err(e) => return Err(status(e)),
            }
            Ok(Response::new(pb::DetachReply {}))
        }
        .instrument(span)
        .await
    }

    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksReply>, Status> {
        let p = peer(&req)?;
        let span = span("ListTasks", &p);
        async move {
            let only = req.into_inner().pid;
            let tasks = self.tracer.tasks().await.map_err(status)?;
            let tasks = tasks
                .iter()
                .filter(|t| only == 0 || t.pid as u32 == only)
                .filter(|t| p.may_see(t.pid))
                .map(convert::task_info)
                .collect();
            Ok(Response::new(pb::ListTasksReply { tasks }))
        }
        .instrument(span)
        .await
    }

    async fn get_server_info(
        &self,
        req: Request<pb::GetServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfo>, Status> {
        let p = peer(&req)?;
        let span = span("GetServerInfo", &p);
        async move {
            let tasks = self.tracer.tasks().await.map_err(status)?;
            Ok(Response::new(crate::info::server_info(
                &p,
                &self.listen,
                self.registry.len() as u32,
                tasks.len() as u32,
            )))
        }
        .instrument(span)
        .await
    }

    async fn batch(
        &self,
        req: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchReply>, Status> {
        let p = peer(&req)?;
        let span = span("Batch", &p);
        async move {
            let r = req.into_inner();
            let pid = self.registry.owned_pid(r.engine_id, &p)?;
            let tid = if r.tid == 0 { pid } else { r.tid };
            let observe_only = self.observe_only.contains(&p.uid);
            let hub = self.registry.hub(r.engine_id, &p)?;
            // `new_wanted`: the kinds the last set_events op asks to be told.
            let (planned, new_wanted) = convert::batch_ops(r.ops, observe_only, &self.limits)?;
            let (ops, slots) = convert::split_plan(planned, r.stop_on_error);
            let run = self.tracer.batch(
                utrace_engines::EngineId(r.engine_id),
                tid as i32,
                r.interrupt,
                ops,
                r.stop_on_error,
            );
            let results = match tokio::time::timeout(self.limits.batch_timeout, run).await {
                Ok(Ok(results)) => results,
                Ok(Err(e)) => return Err(status(e)),
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "thread {tid} did not stop within the batch time limit ({:?}); it may be in an uninterruptible sleep. The batch was not run.",
                        self.limits.batch_timeout
                    )))
                }
            };
            if let Some(w) = new_wanted {
                hub.set_wanted(w);
            }
            Ok(Response::new(pb::BatchReply {
                results: convert::merge_results(slots, results, r.stop_on_error, hub.wanted()),
            }))
        }
        .instrument(span)
        .await
    }

    type EventsStream = BoxStream<pb::Event>;

    async fn events(
        &self,
        req: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let p = peer(&req)?;
        let span = span("Events", &p);
        async move {
            let id = req.into_inner().engine_id;
            let sub = self.registry.subscribe(id, &p)?;
            let stream: Self::EventsStream = Box::pin(EventStream {
                rx: sub.rx,
                dropped: sub.dropped,
                engine_id: id,
                first: None,
                detach_on_drop: None,
            });
            Ok(Response::new(stream))
        }
        .instrument(span)
        .await
    }

    type TraceStream = BoxStream<pb::Event>;

    async fn trace(
        &self,
        req: Request<pb::TraceRequest>,
    ) -> Result<Response<Self::TraceStream>, Status> {
        let p = peer(&req)?;
        let span = span("Trace", &p);
        async {
            let r = req.into_inner();
            let (pid, engine_id, tids, rx) = match r.target {
                Some(pb::trace_request::Target::Spawn(s)) => {
                    let (pid, id, rx) = self
                        .do_spawn(&p, s, r.engine.as_ref(), "spawn.", "engine")
                        .await?;
                    (pid, id, vec![pid], rx)
                }
                Some(pb::trace_request::Target::Pid(pid)) => {
                    let (id, tids, rx) = self.do_attach(&p, pid, r.engine.as_ref(), "pid").await?;
                    (pid, id, tids, rx)
                }
                None => {
                    return Err(Status::invalid_argument(
                        "target: missing; set spawn {argv: [...]} or pid",
                    ))
                }
            };
            let first = pb::Event {
                seq: 0,
                engine_id,
                pid,
                tid: pid,
                time_ns: 0,
                kind: Some(pb::event::Kind::Attached(pb::Attached {
                    pid,
                    engine_id,
                    tids,
                })),
                expedited: None,
                dropped_before: 0,
            };
            let stream: Self::TraceStream = Box::pin(EventStream {
                rx: rx.rx,
                dropped: rx.dropped,
                engine_id,
                first: Some(first),
                detach_on_drop: Some(Arc::clone(&self.registry)),
            });
            Ok(Response::new(stream))
        }
        .instrument(span)
        .await
    }

    type SessionStream = BoxStream<pb::ServerMessage>;

    async fn session(
        &self,
        _req: Request<Streaming<pb::ClientMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        Err(Status::unimplemented(
            "Session (synchronous engines) is not implemented by this server yet",
        ))
    }

    type ReadMemoryStreamStream = BoxStream<pb::MemoryChunk>;

    async fn read_memory_stream(
        &self,
        req: Request<pb::ReadMemoryStreamRequest>,
    ) -> Result<Response<Self::ReadMemoryStreamStream>, Status> {
        let p = peer(&req)?;
        let span = span("ReadMemoryStream", &p);
        async move {
            let r = req.into_inner();
            let (end, chunk_len) = convert::memory_stream(&r, &self.limits)?;
            let pid = self.registry.owned_pid(r.engine_id, &p)?;
            let tid = if r.tid == 0 { pid } else { r.tid } as i32;
            let engine = utrace_engines::EngineId(r.engine_id);
            // The reader runs ahead of the sender by up to READ_AHEAD chunks:
            // the next chunk is read while the last one is encoded and sent.
            let (tx, rx) = mpsc::channel(READ_AHEAD);
            let tracer = self.tracer.clone();
            let limit = self.limits.batch_timeout;
            tokio::spawn(
                async move {
                    let mut addr = r.addr;
                    while addr < end {
                        let len = chunk_len.min(end - addr) as usize;
                        let op = utrace_engines::batch::Op::ReadMemory { addr, len };
                        let run = tracer.batch(engine, tid, r.interrupt, vec![op], false);
                        let chunk = match tokio::time::timeout(limit, run).await {
                            Ok(Ok(mut results)) => match results.pop() {
                                Some(utrace_engines::batch::OpResult::Memory(m)) => {
                                    Ok(pb::MemoryChunk {
                                        addr,
                                        data: m.data,
                                        error: m.error.map(|e| e.to_string()).unwrap_or_default(),
                                    })
                                }
                                other => Err(Status::internal(format!(
                                    "reading {len} bytes at {addr:#x}: the executor answered {other:?}"
                                ))),
                            },
                            Ok(Err(e)) => Err(status(e)),
                            Err(_) => Err(read_timed_out(tid, limit, addr)),
                        };
                        let last = chunk.as_ref().map_or(true, |c| !c.error.is_empty());
                        if tx.send(chunk).await.is_err() || last {
                            // The client is gone, or the read ended.
                            break;
                        }
                        addr += len as u64;
                    }
                }
                .in_current_span(),
            );
            let stream: Self::ReadMemoryStreamStream =
                Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
            Ok(Response::new(stream))
        }
        .instrument(span)
        .await
    }
}

/// Chunks a ReadMemoryStream reads ahead of what the client has taken.
const READ_AHEAD: usize = 2;

fn read_timed_out(tid: i32, limit: std::time::Duration, addr: u64) -> Status {
    Status::deadline_exceeded(format!(
        "thread {tid} did not stop within the batch time limit ({limit:?}); it may be in an uninterruptible sleep. The read stopped at {addr:#x}."
    ))
}
