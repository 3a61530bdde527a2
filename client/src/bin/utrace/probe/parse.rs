//! The bpftrace subset of `utrace probe`, compiled here (the server has no
//! parser): a lexer and a recursive-descent parser that turn a program
//! straight into a [`pb::ProbeRequest`] (its clauses, snapshot interval
//! and limits; the target is the command line's) and into what runs in
//! this process: the BEGIN, END and interval blocks, and how each
//! clause's events print.
//!
//! ```text
//! program   := block*
//! block     := point (',' point)* ['/' expr '/'] '{' [stmt (';' stmt)*] [';'] '}'
//! point     := BEGIN | END | interval:(s|ms|us|hz):N
//!            | uprobe:[BIN:]FUNC[+OFF] | uprobe:BIN:ADDR | uretprobe:[BIN:]FUNC
//!            | tracepoint:syscalls:sys_(enter|exit)_NAME
//!            | tracepoint:raw_syscalls:sys_(enter|exit) | syscall:NAME:(entry|exit)
//! stmt      := @map['[' expr (',' expr)* ']'] '=' agg '(' args ')'
//!            | printf(STRING, expr...) | time([STRING]) | exit()
//!            | print(@map [, TOP [, DIV]]) | clear(@map) | zero(@map)
//! agg       := count | sum | min | max | avg | stats | hist | lhist
//! expr      := C's binary operators, precedence and parentheses, unary - ! ~,
//!              integers, strings, pid tid comm nsecs retval probe arg0..arg5
//!              args->NAME, reg("NAME"), str(expr [, N])
//! ```
//!
//! Comments are C's and C++'s; a first line `#!…` is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use utrace_client::pb;
use utrace_client::pb::probe_expr::Expr as E;
use utrace_client::pb::probe_value::Value;
use utrace_client::pb::ProbeAggregation as Agg;
use utrace_client::pb::ProbeBinaryOp as Bin;
use utrace_client::pb::ProbeUnaryOp as Un;

use super::print::{check_format, ArgKind, Lhist};

/// A place in the program: line and column, from 1 (a column counts
/// characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    /// The line, from 1.
    pub line: u32,
    /// The column, from 1.
    pub col: u32,
}

/// Why a program does not compile, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Where.
    pub pos: Pos,
    /// What, e.g. "expected ')' after str's argument, found '{'".
    pub msg: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.pos.line, self.pos.col, self.msg)
    }
}

/// A map as the program's updates make it (every update of a map agrees).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDecl {
    /// Its aggregation.
    pub agg: Agg,
    /// How many keys (0: a single value).
    pub keys: usize,
    /// lhist's bounds.
    pub lhist: Option<Lhist>,
    /// Each key's kind.
    pub key_kinds: Vec<ArgKind>,
}

/// What a clause's event prints, in order; its values are taken in turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// printf(format, …): the next `args` values of the event.
    Printf {
        /// The format.
        format: String,
        /// How many values it takes.
        args: usize,
    },
    /// time(format): the time of day now.
    Time(String),
    /// exit(): end the probe (detach).
    Exit,
}

/// A statement of a BEGIN, END or interval block (they run here).
#[derive(Clone, Debug, PartialEq)]
pub enum ClientAction {
    /// printf with constant arguments.
    Printf {
        /// The format.
        format: String,
        /// Its arguments.
        args: Vec<pb::ProbeValue>,
    },
    /// print(@map, top, div) (0: all, 1).
    Print {
        /// The map.
        map: String,
        /// The largest `top` entries only (0: all).
        top: u32,
        /// Divide values by this (0: 1).
        div: u32,
    },
    /// clear(@map) (or zero(@map)).
    Clear(String),
    /// time(format).
    Time(String),
    /// exit().
    Exit,
}

/// A compiled program.
#[derive(Clone, Debug)]
pub struct Program {
    /// The request, without its target.
    pub request: pb::ProbeRequest,
    /// For each clause of the request, what its events print.
    pub events: Vec<Vec<EventAction>>,
    /// BEGIN: run once the probe has started.
    pub begin: Vec<ClientAction>,
    /// END: run at the end, with the final snapshot.
    pub end: Vec<ClientAction>,
    /// The interval block: run at each periodic snapshot.
    pub interval: Vec<ClientAction>,
    /// The maps.
    pub maps: BTreeMap<String, MapDecl>,
    /// Probes, as bpftrace counts them for "Attaching N probes...".
    pub probes: usize,
    /// For each clause of the request, where it is in the program.
    pub sources: Vec<ClauseSource>,
}

/// Where a clause comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClauseSource {
    /// Its block's first point.
    pub block: Pos,
    /// Its points: as written, and where.
    pub points: Vec<(String, Pos)>,
}

impl Program {
    /// A server's message about the request, with the program's words:
    /// `clauses[1].points[0]: no symbol…` becomes
    /// `uprobe:libc:nope (3:1): no symbol…`.
    pub fn explain(&self, msg: &str) -> String {
        let index = |s: &str, prefix: &str| -> Option<(usize, usize)> {
            let rest = s.strip_prefix(prefix)?;
            let close = rest.find(']')?;
            Some((rest[..close].parse().ok()?, prefix.len() + close + 1))
        };
        let Some((c, used)) = index(msg, "clauses[") else {
            return msg.to_string();
        };
        let Some(source) = self.sources.get(c) else {
            return msg.to_string();
        };
        let rest = &msg[used..];
        if let Some((p, used)) = index(rest, ".points[") {
            if let Some((text, pos)) = source.points.get(p) {
                // The field path within the point says nothing more.
                let tail = &rest[used..];
                let tail = match tail.find(':') {
                    Some(colon) if tail.starts_with('.') => &tail[colon..],
                    _ => tail,
                };
                return format!("{text} ({}:{}){tail}", pos.line, pos.col);
            }
        }
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        format!(
            "the probe at {}:{}: {rest}",
            source.block.line, source.block.col
        )
    }
}

/// Most clauses, points per clause, values per event, keys per map (the
/// protocol's bounds).
const MAX_CLAUSES: usize = 64;
const MAX_POINTS: usize = 16;
const MAX_VALUES: usize = 16;
const MAX_KEYS: usize = 8;

/// Compile `src`.
pub fn compile(src: &str) -> Result<Program, Error> {
    let mut p = Parser::new(src);
    while p.more_blocks()? {
        p.block()?;
    }
    p.finish()
}

// ---------------------------------------------------------------- lexer

#[derive(Clone, Copy, Debug)]
struct Mark {
    off: usize,
    pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Int(u64),
    Str(String),
    /// `@name` or `@`.
    Map(String),
    /// `$name`.
    Var(String),
    Punct(&'static str),
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) | Tok::Map(s) | Tok::Var(s) => write!(f, "'{s}'"),
            Tok::Int(n) => write!(f, "'{n}'"),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Punct(p) => write!(f, "'{p}'"),
            Tok::Eof => write!(f, "the end of the program"),
        }
    }
}

const PUNCTS: [&str; 45] = [
    "<<=", ">>=", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "->", "++", "--", "+=", "-=",
    "*=", "/=", "%=", "&=", "|=", "^=", "+", "-", "*", "/", "%", "&", "|", "^", "!", "~", "<", ">",
    "=", "(", ")", "{", "}", "[", "]", ",", ";", ":", "?", ".",
];

fn err(at: Mark, msg: impl Into<String>) -> Error {
    Error {
        pos: at.pos,
        msg: msg.into(),
    }
}

struct Lexer<'a> {
    src: &'a str,
    at: Mark,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Lexer<'a> {
        let mut l = Lexer {
            src,
            at: Mark {
                off: 0,
                pos: Pos { line: 1, col: 1 },
            },
        };
        if src.starts_with("#!") {
            while let Some(c) = l.bump() {
                if c == '\n' {
                    break;
                }
            }
        }
        l
    }

    fn peek(&self) -> Option<char> {
        self.src[self.at.off..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.src[self.at.off..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at.off += c.len_utf8();
        if c == '\n' {
            self.at.pos.line += 1;
            self.at.pos.col = 1;
        } else {
            self.at.pos.col += 1;
        }
        Some(c)
    }

    /// Skip white space and comments.
    fn skip_trivia(&mut self) -> Result<(), Error> {
        loop {
            match (self.peek(), self.peek2()) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.at;
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => return Err(err(start, "unterminated comment")),
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// A probe point's text, as it is: up to white space, ',', '{', a
    /// quote, or a '/' past its last ':' (a predicate).
    fn point_text(&mut self) -> Result<(String, Mark), Error> {
        self.skip_trivia()?;
        let start = self.at;
        let rest = &self.src[start.off..];
        let mut end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | '{' | '"'))
            .unwrap_or(rest.len());
        let text = &rest[..end];
        let last_colon = text.rfind(':').map_or(0, |i| i + 1);
        if let Some(slash) = text[last_colon..].find('/') {
            end = last_colon + slash;
        }
        let text = rest[..end].to_string();
        for _ in text.chars() {
            self.bump();
        }
        Ok((text, start))
    }

    fn token(&mut self) -> Result<(Tok, Mark), Error> {
        self.skip_trivia()?;
        let start = self.at;
        let Some(c) = self.peek() else {
            return Ok((Tok::Eof, start));
        };
        let rest = &self.src[start.off..];
        let word_len = |s: &str| {
            s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(s.len())
        };
        let tok = if c.is_ascii_digit() {
            let text = &rest[..word_len(rest)];
            let n =
                parse_u64(text).ok_or_else(|| err(start, format!("invalid number '{text}'")))?;
            self.advance(text.len());
            Tok::Int(n)
        } else if c.is_ascii_alphabetic() || c == '_' {
            let text = &rest[..word_len(rest)];
            self.advance(text.len());
            Tok::Ident(text.to_string())
        } else if c == '@' || c == '$' {
            let text = &rest[1..1 + word_len(&rest[1..])];
            self.advance(1 + text.len());
            if c == '@' {
                Tok::Map(format!("@{text}"))
            } else {
                Tok::Var(format!("${text}"))
            }
        } else if c == '"' {
            Tok::Str(self.string(start)?)
        } else if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            self.advance(p.len());
            Tok::Punct(p)
        } else {
            return Err(err(start, format!("unexpected character '{c}'")));
        };
        Ok((tok, start))
    }

    /// Advance over `n` bytes of ASCII.
    fn advance(&mut self, n: usize) {
        let end = self.at.off + n;
        while self.at.off < end && self.bump().is_some() {}
    }

    /// A string literal, its escapes resolved.
    fn string(&mut self, start: Mark) -> Result<String, Error> {
        self.bump();
        let mut out = String::new();
        loop {
            let at = self.at;
            match self.bump() {
                None | Some('\n') => return Err(err(start, "unterminated string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('\\') => out.push('\\'),
                    Some('"') => out.push('"'),
                    Some('\'') => out.push('\''),
                    Some('x') => {
                        let mut v = 0u32;
                        for _ in 0..2 {
                            match self.peek().and_then(|c| c.to_digit(16)) {
                                Some(d) => {
                                    v = v * 16 + d;
                                    self.bump();
                                }
                                None => break,
                            }
                        }
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    Some(d @ '0'..='7') => {
                        let mut v = d.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match self.peek().and_then(|c| c.to_digit(8)) {
                                Some(d) => {
                                    v = v * 8 + d;
                                    self.bump();
                                }
                                None => break,
                            }
                        }
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    Some(c) => return Err(err(at, format!("unknown escape '\\{c}'"))),
                    None => return Err(err(start, "unterminated string")),
                },
                Some(c) => out.push(c),
            }
        }
    }
}

/// A decimal or 0x-hexadecimal number.
fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

// --------------------------------------------------------------- parser

/// Where a block runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// In the server: uprobes and syscalls.
    Server,
    Begin,
    End,
    Interval,
}

/// A server-side point, as expressions need to know it.
#[derive(Clone, Debug)]
enum PointInfo {
    /// A function (uprobe), or its return.
    Function { ret: bool },
    /// A syscall's entry or exit; `name` empty for all of them.
    Syscall { name: String, exit: bool },
    /// A process event, by its tracepoint's name (`signal_deliver`,
    /// `sched_process_fork`, `sched_process_exit`, `sched_process_exec`).
    Process { event: &'static str },
}

/// A parsed point.
enum Point {
    Begin,
    End,
    Interval(u32),
    Server(pb::ProbePoint, PointInfo),
}

/// The block being parsed.
struct Ctx {
    kind: Kind,
    points: Vec<PointInfo>,
}

/// A typed expression.
struct Ex {
    e: pb::ProbeExpr,
    kind: ArgKind,
}

fn ex(e: E) -> pb::ProbeExpr {
    pb::ProbeExpr { expr: Some(e) }
}

fn int_ex(e: E) -> Ex {
    Ex {
        e: ex(e),
        kind: ArgKind::Int,
    }
}

/// What a block's statements make.
#[derive(Default)]
struct Out {
    updates: Vec<pb::MapUpdate>,
    values: Vec<pb::ProbeExpr>,
    events: Vec<EventAction>,
    client: Vec<ClientAction>,
}

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<(Tok, Mark)>,
    /// Paren depth.
    depth: u32,
    /// In a predicate: the depth at which '/' ends it.
    pred_depth: Option<u32>,
    clauses: Vec<(pb::ProbeClause, Vec<EventAction>, ClauseSource)>,
    begin: Vec<ClientAction>,
    end: Vec<ClientAction>,
    interval: Option<(u32, Vec<ClientAction>, Mark)>,
    maps: BTreeMap<String, (MapDecl, Mark)>,
    /// Maps print() or clear() name, to check at the end.
    used: Vec<(String, Mark)>,
    probes: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Parser<'a> {
        Parser {
            lex: Lexer::new(src),
            peeked: None,
            depth: 0,
            pred_depth: None,
            clauses: Vec::new(),
            begin: Vec::new(),
            end: Vec::new(),
            interval: None,
            maps: BTreeMap::new(),
            used: Vec::new(),
            probes: 0,
        }
    }

    fn peek(&mut self) -> Result<&(Tok, Mark), Error> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.token()?);
        }
        Ok(self.peeked.get_or_insert((Tok::Eof, self.lex.at)))
    }

    fn peek_is(&mut self, p: &str) -> Result<bool, Error> {
        Ok(matches!(&self.peek()?.0, Tok::Punct(q) if *q == p))
    }

    fn next(&mut self) -> Result<(Tok, Mark), Error> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.token(),
        }
    }

    /// The next token is `p`, or an error "expected 'p' WHY, found …".
    fn expect(&mut self, p: &str, why: &str) -> Result<Mark, Error> {
        let (tok, at) = self.next()?;
        match tok {
            Tok::Punct(q) if q == p => Ok(at),
            other => Err(err(at, format!("expected '{p}' {why}, found {other}"))),
        }
    }

    /// Back to raw text (probe points): forget a peeked token.
    fn unpeek(&mut self) {
        if let Some((_, at)) = self.peeked.take() {
            self.lex.at = at;
        }
    }

    fn more_blocks(&mut self) -> Result<bool, Error> {
        Ok(self.peek()?.0 != Tok::Eof)
    }

    fn block(&mut self) -> Result<(), Error> {
        self.unpeek();
        let mut points = Vec::new();
        loop {
            let (text, at) = self.lex.point_text()?;
            if text.is_empty() {
                let (tok, at) = self.lex.token()?;
                return Err(err(at, format!("expected a probe point, found {tok}")));
            }
            points.push((point(&text, at)?, at, text));
            self.lex.skip_trivia()?;
            if self.lex.peek() == Some(',') {
                self.lex.bump();
                continue;
            }
            break;
        }
        self.probes += points.len();
        let first = points[0].1;
        let kind = match &points[0].0 {
            Point::Begin => Kind::Begin,
            Point::End => Kind::End,
            Point::Interval(_) => Kind::Interval,
            Point::Server(..) => Kind::Server,
        };
        if kind != Kind::Server && points.len() > 1 {
            return Err(err(
                points[1].1,
                "BEGIN, END and interval probes take a block of their own",
            ));
        }
        let mut server_points = Vec::new();
        let mut infos = Vec::new();
        let mut interval_ms = 0;
        let mut names = Vec::new();
        for (p, at, text) in points {
            match p {
                Point::Server(pt, info) if kind == Kind::Server => {
                    server_points.push(pt);
                    infos.push(info);
                    names.push((text, at.pos));
                }
                Point::Interval(ms) if kind == Kind::Interval => interval_ms = ms,
                Point::Begin | Point::End if kind != Kind::Server => {}
                _ => {
                    return Err(err(
                        at,
                        "BEGIN, END and interval probes take a block of their own",
                    ))
                }
            }
        }
        let ctx = Ctx {
            kind,
            points: infos,
        };

        self.lex.skip_trivia()?;
        let predicate = if self.lex.peek() == Some('/') {
            let at = self.lex.at;
            self.lex.bump();
            if kind != Kind::Server {
                return Err(err(
                    at,
                    "a predicate is only supported on uprobe and syscall probes",
                ));
            }
            self.pred_depth = Some(self.depth);
            let e = self.expr(&ctx)?;
            self.pred_depth = None;
            self.expect("/", "to end the predicate")?;
            Some(e.e)
        } else {
            None
        };
        self.expect("{", "to open the probe's block")?;
        let mut out = Out::default();
        self.statements(&ctx, &mut out)?;

        match kind {
            Kind::Server => self.add_clause(server_points, names, predicate, out, first),
            Kind::Begin => {
                self.begin.extend(out.client);
                Ok(())
            }
            Kind::End => {
                self.end.extend(out.client);
                Ok(())
            }
            Kind::Interval => {
                if self.interval.is_some() {
                    return Err(err(
                        first,
                        "only one interval probe is supported (its period is the server's \
                         snapshot interval)",
                    ));
                }
                self.interval = Some((interval_ms, out.client, first));
                Ok(())
            }
        }
    }

    fn add_clause(
        &mut self,
        points: Vec<pb::ProbePoint>,
        names: Vec<(String, Pos)>,
        predicate: Option<pb::ProbeExpr>,
        out: Out,
        at: Mark,
    ) -> Result<(), Error> {
        if out.values.len() > MAX_VALUES {
            return Err(err(
                at,
                format!(
                    "this probe's printf() calls take {} values; at most {MAX_VALUES} per probe",
                    out.values.len()
                ),
            ));
        }
        // More points than a clause holds: the same clause again.
        for (chunk, names) in points.chunks(MAX_POINTS).zip(names.chunks(MAX_POINTS)) {
            let clause = pb::ProbeClause {
                points: chunk.to_vec(),
                predicate: predicate.clone(),
                updates: out.updates.clone(),
                emit_event: !out.events.is_empty(),
                event_values: out.values.clone(),
            };
            let source = ClauseSource {
                block: at.pos,
                points: names.to_vec(),
            };
            self.clauses.push((clause, out.events.clone(), source));
        }
        if self.clauses.len() > MAX_CLAUSES {
            return Err(err(
                at,
                format!(
                    "too many probes: at most {MAX_CLAUSES} blocks of up to {MAX_POINTS} points"
                ),
            ));
        }
        Ok(())
    }

    fn statements(&mut self, ctx: &Ctx, out: &mut Out) -> Result<(), Error> {
        loop {
            let (tok, at) = self.next()?;
            match tok {
                Tok::Punct("}") => return Ok(()),
                Tok::Punct(";") => continue,
                Tok::Map(name) => self.map_update(name, at, ctx, out)?,
                Tok::Ident(f) => self.call_statement(&f, at, ctx, out)?,
                Tok::Var(v) => {
                    return Err(err(
                        at,
                        format!("{v}: scratch variables are not supported by utrace probe"),
                    ))
                }
                Tok::Eof => {
                    return Err(err(
                        at,
                        "expected '}' to close the probe's block, found the end of the program",
                    ))
                }
                other => return Err(err(at, format!("expected a statement, found {other}"))),
            }
            let (tok, at) = self.peek()?.clone();
            match tok {
                Tok::Punct(";") => {
                    self.next()?;
                }
                Tok::Punct("}") => {}
                other => {
                    return Err(err(
                        at,
                        format!("expected ';' or '}}' after the statement, found {other}"),
                    ))
                }
            }
        }
    }

    /// `@name[keys] = agg(…)`.
    fn map_update(
        &mut self,
        name: String,
        at: Mark,
        ctx: &Ctx,
        out: &mut Out,
    ) -> Result<(), Error> {
        if ctx.kind != Kind::Server {
            return Err(err(
                at,
                format!(
                    "{name}: maps are updated only in uprobe and syscall probes (BEGIN, END and \
                     interval run in utrace, which keeps no map)"
                ),
            ));
        }
        if name.len() > 64 {
            return Err(err(at, "a map's name has 64 bytes at most"));
        }
        let mut keys = Vec::new();
        if self.peek_is("[")? {
            self.next()?;
            loop {
                keys.push(self.expr(ctx)?);
                if self.peek_is(",")? {
                    self.next()?;
                    continue;
                }
                self.expect("]", "after the map's key")?;
                break;
            }
        }
        if keys.len() > MAX_KEYS {
            return Err(err(at, format!("{name}: at most {MAX_KEYS} keys")));
        }
        let aggs = "count(), sum(), min(), max(), avg(), stats(), hist() or lhist()";
        let (tok, op_at) = self.next()?;
        match tok {
            Tok::Punct("=") => {}
            Tok::Punct(
                op @ ("++" | "--" | "+=" | "-=" | "*=" | "/=" | "%=" | "&=" | "|=" | "^=" | "<<="
                | ">>="),
            ) => {
                return Err(err(
                    op_at,
                    format!("{name}{op}: maps hold aggregations here: {aggs}"),
                ))
            }
            other => {
                return Err(err(
                    op_at,
                    format!("expected '=' after {name}, found {other}"),
                ))
            }
        }
        let (tok, fat) = self.next()?;
        let func = match tok {
            Tok::Ident(f) => f,
            _ => {
                return Err(err(
                    fat,
                    format!("{name} = …: a map holds an aggregation here: {aggs}"),
                ))
            }
        };
        let agg = match func.as_str() {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "avg" => Agg::Avg,
            "stats" => Agg::Stats,
            "hist" => Agg::Hist,
            "lhist" => Agg::Lhist,
            _ => {
                return Err(err(
                    fat,
                    format!("{name} = {func}: a map holds an aggregation here: {aggs}"),
                ))
            }
        };
        let args = self.call_args(&func, ctx)?;
        let want = match agg {
            Agg::Count => 0,
            Agg::Lhist => 4,
            _ => 1,
        };
        if args.len() != want {
            return Err(err(
                fat,
                format!(
                    "{func}() takes {want} argument{} ({} given)",
                    if want == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        let mut args = args.into_iter();
        let value = match args.next() {
            Some((v, vat)) => {
                if v.kind != ArgKind::Int {
                    return Err(err(
                        vat,
                        format!("{func}() aggregates integers, not strings"),
                    ));
                }
                Some(v.e)
            }
            None => None,
        };
        let mut lhist = None;
        if agg == Agg::Lhist {
            let mut bound = |what: &str| -> Result<i64, Error> {
                let (e, at) = args
                    .next()
                    .ok_or_else(|| err(fat, "lhist() takes 4 arguments"))?;
                match constant(&e.e) {
                    Some(Value::Int(v)) => Ok(v),
                    _ => Err(err(
                        at,
                        format!("lhist(): the {what} must be an integer constant"),
                    )),
                }
            };
            let (min, max, step) = (bound("min")?, bound("max")?, bound("step")?);
            check_lhist(min, max, step).map_err(|m| err(fat, m))?;
            lhist = Some(Lhist { min, max, step });
        }
        let decl = MapDecl {
            agg,
            keys: keys.len(),
            lhist,
            key_kinds: keys.iter().map(|k| k.kind).collect(),
        };
        self.declare(&name, decl, at)?;
        let (lhist_min, lhist_max, lhist_step) =
            lhist.map_or((0, 0, 0), |l| (l.min, l.max, l.step));
        out.updates.push(pb::MapUpdate {
            map: name,
            keys: keys.into_iter().map(|k| k.e).collect(),
            agg: agg as i32,
            value,
            lhist_min,
            lhist_max,
            lhist_step,
        });
        Ok(())
    }

    /// Every update of a map agrees with its first.
    fn declare(&mut self, name: &str, decl: MapDecl, at: Mark) -> Result<(), Error> {
        let Some((first, first_at)) = self.maps.get(name) else {
            self.maps.insert(name.to_string(), (decl, at));
            return Ok(());
        };
        let first_pos = format!("{}:{}", first_at.pos.line, first_at.pos.col);
        if first.agg != decl.agg {
            return Err(err(
                at,
                format!(
                    "{name} is a {}() map (at {first_pos}), updated here with {}()",
                    agg_name(first.agg),
                    agg_name(decl.agg)
                ),
            ));
        }
        if first.keys != decl.keys {
            return Err(err(
                at,
                format!(
                    "{name} has {} key{} at {first_pos}, {} here",
                    first.keys,
                    if first.keys == 1 { "" } else { "s" },
                    decl.keys
                ),
            ));
        }
        if first.key_kinds != decl.key_kinds {
            return Err(err(
                at,
                format!("{name}'s keys are of other types at {first_pos} (integers and strings)"),
            ));
        }
        if first.lhist != decl.lhist {
            return Err(err(
                at,
                format!("{name} is an lhist() with other bounds at {first_pos}"),
            ));
        }
        Ok(())
    }

    /// A call's arguments, after its name: `(a, b, …)`.
    fn call_args(&mut self, func: &str, ctx: &Ctx) -> Result<Vec<(Ex, Mark)>, Error> {
        self.expect("(", &format!("after {func}"))?;
        self.depth += 1;
        let mut args = Vec::new();
        if !self.peek_is(")")? {
            loop {
                let at = self.peek()?.1;
                args.push((self.expr(ctx)?, at));
                if self.peek_is(",")? {
                    self.next()?;
                    continue;
                }
                break;
            }
        }
        let why = match args.len() {
            0 => format!("after {func}("),
            1 => format!("after {func}'s argument"),
            _ => format!("after {func}'s arguments"),
        };
        self.expect(")", &why)?;
        self.depth -= 1;
        Ok(args)
    }

    /// `(@map [, N…])` of print, clear, zero.
    fn map_args(&mut self, func: &str, ctx: &Ctx, at: Mark) -> Result<(String, Vec<u32>), Error> {
        self.expect("(", &format!("after {func}"))?;
        let (tok, map_at) = self.next()?;
        let Tok::Map(name) = tok else {
            return Err(err(
                map_at,
                format!("{func}() takes a map (@name), found {tok}"),
            ));
        };
        let mut nums = Vec::new();
        while self.peek_is(",")? {
            self.next()?;
            let nat = self.peek()?.1;
            let e = self.expr(ctx)?;
            match constant(&e.e) {
                Some(Value::Int(n)) => nums.push(
                    u32::try_from(n)
                        .map_err(|_| err(nat, format!("{func}(): {n} is out of range")))?,
                ),
                _ => return Err(err(nat, format!("{func}(): an integer constant is needed"))),
            }
        }
        self.expect(")", &format!("after {func}'s arguments"))?;
        self.used.push((name.clone(), at));
        Ok((name, nums))
    }

    fn call_statement(
        &mut self,
        func: &str,
        at: Mark,
        ctx: &Ctx,
        out: &mut Out,
    ) -> Result<(), Error> {
        let server = ctx.kind == Kind::Server;
        match func {
            "printf" => {
                self.expect("(", "after printf")?;
                let (tok, fat) = self.next()?;
                let Tok::Str(format) = tok else {
                    return Err(err(
                        fat,
                        format!("printf's first argument must be a format string, found {tok}"),
                    ));
                };
                let mut args = Vec::new();
                while self.peek_is(",")? {
                    self.next()?;
                    let aat = self.peek()?.1;
                    args.push((self.expr(ctx)?, aat));
                }
                let why = if args.is_empty() {
                    "after printf's format"
                } else {
                    "after printf's arguments"
                };
                self.expect(")", why)?;
                let kinds: Vec<ArgKind> = args.iter().map(|(a, _)| a.kind).collect();
                check_format(&format, &kinds).map_err(|m| err(at, m))?;
                if server {
                    out.events.push(EventAction::Printf {
                        format,
                        args: args.len(),
                    });
                    out.values.extend(args.into_iter().map(|(a, _)| a.e));
                } else {
                    let mut values = Vec::new();
                    for (a, aat) in args {
                        values.push(pb::ProbeValue {
                            value: Some(constant(&a.e).ok_or_else(|| {
                                err(
                                    aat,
                                    "printf() in BEGIN, END and interval probes takes constants \
                                     (they run in utrace, not in the process)",
                                )
                            })?),
                        });
                    }
                    out.client.push(ClientAction::Printf {
                        format,
                        args: values,
                    });
                }
            }
            "time" => {
                let args = self.call_args("time", ctx)?;
                let format = match args.as_slice() {
                    [] => "%H:%M:%S\n".to_string(),
                    [(a, aat)] => match &a.e.expr {
                        Some(E::Str(s)) => {
                            check_strftime(s).map_err(|m| err(*aat, m))?;
                            s.clone()
                        }
                        _ => return Err(err(*aat, "time() takes a format string")),
                    },
                    _ => return Err(err(at, "time() takes one argument at most")),
                };
                if server {
                    out.events.push(EventAction::Time(format));
                } else {
                    out.client.push(ClientAction::Time(format));
                }
            }
            "exit" => {
                let args = self.call_args("exit", ctx)?;
                if !args.is_empty() {
                    return Err(err(at, "exit() takes no argument"));
                }
                if server {
                    out.events.push(EventAction::Exit);
                } else {
                    out.client.push(ClientAction::Exit);
                }
            }
            "print" | "clear" | "zero" => {
                if server {
                    return Err(err(
                        at,
                        format!(
                            "{func}() runs in BEGIN, END and interval probes only (the server \
                             keeps the maps; utrace prints them from its snapshots)"
                        ),
                    ));
                }
                let (map, nums) = self.map_args(func, ctx, at)?;
                if func == "print" {
                    if nums.len() > 2 {
                        return Err(err(at, "print() takes a map, a top count and a divisor"));
                    }
                    out.client.push(ClientAction::Print {
                        map,
                        top: nums.first().copied().unwrap_or(0),
                        div: nums.get(1).copied().unwrap_or(0),
                    });
                } else {
                    if !nums.is_empty() {
                        return Err(err(at, format!("{func}() takes one map")));
                    }
                    out.client.push(ClientAction::Clear(map));
                }
            }
            "if" | "unroll" | "while" | "for" | "return" | "else" => {
                return Err(err(
                    at,
                    format!("'{func}' is not supported by utrace probe"),
                ))
            }
            _ => {
                if self.peek_is("(")? {
                    return Err(err(
                        at,
                        format!(
                            "{func}() is not supported by utrace probe (statements: @map = \
                             aggregation, printf, time, exit, print, clear, zero)"
                        ),
                    ));
                }
                return Err(err(at, format!("expected a statement, found '{func}'")));
            }
        }
        Ok(())
    }

    // ----------------------------------------------------- expressions

    fn expr(&mut self, ctx: &Ctx) -> Result<Ex, Error> {
        let e = self.binary(ctx, 1)?;
        let (tok, at) = self.peek()?.clone();
        match tok {
            Tok::Punct("?") => Err(err(at, "the ternary operator ?: is not supported")),
            Tok::Punct("=") if self.pred_depth.is_none() => {
                Err(err(at, "assignments are only to maps: @name = aggregation"))
            }
            _ => Ok(e),
        }
    }

    fn binop(&self, tok: &Tok) -> Option<(u8, Bin, &'static str)> {
        let Tok::Punct(p) = tok else { return None };
        let (prec, op) = match *p {
            "||" => (1, Bin::Or),
            "&&" => (2, Bin::And),
            "|" => (3, Bin::BitOr),
            "^" => (4, Bin::BitXor),
            "&" => (5, Bin::BitAnd),
            "==" => (6, Bin::Eq),
            "!=" => (6, Bin::Ne),
            "<" => (7, Bin::Lt),
            "<=" => (7, Bin::Le),
            ">" => (7, Bin::Gt),
            ">=" => (7, Bin::Ge),
            "<<" => (8, Bin::Shl),
            ">>" => (8, Bin::Shr),
            "+" => (9, Bin::Add),
            "-" => (9, Bin::Sub),
            "*" => (10, Bin::Mul),
            "/" if self.pred_depth != Some(self.depth) => (10, Bin::Div),
            "%" => (10, Bin::Mod),
            _ => return None,
        };
        Some((prec, op, p))
    }

    fn binary(&mut self, ctx: &Ctx, min_prec: u8) -> Result<Ex, Error> {
        let mut left = self.unary(ctx)?;
        loop {
            let (tok, at) = self.peek()?.clone();
            let Some((prec, op, sym)) = self.binop(&tok) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            self.next()?;
            let right = self.binary(ctx, prec + 1)?;
            let kind = match op {
                Bin::Eq | Bin::Ne => {
                    if left.kind != right.kind {
                        return Err(err(
                            at,
                            format!("'{sym}' compares a string with an integer"),
                        ));
                    }
                    ArgKind::Int
                }
                _ => {
                    if left.kind != ArgKind::Int || right.kind != ArgKind::Int {
                        return Err(err(at, format!("'{sym}' takes integers, not strings")));
                    }
                    ArgKind::Int
                }
            };
            left = Ex {
                e: ex(E::Binary(Box::new(pb::ProbeBinary {
                    op: op as i32,
                    left: Some(Box::new(left.e)),
                    right: Some(Box::new(right.e)),
                }))),
                kind,
            };
        }
        Ok(left)
    }

    fn unary(&mut self, ctx: &Ctx) -> Result<Ex, Error> {
        let (tok, at) = self.peek()?.clone();
        let op = match tok {
            Tok::Punct("-") => Un::Neg,
            Tok::Punct("!") => Un::Not,
            Tok::Punct("~") => Un::BitNot,
            Tok::Punct("*") | Tok::Punct("&") => {
                return Err(err(
                    at,
                    "pointers (* and &) are not supported; str(addr) reads a string",
                ))
            }
            Tok::Punct(p @ ("++" | "--")) => {
                return Err(err(at, format!("'{p}' is not supported")))
            }
            _ => return self.postfix(ctx),
        };
        self.next()?;
        let operand = self.unary(ctx)?;
        if operand.kind != ArgKind::Int {
            return Err(err(at, "unary operators take integers, not strings"));
        }
        if let (Un::Neg, Some(E::Int(n))) = (op, &operand.e.expr) {
            return Ok(int_ex(E::Int(n.wrapping_neg())));
        }
        Ok(int_ex(E::Unary(Box::new(pb::ProbeUnary {
            op: op as i32,
            operand: Some(Box::new(operand.e)),
        }))))
    }

    fn postfix(&mut self, ctx: &Ctx) -> Result<Ex, Error> {
        let e = self.primary(ctx)?;
        let (tok, at) = self.peek()?.clone();
        match tok {
            Tok::Punct("[") => Err(err(at, "indexing ('[') is not supported")),
            Tok::Punct("." | "->") => Err(err(at, "fields are only supported as args->NAME")),
            Tok::Punct(p @ ("++" | "--")) => Err(err(at, format!("'{p}' is not supported"))),
            _ => Ok(e),
        }
    }

    fn primary(&mut self, ctx: &Ctx) -> Result<Ex, Error> {
        let (tok, at) = self.next()?;
        match tok {
            Tok::Int(n) => Ok(int_ex(E::Int(n as i64))),
            Tok::Str(s) => Ok(Ex {
                e: ex(E::Str(s)),
                kind: ArgKind::Str,
            }),
            Tok::Punct("(") => {
                if let Tok::Ident(t) = &self.peek()?.0 {
                    if is_type_name(t) {
                        let t = t.clone();
                        return Err(err(at, format!("casts ({t}) are not supported")));
                    }
                }
                self.depth += 1;
                let e = self.expr(ctx)?;
                self.expect(")", "to close the parenthesis")?;
                self.depth -= 1;
                Ok(e)
            }
            Tok::Ident(name) => self.identifier(&name, at, ctx),
            Tok::Map(name) => Err(err(
                at,
                format!("{name}: reading a map in an expression is not supported (the server keeps the maps)"),
            )),
            Tok::Var(v) => Err(err(
                at,
                format!("{v}: scratch variables are not supported by utrace probe"),
            )),
            other => Err(err(at, format!("expected an expression, found {other}"))),
        }
    }

    fn identifier(&mut self, name: &str, at: Mark, ctx: &Ctx) -> Result<Ex, Error> {
        use pb::ProbeBuiltin as B;
        let builtin = |b: B, kind| Ex {
            e: ex(E::Builtin(b as i32)),
            kind,
        };
        if ctx.kind != Kind::Server {
            if let Some(n) = Self::client_side_identifier(name) {
                return Err(err(
                    at,
                    format!(
                        "{n} is not known in BEGIN, END and interval probes (they run in \
                         utrace, not in the process)"
                    ),
                ));
            }
        }
        match name {
            "pid" => Ok(builtin(B::Pid, ArgKind::Int)),
            "tid" => Ok(builtin(B::Tid, ArgKind::Int)),
            "comm" => Ok(builtin(B::Comm, ArgKind::Str)),
            "nsecs" => Ok(builtin(B::Nsecs, ArgKind::Int)),
            "probe" => Ok(builtin(B::Probe, ArgKind::Str)),
            "retval" => {
                let at_exit = ctx.points.iter().any(|p| match p {
                    PointInfo::Function { ret } => *ret,
                    PointInfo::Syscall { exit, .. } => *exit,
                    PointInfo::Process { .. } => false,
                });
                if !at_exit {
                    return Err(err(
                        at,
                        "retval is only set at returns: uretprobe, syscall exits \
                         (tracepoint:syscalls:sys_exit_NAME, syscall:NAME:exit)",
                    ));
                }
                Ok(builtin(B::Retval, ArgKind::Int))
            }
            "args" => self.args_field(at, ctx),
            "reg" => {
                let args = self.call_args("reg", ctx)?;
                match args.as_slice() {
                    [(Ex { e, .. }, _)] => match &e.expr {
                        Some(E::Str(r)) => Ok(int_ex(E::Register(r.clone()))),
                        _ => Err(err(at, "reg() takes a register's name: reg(\"rip\")")),
                    },
                    _ => Err(err(at, "reg() takes one argument: reg(\"rip\")")),
                }
            }
            "str" => {
                let args = self.call_args("str", ctx)?;
                let mut it = args.into_iter();
                let Some((addr, aat)) = it.next() else {
                    return Err(err(at, "str() takes an address and, optionally, a length"));
                };
                let len = match it.next() {
                    None => 0,
                    Some((l, lat)) => match constant(&l.e) {
                        Some(Value::Int(n)) if (1..=4096).contains(&n) => n as u32,
                        _ => {
                            return Err(err(
                                lat,
                                "str(): the length must be an integer constant from 1 to 4096",
                            ))
                        }
                    },
                };
                if it.next().is_some() {
                    return Err(err(at, "str() takes two arguments at most"));
                }
                if addr.kind == ArgKind::Str {
                    return Err(err(aat, "str() takes an address, not a string"));
                }
                Ok(Ex {
                    e: ex(E::StrAt(Box::new(pb::ProbeStr {
                        addr: Some(Box::new(addr.e)),
                        len,
                    }))),
                    kind: ArgKind::Str,
                })
            }
            "buf" => {
                let args = self.call_args("buf", ctx)?;
                let [(addr, aat), (len, lat)] = <[_; 2]>::try_from(args)
                    .map_err(|_| err(at, "buf() takes an address and a length: buf(arg0, 16)"))?;
                let len = match constant(&len.e) {
                    Some(Value::Int(n)) if (1..=4096).contains(&n) => n as u32,
                    _ => {
                        return Err(err(
                            lat,
                            "buf(): the length must be an integer constant from 1 to 4096",
                        ))
                    }
                };
                if addr.kind != ArgKind::Int {
                    return Err(err(aat, "buf() takes an address, not a string"));
                }
                Ok(Ex {
                    e: ex(E::Buf(Box::new(pb::ProbeStr {
                        addr: Some(Box::new(addr.e)),
                        len,
                    }))),
                    kind: ArgKind::Buf,
                })
            }
            "ustack" => {
                let depth =
                    if self.peek_is("(")? {
                        let args = self.call_args("ustack", ctx)?;
                        match args.as_slice() {
                            [(d, dat)] => match constant(&d.e) {
                                Some(Value::Int(n)) if (1..=127).contains(&n) => n as u32,
                                _ => return Err(err(
                                    *dat,
                                    "ustack(): the depth must be an integer constant from 1 to 127",
                                )),
                            },
                            _ => {
                                return Err(err(
                                    at,
                                    "ustack() takes a depth only (bpftrace's stack modes are not \
                                 supported): ustack(5)",
                                ))
                            }
                        }
                    } else {
                        0
                    };
                Ok(Ex {
                    e: ex(E::Ustack(pb::ProbeStack { depth })),
                    kind: ArgKind::Stack,
                })
            }
            n if n.starts_with("arg")
                && n.len() > 3
                && n[3..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                match n[3..].parse::<u32>() {
                    Ok(i) if i <= 5 => Ok(int_ex(E::Arg(i))),
                    _ => Err(err(at, format!("{n}: arguments are arg0 to arg5"))),
                }
            }
            _ => {
                if self.peek_is("(")? {
                    return Err(err(
                        at,
                        format!(
                            "{name}() is not supported by utrace probe (functions: str, buf, \
                             reg, ustack)"
                        ),
                    ));
                }
                let known = [
                    "cpu", "uid", "gid", "elapsed", "func", "kstack", "curtask", "rand", "cgroup",
                    "username", "sarg0", "cpid", "numaid", "jiffies",
                ];
                if known.contains(&name) {
                    return Err(err(
                        at,
                        format!(
                            "{name} is not supported by utrace probe (builtins: pid, tid, comm, \
                             nsecs, retval, probe, arg0-arg5, args->NAME, ustack)"
                        ),
                    ));
                }
                Err(err(at, format!("unknown identifier '{name}'")))
            }
        }
    }

    /// A builtin that has no value outside the process.
    fn client_side_identifier(name: &str) -> Option<String> {
        let process = [
            "pid", "tid", "comm", "nsecs", "retval", "probe", "args", "reg", "str", "buf", "ustack",
        ];
        if process.contains(&name) || (name.starts_with("arg") && name.len() > 3) {
            Some(name.to_string())
        } else {
            None
        }
    }

    /// `args->NAME` (after `args`) at syscall points.
    fn args_field(&mut self, at: Mark, ctx: &Ctx) -> Result<Ex, Error> {
        let (tok, fat) = self.next()?;
        if !matches!(tok, Tok::Punct("->" | ".")) {
            return Err(err(fat, format!("expected '->' after args, found {tok}")));
        }
        let (tok, fat) = self.next()?;
        let Tok::Ident(field) = tok else {
            return Err(err(
                fat,
                format!("expected a field's name after args->, found {tok}"),
            ));
        };
        let mut found: Option<Ex> = None;
        for p in &ctx.points {
            if let PointInfo::Process { event } = p {
                // The fields of these tracepoints a probe of one process
                // has: the signal, the new task, the thread or process.
                let e = match (*event, field.as_str()) {
                    ("signal_deliver", "sig") | ("sched_process_fork", "child_pid") => {
                        int_ex(E::Arg(0))
                    }
                    ("sched_process_fork", "parent_pid") | ("sched_process_exec", "pid") => {
                        int_ex(E::Builtin(pb::ProbeBuiltin::Pid as i32))
                    }
                    ("sched_process_exit", "pid") => {
                        int_ex(E::Builtin(pb::ProbeBuiltin::Tid as i32))
                    }
                    (ev, f) => {
                        return Err(err(
                            fat,
                            format!("args->{f} is not a field utrace has at {ev}"),
                        ))
                    }
                };
                if found.is_some() {
                    return Err(err(fat, "args-> at several kinds of point: name one"));
                }
                found = Some(e);
                continue;
            }
            let PointInfo::Syscall { name, exit } = p else {
                return Err(err(
                    at,
                    "args is only defined at syscall tracepoints (at uprobes: arg0 to arg5)",
                ));
            };
            let e = if field == "ret" {
                if !exit {
                    return Err(err(fat, "args->ret is only set at syscall exits"));
                }
                int_ex(E::Builtin(pb::ProbeBuiltin::Retval as i32))
            } else if *exit {
                return Err(err(
                    fat,
                    format!("args->{field}: a syscall's exit has only args->ret"),
                ));
            } else if name.is_empty() {
                match field.as_str() {
                    "args" => {
                        self.expect("[", "after args->args")?;
                        let (tok, nat) = self.next()?;
                        let i = match tok {
                            Tok::Int(i) if i <= 5 => i as u32,
                            other => {
                                return Err(err(
                                    nat,
                                    format!("args->args[N]: N is 0 to 5, found {other}"),
                                ))
                            }
                        };
                        self.expect("]", "after args->args[N")?;
                        return Ok(int_ex(E::Arg(i)));
                    }
                    "id" => {
                        return Err(err(
                            fat,
                            "args->id (the syscall's number) is not supported; probe the \
                             syscalls you want by name",
                        ))
                    }
                    _ => {
                        return Err(err(
                            fat,
                            format!(
                                "raw_syscalls has args->args[N] and args->ret, not args->{field}"
                            ),
                        ))
                    }
                }
            } else {
                let Some(names) = syscall_args(name) else {
                    return Err(err(
                        fat,
                        format!(
                            "args->{field}: utrace does not know {name}'s argument names; use \
                             arg0 to arg5 (its arguments in order)"
                        ),
                    ));
                };
                let Some(i) = names.iter().position(|n| *n == field) else {
                    return Err(err(
                        fat,
                        format!(
                            "{name} has no argument '{field}' (its arguments: {})",
                            names.join(", ")
                        ),
                    ));
                };
                int_ex(E::Arg(i as u32))
            };
            if let Some(prev) = &found {
                if prev.e != e.e {
                    return Err(err(
                        fat,
                        format!("args->{field} is a different argument at this block's points"),
                    ));
                }
            }
            found = Some(e);
        }
        found.ok_or_else(|| err(at, "args is only defined at syscall tracepoints"))
    }

    fn finish(mut self) -> Result<Program, Error> {
        for (name, at) in &self.used {
            if !self.maps.contains_key(name) {
                return Err(err(*at, format!("undefined map: {name}")));
            }
        }
        if self.clauses.is_empty() {
            return Err(Error {
                pos: self.lex.at.pos,
                msg: "the program has no uprobe, uretprobe or syscall probe: nothing to probe"
                    .into(),
            });
        }
        let mut request = pb::ProbeRequest::default();
        let mut interval = Vec::new();
        if let Some((ms, actions, at)) = self.interval.take() {
            let clears: BTreeSet<&str> = actions
                .iter()
                .filter_map(|a| match a {
                    ClientAction::Clear(m) => Some(m.as_str()),
                    _ => None,
                })
                .collect();
            if !clears.is_empty() {
                if let Some(kept) = self.maps.keys().find(|m| !clears.contains(m.as_str())) {
                    return Err(err(
                        at,
                        format!(
                            "the interval probe clears some maps but not {kept}: the server \
                             clears all the maps after each snapshot, or none"
                        ),
                    ));
                }
            }
            request.snapshot_interval_ms = ms;
            request.clear_after_snapshot = !clears.is_empty();
            interval = actions;
        }
        let limits = limits_from_env();
        if limits != pb::ProbeLimits::default() {
            request.limits = Some(limits);
        }
        let mut events = Vec::new();
        let mut sources = Vec::new();
        for (clause, ev, source) in self.clauses {
            request.clauses.push(clause);
            events.push(ev);
            sources.push(source);
        }
        Ok(Program {
            request,
            events,
            sources,
            begin: self.begin,
            end: self.end,
            interval,
            maps: self.maps.into_iter().map(|(k, (d, _))| (k, d)).collect(),
            probes: self.probes,
        })
    }
}

/// bpftrace's environment variables for its limits: BPFTRACE_STRLEN and
/// BPFTRACE_MAP_KEYS_MAX; and UTRACE_PROBE_CPU_PERCENT, the most of one
/// CPU the probe may take from the program before the server ends it
/// (default 50, at most 1000).
fn limits_from_env() -> pb::ProbeLimits {
    let var = |n: &str| {
        std::env::var(n)
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    pb::ProbeLimits {
        max_keys: var("BPFTRACE_MAP_KEYS_MAX").unwrap_or(0),
        string_len: var("BPFTRACE_STRLEN").unwrap_or(0),
        events_per_second: 0,
        cpu_percent: var("UTRACE_PROBE_CPU_PERCENT").unwrap_or(0),
    }
}

fn agg_name(a: Agg) -> &'static str {
    match a {
        Agg::Count => "count",
        Agg::Sum => "sum",
        Agg::Min => "min",
        Agg::Max => "max",
        Agg::Avg => "avg",
        Agg::Stats => "stats",
        Agg::Hist => "hist",
        Agg::Lhist => "lhist",
        Agg::Unspecified => "?",
    }
}

/// bpftrace's checks of lhist's bounds.
fn check_lhist(min: i64, max: i64, step: i64) -> Result<(), String> {
    if step <= 0 {
        return Err(format!("lhist() step must be >= 1 ({step} provided)"));
    }
    if min < 0 {
        return Err(format!(
            "lhist() min must be non-negative (provided min {min})"
        ));
    }
    if min > max {
        return Err(format!(
            "lhist() min must be less than max (provided min {min} and max {max})"
        ));
    }
    if max - min < step {
        return Err(format!(
            "lhist() step is too large for the given range (provided step {step} for range {})",
            max - min
        ));
    }
    let buckets = (max - min) / step;
    if buckets > 1000 {
        return Err(format!(
            "lhist() too many buckets, must be <= 1000 (would need {buckets})"
        ));
    }
    Ok(())
}

fn check_strftime(fmt: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        return Err(format!("time(): invalid format {fmt:?}"));
    }
    Ok(())
}

fn is_type_name(t: &str) -> bool {
    matches!(
        t,
        "int8" | "int16" | "int32" | "int64" | "uint8" | "uint16" | "uint32" | "uint64" | "struct"
    )
}

/// The value of a constant expression (integers with the server's
/// wrapping arithmetic, and string literals).
pub fn constant(e: &pb::ProbeExpr) -> Option<Value> {
    match e.expr.as_ref()? {
        E::Int(n) => Some(Value::Int(*n)),
        E::Str(s) => Some(Value::Str(s.clone())),
        E::Unary(u) => {
            let Value::Int(v) = constant(u.operand.as_ref()?)? else {
                return None;
            };
            Some(Value::Int(match Un::try_from(u.op).ok()? {
                Un::Neg => v.wrapping_neg(),
                Un::Not => i64::from(v == 0),
                Un::BitNot => !v,
                Un::Unspecified => return None,
            }))
        }
        E::Binary(b) => {
            let l = constant(b.left.as_ref()?)?;
            let r = constant(b.right.as_ref()?)?;
            let op = Bin::try_from(b.op).ok()?;
            let (l, r) = match (l, r) {
                (Value::Int(l), Value::Int(r)) => (l, r),
                (l, r) => {
                    return match op {
                        Bin::Eq => Some(Value::Int(i64::from(l == r))),
                        Bin::Ne => Some(Value::Int(i64::from(l != r))),
                        _ => None,
                    }
                }
            };
            Some(Value::Int(match op {
                Bin::Add => l.wrapping_add(r),
                Bin::Sub => l.wrapping_sub(r),
                Bin::Mul => l.wrapping_mul(r),
                Bin::Div => l.checked_div(r).unwrap_or(0),
                Bin::Mod => l.checked_rem(r).unwrap_or(0),
                Bin::BitAnd => l & r,
                Bin::BitOr => l | r,
                Bin::BitXor => l ^ r,
                Bin::Shl => l.wrapping_shl(r as u32),
                Bin::Shr => l.wrapping_shr(r as u32),
                Bin::Eq => i64::from(l == r),
                Bin::Ne => i64::from(l != r),
                Bin::Lt => i64::from(l < r),
                Bin::Le => i64::from(l <= r),
                Bin::Gt => i64::from(l > r),
                Bin::Ge => i64::from(l >= r),
                Bin::And => i64::from(l != 0 && r != 0),
                Bin::Or => i64::from(l != 0 || r != 0),
                Bin::Unspecified => return None,
            }))
        }
        _ => None,
    }
}

// --------------------------------------------------------- probe points

const PROBE_TYPES: &str = "uprobe, uretprobe, usdt, tracepoint:syscalls, \
                           tracepoint:raw_syscalls, syscall, interval, BEGIN and END";

fn point(text: &str, at: Mark) -> Result<Point, Error> {
    match text {
        "BEGIN" => return Ok(Point::Begin),
        "END" => return Ok(Point::End),
        _ => {}
    }
    let Some((kind, rest)) = text.split_once(':') else {
        return Err(err(
            at,
            format!("unknown probe '{text}' (probes: {PROBE_TYPES})"),
        ));
    };
    let all_syscalls = kind == "syscall" && (rest == "*" || rest.starts_with("*:"));
    if rest.contains(['*', '?', '[']) && !all_syscalls {
        return Err(err(
            at,
            format!("{text}: wildcards are not supported; name each point"),
        ));
    }
    match kind {
        "uprobe" | "u" | "uretprobe" | "ur" => {
            let ret = kind.starts_with("ur");
            let (binary, func) = rest.split_once(':').unwrap_or(("", rest));
            function_point(text, binary, func, ret, at)
        }
        "usdt" | "U" => {
            let parts: Vec<&str> = rest.split(':').collect();
            let (binary, provider, name) = match parts.as_slice() {
                [name] => ("", "", *name),
                [binary, name] => (*binary, "", *name),
                [binary, provider, name] => (*binary, *provider, *name),
                _ => {
                    return Err(err(
                        at,
                        format!("{text}: expected usdt:BINARY:[PROVIDER:]NAME"),
                    ))
                }
            };
            if name.is_empty() {
                return Err(err(at, format!("{text}: the marker's name is missing")));
            }
            Ok(Point::Server(
                pb::ProbePoint {
                    point: Some(pb::probe_point::Point::Usdt(pb::UsdtPoint {
                        binary: absolute(binary),
                        provider: provider.to_string(),
                        name: name.to_string(),
                    })),
                },
                PointInfo::Function { ret: false },
            ))
        }
        "tracepoint" | "t" => {
            let (cat, event) = rest.split_once(':').unwrap_or((rest, ""));
            let sys = |name: &str, exit: bool| {
                let name = match name {
                    "newstat" => "stat",
                    "newlstat" => "lstat",
                    "newfstat" => "fstat",
                    "newuname" => "uname",
                    "sendfile64" => "sendfile",
                    n => n,
                };
                syscall_point(name, exit)
            };
            let process = |ev: pb::ProcessEvent, name: &'static str| {
                Point::Server(
                    pb::ProbePoint {
                        point: Some(pb::probe_point::Point::Process(pb::ProcessPoint {
                            event: ev as i32,
                            signal: 0,
                        })),
                    },
                    PointInfo::Process { event: name },
                )
            };
            match (cat, event) {
                ("signal", "signal_deliver") => {
                    Ok(process(pb::ProcessEvent::Signal, "signal_deliver"))
                }
                ("sched", "sched_process_fork") => {
                    Ok(process(pb::ProcessEvent::ThreadStart, "sched_process_fork"))
                }
                ("sched", "sched_process_exit") => {
                    Ok(process(pb::ProcessEvent::ThreadExit, "sched_process_exit"))
                }
                ("sched", "sched_process_exec") => {
                    Ok(process(pb::ProcessEvent::Exec, "sched_process_exec"))
                }
                ("syscalls", e) if e.starts_with("sys_enter_") && e.len() > 10 => {
                    Ok(sys(&e[10..], false))
                }
                ("syscalls", e) if e.starts_with("sys_exit_") && e.len() > 9 => {
                    Ok(sys(&e[9..], true))
                }
                ("raw_syscalls", "sys_enter") => Ok(syscall_point("", false)),
                ("raw_syscalls", "sys_exit") => Ok(syscall_point("", true)),
                _ => Err(err(
                    at,
                    format!(
                        "{text}: the tracepoints supported are syscalls:sys_enter_NAME, \
                         sys_exit_NAME, raw_syscalls:sys_enter, sys_exit, \
                         signal:signal_deliver and sched:sched_process_fork, \
                         sched_process_exit, sched_process_exec"
                    ),
                )),
            }
        }
        "syscall" => {
            let (name, when) = rest.split_once(':').unwrap_or((rest, "entry"));
            let exit = match when {
                "entry" | "enter" => false,
                "exit" => true,
                _ => {
                    return Err(err(
                        at,
                        format!("{text}: expected syscall:NAME:entry or syscall:NAME:exit"),
                    ))
                }
            };
            let name = if name == "*" { "" } else { name };
            Ok(syscall_point(name, exit))
        }
        "interval" | "i" => {
            let (unit, n) = rest.split_once(':').unwrap_or(("", rest));
            let n = parse_u64(n).ok_or_else(|| {
                err(at, format!("{text}: expected interval:s:N, interval:ms:N, interval:us:N or interval:hz:N"))
            })?;
            let ms = match unit {
                "s" => n.checked_mul(1000),
                "ms" => Some(n),
                "us" if n % 1000 == 0 => Some(n / 1000),
                "us" => None,
                "hz" if n > 0 => Some(1000 / n),
                _ => {
                    return Err(err(
                        at,
                        format!("{text}: expected interval:s:N, interval:ms:N, interval:us:N or interval:hz:N"),
                    ))
                }
            };
            match ms.and_then(|m| u32::try_from(m).ok()) {
                Some(ms) if ms >= 10 => Ok(Point::Interval(ms)),
                _ => Err(err(
                    at,
                    format!("{text}: the interval must be whole milliseconds, at least 10 ms"),
                )),
            }
        }
        "kprobe" | "k" | "kretprobe" | "kr" | "kfunc" | "f" | "kretfunc" | "fr" | "profile"
        | "p" | "software" | "s" | "hardware" | "h" | "watchpoint" | "w" | "asyncwatchpoint"
        | "rawtracepoint" | "rt" | "iter" | "it" => Err(err(
            at,
            format!("{kind} probes are not supported: utrace probes one process ({PROBE_TYPES})"),
        )),
        _ => Err(err(
            at,
            format!("unknown probe type '{kind}' (probes: {PROBE_TYPES})"),
        )),
    }
}

/// A relative path (`./prog`) made absolute from this directory, as
/// bpftrace does; a library name (`libc`) or an absolute path as it is.
fn absolute(binary: &str) -> String {
    if binary.contains('/') && !binary.starts_with('/') {
        if let Ok(p) = std::path::absolute(binary) {
            return p.to_string_lossy().into_owned();
        }
    }
    binary.to_string()
}

fn syscall_point(name: &str, exit: bool) -> Point {
    Point::Server(
        pb::ProbePoint {
            point: Some(pb::probe_point::Point::Syscall(pb::SyscallPoint {
                name: name.to_string(),
                exit,
            })),
        },
        PointInfo::Syscall {
            name: name.to_string(),
            exit,
        },
    )
}

/// `uprobe:BIN:FUNC`, `FUNC+OFF`, `ADDR`.
fn function_point(
    text: &str,
    binary: &str,
    func: &str,
    ret: bool,
    at: Mark,
) -> Result<Point, Error> {
    if func.is_empty() {
        return Err(err(
            at,
            format!("{text}: a function (or an address) is missing"),
        ));
    }
    let (symbol, offset, exact) = if func.starts_with(|c: char| c.is_ascii_digit()) {
        let addr = parse_u64(func)
            .ok_or_else(|| err(at, format!("{text}: '{func}' is not an address")))?;
        (String::new(), addr, true)
    } else if let Some((sym, off)) = func.split_once('+') {
        let off =
            parse_u64(off).ok_or_else(|| err(at, format!("{text}: '{off}' is not an offset")))?;
        (sym.to_string(), off, true)
    } else {
        (func.to_string(), 0, false)
    };
    if ret && exact {
        return Err(err(
            at,
            format!("{text}: a uretprobe takes a function, not an offset or address"),
        ));
    }
    Ok(Point::Server(
        pb::ProbePoint {
            point: Some(pb::probe_point::Point::Function(pb::FunctionPoint {
                binary: absolute(binary),
                symbol,
                offset,
                exact,
                on_return: ret,
            })),
        },
        PointInfo::Function { ret },
    ))
}

/// The argument names of common syscalls, as their tracepoints name them
/// (the kernel's SYSCALL_DEFINE parameters).
fn syscall_args(name: &str) -> Option<&'static [&'static str]> {
    let args: &'static [&'static str] = match name {
        "read" | "write" => &["fd", "buf", "count"],
        "pread64" | "pwrite64" => &["fd", "buf", "count", "pos"],
        "readv" | "writev" => &["fd", "vec", "vlen"],
        "open" => &["filename", "flags", "mode"],
        "openat" => &["dfd", "filename", "flags", "mode"],
        "openat2" => &["dfd", "filename", "how", "usize"],
        "creat" => &["pathname", "mode"],
        "close" => &["fd"],
        "stat" | "lstat" => &["filename", "statbuf"],
        "fstat" => &["fd", "statbuf"],
        "newfstatat" => &["dfd", "filename", "statbuf", "flag"],
        "statx" => &["dfd", "filename", "flags", "mask", "buffer"],
        "lseek" => &["fd", "offset", "whence"],
        "mmap" => &["addr", "len", "prot", "flags", "fd", "off"],
        "mprotect" => &["start", "len", "prot"],
        "munmap" => &["addr", "len"],
        "brk" => &["brk"],
        "ioctl" => &["fd", "cmd", "arg"],
        "fcntl" => &["fd", "cmd", "arg"],
        "access" => &["filename", "mode"],
        "faccessat" => &["dfd", "filename", "mode"],
        "faccessat2" => &["dfd", "filename", "mode", "flags"],
        "pipe" => &["fildes"],
        "pipe2" => &["fildes", "flags"],
        "dup" => &["fildes"],
        "dup2" => &["oldfd", "newfd"],
        "dup3" => &["oldfd", "newfd", "flags"],
        "nanosleep" => &["rqtp", "rmtp"],
        "clock_nanosleep" => &["which_clock", "flags", "rqtp", "rmtp"],
        "socket" => &["family", "type", "protocol"],
        "connect" => &["fd", "uservaddr", "addrlen"],
        "accept" => &["fd", "upeer_sockaddr", "upeer_addrlen"],
        "accept4" => &["fd", "upeer_sockaddr", "upeer_addrlen", "flags"],
        "bind" => &["fd", "umyaddr", "addrlen"],
        "listen" => &["fd", "backlog"],
        "sendto" => &["fd", "buff", "len", "flags", "addr", "addr_len"],
        "recvfrom" => &["fd", "ubuf", "size", "flags", "addr", "addr_len"],
        "sendmsg" | "recvmsg" => &["fd", "msg", "flags"],
        "sendfile" => &["out_fd", "in_fd", "offset", "count"],
        "clone" => &[
            "clone_flags",
            "newsp",
            "parent_tidptr",
            "child_tidptr",
            "tls",
        ],
        "execve" => &["filename", "argv", "envp"],
        "execveat" => &["fd", "filename", "argv", "envp", "flags"],
        "exit" | "exit_group" => &["error_code"],
        "wait4" => &["upid", "stat_addr", "options", "ru"],
        "kill" => &["pid", "sig"],
        "tkill" => &["pid", "sig"],
        "tgkill" => &["tgid", "pid", "sig"],
        "getdents64" => &["fd", "dirent", "count"],
        "chdir" => &["filename"],
        "fchdir" => &["fd"],
        "rename" => &["oldname", "newname"],
        "renameat" => &["olddfd", "oldname", "newdfd", "newname"],
        "renameat2" => &["olddfd", "oldname", "newdfd", "newname", "flags"],
        "mkdir" => &["pathname", "mode"],
        "mkdirat" => &["dfd", "pathname", "mode"],
        "rmdir" => &["pathname"],
        "unlink" => &["pathname"],
        "unlinkat" => &["dfd", "pathname", "flag"],
        "readlink" => &["path", "buf", "bufsiz"],
        "readlinkat" => &["dfd", "pathname", "buf", "bufsiz"],
        "chmod" => &["filename", "mode"],
        "fchmod" => &["fd", "mode"],
        "fchmodat" => &["dfd", "filename", "mode"],
        "truncate" => &["path", "length"],
        "ftruncate" => &["fd", "length"],
        "fsync" | "fdatasync" => &["fd"],
        "futex" => &["uaddr", "op", "val", "utime", "uaddr2", "val3"],
        "poll" => &["ufds", "nfds", "timeout_msecs"],
        "ppoll" => &["ufds", "nfds", "tsp", "sigmask", "sigsetsize"],
        "epoll_wait" => &["epfd", "events", "maxevents", "timeout"],
        "select" => &["n", "inp", "outp", "exp", "tvp"],
        "getrandom" => &["buf", "count", "flags"],
        "setuid" => &["uid"],
        "setgid" => &["gid"],
        "prctl" => &["option", "arg2", "arg3", "arg4", "arg5"],
        "madvise" => &["start", "len_in", "behavior"],
        "rt_sigaction" => &["sig", "act", "oact", "sigsetsize"],
        "rt_sigprocmask" => &["how", "nset", "oset", "sigsetsize"],
        "memfd_create" => &["uname", "flags"],
        _ => return None,
    };
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::probe_point::Point as P;

    fn compile_ok(src: &str) -> Program {
        match compile(src) {
            Ok(p) => p,
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn error(src: &str) -> String {
        match compile(src) {
            Ok(_) => panic!("{src}: compiled"),
            Err(e) => e.to_string(),
        }
    }

    fn func(
        binary: &str,
        symbol: &str,
        offset: u64,
        exact: bool,
        on_return: bool,
    ) -> pb::ProbePoint {
        pb::ProbePoint {
            point: Some(P::Function(pb::FunctionPoint {
                binary: binary.into(),
                symbol: symbol.into(),
                offset,
                exact,
                on_return,
            })),
        }
    }

    fn sys(name: &str, exit: bool) -> pb::ProbePoint {
        pb::ProbePoint {
            point: Some(P::Syscall(pb::SyscallPoint {
                name: name.into(),
                exit,
            })),
        }
    }

    fn b(op: Bin, l: pb::ProbeExpr, r: pb::ProbeExpr) -> pb::ProbeExpr {
        ex(E::Binary(Box::new(pb::ProbeBinary {
            op: op as i32,
            left: Some(Box::new(l)),
            right: Some(Box::new(r)),
        })))
    }

    fn builtin(x: pb::ProbeBuiltin) -> pb::ProbeExpr {
        ex(E::Builtin(x as i32))
    }

    fn int(n: i64) -> pb::ProbeExpr {
        ex(E::Int(n))
    }

    #[test]
    fn count_by_comm_with_interval() {
        let p = compile_ok(
            "uprobe:/bin/bash:readline { @[comm] = count(); } interval:s:1 { print(@); clear(@); }",
        );
        assert_eq!(p.probes, 2);
        assert_eq!(p.request.snapshot_interval_ms, 1000);
        assert!(p.request.clear_after_snapshot);
        assert_eq!(p.request.clauses.len(), 1);
        let c = &p.request.clauses[0];
        assert_eq!(
            c.points,
            vec![func("/bin/bash", "readline", 0, false, false)]
        );
        assert_eq!(c.predicate, None);
        assert!(!c.emit_event);
        assert_eq!(
            c.updates,
            vec![pb::MapUpdate {
                map: "@".into(),
                keys: vec![builtin(pb::ProbeBuiltin::Comm)],
                agg: Agg::Count as i32,
                ..Default::default()
            }]
        );
        assert_eq!(
            p.interval,
            vec![
                ClientAction::Print {
                    map: "@".into(),
                    top: 0,
                    div: 0
                },
                ClientAction::Clear("@".into())
            ]
        );
    }

    #[test]
    fn function_points() {
        let p = compile_ok(
            "uprobe:libc:malloc, uprobe:libc:free+4, uprobe:/bin/x:0x1130, uretprobe:libc:malloc, \
             u:main { @c = count(); }",
        );
        assert_eq!(
            p.request.clauses[0].points,
            vec![
                func("libc", "malloc", 0, false, false),
                func("libc", "free", 4, true, false),
                func("/bin/x", "", 0x1130, true, false),
                func("libc", "malloc", 0, false, true),
                func("", "main", 0, false, false),
            ]
        );
        assert_eq!(p.probes, 5);
    }

    #[test]
    fn syscall_points() {
        let p = compile_ok(
            "tracepoint:syscalls:sys_enter_openat, syscall:read:entry { @n[probe] = count(); } \
             tracepoint:syscalls:sys_exit_read, syscall:write:exit /retval < 0/ { @e = count(); } \
             tracepoint:raw_syscalls:sys_enter, t:raw_syscalls:sys_exit { @all = count(); } \
             tracepoint:syscalls:sys_enter_newfstat { @s = count(); }",
        );
        let points: Vec<_> = p.request.clauses.iter().map(|c| c.points.clone()).collect();
        assert_eq!(
            points,
            vec![
                vec![sys("openat", false), sys("read", false)],
                vec![sys("read", true), sys("write", true)],
                vec![sys("", false), sys("", true)],
                vec![sys("fstat", false)],
            ]
        );
        assert_eq!(
            p.request.clauses[1].predicate,
            Some(b(Bin::Lt, builtin(pb::ProbeBuiltin::Retval), int(0)))
        );
        let p = compile_ok("syscall:*:exit { @ = count(); }");
        assert_eq!(p.request.clauses[0].points, vec![sys("", true)]);
    }

    #[test]
    fn predicate_precedence_is_c() {
        let p = compile_ok(
            "uprobe:libc:malloc /pid == 42 && arg0 + 2 * 3 > 1 << 4 || !tid/ { @ = count(); }",
        );
        let pid = builtin(pb::ProbeBuiltin::Pid);
        let arg0 = ex(E::Arg(0));
        let tid = builtin(pb::ProbeBuiltin::Tid);
        let want = b(
            Bin::Or,
            b(
                Bin::And,
                b(Bin::Eq, pid, int(42)),
                b(
                    Bin::Gt,
                    b(Bin::Add, arg0, b(Bin::Mul, int(2), int(3))),
                    b(Bin::Shl, int(1), int(4)),
                ),
            ),
            ex(E::Unary(Box::new(pb::ProbeUnary {
                op: Un::Not as i32,
                operand: Some(Box::new(tid)),
            }))),
        );
        assert_eq!(p.request.clauses[0].predicate, Some(want));
        // Division needs parentheses in a predicate, as '/' ends it.
        let p = compile_ok("uprobe:libc:malloc /(arg0 / 2) == 8/ { @ = count(); }");
        assert_eq!(
            p.request.clauses[0].predicate,
            Some(b(Bin::Eq, b(Bin::Div, ex(E::Arg(0)), int(2)), int(8)))
        );
        // Hex, negatives, comparisons of strings.
        let p =
            compile_ok("uprobe:libc:malloc /comm == \"bash\" & 0/ { @ = sum(-0x10 & ~arg1 % 3); }");
        let c = &p.request.clauses[0];
        assert_eq!(
            c.predicate,
            Some(b(
                Bin::BitAnd,
                b(
                    Bin::Eq,
                    builtin(pb::ProbeBuiltin::Comm),
                    ex(E::Str("bash".into()))
                ),
                int(0)
            ))
        );
        assert_eq!(
            c.updates[0].value,
            Some(b(
                Bin::BitAnd,
                int(-16),
                b(
                    Bin::Mod,
                    ex(E::Unary(Box::new(pb::ProbeUnary {
                        op: Un::BitNot as i32,
                        operand: Some(Box::new(ex(E::Arg(1)))),
                    }))),
                    int(3)
                )
            ))
        );
    }

    #[test]
    fn aggregations() {
        let p = compile_ok(
            "uprobe:libc:malloc { @s[pid, comm] = sum(arg0); @mn = min(arg0); @mx = max(arg0); \
             @a = avg(arg0); @st = stats(arg0); @h = hist(arg0); @l = lhist(arg0, 0, 1000, 100) }",
        );
        let u = &p.request.clauses[0].updates;
        let aggs: Vec<i32> = u.iter().map(|u| u.agg).collect();
        assert_eq!(
            aggs,
            [
                Agg::Sum,
                Agg::Min,
                Agg::Max,
                Agg::Avg,
                Agg::Stats,
                Agg::Hist,
                Agg::Lhist
            ]
            .map(|a| a as i32)
            .to_vec()
        );
        assert_eq!(u[0].keys.len(), 2);
        assert_eq!(u[0].value, Some(ex(E::Arg(0))));
        assert_eq!(
            (u[6].lhist_min, u[6].lhist_max, u[6].lhist_step),
            (0, 1000, 100)
        );
        assert_eq!(
            p.maps["@l"].lhist,
            Some(Lhist {
                min: 0,
                max: 1000,
                step: 100
            })
        );
        assert_eq!(p.maps["@s"].key_kinds, vec![ArgKind::Int, ArgKind::Str]);
    }

    #[test]
    fn printf_events_and_strings() {
        let p = compile_ok(
            "tracepoint:syscalls:sys_enter_openat { printf(\"%s %s\\n\", comm, str(args->filename)); \
             printf(\"%d\\n\", reg(\"rip\")); time(); }",
        );
        let c = &p.request.clauses[0];
        assert!(c.emit_event);
        assert_eq!(
            c.event_values,
            vec![
                builtin(pb::ProbeBuiltin::Comm),
                ex(E::StrAt(Box::new(pb::ProbeStr {
                    addr: Some(Box::new(ex(E::Arg(1)))),
                    len: 0
                }))),
                ex(E::Register("rip".into())),
            ]
        );
        assert_eq!(
            p.events[0],
            vec![
                EventAction::Printf {
                    format: "%s %s\n".into(),
                    args: 2
                },
                EventAction::Printf {
                    format: "%d\n".into(),
                    args: 1
                },
                EventAction::Time("%H:%M:%S\n".into()),
            ]
        );
        let p = compile_ok("uprobe:libc:puts { printf(\"%s\\n\", str(arg0, 16)); exit(); }");
        assert_eq!(
            p.request.clauses[0].event_values,
            vec![ex(E::StrAt(Box::new(pb::ProbeStr {
                addr: Some(Box::new(ex(E::Arg(0)))),
                len: 16
            })))]
        );
        assert_eq!(p.events[0][1], EventAction::Exit);
    }

    #[test]
    fn begin_end_and_comments() {
        let p = compile_ok(
            "#!/usr/bin/env bpftrace\n\
             /* a comment */ BEGIN { printf(\"Tracing... Hit Ctrl-C to end.\\n\"); }\n\
             // another\n\
             uprobe:libc:malloc { @bytes = hist(arg0); }\n\
             END { printf(\"%s %d\\n\", \"done\", 1 + 2); print(@bytes, 5); clear(@bytes); }",
        );
        assert_eq!(p.probes, 3);
        assert_eq!(
            p.begin,
            vec![ClientAction::Printf {
                format: "Tracing... Hit Ctrl-C to end.\n".into(),
                args: vec![]
            }]
        );
        assert_eq!(
            p.end,
            vec![
                ClientAction::Printf {
                    format: "%s %d\n".into(),
                    args: vec![
                        pb::ProbeValue {
                            value: Some(Value::Str("done".into()))
                        },
                        pb::ProbeValue {
                            value: Some(Value::Int(3))
                        }
                    ]
                },
                ClientAction::Print {
                    map: "@bytes".into(),
                    top: 5,
                    div: 0
                },
                ClientAction::Clear("@bytes".into()),
            ]
        );
        assert_eq!(p.request.snapshot_interval_ms, 0);
    }

    #[test]
    fn intervals() {
        let ms = |src: &str| compile_ok(src).request.snapshot_interval_ms;
        let probe = "uprobe:libc:malloc { @ = count(); } ";
        assert_eq!(ms(&format!("{probe} interval:ms:250 {{ print(@); }}")), 250);
        assert_eq!(ms(&format!("{probe} i:s:5 {{ exit(); }}")), 5000);
        assert_eq!(ms(&format!("{probe} interval:hz:10 {{ print(@); }}")), 100);
        assert!(
            !compile_ok(&format!("{probe} interval:s:1 {{ print(@); }}"))
                .request
                .clear_after_snapshot
        );
        assert!(
            error(&format!("{probe} interval:s:1 {{ }} interval:s:2 {{ }}"))
                .contains("only one interval probe is supported")
        );
        assert!(error(&format!("{probe} interval:ms:5 {{ }}")).contains("at least 10 ms"));
        assert!(error(
            "uprobe:libc:malloc { @a = count(); @b = count(); } interval:s:1 { print(@a); clear(@a); }"
        )
        .contains("clears some maps but not @b"));
    }

    #[test]
    fn args_names() {
        let p = compile_ok(
            "tracepoint:syscalls:sys_enter_read { @[args->fd] = sum(args->count); } \
             tracepoint:syscalls:sys_exit_read { @r = hist(args->ret); } \
             tracepoint:raw_syscalls:sys_enter { @x = sum(args->args[2]); }",
        );
        let c = &p.request.clauses;
        assert_eq!(c[0].updates[0].keys, vec![ex(E::Arg(0))]);
        assert_eq!(c[0].updates[0].value, Some(ex(E::Arg(2))));
        assert_eq!(
            c[1].updates[0].value,
            Some(builtin(pb::ProbeBuiltin::Retval))
        );
        assert_eq!(c[2].updates[0].value, Some(ex(E::Arg(2))));
        assert!(
            error("tracepoint:syscalls:sys_enter_read { @ = sum(args->nope); }")
                .contains("read has no argument 'nope' (its arguments: fd, buf, count)")
        );
        assert!(error("uprobe:libc:malloc { @ = sum(args->size); }")
            .contains("args is only defined at syscall tracepoints"));
    }

    #[test]
    fn error_positions() {
        assert_eq!(
            error("uprobe:libc:puts { @[str(arg0 { }"),
            "1:31: expected ')' after str's argument, found '{'"
        );
        assert_eq!(
            error("uprobe:libc:puts\n{\n  @x = count()\n  @y = count(); }"),
            "4:3: expected ';' or '}' after the statement, found '@y'"
        );
        assert_eq!(
            error("uprobe:libc:puts { printf(\"%s\\n\", pid); }"),
            "1:20: printf: %s specifier expects a value of type string (integer supplied)"
        );
        assert_eq!(
            error("kprobe:do_sys_open { @ = count(); }"),
            "1:1: kprobe probes are not supported: utrace probes one process (uprobe, \
             uretprobe, usdt, tracepoint:syscalls, tracepoint:raw_syscalls, syscall, \
             interval, BEGIN and END)"
        );
        assert_eq!(
            error("uprobe:libc:puts { @ = count(); } END { print(@x); }"),
            "1:41: undefined map: @x"
        );
        assert_eq!(
            error("uprobe:libc:puts { @ = count(); @ = sum(1); }"),
            "1:33: @ is a count() map (at 1:20), updated here with sum()"
        );
        assert_eq!(
            error("uprobe:libc:puts { $x = 1; }"),
            "1:20: $x: scratch variables are not supported by utrace probe"
        );
        assert_eq!(
            error("uprobe:libc:puts { @ = count(); "),
            "1:33: expected '}' to close the probe's block, found the end of the program"
        );
        assert_eq!(
            error("uprobe:libc:puts /pid == 1 { @ = count(); }"),
            "1:28: expected '/' to end the predicate, found '{'"
        );
        assert_eq!(
            error("uprobe:libc:puts { @ = lhist(arg0, 0, 10, 0); }"),
            "1:24: lhist() step must be >= 1 (0 provided)"
        );
        assert_eq!(
            error("BEGIN { printf(\"hi\\n\"); }"),
            "1:26: the program has no uprobe, uretprobe or syscall probe: nothing to probe"
        );
        assert_eq!(
            error("uprobe:libc:puts { @ = count(); print(@); }"),
            "1:33: print() runs in BEGIN, END and interval probes only (the server keeps the \
             maps; utrace prints them from its snapshots)"
        );
        assert_eq!(
            error("uprobe:libc:puts { printf(\"%d\\n\", cpu); }"),
            "1:35: cpu is not supported by utrace probe (builtins: pid, tid, comm, nsecs, \
             retval, probe, arg0-arg5, args->NAME, ustack)"
        );
        assert_eq!(
            error("uprobe:libc:puts { @ = count(); } END { printf(\"%d\\n\", pid); }"),
            "1:56: pid is not known in BEGIN, END and interval probes (they run in utrace, not \
             in the process)"
        );
        assert_eq!(
            error("uprobe:libc:puts { @ = \"x; }"),
            "1:24: unterminated string"
        );
        assert_eq!(
            error("uprobe:libc:puts { @ = count(); } /* x"),
            "1:35: unterminated comment"
        );
        assert_eq!(
            error("uprobe:libc:malloc /retval/ { @ = count(); }"),
            "1:21: retval is only set at returns: uretprobe, syscall exits \
             (tracepoint:syscalls:sys_exit_NAME, syscall:NAME:exit)"
        );
        assert_eq!(
            error("uprobe:libc:* { @ = count(); }"),
            "1:1: uprobe:libc:*: wildcards are not supported; name each point"
        );
    }

    #[test]
    fn server_messages_name_the_program() {
        let p = compile_ok(
            "uprobe:libc:malloc { @ = count(); }\nuretprobe:libc:a, uprobe:libc:nope { @b = count(); }",
        );
        assert_eq!(
            p.explain("clauses[1].points[1]: no symbol \"nope\" in libc"),
            "uprobe:libc:nope (2:19): no symbol \"nope\" in libc"
        );
        assert_eq!(
            p.explain("clauses[1].points[0].function.on_return: not served yet"),
            "uretprobe:libc:a (2:1): not served yet"
        );
        assert_eq!(
            p.explain("clauses[0].updates[0].map: too long"),
            "the probe at 1:1: updates[0].map: too long"
        );
        assert_eq!(p.explain("no such process"), "no such process");
        assert_eq!(
            p.explain("clauses[9].points[0]: x"),
            "clauses[9].points[0]: x"
        );
    }

    #[test]
    fn many_points_make_several_clauses() {
        let points: Vec<String> = (0..20).map(|i| format!("uprobe:libc:f{i}")).collect();
        let p = compile_ok(&format!("{} {{ printf(\"x\\n\"); }}", points.join(",")));
        assert_eq!(p.request.clauses.len(), 2);
        assert_eq!(p.request.clauses[0].points.len(), 16);
        assert_eq!(p.request.clauses[1].points.len(), 4);
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.probes, 20);
    }
}
