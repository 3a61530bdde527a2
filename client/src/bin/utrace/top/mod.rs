//! `utrace top`: a live view of what the traced processes and their
//! engines are doing, as `top` is for CPUs: the threads with their stop
//! and syscall rates, state, mode and holders; each process's busiest
//! syscalls; each engine's client, report rate, drops and batch latency.
//!
//! Each refresh reads `GetActivity` from every server at once (a server
//! that fails or is slow is named in the header; the others are shown).
//! In a terminal the view is live (ratatui); with `-b`, or when standard
//! output is not a terminal, each refresh prints the tables as text, as
//! `top -b` does.

mod cells;
mod model;
mod view;

use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use utrace_client::Client;

use self::model::{History, Options, Reading, SortBy};

/// Syscalls asked for per process: enough that one leaving a short list
/// between two refreshes is rare (its rate would then count from zero).
const TOP_SYSCALLS: u32 = 64;

/// Syscall rows printed per refresh in batch mode (the busiest).
const BATCH_SYSCALLS: usize = 20;

/// `utrace top`'s options.
#[derive(clap::Args, Debug)]
pub struct TopCmd {
    /// Seconds between refreshes (as top's -d; at least 0.1).
    #[arg(short = 'd', long = "delay", value_name = "SECS", default_value = "1", value_parser = parse_delay)]
    delay: Duration,
    /// Leave after this many refreshes (default: until `q`).
    #[arg(short = 'n', long = "iterations", value_name = "N")]
    iterations: Option<u64>,
    /// Batch mode: print the tables as text at each refresh, with no
    /// terminal interface (as top -b). The default when standard output is
    /// not a terminal.
    #[arg(short = 'b', long = "batch")]
    batch: bool,
    /// Show only this process (key `p` changes it).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pid: Option<u32>,
    /// Sort the threads by stops (per second), syscalls (per second), pid
    /// or comm (key `s` cycles).
    #[arg(short = 's', long = "sort", value_name = "KEY", default_value = "stops", value_parser = SortBy::parse)]
    sort: SortBy,
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.1..=3600.0).contains(&secs) => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(format!("{s}: seconds between 0.1 and 3600")),
    }
}

/// A server to read, by the name the user gave it.
pub struct Node {
    pub name: String,
    pub client: Client,
}

/// Read every node at once; those that fail or take longer than `limit`
/// come back as errors, in the nodes' order.
async fn read_all(nodes: &[Node], limit: Duration) -> (Vec<Reading>, Vec<(String, String)>) {
    let asks = nodes.iter().map(|n| {
        let mut client = n.client.clone();
        (n.name.clone(), async move {
            client
                .activity(0, TOP_SYSCALLS)
                .await
                .map_err(|s| s.message().to_string())
        })
    });
    let mut readings = Vec::new();
    let mut errors = Vec::new();
    for (node, r) in crate::fanout::at_once(asks, limit).await {
        match r {
            Ok(activity) => readings.push(Reading { node, activity }),
            Err(e) => errors.push((node, e)),
        }
    }
    (readings, errors)
}

/// Run `utrace top` against `nodes`.
pub async fn run(nodes: Vec<Node>, cmd: TopCmd) -> Result<u8, String> {
    use std::io::IsTerminal;
    let opts = Options {
        sort: cmd.sort,
        pid: cmd.pid,
        nodes: nodes.len() > 1,
    };
    if cmd.batch || !std::io::stdout().is_terminal() {
        batch(&nodes, &cmd, opts).await
    } else {
        live(&nodes, &cmd, opts).await
    }
}

/// Batch mode: the tables as text, once per refresh.
async fn batch(nodes: &[Node], cmd: &TopCmd, opts: Options) -> Result<u8, String> {
    let mut history = History::default();
    let mut n = 0u64;
    loop {
        let (readings, errors) = read_all(nodes, cmd.delay.max(Duration::from_secs(2))).await;
        let all_failed = readings.is_empty() && !errors.is_empty();
        let screen = history.advance(readings, &opts);
        let mut out = format!("{}\n", cells::summary(&screen));
        for (node, why) in &errors {
            out.push_str(&format!("{node}: {why}\n"));
        }
        for (t, limit) in [
            (cells::tasks(&screen, &opts), usize::MAX),
            (cells::syscalls(&screen, &opts), BATCH_SYSCALLS),
            (cells::engines(&screen, &opts), usize::MAX),
        ] {
            out.push('\n');
            out.push_str(&cells::text(&t, limit));
        }
        out.push('\n');
        crate::write_stdout(out.as_bytes())?;
        if all_failed && n == 0 {
            return Err("no server answered".into());
        }
        n += 1;
        if cmd.iterations.is_some_and(|max| n >= max) {
            return Ok(0);
        }
        tokio::time::sleep(cmd.delay).await;
    }
}

/// The terminal's keys, read on a thread of their own (crossterm's reads
/// block) and sent to the view; the thread ends when the view is gone.
fn keys() -> tokio::sync::mpsc::Receiver<KeyEvent> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        while !tx.is_closed() {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => return,
            }
            match event::read() {
                Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                    if tx.blocking_send(k).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

/// What a key did.
enum KeyResult {
    Quit,
    /// Redraw (the options changed).
    Redraw,
    /// Read again now (the refresh interval changed).
    Refresh,
}

/// The live view's state besides the options.
struct Live {
    delay: Duration,
    /// The pid being typed after `p`.
    prompt: Option<String>,
}

impl Live {
    fn key(&mut self, k: KeyEvent, opts: &mut Options) -> KeyResult {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return KeyResult::Quit;
        }
        if let Some(typed) = self.prompt.as_mut() {
            match k.code {
                KeyCode::Char(c) if c.is_ascii_digit() && typed.len() < 10 => typed.push(c),
                KeyCode::Backspace => {
                    typed.pop();
                }
                KeyCode::Enter => {
                    opts.pid = typed.parse().ok().filter(|p| *p > 0);
                    self.prompt = None;
                }
                KeyCode::Esc => self.prompt = None,
                _ => {}
            }
            return KeyResult::Redraw;
        }
        match k.code {
            KeyCode::Char('q') => KeyResult::Quit,
            KeyCode::Char('s') => {
                opts.sort = opts.sort.next();
                KeyResult::Redraw
            }
            KeyCode::Char('p') | KeyCode::Char('/') => {
                self.prompt = Some(String::new());
                KeyResult::Redraw
            }
            KeyCode::Esc => {
                opts.pid = None;
                KeyResult::Redraw
            }
            KeyCode::Char('+') => {
                self.delay = (self.delay * 2).min(Duration::from_secs(60));
                KeyResult::Refresh
            }
            KeyCode::Char('-') => {
                self.delay = (self.delay / 2).max(Duration::from_millis(100));
                KeyResult::Refresh
            }
            _ => KeyResult::Redraw,
        }
    }
}

/// The live view, until `q`, Ctrl-C or the last of `-n` refreshes.
async fn live(nodes: &[Node], cmd: &TopCmd, mut opts: Options) -> Result<u8, String> {
    let mut terminal =
        ratatui::try_init().map_err(|e| format!("cannot take over the terminal: {e}"))?;
    let result = live_loop(&mut terminal, nodes, cmd, &mut opts).await;
    ratatui::restore();
    result
}

async fn live_loop(
    terminal: &mut ratatui::DefaultTerminal,
    nodes: &[Node],
    cmd: &TopCmd,
    opts: &mut Options,
) -> Result<u8, String> {
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let mut keys = keys();
    let mut state = Live {
        delay: cmd.delay,
        prompt: None,
    };
    let mut history = History::default();
    let mut errors = Vec::new();
    let mut refreshes = 0u64;
    let mut next = tokio::time::Instant::now();
    loop {
        let read_now = tokio::select! {
            _ = tokio::time::sleep_until(next) => true,
            k = keys.recv() => match k {
                None => return Err("the terminal's input ended".into()),
                Some(k) => match state.key(k, opts) {
                    KeyResult::Quit => return Ok(0),
                    KeyResult::Redraw => false,
                    KeyResult::Refresh => true,
                },
            },
        };
        let screen = if read_now {
            let readings;
            (readings, errors) = read_all(nodes, state.delay.max(Duration::from_secs(2))).await;
            refreshes += 1;
            next = tokio::time::Instant::now() + state.delay;
            history.advance(readings, opts)
        } else {
            history.screen(opts)
        };
        let status = view::Status {
            servers: &names,
            delay: state.delay,
            errors: &errors,
            prompt: state.prompt.as_deref(),
        };
        terminal
            .draw(|f| view::draw(f, &screen, opts, &status))
            .map_err(|e| format!("cannot draw: {e}"))?;
        if read_now && cmd.iterations.is_some_and(|max| refreshes >= max) {
            return Ok(0);
        }
    }
}
