//! `utrace regs [set]`: a thread's registers, through one batch on a
//! one-shot engine.

use clap::{Args, Subcommand};
use utrace_client::pb;

use crate::batch::{parse_i64, parse_u64, run_once, single_failure, Target};
use crate::server::Connection;

/// `utrace regs`: print registers, or `set` them.
#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    override_usage = "utrace regs -p PID [--tid TID] [NAME]...\n       utrace regs set -p PID [--tid TID] NAME=VALUE..."
)]
pub struct RegsCmd {
    #[command(subcommand)]
    pub set: Option<RegsSub>,
    #[command(flatten)]
    pub target: Target,
    /// Registers to print ("rip", "rsp", "eflags", "fs_base"…); default:
    /// every register of at most 8 bytes.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// `utrace regs set`.
#[derive(Subcommand, Debug)]
pub enum RegsSub {
    /// Write registers (decimal, 0x… hex, or negative decimal values).
    Set {
        #[command(flatten)]
        target: Target,
        /// NAME=VALUE, e.g. rax=0x1 or rdi=-1.
        #[arg(value_name = "NAME=VALUE", required = true, value_parser = assignment)]
        values: Vec<(String, u64)>,
    },
}

fn assignment(s: &str) -> Result<(String, u64), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!("{s:?}: give NAME=VALUE, e.g. rax=0x1"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{s:?}: the register name is missing"));
    }
    let v = parse_u64(value)
        // A negative value is its two's complement, as the register holds it.
        .or_else(|| parse_i64(value).map(|n| n as u64))
        .ok_or_else(|| format!("{value:?} is not a value: give decimal, 0x… hex or -decimal"))?;
    Ok((name.to_string(), v))
}

/// The order to print `values` in: `asked` as asked, else the usual x86-64
/// order (rax… rip, eflags, segments, bases, x87/SSE control, debug),
/// then any other name alphabetically.
fn ordered<'a>(
    values: &'a std::collections::HashMap<String, u64>,
    asked: &[String],
) -> Vec<(&'a str, u64)> {
    let find = |name: &str| {
        values
            .get_key_value(name)
            .or_else(|| values.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(k, v)| (k.as_str(), *v))
    };
    if !asked.is_empty() {
        return asked.iter().filter_map(|n| find(n)).collect();
    }
    let known = utrace_engines::arch::REGISTERS;
    let rank = |name: &str| {
        known
            .iter()
            .position(|d| d.name == name)
            .unwrap_or(known.len())
    };
    let mut all: Vec<(&str, u64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    all.sort_by(|a, b| rank(a.0).cmp(&rank(b.0)).then_with(|| a.0.cmp(b.0)));
    all
}

/// `name value` lines, values in hex, names padded to one column.
pub fn format_regs(regs: &[(&str, u64)]) -> String {
    let width = regs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    regs.iter()
        .map(|(n, v)| format!("{n:<width$} {v:#x}\n"))
        .collect()
}

/// `utrace regs [set]`.
pub async fn run(conn: &mut Connection, cmd: RegsCmd) -> Result<u8, String> {
    match cmd.set {
        Some(RegsSub::Set { target, values }) => {
            let op = pb::op::Op::SetRegisters(pb::SetRegisters {
                values: values.into_iter().collect(),
            });
            let results = run_once(conn, &target, vec![pb::Op { op: Some(op) }], false).await?;
            results.done(0).map_err(|f| single_failure(&f))?;
            Ok(0)
        }
        None if cmd.names.first().is_some_and(|n| n == "set") => {
            eprintln!("utrace: `set` goes right after `regs`: utrace regs set -p PID NAME=VALUE…");
            Ok(2)
        }
        None => {
            let op = pb::op::Op::GetRegisters(pb::GetRegisters {
                names: cmd.names.clone(),
            });
            let results = run_once(conn, &cmd.target, vec![pb::Op { op: Some(op) }], false).await?;
            let values = results.registers(0).map_err(|f| single_failure(&f))?;
            let regs = ordered(values, &cmd.names);
            if let Some(missing) = cmd
                .names
                .iter()
                .find(|n| !regs.iter().any(|(k, _)| k.eq_ignore_ascii_case(n.as_str())))
            {
                return Err(format!("the server did not answer register {missing:?}"));
            }
            crate::write_stdout(format_regs(&regs).as_bytes())?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments() {
        assert_eq!(assignment("rax=0x10"), Ok(("rax".into(), 16)));
        assert_eq!(assignment("rdi=-1"), Ok(("rdi".into(), u64::MAX)));
        assert_eq!(assignment("r8=7"), Ok(("r8".into(), 7)));
        assert!(assignment("rax").is_err());
        assert!(assignment("=1").is_err());
        assert!(assignment("rax=x").is_err());
    }

    #[test]
    fn register_order() {
        let values = [("rip", 3), ("rax", 1), ("zz", 9), ("rsp", 2), ("aa", 8)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        fn names(v: Vec<(&str, u64)>) -> Vec<&str> {
            v.into_iter().map(|(n, _)| n).collect()
        }
        assert_eq!(
            names(ordered(&values, &[])),
            ["rax", "rsp", "rip", "aa", "zz"]
        );
        assert_eq!(
            names(ordered(&values, &["RIP".into(), "rax".into()])),
            ["rip", "rax"]
        );
        assert_eq!(
            format_regs(&[("rip", 0x401000), ("eflags", 0x246)]),
            "rip    0x401000\neflags 0x246\n"
        );
    }
}
