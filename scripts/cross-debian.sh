#!/usr/bin/env bash
# Cross-build and cross-test VisualByte for the boards with Debian's own packages: no Docker, no rustup target.
#
#   scripts/cross-debian.sh [aarch64|armv7] [STEP...]
#
# STEP is any of (default: all four, in this order):
#   install      apt-get what is missing: Debian's rustc-web and the target's std, the cross gcc, qemu-user
#                (+ binfmt, so tests can spawn the target's binary), the target's ALSA headers
#   build-tests  compile every test for the target (once; `test` reuses it)
#   test         run the whole test suite under qemu-user, as `cargo test` does natively but one test at a time
#   release      the robot binary: release profile (VISUALBYTE_PROFILE=small for the size-optimised one),
#                `--features mic`; prints its size and `file` output
#
# Why Debian's rustc (rustc-web) and not rustup's: rustup's toolchain has no std for the target here and
# cannot download one; Debian ships it as libstd-rust-web-dev:<arch>. Both toolchains build the same Cargo.lock.
# The target dir is separate from the native one (${VISUALBYTE_CACHE}/target-<board>), because the
# compilers differ and would otherwise rebuild each other's artifacts.
#
# Environment: VISUALBYTE_CACHE (default /var/cache/visualbyte, or ~/.cache/visualbyte when that is not
# writable), CARGO_TARGET_DIR (overrides the target dir).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

board=${1:-aarch64}
[ $# -gt 0 ] && shift
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(install build-tests test release)

case "$board" in
aarch64)
    triple=aarch64-unknown-linux-gnu deb_arch=arm64 gnu=aarch64-linux-gnu qemu=qemu-aarch64 ;;
armv7)
    triple=armv7-unknown-linux-gnueabihf deb_arch=armhf gnu=arm-linux-gnueabihf qemu=qemu-arm ;;
*)
    echo "usage: $0 [aarch64|armv7] [install|build-tests|test|release]..." >&2
    exit 2 ;;
esac
TRIPLE=$(echo "$triple" | tr 'a-z-' 'A-Z_')   # AARCH64_UNKNOWN_LINUX_GNU
under=$(echo "$triple" | tr '-' '_')         # aarch64_unknown_linux_gnu

cache=${VISUALBYTE_CACHE:-/var/cache/visualbyte}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/visualbyte
    mkdir -p "$cache"
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target-$board}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The packages this board needs, the host's included. libc6:<arch> is what qemu-user loads the binaries with.
packages=(rustc-web cargo-web "libstd-rust-web-dev:$deb_arch" "gcc-$gnu" "libc6-dev-$deb_arch-cross"
    "libc6:$deb_arch" qemu-user qemu-user-binfmt binfmt-support pkg-config file "libasound2-dev:$deb_arch")

# Empty for a package that is not installed. Never fails: under `set -e -o pipefail`, dpkg-query's exit status
# for an unknown package would otherwise end the script at `host=$(installed_version rustc-web)`.
installed_version() {
    { dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null || true; } | sed -n 's/^installed //p'
}

missing_packages() {
    local p
    for p in "${packages[@]}"; do
        [ -n "$(installed_version "$p")" ] || echo "$p"
    done
    # The target's std must be the very version of the host compiler.
    local host target
    host=$(installed_version rustc-web) target=$(installed_version "libstd-rust-web-dev:$deb_arch")
    if [ -n "$host" ] && [ -n "$target" ] && [ "$host" != "$target" ]; then
        echo rustc-web "libstd-rust-web-dev:$deb_arch"
    fi
}

# binfmt lets a test that runs under qemu spawn another target binary (the CLI tests do). The .conf that
# qemu-user-binfmt ships is in the kernel's register format, so this needs neither systemd nor a daemon.
register_binfmt() {
    local entry=/proc/sys/fs/binfmt_misc/$qemu conf=/usr/lib/binfmt.d/$qemu.conf
    [ -e "$entry" ] && return 0
    [ -e /proc/sys/fs/binfmt_misc/register ] ||
        as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
    as_root sh -c "cat '$conf' > /proc/sys/fs/binfmt_misc/register" || true
    [ -e "$entry" ] || echo "warning: could not register $qemu with binfmt_misc: tests that spawn" \
        "the $board binary will fail with 'Exec format error'" >&2
}

step_install() {
    local missing=() added="" host
    mapfile -t missing < <(missing_packages | sort -u)
    if [ ${#missing[@]} -eq 0 ]; then
        echo "toolchain for $board already installed"
    else
        # The target's std must match the installed compiler exactly: ask apt for that version, so that a
        # mirror without it fails here, clearly, instead of leaving a std that rustc cannot load.
        host=$(installed_version rustc-web)
        if [ -n "$host" ] && ! printf '%s\n' "${missing[@]}" | grep -qx rustc-web; then
            missing=("${missing[@]/#libstd-rust-web-dev:$deb_arch/libstd-rust-web-dev:$deb_arch=$host}")
        fi
        echo "installing: ${missing[*]}"
        if ! dpkg --print-foreign-architectures | grep -qx "$deb_arch"; then
            as_root dpkg --add-architecture "$deb_arch"
            added=1
        fi
        # A mirror mid-sync can fail one index; what we need is checked by the install itself.
        as_root apt-get update -qq || echo "warning: apt-get update reported errors; trying the install anyway"
        if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"; then
            if [ -n "$added" ]; then # leave apt as it was: a broken $deb_arch index would fail every update
                as_root dpkg --remove-architecture "$deb_arch" && as_root apt-get update -qq || true
            fi
            echo "error: could not install the $board toolchain (see apt's message above)" >&2
            return 1
        fi
    fi
    register_binfmt
    echo "$(/usr/bin/rustc --version), std for $triple $(installed_version "libstd-rust-web-dev:$deb_arch")"
}

# Debian's compiler and the target's C toolchain; pkg-config looks at the target's .pc files for the
# target only (PKG_CONFIG_LIBDIR_<triple>), so the host's build scripts keep the host's.
cross_env() {
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc # ~/.cargo/bin comes first in PATH: name Debian's
    export "CARGO_TARGET_${TRIPLE}_LINKER=$gnu-gcc"
    # Plain qemu: `-L /usr/$gnu` mixes the cross ld.so with libc6:$deb_arch and every test hangs.
    export "CARGO_TARGET_${TRIPLE}_RUNNER=$qemu"
    export "CC_${under}=$gnu-gcc" "AR_${under}=$gnu-ar"
    export PKG_CONFIG_ALLOW_CROSS=1
    export "PKG_CONFIG_LIBDIR_${under}=/usr/lib/$gnu/pkgconfig:/usr/share/pkgconfig"
}

# `cargo_cross SUBCOMMAND ARGS...`: the target's flags go right after the subcommand, so ARGS may end with
# `-- ARGS-FOR-THE-TEST-HARNESS`.
cargo_cross() {
    local sub=$1
    shift
    nice -n 5 /usr/bin/cargo "$sub" --locked --target "$triple" "$@"
}

step_build_tests() { cargo_cross test --no-run --features mic; }

# One test at a time: qemu-user can deadlock a child process forked while other guest threads run
# (a CI run hung for an hour in a test that spawns the CLI while its neighbour did the same).
step_test() { cargo_cross test --features mic -- --test-threads=1; }

step_release() {
    local profile=${VISUALBYTE_PROFILE:-release}
    cargo_cross build --profile "$profile" --bin visualbyte --features mic
    local bin=$CARGO_TARGET_DIR/$triple/$profile/visualbyte
    echo "robot binary: $bin"
    echo "size: $(stat -c %s "$bin") bytes ($(du -h "$bin" | cut -f1))"
    file "$bin"
    # The oldest glibc a board needs to run it (Debian 12 builds against glibc 2.36).
    echo "needs glibc >= $("$gnu-objdump" -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1 | cut -d_ -f2)"
}

for step in "${steps[@]}"; do
    case "$step" in
    install) step_install ;;
    build-tests) cross_env; step_build_tests ;;
    test) cross_env; step_test ;;
    release) cross_env; step_release ;;
    *) echo "unknown step: $step" >&2; exit 2 ;;
    esac
done
