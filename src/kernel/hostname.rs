//! The hostname a process sees: the nodename of its UTS namespace, which names a container
//! (`ns/N/container`, issue 23). Read by joining that namespace on the calling thread for one
//! `uname`, and coming back (`kernel::enter::in_uts_namespace`): the kernel shows a UTS
//! namespace's hostname only to its members (`/proc/sys/kernel/hostname` and `uname` are the
//! reader's), and a pidfd names the process without the race of a reused pid.

use std::ffi::CStr;
use std::io;

use crate::kernel::enter;
use crate::kernel::pidfd::Pidfd;

/// The hostname of the UTS namespace `target` is in, as `hostname` run inside it prints it
/// (bytes that are not UTF-8 shown as U+FFFD). The calling thread visits the namespace and
/// comes back before this returns (or the process aborts), keeping nothing of it; it may be
/// entered into another IPC namespace meanwhile, where it stays. Call with the daemon's
/// credentials (`setns` needs CAP_SYS_ADMIN): `ESRCH` if the process has exited, `EACCES` if
/// the daemon may not look at it, `EPERM` without the capability.
pub fn hostname_of(target: &Pidfd) -> io::Result<String> {
    enter::in_uts_namespace(target, nodename)
}

/// The calling thread's hostname (`uname`'s nodename).
fn nodename() -> io::Result<String> {
    // SAFETY: utsname is plain old data.
    let mut names: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer; the kernel fills every field, each NUL-terminated.
    if unsafe { libc::uname(&mut names) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = names.nodename.iter().map(|&c| c as u8).collect();
    let name = CStr::from_bytes_until_nul(&bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "uname: unterminated nodename"))?;
    Ok(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hostname_of_this_process_is_what_uname_says() {
        let me = Pidfd::open(std::process::id()).unwrap();
        let own = nodename().unwrap();
        let want = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(own, want.trim_end_matches('\n'));
        match hostname_of(&me) {
            Ok(name) => assert_eq!(name, own),
            // Without CAP_SYS_ADMIN, setns into even its own namespace is refused.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
        }
    }

    #[test]
    fn a_process_that_exited_has_no_hostname() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let held = Pidfd::open(child.id()).unwrap();
        child.wait().unwrap();
        let e = hostname_of(&held).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH), "{e}");
    }

    /// A process in a UTS namespace of its own, with a hostname set there: read from a thread
    /// that is itself visiting, while entered into another IPC namespace, it stays there.
    #[test]
    fn the_hostname_of_another_uts_namespace_and_back() {
        // SAFETY: plain system call without arguments.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: setns needs CAP_SYS_ADMIN (run as root)");
            return;
        }
        let Ok(mut child) = std::process::Command::new("unshare")
            .args([
                "--uts",
                "--ipc",
                "sh",
                "-c",
                "hostname shmfs-uts-test && exec sleep 60",
            ])
            .spawn()
        else {
            eprintln!("skipped: no unshare");
            return;
        };
        struct Kill<'a>(&'a mut std::process::Child);
        impl Drop for Kill<'_> {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let pid = child.id();
        let _kill = Kill(&mut child);
        let own = nodename().unwrap();
        let target = Pidfd::open(pid).unwrap();
        let mut seen = String::new();
        for _ in 0..500 {
            seen = hostname_of(&target).unwrap();
            if seen == "shmfs-uts-test" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(seen, "shmfs-uts-test");
        assert_eq!(nodename().unwrap(), own, "back home");
        // From inside the process's IPC namespace: the thread stays in it.
        let (ipc, id) = enter::namespace_of(&target).unwrap();
        let (name, there) = enter::in_namespace(&target, id, || {
            let name = hostname_of(&target)?;
            let nested = enter::in_uts_namespace(&target, || {
                enter::in_uts_namespace(&target, || Ok(()))
                    .map_err(|e| io::Error::other(format!("nested: {e}")))
            });
            assert_eq!(
                nested.unwrap_err().to_string(),
                format!("nested: {}", io::Error::from_raw_os_error(libc::EBUSY)),
                "one UTS visit at a time"
            );
            Ok((name, crate::kernel::namespace::IpcNs::of_thread()?.0))
        })
        .unwrap();
        assert_eq!(name, "shmfs-uts-test");
        assert_eq!(
            there, ipc,
            "the IPC namespace stayed entered during the visit"
        );
        assert!(!enter::is_entered());
        assert_eq!(nodename().unwrap(), own);
    }
}
