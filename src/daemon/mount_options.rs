//! Mount options: what `-o` (from the command line, `mount -t fuse.shmfs` or fstab) asks for,
//! as fuser's configuration plus what shmfs itself must know. A pure function, unit-tested.

use fuser::{Config, MountOption, SessionACL};

use crate::render::metrics::Detail;

/// Mount options as fuser takes them, plus what shmfs itself must know.
pub struct MountPlan {
    /// What fuser mounts with.
    pub config: Config,
    /// `-o ro`: every change is refused.
    pub read_only: bool,
    /// `-o metrics=all|totals`: what `metrics.prom` holds.
    pub metrics: Detail,
}

/// Options only fstab and mount(8) care about; accepted and ignored here.
const FSTAB_ONLY: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "nofail",
    "_netdev",
    "user",
    "users",
    "nouser",
    "owner",
    // Generic VFS options that mount(8) passes along; access times are the objects' own.
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "diratime",
    "nodiratime",
    "silent",
    "loud",
];

/// Turns `-o` options (each may hold several, comma-separated) into a mount plan. `root`: the
/// daemon runs as root; `have_fusermount3`: fusermount3 is installed, so that a daemon killed
/// with SIGKILL can be unmounted by it (auto_unmount is then the default for root).
pub fn plan(
    options: &[String],
    threads: usize,
    root: bool,
    have_fusermount3: bool,
) -> Result<MountPlan, String> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("shmfs".into()),
        MountOption::Subtype("shmfs".into()),
    ];
    config.n_threads = Some(threads.max(1));
    let mut read_only = false;
    let mut metrics = Detail::default();
    let mut auto_unmount = None;
    for opt in options.iter().flat_map(|o| o.split(',')) {
        let opt = opt.trim();
        let option = match opt {
            "" => continue,
            "no_auto_unmount" => {
                auto_unmount = Some(false);
                continue;
            }
            "auto_unmount" => {
                auto_unmount = Some(true);
                continue;
            }
            o if FSTAB_ONLY.contains(&o) || o.starts_with("x-") || o.starts_with("comment=") => {
                continue;
            }
            o if o.starts_with("metrics=") => {
                metrics = Detail::parse(&o["metrics=".len()..])?;
                continue;
            }
            "allow_other" => {
                config.acl = SessionACL::All;
                continue;
            }
            "allow_root" => {
                config.acl = SessionACL::RootAndOwner;
                continue;
            }
            "ro" => {
                read_only = true;
                MountOption::RO
            }
            "rw" => MountOption::RW,
            "default_permissions" => MountOption::DefaultPermissions,
            "dev" => MountOption::Dev,
            "nodev" => MountOption::NoDev,
            "suid" => MountOption::Suid,
            "nosuid" => MountOption::NoSuid,
            "exec" => MountOption::Exec,
            "noexec" => MountOption::NoExec,
            "atime" => MountOption::Atime,
            "noatime" => MountOption::NoAtime,
            "sync" => MountOption::Sync,
            "async" => MountOption::Async,
            "dirsync" => MountOption::DirSync,
            o if o.starts_with("fsname=") => {
                config
                    .mount_options
                    .retain(|m| !matches!(m, MountOption::FSName(_)));
                MountOption::FSName(o["fsname=".len()..].into())
            }
            o if o.starts_with("subtype=") => {
                config
                    .mount_options
                    .retain(|m| !matches!(m, MountOption::Subtype(_)));
                MountOption::Subtype(o["subtype=".len()..].into())
            }
            other => return Err(format!("unknown mount option {other:?}")),
        };
        config.mount_options.retain(|m| *m != option);
        config.mount_options.push(option);
    }
    if read_only {
        config.mount_options.retain(|m| *m != MountOption::RW);
    }
    // A daemon killed with SIGKILL leaves a dead mount behind unless fusermount3 watches it:
    // ask for that whenever it is installed and allowed (root, or another ACL than owner-only,
    // which for a non-root user needs user_allow_other in /etc/fuse.conf).
    let wanted = auto_unmount.unwrap_or(root && have_fusermount3);
    if wanted {
        if config.acl == SessionACL::Owner {
            // fuser's auto_unmount needs a wider ACL; for a root daemon root-and-owner is
            // still root alone.
            config.acl = SessionACL::RootAndOwner;
        }
        config.mount_options.push(MountOption::AutoUnmount);
    }
    Ok(MountPlan {
        config,
        read_only,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_name_the_filesystem_and_keep_the_owner_acl() {
        let plan = plan(&[], 4, false, false).unwrap();
        assert!(!plan.read_only);
        assert_eq!(plan.config.acl, SessionACL::Owner);
        assert_eq!(plan.config.n_threads, Some(4));
        assert!(
            plan.config
                .mount_options
                .contains(&MountOption::FSName("shmfs".into()))
        );
        assert!(
            plan.config
                .mount_options
                .contains(&MountOption::Subtype("shmfs".into()))
        );
        assert!(
            !plan
                .config
                .mount_options
                .contains(&MountOption::AutoUnmount)
        );
    }

    #[test]
    fn comma_separated_and_repeated_options_combine() {
        let plan = plan(
            &opts(&["allow_other,ro", "nosuid", "noexec"]),
            1,
            true,
            false,
        )
        .unwrap();
        assert!(plan.read_only);
        assert_eq!(plan.config.acl, SessionACL::All);
        for o in [MountOption::RO, MountOption::NoSuid, MountOption::NoExec] {
            assert!(plan.config.mount_options.contains(&o), "{o:?}");
        }
        assert!(!plan.config.mount_options.contains(&MountOption::RW));
    }

    #[test]
    fn fstab_only_options_are_ignored_and_unknown_ones_refused() {
        let plan = plan(
            &opts(&["defaults,nofail,_netdev,x-systemd.automount,relatime"]),
            1,
            true,
            false,
        )
        .unwrap();
        assert!(!plan.read_only);
        let err = plan_err(&["allow_other,bogus"]);
        assert!(err.contains("\"bogus\""), "{err}");
    }

    fn plan_err(list: &[&str]) -> String {
        match plan(&opts(list), 1, true, false) {
            Ok(_) => panic!("{list:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn metrics_takes_all_or_totals_and_is_not_passed_to_the_kernel() {
        assert_eq!(plan(&[], 1, true, false).unwrap().metrics, Detail::All);
        let totals = plan(&opts(&["allow_other,metrics=totals"]), 1, true, false).unwrap();
        assert_eq!(totals.metrics, Detail::Totals);
        assert_eq!(totals.config.acl, SessionACL::All);
        assert!(
            !totals
                .config
                .mount_options
                .iter()
                .any(|o| format!("{o:?}").contains("metrics")),
            "metrics= is shmfs's own: {:?}",
            totals.config.mount_options
        );
        let all = plan(&opts(&["metrics=totals", "metrics=all"]), 1, true, false).unwrap();
        assert_eq!(all.metrics, Detail::All, "the last one counts");
        for bad in ["metrics=", "metrics=none", "metrics", "metrics=TOTALS"] {
            let err = plan_err(&[bad]);
            assert!(
                err.contains("metrics") && (err.contains("unknown") || err.contains("want")),
                "{bad}: {err}"
            );
        }
        assert!(plan_err(&["metrics=x"]).contains("metrics=all or metrics=totals"));
    }

    #[test]
    fn fsname_and_subtype_replace_the_defaults() {
        let plan = plan(&opts(&["fsname=shm,subtype=x"]), 1, false, false).unwrap();
        let names: Vec<_> = plan
            .config
            .mount_options
            .iter()
            .filter(|o| matches!(o, MountOption::FSName(_) | MountOption::Subtype(_)))
            .collect();
        assert_eq!(
            names,
            [
                &MountOption::FSName("shm".into()),
                &MountOption::Subtype("x".into())
            ]
        );
    }

    #[test]
    fn auto_unmount_is_the_default_for_root_with_fusermount3() {
        let with = plan(&[], 1, true, true).unwrap();
        assert!(
            with.config
                .mount_options
                .contains(&MountOption::AutoUnmount)
        );
        assert_eq!(
            with.config.acl,
            SessionACL::RootAndOwner,
            "fuser needs a wider ACL"
        );
        let without = plan(&[], 1, true, false).unwrap();
        assert!(
            !without
                .config
                .mount_options
                .contains(&MountOption::AutoUnmount)
        );
        let user = plan(&[], 1, false, true).unwrap();
        assert!(
            !user
                .config
                .mount_options
                .contains(&MountOption::AutoUnmount)
        );
        let refused = plan(&opts(&["no_auto_unmount"]), 1, true, true).unwrap();
        assert!(
            !refused
                .config
                .mount_options
                .contains(&MountOption::AutoUnmount)
        );
        let asked = plan(&opts(&["auto_unmount,allow_other"]), 1, false, false).unwrap();
        assert!(
            asked
                .config
                .mount_options
                .contains(&MountOption::AutoUnmount)
        );
        assert_eq!(asked.config.acl, SessionACL::All, "allow_other is kept");
    }
}
