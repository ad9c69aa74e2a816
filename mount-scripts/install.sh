#!/usr/bin/env bash
# Installs shmfs system-wide, so that it mounts the usual ways: `mount -t fuse.shmfs`, an fstab
# line, a systemd unit; and `man shmfs`.
#
#   sudo ./mount-scripts/install.sh               # install or update; a second run changes nothing
#   sudo ./mount-scripts/install.sh --enable      # also enable mnt-shmfs.mount (mounts at boot)
#   sudo ./mount-scripts/install.sh --uninstall   # undo all of it (fuse3 stays installed)
#
# What it installs:
#   /usr/local/bin/shmfs                        the release build of this repository
#   fuse3 (apt-get, if mount.fuse3 or fusermount3 is missing)
#   /mnt/shmfs                                  the mount point
#   /usr/local/share/man/man1/shmfs.1.gz        the command's man page (shmfs --man)
#   /usr/local/share/man/man5/shmfs.5.gz        the files' man page (shmfs --man 5)
#   /etc/systemd/system/mnt-shmfs.mount         mounts /mnt/shmfs (enabled only with --enable)
#   /etc/systemd/system/shmfs.service           the same as a service (never enabled by this script)
# It never edits /etc/fstab or /etc/fuse.conf, and mounts nothing (except through --enable).
set -euo pipefail

bin=/usr/local/bin/shmfs
man_dir=/usr/local/share/man
man_sections=(1 5)
unit_dir=/etc/systemd/system
units=(mnt-shmfs.mount shmfs.service)
enable_unit=mnt-shmfs.mount
mount_point=/mnt/shmfs

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -- "$script_dir/.." && pwd)

usage() {
    cat <<EOF
Usage: $0 [--enable | --uninstall]

Installs shmfs: $bin (release build), fuse3 if missing, $mount_point,
the man page shmfs(1) and the systemd units ${units[*]} in $unit_dir.
Running it again changes nothing if everything is up to date.

  --enable      also enable $enable_unit (and start it if systemd is running)
  --uninstall   unmount $mount_point and remove everything this script installs
                (fuse3 stays installed)
  -h, --help    show this help
EOF
}

die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}
say() { printf '%s\n' "$*"; }

action=install
enable=false
for arg in "$@"; do
    case $arg in
    --enable) enable=true ;;
    --uninstall) action=uninstall ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        die "unknown argument: $arg"
        ;;
    esac
done
[[ $action == uninstall && $enable == true ]] && die "--enable and --uninstall do not go together"

[[ $(id -u) -eq 0 ]] || die "run as root, e.g. sudo $0${*:+ $*}"

# Tools in sbin directories are not in every root PATH (su without -, some sudo setups).
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

workdir=$(mktemp -d)
trap 'rm -rf -- "$workdir"' EXIT

changes=0
changed() {
    say "$*"
    changes=$((changes + 1))
}

systemd_running() { [[ -d /run/systemd/system ]]; }

# "FSTYPE SOURCE" of what is mounted on $1, or nothing.
mounted_as() {
    findmnt --noheadings --first-only --mountpoint "$1" --output FSTYPE,SOURCE 2>/dev/null || true
}

# Installs $1 as $2 with mode $3, atomically (a running shmfs keeps its old binary), unless the
# same bytes and mode are already there. Sets did_change to true or false.
did_change=false
install_file() {
    local src=$1 dest=$2 mode=$3
    did_change=false
    if [[ -f $dest ]] && cmp -s -- "$src" "$dest" && [[ $(stat -c %a -- "$dest") == "$mode" ]]; then
        say "unchanged: $dest"
        return
    fi
    mkdir -p -- "$(dirname -- "$dest")"
    install -m "$mode" -- "$src" "$dest.new.$$"
    mv -f -- "$dest.new.$$" "$dest"
    changed "installed: $dest"
    did_change=true
}

build() {
    "$script_dir/build-release.sh"
}

# An executable regular file named $1 is on the PATH.
have() {
    local path
    path=$(command -v "$1" 2>/dev/null) && [[ -f $path && -x $path ]]
}

ensure_fuse3() {
    if have mount.fuse3 && have fusermount3; then
        say "unchanged: fuse3 (mount.fuse3 and fusermount3 are installed)"
        return
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "mount.fuse3 or fusermount3 is missing and there is no apt-get: install your distribution's fuse3 package"
    say "Installing fuse3 (mount.fuse3 for mount -t and fstab, fusermount3 for mounts by users) ..."
    DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fuse3 </dev/null
    if ! have mount.fuse3 || ! have fusermount3; then
        die "fuse3 was installed but mount.fuse3 or fusermount3 is still missing"
    fi
    changed "installed: fuse3 (apt-get)"
}

ensure_mount_point() {
    if [[ -n $(mounted_as "$mount_point") ]]; then
        say "unchanged: $mount_point (something is mounted there)"
    elif [[ -d $mount_point ]]; then
        say "unchanged: $mount_point"
    elif [[ -e $mount_point || -L $mount_point ]]; then
        die "$mount_point exists and is not a directory"
    else
        mkdir -p -- "$mount_point"
        changed "created: $mount_point"
    fi
}

# Installs the man pages that `shmfs --man 1` and `shmfs --man 5` print, gzipped, each unless
# the same text is there. Sets did_change if any was (re)installed.
install_man_pages() {
    did_change=false
    local section page man_page
    for section in "${man_sections[@]}"; do
        page=$workdir/shmfs.$section
        man_page=$man_dir/man$section/shmfs.$section.gz
        "$bin" --man "$section" >"$page" || die "$bin --man $section failed"
        [[ -s $page ]] || die "$bin --man $section printed nothing"
        if [[ -f $man_page ]] && gzip -dc -- "$man_page" 2>/dev/null | cmp -s -- - "$page"; then
            say "unchanged: $man_page"
            continue
        fi
        mkdir -p -- "$(dirname -- "$man_page")"
        gzip -9n <"$page" >"$man_page.new.$$"
        chmod 0644 -- "$man_page.new.$$"
        mv -f -- "$man_page.new.$$" "$man_page"
        changed "installed: $man_page"
        did_change=true
        # Formatted copies of an older page would be shown until they age out.
        if [[ -d /var/cache/man ]]; then
            find /var/cache/man -path "*/cat$section/shmfs.$section*" -delete 2>/dev/null || true
        fi
    done
}

update_man_db() {
    if command -v mandb >/dev/null 2>&1; then
        mandb -q || say "warning: mandb failed; \`man shmfs\` still works, \`apropos shmfs\` may not"
    fi
}

# Waits (up to 5 s) for the installed binary's daemon serving $1 to exit after its unmount.
wait_for_daemon_exit() {
    local i p exe serving
    for i in $(seq 50); do
        serving=false
        for p in /proc/[0-9]*; do
            exe=$(readlink "$p/exe" 2>/dev/null) || continue
            [[ $exe == "$bin" || $exe == "$bin (deleted)" ]] || continue
            if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF -- "$1"; then
                serving=true
            fi
        done
        $serving || return 0
        [[ $i -lt 50 ]] && sleep 0.1
    done
    return 0
}

# Daemons still running a replaced or removed /usr/local/bin/shmfs.
stale_daemons() {
    local exe p
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        if [[ $exe == "$bin (deleted)" ]]; then
            printf '  pid %s: %s\n' "${p#/proc/}" "$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
        fi
    done
}

do_install() {
    ensure_fuse3
    build
    install_file "$repo/target/release/shmfs" "$bin" 755
    say "         $bin is $("$bin" --version)"
    ensure_mount_point
    install_man_pages
    if $did_change; then
        update_man_db
    fi
    local units_changed=false unit
    for unit in "${units[@]}"; do
        install_file "$script_dir/$unit" "$unit_dir/$unit" 644
        if $did_change; then
            units_changed=true
        fi
    done
    if $units_changed && systemd_running; then
        systemctl daemon-reload
    fi

    if $enable; then
        command -v systemctl >/dev/null 2>&1 ||
            die "--enable needs systemd (systemctl is missing); mount with mount -t or fstab instead"
        if systemctl is-enabled --quiet "$enable_unit" 2>/dev/null; then
            say "unchanged: $enable_unit is enabled"
        else
            systemctl enable "$enable_unit"
            changed "enabled: $enable_unit (mounts $mount_point at boot)"
        fi
        if systemd_running; then
            if systemctl is-active --quiet "$enable_unit"; then
                say "unchanged: $enable_unit is active"
            else
                systemctl start "$enable_unit"
                changed "started: $enable_unit"
            fi
        else
            say "note: systemd is not running here (PID 1 is $(cat /proc/1/comm)), so $enable_unit"
            say "      will mount at the next boot; to mount now: mount -t fuse.shmfs shmfs $mount_point -o allow_other"
        fi
    fi

    local stale
    stale=$(stale_daemons)
    if [[ -n $stale ]]; then
        say "note: these shmfs daemons still run the previous binary until unmounted and mounted again:"
        say "$stale"
    fi

    say
    if [[ $changes -eq 0 ]]; then
        say "Nothing changed: shmfs is already installed and up to date."
    else
        say "shmfs is installed ($changes change(s))."
    fi
    if ! $enable; then
        cat <<EOF

Mount it (as root) with any one of:
  mount -t fuse.shmfs shmfs $mount_point -o allow_other
  an /etc/fstab line, then mount -a:  shmfs $mount_point fuse.shmfs allow_other,nofail 0 0
  systemctl enable --now $enable_unit        (or run this script with --enable)
Unmount with: umount $mount_point.   Read: man shmfs.
EOF
    fi
}

do_uninstall() {
    local unit current fstype source
    for unit in "${units[@]}"; do
        if systemd_running && systemctl is-active --quiet "$unit"; then
            systemctl stop "$unit"
            changed "stopped: $unit"
        fi
        if [[ -e $unit_dir/$unit ]] && systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            systemctl disable "$unit"
            changed "disabled: $unit"
        fi
    done

    current=$(mounted_as "$mount_point")
    if [[ -n $current ]]; then
        read -r fstype source <<<"$current"
        if [[ $fstype == fuse* && $source == shmfs ]]; then
            umount -- "$mount_point" 2>/dev/null || umount -l -- "$mount_point"
            changed "unmounted: $mount_point"
            wait_for_daemon_exit "$mount_point"
        else
            say "warning: $mount_point has a $fstype mount from $source, not shmfs; leaving it alone"
        fi
    fi

    local units_removed=false
    for unit in "${units[@]}"; do
        if [[ -e $unit_dir/$unit || -L $unit_dir/$unit ]]; then
            rm -f -- "$unit_dir/$unit"
            changed "removed: $unit_dir/$unit"
            units_removed=true
        fi
    done
    if $units_removed && systemd_running; then
        systemctl daemon-reload
    fi

    local section man_page pages_removed=false
    for section in "${man_sections[@]}"; do
        man_page=$man_dir/man$section/shmfs.$section.gz
        if [[ -e $man_page ]]; then
            rm -f -- "$man_page"
            changed "removed: $man_page"
            pages_removed=true
            # man keeps formatted copies; mandb would keep the page in whatis/apropos for them.
            if [[ -d /var/cache/man ]]; then
                find /var/cache/man -path "*/cat$section/shmfs.$section*" -delete 2>/dev/null || true
            fi
        fi
    done
    if $pages_removed; then
        update_man_db
    fi

    if [[ -e $bin || -L $bin ]]; then
        rm -f -- "$bin"
        changed "removed: $bin"
    fi

    if [[ -d $mount_point && -z $(mounted_as "$mount_point") ]]; then
        if rmdir -- "$mount_point" 2>/dev/null; then
            changed "removed: $mount_point"
        else
            say "warning: $mount_point is not empty; leaving it"
        fi
    fi

    local stale
    stale=$(stale_daemons)
    if [[ -n $stale ]]; then
        say "note: these shmfs daemons keep running (and their mounts stay) until unmounted with umount:"
        say "$stale"
    fi
    if grep -qE '^[^#]*[[:space:]]fuse\.shmfs[[:space:]]' /etc/fstab 2>/dev/null; then
        say "note: /etc/fstab still has a fuse.shmfs line; remove it yourself:"
        grep -nE '^[^#]*[[:space:]]fuse\.shmfs[[:space:]]' /etc/fstab | sed 's/^/  /'
    fi

    say
    if [[ $changes -eq 0 ]]; then
        say "Nothing changed: shmfs is not installed."
    else
        say "shmfs is uninstalled ($changes change(s))."
    fi
    say "fuse3 stays installed (other FUSE filesystems use it); remove it with apt-get remove fuse3 if nothing needs it."
}

case $action in
install) do_install ;;
uninstall) do_uninstall ;;
esac
