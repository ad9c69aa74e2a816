//! User and group names to ids, through the C library (so NSS sources count).

use std::ffi::CString;

const BUF_LEN: usize = 16 * 1024;

/// The uid of a user name, if the name exists.
pub fn user_id(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: passwd is plain old data; getpwnam_r fills it using buf, both outlive the call.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; BUF_LEN];
        let mut result = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
    }
}

/// The name of a uid, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    // SAFETY: as in user_id.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; BUF_LEN];
        let mut result = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// The gid of a group name, if the name exists.
pub fn group_id(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: as in user_id.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; BUF_LEN];
        let mut result = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves() {
        assert_eq!(user_id("root"), Some(0));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(user_id("no-such-user-shmfs"), None);
        assert_eq!(user_name(0).as_deref(), Some("root"));
    }
}
