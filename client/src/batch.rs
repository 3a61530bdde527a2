//! Typed batches: build the ops of one `Batch` call, send it, and read each
//! op's result with a typed accessor.
//!
//! ```no_run
//! # async fn f(client: &mut utrace_client::Client, engine_id: u64) -> Result<(), Box<dyn std::error::Error>> {
//! use utrace_client::Action;
//!
//! let results = client
//!     .batch(engine_id, 0)
//!     .regs(&["rip", "rsp"])
//!     .read(0x7fff_0000_0000, 8)
//!     .control(Action::Resume)
//!     .interrupt(true)
//!     .send()
//!     .await?;
//! let rip = results.register(0, "rip")?;
//! match results.memory(1) {
//!     Ok(bytes) => println!("rip {rip:#x}: {bytes:02x?}"),
//!     Err(failure) => println!("rip {rip:#x}; the read failed: {failure}"),
//! }
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use tonic::Status;
use utrace_proto::v1 as pb;

use crate::Client;

pub use utrace_proto::v1::{Action, EventKind};

/// The x86 trap flag in `eflags` (single-step), for
/// [`BatchBuilder::set_bits`].
pub const EFLAGS_TF: u64 = 0x100;

impl Client {
    /// Start a batch of ops on thread `tid` (0: the main thread) of the
    /// process engine `engine_id` traces. Nothing is sent until
    /// [`BatchBuilder::send`].
    pub fn batch(&mut self, engine_id: u64, tid: u32) -> BatchBuilder<'_> {
        BatchBuilder {
            client: self,
            request: pb::BatchRequest {
                engine_id,
                tid,
                ..Default::default()
            },
        }
    }

    /// Send a batch request built by hand. The results are checked to be one
    /// per op (else INTERNAL).
    pub async fn send_batch(&mut self, request: pb::BatchRequest) -> Result<BatchResults, Status> {
        let ops = request.ops.len();
        let reply = self.inner.batch(request).await?.into_inner();
        if reply.results.len() != ops {
            return Err(Status::internal(format!(
                "the server answered {} results for a batch of {ops} ops",
                reply.results.len()
            )));
        }
        Ok(BatchResults {
            results: reply.results,
        })
    }
}

/// The ops of one `Batch` call, run in order on a held task, in one round
/// trip. Each op method appends one op; its result has the same index in
/// [`BatchResults`] (0 for the first op added).
///
/// ```no_run
/// # async fn f(client: &mut utrace_client::Client, engine_id: u64, sp: u64) -> Result<(), Box<dyn std::error::Error>> {
/// use utrace_client::{Action, EFLAGS_TF};
///
/// let results = client
///     .batch(engine_id, 0)
///     .read(sp, 8)                     // 0: memory
///     .read_string(sp + 64, 256)       // 1: memory, up to the NUL
///     .regs(&["rip"])                  // 2: registers
///     .set_regs(&[("rax", 1)])         // 3: done
///     .set_bits("eflags", EFLAGS_TF, 0) // 4: registers (the old value)
///     .write(sp - 64, b"\x90\x90")     // 5: done
///     .syscall()                       // 6: syscall
///     .maps()                          // 7: maps
///     .control(Action::Resume)         // 8: done
///     .stop_on_error(true)
///     .interrupt(true)
///     .send()
///     .await?;
/// let word = results.memory(0)?;
/// let rip = results.register(2, "rip")?;
/// let old_eflags = results.register(4, "eflags")?;
/// if let Err(f) = results.done(5) {
///     // An op error (f.code is e.g. "EFAULT"), or skipped after an earlier
///     // failure (f.is_skipped()).
///     eprintln!("write failed: {f}");
/// }
/// for (i, outcome) in results.iter().enumerate() {
///     println!("{i}: {outcome:?}");
/// }
/// # Ok(()) }
/// ```
#[must_use = "a batch does nothing until sent"]
#[derive(Debug)]
pub struct BatchBuilder<'c> {
    client: &'c mut Client,
    request: pb::BatchRequest,
}

impl BatchBuilder<'_> {
    /// Append a raw op (for ops this builder has no method for).
    pub fn op(mut self, op: pb::op::Op) -> Self {
        self.request.ops.push(pb::Op { op: Some(op) });
        self
    }

    /// Append raw ops.
    pub fn ops(mut self, ops: impl IntoIterator<Item = pb::Op>) -> Self {
        self.request.ops.extend(ops);
        self
    }

    /// Read `len` bytes at `addr`. Result: memory ([`BatchResults::memory`]);
    /// a partial read keeps the bytes before the fault
    /// ([`BatchResults::read`]).
    pub fn read(self, addr: u64, len: u32) -> Self {
        self.op(pb::op::Op::ReadMemory(pb::ReadMemory { addr, len }))
    }

    /// Read a NUL-terminated string at `addr`, at most `max_len` bytes (0:
    /// 4096). Result: memory, without the NUL ([`BatchResults::string`]).
    pub fn read_string(self, addr: u64, max_len: u32) -> Self {
        self.op(pb::op::Op::ReadString(pb::ReadString { addr, max_len }))
    }

    /// Write `data` at `addr` (read-only text too). Result: done.
    pub fn write(self, addr: u64, data: impl Into<Vec<u8>>) -> Self {
        self.op(pb::op::Op::WriteMemory(pb::WriteMemory {
            addr,
            data: utrace_proto::Bytes::from(data.into()),
        }))
    }

    /// Read registers by name. Result: registers
    /// ([`BatchResults::registers`], [`BatchResults::register`]).
    pub fn regs<S: AsRef<str>>(self, names: &[S]) -> Self {
        let names = names.iter().map(|n| n.as_ref().to_string()).collect();
        self.op(pb::op::Op::GetRegisters(pb::GetRegisters { names }))
    }

    /// Read every register of at most 8 bytes. Result: registers.
    pub fn all_regs(self) -> Self {
        self.op(pb::op::Op::GetRegisters(pb::GetRegisters::default()))
    }

    /// Write registers (written back once, when the task resumes). Result:
    /// done.
    pub fn set_regs<S: AsRef<str>>(self, values: &[(S, u64)]) -> Self {
        let values = values
            .iter()
            .map(|(n, v)| (n.as_ref().to_string(), *v))
            .collect();
        self.op(pb::op::Op::SetRegisters(pb::SetRegisters { values }))
    }

    /// Read registers of any width as bytes (`xmm0`, `st0`…); no names:
    /// every register. Result: register bytes
    /// ([`BatchResults::register_bytes`]).
    pub fn reg_bytes<S: AsRef<str>>(self, names: &[S]) -> Self {
        let names = names.iter().map(|n| n.as_ref().to_string()).collect();
        self.op(pb::op::Op::GetRegisterBytes(pb::GetRegisterBytes { names }))
    }

    /// Write registers of any width from bytes, each its register's width.
    /// Result: the old values ([`BatchResults::register_bytes`]).
    pub fn set_reg_bytes<S: AsRef<str>>(self, values: &[(S, Vec<u8>)]) -> Self {
        let values = values
            .iter()
            .map(|(n, v)| (n.as_ref().to_string(), utrace_proto::Bytes::from(v.clone())))
            .collect();
        self.op(pb::op::Op::SetRegisterBytes(pb::SetRegisterBytes {
            values,
        }))
    }

    /// Write one register. Result: done.
    pub fn set_reg(self, name: &str, value: u64) -> Self {
        self.set_regs(&[(name, value)])
    }

    /// `name = (old | set) & !clear`, in one step (e.g. set
    /// [`EFLAGS_TF`]). Result: registers, with the old value.
    pub fn set_bits(self, name: &str, set: u64, clear: u64) -> Self {
        self.op(pb::op::Op::UpdateRegisterBits(pb::UpdateRegisterBits {
            name: name.to_string(),
            set,
            clear,
        }))
    }

    /// This engine's event mask and syscall set. Result: events
    /// ([`BatchResults::events`]).
    pub fn events(self) -> Self {
        self.op(pb::op::Op::GetEvents(pb::GetEvents {}))
    }

    /// Replace this engine's event mask (empty: the default set) and
    /// syscall set (names or numbers; empty: all); every signal reported.
    /// Result: done.
    pub fn set_events<S: AsRef<str>>(self, events: &[EventKind], syscalls: &[S]) -> Self {
        self.set_events_passing(events, syscalls, &[])
    }

    /// [`BatchBuilder::set_events`], with signals (Linux numbers) let
    /// through unreported, as a debugger's `handle SIG nostop pass`.
    pub fn set_events_passing<S: AsRef<str>>(
        self,
        events: &[EventKind],
        syscalls: &[S],
        pass_signals: &[i32],
    ) -> Self {
        self.op(pb::op::Op::SetEvents(pb::SetEvents {
            engine_id: 0,
            events: events.iter().map(|k| *k as i32).collect(),
            syscalls: syscalls.iter().map(|s| s.as_ref().to_string()).collect(),
            pass_signals: pass_signals.to_vec(),
        }))
    }

    /// The syscall the task is stopped in. Result: syscall
    /// ([`BatchResults::syscall`]).
    pub fn syscall(self) -> Self {
        self.op(pb::op::Op::GetSyscall(pb::GetSyscall {}))
    }

    /// Skip the current syscall with this value (at its entry) or change its
    /// return value (at its exit), e.g. `-2` for `-ENOENT`. Result: done.
    pub fn set_syscall_return(self, value: i64) -> Self {
        self.op(pb::op::Op::SetSyscallReturn(pb::SetSyscallReturn { value }))
    }

    /// The memory map (`/proc/PID/maps`). Result: maps
    /// ([`BatchResults::maps`]).
    pub fn maps(self) -> Self {
        self.op(pb::op::Op::ReadMaps(pb::ReadMaps {}))
    }

    /// What to do with the task after the batch (the last one wins).
    /// Result: done.
    pub fn control(self, action: Action) -> Self {
        self.op(pb::op::Op::Control(pb::Control {
            action: action as i32,
            signal: None,
        }))
    }

    /// [`control`](Self::control) with the signal to deliver on resume or
    /// step instead of the pending one (0 suppresses it).
    pub fn control_with_signal(self, action: Action, signal: i32) -> Self {
        self.op(pb::op::Op::Control(pb::Control {
            action: action as i32,
            signal: Some(signal),
        }))
    }

    /// After a failed op (an error or a partial read), answer the rest as
    /// skipped instead of running them.
    pub fn stop_on_error(mut self, on: bool) -> Self {
        self.request.stop_on_error = on;
        self
    }

    /// Stop a running task for the batch and let it go after (unless an
    /// engine holds it). Without it the task must already be held.
    pub fn interrupt(mut self, on: bool) -> Self {
        self.request.interrupt = on;
        self
    }

    /// Ops added so far.
    pub fn len(&self) -> usize {
        self.request.ops.len()
    }

    /// No op added yet.
    pub fn is_empty(&self) -> bool {
        self.request.ops.is_empty()
    }

    /// The request as it would be sent.
    pub fn request(&self) -> &pb::BatchRequest {
        &self.request
    }

    /// The request, without sending it.
    pub fn into_request(self) -> pb::BatchRequest {
        self.request
    }

    /// Send the batch. `Err` when the call as a whole failed (no such engine,
    /// a limit, the task did not stop in time…); each op's own failure is in
    /// its result.
    pub async fn send(self) -> Result<BatchResults, Status> {
        self.client.send_batch(self.request).await
    }
}

/// Bytes a read op returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRead<'a> {
    /// Where they start.
    pub addr: u64,
    /// The bytes; shorter than asked when `error` is set.
    pub data: &'a [u8],
    /// Why the read stopped short ("EFAULT: Bad address"), if it did.
    pub error: Option<&'a str>,
}

impl MemoryRead<'_> {
    /// The read returned every byte asked for.
    pub fn is_complete(&self) -> bool {
        self.error.is_none()
    }
}

/// One op's result, typed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum OpOutcome<'a> {
    /// `read` / `read_string` (possibly partial: see [`MemoryRead::error`]).
    Memory(MemoryRead<'a>),
    /// `regs`; `set_bits` gives the old value.
    Registers(&'a HashMap<String, u64>),
    /// `reg_bytes`; `set_reg_bytes` gives the old values.
    RegisterBytes(&'a HashMap<String, utrace_proto::Bytes>),
    /// `events`.
    Events(&'a pb::EventsState),
    /// `syscall`: `None` when the task is not at a syscall stop.
    Syscall(Option<&'a pb::Syscall>),
    /// `maps`: `/proc/PID/maps`.
    Maps(&'a str),
    /// A breakpoint inserted by symbol, at this address.
    Breakpoint(u64),
    /// An op without a value succeeded.
    Done,
    /// The op failed (the batch went on unless `stop_on_error`).
    Failed(OpFailure),
    /// Not run: an earlier op failed under `stop_on_error`.
    Skipped,
}

/// How an op failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The server answered an op error (`code` is a gRPC code name such as
    /// `INVALID_ARGUMENT`, or `EFAULT`).
    Error,
    /// A read stopped short (`code` is the errno name, e.g. `EFAULT`); the
    /// bytes before the fault are in [`BatchResults::read`].
    Partial,
    /// Not run: an earlier op failed under `stop_on_error` (`code` is
    /// `SKIPPED`).
    Skipped,
    /// The result is not the kind asked for, or there is no such op (`code`
    /// is `UNEXPECTED_RESULT`).
    Unexpected,
}

/// Why one op gave no (whole) value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpFailure {
    /// The op's index in the batch.
    pub index: usize,
    /// `INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `PERMISSION_DENIED`,
    /// `NOT_FOUND`, `INTERNAL`, `EFAULT`…; `SKIPPED` for a
    /// skipped op.
    pub code: String,
    /// In words.
    pub message: String,
    /// What kind of failure.
    pub kind: FailureKind,
}

impl OpFailure {
    /// The op was not run because an earlier one failed.
    pub fn is_skipped(&self) -> bool {
        self.kind == FailureKind::Skipped
    }

    /// A read that returned fewer bytes than asked.
    pub fn is_partial(&self) -> bool {
        self.kind == FailureKind::Partial
    }

    fn unexpected(index: usize, message: String) -> OpFailure {
        OpFailure {
            index,
            code: "UNEXPECTED_RESULT".into(),
            message,
            kind: FailureKind::Unexpected,
        }
    }
}

impl fmt::Display for OpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Server messages often name the op already ("ops[3]: …").
        let prefix = format!("ops[{}]", self.index);
        if self.message.starts_with(&prefix) {
            write!(f, "{}: {}", self.code, self.message)
        } else {
            write!(f, "{prefix}: {}: {}", self.code, self.message)
        }
    }
}

impl std::error::Error for OpFailure {}

/// The results of a batch: one per op, in the order the ops were added.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchResults {
    results: Vec<pb::OpResult>,
}

fn kind_name(r: Option<&pb::op_result::Result>) -> &'static str {
    use pb::op_result::Result as R;
    match r {
        None => "nothing",
        Some(R::Memory(_)) => "memory",
        Some(R::Registers(_)) => "registers",
        Some(R::RegisterBytes(_)) => "register bytes",
        Some(R::Events(_)) => "events",
        Some(R::Syscall(_)) => "syscall",
        Some(R::Maps(_)) => "maps",
        Some(R::Breakpoint(_)) => "breakpoint",
        Some(R::Done(_)) => "done",
        Some(R::Error(_)) => "error",
        Some(R::Skipped(_)) => "skipped",
    }
}

/// The errno name at the front of a partial read's reason ("EFAULT: Bad
/// address"), else `EFAULT`.
fn errno_code(reason: &str) -> String {
    let head = reason.split(':').next().unwrap_or_default().trim();
    if !head.is_empty()
        && head
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        head.to_string()
    } else {
        "EFAULT".to_string()
    }
}

impl BatchResults {
    /// Wrap results received some other way (one per op, in order).
    pub fn from_raw(results: Vec<pb::OpResult>) -> BatchResults {
        BatchResults { results }
    }

    /// Number of results (= ops).
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// The batch had no ops.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// Result `i`, typed; `None` past the end.
    pub fn get(&self, i: usize) -> Option<OpOutcome<'_>> {
        let r = self.results.get(i)?;
        use pb::op_result::Result as R;
        Some(match &r.result {
            Some(R::Memory(m)) => OpOutcome::Memory(MemoryRead {
                addr: m.addr,
                data: &m.data,
                error: (!m.error.is_empty()).then_some(m.error.as_str()),
            }),
            Some(R::Registers(v)) => OpOutcome::Registers(&v.values),
            Some(R::RegisterBytes(v)) => OpOutcome::RegisterBytes(&v.values),
            Some(R::Events(e)) => OpOutcome::Events(e),
            Some(R::Syscall(s)) => OpOutcome::Syscall(s.in_syscall.then_some(s)),
            Some(R::Maps(m)) => OpOutcome::Maps(&m.text),
            Some(R::Breakpoint(b)) => OpOutcome::Breakpoint(b.addr),
            Some(R::Done(_)) => OpOutcome::Done,
            Some(R::Error(e)) => OpOutcome::Failed(OpFailure {
                index: i,
                code: e.code.clone(),
                message: e.message.clone(),
                kind: FailureKind::Error,
            }),
            Some(R::Skipped(_)) => OpOutcome::Skipped,
            None => OpOutcome::Failed(OpFailure::unexpected(
                i,
                "the server sent an empty result (a result kind this client does not know?)".into(),
            )),
        })
    }

    /// Every result, typed, in op order.
    pub fn iter(&self) -> impl Iterator<Item = OpOutcome<'_>> + '_ {
        (0..self.results.len()).filter_map(move |i| self.get(i))
    }

    /// The wire results.
    pub fn raw(&self) -> &[pb::OpResult] {
        &self.results
    }

    /// The wire results, owned.
    pub fn into_raw(self) -> Vec<pb::OpResult> {
        self.results
    }

    /// Why result `i` is not a value: an op error, a partial read, skipped.
    /// `None` when it succeeded (or does not exist).
    pub fn failure(&self, i: usize) -> Option<OpFailure> {
        match self.get(i)? {
            OpOutcome::Failed(f) => Some(f),
            OpOutcome::Skipped => Some(OpFailure {
                index: i,
                code: "SKIPPED".into(),
                message: "not run: an earlier op failed and the batch asked stop_on_error".into(),
                kind: FailureKind::Skipped,
            }),
            OpOutcome::Memory(m) => m.error.map(|reason| {
                let code = errno_code(reason);
                // "EFAULT: Bad address": the code goes in `code`.
                let text = reason
                    .strip_prefix(code.as_str())
                    .and_then(|r| r.strip_prefix(':'))
                    .map_or(reason, str::trim);
                OpFailure {
                    index: i,
                    message: format!(
                        "the read at {:#x} stopped after {} bytes: {text}",
                        m.addr,
                        m.data.len()
                    ),
                    code,
                    kind: FailureKind::Partial,
                }
            }),
            _ => None,
        }
    }

    /// Every failed op (errors, partial reads, skipped ones), in order.
    pub fn failures(&self) -> impl Iterator<Item = OpFailure> + '_ {
        (0..self.results.len()).filter_map(move |i| self.failure(i))
    }

    /// The first failed op, if any.
    pub fn first_failure(&self) -> Option<OpFailure> {
        self.failures().next()
    }

    /// Result `i` as `what`, or why not.
    fn typed<'s, T>(
        &'s self,
        i: usize,
        what: &str,
        allow_partial: bool,
        pick: impl FnOnce(OpOutcome<'s>) -> Option<T>,
    ) -> Result<T, OpFailure> {
        let Some(outcome) = self.get(i) else {
            return Err(OpFailure::unexpected(
                i,
                format!("no op {i}: the batch had {} ops", self.results.len()),
            ));
        };
        if let Some(f) = self.failure(i) {
            if !(allow_partial && f.is_partial()) {
                return Err(f);
            }
        }
        let got = kind_name(self.results.get(i).and_then(|r| r.result.as_ref()));
        pick(outcome).ok_or_else(|| {
            OpFailure::unexpected(
                i,
                format!("expected a {what} result, the server answered {got}"),
            )
        })
    }

    /// The bytes of read `i` (`read` or `read_string`); a partial read is an
    /// error here (see [`read`](Self::read) for its bytes).
    pub fn memory(&self, i: usize) -> Result<&[u8], OpFailure> {
        self.typed(i, "memory", false, |o| match o {
            OpOutcome::Memory(m) => Some(m.data),
            _ => None,
        })
    }

    /// Read `i` with its address, also when it stopped short.
    pub fn read(&self, i: usize) -> Result<MemoryRead<'_>, OpFailure> {
        self.typed(i, "memory", true, |o| match o {
            OpOutcome::Memory(m) => Some(m),
            _ => None,
        })
    }

    /// The string read by `read_string` op `i`, as text (invalid UTF-8
    /// replaced).
    pub fn string(&self, i: usize) -> Result<Cow<'_, str>, OpFailure> {
        self.memory(i).map(String::from_utf8_lossy)
    }

    /// The register values of op `i` (`regs`, or `set_bits`: the old value).
    pub fn registers(&self, i: usize) -> Result<&HashMap<String, u64>, OpFailure> {
        self.typed(i, "registers", false, |o| match o {
            OpOutcome::Registers(r) => Some(r),
            _ => None,
        })
    }

    /// The register bytes of op `i` (`reg_bytes`, `set_reg_bytes`).
    pub fn register_bytes(
        &self,
        i: usize,
    ) -> Result<&HashMap<String, utrace_proto::Bytes>, OpFailure> {
        self.typed(i, "register bytes", false, |o| match o {
            OpOutcome::RegisterBytes(r) => Some(r),
            _ => None,
        })
    }

    /// One register of op `i`, by the name it was asked by.
    pub fn register(&self, i: usize, name: &str) -> Result<u64, OpFailure> {
        let regs = self.registers(i)?;
        regs.get(name)
            .or_else(|| {
                regs.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .copied()
            .ok_or_else(|| {
                OpFailure::unexpected(i, format!("register {name:?} is not in the result"))
            })
    }

    /// The engine's mask (op `i`, `events`).
    pub fn events(&self, i: usize) -> Result<&pb::EventsState, OpFailure> {
        self.typed(i, "events", false, |o| match o {
            OpOutcome::Events(e) => Some(e),
            _ => None,
        })
    }

    /// The current syscall (op `i`, `syscall`): `None` when the task is not
    /// at a syscall stop.
    pub fn syscall(&self, i: usize) -> Result<Option<&pb::Syscall>, OpFailure> {
        self.typed(i, "syscall", false, |o| match o {
            OpOutcome::Syscall(s) => Some(s),
            _ => None,
        })
    }

    /// The memory map (op `i`, `maps`).
    pub fn maps(&self, i: usize) -> Result<&str, OpFailure> {
        self.typed(i, "maps", false, |o| match o {
            OpOutcome::Maps(m) => Some(m),
            _ => None,
        })
    }

    /// Where breakpoint op `i`, inserted by symbol, went.
    pub fn breakpoint(&self, i: usize) -> Result<u64, OpFailure> {
        self.typed(i, "breakpoint", false, |o| match o {
            OpOutcome::Breakpoint(addr) => Some(addr),
            _ => None,
        })
    }

    /// Op `i` (a write, `set_regs`, `control`…) succeeded.
    pub fn done(&self, i: usize) -> Result<(), OpFailure> {
        self.typed(i, "done", false, |o| match o {
            OpOutcome::Done => Some(()),
            _ => None,
        })
    }
}

impl<'a> IntoIterator for &'a BatchResults {
    type Item = OpOutcome<'a>;
    type IntoIter = Box<dyn Iterator<Item = OpOutcome<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::op_result::Result as R;

    fn res(r: R) -> pb::OpResult {
        pb::OpResult { result: Some(r) }
    }

    fn sample() -> BatchResults {
        BatchResults::from_raw(vec![
            res(R::Memory(pb::Memory {
                data: vec![1, 2, 3].into(),
                addr: 0x1000,
                error: String::new(),
            })),
            res(R::Memory(pb::Memory {
                data: vec![9].into(),
                addr: 0x2000,
                error: "EFAULT: Bad address".into(),
            })),
            res(R::Registers(pb::Registers {
                values: [("rip".to_string(), 0x401000)].into_iter().collect(),
            })),
            res(R::Error(pb::OpError {
                code: "INVALID_ARGUMENT".into(),
                message: "unknown register \"foo\"".into(),
            })),
            res(R::Skipped(pb::Skipped {})),
            res(R::Done(pb::Done {})),
            res(R::Syscall(pb::Syscall::default())),
            pb::OpResult { result: None },
        ])
    }

    #[test]
    fn typed_accessors() {
        let r = sample();
        assert_eq!(r.len(), 8);
        assert_eq!(r.memory(0), Ok(&[1u8, 2, 3][..]));
        let partial = r.memory(1).expect_err("partial");
        assert!(partial.is_partial());
        assert_eq!(partial.code, "EFAULT");
        assert_eq!(
            partial.to_string(),
            "ops[1]: EFAULT: the read at 0x2000 stopped after 1 bytes: Bad address"
        );
        let read = r.read(1).expect("partial read is a read");
        assert_eq!(
            (read.addr, read.data, read.is_complete()),
            (0x2000, &[9u8][..], false)
        );
        assert_eq!(r.register(2, "rip"), Ok(0x401000));
        assert_eq!(r.register(2, "RIP"), Ok(0x401000));
        assert_eq!(
            r.register(2, "rax").map_err(|f| f.kind),
            Err(FailureKind::Unexpected)
        );
        let e = r.registers(3).expect_err("error");
        assert_eq!(
            (e.code.as_str(), e.kind),
            ("INVALID_ARGUMENT", FailureKind::Error)
        );
        assert!(r.done(4).expect_err("skipped").is_skipped());
        assert_eq!(r.done(5), Ok(()));
        assert_eq!(r.syscall(6), Ok(None));
        assert_eq!(
            r.memory(2).map_err(|f| f.kind),
            Err(FailureKind::Unexpected)
        );
        assert_eq!(
            r.memory(7).map_err(|f| f.kind),
            Err(FailureKind::Unexpected)
        );
        assert_eq!(
            r.memory(8).map_err(|f| f.kind),
            Err(FailureKind::Unexpected)
        );
        let failed: Vec<usize> = r.failures().map(|f| f.index).collect();
        assert_eq!(failed, [1, 3, 4, 7]);
        assert_eq!(r.iter().count(), 8);
        assert!(matches!(r.get(4), Some(OpOutcome::Skipped)));
        assert_eq!(errno_code("weird"), "EFAULT");
    }

    #[test]
    fn failure_display_does_not_repeat_the_index() {
        let f = OpFailure {
            index: 3,
            code: "UNIMPLEMENTED".into(),
            message: "ops[3]: breakpoints are not implemented".into(),
            kind: FailureKind::Error,
        };
        assert_eq!(
            f.to_string(),
            "UNIMPLEMENTED: ops[3]: breakpoints are not implemented"
        );
    }
}
