//! The IPC namespaces of rows 12 and 13 ([`Fleet`]): many namespaces, each with a few
//! processes and one SysV segment, as a host with many containers has them.
//!
//! Each namespace is one `sh` that the bench starts in a new IPC namespace (`unshare` between
//! fork and exec) and in a process group of its own; it makes a 4 KiB segment with `ipcmk`,
//! starts the namespace's other processes (`cat`s reading the bench's end of a pipe), says the
//! segment's id on its output and waits for them. Closing the pipe ends every `cat`, the `sh`
//! reaps them and exits, and the namespace and its segment go with its last process: also when the
//! bench itself dies, since the kernel then closes the pipe. Dropping the fleet does that and
//! reaps each `sh`; one that lingers has its process group killed.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use crate::common::wait_timeout;
use crate::error::{Context, Error, Result, fail};
use crate::measure::check_interrupted;

/// How long a namespace's processes have to exit once their pipe is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// One IPC namespace the bench made.
pub struct Namespace {
    /// The namespace's `sh`, leader of its process group.
    sh: Child,
    /// The write end of the pipe every process of the namespace reads; closing it ends them.
    pipe: Option<ChildStdin>,
    /// The namespace's inode number (`readlink /proc/PID/ns/ipc`): its name under `ns/`.
    pub inode: u64,
    /// The segment made inside it.
    pub shmid: i32,
}

/// The namespaces the bench made; dropping it ends them all.
#[derive(Default)]
pub struct Fleet {
    pub members: Vec<Namespace>,
}

impl Fleet {
    /// Makes `count` IPC namespaces of `procs` processes each (one `sh` and `procs - 1` `cat`s),
    /// each holding one 4 KiB SysV segment.
    pub fn create(count: usize, procs: usize) -> Result<Fleet> {
        let mut fleet = Fleet::default();
        for _ in 0..count {
            check_interrupted()?;
            let ns = Namespace::start(procs).context(|| {
                format!(
                    "make IPC namespace {} of {count} (unshare, ipcmk, {procs} processes)",
                    fleet.members.len() + 1
                )
            })?;
            fleet.members.push(ns);
        }
        Ok(fleet)
    }

    /// The processes in the fleet's namespaces, as /proc counts them now.
    pub fn processes(&self) -> usize {
        let inodes: Vec<u64> = self.members.iter().map(|n| n.inode).collect();
        let Ok(dir) = fs::read_dir("/proc") else {
            return 0;
        };
        dir.flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .filter_map(|e| fs::read_link(e.path().join("ns/ipc")).ok())
            .filter_map(|l| ipc_inode(&l.to_string_lossy()))
            .filter(|i| inodes.contains(i))
            .count()
    }

    /// Ends every namespace: all pipes closed first, so that they all exit at once, then each
    /// `sh` reaped. Fails if one had to be killed.
    pub fn stop(mut self) -> Result<()> {
        let lingered = self.end();
        if lingered > 0 {
            return fail(format!(
                "{lingered} of the bench's IPC namespaces did not end within {EXIT_TIMEOUT:?} of closing their pipe (killed)"
            ));
        }
        Ok(())
    }

    /// See [`Fleet::stop`]; returns how many had to be killed.
    fn end(&mut self) -> usize {
        for ns in &mut self.members {
            ns.pipe = None;
        }
        let mut lingered = 0;
        for mut ns in self.members.drain(..) {
            if wait_timeout(&mut ns.sh, EXIT_TIMEOUT).is_none() {
                lingered += 1;
                unsafe { libc::kill(-(ns.sh.id() as i32), libc::SIGKILL) };
                let _ = ns.sh.wait();
            }
        }
        lingered
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.end();
    }
}

impl Namespace {
    /// Starts one namespace (see the module's comment) and waits until it is ready.
    fn start(procs: usize) -> Result<Namespace> {
        // A non-interactive shell gives background jobs /dev/null as input unless told
        // otherwise: fd 3 is the pipe.
        let script = format!(
            r#"exec 3<&0
id=$(ipcmk -M 4096) || exit 1
i=1
while [ "$i" -lt {procs} ]; do
    cat <&3 >/dev/null &
    i=$((i + 1))
done
echo "$id"
wait
"#
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script])
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        unsafe {
            cmd.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWIPC) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut sh = cmd.spawn().context(|| "start sh in a new IPC namespace")?;
        let pipe = sh.stdin.take();
        let out = sh.stdout.take();
        // From here on, dropping `ns` ends it.
        let mut ns = Namespace {
            sh,
            pipe,
            inode: 0,
            shmid: -1,
        };
        let mut line = String::new();
        if let Some(out) = out {
            BufReader::new(out)
                .read_line(&mut line)
                .context(|| "read the namespace's ready line")?;
        }
        // "Shared memory id: N"
        ns.shmid = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error(format!("ipcmk said {line:?}, not `Shared memory id: N`")))?;
        let link = format!("/proc/{}/ns/ipc", ns.sh.id());
        let target = fs::read_link(&link).context(|| format!("readlink {link}"))?;
        ns.inode = ipc_inode(&target.to_string_lossy())
            .ok_or_else(|| Error(format!("{link} -> {}: not ipc:[N]", target.display())))?;
        Ok(ns)
    }
}

impl Drop for Namespace {
    /// Only for a namespace dropped alone (its start failed): the fleet ends its own.
    fn drop(&mut self) {
        if self.pipe.take().is_some() && wait_timeout(&mut self.sh, EXIT_TIMEOUT).is_none() {
            unsafe { libc::kill(-(self.sh.id() as i32), libc::SIGKILL) };
            let _ = self.sh.wait();
        }
    }
}

/// N of `ipc:[N]`.
pub fn ipc_inode(link: &str) -> Option<u64> {
    link.strip_prefix("ipc:[")?.strip_suffix(']')?.parse().ok()
}
