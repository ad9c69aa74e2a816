//! The daemon's own memory: the system's page size, giving freed memory back to the system,
//! and anonymous memory files.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// The system's page size (the unit of `shmall` and of SHM_INFO's page counts); 4096 if the
/// system does not say.
pub fn page_size() -> u64 {
    // SAFETY: sysconf takes a plain integer and touches no memory of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// Gives back to the system the memory freed in the allocator's arenas: a large allocation
/// freed in the middle of the heap would stay resident otherwise. Does nothing where the C
/// library is not glibc.
pub fn release_freed() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory of the allocator's arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A new, empty anonymous memory file (memfd_create(2), close-on-exec) named `name`, as
/// /dev/shm's files and segments' memory are.
pub fn anonymous_file(name: &CStr) -> io::Result<File> {
    // SAFETY: a valid NUL-terminated name and flags; the result is checked.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created, is valid, and is owned by nothing else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two() && page_size() >= 4096);
    }

    #[test]
    fn anonymous_file_holds_what_is_written() {
        let mut file = anonymous_file(c"shmfs-test").unwrap();
        file.write_all(b"hello").unwrap();
        file.rewind().unwrap();
        let mut back = String::new();
        file.read_to_string(&mut back).unwrap();
        assert_eq!(back, "hello");
        release_freed();
    }
}
