#!/usr/bin/env bash
# Benchmark of `trace replay` as a load generator: it replays a trace of
# single-turn requests (16-token replies) against `trace mock` with zero
# artificial delay, at rising open-loop rates, and prints per rate the
# achieved arrival rate, the client's CPU seconds per 1,000 requests and its
# p50/p99 lateness (how late requests left against their schedule).
#
#   bench/replay/run.sh                 # rates 500 1000 2000 5000 8000, 10 s each
#   RATES="1000 2000" DURATION=5s bench/replay/run.sh
#   EXTRA="--no-usage --tokenizer .cache/tokenizers/llama3/tokenizer.json" bench/replay/run.sh
#                                       # replay flags added to every run (here: the cost of
#                                       # counting tokens of replies without usage)
#
# Everything runs on 127.0.0.1. The mock and the replayer share the machine's
# two cores, so the highest rates measure both.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RATES="${RATES:-500 1000 2000 5000 8000}"
DURATION="${DURATION:-10s}"
EXTRA="${EXTRA:-}"
OUT="${OUT:-$ROOT/bench-out/replay}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time; }
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release --quiet
fi
BIN="$ROOT/target/release/trace"

"$BIN" synth random --requests 20000 --input-len 128 --output-len 16 -o "$OUT/trace.parquet" >/dev/null

"$BIN" mock --port 0 --ttft-ms 0 --itl-ms 0 --max-running 100000 >"$OUT/mock.out" 2>"$OUT/mock.err" &
MOCK_PID=$!
trap 'kill $MOCK_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    URL=$(sed -n 's/^listening on //p' "$OUT/mock.out" | head -n1)
    [[ -n "$URL" ]] && break
    sleep 0.1
done
[[ -n "${URL:-}" ]] || { echo "the mock did not start"; cat "$OUT/mock.err"; exit 1; }

printf '%-10s %-12s %-12s %-14s %-14s %-14s\n' "target/s" "achieved/s" "requests" "cpu s/1k req" "late p50 ms" "late p99 ms"
for rate in $RATES; do
    rm -rf "$OUT/results"
    /usr/bin/time -f "%U %S" -o "$OUT/time.txt" \
        "$BIN" replay "$OUT/trace.parquet" --endpoint "$URL" --qps "$rate" --duration "$DURATION" \
        --max-tokens 16 --no-metrics --quiet --results-dir "$OUT/results" $EXTRA >/dev/null
    read -r user sys <"$OUT/time.txt"
    "$PY" - "$OUT/results" "$rate" "$user" "$sys" <<'PYEOF'
import json, glob, sys
results, rate, user, sys_ = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
s = json.load(open(glob.glob(results + "/*/summary.json")[0]))["levels"][0]
n = s["requests"]
late = s["arrival_lateness_ms"]["percentiles"]
print(f"{rate:<10} {s['achieved_rate']:<12.1f} {n:<12} {1000 * (user + sys_) / max(n, 1):<14.3f} "
      f"{late.get('p50', float('nan')):<14.3f} {late.get('p99', float('nan')):<14.3f}")
PYEOF
done
