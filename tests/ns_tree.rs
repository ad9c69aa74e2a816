//! `ns/` (issue 23, DESIGN "Every namespace on the host"): a container made with `unshare` (IPC,
//! mount, UTS and pid namespaces of its own, a tmpfs of its own on /dev/shm, a hostname) shows
//! as `ns/N/`, N its IPC namespace as `readlink /proc/PID/ns/ipc` names it, and everything under
//! it is what the container itself sees, in the formats of the root's twins: its segments (made
//! inside by another user, with a key of the test's own) and none of the host's, their `stat`
//! with pids as the machine numbers them, their bytes (written inside and read through the
//! mount, and the other way round), its own /dev/shm, its processes, its hostname; `ns/index`
//! has a row for it; `rmdir` removes inside it; `metrics.prom` counts its segments. The root's
//! `sysv/` stays the daemon's own namespace.
//!
//! Needs root, /dev/fuse, util-linux (`unshare`, `nsenter`, `ipcs`, `setpriv`), `hexdump` and
//! `cc` (for `nsipc`, tests/common/c/nsipc.c); without them skipped, or failed when `CI` is set.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;

use serde_json::Value;

use common::*;

/// The value of the `name:` line of a `key: value` file (values may be empty).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The shmids listed in a `sysv/` directory of the mount.
fn ids_in(dir: &std::path::Path) -> BTreeSet<i32> {
    ls(dir)
        .into_iter()
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("{} lists {n:?}", dir.display()))
        })
        .collect()
}

/// `hexdump -C -n LEN` of a file.
fn hexdump(p: &std::path::Path, len: usize) -> String {
    sh_ok(&format!("hexdump -C -n {len} {}", q(p)))
}

/// `hexdump -C` of `bytes`, for comparison.
fn hexdump_of(bytes: &[u8]) -> String {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    hexdump(f.path(), bytes.len())
}

/// The container of the tree test: a 64 KiB 0600 segment made inside by `nobody` and kept
/// attached by a process of the container, and a POSIX object of `nobody`'s in its own /dev/shm.
fn tree_container(name: &str) -> NsCtr {
    NsCtr::start(&CtrSpec {
        hostname: test_hostname(name),
        shm_size: Some("4m".into()),
        posix: vec![(
            "obj".into(),
            b"posix bytes of the container\n".to_vec(),
            0o640,
            Some(NOBODY),
        )],
        segs: vec![SegSpec::new(65536, 0o600).owner(NOBODY).hold()],
        extra: String::new(),
    })
}

#[test]
fn a_container_shows_as_ns_n_with_what_it_sees_inside() {
    require_fuse!();
    require_ns_tools!("hexdump" => "Debian package bsdextrautils");
    // A segment of the daemon's own namespace, to compare the formats with.
    let host = SysvSeg::keyed(4096, 0o600);
    let m = Mount::new();
    let c = tree_container("tree");
    let seg = c.segs[0].clone();
    let n = c.n();
    let key = key_hex(seg.key);
    let holder = seg.holder.unwrap();

    // ls ns/: the container's namespace, by the number readlink /proc/PID/ns/ipc gives.
    let link = fs::read_link(format!("/proc/{}/ns/ipc", c.pid())).unwrap();
    assert_eq!(link.to_str().unwrap(), format!("ipc:[{n}]"));
    assert_ns_listed(&m, c.ns);
    let listed = m.ls("ns");
    assert!(
        listed.contains(&n) && listed.contains("index"),
        "`ls ns/` shows {listed:?}, not the container's {n} and index"
    );
    assert_has_entries(
        &c.p(m.path(), ""),
        &[
            "members",
            "container",
            "sysv",
            "posix",
            "by-key",
            "limits",
            "index",
            "index.json",
        ],
    );

    // ns/N/sysv/ lists exactly what ipcs lists inside.
    let inside = c.ipcs();
    assert_eq!(
        inside.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([seg.id]),
        "`ipcs -m` inside the container: its one segment"
    );
    assert_eq!(inside[&seg.id], key);
    assert_eq!(
        ids_in(&c.p(m.path(), "sysv")),
        BTreeSet::from([seg.id]),
        "`ls ns/{n}/sysv` must list what `nsenter --ipc ipcs -m` lists"
    );

    // The root's sysv/ is the daemon's own namespace: the container's key is nowhere there.
    assert!(
        !m.ls("by-key").contains(&key),
        "the root's by-key/ shows the container's segment {key}"
    );
    assert!(
        !read_text(&m.p("index")).contains(&key),
        "the root's index shows the container's segment {key}"
    );
    if m.ls_sysv().contains(&seg.id) {
        assert_ne!(
            read_fields(&m.sysv(seg.id, "stat")).get("key"),
            key,
            "the root's sysv/{} is the container's segment",
            seg.id
        );
    }
    assert!(m.ls_sysv().contains(&host.id), "the root's own segment");

    // stat: the root's fields, for the container's segment, pids as the machine numbers them.
    let stat_path = c.p(m.path(), &format!("sysv/{}/stat", seg.id));
    let stat = read_fields(&stat_path);
    let root_stat = read_fields(&m.sysv(host.id, "stat"));
    assert_eq!(
        stat.names(),
        root_stat.names(),
        "ns/{n}/sysv/{}/stat has the fields of a root stat",
        seg.id
    );
    assert_eq!(stat.get("kind"), "sysv");
    assert_eq!(stat.num("shmid"), seg.id as u64);
    assert_eq!(stat.get("key"), key);
    assert_eq!(stat.num("size"), 65536);
    assert_eq!(stat.get("mode"), "0600");
    assert_eq!(stat.num("uid"), u64::from(NOBODY));
    assert_eq!(stat.num("cuid"), u64::from(NOBODY));
    assert_eq!(stat.num("nattch"), 1, "the container's holder is attached");
    assert_ne!(
        seg.creator_host_pid, seg.creator_ns_pid,
        "the creator has another pid inside its pid namespace"
    );
    assert_eq!(
        stat.num("cpid"),
        u64::from(seg.creator_host_pid),
        "cpid must be the creator as the machine numbers it (inside it was {})",
        seg.creator_ns_pid
    );
    assert_eq!(
        stat.num("lpid"),
        u64::from(holder),
        "lpid: the holder, as the machine numbers it"
    );
    // What ipcs says from the host, in the container's IPC namespace (pids as the host's).
    let ipcs_p = sh_ok(&format!("nsenter -t {} --ipc ipcs -m -p", c.pid()));
    let row: Vec<&str> = ipcs_p
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|r| r.first() == Some(&seg.id.to_string().as_str()))
        .unwrap_or_else(|| panic!("no row for {} in {ipcs_p}", seg.id));
    assert_eq!(
        (stat.num("cpid").to_string(), stat.num("lpid").to_string()),
        (row[2].to_string(), row[3].to_string()),
        "cpid and lpid as `nsenter --ipc ipcs -m -p` shows them: {ipcs_p}"
    );

    // attached: the holder, by its pid on the machine.
    let attached = read_text(&c.p(m.path(), &format!("sysv/{}/attached", seg.id)));
    let pids = attached_pids(&attached);
    assert_eq!(
        pids,
        [holder.to_string()],
        "ns/{n}/sysv/{}/attached: {attached:?}",
        seg.id
    );

    // data: written inside by its owner, read through the mount ...
    let nsipc = q(nsipc_bin());
    let inside_text = "written inside the container";
    c.sh_ok(&format!(
        "setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {nsipc} write {} 0 '{inside_text}'",
        seg.id
    ));
    let data = c.p(m.path(), &format!("sysv/{}/data", seg.id));
    assert_eq!(fs::metadata(&data).unwrap().len(), 65536);
    let mut want = inside_text.as_bytes().to_vec();
    want.resize(64, 0);
    assert_eq!(
        hexdump(&data, 64),
        hexdump_of(&want),
        "hexdump -C of ns/{n}/sysv/{}/data",
        seg.id
    );
    // ... and written through the mount by root, read inside by its owner.
    let through = "written through shmfs";
    sh_ok(&format!(
        "printf '%s' '{through}' | dd of={} bs=4096 seek=1 conv=notrunc status=none",
        q(&data)
    ));
    let read_inside = c.sh_ok(&format!(
        "setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {nsipc} read {} 4096 {}",
        seg.id,
        through.len()
    ));
    assert_eq!(read_inside, through, "read inside the container");

    // posix/: the container's own /dev/shm.
    assert_eq!(
        m.ls(&format!("ns/{n}/posix")),
        BTreeSet::from(["obj".to_string()]),
        "ns/{n}/posix/ lists the container's /dev/shm"
    );
    let inside_bytes = c.sh_ok("cat /dev/shm/obj");
    assert_eq!(
        fs::read_to_string(c.p(m.path(), "posix/obj/data")).unwrap(),
        inside_bytes,
        "ns/{n}/posix/obj/data is the container's /dev/shm/obj"
    );
    let pstat = read_fields(&c.p(m.path(), "posix/obj/stat"));
    assert_eq!(pstat.get("kind"), "posix");
    assert_eq!(pstat.get("name"), "obj");
    assert_eq!(pstat.num("size"), inside_bytes.len() as u64);
    assert_eq!(pstat.get("mode"), "0640");
    assert_eq!(pstat.num("uid"), u64::from(NOBODY));

    // container: its hostname.
    let container = read_text(&c.p(m.path(), "container"));
    assert_eq!(
        field(&container, "hostname"),
        Some(c.hostname.as_str()),
        "ns/{n}/container: {container:?}"
    );
    assert_eq!(
        c.sh_ok("cat /proc/sys/kernel/hostname").trim(),
        c.hostname,
        "the container's own hostname"
    );

    // members: its processes, as the machine numbers them.
    let members_text = read_text(&c.p(m.path(), "members"));
    let mut lines = members_text.lines();
    assert_eq!(
        lines
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["PID", "COMMAND", "CONTAINER"]),
        "header of ns/{n}/members: {members_text:?}"
    );
    let members: Vec<(u32, String)> = lines
        .map(|l| {
            let mut f = l.split_whitespace();
            let pid = f.next().and_then(|p| p.parse().ok());
            let comm = f.next().unwrap_or_default().to_string();
            (
                pid.unwrap_or_else(|| panic!("ns/{n}/members line {l:?}")),
                comm,
            )
        })
        .collect();
    let pids: BTreeSet<u32> = members.iter().map(|(p, _)| *p).collect();
    let in_ns = processes_in(c.ns);
    assert_eq!(
        pids, in_ns,
        "ns/{n}/members must list the processes whose /proc/PID/ns/ipc is ipc:[{n}]"
    );
    assert!(pids.contains(&c.pid()) && pids.contains(&holder));
    assert!(
        members.contains(&(holder, NSIPC_COMM.to_string())),
        "the holder and its command in {members:?}"
    );

    // ns/index: one row for the namespace.
    let row = ns_index_row(m.path(), c.ns).unwrap_or_else(|| panic!("no row for {n} in ns/index"));
    assert_eq!(row["HOSTNAME"], c.hostname);
    assert_eq!(row["SEGMENTS"], "1");
    assert_eq!(row["BYTES"], "65536");
    assert_eq!(row["ORPHANS"], "0", "its segment is attached");
    assert_eq!(row["PROCS"], in_ns.len().to_string());
    let df: Vec<u64> = c
        .sh_ok("stat -f -c '%b %f %S' /dev/shm")
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(
        (row["SHM_USED"].as_str(), row["SHM_SIZE"].as_str()),
        (
            ((df[0] - df[1]) * df[2]).to_string().as_str(),
            (df[0] * df[2]).to_string().as_str()
        ),
        "SHM_USED and SHM_SIZE of ns/index: the container's /dev/shm as statfs gives it"
    );
    assert_eq!(row["SHM_SIZE"], (4u64 << 20).to_string());

    // by-key/, limits, index, index.json: the root's twins, for the container.
    assert_eq!(
        fs::read_link(c.p(m.path(), &format!("by-key/{key}")))
            .unwrap()
            .to_str()
            .unwrap(),
        format!("../sysv/{}", seg.id)
    );
    assert_eq!(
        fs::read_to_string(c.p(m.path(), &format!("by-key/{key}/stat"))).unwrap(),
        read_text(&stat_path),
        "by-key/{key}/stat leads to the segment's stat"
    );
    let limits = read_fields(&c.p(m.path(), "limits"));
    assert_eq!(limits.names(), read_fields(&m.p("limits")).names());
    assert_eq!(limits.num("segments"), 1);
    let index = read_text(&c.p(m.path(), "index"));
    let rows: Vec<Vec<&str>> = index
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        index
            .lines()
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        read_text(&m.p("index"))
            .lines()
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        "ns/{n}/index has the root index's header"
    );
    assert_eq!(rows.len(), 2, "ns/{n}/index: {index}");
    let owner = user_name(NOBODY).unwrap_or_else(|| NOBODY.to_string());
    let id = seg.id.to_string();
    let sysv_row = rows
        .iter()
        .find(|r| r[..2] == ["sysv", id.as_str()])
        .unwrap_or_else(|| panic!("no row for sysv {id} in ns/{n}/index: {index}"));
    assert_eq!(
        sysv_row[2..7],
        [key.as_str(), "65536", "0600", owner.as_str(), "1"],
        "ns/{n}/index: {index}"
    );
    assert!(
        rows.iter().any(|r| r[..3] == ["posix", "obj", "-"]),
        "ns/{n}/index: {index}"
    );
    let json: Value = serde_json::from_str(&read_text(&c.p(m.path(), "index.json"))).unwrap();
    let json = json.as_array().expect("index.json is an array");
    assert_eq!(json.len(), 2, "ns/{n}/index.json: {json:?}");
    assert!(json.iter().any(|e| e["kind"] == "sysv"
        && e["shmid"] == seg.id
        && e["key"] == u64::from(seg.key as u32)
        && e["uid"] == NOBODY));
    assert!(
        json.iter()
            .any(|e| e["kind"] == "posix" && e["name"] == "obj")
    );
}

#[test]
fn rmdir_in_ns_n_removes_inside_the_container_and_nothing_else() {
    require_fuse!();
    require_ns_tools!("hexdump" => "Debian package bsdextrautils");
    let host = SysvSeg::keyed(4096, 0o600);
    let m = Mount::new();
    let c = NsCtr::start(&CtrSpec {
        hostname: test_hostname("rmdir"),
        shm_size: Some("1m".into()),
        posix: vec![("gone".into(), b"x".to_vec(), 0o600, Some(NOBODY))],
        segs: vec![
            SegSpec::new(4096, 0o600).owner(NOBODY),
            SegSpec::new(8192, 0o600).owner(NOBODY),
        ],
        extra: String::new(),
    });
    let n = c.n();
    assert_ns_listed(&m, c.ns);
    let (a, b) = (c.segs[0].id, c.segs[1].id);
    assert_eq!(
        c.ipcs().keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b])
    );
    let r = sh(&format!("rmdir {}", q(c.p(m.path(), &format!("sysv/{a}")))));
    assert!(r.ok(), "rmdir ns/{n}/sysv/{a} as root: {r:?}");
    assert_eq!(
        c.ipcs().keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([b]),
        "`ipcs -m` inside the container after rmdir ns/{n}/sysv/{a}"
    );
    assert_eq!(ids_in(&c.p(m.path(), "sysv")), BTreeSet::from([b]));
    assert!(ipc_stat(host.id).is_ok(), "the host's segment is untouched");

    let r = sh(&format!("rmdir {}", q(c.p(m.path(), "posix/gone"))));
    assert!(r.ok(), "rmdir ns/{n}/posix/gone as root: {r:?}");
    assert_eq!(
        c.sh_ok("ls -A /dev/shm"),
        "",
        "the container's /dev/shm after rmdir ns/{n}/posix/gone"
    );
}

/// Two containers: each has its own row in `ns/index`, with its own hostname and count.
#[test]
fn ns_index_has_one_row_per_container() {
    require_fuse!();
    require_ns_tools!("hexdump" => "Debian package bsdextrautils");
    let m = Mount::new();
    let one = NsCtr::start(&CtrSpec {
        hostname: test_hostname("one"),
        shm_size: Some("1m".into()),
        segs: vec![SegSpec::new(4096, 0o600)],
        ..Default::default()
    });
    let three = NsCtr::start(&CtrSpec {
        hostname: test_hostname("three"),
        shm_size: Some("2m".into()),
        segs: vec![
            SegSpec::new(4096, 0o600),
            SegSpec::new(8192, 0o644).owner(NOBODY),
            SegSpec::new(12288, 0o600).hold(),
        ],
        ..Default::default()
    });
    assert_ns_listed(&m, one.ns);
    for (c, segments, bytes, orphans, size) in [
        (&one, "1", "4096", "1", 1u64 << 20),
        (&three, "3", "24576", "2", 2 << 20),
    ] {
        let row = ns_index_row(m.path(), c.ns)
            .unwrap_or_else(|| panic!("no row for {} in ns/index", c.ns));
        assert_eq!(row["HOSTNAME"], c.hostname, "{row:?}");
        assert_eq!(row["SEGMENTS"], segments, "{row:?}");
        assert_eq!(row["BYTES"], bytes, "{row:?}");
        assert_eq!(row["ORPHANS"], orphans, "{row:?}");
        assert_eq!(row["SHM_SIZE"], size.to_string(), "{row:?}");
        assert_eq!(
            row["PROCS"],
            processes_in(c.ns).len().to_string(),
            "{row:?}"
        );
    }
    // The daemon's own namespace has its row too.
    let own = ipc_ns_of(m.pid());
    assert!(
        ns_index_row(m.path(), own).is_some(),
        "no row for the daemon's own namespace {own} in ns/index"
    );
}

/// `metrics.prom` has `shmfs_namespace_segments{namespace="N",...}` for each container, with
/// its count of segments and its hostname among the labels.
#[test]
fn metrics_count_each_containers_segments() {
    require_fuse!();
    require_ns_tools!("hexdump" => "Debian package bsdextrautils");
    let m = Mount::new();
    let one = NsCtr::start(&CtrSpec {
        hostname: test_hostname("metrics-one"),
        shm_size: Some("1m".into()),
        segs: vec![SegSpec::new(65536, 0o600).owner(NOBODY)],
        ..Default::default()
    });
    let two = NsCtr::start(&CtrSpec {
        hostname: test_hostname("metrics-two"),
        shm_size: Some("1m".into()),
        segs: vec![SegSpec::new(4096, 0o600), SegSpec::new(4096, 0o600)],
        ..Default::default()
    });
    assert_ns_listed(&m, one.ns);
    let text = read_text(&m.p("metrics.prom"));
    for (c, want) in [(&one, "1"), (&two, "2")] {
        let label = format!("namespace=\"{}\"", c.ns);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("shmfs_namespace_segments{") && l.contains(&label))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one shmfs_namespace_segments series with {label} in metrics.prom: {lines:?}\n{text}"
        );
        let line = lines[0];
        assert_eq!(
            line.rsplit_once(' ').map(|(_, v)| v),
            Some(want),
            "shmfs_namespace_segments of {}: {line}",
            c.ns
        );
        assert!(
            line.contains(&format!("=\"{}\"", c.hostname)),
            "the series of {} carries the container's hostname {}: {line}",
            c.ns,
            c.hostname
        );
    }
    assert!(
        !text
            .lines()
            .filter(
                |l| l.starts_with("shmfs_sysv_segment_size_bytes{") && !l.contains("namespace=\"")
            )
            .any(|l| l.contains(&key_hex(one.segs[0].key))),
        "a root series (no namespace label) names the container's segment"
    );
}
