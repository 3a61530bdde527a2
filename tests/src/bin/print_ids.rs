//! Writes the credentials it runs with to the file named by its argument,
//! as `ruid=R euid=E rgid=G egid=G`: the security tests install a setuid
//! copy of it to see whether an exec gained privileges.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: print_ids FILE");
        std::process::exit(2);
    };
    // SAFETY: these calls have no preconditions.
    let (ruid, euid, rgid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    let line = format!("ruid={ruid} euid={euid} rgid={rgid} egid={egid}\n");
    if let Err(e) = std::fs::write(&path, line) {
        eprintln!("print_ids: {path}: {e}");
        std::process::exit(1);
    }
}
