//! IPC namespaces and containers (docs/mounting.md "Command line": `--pid`, `--ipc-ns`): a child
//! made with unshare(CLONE_NEWIPC) creates segments (shmid 0 and 1 in its fresh namespace); a mount
//! with `--pid CHILD` or `--ipc-ns /proc/CHILD/ns/ipc` shows them and not the host's, and a mount
//! without either option does not show them. Segments are told apart by key, not by shmid.

mod common;

use std::collections::BTreeSet;
use std::fs;

use serde_json::Value;

use common::*;

/// A child in a fresh IPC namespace holding two segments (4096 and 8192 bytes, random keys);
/// it has the first one attached read-write. Killed when dropped, which ends the namespace
/// once no mount holds it.
struct NsChild {
    helper: Helper,
    keys: [i32; 2],
}

impl NsChild {
    fn start(extra: &[&str]) -> NsChild {
        let keys = [random_key(), random_key()];
        let specs = [
            format!("{:#x}:4096", keys[0] as u32),
            format!("{:#x}:8192", keys[1] as u32),
        ];
        let mut args = vec!["newns"];
        args.extend_from_slice(extra);
        args.extend(specs.iter().map(String::as_str));
        let helper = Helper::start(&args);
        let segs: Vec<&String> = helper
            .output
            .iter()
            .filter(|l| l.starts_with("seg "))
            .collect();
        assert_eq!(
            segs,
            [&format!("seg 0 {}", keys[0]), &format!("seg 1 {}", keys[1])],
            "a fresh IPC namespace numbers its first segments 0 and 1"
        );
        NsChild { helper, keys }
    }

    fn pid(&self) -> i32 {
        self.helper.pid()
    }

    fn ns(&self) -> String {
        format!("/proc/{}/ns/ipc", self.pid())
    }
}

fn key_name(key: i32) -> String {
    format!("0x{:08x}", key as u32)
}

/// The keys (as `0x%08x`) that `index` lists for SysV rows.
fn index_keys(m: &Mount) -> BTreeSet<String> {
    read_text(&m.p("index"))
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("sysv "))
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect()
}

/// The keys (as numbers) that `index.json` lists for SysV entries.
fn index_json_keys(m: &Mount) -> BTreeSet<u64> {
    let v: Value = serde_json::from_str(&read_text(&m.p("index.json"))).expect("index.json");
    v.as_array()
        .expect("index.json is an array")
        .iter()
        .filter(|e| e["kind"] == "sysv")
        .map(|e| e["key"].as_u64().expect("key is a number"))
        .collect()
}

/// Everything a user would check on a mount that shows the child's namespace.
fn assert_shows_the_namespace(m: &Mount, child: &NsChild, host: &SysvSeg, how: &str) {
    assert_eq!(
        m.ls_sysv(),
        BTreeSet::from([0, 1]),
        "{how}: `ls sysv` must list exactly the namespace's segments 0 and 1"
    );
    for (id, size) in [(0, 4096), (1, 8192)] {
        let stat = read_fields(&m.sysv(id, "stat"));
        assert_eq!(stat.num("shmid"), id as u64, "{how}: sysv/{id}/stat");
        assert_eq!(
            stat.get("key"),
            key_name(child.keys[id as usize]),
            "{how}: sysv/{id}/stat key"
        );
        assert_eq!(stat.num("size"), size, "{how}: sysv/{id}/stat size");
        assert_eq!(
            fs::metadata(m.sysv(id, "data")).unwrap().len(),
            size,
            "{how}: size of sysv/{id}/data"
        );
        assert_eq!(
            fs::read_link(m.p("by-key").join(key_name(child.keys[id as usize])))
                .unwrap()
                .to_str()
                .unwrap(),
            format!("../sysv/{id}"),
            "{how}: by-key link of the namespace's segment {id}"
        );
    }
    assert_eq!(
        read_fields(&m.p("limits")).num("segments"),
        2,
        "{how}: limits must count the namespace's segments"
    );
    // The child has segment 0 attached: `attached` finds it (same namespace as the daemon).
    assert_eq!(
        read_fields(&m.sysv(0, "stat")).num("nattch"),
        1,
        "{how}: nattch of segment 0"
    );
    let attached = read_text(&m.sysv(0, "attached"));
    let pids = attached_pids(&attached);
    assert_eq!(
        pids,
        [child.pid().to_string()],
        "{how}: attached of segment 0 must name the child: {attached:?}"
    );

    // The test's segment in the host namespace does not show, by key.
    let host_key = key_name(host.key);
    assert!(
        !m.ls("by-key").contains(&host_key),
        "{how}: the host's segment {host_key} shows in by-key"
    );
    assert!(
        !index_keys(m).contains(&host_key),
        "{how}: the host's segment {host_key} shows in index"
    );
    assert!(
        !index_json_keys(m).contains(&u64::from(host.key as u32)),
        "{how}: the host's segment {host_key} shows in index.json"
    );
}

#[test]
fn pid_option_shows_the_namespace_segments_and_not_the_hosts() {
    require_fuse!();
    let host = SysvSeg::keyed(4096, 0o600);
    let child = NsChild::start(&[]);
    let m = Mount::with_args(&[], &["--pid".into(), child.pid().to_string()], false);
    assert_shows_the_namespace(&m, &child, &host, "--pid CHILD");
}

#[test]
fn ipc_ns_option_shows_the_namespace_segments_and_not_the_hosts() {
    require_fuse!();
    let host = SysvSeg::keyed(4096, 0o600);
    let child = NsChild::start(&[]);
    let m = Mount::with_args(&[], &["--ipc-ns".into(), child.ns()], true);
    assert_shows_the_namespace(&m, &child, &host, "--ipc-ns /proc/CHILD/ns/ipc");
}

#[test]
fn without_the_option_the_namespace_segments_do_not_show() {
    require_fuse!();
    let host = SysvSeg::keyed(4096, 0o600);
    let child = NsChild::start(&[]);
    let m = Mount::new();
    let by_key = m.ls("by-key");
    let index = index_keys(&m);
    let json = index_json_keys(&m);
    for key in child.keys {
        let name = key_name(key);
        assert!(
            !by_key.contains(&name),
            "the namespace's segment {name} shows in by-key of a plain mount"
        );
        assert!(
            !index.contains(&name),
            "the namespace's segment {name} shows in index of a plain mount"
        );
        assert!(
            !json.contains(&u64::from(key as u32)),
            "the namespace's segment {name} shows in index.json of a plain mount"
        );
    }
    // Control: the host's own segment does show.
    assert!(
        by_key.contains(&key_name(host.key)),
        "host segment in by-key"
    );
    assert!(index.contains(&key_name(host.key)), "host segment in index");
    assert_eq!(
        read_fields(&m.sysv(host.id, "stat")).get("key"),
        key_name(host.key)
    );
}

/// `ipcs -m` as seen inside the child's namespace: the shmids it lists.
fn ipcs_in(child: &NsChild) -> BTreeSet<i32> {
    sh_ok(&format!("nsenter --ipc={} ipcs -m", child.ns()))
        .lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn rmdir_in_a_namespace_mount_removes_the_namespace_segment() {
    require_fuse!();
    let host = SysvSeg::keyed(4096, 0o600);
    let child = NsChild::start(&[]);
    let m = Mount::with_args(&[], &["--ipc-ns".into(), child.ns()], true);
    assert_eq!(ipcs_in(&child), BTreeSet::from([0, 1]));

    let r = sh(&format!("rmdir {}", q(m.sysv_dir(1))));
    assert!(r.ok(), "rmdir sysv/1 on the --ipc-ns mount: {r:?}");
    assert_eq!(
        ipcs_in(&child),
        BTreeSet::from([0]),
        "`nsenter --ipc ipcs -m`: segment 1 of the namespace must be gone"
    );
    assert_eq!(m.ls_sysv(), BTreeSet::from([0]));
    assert!(
        ipc_stat(host.id).is_ok(),
        "the host's segment must not be touched"
    );
}

#[test]
fn pid_option_shows_the_containers_dev_shm() {
    require_fuse!();
    // The child also gets a mount namespace with its own tmpfs on /dev/shm holding `nsobj`.
    let child = NsChild::start(&["-m", "nsobj"]);
    let m = Mount::with_args(&[], &["--pid".into(), child.pid().to_string()], false);
    assert_eq!(
        m.ls("posix"),
        BTreeSet::from(["nsobj".to_string()]),
        "--pid CHILD: posix/ must show the child's /dev/shm"
    );
    assert_eq!(fs::read(m.posix("nsobj", "data")).unwrap(), b"hello");
    assert_eq!(m.ls_sysv(), BTreeSet::from([0, 1]));
}

/// rss of `shmid` in /proc/sysvipc/shm as seen inside the child's namespace.
fn rss_in(ns: &str, shmid: i32) -> u64 {
    let text = sh_ok(&format!("nsenter --ipc={ns} cat /proc/sysvipc/shm"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|c| c[col("shmid")] == shmid.to_string())
        .map(|c| c[col("rss")].parse().unwrap())
        .unwrap_or_else(|| panic!("shmid {shmid} not in /proc/sysvipc/shm of {ns}: {text}"))
}

/// The regression test of index.rs, in a namespace of its own, where no other test changes the
/// totals meanwhile (a reading kept "while the totals hold" for longer than 50 ms would be
/// caught every time).
#[test]
fn stat_rss_follows_one_segment_gaining_what_another_loses_in_a_quiet_namespace() {
    require_fuse!();
    let mut child = Helper::start(&["rss-steps"]);
    let ids: Vec<i32> = child.ready.split(' ').map(|s| s.parse().unwrap()).collect();
    let (a, b) = (ids[0], ids[1]);
    let ns = format!("/proc/{}/ns/ipc", child.pid());
    let m = Mount::with_args(&[], &["--ipc-ns".into(), ns.clone()], true);
    let rss = |id: i32| read_fields(&m.sysv(id, "stat")).num("rss");

    let first = (rss(a), rss(b));
    assert_eq!(
        first,
        (rss_in(&ns, a), rss_in(&ns, b)),
        "vs /proc/sysvipc/shm"
    );
    assert_eq!(first, (0, 4096), "stat rss (A, B) after touching B's page");

    assert_eq!(child.step("go"), "done");
    // The totals are unchanged: a reading may serve for up to 50 ms (shmfs(5)
    // FRESHNESS).
    std::thread::sleep(std::time::Duration::from_millis(60));
    let second = (rss(a), rss(b));
    assert_eq!(
        second,
        (rss_in(&ns, a), rss_in(&ns, b)),
        "vs /proc/sysvipc/shm"
    );
    assert_eq!(
        second,
        (4096, 0),
        "stat rss (A, B) after touching A's page and MADV_REMOVE of B's"
    );
}

/// shmids repeat across namespaces: two children each have a segment 0 attached. The mount of
/// one namespace must name only its own child in `attached`, never the other namespace's.
#[test]
fn attached_names_only_processes_of_the_shown_namespace() {
    require_fuse!();
    let shown = NsChild::start(&[]);
    let other = NsChild::start(&[]);
    let m = Mount::with_args(&[], &["--ipc-ns".into(), shown.ns()], true);
    let attached = read_text(&m.sysv(0, "attached"));
    let pids = attached_pids(&attached);
    assert_eq!(
        pids,
        [shown.pid().to_string()],
        "attached of sysv/0 must list the child of the shown namespace (pid {}) and not the \
         other namespace's (pid {}), which also has a segment 0 attached: {attached:?}",
        shown.pid(),
        other.pid()
    );
    assert_eq!(read_fields(&m.sysv(0, "stat")).num("nattch"), 1);
}

/// A container whose /dev/shm is an absolute symlink (`/dev/shm -> /etc`; old images have
/// `/dev/shm -> /run/shm`), with an /etc of its own holding one file. `--pid` shows what the
/// container's processes see: the symlink resolved inside the container's root, so posix/ lists
/// the container's /etc, never the machine's. A plain open of `/proc/PID/root/dev/shm` follows
/// the symlink from the daemon's root instead: shmfs did so before, and its posix/ listed the
/// machine's /etc (passwd, group, ...), which root could then write and rmdir through the mount.
#[test]
fn pid_option_resolves_a_dev_shm_symlink_inside_the_containers_root() {
    require_fuse!();
    let container = Container::with_dev_shm_to_own_etc();
    let m = Mount::with_args(&[], &["--pid".into(), container.pid().to_string()], false);
    let listed = m.ls("posix");
    assert!(
        !listed.contains("passwd"),
        "--pid of a container whose /dev/shm -> /etc: posix/ shows the machine's /etc: {listed:?}"
    );
    assert_eq!(
        listed,
        BTreeSet::from([OWN_ETC_FILE.to_string()]),
        "posix/ must show the container's /etc, where its /dev/shm leads inside its root"
    );
    assert_eq!(
        fs::read_to_string(m.posix(OWN_ETC_FILE, "data")).unwrap(),
        OWN_ETC_TEXT
    );
    let r = sh(&format!("rmdir {}", q(m.posix_dir("passwd"))));
    assert!(!r.ok(), "rmdir posix/passwd succeeded");
    assert!(
        fs::metadata("/etc/passwd").is_ok(),
        "the machine's passwd is gone"
    );
}

/// The device of the file system `p` is on (stat follows `p`).
fn dev_of(p: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {p}: {e}"))
        .dev()
}

/// The descriptors of process `pid` on the file system of device `dev`.
fn fds_on(pid: u32, dev: u64) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| fs::metadata(e.path()).is_ok_and(|m| m.dev() == dev))
        .map(|e| {
            let target = fs::read_link(e.path()).unwrap_or_default();
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            )
        })
        .collect()
}

/// A container with a tmpfs of its own on /dev/shm holding a 64 MiB file. A `--pid` mount of it
/// keeps nothing open on that tmpfs between requests, so when the container's processes exit,
/// its memory is freed while shmfs stays mounted (Shmem of /proc/meminfo drops), and posix/ is
/// then an empty directory. shmfs used to keep a descriptor on the container's /dev/shm for its
/// whole life, which kept the tmpfs, and the 64 MiB, until it was unmounted.
#[test]
fn a_pid_mount_lets_the_containers_dev_shm_go_when_the_container_exits() {
    require_fuse!();
    const MIB: u64 = 64;
    let mut container = Container::start(&format!(
        "mount -t tmpfs -o size={}m,mode=1777 shmfs-test-ctr-shm /dev/shm
head -c {MIB}M /dev/zero > /dev/shm/big",
        2 * MIB
    ));
    let shm_dev = dev_of(&format!("/proc/{}/root/dev/shm", container.pid()));
    let m = Mount::with_args(&[], &["--pid".into(), container.pid().to_string()], false);
    assert_eq!(m.ls("posix"), BTreeSet::from(["big".to_string()]));
    assert_eq!(
        fs::metadata(m.posix("big", "data")).unwrap().len(),
        MIB << 20
    );
    let held = fds_on(m.pid(), shm_dev);
    assert!(
        held.is_empty(),
        "between requests, the daemon holds descriptors on the container's /dev/shm: {held:?}"
    );

    let before = meminfo_kb("Shmem").expect("Shmem in /proc/meminfo");
    container.stop();
    // Other tests may allocate shared memory meanwhile: half the file is enough, within a few
    // seconds.
    let want = before.saturating_sub(MIB * 1024 / 2);
    let start = std::time::Instant::now();
    let mut now = before;
    while start.elapsed() < std::time::Duration::from_secs(5) {
        now = meminfo_kb("Shmem").unwrap();
        if now <= want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        now <= want,
        "Shmem was {before} kB before the container exited and is {now} kB 5 s after, with \
         shmfs mounted: the container's /dev/shm ({MIB} MiB) was not freed"
    );
    assert_eq!(
        m.ls("posix"),
        BTreeSet::new(),
        "posix/ of a container that has exited"
    );
    let r = sh(&format!("df {}", q(m.path())));
    assert!(
        r.ok(),
        "df of the mount of a container that has exited: {r:?}"
    );
}

/// Through a `--pid` mount with allow_other, a user other than root acts in the container's
/// /dev/shm as itself. The daemon finds that directory with its own rights (following
/// /proc/PID/root takes the right to trace the container's root-owned process, which the user
/// lacks), and only then acts as the user: who may list, make and remove its own objects, and
/// is refused root's 0600 one as the kernel would refuse it.
#[test]
fn a_user_acts_as_itself_in_the_shm_dir_of_a_pid_mount() {
    require_fuse!();
    use std::os::unix::fs::MetadataExt;
    const USER: u32 = 12345;
    let container = Container::start(
        "mount -t tmpfs -o size=1m,mode=1777 shmfs-test-ctr-shm /dev/shm
printf secret > /dev/shm/roots
chmod 600 /dev/shm/roots",
    );
    let m = Mount::with_args(
        &["allow_other"],
        &["--pid".into(), container.pid().to_string()],
        false,
    );
    let r = sh_as(USER, &format!("ls {}", q(m.p("posix"))));
    assert!(r.ok(), "ls posix/ as uid {USER}: {r:?}");
    assert_eq!(r.stdout_str(), "roots\n");
    let r = sh_as(USER, &format!("mkdir {}", q(m.posix_dir("users"))));
    assert!(r.ok(), "mkdir posix/users as uid {USER}: {r:?}");
    let made = fs::metadata(format!("/proc/{}/root/dev/shm/users", container.pid()))
        .expect("posix/users made in the container's /dev/shm");
    assert_eq!(made.uid(), USER, "made as the user");
    let r = sh_as(USER, &format!("cat {}", q(m.posix("roots", "data"))));
    assert!(
        !r.ok() && r.stderr.contains("Permission denied"),
        "cat of root's 0600 object as uid {USER}: {r:?}"
    );
    let r = sh_as(USER, &format!("rmdir {}", q(m.posix_dir("roots"))));
    assert!(
        !r.ok(),
        "rmdir of root's object in the sticky /dev/shm as uid {USER}: {r:?}"
    );
    let r = sh_as(USER, &format!("rmdir {}", q(m.posix_dir("users"))));
    assert!(r.ok(), "rmdir posix/users as uid {USER}: {r:?}");
    assert_eq!(m.ls("posix"), BTreeSet::from(["roots".to_string()]));
}
