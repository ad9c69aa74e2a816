//! The permission probe: one operation (open and read or write, chmod, shmat, IPC_SET, ...), run
//! as any uid, gid, groups and capabilities, through the mount or directly against the kernel.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

use super::run::{COMMAND_TIMEOUT, run_with_timeout};

/// The probe's C source (`c/probe.c`): `probe OP ARGS...` performs one system call (or open +
/// read/write) and prints `ok`, or the errno's name (`EACCES`, `EPERM`, ...). See `Probe`.
const PROBE_C: &str = include_str!("c/probe.c");

/// Who runs a probe: uid, primary gid, supplementary groups (empty: none) and capabilities.
#[derive(Clone, Copy, Debug)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: &'static [u32],
    /// `None`: what the uid has by nature (everything for root, nothing for others).
    /// `Some(list)`: exactly these capabilities (setpriv names, comma-separated, e.g.
    /// `"ipc_owner"`; `""` for none), whatever the uid.
    pub caps: Option<&'static str>,
}

/// The probe binary, compiled with `cc` into a temporary directory that other uids can
/// enter; removed when dropped.
pub struct Probe {
    dir: TempDir,
}

impl Probe {
    /// Compiles the probe (panics with cc's output if that fails).
    pub fn build() -> Probe {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("shmfs-probe-")
            .tempdir()
            .expect("create probe directory");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let src = dir.path().join("probe.c");
        fs::write(&src, PROBE_C).unwrap();
        let r = run_with_timeout(
            Command::new("cc")
                .arg("-O1")
                .arg("-Wall")
                .arg("-o")
                .arg(dir.path().join("probe"))
                .arg(&src),
            COMMAND_TIMEOUT,
        );
        assert!(r.ok(), "cc probe.c failed: {r:?}");
        Probe { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("probe")
    }

    /// Runs `probe ARGS...` as `who` (setpriv --reuid/--regid and --groups or --clear-groups)
    /// and returns what it printed: `ok` or an errno name. Panics if it did not run properly.
    pub fn run_as(&self, who: Ids, args: &[&str]) -> String {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", who.uid))
            .arg(format!("--regid={}", who.gid));
        if who.groups.is_empty() {
            cmd.arg("--clear-groups");
        } else {
            let list: Vec<String> = who.groups.iter().map(u32::to_string).collect();
            cmd.arg(format!("--groups={}", list.join(",")));
        }
        if let Some(caps) = who.caps {
            // Bounding set, inheritable and ambient sets: a root probe keeps exactly these
            // through exec, a non-root one gets them as ambient capabilities.
            let list = if caps.is_empty() {
                "-all".to_string()
            } else {
                let plus: Vec<String> = caps.split(',').map(|c| format!("+{c}")).collect();
                format!("-all,{}", plus.join(","))
            };
            cmd.arg(format!("--bounding-set={list}"))
                .arg(format!("--inh-caps={list}"));
            if who.uid != 0 {
                cmd.arg(format!("--ambient-caps={list}"));
            }
        }
        cmd.arg(self.path()).args(args);
        let r = run_with_timeout(&mut cmd, COMMAND_TIMEOUT);
        assert!(r.ok(), "probe {args:?} as {who:?} did not run: {r:?}");
        r.stdout_str().trim().to_string()
    }
}
