//! System V message queues as `msg/ID/` (issue 24): `stat` has every field `ipcs -q -i` shows
//! (qbytes included), `queue` lists INDEX TYPE SIZE, `messages/N` are the messages' bytes
//! (read with MSG_COPY, so nothing moves: stime, rtime, lspid, lrpid, qnum and cbytes stay as
//! they were, and the messages are still received in order), `waiters` shows blocked senders
//! and receivers (with `+N hidden` for who may not trace them), `perm` changes mode and qbytes
//! as IPC_SET allows the caller, `rmdir` is IPC_RMID with the kernel's rules, `queue` and
//! `messages/` need read permission while `stat` does not, and a listing stops at 1,024
//! messages (`+N more`).
//!
//! Needs root, /dev/fuse, util-linux (`ipcmk`, `ipcs`, `setpriv`), `hexdump` and `cc` (for
//! `ipcq`, tests/common/c/ipcq.c); without them skipped, or failed when `CI` is set. Every
//! test makes and removes its own queues (private or random keys).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::msg::*;
use common::*;

/// The owner the tests give queues to, and someone else.
const OWNER: u32 = 54321;
const OTHER: u32 = 54322;

/// A mount other users may use.
fn mount() -> Mount {
    Mount::builder().option("allow_other").mount()
}

/// `MNT/msg/ID/<rel>` (`rel` may be empty).
fn qp(m: &Mount, id: i32, rel: &str) -> PathBuf {
    let d = m.p("msg").join(id.to_string());
    if rel.is_empty() { d } else { d.join(rel) }
}

/// The tools these tests run.
macro_rules! require_msg_tools {
    () => {
        require_tools!(
            "ipcmk" => "Debian package util-linux",
            "ipcs" => "Debian package util-linux",
            "setpriv" => "Debian package util-linux",
            "hexdump" => "Debian package bsdextrautils",
            "cc" => "Debian package gcc",
        );
    };
}

/// A table file's rows (split on white space), its header checked, and the lines after the
/// rows that begin with `+` (`+N more`, `+N hidden`).
#[track_caller]
fn table(text: &str, header: &[&str]) -> (Vec<Vec<String>>, Vec<String>) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let head: Vec<&str> = first.split_whitespace().take(header.len() + 1).collect();
    assert_eq!(head, header, "header of {:?}", short(text));
    let mut rows = Vec::new();
    let mut tail = Vec::new();
    for l in lines {
        if l.starts_with('+') {
            tail.push(l.to_string());
        } else {
            assert!(
                tail.is_empty(),
                "a row after the `+` lines in {:?}",
                short(text)
            );
            let row: Vec<String> = l.split_whitespace().map(String::from).collect();
            assert_eq!(row.len(), header.len(), "row {l:?} of {:?}", short(text));
            rows.push(row);
        }
    }
    (rows, tail)
}

/// At most the first 600 characters of a text, for a failure's message.
fn short(text: &str) -> String {
    match text.char_indices().nth(600) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// `hexdump -C` of `bytes`, for comparison.
fn hexdump_of(bytes: &[u8]) -> String {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    sh_ok(&format!("hexdump -C {}", q(f.path())))
}

/// Asserts that a shell command failed with the message of `errno` (as `strerror` says it).
#[track_caller]
fn assert_failed_with(r: &Run, errnos: &[i32], what: &str) {
    let names: Vec<String> = errnos.iter().map(|e| errno_name(*e)).collect();
    let said = |e: i32| {
        io::Error::from_raw_os_error(e)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap()
            .to_string()
    };
    assert!(
        !r.ok() && errnos.iter().any(|e| r.stderr.contains(&said(*e))),
        "{what}: expected {}, got {r:?}",
        names.join(" or ")
    );
}

/// Reads the table of `msg/ID/waiters` until `found` holds of it (up to 10 s): the daemon
/// finds waiters in /proc, where a task shows only once it sleeps.
fn waiters_until(path: &Path, uid: Option<u32>, found: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let text = match uid {
            None => read_text(path),
            Some(id) => {
                let r = sh_as(id, &format!("cat {}", q(path)));
                assert!(r.ok(), "uid {id}: cat {}: {r:?}", path.display());
                r.stdout_str()
            }
        };
        if found(&text) || start.elapsed() > Duration::from_secs(10) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_ipcmk_queue_shows_its_stat_queue_and_messages() {
    require_fuse!();
    require_msg_tools!();
    let m = mount();
    let queue = MsgQueue::ipcmk(0o644);
    let first = b"first\0message \xff\x01 of type 7".to_vec();
    let second = pattern(300, 9);
    queue.send(7, &first);
    queue.send(2, &second);
    let id = queue.id;

    // stat: every field ipcs -q -i shows, as IPC_STAT has it.
    let stat = read_fields(&qp(&m, id, "stat"));
    let ipcs = ipcs_q_i(id);
    let ds = queue.stat();
    assert_eq!(
        stat.names(),
        [
            "kind", "msqid", "key", "mode", "uid", "gid", "cuid", "cgid", "cbytes", "qbytes",
            "qnum", "lspid", "lrpid", "stime", "rtime", "ctime"
        ],
        "the fields of msg/{id}/stat"
    );
    assert_eq!(stat.get("kind"), "msg");
    assert_eq!(stat.get("msqid"), id.to_string());
    assert_eq!(stat.get("key"), key_hex(queue.key));
    assert_eq!(
        stat.get("mode"),
        format!("0{}", ipcs["mode"].trim_start_matches('0'))
    );
    assert_eq!(stat.get("mode"), "0644");
    for name in [
        "uid", "gid", "cuid", "cgid", "cbytes", "qbytes", "qnum", "lspid", "lrpid",
    ] {
        assert_eq!(
            stat.get(name),
            ipcs[name],
            "`{name}:` of msg/{id}/stat against `ipcs -q -i {id}`"
        );
    }
    assert_eq!(
        stat.num("qbytes"),
        ds.msg_qbytes,
        "qbytes as IPC_STAT has it"
    );
    assert_eq!(stat.num("qnum"), 2);
    assert_eq!(stat.num("cbytes"), (first.len() + second.len()) as u64);
    assert_eq!(stat.get("lspid"), std::process::id().to_string());
    for (name, ipcs_name, value) in [
        ("stime", "send_time", ds.msg_stime),
        ("rtime", "rcv_time", ds.msg_rtime),
        ("ctime", "change_time", ds.msg_ctime),
    ] {
        assert_eq!(stat.get(name), value.to_string(), "`{name}:` as IPC_STAT");
        assert_eq!(
            ipcs_time(value),
            ipcs[ipcs_name],
            "`{name}` as ipcs says it"
        );
    }

    // queue: INDEX TYPE SIZE, a row per message in queue order.
    let text = read_text(&qp(&m, id, "queue"));
    let (rows, tail) = table(&text, &["INDEX", "TYPE", "SIZE"]);
    assert_eq!(
        rows,
        [
            ["0", "7", &first.len().to_string()],
            ["1", "2", &second.len().to_string()]
        ],
        "msg/{id}/queue: {text:?}"
    );
    assert!(tail.is_empty(), "msg/{id}/queue: {text:?}");

    // messages/N: the bytes, exactly.
    assert_eq!(
        m.ls(&format!("msg/{id}/messages")),
        ["0", "1"].map(String::from).into()
    );
    for (n, bytes) in [(0, &first), (1, &second)] {
        let path = qp(&m, id, &format!("messages/{n}"));
        assert_eq!(
            sh_ok(&format!("hexdump -C {}", q(&path))),
            hexdump_of(bytes),
            "hexdump -C msg/{id}/messages/{n}"
        );
        let r = sh(&format!("cat {}", q(&path)));
        assert!(r.ok(), "cat msg/{id}/messages/{n}: {r:?}");
        assert_eq!(&r.stdout, bytes, "cat msg/{id}/messages/{n}");
        assert_eq!(&fs::read(&path).unwrap(), bytes, "read(2) of messages/{n}");
    }
    let past = qp(&m, id, "messages/2");
    assert_errno(fs::metadata(&past), libc::ENOENT, "stat msg/ID/messages/2");
    assert_errno(
        fs::File::open(&past),
        libc::ENOENT,
        "open msg/ID/messages/2",
    );
    let r = sh(&format!("cat {}", q(&past)));
    assert_failed_with(&r, &[libc::ENOENT], "cat msg/ID/messages/2");

    // by-key/msg.0xKEY leads to the queue.
    let link = m.p(&format!("by-key/msg.{}", key_hex(queue.key)));
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new(&format!("../msg/{id}")),
        "by-key/msg.0xKEY"
    );
    assert_eq!(read_fields(&link.join("stat")).get("msqid"), id.to_string());

    // The messages are still there, in order.
    assert_eq!(queue.receive(0).unwrap(), (7, first));
    assert_eq!(queue.receive(0).unwrap(), (2, second));
}

#[test]
fn looking_is_not_touching() {
    require_fuse!();
    require_msg_tools!();
    let m = mount();
    let queue = MsgQueue::keyed(0o640);
    let id = queue.id;
    // lrpid and lspid of another process than this one, which would show a touch by it.
    queue.send(5, b"taken");
    let recv = Blocked::receiver(None, id, 5, 64);
    assert_eq!(
        recv.next_line(MOUNT_TIMEOUT).as_deref(),
        Some("received 5 5"),
        "ipcq recv took the message"
    );
    let messages: Vec<(i64, Vec<u8>)> = vec![
        (1, b"one".to_vec()),
        (9, pattern(100, 3)),
        (3, vec![b'x'; 10]),
    ];
    queue.send(1, &messages[0].1);
    queue.send(9, &messages[1].1);
    let send = Blocked::sender(None, id, 3, 10);
    assert_eq!(send.next_line(MOUNT_TIMEOUT).as_deref(), Some("sent"));
    drop((recv, send));
    // A touch now would move stime or rtime to a later second.
    std::thread::sleep(Duration::from_millis(1100));
    let before = queue.evidence();
    assert_eq!(before.qnum, 3);
    assert!(before.lspid != 0 && before.lspid != std::process::id() as i32);
    assert!(before.lrpid != 0 && before.lrpid != std::process::id() as i32);

    let dir = qp(&m, id, "");
    for _ in 0..2 {
        for file in ["stat", "perm", "queue", "waiters"] {
            read_text(&dir.join(file));
        }
        for n in 0..3 {
            fs::read(dir.join(format!("messages/{n}"))).unwrap();
        }
        assert_errno(
            fs::read(dir.join("messages/3")),
            libc::ENOENT,
            "read messages/3",
        );
        read_text(&m.p(&format!("by-key/msg.{}/queue", key_hex(queue.key))));
        for ls in [
            format!("ls -l {}", q(&dir)),
            format!("ls -l {}", q(dir.join("messages"))),
            format!("ls -l {}", q(m.p("msg"))),
            format!("ls -lL {}", q(m.p("by-key"))),
            format!("stat {}/* {}/messages/*", q(&dir), q(&dir)),
            format!("cat {}/messages/* > /dev/null", q(&dir)),
        ] {
            sh_ok(&ls);
        }
        for report in ["index", "index.json", "limits", "metrics.prom"] {
            read_text(&m.p(report));
        }
        // Another user's reads too (the queue is 0640: queue and messages are refused).
        let r = sh_as(OTHER, &format!("cat {}/* {}/messages/*", q(&dir), q(&dir)));
        assert!(!r.ok(), "uid {OTHER} reading a 0640 queue: {r:?}");
    }
    assert_eq!(
        queue.evidence(),
        before,
        "stime, rtime, lspid, lrpid, qnum, cbytes of IPC_STAT after reading every file"
    );
    // stat still says what IPC_STAT says.
    let stat = read_fields(&dir.join("stat"));
    assert_eq!(stat.get("lspid"), before.lspid.to_string());
    assert_eq!(stat.get("lrpid"), before.lrpid.to_string());
    assert_eq!(stat.get("stime"), before.stime.to_string());
    assert_eq!(stat.get("rtime"), before.rtime.to_string());
    // Every message is still received, in order.
    for (mtype, bytes) in messages {
        assert_eq!(queue.receive(0).unwrap(), (mtype, bytes));
    }
    assert_errno(
        queue.receive(0),
        libc::ENOMSG,
        "the queue is empty after three receives",
    );
}

#[test]
fn waiters_show_blocked_receivers_and_senders() {
    require_fuse!();
    require_msg_tools!();
    let m = mount();
    let queue = MsgQueue::private(0o666);
    let id = queue.id;
    let waiters = qp(&m, id, "waiters");
    let header = ["PID", "TID", "COMMAND", "OP", "TYPE", "SIZE"];
    let (rows, tail) = table(&read_text(&waiters), &header);
    assert!(rows.is_empty() && tail.is_empty(), "no waiters yet");

    // A receiver of root's, blocked on an empty queue for type 5.
    let recv = Blocked::receiver(None, id, 5, 64);
    recv.wait_blocked();
    let pid = recv.pid.to_string();
    let text = waiters_until(&waiters, None, |t| t.contains(&format!("\n{pid} ")));
    let (rows, tail) = table(&text, &header);
    assert_eq!(
        rows,
        [[&pid, &pid, IPCQ_COMM, "receive", "5", "64"]],
        "msg/{id}/waiters with a blocked msgrcv: {text:?}"
    );
    assert!(tail.is_empty(), "root sees every waiter: {text:?}");

    // Lower qbytes through perm, fill the queue: a sender of OWNER's blocks.
    // (Should that write not take, the rest is still tested, with qbytes set by IPC_SET.)
    write_once(&qp(&m, id, "perm"), b"qbytes: 10\n").expect("write qbytes: 10 to perm");
    let through_perm = queue.stat().msg_qbytes;
    if through_perm != 10 {
        queue.set(None, None, None, Some(10));
    }
    queue.send(1, b"0123456789");
    let send = Blocked::sender(Some(OWNER), id, 2, 5);
    send.wait_blocked();
    let spid = send.pid.to_string();
    let text = waiters_until(&waiters, None, |t| t.contains(&format!("\n{spid} ")));
    let (mut rows, _) = table(&text, &header);
    rows.sort();
    let mut want = vec![
        vec![
            pid.clone(),
            pid.clone(),
            IPCQ_COMM.into(),
            "receive".into(),
            "5".into(),
            "64".into(),
        ],
        vec![
            spid.clone(),
            spid.clone(),
            IPCQ_COMM.into(),
            "send".into(),
            "-".into(),
            "5".into(),
        ],
    ];
    want.sort();
    assert_eq!(
        rows, want,
        "msg/{id}/waiters with a blocked msgsnd: {text:?}"
    );

    // OWNER sees their own sender, and root's receiver only as a count.
    let text = waiters_until(&waiters, Some(OWNER), |t| t.contains("hidden"));
    let (rows, tail) = table(&text, &header);
    assert_eq!(
        rows,
        [[&spid, &spid, IPCQ_COMM, "send", "-", "5"]],
        "uid {OWNER}'s view of msg/{id}/waiters: {text:?}"
    );
    assert_eq!(tail, ["+1 hidden"], "uid {OWNER}'s view: {text:?}");
    // Someone else sees neither.
    let r = sh_as(OTHER, &format!("cat {}", q(&waiters)));
    assert!(r.ok(), "uid {OTHER}: cat waiters: {r:?}");
    let (rows, tail) = table(&r.stdout_str(), &header);
    assert!(rows.is_empty(), "uid {OTHER}'s view: {r:?}");
    assert_eq!(tail, ["+2 hidden"], "uid {OTHER}'s view: {r:?}");

    // Reading changed nothing: both still wait.
    assert_eq!(recv.next_line(Duration::from_millis(100)), None);
    assert_eq!(send.next_line(Duration::from_millis(100)), None);
    assert_eq!(queue.stat().msg_qnum, 1);
    assert_eq!(
        through_perm, 10,
        "qbytes after writing `qbytes: 10` to msg/{id}/perm (the rest passed with IPC_SET)"
    );
}

/// `printf 'TEXT\n' | dd of=PERM` as `uid` (dd says the errno of a refused write; the
/// shell's printf says only "I/O error").
fn write_perm_as(uid: u32, perm: &Path, text: &str) -> Run {
    sh_as(
        uid,
        &format!(
            "printf '{text}\\n' | dd of={} conv=notrunc status=none",
            q(perm)
        ),
    )
}

#[test]
fn perm_shows_qbytes_and_root_sets_it() {
    require_fuse!();
    require_msg_tools!();
    let m = mount();
    let queue = MsgQueue::private(0o600);
    let id = queue.id;
    let perm = qp(&m, id, "perm");
    let f = read_fields(&perm);
    assert_eq!(f.names(), ["mode", "uid", "gid", "qbytes"], "msg/{id}/perm");
    assert_eq!(
        (f.get("mode"), f.num("uid"), f.num("gid"), f.num("qbytes")),
        ("0600", 0, 0, queue.stat().msg_qbytes)
    );

    // Root: qbytes 100, as ipcs then says.
    write_once(&perm, b"qbytes: 100\n").expect("root writes qbytes: 100");
    assert_eq!(
        ipcs_q_i(id)["qbytes"],
        "100",
        "ipcs -q -i after qbytes: 100"
    );
    assert_eq!(read_fields(&perm).num("qbytes"), 100);
    assert_eq!(read_fields(&qp(&m, id, "stat")).num("qbytes"), 100);
    // The whole perm text written back, with another qbytes.
    write_once(&perm, b"mode: 0640\nuid: 0\ngid: 0\nqbytes: 200\n").expect("root writes perm");
    let ds = queue.stat();
    assert_eq!((ds.msg_perm.mode & 0o777, ds.msg_qbytes), (0o640, 200));
}

#[test]
fn an_ordinary_owner_may_not_raise_qbytes_above_msgmnb() {
    require_fuse!();
    require_msg_tools!();
    let m = mount();
    let queue = MsgQueue::private(0o600);
    let id = queue.id;
    let perm = qp(&m, id, "perm");
    let mnb = kernel_sysctl("msgmnb");
    queue.set(None, Some(OWNER), Some(OWNER), Some(100));
    let r = write_perm_as(OWNER, &perm, &format!("qbytes: {}", mnb + 1));
    assert_failed_with(&r, &[libc::EPERM], "the owner raising qbytes above msgmnb");
    assert_eq!(queue.stat().msg_qbytes, 100, "qbytes unchanged after EPERM");
    let r = write_perm_as(OWNER, &perm, &format!("qbytes: {}", mnb / 2));
    assert!(r.ok(), "the owner setting qbytes to msgmnb/2: {r:?}");
    assert_eq!(
        queue.stat().msg_qbytes,
        mnb / 2,
        "qbytes after the owner's write"
    );
}

#[test]
fn only_the_owner_changes_mode_and_qbytes() {
    require_fuse!();
    require_msg_tools!();
    let m = mount();
    let queue = MsgQueue::private(0o600);
    let id = queue.id;
    let perm = qp(&m, id, "perm");
    queue.set(None, Some(OWNER), Some(OWNER), Some(100));
    let r = write_perm_as(OTHER, &perm, "mode: 0666");
    assert_failed_with(&r, &[libc::EPERM], "another user changing the mode");
    let r = write_perm_as(OTHER, &perm, "qbytes: 50");
    assert_failed_with(&r, &[libc::EPERM], "another user changing qbytes");
    let ds = queue.stat();
    assert_eq!(
        (ds.msg_perm.mode & 0o777, ds.msg_qbytes),
        (0o600, 100),
        "unchanged"
    );

    let r = write_perm_as(OWNER, &perm, "mode: 0640");
    assert!(r.ok(), "the owner changing the mode: {r:?}");
    assert_eq!(queue.stat().msg_perm.mode & 0o777, 0o640);
    assert_eq!(read_fields(&qp(&m, id, "stat")).get("mode"), "0640");
    // chmod of the directory is the same IPC_SET.
    let r = sh_as(OWNER, &format!("chmod 604 {}", q(qp(&m, id, ""))));
    assert!(r.ok(), "the owner's chmod 604 msg/ID: {r:?}");
    assert_eq!(queue.stat().msg_perm.mode & 0o777, 0o604);
    let r = sh_as(OTHER, &format!("chmod 666 {}", q(qp(&m, id, ""))));
    assert_failed_with(&r, &[libc::EPERM], "another user's chmod of msg/ID");
}

#[test]
fn rmdir_is_ipc_rmid_for_whom_the_kernel_allows() {
    require_fuse!();
    require_msg_tools!();
    let m = mount();
    let mut queue = MsgQueue::private(0o666);
    queue.send(1, b"still here");
    queue.set(None, Some(OWNER), Some(OWNER), None);
    let id = queue.id;
    let dir = qp(&m, id, "");
    let r = sh_as(OTHER, &format!("rmdir {}", q(&dir)));
    assert_failed_with(&r, &[libc::EPERM], "rmdir msg/ID by another user");
    assert!(
        queue.exists() && ipcs_q_ids().contains(&id),
        "the queue is still there"
    );
    assert_eq!(queue.stat().msg_qnum, 1);

    let r = sh_as(OWNER, &format!("rmdir {}", q(&dir)));
    assert!(r.ok(), "rmdir msg/ID by its owner: {r:?}");
    queue.forget();
    assert!(!queue.exists(), "IPC_STAT after rmdir");
    assert!(!ipcs_q_ids().contains(&id), "`ipcs -q` still lists {id}");
    assert!(
        !m.ls("msg").contains(&id.to_string()),
        "ls msg/ after rmdir"
    );
    assert_errno(fs::metadata(&dir), libc::ENOENT, "stat msg/ID after rmdir");

    // Root (CAP_SYS_ADMIN) removes anyone's.
    let mut q2 = MsgQueue::private(0o600);
    q2.set(None, Some(OWNER), Some(OWNER), None);
    fs::remove_dir(qp(&m, q2.id, "")).expect("root's rmdir of OWNER's queue");
    q2.forget();
    assert!(!q2.exists());
}

#[test]
fn queue_and_messages_need_read_permission_and_stat_does_not() {
    require_fuse!();
    require_msg_tools!();
    let m = mount();
    let queue = MsgQueue::private(0o600);
    queue.send(4, b"secret");
    let id = queue.id;
    let dir = qp(&m, id, "");
    for (what, script) in [
        ("cat queue", format!("cat {}", q(dir.join("queue")))),
        ("ls messages", format!("ls {}", q(dir.join("messages")))),
        (
            "cat messages/0",
            format!("cat {}", q(dir.join("messages/0"))),
        ),
    ] {
        let r = sh_as(OTHER, &script);
        assert_failed_with(
            &r,
            &[libc::EACCES],
            &format!("uid {OTHER}: {what} of a 0600 queue"),
        );
    }
    let r = sh_as(OTHER, &format!("cat {}", q(dir.join("stat"))));
    assert!(r.ok(), "uid {OTHER}: cat stat of a 0600 queue: {r:?}");
    let stat = Fields::parse(&r.stdout_str());
    assert_eq!((stat.num("qnum"), stat.num("cbytes")), (1, 6));

    // Read permission through the group or others is enough.
    queue.set(Some(0o604), None, None, None);
    let r = sh_as(OTHER, &format!("cat {}", q(dir.join("messages/0"))));
    assert!(
        r.ok() && r.stdout == b"secret",
        "uid {OTHER}: 0604 queue: {r:?}"
    );
    let r = sh_as(OTHER, &format!("cat {}", q(dir.join("queue"))));
    assert!(r.ok(), "uid {OTHER}: queue of a 0604 queue: {r:?}");
    let (rows, _) = table(&r.stdout_str(), &["INDEX", "TYPE", "SIZE"]);
    assert_eq!(rows, [["0", "4", "6"]]);
    assert_eq!(queue.stat().msg_qnum, 1, "nothing received");
}

#[test]
fn queue_and_messages_stop_at_1024() {
    require_fuse!();
    require_msg_tools!();
    let m = mount();
    let queue = MsgQueue::private(0o600);
    for i in 0..1100u32 {
        queue.send(1 + i64::from(i % 3), &[i as u8]);
    }
    assert_eq!(queue.stat().msg_qnum, 1100);
    let id = queue.id;
    let text = read_text(&qp(&m, id, "queue"));
    let (rows, tail) = table(&text, &["INDEX", "TYPE", "SIZE"]);
    assert_eq!(rows.len(), 1024, "rows of msg/{id}/queue");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            row,
            &[i.to_string(), (1 + i % 3).to_string(), "1".to_string()],
            "row {i}"
        );
    }
    assert_eq!(tail, ["+76 more"], "the end of msg/{id}/queue");
    let listed = sh_ok(&format!("ls {} | wc -l", q(qp(&m, id, "messages"))));
    assert_eq!(listed.trim(), "1024", "ls msg/{id}/messages | wc -l");
    let names: BTreeSet<String> = m.ls(&format!("msg/{id}/messages"));
    assert_eq!(names, (0..1024).map(|n| n.to_string()).collect());
    assert_eq!(
        fs::read(qp(&m, id, "messages/1023")).unwrap(),
        [1023u32 as u8],
        "messages/1023"
    );
    assert_errno(
        fs::read(qp(&m, id, "messages/1024")),
        libc::ENOENT,
        "messages/1024 (beyond the bound)",
    );
    assert_eq!(queue.stat().msg_qnum, 1100, "nothing received");
}
