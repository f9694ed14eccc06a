#!/usr/bin/env bash
# Open an HTML report in headless Chromium, offline, and print on stdout how
# many <svg> elements the rendered page holds (only that number; messages go
# to stderr).
#
#   scripts/check-html.sh report.html [screenshot.png]
#
# Exits non-zero when Chromium is missing, fails, or the page has no <svg>.
# Install Chromium on Debian/Ubuntu with:
#   apt-get update && apt-get install -y chromium
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 FILE.html [SCREENSHOT.png]" >&2
    exit 2
fi
file=$(realpath "$1")
[[ -f "$file" ]] || { echo "$0: $1: no such file" >&2; exit 2; }

browser=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
[[ -n "$browser" ]] || { echo "$0: no chromium on PATH (apt-get install -y chromium)" >&2; exit 3; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# Everything that could reach the network is off; the page is a local file.
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --disable-default-apps --disable-extensions --mute-audio
    --user-data-dir="$profile")

dom=$("$browser" "${flags[@]}" --dump-dom "file://$file" 2>"$profile/stderr") || {
    echo "$0: $browser failed on $file:" >&2
    cat "$profile/stderr" >&2
    exit 1
}
if [[ $# -eq 2 ]]; then
    shot=$(realpath -m "$2")
    "$browser" "${flags[@]}" --hide-scrollbars --window-size=1400,2400 \
        --screenshot="$shot" "file://$file" 2>>"$profile/stderr" || {
        echo "$0: screenshot failed:" >&2
        cat "$profile/stderr" >&2
        exit 1
    }
    echo "screenshot: $shot" >&2
fi
count=$( (grep -o '<svg[ >]' <<<"$dom" || true) | wc -l)
echo "$count"
[[ "$count" -gt 0 ]]
