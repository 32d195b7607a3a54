# Sourced by scripts/test.sh and scripts/install-voices.sh.
# `apt_missing PACKAGE...`: prints, one a line, the packages not installed for this machine's architecture.
# A package of Architecture all counts; one installed only for another architecture does not. dpkg-query
# prints one line for each architecture a package is installed for (the aarch64 stage adds
# libasound2-dev:arm64 beside the native one), so each line is read on its own.
apt_missing() {
    local native p
    native=$(dpkg --print-architecture)
    for p in "$@"; do
        { dpkg-query -W -f='${db:Status-Status} ${Architecture}\n' "$p" 2>/dev/null || true; } |
            grep -qxE "installed ($native|all)" || echo "$p"
    done
}
