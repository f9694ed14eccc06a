#!/usr/bin/env bash
# Benchmark of `trace mock`: how many streaming requests per second it
# sustains, and whether it holds 10,000 concurrent keep-alive connections.
# Prints numbers; asserts nothing. Everything stays on 127.0.0.1.
#
#   bench/mock/run.sh            # both parts, ~40 s
#   DURATION=20s bench/mock/run.sh
#   SKIP_BUILD=1 bench/mock/run.sh   # use target/release/trace as it is
#
# The load client is oha (crates.io), installed once into /tmp/bench-tools
# unless OHA points at one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DURATION="${DURATION:-10s}"
TOOLS="${TOOLS:-/tmp/bench-tools}"
OHA="${OHA:-$TOOLS/bin/oha}"

if [[ ! -x "$OHA" ]]; then
    echo "== installing oha into $TOOLS (once)"
    cargo install oha --locked --root "$TOOLS"
fi
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "== cargo build --release"
    cargo build --release --quiet
fi
TRACE="$ROOT/target/release/trace"

# Both sides need a file descriptor per connection (plus headroom).
ulimit -n "$(ulimit -Hn)" || true
echo "open-file limit: $(ulimit -n)"

MOCK_PID=""
cleanup() { [[ -n "$MOCK_PID" ]] && kill "$MOCK_PID" 2>/dev/null || true; }
trap cleanup EXIT

# start_mock ARGS... : starts the mock on a free port, sets URL and MOCK_PID.
start_mock() {
    local out
    out="$(mktemp)"
    "$TRACE" mock --port 0 "$@" >"$out" 2>/dev/null &
    MOCK_PID=$!
    for _ in $(seq 100); do
        if grep -q '^listening on ' "$out"; then break; fi
        sleep 0.05
    done
    URL="$(sed -n 's/^listening on //p' "$out")"
    rm -f "$out"
}

stop_mock() {
    kill -TERM "$MOCK_PID" 2>/dev/null || true
    wait "$MOCK_PID" 2>/dev/null || true
    MOCK_PID=""
}

BODY='{"model":"mock","messages":[{"role":"user","content":"Tell me a story about a benchmark."}],"max_tokens":16,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}'

# summary JSON → one line: requests/s, success rate, p50/p99 latency, status codes, errors.
summarise() {
    python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d["summary"]
lat = d.get("latencyPercentiles") or {}
p50 = 1000 * (lat.get("p50") or 0)
p99 = 1000 * (lat.get("p99") or 0)
print("  requests/s %.0f, success rate %.4f, latency p50 %.2f ms p99 %.2f ms, status %s, errors %s" % (
    s["requestsPerSec"], s["successRate"], p50, p99,
    d.get("statusCodeDistribution"), d.get("errorDistribution")))
'
}

echo
echo "== 1. sustained rate: streaming chat, 16-token replies, zero delay"
start_mock --ttft-ms 0 --itl-ms 0
for c in 32 128; do
    echo "-- oha -c $c -z $DURATION"
    "$OHA" -c "$c" -z "$DURATION" --no-tui --output-format json -m POST \
        -H 'content-type: application/json' -d "$BODY" "$URL/v1/chat/completions" | summarise
done
echo "-- one reply, as sent:"
curl -s -N "$URL/v1/chat/completions" -H 'content-type: application/json' -d "$BODY" | grep -c '^data: ' |
    sed 's/^/  SSE events per reply: /'
stop_mock

echo
echo "== 2. 10,000 concurrent keep-alive connections"
# Replies last ~3 s (16 tokens, 200 ms apart), so all connections are busy at once.
LOG="$(mktemp --suffix=.jsonl)"
start_mock --ttft-ms 0 --itl-ms 200 --max-running 20000 --log-requests "$LOG"
PEAK_FILE="$(mktemp)"
(
    peak=0
    for _ in $(seq 300); do
        v="$(curl -s "$URL/metrics" | sed -n 's/^vllm:num_requests_running{[^}]*} \([0-9.]*\)$/\1/p')"
        v="${v%.*}"
        if [[ -n "$v" && "$v" -gt "$peak" ]]; then peak="$v"; echo "$peak" >"$PEAK_FILE"; fi
        sleep 0.1
    done
) &
POLLER=$!
echo "-- oha -c 10000 -z $DURATION"
"$OHA" -c 10000 -z "$DURATION" -w --no-tui --output-format json -m POST \
    -H 'content-type: application/json' -d "$BODY" "$URL/v1/chat/completions" | summarise
kill "$POLLER" 2>/dev/null || true
wait "$POLLER" 2>/dev/null || true
echo "  peak vllm:num_requests_running seen by /metrics: $(cat "$PEAK_FILE" 2>/dev/null || echo '?')"
rm -f "$PEAK_FILE"
stop_mock
# Server-side ground truth from the request log: how late the mock itself was.
python3 - "$LOG" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in rows if r["status"] == "ok"]
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
e2e = [r["last_token_ms"] - r["arrival_ms"] for r in ok]
ttft = [r["first_token_ms"] - r["arrival_ms"] for r in ok]
print("  server log: %d completed, %d cut by the deadline; server-side TTFT p50 %.2f p99 %.2f ms (asked 0), "
      "arrival to last token p50 %.1f p99 %.1f ms (asked 3000)" % (
      len(ok), len(rows) - len(ok), pct(ttft, 0.5), pct(ttft, 0.99), pct(e2e, 0.5), pct(e2e, 0.99)))
PY
rm -f "$LOG"
