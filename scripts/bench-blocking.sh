#!/usr/bin/env bash
# Does slow file work stall other requests? Measures the gateway's p99 for a cheap request
# (`read` of a 1 KiB file) while other clients keep it busy with slow ones (`ls` of a
# directory of ENTRIES files: carapace-fs streams and counts every entry, a directory walk
# of tens of milliseconds), for two builds side by side in the same run:
#
#   baseline  the commit before file tools moved off the async workers (BASELINE_REV, default
#             da82e22), built in a temporary worktree, or the binary given as BASELINE_BIN;
#   current   this checkout.
#
#   scripts/bench-blocking.sh                      # 10 s per run, 3 rounds, 200 000 entries
#   ROUNDS=3 DURATION=20s ENTRIES=100000 scripts/bench-blocking.sh
#   BASELINE_BIN=/path/to/old/carapace CURRENT_BIN=target/release/carapace scripts/bench-blocking.sh
#
# Each round runs baseline then current (alternating, so a change in the machine's load hits
# both), each on a fresh gateway and state dir on loopback: wrk -c$SLOW_CONNS runs the slow
# `ls` calls while wrk -c$FAST_CONNS --latency measures the 1 KiB reads. Prints one line per
# run and, at the end, the ratios current/baseline of the medians over the rounds (p99 below
# 1 means the current build keeps cheap requests fast while slow ones run). Timing belongs
# here, never in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh

DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
ENTRIES="${ENTRIES:-200000}"
SLOW_CONNS="${SLOW_CONNS:-2}"
FAST_CONNS="${FAST_CONNS:-16}"
BASELINE_REV="${BASELINE_REV:-da82e22}"

command -v wrk >/dev/null || apt_ensure wrk
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

work="$(mktemp -d)"
gw_pid=""
cleanup() {
  if [[ -n "$gw_pid" ]]; then kill "$gw_pid" 2>/dev/null || true; wait "$gw_pid" 2>/dev/null || true; fi
  if [[ -d "$work/baseline-src" ]]; then git worktree remove --force "$work/baseline-src" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "${CURRENT_BIN:-}" ]]; then
  echo "==> building the current checkout (release)" >&2
  cargo build --release -p carapace >&2
  CURRENT_BIN="$target_dir/release/carapace"
fi
if [[ -z "${BASELINE_BIN:-}" ]]; then
  echo "==> building the baseline $BASELINE_REV (release, own target dir $target_dir/bench-baseline)" >&2
  git worktree add --detach "$work/baseline-src" "$BASELINE_REV" >/dev/null
  (cd "$work/baseline-src" && CARGO_TARGET_DIR="$target_dir/bench-baseline" cargo build --release -p carapace >&2)
  BASELINE_BIN="$target_dir/bench-baseline/release/carapace"
fi

# One run: prints "p50_ms p99_ms reads_per_s slow_per_s non2xx".
run_one() {
  local bin="$1" state="$work/state-$RANDOM"
  mkdir -p "$state/workspace/many"
  head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$state/workspace/bench-1k.txt"
  python3 - "$state/workspace/many" "$ENTRIES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open(os.path.join(d, "f%07d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
  # /tools/invoke serves no file tools unless gateway.tools.allow lists them (OpenClaw's default).
  printf '{ gateway: { tools: { allow: ["read", "ls"] } } }\n' > "$state/carapace.json5"
  env -u CARAPACE_TOKEN CARAPACE_STATE_DIR="$state" CARAPACE_CONFIG="$state/carapace.json5" \
    "$bin" gateway run --bind 127.0.0.1:0 --json --no-reload > "$state/ready.json" 2> "$state/gateway.log" &
  gw_pid=$!
  for _ in $(seq 200); do [[ -s "$state/ready.json" ]] && break; sleep 0.1; done
  local base token
  base="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["address"])' "$state/ready.json")"
  token="$(cat "$state/secrets/gateway-token")"
  # Sanity: both calls succeed, and the listing really counts every entry.
  curl -fsS "$base/tools/invoke" -H "Authorization: Bearer $token" \
    -d '{"tool":"read","args":{"path":"bench-1k.txt"}}' | python3 -c \
    'import json,sys; v=json.load(sys.stdin); assert v["ok"] and v["result"]["details"]["size"]==1024, v'
  curl -fsS "$base/tools/invoke" -H "Authorization: Bearer $token" \
    -d '{"tool":"ls","args":{"path":"many","limit":1}}' | python3 -c \
    'import json,sys; v=json.load(sys.stdin); assert v["ok"] and v["result"]["details"]["total"]==int(sys.argv[1]), v' "$ENTRIES"
  for kind in read ls; do
    local body='{"tool":"read","args":{"path":"bench-1k.txt"}}'
    [[ "$kind" == ls ]] && body='{"tool":"ls","args":{"path":"many","limit":1}}'
    cat > "$work/$kind.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
  done
  wrk -t1 -c"$SLOW_CONNS" -d"$DURATION" -s "$work/ls.lua" "$base/tools/invoke" > "$work/slow.txt" &
  local slow_pid=$!
  sleep 1
  wrk -t1 -c"$FAST_CONNS" -d"$DURATION" --latency -s "$work/read.lua" "$base/tools/invoke" > "$work/fast.txt"
  wait "$slow_pid"
  kill "$gw_pid" 2>/dev/null || true
  wait "$gw_pid" 2>/dev/null || true
  gw_pid=""
  rm -rf "$state"
  python3 - "$work/fast.txt" "$work/slow.txt" <<'PY'
import re, sys
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
fast, slow = open(sys.argv[1]).read(), open(sys.argv[2]).read()
p50 = ms(re.search(r"^\s+50%\s+(\S+)", fast, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", fast, re.M).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", fast).group(1))
srps = float(re.search(r"Requests/sec:\s+([\d.]+)", slow).group(1))
bad = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", fast + slow))
print(f"{p50:.3f} {p99:.3f} {rps:.0f} {srps:.1f} {bad}")
PY
}

echo "== machine: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $ENTRIES entries, slow: wrk -t1 -c$SLOW_CONNS ls; measured: wrk -t1 -c$FAST_CONNS --latency read 1 KiB; $DURATION per run"
printf '%-8s %-5s %10s %10s %10s %10s %7s\n' build round p50_ms p99_ms reads/s ls/s non2xx
: > "$work/results"
for r in $(seq "$ROUNDS"); do
  for build in baseline current; do
    bin="$BASELINE_BIN"; [[ "$build" == current ]] && bin="$CURRENT_BIN"
    line="$(run_one "$bin")"
    echo "$build $line" >> "$work/results"
    # shellcheck disable=SC2086
    printf '%-8s %-5s %10s %10s %10s %10s %7s\n' "$build" "$r" $line
  done
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(build, i):
    return statistics.median(float(r[i]) for r in rows if r[0] == build)
names = {1: "p50", 2: "p99", 3: "reads/s", 4: "ls/s"}
print("== medians, current/baseline:", ", ".join(
    f"{n} {med('current', i):g}/{med('baseline', i):g} = {med('current', i) / med('baseline', i):.2f}"
    for i, n in names.items() if med('baseline', i) > 0))
if any(int(r[5]) for r in rows):
    print("== some answers were not 2xx: the figures above are not comparable")
    sys.exit(1)
PY
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
