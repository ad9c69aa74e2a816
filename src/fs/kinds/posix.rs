//! POSIX shared memory as a kind: `posix/NAME/`, the regular files of the shm dir, made by
//! `mkdir` and removed by `rmdir` (shm_unlink). Every change is the caller's own file
//! operation on the object, which the kernel judges.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::fs::error::{Error, Result};
use crate::fs::inode::{Name, ObjectId, Part, Scope};
use crate::fs::kind::{Env, Kind, MEMORY_FILES, Object, OpenData, Space, read_full};
use crate::fs::types::{How, SetTime};
use crate::kernel::attach;
use crate::kernel::creds::{self, Caller};
use crate::kernel::object::Meta;
use crate::kernel::posix::{FileTime, Object as ShmObject};
use crate::render::index::{self, Owners};
use crate::render::metrics::{self, Detail};
use crate::render::text;

/// This kind's index in the registry (`fs::kinds`).
pub(super) const INDEX: usize = 1;

/// The kind: every regular file of the shm dir.
pub(super) struct Objects;

/// An object as looked up now.
struct Obj(ShmObject, Scope);

fn errno(code: i32) -> Error {
    Error::refused(code)
}

fn id_of(name: &OsStr, ino: u64, ns: Scope) -> ObjectId {
    ObjectId {
        ns,
        kind: INDEX,
        name: Name::Text(name.to_owned()),
        stamp: [ino, 0, 0],
    }
}

fn boxed(obj: ShmObject, ns: Scope) -> Box<dyn Object> {
    Box::new(Obj(obj, ns))
}

impl Kind for Objects {
    fn dir_name(&self) -> &'static str {
        "posix"
    }

    fn files(&self) -> &'static [(&'static str, Part)] {
        &MEMORY_FILES
    }

    fn list(&self, env: &Env) -> Result<Vec<Box<dyn Object>>> {
        Ok(env
            .source
            .objects()?
            .into_iter()
            .map(|o| boxed(o, env.ns))
            .collect())
    }

    fn ids(&self, env: &Env) -> io::Result<Vec<ObjectId>> {
        Ok(env
            .source
            .object_keys()?
            .iter()
            .map(|(name, ino)| id_of(name, *ino, env.ns))
            .collect())
    }

    fn find(&self, env: &Env, name: &OsStr) -> Result<Box<dyn Object>> {
        Ok(boxed(env.source.object(name)?, env.ns))
    }

    fn get(&self, env: &Env, id: &ObjectId) -> Result<Box<dyn Object>> {
        let Name::Text(name) = &id.name else {
            return Err(errno(libc::ENOENT));
        };
        let obj = env.source.object(name)?;
        if id_of(&obj.name, obj.ino, env.ns) != *id {
            return Err(errno(libc::ENOENT));
        }
        Ok(boxed(obj, env.ns))
    }

    fn index_rows(&self, env: &Env, _who: &Caller, owners: &mut Owners) -> Result<Vec<index::Row>> {
        Ok(env
            .source
            .objects()?
            .iter()
            .map(|o| index::Row::posix(o, owners.name(o.uid)))
            .collect())
    }

    /// One listing of the shm dir and its capacity and use.
    fn metrics(
        &self,
        env: &Env,
        _who: &Caller,
        detail: Detail,
        owners: &mut Owners,
        namespace: Option<u64>,
        series: &mut metrics::Out,
        totals: Option<&mut metrics::Out>,
    ) -> Result<()> {
        let objects = env.source.objects()?;
        if detail == Detail::All {
            let owners = owners.names_of(objects.iter().map(|o| o.uid));
            metrics::object_series_in(series, namespace, &objects, owners);
        }
        let Some(totals) = totals else {
            return Ok(());
        };
        let space = self.space(env)?;
        let system = metrics::System {
            shm_dir_size: space.bytes,
            shm_dir_used: space.used,
            ..metrics::System::default()
        };
        metrics::posix_totals(totals, &objects, &system);
        Ok(())
    }

    /// The shm dir's filesystem, as `df` shows it.
    fn space(&self, env: &Env) -> Result<Space> {
        let space = env.source.shm_space()?;
        Ok(Space {
            bytes: space.blocks.saturating_mul(space.block_size),
            used: space
                .blocks
                .saturating_sub(space.blocks_free)
                .saturating_mul(space.block_size),
            files: space.files,
            files_free: space.files_free,
            block_size: Some(space.block_size),
        })
    }

    fn create(&self, env: &Env, who: &Caller, name: &OsStr, mode: u32) -> Result<Box<dyn Object>> {
        Ok(boxed(
            creds::as_caller(who, || env.source.create_object(name, mode))?,
            env.ns,
        ))
    }
}

impl Obj {
    fn name(&self) -> &OsString {
        &self.0.name
    }

    /// Clears set-user-ID and set-group-ID as the kernel does when someone who is not the
    /// owner writes to or truncates the file: the kernel asks the filesystem for this mode
    /// change on the writer's behalf (FUSE without `handle_killpriv`), and it is allowed to
    /// anyone who may write the object, as a forced change, not a chmod by the writer.
    fn kill_setid_bits(&self, env: &Env, who: &Caller, mode: u32) -> Result<()> {
        let obj = &self.0;
        // Anyone else is refused as a chmod by a non-owner is.
        creds::as_caller(who, || {
            env.source
                .open_object(&obj.name, obj.ino, libc::O_WRONLY)
                .map(drop)
        })
        .map_err(|_| errno(libc::EPERM))?;
        // Judged again on the mode as it is now, not as it was looked up: a change its owner
        // made meanwhile (04777 to 0600) must not be undone with the daemon's rights.
        let now = env.source.object(&obj.name)?;
        if now.ino != obj.ino || !drops_only_setid_bits(now.mode, mode) {
            return Err(errno(libc::EPERM));
        }
        log::debug!(
            "clearing set-id bits of {:?} for a write by uid {}",
            obj.name,
            who.uid
        );
        Ok(env.source.chmod_object(&obj.name, obj.ino, mode)?)
    }
}

impl Object for Obj {
    fn id(&self) -> ObjectId {
        id_of(&self.0.name, self.0.ino, self.1)
    }

    fn meta(&self) -> Meta {
        self.0.meta()
    }

    fn blocks(&self, _env: &Env) -> Result<u64> {
        Ok(self.0.allocated / 512)
    }

    fn stat_text(&self, _env: &Env) -> Result<String> {
        Ok(text::posix_stat(&self.0))
    }

    /// A POSIX named semaphore (`sem.NAME`, glibc's 32-byte file) also shows its value and
    /// waiters to those who may read it (the kernel's answer to the caller's own open): read
    /// by the daemon with `O_NOATIME`, so that looking does not move its atime.
    fn stat_text_for(&self, env: &Env, who: &Caller) -> Result<String> {
        let mut text = text::posix_stat(&self.0);
        if !is_semaphore(&self.0) {
            return Ok(text);
        }
        let name = &self.0.name;
        let readable = creds::as_caller(who, || {
            env.source
                .open_object(name, self.0.ino, libc::O_RDONLY | libc::O_NONBLOCK)
        });
        if readable.is_err() {
            return Ok(text);
        }
        match env.source.posix_sem_state(name, self.0.ino) {
            Ok(state) => {
                let waiters = env
                    .source
                    .posix_sem_waiters(env.source.shm_dev(), self.0.ino)
                    .inspect_err(|e| log::debug!("waiters of posix/{name:?}: {e}"))
                    .ok()
                    .map(|w| w.len());
                text.push_str(&crate::render::ipc::posix_sem_lines(&state, waiters));
            }
            Err(e) => log::debug!("posix/{name:?}: not read as a semaphore: {e}"),
        }
        Ok(text)
    }

    fn may_change_perm(&self, who: &Caller) -> bool {
        who.uid == self.0.uid || who.has_cap(creds::cap::FOWNER) || who.has_cap(creds::cap::CHOWN)
    }

    fn perm_changers(&self) -> &'static str {
        ", CAP_FOWNER or CAP_CHOWN"
    }

    /// A POSIX object is a file and holds set-user-ID, set-group-ID and sticky bits: the
    /// kernel's chmod and chown rules apply, as for any file.
    fn change_perm(
        &self,
        env: &Env,
        _op: &str,
        who: &Caller,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        let obj = &self.0;
        let changed = creds::as_caller(who, || {
            if uid.is_some() || gid.is_some() {
                env.source.chown_object(&obj.name, obj.ino, uid, gid)?;
            }
            if let Some(mode) = mode {
                env.source.chmod_object(&obj.name, obj.ino, mode)?;
            }
            Ok(())
        });
        match (changed, mode) {
            (Err(e), Some(mode))
                if e.raw_os_error() == Some(libc::EPERM)
                    && uid.is_none()
                    && gid.is_none()
                    && drops_only_setid_bits(obj.mode, mode) =>
            {
                self.kill_setid_bits(env, who, mode)
            }
            (changed, _) => Ok(changed?),
        }
    }

    fn set_times(
        &self,
        env: &Env,
        who: &Caller,
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> Result<()> {
        let (atime, mtime) = (file_time(atime), file_time(mtime));
        Ok(creds::as_caller(who, || {
            env.source
                .set_object_times(self.name(), self.0.ino, atime, mtime)
        })?)
    }

    fn check_data_access(&self, env: &Env, who: &Caller, want: u32) -> Result<()> {
        Ok(creds::as_caller(who, || {
            env.source
                .open_object(self.name(), self.0.ino, access_mode(want))
                .map(drop)
        })?)
    }

    fn remove(&self, env: &Env) -> io::Result<()> {
        env.source.remove_object(self.name(), self.0.ino)
    }

    fn holders(&self, env: &Env) -> Option<attach::Target> {
        Some(attach::Target::Posix {
            dev: env.source.shm_dev(),
            ino: self.0.ino,
        })
    }

    fn open_data(&self, env: &Env, who: &Caller, flags: i32) -> Result<Box<dyn OpenData>> {
        let file = creds::as_caller(who, || {
            env.source.open_object(self.name(), self.0.ino, flags)
        })?;
        Ok(Box::new(OpenObject {
            id: self.id(),
            file,
        }))
    }

    fn truncate(&self, env: &Env, who: &Caller, size: u64, _checked: bool) -> Result<()> {
        Ok(creds::as_caller(who, || {
            env.source.truncate_object(self.name(), self.0.ino, size)
        })?)
    }
}

/// A time for the object's file: as given, now, or left alone.
fn file_time(time: Option<SetTime>) -> FileTime {
    match time {
        None => FileTime::Keep,
        Some(SetTime::Now) => FileTime::Now,
        Some(SetTime::At(at)) => FileTime::At(at),
    }
}

/// The open flags that test the access `want` (4 read, 2 write) asks for.
fn access_mode(want: u32) -> i32 {
    match want {
        6 => libc::O_RDWR,
        2 => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    }
}

/// True if `requested` is `current` with some of the bits cleared that the kernel clears when
/// a non-owner writes to a file (set-user-ID, and set-group-ID if group execute is set) and
/// nothing else changed: the change it then asks the filesystem for. A request that adds any
/// bit is a chmod, never this.
fn drops_only_setid_bits(current: u32, requested: u32) -> bool {
    let (current, requested) = (current & 0o7777, requested & 0o7777);
    let mut killed = libc::S_ISUID;
    if current & libc::S_IXGRP != 0 {
        killed |= libc::S_ISGID;
    }
    requested != current && requested & !current == 0 && (current & !requested) & !killed == 0
}

/// An open object `data`: its own file, which the kernel may reach directly.
struct OpenObject {
    id: ObjectId,
    file: File,
}

impl OpenData for OpenObject {
    fn id(&self) -> &ObjectId {
        &self.id
    }

    fn object(&self) -> Result<Box<dyn Object>> {
        let name = self.id.name.to_os_string();
        Ok(boxed(ShmObject::of_file(&name, &self.file)?, self.id.ns))
    }

    fn how(&self, _flags: i32) -> How {
        How::Passthrough { served_here: false }
    }

    fn memory_file(&self) -> Option<&File> {
        Some(&self.file)
    }

    fn read_len(&self, _offset: u64, size: u32) -> usize {
        size as usize
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        read_full(&self.file, buf, offset)
    }

    fn write_at(&self, data: &[u8], offset: u64) -> Result<u32> {
        self.file.write_all_at(data, offset)?;
        u32::try_from(data.len()).map_err(|_| errno(libc::EINVAL))
    }

    fn truncate(&self, _who: &Caller, size: u64) -> Result<()> {
        Ok(self.file.set_len(size)?)
    }
}

/// Whether an object is a glibc named semaphore: `sem.NAME` of a `sem_t`'s size.
fn is_semaphore(obj: &ShmObject) -> bool {
    use std::os::unix::ffi::OsStrExt;
    obj.name.as_bytes().starts_with(b"sem.")
        && obj.size == crate::kernel::posix_sem::SEM_FILE_SIZE as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clearing_set_id_bits_counts_as_the_writers_kill_priv() {
        // What the kernel asks for when a non-owner writes: bits go, none come.
        assert!(drops_only_setid_bits(0o4777, 0o777));
        assert!(drops_only_setid_bits(0o6775, 0o775));
        assert!(drops_only_setid_bits(0o6775, 0o4775));
        assert!(drops_only_setid_bits(0o2775, 0o775));
        // Adding set-id or sticky bits, or any other change, is a chmod.
        assert!(!drops_only_setid_bits(0o777, 0o4777));
        assert!(!drops_only_setid_bits(0o666, 0o2666));
        assert!(!drops_only_setid_bits(0o4777, 0o2777));
        assert!(!drops_only_setid_bits(0o777, 0o1777));
        assert!(!drops_only_setid_bits(0o4777, 0o755));
        assert!(!drops_only_setid_bits(0o1777, 0o777));
        assert!(!drops_only_setid_bits(0o4777, 0o4777));
        // Set-group-ID without group execute is not a set-id bit the kernel clears.
        assert!(!drops_only_setid_bits(0o2664, 0o664));
        assert!(drops_only_setid_bits(0o6764, 0o2764));
    }
}
