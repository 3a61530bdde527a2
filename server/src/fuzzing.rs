//! Oracles for fuzzing the server's validation of what clients send
//! (engine specs, batches), shared by the bounded random test below (run
//! in CI) and the cargo-fuzz targets in `fuzz/`. Each takes any bytes,
//! decodes them as prost would, validates as the server does, and panics
//! if validation panics or answers with a status no client error should
//! get. Not a public interface.

use prost::Message;
use tonic::Code;
use utrace_proto::v1 as pb;

use crate::convert::{self, SpecContext};
use crate::Limits;

/// Refusals a client's bad input may get.
fn client_error(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument | Code::ResourceExhausted | Code::PermissionDenied
    )
}

/// `b` as an `EngineSpec`, validated for a unary call and for a Session.
pub fn engine_spec(b: &[u8]) {
    let Ok(spec) = pb::EngineSpec::decode(b) else {
        return;
    };
    for session in [false, true] {
        let ctx = SpecContext::new(&Limits::default(), session);
        if let Err(s) = convert::engine_config(Some(&spec), "engine", &ctx) {
            assert!(client_error(s.code()), "{s:?} for {spec:?}");
            assert!(s.message().starts_with("engine"), "names the field: {s:?}");
        }
    }
}

/// `b` as a `BatchRequest`, its ops validated and planned as the server
/// does (small limits, so that they are reached), observing and not.
pub fn batch(b: &[u8]) {
    let Ok(r) = pb::BatchRequest::decode(b) else {
        return;
    };
    let limits = Limits {
        max_batch_ops: 64,
        max_op_bytes: 4096,
        max_batch_bytes: 16384,
        ..Limits::default()
    };
    for observe_only in [false, true] {
        match convert::batch_ops(r.ops.clone(), observe_only, &limits) {
            Ok((planned, _)) => {
                // Every op of the request has its place in the reply, and
                // the ops to run are the slots' runs.
                let (ops, slots) = convert::split_plan(planned, r.stop_on_error);
                let (mut runs, mut covered) = (0, 0);
                for s in &slots {
                    match s {
                        convert::Slot::Run(n) => {
                            runs += n;
                            covered += n;
                        }
                        convert::Slot::Skipped(n) => covered += n,
                        convert::Slot::Ready(_) => covered += 1,
                    }
                }
                assert_eq!(runs, ops.len());
                assert_eq!(covered, r.ops.len());
            }
            Err(s) => assert!(client_error(s.code()), "{s:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use utrace_proto::fuzzing::Rng;

    fn pick<'a>(g: &mut Rng, from: &[&'a str]) -> &'a str {
        from[g.below(from.len() as u64) as usize]
    }

    fn spec(g: &mut Rng) -> pb::EngineSpec {
        let names = ["openat", "write", "257", "nope", "", "-1", "99999", "read "];
        let regs = ["rip", "rsi", "xmm0", "st0", "bogus", ""];
        pb::EngineSpec {
            events: (0..g.below(4)).map(|_| g.below(15) as i32 - 1).collect(),
            syscalls: (0..g.below(4)).map(|_| pick(g, &names).into()).collect(),
            sync: g.below(2) == 0,
            follow_children: g.below(2) == 0,
            leave_at_exec: g.below(2) == 0,
            expedite: (g.below(2) == 0).then(|| pb::Expedite {
                registers: (0..g.below(70)).map(|_| pick(g, &regs).into()).collect(),
                memory: (0..g.below(18))
                    .map(|_| pb::MemRef {
                        register: pick(g, &regs).into(),
                        len: [0, 1, 65536, 65537, u32::MAX][g.below(5) as usize],
                        string: g.below(2) == 0,
                        offset: [0, -16, 1 << 20, -(1 << 20) - 1, i32::MIN][g.below(5) as usize],
                    })
                    .collect(),
                register_bytes: vec![pick(g, &["xmm0", "st7", "nope", ""]).into()],
            }),
            decode: g.below(2) == 0,
            decode_string_limit: [None, Some(0), Some(200), Some(65_537), Some(u32::MAX)]
                [g.below(5) as usize],
            queue_len: [0, 1, 1 << 20, (1 << 20) + 1, u32::MAX][g.below(5) as usize],
            deadline_ms: [None, Some(0), Some(1), Some(u32::MAX)][g.below(4) as usize],
            default_action: g.below(6) as i32 - 1,
            hold: (0..g.below(3)).map(|_| g.below(12) as i32 - 1).collect(),
            hold_syscalls: (0..g.below(3)).map(|_| pick(g, &names).into()).collect(),
            lossless: g.below(2) == 0,
            decode_fds: g.below(2) == 0,
            decode_hex: g.below(4) as u32,
            trace_paths: (0..[0, 1, 3, 300][g.below(4) as usize])
                .map(|_| match g.below(4) {
                    0 => b"/etc/passwd".to_vec().into(),
                    1 => Vec::new().into(),
                    2 => b"a\0b".to_vec().into(),
                    _ => vec![b'x'; 4097].into(),
                })
                .collect(),
            syscall_times: g.below(2) == 0,
            decode_xlat: g.below(4) as u32,
            decode_fd_details: g.below(2) == 0,
            decode_verbose: g.below(2) == 0,
        }
    }

    fn op(g: &mut Rng) -> pb::Op {
        use pb::op::Op;
        let big = [0u64, 1, 4096, 4097, u64::MAX][g.below(5) as usize];
        let o = match g.below(20) {
            0 => Op::ReadMemory(pb::ReadMemory {
                addr: big,
                len: g.below(6000) as u32,
            }),
            1 => Op::WriteMemory(pb::WriteMemory {
                addr: big,
                data: vec![0; g.below(5000) as usize].into(),
            }),
            2 => Op::ReadString(pb::ReadString {
                addr: big,
                max_len: g.below(6000) as u32,
            }),
            3 => Op::GetRegisters(pb::GetRegisters {
                names: vec![pick(g, &["rip", "nope", "xmm0", ""]).into()],
            }),
            4 => Op::SetRegisters(pb::SetRegisters {
                values: [(pick(g, &["rip", "nope", "fs_base"]).to_string(), big)].into(),
            }),
            5 => Op::UpdateRegisterBits(pb::UpdateRegisterBits {
                name: pick(g, &["eflags", "nope"]).into(),
                set: big,
                clear: big,
            }),
            6 => Op::GetEvents(pb::GetEvents {}),
            7 => Op::SetEvents(pb::SetEvents {
                engine_id: 0,
                events: vec![g.below(13) as i32 - 1],
                syscalls: vec![pick(g, &["openat", "nope"]).into()],
                // In range, out of range, and too many.
                pass_signals: (0..g.below(3) * 40)
                    .map(|_| g.below(70) as i32 - 2)
                    .collect(),
            }),
            8 => Op::InsertBreakpoint(pb::InsertBreakpoint {
                addr: big,
                symbol: pick(g, &["", "main", "libc:nope", "a:b:c+zz"]).into(),
            }),
            9 => Op::RemoveBreakpoint(pb::RemoveBreakpoint { addr: big }),
            10 => Op::Control(pb::Control {
                action: g.below(7) as i32 - 1,
                signal: [None, Some(-1), Some(0), Some(9), Some(65)][g.below(5) as usize],
            }),
            11 => Op::GetSyscall(pb::GetSyscall {}),
            12 => Op::SetSyscallReturn(pb::SetSyscallReturn { value: big as i64 }),
            13 => Op::GetRegisterBytes(pb::GetRegisterBytes {
                names: vec![pick(g, &["xmm0", "st7", "nope", ""]).into()],
            }),
            14 => Op::SetRegisterBytes(pb::SetRegisterBytes {
                values: [(
                    pick(g, &["xmm0", "st0", "rip", "nope"]).to_string(),
                    vec![0u8; g.below(20) as usize].into(),
                )]
                .into(),
            }),
            15 => Op::SendSignal(pb::SendSignal {
                // Out of range, or ignored by default (SIGCHLD, SIGURG,
                // SIGWINCH): the tracee must run on.
                signo: [-1, 0, 17, 23, 28, 65][g.below(6) as usize],
            }),
            // Watchpoints at addresses no program maps (or refused): what
            // they watch is never touched.
            16 => Op::InsertWatchpoint(pb::InsertWatchpoint {
                addr: [0x1000, 0x1003, big][g.below(3) as usize],
                len: [0, 1, 3, 8, u32::MAX][g.below(5) as usize],
                kind: g.below(5) as i32 - 1,
            }),
            18 => Op::SetStepRange(pb::SetStepRange {
                start: big,
                end: [0, big, u64::MAX][g.below(3) as usize],
            }),
            17 => Op::RemoveWatchpoint(pb::RemoveWatchpoint {
                addr: [0x1000, big][g.below(2) as usize],
                len: [1, 8][g.below(2) as usize],
                kind: g.below(5) as i32 - 1,
            }),
            _ => Op::ReadMaps(pb::ReadMaps {}),
        };
        pb::Op {
            op: (g.below(15) != 0).then_some(o),
        }
    }

    /// Damaged copies of `b`: cut, a byte changed, bytes appended.
    fn damaged(g: &mut Rng, b: &[u8]) -> Vec<Vec<u8>> {
        if b.is_empty() {
            return vec![];
        }
        let cut = g.below(b.len() as u64) as usize;
        let mut changed = b.to_vec();
        changed[cut] = g.next() as u8;
        let mut longer = b.to_vec();
        longer.extend((0..g.below(5)).map(|_| g.next() as u8));
        vec![b[..cut].to_vec(), changed, longer]
    }

    /// Bounded random run of both oracles: structured inputs at and past
    /// every limit, damaged copies of them, and plain random bytes.
    #[test]
    fn validation_never_panics_and_refuses_as_a_client_error() {
        let mut g = Rng(0x5eed_cafe_f00d_0001);
        for _ in 0..3000 {
            let s = spec(&mut g).encode_to_vec();
            engine_spec(&s);
            for d in damaged(&mut g, &s) {
                engine_spec(&d);
            }
            let r = pb::BatchRequest {
                engine_id: g.next(),
                tid: g.next() as u32,
                ops: (0..g.below(80)).map(|_| op(&mut g)).collect(),
                stop_on_error: g.below(2) == 0,
                interrupt: g.below(2) == 0,
            }
            .encode_to_vec();
            batch(&r);
            for d in damaged(&mut g, &r) {
                batch(&d);
                utrace_proto::fuzzing::decoders(&d);
            }
            let noise: Vec<u8> = (0..g.below(64)).map(|_| g.next() as u8).collect();
            engine_spec(&noise);
            batch(&noise);
            utrace_proto::fuzzing::decoders(&noise);
        }
    }
}
