use utrace_engines::*;
struct P;
impl Engine for P {
    fn report_syscall_entry(&mut self, t: &mut Task<'_>, c: &SyscallEntry) -> Action {
        eprintln!(
            "[{}] entry {:?} seccomp={}",
            t.tid(),
            c.name(),
            c.from_seccomp
        );
        Action::Resume
    }
    fn report_syscall_exit(&mut self, t: &mut Task<'_>, c: &SyscallExit) -> Action {
        eprintln!("[{}] exit {:?} = {}", t.tid(), c.entry.name(), c.ret);
        Action::Resume
    }
    fn report_exec(&mut self, t: &mut Task<'_>, e: &ExecReport) -> Action {
        eprintln!("[{}] exec {:?}", t.tid(), e);
        Action::Resume
    }
    fn report_death(&mut self, d: &ExitReport) {
        eprintln!("death {:?}", d);
    }
}
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let set: SyscallSet = std::env::var("SET").unwrap_or_default().parse().unwrap();
    let t = Tracer::new().unwrap();
    let mut so = SpawnOptions::new(args);
    so.kernel_filter = std::env::var("NOFILTER").is_err();
    let s = t
        .spawn(
            so,
            Box::new(P),
            EngineOptions::new(EventMask::all()).syscalls(set),
        )
        .wait();
    eprintln!("spawned {:?}", s);
    loop {
        let tasks = t.tasks().wait().unwrap();
        if tasks.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
