#!/usr/bin/env bash
# Builds the release binary of this repository (cargo build --release --locked), as
# mount.sh and install.sh need it. Run through sudo by the user who owns the clone, it
# builds as that user with their own toolchain (a login shell reads ~/.cargo/env), so that
# target/ stays theirs; otherwise it builds as the caller, finding rustup's cargo in
# ~/.cargo/bin even when sudo reset PATH.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    printf 'build-release.sh: %s\n' "$*" >&2
    exit 1
}

find_cargo() {
    local home
    if command -v cargo >/dev/null 2>&1; then
        command -v cargo
        return
    fi
    for home in "${HOME-}" /root; do
        if [[ -n $home && -x $home/.cargo/bin/cargo ]]; then
            echo "$home/.cargo/bin/cargo"
            return
        fi
    done
    return 1
}

echo "Building shmfs (cargo build --release --locked) in $repo ..."
if [[ -n ${SUDO_USER-} && $SUDO_USER != root && $(stat -c %U "$repo") == "$SUDO_USER" ]] &&
    runuser -l "$SUDO_USER" -s /bin/bash -c 'command -v cargo' >/dev/null 2>&1; then
    # shellcheck disable=SC2016 # $1 is expanded by the user's shell, not here.
    runuser -l "$SUDO_USER" -s /bin/bash -c 'cd "$1" && cargo build --release --locked' bash "$repo"
else
    cargo=$(find_cargo) || die "cargo not found: install a Rust toolchain (https://rustup.rs) first"
    (cd "$repo" && "$cargo" build --release --locked)
fi
[[ -x $repo/target/release/shmfs ]] || die "build finished but $repo/target/release/shmfs is missing"
