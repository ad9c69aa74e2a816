//! Many threads in several namespaces at once (issue 23, "A worker never stays elsewhere"):
//! three containers, each with segments of keys of the test's own (numbered 0, 1, 2 in its
//! fresh namespace), and segments of the test's own at the root; threads read the containers'
//! `ns/N/sysv/`, their `stat`s and `by-key/` links, and the root's `sysv/`, `by-key/` and
//! `index`, in random order. Each answer is the namespace it was asked of: the root never shows
//! a container's key, `ns/N` never another namespace's. Afterwards every thread of the daemon
//! is in its own IPC namespace and no descriptor of it names a container's.
//!
//! Needs root, /dev/fuse, util-linux (`unshare`, `nsenter`, `setpriv`) and `cc`; without them
//! skipped, or failed when `CI` is set.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::Arc;

use common::*;

const THREADS: u64 = 8;
const ROUNDS: u32 = 300;

/// What one namespace holds: shmid -> key (as `0x%08x`).
type Segs = BTreeMap<i32, String>;

/// The key a `stat` text gives.
fn key_of(stat: &str) -> Option<&str> {
    stat.lines().find_map(|l| l.strip_prefix("key: "))
}

#[test]
fn many_threads_in_several_namespaces_never_see_the_wrong_one() {
    require_fuse!();
    require_tools!(
        "unshare" => "Debian package util-linux",
        "nsenter" => "Debian package util-linux",
        "setpriv" => "Debian package util-linux",
        "cc" => "Debian package gcc",
    );
    let root_segs: Vec<SysvSeg> = (0..3).map(|_| SysvSeg::keyed(4096, 0o600)).collect();
    let m = Arc::new(Mount::new());
    let ctrs: Vec<NsCtr> = (0..3)
        .map(|i| {
            NsCtr::start(&CtrSpec {
                hostname: format!("shmfs-hammer-{i}"),
                segs: vec![
                    SegSpec::new(4096, 0o600),
                    SegSpec::new(8192, 0o644).owner(NOBODY),
                    SegSpec::new(4096 * (i + 1), 0o600).hold(),
                ],
                ..Default::default()
            })
        })
        .collect();
    let root: Segs = root_segs.iter().map(|s| (s.id, key_hex(s.key))).collect();
    let theirs: Arc<Vec<(String, Segs)>> = Arc::new(
        ctrs.iter()
            .map(|c| {
                let segs: Segs = c.segs.iter().map(|s| (s.id, key_hex(s.key))).collect();
                assert_eq!(c.ipcs(), segs, "ipcs -m inside");
                (c.n(), segs)
            })
            .collect(),
    );
    let container_keys: Arc<BTreeSet<String>> = Arc::new(
        theirs
            .iter()
            .flat_map(|(_, s)| s.values().cloned())
            .collect(),
    );
    let root = Arc::new(root);

    for c in &ctrs {
        assert_ns_listed(&m, c.ns);
    }
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (m, theirs, root, container_keys) = (
                m.clone(),
                theirs.clone(),
                root.clone(),
                container_keys.clone(),
            );
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
                let mut next = || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                for round in 0..ROUNDS {
                    let (n, segs) = &theirs[(next() % theirs.len() as u64) as usize];
                    let ids: Vec<&i32> = segs.keys().collect();
                    let id = *ids[(next() % ids.len() as u64) as usize];
                    let at = format!("thread {t} round {round}");
                    match next() % 6 {
                        0 => {
                            let listed: BTreeSet<i32> = ls(&m.p(&format!("ns/{n}/sysv")))
                                .iter()
                                .map(|s| s.parse().unwrap())
                                .collect();
                            assert_eq!(
                                listed,
                                segs.keys().copied().collect(),
                                "{at}: ls ns/{n}/sysv"
                            );
                        }
                        1 => {
                            let stat = read_text(&m.p(&format!("ns/{n}/sysv/{id}/stat")));
                            assert_eq!(
                                key_of(&stat),
                                Some(segs[&id].as_str()),
                                "{at}: ns/{n}/sysv/{id}/stat"
                            );
                        }
                        2 => {
                            let link = fs::read_link(m.p(&format!("ns/{n}/by-key/{}", segs[&id])))
                                .unwrap_or_else(|e| {
                                    panic!("{at}: ns/{n}/by-key/{}: {e}", segs[&id])
                                });
                            assert_eq!(link.to_str().unwrap(), format!("../sysv/{id}"), "{at}");
                        }
                        3 => {
                            let by_key = m.ls("by-key");
                            let wrong: Vec<&String> = container_keys
                                .iter()
                                .filter(|k| by_key.contains(*k))
                                .collect();
                            assert!(wrong.is_empty(), "{at}: the root's by-key/ shows {wrong:?}");
                            assert!(
                                root.values().all(|k| by_key.contains(k)),
                                "{at}: the root's by-key/ lacks the root's segments"
                            );
                        }
                        4 => {
                            let listed = m.ls_sysv();
                            assert!(
                                root.keys().all(|id| listed.contains(id)),
                                "{at}: the root's sysv/ lacks the root's segments"
                            );
                            // The containers' shmids (0, 1, 2) may exist at the root too: as
                            // the root's own segments, never with a container's key.
                            for id in segs.keys().filter(|id| listed.contains(id)) {
                                match fs::read_to_string(m.sysv(*id, "stat")) {
                                    Ok(stat) => assert!(
                                        !container_keys.contains(key_of(&stat).unwrap_or("")),
                                        "{at}: the root's sysv/{id}/stat is a container's: {stat}"
                                    ),
                                    Err(e) => assert_eq!(
                                        e.raw_os_error(),
                                        Some(libc::ENOENT),
                                        "{at}: the root's sysv/{id}/stat: {e}"
                                    ),
                                }
                            }
                            let (rid, rkey) = root.iter().nth((next() % 3) as usize).unwrap();
                            assert_eq!(
                                key_of(&read_text(&m.sysv(*rid, "stat"))),
                                Some(rkey.as_str()),
                                "{at}: the root's sysv/{rid}/stat"
                            );
                        }
                        _ => {
                            let index = read_text(&m.p("index"));
                            let wrong: Vec<&String> = container_keys
                                .iter()
                                .filter(|k| index.contains(k.as_str()))
                                .collect();
                            assert!(wrong.is_empty(), "{at}: the root's index shows {wrong:?}");
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a reader saw the wrong namespace");
    }

    // Every thread of the daemon is at home, and nothing of it names a container's namespace.
    let home = fs::read_link(format!("/proc/{}/ns/ipc", m.pid())).unwrap();
    for e in fs::read_dir(format!("/proc/{}/task", m.pid()))
        .unwrap()
        .flatten()
    {
        if let Ok(ns) = fs::read_link(e.path().join("ns/ipc")) {
            assert_eq!(
                ns,
                home,
                "daemon thread {} is in another IPC namespace",
                e.file_name().to_string_lossy()
            );
        }
    }
    let names: BTreeSet<String> = ctrs.iter().map(|c| format!("ipc:[{}]", c.ns)).collect();
    let fds: Vec<String> = fs::read_dir(format!("/proc/{}/fd", m.pid()))
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| names.contains(l))
        .collect();
    assert!(fds.is_empty(), "the daemon keeps descriptors of {fds:?}");
    drop(ctrs);
}
