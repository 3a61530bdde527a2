//! `vFile`: the debugger reads files as the process sees them (its
//! executable, its libraries, `/proc/PID/maps` for pwndbg's and gef's
//! `vmmap`), with no local copy needed.
//!
//! Read-only, with the rights of the user running the bridge (never the
//! server's): a file this user could not open itself is refused. After
//! `vFile:setfs:PID`, paths are resolved inside that process's root
//! (`/proc/PID/root`, with `openat2(RESOLVE_IN_ROOT)`, so absolute symlinks
//! stay inside it too): its mount namespace, as gdbserver does. At most
//! [`MAX_OPEN`] files are open at once.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt};

use gdbstub::target::ext::host_io::{
    FsKind, HostIo, HostIoClose, HostIoCloseOps, HostIoErrno, HostIoError, HostIoFstat,
    HostIoFstatOps, HostIoOpen, HostIoOpenFlags, HostIoOpenMode, HostIoOpenOps, HostIoPread,
    HostIoPreadOps, HostIoReadlink, HostIoReadlinkOps, HostIoResult, HostIoSetfs, HostIoSetfsOps,
    HostIoStat,
};

use super::target::Bridge;

/// Files the debugger may hold open at once.
pub const MAX_OPEN: usize = 64;

/// The bridge's open files and the filesystem paths are resolved in.
#[derive(Default)]
pub struct Files {
    open: HashMap<u32, File>,
    next: u32,
    /// `setfs`: resolve paths inside this process's root.
    root_of: Option<u32>,
}

fn errno(e: nix::errno::Errno) -> HostIoErrno {
    use nix::errno::Errno as E;
    match e {
        E::EPERM => HostIoErrno::EPERM,
        E::ENOENT => HostIoErrno::ENOENT,
        E::EINTR => HostIoErrno::EINTR,
        E::EIO => HostIoErrno::EIO,
        E::EBADF => HostIoErrno::EBADF,
        E::EACCES => HostIoErrno::EACCES,
        E::EFAULT => HostIoErrno::EFAULT,
        E::EBUSY => HostIoErrno::EBUSY,
        E::EEXIST => HostIoErrno::EEXIST,
        E::ENODEV => HostIoErrno::ENODEV,
        E::ENOTDIR => HostIoErrno::ENOTDIR,
        E::EISDIR => HostIoErrno::EISDIR,
        E::EINVAL => HostIoErrno::EINVAL,
        E::ENFILE => HostIoErrno::ENFILE,
        E::EMFILE => HostIoErrno::EMFILE,
        E::ENAMETOOLONG => HostIoErrno::ENAMETOOLONG,
        E::ELOOP => HostIoErrno::EINVAL,
        _ => HostIoErrno::EUNKNOWN,
    }
}

fn io_errno(e: &std::io::Error) -> HostIoErrno {
    e.raw_os_error()
        .map(|n| errno(nix::errno::Errno::from_raw(n)))
        .unwrap_or(HostIoErrno::EUNKNOWN)
}

impl Files {
    /// Open `path` read-only where the debugger asked paths to be resolved.
    fn open(&self, path: &[u8]) -> Result<File, HostIoErrno> {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let path = std::path::Path::new(OsStr::from_bytes(path));
        let Some(pid) = self.root_of else {
            return File::open(path).map_err(|e| io_errno(&e));
        };
        let root = File::open(format!("/proc/{pid}/root")).map_err(|e| io_errno(&e))?;
        let how = nix::fcntl::OpenHow::new()
            .flags(nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC)
            .resolve(nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT);
        let fd = nix::fcntl::openat2(&root, path, how).map_err(errno)?;
        Ok(File::from(fd))
    }
}

impl HostIo for Bridge {
    fn support_open(&mut self) -> Option<HostIoOpenOps<'_, Self>> {
        Some(self)
    }
    fn support_close(&mut self) -> Option<HostIoCloseOps<'_, Self>> {
        Some(self)
    }
    fn support_pread(&mut self) -> Option<HostIoPreadOps<'_, Self>> {
        Some(self)
    }
    fn support_fstat(&mut self) -> Option<HostIoFstatOps<'_, Self>> {
        Some(self)
    }
    fn support_readlink(&mut self) -> Option<HostIoReadlinkOps<'_, Self>> {
        Some(self)
    }
    fn support_setfs(&mut self) -> Option<HostIoSetfsOps<'_, Self>> {
        Some(self)
    }
}

impl HostIoOpen for Bridge {
    fn open(
        &mut self,
        filename: &[u8],
        flags: HostIoOpenFlags,
        _mode: HostIoOpenMode,
    ) -> HostIoResult<u32, Self> {
        let writes = HostIoOpenFlags::O_WRONLY
            | HostIoOpenFlags::O_RDWR
            | HostIoOpenFlags::O_APPEND
            | HostIoOpenFlags::O_CREAT
            | HostIoOpenFlags::O_TRUNC;
        if flags.intersects(writes) {
            return Err(HostIoError::Errno(HostIoErrno::EROFS));
        }
        let files = &mut self.files;
        if files.open.len() >= MAX_OPEN {
            return Err(HostIoError::Errno(HostIoErrno::EMFILE));
        }
        let f = files.open(filename).map_err(HostIoError::Errno)?;
        files.next = files.next.wrapping_add(1);
        let fd = files.next;
        files.open.insert(fd, f);
        Ok(fd)
    }
}

impl HostIoClose for Bridge {
    fn close(&mut self, fd: u32) -> HostIoResult<(), Self> {
        self.files
            .open
            .remove(&fd)
            .map(drop)
            .ok_or(HostIoError::Errno(HostIoErrno::EBADF))
    }
}

impl HostIoPread for Bridge {
    fn pread(
        &mut self,
        fd: u32,
        count: usize,
        offset: u64,
        buf: &mut [u8],
    ) -> HostIoResult<usize, Self> {
        let f = self
            .files
            .open
            .get(&fd)
            .ok_or(HostIoError::Errno(HostIoErrno::EBADF))?;
        let n = count.min(buf.len());
        f.read_at(&mut buf[..n], offset)
            .map_err(|e| HostIoError::Errno(io_errno(&e)))
    }
}

impl HostIoFstat for Bridge {
    fn fstat(&mut self, fd: u32) -> HostIoResult<HostIoStat, Self> {
        let f = self
            .files
            .open
            .get(&fd)
            .ok_or(HostIoError::Errno(HostIoErrno::EBADF))?;
        let m = f.metadata().map_err(|e| HostIoError::Errno(io_errno(&e)))?;
        Ok(HostIoStat {
            st_dev: m.dev() as u32,
            st_ino: m.ino() as u32,
            st_mode: HostIoOpenMode::from_bits_truncate(m.mode()),
            st_nlink: m.nlink() as u32,
            st_uid: m.uid(),
            st_gid: m.gid(),
            st_rdev: m.rdev() as u32,
            st_size: m.size(),
            st_blksize: m.blksize(),
            st_blocks: m.blocks(),
            st_atime: m.atime() as u32,
            st_mtime: m.mtime() as u32,
            st_ctime: m.ctime() as u32,
        })
    }
}

impl HostIoReadlink for Bridge {
    fn readlink(&mut self, filename: &[u8], buf: &mut [u8]) -> HostIoResult<usize, Self> {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let path = std::path::Path::new(OsStr::from_bytes(filename));
        let target = match self.files.root_of {
            None => std::fs::read_link(path).map_err(|e| HostIoError::Errno(io_errno(&e)))?,
            Some(pid) => {
                // The link's own directory inside the process's root, then
                // readlinkat on its last component.
                let root = File::open(format!("/proc/{pid}/root"))
                    .map_err(|e| HostIoError::Errno(io_errno(&e)))?;
                let (dir, name) = match (path.parent(), path.file_name()) {
                    (Some(d), Some(n)) => (d, n),
                    _ => return Err(HostIoError::Errno(HostIoErrno::EINVAL)),
                };
                let how = nix::fcntl::OpenHow::new()
                    .flags(
                        nix::fcntl::OFlag::O_PATH
                            | nix::fcntl::OFlag::O_DIRECTORY
                            | nix::fcntl::OFlag::O_CLOEXEC,
                    )
                    .resolve(nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT);
                let d: OwnedFd = nix::fcntl::openat2(&root, dir, how)
                    .map_err(|e| HostIoError::Errno(errno(e)))?;
                std::path::PathBuf::from(
                    nix::fcntl::readlinkat(&d, name).map_err(|e| HostIoError::Errno(errno(e)))?,
                )
            }
        };
        let bytes = target.as_os_str().as_encoded_bytes();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
}

impl HostIoSetfs for Bridge {
    fn setfs(&mut self, fs: FsKind) -> HostIoResult<(), Self> {
        self.files.root_of = match fs {
            FsKind::Stub => None,
            FsKind::Pid(pid) => Some(pid.get() as u32),
        };
        Ok(())
    }
}
