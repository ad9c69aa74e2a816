#!/usr/bin/env bash
# Builds shmfs and mounts it, by default on /mnt/shmfs, open to every user (-o allow_other).
#
#   sudo ./mount-scripts/mount.sh                      # mounts /mnt/shmfs
#   sudo ./mount-scripts/mount.sh /srv/shm             # another mount point
#   sudo ./mount-scripts/mount.sh /mnt/shmfs -o ro     # extra arguments go to shmfs
#
# Needs root (the daemon acts with each caller's own credentials, which only root can do),
# /dev/fuse and a Rust toolchain (cargo). Installs nothing else. Running it again while
# shmfs is mounted there changes nothing.
set -euo pipefail

die() {
    printf 'mount.sh: %s\n' "$*" >&2
    exit 1
}

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$script_dir/.." && pwd)

mount_point=/mnt/shmfs
if [[ $# -gt 0 && $1 != -* ]]; then
    mount_point=$1
    shift
fi
[[ ${1-} == -- ]] && shift
extra_args=("$@")

[[ $(id -u) -eq 0 ]] || die "run as root, e.g. sudo $0 (shmfs must act with each caller's credentials)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing: load the fuse module (modprobe fuse) or give the container the device"

# The mount as /proc/self/mountinfo shows it: "FSTYPE SOURCE", or nothing.
mounted_as() {
    findmnt --noheadings --first-only --mountpoint "$1" --output FSTYPE,SOURCE 2>/dev/null || true
}

[[ $mount_point == /* ]] || mount_point=$PWD/$mount_point
[[ $mount_point == / ]] || mount_point=${mount_point%/}

current=$(mounted_as "$mount_point")
if [[ -n $current ]]; then
    read -r fstype source <<<"$current"
    [[ $fstype == fuse* && $source == shmfs ]] ||
        die "$mount_point already has a $fstype mount from $source; not mounting over it"
    if ls -- "$mount_point" >/dev/null 2>&1; then
        echo "shmfs is already mounted on $mount_point; nothing to do."
        echo "Unmount with: umount $mount_point"
        exit 0
    fi
    # A daemon that died (kill -9, crash) leaves "Transport endpoint is not connected".
    echo "shmfs on $mount_point is dead (transport endpoint is not connected); unmounting it first."
    umount -- "$mount_point" || umount -l -- "$mount_point"
fi

"$script_dir/build-release.sh"
binary=$repo/target/release/shmfs
[[ -x $binary ]] || die "build finished but $binary is missing"

if [[ ! -e $mount_point ]]; then
    mkdir -p -- "$mount_point"
    echo "Created $mount_point"
fi
[[ -d $mount_point ]] || die "$mount_point is not a directory"
mount_point=$(cd -- "$mount_point" && pwd -P)

# shmfs goes to the background once the mount answers, or prints why it could not mount.
"$binary" -o allow_other "${extra_args[@]}" "$mount_point"

echo
echo "shmfs is mounted on $mount_point:"
ls "$mount_point"
echo
echo "Try:      ipcmk -M 65536 -p 0640 && ls -l $mount_point/sysv/"
echo "Unmount:  umount $mount_point   (or: kill the shmfs process with SIGTERM)"
