//! Which IPC namespace a thread or a process is in: the identity of its `ns/ipc` file in
//! `/proc`, so that two namespaces can be told apart without comparing `readlink` strings.
//!
//! A thread's own namespace is read from `/proc/thread-self/ns/ipc`, never `/proc/self`:
//! `/proc/self` names the thread group, whose `ns/ipc` is the main thread's, and a thread may
//! have entered another namespace (`setns`). Another process's is read from `/proc/PID/ns/ipc`
//! (its main thread's, which is what the process's segments and attachments belong to).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// `NS_GET_ID` of recent `linux/nsfs.h`: `_IOR(0xb7, 0xd, __u64)`, the namespace's
/// 64-bit id, unique for the life of the system (inode numbers of nsfs may be reused).
pub const NS_GET_ID: u64 = (2 << 30) | (8 << 16) | (0xb7 << 8) | 0xd;

/// One IPC namespace, as the device and inode number of its file in nsfs: what `stat` of any
/// process's or thread's `ns/ipc` gives, the same for every task in the namespace and
/// different for every other live namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpcNs {
    pub dev: u64,
    pub ino: u64,
}

impl IpcNs {
    /// The IPC namespace of the calling thread, and its 64-bit id if the kernel tells it
    /// (`NS_GET_ID`; None on kernels without it, or where seccomp refuses the `ioctl`).
    pub fn of_thread() -> io::Result<(IpcNs, Option<u64>)> {
        let file = File::open("/proc/thread-self/ns/ipc")?;
        Ok((IpcNs::of_file(&file)?, id_of(&file).ok()))
    }

    /// The namespace an open nsfs file (an `ns/ipc` file, or what `PIDFD_GET_IPC_NAMESPACE`
    /// gives) names.
    pub fn of_file(file: &File) -> io::Result<IpcNs> {
        let st = file.metadata()?;
        Ok(IpcNs {
            dev: st.dev(),
            ino: st.ino(),
        })
    }

    /// The IPC namespace of process `pid` (as the `/proc` the daemon sees numbers it); an
    /// error if it is gone or the daemon may not look (ptrace read access is needed).
    pub fn of_process(pid: u32) -> io::Result<IpcNs> {
        let st = std::fs::metadata(format!("/proc/{pid}/ns/ipc"))?;
        Ok(IpcNs {
            dev: st.dev(),
            ino: st.ino(),
        })
    }
}

/// The kernel's 64-bit id (`NS_GET_ID`) of the namespace an open nsfs file names: unique for
/// the life of the system, where inode numbers are reused. An error (`ENOTTY`) on kernels
/// without it, or where seccomp refuses the `ioctl`.
pub fn id_of(file: &File) -> io::Result<u64> {
    let mut id: u64 = 0;
    // SAFETY: a valid descriptor; NS_GET_ID writes one u64 into `id`, and a kernel (or file)
    // that does not know the request writes nothing and fails.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_ID as _, &mut id as *mut u64) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// Whether the calling thread may look at process `pid` as a member of `ns`: `readlink` of
/// `/proc/PID/ns/ipc` succeeds and names `ns`'s inode (`ipc:[INODE]`). The kernel lets the
/// link be read only with ptrace read access to the process, checked with the calling
/// thread's filesystem credentials and effective capabilities: inside
/// [`crate::kernel::creds::as_caller`], the caller's (issue 23: a caller sees a namespace if
/// it may look at one of its members). False if the process is gone, hidden (`hidepid=`), or
/// in another namespace. Only the inode is compared (the link names no device: nsfs is one
/// filesystem).
pub fn may_look_at(pid: u32, ns: IpcNs) -> bool {
    std::fs::read_link(format!("/proc/{pid}/ns/ipc"))
        .ok()
        .and_then(|link| inode_of_link(link.as_os_str().as_encoded_bytes()))
        == Some(ns.ino)
}

/// The inode an `ipc:[INODE]` link names, or None.
fn inode_of_link(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"ipc:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl std::fmt::Display for IpcNs {
    /// As `readlink` of an `ns/ipc` file shows it (`ipc:[INODE]`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ipc:[{}]", self.ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_and_its_process_agree_until_the_thread_leaves() {
        let (mine, _) = IpcNs::of_thread().unwrap();
        let pid = std::process::id();
        assert_eq!(IpcNs::of_process(pid).unwrap(), mine);
        let link = std::fs::read_link("/proc/thread-self/ns/ipc").unwrap();
        assert_eq!(link.to_str(), Some(mine.to_string().as_str()));
        // On a thread of its own: it leaves the process's IPC namespace.
        std::thread::spawn(move || {
            // SAFETY: plain system call, affecting this thread only.
            if unsafe { libc::unshare(libc::CLONE_NEWIPC) } != 0 {
                eprintln!("skipped: unshare: {}", io::Error::last_os_error());
                return;
            }
            let (theirs, _) = IpcNs::of_thread().unwrap();
            assert_ne!(theirs, mine, "the thread's own namespace");
            assert_eq!(
                IpcNs::of_process(pid).unwrap(),
                mine,
                "/proc/PID names the main thread's"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_process_that_is_not_there_has_no_namespace() {
        assert!(IpcNs::of_process(0).is_err());
        let (mine, _) = IpcNs::of_thread().unwrap();
        assert!(!may_look_at(0, mine));
        assert!(!may_look_at(99_999_999, mine));
    }

    #[test]
    fn only_ipc_links_name_an_inode() {
        assert_eq!(inode_of_link(b"ipc:[4026531839]"), Some(4026531839));
        for bad in [
            &b"net:[4026531839]"[..],
            b"ipc:[]",
            b"ipc:[12",
            b"ipc:[-1]",
            b"ipc:[1 ]",
            b"ipc:[99999999999999999999999]",
            b"",
        ] {
            assert_eq!(inode_of_link(bad), None, "{bad:?}");
        }
    }

    /// A child process, killed and reaped on drop.
    struct Sleeper(std::process::Child);

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn the_caller_may_look_at_its_own_processes_and_root_at_everyones() {
        use crate::kernel::creds::{self, Caller};
        // SAFETY: plain system call without arguments.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: switching to another caller needs root");
            return;
        }
        let Ok(child) = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sleep",
                "30",
            ])
            .spawn()
        else {
            eprintln!("skipped: no setpriv");
            return;
        };
        let nobody = Sleeper(child);
        let theirs = nobody.0.id();
        // Until setpriv has exec'd sleep as 65534 (a process that changed its uid is not
        // dumpable until it execs, and the kernel refuses then).
        let status = || std::fs::read_to_string(format!("/proc/{theirs}/status"));
        for _ in 0..500 {
            if status().is_ok_and(|s| s.contains("Uid:\t65534") && s.contains("Name:\tsleep")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Another process of root's (a thread may always look at its own process).
        let roots = Sleeper(
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap(),
        );
        let (mine, _) = IpcNs::of_thread().unwrap();
        let me = roots.0.id();
        assert!(may_look_at(me, mine), "root at its own");
        assert!(may_look_at(theirs, mine), "root at another user's");
        let other = IpcNs {
            ino: mine.ino ^ 1,
            ..mine
        };
        assert!(!may_look_at(theirs, other), "a namespace it is not in");
        // A caller with no thread to read capabilities from: none, and no groups.
        let caller = Caller::new(65534, 65534, 0);
        let (at_root, at_own) = creds::as_caller(&caller, || {
            Ok((may_look_at(me, mine), may_look_at(theirs, mine)))
        })
        .unwrap();
        assert!(!at_root, "an ordinary user may not look at root's process");
        assert!(at_own, "an ordinary user may look at its own process");
        assert!(may_look_at(me, mine), "the daemon's credentials again");
    }
}
