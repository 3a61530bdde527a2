//! Local sinks: the embedding program's own consumer of an engine's
//! reports, called on the tracer thread, before the reporting thread
//! resumes.
//!
//! A program that embeds the server ([`crate::Embedded`]) and traces
//! through it can ask for its `Trace` call's reports to be handed to a
//! function of its own instead of a queue: the function runs at each
//! report, on the tracer thread, and the traced thread resumes only after
//! it returns. That is strace's order (the line for a call is written
//! before the call returns to the program) and strace's backpressure (a
//! slow output slows the program), with no queue, encoding or socket in
//! between. The function may block (on a slow terminal, say): the tracer
//! thread of an embedded server serves its own program only.
//!
//! The call names its sink by a token in the `utrace-local-sink` metadata;
//! only a caller in the server's own process may use one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use utrace_proto::v1 as pb;

/// A local sink's function: each report as an `Event`, the first being
/// the `attached` event, in the engine's order.
pub type SinkFn = Box<dyn FnMut(pb::Event) + Send>;

/// The metadata key a `Trace` call names its sink with.
pub const SINK_METADATA: &str = "utrace-local-sink";

/// Sinks registered by the embedding program, waiting for their call.
#[derive(Default)]
pub struct Sinks {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, SinkFn>>,
}

impl Sinks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SinkFn>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register `f`; its token names it in one call.
    pub fn add(&self, f: SinkFn) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().insert(token, f);
        token
    }

    /// The sink `token` names, taken (a sink serves one call).
    pub fn take(&self, token: u64) -> Option<SinkFn> {
        self.lock().remove(&token)
    }
}

/// A registered sink, for one `Trace` call of the embedding program.
#[derive(Clone, Copy, Debug)]
pub struct LocalSink {
    token: u64,
}

impl LocalSink {
    pub(crate) fn new(token: u64) -> Self {
        LocalSink { token }
    }

    /// Name this sink in `req`'s metadata.
    pub fn apply<T>(&self, req: &mut tonic::Request<T>) {
        req.metadata_mut().insert(
            SINK_METADATA,
            tonic::metadata::MetadataValue::from(self.token),
        );
    }
}
