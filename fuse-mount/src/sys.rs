//! The only unsafe code of the crate: the few system calls std does not offer (signal
//! handling, unmount, the image lock, page-cache residency, the allocator's trim).
//!
//! Invariants: every `unsafe` block has a SAFETY comment; nothing here keeps a pointer past
//! the call that received it.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the pipe the signal handler writes the signal number to (-1: none).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte that outlives the
        // call. A failed write (full pipe) only loses a duplicate signal.
        unsafe {
            libc::write(fd, std::ptr::addr_of!(byte).cast(), 1);
        }
    }
}

/// Routes SIGTERM, SIGINT and SIGHUP to a pipe; returns its read end, which yields one byte
/// (the signal number) per signal.
pub fn signal_pipe() -> io::Result<std::fs::File> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read, write] = fds;
    SIGNAL_PIPE.store(write, Ordering::Relaxed);
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is a valid value; the handler is an extern "C" fn that
        // only calls async-signal-safe write(2).
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: `read` is a fresh descriptor from pipe2 that nothing else owns.
    Ok(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(read) })
}

/// Unmounts `path`; `lazy` detaches it even while it is busy (MNT_DETACH).
pub fn unmount(path: &Path, lazy: bool) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::umount2(c_path.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes the exclusive lock of `file` without waiting (flock(2), released when the file is
/// closed); false when another open file description holds it.
pub fn try_lock(file: &std::fs::File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor belongs to `file`, which outlives the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(e)
}

/// Pages of `file` in the kernel's page cache, and its length in pages: mincore(2) on a
/// read-only mapping that is never touched, so it counts without faulting anything in. For
/// tests and measurements of the mount's page cache (docs/caching.md).
pub fn resident_pages(file: &std::fs::File) -> io::Result<(usize, usize)> {
    use std::os::fd::AsRawFd;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    if len == 0 {
        return Ok((0, 0));
    }
    // SAFETY: sysconf has no memory arguments.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let pages = len.div_ceil(page);
    // SAFETY: a new shared read-only mapping of an open file, chosen by the kernel; nothing
    // reads through it, and it is unmapped below on every path.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mut vec = vec![0u8; pages];
    // SAFETY: `addr..addr + len` is the mapping made above; `vec` has one byte per page of it.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    let err = io::Error::last_os_error();
    // SAFETY: the mapping made above, unmapped once.
    unsafe { libc::munmap(addr, len) };
    if rc != 0 {
        return Err(err);
    }
    Ok((vec.iter().filter(|&&b| b & 1 != 0).count(), pages))
}

/// Bytes in the C allocator's free chunks (resident or already given back by a trim, which
/// leaves the chunks in place), or `None` where it cannot tell (not glibc).
pub fn allocator_free_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no argument and returns a plain struct by value; glibc
        // locks each arena while it counts, so any thread may call it at any time.
        let info = unsafe { libc::mallinfo2() };
        Some(u64::try_from(info.fordblks).unwrap_or(u64::MAX))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Gives the free pages the C allocator holds back to the system (glibc's `malloc_trim(0)`,
/// which releases whole free pages inside every arena, not only at their tops); whether any
/// memory was released. Does nothing where the allocator is not glibc.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointer; glibc locks each arena while it trims, so
        // any thread may call it at any time.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
