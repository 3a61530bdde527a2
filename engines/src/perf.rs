//! The kernel boundary of the uprobe back end: `perf_event_open` on the
//! uprobe PMU, its ioctls, and the ring buffer the kernel writes samples
//! into. Like [`crate::sys`], nothing here decides anything: each wrapper
//! maps errno to [`Errno`]; `uprobe.rs` builds on it.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use perf_event_open_sys as pe;
use perf_event_open_sys::bindings as b;

use crate::sys::{Errno, Tid};

/// `PERF_SAMPLE_*` of every uprobe sample: the event's id (first, so a
/// record names its event before anything else is parsed), the thread,
/// the time and the user registers.
pub(crate) const SAMPLE_TYPE: u64 = (b::PERF_SAMPLE_IDENTIFIER
    | b::PERF_SAMPLE_TID
    | b::PERF_SAMPLE_TIME
    | b::PERF_SAMPLE_REGS_USER) as u64;

/// The user registers sampled (`PERF_REG_X86_*` bits): AX BX CX DX SI DI
/// BP SP IP FLAGS CS SS (0–11) and R8–R15 (16–23). DS ES FS GS (12–15)
/// are refused by the kernel for 64-bit tasks.
pub(crate) const REGS_MASK: u64 = 0x00ff_0fff;

/// The names of the sampled registers, in the order the kernel writes
/// them (ascending bit), as [`crate::arch`] names them.
pub(crate) const REG_NAMES: [&str; 20] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "rip", "eflags", "cs", "ss", "r8",
    "r9", "r10", "r11", "r12", "r13", "r14", "r15",
];

/// The most frames a sampled user stack has (the kernel's default
/// `perf_event_max_stack`, bpftrace's `ustack` depth).
pub const MAX_STACK: usize = 127;

/// Callchain entries at or above this are the kernel's context markers
/// (`PERF_CONTEXT_USER`...), not addresses.
const PERF_CONTEXT_MAX: u64 = (-4095i64) as u64;

/// The addresses of a sampled callchain (`nr` entries), markers dropped.
pub(crate) fn user_frames(ips: impl Iterator<Item = u64>) -> Vec<u64> {
    ips.filter(|ip| *ip < PERF_CONTEXT_MAX)
        .take(MAX_STACK)
        .collect()
}

pub(crate) const RECORD_SAMPLE: u32 = b::PERF_RECORD_SAMPLE;
pub(crate) const RECORD_LOST: u32 = b::PERF_RECORD_LOST;

/// The uprobe PMU's type number (`/sys/bus/event_source/devices/uprobe/
/// type`), read once; `None` when the kernel has no uprobes.
pub(crate) fn uprobe_pmu() -> Option<u32> {
    static TYPE: OnceLock<Option<u32>> = OnceLock::new();
    *TYPE.get_or_init(|| {
        std::fs::read_to_string("/sys/bus/event_source/devices/uprobe/type")
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
}

fn open(attr: &mut b::perf_event_attr, tid: Tid) -> Result<OwnedFd, Errno> {
    attr.size = std::mem::size_of::<b::perf_event_attr>() as u32;
    // Monotonic time (the default is the scheduler's clock), the same for
    // every event sharing a ring (the kernel insists).
    attr.set_use_clockid(1);
    attr.clockid = libc::CLOCK_MONOTONIC;
    // SAFETY: `attr` is a fully initialised perf_event_attr of the size it
    // states; any pointer in it (the uprobe path) is valid for the call.
    let fd =
        unsafe { pe::perf_event_open(attr, tid, -1, -1, b::PERF_FLAG_FD_CLOEXEC as libc::c_ulong) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: a new descriptor this process now owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The kernel's internal ENOTSUPP, which its uprobes return to
/// `perf_event_open` for an instruction they cannot take (on x86, an
/// EVEX-encoded AVX-512 one, as in libc's string functions): not a
/// user-space errno, so nix has no name for it.
const KERNEL_ENOTSUPP: i32 = 524;

/// errno after a failed call, with the kernel's ENOTSUPP as the user-space
/// EOPNOTSUPP (the same meaning) instead of nix's nameless `UnknownErrno`.
fn last_errno() -> Errno {
    match std::io::Error::last_os_error().raw_os_error() {
        Some(KERNEL_ENOTSUPP) => Errno::EOPNOTSUPP,
        Some(raw) => Errno::from_raw(raw),
        None => Errno::UnknownErrno,
    }
}

/// A uprobe (with `ret`, a return probe) on thread `tid` at `offset` in
/// the file `path` names: one sample per hit ([`SAMPLE_TYPE`], [`REGS_MASK`]), waking the ring's
/// poller when it is half full. With `stack`, a sample also carries the
/// user callchain (`PERF_SAMPLE_CALLCHAIN`, user part only, at most
/// [`MAX_STACK`] frames: the kernel walks the frame pointers at the hit),
/// between the time and the registers. Enabled from the start. Returns
/// the event and its id (the identifier its samples carry).
pub(crate) fn open_uprobe(
    pmu: u32,
    path: &CStr,
    offset: u64,
    tid: Tid,
    ret: bool,
    ref_ctr: u64,
    stack: bool,
) -> Result<(OwnedFd, u64), Errno> {
    // SAFETY: perf_event_attr is plain data; all-zero is its default.
    let mut attr: b::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = pmu;
    // Bit 0 (the PMU's `retprobe` format): sample at the function's
    // return (the kernel swaps the return address on entry), not entry.
    // Bits 32-63 (`ref_ctr_offset`): a USDT semaphore the kernel counts.
    attr.config = u64::from(ret) | (ref_ctr << 32);
    attr.__bindgen_anon_3.uprobe_path = path.as_ptr() as u64;
    attr.__bindgen_anon_4.probe_offset = offset;
    open_sampling(&mut attr, tid, stack)
}

/// A sampling event on a uprobe defined in tracefs (tracepoint `id`, see
/// [`crate::tracefs`]) on thread `tid`: as [`open_uprobe`], and each
/// sample also carries the values the kernel fetched at the hit
/// (`PERF_SAMPLE_RAW`, between the callchain and the registers).
pub(crate) fn open_trace_uprobe(id: u64, tid: Tid, stack: bool) -> Result<(OwnedFd, u64), Errno> {
    // SAFETY: perf_event_attr is plain data; all-zero is its default.
    let mut attr: b::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = b::PERF_TYPE_TRACEPOINT;
    attr.config = id;
    attr.sample_type = b::PERF_SAMPLE_RAW as u64;
    open_sampling(&mut attr, tid, stack)
}

/// Open `attr` (its type and config set) as an event sampling every hit
/// of thread `tid` ([`SAMPLE_TYPE`] added to its sample type, and with
/// `stack` the callchain), enabled from the start; the event and its id.
fn open_sampling(
    attr: &mut b::perf_event_attr,
    tid: Tid,
    stack: bool,
) -> Result<(OwnedFd, u64), Errno> {
    attr.__bindgen_anon_1.sample_period = 1;
    attr.sample_type |= SAMPLE_TYPE;
    if stack {
        attr.sample_type |= b::PERF_SAMPLE_CALLCHAIN as u64;
        attr.set_exclude_callchain_kernel(1);
        attr.sample_max_stack = MAX_STACK as u16;
    }
    attr.sample_regs_user = REGS_MASK;
    // Wake the poller when half the ring is full, not at every sample: a
    // hot probe must not wake the tracer thread at every hit (it drains
    // the rings at each loop and every few milliseconds anyway).
    attr.set_watermark(1);
    attr.__bindgen_anon_2.wakeup_watermark = (ring_bytes() / 2) as u32;
    // read() gives the samples this event could not write (a full ring).
    attr.read_format = b::PERF_FORMAT_LOST as u64;
    with_id(open(attr, tid)?)
}

/// An event and its id (the identifier its samples carry).
fn with_id(fd: OwnedFd) -> Result<(OwnedFd, u64), Errno> {
    let mut id = 0u64;
    // SAFETY: PERF_EVENT_IOC_ID writes one u64 through the pointer.
    if unsafe { pe::ioctls::ID(fd.as_raw_fd(), &mut id) } < 0 {
        return Err(Errno::last());
    }
    Ok((fd, id))
}

/// A counting uprobe on thread `tid` at `offset` in the file `path` names:
/// no sample, no ring; `read()` gives the hits ([`count`]). The kernel's
/// work per hit is the trap and an increment: about a third of a sampled
/// hit's cost. Enabled from the start. Returns the event and its id.
pub(crate) fn open_uprobe_counting(
    pmu: u32,
    path: &CStr,
    offset: u64,
    tid: Tid,
    ref_ctr: u64,
) -> Result<(OwnedFd, u64), Errno> {
    // SAFETY: perf_event_attr is plain data; all-zero is its default.
    let mut attr: b::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = pmu;
    // An entry probe; bits 32-63: a USDT semaphore (see `open_uprobe`).
    attr.config = ref_ctr << 32;
    attr.__bindgen_anon_3.uprobe_path = path.as_ptr() as u64;
    attr.__bindgen_anon_4.probe_offset = offset;
    with_id(open(&mut attr, tid)?)
}

/// The hits a counting event (from [`open_uprobe_counting`]) has counted.
pub(crate) fn count(event: &OwnedFd) -> Result<u64, Errno> {
    let mut v = [0u8; 8];
    crate::sys::read_exact(event.as_raw_fd(), &mut v)?;
    Ok(u64::from_ne_bytes(v))
}

/// How many samples `event` (opened by [`open_uprobe`]) has lost so far.
pub(crate) fn lost(event: &OwnedFd) -> Result<u64, Errno> {
    // read_format LOST alone: { value, lost }.
    let mut v = [0u8; 16];
    crate::sys::read_exact(event.as_raw_fd(), &mut v)?;
    let (_, lost) = v.split_at(8);
    Ok(u64::from_ne_bytes(lost.try_into().map_err(|_| Errno::EIO)?))
}

/// Send the samples of `event` to `ring`'s buffer (both on one thread).
pub(crate) fn set_output(event: &OwnedFd, ring: &Ring) -> Result<(), Errno> {
    // SAFETY: plain ioctl on two perf descriptors this process owns.
    if unsafe { pe::ioctls::SET_OUTPUT(event.as_raw_fd(), ring.fd.as_raw_fd()) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// One thread's sample buffer: a dummy software event on the thread (it
/// counts nothing) whose mapped ring the thread's uprobes write to.
pub(crate) struct Ring {
    fd: OwnedFd,
    /// The mapping: one control page, then `data_size` bytes of ring.
    base: NonNull<u8>,
    map_len: usize,
    data_offset: usize,
    data_size: usize,
}

// SAFETY: the mapping is owned by this value alone; the kernel writes the
// data pages and `data_head`, which are only read through atomics and
// copies here. Moving it to another thread moves that ownership.
unsafe impl Send for Ring {}

/// Data pages per ring (a power of two): 64 KiB, about 330 samples (a
/// probed thread's entry, return and USDT samples share it; the tracer
/// drains it when half full, and every 5 to 50 ms: see the tracer's
/// `PROBE_POLL_MS`).
const RING_PAGES: usize = 16;

fn ring_bytes() -> usize {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }) as usize * RING_PAGES
}

impl Ring {
    pub(crate) fn open(tid: Tid) -> Result<Ring, Errno> {
        // SAFETY: perf_event_attr is plain data; all-zero is its default.
        let mut attr: b::perf_event_attr = unsafe { std::mem::zeroed() };
        attr.type_ = b::PERF_TYPE_SOFTWARE;
        attr.config = b::PERF_COUNT_SW_DUMMY as u64;
        let fd = open(&mut attr, tid)?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let map_len = page * (1 + RING_PAGES);
        // SAFETY: a new shared mapping of a perf descriptor; the result is
        // checked before use and unmapped in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or(Errno::ENOMEM)?;
        // SAFETY: the control page is mapped and the kernel filled it in.
        let (off, size) = unsafe {
            let meta = base.as_ptr().cast::<b::perf_event_mmap_page>();
            (
                std::ptr::addr_of!((*meta).data_offset).read_volatile(),
                std::ptr::addr_of!((*meta).data_size).read_volatile(),
            )
        };
        // Kernels before 4.1 leave these zero: the data follow the page.
        let (data_offset, data_size) = if size == 0 {
            (page, page * RING_PAGES)
        } else {
            (off as usize, size as usize)
        };
        Ok(Ring {
            fd,
            base,
            map_len,
            data_offset,
            data_size,
        })
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn meta_word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `offset` is that of `data_head` or `data_tail`, u64s in
        // the mapped control page, 8-aligned; the reference lives no
        // longer than `self`, which keeps the mapping.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// Move every record written so far out of the ring, oldest first,
    /// into `out` (each record whole, wrapped parts joined); the space is
    /// given back to the kernel.
    pub(crate) fn drain(&mut self, out: &mut Vec<u8>) {
        let head_at = std::mem::offset_of!(b::perf_event_mmap_page, data_head);
        let tail_at = std::mem::offset_of!(b::perf_event_mmap_page, data_tail);
        // Acquire: the records up to `head` are written before it moved.
        let head = self.meta_word(head_at).load(Ordering::Acquire);
        let tail = self.meta_word(tail_at).load(Ordering::Relaxed);
        let len = head.wrapping_sub(tail) as usize;
        if len == 0 {
            return;
        }
        let len = len.min(self.data_size);
        let start = (tail as usize) % self.data_size;
        let first = len.min(self.data_size - start);
        // SAFETY: both spans lie inside the mapped data area (start +
        // first <= data_size, len - first < data_size); the kernel does
        // not write there until `data_tail` moves past them.
        unsafe {
            let data = self.base.as_ptr().add(self.data_offset);
            out.extend_from_slice(std::slice::from_raw_parts(data.add(start), first));
            out.extend_from_slice(std::slice::from_raw_parts(data, len - first));
        }
        // Release: the copy is complete before the kernel may overwrite.
        self.meta_word(tail_at)
            .store(tail.wrapping_add(len as u64), Ordering::Release);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.map_len);
        }
    }
}
