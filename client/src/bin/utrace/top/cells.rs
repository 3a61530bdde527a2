//! The three tables as header and cell text, shared by the live view and
//! batch mode (`-b`), so both show the same columns.

use super::model::{EngineRow, Options, Screen, SyscallRow, TaskRow};

/// A table: its title, column names, and whether each is right-aligned.
pub struct Table {
    pub title: &'static str,
    pub header: Vec<&'static str>,
    pub right: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

/// A rate: `-` before there is one, one decimal below ten.
pub fn rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r < 10.0 => format!("{r:.1}"),
        Some(r) => format!("{r:.0}"),
    }
}

fn micros(us: Option<f64>) -> String {
    match us {
        None => "-".into(),
        Some(us) if us < 1000.0 => format!("{us:.0}µs"),
        Some(us) => format!("{:.1}ms", us / 1000.0),
    }
}

/// The first line: counts and the total stop rate.
pub fn summary(screen: &Screen) -> String {
    let n = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "utrace top · {} · {} · {} stops/s",
        n(screen.tasks.len(), "thread", "threads"),
        n(screen.engines.len(), "engine", "engines"),
        rate(screen.total_stops)
    )
}

/// Prepend the server column when there are several servers.
fn with_node(opts: &Options, node: &str, mut cells: Vec<String>) -> Vec<String> {
    if opts.nodes {
        cells.insert(0, node.to_string());
    }
    cells
}

fn head(
    opts: &Options,
    mut header: Vec<&'static str>,
    mut right: Vec<bool>,
) -> (Vec<&'static str>, Vec<bool>) {
    if opts.nodes {
        header.insert(0, "SERVER");
        right.insert(0, false);
    }
    (header, right)
}

/// The traced threads.
pub fn tasks(screen: &Screen, opts: &Options) -> Table {
    let (header, right) = head(
        opts,
        vec![
            "PID",
            "TID",
            "COMM",
            "STATE",
            "MODE",
            "STOPS/S",
            "SYS STOPS/S",
            "ENGINES",
            "HELD BY",
        ],
        vec![true, true, false, false, false, true, true, true, false],
    );
    let rows = screen
        .tasks
        .iter()
        .map(|t: &TaskRow| {
            with_node(
                opts,
                &t.node,
                vec![
                    t.pid.to_string(),
                    t.tid.to_string(),
                    t.comm.clone(),
                    t.state.clone(),
                    t.mode.clone(),
                    rate(t.stops),
                    rate(t.syscalls),
                    t.engines.to_string(),
                    t.held_by.clone(),
                ],
            )
        })
        .collect();
    Table {
        title: "Traced threads",
        header,
        right,
        rows,
    }
}

/// The busiest syscalls.
pub fn syscalls(screen: &Screen, opts: &Options) -> Table {
    let (header, right) = head(
        opts,
        vec!["SYSCALL", "PID", "CALLS/S", "TOTAL"],
        vec![false, true, true, true],
    );
    let rows = screen
        .syscalls
        .iter()
        .map(|s: &SyscallRow| {
            with_node(
                opts,
                &s.node,
                vec![
                    s.name.clone(),
                    s.pid.to_string(),
                    rate(s.rate),
                    s.total.to_string(),
                ],
            )
        })
        .collect();
    Table {
        title: "Busiest syscalls",
        header,
        right,
        rows,
    }
}

/// The engines and their clients.
pub fn engines(screen: &Screen, opts: &Options) -> Table {
    let (header, right) = head(
        opts,
        vec![
            "ENGINE",
            "PID",
            "KIND",
            "CLIENT",
            "REPORTS/S",
            "DROPPED",
            "DROPS/S",
            "BATCHES/S",
            "BATCH AVG",
            "BATCH MAX",
        ],
        vec![true, true, false, false, true, true, true, true, true, true],
    );
    let rows = screen
        .engines
        .iter()
        .map(|e: &EngineRow| {
            let client = match e.client_pid {
                0 => format!("uid {}", e.client_uid),
                pid => format!("pid {pid} uid {}", e.client_uid),
            };
            with_node(
                opts,
                &e.node,
                vec![
                    format!("#{}", e.id),
                    e.pid.to_string(),
                    e.kind.clone(),
                    client,
                    rate(e.reports),
                    e.dropped.to_string(),
                    rate(e.dropping),
                    rate(e.batches),
                    micros(e.batch_mean_us),
                    micros(e.batch_max_us),
                ],
            )
        })
        .collect();
    Table {
        title: "Engines",
        header,
        right,
        rows,
    }
}

/// `table` as aligned text lines (batch mode), its first `limit` rows.
pub fn text(table: &Table, limit: usize) -> String {
    let n = table.header.len();
    let mut width: Vec<usize> = table.header.iter().map(|h| h.chars().count()).collect();
    for row in table.rows.iter().take(limit) {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, c) in cells.enumerate() {
            let pad = width[i].saturating_sub(c.chars().count());
            if i > 0 {
                out.push_str("  ");
            }
            if table.right[i] {
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            } else {
                out.push_str(c);
                if i + 1 < n {
                    out.push_str(&" ".repeat(pad));
                }
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut table.header.iter().copied());
    for row in table.rows.iter().take(limit) {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tables_align_their_columns() {
        let t = Table {
            title: "t",
            header: vec!["NAME", "N"],
            right: vec![false, true],
            rows: vec![
                vec!["write".into(), "12".into()],
                vec!["a".into(), "3".into()],
            ],
        };
        assert_eq!(text(&t, 10), "NAME    N\nwrite  12\na       3\n");
        assert_eq!(text(&t, 1), "NAME    N\nwrite  12\n");
        assert_eq!(rate(Some(2.25)), "2.2");
        assert_eq!(rate(Some(1234.4)), "1234");
        assert_eq!(rate(None), "-");
    }
}
