//! What the rest of the system shows, to compare shmfs with: processes in /proc (who runs,
//! who is a zombie, what a process maps), /proc/meminfo, the user database.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Pids of shmfs daemons whose command line contains `arg` as one argument. Other programs
/// that name the mount point (fusermount3's auto-unmount watchdog) do not count.
pub fn pids_with_arg(arg: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let want = arg.as_os_str().as_bytes();
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_str().unwrap_or("").parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let is_shmfs = fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "shmfs");
        if is_shmfs && cmdline.split(|b| *b == 0).any(|a| a == want) && !is_zombie(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// True when `pid` is gone or a zombie.
pub fn is_zombie(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
    }
}

/// One line of /proc/PID/maps.
#[derive(Debug, Clone)]
pub struct MapsLine {
    /// `START-END` in hex, as maps prints it.
    pub range: String,
    /// `rw-s` and the like.
    pub perms: String,
    pub inode: u64,
    pub path: String,
}

/// The lines of /proc/PID/maps.
pub fn maps_of(pid: i32) -> Vec<MapsLine> {
    let text = fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/maps: {e}"));
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(6, ' ');
            let range = f.next()?.to_string();
            let perms = f.next()?.to_string();
            let _offset = f.next()?;
            let _dev = f.next()?;
            let inode = f.next()?.parse().ok()?;
            let path = f.next().unwrap_or("").trim().to_string();
            Some(MapsLine {
                range,
                perms,
                inode,
                path,
            })
        })
        .collect()
}

/// The maps lines of `pid` that are attachments of SysV segment `shmid`
/// (`/SYSV%08x (deleted)` with the shmid in the inode column).
pub fn sysv_maps_lines(pid: i32, shmid: i32) -> Vec<MapsLine> {
    maps_of(pid)
        .into_iter()
        .filter(|l| l.path.starts_with("/SYSV") && l.inode == shmid as u64)
        .collect()
}

/// The user name of `uid` (from the C library), or None if it has none.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// `Hugetlb:` of /proc/meminfo in kB (0 when huge pages are neither reserved nor in use).
pub fn meminfo_hugetlb_kb() -> u64 {
    meminfo_kb("Hugetlb").unwrap_or(0)
}

/// A field of /proc/meminfo in kB (`Shmem`: the machine's tmpfs and shared memory pages).
pub fn meminfo_kb(field: &str) -> Option<u64> {
    fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
