//! POSIX shared memory objects (and the other files /dev/shm may hold) that a test creates in
//! its private shm directory.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Creates `dir/name` as shm_open(O_CREAT|O_EXCL) would, with exactly `mode` and `content`.
pub fn create_posix(dir: &Path, name: &str, mode: u32, content: &[u8]) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let p = dir.join(name);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&p)
        .unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    f.set_permissions(fs::Permissions::from_mode(mode)).unwrap(); // undo the umask
    f.write_all(content).unwrap();
    p
}

/// mkfifo(path, mode).
pub fn mkfifo(p: &Path, mode: u32) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let r = unsafe { libc::mkfifo(c.as_ptr(), mode) };
    assert_eq!(
        r,
        0,
        "mkfifo {}: {}",
        p.display(),
        io::Error::last_os_error()
    );
}
