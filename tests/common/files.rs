//! Plain file operations on paths of a mount, with failures that name the path: listing,
//! reading, one-call writes, truncate; and the byte pattern the tests write.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Names in a directory.
pub fn ls(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("ls {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .collect()
}

/// Asserts that `dir` lists at least `names` (shmfs(5) documents further entries, such as
/// `attached`, `index` and `index.json`, beyond docs/design.md §1's layout).
#[track_caller]
pub fn assert_has_entries(dir: &Path, names: &[&str]) {
    let have = ls(dir);
    let missing: Vec<&&str> = names.iter().filter(|n| !have.contains(**n)).collect();
    assert!(
        missing.is_empty(),
        "`ls {}` shows {have:?}, missing {missing:?}",
        dir.display()
    );
}

pub fn read_text(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("cat {}: {e}", p.display()))
}

/// truncate(2) of a path.
pub fn truncate(p: &Path, len: i64) -> io::Result<()> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    if unsafe { libc::truncate(c.as_ptr(), len) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `bytes` in ONE write(2) call to `p` opened O_WRONLY (no O_TRUNC).
pub fn write_once(p: &Path, bytes: &[u8]) -> io::Result<usize> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().write(true).open(p)?;
    f.write(bytes)
}

/// A deterministic, non-repeating-looking pattern of `len` bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8) ^ seed as usize) as u8)
        .collect()
}
