//! Who sees what under `ns/` (issue 23): the kernel decides. An ordinary user (`nobody`) sees
//! neither root's container nor anything in it; it sees a rootless container of its own
//! (`unshare --user --map-root-user --ipc --mount`) and does there what the kernel lets it
//! do; in root's container where it has a process, it sees the namespace and is refused what
//! the kernel refuses it there (another's 0600 bytes: EACCES; removing root's segment: EPERM).
//! `members` and the PROCS of `ns/index` show it only the processes it may trace.
//! And a container whose /dev/shm is a symlink out of its root never shows the host's files
//! under `ns/N/posix/`.
//!
//! The mounts are `-o allow_other`. Needs root, /dev/fuse, util-linux (`unshare`, `nsenter`,
//! `ipcs`, `setpriv`) and `cc`; without them skipped, or failed when `CI` is set.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

/// The error a command printed, by its strerror text.
fn error_of(r: &Run) -> &'static str {
    for (text, name) in [
        ("No such file or directory", "ENOENT"),
        ("Permission denied", "EACCES"),
        ("Operation not permitted", "EPERM"),
        ("Stale file handle", "ESTALE"),
    ] {
        if r.stderr.contains(text) {
            return name;
        }
    }
    "other"
}

/// `nobody` runs `script`, which must fail with one of `errors`.
#[track_caller]
fn nobody_refused(script: &str, errors: &[&str]) {
    let r = sh_as(NOBODY, script);
    assert!(
        !r.ok() && errors.contains(&error_of(&r)),
        "`{script}` as nobody must fail with {errors:?}: {r:?}"
    );
}

/// The pids in a `members` text (after its header).
fn member_pids(text: &str) -> BTreeSet<u32> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The real uid of process `pid`, if it is still there.
fn uid_of(pid: u32) -> Option<u32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `nobody` runs `script`, which must succeed; its stdout.
#[track_caller]
fn nobody_ok(script: &str) -> String {
    let r = sh_as(NOBODY, script);
    assert!(r.ok(), "`{script}` as nobody: {r:?}");
    r.stdout_str()
}

/// Lines of `ls DIR` as `nobody`.
#[track_caller]
fn nobody_ls(dir: &std::path::Path) -> BTreeSet<String> {
    nobody_ok(&format!("ls {}", q(dir)))
        .lines()
        .map(String::from)
        .collect()
}

/// A script waiting (for at most 10 s) until file `f` is not empty; if it never is, it prints
/// `log` and fails.
fn wait_for(f: &str, log: &str) -> String {
    format!(
        "i=0; while [ ! -s {f} ]; do i=$((i+1)); [ $i -lt 500 ] || {{ echo {f} never came >&2; cat {log} >&2; exit 1; }}; sleep 0.02; done\n"
    )
}

/// Root's container (root's segments 0600 and 0644, root's 0600 object in its own /dev/shm,
/// only root's processes): `nobody` sees none of it, and cannot reach it by path.
#[test]
fn an_ordinary_user_does_not_see_roots_container() {
    require_fuse!();
    require_ns_tools!();
    let m = Mount::builder().option("allow_other").mount();
    let c = NsCtr::start(&CtrSpec {
        hostname: test_hostname("roots"),
        shm_size: Some("1m".into()),
        posix: vec![("secret".into(), b"root's secret".to_vec(), 0o600, None)],
        segs: vec![SegSpec::new(4096, 0o600), SegSpec::new(4096, 0o644)],
        extra: String::new(),
    });
    let n = c.n();
    let (a, b) = (c.segs[0].id, c.segs[1].id);
    assert_ns_listed(&m, c.ns);

    assert!(
        !nobody_ls(&m.p("ns")).contains(&n),
        "`ls ns/` as nobody shows root's container {n}"
    );
    let index = nobody_ok(&format!("cat {}", q(m.p("ns/index"))));
    assert!(
        !index
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&n)),
        "ns/index as nobody has a row for root's container {n}: {index}"
    );
    let dir = c.p(m.path(), "");
    // Root looks first: the kernel then knows `ns/N`, its `members` and `container` (cached
    // entries), which must not let `nobody` in without the daemon's say.
    assert!(
        member_pids(&read_text(&dir.join("members"))).contains(&c.pid()),
        "ns/{n}/members as root lists the container's first process"
    );
    assert!(!read_text(&dir.join("container")).is_empty());
    assert_eq!(
        ls(&dir.join("sysv")),
        BTreeSet::from([a.to_string(), b.to_string()])
    );
    for file in ["members", "container"] {
        nobody_refused(&format!("cat {}", q(dir.join(file))), &["ENOENT"]);
        nobody_refused(&format!("stat {}", q(dir.join(file))), &["ENOENT"]);
    }
    for script in [
        format!("stat {}", q(&dir)),
        format!("ls {}", q(dir.join("sysv"))),
        format!("cat {}", q(dir.join("members"))),
        format!("cat {}", q(dir.join("container"))),
        format!("cat {}", q(dir.join(format!("sysv/{b}/stat")))),
        format!("cat {}", q(dir.join(format!("sysv/{b}/data")))),
        format!("cat {}", q(dir.join(format!("sysv/{a}/data")))),
        format!("cat {}", q(dir.join("posix/secret/data"))),
    ] {
        nobody_refused(&script, &["ENOENT", "EACCES"]);
    }
    for script in [
        format!("rmdir {}", q(dir.join(format!("sysv/{a}")))),
        format!("rmdir {}", q(dir.join("posix/secret"))),
    ] {
        nobody_refused(&script, &["ENOENT", "EACCES", "EPERM"]);
    }
    assert_eq!(
        c.ipcs().keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b]),
        "root's segments are still in the container"
    );
    assert_eq!(c.sh_ok("cat /dev/shm/secret"), "root's secret");
    let metrics = nobody_ok(&format!("cat {}", q(m.p("metrics.prom"))));
    assert!(
        !metrics.contains(&format!("namespace=\"{n}\"")),
        "metrics.prom as nobody has series of root's container {n}"
    );
}

/// `nobody`'s own rootless container (a user namespace of its own, root mapped to nobody, IPC and
/// mount namespaces of its own with a tmpfs on /dev/shm), started inside a root container only
/// so that it goes when the test ends. `nobody` sees it and acts there as the kernel lets it:
/// reads its own segment and object, removes its own segment. The root container around it
/// stays invisible to `nobody`.
#[test]
fn a_users_rootless_container_is_visible_to_that_user() {
    require_fuse!();
    require_ns_tools!();
    let m = Mount::builder().option("allow_other").mount();
    let key = random_key();
    let extra = format!(
        r#"mkdir "$DIR/u"
chown {NOBODY}:{NOBODY} "$DIR/u"
setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups unshare --user --map-root-user --ipc --mount sh -c '
set -e
mount -t tmpfs -o size=1m shmfs-test-rootless /dev/shm
printf mine > /dev/shm/mine
chmod 600 /dev/shm/mine
"$0" mk {key:#x} 4096 0600 > "$1/seg"
exec "$0" pause > "$1/paused"
' "$NSIPC" "$DIR/u" > "$DIR/u/log" 2>&1 &
"#,
        key = key as u32,
    ) + &wait_for("\"$DIR/u/paused\"", "\"$DIR/u/log\"");
    let outer = NsCtr::start(&CtrSpec {
        hostname: test_hostname("outer"),
        shm_size: Some("1m".into()),
        segs: vec![SegSpec::new(4096, 0o600)],
        extra,
        ..Default::default()
    });
    let dir = outer.container.dir().join("u");
    let paused: u32 = fs::read_to_string(dir.join("paused"))
        .unwrap()
        .trim()
        .strip_prefix("paused ")
        .and_then(|p| p.parse().ok())
        .expect("nsipc pause printed its pid");
    let seg: i32 = fs::read_to_string(dir.join("seg"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("nsipc mk printed the shmid");
    let u = ipc_ns_of(paused);
    let un = u.to_string();
    assert_ne!(u, outer.ns);

    assert_ns_listed(&m, u);
    let seen = nobody_ls(&m.p("ns"));
    assert!(
        seen.contains(&un),
        "`ls ns/` as nobody must show its rootless container {un}: {seen:?}"
    );
    assert!(
        !seen.contains(&outer.n()),
        "`ls ns/` as nobody shows root's container {}: {seen:?}",
        outer.ns
    );
    assert!(
        m.ls("ns").contains(&un),
        "root sees the rootless container too"
    );
    let index = nobody_ok(&format!("cat {}", q(m.p("ns/index"))));
    assert!(
        index
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&un)),
        "ns/index as nobody has no row for its container {un}: {index}"
    );

    let ud = m.p("ns").join(&un);
    assert_eq!(
        nobody_ls(&ud.join("sysv")),
        BTreeSet::from([seg.to_string()]),
        "ns/{un}/sysv as nobody"
    );
    let stat = Fields::parse(&nobody_ok(&format!(
        "cat {}",
        q(ud.join(format!("sysv/{seg}/stat")))
    )));
    assert_eq!(stat.get("key"), key_hex(key));
    assert_eq!(
        stat.num("uid"),
        u64::from(NOBODY),
        "the rootless container's root is nobody on the machine"
    );
    assert_eq!(
        nobody_ok(&format!(
            "wc -c < {}",
            q(ud.join(format!("sysv/{seg}/data")))
        ))
        .trim(),
        "4096",
        "nobody reads its own segment"
    );
    assert_eq!(
        nobody_ls(&ud.join("posix")),
        BTreeSet::from(["mine".to_string()]),
        "ns/{un}/posix as nobody: the rootless container's own /dev/shm"
    );
    assert_eq!(
        nobody_ok(&format!("cat {}", q(ud.join("posix/mine/data")))),
        "mine"
    );
    let members = nobody_ok(&format!("cat {}", q(ud.join("members"))));
    assert!(
        members
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some(&paused.to_string())),
        "ns/{un}/members as nobody lists its process {paused}: {members}"
    );

    nobody_ok(&format!("rmdir {}", q(ud.join(format!("sysv/{seg}")))));
    let left = parse_ipcs_m(&sh_ok(&format!("nsenter -t {paused} --ipc ipcs -m")));
    assert!(
        left.is_empty(),
        "`ipcs -m` in the rootless container after nobody's rmdir: {left:?}"
    );
}

/// Root's container in which `nobody` runs a process: `nobody` may open that process's
/// /proc/PID/ns/ipc, so it sees the namespace; there it may read what the kernel lets it read
/// (any `stat`, the bytes of a 0644 segment) and is refused the rest as the kernel refuses it:
/// the bytes of root's 0600 segment (EACCES), removing or changing root's segments (EPERM).
#[test]
fn in_roots_container_a_user_with_a_process_there_is_refused_what_the_kernel_refuses() {
    require_fuse!();
    require_ns_tools!();
    let m = Mount::builder().option("allow_other").mount();
    let extra = format!(
        "setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups \"$NSIPC\" pause > \"$DIR/paused\" 2> \"$DIR/paused.log\" &\n{}",
        wait_for("\"$DIR/paused\"", "\"$DIR/paused.log\"")
    );
    let c = NsCtr::start(&CtrSpec {
        hostname: test_hostname("shared"),
        shm_size: Some("1m".into()),
        posix: vec![
            ("secret".into(), b"root's secret".to_vec(), 0o600, None),
            ("public".into(), b"root's public".to_vec(), 0o644, None),
        ],
        segs: vec![SegSpec::new(4096, 0o600), SegSpec::new(8192, 0o644)],
        extra,
    });
    let n = c.n();
    let (secret, public) = (c.segs[0].id, c.segs[1].id);
    let dir = c.p(m.path(), "");
    assert_ns_listed(&m, c.ns);
    assert!(
        nobody_ls(&m.p("ns")).contains(&n),
        "`ls ns/` as nobody, who has a process in {n}"
    );
    assert_eq!(
        nobody_ls(&dir.join("sysv")),
        BTreeSet::from([secret.to_string(), public.to_string()]),
        "ns/{n}/sysv as nobody lists every segment, as ipcs does"
    );
    for id in [secret, public] {
        let stat = Fields::parse(&nobody_ok(&format!(
            "cat {}",
            q(dir.join(format!("sysv/{id}/stat")))
        )));
        assert_eq!(stat.num("shmid"), id as u64);
    }
    assert_eq!(
        nobody_ok(&format!(
            "wc -c < {}",
            q(dir.join(format!("sysv/{public}/data")))
        ))
        .trim(),
        "8192"
    );
    // Each refusal is the one the same operation gets on a twin at the root of the mount (the
    // daemon's namespace, and its shm dir made 01777 like a /dev/shm): root's segments and
    // objects of the same modes.
    let twin_secret = SysvSeg::keyed(4096, 0o600);
    let twin_public = SysvSeg::keyed(8192, 0o644);
    fs::set_permissions(m.shm_dir(), fs::Permissions::from_mode(0o1777)).unwrap();
    create_posix(m.shm_dir(), "secret", 0o600, b"root's secret");
    create_posix(m.shm_dir(), "public", 0o644, b"root's public");
    for (script, ns_path, twin_path, want) in [
        (
            "cat",
            format!("sysv/{secret}/data"),
            format!("sysv/{}/data", twin_secret.id),
            "EACCES",
        ),
        (
            "rmdir",
            format!("sysv/{secret}"),
            format!("sysv/{}", twin_secret.id),
            "EPERM",
        ),
        (
            "rmdir",
            format!("sysv/{public}"),
            format!("sysv/{}", twin_public.id),
            "EPERM",
        ),
        (
            "echo 0666 >",
            format!("sysv/{public}/perm"),
            format!("sysv/{}/perm", twin_public.id),
            "EPERM",
        ),
        (
            "chmod 666",
            format!("sysv/{public}/data"),
            format!("sysv/{}/data", twin_public.id),
            "EPERM",
        ),
        (
            "cat",
            "posix/secret/data".to_string(),
            "posix/secret/data".to_string(),
            "EACCES",
        ),
        (
            "rmdir",
            "posix/secret".to_string(),
            "posix/secret".to_string(),
            "EPERM",
        ),
    ] {
        let at_root = sh_as(NOBODY, &format!("{script} {}", q(m.p(&twin_path))));
        let in_ns = sh_as(NOBODY, &format!("{script} {}", q(dir.join(&ns_path))));
        assert!(
            !at_root.ok() && !in_ns.ok() && error_of(&in_ns) == error_of(&at_root),
            "`{script} ns/{n}/{ns_path}` as nobody must fail as `{script} {twin_path}` does at \
             the root: in ns/{n} {in_ns:?}, at the root {at_root:?}"
        );
        assert_eq!(
            error_of(&in_ns),
            want,
            "`{script} ns/{n}/{ns_path}` as nobody: {in_ns:?}"
        );
    }
    assert_eq!(
        c.ipcs().keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([secret, public]),
        "root's segments are still in the container"
    );
    let perms: BTreeSet<(String, String)> = c
        .sh_ok("ipcs -m")
        .lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].to_string(), f[3].to_string())
        })
        .collect();
    assert_eq!(
        perms,
        BTreeSet::from([
            (secret.to_string(), "600".to_string()),
            (public.to_string(), "644".to_string())
        ]),
        "the segments' modes are unchanged (ipcs -m inside)"
    );
    assert_eq!(
        nobody_ok(&format!("cat {}", q(dir.join("posix/public/data")))),
        "root's public"
    );
    assert_eq!(c.sh_ok("cat /dev/shm/secret"), "root's secret");
}

/// Containers whose /dev/shm is a symlink to a path outside: ns/N/posix/ shows what the symlink
/// leads to inside the container's root, never the host's files there.
///
/// One has `/dev/shm -> /etc` and an /etc of its own (bind mount) holding one file; the other
/// `/dev/shm -> HOSTDIR`, a directory of the test's with a file in it, over which the container
/// mounted an empty tmpfs of its own, holding another file.
#[test]
fn a_dev_shm_symlink_out_of_the_container_never_shows_host_files() {
    require_fuse!();
    require_ns_tools!();
    let m = Mount::new();

    let to_etc = Container::with_dev_shm_to_own_etc();

    let host_dir = tempfile::Builder::new()
        .prefix("shmfs-host-dir-")
        .tempdir()
        .unwrap();
    fs::write(host_dir.path().join("host-file"), "the host's file\n").unwrap();
    let to_host = Container::start(&format!(
        r#"mount -t tmpfs -o size=1m,mode=0755 shmfs-test-dev /dev
ln -s {host} /dev/shm
mount -t tmpfs -o size=1m,mode=1777 shmfs-test-ctr-shm {host}
printf 'the container'"'"'s\n' > {host}/container-file"#,
        host = q(host_dir.path())
    ));

    for (ctr, own, host_files) in [
        (&to_etc, OWN_ETC_FILE, vec!["passwd", "group", "hostname"]),
        (&to_host, "container-file", vec!["host-file"]),
    ] {
        let n = ipc_ns_of(ctr.pid());
        assert_ns_listed(&m, n);
        let posix = m.p("ns").join(n.to_string()).join("posix");
        let listed = ls(&posix);
        for f in &host_files {
            assert!(
                !listed.contains(*f),
                "ns/{n}/posix/ of a container whose /dev/shm leads out shows the host's {f}: {listed:?}"
            );
        }
        assert_eq!(
            listed,
            BTreeSet::from([own.to_string()]),
            "ns/{n}/posix/ must show where /dev/shm leads inside the container's root"
        );
        assert!(
            read_text(&posix.join(own).join("data")).starts_with("the container"),
            "ns/{n}/posix/{own}/data"
        );
        for f in &host_files {
            let r = sh(&format!("rmdir {}", q(posix.join(f))));
            assert!(!r.ok(), "rmdir ns/{n}/posix/{f} succeeded");
        }
    }
    assert!(
        fs::metadata("/etc/passwd").is_ok(),
        "the host's passwd is there"
    );
    assert_eq!(
        fs::read_to_string(host_dir.path().join("host-file")).unwrap(),
        "the host's file\n"
    );
    // The root's posix/ is the daemon's own (its private --shm-dir).
    assert!(m.ls("posix").is_empty());
}

/// `ns/N/members` and the PROCS of `ns/index` show only the processes the caller may trace, as
/// `attached` lists holders: `nobody`, reading those of its own namespace (the machine's), sees
/// its own processes and none of root's (a root `sleep` of the test's, the daemon itself, any
/// other); root sees them all, and its PROCS for that row is larger.
#[test]
fn members_and_procs_show_a_user_only_the_processes_it_may_trace() {
    require_fuse!();
    require_ns_tools!();
    let m = Mount::builder().option("allow_other").mount();
    let own: u64 = nobody_ok("readlink /proc/self/ns/ipc")
        .trim()
        .strip_prefix("ipc:[")
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse().ok())
        .expect("readlink /proc/self/ns/ipc as nobody: ipc:[N]");
    assert_eq!(
        own,
        ipc_ns_of(std::process::id()),
        "nobody (setpriv) is in the test's IPC namespace"
    );
    let roots = Reaped::spawn(std::process::Command::new("sleep").arg("600"));
    let nobodys = Reaped::spawn(
        std::process::Command::new("setpriv")
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .args(["sleep", "600"]),
    );
    let (root_sleep, nobody_sleep) = (roots.pid() as u32, nobodys.pid() as u32);
    let members = q(m.p("ns").join(own.to_string()).join("members"));

    // A scan made before the sleeps started may serve a while: wait until nobody's shows.
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        seen = member_pids(&nobody_ok(&format!("cat {members}")));
        if seen.contains(&nobody_sleep) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        seen.contains(&nobody_sleep),
        "ns/{own}/members as nobody lists nobody's sleep {nobody_sleep}: {seen:?}"
    );
    for (pid, what) in [
        (root_sleep, "root's sleep"),
        (m.pid(), "the daemon (root's)"),
    ] {
        assert!(
            !seen.contains(&pid),
            "ns/{own}/members as nobody lists {what} ({pid}), which nobody may not trace: \
             {seen:?}"
        );
    }
    // Every pid listed is nobody's: one that is not (a pid reused meanwhile, however
    // unlikely) must not be listed again.
    let others: BTreeSet<u32> = seen
        .iter()
        .copied()
        .filter(|&pid| uid_of(pid).is_some_and(|uid| uid != NOBODY))
        .collect();
    if !others.is_empty() {
        let again = member_pids(&nobody_ok(&format!("cat {members}")));
        let still: Vec<(u32, Option<u32>)> = others
            .iter()
            .filter(|&&pid| again.contains(&pid) && uid_of(pid).is_some_and(|u| u != NOBODY))
            .map(|&pid| (pid, uid_of(pid)))
            .collect();
        assert!(
            still.is_empty(),
            "ns/{own}/members as nobody lists processes of other users (pid, uid): {still:?}"
        );
    }

    let by_root = member_pids(&read_text(&m.p("ns").join(own.to_string()).join("members")));
    for pid in [root_sleep, nobody_sleep, m.pid()] {
        assert!(
            by_root.contains(&pid),
            "ns/{own}/members as root lists {pid}: {by_root:?}"
        );
    }

    let procs_of = |text: &str| -> u64 {
        let (_, rows) = parse_table(text, "ns/index");
        let row = rows
            .iter()
            .find(|r| r["NS"] == own.to_string())
            .unwrap_or_else(|| panic!("ns/index has no row for {own}: {text}"));
        row["PROCS"].parse().unwrap()
    };
    let nobody_procs = procs_of(&nobody_ok(&format!("cat {}", q(m.p("ns/index")))));
    let root_procs = procs_of(&read_text(&m.p("ns/index")));
    assert!(
        nobody_procs >= 1 && nobody_procs + 2 <= root_procs,
        "PROCS of {own} in ns/index: {nobody_procs} as nobody, {root_procs} as root: root's \
         processes (at least its sleep and the daemon) must be left out of nobody's"
    );
    drop((roots, nobodys));
}
