//! Every report covers every kind (issue 24): `index` and `index.json` have rows of kind
//! `sysv`, `posix`, `sem`, `msg` and `mqueue` for the objects the test made; `limits` names the
//! semaphore and message queue limits as their sysctls (`semmsl semmns semopm semmni semvmx
//! msgmax msgmnb msgmni`) with the kernel's values; `metrics.prom` has series for each set and
//! queue (and passes `promtool check metrics`); and `ns/N/` of a container shows its own
//! semaphore sets and message queues and not the host's, while the host's `sem/` and `msg/`
//! show none of the container's.
//!
//! Needs root, /dev/fuse, util-linux, `cc` (for `ipcq` and `nsipc`) and `promtool` (Debian
//! package prometheus); without them skipped, or failed when `CI` is set.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::process::Command;

use serde_json::Value;

use common::msg::*;
use common::*;

/// A semaphore set of this test; removed (IPC_RMID) when dropped.
struct SemSet {
    id: i32,
    key: i32,
}

impl SemSet {
    /// A set of `nsems` semaphores with a fresh random key.
    fn keyed(nsems: i32, mode: u32) -> SemSet {
        for _ in 0..100 {
            let key = random_key();
            let id =
                unsafe { libc::semget(key, nsems, libc::IPC_CREAT | libc::IPC_EXCL | mode as i32) };
            if id >= 0 {
                return SemSet { id, key };
            }
            let e = io::Error::last_os_error();
            assert_eq!(errno(&e), libc::EEXIST, "semget: {e}");
        }
        panic!("could not find a free random key");
    }
}

impl Drop for SemSet {
    fn drop(&mut self) {
        unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) };
    }
}

/// A table file's rows as column -> value (white-space separated, as `index` is when no cell
/// holds a space).
fn rows_of(text: &str) -> Vec<BTreeMap<String, String>> {
    parse_table(text, "index").1
}

/// The row of `index` of kind `kind` and id `id`.
#[track_caller]
fn row<'a>(
    rows: &'a [BTreeMap<String, String>],
    kind: &str,
    id: &str,
    text: &str,
) -> &'a BTreeMap<String, String> {
    let mut found = rows.iter().filter(|r| r["KIND"] == kind && r["ID"] == id);
    let r = found
        .next()
        .unwrap_or_else(|| panic!("no {kind} row for {id} in index:\n{text}"));
    assert!(found.next().is_none(), "two {kind} rows for {id}");
    r
}

#[test]
fn index_and_index_json_have_a_row_of_every_kind() {
    require_fuse!();
    require_tools!("cc" => "Debian package gcc");
    let m = Mount::new();
    let seg = SysvSeg::keyed(8192, 0o600);
    create_posix(m.shm_dir(), "shmfs-t-obj", 0o640, b"twelve bytes");
    let set = SemSet::keyed(3, 0o640);
    let queue = MsgQueue::keyed(0o620);
    queue.send(1, b"0123456789");
    queue.send(2, b"ab");
    let mq = PosixMq::create(0o604, 5, 64);
    mq.send(b"x", 0);
    mq.send(b"y", 0);

    let text = read_text(&m.p("index"));
    let (header, rows) = parse_table(&text, "index");
    assert_eq!(
        header,
        [
            "KIND", "ID", "KEY", "SIZE", "MODE", "OWNER", "NATTCH", "RSS"
        ],
        "the header of index"
    );
    let r = row(&rows, "sysv", &seg.id.to_string(), &text);
    assert_eq!(
        (r["KEY"].as_str(), r["SIZE"].as_str()),
        (key_hex(seg.key).as_str(), "8192")
    );
    let r = row(&rows, "posix", "shmfs-t-obj", &text);
    assert_eq!((r["SIZE"].as_str(), r["MODE"].as_str()), ("12", "0640"));
    let r = row(&rows, "sem", &set.id.to_string(), &text);
    assert_eq!(
        [
            &r["KEY"],
            &r["SIZE"],
            &r["MODE"],
            &r["OWNER"],
            &r["NATTCH"],
            &r["RSS"]
        ],
        [&key_hex(set.key), "3", "0640", "root", "-", "-"],
        "the sem row (SIZE: nsems)"
    );
    let r = row(&rows, "msg", &queue.id.to_string(), &text);
    assert_eq!(
        [
            &r["KEY"],
            &r["SIZE"],
            &r["MODE"],
            &r["OWNER"],
            &r["NATTCH"],
            &r["RSS"]
        ],
        [&key_hex(queue.key), "12", "0620", "root", "-", "-"],
        "the msg row (SIZE: cbytes)"
    );
    let r = row(&rows, "mqueue", &mq.name, &text);
    assert_eq!(
        [
            &r["KEY"],
            &r["SIZE"],
            &r["MODE"],
            &r["OWNER"],
            &r["NATTCH"],
            &r["RSS"]
        ],
        ["-", "2", "0604", "root", "-", "-"],
        "the mqueue row (SIZE: curmsgs)"
    );
    let kinds: BTreeSet<&str> = rows.iter().map(|r| r["KIND"].as_str()).collect();
    assert!(
        kinds.is_subset(&["sysv", "posix", "sem", "msg", "mqueue"].into()),
        "KIND values of index: {kinds:?}"
    );

    let json: Value = serde_json::from_str(&read_text(&m.p("index.json"))).expect("index.json");
    let all = json.as_array().expect("index.json is an array");
    let find = |kind: &str, field: &str, value: Value| -> &Value {
        all.iter()
            .find(|o| o["kind"] == kind && o[field] == value)
            .unwrap_or_else(|| panic!("no {kind} object with {field} {value} in {json:#}"))
    };
    let o = find("sysv", "shmid", seg.id.into());
    assert_eq!(o["key"], seg.key as u32);
    find("posix", "name", "shmfs-t-obj".into());
    let o = find("sem", "semid", set.id.into());
    assert_eq!(
        (&o["key"], &o["nsems"], &o["size"], &o["mode_octal"]),
        (
            &Value::from(set.key as u32),
            &Value::from(3),
            &Value::from(3),
            &Value::from("0640")
        )
    );
    let o = find("msg", "msqid", queue.id.into());
    let qbytes = queue.stat().msg_qbytes;
    assert_eq!(
        (
            &o["key"],
            &o["qnum"],
            &o["cbytes"],
            &o["qbytes"],
            &o["size"]
        ),
        (
            &Value::from(queue.key as u32),
            &Value::from(2),
            &Value::from(12),
            &Value::from(qbytes),
            &Value::from(12)
        )
    );
    let o = find("mqueue", "name", mq.name.as_str().into());
    assert_eq!(
        (
            &o["maxmsg"],
            &o["msgsize"],
            &o["curmsgs"],
            &o["size"],
            &o["mode_octal"]
        ),
        (
            &Value::from(5),
            &Value::from(64),
            &Value::from(2),
            &Value::from(2),
            &Value::from("0604")
        )
    );
    for o in all {
        let kind = o["kind"].as_str().expect("every object has a kind");
        assert!(
            ["sysv", "posix", "sem", "msg", "mqueue"].contains(&kind),
            "kind {kind:?} in index.json"
        );
    }
}

#[test]
fn limits_name_the_ipc_limits_as_their_sysctls() {
    require_fuse!();
    let m = Mount::new();
    let f = read_fields(&m.p("limits"));
    let sem = fs::read_to_string("/proc/sys/kernel/sem").unwrap();
    let sem: Vec<&str> = sem.split_whitespace().collect();
    assert_eq!(sem.len(), 4, "/proc/sys/kernel/sem: {sem:?}");
    for (name, want) in [
        ("semmsl", sem[0]),
        ("semmns", sem[1]),
        ("semopm", sem[2]),
        ("semmni", sem[3]),
        ("semvmx", "32767"),
    ] {
        assert_eq!(f.get(name), want, "`{name}:` of limits");
    }
    for name in ["msgmax", "msgmnb", "msgmni"] {
        assert_eq!(
            f.num(name),
            kernel_sysctl(name),
            "`{name}:` of limits against /proc/sys/kernel/{name}"
        );
    }
    for (name, file) in [
        ("mqueue_queues_max", "queues_max"),
        ("mqueue_msg_max", "msg_max"),
        ("mqueue_msgsize_max", "msgsize_max"),
    ] {
        let want = fs::read_to_string(format!("/proc/sys/fs/mqueue/{file}")).unwrap();
        assert_eq!(f.get(name), want.trim(), "`{name}:` of limits");
    }
    // The use, as ipcs counts it (others' tests come and go: retried).
    let set = SemSet::keyed(2, 0o600);
    let queue = MsgQueue::private(0o600);
    queue.send(1, b"abc");
    let names = read_fields(&m.p("limits"));
    for name in [
        "sem_sets",
        "semaphores",
        "msg_queues",
        "messages",
        "msg_bytes",
        "mqueues",
    ] {
        names.num(name);
    }
    assert!(names.num("sem_sets") >= 1 && names.num("semaphores") >= 2);
    assert!(names.num("msg_queues") >= 1 && names.num("messages") >= 1);
    assert!(names.num("msg_bytes") >= 3);
    retry(20, || {
        let f = read_fields(&m.p("limits"));
        let sets = fs::read_to_string("/proc/sysvipc/sem")
            .unwrap()
            .lines()
            .count() as u64
            - 1;
        let queues = fs::read_to_string("/proc/sysvipc/msg")
            .unwrap()
            .lines()
            .count() as u64
            - 1;
        if (f.num("sem_sets"), f.num("msg_queues")) == (sets, queues) {
            Ok(())
        } else {
            Err(format!(
                "sem_sets {} msg_queues {} against /proc/sysvipc: {sets} {queues}",
                f.num("sem_sets"),
                f.num("msg_queues")
            ))
        }
    });
    drop((set, queue));
}

/// The value of the series `name{...}` whose labels include every `(label, value)`.
#[track_caller]
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> String {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "series {name} with {labels:?} in metrics.prom: {found:?}"
    );
    found[0].rsplit(' ').next().unwrap().to_string()
}

#[test]
fn metrics_have_series_for_every_set_and_queue_and_pass_promtool() {
    require_fuse!();
    require_tools!(
        "promtool" => "Debian package prometheus",
        "cc" => "Debian package gcc",
    );
    let m = Mount::new();
    let set = SemSet::keyed(3, 0o600);
    let queue = MsgQueue::keyed(0o600);
    queue.send(1, b"0123456789");
    queue.send(2, b"ab");
    let waiting = Blocked::receiver(None, queue.id, 99, 16);
    waiting.wait_blocked();
    let mq = PosixMq::create(0o600, 5, 64);
    mq.send(b"x", 0);

    let text = read_text(&m.p("metrics.prom"));
    let semid = set.id.to_string();
    let semkey = key_hex(set.key);
    let s = [("semid", semid.as_str()), ("key", semkey.as_str())];
    assert_eq!(series(&text, "shmfs_sem_set_semaphores", &s), "3");
    assert_eq!(series(&text, "shmfs_sem_set_waiters", &s), "0");
    series(&text, "shmfs_sem_set_last_operation_timestamp_seconds", &s);
    series(&text, "shmfs_sem_set_last_change_timestamp_seconds", &s);

    let msqid = queue.id.to_string();
    let msgkey = key_hex(queue.key);
    let ds = queue.stat();
    let s = [("msqid", msqid.as_str()), ("key", msgkey.as_str())];
    assert_eq!(series(&text, "shmfs_msg_queue_messages", &s), "2");
    assert_eq!(series(&text, "shmfs_msg_queue_bytes", &s), "12");
    assert_eq!(
        series(&text, "shmfs_msg_queue_limit_bytes", &s),
        ds.msg_qbytes.to_string()
    );
    assert_eq!(series(&text, "shmfs_msg_queue_waiters", &s), "1");
    assert_eq!(
        series(&text, "shmfs_msg_queue_last_send_timestamp_seconds", &s),
        ds.msg_stime.to_string()
    );
    assert_eq!(
        series(&text, "shmfs_msg_queue_last_receive_timestamp_seconds", &s),
        "0"
    );
    series(&text, "shmfs_msg_queue_last_change_timestamp_seconds", &s);

    let s = [("name", mq.name.as_str())];
    assert_eq!(series(&text, "shmfs_mqueue_messages", &s), "1");
    assert_eq!(series(&text, "shmfs_mqueue_messages_limit", &s), "5");
    assert_eq!(
        series(&text, "shmfs_mqueue_message_size_limit_bytes", &s),
        "64"
    );

    let sem = fs::read_to_string("/proc/sys/kernel/sem").unwrap();
    let semmni = sem.split_whitespace().nth(3).unwrap().to_string();
    assert_eq!(series(&text, "shmfs_sem_sets_limit", &[]), semmni);
    assert_eq!(
        series(&text, "shmfs_msg_queues_limit", &[]),
        kernel_sysctl("msgmni").to_string()
    );
    for total in [
        "shmfs_sem_sets",
        "shmfs_sem_semaphores",
        "shmfs_sem_semaphores_limit",
        "shmfs_msg_queues",
        "shmfs_msg_messages",
        "shmfs_msg_bytes",
    ] {
        let v: u64 = series(&text, total, &[]).parse().expect(total);
        assert!(v >= 1, "{total} counts the test's objects: {v}");
    }

    let out = Command::new(find_tool("promtool").unwrap())
        .args(["check", "metrics"])
        .stdin(fs::File::open(m.p("metrics.prom")).unwrap())
        .output()
        .expect("run promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "`promtool check metrics < metrics.prom`: {} {said}",
        out.status
    );
    // Looking moved nothing of the queue.
    assert_eq!(queue.stat().msg_qnum, 2);
}

/// `Semaphore id: N` / `Message queue id: N` of an ipcmk run inside a container, from a file.
fn ipcmk_id(path: &std::path::Path) -> i32 {
    let out = fs::read_to_string(path).unwrap();
    out.lines()
        .find_map(|l| {
            l.rsplit_once("id: ")
                .map(|(_, n)| n.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no id in ipcmk output {out:?}"))
}

/// The `key:` of `DIR/ID/stat` for every entry of a `sem/` or `msg/` directory (entries gone
/// meanwhile are left out).
fn keys_in(dir: &std::path::Path) -> BTreeMap<String, String> {
    ls(dir)
        .into_iter()
        .filter_map(|id| {
            let text = fs::read_to_string(dir.join(&id).join("stat")).ok()?;
            let key = Fields::parse(&text).get("key").to_string();
            Some((id, key))
        })
        .collect()
}

#[test]
fn a_containers_ns_dir_shows_its_own_sets_and_queues() {
    require_fuse!();
    require_ns_tools!();
    // The host's own set and queue, with keys of the test's.
    let host_set = SemSet::keyed(2, 0o600);
    let host_queue = MsgQueue::keyed(0o600);
    let m = Mount::new();
    let c = NsCtr::start(&CtrSpec {
        hostname: test_hostname("ipcrep"),
        shm_size: Some("1m".into()),
        posix: vec![],
        segs: vec![],
        // A new IPC namespace: ipcmk's random keys cannot collide there.
        extra: "ipcmk -S 3 -p 0640 > \"$DIR/sem\"\n\
                ipcmk -Q -p 0600 > \"$DIR/msg\"\n\
                ipcs -s > \"$DIR/ipcs-s\"\n\
                ipcs -q > \"$DIR/ipcs-q\"\n"
            .into(),
    });
    let semid = ipcmk_id(&c.container.dir().join("sem"));
    let msqid = ipcmk_id(&c.container.dir().join("msg"));
    let key_of = |file: &str, id: i32| -> String {
        let out = fs::read_to_string(c.container.dir().join(file)).unwrap();
        out.lines()
            .filter(|l| l.starts_with("0x"))
            .find(|l| l.split_whitespace().nth(1) == Some(&id.to_string()))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no row for {id} in {file}: {out:?}"))
            .to_string()
    };
    let c_sem_key = key_of("ipcs-s", semid);
    let c_msg_key = key_of("ipcs-q", msqid);
    assert_ns_listed(&m, c.ns);

    // ns/N/sem and ns/N/msg: the container's, and nothing of the host's.
    let sems = keys_in(&c.p(m.path(), "sem"));
    assert_eq!(
        sems,
        [(semid.to_string(), c_sem_key.clone())].into(),
        "ns/{}/sem: (id, key) of every set",
        c.n()
    );
    let msgs = keys_in(&c.p(m.path(), "msg"));
    assert_eq!(
        msgs,
        [(msqid.to_string(), c_msg_key.clone())].into(),
        "ns/{}/msg: (id, key) of every queue",
        c.n()
    );
    let stat = read_fields(&c.p(m.path(), &format!("sem/{semid}/stat")));
    assert_eq!((stat.num("nsems"), stat.get("mode")), (3, "0640"));
    let index = read_text(&c.p(m.path(), "index"));
    let rows = rows_of(&index);
    row(&rows, "sem", &semid.to_string(), &index);
    row(&rows, "msg", &msqid.to_string(), &index);

    // The host's sem/ and msg/: the host's, none of the container's.
    let host_sems = keys_in(&m.p("sem"));
    assert_eq!(
        host_sems.get(&host_set.id.to_string()),
        Some(&key_hex(host_set.key)),
        "the host's sem/ has the host's set"
    );
    assert!(
        !host_sems.values().any(|k| *k == c_sem_key),
        "the host's sem/ shows the container's set {c_sem_key}: {host_sems:?}"
    );
    let host_msgs = keys_in(&m.p("msg"));
    assert_eq!(
        host_msgs.get(&host_queue.id.to_string()),
        Some(&key_hex(host_queue.key)),
        "the host's msg/ has the host's queue"
    );
    assert!(
        !host_msgs.values().any(|k| *k == c_msg_key),
        "the host's msg/ shows the container's queue {c_msg_key}: {host_msgs:?}"
    );
}
