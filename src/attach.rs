//! Who is attached: the processes that map (or, for POSIX objects, hold open) an object,
//! found by reading `/proc`.
//!
//! A System V attachment shows in `/proc/PID/maps` as `/SYSV%08x (deleted)` with the inode
//! column equal to the shmid; a POSIX object is matched by device and inode, never by name.
//! Only processes in the daemon's IPC namespace count for SysV, since shmids repeat across
//! namespaces.
//!
//! The maps are parsed here rather than with procfs's `Process::maps()`: procfs 0.18 slices
//! `path[5..13]` of any mapped path that starts with `/SYSV`, which panics on a shorter name
//! that any user inside a container can map (a file called `/SYSV1`).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;

/// What to look for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Sysv { shmid: i32 },
    Posix { dev: u64, ino: u64 },
}

/// One mapping (or open descriptor) of the object by one process.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holder {
    pub pid: u32,
    /// `START-END` of the mapping in hex, or `fd:N` for a descriptor that is open but not mapped.
    pub place: String,
    /// `r` or `rw`.
    pub access: &'static str,
    pub comm: String,
}

/// One parsed line of `/proc/PID/maps`.
#[derive(Debug, PartialEq, Eq)]
pub struct MapLine<'a> {
    pub range: &'a str,
    pub writable: bool,
    pub shared: bool,
    pub dev: (u32, u32),
    pub ino: u64,
    pub path: &'a str,
}

/// Parses one line of `/proc/PID/maps`; None for lines that do not fit the format.
pub fn parse_map_line(line: &str) -> Option<MapLine<'_>> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?.as_bytes();
    let _offset = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let ino = fields.next()?.parse().ok()?;
    let path = fields.next().unwrap_or("").trim_start();
    Some(MapLine {
        range,
        writable: perms.get(1) == Some(&b'w'),
        shared: perms.get(3) == Some(&b's'),
        dev: (
            u32::from_str_radix(major, 16).ok()?,
            u32::from_str_radix(minor, 16).ok()?,
        ),
        ino,
        path,
    })
}

fn dev_parts(dev: u64) -> (u32, u32) {
    (libc::major(dev), libc::minor(dev))
}

fn matches(target: &Target, line: &MapLine<'_>) -> bool {
    match *target {
        Target::Sysv { shmid } => {
            line.shared && line.path.starts_with("/SYSV") && line.ino == shmid as u64
        }
        Target::Posix { dev, ino } => line.dev == dev_parts(dev) && line.ino == ino,
    }
}

fn comm_of(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end_matches('\n').to_string())
        .unwrap_or_default()
}

fn ipc_ns_of(pid: &str) -> Option<std::path::PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/ipc")).ok()
}

/// The mappings of `target` in one process's maps text.
fn mappings_in(pid: u32, maps: &str, target: &Target, comm: &mut Option<String>) -> Vec<Holder> {
    maps.lines()
        .filter_map(parse_map_line)
        .filter(|l| matches(target, l))
        .map(|l| Holder {
            pid,
            place: l.range.to_string(),
            access: if l.writable { "rw" } else { "r" },
            comm: comm.get_or_insert_with(|| comm_of(pid)).clone(),
        })
        .collect()
}

/// Descriptors of a process that are open on the POSIX object but not mapped.
fn open_fds(pid: u32, dev: u64, ino: u64, comm: &mut Option<String>) -> Vec<Holder> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        // A cheap look at the link first: only files can be the object.
        let Ok(link) = fs::read_link(entry.path()) else {
            continue;
        };
        if !link.is_absolute() {
            continue;
        }
        let Ok(meta) = fs::metadata(entry.path()) else {
            continue;
        };
        if meta.dev() != dev || meta.ino() != ino {
            continue;
        }
        let fd = entry.file_name().to_string_lossy().into_owned();
        let flags = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
            })
            .unwrap_or(0);
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        found.push(Holder {
            pid,
            place: format!("fd:{fd}"),
            access: if writable { "rw" } else { "r" },
            comm: comm.get_or_insert_with(|| comm_of(pid)).clone(),
        });
    }
    found
}

/// Every holder of `target` among the processes the daemon can see, sorted by pid.
pub fn holders(target: &Target) -> io::Result<Vec<Holder>> {
    let own_ns = ipc_ns_of("self");
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if matches!(target, Target::Sysv { .. }) && ipc_ns_of(&pid.to_string()) != own_ns {
            continue;
        }
        // Processes that exit meanwhile, or that the daemon may not read, are skipped.
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        let mut comm = None;
        let mapped = mappings_in(pid, &maps, target, &mut comm);
        all.extend(mapped);
        if let Target::Posix { dev, ino } = *target {
            all.extend(open_fds(pid, dev, ino, &mut comm));
        }
    }
    all.sort();
    Ok(all)
}

/// The `attached` file: one line per holder, `PID PLACE ACCESS COMM` (the command name last,
/// as it may contain spaces).
pub fn render(holders: &[Holder]) -> String {
    holders
        .iter()
        .map(|h| format!("{} {} {} {}\n", h.pid, h.place, h.access, h.comm))
        .collect()
}

/// The last line of a SysV `attached` for a caller who may not see every attacher: `+N hidden`,
/// N the attachments not listed (nattch, which anyone may read, minus the lines shown); nothing
/// when every attachment is listed.
pub fn render_hidden(hidden: u64) -> String {
    if hidden == 0 {
        String::new()
    } else {
        format!("+{hidden} hidden\n")
    }
}

/// The daemon's pid as the /proc it scans numbers it (its pid namespace may differ from the
/// daemon's own), or None if /proc does not say.
pub fn own_pid() -> Option<u32> {
    match fs::read_link("/proc/self") {
        Ok(link) => link.to_str().and_then(|p| p.parse().ok()),
        Err(e) => {
            log::warn!("readlink /proc/self: {e}");
            None
        }
    }
}

/// Whether process (thread) `pid` lives in the daemon's user namespace, where capabilities
/// mean what they mean to the daemon. Anything unreadable means no.
pub fn in_daemon_user_ns(pid: u32) -> bool {
    match (
        fs::read_link(format!("/proc/{pid}/ns/user")),
        fs::read_link("/proc/self/ns/user"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        (Err(e), _) | (_, Err(e)) => {
            log::debug!("user namespace of {pid} or of the daemon: {e}");
            false
        }
    }
}

/// Whether a SysV segment is backed by huge pages, read from the smaps of a process that
/// has it attached (`KernelPageSize` above 4 kB). The candidates are tried in order (the
/// segment's last and creating pids first); None if none of them has it attached.
pub fn sysv_hugetlb(shmid: i32, candidates: &[u32]) -> Option<bool> {
    let target = Target::Sysv { shmid };
    for &pid in candidates {
        let Ok(smaps) = fs::read_to_string(format!("/proc/{pid}/smaps")) else {
            continue;
        };
        let mut in_block = false;
        for line in smaps.lines() {
            if let Some(map) = parse_map_line(line).filter(|m| m.range.contains('-')) {
                in_block = matches(&target, &map);
            } else if in_block && let Some(size) = line.strip_prefix("KernelPageSize:") {
                let kb: u64 = size.trim().trim_end_matches("kB").trim().parse().ok()?;
                return Some(kb > 4);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysv_and_file_lines() {
        let l = parse_map_line(
            "7f64483a6000-7f64483a8000 r--s 00000000 00:01 32768                      /SYSV72b533d6 (deleted)",
        )
        .unwrap();
        assert_eq!(l.range, "7f64483a6000-7f64483a8000");
        assert!(!l.writable && l.shared);
        assert_eq!(l.dev, (0, 1));
        assert_eq!(l.ino, 32768);
        assert!(matches(&Target::Sysv { shmid: 32768 }, &l));
        assert!(!matches(&Target::Sysv { shmid: 7 }, &l));

        let f = parse_map_line("7fecd877a000-7fecd877b000 rw-s 00000000 00:1b 12   /dev/shm/a b")
            .unwrap();
        assert!(f.writable);
        assert_eq!(f.path, "/dev/shm/a b");
        assert!(matches(
            &Target::Posix {
                dev: libc::makedev(0, 0x1b),
                ino: 12
            },
            &f
        ));
        assert!(parse_map_line("Rss:  4 kB").is_none());
    }

    #[test]
    fn renders_sorted_lines_with_comm_last() {
        let h = vec![Holder {
            pid: 7,
            place: "1000-2000".into(),
            access: "r",
            comm: "my reader".into(),
        }];
        assert_eq!(render(&h), "7 1000-2000 r my reader\n");
        assert_eq!(render_hidden(0), "");
        assert_eq!(render_hidden(3), "+3 hidden\n");
    }

    #[test]
    fn own_pid_is_this_process_in_its_own_user_namespace() {
        assert_eq!(own_pid(), Some(std::process::id()));
        assert!(in_daemon_user_ns(std::process::id()));
        assert!(!in_daemon_user_ns(0));
    }
}
