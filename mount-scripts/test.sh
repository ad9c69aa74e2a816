#!/usr/bin/env bash
# Runs the whole test suite, as README says, on a fresh machine (Debian 12 or alike):
#
#   sudo ./mount-scripts/test.sh                 # everything
#   sudo ./mount-scripts/test.sh --test sysv     # arguments go to `cargo test`
#
# 1. checks root and /dev/fuse (the tests mount real FUSE filesystems and switch users);
# 2. installs the commands the tests call if they are missing (apt-get), and fsx (cargo install);
# 3. runs `cargo test --no-fail-fast` with CI=true (unless CI is set otherwise), so that a test
#    which cannot run what it claims fails instead of passing without testing;
# 4. ends with a summary: tests passed per test binary, and anything that did not run.
#
# Exit status 0 only if every test binary ran and every test in it passed. The whole output is
# also in target/test.log.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# The test harness fails (instead of skipping) what it cannot run when CI is set: set it.
export CI="${CI-true}"
export DEBIAN_FRONTEND=noninteractive

log="$repo/target/test.log"

step() { printf '\n==> %s\n' "$*"; }
fail() {
    printf '\ntest.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

step "root, /dev/fuse and cargo"
[[ $(id -u) -eq 0 ]] ||
    fail "run as root, e.g. sudo $0: the tests mount FUSE filesystems and act as other users"
if [[ ! -e /dev/fuse ]]; then
    modprobe fuse 2>/dev/null || true
fi
[[ -c /dev/fuse ]] ||
    fail "/dev/fuse does not exist (or is not a character device): the tests cannot mount.
Load the fuse module (modprobe fuse) or start the container with --device /dev/fuse --cap-add SYS_ADMIN."
ls -l /dev/fuse
if ! command -v cargo >/dev/null 2>&1 && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 ||
    fail "cargo not found: install a Rust toolchain for root (https://rustup.rs) first"
cargo --version

step "packages"
# The commands the tests run, each with the Debian package that provides it (one per line).
declare -A package_of=(
    [ipcmk]=util-linux
    [ipcrm]=util-linux
    [ipcs]=util-linux
    [setpriv]=util-linux
    [findmnt]=util-linux
    [unshare]=util-linux
    [nsenter]=util-linux
    [prlimit]=util-linux
    [umount]=mount
    [hexdump]=bsdextrautils
    [dd]=coreutils
    [truncate]=coreutils
    [cmp]=diffutils
    [find]=findutils
    [tar]=tar
    [cc]=gcc
    [mount.fuse3]=fuse3
    [fusermount3]=fuse3
    [systemd-analyze]=systemd
    [man]=man-db
    [mc]=mc
    [tmux]=tmux
    [file]=file
    [stress-ng]=stress-ng
    [fio]=fio
    [promtool]=prometheus
    [prometheus-node-exporter]=prometheus-node-exporter
)
# apt-get, waiting for the package manager's locks while another install (unattended-upgrades,
# another shell) holds them, instead of failing at once: up to 10 minutes.
apt_waiting() {
    local out status tries=0
    while :; do
        set +e
        out=$(apt-get -o DPkg::Lock::Timeout=600 "$@" </dev/null 2>&1)
        status=$?
        set -e
        printf '%s\n' "$out"
        if [[ $status -eq 0 ]] || ! grep -qE 'Could not get lock|Unable to (acquire|lock)' <<<"$out"; then
            return "$status"
        fi
        ((tries += 1))
        [[ $tries -lt 60 ]] || return "$status"
        echo "test.sh: another package manager holds the lock; waiting (try $tries of 60)"
        sleep 10
    done
}
missing=()
for cmd in "${!package_of[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${package_of[$cmd]}")
done
# Linking also needs the C library's development files (gcc only recommends them).
compgen -G '/usr/lib/*/crt1.o' >/dev/null || missing+=(libc6-dev)
# Tests run Debian's python3 as other users (root's pyenv shims are not theirs to run).
[[ -x /usr/bin/python3 ]] || missing+=(python3)
if [[ ${#missing[@]} -gt 0 ]]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "installing: ${missing[*]}"
    apt_waiting update
    apt_waiting install -y --no-install-recommends "${missing[@]}"
else
    echo "all needed commands are present"
fi
for cmd in "${!package_of[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || fail "$cmd is still missing after installing ${package_of[$cmd]}"
done
[[ -x /usr/bin/python3 ]] || fail "/usr/bin/python3 is still missing after installing python3"

step "fsx (the file-system exerciser, from crates.io)"
fsx_installed() { command -v fsx >/dev/null 2>&1 || [[ -x ${CARGO_HOME:-${HOME:-/root}/.cargo}/bin/fsx ]]; }
fsx_installed || cargo install --locked --version 0.3.2 fsx </dev/null
fsx_installed || fail "fsx is still missing after cargo install"
echo "fsx is installed"

step "cargo test --no-fail-fast $* (CI=$CI; log: $log)"
mkdir -p "$(dirname -- "$log")"
set +e
cargo test --no-fail-fast "$@" </dev/null 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}
set -e

# ---------------------------------------------------------------------------------------------
# Summary: one line per test binary (cargo prints "Running TARGET (...)" before each, then its
# "test result:"), then what did not run.
# ---------------------------------------------------------------------------------------------
results=$(awk '
    /^[[:space:]]*Running / { target = $2; if ($2 == "unittests") target = $3; next }
    /^[[:space:]]*Doc-tests / { target = "doc-tests/" $2; next }
    /^test result:/ && target != "" {
        p = 0; f = 0; ig = 0; fo = 0
        for (i = 1; i < NF; i++) {
            if ($(i + 1) ~ /^passed/) p = $i + 0
            if ($(i + 1) ~ /^failed/) f = $i + 0
            if ($(i + 1) ~ /^ignored/) ig = $i + 0
            if ($(i + 1) ~ /^filtered/) fo = $i + 0
        }
        printf "%s %d %d %d %d\n", target, p, f, ig, fo
        target = ""
    }
' "$log")

problems=()
step "summary"
total_passed=0 total_failed=0
while read -r target passed failed ignored filtered; do
    [[ -n $target ]] || continue
    line=$(printf '  %-28s %4d passed' "$target" "$passed")
    [[ $failed -eq 0 ]] || line+=", $failed FAILED"
    [[ $ignored -eq 0 ]] || line+=", $ignored ignored (did not run)"
    echo "$line"
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    [[ $failed -eq 0 ]] || problems+=("$target: $failed failed")
    [[ $ignored -eq 0 ]] || problems+=("$target: $ignored ignored, so not run")
done <<<"$results"
printf '  %-28s %4d passed, %d failed\n' "all" "$total_passed" "$total_failed"

# Every integration test binary must have reported (unless arguments chose some).
if [[ $# -eq 0 ]]; then
    for file in tests/*.rs; do
        grep -q "^tests/${file#tests/} " <<<"$results" ||
            problems+=("$file did not run (no \`test result:\` line: it did not build, or it crashed)")
    done
fi
skipped=$(grep -c 'skipping:' "$log" || true)
[[ $skipped -eq 0 ]] || problems+=("$skipped tests printed \"skipping:\" and did not test anything (grep skipping: $log)")
if [[ $test_status -ne 0 && ${#problems[@]} -eq 0 ]]; then
    problems+=("cargo test exited with status $test_status (see $log)")
fi

if [[ ${#problems[@]} -gt 0 ]]; then
    printf '\ntest.sh: FAILED, not everything ran and passed:\n' >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
fi
printf '\ntest.sh: every test ran and passed (%d tests)\n' "$total_passed"
