#!/usr/bin/env bash
# Installs the Debian speech engines the dataset trains on besides espeak-ng (MBROLA, RHVoice, SVOX pico,
# festival's diphone and MBROLA voices; see export/visualbyte_export/speech_engines.py). Several are
# in Debian's contrib and non-free sections: they are added to the Debian sources first, once (a source
# that already lists them is left alone). Held-out engines (flite, festival's kal and ked) are installed
# by scripts/test.sh, for evaluation only. Piper and Kokoro come from PyPI through the Python lock.
set -euo pipefail
PACKAGES=(mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 rhvoice rhvoice-english libttspico-utils
    festival festvox-rablpc16k festvox-don festvox-us1 festvox-us2 festvox-us3 festvox-en1)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# shellcheck source=scripts/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

mapfile -t missing < <(apt_missing "${PACKAGES[@]}")
if [ ${#missing[@]} -eq 0 ]; then
    echo "speech engines already installed"
    exit 0
fi

# deb822 sources (Debian 12's default) and one-line sources: add contrib and non-free to every Debian
# entry that lists main without them.
changed=0
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -f "$f" ] || continue
    if [ "${f##*.}" = sources ]; then
        if grep -Eq '^Components: main$' "$f"; then
            as_root sed -i -E 's/^Components: main$/Components: main contrib non-free/' "$f"
            changed=1
        fi
    elif grep -Eq '^deb .*debian.* main$' "$f"; then
        as_root sed -i -E 's/^(deb .*debian.* main)$/\1 contrib non-free/' "$f"
        changed=1
    fi
done
if [ "$changed" = 1 ]; then
    echo "added contrib and non-free to the Debian sources"
fi
echo "installing: ${missing[*]}"
as_root apt-get update -qq || echo "warning: apt-get update reported errors; trying the install anyway"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
