//! System V semaphore sets as files (`sem/ID/`, issue 24) and POSIX named semaphores'
//! `posix/sem.NAME/stat`, on a real mount, with real programs: sets made with `ipcmk -S` and
//! `semget`, compared with `ipcs -s`, `ipcs -s -i` and the kernel's own `semctl`; processes
//! blocked in `semop` (a Python program using ctypes, and `semtool`, `common/c/semtool.c`);
//! `echo … > values`; other users through `setpriv`; a POSIX semaphore made with `sem_open`.
//!
//! Every set is the test's own (IPC_PRIVATE or a fresh random key) and is removed by its
//! guard (`common::sem::SemSet`) even when the test fails; so are POSIX semaphores
//! (`PosixSem`) and blocked processes (`Blocked`).
//!
//! The formats checked are those of shmfs(5) and /work/notes/format-spec.md: `stat` is
//! `name: value` lines (kind, semid, key, nsems, mode, uid, gid, cuid, cgid, otime, ctime),
//! `values` a table `SEMNUM VALUE NCOUNT ZCOUNT PID`, `waiters` a table
//! `PID TID COMMAND SEMNUM OP UNDO` ending with `+N hidden` when the reader may not trace N.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::sem::*;
use common::*;

/// A user with no rights over root's objects (no passwd entry needed: setpriv takes numbers).
const USER: u32 = 4101;
/// Another one, to whom a set the USER created is given.
const OTHER_OWNER: u32 = 4102;

const VALUES_HEADER: [&str; 5] = ["SEMNUM", "VALUE", "NCOUNT", "ZCOUNT", "PID"];
const WAITERS_HEADER: [&str; 6] = ["PID", "TID", "COMMAND", "SEMNUM", "OP", "UNDO"];
/// The fields of a set's `stat`, in order.
const STAT_FIELDS: [&str; 11] = [
    "kind", "semid", "key", "nsems", "mode", "uid", "gid", "cuid", "cgid", "otime", "ctime",
];

fn user() -> Ids {
    Ids {
        uid: USER,
        gid: USER,
        groups: &[],
        caps: None,
    }
}

fn sem_dir(m: &Mount, id: i32) -> std::path::PathBuf {
    m.p("sem").join(id.to_string())
}

fn sem_file(m: &Mount, id: i32, file: &str) -> std::path::PathBuf {
    sem_dir(m, id).join(file)
}

/// The rows of a table file (header checked against `header`), each split in words.
#[track_caller]
fn table_rows(text: &str, header: &[&str], what: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap_or_else(|| panic!("{what} is empty"))
        .split_whitespace()
        .collect();
    assert_eq!(
        head, header,
        "{what}'s header line; the whole text: {text:?}"
    );
    assert!(
        text.ends_with('\n'),
        "{what} does not end with a newline: {text:?}"
    );
    lines
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The `values` table of a set, as numbers (checking the header, that every row has five
/// numeric columns, and that the columns are aligned: every word of a row starts where the
/// header's word of the same column starts).
#[track_caller]
fn values_table(text: &str) -> Vec<[i64; 5]> {
    let starts = |l: &str| -> Vec<usize> {
        let b = l.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] != b' ' && (i == 0 || b[i - 1] == b' '))
            .collect()
    };
    let header_starts = starts(text.lines().next().unwrap_or(""));
    for l in text.lines().skip(1) {
        assert_eq!(
            starts(l),
            header_starts,
            "`values` columns are not aligned with the header: {text:?}"
        );
    }
    table_rows(text, &VALUES_HEADER, "values")
        .into_iter()
        .map(|row| {
            let nums: Vec<i64> = row
                .iter()
                .map(|w| {
                    w.parse()
                        .unwrap_or_else(|_| panic!("`{w}` is not a number in values {text:?}"))
                })
                .collect();
            <[i64; 5]>::try_from(nums)
                .unwrap_or_else(|_| panic!("a values row without 5 columns: {text:?}"))
        })
        .collect()
}

/// `waiters`: its rows (header checked) and the number on its `+N hidden` line (0 without).
#[track_caller]
fn waiters_table(text: &str) -> (Vec<Vec<String>>, u64) {
    let mut rows = table_rows(text, &WAITERS_HEADER, "waiters");
    let mut hidden = 0;
    if let Some(last) = rows.last()
        && last.len() == 2
        && last[1] == "hidden"
    {
        hidden = last[0]
            .strip_prefix('+')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad hidden line in waiters {text:?}"));
        assert!(hidden > 0, "`+0 hidden` in waiters {text:?}");
        rows.pop();
    }
    for r in &rows {
        assert_eq!(r.len(), 6, "a waiters row without 6 columns: {text:?}");
    }
    (rows, hidden)
}

/// The command name of `pid`, as /proc/PID/comm has it.
fn comm_of(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_else(|e| panic!("comm of {pid}: {e}"))
        .trim()
        .to_string()
}

/// 1. A set made with `ipcmk -S 3` is listed in `sem/`; its `stat` shows what `ipcs -s` and
///    `ipcs -s -i` show (key, mode, owner, creator, nsems, times) and its `values` the
///    `ipcs -s -i` table (value, ncount, zcount, pid of each semaphore), with processes waiting
///    for a semaphore to grow (NCOUNT) and to be zero (ZCOUNT). After `ipcrm` it is gone.
#[test]
fn stat_and_values_match_ipcs() {
    require_fuse!();
    require_tools!("ipcmk" => "util-linux", "ipcs" => "util-linux", "ipcrm" => "util-linux");
    let m = Mount::new();
    let mut set = SemSet::ipcmk(3, "0640");
    set.set_all(&[3, 0, 7]);
    set.op(1, 2); // otime and semaphore 1's sempid: this process
    let _zero = Blocked::semtool(set.id, 0, 0, false); // waits for 0 on semaphore 0 (ZCOUNT)
    let _more = Blocked::semtool(set.id, 2, -8, false); // waits for 8 on semaphore 2 (NCOUNT)

    let ids: Vec<String> = m.ls("sem").into_iter().collect();
    assert!(
        ids.contains(&set.id.to_string()),
        "`ls MNT/sem` shows {ids:?}, not the set {} made by ipcmk",
        set.id
    );
    assert_has_entries(&sem_dir(&m, set.id), &["stat", "perm", "values", "waiters"]);

    let stat = read_fields(&sem_file(&m, set.id, "stat"));
    let ipcs = ipcs_s_i(set.id);
    let listed = ipcs_s();
    let row = listed
        .get(&set.id)
        .unwrap_or_else(|| panic!("`ipcs -s` does not list {}", set.id));
    assert_eq!(stat.names(), STAT_FIELDS, "stat's fields: {stat:?}");
    assert_eq!(stat.get("kind"), "sem");
    assert_eq!(stat.num("semid"), set.id as u64);
    assert_eq!(stat.get("key"), row[0], "key: `ipcs -s` shows {row:?}");
    assert_eq!(stat.get("key"), format!("0x{:08x}", set.key as u32));
    assert_eq!(
        stat.num("nsems"),
        ipcs.nsems as u64,
        "nsems; ipcs: {ipcs:?}"
    );
    assert_eq!(stat.num("nsems"), 3);
    assert_eq!(stat.get("mode"), ipcs.mode, "mode; ipcs: {ipcs:?}");
    assert_eq!(stat.get("mode"), "0640");
    for (field, want) in [
        ("uid", ipcs.uid),
        ("gid", ipcs.gid),
        ("cuid", ipcs.cuid),
        ("cgid", ipcs.cgid),
    ] {
        assert_eq!(stat.num(field) as u32, want, "{field}; ipcs: {ipcs:?}");
    }
    for (field, want) in [("otime", &ipcs.otime), ("ctime", &ipcs.ctime)] {
        let secs: i64 = stat.get(field).parse().unwrap_or_else(|_| {
            panic!(
                "`{field}: {}` is not seconds since the epoch",
                stat.get(field)
            )
        });
        assert_eq!(&ipcs_time(secs), want, "{field} {secs}; ipcs: {ipcs:?}");
    }
    assert_ne!(ipcs.otime, "Not set", "the semop above set otime");

    let values = values_table(&read_text(&sem_file(&m, set.id, "values")));
    let ipcs = ipcs_s_i(set.id);
    assert_eq!(values, ipcs.rows, "values and `ipcs -s -i {}`", set.id);
    // SETALL and the semop were this process's: every sempid is its pid.
    let me = std::process::id() as i64;
    assert_eq!(
        values,
        vec![[0, 3, 0, 1, me], [1, 2, 0, 0, me], [2, 7, 1, 0, me]],
        "values after SETALL 3 0 7 and semop +2 on 1 by pid {me}, with a wait-for-zero on 0 \
         and a wait-for-8 on 2"
    );

    sh_ok(&format!("ipcrm -s {}", set.id));
    set.forget();
    assert!(
        !m.ls("sem").contains(&set.id.to_string()),
        "sem/{} is still listed after ipcrm",
        set.id
    );
    assert_errno(
        fs::metadata(sem_dir(&m, set.id)),
        libc::ENOENT,
        "stat of sem/ID after ipcrm",
    );
}

/// 2. A Python program blocked in `semop(-1, SEM_UNDO)` on semaphore 0 is in `waiters` (its
///    pid and thread, its command, semaphore 0, op -1, undo yes); `echo '0 1' > values` wakes
///    it. Then a whole list sets all, the table form sets all, and bad writes change nothing.
#[test]
fn blocked_semop_is_a_waiter_and_writing_values_wakes_it() {
    require_fuse!();
    require_tools!("ipcmk" => "util-linux", "ipcs" => "util-linux", "python3" => "Debian package python3");
    let m = Mount::new();
    let set = SemSet::ipcmk(3, "0600");
    let mut sleeper = Blocked::python(set.id, 0, -1, true);
    let pid = sleeper.pid();

    let waiters = read_text(&sem_file(&m, set.id, "waiters"));
    let (rows, hidden) = waiters_table(&waiters);
    let want = vec![
        pid.to_string(),
        pid.to_string(),
        comm_of(pid),
        "0".into(),
        "-1".into(),
        "yes".into(),
    ];
    assert_eq!(
        (rows, hidden),
        (vec![want], 0),
        "waiters of a set with one Python process (pid {pid}) blocked in semop -1 with \
         SEM_UNDO on semaphore 0: {waiters:?}"
    );
    let values = values_table(&read_text(&sem_file(&m, set.id, "values")));
    assert_eq!(values, ipcs_s_i(set.id).rows);
    assert_eq!(values[0][2], 1, "NCOUNT of semaphore 0: {values:?}");

    let values_path = sem_file(&m, set.id, "values");
    sh_ok(&format!("echo '0 1' > {}", q(&values_path)));
    sleeper.expect_woken(Duration::from_secs(10));
    let values = values_table(&read_text(&values_path));
    assert_eq!(
        values,
        ipcs_s_i(set.id).rows,
        "values and ipcs after the wake-up"
    );
    // It took the 1 and exited, and its SEM_UNDO gave the 1 back as it exited: sempid is its.
    assert_eq!(
        values[0],
        [0, 1, 0, 0, i64::from(pid)],
        "semaphore 0 after `echo '0 1' > values` woke pid {pid}, which took the 1 with \
         SEM_UNDO and exited"
    );
    assert_eq!(set.values(), vec![1, 0, 0]);
    let (rows, hidden) = waiters_table(&read_text(&sem_file(&m, set.id, "waiters")));
    assert!(
        rows.is_empty() && hidden == 0,
        "waiters after the wake-up: {rows:?}"
    );

    // A whole list: SETALL.
    sh_ok(&format!("echo '4 5 6' > {}", q(&values_path)));
    assert_eq!(set.values(), vec![4, 5, 6], "after `echo '4 5 6' > values`");
    // `N V` lines, one SETVAL each.
    sh_ok(&format!("printf '2 9\\n0 1\\n' > {}", q(&values_path)));
    assert_eq!(
        set.values(),
        vec![1, 5, 9],
        "after writing lines `2 9` and `0 1`"
    );
    // The table itself, as `cat values > f; edit f; cat f > values` writes it.
    let edited = read_text(&values_path)
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                let mut w: Vec<String> = l.split_whitespace().map(str::to_string).collect();
                w[1] = (10 + i).to_string();
                w.join("  ")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    write_once(&values_path, edited.as_bytes())
        .unwrap_or_else(|e| panic!("writing the edited table {edited:?} to values: {e}"));
    assert_eq!(
        set.values(),
        vec![11, 12, 13],
        "after writing the table {edited:?}"
    );
    assert_eq!(
        values_table(&read_text(&values_path)),
        ipcs_s_i(set.id).rows
    );

    // Bad writes: EINVAL, and nothing set (not even the good lines before a bad one). (An
    // empty write(2) never reaches the daemon: the kernel answers 0 itself.)
    let before = (set.values(), set.stat().sem_ctime, set.pids());
    std::thread::sleep(Duration::from_millis(1100)); // a SETVAL now would move ctime
    for bad in [
        "0 40000\n",
        "0 32768\n",
        "3 1\n",
        "0 1\n3 1\n",
        "1 2\n0 40000\n",
        "junk\n",
        "0 -1\n",
        "-1 0\n",
        "0 0x10\n",
        "1 2 3 4\n",
        "1 2 3 4 5 6\n",
        "\n",
        " \n\n",
        "0 1\n0 2\n",
    ] {
        let r = write_once(&values_path, bad.as_bytes());
        let after = (set.values(), set.stat().sem_ctime, set.pids());
        assert_errno(r, libc::EINVAL, &format!("write {bad:?} to values"));
        assert_eq!(after, before, "write {bad:?} to values changed the set");
    }
}

/// A task blocked in one semop of several operations is one line per operation in `waiters`
/// (in its order), though the kernel's NCOUNT counts it under its first blocking semaphore
/// only (which `values`, as `ipcs -s -i`, shows). Writing the values it waits for wakes it.
#[test]
fn waiters_shows_every_operation_of_a_blocked_semop() {
    require_fuse!();
    require_tools!("ipcs" => "util-linux");
    let m = Mount::new();
    let set = SemSet::private(3, 0o600);
    let mut sleeper = Blocked::semtool_ops(set.id, &[(0, -1, false), (2, -2, true), (1, 0, false)]);
    let pid = sleeper.pid().to_string();
    let waiters = read_text(&sem_file(&m, set.id, "waiters"));
    let (rows, hidden) = waiters_table(&waiters);
    let row = |num: &str, op: &str, undo: &str| {
        [pid.as_str(), pid.as_str(), "semtool", num, op, undo]
            .map(str::to_string)
            .to_vec()
    };
    assert_eq!(
        (rows, hidden),
        (
            vec![
                row("0", "-1", "no"),
                row("2", "-2", "yes"),
                row("1", "0", "no")
            ],
            0
        ),
        "waiters of a set with pid {pid} blocked in semop([0 -1], [2 -2 SEM_UNDO], [1 0]): \
         {waiters:?}"
    );
    let values = values_table(&read_text(&sem_file(&m, set.id, "values")));
    assert_eq!(values, ipcs_s_i(set.id).rows, "values and `ipcs -s -i`");
    assert_eq!(
        values.iter().map(|r| (r[2], r[3])).collect::<Vec<_>>(),
        vec![(1, 0), (0, 0), (0, 0)],
        "NCOUNT/ZCOUNT: the kernel counts the task under semaphore 0 only: {values:?}"
    );
    write_once(&sem_file(&m, set.id, "values"), b"0 1\n2 2\n").expect("write `0 1` and `2 2`");
    sleeper.expect_woken(Duration::from_secs(10));
    let (rows, _) = waiters_table(&read_text(&sem_file(&m, set.id, "waiters")));
    assert!(rows.is_empty(), "waiters after the wake-up: {rows:?}");
}

/// `waiters` names only tasks blocked on this set: a task of another IPC namespace blocked on
/// a set with the same semid there (made so with the namespace's `sem_next_id`) is not one
/// of them, not even as hidden, while a task of the set's own namespace is.
#[test]
fn waiters_are_of_the_sets_own_namespace() {
    require_fuse!();
    require_tools!("unshare" => "util-linux", "nsenter" => "util-linux");
    let m = Mount::new();
    let set = SemSet::private(1, 0o600);
    let world = World::new();
    let tool = q(semtool_bin());
    let made = world.sh_ok(&format!(
        "echo {} > /proc/sys/kernel/sem_next_id && {tool} semget 1 1 600",
        set.id
    ));
    assert_eq!(
        made.trim(),
        set.id.to_string(),
        "the world's set takes the semid of ours (sem_next_id)"
    );
    let mut cmd = world.command(semtool_bin().to_str().unwrap());
    cmd.args(["wait", &set.id.to_string(), "0", "-1", "0"]);
    let _stranger = Blocked::start(cmd);
    let ours = Blocked::semtool(set.id, 0, -1, false);

    let waiters = read_text(&sem_file(&m, set.id, "waiters"));
    let (rows, hidden) = waiters_table(&waiters);
    let pids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        (pids, hidden),
        (vec![ours.pid().to_string().as_str()], 0),
        "waiters of set {} with pid {} blocked on it, and pid {} blocked on the set of the \
         same semid in another IPC namespace: {waiters:?}",
        set.id,
        ours.pid(),
        _stranger.pid()
    );
}

/// 3. Looking is not touching: reading every file of `sem/ID` (and `ls -l`, `index`,
///    `metrics.prom`, `limits`, the `by-key` link) leaves what the kernel records as it was:
///    otime, ctime, each semaphore's sempid and value, as IPC_STAT, GETPID and GETALL, and
///    `ipcs -s -i`, show them.
#[test]
fn looking_changes_nothing() {
    require_fuse!();
    require_tools!("ipcs" => "util-linux");
    let m = Mount::new();
    let set = SemSet::keyed(3, 0o644);
    set.set_all(&[2, 0, 5]);
    set.op(0, 1);
    set.op(2, -1);
    let _waiter = Blocked::semtool(set.id, 1, -1, true);
    let before = set.evidence();
    let ipcs_before = ipcs_s_i(set.id);
    assert_ne!(before.0, 0, "otime is set by the semops");
    std::thread::sleep(Duration::from_millis(1100)); // a change of otime/ctime would show

    let dir = sem_dir(&m, set.id);
    for _ in 0..3 {
        for file in ["stat", "perm", "values", "waiters"] {
            let p = dir.join(file);
            let _ = fs::metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
            let text = read_text(&p);
            assert!(!text.is_empty(), "{file} is empty");
        }
        sh_ok(&format!("ls -l {} {} >/dev/null", q(&dir), q(m.p("sem"))));
        for report in ["index", "index.json", "metrics.prom", "limits"] {
            let _ = fs::read(m.p(report));
        }
        let link = m.p(&format!("by-key/sem.0x{:08x}", set.key as u32));
        let _ = fs::read_link(&link);
        let _ = fs::read_to_string(link.join("values"));
    }

    let after = set.evidence();
    assert_eq!(
        after, before,
        "(otime, ctime, sempids, values) of set {} changed by reading its files",
        set.id
    );
    assert_eq!(
        ipcs_s_i(set.id),
        ipcs_before,
        "`ipcs -s -i` before and after"
    );
}

/// 4. Permissions as the kernel's, for an ordinary user: on root's 0600 set, `values` is
///    refused (EACCES to read it, EACCES to open it for writing), `stat` is readable, `rmdir`
///    and a `perm` write are refused (EPERM), and a blocked root process is only `+1 hidden`
///    in `waiters`. On the user's own set the user reads and writes `values` and removes it.
///    On a set the user created and root gave to someone else, the creator keeps the owner's
///    rights, as IPC_STAT's ipcperms and IPC_RMID give them; every answer is compared with the
///    kernel's to the same user on a twin set.
#[test]
fn permissions_for_another_user_are_the_kernels() {
    require_fuse!();
    require_tools!("ipcmk" => "util-linux", "ipcs" => "util-linux", "setpriv" => "util-linux");
    let m = Mount::builder().option("allow_other").mount();
    let me = user();
    let path = |id: i32, file: &str| sem_file(&m, id, file).display().to_string();

    // Root's set, mode 0600, with a root process blocked on it.
    let root_set = SemSet::private(2, 0o600);
    root_set.set_all(&[0, 7]);
    let _root_waiter = Blocked::semtool(root_set.id, 0, -1, false);
    let before = (root_set.evidence(), root_set.stat().sem_perm.mode);
    let id = root_set.id;
    let sid = id.to_string();
    let checks = [
        (
            "read values",
            semtool_as(me, &["open-read", &path(id, "values")]),
            "EACCES",
        ),
        (
            "open values for writing",
            semtool_as(me, &["open-write", &path(id, "values")]),
            "EACCES",
        ),
        (
            "kernel: GETALL",
            semtool_as(me, &["sem-read", &sid, "2"]),
            "EACCES",
        ),
        (
            "kernel: SETVAL",
            semtool_as(me, &["sem-write", &sid, "0", "1"]),
            "EACCES",
        ),
        (
            "read stat",
            semtool_as(me, &["open-read", &path(id, "stat")]),
            "ok",
        ),
        (
            "rmdir sem/ID",
            semtool_as(me, &["rmdir", &sem_dir(&m, id).display().to_string()]),
            "EPERM",
        ),
        (
            "kernel: IPC_RMID",
            semtool_as(me, &["sem-rmid", &sid]),
            "EPERM",
        ),
        (
            "write perm",
            semtool_as(me, &["write-text", &path(id, "perm"), "mode: 0666\n"]),
            "EPERM",
        ),
        (
            "kernel: IPC_SET",
            semtool_as(me, &["sem-set", &sid, "666", "0", "0"]),
            "EPERM",
        ),
    ];
    let wrong: Vec<String> = checks
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(what, got, want)| {
            format!("{what} as uid {USER} on root's 0600 set: {got}, want {want}")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let as_user = sh_as(USER, &format!("cat {}", q(path(id, "stat"))));
    assert!(as_user.ok(), "cat stat as uid {USER}: {as_user:?}");
    assert_eq!(
        Fields::parse(&as_user.stdout_str()).num("semid"),
        id as u64,
        "stat as uid {USER}"
    );
    let waiters = sh_as(USER, &format!("cat {}", q(path(id, "waiters"))));
    assert!(waiters.ok(), "cat waiters as uid {USER}: {waiters:?}");
    let (rows, hidden) = waiters_table(&waiters.stdout_str());
    assert!(
        rows.is_empty() && hidden == 1,
        "waiters as uid {USER}, with one root process blocked on the set: want only \
         `+1 hidden`, got {:?}",
        waiters.stdout_str()
    );
    let (rows, hidden) = waiters_table(&read_text(&sem_file(&m, id, "waiters")));
    assert_eq!((rows.len(), hidden), (1, 0), "root sees its own waiter");
    assert_eq!(
        (root_set.evidence(), root_set.stat().sem_perm.mode),
        before,
        "root's set changed by the refused calls"
    );

    // The user's own set, made with ipcmk as the user.
    let made = sh_as(USER, "ipcmk -S 2 -p 0600");
    assert!(made.ok(), "ipcmk as uid {USER}: {made:?}");
    let mut own = SemSet::adopt(parse_ipcmk_sem(&made.stdout_str()));
    let oid = own.id;
    assert_eq!(
        semtool_as(me, &["write-text", &path(oid, "values"), "0 3\n1 4\n"]),
        "ok",
        "the owner writes values"
    );
    assert_eq!(own.values(), vec![3, 4]);
    let read = sh_as(USER, &format!("cat {}", q(path(oid, "values"))));
    assert!(read.ok(), "the owner reads values: {read:?}");
    let table = values_table(&read.stdout_str());
    assert_eq!(
        table.iter().map(|r| r[1]).collect::<Vec<_>>(),
        vec![3, 4],
        "values as the owner: {table:?}"
    );
    assert_eq!(
        semtool_as(me, &["rmdir", &sem_dir(&m, oid).display().to_string()]),
        "ok",
        "the owner removes its set with rmdir"
    );
    if !own.exists() {
        own.forget();
    }
    assert!(
        !own.exists(),
        "the set is still there after its owner's rmdir"
    );
    assert!(
        !ipcs_s().contains_key(&oid),
        "`ipcs -s` still lists {oid} after rmdir"
    );

    // Created by the user, owned by someone else: the creator has the owner's rights.
    let twins: Vec<SemSet> = (0..2)
        .map(|_| {
            let made = sh_as(USER, "ipcmk -S 1 -p 0600");
            assert!(made.ok(), "ipcmk as uid {USER}: {made:?}");
            let s = SemSet::adopt(parse_ipcmk_sem(&made.stdout_str()));
            s.set(None, Some(OTHER_OWNER), Some(OTHER_OWNER));
            s
        })
        .collect();
    let (a, b) = (twins[0].id, twins[1].id);
    let sb = b.to_string();
    let mut mismatches = Vec::new();
    for (what, via_mount, kernel) in [
        (
            "read values / GETALL",
            vec!["open-read".to_string(), path(a, "values")],
            vec!["sem-read".to_string(), sb.clone(), "1".into()],
        ),
        (
            "write values / SETVAL",
            vec!["write-text".into(), path(a, "values"), "0 2\n".into()],
            vec!["sem-write".into(), sb.clone(), "0".into(), "2".into()],
        ),
        (
            "write perm / IPC_SET",
            vec!["write-text".into(), path(a, "perm"), "mode: 0640\n".into()],
            vec![
                "sem-set".into(),
                sb.clone(),
                "640".into(),
                OTHER_OWNER.to_string(),
                OTHER_OWNER.to_string(),
            ],
        ),
        (
            "rmdir / IPC_RMID",
            vec!["rmdir".into(), sem_dir(&m, a).display().to_string()],
            vec!["sem-rmid".into(), sb.clone()],
        ),
    ] {
        let via_mount = semtool_as(
            me,
            &via_mount.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let kernel = semtool_as(me, &kernel.iter().map(String::as_str).collect::<Vec<_>>());
        if via_mount != kernel || kernel != "ok" {
            mismatches.push(format!(
                "{what} by the creator (uid {USER}) of a set owned by {OTHER_OWNER}: through \
                 the mount {via_mount}, the kernel {kernel} (want ok)"
            ));
        }
    }
    let mut twins = twins;
    for s in &mut twins {
        if !s.exists() {
            s.forget();
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(
        !twins[0].exists() && !twins[1].exists(),
        "both twins are removed by their creator"
    );
}

/// 5. `by-key/sem.0xKEY` leads to the set with that key (`../sem/ID`), and `by-key/0xKEY` of a
///    segment with the same key still to the segment (PostgreSQL uses one key for both).
#[test]
fn by_key_has_sets_beside_segments_of_the_same_key() {
    require_fuse!();
    let m = Mount::new();
    let seg = SysvSeg::keyed(4096, 0o600);
    let set = SemSet::create(seg.key, 2, 0o600)
        .unwrap_or_else(|e| panic!("semget with the segment's key 0x{:08x}: {e}", seg.key));
    let key = format!("0x{:08x}", seg.key as u32);

    let entries = m.ls("by-key");
    assert!(
        entries.contains(&key) && entries.contains(&format!("sem.{key}")),
        "`ls by-key` shows {entries:?}; want {key} and sem.{key}"
    );
    let sem_link = m.p("by-key").join(format!("sem.{key}"));
    assert_eq!(
        fs::read_link(&sem_link)
            .map(|p| p.display().to_string())
            .ok(),
        Some(format!("../sem/{}", set.id)),
        "by-key/sem.{key}"
    );
    let md = fs::symlink_metadata(&sem_link).unwrap();
    assert!(md.file_type().is_symlink(), "by-key/sem.{key} is a symlink");
    assert_eq!(
        read_fields(&sem_link.join("stat")).num("semid"),
        set.id as u64
    );

    let seg_link = m.p("by-key").join(&key);
    assert_eq!(
        fs::read_link(&seg_link)
            .map(|p| p.display().to_string())
            .ok(),
        Some(format!("../sysv/{}", seg.id)),
        "by-key/{key} with a set of the same key"
    );
    let seg_stat = read_text(&seg_link.join("stat"));
    assert!(
        seg_stat.contains(&format!("shmid: {}", seg.id)),
        "by-key/{key}/stat is the segment's: {seg_stat:?}"
    );
    assert_errno(
        fs::read_link(
            m.p("by-key")
                .join(format!("sem.0x{:08x}", seg.key as u32 ^ 1)),
        ),
        libc::ENOENT,
        "by-key/sem. of a key no set has",
    );
}

/// 6. A POSIX named semaphore made with `sem_open(…, 5)` shows `semaphore: yes` and
///    `value: 5` in `posix/sem.NAME/stat`, 6 after a `sem_post`; reading that stat moves
///    neither the file's atime nor its bytes, and `data` stays the file's bytes.
#[test]
fn posix_semaphore_value_in_stat_without_touching_it() {
    require_fuse!();
    let m = Mount::builder().system_shm_dir().mount();
    let sem = PosixSem::create(5);
    let stat_path = m.posix(&sem.file_name(), "stat");

    let stat = read_fields(&stat_path);
    assert_eq!(stat.get("semaphore"), "yes", "{stat:?}");
    assert_eq!(stat.num("value"), 5, "value after sem_open(…, 5): {stat:?}");
    assert_eq!(stat.num("waiters"), 0, "{stat:?}");
    sem.post();
    assert_eq!(
        read_fields(&stat_path).num("value"),
        6,
        "value after one sem_post"
    );

    // An atime older than the ctime: any read (relatime) would move it.
    let file = sem.path();
    set_atime(&file, 1_000_000_000);
    let bytes = read_noatime(&file);
    let atime = |p: &Path| {
        let md = fs::metadata(p).unwrap();
        (md.atime(), md.atime_nsec())
    };
    let before = atime(&file);
    assert_eq!(before.0, 1_000_000_000);
    for _ in 0..3 {
        let _ = read_fields(&stat_path);
        let _ = fs::metadata(m.posix_dir(&sem.file_name())).unwrap();
    }
    assert_eq!(
        atime(&file),
        before,
        "reading posix/{}/stat moved the atime of {}",
        sem.file_name(),
        file.display()
    );
    assert_eq!(read_noatime(&file), bytes, "the semaphore's bytes changed");
    assert_eq!(
        fs::read(m.posix(&sem.file_name(), "data")).unwrap(),
        bytes,
        "posix/{}/data is the file's bytes",
        sem.file_name()
    );
    // The check above meant something: a plain read does move it.
    let _ = fs::read(&file).unwrap();
    assert_ne!(
        atime(&file),
        before,
        "a plain read of {} does not move its atime here (noatime?): the check proves nothing",
        file.display()
    );
}

/// Sets the atime of `p` (mtime kept).
fn set_atime(p: &Path, secs: i64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let times = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    ];
    // SAFETY: two timespecs, a NUL-terminated path.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

/// The bytes of `p`, read with O_NOATIME (no atime moved).
fn read_noatime(p: &Path) -> Vec<u8> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(p)
        .unwrap_or_else(|e| panic!("open {} O_NOATIME: {e}", p.display()));
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}
