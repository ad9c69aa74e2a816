//! Message queues the tests own, and the kernel's and util-linux's own view of them to compare
//! `msg/` and `mqueue/` with: `MsgQueue` (a System V queue, removed on drop), `PosixMq` (a POSIX
//! queue, unlinked on drop), `Blocked` (a process of `c/ipcq.c` blocked in msgrcv or msgsnd,
//! killed on drop), `ipcs -q -i` parsed, the msg sysctls.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::cc::compile_c;
use super::errno::errno;
use super::mount::MOUNT_TIMEOUT;
use super::run::sh_ok;
use super::sysv::random_key;

/// A number of `/proc/sys/kernel/NAME` (`msgmax`, `msgmnb`, `msgmni`).
pub fn kernel_sysctl(name: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .unwrap_or_else(|e| panic!("read /proc/sys/kernel/{name}: {e}"));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("/proc/sys/kernel/{name} is {text:?}"))
}

/// What reading a queue must not change: `msgctl(IPC_STAT)`'s stime, rtime, lspid, lrpid,
/// qnum and cbytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub stime: i64,
    pub rtime: i64,
    pub lspid: i32,
    pub lrpid: i32,
    pub qnum: u64,
    pub cbytes: u64,
}

/// `msgctl(id, IPC_STAT)`.
pub fn msg_stat(id: i32) -> io::Result<libc::msqid_ds> {
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    if unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } == 0 {
        Ok(ds)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `msgsnd(id, {mtype, bytes}, flags)`.
pub fn msg_send(id: i32, mtype: i64, bytes: &[u8], flags: i32) -> io::Result<()> {
    let mut buf = vec![0u8; 8 + bytes.len()];
    buf[..8].copy_from_slice(&mtype.to_ne_bytes());
    buf[8..].copy_from_slice(bytes);
    let rc = unsafe { libc::msgsnd(id, buf.as_ptr().cast(), bytes.len(), flags) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A System V message queue of this test; removed (IPC_RMID) when dropped.
pub struct MsgQueue {
    pub id: i32,
    pub key: i32,
    removed: bool,
}

impl MsgQueue {
    /// `msgget(IPC_PRIVATE, IPC_CREAT|IPC_EXCL|mode)`.
    pub fn private(mode: u32) -> MsgQueue {
        Self::create(libc::IPC_PRIVATE, mode).expect("msgget(IPC_PRIVATE)")
    }

    /// A queue with a fresh random key.
    pub fn keyed(mode: u32) -> MsgQueue {
        for _ in 0..100 {
            match Self::create(random_key(), mode) {
                Ok(q) => return q,
                Err(e) if errno(&e) == libc::EEXIST => continue,
                Err(e) => panic!("msgget(key): {e}"),
            }
        }
        panic!("could not find a free random key");
    }

    fn create(key: i32, mode: u32) -> io::Result<MsgQueue> {
        let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | mode as i32) };
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(MsgQueue {
            id,
            key,
            removed: false,
        })
    }

    /// `ipcmk -Q -p MODE` (a random key of ipcmk's), owned by the test from then on.
    pub fn ipcmk(mode: u32) -> MsgQueue {
        let out = sh_ok(&format!("ipcmk -Q -p {mode:o}"));
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("Message queue id: "))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `Message queue id: N` in ipcmk output {out:?}"));
        MsgQueue::adopt(id)
    }

    /// Takes ownership of a queue made by other means.
    pub fn adopt(id: i32) -> MsgQueue {
        let ds = msg_stat(id).unwrap_or_else(|e| panic!("IPC_STAT of adopted msqid {id}: {e}"));
        MsgQueue {
            id,
            key: ds.msg_perm.__key,
            removed: false,
        }
    }

    /// `msgsnd` of one message; panics if it fails (blocks while the queue is full).
    #[track_caller]
    pub fn send(&self, mtype: i64, bytes: &[u8]) {
        msg_send(self.id, mtype, bytes, 0).unwrap_or_else(|e| panic!("msgsnd to {}: {e}", self.id));
    }

    /// `msgrcv(id, buf, 65536, mtype, IPC_NOWAIT)`: (its type, its bytes).
    pub fn receive(&self, mtype: i64) -> io::Result<(i64, Vec<u8>)> {
        let mut buf = vec![0u8; 8 + 65536];
        let n = unsafe {
            libc::msgrcv(
                self.id,
                buf.as_mut_ptr().cast(),
                65536,
                mtype,
                libc::IPC_NOWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let t = i64::from_ne_bytes(buf[..8].try_into().unwrap());
        Ok((t, buf[8..8 + n as usize].to_vec()))
    }

    /// `msgctl(IPC_STAT)`; panics on error.
    #[track_caller]
    pub fn stat(&self) -> libc::msqid_ds {
        msg_stat(self.id).unwrap_or_else(|e| panic!("IPC_STAT of msqid {}: {e}", self.id))
    }

    /// What looking must not change (see [`Evidence`]).
    #[track_caller]
    pub fn evidence(&self) -> Evidence {
        let ds = self.stat();
        Evidence {
            stime: ds.msg_stime,
            rtime: ds.msg_rtime,
            lspid: ds.msg_lspid,
            lrpid: ds.msg_lrpid,
            qnum: ds.msg_qnum,
            cbytes: ds.__msg_cbytes,
        }
    }

    /// `msgctl(IPC_SET)` changing only what is given.
    #[track_caller]
    pub fn set(&self, mode: Option<u32>, uid: Option<u32>, gid: Option<u32>, qbytes: Option<u64>) {
        let mut ds = self.stat();
        if let Some(m) = mode {
            ds.msg_perm.mode = m as u16;
        }
        if let Some(u) = uid {
            ds.msg_perm.uid = u;
        }
        if let Some(g) = gid {
            ds.msg_perm.gid = g;
        }
        if let Some(b) = qbytes {
            ds.msg_qbytes = b;
        }
        let r = unsafe { libc::msgctl(self.id, libc::IPC_SET, &mut ds) };
        assert_eq!(
            r,
            0,
            "IPC_SET on msqid {}: {}",
            self.id,
            io::Error::last_os_error()
        );
    }

    /// Whether the queue still exists (IPC_STAT does not fail with EINVAL or EIDRM).
    pub fn exists(&self) -> bool {
        msg_stat(self.id).is_ok()
    }

    /// The queue was removed by other means (rmdir through the mount, ipcrm).
    pub fn forget(&mut self) {
        self.removed = true;
    }
}

impl Drop for MsgQueue {
    fn drop(&mut self) {
        if !self.removed {
            unsafe {
                libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
}

/// `ipcs -q -i ID` as name -> value: `uid`, `gid`, `cuid`, `cgid`, `mode`, `cbytes`, `qbytes`,
/// `qnum`, `lspid`, `lrpid`, and the times as ipcs writes them (`send_time`, `rcv_time`,
/// `change_time`: `Not set` or a ctime(3)-like date).
pub fn ipcs_q_i(id: i32) -> BTreeMap<String, String> {
    let out = sh_ok(&format!("ipcs -q -i {id}"));
    let mut fields = BTreeMap::new();
    for line in out.lines() {
        let line = line.trim_end();
        if let Some((name, value)) = line.split_once('=')
            && name.ends_with("_time")
        {
            fields.insert(name.to_string(), value.trim().to_string());
            continue;
        }
        for word in line.split_whitespace() {
            if let Some((name, value)) = word.split_once('=') {
                fields.insert(name.to_string(), value.to_string());
            }
        }
    }
    assert!(
        fields.contains_key("qbytes") && fields.contains_key("change_time"),
        "cannot parse `ipcs -q -i {id}`: {out:?}"
    );
    fields
}

/// A time in seconds since the epoch as `ipcs -i` writes it (`Not set` for 0).
pub fn ipcs_time(t: i64) -> String {
    if t == 0 {
        return "Not set".into();
    }
    sh_ok(&format!("date -d @{t} '+%a %b %e %H:%M:%S %Y'"))
        .trim()
        .to_string()
}

/// The msqids `ipcs -q` lists.
pub fn ipcs_q_ids() -> BTreeSet<i32> {
    sh_ok("ipcs -q")
        .lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("cannot parse `ipcs -q` line {l:?}"))
        })
        .collect()
}

/// The source of `ipcq` (its opening comment lists its modes).
pub const IPCQ_C: &str = include_str!("c/ipcq.c");

/// The command name of `ipcq`, as `/proc/PID/comm` and `waiters` show it.
pub const IPCQ_COMM: &str = "ipcq";

/// Path of the compiled `ipcq`, compiled on first use, once per test binary.
pub fn ipcq_bin() -> &'static Path {
    static BIN_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN_PATH.get_or_init(|| compile_c(IPCQ_COMM, IPCQ_C))
}

/// An `ipcq recv` or `ipcq send` process, blocked (or about to block) in its call; killed and
/// reaped when dropped.
pub struct Blocked {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    pub pid: u32,
}

impl Blocked {
    /// `ipcq recv MSQID TYPE SIZE` (as `uid`, if given): blocks in msgrcv.
    pub fn receiver(uid: Option<u32>, msqid: i32, mtype: i64, size: usize) -> Blocked {
        Self::start(
            uid,
            &[
                "recv",
                &msqid.to_string(),
                &mtype.to_string(),
                &size.to_string(),
            ],
        )
    }

    /// `ipcq send MSQID TYPE SIZE` (as `uid`, if given): blocks in msgsnd while the queue is
    /// full.
    pub fn sender(uid: Option<u32>, msqid: i32, mtype: i64, size: usize) -> Blocked {
        Self::start(
            uid,
            &[
                "send",
                &msqid.to_string(),
                &mtype.to_string(),
                &size.to_string(),
            ],
        )
    }

    fn start(uid: Option<u32>, args: &[&str]) -> Blocked {
        let mut cmd = match uid {
            Some(id) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={id}"))
                    .arg(format!("--regid={id}"))
                    .arg("--clear-groups")
                    .arg(ipcq_bin());
                c
            }
            None => Command::new(ipcq_bin()),
        };
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ipcq {args:?}: {e}"));
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
        let mut blocked = Blocked {
            child: Some(child),
            lines: rx,
            pid: 0,
        };
        let ready = blocked
            .next_line(MOUNT_TIMEOUT)
            .unwrap_or_else(|| panic!("ipcq {args:?} printed no `ready` line"));
        blocked.pid = ready
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("ipcq {args:?} printed {ready:?}"));
        blocked
    }

    /// The next line the process prints, if it prints one within `timeout` (`received T N`,
    /// `sent`, `error ERRNO` once its call returned).
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Waits (up to 10 s) until the process sleeps in the kernel in a message queue call
    /// (`/proc/PID/wchan` is `do_msgrcv` or `do_msgsnd`); panics if it does not.
    #[track_caller]
    pub fn wait_blocked(&self) {
        let wchan = format!("/proc/{}/wchan", self.pid);
        let start = std::time::Instant::now();
        loop {
            let now = fs::read_to_string(&wchan).unwrap_or_default();
            if now.contains("msgrcv") || now.contains("msgsnd") {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ipcq {} does not block in msgrcv/msgsnd (wchan {now:?})",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A name of the test's own for a POSIX queue, without its `/`: `shmfs-t-XXXXXXXX`.
pub fn unique_mq_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmfs-t-{:08x}{:x}",
        random_key() as u32,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The times of a file as `fstat` gives them, with nanoseconds: (atime, mtime, ctime).
pub type Times = ((i64, i64), (i64, i64), (i64, i64));

/// A POSIX message queue of this test in the test's own IPC namespace, open read-write;
/// unlinked (`mq_unlink`) and closed when dropped.
pub struct PosixMq {
    /// Without the leading `/`: its name under `mqueue/`.
    pub name: String,
    pub fd: libc::mqd_t,
    unlinked: bool,
}

impl PosixMq {
    /// `mq_open("/NAME", O_CREAT|O_EXCL|O_RDWR, mode, {maxmsg, msgsize})`, then `fchmod` to
    /// `mode` (the umask aside).
    pub fn create(mode: u32, maxmsg: i64, msgsize: i64) -> PosixMq {
        let name = unique_mq_name();
        let c = CString::new(format!("/{name}")).unwrap();
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = maxmsg;
        attr.mq_msgsize = msgsize;
        let fd = unsafe {
            libc::mq_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                mode as libc::mode_t,
                &mut attr as *mut libc::mq_attr,
            )
        };
        assert!(
            fd >= 0,
            "mq_open(/{name}, O_CREAT): {}",
            io::Error::last_os_error()
        );
        let q = PosixMq {
            name,
            fd,
            unlinked: false,
        };
        let r = unsafe { libc::fchmod(fd, mode as libc::mode_t) };
        assert_eq!(r, 0, "fchmod of the queue: {}", io::Error::last_os_error());
        q
    }

    /// `mq_send` of `bytes` with priority `prio`; panics if it fails.
    #[track_caller]
    pub fn send(&self, bytes: &[u8], prio: u32) {
        let r = unsafe { libc::mq_send(self.fd, bytes.as_ptr().cast(), bytes.len(), prio) };
        assert_eq!(r, 0, "mq_send: {}", io::Error::last_os_error());
    }

    /// `mq_getattr`: (maxmsg, msgsize, curmsgs).
    #[track_caller]
    pub fn attr(&self) -> (i64, i64, i64) {
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::mq_getattr(self.fd, &mut attr) };
        assert_eq!(r, 0, "mq_getattr: {}", io::Error::last_os_error());
        (attr.mq_maxmsg, attr.mq_msgsize, attr.mq_curmsgs)
    }

    /// `fstat` of the queue's descriptor: its times, what looking must not move.
    #[track_caller]
    pub fn times(&self) -> Times {
        let st = self.fstat();
        (
            (st.st_atime, st.st_atime_nsec),
            (st.st_mtime, st.st_mtime_nsec),
            (st.st_ctime, st.st_ctime_nsec),
        )
    }

    /// `fstat` of the queue's descriptor.
    #[track_caller]
    pub fn fstat(&self) -> libc::stat {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::fstat(self.fd, &mut st) };
        assert_eq!(r, 0, "fstat of the queue: {}", io::Error::last_os_error());
        st
    }

    /// `mq_receive` without waiting: the message's bytes.
    pub fn receive(&self) -> io::Result<Vec<u8>> {
        let (_, msgsize, _) = self.attr();
        let mut buf = vec![0u8; msgsize as usize];
        let mut prio = 0u32;
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        let mut old: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_flags = libc::O_NONBLOCK as i64;
        unsafe { libc::mq_setattr(self.fd, &attr, &mut old) };
        let n = unsafe { libc::mq_receive(self.fd, buf.as_mut_ptr().cast(), buf.len(), &mut prio) };
        let err = io::Error::last_os_error();
        unsafe { libc::mq_setattr(self.fd, &old, std::ptr::null_mut()) };
        if n < 0 {
            return Err(err);
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// The queue was unlinked by other means (rmdir through the mount).
    pub fn forget(&mut self) {
        self.unlinked = true;
    }
}

impl Drop for PosixMq {
    fn drop(&mut self) {
        unsafe { libc::mq_close(self.fd) };
        if !self.unlinked {
            let c = CString::new(format!("/{}", self.name)).unwrap();
            unsafe { libc::mq_unlink(c.as_ptr()) };
        }
    }
}

/// `mq_open("/NAME", O_RDONLY)` without O_CREAT: Ok if the queue exists (closed again), else
/// the error (ENOENT once it is unlinked).
pub fn mq_exists(name: &str) -> io::Result<()> {
    let c = CString::new(format!("/{name}")).unwrap();
    let fd = unsafe { libc::mq_open(c.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    unsafe { libc::mq_close(fd) };
    Ok(())
}
