//! Churn (docs/security.md "Under faults"): while `stress-ng --shm-sysv 2 --shm 2` creates and
//! destroys segments and POSIX objects, shell loops (`ls -lR`, `cat */*/stat`,
//! `cat */*/data`) and readers run through the mount, and the test itself keeps recreating
//! segments and objects that reuse the same shmid or name, filled with a pattern that names
//! them. It checks that:
//!
//! - the daemon stays up and answers at the end;
//! - every error a caller sees is ENOENT or ESTALE (something vanished): any other message of
//!   the shell loops fails the test;
//! - a reader never receives bytes of another segment or object: every byte read through
//!   `sysv/ID/data` or `posix/NAME/data` of one of the test's own objects matches the pattern
//!   of that ID or NAME (and, for the test's own checks, of that very generation), and every
//!   `stat` names the object of its directory.
//!
//! Everything happens in a world of its own: `unshare --ipc --mount` with a private tmpfs on
//! /dev/shm holds stress-ng (started in it with `nsenter`), the daemon shows that world
//! (`--pid`), and the test's threads that make segments enter its IPC namespace (`setns`).
//! When the world ends, whatever stress-ng left behind goes with it.
//!
//! `SHMFS_CHURN_SECS` sets how long it runs (default 60).

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// How long the churn lasts unless `SHMFS_CHURN_SECS` says otherwise.
const DEFAULT_SECS: u64 = 60;
/// How long one shell command of a loop may take before the test calls it hung.
const LOOP_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// First 8 bytes of every segment and object the test fills: marks it as the test's own.
const MAGIC: u64 = 0x5348_4d46_5041_5454;
/// Size of the test's segments and objects: not a multiple of the page size.
const SIZE: usize = 16 * 4096 + 8;
const WORDS: usize = SIZE / 8;
/// The test's POSIX objects are named `churn-pat-N`; their pattern uses `POSIX_IDENT + N`.
const POSIX_PREFIX: &str = "churn-pat-";
const POSIX_IDENT: u32 = 0x4000_0000;

fn churn_secs() -> u64 {
    match std::env::var("SHMFS_CHURN_SECS") {
        Err(_) => DEFAULT_SECS,
        Ok(s) => s
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("SHMFS_CHURN_SECS={s:?}: want a number of seconds > 0")),
    }
}

// ---------------------------------------------------------------------------------------------
// The pattern
// ---------------------------------------------------------------------------------------------

/// Word `i` (> 0) of generation `generation` of object `ident` (a shmid, or POSIX_IDENT + N).
fn word(ident: u32, generation: u32, i: usize) -> u64 {
    (u64::from(ident) << 32) | (u64::from(generation & 0xffff) << 16) | (i as u64 & 0xffff)
}

fn pattern_bytes(ident: u32, generation: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(SIZE);
    v.extend_from_slice(&MAGIC.to_le_bytes());
    for i in 1..WORDS {
        v.extend_from_slice(&word(ident, generation, i).to_le_bytes());
    }
    v
}

/// Checks bytes read from the start of the `data` of object `ident`. `Ok(None)`: not one of
/// the test's (no MAGIC); `Ok(Some(generation))`: the test's, and every word is right for
/// that object; `Err`: bytes of something else.
fn check(bytes: &[u8], ident: u32) -> Result<Option<u32>, String> {
    if bytes.len() < 8 || bytes[..8] != MAGIC.to_le_bytes() {
        return Ok(None);
    }
    if bytes.len() != SIZE {
        return Err(format!(
            "read {} bytes of a {SIZE}-byte object (ident {ident:#x})",
            bytes.len()
        ));
    }
    let w = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
    let generation = ((w(1) >> 16) & 0xffff) as u32;
    for i in 1..WORDS {
        let got = w(i);
        if got != word(ident, generation, i) {
            return Err(format!(
                "word {i} is {got:#018x} (object {:#x}, generation {}, word {}), expected \
                 object {ident:#x}, generation {generation}, word {i}: bytes of another object",
                got >> 32,
                (got >> 16) & 0xffff,
                got & 0xffff
            ));
        }
    }
    Ok(Some(generation))
}

/// Reads from the start of `f` up to one byte more than SIZE.
fn read_head(f: &File) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    f.take(SIZE as u64 + 1).read_to_end(&mut v)?;
    Ok(v)
}

fn read_head_at(f: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; SIZE + 1];
    let mut got = 0;
    loop {
        let n = f.read_at(&mut buf[got..], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// An error a caller may see when what it names has just vanished.
fn vanished(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESTALE))
}

// ---------------------------------------------------------------------------------------------
// The world (common::World): private IPC and mount namespaces with a tmpfs of their own on
// /dev/shm, large enough for stress-ng
// ---------------------------------------------------------------------------------------------

/// Enters the world's IPC namespace on the calling thread only.
fn enter_ipc_namespace(ns: &Path) {
    let f = File::open(ns).unwrap_or_else(|e| panic!("open {}: {e}", ns.display()));
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWIPC) };
    assert_eq!(
        r,
        0,
        "setns({}): {}",
        ns.display(),
        io::Error::last_os_error()
    );
}

/// stress-ng, run in its own process group; killed (the whole group) if still running when
/// dropped.
struct Stress {
    child: Option<Child>,
    log: PathBuf,
}

impl Stress {
    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut().unwrap();
        let status = wait_timeout(child, limit);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Stress {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the loops and checkers found
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Findings {
    /// Everything that must not happen, with what was seen.
    problems: Mutex<Vec<String>>,
    problem_count: AtomicU64,
}

impl Findings {
    fn problem(&self, what: String) {
        let n = self.problem_count.fetch_add(1, Ordering::Relaxed);
        if n < 20_000 {
            self.problems.lock().unwrap().push(what);
        }
    }

    /// The problems grouped by kind (numbers left out), with a count and one example each.
    fn summary(&self) -> String {
        let mut kinds: std::collections::BTreeMap<String, (u64, String)> = Default::default();
        for p in self.problems.lock().unwrap().iter() {
            let mut kind = String::new();
            for ch in p.chars() {
                if !ch.is_ascii_digit() {
                    kind.push(ch);
                } else if !kind.ends_with('#') {
                    kind.push('#');
                }
            }
            kinds.entry(kind).or_insert((0, p.clone())).0 += 1;
        }
        let mut lines: Vec<(u64, String)> = kinds
            .into_values()
            .map(|(n, example)| (n, format!("{n:>7} x {example}")))
            .collect();
        lines.sort_by_key(|l| std::cmp::Reverse(l.0));
        lines
            .into_iter()
            .map(|(_, l)| l)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Default)]
struct Counters {
    loop_runs: AtomicU64,
    vanished_messages: AtomicU64,
    own_checks: AtomicU64,
    shmid_reuses: AtomicU64,
    reader_checks: AtomicU64,
    stress_sysv_seen: AtomicU64,
    stress_posix_seen: AtomicU64,
}

/// One shell loop: runs `script` again and again until `deadline`; every line it writes to
/// stderr must say ENOENT or ESTALE.
fn shell_loop(name: &'static str, script: String, deadline: Instant, f: &Findings, c: &Counters) {
    while Instant::now() < deadline {
        let r = run_with_timeout(
            Command::new("sh").arg("-c").arg(&script),
            LOOP_COMMAND_TIMEOUT,
        );
        c.loop_runs.fetch_add(1, Ordering::Relaxed);
        for line in r.stderr.lines() {
            if line.ends_with(": No such file or directory")
                || line.ends_with(": Stale file handle")
            {
                c.vanished_messages.fetch_add(1, Ordering::Relaxed);
            } else {
                f.problem(format!("`{name}` said: {line}"));
            }
        }
    }
}

/// Recreates a segment again and again, each time with the shmid of the one before (set
/// through /proc/sys/kernel/shm_next_id, in the world's IPC namespace), and checks what the
/// mount shows of it: the new directory reads as the new generation, and the `data` of the
/// previous generation, still open, reads as the previous one.
fn sysv_recycler(ns: PathBuf, mnt: PathBuf, deadline: Instant, f: &Findings, c: &Counters) {
    enter_ipc_namespace(&ns);
    let mut held: Option<(i32, u32, File)> = None;
    let mut next_id: Option<i32> = None;
    let mut generation = 0u32;
    while Instant::now() < deadline {
        generation += 1;
        if let Some(id) = next_id
            && let Err(e) = fs::write("/proc/sys/kernel/shm_next_id", id.to_string())
        {
            f.problem(format!("cannot set shm_next_id: {e}"));
            return;
        }
        let mut seg = SysvSeg::private(SIZE, 0o600);
        let ident = seg.id as u32;
        if next_id == Some(seg.id) {
            c.shmid_reuses.fetch_add(1, Ordering::Relaxed);
        }
        {
            let bytes = pattern_bytes(ident, generation);
            let att = seg.attach();
            att.write(8, &bytes[8..]);
            std::sync::atomic::fence(Ordering::SeqCst);
            att.write(0, &bytes[..8]);
        }
        let path = mnt.join(format!("sysv/{}/data", seg.id));
        let what = format!("sysv/{}/data (generation {generation})", seg.id);
        let check_own = |bytes: io::Result<Vec<u8>>, how: &str| match bytes {
            Err(e) => f.problem(format!("{how} {what} of the test's own live segment: {e}")),
            Ok(b) => match check(&b, ident) {
                Ok(Some(g)) if g == generation & 0xffff => {
                    c.own_checks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(g)) => f.problem(format!(
                    "{how} {what} returned generation {g}: the bytes of the removed segment \
                     that had this shmid before"
                )),
                Ok(None) => f.problem(format!("{how} {what} returned bytes without the pattern")),
                Err(e) => f.problem(format!("{how} {what}: {e}")),
            },
        };
        let ro = File::open(&path);
        check_own(
            ro.as_ref()
                .map_err(|e| io::Error::new(e.kind(), e.to_string()))
                .and_then(read_head),
            "read (read-only open)",
        );
        let rw = OpenOptions::new().read(true).write(true).open(&path);
        check_own(
            rw.as_ref()
                .map_err(|e| io::Error::new(e.kind(), e.to_string()))
                .and_then(read_head_at),
            "pread (read-write open)",
        );
        if let Some((old_id, old_gen, old)) = held.take() {
            match read_head_at(&old).map(|b| check(&b, old_id as u32)) {
                Ok(Ok(Some(g))) if g == old_gen & 0xffff => {
                    c.own_checks.fetch_add(1, Ordering::Relaxed);
                }
                other => f.problem(format!(
                    "the still open data of removed sysv/{old_id} (generation {old_gen}) now \
                     reads {other:?}"
                )),
            }
        }
        seg.remove();
        next_id = Some(seg.id);
        if let Ok(ro) = ro {
            held = Some((seg.id, generation, ro));
        }
    }
}

/// The same for a POSIX object that is unlinked and created again under the same name.
fn posix_recycler(shm: PathBuf, mnt: PathBuf, deadline: Instant, f: &Findings, c: &Counters) {
    let name = format!("{POSIX_PREFIX}0");
    let ident = POSIX_IDENT;
    let direct = shm.join(&name);
    let path = mnt.join("posix").join(&name).join("data");
    let mut held: Option<(u32, File)> = None;
    let mut generation = 0u32;
    while Instant::now() < deadline {
        generation += 1;
        let bytes = pattern_bytes(ident, generation);
        let mut obj = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&direct)
        {
            Ok(o) => o,
            Err(e) => {
                f.problem(format!("cannot create {}: {e}", direct.display()));
                return;
            }
        };
        obj.write_all_at(&bytes[8..], 8).unwrap();
        obj.write_all_at(&bytes[..8], 0).unwrap();
        obj.flush().unwrap();
        let what = format!("posix/{name}/data (generation {generation})");
        for writable in [false, true] {
            let got = OpenOptions::new()
                .read(true)
                .write(writable)
                .open(&path)
                .and_then(|f| read_head(&f));
            match got.map(|b| check(&b, ident)) {
                Ok(Ok(Some(g))) if g == generation & 0xffff => {
                    c.own_checks.fetch_add(1, Ordering::Relaxed);
                }
                other => f.problem(format!(
                    "reading {what} (writable open: {writable}) of the test's own live object: \
                     {other:?}"
                )),
            }
        }
        if let Some((old_gen, old)) = held.take() {
            match read_head_at(&old).map(|b| check(&b, ident)) {
                Ok(Ok(Some(g))) if g == old_gen & 0xffff => {
                    c.own_checks.fetch_add(1, Ordering::Relaxed);
                }
                other => f.problem(format!(
                    "the still open data of unlinked posix/{name} (generation {old_gen}) now \
                     reads {other:?}"
                )),
            }
        }
        match File::open(&path) {
            Ok(o) => held = Some((generation, o)),
            Err(e) => f.problem(format!("open {what}: {e}")),
        }
        fs::remove_file(&direct).unwrap();
        drop(obj);
    }
}

/// Reads whatever is listed, as someone browsing the mount would, and checks what it gets:
/// the test's own objects carry the pattern of the ID or NAME in their path, and every `stat`
/// names its own object. Errors other than ENOENT/ESTALE are problems.
fn reader(mnt: PathBuf, deadline: Instant, f: &Findings, c: &Counters) {
    while Instant::now() < deadline {
        for kind in ["sysv", "posix"] {
            let entries = match fs::read_dir(mnt.join(kind)) {
                Ok(d) => d,
                Err(e) => {
                    f.problem(format!("ls {kind}: {e}"));
                    continue;
                }
            };
            let names: Vec<String> = entries
                .filter_map(|e| match e {
                    Ok(e) => Some(e.file_name().to_string_lossy().into_owned()),
                    Err(e) => {
                        if !vanished(&e) {
                            f.problem(format!("readdir {kind}: {e}"));
                        }
                        None
                    }
                })
                .collect();
            for name in names {
                let (ident, stat_line) = if kind == "sysv" {
                    let Ok(id) = name.parse::<i32>() else {
                        f.problem(format!("sysv/ lists {name:?}"));
                        continue;
                    };
                    (Some(id as u32), format!("shmid: {id}"))
                } else {
                    let ident = name
                        .strip_prefix(POSIX_PREFIX)
                        .and_then(|n| n.parse::<u32>().ok())
                        .map(|n| POSIX_IDENT + n);
                    if name.starts_with("stress-ng") {
                        c.stress_posix_seen.fetch_add(1, Ordering::Relaxed);
                    }
                    (ident, format!("name: {name}"))
                };
                let dir = mnt.join(kind).join(&name);
                match fs::read_to_string(dir.join("stat")) {
                    Ok(text) => {
                        if !text.lines().any(|l| l == stat_line) {
                            f.problem(format!("{kind}/{name}/stat has no `{stat_line}`: {text:?}"));
                        }
                    }
                    Err(e) if vanished(&e) => {}
                    Err(e) => f.problem(format!("cat {kind}/{name}/stat: {e}")),
                }
                let bytes = File::open(dir.join("data")).and_then(|d| read_head(&d));
                match bytes {
                    Ok(b) => {
                        c.reader_checks.fetch_add(1, Ordering::Relaxed);
                        match ident.map(|i| check(&b, i)) {
                            Some(Err(e)) => f.problem(format!("cat {kind}/{name}/data: {e}")),
                            Some(Ok(None)) | None if kind == "sysv" => {
                                c.stress_sysv_seen.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                    }
                    Err(e) if vanished(&e) => {}
                    Err(e) => f.problem(format!("cat {kind}/{name}/data: {e}")),
                }
            }
        }
    }
}

#[test]
fn churn_keeps_the_daemon_up_with_only_vanishing_errors_and_no_foreign_bytes() {
    require_fuse!();
    require_tools!(
        "stress-ng" => "Debian package stress-ng",
        "unshare" => "Debian package util-linux",
        "nsenter" => "Debian package util-linux",
    );
    let secs = churn_secs();
    let world = World::with_shm_size("1g");
    let m = Mount::with_args(&[], &["--pid".to_string(), world.pid().to_string()], false);
    let mnt = m.path().to_path_buf();
    let _hang = KillOnHang::new(&m, Duration::from_secs(secs) + Duration::from_secs(300));

    let stress_log = tempfile::NamedTempFile::new().unwrap();
    let mut stress = {
        let mut cmd = world.command("stress-ng");
        cmd.args(["--shm-sysv", "2", "--shm", "2", "--timeout"])
            .arg(format!("{secs}s"))
            .args(["--temp-path", "/tmp", "--metrics-brief"])
            .stdin(Stdio::null())
            .stdout(stress_log.reopen().unwrap())
            .stderr(stress_log.reopen().unwrap())
            .process_group(0);
        Stress {
            child: Some(cmd.spawn().expect("start stress-ng in the world")),
            log: stress_log.path().to_path_buf(),
        }
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let findings = Arc::new(Findings::default());
    let counters = Arc::new(Counters::default());

    let mut threads = Vec::new();
    let m_q = q(&mnt);
    let loops: [(&'static str, String); 4] = [
        ("ls -lR", format!("ls -lR {m_q} > /dev/null")),
        (
            "cat */*/stat",
            format!("cd {m_q} && cat */*/stat > /dev/null"),
        ),
        (
            "cat */*/data",
            format!("cd {m_q} && cat */*/data > /dev/null"),
        ),
        (
            "cat */*/perm */*/attached index index.json limits",
            format!("cd {m_q} && cat */*/perm */*/attached index index.json limits > /dev/null"),
        ),
    ];
    for (name, script) in loops {
        let (f, c) = (findings.clone(), counters.clone());
        threads.push(std::thread::spawn(move || {
            shell_loop(name, script, deadline, &f, &c)
        }));
    }
    {
        let (f, c, ns, mnt) = (
            findings.clone(),
            counters.clone(),
            world.ipc_ns(),
            mnt.clone(),
        );
        threads.push(std::thread::spawn(move || {
            sysv_recycler(ns, mnt, deadline, &f, &c)
        }));
    }
    {
        let (f, c, shm, mnt) = (
            findings.clone(),
            counters.clone(),
            world.shm_dir(),
            mnt.clone(),
        );
        threads.push(std::thread::spawn(move || {
            posix_recycler(shm, mnt, deadline, &f, &c)
        }));
    }
    for _ in 0..2 {
        let (f, c, mnt) = (findings.clone(), counters.clone(), mnt.clone());
        threads.push(std::thread::spawn(move || reader(mnt, deadline, &f, &c)));
    }
    let mut panics = Vec::new();
    for t in threads {
        if let Err(e) = t.join() {
            panics.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            );
        }
    }
    let stress_status = stress.wait(Duration::from_secs(60));
    let elapsed = start.elapsed();

    // The daemon is up and answers.
    assert!(
        daemon_alive(&m),
        "the daemon died during the churn; log:\n{}",
        m.log()
    );
    let limits = m.p("limits");
    let (text, took) = within(
        Duration::from_secs(10),
        "cat limits after the churn",
        move || fs::read_to_string(limits),
    );
    assert!(
        text.as_ref().is_ok_and(|t| t.starts_with("shmmax: ")),
        "limits after the churn: {text:?}"
    );
    let sysv = m.p("sysv");
    let (listing, _) = within(
        Duration::from_secs(10),
        "ls sysv after the churn",
        move || fs::read_dir(sysv).map(|d| d.count()),
    );
    listing.expect("ls sysv after the churn");
    assert!(!m.log().contains("panicked"), "daemon log:\n{}", m.log());

    let c = &counters;
    let summary = format!(
        "{elapsed:?}: {} shell loop runs ({} ENOENT/ESTALE messages), {} checks of the test's \
         own objects ({} shmid reuses), {} reads by the readers, stress-ng objects seen: {} \
         sysv, {} posix; cat limits took {took:?} after; stress-ng: {stress_status:?}",
        c.loop_runs.load(Ordering::Relaxed),
        c.vanished_messages.load(Ordering::Relaxed),
        c.own_checks.load(Ordering::Relaxed),
        c.shmid_reuses.load(Ordering::Relaxed),
        c.reader_checks.load(Ordering::Relaxed),
        c.stress_sysv_seen.load(Ordering::Relaxed),
        c.stress_posix_seen.load(Ordering::Relaxed),
    );
    eprintln!("churn: {summary}");
    assert!(
        panics.is_empty(),
        "threads of the test panicked: {panics:#?}\n{summary}"
    );
    let count = findings.problem_count.load(Ordering::Relaxed);
    assert!(
        count == 0,
        "{count} problems during the churn; by kind (count x one example):\n{}\n{summary}\n\
         stress-ng:\n{}",
        findings.summary(),
        stress.output()
    );
    assert!(
        c.stress_sysv_seen.load(Ordering::Relaxed) > 0
            && c.stress_posix_seen.load(Ordering::Relaxed) > 0,
        "stress-ng's objects never showed in the mount: no churn happened. {summary}\n\
         stress-ng:\n{}",
        stress.output()
    );
    assert!(
        c.shmid_reuses.load(Ordering::Relaxed) > 0,
        "no shmid was ever reused: {summary}"
    );
}
