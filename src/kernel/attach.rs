//! Who is attached: the processes that map (or, for POSIX objects, hold open) an object,
//! found by reading `/proc`.
//!
//! A System V attachment shows in `/proc/PID/maps` as `/SYSV%08x (deleted)` with the inode
//! column equal to the shmid; a POSIX object is matched by device and inode, never by name.
//! Only processes in the IPC namespace of the segment count for SysV, since shmids repeat
//! across namespaces: the searches that need it are told which namespace (an [`IpcNs`], which
//! `kernel::context::IpcContext` passes for its own) and compare it with each process's
//! `/proc/PID/ns/ipc`.
//!
//! The maps are parsed here rather than with procfs's `Process::maps()`: procfs 0.18 slices
//! `path[5..13]` of any mapped path that starts with `/SYSV`, which panics on a shorter name
//! that any user inside a container can map (a file called `/SYSV1`).

use std::fs;
use std::io;

use crate::kernel::fingerprint::Fingerprint;
use crate::kernel::namespace::IpcNs;

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

/// The command name of process `pid` (`/proc/PID/comm`), empty if it cannot be read.
pub fn comm_of(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end_matches('\n').to_string())
        .unwrap_or_default()
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

/// What `/proc/PID/fdinfo/N` says of one descriptor.
#[derive(Debug, PartialEq, Eq)]
pub struct FdInfo {
    pub flags: i32,
    pub mnt_id: u64,
    pub ino: u64,
}

/// Parses the text of `/proc/PID/fdinfo/N`; None if a line that is needed is missing.
pub fn parse_fdinfo(text: &str) -> Option<FdInfo> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    Some(FdInfo {
        flags: i32::from_str_radix(field("flags")?, 8).ok()?,
        mnt_id: field("mnt_id")?.parse().ok()?,
        ino: field("ino")?.parse().ok()?,
    })
}

/// The mount id (field 1) and device (field 3, `major:minor`) of one `mountinfo` line.
pub fn parse_mountinfo_dev(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let (major, minor) = fields.nth(1)?.split_once(':')?;
    Some((id, libc::makedev(major.parse().ok()?, minor.parse().ok()?)))
}

/// Devices of mounts by mount id, read from `mountinfo` only when a descriptor's inode
/// number already matches (rare), and kept for the rest of one scan. Mount ids are unique
/// system-wide, so what one process's `mountinfo` says holds for every process.
#[derive(Default)]
struct MountDevs(std::collections::HashMap<u64, u64>);

impl MountDevs {
    fn dev_of(&mut self, pid: u32, mnt_id: u64) -> Option<u64> {
        if let Some(&dev) = self.0.get(&mnt_id) {
            return Some(dev);
        }
        // The holder's own view first; a descriptor received from another mount namespace
        // may be on a mount only the daemon's view shows.
        for source in [
            format!("/proc/{pid}/mountinfo"),
            "/proc/self/mountinfo".into(),
        ] {
            match fs::read_to_string(&source) {
                Ok(text) => self.0.extend(text.lines().filter_map(parse_mountinfo_dev)),
                Err(e) => log::debug!("reading {source}: {e}"),
            }
            if let Some(&dev) = self.0.get(&mnt_id) {
                return Some(dev);
            }
        }
        None
    }
}

/// Descriptors of a process that are open on the POSIX object but not mapped.
///
/// Descriptors are identified from `/proc/PID/fdinfo/N` (inode number and mount id), never
/// by a `stat` through the `/proc/PID/fd/N` link: if the descriptor is a file of this very
/// mount, that `stat` would be a request from the daemon to itself, waiting for a worker
/// that may be the one making it. `readlink` of the link is safe (the kernel prints the path
/// it already has) and filters out sockets, pipes and anonymous inodes cheaply.
fn open_fds(
    pid: u32,
    dev: u64,
    ino: u64,
    mounts: &mut MountDevs,
    comm: &mut Option<String>,
) -> Vec<Holder> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Ok(link) = fs::read_link(entry.path()) else {
            continue;
        };
        if !link.is_absolute() {
            continue;
        }
        let fd = entry.file_name().to_string_lossy().into_owned();
        let path = format!("/proc/{pid}/fdinfo/{fd}");
        // Closed meanwhile, or a process the daemon may not read: skipped.
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let Some(info) = parse_fdinfo(&text) else {
            // An older kernel without `ino:` in fdinfo: say so once, not for every fd.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                log::warn!("{path}: no flags, mnt_id or ino line ({text:?}); `attached` cannot list open descriptors");
            });
            continue;
        };
        if info.ino != ino || mounts.dev_of(pid, info.mnt_id) != Some(dev) {
            continue;
        }
        let writable = info.flags & libc::O_ACCMODE != libc::O_RDONLY;
        found.push(Holder {
            pid,
            place: format!("fd:{fd}"),
            access: if writable { "rw" } else { "r" },
            comm: comm.get_or_insert_with(|| comm_of(pid)).clone(),
        });
    }
    found
}

/// Every holder of `target` among the processes the daemon can see, sorted by pid; for a SysV
/// segment, only among the processes of `ipc_ns`, the namespace of the segment (a process whose
/// namespace cannot be read does not count).
pub(in crate::kernel) fn holders(target: &Target, ipc_ns: IpcNs) -> io::Result<Vec<Holder>> {
    let mut mounts = MountDevs::default();
    let mut all = Vec::new();
    let pids: Vec<u32> = fs::read_dir("/proc")?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&pid: &u32| {
            !matches!(target, Target::Sysv { .. })
                || IpcNs::of_process(pid).is_ok_and(|ns| ns == ipc_ns)
        })
        .collect();
    // Read on a helper, a stalled process skipped (see crate::kernel::proc_read).
    let all_maps = crate::kernel::proc_read::each(&pids, "maps", |pid| {
        fs::read_to_string(format!("/proc/{pid}/maps"))
    });
    for (pid, maps) in all_maps {
        // Processes that exit meanwhile, that the daemon may not read, or that are stalled,
        // are skipped.
        let Ok(maps) = maps else {
            continue;
        };
        let mut comm = None;
        let mapped = mappings_in(pid, &maps, target, &mut comm);
        all.extend(mapped);
        if let Target::Posix { dev, ino } = *target {
            all.extend(open_fds(pid, dev, ino, &mut mounts, &mut comm));
        }
    }
    all.sort();
    Ok(all)
}

/// The device of the kernel's internal tmpfs that holds SysV segments (and memfds), learned
/// from a memfd of the daemon's own: a mapping whose device is another one is not a segment
/// (a file of some other tmpfs, or of this very mount, may carry a `/SYSV` name).
pub fn sysv_shm_dev() -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: a valid C string; the returned descriptor is owned by the File below.
    let fd = unsafe { libc::memfd_create(c"shmfs-dev".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    Ok(file.metadata()?.dev())
}

/// At most this many mappings are opened through `map_files` for one open of `data`: a
/// process can hold any number of forged mappings, each of which costs an open and a
/// `name_to_handle_at` to refuse.
const MAX_MAPPINGS_TRIED: usize = 16;

/// The segment's memory file reached through a mapping of it in another process
/// (`/proc/PID/map_files/START-END`, root only), with no `shmat`: processes are tried in order
/// (the segment's last and creating pids, then every holder in the segment's IPC namespace
/// `ipc_ns`). A mapping is used only if the file opened has the fingerprint `print`,
/// which the daemon took of the segment's memory through its own attachment (see
/// [`crate::kernel::fingerprint`]); device, inode number and size only pick the candidates. A
/// read-only mapping serves a writable open too: root opens `map_files` read-write whatever
/// the mapping's protection. None if no mapping passes.
pub(in crate::kernel) fn open_mapped_segment(
    seg: &crate::kernel::sysv::Segment,
    writable: bool,
    shm_dev: u64,
    print: &Fingerprint,
    ipc_ns: IpcNs,
) -> Option<fs::File> {
    // No attachment anywhere: no mapping to find, and no scan of every process's maps.
    if seg.nattch == 0 {
        return None;
    }
    let own = own_pid();
    let target = Target::Sysv { shmid: seg.shmid };
    let mut tried = Vec::new();
    let mut budget = MAX_MAPPINGS_TRIED;
    let mut try_pid = |pid: u32| {
        if Some(pid) == own || tried.contains(&pid) || budget == 0 {
            return None;
        }
        tried.push(pid);
        open_mapping_of(pid, seg, writable, shm_dev, &target, print, &mut budget)
    };
    let likely = [seg.lpid, seg.cpid]
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok().filter(|&p| p > 0));
    if let Some(file) = likely.into_iter().find_map(&mut try_pid) {
        return Some(file);
    }
    let all = holders(&target, ipc_ns).ok()?;
    all.into_iter().map(|h| h.pid).find_map(try_pid)
}

/// One process's mapping of the segment opened through `map_files`, if its file has the
/// segment's fingerprint; each mapping opened takes one from `budget`.
fn open_mapping_of(
    pid: u32,
    seg: &crate::kernel::sysv::Segment,
    writable: bool,
    shm_dev: u64,
    target: &Target,
    print: &Fingerprint,
    budget: &mut usize,
) -> Option<fs::File> {
    use std::os::unix::fs::MetadataExt;
    let maps = crate::kernel::proc_read::maps(pid).ok()?;
    for line in maps.lines().filter_map(parse_map_line) {
        if !matches(target, &line) || line.dev != dev_parts(shm_dev) {
            continue;
        }
        if *budget == 0 {
            log::debug!("segment {}: {MAX_MAPPINGS_TRIED} mappings tried", seg.shmid);
            return None;
        }
        *budget -= 1;
        let path = format!("/proc/{pid}/map_files/{}", line.range);
        let open = {
            let path = path.clone();
            move || fs::OpenOptions::new().read(true).write(writable).open(path)
        };
        let file = match crate::kernel::proc_read::bounded(pid, "map_files", open) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("{path}: {e}");
                continue;
            }
        };
        let Ok(st) = file.metadata() else { continue };
        if is_segment_file(&file, &st, seg, shm_dev, print) {
            return Some(file);
        }
        log::debug!(
            "{path}: a mapping that claims segment {} (dev {:x}, ino {}, size {}) but is another file",
            seg.shmid,
            st.dev(),
            st.ino(),
            st.size()
        );
    }
    None
}

/// Whether `file` (with metadata `st`) is segment `seg`'s own memory: a regular file of the
/// kernel's internal filesystem for segments (`shm_dev`) of the segment's size, whose inode
/// number is the shmid, and, the proof, whose fingerprint is `print`.
fn is_segment_file(
    file: &fs::File,
    st: &fs::Metadata,
    seg: &crate::kernel::sysv::Segment,
    shm_dev: u64,
    print: &Fingerprint,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    st.is_file()
        && st.ino() == seg.shmid as u64
        && st.dev() == shm_dev
        && st.size() == seg.size
        && print.may_match(st)
        && Fingerprint::of(file, st).as_ref() == Some(print)
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

/// Whether `who` could look at the daemon's own process (its maps, its `ns/ipc`): root with
/// CAP_SYS_PTRACE in the daemon's user namespace. The daemon's own check of its own `/proc`
/// files always succeeds (same thread group), so it proves nothing for a caller and is not
/// used.
pub fn may_look_at_daemon(who: &crate::kernel::creds::Caller) -> bool {
    who.uid == 0 && who.has_cap(crate::kernel::creds::cap::SYS_PTRACE) && in_daemon_user_ns(who.pid)
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

/// The devices of the kernel's internal filesystems that hold segments: its tmpfs (ordinary
/// segments) and its hugetlbfs of each huge page size (`SHM_HUGETLB` ones). Learned once, from
/// memfds of the daemon's own; None until that works.
struct SegmentDevs {
    shm: u64,
    huge: Vec<u64>,
}

fn segment_devs() -> Option<std::sync::Arc<SegmentDevs>> {
    use std::sync::{Arc, Mutex};
    static DEVS: Mutex<Option<Arc<SegmentDevs>>> = Mutex::new(None);
    let mut devs = DEVS.lock().unwrap_or_else(|p| p.into_inner());
    if devs.is_none() {
        let shm = sysv_shm_dev()
            .inspect_err(|e| log::warn!("device of the kernel's shm filesystem: {e}"))
            .ok()?;
        let huge = fs::read_dir("/sys/kernel/mm/hugepages")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let kb = name
                    .to_str()?
                    .strip_prefix("hugepages-")?
                    .strip_suffix("kB")?;
                kb.parse::<u64>().ok()?.checked_mul(1024)
            })
            .filter_map(|page| crate::kernel::sysv::internal_hugetlb_dev(page).ok())
            .collect();
        *devs = Some(Arc::new(SegmentDevs { shm, huge }));
    }
    devs.clone()
}

/// Whether a SysV segment is backed by huge pages, from the maps of a process that has it
/// attached: the device of the mapping is the kernel's internal tmpfs (no) or one of its
/// hugetlbfs mounts (yes). `smaps` would say it too, but is slower to render and takes the
/// process's mmap lock on every kernel; each `maps` here is read within a bound
/// ([`crate::kernel::proc_read`]), a stalled process telling nothing. A mapping on another device (a
/// file that only looks like a segment) is ignored, and a process whose mappings of the shmid
/// disagree (one may be a segment of another IPC namespace with the same shmid) tells nothing.
/// The candidates are tried in order (the segment's last and creating pids first); None if
/// none of them tells.
pub fn sysv_hugetlb(shmid: i32, candidates: &[u32]) -> Option<bool> {
    let devs = segment_devs()?;
    let target = Target::Sysv { shmid };
    candidates.iter().find_map(|&pid| {
        let maps = crate::kernel::proc_read::maps(pid).ok()?;
        let mut answers = maps
            .lines()
            .filter_map(parse_map_line)
            .filter(|l| matches(&target, l))
            .filter_map(|l| {
                if l.dev == dev_parts(devs.shm) {
                    Some(false)
                } else if devs.huge.iter().any(|&d| l.dev == dev_parts(d)) {
                    Some(true)
                } else {
                    None
                }
            });
        let first = answers.next()?;
        answers.all(|a| a == first).then_some(first)
    })
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
    fn parses_fdinfo_and_mountinfo() {
        let info = "pos:\t0\nflags:\t0100002\nmnt_id:\t24\nino:\t3\n";
        assert_eq!(
            parse_fdinfo(info),
            Some(FdInfo {
                flags: 0o100002,
                mnt_id: 24,
                ino: 3
            })
        );
        // Older kernels have no ino line: the descriptor cannot be identified.
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t24\n"), None);
        assert_eq!(
            parse_mountinfo_dev(
                "31 24 0:27 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,inode64"
            ),
            Some((31, libc::makedev(0, 27)))
        );
        assert_eq!(parse_mountinfo_dev("garbage"), None);
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

    #[test]
    fn hugetlb_is_read_from_the_device_of_an_attachers_mapping() {
        // SAFETY: plain system calls on a segment of this test's own, removed at once (it
        // lives while attached) and detached at the end.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "shmget: {}", io::Error::last_os_error());
        // SAFETY: attaches the segment just made where the kernel chooses.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        // SAFETY: IPC_RMID takes no buffer.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        assert_ne!(addr as isize, -1, "shmat: {}", io::Error::last_os_error());
        let me = std::process::id();
        assert_eq!(sysv_hugetlb(id, &[me]), Some(false));
        assert_eq!(sysv_hugetlb(id, &[]), None);
        // SAFETY: detaches the attachment made above, which nothing uses any more.
        unsafe { libc::shmdt(addr) };
        assert_eq!(sysv_hugetlb(id, &[me]), None, "no longer attached");
    }
}
