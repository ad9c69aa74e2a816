//! The limits file: system-wide limits and usage.

mod common;

use std::fs;

use common::*;

const NAMES: [&str; 25] = [
    "shmmax",
    "shmall",
    "shmmni",
    "shm_rmid_forced",
    "segments",
    "pages_allocated",
    "pages_resident",
    "pages_swapped",
    "semmsl",
    "semmns",
    "semopm",
    "semmni",
    "semvmx",
    "sem_sets",
    "semaphores",
    "msgmax",
    "msgmnb",
    "msgmni",
    "msg_queues",
    "messages",
    "msg_bytes",
    "mqueue_queues_max",
    "mqueue_msg_max",
    "mqueue_msgsize_max",
    "mqueues",
];

#[test]
fn limits_lists_its_fields_in_order() {
    require_fuse!();
    let m = Mount::new();
    let f = read_fields(&m.p("limits"));
    assert_eq!(f.names(), NAMES, "`cat MNT/limits` field names and order");
    for n in NAMES {
        f.num(n);
    }
}

#[test]
fn limits_equal_proc_sys_kernel() {
    require_fuse!();
    let m = Mount::new();
    let f = read_fields(&m.p("limits"));
    for n in ["shmmax", "shmall", "shmmni", "shm_rmid_forced"] {
        let want = fs::read_to_string(format!("/proc/sys/kernel/{n}")).unwrap();
        assert_eq!(
            f.get(n),
            want.trim(),
            "limits `{n}` vs /proc/sys/kernel/{n}"
        );
    }
}

#[test]
fn usage_equals_ipcs_m_u() {
    require_fuse!();
    let m = Mount::new();
    // Make sure there is some usage of our own to see.
    let seg = SysvSeg::private(3 * 4096, 0o600);
    let att = seg.attach();
    att.write(0, b"x");
    retry(20, || {
        let ipcs = ipcs_m_u();
        let f = read_fields(&m.p("limits"));
        let ours = [
            f.num("segments"),
            f.num("pages_allocated"),
            f.num("pages_resident"),
            f.num("pages_swapped"),
        ];
        let theirs = [
            ipcs["segments allocated"],
            ipcs["pages allocated"],
            ipcs["pages resident"],
            ipcs["pages swapped"],
        ];
        if ours == theirs {
            Ok(())
        } else {
            Err(format!(
                "limits (segments, pages allocated/resident/swapped) {ours:?} != `ipcs -m -u` {theirs:?}"
            ))
        }
    });
}

#[test]
fn segment_count_follows_creation() {
    require_fuse!();
    let m = Mount::new();
    // Compared with ipcs right after each change, retrying on interference by others.
    let check = || {
        retry(20, || {
            let ipcs = ipcs_m_u()["segments allocated"];
            let ours = read_fields(&m.p("limits")).num("segments");
            if ours == ipcs {
                Ok(())
            } else {
                Err(format!("limits segments {ours} != ipcs {ipcs}"))
            }
        })
    };
    check();
    let _a = SysvSeg::private(4096, 0o600);
    let _b = SysvSeg::private(4096, 0o600);
    check();
}
