//! POSIX named semaphores as glibc keeps them: a 32-byte `sem.NAME` file in the shm dir.
//!
//! On 64-bit glibc 2.21 and later the file is a `sem_t` (32 bytes), whose first 8 bytes are a
//! u64 in the machine's byte order: the low 32 bits the value, the high 32 bits the number of
//! waiters. That count is a hint: a waiter killed while blocked is never taken off it.
//! Reading the file without `O_NOATIME` would move its atime, so it is read with it.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// The size of a glibc `sem_t` on 64-bit machines, and so of its file.
pub const SEM_FILE_SIZE: usize = 32;

/// What a semaphore's file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemState {
    /// Its value.
    pub value: u32,
    /// How many threads glibc counts as waiting: a hint, which a killed waiter leaves too high.
    pub waiters_hint: u32,
}

/// The state in a semaphore file's bytes: `None` unless they are exactly [`SEM_FILE_SIZE`]
/// bytes, or on a machine that is not 64-bit (where glibc lays `sem_t` out otherwise).
pub fn decode(bytes: &[u8]) -> Option<SemState> {
    if !cfg!(target_pointer_width = "64") || bytes.len() != SEM_FILE_SIZE {
        return None;
    }
    let data = u64::from_ne_bytes(bytes[..8].try_into().ok()?);
    Some(SemState {
        value: data as u32,
        waiters_hint: (data >> 32) as u32,
    })
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn fstat(fd: i32) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out-pointer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// An `O_PATH` handle on `name` in `dir` itself: a symlink is not followed, and neither a
/// mount point crossed nor the directory left (`ENOENT` then).
fn open_path(dir: BorrowedFd<'_>, name: &CString) -> io::Result<OwnedFd> {
    crate::kernel::posix::open_beneath(dir, name).map_err(|e| match e.raw_os_error() {
        Some(libc::EXDEV) => errno(libc::ENOENT),
        _ => e,
    })
}

/// Whether reads on the filesystem of `fd` never move an atime (mounted `noatime`).
fn never_moves_atime(fd: &OwnedFd) -> bool {
    // SAFETY: statvfs is plain old data.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd (O_PATH is enough for fstatvfs) and out-pointer.
    let rc = unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut sv) };
    rc == 0 && sv.f_flag & libc::ST_NOATIME != 0
}

/// Reopens the file `pinned` holds for reading, `O_NOATIME` with `noatime` set.
fn reopen(pinned: &OwnedFd, noatime: bool) -> io::Result<OwnedFd> {
    let path = CString::new(format!("/proc/self/fd/{}", pinned.as_raw_fd()))
        .map_err(|_| errno(libc::EINVAL))?;
    let mut flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
    if noatime {
        flags |= libc::O_NOATIME;
    }
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The state of the semaphore file `name` (`sem.NAME`) in the shm dir `dir`, read with the
/// calling thread's credentials (`EACCES` without read permission) and without moving its
/// atime.
///
/// `ENOENT` unless `name` is a regular file there (a symlink is not followed); `EINVAL` unless
/// it is [`SEM_FILE_SIZE`] bytes (or on a machine that is not 64-bit). `O_NOATIME` takes owning
/// the file or `CAP_FOWNER`; without them it is read without the flag only on a filesystem
/// mounted `noatime`, where no read moves an atime, and otherwise refused with `EPERM`.
pub fn read_state(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<SemState> {
    read_state_of(dir, name, None)
}

/// As [`read_state`], and `ENOENT` unless the file `name` names now is inode `ino` (the file
/// whose right to be read was checked, not one put in its place meanwhile).
pub fn read_state_of(dir: BorrowedFd<'_>, name: &OsStr, ino: Option<u64>) -> io::Result<SemState> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(errno(libc::ENOENT));
    }
    let c = CString::new(bytes).map_err(|_| errno(libc::ENOENT))?;
    let pinned = open_path(dir, &c)?;
    let st = fstat(pinned.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || ino.is_some_and(|ino| ino != st.st_ino) {
        return Err(errno(libc::ENOENT));
    }
    if st.st_size != SEM_FILE_SIZE as i64 {
        return Err(errno(libc::EINVAL));
    }
    let file = match reopen(&pinned, true) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && never_moves_atime(&pinned) => {
            reopen(&pinned, false)?
        }
        other => other?,
    };
    let mut buf = [0u8; SEM_FILE_SIZE + 1];
    // SAFETY: valid fd and a buffer of the length passed.
    let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    decode(&buf[..n as usize]).ok_or_else(|| errno(libc::EINVAL))
}

/// A task blocked on a POSIX semaphore: in `futex` on an address inside its mapping of the
/// semaphore's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub pid: u32,
    pub tid: u32,
}

/// The futex word address of a task's `/proc/PID/task/TID/syscall` line, if it is in `futex`
/// (the first argument); None for anything else.
pub fn parse_futex_wait(syscall_line: &str) -> Option<u64> {
    let mut fields = syscall_line.split_whitespace();
    let nr: i64 = fields.next()?.parse().ok()?;
    if nr != libc::SYS_futex {
        return None;
    }
    u64::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()
}

/// Whether `maps` (a `/proc/PID/maps` text) maps the file of device `dev` and inode `ino` over
/// address `addr`.
fn maps_file_at(maps: &str, dev: (u32, u32), ino: u64, addr: u64) -> bool {
    maps.lines()
        .filter_map(crate::kernel::attach::parse_map_line)
        .any(|line| {
            let Some((start, end)) = line.range.split_once('-') else {
                return false;
            };
            let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            else {
                return false;
            };
            line.dev == dev && line.ino == ino && (start..end).contains(&addr)
        })
}

/// The tasks waiting on the semaphore whose file has device `dev` and inode `ino`: those in
/// `futex` on an address inside a mapping of that very file (matched by device and inode, not
/// by name: glibc makes it under a temporary name, and a name can be reused). Found by one walk
/// of `/proc/*/task/*/syscall` (what the calling thread may read: all, for the root daemon),
/// then each candidate's maps, read within `proc_read`'s bound. Unlike glibc's count in the
/// file, a killed waiter is not counted.
pub fn waiters(dev: u64, ino: u64) -> io::Result<Vec<Waiter>> {
    let pids = crate::kernel::proc_read::numbered("/proc");
    let candidates: Vec<(u32, u32, u64)> = crate::kernel::proc_read::task_syscalls(&pids)
        .into_iter()
        .filter_map(|(pid, tid, line)| Some((pid, tid, parse_futex_wait(&line)?)))
        .collect();
    let mut pids: Vec<u32> = candidates.iter().map(|c| c.0).collect();
    pids.dedup();
    let dev = (libc::major(dev), libc::minor(dev));
    let maps: std::collections::HashMap<u32, String> =
        crate::kernel::proc_read::each(&pids, "maps", |pid| {
            std::fs::read_to_string(format!("/proc/{pid}/maps"))
        })
        .into_iter()
        .filter_map(|(pid, maps)| Some((pid, maps.ok()?)))
        .collect();
    Ok(candidates
        .into_iter()
        .filter(|(pid, _, addr)| {
            maps.get(pid)
                .is_some_and(|m| maps_file_at(m, dev, ino, *addr))
        })
        .map(|(pid, tid, _)| Waiter { pid, tid })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn futex_waits_are_told_from_other_calls() {
        assert_eq!(
            parse_futex_wait("202 0x7f12a000 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd 0x7f"),
            Some(0x7f12a000)
        );
        assert_eq!(
            parse_futex_wait("220 0x1 0x2 0x3 0x0 0x0 0x0 0x0 0x0"),
            None
        );
        assert_eq!(parse_futex_wait("running"), None);
        assert_eq!(parse_futex_wait("202 junk"), None);
        let maps = "7f12a000-7f12b000 rw-s 00000000 00:1a 4242 /dev/shm/sem.x\n";
        assert!(maps_file_at(maps, (0, 0x1a), 4242, 0x7f12a000));
        assert!(!maps_file_at(maps, (0, 0x1a), 4243, 0x7f12a000));
        assert!(!maps_file_at(maps, (0, 0x1a), 4242, 0x7f12b000));
    }

    #[test]
    fn decodes_value_and_waiters() {
        let mut bytes = [0xaau8; 32];
        bytes[..8].copy_from_slice(&((2u64 << 32) | 7).to_ne_bytes());
        assert_eq!(
            decode(&bytes),
            Some(SemState {
                value: 7,
                waiters_hint: 2
            })
        );
        assert_eq!(decode(&bytes[..31]), None);
        assert_eq!(decode(&[0u8; 33]), None);
        assert_eq!(decode(&[]), None);
    }

    /// A semaphore made with `sem_open` under a unique name, unlinked when dropped.
    struct Sem {
        name: String,
        sem: *mut libc::sem_t,
    }

    impl Sem {
        fn new() -> Sem {
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "shmfs-unit-sem-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let c = CString::new(format!("/{name}")).unwrap();
            // SAFETY: valid C string; mode and initial value as sem_open takes them.
            let sem = unsafe {
                libc::sem_open(
                    c.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL,
                    0o600 as libc::c_uint,
                    0 as libc::c_uint,
                )
            };
            assert_ne!(sem, libc::SEM_FAILED, "{}", io::Error::last_os_error());
            Sem { name, sem }
        }

        fn file_name(&self) -> String {
            format!("sem.{}", self.name)
        }
    }

    impl Drop for Sem {
        fn drop(&mut self) {
            let c = CString::new(format!("/{}", self.name)).unwrap();
            // SAFETY: a semaphore sem_open gave, and a valid C string.
            unsafe {
                libc::sem_close(self.sem);
                libc::sem_unlink(c.as_ptr());
            }
        }
    }

    fn atime(path: &Path) -> (i64, i64) {
        let m = std::fs::metadata(path).unwrap();
        (m.atime(), m.atime_nsec())
    }

    #[test]
    fn reads_a_semaphore_without_moving_its_atime() {
        if !cfg!(target_pointer_width = "64") || !Path::new("/dev/shm").is_dir() {
            eprintln!("skipped: not 64-bit, or no /dev/shm");
            return;
        }
        let sem = Sem::new();
        for _ in 0..3 {
            // SAFETY: a semaphore sem_open gave.
            assert_eq!(unsafe { libc::sem_post(sem.sem) }, 0);
        }
        let path = Path::new("/dev/shm").join(sem.file_name());
        // An atime older than mtime, which relatime would move on any read.
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        let old = [
            libc::timespec {
                tv_sec: 1_000_000_000,
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        ];
        // SAFETY: valid C string and a two-element timespec array.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), old.as_ptr(), 0) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        let dir = std::fs::File::open("/dev/shm").unwrap();
        let name = sem.file_name();
        let state = read_state(dir.as_fd(), OsStr::new(&name)).unwrap();
        assert_eq!(
            state,
            SemState {
                value: 3,
                waiters_hint: 0
            }
        );
        assert_eq!(atime(&path), (1_000_000_000, 0));
        // The check can see a change, unless the filesystem never moves an atime.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(decode(&bytes).map(|s| s.value), Some(3));
        let st = std::fs::File::open(&path).unwrap();
        if !never_moves_atime(&OwnedFd::from(st)) {
            assert_ne!(atime(&path), (1_000_000_000, 0));
        }
    }

    #[test]
    fn without_o_noatime_a_read_is_refused_where_it_would_move_the_atime() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sem.readable");
        std::fs::write(&path, [3u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let noatime = never_moves_atime(&OwnedFd::from(fd.try_clone().unwrap()));
        let result = std::thread::spawn(move || {
            // Not the owner, and (with a fsuid other than 0) without CAP_FOWNER: this thread
            // alone, which ends here.
            // SAFETY: setfsuid changes only this thread's filesystem uid.
            unsafe { libc::syscall(libc::SYS_setfsuid, 65534) };
            read_state(fd.as_fd(), OsStr::new("sem.readable"))
        })
        .join()
        .unwrap();
        if noatime {
            assert!(result.is_ok());
        } else {
            assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EPERM));
        }
    }

    #[test]
    fn refuses_what_is_not_a_semaphore_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), [0u8; 16]).unwrap();
        std::os::unix::fs::symlink("/dev/shm", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let err = |name: &str| {
            read_state(fd.as_fd(), OsStr::new(name))
                .unwrap_err()
                .raw_os_error()
        };
        assert_eq!(err("short"), Some(libc::EINVAL));
        assert_eq!(err("link"), Some(libc::ENOENT));
        assert_eq!(err("sub"), Some(libc::ENOENT));
        assert_eq!(err("missing"), Some(libc::ENOENT));
        assert_eq!(err("../x"), Some(libc::ENOENT));
    }
}
