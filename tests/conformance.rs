//! Conformance (docs/security.md "Under faults"): the `fsx` file-system exerciser (crate `fsx`)
//! and `fio` verify jobs (Debian package `fio`) against a POSIX `data` and a SysV `data`.
//!
//! - POSIX `data` is a regular file: fsx runs in its full mode (reads, writes, mmap reads and
//!   writes, truncation, close/reopen, fsync, sendfile, copy_file_range, fadvise). It leaves
//!   out `posix_fallocate` and hole punching: shmfs does not implement fallocate (EOPNOTSUPP),
//!   although tmpfs does.
//! - SysV `data` behaves like a block device: fsx runs in block mode (`blockmode`, which never
//!   changes the file's size, with `truncate`, `close_open` and `posix_fallocate` at weight 0
//!   as fsx requires), on a segment whose size is not a multiple of the page size: the file
//!   size fsx works with is the segment's size.
//! - fio writes with several block sizes and engines, then reads back and checks every block
//!   (crc32c, md5); the POSIX object is sized beforehand (fio would otherwise try to unlink
//!   and recreate `data`, which shmfs refuses), the SysV job covers exactly the segment.
//!
//! `fsx` is not a Debian package: `mount-scripts/test.sh` installs it with `cargo install --locked
//! fsx`.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Operations per fsx run (at least 10,000 are asked for).
const FSX_OPS: u64 = 20_000;
/// How long one fsx or fio run may take before the test calls it hung.
const TOOL_TIMEOUT: Duration = Duration::from_secs(600);

const FSX_FROM: &str = "crate fsx, `cargo install --locked fsx`";
const FIO_FROM: &str = "Debian package fio";

/// The weights every fsx run uses; `extra` adds or overrides lines of `[weights]`.
/// `splice`: whether fsx may use sendfile and copy_file_range (see the SysV test for why not).
fn fsx_config(head: &str, weights: &str, splice: bool) -> String {
    let splice_weight = if splice { 2 } else { 0 };
    format!(
        "{head}\n\
         [opsize]\n\
         max = 131072\n\
         [weights]\n\
         read = 10\n\
         write = 10\n\
         mapread = 10\n\
         mapwrite = 10\n\
         invalidate = 1\n\
         fsync = 1\n\
         fdatasync = 1\n\
         sendfile = {splice_weight}\n\
         posix_fadvise = 1\n\
         copy_file_range = {splice_weight}\n\
         posix_fallocate = 0\n\
         punch_hole = 0\n\
         {weights}\n"
    )
}

/// Runs fsx on `target` with `config` and `seed`; panics with its report unless it ends with
/// "All operations completed A-OK!".
fn run_fsx(target: &Path, config: &str, seed: u64) {
    let fsx = find_tool("fsx").expect("fsx");
    let dir = tempfile::Builder::new()
        .prefix("shmfs-fsx-")
        .tempdir()
        .unwrap();
    let conf = dir.path().join("fsx.toml");
    fs::write(&conf, config).unwrap();
    let r = run_with_timeout(
        Command::new(fsx)
            .arg("-N")
            .arg(FSX_OPS.to_string())
            .arg("-S")
            .arg(seed.to_string())
            .arg("-f")
            .arg(&conf)
            .arg("-P")
            .arg(dir.path())
            .arg(target),
        TOOL_TIMEOUT,
    );
    let out = format!("{}{}", r.stdout_str(), r.stderr);
    if !(r.ok() && out.contains("All operations completed A-OK!")) {
        let lines: Vec<&str> = out.lines().collect();
        let head: Vec<&str> = lines.iter().take(8).copied().collect();
        let tail: Vec<&str> = lines.iter().rev().take(30).rev().copied().collect();
        panic!(
            "fsx -N {FSX_OPS} -S {seed} on {} failed ({}):\n{}\n...\n{}\nconfig:\n{config}",
            target.display(),
            r.status,
            head.join("\n"),
            tail.join("\n")
        );
    }
}

#[test]
fn fsx_full_mode_on_posix_data() {
    require_fuse!();
    require_tools!("fsx" => FSX_FROM);
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, TOOL_TIMEOUT * 2);
    fs::create_dir(m.posix_dir("fsx")).expect("mkdir posix/fsx");
    let config = fsx_config(
        "flen = 1048576",
        "truncate = 5\n\
         close_open = 2",
        true,
    );
    run_fsx(&m.posix("fsx", "data"), &config, 1);
    assert!(daemon_alive(&m));
}

#[test]
fn fsx_block_mode_on_sysv_data() {
    require_fuse!();
    require_tools!("fsx" => FSX_FROM);
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, TOOL_TIMEOUT * 2);
    let size = (1 << 20) + 12_345;
    let seg = SysvSeg::private(size, 0o600);
    seg.attach().write(0, &pattern(size, 21));
    // blockmode: fsx never changes the size; it takes the file's size (the segment's) as
    // the size to work in. It requires truncate, close_open and posix_fallocate to be 0.
    // No sendfile or copy_file_range: on a SysV data opened read-write (which shmfs serves
    // itself, to keep writes within the segment), the kernel's splice reads through its page
    // cache, which writes through mmap (fsx's mapwrite, which go straight to the memory) do
    // not update. docs/security.md documents this; read() and mmap are always current.
    let config = fsx_config(
        "blockmode = true\nnosizechecks = true",
        "truncate = 0\n\
         close_open = 0",
        false,
    );
    run_fsx(&m.sysv(seg.id, "data"), &config, 2);
    assert_eq!(seg.stat().shm_segsz, size, "segment size after fsx");
    assert_eq!(
        fs::metadata(m.sysv(seg.id, "data")).unwrap().len(),
        size as u64
    );
    assert!(daemon_alive(&m));
}

/// Runs fio verify jobs on `target` of `size` bytes: random writes of mixed sizes (psync),
/// sequential writes through mmap, and two writers at once on the two halves; each job reads
/// its blocks back and checks them.
fn run_fio(target: &Path, size: u64) {
    let fio = find_tool("fio").expect("fio");
    let half = size / 2;
    // fio leaves files (verify state) in its working directory: give it one of its own.
    let cwd = tempfile::Builder::new()
        .prefix("shmfs-fio-")
        .tempdir()
        .unwrap();
    let r = run_with_timeout(
        Command::new(fio)
            .current_dir(cwd.path())
            .arg(format!("--filename={}", target.display()))
            .args([
                "--verify_state_save=0",
                "--ioengine=psync",
                "--allow_file_create=0",
                "--fallocate=none",
                "--verify_fatal=1",
                "--output-format=normal",
            ])
            .arg(format!("--size={size}"))
            .args([
                "--name=randwrite-crc32c",
                "--rw=randwrite",
                "--bsrange=512-128k",
                "--verify=crc32c",
            ])
            .args([
                "--name=mmap-write-md5",
                "--stonewall",
                "--ioengine=mmap",
                "--rw=write",
                "--bs=64k",
                "--verify=md5",
            ])
            .args([
                "--name=two-writers-crc32c",
                "--stonewall",
                "--rw=randwrite",
                "--bs=4k",
                "--verify=crc32c",
                "--numjobs=2",
            ])
            .arg(format!("--size={half}"))
            .arg(format!("--offset_increment={half}")),
        TOOL_TIMEOUT,
    );
    let out = r.stdout_str();
    let errs: Vec<&str> = out.lines().filter(|l| l.contains(" err=")).collect();
    assert!(
        r.ok() && errs.len() == 4 && errs.iter().all(|l| l.contains(" err= 0:")),
        "fio verify jobs on {} ({}): jobs {errs:#?}\nstderr: {}\nstdout:\n{out}",
        target.display(),
        r.status,
        r.stderr
    );
}

#[test]
fn fio_verify_jobs_on_posix_data() {
    require_fuse!();
    require_tools!("fio" => FIO_FROM);
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, TOOL_TIMEOUT * 2);
    let size = 64u64 << 20;
    fs::create_dir(m.posix_dir("fio")).expect("mkdir posix/fio");
    let data = m.posix("fio", "data");
    truncate(&data, size as i64).expect("truncate -s 64M posix/fio/data");
    run_fio(&data, size);
    assert_eq!(fs::metadata(&data).unwrap().len(), size);
    assert!(daemon_alive(&m));
}

#[test]
fn fio_verify_jobs_on_sysv_data() {
    require_fuse!();
    require_tools!("fio" => FIO_FROM);
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, TOOL_TIMEOUT * 2);
    let size = 64usize << 20;
    let seg = SysvSeg::private(size, 0o600);
    let data = m.sysv(seg.id, "data");
    run_fio(&data, size as u64);
    // What fio checked through the mount is what the segment holds.
    let mut through_mount = Vec::new();
    File::open(&data)
        .unwrap()
        .read_to_end(&mut through_mount)
        .unwrap();
    assert!(
        through_mount == seg.attach().all(),
        "data differs from the segment"
    );
    assert_eq!(seg.stat().shm_segsz, size);
    assert!(daemon_alive(&m));
}

/// sendfile(2) from `data` (what fsx's SENDFILE does, and Python's shutil.copyfile, and
/// copy_file_range's fallback) returns the bytes the segment holds now, also after they
/// changed while the file was open, on a read-only open (passthrough: the memory itself).
/// On a read-write open of a SysV data the kernel splices through its own page cache, which a
/// change made by another process does not update (a known limitation, in docs/security.md): there,
/// read() must still give the current bytes.
#[test]
fn sendfile_from_sysv_data_returns_the_current_bytes() {
    require_fuse!();
    let m = Mount::new();
    let _hang = KillOnHang::new(&m, TOOL_TIMEOUT * 2);
    let size = 64 * 1024;
    let seg = SysvSeg::private(size, 0o600);
    let att = seg.attach();
    let out = tempfile::tempfile().unwrap();
    let sendfile_first_page = |from: &File| -> Vec<u8> {
        let mut off: libc::off_t = 0;
        out.set_len(0).unwrap();
        (&out).seek(SeekFrom::Start(0)).unwrap(); // sendfile writes at the file position
        let n = unsafe { libc::sendfile(out.as_raw_fd(), from.as_raw_fd(), &mut off, 4096) };
        assert_eq!(n, 4096, "sendfile: {}", std::io::Error::last_os_error());
        let mut v = vec![0u8; 4096];
        std::os::unix::fs::FileExt::read_exact_at(&out, &mut v, 0).unwrap();
        v
    };
    for writable in [false, true] {
        let how = if writable { "read-write" } else { "read-only" };
        att.write(0, &[b'A'; 4096]);
        let f = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(m.sysv(seg.id, "data"))
            .unwrap();
        assert_eq!(
            sendfile_first_page(&f),
            [b'A'; 4096],
            "first sendfile ({how} open)"
        );
        att.write(0, &[b'B'; 4096]);
        let got = if writable {
            let mut v = vec![0u8; 4096];
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut v, 0).unwrap();
            v
        } else {
            sendfile_first_page(&f)
        };
        assert!(
            got == [b'B'; 4096],
            "{} from a {how} open of data after the segment changed returned {}",
            if writable { "read" } else { "sendfile" },
            if got == [b'A'; 4096] {
                "the old bytes (stale page cache)".to_string()
            } else {
                format!("other bytes: {:?}...", &got[..16])
            }
        );
    }
}
