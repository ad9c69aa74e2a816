//! `shmfs::kernel::ipc_namespaces::list()` against real namespaces (groundwork of `ns/`, issue
//! 23): a container made with `unshare` (tests/common/container.rs) is listed as an IPC
//! namespace of its own with its first process among the members, as `stat -L` of its
//! `/proc/PID/ns/ipc` names it; this test's own namespace is listed with this process; and once
//! the container has exited, its namespace is gone from the next listing. No mount: it needs
//! root (to make the container) and `unshare` and `stat`.

mod common;

use std::time::{Duration, Instant};

use shmfs::kernel::ipc_namespaces::{self, IpcNamespace};

use common::*;

/// The inode of `/proc/PID/ns/ipc`, as `stat -L` shows it.
fn ns_inode(pid: u32) -> u64 {
    let r = sh(&format!("stat -L -c %i /proc/{pid}/ns/ipc"));
    assert!(r.ok(), "stat -L /proc/{pid}/ns/ipc: {r:?}");
    r.stdout_str()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("stat -L /proc/{pid}/ns/ipc: {e}: {r:?}"))
}

/// The namespace of inode `ino` in `list`, if listed.
fn by_inode(list: &[IpcNamespace], ino: u64) -> Option<&IpcNamespace> {
    list.iter().find(|n| n.ns.ino == ino)
}

#[test]
fn a_containers_namespace_is_listed_with_its_process_until_it_exits() {
    // SAFETY: plain system call without arguments.
    if unsafe { libc::geteuid() } != 0 && !unavailable("not root: unshare --ipc needs root") {
        return;
    }
    require_tools!(
        "unshare" => "Debian package util-linux",
        "stat" => "Debian package coreutils",
    );
    let mut container = Container::start("");
    let pid = container.pid();
    let theirs = ns_inode(pid);
    let ours = ns_inode(std::process::id());
    assert_ne!(theirs, ours, "unshare --ipc made a namespace of its own");

    let list = ipc_namespaces::list().expect("list the IPC namespaces");
    let listed = by_inode(&list, theirs)
        .unwrap_or_else(|| panic!("the container's ipc:[{theirs}] is not listed: {list:?}"));
    assert!(
        listed.members.contains(&pid),
        "the container's process {pid} is not a member of ipc:[{theirs}]: {listed:?}"
    );
    let host = by_inode(&list, ours)
        .unwrap_or_else(|| panic!("this test's ipc:[{ours}] is not listed: {list:?}"));
    assert!(
        host.members.contains(&std::process::id()),
        "this process is not a member of ipc:[{ours}]: {host:?}"
    );
    assert!(
        !host.members.contains(&pid),
        "the container's process is listed in the host's namespace too: {host:?}"
    );
    assert_eq!(
        ipc_namespaces::members_of(listed.ns).unwrap(),
        listed.members,
        "members_of agrees with list"
    );

    // nsfs reuses the inode numbers of ended namespaces, and other tests may be making
    // namespaces meanwhile: the inode listed again with none of the container's processes is a
    // new namespace.
    let before = listed.members.clone();
    container.stop();
    let start = Instant::now();
    loop {
        let list = ipc_namespaces::list().expect("list the IPC namespaces");
        let Some(left) =
            by_inode(&list, theirs).filter(|n| n.members.iter().any(|m| before.contains(m)))
        else {
            break;
        };
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "5 s after the container exited, its ipc:[{theirs}] is still listed: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        by_inode(&ipc_namespaces::list().unwrap(), ours).is_some(),
        "this test's namespace is still listed"
    );
}
