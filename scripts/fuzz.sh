#!/usr/bin/env bash
# Fuzzing VisualByte's parsers of outside data with cargo-fuzz (libFuzzer). The targets live in fuzz/
# (its own workspace) and build the runtime without the `onnx` feature, so no tract is instrumented.
#
#   scripts/fuzz.sh install               cargo-fuzz into $VISUALBYTE_CACHE/cargo-tools, if missing
#   scripts/fuzz.sh build                 the instrumented targets
#   scripts/fuzz.sh list                  the targets
#   scripts/fuzz.sh smoke [SECONDS]       every target for SECONDS (default 5) from the committed seeds;
#                                         fails on any crash, panic, timeout or out-of-memory
#   scripts/fuzz.sh run TARGET RUNS [-- LIBFUZZER_FLAGS…]
#                                         a long run of RUNS executions; the corpus it grows is kept in
#                                         $VISUALBYTE_CACHE/fuzz-corpus/TARGET, crashes in fuzz/artifacts/
#
# No sanitizer (`-s none`): the targets are safe Rust, libFuzzer still catches every panic, abort, hang
# and runaway allocation, and the build is several times faster than with AddressSanitizer. VisualByte's
# own crate keeps overflow checks and debug assertions in the fuzz build (fuzz/Cargo.toml).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CACHE=${VISUALBYTE_CACHE:-/var/cache/visualbyte}
if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
    CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/visualbyte
    mkdir -p "$CACHE"
fi
TOOLS=$CACHE/cargo-tools
CARGO_FUZZ_VERSION=0.13.2
FUZZ_TARGET_DIR=$CACHE/target-fuzz
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
PATH="$TOOLS/bin:$PATH"
export PATH CARGO_TERM_COLOR=never

TARGETS=(wav_render image_render text_render index_load onnx_contract board_profile)

# Per execution: 10 s is a hang; 2 GiB of memory is a runaway allocation.
LIMITS=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048)

install() {
    if [ -x "$TOOLS/bin/cargo-fuzz" ]; then
        echo "cargo-fuzz: $("$TOOLS/bin/cargo-fuzz" --version)"
        return
    fi
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --root "$TOOLS"
}

build() {
    install
    # With --sanitizer none every flag cargo-fuzz passes is stable; RUSTC_BOOTSTRAP=1 (kept so that the cached
    # build stays valid) is what a sanitizer build (-Zsanitizer) would need on the stable toolchain.
    RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none --target-dir "$FUZZ_TARGET_DIR" "$@"
}

binary() { # binary TARGET: the built fuzzer
    local host
    host=$(rustc -vV | sed -n 's/^host: //p')
    echo "$FUZZ_TARGET_DIR/$host/release/$1"
}

check_target() {
    local t
    for t in "${TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
    echo "unknown fuzz target $1; one of: ${TARGETS[*]}" >&2
    return 2
}

smoke() {
    local seconds=${1:-5} t scratch failed=()
    build
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/visualbyte-fuzz.XXXXXX")
    mkdir -p fuzz/artifacts
    for t in "${TARGETS[@]}"; do
        mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
        echo "--- $t: ${seconds} s"
        # New corpus entries go to the scratch directory; the committed seeds are only read.
        if "$(binary "$t")" "$scratch/$t" "fuzz/corpus/$t" "${LIMITS[@]}" \
            -max_total_time="$seconds" -print_final_stats=1 \
            -artifact_prefix="fuzz/artifacts/$t/" >"$scratch/$t.log" 2>&1; then
            grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$scratch/$t.log" | tr '\n' ' '
            echo
        else
            tail -n 40 "$scratch/$t.log"
            failed+=("$t")
        fi
    done
    rm -rf "$scratch"
    if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz smoke: crashes in ${failed[*]}; inputs in fuzz/artifacts/ (reproduce: $(binary TARGET) FILE)"
        return 1
    fi
    echo "fuzz smoke: ${#TARGETS[@]} targets, no crash"
}

run() {
    local t=${1:?usage: fuzz.sh run TARGET RUNS [-- FLAGS]} runs=${2:?usage: fuzz.sh run TARGET RUNS}
    shift 2
    [ "${1:-}" = "--" ] && shift
    check_target "$t"
    build
    mkdir -p "$CACHE/fuzz-corpus/$t" "fuzz/artifacts/$t"
    local t0=$SECONDS
    "$(binary "$t")" "$CACHE/fuzz-corpus/$t" "fuzz/corpus/$t" "${LIMITS[@]}" \
        -runs="$runs" -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" "$@"
    echo "fuzz run $t: $runs executions requested, $((SECONDS - t0)) s"
}

case "${1:-}" in
    install) install ;;
    build) shift; build "$@" ;;
    list) printf '%s\n' "${TARGETS[@]}" ;;
    smoke) shift; smoke "$@" ;;
    run) shift; run "$@" ;;
    *)
        sed -n '2,15p' "$0"
        exit 2
        ;;
esac
