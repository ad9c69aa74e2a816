//! The capabilities a root daemon keeps, each for what needs it, and dropping the others.
//!
//! shmfs acts as its caller (src/kernel/creds.rs): for each permission-checked operation a worker
//! thread takes on the caller's uid, gid, groups and those of its effective capabilities that
//! the daemon holds. So the daemon keeps every capability that can change the kernel's answer
//! to an operation it makes for a caller, or a caller holding it would be refused what the
//! kernel would let it do; and the ones it needs for itself. Nothing else: no capability
//! shmfs never exercises changes any answer it gives.

use std::io;

use crate::kernel::creds::{self, CapSets};

/// One capability the daemon keeps.
#[derive(Clone, Copy, Debug)]
pub struct Kept {
    /// Its number (linux/capability.h).
    pub number: u32,
    /// Its name, as capabilities(7) spells it.
    pub name: &'static str,
    /// What shmfs does with it.
    pub why: &'static str,
}

/// Every capability a root daemon keeps after mounting.
pub const KEPT: &[Kept] = &[
    Kept {
        number: 0,
        name: "CAP_CHOWN",
        why: "chown of a POSIX object (writing `owner`/`group` to perm) for a caller holding it",
    },
    Kept {
        number: 1,
        name: "CAP_DAC_OVERRIDE",
        why: "opening, truncating, creating and removing /dev/shm files for a caller holding it",
    },
    Kept {
        number: 2,
        name: "CAP_DAC_READ_SEARCH",
        why: "reading a /dev/shm file for a caller holding it (read and search checks)",
    },
    Kept {
        number: 3,
        name: "CAP_FOWNER",
        why: "chmod, utimensat and removal from sticky /dev/shm of objects the caller does not \
              own, for a caller holding it",
    },
    Kept {
        number: 4,
        name: "CAP_FSETID",
        why: "keeping the set-group-ID bit in chmod and creation for a caller holding it \
              (the kernel clears it otherwise)",
    },
    Kept {
        number: 6,
        name: "CAP_SETGID",
        why: "switching a worker thread to the caller's gid and groups, and back",
    },
    Kept {
        number: 7,
        name: "CAP_SETUID",
        why: "switching a worker thread to the caller's uid, and back",
    },
    Kept {
        number: 15,
        name: "CAP_IPC_OWNER",
        why: "shmat and IPC_STAT of System V segments, reading and setting a semaphore set's \
              values (GETALL, SETVAL, SETALL) and copying a queue's messages (msgrcv \
              MSG_COPY) for a caller holding it",
    },
    Kept {
        number: 19,
        name: "CAP_SYS_PTRACE",
        why: "reading other processes' /proc maps, fd, fdinfo, ns and map_files for `attached` \
              and for a caller's groups, capabilities and namespaces; following /proc/PID/root \
              of the --pid process to its /dev/shm, and of a container's process to its \
              /dev/shm or to an nsfs bind mount (ns/); a namespace's descriptor from a pidfd \
              (PIDFD_GET_IPC_NAMESPACE, PIDFD_GET_UTS_NAMESPACE); reading the syscall and \
              memory (/proc/PID/task/TID/syscall, /proc/PID/mem) of tasks blocked in semop \
              for a set's `waiters`",
    },
    Kept {
        number: 21,
        name: "CAP_SYS_ADMIN",
        why: "IPC_SET and IPC_RMID of another user's segment, semaphore set or message queue \
              for a caller holding it; opening /proc/PID/map_files; registering FUSE \
              passthrough backings; umount at exit; setns into a container's IPC namespace \
              for one request of ns/, or its UTS namespace for its hostname, and back; a \
              detached mount of a namespace's mqueue filesystem (fsopen, fsmount)",
    },
    Kept {
        number: 24,
        name: "CAP_SYS_RESOURCE",
        why: "raising a message queue's qbytes above msgmnb (writing `perm` of msg/ID, \
              msgctl IPC_SET) for a caller holding it",
    },
];

/// The kept capabilities as a bit set.
pub fn kept_mask() -> u64 {
    KEPT.iter().fold(0, |mask, cap| mask | (1u64 << cap.number))
}

/// The names of the capabilities in `mask` that [`KEPT`] lists, in its order.
pub fn names(mask: u64) -> Vec<&'static str> {
    KEPT.iter()
        .filter(|cap| mask & (1u64 << cap.number) != 0)
        .map(|cap| cap.name)
        .collect()
}

/// CAP_SETPCAP: needed to drop from the bounding set.
const SETPCAP: u32 = 8;

/// Drops every capability but [`KEPT`] from the effective, permitted and bounding sets, and
/// empties the inheritable and ambient sets, on the calling thread (threads started later
/// inherit its sets). Returns the names of the capabilities left. A thread that holds no
/// capability (a non-root daemon) has nothing to drop, and no right to touch its bounding set.
pub fn drop_unused() -> io::Result<Vec<&'static str>> {
    let now = creds::thread_caps()?;
    // SAFETY: prctl with integer arguments only.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    } != 0
    {
        let e = io::Error::last_os_error();
        // EINVAL: a kernel before ambient capabilities (4.3), which has none to clear.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    if now.permitted == 0 && now.inheritable == 0 {
        return Ok(Vec::new());
    }
    let keep = kept_mask() & now.permitted;
    if now.effective & (1 << SETPCAP) != 0 {
        drop_from_bounding_set(keep)?;
    } else {
        log::warn!(
            "without CAP_SETPCAP the bounding set cannot be shrunk; no_new_privs and the \
             seccomp filter (no execve) keep it from mattering"
        );
    }
    creds::set_thread_caps(CapSets {
        effective: keep,
        permitted: keep,
        inheritable: 0,
    })?;
    Ok(names(keep))
}

/// Drops every capability but `keep` from the bounding set (needs CAP_SETPCAP, still held).
fn drop_from_bounding_set(keep: u64) -> io::Result<()> {
    for cap in 0..64u32 {
        // SAFETY: prctl with integer arguments only.
        let held = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if held < 0 {
            // EINVAL: past the last capability this kernel knows.
            break;
        }
        if held == 1 && keep & (1u64 << cap) == 0 {
            // SAFETY: as above.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_twelve_distinct_capabilities_are_kept() {
        let mask = kept_mask();
        assert_eq!(mask.count_ones() as usize, KEPT.len(), "no number twice");
        assert!(KEPT.len() <= 12);
        for cap in KEPT {
            assert!(cap.name.starts_with("CAP_") && !cap.why.is_empty());
        }
    }

    #[test]
    fn the_capabilities_creds_weighs_are_kept() {
        use crate::kernel::creds::cap;
        for number in [
            cap::DAC_OVERRIDE,
            cap::FOWNER,
            cap::IPC_OWNER,
            cap::CHOWN,
            cap::SYS_ADMIN,
            cap::SYS_PTRACE,
        ] {
            assert_ne!(kept_mask() & (1 << number), 0, "capability {number}");
        }
        assert_eq!(names(1 << 21 | 1 << 0), ["CAP_CHOWN", "CAP_SYS_ADMIN"]);
    }
}
