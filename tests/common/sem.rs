//! Semaphores the test owns and the kernel's own view of them, to compare `sem/` and
//! `posix/sem.NAME` with: `SemSet` (a System V set, removed on drop), `semctl` reads
//! (IPC_STAT, GETALL, GETPID, GETNCNT, GETZCNT), `ipcmk -S` and `ipcs -s [-i]` parsed,
//! `semtool` (`c/semtool.c`, run as any caller like the probe), `Blocked` (a process blocked in
//! `semop`, killed on drop) and `PosixSem` (a named semaphore, unlinked on drop).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::cc::compile_c;
use super::errno::errno;
use super::probe::Ids;
use super::run::{COMMAND_TIMEOUT, run_with_timeout, sh_ok};
use super::sysv::random_key;

/// `semctl(id, 0, IPC_STAT)`.
pub fn sem_stat(id: i32) -> io::Result<libc::semid_ds> {
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one semid_ds, which `ds` is.
    if unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) } == 0 {
        Ok(ds)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `semctl(id, 0, GETALL)` of a set of `nsems`.
pub fn sem_getall(id: i32, nsems: usize) -> io::Result<Vec<u16>> {
    let mut v = vec![0u16; nsems];
    // SAFETY: GETALL writes nsems unsigned shorts, which `v` holds.
    if unsafe { libc::semctl(id, 0, libc::GETALL, v.as_mut_ptr()) } == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `semctl(id, num, cmd)` for the commands that return a number (GETPID, GETNCNT, ...).
fn sem_get(id: i32, num: usize, cmd: i32) -> io::Result<i32> {
    // SAFETY: these commands take no argument.
    let r = unsafe { libc::semctl(id, num as i32, cmd) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// What the kernel records of a set that a look must not change: (otime, ctime, the sempid of
/// each semaphore, the values).
pub type SemEvidence = (i64, i64, Vec<i32>, Vec<u16>);

/// A System V semaphore set created (or adopted) by this test; removed (IPC_RMID) when dropped.
pub struct SemSet {
    pub id: i32,
    pub key: i32,
    pub nsems: usize,
    removed: bool,
}

impl SemSet {
    /// `semget(IPC_PRIVATE, nsems, IPC_CREAT|mode)`.
    pub fn private(nsems: usize, mode: u32) -> SemSet {
        Self::create(libc::IPC_PRIVATE, nsems, mode).expect("semget(IPC_PRIVATE)")
    }

    /// A set with a fresh random key.
    pub fn keyed(nsems: usize, mode: u32) -> SemSet {
        for _ in 0..100 {
            match Self::create(random_key(), nsems, mode) {
                Ok(s) => return s,
                Err(e) if errno(&e) == libc::EEXIST => continue,
                Err(e) => panic!("semget(key, {nsems}): {e}"),
            }
        }
        panic!("could not find a free random key");
    }

    /// `semget(key, nsems, IPC_CREAT|IPC_EXCL|mode)`.
    pub fn create(key: i32, nsems: usize, mode: u32) -> io::Result<SemSet> {
        // SAFETY: plain system call.
        let id = unsafe {
            libc::semget(
                key,
                nsems as i32,
                libc::IPC_CREAT | libc::IPC_EXCL | mode as i32,
            )
        };
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SemSet {
            id,
            key,
            nsems,
            removed: false,
        })
    }

    /// Takes ownership of a set made by other means (`ipcmk -S`, `semtool semget`).
    pub fn adopt(id: i32) -> SemSet {
        let ds = sem_stat(id).unwrap_or_else(|e| panic!("IPC_STAT of adopted semid {id}: {e}"));
        SemSet {
            id,
            key: ds.sem_perm.__key,
            nsems: ds.sem_nsems as usize,
            removed: false,
        }
    }

    /// `ipcmk -S nsems -p mode` (util-linux), adopted.
    pub fn ipcmk(nsems: usize, mode: &str) -> SemSet {
        let out = sh_ok(&format!("ipcmk -S {nsems} -p {mode}"));
        SemSet::adopt(parse_ipcmk_sem(&out))
    }

    /// IPC_STAT; panics on error.
    #[track_caller]
    pub fn stat(&self) -> libc::semid_ds {
        sem_stat(self.id).unwrap_or_else(|e| panic!("IPC_STAT of semid {}: {e}", self.id))
    }

    /// GETALL; panics on error.
    #[track_caller]
    pub fn values(&self) -> Vec<u16> {
        sem_getall(self.id, self.nsems)
            .unwrap_or_else(|e| panic!("GETALL of semid {}: {e}", self.id))
    }

    /// GETPID of every semaphore.
    #[track_caller]
    pub fn pids(&self) -> Vec<i32> {
        self.each(libc::GETPID)
    }

    /// GETNCNT of every semaphore.
    #[track_caller]
    pub fn ncounts(&self) -> Vec<i32> {
        self.each(libc::GETNCNT)
    }

    /// GETZCNT of every semaphore.
    #[track_caller]
    pub fn zcounts(&self) -> Vec<i32> {
        self.each(libc::GETZCNT)
    }

    #[track_caller]
    fn each(&self, cmd: i32) -> Vec<i32> {
        (0..self.nsems)
            .map(|n| {
                sem_get(self.id, n, cmd)
                    .unwrap_or_else(|e| panic!("semctl({}, {n}, {cmd}): {e}", self.id))
            })
            .collect()
    }

    /// What a look must not change (see [`SemEvidence`]).
    #[track_caller]
    pub fn evidence(&self) -> SemEvidence {
        let ds = self.stat();
        (ds.sem_otime, ds.sem_ctime, self.pids(), self.values())
    }

    /// SETALL.
    #[track_caller]
    pub fn set_all(&self, values: &[u16]) {
        assert_eq!(values.len(), self.nsems);
        let mut v = values.to_vec();
        // SAFETY: SETALL reads nsems unsigned shorts.
        let r = unsafe { libc::semctl(self.id, 0, libc::SETALL, v.as_mut_ptr()) };
        assert_eq!(
            r,
            0,
            "SETALL on {}: {}",
            self.id,
            io::Error::last_os_error()
        );
    }

    /// One `semop` of this process on semaphore `num` (no SEM_UNDO, IPC_NOWAIT): sets otime
    /// and that semaphore's sempid.
    #[track_caller]
    pub fn op(&self, num: u16, op: i16) {
        let mut sop = libc::sembuf {
            sem_num: num,
            sem_op: op,
            sem_flg: libc::IPC_NOWAIT as i16,
        };
        // SAFETY: one sembuf.
        let r = unsafe { libc::semop(self.id, &mut sop, 1) };
        assert_eq!(r, 0, "semop on {}: {}", self.id, io::Error::last_os_error());
    }

    /// IPC_SET changing only what is given.
    #[track_caller]
    pub fn set(&self, mode: Option<u32>, uid: Option<u32>, gid: Option<u32>) {
        let mut ds = self.stat();
        if let Some(m) = mode {
            ds.sem_perm.mode = m as u16;
        }
        if let Some(u) = uid {
            ds.sem_perm.uid = u;
        }
        if let Some(g) = gid {
            ds.sem_perm.gid = g;
        }
        // SAFETY: IPC_SET reads one semid_ds.
        let r = unsafe { libc::semctl(self.id, 0, libc::IPC_SET, &mut ds as *mut libc::semid_ds) };
        assert_eq!(
            r,
            0,
            "IPC_SET on {}: {}",
            self.id,
            io::Error::last_os_error()
        );
    }

    /// Whether the set is still there (the same id, not removed).
    pub fn exists(&self) -> bool {
        sem_stat(self.id).is_ok()
    }

    /// Forget the set: it has been removed by other means (rmdir, ipcrm). Its id must not be
    /// removed again by the guard: the kernel may give it to another test's set meanwhile.
    pub fn forget(&mut self) {
        self.removed = true;
    }
}

impl Drop for SemSet {
    fn drop(&mut self) {
        if !self.removed {
            // SAFETY: plain system call on our own set.
            unsafe {
                libc::semctl(self.id, 0, libc::IPC_RMID);
            }
        }
    }
}

/// The semid of `ipcmk -S`'s output ("Semaphore id: N").
pub fn parse_ipcmk_sem(out: &str) -> i32 {
    out.lines()
        .find_map(|l| l.strip_prefix("Semaphore id: "))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `Semaphore id: N` in ipcmk output {out:?}"))
}

/// The rows of `ipcs -s` as semid -> (key, owner, perms, nsems), as printed.
pub fn ipcs_s() -> BTreeMap<i32, [String; 4]> {
    sh_ok("ipcs -s")
        .lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 5, "cannot parse `ipcs -s` line {l:?}");
            (
                w[1].parse().unwrap(),
                [w[0], w[2], w[3], w[4]].map(str::to_string),
            )
        })
        .collect()
}

/// What `ipcs -s -i ID` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcsSem {
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// As printed: `0644`.
    pub mode: String,
    pub nsems: usize,
    /// As printed: `Not set` or ctime(3) text.
    pub otime: String,
    pub ctime: String,
    /// semnum, value, ncount, zcount, pid.
    pub rows: Vec<[i64; 5]>,
}

/// `ipcs -s -i ID`, parsed.
pub fn ipcs_s_i(id: i32) -> IpcsSem {
    let out = sh_ok(&format!("ipcs -s -i {id}"));
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("semnum") {
            in_table = true;
            continue;
        }
        if in_table {
            if t.is_empty() {
                continue;
            }
            let nums: Vec<i64> = t
                .split_whitespace()
                .map(|w| w.parse().unwrap_or_else(|_| panic!("row {t:?} of {out:?}")))
                .collect();
            rows.push(<[i64; 5]>::try_from(nums).unwrap_or_else(|_| panic!("row {t:?}")));
            continue;
        }
        if let Some((n, v)) = t.split_once(" = ") {
            fields.insert(n.trim().to_string(), v.trim().to_string());
        } else if t.starts_with("uid=") || t.starts_with("mode=") {
            for part in t.split([',', '\t']) {
                if let Some((n, v)) = part.trim().split_once('=') {
                    fields.insert(n.to_string(), v.to_string());
                }
            }
        }
    }
    let get = |n: &str| {
        fields
            .get(n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n} in `ipcs -s -i {id}`: {out:?}"))
    };
    IpcsSem {
        uid: get("uid").parse().unwrap(),
        gid: get("gid").parse().unwrap(),
        cuid: get("cuid").parse().unwrap(),
        cgid: get("cgid").parse().unwrap(),
        mode: get("mode"),
        nsems: get("nsems").parse().unwrap(),
        otime: get("otime"),
        ctime: get("ctime"),
        rows,
    }
}

/// A time as `ipcs` prints it: `Not set` for 0, else ctime(3) in this process's time zone.
pub fn ipcs_time(t: i64) -> String {
    if t == 0 {
        return "Not set".into();
    }
    let mut buf = [0 as libc::c_char; 64];
    let tt: libc::time_t = t;
    // SAFETY: ctime_r writes at most 26 bytes into buf.
    let p = unsafe { libc::ctime_r(&tt, buf.as_mut_ptr()) };
    assert!(!p.is_null(), "ctime_r({t})");
    // SAFETY: ctime_r wrote a NUL-terminated string.
    let s = unsafe { std::ffi::CStr::from_ptr(p) };
    s.to_string_lossy().trim().to_string()
}

/// The semaphore tool (`c/semtool.c`), compiled once per test binary.
pub fn semtool_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| compile_c("semtool", include_str!("c/semtool.c")))
}

/// setpriv's arguments that make a process run as `who` (as `Probe::run_as` does).
fn setpriv_args(who: Ids) -> Vec<String> {
    let mut a = vec![
        format!("--reuid={}", who.uid),
        format!("--regid={}", who.gid),
    ];
    if who.groups.is_empty() {
        a.push("--clear-groups".into());
    } else {
        let list: Vec<String> = who.groups.iter().map(u32::to_string).collect();
        a.push(format!("--groups={}", list.join(",")));
    }
    if let Some(caps) = who.caps {
        let list = if caps.is_empty() {
            "-all".to_string()
        } else {
            let plus: Vec<String> = caps.split(',').map(|c| format!("+{c}")).collect();
            format!("-all,{}", plus.join(","))
        };
        a.push(format!("--bounding-set={list}"));
        a.push(format!("--inh-caps={list}"));
        if who.uid != 0 {
            a.push(format!("--ambient-caps={list}"));
        }
    }
    a
}

/// Runs `semtool ARGS...` as `who` and returns what it printed, trimmed (`ok` or an errno
/// name for the permission operations). Panics if it did not run properly.
pub fn semtool_as(who: Ids, args: &[&str]) -> String {
    let r = run_with_timeout(
        Command::new("setpriv")
            .args(setpriv_args(who))
            .arg(semtool_bin())
            .args(args),
        COMMAND_TIMEOUT,
    );
    assert!(r.ok(), "semtool {args:?} as {who:?} did not run: {r:?}");
    r.stdout_str().trim().to_string()
}

/// Runs `semtool ARGS...` as root.
pub fn semtool(args: &[&str]) -> String {
    let r = run_with_timeout(Command::new(semtool_bin()).args(args), COMMAND_TIMEOUT);
    assert!(r.ok(), "semtool {args:?} did not run: {r:?}");
    r.stdout_str().trim().to_string()
}

/// A process blocked in `semop` on a set (started by the test, killed and reaped on drop).
pub struct Blocked {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
}

impl Blocked {
    /// `semtool wait ID NUM OP UNDO` as root.
    pub fn semtool(id: i32, num: u16, op: i16, undo: bool) -> Blocked {
        Blocked::semtool_ops(id, &[(num, op, undo)])
    }

    /// `semtool wait ID NUM OP UNDO...` as root: one semop of all these operations.
    pub fn semtool_ops(id: i32, ops: &[(u16, i16, bool)]) -> Blocked {
        let mut cmd = Command::new(semtool_bin());
        cmd.arg("wait").arg(id.to_string());
        for &(num, op, undo) in ops {
            cmd.args(&wait_args(id, num, op, undo)[2..]);
        }
        Blocked::start(cmd)
    }

    /// `semtool wait ID NUM OP UNDO` as uid and gid `id`, no supplementary groups.
    pub fn semtool_as(uid: u32, id: i32, num: u16, op: i16, undo: bool) -> Blocked {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(semtool_bin())
            .args(wait_args(id, num, op, undo));
        Blocked::start(cmd)
    }

    /// A Python program (python3 and ctypes, as a new user would write it) doing
    /// `semop(ID, [{NUM, OP, SEM_UNDO if undo}])`; it prints `ready` first and `done` when the
    /// operation went through.
    pub fn python(id: i32, num: u16, op: i16, undo: bool) -> Blocked {
        let flags = if undo { libc::SEM_UNDO } else { 0 };
        let script = format!(
            r#"import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
class sembuf(ctypes.Structure):
    _fields_ = [("sem_num", ctypes.c_ushort), ("sem_op", ctypes.c_short), ("sem_flg", ctypes.c_short)]
op = sembuf({num}, {op}, {flags})
print("ready", flush=True)
if libc.semop({id}, ctypes.byref(op), 1) != 0:
    print("errno", ctypes.get_errno(), flush=True)
    sys.exit(1)
print("done", flush=True)
"#
        );
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(script);
        Blocked::start(cmd)
    }

    /// Starts `cmd`, a program that prints `ready` and then blocks in semop (e.g. semtool
    /// run inside another IPC namespace), and waits until it is blocked.
    pub fn start(mut cmd: Command) -> Blocked {
        use std::os::unix::process::CommandExt;
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut b = Blocked {
            child: Some(child),
            lines: rx,
        };
        let first = b.next_line(COMMAND_TIMEOUT);
        assert_eq!(first.as_deref(), Some("ready"), "{cmd:?} did not start");
        b.wait_blocked();
        b
    }

    /// Waits (up to 10 s) until the process sleeps in semtimedop (or semop).
    fn wait_blocked(&mut self) {
        let pid = self.pid();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let syscall =
                std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
            let nr: i64 = syscall
                .split_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or(-1);
            let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            if (nr == libc::SYS_semtimedop || nr == libc::SYS_semop) && wchan.contains("sem") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "process {pid} did not block in semop within 10 s (syscall {syscall:?}, \
                 wchan {wchan:?})"
            );
            assert!(self.running(), "process {pid} exited instead of blocking");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits up to `limit` for the process to print `done` and exit; panics otherwise.
    #[track_caller]
    pub fn expect_woken(&mut self, limit: Duration) {
        let line = self.next_line(limit);
        assert_eq!(
            line.as_deref(),
            Some("done"),
            "process {} was not woken within {limit:?}",
            self.pid()
        );
        let child = self.child.as_mut().unwrap();
        let status = super::run::wait_timeout(child, limit)
            .unwrap_or_else(|| panic!("process {} still running after `done`", child.id()));
        assert!(status.success(), "woken process exited with {status}");
        self.child = None;
    }
}

fn wait_args(id: i32, num: u16, op: i16, undo: bool) -> Vec<String> {
    vec![
        "wait".into(),
        id.to_string(),
        num.to_string(),
        op.to_string(),
        u8::from(undo).to_string(),
    ]
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                // SAFETY: plain system call on the child's own process group.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            }
            let _ = child.wait();
        }
    }
}

/// A POSIX named semaphore `/NAME` made by this test with `semtool posix-open` (glibc's
/// `/dev/shm/sem.NAME`); unlinked when dropped.
pub struct PosixSem {
    pub name: String,
}

impl PosixSem {
    /// `sem_open("/shmfs-test-RANDOM", O_CREAT|O_EXCL, 0644, value)`.
    pub fn create(value: u32) -> PosixSem {
        let name = format!("shmfs-test-{:08x}", random_key() as u32);
        let s = PosixSem { name };
        let r = semtool(&["posix-open", &s.slash_name(), &value.to_string()]);
        assert_eq!(r, "ok", "sem_open({}) with O_CREAT", s.slash_name());
        s
    }

    /// `/NAME`, as sem_open takes it.
    pub fn slash_name(&self) -> String {
        format!("/{}", self.name)
    }

    /// `sem.NAME`: the file's name in /dev/shm and the directory's name in `posix/`.
    pub fn file_name(&self) -> String {
        format!("sem.{}", self.name)
    }

    /// `/dev/shm/sem.NAME`.
    pub fn path(&self) -> PathBuf {
        Path::new("/dev/shm").join(self.file_name())
    }

    /// sem_post, in another process.
    #[track_caller]
    pub fn post(&self) {
        assert_eq!(
            semtool(&["posix-post", &self.slash_name()]),
            "ok",
            "sem_post"
        );
    }
}

impl Drop for PosixSem {
    fn drop(&mut self) {
        let c = CString::new(self.slash_name()).unwrap();
        // SAFETY: plain library call with a NUL-terminated name.
        if unsafe { libc::sem_unlink(c.as_ptr()) } != 0 {
            let _ = std::fs::remove_file(self.path());
        }
    }
}
