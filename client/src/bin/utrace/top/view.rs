//! The live view: a header, the threads, and below them the busiest
//! syscalls beside the engines, drawn with ratatui.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::cells;
use super::model::{Options, Screen};

/// What the header says besides the tables.
pub struct Status<'a> {
    pub servers: &'a [String],
    pub delay: std::time::Duration,
    /// Servers that did not answer the last refresh, and why.
    pub errors: &'a [(String, String)],
    /// The pid being typed after `p`, if any.
    pub prompt: Option<&'a str>,
}

/// Draw `screen` on `f`.
pub fn draw(f: &mut Frame<'_>, screen: &Screen, opts: &Options, status: &Status<'_>) {
    let head_lines = 2 + status.errors.len().min(3) as u16;
    let [head, tasks, bottom] = Layout::vertical([
        Constraint::Length(head_lines),
        Constraint::Min(4),
        Constraint::Length(12),
    ])
    .areas(f.area());
    f.render_widget(header(screen, opts, status), head);
    table(f, tasks, &cells::tasks(screen, opts));
    let [calls, engines] =
        Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(bottom);
    table(f, calls, &cells::syscalls(screen, opts));
    table(f, engines, &cells::engines(screen, opts));
}

fn header<'a>(screen: &Screen, opts: &Options, status: &Status<'a>) -> Paragraph<'a> {
    let servers = match status.servers {
        [one] => one.clone(),
        many => format!("{} servers", many.len()),
    };
    let first = format!(
        "{} · {servers} · every {:.1}s",
        cells::summary(screen),
        status.delay.as_secs_f64(),
    );
    let second = match status.prompt {
        Some(typed) => format!("show pid (Enter to apply, Esc to cancel): {typed}_"),
        None => {
            let filter = opts
                .pid
                .map(|p| format!(" · pid {p} only"))
                .unwrap_or_default();
            format!(
                "sorted by {}{filter} · q quit · s sort · p pid · Esc all · +/- refresh",
                opts.sort.name()
            )
        }
    };
    let mut lines = vec![Line::from(first).bold(), Line::from(second).dim()];
    for (node, why) in status.errors.iter().take(3) {
        lines.push(Line::from(format!("{node}: {why}")).red());
    }
    Paragraph::new(lines)
}

/// `t` in `area`, its columns as wide as their widest cell shown.
fn table(f: &mut Frame<'_>, area: Rect, t: &cells::Table) {
    let visible = area.height.saturating_sub(3) as usize;
    let mut width: Vec<u16> = t.header.iter().map(|h| h.chars().count() as u16).collect();
    for row in t.rows.iter().take(visible) {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count() as u16);
        }
    }
    let cell = |text: &str, right: bool| {
        let line = Line::from(text.to_string());
        Cell::from(if right {
            line.alignment(Alignment::Right)
        } else {
            line
        })
    };
    let header = Row::new(t.header.iter().zip(&t.right).map(|(h, r)| cell(h, *r)))
        .style(Style::default().add_modifier(Modifier::REVERSED));
    let rows = t
        .rows
        .iter()
        .take(visible)
        .map(|row| Row::new(row.iter().zip(&t.right).map(|(c, r)| cell(c, *r))));
    let title = format!(" {} ({}) ", t.title, t.rows.len());
    let widget = Table::new(rows, width.into_iter().map(Constraint::Length))
        .header(header)
        .column_spacing(2)
        .block(Block::bordered().title(title));
    f.render_widget(widget, area);
}
