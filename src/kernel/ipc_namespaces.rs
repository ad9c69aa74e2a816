//! Every IPC namespace that has a process on the host, and which processes are in it: the
//! ground of `ns/` (issue 23), not yet used by the mount.
//!
//! Found by scanning `/proc`: for each process, one `stat` of `/proc/PID/ns/ipc` (its
//! namespace's device and inode in nsfs, see [`IpcNs`]), nothing else read, nothing kept open,
//! so the cost is one `readdir` of `/proc` and one `stat` per process, and no namespace is
//! pinned. A namespace kept alive by nothing but a bind mount or an open nsfs descriptor has no
//! process and is not found here.
//!
//! Pids are as the daemon's `/proc` numbers them: the pid namespace of that procfs mount
//! (normally the daemon's own), so that an operator on the host can act on them. A process
//! the daemon may not look at (`/proc/PID/ns/ipc` needs ptrace read access; `hidepid=` hides
//! others' `/proc/PID` altogether), one that exits meanwhile, and a zombie (whose namespaces
//! are already released) are not members of anything. Threads are not separate members: only
//! the processes that `/proc` lists are looked at, and a process's `ns/ipc` is its main
//! thread's, which is what its segments and attachments belong to.
//!
//! [`pinned`] finds the namespaces that no process is in but that an nsfs bind mount keeps
//! alive (`unshare --ipc=FILE`): from the mount table of every mount namespace that has a
//! process, `/proc/PID/mountinfo` read once per mount namespace. Only the daemon with
//! CAP_SYS_ADMIN (and ptrace read access to a process of that mount namespace) can enter one.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::kernel::namespace::IpcNs;

/// One IPC namespace and the processes in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcNamespace {
    /// The namespace, as nsfs names it (`ipc:[INODE]`).
    pub ns: IpcNs,
    /// Its processes, as the daemon's `/proc` numbers them, in ascending order; never empty.
    pub members: Vec<u32>,
}

/// Every IPC namespace that has a process the daemon may look at, in ascending order of inode
/// (then device), each with its members (see the module's comment). An error only if `/proc`
/// itself cannot be read; a process that vanishes or refuses is left out.
pub fn list() -> io::Result<Vec<IpcNamespace>> {
    list_in(Path::new("/proc"))
}

/// The processes in IPC namespace `ns`, as [`list`] finds them, in ascending order: empty if
/// it has none the daemon may look at.
pub fn members_of(ns: IpcNs) -> io::Result<Vec<u32>> {
    Ok(list()?
        .into_iter()
        .find(|n| n.ns == ns)
        .map(|n| n.members)
        .unwrap_or_default())
}

/// [`list`] over the tree at `proc` (the unit tests give it one of their own).
fn list_in(proc: &Path) -> io::Result<Vec<IpcNamespace>> {
    // Keyed by (ino, dev): the order of the answer.
    let mut found: BTreeMap<(u64, u64), Vec<u32>> = BTreeMap::new();
    for entry in std::fs::read_dir(proc)? {
        let Ok(entry) = entry else {
            // A process that went while /proc was being read.
            continue;
        };
        let Some(pid) = pid_of(&entry.file_name()) else {
            continue;
        };
        match std::fs::metadata(entry.path().join("ns/ipc")) {
            Ok(st) => found.entry((st.ino(), st.dev())).or_default().push(pid),
            Err(e) if is_expected(&e) => {}
            Err(e) => log::debug!("stat {proc:?}/{pid}/ns/ipc: {e}; left out"),
        }
    }
    Ok(found
        .into_iter()
        .map(|((ino, dev), mut members)| {
            members.sort_unstable();
            IpcNamespace {
                ns: IpcNs { dev, ino },
                members,
            }
        })
        .collect())
}

/// An IPC namespace that no process is in, kept alive by an nsfs bind mount: what to give
/// `enter::enter_pinned` to go in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    /// The namespace, as nsfs names it (`ipc:[INODE]`).
    pub ns: IpcNs,
    /// A process of the mount namespace that has the bind mount, as the daemon's `/proc`
    /// numbers it (the lowest such pid).
    pub holder: u32,
    /// Where the namespace is mounted, as `holder`'s mount namespace and root see it (its
    /// `/proc/PID/mountinfo`): to be opened inside `holder`'s root.
    pub mount_point: PathBuf,
}

/// The most of one `/proc/PID/mountinfo` read: 4 MiB, some 25,000 mounts. What lies beyond is
/// not looked at (and the log says so).
const MOUNTINFO_LIMIT: u64 = 4 << 20;
/// The most of all mount tables read in one [`pinned`]: users make mount namespaces and fill
/// their tables as they like, and one scan must not read without end. The mount namespaces
/// beyond it are not looked at (and the log says so).
const MOUNTINFO_TOTAL: u64 = 32 << 20;

/// Every IPC namespace that no process the daemon may look at is in, but that an nsfs bind
/// mount keeps alive, in ascending order of inode (then device); one entry per namespace,
/// however many mounts keep it (the first found: lowest holder pid, then the mount table's
/// order). Found through every mount namespace that has a process, each read once (see the
/// module's comment). The namespaces [`list`] gives are left out: a caller merges both. An
/// error only if `/proc` itself cannot be read; a process that vanishes or refuses, and a
/// mount table that does not parse, are left out.
pub fn pinned() -> io::Result<Vec<Pinned>> {
    pinned_in(Path::new("/proc"))
}

/// [`pinned`] over the tree at `proc` (the unit tests give it one of their own).
fn pinned_in(proc: &Path) -> io::Result<Vec<Pinned>> {
    let mut pids: Vec<u32> = std::fs::read_dir(proc)?
        .filter_map(|entry| pid_of(&entry.ok()?.file_name()))
        .collect();
    pids.sort_unstable();
    // (dev, ino) of the namespaces that have members, and of the mount namespaces read.
    let mut inhabited = BTreeSet::new();
    let mut mount_namespaces = BTreeSet::new();
    // Bytes of mount tables read so far.
    let mut total = 0u64;
    // Keyed by (ino, dev): the order of the answer.
    let mut found: BTreeMap<(u64, u64), Pinned> = BTreeMap::new();
    for pid in pids {
        let dir = proc.join(pid.to_string());
        if let Ok(st) = std::fs::metadata(dir.join("ns/ipc")) {
            inhabited.insert((st.dev(), st.ino()));
        }
        let mount_ns = match std::fs::metadata(dir.join("ns/mnt")) {
            Ok(st) => (st.dev(), st.ino()),
            Err(e) => {
                if !is_expected(&e) {
                    log::debug!("stat {proc:?}/{pid}/ns/mnt: {e}; left out");
                }
                continue;
            }
        };
        if mount_namespaces.contains(&mount_ns) {
            continue;
        }
        if total >= MOUNTINFO_TOTAL {
            log::warn!(
                "mount tables longer than {MOUNTINFO_TOTAL} bytes in all: the rest are not \
                 looked at for IPC namespaces kept by bind mounts"
            );
            break;
        }
        // Marked read only once read: if this process went meanwhile, the next one of its
        // mount namespace is read instead.
        let table = match read_bounded(&dir.join("mountinfo"), MOUNTINFO_LIMIT) {
            Ok(table) => {
                mount_namespaces.insert(mount_ns);
                total += table.len() as u64;
                table
            }
            Err(e) => {
                if !is_expected(&e) {
                    log::debug!("read {proc:?}/{pid}/mountinfo: {e}; left out");
                }
                continue;
            }
        };
        for (dev, ino, mount_point) in table.split(|&b| b == b'\n').filter_map(ipc_mount) {
            found.entry((ino, dev)).or_insert(Pinned {
                ns: IpcNs { dev, ino },
                holder: pid,
                mount_point,
            });
        }
    }
    Ok(found
        .into_values()
        .filter(|p| !inhabited.contains(&(p.ns.dev, p.ns.ino)))
        .collect())
}

/// The whole of a file, at most `limit` bytes of it; a line cut there is dropped.
fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut text)?;
    if text.len() as u64 > limit {
        log::warn!("{path:?} is longer than {limit} bytes: the rest is not looked at");
        let cut = text[..limit as usize]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        text.truncate(cut);
    }
    Ok(text)
}

/// The namespace's device and inode and the mount point, if `line` of a mountinfo is an nsfs
/// mount of an IPC namespace: `ID PARENT MAJ:MIN ipc:[INODE] MOUNT_POINT OPTIONS [OPTIONAL…] -
/// nsfs SOURCE SUPER_OPTIONS`, the mount point with mountinfo's octal escapes (`\040` for a
/// space). Anything else, or anything malformed, is None.
fn ipc_mount(line: &[u8]) -> Option<(u64, u64, PathBuf)> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let separator = fields.iter().skip(6).position(|&f| f == b"-")? + 6;
    if *fields.get(separator + 1)? != b"nsfs" {
        return None;
    }
    let (major, minor) = std::str::from_utf8(fields.get(2)?).ok()?.split_once(':')?;
    let dev = libc::makedev(major.parse().ok()?, minor.parse().ok()?);
    let inode = fields.get(3)?.strip_prefix(b"ipc:[")?.strip_suffix(b"]")?;
    if inode.is_empty() || !inode.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ino = std::str::from_utf8(inode).ok()?.parse().ok()?;
    let mount_point = unescape(fields.get(4)?)?;
    if !mount_point.starts_with(b"/") {
        return None;
    }
    Some((dev, ino, PathBuf::from(OsString::from_vec(mount_point))))
}

/// A path as mountinfo writes it, its escapes undone: `\` and three octal digits for a byte
/// (the kernel escapes space, tab, newline and backslash). None for an escape that is not
/// one.
fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
            continue;
        }
        let digits = tail.get(..3)?;
        if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
            return None;
        }
        let value = digits
            .iter()
            .fold(0u32, |n, &d| n * 8 + u32::from(d - b'0'));
        out.push(u8::try_from(value).ok()?);
        rest = &tail[3..];
    }
    Some(out)
}

/// The pid an entry of `/proc` names, if it names one (all digits: not `self`, `sys`, …).
fn pid_of(name: &std::ffi::OsStr) -> Option<u32> {
    let name = name.to_str()?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// The refusals of a `stat` of `/proc/PID/ns/ipc` that are no news: the process is gone or a
/// zombie (ENOENT, ESRCH), or the daemon may not look at it (EACCES, EPERM).
fn is_expected(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ESRCH | libc::EACCES | libc::EPERM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn this_process_is_in_its_own_namespace() {
        let mine = IpcNs::of_process(std::process::id()).unwrap();
        let all = list().unwrap();
        let ours = all
            .iter()
            .find(|n| n.ns == mine)
            .expect("this process's namespace is listed");
        assert!(ours.members.contains(&std::process::id()));
        assert!(ours.members.is_sorted());
        assert!(all.iter().all(|n| !n.members.is_empty()));
        // Every process is in one namespace only.
        let mut pids: Vec<u32> = all.iter().flat_map(|n| n.members.clone()).collect();
        let count = pids.len();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), count);
        assert!(members_of(mine).unwrap().contains(&std::process::id()));
    }

    #[test]
    fn threads_are_not_members() {
        // A thread of this process has a /proc/TID that readdir of /proc does not list.
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: plain system call without arguments.
            let tid = unsafe { libc::gettid() } as u32;
            tx.send(tid).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let all = list().unwrap();
        drop(done_tx);
        t.join().unwrap();
        assert_ne!(tid, std::process::id());
        assert!(all.iter().all(|n| !n.members.contains(&tid)));
    }

    /// A tree like `/proc`: `N/ns/ipc` files, hard links of one another where their
    /// processes share a namespace.
    #[test]
    fn processes_are_grouped_by_the_identity_of_their_ns_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let ns = |pid: &str| {
            fs::create_dir_all(p.join(pid).join("ns")).unwrap();
            p.join(pid).join("ns/ipc")
        };
        fs::write(ns("30"), "a").unwrap();
        fs::hard_link(ns("30"), ns("4")).unwrap();
        fs::hard_link(ns("30"), ns("200")).unwrap();
        fs::write(ns("7"), "b").unwrap();
        // Gone (no ns), not a pid, not a plain number.
        fs::create_dir(p.join("9")).unwrap();
        fs::write(ns("self"), "c").unwrap();
        fs::write(ns("+5"), "d").unwrap();
        fs::write(p.join("uptime"), "").unwrap();

        let a = IpcNs::of_path(&ns("30"));
        let b = IpcNs::of_path(&ns("7"));
        let mut want = vec![
            IpcNamespace {
                ns: a,
                members: vec![4, 30, 200],
            },
            IpcNamespace {
                ns: b,
                members: vec![7],
            },
        ];
        want.sort_by_key(|n| (n.ns.ino, n.ns.dev));
        assert_eq!(list_in(p).unwrap(), want);
    }

    /// A mountinfo line of an nsfs mount of `ipc:[ino]` at `at` (escaped as given).
    fn nsfs_line(dev: (u32, u32), ino: u64, at: &str) -> String {
        format!(
            "47 27 {}:{} ipc:[{ino}] {at} rw,nosuid shared:5 master:1 - nsfs nsfs rw",
            dev.0, dev.1
        )
    }

    #[test]
    fn mountinfo_lines_of_ipc_namespaces_are_found_and_the_rest_is_not() {
        let dev = libc::makedev(0, 4);
        let line = nsfs_line((0, 4), 4026532174, "/tmp/a\\040b\\134c\\012");
        assert_eq!(
            ipc_mount(line.as_bytes()),
            Some((dev, 4026532174, PathBuf::from("/tmp/a b\\c\n"))),
            "{line}"
        );
        let plain = "47 27 0:4 ipc:[7] /run/ns/x rw - nsfs nsfs rw";
        assert_eq!(
            ipc_mount(plain.as_bytes()),
            Some((dev, 7, PathBuf::from("/run/ns/x")))
        );
        for bad in [
            // Another type of namespace, another filesystem, another root.
            "47 27 0:4 net:[7] /run/netns/x rw - nsfs nsfs rw".to_string(),
            "47 27 0:4 ipc:[7] /run/x rw - tmpfs nsfs rw".to_string(),
            "47 27 0:4 /ipc:[7] /run/x rw - nsfs nsfs rw".to_string(),
            // Malformed: no separator, a separator too early, a bad device, inode or escape.
            "47 27 0:4 ipc:[7] /run/x rw nsfs nsfs rw".to_string(),
            "47 27 0:4 ipc:[7] - nsfs nsfs rw".to_string(),
            nsfs_line((0, 4), 7, "/run/x").replace("0:4", "04"),
            "47 27 0:4 ipc:[] /run/x rw - nsfs nsfs rw".to_string(),
            "47 27 0:4 ipc:[7x] /run/x rw - nsfs nsfs rw".to_string(),
            "47 27 0:4 ipc:[99999999999999999999999] /x rw - nsfs nsfs rw".to_string(),
            nsfs_line((0, 4), 7, "/run/x\\09"),
            nsfs_line((0, 4), 7, "/run/x\\4"),
            nsfs_line((0, 4), 7, "/run/x\\777"),
            nsfs_line((0, 4), 7, "relative"),
            String::new(),
            "\u{0}\u{ff} - nsfs".to_string(),
        ] {
            assert_eq!(ipc_mount(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_long_mountinfo_is_read_as_far_as_its_last_whole_line_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mountinfo");
        fs::write(&path, "aaaa\nbbbb\ncccc\n").unwrap();
        assert_eq!(read_bounded(&path, 100).unwrap(), b"aaaa\nbbbb\ncccc\n");
        assert_eq!(read_bounded(&path, 15).unwrap(), b"aaaa\nbbbb\ncccc\n");
        assert_eq!(read_bounded(&path, 14).unwrap(), b"aaaa\nbbbb\n");
        assert_eq!(read_bounded(&path, 3).unwrap(), b"");
    }

    /// A tree like `/proc`: processes with `ns/ipc`, `ns/mnt` (hard links where they share a
    /// namespace) and `mountinfo`.
    #[test]
    fn pinned_namespaces_are_found_once_through_each_mount_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let process = |pid: &str, ipc: &str, mnt: &str, mountinfo: &str| {
            fs::create_dir_all(p.join(pid).join("ns")).unwrap();
            for (name, like) in [("ipc", ipc), ("mnt", mnt)] {
                let path = p.join(pid).join("ns").join(name);
                if like.is_empty() {
                    fs::write(&path, name).unwrap();
                } else {
                    fs::hard_link(p.join(like).join("ns").join(name), &path).unwrap();
                }
            }
            fs::write(p.join(pid).join("mountinfo"), mountinfo).unwrap();
        };
        // Namespace files stand for nsfs: a line names one by the test tree's device.
        let st = |pid: &str| fs::metadata(p.join(pid).join("ns/ipc")).unwrap();
        process("1", "", "", "");
        let (dev, inhabited) = (st("1").dev(), st("1").ino());
        let dev_pair = (libc::major(dev), libc::minor(dev));
        let table = [
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw".to_string(),
            nsfs_line(dev_pair, 9001, "/run/pin\\040one"),
            nsfs_line(dev_pair, inhabited, "/run/has-members"),
            nsfs_line(dev_pair, 9002, "/run/pin-two"),
            nsfs_line(dev_pair, 9001, "/run/again"),
        ]
        .join("\n");
        // 5 and 7 share a mount namespace: only 5's table is read (7's would add 9003).
        process("5", "1", "", &table);
        process("7", "1", "5", &nsfs_line(dev_pair, 9003, "/x"));
        // 9 has a mount namespace of its own that has 9002 too, and 9004.
        let other = [
            nsfs_line(dev_pair, 9002, "/elsewhere"),
            nsfs_line(dev_pair, 9004, "/mnt/four"),
        ]
        .join("\n");
        process("9", "", "", &other);
        // A process whose mountinfo is gone: the next of its mount namespace is read.
        process("11", "1", "", "");
        fs::remove_file(p.join("11/mountinfo")).unwrap();
        process("12", "1", "11", &nsfs_line(dev_pair, 9005, "/five"));
        fs::write(p.join("uptime"), "").unwrap();

        let pin = |ino, holder, at: &str| Pinned {
            ns: IpcNs { dev, ino },
            holder,
            mount_point: PathBuf::from(at),
        };
        assert_eq!(
            pinned_in(p).unwrap(),
            vec![
                pin(9001, 5, "/run/pin one"),
                pin(9002, 5, "/run/pin-two"),
                pin(9004, 9, "/mnt/four"),
                pin(9005, 12, "/five"),
            ]
        );
        assert!(pinned_in(Path::new("/nonexistent-shmfs-proc")).is_err());
    }

    #[test]
    fn a_proc_that_cannot_be_read_is_an_error() {
        assert!(list_in(Path::new("/nonexistent-shmfs-proc")).is_err());
    }

    impl IpcNs {
        fn of_path(p: &Path) -> IpcNs {
            let st = fs::metadata(p).unwrap();
            IpcNs {
                dev: st.dev(),
                ino: st.ino(),
            }
        }
    }
}
