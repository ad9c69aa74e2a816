//! The tests' programs in C (`c/*.c`: `shmholder`, `nsipc`), compiled with `cc` on first use,
//! once per test binary.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;
use std::process::Command;

use super::run::{COMMAND_TIMEOUT, run_with_timeout};
use super::sysv::random_key;

/// Compiles `source` with `cc` into a program named `name` (its `/proc/PID/comm`) and returns
/// its path, or the path of the one compiled before from the same source. Callers keep the
/// path in a `OnceLock`, so a test binary compiles each program once.
///
/// The program goes to a directory of `/tmp` named after `name`, this process's euid and a hash
/// of the source, not under the target dir: tests run it as other users and from containers
/// (which keep the machine's /tmp), who may not reach a clone made in a private directory
/// (`mktemp -d` makes it 0700). The directory is ours and 0755; one that is not (planted by
/// someone else) is refused, not used. Concurrent test binaries compile to names of their own
/// and rename into place.
pub fn compile_c(name: &str, source: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut h);
    let euid = own_euid();
    let dir = std::env::temp_dir().join(format!("shmfs-test-{name}-{euid}-{:016x}", h.finish()));
    match fs::DirBuilder::new().mode(0o755).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("create {name}'s directory {dir:?}: {e}"),
    }
    let md = fs::symlink_metadata(&dir).unwrap_or_else(|e| panic!("stat {name}'s directory: {e}"));
    assert!(
        md.is_dir() && md.uid() == euid && md.mode() & 0o7777 == 0o755,
        "{dir:?} is not a 0755 directory of ours (planted?): remove it and run again"
    );
    let bin = dir.join(name);
    if bin.exists() {
        return bin;
    }
    let tag = format!("{}-{}", std::process::id(), random_key() as u32);
    let src = dir.join(format!("{name}-{tag}.c"));
    let tmp = dir.join(format!("{name}-{tag}.out"));
    fs::write(&src, source).unwrap_or_else(|e| panic!("write {name}'s source: {e}"));
    let r = run_with_timeout(
        Command::new("cc")
            .arg("-O1")
            .arg("-Wall")
            .arg("-o")
            .arg(&tmp)
            .arg(&src),
        COMMAND_TIMEOUT,
    );
    let _ = fs::remove_file(&src);
    assert!(r.ok(), "cc of {name} failed (is gcc installed?): {r:?}");
    fs::rename(&tmp, &bin).unwrap_or_else(|e| panic!("install {name}: {e}"));
    bin
}

/// This process's effective uid, as /proc says it (no unsafe call needed).
fn own_euid() -> u32 {
    fs::metadata("/proc/self").map_or(0, |md| md.uid())
}
