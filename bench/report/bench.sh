#!/usr/bin/env bash
# Benchmark `trace report` on a large results set.
#
#   bench/report/bench.sh [ROWS] [PART_ROWS]     (default 10000000 rows, 5000-row parts)
#
# TRACE_BIN=path uses that binary instead of building a release one.
# Makes one real run (trace mock + trace replay) to copy the exact results
# schema from, generates ROWS requests in that schema (bench/report/gen_results.py,
# 1-32 output tokens each with their inter-token gaps), then times
# `trace report --format json` over them and prints wall time, CPU time,
# peak RSS, and the data's size on disk and uncompressed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-10000000}
PART_ROWS=${2:-5000}
OUT=${BENCH_OUT:-bench-out/report}
PY=${TRACE_PYTHON:-.venv/bin/python}
if ! "$PY" -c 'import numpy, pyarrow' 2>/dev/null; then
  echo "needs a python with numpy and pyarrow (run scripts/test.sh once to make .venv, or set TRACE_PYTHON)" >&2
  exit 1
fi
if [ -z "${TRACE_BIN:-}" ]; then
  cargo build --release --quiet
fi
BIN=${TRACE_BIN:-target/release/trace}
mkdir -p "$OUT"
RUN="$OUT/2026-01-01T00-00-00_bench-$ROWS"
# A set made by an older gen_results.py, not encoded as the replayer
# encodes (Snappy; dictionaries for strings only), is made again, so that
# the numbers are of what `trace replay` writes.
first=$(ls "$RUN"/requests/part-*.parquet 2>/dev/null | head -1 || true)
if [ -n "$first" ] && ! "$PY" -c 'import sys, pyarrow.parquet as pq
rg = pq.read_metadata(sys.argv[1]).row_group(0)
cols = {rg.column(i).path_in_schema: rg.column(i) for i in range(rg.num_columns)}
sys.exit(cols["run_id"].compression != "SNAPPY" or "RLE_DICTIONARY" in cols["ttft_ms"].encodings)' "$first"; then
  echo "regenerating $RUN (not encoded as the replayer encodes)" >&2
  rm -rf "$RUN"
fi
if [ ! -d "$RUN/requests" ]; then
  tmp=$(mktemp -d)
  "$BIN" synth random --requests 20 --input-len 32 --output-len 4 -o "$tmp/t.parquet" >/dev/null
  "$BIN" mock --port 0 --ttft-ms 1 --itl-ms 1 >"$tmp/mock.out" 2>&1 &
  mock_pid=$!
  for _ in $(seq 50); do grep -q "listening on" "$tmp/mock.out" && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$tmp/mock.out")
  "$BIN" replay "$tmp/t.parquet" --endpoint "$url" --concurrency 2 --requests 20 \
    --no-metrics --quiet --results-dir "$tmp/results" >/dev/null
  kill "$mock_pid"; wait "$mock_pid" 2>/dev/null || true
  schema_part=$(ls "$tmp"/results/*/requests/part-*.parquet | head -1)
  "$PY" bench/report/gen_results.py "$schema_part" "$RUN" "$ROWS" "$PART_ROWS"
  rm -rf "$tmp"
fi
"$PY" - "$RUN" <<'PYEOF'
import glob, sys
import pyarrow.parquet as pq
parts = glob.glob(sys.argv[1] + "/requests/*.parquet")
disk = sum(__import__("os").path.getsize(p) for p in parts)
raw = 0
rows = 0
for p in parts:
    m = pq.read_metadata(p)
    rows += m.num_rows
    raw += sum(m.row_group(i).total_byte_size for i in range(m.num_row_groups))
print(f"data: {rows} rows in {len(parts)} parts, {disk / 1e6:.0f} MB on disk, {raw / 1e6:.0f} MB uncompressed")
PYEOF
for i in 1 2 3; do
  /usr/bin/time -f "run $i: %e s wall, %U s user + %S s sys, %M KB peak RSS" \
    "$BIN" report "$RUN" --format json -o "$OUT/report.json"
done 2>&1 | grep -v '^wrote'
