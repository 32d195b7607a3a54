#!/usr/bin/env bash
# VisualByte's test command (CI runs it through .ci/run). On Debian 12 it installs what is missing, then
# proves, stopping at the first failure:
#   fmt, clippy (default features and `mic`), the native test suite (with `mic`, so the capture code is
#   built and its tests run), ruff (check and format) + pytest for export/, a fuzz smoke run (5 s per cargo-fuzz target),
#   and the same test suite on aarch64 under qemu-user (same count as native). VISUALBYTE_RELEASE=1 also builds the aarch64 robot binary
#   (release profile, LTO: the slowest build, so not part of every run).
#
# Caches (kept between runs, shared by every clone on the machine), under
# VISUALBYTE_CACHE (default /var/cache/visualbyte):
#   target/          native CARGO_TARGET_DIR (rustup's toolchain)
#   target-aarch64/  aarch64 CARGO_TARGET_DIR (Debian's rustc-web: a different compiler, so kept apart)
#   venv/            Python venv with export/requirements.lock (export[dev], exact versions); reused while the lock is unchanged
#
# VISUALBYTE_SKIP_AARCH64=1 skips the aarch64 stages for a quick local run (CI never sets it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/deadline.sh
. scripts/deadline.sh
# shellcheck source=scripts/apt.sh
. scripts/apt.sh

CACHE=${VISUALBYTE_CACHE:-/var/cache/visualbyte}
if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
    CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/visualbyte
    mkdir -p "$CACHE"
fi
export VISUALBYTE_CACHE=$CACHE
export CARGO_TARGET_DIR=$CACHE/target
VENV=$CACHE/venv
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/visualbyte-test.XXXXXX")
export CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0
# rustup's toolchain for everything native, even once Debian's /usr/bin/cargo is installed.
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

# What the tests and the export step need from Debian. dataset-fashion-mnist is left out until a test needs it.
# gcompris-qt-data, tuxpaint-stamps-default, openclipart-png and ktuberling-data: the photographs, clip art and
# recorded words (photos.py).
APT_PACKAGES=(espeak-ng flite festival festvox-kallpc16k fonts-nanum fonts-dejavu-core sox libasound2-dev pkg-config file strace
    gcompris-qt-data tuxpaint-stamps-default openclipart-png ktuberling-data)

# ---- stage bookkeeping --------------------------------------------------------------------------------------
TIMINGS=()
COUNTS=()
STAGE=""
TOTAL_PASSED=0
START=$SECONDS

stage() { # stage NAME COMMAND...: run one stage, time it
    STAGE=$1
    shift
    echo
    echo "=== $STAGE"
    local t0=$SECONDS
    "$@"
    local dt=$((SECONDS - t0))
    TIMINGS+=("$(printf '  %-34s %4d s  (%d:%02d)' "$STAGE" "$dt" $((dt / 60)) $((dt % 60)))")
    echo "--- $STAGE: ${dt} s"
    STAGE=""
}

summary() {
    local rc=$1 t=$((SECONDS - START))
    echo
    echo "=== Summary"
    printf '%s\n' "${TIMINGS[@]}"
    printf '  %-34s %4d s  (%d:%02d)\n' total "$t" $((t / 60)) $((t % 60))
    [ ${#COUNTS[@]} -eq 0 ] || printf '%s\n' "${COUNTS[@]}"
    if [ "$rc" -ne 0 ]; then
        echo "FAILED${STAGE:+ in stage: $STAGE} (exit $rc); logs in $LOGS"
    else
        echo "all stages passed"
        echo "tests: $TOTAL_PASSED passed, 0 failed"
    fi
}
trap 'summary $?' EXIT

# Sum of "N passed" over every `test result:` line of a cargo test log; fails on a "failed" count > 0.
cargo_passed() {
    awk '/^test result: /{for (i = 1; i <= NF; i++) {if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i}}
         END {if (f > 0) exit 1; print p + 0}' "$1"
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ---- stages -------------------------------------------------------------------------------------------------
install_apt() {
    local missing=()
    mapfile -t missing < <(apt_missing "${APT_PACKAGES[@]}")
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        as_root apt-get update -qq || echo "warning: apt-get update reported errors; trying the install anyway"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "native packages already installed"
    fi
    scripts/install-voices.sh
    if [ "${VISUALBYTE_SKIP_AARCH64:-}" != 1 ]; then
        scripts/cross-debian.sh aarch64 install
    fi
}

# The venv outlives the clone (torch alone is ~3 GB): scripts/python-venv.sh installs export/requirements.lock
# into it and rebuilds it only when the lock, the Python or the clone changes. Locked: clones may share it.
setup_venv() {
    exec 9>"$CACHE/venv.lock"
    flock 9
    scripts/python-venv.sh "$VENV"
}

start_venv() { # in the background: PyPI downloads overlap the Rust builds
    if [ ! -f export/pyproject.toml ]; then
        echo "no export/pyproject.toml" >"$LOGS/venv.log"
        VENV_PID=""
        return
    fi
    setup_venv >"$LOGS/venv.log" 2>&1 &
    VENV_PID=$!
    echo "setting up $VENV in the background (log: $LOGS/venv.log)"
}

fmt() { cargo fmt --all -- --check; }

clippy_default() { nice -n 5 cargo clippy --locked --all-targets -- -D warnings; }
clippy_mic() { nice -n 5 cargo clippy --locked --all-targets --features mic -- -D warnings; }

# The binary is built once here; the integration tests and pytest both use it.
# `cargo test --no-run` also builds the `visualbyte` binary the integration tests and pytest run (a separate
# `cargo build` would resolve features without the dev-dependencies and rebuild the crate twice per run).
native_build() { nice -n 5 cargo test --locked --features mic --no-run; }

native_test() {
    # The no-network test must really trace here (strace is installed above). A hang fails the stage after
    # NATIVE_TEST_DEADLINE seconds instead of the whole CI run.
    VISUALBYTE_REQUIRE_STRACE=1 run_by_deadline "${VISUALBYTE_NATIVE_TEST_DEADLINE:-900}" \
        "$LOGS/native-test.log" nice -n 5 cargo test --locked --features mic
    NATIVE_PASSED=$(cargo_passed "$LOGS/native-test.log")
    TOTAL_PASSED=$((TOTAL_PASSED + NATIVE_PASSED))
    COUNTS+=("  native tests:  $NATIVE_PASSED passed")
}

python_checks() {
    if [ -z "$VENV_PID" ]; then
        echo "export/pyproject.toml not found: nothing to check"
        return 1
    fi
    local rc=0
    wait "$VENV_PID" || rc=$?
    cat "$LOGS/venv.log"
    [ "$rc" -eq 0 ] || { echo "venv setup failed (exit $rc)"; return "$rc"; }
    "$VENV/bin/ruff" check export
    "$VENV/bin/ruff" check --config export/pyproject.toml scripts
    "$VENV/bin/ruff" format --check export
    "$VENV/bin/ruff" format --check --config export/pyproject.toml scripts
    export VISUALBYTE_BIN=$CARGO_TARGET_DIR/debug/visualbyte
    rc=0
    (cd export && "$VENV/bin/python" -m pytest -q -p no:cacheprovider) 2>&1 | tee "$LOGS/pytest.log" || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "pytest collected no tests: that is a failure here"
        return 5
    fi
    [ "$rc" -eq 0 ] || return "$rc"
    local passed
    passed=$(grep -Eo '[0-9]+ passed' "$LOGS/pytest.log" | tail -n 1 | cut -d' ' -f1)
    TOTAL_PASSED=$((TOTAL_PASSED + ${passed:-0}))
    COUNTS+=("  python tests:  ${passed:-0} passed")
}

# cargo-fuzz (installed once into the cache), the instrumented parsers (no tract) and 5 s per fuzz target.
fuzz_smoke() { nice -n 5 scripts/fuzz.sh smoke 5; }

# Debian's compiler builds into its own target dir (rustup's artifacts in target/ are of no use to it).
aarch64_build() { CARGO_TARGET_DIR=$CACHE/target-aarch64 scripts/cross-debian.sh aarch64 build-tests; }

# qemu-user can hang a guest process for good (a CI run sat in one test for an hour), so the run has a
# deadline; a run that hits it is reported and run once more. A test that fails is never rerun.
aarch64_test() {
    CARGO_TARGET_DIR=$CACHE/target-aarch64 rerun_if_hung "${VISUALBYTE_AARCH64_TEST_DEADLINE:-900}" \
        "$LOGS/aarch64-test.log" scripts/cross-debian.sh aarch64 test
    local passed
    passed=$(cargo_passed "$LOGS/aarch64-test.log")
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    COUNTS+=("  aarch64 tests: $passed passed (qemu-user)")
    if [ "$passed" -ne "$NATIVE_PASSED" ]; then
        echo "aarch64 ran $passed tests, native ran $NATIVE_PASSED: they must be the same suite"
        return 1
    fi
}

aarch64_release() { CARGO_TARGET_DIR=$CACHE/target-aarch64 scripts/cross-debian.sh aarch64 release; }

# ---- run ----------------------------------------------------------------------------------------------------
echo "VisualByte tests: $(git rev-parse --short HEAD 2>/dev/null || echo 'no commit') in $ROOT"
echo "cache: $CACHE; $(cargo --version); $(python3 --version)"

stage "install (apt)" install_apt
start_venv
stage "cargo fmt" fmt
stage "clippy" clippy_default
stage "clippy --features mic" clippy_mic
stage "native build (tests + binary)" native_build
stage "native tests" native_test
stage "python: ruff + pytest" python_checks
stage "fuzz smoke" fuzz_smoke
if [ "${VISUALBYTE_SKIP_AARCH64:-}" = 1 ]; then
    echo
    echo "=== aarch64: skipped (VISUALBYTE_SKIP_AARCH64=1)"
    COUNTS+=("  aarch64: skipped")
else
    stage "aarch64 build (tests)" aarch64_build
    stage "aarch64 tests (qemu)" aarch64_test
    if [ "${VISUALBYTE_RELEASE:-}" = 1 ]; then
        stage "aarch64 release binary" aarch64_release
    fi
fi
