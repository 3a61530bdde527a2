//! strace's `-ff -o FILE`: each thread's lines in `FILE.TID`, from an
//! assembler of its own (a thread's calls never interleave with another's
//! in its file, so no line of it is `<unfinished ...>` for another's sake).
//! A file is made at its thread's first line and closed at its death.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use utrace_client::pb;
use utrace_client::pb::event::Kind;

use crate::assemble::Assembler;

/// The open files, by thread.
pub struct PerThread {
    base: PathBuf,
    make: Box<dyn Fn() -> Assembler + Send>,
    threads: HashMap<u32, (Assembler, BufWriter<File>)>,
}

impl PerThread {
    /// Files named `BASE.TID`; `make` makes a thread's assembler.
    pub fn new(base: PathBuf, make: Box<dyn Fn() -> Assembler + Send>) -> PerThread {
        PerThread {
            base,
            make,
            threads: HashMap::new(),
        }
    }

    /// Feed `ev` to its thread's assembler; its lines go to the thread's
    /// file (made now if this is its first). Errors are the caller's to
    /// report.
    pub fn event(&mut self, ev: &pb::Event) -> std::io::Result<()> {
        let tid = ev.tid;
        if !self.threads.contains_key(&tid) {
            let path = format!("{}.{tid}", self.base.display());
            let f = File::create(&path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
            self.threads.insert(tid, ((self.make)(), BufWriter::new(f)));
        }
        let (asm, file) = self.threads.get_mut(&tid).expect("inserted above");
        let mut r = Ok(());
        asm.event(ev, &mut |l| {
            if r.is_ok() {
                r = file
                    .write_all(l.as_bytes())
                    .and_then(|()| file.write_all(b"\n"));
            }
        });
        if matches!(ev.kind, Some(Kind::Death(_))) {
            if let Some((_, mut f)) = self.threads.remove(&tid) {
                r = r.and(f.flush());
            }
        }
        r
    }

    /// End each thread's open line with `suffix` (the trace ended).
    pub fn finish(&mut self, suffix: &str) -> std::io::Result<()> {
        let mut r = Ok(());
        for (asm, file) in self.threads.values_mut() {
            asm.finish(suffix, &mut |l| {
                if r.is_ok() {
                    r = file
                        .write_all(l.as_bytes())
                        .and_then(|()| file.write_all(b"\n"));
                }
            });
        }
        r.and(self.flush())
    }

    /// Write out what every file has buffered.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let mut r = Ok(());
        for (_, f) in self.threads.values_mut() {
            r = r.and(f.flush());
        }
        r
    }
}
