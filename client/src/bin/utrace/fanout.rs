//! Several servers at once: `utrace --server A --server B … ps|top|trace|probe`
//! (or `UTRACE_SERVERS=A,B`) runs the same request on every server and
//! merges the answers, as pdsh or `kubectl` across nodes would:
//!
//! - `ps`: one table, each row with its server;
//! - `top`: one view, each row with its server ([`crate::top`]);
//! - `trace`: the program runs on every server; each line (the trace's and
//!   the program's own output) starts with `[SERVER]`; its stdin is empty;
//! - `probe`: the probe runs on every server; events' lines carry their
//!   server, and the maps are merged ([`crate::probe`]).
//!
//! Every server is asked at once. One that cannot be reached, fails or
//! does not answer in time is named on stderr, and the others are shown;
//! the exit status is then at least 1.

use std::time::Duration;

use crate::server::Connection;
use crate::{probe, show, top, trace, Command};

/// How long connecting, or a one-shot request (`ps`), may take per server.
const PER_SERVER: Duration = Duration::from_secs(10);

/// The servers named: `--server` (repeated, or comma-separated), else
/// `UTRACE_SERVERS` (comma-separated); each once, in order.
pub fn servers(given: &[String]) -> Vec<String> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let mut out: Vec<String> = given.iter().flat_map(|s| split(s)).collect();
    if out.is_empty() {
        if let Ok(many) = std::env::var("UTRACE_SERVERS") {
            out = split(&many);
        }
    }
    // A server named twice is asked once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.clone()));
    out
}

/// A server's name in lines and tables: its URI without the scheme.
pub fn node_name(uri: &str) -> String {
    uri.split_once("://")
        .map_or(uri, |(_, rest)| rest)
        .trim_end_matches('/')
        .to_string()
}

/// Run `cmd` on every server of `uris`.
pub async fn run(
    uris: Vec<String>,
    tls: Option<utrace_client::TlsOptions>,
    cmd: Command,
    prepared: Option<probe::Prepared>,
) -> Result<u8, String> {
    let name = match &cmd {
        Command::Ps { .. } | Command::Top(_) | Command::Trace(_) | Command::Probe(_) => None,
        Command::Info { .. } => Some("info"),
        Command::Batch(_) => Some("batch"),
        Command::Mem { .. } => Some("mem"),
        Command::Regs(_) => Some("regs"),
        Command::Break(_) => Some("break"),
        Command::Gdb(_) => Some("gdb"),
        Command::Completions { .. } => Some("completions"),
    };
    if let Some(name) = name {
        return Err(format!(
            "{name} acts on one server, and {} were given (--server or UTRACE_SERVERS): \
             name one; ps, top, trace and probe take several",
            uris.len()
        ));
    }
    if let Command::Ps { pid } = cmd {
        return ps(&uris, tls, pid.unwrap_or(0)).await;
    }
    let (mut conns, unreachable) = connect_all(&uris, tls).await;
    if conns.is_empty() {
        return Err("no server could be reached".into());
    }
    let failed = u8::from(unreachable > 0);
    let code = match cmd {
        Command::Top(t) => {
            let nodes = conns
                .iter()
                .map(|c| top::Node {
                    name: node_name(&c.uri),
                    client: c.client.clone(),
                })
                .collect();
            top::run(nodes, t).await
        }
        Command::Trace(t) => trace_all(conns, t.into_options()?).await,
        Command::Probe(_) => match prepared {
            Some(p) => {
                for c in &mut conns {
                    c.uri = node_name(&c.uri);
                }
                let mut all: Vec<&mut Connection> = conns.iter_mut().collect();
                probe::run(&mut all, p).await
            }
            None => Err("probe: the program was not compiled".into()),
        },
        _ => Ok(0),
    }?;
    Ok(code.max(failed))
}

/// Run `asks` (one per server, with its name) at once, each on a task of
/// its own and bounded by `limit`; the answers in the order asked.
pub async fn at_once<T, F>(
    asks: impl IntoIterator<Item = (String, F)>,
    limit: Duration,
) -> Vec<(String, Result<T, String>)>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, (name, ask)) in asks.into_iter().enumerate() {
        set.spawn(async move {
            let r = tokio::time::timeout(limit, ask)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} s", limit.as_secs_f64())));
            (i, name, r)
        });
    }
    let mut answers = set.join_all().await;
    answers.sort_by_key(|(i, _, _)| *i);
    answers.into_iter().map(|(_, name, r)| (name, r)).collect()
}

/// Connect to every server at once; those that fail are named on stderr.
async fn connect_all(
    uris: &[String],
    tls: Option<utrace_client::TlsOptions>,
) -> (Vec<Connection>, usize) {
    let asks = uris.iter().map(|uri| {
        let (uri, tls) = (uri.clone(), tls.clone());
        (node_name(&uri), async move {
            Connection::open(Some(&uri), tls.as_ref()).await
        })
    });
    let mut conns = Vec::new();
    let mut failed = 0;
    for (name, c) in at_once(asks, PER_SERVER).await {
        match c {
            Ok(c) => conns.push(c),
            Err(e) => {
                failed += 1;
                crate::say!("utrace: {name}: cannot connect: {e}");
            }
        }
    }
    (conns, failed)
}

/// `ps` on every server: one table with a SERVER column.
async fn ps(
    uris: &[String],
    tls: Option<utrace_client::TlsOptions>,
    pid: u32,
) -> Result<u8, String> {
    // Each server connected and asked in one go: the slowest is waited
    // for once.
    let asks = uris.iter().map(|uri| {
        let (uri, tls) = (uri.clone(), tls.clone());
        (node_name(&uri), async move {
            let conn = Connection::open(Some(&uri), tls.as_ref())
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            let mut client = conn.client.clone();
            client
                .list_tasks(pid)
                .await
                .map_err(|s| s.message().to_string())
        })
    });
    let mut tables = Vec::new();
    let mut code = 0;
    for (name, r) in at_once(asks, PER_SERVER).await {
        match r {
            Ok(tasks) => tables.push((name, tasks)),
            Err(e) => {
                code = 1;
                crate::say!("utrace: {name}: {e}");
            }
        }
    }
    if tables.is_empty() {
        return Err("no server answered".into());
    }
    crate::write_stdout(show::servers_tasks_table(&tables, true).as_bytes())?;
    Ok(code)
}

/// `trace` on every server at once, each line with its server; the exit
/// status is the highest of theirs (1 for a server that failed).
async fn trace_all(conns: Vec<Connection>, opts: trace::Options) -> Result<u8, String> {
    if opts.output.is_some() {
        return Err(
            "trace: -o with several servers: the lines go to stderr, each with its server".into(),
        );
    }
    if !opts.inject.is_empty() {
        return Err(
            "trace: -e inject= with several servers is not supported: inject on one".into(),
        );
    }
    let mut set = tokio::task::JoinSet::new();
    for mut conn in conns {
        let mut opts = opts.clone();
        let name = node_name(&conn.uri);
        opts.node = Some(name.clone());
        set.spawn(async move {
            let r = trace::run(&mut conn, opts).await;
            conn.close().await;
            (name, r)
        });
    }
    let mut code = 0;
    while let Some(done) = set.join_next().await {
        match done {
            Ok((_, Ok(c))) => code = code.max(c),
            Ok((name, Err(e))) => {
                code = code.max(1);
                crate::say!("utrace: {name}: {e}");
            }
            Err(e) => {
                code = code.max(1);
                crate::say!("utrace: a server's trace failed: {e}");
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_from_flags_or_the_environment() {
        let given = vec![
            "unix:///a.sock,unix:///b.sock".to_string(),
            "https://h:1".into(),
            "unix:///a.sock".into(),
        ];
        assert_eq!(
            servers(&given),
            ["unix:///a.sock", "unix:///b.sock", "https://h:1"]
        );
        assert_eq!(
            node_name("unix:///run/utraced/utraced.sock"),
            "/run/utraced/utraced.sock"
        );
        assert_eq!(node_name("https://node-3:7070/"), "node-3:7070");
    }
}
