#!/usr/bin/env bash
# Tokenize benchmark: `trace tokenize` (release build) against Python's
# Hugging Face `tokenizers` encode_batch, on the same multi-turn trace of
# >= 200k messages, with the same real tokenizer and the same counts
# (plain prompts: `--chat-template none`).
#
#   bench/tokenize/run.sh
#
# Environment: BENCH_MESSAGES (default 220000), BENCH_OUT (cache folder,
# default bench-out/), BENCH_PYTHON (a python with pyarrow and tokenizers;
# default $TRACE_PYTHON, then .venv/bin/python), BENCH_TOKENIZER (a
# tokenizer.json; default .cache/tokenizers/llama3/tokenizer.json from
# scripts/fetch-tokenizers.sh).
# Prints, for both: wall seconds, tokens/s (all tokens counted: messages,
# replies and every turn's whole prompt, divided by wall time) and peak RSS
# from /usr/bin/time -v; checks that both counted the same totals.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

MESSAGES="${BENCH_MESSAGES:-220000}"
OUT="${BENCH_OUT:-$ROOT/bench-out}"
PY="${BENCH_PYTHON:-${TRACE_PYTHON:-$ROOT/.venv/bin/python}}"
TOKENIZER="${BENCH_TOKENIZER:-$ROOT/.cache/tokenizers/llama3/tokenizer.json}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CHATS="$OUT/tokenize_chats_${MESSAGES}.jsonl"
TRACE_IN="$OUT/tokenize_chats_${MESSAGES}.parquet"
TRACE_OUT="$OUT/tokenize_chats_${MESSAGES}.tok.parquet"

mkdir -p "$OUT"
if [[ ! -x /usr/bin/time ]]; then
    echo "installing GNU time (Debian package 'time') for peak RSS"
    apt-get update -qq && apt-get install -y -qq time
fi
if [[ ! -f "$TOKENIZER" ]]; then
    scripts/fetch-tokenizers.sh
fi
if ! "$PY" -c 'import pyarrow, tokenizers' 2>/dev/null; then
    echo "bench: $PY lacks pyarrow or tokenizers; run scripts/test.sh once or set BENCH_PYTHON" >&2
    exit 1
fi

echo "building trace (release)"
cargo build --release --quiet --bin trace
TRACE="$TARGET_DIR/release/trace"

if [[ ! -f "$TRACE_IN" ]]; then
    python3 bench/tokenize/gen_chats.py "$CHATS" --messages "$MESSAGES" --seed 1
    "$TRACE" convert sharegpt "$CHATS" -o "$TRACE_IN" >/dev/null
fi

# Runs a command under /usr/bin/time -v; prints "seconds rss_kb" and keeps stdout in $OUT/last.out.
measure() {
    /usr/bin/time -v -o "$OUT/time.log" "$@" >"$OUT/last.out"
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$OUT/time.log")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/time.log")
    python3 - "$wall" "$rss" <<'PY'
import sys
parts = [float(p) for p in sys.argv[1].split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
print(f"{secs:.3f} {sys.argv[2]}")
PY
}

echo "tokenizer: $TOKENIZER"
echo "machine: $(nproc) cores"
read -r RS RRSS < <(measure "$TRACE" tokenize "$TRACE_IN" -o "$TRACE_OUT" --tokenizer "$TOKENIZER" \
    --chat-template none --force --json)
cp "$OUT/last.out" "$OUT/trace.json"
read -r PS PRSS < <(measure "$PY" bench/tokenize/python_baseline.py "$TRACE_IN" "$TOKENIZER")
cp "$OUT/last.out" "$OUT/python.json"

python3 - "$OUT/trace.json" "$OUT/python.json" "$RS" "$RRSS" "$PS" "$PRSS" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
p = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
rs, rrss, ps, prss = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
keys = ["new_tokens", "reference_output_tokens", "prompt_tokens"]
for k in keys:
    if t[k] != p[k]:
        sys.exit(f"counts differ: {k}: trace {t[k]}, python {p[k]}")
total = sum(t[k] for k in keys)
print(f"rows {t['rows']}, messages {p['messages']}, tokens counted {total:,} (all equal in both)")
print(f"{'':22} {'wall s':>8} {'tokens/s':>14} {'peak RSS MB':>12}")
print(f"{'trace tokenize':22} {rs:8.2f} {total / rs:14,.0f} {rrss / 1024:12.0f}")
print(f"{'python encode_batch':22} {ps:8.2f} {total / ps:14,.0f} {prss / 1024:12.0f}")
print(f"speed-up: {ps / rs:.2f}x  (python: {p['prepare_seconds']:.2f} s reading and building prompts, "
      f"{p['encode_seconds']:.2f} s encoding)")
PY
