//! What each client may hold at once: connections, engines, queued report
//! bytes and batch bytes in flight, counted per uid (and engines also per
//! connection). Past a budget a call gets `RESOURCE_EXHAUSTED` naming it,
//! and a report that would pass the queued-bytes budget is dropped and
//! counted like one that finds its queue full.
//!
//! Every reservation is a guard: dropping it gives the budget back, so no
//! path (an error, a cancelled call, a closed connection) can leak one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tonic::Status;

use crate::peer::Peer;
use crate::Limits;

/// The budgets of every uid.
pub struct Budgets {
    limits: Limits,
    uids: Mutex<HashMap<u32, Use>>,
}

/// What one uid holds.
#[derive(Default)]
struct Use {
    conns: usize,
    /// Connections past the budget, kept just long enough to answer their
    /// calls with RESOURCE_EXHAUSTED.
    refused: usize,
    engines: usize,
    batch_bytes: usize,
    queued: Option<Arc<ByteMeter>>,
}

/// Bytes of queued reports of one uid, shared by its engines' queues and
/// charged and released on the tracer thread and the streams without a
/// lock.
#[derive(Debug)]
pub struct ByteMeter {
    used: AtomicUsize,
    limit: usize,
}

impl ByteMeter {
    /// Whether `n` more bytes would fit now.
    pub fn fits(&self, n: usize) -> bool {
        self.used.load(Ordering::Relaxed).saturating_add(n) <= self.limit
    }

    /// Charge `n` bytes if they fit.
    pub fn try_charge(&self, n: usize) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(n);
            if next > self.limit {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Give `n` charged bytes back.
    /// Charge `n` bytes even past the limit (a lossless queue's report,
    /// whose thread is then held).
    pub fn charge(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Bytes charged now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

impl Budgets {
    /// Per uid holding something now: its connections and engines.
    pub fn uses(&self) -> Vec<(u32, usize, usize)> {
        let mut v: Vec<(u32, usize, usize)> = self
            .lock()
            .iter()
            .filter(|(_, u)| u.conns > 0 || u.engines > 0)
            .map(|(uid, u)| (*uid, u.conns, u.engines))
            .collect();
        v.sort_unstable();
        v
    }
}

/// Which count a guard gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Conn,
    Refused,
    Engine,
    BatchBytes(usize),
}

/// A reservation; dropping it gives it back.
pub struct Ticket {
    budgets: Arc<Budgets>,
    uid: u32,
    kind: Kind,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket({:?} of uid {})", self.kind, self.uid)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut uids = self.budgets.lock();
        if let Some(u) = uids.get_mut(&self.uid) {
            match self.kind {
                Kind::Conn => u.conns -= 1,
                Kind::Refused => u.refused -= 1,
                Kind::Engine => u.engines -= 1,
                Kind::BatchBytes(n) => u.batch_bytes -= n,
            }
            if u.conns == 0
                && u.refused == 0
                && u.engines == 0
                && u.batch_bytes == 0
                // A meter stays: queues may still hold it.
                && u.queued.is_none()
            {
                uids.remove(&self.uid);
            }
        }
    }
}

/// A new connection's standing.
pub enum Admission {
    /// Within the budget.
    Admitted(Ticket),
    /// Past it: its calls are answered RESOURCE_EXHAUSTED with this message
    /// until the connection is closed (soon).
    Refused(Ticket, String),
    /// Far past it: closed at once.
    Dropped,
}

/// Connections past the budget kept to answer with the reason, per uid.
const REFUSED_CONNS: usize = 16;

impl Budgets {
    pub fn new(limits: Limits) -> Arc<Budgets> {
        Arc::new(Budgets {
            limits,
            uids: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Use>> {
        self.uids.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ticket(self: &Arc<Self>, uid: u32, kind: Kind) -> Ticket {
        Ticket {
            budgets: Arc::clone(self),
            uid,
            kind,
        }
    }

    /// A connection from `uid` (`exempt`: a privileged peer, which no
    /// count binds).
    pub fn admit(self: &Arc<Self>, uid: u32, exempt: bool) -> Admission {
        let mut uids = self.lock();
        let u = uids.entry(uid).or_default();
        if exempt || u.conns < self.limits.max_conns_per_uid {
            u.conns += 1;
            return Admission::Admitted(self.ticket(uid, Kind::Conn));
        }
        if u.refused < REFUSED_CONNS {
            u.refused += 1;
            return Admission::Refused(
                self.ticket(uid, Kind::Refused),
                format!(
                    "connections: uid {uid} has {} open connections to this server, its limit (--max-conns-per-uid); close some",
                    u.conns
                ),
            );
        }
        Admission::Dropped
    }

    /// Room for one more engine of `peer`, counted per uid and per
    /// connection (`conn_engines`: how many its connection has).
    pub fn engine(self: &Arc<Self>, peer: &Peer, conn_engines: usize) -> Result<Ticket, Status> {
        if conn_engines >= self.limits.max_engines_per_conn && !peer.is_root() {
            return Err(Status::resource_exhausted(format!(
                "engines: this connection has {conn_engines} engines, its limit (--max-engines-per-conn); detach some"
            )));
        }
        let mut uids = self.lock();
        let u = uids.entry(peer.uid()).or_default();
        if u.engines >= self.limits.max_engines_per_uid && !peer.is_root() {
            return Err(Status::resource_exhausted(format!(
                "engines: uid {} has {} engines on this server, its limit (--max-engines-per-uid); detach some",
                peer.uid(), u.engines
            )));
        }
        u.engines += 1;
        Ok(self.ticket(peer.uid(), Kind::Engine))
    }

    /// Room for a batch moving `bytes` of `peer`'s, while it runs and its
    /// reply is built.
    pub fn batch_bytes(self: &Arc<Self>, peer: &Peer, bytes: usize) -> Result<Ticket, Status> {
        let mut uids = self.lock();
        let u = uids.entry(peer.uid()).or_default();
        let limit = self.limits.max_batch_bytes_in_flight_per_uid;
        if u.batch_bytes.saturating_add(bytes) > limit {
            return Err(Status::resource_exhausted(format!(
                "batch bytes: uid {} has {} bytes of batches running, and this one's {bytes} would pass its limit of {limit} (--max-batch-bytes-in-flight-per-uid); wait for them",
                peer.uid(), u.batch_bytes
            )));
        }
        u.batch_bytes += bytes;
        Ok(self.ticket(peer.uid(), Kind::BatchBytes(bytes)))
    }

    /// The meter of `uid`'s queued report bytes (one per uid, shared by
    /// every queue of its engines).
    pub fn queued(self: &Arc<Self>, uid: u32) -> Arc<ByteMeter> {
        let mut uids = self.lock();
        let u = uids.entry(uid).or_default();
        Arc::clone(u.queued.get_or_insert_with(|| {
            Arc::new(ByteMeter {
                used: AtomicUsize::new(0),
                limit: self.limits.max_queued_bytes_per_uid,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_conns_per_uid: 2,
            ..Limits::default()
        }
    }

    #[test]
    fn connections_are_counted_and_given_back() {
        let b = Budgets::new(limits());
        let t1 = b.admit(1000, false);
        let t2 = b.admit(1000, false);
        assert!(matches!(t1, Admission::Admitted(_)));
        assert!(matches!(t2, Admission::Admitted(_)));
        let refused: Vec<Admission> = (0..REFUSED_CONNS).map(|_| b.admit(1000, false)).collect();
        assert!(refused
            .iter()
            .all(|a| matches!(a, Admission::Refused(_, m) if m.contains("uid 1000 has 2"))));
        assert!(matches!(b.admit(1000, false), Admission::Dropped));
        // Another uid is not affected; a privileged one is never bound.
        assert!(matches!(b.admit(1001, false), Admission::Admitted(_)));
        assert!(matches!(b.admit(1000, true), Admission::Admitted(_)));
        drop(t1);
        assert!(matches!(b.admit(1000, false), Admission::Admitted(_)));
    }

    #[test]
    fn meters_refuse_past_the_limit() {
        let m = ByteMeter {
            used: AtomicUsize::new(0),
            limit: 100,
        };
        assert!(m.try_charge(60));
        assert!(!m.try_charge(41));
        assert!(m.try_charge(40));
        m.release(100);
        assert_eq!(m.used(), 0);
    }
}
