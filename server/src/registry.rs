//! Engines created by clients, and who owns each. An engine belongs to the
//! connection that created it: only that connection may act on it, and when
//! the connection closes the engine detaches (its holds go, the tracee runs
//! on).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tonic::Status;
use tracing::debug;
use utrace_engines::{EngineId, Tracer};

use crate::budget::{Budgets, Ticket};
use crate::metrics::EngineTally;
use crate::peer::Peer;
use crate::remote::{Hub, Subscription, SyncState};

struct Entry {
    conn: u64,
    /// Its place in the engine budget.
    _ticket: Ticket,
    /// The client's pid and uid (for ListTasks' holders).
    client_pid: u32,
    client_uid: u32,
    /// The Session that created it (it detaches when that session ends).
    session: Option<u64>,
    /// Its ledger of held reports, for a sync engine.
    sync: Option<Arc<SyncState>>,
    /// The process it was created on (its main thread is tid 0 in Batch).
    pid: u32,
    /// Its subscribers (none for a probe, whose stream reads its maps).
    hub: Option<Arc<Hub>>,
    /// The first subscriber's queue, filled from the engine's first report
    /// and handed to the first Events call.
    pending: Option<Subscription>,
    /// Its counters (reports from its hub, batches from the services).
    tally: Arc<EngineTally>,
}

/// What [`Registry::activity`] tells of an engine.
#[derive(Debug)]
pub struct EngineSummary {
    pub id: u64,
    pub pid: u32,
    pub client_pid: u32,
    pub client_uid: u32,
    /// "async", "sync" or "probe".
    pub kind: &'static str,
    pub tally: Arc<EngineTally>,
}

/// A probe's engine has no reports: its stream is the Probe call's.
fn not_reporting(id: u64) -> Status {
    Status::failed_precondition(format!(
        "engine_id {id} is a probe: its maps and events come on its Probe stream, \
         and it takes no batches or event subscriptions"
    ))
}

/// The engines clients created.
pub struct Registry {
    tracer: Tracer,
    runtime: tokio::runtime::Handle,
    engines: Mutex<HashMap<u64, Entry>>,
    /// Connections open now: an engine is registered only to one of them.
    conns: Mutex<HashSet<u64>>,
    pub budgets: Arc<Budgets>,
}

impl Registry {
    pub fn new(tracer: Tracer, runtime: tokio::runtime::Handle, budgets: Arc<Budgets>) -> Self {
        Registry {
            tracer,
            runtime,
            engines: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashSet::new()),
            budgets,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.engines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connection `conn` is open.
    pub fn connection_opened(&self, conn: u64) {
        self.conns().insert(conn);
    }

    /// Room for one more engine of `peer` (its uid's and its connection's
    /// budgets), to be handed to [`Registry::insert`].
    pub fn reserve(&self, peer: &Peer) -> Result<Ticket, Status> {
        let mine = self.lock().values().filter(|e| e.conn == peer.conn).count();
        self.budgets.engine(peer, mine)
    }

    /// Record engine `id` as `peer`'s. Refused if `peer`'s connection has
    /// closed meanwhile (nobody could act on the engine or end it): the
    /// caller must undo it.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &self,
        id: EngineId,
        peer: &Peer,
        ticket: Ticket,
        pid: u32,
        hub: Option<Arc<Hub>>,
        sync: Option<Arc<SyncState>>,
        session: Option<u64>,
    ) -> Result<(), Status> {
        // Under the connection lock: a close cannot slip in between.
        let conns = self.conns();
        if !conns.contains(&peer.conn) {
            return Err(Status::cancelled(
                "the connection closed before the engine could be given to it",
            ));
        }
        self.lock().insert(
            id.0,
            Entry {
                conn: peer.conn,
                _ticket: ticket,
                client_pid: peer.pid.max(0) as u32,
                client_uid: peer.uid(),
                session,
                sync,
                pid,
                tally: hub.as_ref().map(|h| h.tally()).unwrap_or_default(),
                hub,
                pending: None,
            },
        );
        drop(conns);
        Ok(())
    }

    /// Engine `id` exists and still has something to report.
    pub fn is_open(&self, id: u64) -> bool {
        self.lock()
            .get(&id)
            .is_some_and(|e| e.hub.as_ref().is_none_or(|h| !h.is_closed()))
    }

    /// Engine `id`'s counters.
    pub fn tally(&self, id: u64) -> Option<Arc<EngineTally>> {
        self.lock().get(&id).map(|e| Arc::clone(&e.tally))
    }

    /// Engine `id` answered a batch of `ops` ops in `took`: its counters
    /// and the metrics.
    pub fn batch_done(&self, id: u64, ops: usize, took: std::time::Duration) {
        crate::metrics::batch_done(self.tally(id).as_deref(), ops, took);
    }

    /// The engines among `ids` that exist, with their counters.
    pub fn activity(&self, ids: impl IntoIterator<Item = u64>) -> Vec<EngineSummary> {
        let engines = self.lock();
        ids.into_iter()
            .filter_map(|id| {
                let e = engines.get(&id)?;
                Some(EngineSummary {
                    id,
                    pid: e.pid,
                    client_pid: e.client_pid,
                    client_uid: e.client_uid,
                    kind: match (&e.hub, &e.sync) {
                        (None, _) => "probe",
                        (Some(_), Some(_)) => "sync",
                        (Some(_), None) => "async",
                    },
                    tally: Arc::clone(&e.tally),
                })
            })
            .collect()
    }

    /// Who is behind engine `id`: (client pid, client uid, its ledger).
    pub fn holder(&self, id: u64) -> Option<(u32, u32, Option<Arc<SyncState>>)> {
        self.lock()
            .get(&id)
            .map(|e| (e.client_pid, e.client_uid, e.sync.clone()))
    }

    /// Engine `id`'s ledger, if it is a sync engine of `session`.
    pub fn session_engine(
        &self,
        id: u64,
        peer: &Peer,
        session: u64,
    ) -> Result<Arc<SyncState>, Status> {
        self.check_owner(id, peer)?;
        let map = self.lock();
        let e = map
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("engine_id {id}: no such engine")))?;
        match (&e.sync, e.session) {
            (Some(sync), Some(s)) if s == session => Ok(Arc::clone(sync)),
            (None, _) => Err(Status::failed_precondition(format!(
                "engine_id {id} is not synchronous: its reports do not hold the task, so there is nothing to decide"
            ))),
            _ => Err(Status::permission_denied(format!(
                "engine_id {id} belongs to another session; decide its reports on the stream that created it"
            ))),
        }
    }

    /// A session ended: its engines detach.
    pub fn session_closed(&self, session: u64) {
        let ids: Vec<u64> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.session == Some(session))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            debug!(session, engine = id, "session ended: detaching its engine");
            self.detach_later(id);
        }
    }

    /// Store the first subscriber's queue for the engine's first Events call.
    pub fn set_pending(&self, id: u64, rx: Subscription) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.pending = Some(rx);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The process engine `id` was created on, if `peer` owns it.
    pub fn owned_pid(&self, id: u64, peer: &Peer) -> Result<u32, Status> {
        self.check_owner(id, peer)?;
        self.lock()
            .get(&id)
            .map(|e| e.pid)
            .ok_or_else(|| Status::not_found("engine gone"))
    }

    /// The subscribers of engine `id`, if `peer` owns it.
    pub fn hub(&self, id: u64, peer: &Peer) -> Result<Arc<Hub>, Status> {
        self.check_owner(id, peer)?;
        self.lock()
            .get(&id)
            .ok_or_else(|| Status::not_found("engine gone"))?
            .hub
            .clone()
            .ok_or_else(|| not_reporting(id))
    }

    /// Check that `peer` owns engine `id`.
    pub fn check_owner(&self, id: u64, peer: &Peer) -> Result<(), Status> {
        match self.lock().get(&id) {
            None => Err(Status::not_found(format!(
                "engine_id {id}: no such engine (it may have detached, or its process ended)"
            ))),
            Some(e) if e.conn != peer.conn => Err(Status::permission_denied(format!(
                "engine_id {id} belongs to another client; a client may act only on engines it created"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// A stream of engine `id`'s reports for `peer`: the queue filled since
    /// the engine's creation for the first caller, a fresh one after.
    pub fn subscribe(&self, id: u64, peer: &Peer) -> Result<Subscription, Status> {
        self.check_owner(id, peer)?;
        let mut map = self.lock();
        let e = map
            .get_mut(&id)
            .ok_or_else(|| Status::not_found("engine gone"))?;
        if let Some(rx) = e.pending.take() {
            return Ok(rx);
        }
        let hub = e.hub.as_ref().ok_or_else(|| not_reporting(id))?;
        hub.subscribe().ok_or_else(|| {
            Status::failed_precondition(format!(
                "engine_id {id}: its processes have ended; there is nothing more to report"
            ))
        })
    }

    /// Forget engine `id` (it detached or its processes ended).
    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Detach engine `id` in the tracer and forget it, without waiting.
    pub fn detach_later(&self, id: u64) {
        if self.lock().remove(&id).is_none() {
            return;
        }
        let tracer = self.tracer.clone();
        self.runtime.spawn(async move {
            match tracer.detach(EngineId(id)).await {
                Ok(()) => debug!(engine = id, "detached"),
                Err(e) => debug!(engine = id, %e, "detach (already gone)"),
            }
        });
    }

    /// Engine `id` was made for a call that went away before answering
    /// (cancelled, timed out, its connection closed): forget it, detach
    /// it, and with `kill` end the program it started, which nobody knows
    /// of (only while the engine still traces it: a pid is never
    /// signalled after its process could have been reaped).
    pub fn abandon(&self, id: u64, kill: Option<u32>) {
        self.lock().remove(&id);
        let tracer = self.tracer.clone();
        self.runtime.spawn(async move {
            if let Some(pid) = kill {
                let _ = tracer.kill(EngineId(id), pid as i32).await;
            }
            match tracer.detach(EngineId(id)).await {
                Ok(()) => debug!(engine = id, "abandoned engine detached"),
                Err(e) => debug!(engine = id, %e, "abandoned engine (already gone)"),
            }
        });
    }

    /// A connection closed: its engines detach.
    pub fn connection_closed(&self, conn: u64) {
        self.conns().remove(&conn);
        let ids: Vec<u64> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.conn == conn)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            debug!(conn, engine = id, "client gone: detaching its engine");
            self.detach_later(id);
        }
    }
}
